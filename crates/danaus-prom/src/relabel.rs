//! Prometheus relabelling (`relabel_configs`, `metric_relabel_configs`),
//! every action of Prometheus 2.42, with its defaults and its rules.
//!
//! A rule reads the values of `source_labels` joined by `separator`; its
//! `regex` is anchored at both ends. `replace` writes `replacement` (with
//! `$1`, `${1}`, `$name` expanded from the match) to `target_label` (which
//! is expanded too); an empty result deletes the label. `keep`/`drop` keep
//! or drop the whole set by whether the regex matches, `keepequal`/
//! `dropequal` by whether the joined value equals `target_label`'s.
//! `hashmod` writes the MD5 of the value modulo `modulus` (the last eight
//! bytes of the digest, big-endian, as Prometheus takes them).
//! `labelmap` copies every label whose name matches to the name
//! `replacement` makes of it; `labeldrop`/`labelkeep` delete the labels
//! whose names match / do not. `lowercase`/`uppercase` write the value so
//! cased to `target_label`. A label set that ends empty is dropped, as is
//! every label with an empty value.

use std::collections::BTreeMap;

use md5::{Digest, Md5};
use regex::Regex;
use serde::Deserialize;

/// A label set being relabelled: name → value, empty values absent.
pub type LabelSet = BTreeMap<String, String>;

/// What a rule does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    /// Write the expanded replacement to the target label.
    Replace,
    /// Keep the set only if the regex matches.
    Keep,
    /// Drop the set if the regex matches.
    Drop,
    /// Keep the set only if the value equals the target label's.
    KeepEqual,
    /// Drop the set if the value equals the target label's.
    DropEqual,
    /// Write the value's hash modulo `modulus` to the target label.
    HashMod,
    /// Copy labels whose names match to the names the replacement makes.
    LabelMap,
    /// Delete labels whose names match.
    LabelDrop,
    /// Delete labels whose names do not match.
    LabelKeep,
    /// Write the value lower-cased to the target label.
    Lowercase,
    /// Write the value upper-cased to the target label.
    Uppercase,
}

impl Action {
    fn name(self) -> &'static str {
        match self {
            Action::Replace => "replace",
            Action::Keep => "keep",
            Action::Drop => "drop",
            Action::KeepEqual => "keepequal",
            Action::DropEqual => "dropequal",
            Action::HashMod => "hashmod",
            Action::LabelMap => "labelmap",
            Action::LabelDrop => "labeldrop",
            Action::LabelKeep => "labelkeep",
            Action::Lowercase => "lowercase",
            Action::Uppercase => "uppercase",
        }
    }
}

/// One rule as written in a configuration file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RelabelConfig {
    /// Labels whose values are joined.
    #[serde(default)]
    pub source_labels: Vec<String>,
    /// Joins the source values (default `;`).
    #[serde(default = "default_separator")]
    pub separator: String,
    /// Label written by replace, hashmod, lowercase, uppercase; compared
    /// by keepequal and dropequal.
    pub target_label: Option<String>,
    /// Anchored at both ends (default `(.*)`).
    pub regex: Option<String>,
    /// For hashmod.
    pub modulus: Option<u64>,
    /// For replace and labelmap (default `$1`).
    #[serde(default = "default_replacement")]
    pub replacement: String,
    /// Default replace.
    #[serde(default = "default_action")]
    pub action: Action,
}

fn default_separator() -> String {
    ";".into()
}
fn default_replacement() -> String {
    "$1".into()
}
fn default_action() -> Action {
    Action::Replace
}

/// A checked rule, its regex compiled.
#[derive(Debug, Clone)]
pub struct Rule {
    source_labels: Vec<String>,
    separator: String,
    target_label: String,
    regex: Regex,
    modulus: u64,
    replacement: String,
    action: Action,
}

/// Whether `s` is a valid label name (`[a-zA-Z_][a-zA-Z0-9_]*`).
pub fn is_label_name(s: &str) -> bool {
    let mut c = s.chars();
    matches!(c.next(), Some(f) if f.is_ascii_alphabetic() || f == '_')
        && c.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

impl RelabelConfig {
    /// Checks the rule as Prometheus does and compiles it.
    pub fn compile(&self) -> Result<Rule, String> {
        let a = self.action;
        let bad = |m: String| Err(format!("relabel action {}: {m}", a.name()));
        let pattern = self.regex.as_deref().unwrap_or("(.*)");
        let regex = regex::RegexBuilder::new(&format!("^(?:{pattern})$"))
            .size_limit(1 << 20)
            .build()
            .map_err(|e| format!("relabel action {}: regex {pattern:?} is invalid: {e}", a.name()))?;
        let target = self.target_label.clone().unwrap_or_default();
        let needs_target = matches!(
            a,
            Action::Replace
                | Action::HashMod
                | Action::Lowercase
                | Action::Uppercase
                | Action::KeepEqual
                | Action::DropEqual
        );
        if needs_target && target.is_empty() {
            return bad("target_label is required".into());
        }
        if matches!(a, Action::Lowercase | Action::Uppercase | Action::HashMod | Action::KeepEqual | Action::DropEqual)
            && !is_label_name(&target)
        {
            return bad(format!("{target:?} is not a valid label name"));
        }
        // A replace target may hold `$1` and the like; what it expands to
        // is checked when it is used.
        if a == Action::Replace && !target.contains('$') && !is_label_name(&target) {
            return bad(format!("{target:?} is not a valid label name"));
        }
        if a == Action::HashMod && self.modulus.unwrap_or(0) == 0 {
            return bad("modulus must be set and above 0".into());
        }
        if matches!(a, Action::KeepEqual | Action::DropEqual)
            && (self.regex.is_some() || self.modulus.is_some() || self.replacement != "$1" || self.separator != ";")
        {
            return bad("only source_labels and target_label may be set".into());
        }
        if matches!(a, Action::LabelDrop | Action::LabelKeep)
            && (!self.source_labels.is_empty()
                || !target.is_empty()
                || self.modulus.is_some()
                || self.replacement != "$1"
                || self.separator != ";")
        {
            return bad("only regex may be set".into());
        }
        if let Some(l) = self.source_labels.iter().find(|l| !is_label_name(l)) {
            return bad(format!("source label {l:?} is not a valid label name"));
        }
        Ok(Rule {
            source_labels: self.source_labels.clone(),
            separator: self.separator.clone(),
            target_label: target,
            regex,
            modulus: self.modulus.unwrap_or(0),
            replacement: self.replacement.clone(),
            action: a,
        })
    }
}

/// Compiles rules, naming the failing one by position.
pub fn compile_all(rules: &[RelabelConfig], what: &str) -> Result<Vec<Rule>, String> {
    rules.iter().enumerate().map(|(i, r)| r.compile().map_err(|e| format!("{what} rule {}: {e}", i + 1))).collect()
}

fn set(labels: &mut LabelSet, name: String, value: String) {
    if value.is_empty() {
        labels.remove(&name);
    } else {
        labels.insert(name, value);
    }
}

/// The MD5-based hash Prometheus' hashmod takes modulo: the digest's last
/// eight bytes, big-endian.
fn hash64(value: &str) -> u64 {
    let d = Md5::digest(value.as_bytes());
    let mut last = [0u8; 8];
    last.copy_from_slice(&d[8..]);
    u64::from_be_bytes(last)
}

impl Rule {
    /// Applies the rule: `false` drops the set.
    fn apply(&self, labels: &mut LabelSet) -> bool {
        let value = self
            .source_labels
            .iter()
            .map(|l| labels.get(l).map_or("", String::as_str))
            .collect::<Vec<_>>()
            .join(&self.separator);
        match self.action {
            Action::Keep => return self.regex.is_match(&value),
            Action::Drop => return !self.regex.is_match(&value),
            Action::KeepEqual => return labels.get(&self.target_label).map_or("", String::as_str) == value,
            Action::DropEqual => return labels.get(&self.target_label).map_or("", String::as_str) != value,
            Action::Replace => {
                let Some(caps) = self.regex.captures(&value) else { return true };
                let mut target = String::new();
                caps.expand(&self.target_label, &mut target);
                if !is_label_name(&target) {
                    return true;
                }
                let mut res = String::new();
                caps.expand(&self.replacement, &mut res);
                set(labels, target, res);
            }
            Action::Lowercase => set(labels, self.target_label.clone(), value.to_lowercase()),
            Action::Uppercase => set(labels, self.target_label.clone(), value.to_uppercase()),
            Action::HashMod => set(labels, self.target_label.clone(), (hash64(&value) % self.modulus).to_string()),
            Action::LabelMap => {
                let mapped: Vec<(String, String)> = labels
                    .iter()
                    .filter_map(|(k, v)| {
                        let caps = self.regex.captures(k)?;
                        let mut name = String::new();
                        caps.expand(&self.replacement, &mut name);
                        Some((name, v.clone()))
                    })
                    .collect();
                for (k, v) in mapped {
                    set(labels, k, v);
                }
            }
            Action::LabelDrop => labels.retain(|k, _| !self.regex.is_match(k)),
            Action::LabelKeep => labels.retain(|k, _| self.regex.is_match(k)),
        }
        true
    }
}

/// Applies `rules` in order: the relabelled set, or `None` when a rule
/// dropped it or nothing is left.
pub fn relabel(mut labels: LabelSet, rules: &[Rule]) -> Option<LabelSet> {
    for r in rules {
        if !r.apply(&mut labels) {
            return None;
        }
    }
    (!labels.is_empty()).then_some(labels)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn rules(yaml: &str) -> Vec<Rule> {
        let r: Vec<RelabelConfig> = yaml_serde::from_str(yaml).unwrap();
        compile_all(&r, "test").unwrap()
    }

    fn set_of(pairs: &[(&str, &str)]) -> LabelSet {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn every_action_does_what_prometheus_does() {
        let l = set_of(&[("__address__", "h1:9100"), ("job", "node"), ("env", "Prod"), ("__meta_x", "a")]);
        let r = rules(
            "- source_labels: [__address__]\n  regex: '([^:]+):(\\d+)'\n  target_label: host\n  replacement: '${1}'\n\
             - source_labels: [env]\n  target_label: env_lc\n  action: lowercase\n\
             - source_labels: [env]\n  target_label: env_uc\n  action: uppercase\n\
             - source_labels: [__address__]\n  target_label: shard\n  modulus: 4\n  action: hashmod\n\
             - regex: '__meta_(.+)'\n  action: labelmap\n\
             - regex: 'env'\n  action: labeldrop\n",
        );
        let out = relabel(l.clone(), &r).unwrap();
        assert_eq!(out.get("host").map(String::as_str), Some("h1"));
        assert_eq!(out.get("env_lc").map(String::as_str), Some("prod"));
        assert_eq!(out.get("env_uc").map(String::as_str), Some("PROD"));
        assert_eq!(out.get("x").map(String::as_str), Some("a"));
        assert!(!out.contains_key("env"));
        let shard: u64 = out["shard"].parse().unwrap();
        assert!(shard < 4);
        // Prometheus' value for this address (its hashmod test vectors use
        // the same digest bytes).
        assert_eq!(shard, hash64("h1:9100") % 4);

        assert!(relabel(l.clone(), &rules("- source_labels: [job]\n  regex: node\n  action: drop\n")).is_none());
        assert!(relabel(l.clone(), &rules("- source_labels: [job]\n  regex: no.*\n  action: keep\n")).is_some());
        assert!(relabel(l.clone(), &rules("- source_labels: [job]\n  regex: nod\n  action: keep\n")).is_none());
        let eq = set_of(&[("a", "x"), ("b", "x"), ("c", "y")]);
        assert!(relabel(eq.clone(), &rules("- source_labels: [a]\n  target_label: b\n  action: keepequal\n")).is_some());
        assert!(relabel(eq.clone(), &rules("- source_labels: [a]\n  target_label: c\n  action: keepequal\n")).is_none());
        assert!(relabel(eq.clone(), &rules("- source_labels: [a]\n  target_label: b\n  action: dropequal\n")).is_none());
        let kept = relabel(eq, &rules("- regex: '[ab]'\n  action: labelkeep\n")).unwrap();
        assert_eq!(kept.keys().collect::<Vec<_>>(), ["a", "b"]);
        // An empty replacement deletes; a target that expands to no
        // valid name leaves the set alone; no match leaves it alone.
        let out = relabel(l.clone(), &rules("- source_labels: [nothing]\n  target_label: job\n  replacement: ''\n"));
        assert!(!out.unwrap().contains_key("job"));
        let out = relabel(l.clone(), &rules("- source_labels: [job]\n  target_label: '${1}-x'\n")).unwrap();
        assert_eq!(out, l);
        let out = relabel(l.clone(), &rules("- source_labels: [job]\n  regex: db\n  target_label: role\n")).unwrap();
        assert!(!out.contains_key("role"));
        // Joined sources, the separator, anchoring.
        let out = relabel(
            l,
            &rules("- source_labels: [job, env]\n  separator: '/'\n  regex: 'node/(P.*)'\n  target_label: t\n"),
        )
        .unwrap();
        assert_eq!(out.get("t").map(String::as_str), Some("Prod"));
    }

    #[test]
    fn rules_are_checked_as_prometheus_does() {
        let err = |yaml: &str| {
            let r: Vec<RelabelConfig> = yaml_serde::from_str(yaml).unwrap();
            compile_all(&r, "relabel_configs").unwrap_err()
        };
        assert!(err("- action: replace\n").contains("target_label is required"));
        assert!(err("- action: hashmod\n  target_label: x\n").contains("modulus"));
        assert!(err("- regex: '('\n  target_label: x\n").contains("regex \"(\" is invalid"));
        assert!(err("- action: labeldrop\n  source_labels: [a]\n  regex: x\n").contains("only regex may be set"));
        assert!(
            err("- action: keepequal\n  target_label: x\n  regex: y\n").contains("only source_labels and target_label")
        );
        assert!(err("- action: lowercase\n  target_label: 'a-b'\n").contains("not a valid label name"));
        assert!(err("- source_labels: [a-b]\n  target_label: x\n").starts_with("relabel_configs rule 1:"));
        let e = yaml_serde::from_str::<Vec<RelabelConfig>>("- action: replace\n  target_lable: x\n").unwrap_err();
        assert!(e.to_string().contains("unknown field `target_lable`"), "{e}");
        let e = yaml_serde::from_str::<Vec<RelabelConfig>>("- action: rewrite\n").unwrap_err();
        assert!(e.to_string().contains("unknown variant `rewrite`"), "{e}");
    }
}
