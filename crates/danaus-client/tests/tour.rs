//! The README's tour, run for real: `danaus standalone` plus `danausctl`
//! with the files in `examples/tour/`. If this fails, the README lies.

#![allow(clippy::unwrap_used)] // tests fail loudly by design

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};

fn danaus_bin() -> PathBuf {
    let ctl = Path::new(env!("CARGO_BIN_EXE_danausctl"));
    let bin = ctl.with_file_name("danaus");
    if !bin.exists() {
        // Testing this crate alone does not build the server's binary.
        let status = Command::new(env!("CARGO"))
            .args(["build", "-p", "danaus-server", "--bin", "danaus"])
            .status()
            .expect("cargo build");
        assert!(status.success());
    }
    bin
}

struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn ctl(addr: &str, args: &[&str]) -> Output {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    Command::new(env!("CARGO_BIN_EXE_danausctl")).arg("--addr").arg(addr).args(args).current_dir(root).output().unwrap()
}

fn text(o: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr))
}

#[test]
fn readme_tour_works() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(danaus_bin())
        .args(["standalone", "--grpc-addr", "127.0.0.1:0", "--http-addr", "127.0.0.1:0", "--log", "warn", "--data-dir"])
        .arg(dir.path())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
    let _server = Server(child);
    let grpc = line.split_whitespace().find_map(|p| p.strip_prefix("grpc=")).expect("ready line").to_owned();

    let o = ctl(&grpc, &["schema", "apply", "-f", "examples/tour/schemas.yaml"]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(text(&o).contains("target ComputeTask: created"), "{}", text(&o));
    let o = ctl(&grpc, &["schema", "apply", "-f", "examples/tour/schemas.yaml"]);
    assert!(text(&o).contains("target ComputeTask: unchanged"), "{}", text(&o));
    let o = ctl(&grpc, &["schema", "list"]);
    assert!(
        text(&o).contains("target ComputeTask{cluster*: string, user: string, job: string, task_num: int64}"),
        "{}",
        text(&o)
    );

    // One series in the file is missing a field: refused and named, exit 1.
    let o = ctl(&grpc, &["write", "-f", "examples/tour/points.jsonl"]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    let out = text(&o);
    assert!(out.contains("wrote 6 points to 3 series; 1 series refused"), "{out}");
    assert!(out.contains("field \"job\": missing"), "{out}");

    let o = ctl(
        &grpc,
        &[
            "read",
            "--target",
            "ComputeTask",
            "--metric",
            "/rpc/server/latency",
            "--match",
            "user=monarch",
            "--match",
            "job=~mix.*",
        ],
    );
    assert!(o.status.success(), "{}", text(&o));
    let out = String::from_utf8_lossy(&o.stdout).to_string();
    assert!(out.contains("job=\"mixer\""), "{out}");
    assert!(!out.contains("job=\"leaf\""), "{out}");
    assert_eq!(out.lines().filter(|l| l.starts_with("  ")).count(), 3, "{out}");

    let o = ctl(&grpc, &["read", "--target", "ComputeTask", "--metric", "/rpc/server/count", "-o", "json"]);
    let line: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(line["points"][1]["value"], 25);
    assert_eq!(line["target_fields"]["user"], "alice");

    // Queries: the README's three.
    let o = ctl(
        &grpc,
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
    let o = ctl(
        &grpc,
        &[
            "query",
            "fetch ComputeTask::/rpc/server/count | align delta(1h)\n    | group_by [user], sum",
            "--from",
            "now-10m",
            "-o",
            "csv",
        ],
    );
    assert!(o.status.success(), "{}", text(&o));
    let out = String::from_utf8_lossy(&o.stdout).to_string();
    assert!(out.starts_with("time,user,value\n"), "{out}");
    assert!(out.lines().skip(1).all(|l| l.contains(",alice,")), "{out}");
    let o = ctl(&grpc, &["query", "fetch ComputeTask::/rpc/server/latency | fliter user == \"x\""]);
    assert_eq!(o.status.code(), Some(1));
    assert!(text(&o).contains("did you mean `filter`?"), "{}", text(&o));
    assert!(text(&o).contains("1:42: unknown operation `fliter`"), "{}", text(&o));

    // Collection aggregation: three tasks' deltas become one series.
    let o = ctl(&grpc, &["schema", "list"]);
    assert!(text(&o).contains("(collection aggregation: drop [task_num] every 5s, admitted for 5s)"), "{}", text(&o));
    let o = ctl(&grpc, &["write", "-f", "examples/tour/deltas.jsonl"]);
    assert!(o.status.success(), "{}", text(&o));
    let read = || {
        ctl(
            &grpc,
            &["read", "--target", "ComputeTask", "--metric", "/rpc/server/requests", "-o", "json", "--from", "now-1m"],
        )
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

    let o = ctl(&grpc, &["read", "--target", "ComputeTask", "--metric", "/rpc/server/latency", "--match", "nope=1"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(text(&o).contains("unknown field \"nope\""), "{}", text(&o));
}
