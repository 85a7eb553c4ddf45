//! A feed of configuration versions: the view as of now and the recent
//! versions that led to it, so a watcher holding an older version gets
//! only what it lacks (or the whole view when it lacks more than the feed
//! remembers). The config service's members feed one from their Raft
//! group; a zone's mirror feeds one from the config service.

use std::collections::VecDeque;
use std::sync::Arc;

use danaus_proto::v1 as pb;
use parking_lot::Mutex;
use tokio::sync::watch;

use crate::state::Version;
use crate::view::ConfigView;

/// Versions a feed remembers for watchers that are behind.
pub const RECENT_VERSIONS: usize = 1024;

/// The view and its recent versions; cheap to clone.
#[derive(Clone)]
pub struct Feed {
    view: watch::Sender<Arc<ConfigView>>,
    recent: Arc<Mutex<VecDeque<Version>>>,
}

impl Feed {
    /// A feed starting at `view`.
    pub fn new(view: ConfigView) -> Self {
        Self { view: watch::Sender::new(Arc::new(view)), recent: Arc::default() }
    }

    /// The view as of now.
    pub fn current(&self) -> Arc<ConfigView> {
        self.view.borrow().clone()
    }

    /// Follows the view.
    pub fn subscribe(&self) -> watch::Receiver<Arc<ConfigView>> {
        self.view.subscribe()
    }

    /// Moves on by `versions` (those already held are skipped). A gap is
    /// refused: the caller must [`replace`](Self::replace) the view.
    pub fn push(&self, versions: &[Version]) -> Result<(), String> {
        let mut view = (*self.current()).clone();
        let mut added = Vec::new();
        for v in versions {
            if v.number <= view.version {
                continue;
            }
            view.apply(v)?;
            added.push(v.clone());
        }
        if added.is_empty() {
            return Ok(());
        }
        let mut recent = self.recent.lock();
        recent.extend(added);
        while recent.len() > RECENT_VERSIONS {
            recent.pop_front();
        }
        self.view.send_replace(Arc::new(view));
        Ok(())
    }

    /// Replaces the view (a snapshot: the versions before it are gone).
    pub fn replace(&self, view: ConfigView) {
        if view.version <= self.current().version && view.version != 0 {
            return;
        }
        self.recent.lock().clear();
        self.view.send_replace(Arc::new(view));
    }

    /// What a watcher holding version `after` needs, if it lacks anything.
    pub fn update_for(&self, after: u64) -> Option<pb::ConfigUpdate> {
        let view = self.current();
        if view.version == after {
            return None;
        }
        let recent = self.recent.lock();
        let by_versions = after > 0 && after < view.version && recent.front().is_some_and(|v| v.number <= after + 1);
        if by_versions {
            let versions_json = recent
                .iter()
                .filter(|v| v.number > after && v.number <= view.version)
                .filter_map(|v| serde_json::to_vec(v).ok())
                .collect();
            return Some(pb::ConfigUpdate { version: view.version, snapshot_json: Vec::new(), versions_json });
        }
        let snapshot_json = serde_json::to_vec(&*view).ok()?;
        Some(pb::ConfigUpdate { version: view.version, snapshot_json, versions_json: Vec::new() })
    }
}

/// Applies an update received from a watch to `feed`.
pub fn apply_update(feed: &Feed, u: &pb::ConfigUpdate) -> Result<(), String> {
    if !u.snapshot_json.is_empty() {
        let view: ConfigView =
            serde_json::from_slice(&u.snapshot_json).map_err(|e| format!("a configuration snapshot: {e}"))?;
        if view.version != u.version {
            return Err(format!("a snapshot of version {} labelled {}", view.version, u.version));
        }
        feed.replace(view);
        return Ok(());
    }
    let versions: Vec<Version> = u
        .versions_json
        .iter()
        .map(|j| serde_json::from_slice(j).map_err(|e| format!("a configuration version: {e}")))
        .collect::<Result<_, _>>()?;
    feed.push(&versions)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::object::{Object, ZoneSpec};
    use crate::state::{ConfigCommand, ConfigState, Origin};
    use danaus_raft::StateMachine as _;

    fn state(versions: usize) -> ConfigState {
        let mut s = ConfigState::default();
        for i in 0..versions {
            let z = ZoneSpec {
                name: "eu".into(),
                locations: vec![format!("l{i}")],
                routers: vec![],
                mixers: vec![],
                index: vec![],
            };
            s.apply(ConfigCommand::Apply {
                tenant: "t".into(),
                objects: vec![Object::Zone(z)],
                expect_version: None,
                origin: Origin { author: "a".into(), time: 0, message: String::new() },
            })
            .unwrap();
        }
        s
    }

    #[test]
    fn a_watcher_behind_gets_the_versions_it_lacks_and_one_far_behind_a_snapshot() {
        let s = state(5);
        let server = Feed::new(ConfigView::default());
        server.push(&s.history()[..2]).unwrap();
        server.push(&s.history()[1..]).unwrap();
        assert_eq!(server.current().version, 5);
        let mirror = Feed::new(ConfigView::default());
        let first = server.update_for(0).unwrap();
        assert!(!first.snapshot_json.is_empty(), "one holding nothing gets the whole view");
        apply_update(&mirror, &first).unwrap();
        assert_eq!(*mirror.current(), s.view());
        assert!(server.update_for(5).is_none());
        let behind = server.update_for(3).unwrap();
        assert_eq!((behind.versions_json.len(), behind.snapshot_json.is_empty()), (2, true));
        // A feed that starts from a snapshot remembers no versions before it.
        let late = Feed::new(ConfigView::default());
        late.replace(s.view());
        assert!(!late.update_for(3).unwrap().snapshot_json.is_empty());
        assert!(mirror.push(&s.history()[4..]).is_ok(), "versions held already are skipped");
        let mut gap = (*mirror.current()).clone();
        gap.version = 2;
        let stale = Feed::new(gap);
        assert!(stale.push(&s.history()[3..]).is_err(), "a gap is refused");
    }
}
