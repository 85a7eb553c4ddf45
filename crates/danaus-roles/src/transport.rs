//! The transport seam: binding a role's gRPC address and serving on it.
//!
//! In a real process a [`Listener`] is a bound TCP socket (so port 0 picks a
//! free port and [`Listener::local_addr`] tells which) whose connections
//! have Nagle's algorithm off. Under `--cfg madsim` tonic is madsim's
//! simulated transport, which binds when it serves: a simulated host names
//! its port, and the address is what was asked for.

use std::net::SocketAddr;

use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::error::{Error, Result};

/// Concurrent requests a role serves per connection unless told otherwise.
pub const DEFAULT_CONCURRENCY: usize = 256;

/// A gRPC server builder with `per_connection` requests at once.
pub fn server(per_connection: usize) -> tonic::transport::Server {
    tonic::transport::Server::builder().concurrency_limit_per_connection(per_connection)
}

/// A bound gRPC address, not yet serving.
pub struct Listener {
    addr: SocketAddr,
    #[cfg(not(madsim))]
    inner: tokio::net::TcpListener,
}

/// Binds `addr`.
pub async fn bind(addr: SocketAddr) -> Result<Listener> {
    #[cfg(not(madsim))]
    {
        let inner =
            tokio::net::TcpListener::bind(addr).await.map_err(|e| Error::Bind { addr, message: e.to_string() })?;
        let addr = inner.local_addr().map_err(|e| Error::Bind { addr, message: e.to_string() })?;
        Ok(Listener { addr, inner })
    }
    #[cfg(madsim)]
    {
        if addr.port() == 0 {
            return Err(Error::Bind { addr, message: "a simulated host must name its port".into() });
        }
        Ok(Listener { addr })
    }
}

impl Listener {
    /// The bound address.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Serves `router` here until `stop` turns `true`.
    pub fn serve(
        self,
        router: tonic::transport::server::Router,
        mut stop: watch::Receiver<bool>,
    ) -> JoinHandle<Result<()>> {
        let signal = async move {
            let _ = stop.wait_for(|s| *s).await;
        };
        #[cfg(not(madsim))]
        let served = router.serve_with_incoming_shutdown(nodelay(self.inner), signal);
        #[cfg(madsim)]
        let served = router.serve_with_shutdown(self.addr, signal);
        tokio::spawn(async move { served.await.map_err(|e| Error::Serve(e.to_string())) })
    }
}

/// Accepted connections with Nagle's algorithm off: small gRPC replies
/// (a stream's last message, an ack) must not wait for a delayed ACK.
#[cfg(not(madsim))]
pub fn nodelay(
    listener: tokio::net::TcpListener,
) -> impl tokio_stream::Stream<Item = std::io::Result<tokio::net::TcpStream>> {
    use tokio_stream::StreamExt as _;
    tokio_stream::wrappers::TcpListenerStream::new(listener).map(|s| {
        if let Ok(s) = &s {
            let _ = s.set_nodelay(true);
        }
        s
    })
}
