//! A copy of the whole configuration at one version: what the config
//! service streams to zones' mirrors, what a mirror keeps on its disk, and
//! what a zone's roles read schemas and zones from. It moves forward one
//! committed version at a time ([`ConfigView::apply`]) or by a snapshot.

use std::collections::BTreeMap;

use danaus_model::{MetricSchema, TargetSchema};
use danaus_rules::file::GroupSpec;
use serde::{Deserialize, Serialize};

use crate::object::{Kind, Object, ObjectKey, ZoneSpec};
use crate::state::Version;

/// The configuration at `version`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ConfigView {
    /// The version it is (0: nothing yet).
    pub version: u64,
    /// Every object.
    #[serde(with = "pairs")]
    pub objects: BTreeMap<ObjectKey, Object>,
}

impl ConfigView {
    /// Moves to the next version. Refuses one that is not the next, so a
    /// view never skips a change.
    pub fn apply(&mut self, v: &Version) -> Result<(), String> {
        if v.number != self.version + 1 {
            return Err(format!("version {} does not follow {}", v.number, self.version));
        }
        for c in &v.changes {
            match &c.after {
                Some(o) => self.objects.insert(c.key.clone(), o.clone()),
                None => self.objects.remove(&c.key),
            };
        }
        self.version = v.number;
        Ok(())
    }

    /// The target schema `name` of `tenant`.
    pub fn target_schema(&self, tenant: &str, name: &str) -> Option<&TargetSchema> {
        match self.objects.get(&key(tenant, Kind::TargetSchema, name))? {
            Object::TargetSchema(s) => Some(s),
            _ => None,
        }
    }

    /// The metric schema `name` of `tenant`.
    pub fn metric_schema(&self, tenant: &str, name: &str) -> Option<&MetricSchema> {
        match self.objects.get(&key(tenant, Kind::MetricSchema, name))? {
            Object::MetricSchema(s) => Some(s),
            _ => None,
        }
    }

    /// The rule groups of `tenant`, by name.
    pub fn rule_groups<'a>(&'a self, tenant: &'a str) -> impl Iterator<Item = &'a GroupSpec> + 'a {
        self.objects.iter().filter(move |(k, _)| k.tenant == tenant).filter_map(|(_, o)| match o {
            Object::RuleGroup(g) => Some(g),
            _ => None,
        })
    }

    /// The installation's zones, by name.
    pub fn zones(&self) -> impl Iterator<Item = &ZoneSpec> {
        self.objects.values().filter_map(|o| match o {
            Object::Zone(z) => Some(z),
            _ => None,
        })
    }

    /// The objects of `tenant` (and the installation's).
    pub fn objects_of<'a>(&'a self, tenant: &'a str) -> impl Iterator<Item = &'a Object> + 'a {
        self.objects.iter().filter(move |(k, _)| k.tenant.is_empty() || k.tenant == tenant).map(|(_, o)| o)
    }
}

fn key(tenant: &str, kind: Kind, name: &str) -> ObjectKey {
    ObjectKey { tenant: if kind.is_global() { String::new() } else { tenant.to_owned() }, kind, name: name.to_owned() }
}

/// A map keyed by [`ObjectKey`] as a list of pairs (JSON keys are strings).
pub(crate) mod pairs {
    use std::collections::BTreeMap;

    use serde::{Deserialize, Deserializer, Serializer};

    use crate::object::{Object, ObjectKey};

    pub fn serialize<S: Serializer>(m: &BTreeMap<ObjectKey, Object>, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(m.iter())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<BTreeMap<ObjectKey, Object>, D::Error> {
        let v: Vec<(ObjectKey, Object)> = Vec::deserialize(d)?;
        Ok(v.into_iter().collect())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::state::{ConfigCommand, ConfigState, Origin};
    use danaus_raft::StateMachine as _;

    #[test]
    fn a_view_follows_the_versions_and_round_trips_as_json() {
        let mut s = ConfigState::default();
        let mut view = ConfigView::default();
        for locs in [vec!["eu"], vec!["eu", "ch"]] {
            let z = Object::Zone(ZoneSpec {
                name: "eu".into(),
                locations: locs.into_iter().map(String::from).collect(),
                routers: vec!["r:1".into()],
                mixers: vec![],
                index: vec![],
            });
            s.apply(ConfigCommand::Apply {
                tenant: "acme".into(),
                objects: vec![z],
                expect_version: None,
                origin: Origin { author: "a".into(), time: 1, message: String::new() },
            })
            .unwrap();
        }
        for v in s.history() {
            view.apply(v).unwrap();
        }
        assert_eq!(view, s.view());
        assert!(view.apply(&s.history()[0]).is_err(), "a view never goes back or skips");
        let json = serde_json::to_vec(&view).unwrap();
        assert_eq!(serde_json::from_slice::<ConfigView>(&json).unwrap(), view);
        let state_json = serde_json::to_vec(&s).unwrap();
        assert_eq!(serde_json::from_slice::<ConfigState>(&state_json).unwrap(), s, "the Raft snapshot round trips");
        assert_eq!(view.zones().next().unwrap().locations.len(), 2);
    }
}
