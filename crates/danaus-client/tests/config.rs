//! Configuration as code against `danaus standalone` (its config service,
//! one member, in process), the way an SRE uses it: validate with errors at
//! file:line:column, diff, apply all or nothing and idempotently, history,
//! export → apply as a no-op, and rollback as a new version.

#![allow(clippy::unwrap_used)] // tests fail loudly by design

mod common;

use std::path::Path;

use common::{text, Server};

fn write(dir: &Path, file: &str, body: &str) {
    let f = dir.join(file);
    std::fs::create_dir_all(f.parent().unwrap()).unwrap();
    std::fs::write(f, body).unwrap();
}

const ZONES: &str = "\
kind: Zone
name: eu
locations: [eu-*]
routers: ['eu-router:7070']
---
kind: Zone
name: us
routers: ['us-router:7070']
";

const TARGETS: &str = "\
kind: TargetSchema
name: Host
location: region
fields:
  - {name: region, type: string}
  - {name: host, type: string}
";

fn metrics(fields: &str) -> String {
    format!(
        "# CPU time per mode.\nkind: MetricSchema\nname: /cpu/seconds\nfields: {fields}\nvalue_type: double\n\
         metric_kind: cumulative\nunit: s\n"
    )
}

#[test]
fn configuration_as_code_round_trip() {
    let server = Server::start();
    let ctl = |args: &[&str]| server.ctl(args);
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("config");
    write(&cfg, "zones.yaml", ZONES);
    write(&cfg, "schemas/targets.yaml", TARGETS);
    write(&cfg, "schemas/metrics.yaml", &metrics("[{name: mode, type: string}]"));
    let c = cfg.to_str().unwrap();

    // A typo is named at its file, line and column; nothing is applied.
    let bad = dir.path().join("bad");
    write(&bad, "m.yaml", &metrics("[{name: mode, type: string}]").replace("unit: s", "unti: s"));
    let o = ctl(&["config", "validate", "--offline", "-f", bad.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(text(&o).contains("m.yaml:7:1: unknown field `unti`"), "{}", text(&o));

    let o = ctl(&["config", "validate", "-f", c]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(text(&o).contains("4 objects valid against version 0"), "{}", text(&o));
    let o = ctl(&["config", "diff", "-f", c]);
    assert!(text(&o).contains("MetricSchema /cpu/seconds (created):"), "{}", text(&o));
    assert!(text(&o).contains("+ metric_kind: cumulative"), "{}", text(&o));

    let o = ctl(&["config", "apply", "-f", c, "-m", "first zones and schemas"]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(text(&o).contains("version 1"), "{}", text(&o));
    let o = ctl(&["config", "apply", "-f", c]);
    assert!(text(&o).contains("no changes (version 1)"), "applying twice makes no version: {}", text(&o));

    // The zone holds the configuration's schemas (its mirror syncs them in).
    let listed = || text(&ctl(&["schema", "list"]));
    let started = std::time::Instant::now();
    while !listed().contains("metric /cpu/seconds{mode: string}") {
        assert!(started.elapsed().as_secs() < 20, "the zone never synced version 1: {}", listed());
        std::thread::sleep(std::time::Duration::from_millis(100));
    }

    // A field added and a zone widened: one version.
    write(&cfg, "schemas/metrics.yaml", &metrics("[{name: mode, type: string}, {name: cpu, type: int64}]"));
    write(&cfg, "zones.yaml", &ZONES.replace("[eu-*]", "[eu-*, ch]"));
    let o = ctl(&["config", "diff", "-f", c]);
    assert!(text(&o).contains("+ - ch"), "{}", text(&o));
    let o = ctl(&["config", "apply", "-f", c, "-m", "cpu field; Switzerland in eu"]);
    assert!(text(&o).contains("MetricSchema /cpu/seconds: updated") && text(&o).contains("version 2"), "{}", text(&o));

    // Retyping a field is refused at the metric's name, and changes nothing.
    write(&cfg, "schemas/metrics.yaml", &metrics("[{name: mode, type: int64}, {name: cpu, type: int64}]"));
    write(&cfg, "zones.yaml", ZONES);
    let o = ctl(&["config", "apply", "-f", c]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(text(&o).contains("schemas/metrics.yaml:3:1:"), "{}", text(&o));
    assert!(text(&o).contains("mode"), "{}", text(&o));
    let o = ctl(&["config", "history"]);
    let h = text(&o);
    assert!(h.contains("cpu field; Switzerland in eu") && h.contains("first zones and schemas"), "{h}");
    assert_eq!(h.lines().filter(|l| l.trim_start().starts_with(char::is_numeric)).count(), 2, "{h}");

    write(&cfg, "schemas/metrics.yaml", &metrics("[{name: mode, type: string}, {name: cpu, type: int64}]"));
    write(&cfg, "zones.yaml", &ZONES.replace("[eu-*]", "[eu-*, ch]"));

    // A schema applied through SchemaService goes through the configuration.
    let o = ctl(&["schema", "apply", "-f", "examples/tour/schemas.yaml"]);
    assert!(text(&o).contains("target ComputeTask: created"), "{}", text(&o));
    let o = ctl(&["config", "history", "--limit", "1"]);
    assert!(
        text(&o).contains("applied through SchemaService") && text(&o).contains("created TargetSchema ComputeTask"),
        "{}",
        text(&o)
    );
    let o = ctl(&["config", "apply", "-f", c]);
    assert!(text(&o).contains("no changes (version 3)"), "{}", text(&o));

    // Export, then apply what was exported: nothing changes.
    let out = dir.path().join("exported");
    let o = ctl(&["config", "export", "-o", out.to_str().unwrap()]);
    assert!(o.status.success(), "{}", text(&o));
    let o = ctl(&["config", "apply", "-f", out.to_str().unwrap()]);
    assert!(text(&o).contains("no changes (version 3)"), "{}", text(&o));

    // Back to version 1: the zone goes back, the grown schema stays.
    let o = ctl(&["config", "rollback", "1", "-m", "undo Switzerland"]);
    assert!(o.status.success(), "{}", text(&o));
    let t = text(&o);
    assert!(
        t.contains("Zone eu: updated") && t.contains("MetricSchema /cpu/seconds: kept") && t.contains("version 4"),
        "{t}"
    );
    let o = ctl(&["config", "history", "--limit", "1"]);
    assert!(text(&o).contains("undo Switzerland"), "{}", text(&o));
}
