//! Running blocking storage calls from async code.

/// Runs `f` on tokio's blocking pool so a disk call never stalls an async
/// worker. Under the simulator (`cfg(madsim)`) storage is in memory and
/// time is virtual, so `f` runs inline and stays deterministic.
pub async fn run_blocking<T, F>(f: F) -> std::io::Result<T>
where
    T: Send + 'static,
    F: FnOnce() -> T + Send + 'static,
{
    #[cfg(madsim)]
    {
        Ok(f())
    }
    #[cfg(not(madsim))]
    {
        tokio::task::spawn_blocking(f)
            .await
            .map_err(|e| std::io::Error::other(format!("blocking storage task failed: {e}")))
    }
}
