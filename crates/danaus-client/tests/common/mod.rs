//! What the command-line tests share: the `danaus` binary started as
//! `danaus standalone` on a fresh directory, and `danausctl` run against it.

#![allow(dead_code, clippy::unwrap_used)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};

/// The `danaus` binary (built if testing this crate alone did not).
pub fn danaus_bin() -> PathBuf {
    let ctl = Path::new(env!("CARGO_BIN_EXE_danausctl"));
    let bin = ctl.with_file_name("danaus");
    if !bin.exists() {
        let status = Command::new(env!("CARGO"))
            .args(["build", "-p", "danaus-server", "--bin", "danaus"])
            .status()
            .expect("cargo build");
        assert!(status.success());
    }
    bin
}

/// A `danaus standalone` process, killed when dropped.
pub struct Server {
    child: Child,
    /// Its gRPC address.
    pub grpc: String,
    _dir: tempfile::TempDir,
}

impl Server {
    /// Starts one on a fresh data directory and waits for its ready line.
    pub fn start() -> Server {
        let dir = tempfile::tempdir().unwrap();
        let mut child = Command::new(danaus_bin())
            .args([
                "standalone",
                "--grpc-addr",
                "127.0.0.1:0",
                "--http-addr",
                "127.0.0.1:0",
                "--log",
                "warn",
                "--data-dir",
            ])
            .arg(dir.path())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
        let grpc = line.split_whitespace().find_map(|p| p.strip_prefix("grpc=")).expect("ready line").to_owned();
        Server { child, grpc, _dir: dir }
    }

    /// Runs `danausctl --addr THIS ARGS` in the repository's root.
    pub fn ctl(&self, args: &[&str]) -> Output {
        ctl(&self.grpc, args)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs `danausctl --addr ADDR ARGS` in the repository's root.
pub fn ctl(addr: &str, args: &[&str]) -> Output {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    Command::new(env!("CARGO_BIN_EXE_danausctl")).arg("--addr").arg(addr).args(args).current_dir(root).output().unwrap()
}

/// stdout and stderr together.
pub fn text(o: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr))
}
