//! The README's tour, run for real: `danaus standalone` plus `danausctl`
//! with the files in `examples/tour/`. If this fails, the README lies.

#![allow(clippy::unwrap_used)] // tests fail loudly by design

mod common;

use common::{text, Server};

#[test]
fn readme_tour_works() {
    let server = Server::start();
    let ctl = |args: &[&str]| server.ctl(args);

    let o = ctl(&["schema", "apply", "-f", "examples/tour/schemas.yaml"]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(text(&o).contains("target ComputeTask: created"), "{}", text(&o));
    let o = ctl(&["schema", "apply", "-f", "examples/tour/schemas.yaml"]);
    assert!(text(&o).contains("target ComputeTask: unchanged"), "{}", text(&o));
    let o = ctl(&["schema", "list"]);
    assert!(
        text(&o).contains("target ComputeTask{cluster*: string, user: string, job: string, task_num: int64}"),
        "{}",
        text(&o)
    );

    // One series in the file is missing a field: refused and named, exit 1.
    let o = ctl(&["write", "-f", "examples/tour/points.jsonl"]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    let out = text(&o);
    assert!(out.contains("wrote 6 points to 3 series; 1 series refused"), "{out}");
    assert!(out.contains("field \"job\": missing"), "{out}");

    let o = ctl(&[
        "read",
        "--target",
        "ComputeTask",
        "--metric",
        "/rpc/server/latency",
        "--match",
        "user=monarch",
        "--match",
        "job=~mix.*",
    ]);
    assert!(o.status.success(), "{}", text(&o));
    let out = String::from_utf8_lossy(&o.stdout).to_string();
    assert!(out.contains("job=\"mixer\""), "{out}");
    assert!(!out.contains("job=\"leaf\""), "{out}");
    assert_eq!(out.lines().filter(|l| l.starts_with("  ")).count(), 3, "{out}");

    let o = ctl(&["read", "--target", "ComputeTask", "--metric", "/rpc/server/count", "-o", "json"]);
    let line: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(line["points"][1]["value"], 25);
    assert_eq!(line["target_fields"]["user"], "alice");

    // Queries: the README's three.
    let o = ctl(
        &[
            "query",
            "fetch ComputeTask::/rpc/server/latency\n    | filter user == \"monarch\" | align max(5m) | group_by [job], max",
            "--from",
            "now-10m",
        ],
    );
    assert!(o.status.success(), "{}", text(&o));
    let out = String::from_utf8_lossy(&o.stdout).to_string();
    assert!(out.contains("{job=\"mixer\"}") && out.contains("{job=\"leaf\"}"), "{out}");
    assert!(out.lines().any(|l| l.ends_with("  14")), "{out}");
    assert!(String::from_utf8_lossy(&o.stderr).contains("1 of 1 sources answered"), "{}", text(&o));
    let o = ctl(&[
        "query",
        "fetch ComputeTask::/rpc/server/count | align delta(1h)\n    | group_by [user], sum",
        "--from",
        "now-10m",
        "-o",
        "csv",
    ]);
    assert!(o.status.success(), "{}", text(&o));
    let out = String::from_utf8_lossy(&o.stdout).to_string();
    assert!(out.starts_with("time,user,value\n"), "{out}");
    assert!(out.lines().skip(1).all(|l| l.contains(",alice,")), "{out}");
    let o = ctl(&["query", "fetch ComputeTask::/rpc/server/latency | fliter user == \"x\""]);
    assert_eq!(o.status.code(), Some(1));
    assert!(text(&o).contains("did you mean `filter`?"), "{}", text(&o));
    assert!(text(&o).contains("1:42: unknown operation `fliter`"), "{}", text(&o));

    // Collection aggregation: three tasks' deltas become one series.
    let o = ctl(&["schema", "list"]);
    assert!(text(&o).contains("(collection aggregation: drop [task_num] every 5s, admitted for 5s)"), "{}", text(&o));
    let o = ctl(&["write", "-f", "examples/tour/deltas.jsonl"]);
    assert!(o.status.success(), "{}", text(&o));
    let read = || {
        ctl(&["read", "--target", "ComputeTask", "--metric", "/rpc/server/requests", "-o", "json", "--from", "now-1m"])
    };
    let started = std::time::Instant::now();
    let line = loop {
        let o = read();
        assert!(o.status.success(), "{}", text(&o));
        if let Some(l) = String::from_utf8_lossy(&o.stdout).lines().find(|l| l.contains("\"points\":[{")) {
            break serde_json::from_str::<serde_json::Value>(l).unwrap();
        }
        assert!(started.elapsed() < std::time::Duration::from_secs(30), "no aggregated point: {}", text(&o));
        std::thread::sleep(std::time::Duration::from_millis(500));
    };
    assert_eq!(line["target_fields"]["task_num"], 0, "{line}");
    assert_eq!(line["points"][0]["value"], 12, "{line}");

    let o = ctl(&["read", "--target", "ComputeTask", "--metric", "/rpc/server/latency", "--match", "nope=1"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(text(&o).contains("unknown field \"nope\""), "{}", text(&o));
}
