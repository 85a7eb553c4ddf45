//! Starting real `danaus standalone` processes on loopback.

#![allow(dead_code)] // each test binary uses a different subset

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The `danaus` binary these tests run: `DANAUS_BIN` if set, else the one
/// the workspace build put in this test's target directory (the tests run
/// it as built: `scripts/test` builds the whole workspace first; after
/// changing the server, running only this package needs
/// `cargo build -p danaus-server --bin danaus` too).
pub fn danaus_bin() -> PathBuf {
    if let Some(p) = std::env::var_os("DANAUS_BIN") {
        return p.into();
    }
    let exe = std::env::current_exe().expect("the test binary's own path");
    // target/<profile>/deps/<test> → target/<profile>/danaus
    let bin = exe.parent().and_then(Path::parent).expect("a target directory").join("danaus");
    assert!(
        bin.exists(),
        "{} not found: build it (`cargo build -p danaus-server --bin danaus`, or run every test with \
         scripts/test), or point DANAUS_BIN at a danaus binary",
        bin.display()
    );
    bin
}

/// A running `danaus standalone` child process.
pub struct Server {
    pub child: Child,
    pub grpc: String,
    pub http: String,
}

impl Server {
    /// Starts the binary on ephemeral ports and waits for its ready line.
    #[allow(clippy::zombie_processes)] // Drop kills and reaps it
    pub fn start(data_dir: &Path, extra: &[&str]) -> Server {
        let mut child = Command::new(danaus_bin())
            .arg("standalone")
            .arg("--data-dir")
            .arg(data_dir)
            .args(["--grpc-addr", "127.0.0.1:0", "--http-addr", "127.0.0.1:0", "--log", "warn"])
            .args(extra)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn danaus");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let line = rx.recv_timeout(left).expect("danaus did not print its ready line within 60s");
            if let Some(rest) = line.strip_prefix("danaus standalone listening ") {
                let mut grpc = String::new();
                let mut http = String::new();
                for part in rest.split_whitespace() {
                    if let Some(a) = part.strip_prefix("grpc=") {
                        grpc = format!("http://{a}");
                    }
                    if let Some(a) = part.strip_prefix("http=") {
                        http = a.to_owned();
                    }
                }
                return Server { child, grpc, http };
            }
        }
    }

    /// SIGKILL: no flush, no checkpoint.
    pub fn kill9(mut self) {
        self.child.kill().expect("kill -9");
        self.child.wait().expect("wait");
    }

    /// SIGTERM and wait for a clean exit.
    pub fn terminate(mut self) {
        let pid = self.child.id() as i32;
        // SAFETY-free: libc::kill with a valid pid and signal number.
        let rc = unsafe_kill(pid, libc::SIGTERM);
        assert_eq!(rc, 0);
        let status = self.child.wait().expect("wait");
        assert!(status.success(), "danaus exited with {status}");
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        // A failing test must not leave a server behind.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[allow(unsafe_code)]
fn unsafe_kill(pid: i32, sig: i32) -> i32 {
    // SAFETY: kill(2) has no memory-safety preconditions.
    unsafe { libc::kill(pid, sig) }
}

/// A blocking HTTP GET on loopback, returning (status, body).
pub fn http_get(addr: &str, path: &str) -> (u16, String) {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(addr).expect("connect http");
    write!(s, "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n").expect("send");
    let mut buf = String::new();
    s.read_to_string(&mut buf).expect("read");
    let status = buf.split_whitespace().nth(1).and_then(|c| c.parse().ok()).unwrap_or(0);
    let (head, body) = buf.split_once("\r\n\r\n").unwrap_or((&buf, ""));
    let chunked = head.lines().any(|l| {
        l.to_ascii_lowercase().starts_with("transfer-encoding:") && l.to_ascii_lowercase().contains("chunked")
    });
    (status, if chunked { dechunk(body) } else { body.to_owned() })
}

/// The body of a chunked HTTP/1.1 response.
fn dechunk(mut rest: &str) -> String {
    let mut out = String::new();
    while let Some((size, after)) = rest.split_once("\r\n") {
        let n = usize::from_str_radix(size.split(';').next().unwrap_or("").trim(), 16).unwrap_or(0);
        if n == 0 || after.len() < n {
            break;
        }
        out.push_str(&after[..n]);
        rest = after[n..].strip_prefix("\r\n").unwrap_or(&after[n..]);
    }
    out
}

/// A blocking HTTP POST on loopback, returning (status, headers, body).
pub fn http_post(addr: &str, path: &str, headers: &[(&str, &str)], body: &[u8]) -> (u16, String, String) {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(addr).expect("connect http");
    let mut head =
        format!("POST {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: {}\r\n", body.len());
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    s.write_all(head.as_bytes()).expect("send");
    s.write_all(body).expect("send body");
    let mut buf = String::new();
    s.read_to_string(&mut buf).expect("read");
    let status = buf.split_whitespace().nth(1).and_then(|c| c.parse().ok()).unwrap_or(0);
    let (head, body) = buf.split_once("\r\n\r\n").unwrap_or((&buf, ""));
    (status, head.to_owned(), body.to_owned())
}

/// A child process killed and reaped on drop (a peer such as Prometheus).
pub struct Proc(pub Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A free loopback port, never one this test process handed out before
/// (the kernel may give a just-released port again).
pub fn free_port() -> u16 {
    static GIVEN: std::sync::Mutex<std::collections::BTreeSet<u16>> =
        std::sync::Mutex::new(std::collections::BTreeSet::new());
    loop {
        let port = std::net::TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr").port();
        if GIVEN.lock().unwrap_or_else(|e| e.into_inner()).insert(port) {
            return port;
        }
    }
}

/// Waits up to 30 s for `GET path` on `addr` to answer 200.
pub fn wait_http(addr: &str, path: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if std::net::TcpStream::connect(addr).is_ok() && http_get(addr, path).0 == 200 {
            return;
        }
        assert!(Instant::now() < deadline, "{addr}{path} did not come up");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// A remote_write 1.0 series.
pub fn series(labels: &[(&str, &str)], samples: &[(i64, f64)]) -> danaus_prom::prompb::v1::TimeSeries {
    use danaus_prom::prompb::v1;
    v1::TimeSeries {
        labels: labels.iter().map(|(n, v)| v1::Label { name: (*n).into(), value: (*v).into() }).collect(),
        samples: samples.iter().map(|&(timestamp, value)| v1::Sample { value, timestamp }).collect(),
        histograms: vec![],
    }
}

/// POSTs `req` as remote_write 1.0 (snappy protobuf) to `addr`, with the
/// extra `headers`: (status, body).
pub fn remote_write(
    addr: &str,
    req: &danaus_prom::prompb::v1::WriteRequest,
    headers: &[(&str, &str)],
) -> (u16, String) {
    use prost::Message;
    let body = snap::raw::Encoder::new().compress_vec(&req.encode_to_vec()).expect("snappy");
    let mut h = vec![
        ("Content-Type", "application/x-protobuf"),
        ("Content-Encoding", "snappy"),
        ("X-Prometheus-Remote-Write-Version", "0.1.0"),
    ];
    h.extend_from_slice(headers);
    let (status, _, text) = http_post(addr, "/api/v1/write", &h, &body);
    (status, text)
}

/// The schemas the zone tests write: target `Task` (`cluster`, the
/// location, and `task`) and the gauge `/load`.
pub fn task_load_schemas() -> danaus_proto::v1::ApplySchemasRequest {
    use danaus_proto::v1 as pb;
    let target = pb::TargetSchema {
        name: "Task".into(),
        fields: vec![
            pb::FieldDef { name: "cluster".into(), r#type: pb::FieldType::String as i32, added: false },
            pb::FieldDef { name: "task".into(), r#type: pb::FieldType::String as i32, added: false },
        ],
        location_field: "cluster".into(),
    };
    let metric = pb::MetricSchema {
        name: "/load".into(),
        fields: vec![],
        value_type: Some(pb::ValueType { elements: vec![pb::ScalarType::Double as i32], tuple: false }),
        kind: pb::MetricKind::Gauge as i32,
        unit: String::new(),
        description: String::new(),
        collection: None,
    };
    pb::ApplySchemasRequest { targets: vec![target], metrics: vec![metric] }
}

/// Prints the last lines of every process log in `dir` (a dev cluster's).
pub fn dump_logs(dir: &Path) {
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        if e.path().extension().is_some_and(|x| x == "log") {
            let text = std::fs::read_to_string(e.path()).unwrap_or_default();
            let tail: Vec<&str> = text.lines().rev().take(30).collect();
            eprintln!(
                "==== {} (last lines)\n{}",
                e.path().display(),
                tail.into_iter().rev().collect::<Vec<_>>().join("\n")
            );
        }
    }
}

/// A webhook receiver on loopback: keeps the JSON body of every POST.
pub struct WebhookSink {
    /// host:port.
    pub addr: String,
    /// Bodies received, in order.
    pub bodies: std::sync::Arc<std::sync::Mutex<Vec<serde_json::Value>>>,
}

impl WebhookSink {
    /// Starts it (threads that end with the test process).
    pub fn start() -> WebhookSink {
        use std::io::{Read, Write};
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = listener.local_addr().expect("addr").to_string();
        let bodies: std::sync::Arc<std::sync::Mutex<Vec<serde_json::Value>>> = Default::default();
        let b = bodies.clone();
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(mut conn) = conn else { continue };
                let b = b.clone();
                std::thread::spawn(move || {
                    // Requests on a kept-alive connection, one after another.
                    let mut buf = Vec::new();
                    let mut chunk = [0u8; 8192];
                    loop {
                        let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") else {
                            match conn.read(&mut chunk) {
                                Ok(0) | Err(_) => return,
                                Ok(n) => buf.extend_from_slice(&chunk[..n]),
                            }
                            continue;
                        };
                        let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
                        let len: usize = head
                            .lines()
                            .find_map(|l| l.strip_prefix("content-length:"))
                            .and_then(|v| v.trim().parse().ok())
                            .unwrap_or(0);
                        while buf.len() < end + 4 + len {
                            match conn.read(&mut chunk) {
                                Ok(0) | Err(_) => return,
                                Ok(n) => buf.extend_from_slice(&chunk[..n]),
                            }
                        }
                        let body: Vec<u8> = buf.drain(..end + 4 + len).skip(end + 4).collect();
                        if let Ok(v) = serde_json::from_slice(&body) {
                            b.lock().unwrap_or_else(|e| e.into_inner()).push(v);
                        }
                        if conn.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n").is_err() {
                            return;
                        }
                    }
                });
            }
        });
        WebhookSink { addr, bodies }
    }

    /// What it received so far.
    pub fn received(&self) -> Vec<serde_json::Value> {
        self.bodies.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

/// Debian's Alertmanager on a free port, routing every alert to `hook`
/// (grouped by alert name, sent at once, resolutions too); its address.
pub fn start_alertmanager(dir: &Path, hook: &str) -> (Proc, String) {
    let bin = "/usr/bin/prometheus-alertmanager";
    assert!(
        Path::new(bin).exists(),
        "prometheus-alertmanager is missing: install Debian's prometheus-alertmanager (scripts/test does)"
    );
    let addr = format!("127.0.0.1:{}", free_port());
    std::fs::create_dir_all(dir).expect("alertmanager dir");
    let config = dir.join("alertmanager.yml");
    std::fs::write(
        &config,
        format!(
            "route:\n  receiver: sink\n  group_by: [alertname]\n  group_wait: 0s\n  group_interval: 1s\n  repeat_interval: 1h\n\
             receivers:\n- name: sink\n  webhook_configs:\n  - url: http://{hook}/hook\n    send_resolved: true\n"
        ),
    )
    .expect("alertmanager config");
    let child = Command::new(bin)
        .arg(format!("--config.file={}", config.display()))
        .arg(format!("--storage.path={}", dir.join("data").display()))
        .arg(format!("--web.listen-address={addr}"))
        .arg("--cluster.listen-address=")
        .arg("--log.level=warn")
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn alertmanager");
    let p = Proc(child);
    wait_http(&addr, "/-/ready");
    (p, addr)
}
