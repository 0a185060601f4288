//! A full disk, for real: a small size-limited tmpfs under the enclave's root, filled to the
//! last page. The supervisor keeps its view right and its state files catch up; an oracle that
//! cannot store reports says so and recovers when space returns.
//!
//! Mounting needs root (CAP_SYS_ADMIN); without it each test prints SKIPPED and why.

use crate::common;
use crate::common::assert_contains;

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use common::harness::{wait_until, Enclave};
use enclave::service::state::Status;
use nix::sys::signal::Signal;
use serde_json::Value;

const T: Duration = Duration::from_secs(30);

/// A tmpfs of a fixed size, unmounted (lazily, so nothing can hold it) when dropped.
struct Tmpfs {
    path: PathBuf,
}

impl Tmpfs {
    fn mount(path: &Path, size: &str) -> Result<Self, String> {
        if !nix::unistd::Uid::effective().is_root() {
            return Err("not running as root: cannot mount a tmpfs".into());
        }
        fs::create_dir_all(path).map_err(|e| format!("mkdir {}: {e}", path.display()))?;
        let out = Command::new("mount")
            .args([
                "-t",
                "tmpfs",
                "-o",
                &format!("size={size},mode=0755"),
                "tmpfs",
            ])
            .arg(path)
            .output()
            .map_err(|e| format!("cannot run mount: {e}"))?;
        if !out.status.success() {
            return Err(format!(
                "mount -t tmpfs failed: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            ));
        }
        Ok(Self {
            path: path.to_owned(),
        })
    }

    /// Writes a filler file until the filesystem has no page left; returns its path.
    fn fill(&self) -> PathBuf {
        let filler = self.path.join("filler");
        let mut file = fs::File::create(&filler).expect("filler");
        for chunk in [64 * 1024, 4096, 1] {
            let bytes = vec![0u8; chunk];
            loop {
                match file.write(&bytes) {
                    Ok(n) if n == chunk => continue,
                    Ok(_) => break,
                    Err(e) if e.raw_os_error() == Some(libc::ENOSPC) => break,
                    Err(e) => panic!("filling {}: {e}", self.path.display()),
                }
            }
        }
        let probe = fs::write(self.path.join("probe"), "x");
        assert!(probe.is_err(), "the tmpfs still takes writes after filling");
        let _ = fs::remove_file(self.path.join("probe"));
        filler
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.path).status();
    }
}

fn status_json(e: &Enclave) -> Value {
    let out = common::enclave(&[
        "--root",
        e.root.to_str().expect("utf-8"),
        "status",
        "--json",
    ]);
    serde_json::from_str(common::stdout(&out).trim()).unwrap_or(Value::Null)
}

fn service<'a>(status: &'a Value, name: &str) -> Option<&'a Value> {
    status.as_array()?.iter().find(|s| s["name"] == name)
}

fn state_file(e: &Enclave, service: &str, file: &str) -> String {
    fs::read_to_string(e.root.join("run/service").join(service).join(file))
        .unwrap_or_default()
        .trim()
        .to_owned()
}

fn metric(e: &Enclave, series: &str) -> Option<f64> {
    let (_, text) = Enclave::http_get(e.port("supervisor"), "/metrics")?;
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
}

#[test]
fn on_a_full_disk_the_supervisor_keeps_the_true_state_and_its_files_catch_up() {
    let mut e = Enclave::new();
    e.longrun("victim", "exec sleep 1000", &[]);
    let tmpfs = match Tmpfs::mount(&e.root.join("run"), "2m") {
        Ok(t) => t,
        Err(reason) => {
            eprintln!("SKIPPED on_a_full_disk_the_supervisor_keeps_the_true_state_and_its_files_catch_up: {reason}");
            return;
        }
    };
    e.start(&[]);
    let old_pid = e.wait_status("victim", Status::Up, T).pid.expect("pid");
    let filler = tmpfs.fill();

    nix::sys::signal::kill(nix::unistd::Pid::from_raw(old_pid as i32), Signal::SIGKILL)
        .expect("kill");
    // The supervisor restarts it and says so, though the files cannot be written.
    let mut new_pid = 0;
    wait_until(T, "status to show the restarted victim", || {
        let status = status_json(&e);
        let Some(victim) = service(&status, "victim") else {
            return false;
        };
        new_pid = victim["pid"].as_u64().unwrap_or(0);
        victim["staleFiles"] == true
            && victim["restartCount"] == 1
            && victim["status"] == "up"
            && new_pid != 0
            && new_pid != u64::from(old_pid)
    });
    // The files themselves really are stale: the old values.
    assert_eq!(state_file(&e, "victim", "restart-count"), "0");
    assert_eq!(state_file(&e, "victim", "pid"), old_pid.to_string());
    let table = common::enclave(&["--root", e.root.to_str().expect("utf-8"), "status"]);
    let table = common::stdout(&table);
    assert_contains(&table, "victim*");
    assert_contains(&table, "STALE state files since");
    assert_contains(&table, "No space left on device");
    assert_eq!(
        metric(&e, "enclave_supervisor_state_files_stale"),
        Some(1.0)
    );
    assert!(metric(&e, "enclave_supervisor_state_file_write_failures_total") >= Some(1.0));
    assert_eq!(
        metric(
            &e,
            "enclave_supervisor_service_restarts_total{service=\"victim\"}"
        ),
        Some(1.0)
    );
    assert_contains(&e.logs(), "cannot write the state files");

    // Space returns: everything catches up by itself.
    fs::remove_file(&filler).expect("free the space");
    wait_until(T, "the files to catch up", || {
        state_file(&e, "victim", "restart-count") == "1"
            && state_file(&e, "victim", "pid") == new_pid.to_string()
            && state_file(&e, "victim", "status") == "up"
    });
    wait_until(T, "the stale metric to clear", || {
        metric(&e, "enclave_supervisor_state_files_stale") == Some(0.0)
    });
    let status = status_json(&e);
    assert_eq!(
        service(&status, "victim").expect("victim")["staleFiles"],
        false
    );
    let table = common::enclave(&["--root", e.root.to_str().expect("utf-8"), "status"]);
    assert!(!common::stdout(&table).contains("STALE"));
    assert_contains(&e.logs(), "written again and current");
    e.stop_cleanly(T);
}

const FEED: common::don::Feed<'static> = ("BTC-USD", "BTCUSDT", "BTC", "USDT", "60000");

/// The sum over every oracle of a node metric (all its series).
fn oracles_metric(don: &common::don::Don, name: &str) -> f64 {
    don.oracles().iter().map(|&n| don.metric(n, name)).sum()
}

#[test]
fn an_oracle_that_cannot_store_reports_is_not_ready_and_stores_them_when_space_returns() {
    let mut mounted = None;
    let mut reason = None;
    let don = common::don::Don::start_prepared(
        5,
        &[FEED],
        &[],
        |_| {},
        |root| {
            match Tmpfs::mount(&root.join("sp/postgresql"), "200m") {
                Ok(t) => {
                    // PostgreSQL runs as `postgres` and makes its data directory itself.
                    let _ = Command::new("chown").arg("postgres").arg(&t.path).status();
                    mounted = Some(t);
                }
                Err(e) => reason = Some(e),
            }
        },
    );
    let Some(tmpfs) = mounted.take() else {
        eprintln!(
            "SKIPPED an_oracle_that_cannot_store_reports_is_not_ready_and_stores_them_when_space_returns: {}",
            reason.unwrap_or_default()
        );
        return;
    };
    let oracles = don.oracles();
    wait_until(common::don::T, "every oracle ready", || {
        oracles
            .iter()
            .all(|&n| don.json(n, "/health").is_some_and(|(code, _)| code == 200))
    });
    don.wait_latest(2, "BTC-USD", "a first report", |_| true);

    let filler = tmpfs.fill();
    // Move the price by 1% every 1.5 s: each move is a report the oracles must store.
    let mut price = 60_000.0_f64;
    let mut saw_unstored = false;
    let mut not_ready = None;
    wait_until(
        Duration::from_secs(120),
        "an oracle refusing to store",
        || {
            price *= 1.01;
            don.prices.set(FEED.1, &format!("{price:.2}"));
            std::thread::sleep(Duration::from_millis(1500));
            saw_unstored |= oracles_metric(&don, "enclave_node_reports_unstored") > 0.0;
            not_ready = oracles.iter().find_map(|&n| {
                let (code, health) = don.json(n, "/health")?;
                (code == 503 && health["database"] == "write_failing").then_some(health)
            });
            saw_unstored && not_ready.is_some()
        },
    );
    let health = not_ready.expect("not ready");
    eprintln!("on the full disk: {health}");
    let reasons = health["reasons"].to_string();
    assert!(reasons.contains("database:"), "{health}");
    assert!(
        oracles_metric(&don, "enclave_node_store_failing") >= 1.0,
        "no store_failing metric set"
    );

    // Space returns: every oracle is ready again by itself, and every report it could not
    // store is stored now.
    fs::remove_file(&filler).expect("free the space");
    wait_until(
        Duration::from_secs(120),
        "every oracle ready with nothing unstored",
        || {
            oracles.iter().all(|&n| {
                don.json(n, "/health").is_some_and(|(code, _)| code == 200)
                    && don.metric(n, "enclave_node_reports_unstored") == 0.0
            })
        },
    );
    for &n in &oracles {
        let refused = don.metric(
            n,
            "enclave_node_store_errors_total{operation=\"save_finalized\"}",
        );
        let stored_late = don.metric(n, "enclave_node_reports_stored_late_total");
        let dropped = don.metric(n, "enclave_node_reports_unstored_dropped_total");
        assert_eq!(
            refused,
            stored_late,
            "node {n}: {refused} reports refused, {stored_late} stored later\n{}",
            don.logs(n)
        );
        eprintln!("node {n}: {refused} reports refused, {stored_late} stored later");
        assert_eq!(dropped, 0.0, "node {n}");
        assert_eq!(don.metric(n, "enclave_node_store_failing"), 0.0, "node {n}");
    }
    assert!(oracles_metric(&don, "enclave_node_reports_stored_late_total") >= 1.0);
    // Reports keep coming.
    price *= 1.02;
    don.prices.set(FEED.1, &format!("{price:.2}"));
    don.wait_latest(2, "BTC-USD", "a report at the new price", |v| {
        v["answer"]
            .as_str()
            .and_then(|a| a.parse::<f64>().ok())
            .is_some_and(|a| (a - price).abs() / price < 0.005)
    });
    drop(don);
    drop(tmpfs);
}
