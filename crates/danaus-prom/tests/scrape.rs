//! Scraping real HTTP targets on loopback into a leaf: static and
//! file-discovered targets, both text formats, `up` and the other synthetic
//! series, stale markers for vanished series, and failing targets.

#![allow(clippy::unwrap_used)] // tests fail loudly by design

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::http::{header, HeaderMap, StatusCode};
use axum::response::IntoResponse;
use axum::routing::get;
use danaus_leaf::{Leaf, LeafConfig, LeafOptions};
use danaus_model::{FieldValue, Value};
use danaus_model::{MatchOp, Matcher, ReadRequest};
use danaus_prom::scrape::{ScrapeConfig, Scraper, STALE_NAN};
use danaus_prom::{Receiver, TARGET_SCHEMA};
use danaus_storage::{MemKv, MemLogDevice, SystemClock};
use parking_lot::Mutex;

#[derive(Clone)]
struct Target {
    body: Arc<Mutex<(u16, String)>>,
    openmetrics: bool,
}

async fn serve(t: Target) -> String {
    let app = axum::Router::new().route(
        "/metrics",
        get(move |headers: HeaderMap| {
            let t = t.clone();
            async move {
                let (status, body) = t.body.lock().clone();
                let wants_om = headers
                    .get(header::ACCEPT)
                    .and_then(|v| v.to_str().ok())
                    .is_some_and(|a| a.contains("application/openmetrics-text"));
                let ct = if t.openmetrics && wants_om {
                    "application/openmetrics-text; version=1.0.0; charset=utf-8"
                } else {
                    "text/plain; version=0.0.4; charset=utf-8"
                };
                (StatusCode::from_u16(status).unwrap(), [(header::CONTENT_TYPE, ct)], body).into_response()
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    addr
}

async fn values(leaf: &Leaf, metric: &str, instance: &str) -> Vec<(Vec<(String, FieldValue)>, f64)> {
    let req = ReadRequest {
        target_schema: TARGET_SCHEMA.into(),
        metric: metric.into(),
        matchers: vec![Matcher { field: "instance".into(), op: MatchOp::Eq, value: instance.into() }],
        start: i64::MIN,
        end: i64::MAX,
    };
    let Ok(read) = leaf.read("scraped", &req).await else { return Vec::new() };
    read.into_iter()
        .flat_map(|(s, points)| {
            let fields: Vec<(String, FieldValue)> = s.target_fields.iter().chain(&s.metric_fields).cloned().collect();
            points.into_iter().map(move |p| match p.value {
                Value::Double(d) => (fields.clone(), d),
                v => panic!("{v:?}"),
            })
        })
        .collect()
}

async fn eventually<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + Duration::from_secs(20);
    while !check().await {
        assert!(Instant::now() < deadline, "timed out waiting for: {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A leaf in memory.
async fn mem_leaf() -> Leaf {
    Leaf::open(LeafConfig {
        kv: Arc::new(MemKv::new()),
        log: Arc::new(MemLogDevice::new()),
        clock: Arc::new(SystemClock),
        options: LeafOptions::default(),
    })
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scrapes_static_and_discovered_targets() {
    let leaf = mem_leaf().await;
    let a = Target {
        body: Arc::new(Mutex::new((
            200,
            "# TYPE app_requests_total counter\napp_requests_total{code=\"200\"} 7\napp_requests_total{code=\"500\"} 1\n\
             # TYPE app_temp gauge\napp_temp 21.5\n"
                .into(),
        ))),
        openmetrics: false,
    };
    let b = Target {
        body: Arc::new(Mutex::new((200, "# TYPE jobs counter\njobs_total 3\n# EOF\n".into()))),
        openmetrics: true,
    };
    let (addr_a, addr_b) = (serve(a.clone()).await, serve(b.clone()).await);
    let dir = tempfile::tempdir().unwrap();
    let config = format!(
        "tenant: scraped\nscrape_configs:\n  - job_name: app\n    scrape_interval: 100ms\n    scrape_timeout: 100ms\n    \
         static_configs:\n      - targets: ['{addr_a}']\n        labels: {{env: prod}}\n    \
         file_sd_configs:\n      - files: ['sd/*.json']\n        refresh_interval: 100ms\n"
    );
    std::fs::create_dir(dir.path().join("sd")).unwrap();
    std::fs::write(dir.path().join("scrape.yml"), config).unwrap();
    let cfg = ScrapeConfig::load(&dir.path().join("scrape.yml")).unwrap();
    let rx = Arc::new(Receiver::new(Arc::new(leaf.clone()), "local"));
    let scraper = Scraper::start(cfg, rx);

    // The static target: its samples with the target's labels, and `up`.
    eventually("app_temp from the static target", || async { !values(&leaf, "app_temp", &addr_a).await.is_empty() })
        .await;
    let (fields, v) = values(&leaf, "app_temp", &addr_a).await.remove(0);
    assert_eq!(v, 21.5);
    assert!(fields.contains(&("job".into(), FieldValue::String("app".into()))), "{fields:?}");
    assert!(fields.contains(&("env".into(), FieldValue::String("prod".into()))), "{fields:?}");
    eventually("up == 1", || async { values(&leaf, "up", &addr_a).await.iter().any(|(_, v)| *v == 1.0) }).await;
    eventually("scrape_samples_scraped == 3", || async {
        values(&leaf, "scrape_samples_scraped", &addr_a).await.iter().any(|(_, v)| *v == 3.0)
    })
    .await;
    assert_eq!(leaf.metric_schema("scraped", "app_requests_total").unwrap().kind, danaus_model::MetricKind::Cumulative);

    // A target appears in a discovery file: it is scraped (OpenMetrics).
    std::fs::write(
        dir.path().join("sd/more.json"),
        format!(r#"[{{"targets": ["{addr_b}"], "labels": {{"env": "batch", "__meta_x": "dropped"}}}}]"#),
    )
    .unwrap();
    eventually("jobs_total from the discovered target", || async {
        !values(&leaf, "jobs_total", &addr_b).await.is_empty()
    })
    .await;
    eventually("up == 1 for the discovered target", || async {
        values(&leaf, "up", &addr_b).await.iter().any(|(_, v)| *v == 1.0)
    })
    .await;
    let (fields, _) = values(&leaf, "up", &addr_b).await.remove(0);
    assert!(fields.contains(&("env".into(), FieldValue::String("batch".into()))), "{fields:?}");
    assert!(!fields.iter().any(|(k, _)| k.starts_with("__")), "internal labels are dropped: {fields:?}");

    // The discovery file is edited (another target added): it is read
    // again and the new target scraped.
    let c = Target {
        body: Arc::new(Mutex::new((200, "# TYPE jobs counter\njobs_total 5\n# EOF\n".into()))),
        openmetrics: true,
    };
    let addr_c = serve(c.clone()).await;
    std::fs::write(
        dir.path().join("sd/more.json"),
        format!(r#"[{{"targets": ["{addr_b}", "{addr_c}"], "labels": {{"env": "batch", "__meta_x": "dropped"}}}}]"#),
    )
    .unwrap();
    eventually("jobs_total from the target added by editing the file", || async {
        values(&leaf, "jobs_total", &addr_c).await.iter().any(|(_, v)| *v == 5.0)
    })
    .await;

    // A series vanishes: it gets a stale marker.
    a.body.lock().1 = "app_requests_total{code=\"200\"} 8\napp_temp 22\n".into();
    eventually("a stale marker for code=500", || async {
        values(&leaf, "app_requests_total", &addr_a)
            .await
            .iter()
            .any(|(f, v)| v.to_bits() == STALE_NAN && f.contains(&("code".into(), FieldValue::String("500".into()))))
    })
    .await;

    // The target fails: up == 0, and its series end with stale markers.
    a.body.lock().0 = 500;
    eventually("up == 0 for the failing target", || async {
        values(&leaf, "up", &addr_a).await.iter().any(|(_, v)| *v == 0.0)
    })
    .await;
    eventually("a stale marker for app_temp after the failed scrape", || async {
        values(&leaf, "app_temp", &addr_a).await.last().is_some_and(|(_, v)| v.to_bits() == STALE_NAN)
    })
    .await;

    // The discovery file goes away: the target's series, `up` included,
    // end with stale markers, and it is no longer scraped.
    std::fs::remove_file(dir.path().join("sd/more.json")).unwrap();
    let stale = |v: &[(Vec<(String, FieldValue)>, f64)]| v.last().is_some_and(|(_, v)| v.to_bits() == STALE_NAN);
    eventually("stale markers for the removed target", || async {
        stale(&values(&leaf, "up", &addr_b).await) && stale(&values(&leaf, "jobs_total", &addr_b).await)
    })
    .await;
    let before = values(&leaf, "up", &addr_b).await.len();
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(values(&leaf, "up", &addr_b).await.len(), before, "a removed target is still scraped");
    scraper.stop().await;
}

/// A target slower than its scrape timeout is down; `honor_labels` decides
/// whether a scraped `job`/`instance` wins or becomes `exported_*`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn timeouts_and_honor_labels() {
    let leaf = mem_leaf().await;
    let body = |name: &str| format!("# TYPE {name} gauge\n{name}{{job=\"exported\",instance=\"x\"}} 1\n");
    let honored = serve(Target { body: Arc::new(Mutex::new((200, body("honored_metric")))), openmetrics: false }).await;
    let plain = serve(Target { body: Arc::new(Mutex::new((200, body("plain_metric")))), openmetrics: false }).await;
    // A target that answers after 1 s.
    let app = axum::Router::new().route(
        "/metrics",
        get(|| async {
            tokio::time::sleep(Duration::from_secs(1)).await;
            "# TYPE slow_metric gauge\nslow_metric 1\n"
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let slow = listener.local_addr().unwrap().to_string();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    let dir = tempfile::tempdir().unwrap();
    let config = format!(
        "tenant: scraped\nscrape_configs:\n\
         \x20 - job_name: honor\n    scrape_interval: 100ms\n    scrape_timeout: 100ms\n    honor_labels: true\n    \
         static_configs: [{{targets: ['{honored}']}}]\n\
         \x20 - job_name: plain\n    scrape_interval: 100ms\n    scrape_timeout: 100ms\n    \
         static_configs: [{{targets: ['{plain}']}}]\n\
         \x20 - job_name: slow\n    scrape_interval: 200ms\n    scrape_timeout: 100ms\n    \
         static_configs: [{{targets: ['{slow}']}}]\n"
    );
    std::fs::write(dir.path().join("scrape.yml"), config).unwrap();
    let cfg = ScrapeConfig::load(&dir.path().join("scrape.yml")).unwrap();
    let scraper = Scraper::start(cfg, Arc::new(Receiver::new(Arc::new(leaf.clone()), "local")));

    // honor_labels: the scraped job and instance win.
    eventually("honored_metric", || async { !values(&leaf, "honored_metric", "x").await.is_empty() }).await;
    let (fields, _) = values(&leaf, "honored_metric", "x").await.remove(0);
    assert!(fields.contains(&("job".into(), FieldValue::String("exported".into()))), "{fields:?}");
    // Without it the target's win and the scraped ones are kept as exported_*.
    eventually("plain_metric", || async { !values(&leaf, "plain_metric", &plain).await.is_empty() }).await;
    let (fields, _) = values(&leaf, "plain_metric", &plain).await.remove(0);
    assert!(fields.contains(&("job".into(), FieldValue::String("plain".into()))), "{fields:?}");
    assert!(fields.contains(&("exported_job".into(), FieldValue::String("exported".into()))), "{fields:?}");
    assert!(fields.contains(&("exported_instance".into(), FieldValue::String("x".into()))), "{fields:?}");
    // The slow target: up 0 each time, nothing of its body stored.
    eventually("up == 0 for the slow target", || async {
        let up = values(&leaf, "up", &slow).await;
        up.len() >= 2 && up.iter().all(|(_, v)| *v == 0.0)
    })
    .await;
    assert!(values(&leaf, "slow_metric", &slow).await.is_empty());
    scraper.stop().await;
}

/// An https listener for axum: TLS accepted before a connection is served.
struct TlsListener {
    tcp: tokio::net::TcpListener,
    acceptor: tokio_rustls::TlsAcceptor,
}

impl axum::serve::Listener for TlsListener {
    type Io = tokio_rustls::server::TlsStream<tokio::net::TcpStream>;
    type Addr = std::net::SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        loop {
            let Ok((s, a)) = self.tcp.accept().await else { continue };
            if let Ok(tls) = self.acceptor.accept(s).await {
                return (tls, a);
            }
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        self.tcp.local_addr()
    }
}

/// A certificate authority of a test's own.
struct TestCa {
    cert: rcgen::Certificate,
    key: rcgen::KeyPair,
}

impl TestCa {
    fn new() -> TestCa {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        params.distinguished_name.push(rcgen::DnType::CommonName, "danaus test CA");
        TestCa { cert: params.self_signed(&key).unwrap(), key }
    }

    /// A certificate for `names` signed by this CA, and its key.
    fn issue(&self, names: &[&str]) -> (rcgen::Certificate, rcgen::KeyPair) {
        let key = rcgen::KeyPair::generate().unwrap();
        let params = rcgen::CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>()).unwrap();
        (params.signed_by(&key, &self.cert, &self.key).unwrap(), key)
    }
}

/// Serves `app` over TLS with `tls` on an ephemeral port: its address.
async fn serve_tls(app: axum::Router, tls: tokio_rustls::rustls::ServerConfig) -> String {
    let tcp = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = tcp.local_addr().unwrap().to_string();
    let listener = TlsListener { tcp, acceptor: tokio_rustls::TlsAcceptor::from(Arc::new(tls)) };
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    addr
}

/// An https target signed by a CA of its own, behind basic auth, is
/// scraped when the job names that CA and the credentials (the password
/// in a file); without the CA, or without the credentials, the scrape
/// fails (`up` 0) and nothing of it is stored. A target that wants a
/// client certificate gets the job's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scrapes_https_targets_with_their_ca_and_basic_auth() {
    use tokio_rustls::rustls::{self, pki_types};
    let leaf = mem_leaf().await;
    let ca = TestCa::new();
    let (server_cert, server_key) = ca.issue(&["127.0.0.1", "localhost"]);
    let (client_cert, client_key) = ca.issue(&["scraper"]);
    let chain = || vec![pki_types::CertificateDer::from(server_cert.der().to_vec())];
    let key = || pki_types::PrivateKeyDer::Pkcs8(server_key.serialize_der().into());
    let app = axum::Router::new().route(
        "/metrics",
        get(|headers: HeaderMap| async move {
            // scraper:s3cret
            if headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()) != Some("Basic c2NyYXBlcjpzM2NyZXQ=") {
                return (StatusCode::UNAUTHORIZED, "who are you?\n").into_response();
            }
            "# TYPE secure_metric gauge\nsecure_metric 42\n".into_response()
        }),
    );
    let tls = rustls::ServerConfig::builder().with_no_client_auth().with_single_cert(chain(), key()).unwrap();
    let addr = serve_tls(app, tls).await;
    // A second target takes only clients with a certificate of the CA.
    let mut roots = rustls::RootCertStore::empty();
    roots.add(pki_types::CertificateDer::from(ca.cert.der().to_vec())).unwrap();
    let verifier = rustls::server::WebPkiClientVerifier::builder(Arc::new(roots)).build().unwrap();
    let mtls =
        rustls::ServerConfig::builder().with_client_cert_verifier(verifier).with_single_cert(chain(), key()).unwrap();
    let mtls_app =
        axum::Router::new().route("/metrics", get(|| async { "# TYPE mutual_metric gauge\nmutual_metric 7\n" }));
    let mtls_addr = serve_tls(mtls_app, mtls).await;

    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("ca.pem"), ca.cert.pem()).unwrap();
    std::fs::write(dir.path().join("client.pem"), client_cert.pem()).unwrap();
    std::fs::write(dir.path().join("client-key.pem"), client_key.serialize_pem()).unwrap();
    std::fs::write(dir.path().join("password"), "s3cret\n").unwrap();
    let job = |name: &str, target: &str, extra: &str| {
        format!(
            "  - job_name: {name}\n    scheme: https\n    scrape_interval: 100ms\n    scrape_timeout: 100ms\n{extra}    \
             static_configs: [{{targets: ['{target}'], labels: {{via: {name}}}}}]\n"
        )
    };
    let config = [
        job(
            "secure",
            &addr,
            "    tls_config: {ca_file: ca.pem}\n    basic_auth: {username: scraper, password_file: password}\n",
        ),
        job("no_ca", &addr, "    basic_auth: {username: scraper, password: s3cret}\n"),
        job("no_auth", &addr, "    tls_config: {ca_file: ca.pem}\n"),
        job(
            "mutual",
            &mtls_addr,
            "    tls_config: {ca_file: ca.pem, cert_file: client.pem, key_file: client-key.pem}\n",
        ),
        job("no_cert", &mtls_addr, "    tls_config: {ca_file: ca.pem}\n"),
    ]
    .concat();
    std::fs::write(dir.path().join("scrape.yml"), format!("tenant: scraped\nscrape_configs:\n{config}")).unwrap();
    let cfg = ScrapeConfig::load(&dir.path().join("scrape.yml")).unwrap();
    let scraper = Scraper::start(cfg, Arc::new(Receiver::new(Arc::new(leaf.clone()), "local")));
    let via = |fields: &[(String, FieldValue)]| {
        fields.iter().find(|(k, _)| k == "via").map(|(_, v)| v.to_text()).unwrap_or_default()
    };
    eventually("secure_metric", || async { !values(&leaf, "secure_metric", &addr).await.is_empty() }).await;
    eventually("mutual_metric", || async { !values(&leaf, "mutual_metric", &mtls_addr).await.is_empty() }).await;
    eventually("every job's up twice", || async {
        let mut up = values(&leaf, "up", &addr).await;
        up.extend(values(&leaf, "up", &mtls_addr).await);
        ["secure", "no_ca", "no_auth", "mutual", "no_cert"]
            .iter()
            .all(|j| up.iter().filter(|(f, _)| via(f) == *j).count() >= 2)
    })
    .await;
    let mut up = values(&leaf, "up", &addr).await;
    up.extend(values(&leaf, "up", &mtls_addr).await);
    for (fields, v) in up {
        let want = if ["secure", "mutual"].contains(&via(&fields).as_str()) { 1.0 } else { 0.0 };
        assert_eq!(v, want, "up of {fields:?}");
    }
    let stored: Vec<String> = values(&leaf, "secure_metric", &addr).await.iter().map(|(f, _)| via(f)).collect();
    assert!(stored.iter().all(|j| j == "secure"), "{stored:?}");
    scraper.stop().await;
}

/// `authorization` (credentials inline or in a file, read at each scrape)
/// and the older `bearer_token` send the header a target asks for.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bearer_tokens_are_sent_and_rotated_files_reread() {
    let leaf = mem_leaf().await;
    let token = Arc::new(Mutex::new("Bearer t1".to_owned()));
    let want = token.clone();
    let app = axum::Router::new().route(
        "/metrics",
        get(move |headers: HeaderMap| {
            let want = want.lock().clone();
            async move {
                let got = headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()).unwrap_or_default();
                if got != want {
                    return (StatusCode::FORBIDDEN, "no\n").into_response();
                }
                "# TYPE token_metric gauge\ntoken_metric 1\n".into_response()
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("token"), "t1\n").unwrap();
    let config = format!(
        "tenant: scraped\nscrape_configs:\n\
         \x20 - job_name: file\n    scrape_interval: 100ms\n    scrape_timeout: 100ms\n    \
         authorization: {{credentials_file: token}}\n    static_configs: [{{targets: ['{addr}'], labels: {{via: file}}}}]\n\
         \x20 - job_name: inline\n    scrape_interval: 100ms\n    scrape_timeout: 100ms\n    \
         bearer_token: t1\n    static_configs: [{{targets: ['{addr}'], labels: {{via: inline}}}}]\n"
    );
    std::fs::write(dir.path().join("scrape.yml"), config).unwrap();
    let cfg = ScrapeConfig::load(&dir.path().join("scrape.yml")).unwrap();
    let scraper = Scraper::start(cfg, Arc::new(Receiver::new(Arc::new(leaf.clone()), "local")));
    let up_of = |job: &'static str| {
        let leaf = leaf.clone();
        let addr = addr.clone();
        async move {
            values(&leaf, "up", &addr)
                .await
                .into_iter()
                .filter(|(f, _)| f.iter().any(|(k, v)| k == "via" && v.to_text() == job))
                .map(|(_, v)| v)
                .collect::<Vec<f64>>()
        }
    };
    eventually("both jobs up", || async { up_of("file").await.contains(&1.0) && up_of("inline").await.contains(&1.0) })
        .await;
    // The target rotates its token, and so does the file: the file's job
    // follows, the inline one fails.
    *token.lock() = "Bearer t2".into();
    std::fs::write(dir.path().join("token"), "t2\n").unwrap();
    let (file_before, inline_before) = (up_of("file").await.len(), up_of("inline").await.len());
    eventually("the file's job up with the new token, the inline one down", || async {
        let (f, i) = (up_of("file").await, up_of("inline").await);
        f.len() > file_before + 2 && i.len() > inline_before + 2 && f.last() == Some(&1.0) && i.last() == Some(&0.0)
    })
    .await;
    scraper.stop().await;
}
