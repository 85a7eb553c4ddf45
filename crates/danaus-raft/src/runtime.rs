//! The async runtime openraft runs on. A normal build uses openraft's
//! `TokioRuntime`. Under `--cfg madsim` openraft's own tokio (the real one,
//! not madsim-tokio) has no reactor, so [`MadsimRuntime`] spawns, sleeps
//! and draws random numbers through madsim: elections and heartbeats then
//! run in simulated time and replay from the seed.

/// The runtime of every Danaus Raft group in this build.
#[cfg(not(madsim))]
pub type Runtime = openraft::TokioRuntime;

/// The runtime of every Danaus Raft group in this build.
#[cfg(madsim)]
pub type Runtime = MadsimRuntime;

#[cfg(madsim)]
pub use sim::MadsimRuntime;

#[cfg(madsim)]
mod sim {
    use std::future::Future;
    use std::pin::Pin;
    use std::task::{Context, Poll};
    use std::time::Duration;

    use openraft::async_runtime::{AsyncOneshotSendExt, AsyncRuntime};
    use openraft::{OptionalSend, TokioInstant};

    /// openraft's runtime on madsim's simulated executor, clock and RNG.
    /// Instants are tokio's (a `std::time::Instant`, whose clock madsim
    /// simulates), so openraft's own arithmetic on them is unchanged.
    #[derive(Debug, Default, PartialEq, Eq)]
    pub struct MadsimRuntime;

    /// A future with a deadline in simulated time.
    pub struct Timeout<F> {
        future: Pin<Box<F>>,
        sleep: Pin<Box<madsim::time::Sleep>>,
    }

    impl<F: Future> Future for Timeout<F> {
        type Output = Result<F::Output, madsim::time::error::Elapsed>;

        fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
            if let Poll::Ready(v) = self.future.as_mut().poll(cx) {
                return Poll::Ready(Ok(v));
            }
            match self.sleep.as_mut().poll(cx) {
                Poll::Ready(()) => Poll::Ready(Err(madsim::time::error::Elapsed)),
                Poll::Pending => Poll::Pending,
            }
        }
    }

    /// The sending half of a oneshot channel (tokio's channels need no
    /// reactor, so they work in simulation as they are).
    pub struct OneshotSender<T>(tokio::sync::oneshot::Sender<T>);

    impl<T> std::fmt::Debug for OneshotSender<T> {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("OneshotSender")
        }
    }

    impl<T: OptionalSend> AsyncOneshotSendExt<T> for OneshotSender<T> {
        fn send(self, t: T) -> Result<(), T> {
            self.0.send(t)
        }
    }

    fn std_instant(i: TokioInstant) -> std::time::Instant {
        i.into_std()
    }

    impl AsyncRuntime for MadsimRuntime {
        type JoinError = madsim::task::JoinError;
        type JoinHandle<T: OptionalSend + 'static> = madsim::task::JoinHandle<T>;
        type Sleep = madsim::time::Sleep;
        type Instant = TokioInstant;
        type TimeoutError = madsim::time::error::Elapsed;
        type Timeout<R, T: Future<Output = R> + OptionalSend> = Timeout<T>;
        type ThreadLocalRng = madsim::rand::GlobalRng;
        type OneshotSender<T: OptionalSend> = OneshotSender<T>;
        type OneshotReceiverError = tokio::sync::oneshot::error::RecvError;
        type OneshotReceiver<T: OptionalSend> = tokio::sync::oneshot::Receiver<T>;

        fn spawn<T>(future: T) -> Self::JoinHandle<T::Output>
        where
            T: Future + OptionalSend + 'static,
            T::Output: OptionalSend + 'static,
        {
            madsim::task::spawn(future)
        }

        fn sleep(duration: Duration) -> Self::Sleep {
            madsim::time::sleep(duration)
        }

        fn sleep_until(deadline: Self::Instant) -> Self::Sleep {
            madsim::time::sleep_until(std_instant(deadline))
        }

        fn timeout<R, F: Future<Output = R> + OptionalSend>(duration: Duration, future: F) -> Self::Timeout<R, F> {
            Timeout { future: Box::pin(future), sleep: Box::pin(madsim::time::sleep(duration)) }
        }

        fn timeout_at<R, F: Future<Output = R> + OptionalSend>(
            deadline: Self::Instant,
            future: F,
        ) -> Self::Timeout<R, F> {
            Timeout { future: Box::pin(future), sleep: Box::pin(madsim::time::sleep_until(std_instant(deadline))) }
        }

        fn is_panic(_: &Self::JoinError) -> bool {
            // madsim aborts the whole simulation on a panic in a task.
            false
        }

        fn thread_rng() -> Self::ThreadLocalRng {
            madsim::rand::thread_rng()
        }

        fn oneshot<T: OptionalSend>() -> (Self::OneshotSender<T>, Self::OneshotReceiver<T>) {
            let (tx, rx) = tokio::sync::oneshot::channel();
            (OneshotSender(tx), rx)
        }
    }
}
