//! Channels to cluster peers, addressed as `host:port`.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use tonic::transport::{Channel, Endpoint};

/// The endpoint of a peer: `host:port` (or a full URL), with a 1 s
/// connect timeout.
pub fn endpoint(addr: &str) -> Result<Endpoint, String> {
    let url = if addr.contains("://") { addr.to_owned() } else { format!("http://{addr}") };
    Ok(Endpoint::from_shared(url)
        .map_err(|e| format!("bad peer address {addr:?}: {e}"))?
        .connect_timeout(Duration::from_secs(1)))
}

/// Lazily connecting channels to peers, one per address, shared by every
/// call to that peer (a channel multiplexes them over HTTP/2).
#[derive(Debug, Default)]
pub struct Channels(Mutex<HashMap<String, Channel>>);

impl Channels {
    /// The channel to `addr`, created on first use.
    pub fn get(&self, addr: &str) -> Result<Channel, String> {
        let mut map = self.0.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(c) = map.get(addr) {
            return Ok(c.clone());
        }
        let c = endpoint(addr)?.connect_lazy();
        map.insert(addr.to_owned(), c.clone());
        Ok(c)
    }
}
