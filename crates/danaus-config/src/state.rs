//! The configuration as the config service's Raft group replicates it.
//!
//! [`ConfigState`] holds every object by [`ObjectKey`] and the history of
//! versions. A change is a [`ConfigCommand`]: an apply of a set of objects
//! or a rollback to an earlier version, each with its author, time and
//! message. Applying is all or nothing: [`ConfigState::plan`] checks every
//! object on its own, against the others of the request and against what
//! is stored (schemas follow the compatibility rules: a metric schema may
//! gain fields, nothing is retyped, removed or re-keyed) and only a request
//! that passes whole makes a version. A request that changes nothing makes
//! none, so applying the same directory twice is one version.
//!
//! Every version records, per object it touched, the object before and
//! after: that is what `config history` shows, what a rollback undoes, and
//! what a zone's mirror receives to catch up from the version it has.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::object::{Kind, Object, ObjectKey};

/// One object's change in a version.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Change {
    /// The object.
    pub key: ObjectKey,
    /// What it was (`None`: it did not exist).
    pub before: Option<Object>,
    /// What it became (`None`: it was deleted).
    pub after: Option<Object>,
}

impl Change {
    /// `created`, `updated` or `deleted`.
    pub fn verb(&self) -> &'static str {
        match (&self.before, &self.after) {
            (None, _) => "created",
            (Some(_), Some(_)) => "updated",
            (Some(_), None) => "deleted",
        }
    }
}

/// A committed version.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Version {
    /// Its number (the first version is 1).
    pub number: u64,
    /// Who made it.
    pub author: String,
    /// When it was proposed, ns since the Unix epoch.
    pub time: i64,
    /// Why.
    pub message: String,
    /// The tenant it changed (empty: only the installation's objects).
    pub tenant: String,
    /// What it changed.
    pub changes: Vec<Change>,
}

/// Who asks for a change, when and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Origin {
    /// The author.
    pub author: String,
    /// When, ns since the Unix epoch (the proposer's clock: applying stays
    /// a pure function of the log).
    pub time: i64,
    /// Why.
    pub message: String,
}

/// A change proposed to the config group.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum ConfigCommand {
    /// Creates or updates `objects` (global kinds regardless of `tenant`).
    Apply {
        /// The tenant the per-tenant objects belong to.
        tenant: String,
        /// The objects.
        objects: Vec<Object>,
        /// Refuse unless the configuration is at this version.
        expect_version: Option<u64>,
        /// Who, when, why.
        origin: Origin,
    },
    /// Makes the tenant's objects (and the installation's) what they were
    /// at version `to`, as a new version. Schemas only grow: one that grew
    /// since stays as it is, and is reported kept.
    Rollback {
        /// The tenant.
        tenant: String,
        /// The version to go back to.
        to: u64,
        /// Who, when, why.
        origin: Origin,
    },
}

/// Why a change was refused; nothing of it was applied.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[error("{}{message}", object.as_ref().map(|o| format!("{o}: ")).unwrap_or_default())]
pub struct Refused {
    /// The object at fault, if one is.
    pub object: Option<ObjectKey>,
    /// What is wrong and what to do.
    pub message: String,
}

impl Refused {
    fn of(key: &ObjectKey, message: impl Into<String>) -> Self {
        Refused { object: Some(key.clone()), message: message.into() }
    }
}

/// What a change did.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Outcome {
    /// The version now current: the new one, or the unchanged current one
    /// when nothing changed.
    pub version: u64,
    /// Whether a version was made.
    pub changed: bool,
    /// Per object, what was done (`created`, `updated`, `deleted`).
    pub changes: Vec<(ObjectKey, String)>,
    /// Objects a rollback left as they are, and why.
    pub kept: Vec<(ObjectKey, String)>,
}

/// The configuration and its history.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ConfigState {
    /// The current version (0: nothing applied yet).
    pub version: u64,
    #[serde(with = "crate::view::pairs")]
    objects: BTreeMap<ObjectKey, Object>,
    history: Vec<Version>,
}

/// A plan's changes and what a rollback kept.
type Plan = (Vec<Change>, Vec<(ObjectKey, String)>);

impl ConfigState {
    /// A state holding `view`'s objects at its version, without history:
    /// what a client checks a change against before proposing it.
    pub fn from_view(view: crate::view::ConfigView) -> Self {
        Self { version: view.version, objects: view.objects, history: Vec::new() }
    }

    /// The whole configuration as of now.
    pub fn view(&self) -> crate::view::ConfigView {
        crate::view::ConfigView { version: self.version, objects: self.objects.clone() }
    }

    /// The object `key`, if it exists.
    pub fn get(&self, key: &ObjectKey) -> Option<&Object> {
        self.objects.get(key)
    }

    /// Every object of `tenant` (and of the installation), in key order.
    pub fn objects_of<'a>(&'a self, tenant: &'a str) -> impl Iterator<Item = (&'a ObjectKey, &'a Object)> + 'a {
        self.objects.iter().filter(move |(k, _)| k.tenant.is_empty() || k.tenant == tenant)
    }

    /// Every object.
    pub fn objects(&self) -> impl Iterator<Item = (&ObjectKey, &Object)> {
        self.objects.iter()
    }

    /// Every version, oldest first.
    pub fn history(&self) -> &[Version] {
        &self.history
    }

    /// The versions after `version`, oldest first.
    pub fn versions_after(&self, version: u64) -> &[Version] {
        let from = self.history.partition_point(|v| v.number <= version);
        &self.history[from..]
    }

    /// The changes applying `objects` for `tenant` would make, or why it
    /// cannot be applied; nothing is changed.
    pub fn plan(&self, tenant: &str, objects: &[Object]) -> Result<Vec<Change>, Refused> {
        let mut next: BTreeMap<ObjectKey, Object> = BTreeMap::new();
        for o in objects {
            let key = o.key(tenant);
            if !o.kind().is_global() && tenant.is_empty() {
                return Err(Refused::of(&key, "names no tenant"));
            }
            let given_before = next.get(&key);
            let current = given_before.or_else(|| self.objects.get(&key));
            let wanted = match (o, current) {
                (Object::MetricSchema(new), Some(Object::MetricSchema(cur))) => {
                    // A name given twice evolves from its first form.
                    match cur.evolve(new).map_err(|e| Refused::of(&key, e.to_string()))? {
                        Some(evolved) => Object::MetricSchema(evolved),
                        None => Object::MetricSchema(cur.clone()),
                    }
                }
                (Object::TargetSchema(new), Some(Object::TargetSchema(cur))) if new != cur => {
                    return Err(Refused::of(
                        &key,
                        "exists with other fields or location; the key of stored series cannot change \
                         (create a target schema with a new name)",
                    ));
                }
                (o, Some(given)) if given_before.is_some() && o != given => {
                    return Err(Refused::of(&key, "is given twice, differently"));
                }
                (o, _) => {
                    o.validate().map_err(|m| Refused::of(&key, m))?;
                    o.clone()
                }
            };
            next.insert(key, wanted);
        }
        self.check_zones(&next)?;
        Ok(next
            .into_iter()
            .filter_map(|(key, after)| {
                let before = self.objects.get(&key).cloned();
                (before.as_ref() != Some(&after)).then_some(Change { key, before, after: Some(after) })
            })
            .collect())
    }

    /// Zones may not claim the same location, and at most one may own the
    /// unclaimed ones.
    fn check_zones(&self, next: &BTreeMap<ObjectKey, Object>) -> Result<(), Refused> {
        let mut zones: BTreeMap<&str, &crate::object::ZoneSpec> = BTreeMap::new();
        for (k, o) in self.objects.iter().chain(next.iter()) {
            if let (Kind::Zone, Object::Zone(z)) = (k.kind, o) {
                zones.insert(&k.name, z);
            }
        }
        let mut claimed: BTreeMap<&str, &str> = BTreeMap::new();
        let mut catch_all: Option<&str> = None;
        for (name, z) in &zones {
            if z.locations.is_empty() {
                if let Some(other) = catch_all {
                    return Err(Refused::of(
                        &ObjectKey { tenant: String::new(), kind: Kind::Zone, name: (*name).to_owned() },
                        format!("lists no locations, as zone {other:?} does: only one zone may own every unclaimed location; list this zone's locations"),
                    ));
                }
                catch_all = Some(name);
            }
            for l in &z.locations {
                if let Some(other) = claimed.insert(l, name) {
                    return Err(Refused::of(
                        &ObjectKey { tenant: String::new(), kind: Kind::Zone, name: (*name).to_owned() },
                        format!("claims location {l:?}, which zone {other:?} claims too"),
                    ));
                }
            }
        }
        Ok(())
    }

    /// What rolling `tenant` back to version `to` would change.
    fn plan_rollback(&self, tenant: &str, to: u64) -> Result<Plan, Refused> {
        if to == 0 || to > self.version {
            return Err(Refused {
                object: None,
                message: format!("there is no version {to} to roll back to (versions are 1 to {})", self.version),
            });
        }
        // The objects as they were at `to`: undo every later change.
        let mut then = self.objects.clone();
        for v in self.history.iter().rev().take_while(|v| v.number > to) {
            for c in v.changes.iter().rev() {
                match &c.before {
                    Some(b) => then.insert(c.key.clone(), b.clone()),
                    None => then.remove(&c.key),
                };
            }
        }
        let mine = |k: &ObjectKey| k.tenant.is_empty() || k.tenant == tenant;
        let mut keys: Vec<&ObjectKey> = self.objects.keys().chain(then.keys()).filter(|k| mine(k)).collect();
        keys.sort();
        keys.dedup();
        let (mut changes, mut kept) = (Vec::new(), Vec::new());
        for key in keys {
            let (now, was) = (self.objects.get(key), then.get(key));
            if now == was {
                continue;
            }
            if matches!(key.kind, Kind::TargetSchema | Kind::MetricSchema) {
                kept.push((
                    key.clone(),
                    "schemas only grow: stored series are keyed by it, so it stays as it is now".to_owned(),
                ));
                continue;
            }
            changes.push(Change { key: key.clone(), before: now.cloned(), after: was.cloned() });
        }
        Ok((changes, kept))
    }

    fn commit(
        &mut self,
        tenant: String,
        origin: Origin,
        changes: Vec<Change>,
        kept: Vec<(ObjectKey, String)>,
    ) -> Outcome {
        let summary: Vec<(ObjectKey, String)> = changes.iter().map(|c| (c.key.clone(), c.verb().to_owned())).collect();
        if changes.is_empty() {
            return Outcome { version: self.version, changed: false, changes: summary, kept };
        }
        self.version += 1;
        for c in &changes {
            match &c.after {
                Some(o) => self.objects.insert(c.key.clone(), o.clone()),
                None => self.objects.remove(&c.key),
            };
        }
        self.history.push(Version {
            number: self.version,
            author: origin.author,
            time: origin.time,
            message: origin.message,
            tenant,
            changes,
        });
        Outcome { version: self.version, changed: true, changes: summary, kept }
    }
}

impl danaus_raft::StateMachine for ConfigState {
    type Command = ConfigCommand;
    type Reply = Result<Outcome, Refused>;

    fn apply(&mut self, cmd: ConfigCommand) -> Self::Reply {
        match cmd {
            ConfigCommand::Apply { tenant, objects, expect_version, origin } => {
                if let Some(v) = expect_version.filter(|v| *v != self.version) {
                    return Err(Refused {
                        object: None,
                        message: format!(
                            "the configuration changed since it was read (version {v}, now {}): diff again and apply",
                            self.version
                        ),
                    });
                }
                let changes = self.plan(&tenant, &objects)?;
                Ok(self.commit(tenant, origin, changes, Vec::new()))
            }
            ConfigCommand::Rollback { tenant, to, origin } => {
                let (changes, kept) = self.plan_rollback(&tenant, to)?;
                Ok(self.commit(tenant, origin, changes, kept))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::object::ZoneSpec;
    use danaus_model::{FieldDef, FieldType, MetricKind, MetricSchema, ScalarType, TargetSchema, ValueType};
    use danaus_raft::StateMachine as _;

    fn origin(msg: &str) -> Origin {
        Origin { author: "alice".into(), time: 1_700_000_000_000_000_000, message: msg.into() }
    }

    fn target() -> Object {
        Object::TargetSchema(TargetSchema {
            name: "Host".into(),
            fields: vec![FieldDef::new("zone", FieldType::String), FieldDef::new("host", FieldType::String)],
            location_field: "zone".into(),
        })
    }

    fn metric(fields: &[&str]) -> Object {
        Object::MetricSchema(MetricSchema {
            name: "/cpu".into(),
            fields: fields.iter().map(|f| FieldDef::new(*f, FieldType::String)).collect(),
            value_type: ValueType::Scalar(ScalarType::Double),
            kind: MetricKind::Gauge,
            unit: "1".into(),
            description: String::new(),
            collection: None,
        })
    }

    fn zone(name: &str, locations: &[&str]) -> Object {
        Object::Zone(ZoneSpec {
            name: name.into(),
            locations: locations.iter().map(|s| s.to_string()).collect(),
            routers: vec![format!("{name}:7070")],
            mixers: vec![],
            index: vec![],
        })
    }

    fn apply(s: &mut ConfigState, objects: Vec<Object>) -> Result<Outcome, Refused> {
        s.apply(ConfigCommand::Apply { tenant: "acme".into(), objects, expect_version: None, origin: origin("m") })
    }

    #[test]
    fn applying_the_same_objects_twice_makes_one_version() {
        let mut s = ConfigState::default();
        let first = apply(&mut s, vec![target(), metric(&["cpu"]), zone("eu", &[])]).unwrap();
        assert_eq!((first.version, first.changed, first.changes.len()), (1, true, 3));
        let again = apply(&mut s, vec![target(), metric(&["cpu"]), zone("eu", &[])]).unwrap();
        assert_eq!((again.version, again.changed), (1, false));
        assert_eq!(s.history().len(), 1);
        assert_eq!(s.history()[0].author, "alice");
    }

    #[test]
    fn a_request_with_one_bad_object_changes_nothing() {
        let mut s = ConfigState::default();
        apply(&mut s, vec![metric(&["cpu"])]).unwrap();
        // The metric loses a field: refused, and the zone beside it is not applied.
        let e = apply(&mut s, vec![zone("eu", &[]), metric(&[])]).unwrap_err();
        assert_eq!(e.object.as_ref().map(|k| k.kind), Some(Kind::MetricSchema));
        assert!(e.to_string().contains("/cpu"), "{e}");
        assert_eq!(s.version, 1);
        assert!(s.objects().all(|(k, _)| k.kind != Kind::Zone));
    }

    #[test]
    fn metric_schemas_grow_and_target_schemas_never_change_key() {
        let mut s = ConfigState::default();
        apply(&mut s, vec![target(), metric(&["cpu"])]).unwrap();
        let grown = apply(&mut s, vec![metric(&["cpu", "mode"])]).unwrap();
        assert_eq!(grown.changes[0].1, "updated");
        let Some(Object::MetricSchema(m)) = s.get(&metric(&[]).key("acme")) else { panic!() };
        assert!(m.fields[1].added, "a field appended later is marked added");
        let mut other = target();
        if let Object::TargetSchema(t) = &mut other {
            t.location_field = "host".into();
        }
        let e = apply(&mut s, vec![other]).unwrap_err();
        assert!(e.message.contains("new name"), "{e}");
    }

    #[test]
    fn zones_cannot_claim_one_location_twice() {
        let mut s = ConfigState::default();
        apply(&mut s, vec![zone("eu", &["eu-*"]), zone("us", &[])]).unwrap();
        let e = apply(&mut s, vec![zone("eu2", &["eu-*"])]).unwrap_err();
        assert!(e.message.contains("\"eu-*\""), "{e}");
        let e = apply(&mut s, vec![zone("ap", &[])]).unwrap_err();
        assert!(e.message.contains("only one zone"), "{e}");
    }

    #[test]
    fn a_rollback_is_a_new_version_and_keeps_grown_schemas() {
        let mut s = ConfigState::default();
        apply(&mut s, vec![zone("eu", &["eu"]), metric(&["cpu"])]).unwrap();
        apply(&mut s, vec![zone("eu", &["eu", "ch"]), zone("us", &["us"]), metric(&["cpu", "mode"])]).unwrap();
        let out = s
            .apply(ConfigCommand::Rollback { tenant: "acme".into(), to: 1, origin: origin("undo the US launch") })
            .unwrap();
        assert_eq!(out.version, 3);
        let verbs: Vec<(String, String)> = out.changes.iter().map(|(k, v)| (k.name.clone(), v.clone())).collect();
        assert_eq!(verbs, vec![("eu".to_owned(), "updated".to_owned()), ("us".to_owned(), "deleted".to_owned())]);
        assert_eq!(out.kept.len(), 1, "the grown metric schema stays: {:?}", out.kept);
        let Some(Object::Zone(eu)) = s.get(&zone("eu", &[]).key("")) else { panic!() };
        assert_eq!(eu.locations, vec!["eu".to_owned()]);
        assert_eq!(s.history()[2].message, "undo the US launch");
        assert!(s.apply(ConfigCommand::Rollback { tenant: "acme".into(), to: 9, origin: origin("") }).is_err());
    }

    #[test]
    fn a_stale_expected_version_is_refused() {
        let mut s = ConfigState::default();
        apply(&mut s, vec![zone("eu", &[])]).unwrap();
        let e = s
            .apply(ConfigCommand::Apply {
                tenant: "acme".into(),
                objects: vec![zone("eu", &["x"])],
                expect_version: Some(0),
                origin: origin(""),
            })
            .unwrap_err();
        assert!(e.message.contains("diff again"), "{e}");
    }

    #[test]
    fn versions_after_gives_what_a_mirror_lacks() {
        let mut s = ConfigState::default();
        for i in 0..4 {
            apply(&mut s, vec![zone("eu", &[&format!("l{i}")])]).unwrap();
        }
        let after: Vec<u64> = s.versions_after(2).iter().map(|v| v.number).collect();
        assert_eq!(after, vec![3, 4]);
        assert!(s.versions_after(4).is_empty());
    }
}
