//! Aggregator throughput next to nginx serving the identical body, and its memory with 100
//! tracked pairs. Run with `scripts/bench-aggregator.sh` (it installs wrk and nginx).

use std::fs;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::json;

mod common;
use common::{rss_kib, write_signed_config};

const HOT_PAIRS: usize = 10;
const TRACKED_PAIRS: usize = 100;

struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("port")
}

fn get(port: u16, path: &str) -> Option<String> {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    write!(s, "GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").ok()?;
    let mut r = String::new();
    s.read_to_string(&mut r).ok()?;
    r.split_once("\r\n\r\n").map(|(_, b)| b.to_owned())
}

fn wait_for(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A Binance-format upstream answering every symbol, on its own thread.
fn upstream() -> u16 {
    let listener = std::net::TcpListener::bind(("127.0.0.1", 0)).expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let app = axum::Router::new().route(
        "/api/v3/ticker/price",
        axum::routing::get(
            |q: axum::extract::Query<std::collections::BTreeMap<String, String>>| async move {
                let symbol = q.get("symbol").cloned().unwrap_or_default();
                axum::Json(json!({"symbol": symbol, "price": "67123.45000000"}))
            },
        ),
    );
    enclave_testkit::serve_in_thread(listener, app, std::future::pending());
    port
}

fn signed_config(repo: &Path, dir: &Path, upstream: u16, port: u16) -> std::path::PathBuf {
    let path = dir.join("configuration.json");
    write_signed_config(repo, &path, |solution| {
        solution["feeds"] = json!([]);
        solution["telemetry"] = json!({"targets": []});
        solution["priceAggregatorConfig"] = json!({"port": port, "logger": {"level": "warn"}, "maxTrackedPairs": 1000,
               "sources": {"binance": {"baseUrl": format!("http://127.0.0.1:{upstream}"), "rps": null, "ttl": 60000}}});
    });
    path
}

/// (requests/s, p99 latency) from `wrk --latency`.
fn wrk(url: &str) -> (f64, String) {
    let out = Command::new("wrk")
        .args(["-t2", "-c64", "-d10s", "--latency", url])
        .output()
        .expect("wrk runs");
    let text = String::from_utf8_lossy(&out.stdout);
    let rps = text
        .lines()
        .find_map(|l| l.trim().strip_prefix("Requests/sec:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0.0);
    let p99 = text
        .lines()
        .find_map(|l| l.trim().strip_prefix("99%"))
        .map(|v| v.trim().to_owned())
        .unwrap_or_else(|| "?".into());
    (rps, p99)
}

fn main() {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
    let dir = tempfile::tempdir().expect("tmp");
    let upstream = upstream();
    let port = free_port();
    let config = signed_config(repo, dir.path(), upstream, port);
    let aggregator = Killed(
        Command::new(env!("CARGO_BIN_EXE_enclave"))
            .arg("--config")
            .arg(&config)
            .arg("aggregator")
            .env(
                "CONFIGURATION_PUBLIC_KEY_FILE",
                repo.join("scripts/dev-keys/configuration.pub"),
            )
            .env("RUST_LOG", "error")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("aggregator starts"),
    );
    let pairs: Vec<String> = (0..HOT_PAIRS).map(|i| format!("C{i}-USDT")).collect();
    let batch = format!("/quotes/batch?pairs={}", pairs.join(","));
    wait_for("the hot pairs priced", || {
        get(port, &batch).is_some_and(|b| b.matches("\"status\":\"ok\"").count() == HOT_PAIRS)
    });
    // nginx serves the identical body as a static file.
    let body = get(port, &batch).expect("body");
    let www = dir.path().join("www");
    fs::create_dir_all(&www).expect("mkdir");
    fs::write(www.join("batch.json"), &body).expect("write");
    let nginx_port = free_port();
    let conf = dir.path().join("nginx.conf");
    fs::write(
        &conf,
        format!(
            "daemon off; master_process off; worker_processes 1; pid {d}/nginx.pid; error_log {d}/error.log;\n\
             events {{ worker_connections 1024; }}\n\
             http {{ access_log off; server {{ listen 127.0.0.1:{nginx_port}; root {w}; }} }}\n",
            d = dir.path().display(),
            w = www.display()
        ),
    )
    .expect("nginx.conf");
    let _nginx = Killed(
        Command::new("nginx")
            .arg("-c")
            .arg(&conf)
            .arg("-p")
            .arg(dir.path())
            .stderr(Stdio::null())
            .spawn()
            .expect("nginx starts"),
    );
    wait_for("nginx", || get(nginx_port, "/batch.json").is_some());
    let (agg_rps, agg_p99) = wrk(&format!("http://127.0.0.1:{port}{batch}"));
    let (nginx_rps, nginx_p99) = wrk(&format!("http://127.0.0.1:{nginx_port}/batch.json"));
    for i in 0..TRACKED_PAIRS {
        let _ = get(port, &format!("/quote/binance/T{i}/USDT"));
    }
    let rss = rss_kib(aggregator.0.id());
    println!("aggregator benchmark (wrk -t2 -c64 -d10s, {HOT_PAIRS} hot pairs per /quotes/batch request, {} byte body)", body.len());
    println!("  aggregator /quotes/batch: {agg_rps:>10.0} req/s, p99 {agg_p99}");
    println!("  nginx static same body:   {nginx_rps:>10.0} req/s, p99 {nginx_p99}");
    println!(
        "  ratio aggregator/nginx:   {:.2}",
        agg_rps / nginx_rps.max(1.0)
    );
    println!(
        "  aggregator RSS with {} tracked pairs: {} KiB",
        TRACKED_PAIRS + HOT_PAIRS,
        rss
    );
}
