//! The zone table: the range assigner's replicated state.
//!
//! The target-string space is cut into contiguous [`Range`]s that cover it
//! exactly (the first starts at the empty string, each ends where the next
//! starts, the last is unbounded). Each range lists its replica leaves: a
//! `Ready` replica holds the range's whole history; a `Joining` one
//! receives every write (dual write) while its history is copied in.
//! A `Lagging` replica missed writes that were acknowledged without it (a
//! router demoted it because it could not reach it): it is not read and
//! its acks are not waited for, until the assigner has it rejoin (it
//! becomes `Joining` again and gets the history copied in).
//! Every change bumps the table's `version`; each range records the
//! version of its last change (`changed_at`), which is how leaves fence
//! writes routed by an older map (see [`ZoneTable::check_write`]).
//!
//! Each range also records the version in which a ready replica last left
//! its read set (`read_set_shrunk_at`: demoted, or removed after a move).
//! A reader holding an older table may still read that replica, which
//! misses writes made without it; so routers hold back the acknowledgement
//! of such writes for [`READ_CONFIRM_WINDOW`] after they first see the
//! change, and mixers call an answer complete only when their table was
//! confirmed current (a linearizable read of the version, sent) within that
//! window. Together: an acknowledged write is never missing from a replica
//! a complete answer read.
//!
//! The table also holds the zone's schemas until the global config layer
//! does: routers need target schemas to compute target strings, leaves
//! mirror them to validate.

use std::collections::BTreeMap;
use std::ops::Bound;

use danaus_model::{MetricSchema, TargetSchema};
use rustc_hash::FxHashMap;
use serde::{Deserialize, Serialize};

/// A table's metric schema lookups for one write, memoized: a write names
/// few metrics many times, and the table keeps schemas in ordered maps
/// (a lookup compares names all the way down).
///
/// A write usually shares a few copies of each name, so a name is found
/// by its address and length (cheap to hash, nothing to compare) before
/// its text. Names are borrowed for `'a`, so no address is reused for
/// other text while it is a key.
pub struct MetricLookup<'a> {
    table: &'a ZoneTable,
    tenant: &'a str,
    memo: FxHashMap<&'a str, Option<&'a MetricSchema>>,
    by_address: FxHashMap<(usize, usize), Option<&'a MetricSchema>>,
}

impl<'a> MetricLookup<'a> {
    /// The metric schema `name`, as [`ZoneTable::metric_schema`].
    pub fn get(&mut self, name: &'a str) -> Option<&'a MetricSchema> {
        let address = (name.as_ptr() as usize, name.len());
        if let Some(s) = self.by_address.get(&address) {
            return *s;
        }
        let (table, tenant) = (self.table, self.tenant);
        let s = *self.memo.entry(name).or_insert_with(|| table.metric_schema(tenant, name));
        self.by_address.insert(address, s);
        s
    }
}

/// Identifies a range for its lifetime (a split retires the id).
pub type RangeId = u64;

/// A replica's role in its range.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ReplicaState {
    /// Receives writes; its history is being copied in. Not read.
    Joining,
    /// Holds the range's whole history: reads may go to it.
    Ready,
    /// Missed acknowledged writes: not read until repaired.
    Lagging,
}

/// One leaf holding a range.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Replica {
    /// The leaf's name.
    pub leaf: String,
    /// Its role.
    pub state: ReplicaState,
}

/// A contiguous range of target strings, `[start, end)`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Range {
    /// Its id.
    pub id: RangeId,
    /// First target string in it.
    pub start: Vec<u8>,
    /// First target string past it; `None` for the last range.
    pub end: Option<Vec<u8>>,
    /// Leaves holding it.
    pub replicas: Vec<Replica>,
    /// Table version of its last change (bounds or replicas).
    pub changed_at: u64,
    /// Table version in which a ready replica last left the range's read
    /// set (demoted to lagging or removed); 0 if none ever did. Split
    /// ranges keep their parent's.
    #[serde(default)]
    pub read_set_shrunk_at: u64,
}

/// How long a table may be trusted after a linearizable read confirmed it
/// current (counted from when that read was sent), and how long a router
/// waits after first seeing a range's read set shrink before it
/// acknowledges writes the removed replica did not take.
pub const READ_CONFIRM_WINDOW: std::time::Duration = std::time::Duration::from_secs(2);

impl Range {
    /// Whether `target` lies in the range.
    pub fn contains(&self, target: &[u8]) -> bool {
        target >= self.start.as_slice() && self.end.as_deref().is_none_or(|e| target < e)
    }

    /// The replica on `leaf`.
    pub fn replica(&self, leaf: &str) -> Option<&Replica> {
        self.replicas.iter().find(|r| r.leaf == leaf)
    }

    /// Leaves holding the whole history.
    pub fn ready(&self) -> impl Iterator<Item = &str> {
        self.replicas.iter().filter(|r| r.state == ReplicaState::Ready).map(|r| r.leaf.as_str())
    }

    /// Printable bounds.
    pub fn describe(&self) -> String {
        format!(
            "range {} [{}, {})",
            self.id,
            escape(&self.start),
            self.end.as_deref().map_or_else(|| "∞".to_owned(), escape)
        )
    }
}

/// Bytes as text with non-printables escaped.
pub fn escape(b: &[u8]) -> String {
    b.iter().flat_map(|c| std::ascii::escape_default(*c)).map(char::from).collect()
}

/// A leaf of the zone.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LeafEntry {
    /// Where routers and mixers reach it.
    pub addr: String,
    /// Whether new replicas may be placed on it (`false` while draining).
    pub accepting: bool,
}

/// A tenant's schemas.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TenantSchemas {
    /// Target schemas by name.
    pub targets: BTreeMap<String, TargetSchema>,
    /// Metric schemas by name.
    pub metrics: BTreeMap<String, MetricSchema>,
}

/// The zone table.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ZoneTable {
    /// Bumped by every change.
    pub version: u64,
    /// Replicas per range the assigner aims for (0 until initialised).
    pub replication: u32,
    /// The next range id to hand out.
    pub next_range_id: RangeId,
    /// Ranges by start (a list in JSON, whose map keys must be strings).
    #[serde(with = "ranges_as_list")]
    pub ranges: BTreeMap<Vec<u8>, Range>,
    /// Leaves by name.
    pub leaves: BTreeMap<String, LeafEntry>,
    /// Schemas by tenant: the zone's replicated copy of the global
    /// configuration's (see [`ZoneCommand::SyncConfig`]), so routers and
    /// leaves fence writes by one version and the zone keeps its schemas
    /// while the global layer is away.
    pub schemas: BTreeMap<String, TenantSchemas>,
    /// The configuration version the schemas are (0: none synced yet).
    #[serde(default)]
    pub config_version: u64,
}

mod ranges_as_list {
    use std::collections::BTreeMap;

    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    use super::Range;

    pub fn serialize<S: Serializer>(m: &BTreeMap<Vec<u8>, Range>, s: S) -> Result<S::Ok, S::Error> {
        let list: Vec<&Range> = m.values().collect();
        list.serialize(s)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<BTreeMap<Vec<u8>, Range>, D::Error> {
        let list = Vec::<Range>::deserialize(d)?;
        Ok(list.into_iter().map(|r| (r.start.clone(), r)).collect())
    }
}

/// A change of the table, proposed through Raft.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum ZoneCommand {
    /// Sets the replication factor; the first time, creates the one range
    /// covering everything.
    Init {
        /// Replicas per range.
        replication: u32,
    },
    /// Adds a leaf, or changes its address.
    RegisterLeaf {
        /// Its name.
        leaf: String,
        /// Its address.
        addr: String,
    },
    /// Stops (or resumes) placing replicas on a leaf.
    SetAccepting {
        /// The leaf.
        leaf: String,
        /// Whether it accepts.
        accepting: bool,
    },
    /// Creates or updates a target schema.
    ApplyTargetSchema {
        /// Owner.
        tenant: String,
        /// The schema.
        schema: TargetSchema,
    },
    /// Creates or updates a metric schema.
    ApplyMetricSchema {
        /// Owner.
        tenant: String,
        /// The schema.
        schema: MetricSchema,
    },
    /// Brings the schemas to configuration version `version` (a no-op
    /// when the table holds it or a newer one): `schemas` are those that
    /// differ, each as the configuration has it. Refused whole when one
    /// would shrink, retype or re-key a schema the table holds.
    SyncConfig {
        /// The configuration version.
        version: u64,
        /// Per tenant, the schemas that changed.
        schemas: BTreeMap<String, TenantSchemas>,
    },
    /// Creates or updates several schemas at once (one table version): all
    /// of them, or none when one is refused.
    ApplySchemas {
        /// Owner.
        tenant: String,
        /// Target schemas.
        targets: Vec<TargetSchema>,
        /// Metric schemas (new ones, or fields added to stored ones; see
        /// [`MetricSchema::evolve`]).
        metrics: Vec<MetricSchema>,
    },
    /// Adds a replica on `leaf`: `Joining`, or `Ready` when the range has
    /// no replica yet (nothing to copy).
    AddReplica {
        /// The range.
        range: RangeId,
        /// The leaf.
        leaf: String,
    },
    /// Marks a joining replica ready (its history copy finished).
    PromoteReplica {
        /// The range.
        range: RangeId,
        /// The leaf.
        leaf: String,
    },
    /// Removes a replica.
    RemoveReplica {
        /// The range.
        range: RangeId,
        /// The leaf.
        leaf: String,
    },
    /// Marks a ready replica lagging: a router acknowledged writes it does
    /// not hold. Refused for the range's last ready replica.
    Demote {
        /// The range.
        range: RangeId,
        /// The leaf.
        leaf: String,
    },
    /// Makes a lagging replica join again, to be repaired by a copy.
    Rejoin {
        /// The range.
        range: RangeId,
        /// The leaf.
        leaf: String,
    },
    /// Cuts a range in two at `at` (which must lie strictly inside it);
    /// both halves keep its replicas.
    Split {
        /// The range.
        range: RangeId,
        /// Where the second half starts.
        at: Vec<u8>,
    },
}

/// What applying a [`ZoneCommand`] answers: the new table version, or why
/// the command was refused.
pub type ZoneReply = Result<u64, String>;

/// Why a leaf refuses a routed write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fence {
    /// The router routed by a table older than the range's last change.
    Stale {
        /// The range's last change.
        changed_at: u64,
    },
    /// This leaf does not hold the range.
    NotReplica,
    /// The table has no range for it (not initialised).
    NoRange,
}

impl ZoneTable {
    /// The range holding `target`.
    pub fn range_for(&self, target: &[u8]) -> Option<&Range> {
        self.ranges
            .range::<[u8], _>((Bound::Unbounded, Bound::Included(target)))
            .next_back()
            .map(|(_, r)| r)
            .filter(|r| r.contains(target))
    }

    /// A range by id.
    pub fn range(&self, id: RangeId) -> Option<&Range> {
        self.ranges.values().find(|r| r.id == id)
    }

    fn range_mut(&mut self, id: RangeId) -> Result<&mut Range, String> {
        self.ranges.values_mut().find(|r| r.id == id).ok_or_else(|| format!("no range {id}"))
    }

    /// Whether `leaf` may store a write for `target` that a router routed
    /// by table `routed_version`: the leaf must hold the range, and the
    /// range must not have changed since that version.
    pub fn check_write(&self, leaf: &str, target: &[u8], routed_version: u64) -> Result<(), Fence> {
        let r = self.range_for(target).ok_or(Fence::NoRange)?;
        if r.changed_at > routed_version {
            return Err(Fence::Stale { changed_at: r.changed_at });
        }
        if r.replica(leaf).is_none() {
            return Err(Fence::NotReplica);
        }
        Ok(())
    }

    /// Ranges `leaf` holds, with its role in each.
    pub fn ranges_of<'a>(&'a self, leaf: &'a str) -> impl Iterator<Item = (&'a Range, ReplicaState)> + 'a {
        self.ranges.values().filter_map(move |r| r.replica(leaf).map(|rep| (r, rep.state)))
    }

    /// A target schema.
    pub fn target_schema(&self, tenant: &str, name: &str) -> Option<&TargetSchema> {
        self.schemas.get(tenant)?.targets.get(name)
    }

    /// A metric schema.
    pub fn metric_schema(&self, tenant: &str, name: &str) -> Option<&MetricSchema> {
        self.schemas.get(tenant)?.metrics.get(name)
    }

    /// A memo of this table's metric schema lookups for one write of
    /// `tenant`'s.
    pub fn metric_lookup<'a>(&'a self, tenant: &'a str) -> MetricLookup<'a> {
        MetricLookup { table: self, tenant, memo: FxHashMap::default(), by_address: FxHashMap::default() }
    }

    /// What applying `targets` and `metrics` over the stored schemas of
    /// `tenant` stores: the schemas that change, or why one cannot.
    pub fn schema_changes(
        &self,
        tenant: &str,
        targets: &[TargetSchema],
        metrics: &[MetricSchema],
    ) -> Result<(Vec<TargetSchema>, Vec<MetricSchema>), String> {
        let mut new_targets: Vec<TargetSchema> = Vec::new();
        for t in targets {
            t.validate().map_err(|e| e.to_string())?;
            let cur = new_targets.iter().find(|n| n.name == t.name).or_else(|| self.target_schema(tenant, &t.name));
            match cur {
                Some(cur) if cur == t => {}
                Some(_) => return Err(format!(
                    "target schema {:?} already exists with different fields or location; changing the key of existing series is not supported (create a schema with a new name)",
                    t.name
                )),
                None => new_targets.push(t.clone()),
            }
        }
        let mut new_metrics: Vec<MetricSchema> = Vec::new();
        for m in metrics {
            // A name given twice in one batch evolves from its first form.
            let pos = new_metrics.iter().position(|n| n.name == m.name);
            let cur = pos.map(|i| &new_metrics[i]).or_else(|| self.metric_schema(tenant, &m.name));
            // `evolve` validates what it makes (the added marks given are
            // its to set).
            let next = match cur {
                Some(cur) => cur.evolve(m).map_err(|e| e.to_string())?,
                None => {
                    m.validate().map_err(|e| e.to_string())?;
                    Some(m.clone())
                }
            };
            match (next, pos) {
                (Some(n), Some(i)) => new_metrics[i] = n,
                (Some(n), None) => new_metrics.push(n),
                (None, _) => {}
            }
        }
        Ok((new_targets, new_metrics))
    }

    fn sync_config(&mut self, version: u64, schemas: BTreeMap<String, TenantSchemas>) -> Result<bool, String> {
        if version <= self.config_version {
            return Ok(false);
        }
        for (tenant, s) in &schemas {
            for t in s.targets.values() {
                if self.target_schema(tenant, &t.name).is_some_and(|cur| cur != t) {
                    return Err(format!(
                        "configuration version {version} changes the key of target schema {:?} (tenant {tenant:?})",
                        t.name
                    ));
                }
            }
            for m in s.metrics.values() {
                if let Some(cur) = self.metric_schema(tenant, &m.name) {
                    let grows = cur.evolve(m).is_ok() && m.fields.len() >= cur.fields.len();
                    if !grows {
                        return Err(format!(
                            "configuration version {version} would shrink or retype metric schema {:?} (tenant {tenant:?})",
                            m.name
                        ));
                    }
                }
            }
        }
        for (tenant, s) in schemas {
            let t = self.schemas.entry(tenant).or_default();
            t.targets.extend(s.targets);
            t.metrics.extend(s.metrics);
        }
        self.config_version = version;
        Ok(true)
    }

    fn apply_schemas(
        &mut self,
        tenant: String,
        targets: Vec<TargetSchema>,
        metrics: Vec<MetricSchema>,
    ) -> Result<bool, String> {
        let (targets, metrics) = self.schema_changes(&tenant, &targets, &metrics)?;
        if targets.is_empty() && metrics.is_empty() {
            return Ok(false);
        }
        let t = self.schemas.entry(tenant).or_default();
        for s in targets {
            t.targets.insert(s.name.clone(), s);
        }
        for s in metrics {
            t.metrics.insert(s.name.clone(), s);
        }
        Ok(true)
    }

    fn apply_cmd(&mut self, cmd: ZoneCommand) -> Result<bool, String> {
        match cmd {
            ZoneCommand::Init { replication } => {
                if replication == 0 {
                    return Err("replication must be at least 1".into());
                }
                let changed = self.replication != replication || self.ranges.is_empty();
                self.replication = replication;
                if self.ranges.is_empty() {
                    let id = self.next_id();
                    let changed_at = self.version + 1;
                    self.ranges.insert(
                        Vec::new(),
                        Range {
                            id,
                            start: Vec::new(),
                            end: None,
                            replicas: Vec::new(),
                            changed_at,
                            read_set_shrunk_at: 0,
                        },
                    );
                }
                Ok(changed)
            }
            ZoneCommand::RegisterLeaf { leaf, addr } => {
                if leaf.is_empty() || addr.is_empty() {
                    return Err("a leaf needs a name and an address".into());
                }
                match self.leaves.get_mut(&leaf) {
                    Some(e) if e.addr == addr => Ok(false),
                    Some(e) => {
                        e.addr = addr;
                        Ok(true)
                    }
                    None => {
                        self.leaves.insert(leaf, LeafEntry { addr, accepting: true });
                        Ok(true)
                    }
                }
            }
            ZoneCommand::SetAccepting { leaf, accepting } => {
                let e = self.leaves.get_mut(&leaf).ok_or_else(|| format!("no leaf {leaf:?}"))?;
                let changed = e.accepting != accepting;
                e.accepting = accepting;
                Ok(changed)
            }
            ZoneCommand::ApplyTargetSchema { tenant, schema } => self.apply_schemas(tenant, vec![schema], Vec::new()),
            ZoneCommand::ApplyMetricSchema { tenant, schema } => self.apply_schemas(tenant, Vec::new(), vec![schema]),
            ZoneCommand::ApplySchemas { tenant, targets, metrics } => self.apply_schemas(tenant, targets, metrics),
            ZoneCommand::SyncConfig { version, schemas } => self.sync_config(version, schemas),
            ZoneCommand::AddReplica { range, leaf } => {
                if !self.leaves.contains_key(&leaf) {
                    return Err(format!("no leaf {leaf:?}"));
                }
                let r = self.range_mut(range)?;
                if r.replica(&leaf).is_some() {
                    return Ok(false);
                }
                let state = if r.replicas.is_empty() { ReplicaState::Ready } else { ReplicaState::Joining };
                r.replicas.push(Replica { leaf, state });
                Ok(true)
            }
            ZoneCommand::PromoteReplica { range, leaf } => {
                let r = self.range_mut(range)?;
                let rep = r
                    .replicas
                    .iter_mut()
                    .find(|x| x.leaf == leaf)
                    .ok_or_else(|| format!("{leaf:?} holds no replica of range {range}"))?;
                let changed = rep.state != ReplicaState::Ready;
                rep.state = ReplicaState::Ready;
                Ok(changed)
            }
            ZoneCommand::RemoveReplica { range, leaf } => {
                let next = self.version + 1;
                let r = self.range_mut(range)?;
                let before = r.replicas.len();
                let removing_ready = r.replica(&leaf).is_some_and(|x| x.state == ReplicaState::Ready);
                if removing_ready && r.ready().count() == 1 {
                    return Err(format!("{leaf:?} holds the last ready replica of range {range}; add another first"));
                }
                r.replicas.retain(|x| x.leaf != leaf);
                if removing_ready {
                    r.read_set_shrunk_at = next;
                }
                Ok(r.replicas.len() != before)
            }
            ZoneCommand::Demote { range, leaf } => {
                let next = self.version + 1;
                let r = self.range_mut(range)?;
                let ready = r.ready().count();
                let rep = r
                    .replicas
                    .iter_mut()
                    .find(|x| x.leaf == leaf)
                    .ok_or_else(|| format!("{leaf:?} holds no replica of range {range}"))?;
                match rep.state {
                    ReplicaState::Lagging => Ok(false),
                    ReplicaState::Joining => {
                        Err(format!("{leaf:?} is joining range {range}; only ready replicas are demoted"))
                    }
                    ReplicaState::Ready if ready <= 1 => {
                        Err(format!("{leaf:?} holds the last ready replica of range {range}; it cannot be demoted"))
                    }
                    ReplicaState::Ready => {
                        rep.state = ReplicaState::Lagging;
                        r.read_set_shrunk_at = next;
                        Ok(true)
                    }
                }
            }
            ZoneCommand::Rejoin { range, leaf } => {
                let r = self.range_mut(range)?;
                let rep = r
                    .replicas
                    .iter_mut()
                    .find(|x| x.leaf == leaf)
                    .ok_or_else(|| format!("{leaf:?} holds no replica of range {range}"))?;
                match rep.state {
                    ReplicaState::Lagging => {
                        rep.state = ReplicaState::Joining;
                        Ok(true)
                    }
                    _ => Ok(false),
                }
            }
            ZoneCommand::Split { range, at } => {
                let r = self.range(range).ok_or_else(|| format!("no range {range}"))?.clone();
                if at <= r.start || r.end.as_ref().is_some_and(|e| at >= *e) {
                    return Err(format!("split point {} is not inside {}", escape(&at), r.describe()));
                }
                self.ranges.remove(&r.start);
                let (a, b) = (self.next_id(), self.next_id());
                let v = self.version + 1;
                let left = Range {
                    id: a,
                    start: r.start.clone(),
                    end: Some(at.clone()),
                    replicas: r.replicas.clone(),
                    changed_at: v,
                    read_set_shrunk_at: r.read_set_shrunk_at,
                };
                let right = Range {
                    id: b,
                    start: at.clone(),
                    end: r.end,
                    replicas: r.replicas,
                    changed_at: v,
                    read_set_shrunk_at: r.read_set_shrunk_at,
                };
                self.ranges.insert(left.start.clone(), left);
                self.ranges.insert(at, right);
                Ok(true)
            }
        }
    }

    fn next_id(&mut self) -> RangeId {
        self.next_range_id += 1;
        self.next_range_id
    }

    /// Ids of ranges a command touches (their `changed_at` moves).
    fn touched(cmd: &ZoneCommand) -> Option<RangeId> {
        match cmd {
            ZoneCommand::AddReplica { range, .. }
            | ZoneCommand::PromoteReplica { range, .. }
            | ZoneCommand::RemoveReplica { range, .. }
            | ZoneCommand::Demote { range, .. }
            | ZoneCommand::Rejoin { range, .. } => Some(*range),
            _ => None,
        }
    }
}

impl danaus_raft::StateMachine for ZoneTable {
    type Command = ZoneCommand;
    type Reply = ZoneReply;

    fn apply(&mut self, cmd: ZoneCommand) -> ZoneReply {
        let touched = Self::touched(&cmd);
        match self.apply_cmd(cmd) {
            Ok(true) => {
                self.version += 1;
                if let Some(id) = touched {
                    let v = self.version;
                    if let Ok(r) = self.range_mut(id) {
                        r.changed_at = v;
                    }
                }
                Ok(self.version)
            }
            Ok(false) => Ok(self.version),
            Err(e) => Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use danaus_raft::StateMachine;
    use proptest::prelude::*;

    fn table(replication: u32, leaves: &[&str]) -> ZoneTable {
        let mut t = ZoneTable::default();
        t.apply(ZoneCommand::Init { replication }).unwrap();
        for l in leaves {
            t.apply(ZoneCommand::RegisterLeaf { leaf: (*l).into(), addr: format!("{l}:1") }).unwrap();
        }
        t
    }

    fn only_range(t: &ZoneTable) -> RangeId {
        t.ranges.values().next().unwrap().id
    }

    /// A lookup by address tells apart names that share one (a prefix of
    /// another), and finds equal names at other addresses by their text.
    #[test]
    fn metric_lookups_find_names_by_address_and_text() {
        let mut t = ZoneTable::default();
        let metric = |name: &str| MetricSchema {
            name: name.into(),
            fields: Vec::new(),
            value_type: danaus_model::ValueType::Scalar(danaus_model::ScalarType::Double),
            kind: danaus_model::MetricKind::Gauge,
            unit: String::new(),
            description: String::new(),
            collection: None,
        };
        let schemas = t.schemas.entry("t".into()).or_default();
        for name in ["cpu", "cpu_seconds"] {
            schemas.metrics.insert(name.into(), metric(name));
        }
        let text = String::from("cpu_seconds");
        let other = String::from("cpu");
        let mut lookup = t.metric_lookup("t");
        for _ in 0..2 {
            assert_eq!(lookup.get(&text[..3]).unwrap().name, "cpu");
            assert_eq!(lookup.get(&text).unwrap().name, "cpu_seconds");
            assert_eq!(lookup.get(&other).unwrap().name, "cpu");
            assert!(lookup.get(&text[..4]).is_none(), "no metric cpu_");
        }
    }

    #[test]
    fn first_replica_is_ready_later_ones_join() {
        let mut t = table(2, &["a", "b"]);
        let r = only_range(&t);
        t.apply(ZoneCommand::AddReplica { range: r, leaf: "a".into() }).unwrap();
        t.apply(ZoneCommand::AddReplica { range: r, leaf: "b".into() }).unwrap();
        let range = t.range(r).unwrap();
        assert_eq!(range.replica("a").unwrap().state, ReplicaState::Ready);
        assert_eq!(range.replica("b").unwrap().state, ReplicaState::Joining);
        assert_eq!(range.changed_at, t.version);
        assert!(t.apply(ZoneCommand::AddReplica { range: r, leaf: "zz".into() }).is_err());
    }

    #[test]
    fn the_last_ready_replica_cannot_be_removed() {
        let mut t = table(1, &["a", "b"]);
        let r = only_range(&t);
        t.apply(ZoneCommand::AddReplica { range: r, leaf: "a".into() }).unwrap();
        t.apply(ZoneCommand::AddReplica { range: r, leaf: "b".into() }).unwrap();
        let err = t.apply(ZoneCommand::RemoveReplica { range: r, leaf: "a".into() }).unwrap_err();
        assert!(err.contains("last ready replica"), "{err}");
        t.apply(ZoneCommand::PromoteReplica { range: r, leaf: "b".into() }).unwrap();
        t.apply(ZoneCommand::RemoveReplica { range: r, leaf: "a".into() }).unwrap();
        assert_eq!(t.range(r).unwrap().ready().collect::<Vec<_>>(), vec!["b"]);
    }

    #[test]
    fn writes_routed_by_an_older_table_are_fenced() {
        let mut t = table(1, &["a", "b"]);
        let r = only_range(&t);
        t.apply(ZoneCommand::AddReplica { range: r, leaf: "a".into() }).unwrap();
        let v = t.version;
        assert_eq!(t.check_write("a", b"x", v), Ok(()));
        assert_eq!(t.check_write("b", b"x", v), Err(Fence::NotReplica));
        t.apply(ZoneCommand::AddReplica { range: r, leaf: "b".into() }).unwrap();
        // A router that has not seen b join would not dual-write to it.
        assert_eq!(t.check_write("a", b"x", v), Err(Fence::Stale { changed_at: v + 1 }));
        assert_eq!(t.check_write("a", b"x", v + 1), Ok(()));
        // Unrelated changes do not fence.
        t.apply(ZoneCommand::RegisterLeaf { leaf: "c".into(), addr: "c:1".into() }).unwrap();
        assert_eq!(t.check_write("b", b"x", v + 1), Ok(()));
    }

    #[test]
    fn schema_changes_follow_the_leaf_rules() {
        use danaus_model::{FieldDef, FieldType, MetricKind, ScalarType, ValueType};
        let target = |field: &str| TargetSchema {
            name: "T".into(),
            fields: vec![FieldDef::new(field, FieldType::String)],
            location_field: field.into(),
        };
        let mut t = table(1, &[]);
        let ts = target("zone");
        t.apply(ZoneCommand::ApplyTargetSchema { tenant: "x".into(), schema: ts.clone() }).unwrap();
        let v = t.version;
        assert_eq!(t.apply(ZoneCommand::ApplyTargetSchema { tenant: "x".into(), schema: ts }), Ok(v));
        let other = target("cell");
        assert!(t.apply(ZoneCommand::ApplyTargetSchema { tenant: "x".into(), schema: other }).is_err());
        let m = MetricSchema {
            name: "/m".into(),
            fields: vec![],
            value_type: ValueType::Scalar(ScalarType::Double),
            kind: MetricKind::Gauge,
            unit: String::new(),
            description: String::new(),
            collection: None,
        };
        t.apply(ZoneCommand::ApplyMetricSchema { tenant: "x".into(), schema: m }).unwrap();
        assert!(t.metric_schema("x", "/m").is_some());
        assert!(t.metric_schema("y", "/m").is_none());
    }

    #[test]
    fn ranges_record_when_a_ready_replica_left_their_read_set() {
        let mut t = table(2, &["a", "b", "c"]);
        let r = only_range(&t);
        t.apply(ZoneCommand::AddReplica { range: r, leaf: "a".into() }).unwrap();
        t.apply(ZoneCommand::AddReplica { range: r, leaf: "b".into() }).unwrap();
        t.apply(ZoneCommand::AddReplica { range: r, leaf: "c".into() }).unwrap();
        // Joining and promoting grow the read set; removing a joining
        // replica never was in it.
        t.apply(ZoneCommand::PromoteReplica { range: r, leaf: "b".into() }).unwrap();
        t.apply(ZoneCommand::RemoveReplica { range: r, leaf: "c".into() }).unwrap();
        assert_eq!(t.range(r).unwrap().read_set_shrunk_at, 0);
        t.apply(ZoneCommand::Demote { range: r, leaf: "b".into() }).unwrap();
        assert_eq!(t.range(r).unwrap().read_set_shrunk_at, t.version);
        let demoted = t.version;
        t.apply(ZoneCommand::Rejoin { range: r, leaf: "b".into() }).unwrap();
        t.apply(ZoneCommand::PromoteReplica { range: r, leaf: "b".into() }).unwrap();
        assert_eq!(t.range(r).unwrap().read_set_shrunk_at, demoted);
        t.apply(ZoneCommand::RemoveReplica { range: r, leaf: "a".into() }).unwrap();
        assert_eq!(t.range(r).unwrap().read_set_shrunk_at, t.version);
        let removed = t.version;
        t.apply(ZoneCommand::Split { range: r, at: b"m".to_vec() }).unwrap();
        assert!(t.ranges.values().all(|x| x.read_set_shrunk_at == removed), "split ranges keep their parent's");
    }

    #[test]
    fn demoted_replicas_rejoin_through_a_copy() {
        let mut t = table(2, &["a", "b"]);
        let r = only_range(&t);
        t.apply(ZoneCommand::AddReplica { range: r, leaf: "a".into() }).unwrap();
        t.apply(ZoneCommand::AddReplica { range: r, leaf: "b".into() }).unwrap();
        t.apply(ZoneCommand::PromoteReplica { range: r, leaf: "b".into() }).unwrap();
        t.apply(ZoneCommand::Demote { range: r, leaf: "b".into() }).unwrap();
        assert_eq!(t.range(r).unwrap().replica("b").unwrap().state, ReplicaState::Lagging);
        let err = t.apply(ZoneCommand::Demote { range: r, leaf: "a".into() }).unwrap_err();
        assert!(err.contains("last ready replica"), "{err}");
        // A lagging replica still takes writes (routers send them best effort).
        assert_eq!(t.check_write("b", b"x", t.version), Ok(()));
        t.apply(ZoneCommand::Rejoin { range: r, leaf: "b".into() }).unwrap();
        assert_eq!(t.range(r).unwrap().replica("b").unwrap().state, ReplicaState::Joining);
    }

    #[test]
    fn the_table_survives_json() {
        let mut t = table(2, &["a", "b"]);
        let r = only_range(&t);
        t.apply(ZoneCommand::AddReplica { range: r, leaf: "a".into() }).unwrap();
        t.apply(ZoneCommand::Split { range: r, at: vec![7, 0, 255] }).unwrap();
        let json = serde_json::to_vec(&t).unwrap();
        let back: ZoneTable = serde_json::from_slice(&json).unwrap();
        assert_eq!(back, t);
    }

    /// Configuration versions sync the schemas in, in order, never
    /// going back and never shrinking a schema the zone holds.
    #[test]
    fn config_versions_sync_schemas_forward_only() {
        let metric = |fields: &[&str]| MetricSchema {
            name: "/m".into(),
            fields: fields.iter().map(|f| danaus_model::FieldDef::new(*f, danaus_model::FieldType::String)).collect(),
            value_type: danaus_model::ValueType::Scalar(danaus_model::ScalarType::Double),
            kind: danaus_model::MetricKind::Gauge,
            unit: String::new(),
            description: String::new(),
            collection: None,
        };
        let sync = |version: u64, fields: &[&str]| {
            let mut s = TenantSchemas::default();
            s.metrics.insert("/m".into(), metric(fields));
            ZoneCommand::SyncConfig { version, schemas: BTreeMap::from([("t".to_owned(), s)]) }
        };
        let mut t = ZoneTable::default();
        let v = t.apply(sync(3, &["a"])).unwrap();
        assert_eq!((t.config_version, t.metric_schema("t", "/m").unwrap().fields.len()), (3, 1));
        assert_eq!(t.apply(sync(2, &["a", "b"])).unwrap(), v, "an older configuration changes nothing");
        assert!(t.apply(sync(4, &[])).is_err(), "a field is never taken away");
        assert_eq!(t.config_version, 3);
        t.apply(sync(5, &["a", "b"])).unwrap();
        assert_eq!((t.config_version, t.metric_schema("t", "/m").unwrap().fields.len()), (5, 2));
    }

    proptest! {
        /// However ranges are split, they cover the target space exactly
        /// and every target has exactly one range.
        #[test]
        fn splits_keep_an_exact_cover(cuts in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 1..4), 0..20),
                                      probes in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..5), 1..30)) {
            let mut t = table(1, &["a"]);
            for at in cuts {
                let r = t.range_for(&at).unwrap().clone();
                let res = t.apply(ZoneCommand::Split { range: r.id, at: at.clone() });
                prop_assert_eq!(res.is_ok(), at > r.start);
            }
            let ranges: Vec<_> = t.ranges.values().collect();
            prop_assert!(ranges[0].start.is_empty());
            prop_assert!(ranges.last().unwrap().end.is_none());
            for w in ranges.windows(2) {
                prop_assert_eq!(w[0].end.as_ref(), Some(&w[1].start));
            }
            for p in probes {
                let n = t.ranges.values().filter(|r| r.contains(&p)).count();
                prop_assert_eq!(n, 1);
                prop_assert!(t.range_for(&p).unwrap().contains(&p));
            }
        }
    }
}
