//! Which zone owns a location.

use serde::{Deserialize, Serialize};

/// One zone in the map.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ZoneRoute {
    /// The zone's name.
    pub name: String,
    /// Its ingestion routers (host:port), tried in order.
    #[serde(default)]
    pub routers: Vec<String>,
    /// Locations it owns: exact values, or prefixes ending in `*`. A zone
    /// with no locations owns every location no other zone claims.
    #[serde(default)]
    pub locations: Vec<String>,
}

/// The zone map: this zone and the others.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ZoneMap {
    /// This router's zone.
    pub local: String,
    /// Every zone, this one included.
    pub zones: Vec<ZoneRoute>,
}

impl ZoneMap {
    /// A map with only `local`, which owns every location.
    pub fn single(local: impl Into<String>) -> Self {
        let local = local.into();
        Self { zones: vec![ZoneRoute { name: local.clone(), routers: Vec::new(), locations: Vec::new() }], local }
    }

    /// Parses the YAML form: `local: NAME` and `zones: [{name, routers, locations}]`.
    pub fn from_yaml(text: &str) -> Result<Self, String> {
        let m: ZoneMap = yaml_serde::from_str(text).map_err(|e| format!("zone map: {e}"))?;
        if !m.zones.iter().any(|z| z.name == m.local) {
            return Err(format!("zone map: the local zone {:?} is not among its zones", m.local));
        }
        for z in &m.zones {
            if z.name != m.local && z.routers.is_empty() {
                return Err(format!("zone map: zone {:?} has no routers to forward to", z.name));
            }
        }
        Ok(m)
    }

    /// The zone owning `location`: the first zone listing it (exactly or
    /// by prefix), else the first zone listing no locations.
    pub fn zone_of(&self, location: &str) -> Option<&ZoneRoute> {
        danaus_model::location::owner(&self.zones, |z| &z.locations, location)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn locations_pick_zones_by_exact_value_or_prefix() {
        let m = ZoneMap::from_yaml(
            "local: eu\nzones:\n- name: eu\n  locations: ['eu-*']\n- name: us\n  routers: ['10.0.0.1:7700']\n  locations: ['us-east1', 'us-west*']\n- name: rest\n  routers: ['10.0.0.2:7700']\n",
        )
        .unwrap();
        assert_eq!(m.zone_of("eu-north1").unwrap().name, "eu");
        assert_eq!(m.zone_of("us-east1").unwrap().name, "us");
        assert_eq!(m.zone_of("us-west2").unwrap().name, "us");
        assert_eq!(m.zone_of("us-east2").unwrap().name, "rest");
        assert!(ZoneMap::from_yaml("local: x\nzones: []\n").unwrap_err().contains("not among its zones"));
        assert!(ZoneMap::from_yaml("local: a\nzones: [{name: a}, {name: b}]\n").unwrap_err().contains("no routers"));
        assert_eq!(ZoneMap::single("z").zone_of("anything").unwrap().name, "z");
    }
}
