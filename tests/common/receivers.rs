//! Real metric receivers (Prometheus Pushgateway, VictoriaMetrics, vmauth) started as child
//! processes on loopback, each in its own temporary directory, plus blocking query helpers.
//!
//! Every `start*` returns `Err(reason)` only when the receiver's binary is not installed (the
//! test then prints `SKIPPED <test>: <reason>` and returns); any other problem (not ready in
//! time, exited at once) is a panic with the receiver's log. Dropping a receiver stops it:
//! SIGTERM, a bounded wait, then SIGKILL.
//!
//! Debian packages: `prometheus-pushgateway` (prometheus-pushgateway), `victoria-metrics`
//! (victoria-metrics, vmauth), `prometheus` (promtool).

use std::collections::BTreeMap;
use std::fs;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use serde_json::Value;

/// How long a receiver may take to answer its readiness endpoint (they take < 0.1 s).
const READY_TIMEOUT: Duration = Duration::from_secs(20);
/// How long a receiver may take to exit after SIGTERM (they take ~10 ms).
const STOP_TIMEOUT: Duration = Duration::from_secs(5);
/// Read/write timeout of one helper HTTP request.
const HTTP_TIMEOUT: Duration = Duration::from_secs(10);

/// Prints the standard skip line and returns from the test when a receiver is unavailable:
/// `let pg = receiver_or_skip!("test_name", Pushgateway::start());`
#[macro_export]
macro_rules! receiver_or_skip {
    ($test:expr, $start:expr) => {
        match $start {
            Ok(receiver) => receiver,
            Err(reason) => {
                eprintln!("SKIPPED {}: {}", $test, reason);
                return;
            }
        }
    };
}

/// The path of an installed program, or why the test must be skipped.
pub fn binary(name: &str) -> Result<PathBuf, String> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|candidate| is_executable(candidate))
        .ok_or_else(|| {
            format!(
                "`{name}` is not installed (apt-get install --no-install-recommends \
                 prometheus prometheus-pushgateway victoria-metrics)"
            )
        })
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// A loopback port that was free a moment ago (bind to port 0, read it, release it).
pub fn free_port() -> u16 {
    free_port_on("127.0.0.1")
}

/// A port of `host` that was free a moment ago, and that no other call in this test process has
/// handed out: the kernel may give a port it just gave again, and two of them in one
/// configuration make it invalid (two services on one port).
pub fn free_port_on(host: &str) -> u16 {
    static GIVEN: std::sync::Mutex<std::collections::BTreeSet<u16>> =
        std::sync::Mutex::new(std::collections::BTreeSet::new());
    loop {
        let listener =
            TcpListener::bind((host, 0)).unwrap_or_else(|e| panic!("bind {host}:0: {e}"));
        let port = listener.local_addr().expect("local address").port();
        if GIVEN.lock().unwrap_or_else(|p| p.into_inner()).insert(port) {
            return port;
        }
    }
}

/// Serves `app` on a free port of `host` from a thread of its own (for as long as the test
/// process runs); the base URL, `http://host:port`.
pub fn serve_on(host: &str, app: axum::Router) -> String {
    let listener = TcpListener::bind((host, 0)).unwrap_or_else(|e| panic!("bind {host}:0: {e}"));
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    enclave_testkit::serve_in_thread(listener, app, std::future::pending());
    url
}

/// Polls `probe` until it yields a value or `timeout` passes (then panics naming `what`).
pub fn wait_for<T>(timeout: Duration, what: &str, mut probe: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(value) = probe() {
            return value;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {timeout:?} waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

// ---------------------------------------------------------------------------------------------
// A minimal blocking HTTP/1.0 client (one request per connection; the receivers answer 1.0
// requests with Content-Length or by closing the connection, never chunked, but chunked bodies
// are decoded anyway).

#[derive(Debug, Clone)]
pub struct HttpResponse {
    pub status: u16,
    pub body: String,
}

/// One request. `basic_auth` is (user, password); `body` is (content type, bytes).
pub fn http(
    method: &str,
    url: &str,
    basic_auth: Option<(&str, &str)>,
    body: Option<(&str, &[u8])>,
) -> std::io::Result<HttpResponse> {
    let parsed = url::Url::parse(url).map_err(|e| std::io::Error::other(format!("{url}: {e}")))?;
    let host = parsed.host_str().unwrap_or("127.0.0.1").to_owned();
    let port = parsed.port_or_known_default().unwrap_or(80);
    let mut target = parsed.path().to_owned();
    if let Some(query) = parsed.query() {
        target.push('?');
        target.push_str(query);
    }
    let address = (host.as_str(), port)
        .to_socket_addrs()?
        .next()
        .ok_or_else(|| std::io::Error::other(format!("{host}: no address")))?;
    let mut stream = TcpStream::connect_timeout(&address, HTTP_TIMEOUT)?;
    stream.set_read_timeout(Some(HTTP_TIMEOUT))?;
    stream.set_write_timeout(Some(HTTP_TIMEOUT))?;
    let mut head =
        format!("{method} {target} HTTP/1.0\r\nHost: {host}:{port}\r\nConnection: close\r\n");
    if let Some((user, password)) = basic_auth {
        head.push_str(&format!(
            "Authorization: Basic {}\r\n",
            STANDARD.encode(format!("{user}:{password}"))
        ));
    }
    let payload: &[u8] = match body {
        Some((content_type, bytes)) => {
            head.push_str(&format!("Content-Type: {content_type}\r\n"));
            bytes
        }
        None => &[],
    };
    head.push_str(&format!("Content-Length: {}\r\n\r\n", payload.len()));
    stream.write_all(head.as_bytes())?;
    stream.write_all(payload)?;
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw)?;
    parse_response(&raw)
}

fn parse_response(raw: &[u8]) -> std::io::Result<HttpResponse> {
    let bad = |what: &str| std::io::Error::other(format!("malformed HTTP response: {what}"));
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| bad("no end of headers"))?;
    let head = String::from_utf8_lossy(&raw[..split]);
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| bad("no status"))?;
    let chunked = lines.any(|l| {
        let l = l.to_ascii_lowercase();
        l.starts_with("transfer-encoding:") && l.contains("chunked")
    });
    let mut body = raw[split + 4..].to_vec();
    if chunked {
        body = dechunk(&body).ok_or_else(|| bad("chunked body"))?;
    }
    Ok(HttpResponse {
        status,
        body: String::from_utf8_lossy(&body).into_owned(),
    })
}

fn dechunk(mut data: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    loop {
        let eol = data.windows(2).position(|w| w == b"\r\n")?;
        let size_text = String::from_utf8_lossy(&data[..eol]);
        let size = usize::from_str_radix(size_text.split(';').next()?.trim(), 16).ok()?;
        data = &data[eol + 2..];
        if size == 0 {
            return Some(out);
        }
        out.extend_from_slice(data.get(..size)?);
        data = data.get(size + 2..)?;
    }
}

pub fn get(url: &str) -> std::io::Result<HttpResponse> {
    http("GET", url, None, None)
}

/// A GET that must answer 200; panics with the status and body otherwise.
pub fn get_ok(url: &str) -> String {
    let response = get(url).unwrap_or_else(|e| panic!("GET {url}: {e}"));
    assert_eq!(response.status, 200, "GET {url}: {}", response.body);
    response.body
}

fn with_query(base: &str, path: &str, pairs: &[(&str, &str)]) -> String {
    let mut url = url::Url::parse(&format!("{base}{path}")).expect("valid URL");
    if !pairs.is_empty() {
        let mut query = url.query_pairs_mut();
        for (k, v) in pairs {
            query.append_pair(k, v);
        }
    }
    url.to_string()
}

// ---------------------------------------------------------------------------------------------
// The child process shared by every receiver.

pub struct Receiver {
    name: &'static str,
    child: Child,
    host: String,
    port: u16,
    log: PathBuf,
    dir: tempfile::TempDir,
}

impl Receiver {
    /// Starts `program args…` (output to a log file in `dir`) and waits until `ready_path` on
    /// `host:port` answers 200.
    fn spawn(
        name: &'static str,
        program: &Path,
        args: &[String],
        host: &str,
        port: u16,
        dir: tempfile::TempDir,
        ready_path: &str,
    ) -> Self {
        let log = dir.path().join(format!("{name}.log"));
        let out = fs::File::create(&log).expect("log file");
        let err = out.try_clone().expect("log file");
        let child = Command::new(program)
            .args(args)
            .current_dir(dir.path())
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", program.display()));
        let mut receiver = Self {
            name,
            child,
            host: host.to_owned(),
            port,
            log,
            dir,
        };
        let ready = format!("{}{ready_path}", receiver.url());
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            if matches!(get(&ready), Ok(r) if r.status == 200) {
                return receiver;
            }
            if let Ok(Some(status)) = receiver.child.try_wait() {
                panic!(
                    "{name} exited at start ({status}) on port {port}; log:\n{}",
                    receiver.log()
                );
            }
            assert!(
                Instant::now() < deadline,
                "{name} not ready on port {port} after {READY_TIMEOUT:?}; log:\n{}",
                receiver.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn url(&self) -> String {
        format!("http://{}:{}", self.host, self.port)
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The receiver's output so far (for failure messages).
    pub fn log(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        if let Ok(Some(_)) = self.child.try_wait() {
            return;
        }
        // SAFETY: kill(2) on our own child's pid, which we have not reaped yet.
        unsafe {
            libc::kill(self.child.id() as libc::pid_t, libc::SIGTERM);
        }
        let deadline = Instant::now() + STOP_TIMEOUT;
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        eprintln!(
            "{} (pid {}) ignored SIGTERM; killing it",
            self.name,
            self.child.id()
        );
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

// ---------------------------------------------------------------------------------------------
// Prometheus Pushgateway (memory only).

pub struct Pushgateway {
    pub process: Receiver,
}

impl Pushgateway {
    pub fn start() -> Result<Self, String> {
        Self::start_on(free_port())
    }

    /// On a given port (to bring a receiver back where a pusher already points).
    pub fn start_on(port: u16) -> Result<Self, String> {
        Self::start_listening("127.0.0.1", port)
    }

    /// On `host:port`, e.g. the Docker bridge's address so that containers reach it.
    pub fn start_listening(host: &str, port: u16) -> Result<Self, String> {
        let program = binary("prometheus-pushgateway")?;
        let dir = tempfile::tempdir().expect("temp dir");
        let args = vec![
            format!("--web.listen-address={host}:{port}"),
            "--persistence.file=".to_owned(),
        ];
        Ok(Self {
            process: Receiver::spawn("pushgateway", &program, &args, host, port, dir, "/-/ready"),
        })
    }

    pub fn url(&self) -> String {
        self.process.url()
    }

    /// `GET /api/v1/metrics`: the `data` array, one object per group.
    pub fn groups(&self) -> Vec<Value> {
        let body = get_ok(&format!("{}/api/v1/metrics", self.url()));
        let json: Value = serde_json::from_str(&body).expect("JSON from /api/v1/metrics");
        json["data"].as_array().cloned().unwrap_or_default()
    }

    /// The group whose grouping key is exactly `labels`.
    pub fn group(&self, labels: &[(&str, &str)]) -> Option<Value> {
        let wanted: BTreeMap<String, String> = labels
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        self.groups()
            .into_iter()
            .find(|g| string_map(&g["labels"]) == wanted)
    }

    /// The exposition the gateway serves (`GET /metrics`).
    pub fn metrics_text(&self) -> String {
        get_ok(&format!("{}/metrics", self.url()))
    }
}

/// A JSON object of strings as a map (labels).
pub fn string_map(value: &Value) -> BTreeMap<String, String> {
    value
        .as_object()
        .map(|o| {
            o.iter()
                .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_owned()))
                .collect()
        })
        .unwrap_or_default()
}

/// The samples of one metric family in a Pushgateway group: (labels, value).
pub fn group_samples(group: &Value, family: &str) -> Vec<(BTreeMap<String, String>, f64)> {
    group[family]["metrics"]
        .as_array()
        .map(|metrics| {
            metrics
                .iter()
                .map(|m| {
                    let value = m["value"]
                        .as_str()
                        .and_then(|v| v.parse().ok())
                        .unwrap_or(f64::NAN);
                    (string_map(&m["labels"]), value)
                })
                .collect()
        })
        .unwrap_or_default()
}

// ---------------------------------------------------------------------------------------------
// VictoriaMetrics single node.

pub struct VictoriaMetrics {
    pub process: Receiver,
}

/// One series from `/api/v1/export`.
#[derive(Debug, Clone)]
pub struct Exported {
    pub labels: BTreeMap<String, String>,
    pub values: Vec<f64>,
    pub timestamps: Vec<i64>,
}

impl VictoriaMetrics {
    pub fn start() -> Result<Self, String> {
        Self::start_on(free_port())
    }

    pub fn start_on(port: u16) -> Result<Self, String> {
        Self::start_listening("127.0.0.1", port)
    }

    /// On `host:port`, e.g. the Docker bridge's address so that containers reach it.
    pub fn start_listening(host: &str, port: u16) -> Result<Self, String> {
        let program = binary("victoria-metrics")?;
        let dir = tempfile::tempdir().expect("temp dir");
        let data = dir.path().join("data");
        let args = vec![
            format!("-httpListenAddr={host}:{port}"),
            format!("-storageDataPath={}", data.display()),
            "-retentionPeriod=1d".to_owned(),
            // The default 30 s hides fresh samples from queries (telemetry.md B3).
            "-search.latencyOffset=1s".to_owned(),
        ];
        Ok(Self {
            process: Receiver::spawn(
                "victoria-metrics",
                &program,
                &args,
                host,
                port,
                dir,
                "/health",
            ),
        })
    }

    pub fn url(&self) -> String {
        self.process.url()
    }

    pub fn import_url(&self) -> String {
        format!("{}/api/v1/import/prometheus", self.url())
    }

    /// Makes just-ingested samples searchable (otherwise a new series takes ~7 s).
    pub fn force_flush(&self) {
        get_ok(&format!("{}/internal/force_flush", self.url()));
    }

    /// An instant query after a flush: (labels incl. `__name__`, value) per series.
    pub fn query(&self, expr: &str) -> Vec<(BTreeMap<String, String>, f64)> {
        self.force_flush();
        let body = get_ok(&with_query(
            &self.url(),
            "/api/v1/query",
            &[("query", expr)],
        ));
        let json: Value = serde_json::from_str(&body).expect("JSON from /api/v1/query");
        assert_eq!(json["status"], "success", "query {expr}: {body}");
        json["data"]["result"]
            .as_array()
            .map(|series| {
                series
                    .iter()
                    .map(|s| {
                        let value = s["value"][1]
                            .as_str()
                            .and_then(|v| v.parse().ok())
                            .unwrap_or(f64::NAN);
                        (string_map(&s["metric"]), value)
                    })
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Raw samples (values and their timestamps, in time order) of every series matching the
    /// series selector, after a flush.
    pub fn export(&self, selector: &str) -> Vec<Exported> {
        self.force_flush();
        let body = get_ok(&with_query(
            &self.url(),
            "/api/v1/export",
            &[("match[]", selector)],
        ));
        body.lines()
            .filter(|l| !l.trim().is_empty())
            .map(|line| {
                let json: Value =
                    serde_json::from_str(line).expect("JSON line from /api/v1/export");
                Exported {
                    labels: string_map(&json["metric"]),
                    values: json["values"]
                        .as_array()
                        .map(|v| v.iter().map(|x| x.as_f64().unwrap_or(f64::NAN)).collect())
                        .unwrap_or_default(),
                    timestamps: json["timestamps"]
                        .as_array()
                        .map(|v| v.iter().filter_map(Value::as_i64).collect())
                        .unwrap_or_default(),
                }
            })
            .collect()
    }

    /// Polls `probe` (which may query this VM) until it yields a value, with a deadline.
    pub fn wait_for<T>(
        &self,
        timeout: Duration,
        what: &str,
        mut probe: impl FnMut(&Self) -> Option<T>,
    ) -> T {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(value) = probe(self) {
                return value;
            }
            assert!(
                Instant::now() < deadline,
                "timed out after {timeout:?} waiting for {what}; VictoriaMetrics log:\n{}",
                self.process.log()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

// ---------------------------------------------------------------------------------------------
// vmauth: basic auth in front of a VictoriaMetrics.

pub struct VmAuth {
    pub process: Receiver,
}

impl VmAuth {
    pub fn start(vm_url: &str, user: &str, password: &str) -> Result<Self, String> {
        let program = binary("vmauth")?;
        let dir = tempfile::tempdir().expect("temp dir");
        let config = dir.path().join("auth.yml");
        // JSON strings are valid YAML scalars, so any user/password is quoted correctly.
        let quote = |s: &str| serde_json::to_string(s).expect("string");
        fs::write(
            &config,
            format!(
                "users:\n  - username: {}\n    password: {}\n    url_prefix: {}\n",
                quote(user),
                quote(password),
                quote(vm_url)
            ),
        )
        .expect("auth config");
        let port = free_port();
        let args = vec![
            format!("-httpListenAddr=127.0.0.1:{port}"),
            format!("-auth.config={}", config.display()),
        ];
        Ok(Self {
            process: Receiver::spawn("vmauth", &program, &args, "127.0.0.1", port, dir, "/health"),
        })
    }

    pub fn url(&self) -> String {
        self.process.url()
    }

    pub fn import_url(&self) -> String {
        format!("{}/api/v1/import/prometheus", self.url())
    }
}

// ---------------------------------------------------------------------------------------------
// promtool (from the `prometheus` package).

/// `promtool check metrics` on `text`: the outer `Err` is a skip reason (promtool missing);
/// inside, `Ok(output)` when the lint passes, `Err(output)` when it does not.
pub fn promtool_check_metrics(text: &str) -> Result<Result<String, String>, String> {
    let program = binary("promtool")?;
    // Found on PATH, it must run: only a missing promtool makes a test skip.
    Ok(enclave_testkit::promtool_check_metrics(&program, text)
        .unwrap_or_else(|e| panic!("{}: {e}", program.display())))
}
