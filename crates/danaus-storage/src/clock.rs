//! Wall-clock seam.

/// Source of the current time in nanoseconds since the Unix epoch.
pub trait Clock: Send + Sync + 'static {
    /// Now, in ns since the epoch.
    fn now(&self) -> i64;
}

/// The system clock (simulated under madsim, which intercepts it).
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> i64 {
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos() as i64).unwrap_or(0)
    }
}
