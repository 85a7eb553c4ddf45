//! The objects the configuration holds, each named by an [`ObjectKey`]:
//! its tenant (empty for objects of the whole installation, such as
//! zones), its [`Kind`] and its name.

use std::fmt;

use danaus_model::{MetricSchema, TargetSchema};
use danaus_rules::file::GroupSpec;
use serde::{Deserialize, Serialize};

/// What an object is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Kind {
    /// A target schema (per tenant).
    TargetSchema,
    /// A metric schema (per tenant).
    MetricSchema,
    /// A zone of the installation (global).
    Zone,
    /// A group of recording and alerting rules (per tenant), in
    /// Prometheus' rule-file form.
    RuleGroup,
}

impl Kind {
    /// Every kind, in the order a directory is applied and exported.
    pub const ALL: [Kind; 4] = [Kind::Zone, Kind::TargetSchema, Kind::MetricSchema, Kind::RuleGroup];

    /// Its name in files (`kind: MetricSchema`).
    pub fn name(self) -> &'static str {
        match self {
            Kind::TargetSchema => "TargetSchema",
            Kind::MetricSchema => "MetricSchema",
            Kind::Zone => "Zone",
            Kind::RuleGroup => "RuleGroup",
        }
    }

    /// The kind named `s`.
    pub fn parse(s: &str) -> Option<Kind> {
        Kind::ALL.into_iter().find(|k| k.name() == s)
    }

    /// Whether objects of this kind belong to the installation rather than
    /// to a tenant.
    pub fn is_global(self) -> bool {
        matches!(self, Kind::Zone)
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A zone: where it takes writes and answers queries, and the locations
/// whose series it owns.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ZoneSpec {
    /// Its name.
    pub name: String,
    /// Locations it owns: exact values, or prefixes ending in `*`. A zone
    /// with none owns every location no other zone claims.
    #[serde(default)]
    pub locations: Vec<String>,
    /// Its ingestion routers (host:port).
    #[serde(default)]
    pub routers: Vec<String>,
    /// Its zone mixers (host:port), for queries from the root.
    #[serde(default)]
    pub mixers: Vec<String>,
    /// Its zone index servers (host:port), for people and tools: they push
    /// the zone's hints to the root index themselves (`danaus index
    /// --root-index`), so nothing dials these.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub index: Vec<String>,
}

impl ZoneSpec {
    /// Checks what it says on its own.
    pub fn validate(&self) -> Result<(), String> {
        if self.name.is_empty() || !self.name.chars().all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c)) {
            return Err(format!("zone name {:?} must be non-empty letters, digits, '-', '_' or '.'", self.name));
        }
        for l in &self.locations {
            if l.is_empty() || l.find('*').is_some_and(|i| i + 1 != l.len()) {
                return Err(format!(
                    "zone {:?}: location {l:?} must be a value, or a prefix ending in a single '*'",
                    self.name
                ));
            }
        }
        for a in self.routers.iter().chain(&self.mixers).chain(&self.index) {
            if !a.contains(':') {
                return Err(format!("zone {:?}: address {a:?} must be host:port", self.name));
            }
        }
        Ok(())
    }
}

/// One object of the configuration.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Object {
    /// A target schema.
    TargetSchema(TargetSchema),
    /// A metric schema.
    MetricSchema(MetricSchema),
    /// A zone.
    Zone(ZoneSpec),
    /// A rule group.
    RuleGroup(GroupSpec),
}

impl Object {
    /// Its kind.
    pub fn kind(&self) -> Kind {
        match self {
            Object::TargetSchema(_) => Kind::TargetSchema,
            Object::MetricSchema(_) => Kind::MetricSchema,
            Object::Zone(_) => Kind::Zone,
            Object::RuleGroup(_) => Kind::RuleGroup,
        }
    }

    /// Its name.
    pub fn name(&self) -> &str {
        match self {
            Object::TargetSchema(s) => &s.name,
            Object::MetricSchema(s) => &s.name,
            Object::Zone(z) => &z.name,
            Object::RuleGroup(g) => &g.name,
        }
    }

    /// Its key when it belongs to `tenant` (ignored for global kinds).
    pub fn key(&self, tenant: &str) -> ObjectKey {
        let kind = self.kind();
        ObjectKey {
            tenant: if kind.is_global() { String::new() } else { tenant.to_owned() },
            kind,
            name: self.name().to_owned(),
        }
    }

    /// Checks what it says on its own (references and compatibility with
    /// the stored configuration are the state's to check).
    pub fn validate(&self) -> Result<(), String> {
        match self {
            Object::TargetSchema(s) => s.validate().map_err(|e| e.to_string()),
            Object::MetricSchema(s) => s.validate().map_err(|e| e.to_string()),
            Object::Zone(z) => z.validate(),
            // Checked as `promtool check rules` checks a file of it alone.
            Object::RuleGroup(g) => g.check().map(|_| ()).map_err(|errs| errs.join("; ")),
        }
    }
}

/// Names an object: tenant (empty for global kinds), kind, name.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct ObjectKey {
    /// Its tenant; empty for the installation's own objects.
    pub tenant: String,
    /// Its kind.
    pub kind: Kind,
    /// Its name.
    pub name: String,
}

impl fmt::Display for ObjectKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.tenant.is_empty() {
            write!(f, "{} {:?}", self.kind, self.name)
        } else {
            write!(f, "{} {:?} (tenant {:?})", self.kind, self.name, self.tenant)
        }
    }
}
