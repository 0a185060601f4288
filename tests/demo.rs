//! scripts/demo.sh, the README's first command, run as a newcomer would: from a clone inside a
//! home directory of mode 0700, with no network but loopback (a network namespace of its own
//! when the test runs as root). Reports land on the dev chain within 60 s of the services being
//! up, the lying source is left out as an outlier, the live view the demo points at shows the
//! feeds with their on-chain answers, the source the demo says to stop (through the stand-ins'
//! control endpoint) fires the enclave's alert at the demo's webhook receiver and starting it
//! again resolves it, a depeg set through the control endpoint fires and resolves the same way,
//! and Ctrl-C leaves no process behind.
//!
//! In its own test binary: the test makes its process a child subreaper and then counts every
//! process whose parent it is, so no other test may start children in the same process.

mod common;

use std::fs;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::clone::PrivateClone;
use common::devchain;
use common::harness::Enclave;
use common::has_line;
use common::live_view::LiveView;
use common::receivers::http;
use nix::sys::signal::{kill, killpg, Signal};
use nix::unistd::Pid;
use serde_json::{json, Value};

/// PostgreSQL's first initdb, five nodes and the dev chain on a shared 2-core machine.
const SERVICES_UP: Duration = Duration::from_secs(240);
/// The demo's promise.
const REPORTS: Duration = Duration::from_secs(60);
/// A stopped source is stale after its 3 s ttl, then the alert holds for the demo's `forMs`
/// (5 s) at an `intervalMs` of 2 s: about 10 s; a busy 2-core machine gets some slack.
const ALERT: Duration = Duration::from_secs(60);

fn is_root() -> bool {
    nix::unistd::Uid::effective().is_root()
}

/// The demo as a user starts it, in its own process group (Ctrl-C goes to the group). As root,
/// in a network namespace with only loopback up: nothing can reach the internet.
fn start_demo(clone: &Path, out: &Path, err: &Path) -> Child {
    let demo = clone.join("scripts/demo.sh");
    let mut command = if is_root() {
        let mut c = Command::new("unshare");
        c.args([
            "--net",
            "--",
            "sh",
            "-c",
            "ip link set lo up && exec \"$0\"",
        ])
        .arg(&demo);
        c
    } else {
        eprintln!("not root: the demo runs without a network namespace of its own");
        Command::new(&demo)
    };
    command
        .env("ENCLAVE_BIN", env!("CARGO_BIN_EXE_enclave"))
        .env("DEMO_INSTALL", "0")
        .env(
            "DEVCHAIN_VENV",
            devchain::python()
                .parent()
                .and_then(Path::parent)
                .expect("venv"),
        )
        .env_remove("ROOT")
        .env_remove("CONFIG")
        .env_remove("ENCLAVE_ROOT")
        .env_remove("CONFIGURATION_PATH")
        .stdin(Stdio::null())
        .stdout(fs::File::create(out).expect("stdout file"))
        .stderr(fs::File::create(err).expect("stderr file"))
        .process_group(0);
    command.spawn().expect("scripts/demo.sh starts")
}

/// Moves this thread (the test's) into the network namespace of `pid`, where the demo's
/// loopback servers are. Network namespaces are per thread, so this is sound in a test harness.
fn enter_network_of(pid: u32) {
    use std::os::fd::AsRawFd;
    let ns = fs::File::open(format!("/proc/{pid}/ns/net")).expect("the demo's network namespace");
    // SAFETY: setns on a descriptor we own; it changes only this thread's network namespace.
    let rc = unsafe { libc::setns(ns.as_raw_fd(), libc::CLONE_NEWNET) };
    assert_eq!(rc, 0, "setns: {}", std::io::Error::last_os_error());
}

/// Processes whose parent is this test process (orphans of the demo are re-parented here: the
/// test is a child subreaper), other than `except`.
fn children(except: &[u32]) -> Vec<(u32, String)> {
    let me = std::process::id();
    let mut out = Vec::new();
    for entry in fs::read_dir("/proc").expect("/proc").flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(stat) = fs::read_to_string(entry.path().join("stat")) else {
            continue;
        };
        let Some((_, rest)) = stat.rsplit_once(')') else {
            continue;
        };
        let fields: Vec<&str> = rest.split_whitespace().collect();
        if fields.get(1).and_then(|p| p.parse::<u32>().ok()) == Some(me)
            && !except.contains(&pid)
            && fields.first() != Some(&"Z")
        {
            let cmdline = fs::read_to_string(entry.path().join("cmdline"))
                .unwrap_or_default()
                .replace('\0', " ");
            out.push((pid, cmdline));
        }
    }
    out
}

fn rpc(url: &str, method: &str, params: Value) -> Option<Value> {
    let body = json!({"jsonrpc": "2.0", "id": 1, "method": method, "params": params}).to_string();
    let response = http(
        "POST",
        url,
        None,
        Some(("application/json", body.as_bytes())),
    )
    .ok()?;
    serde_json::from_str::<Value>(&response.body)
        .ok()?
        .get("result")
        .cloned()
}

/// (round id, answer) of an OCR1 aggregator: `latestRoundData()`.
fn latest_round(url: &str, contract: &str) -> Option<(u128, i128)> {
    let data = rpc(
        url,
        "eth_call",
        json!([{"to": contract, "data": "0xfeaf968c"}, "latest"]),
    )?;
    let hex = data.as_str()?.trim_start_matches("0x");
    let word = |i: usize| hex.get(i * 64..(i + 1) * 64);
    let round = u128::from_str_radix(word(0)?.get(32..)?, 16).ok()?;
    let answer = i128::from_str_radix(word(1)?.get(32..)?, 16).ok()?;
    Some((round, answer))
}

/// POSTs to the stand-ins' control endpoint, which answers 200 to every command it takes.
fn command_stand_ins(url: &str) {
    let response = http("POST", url, None, None);
    assert_eq!(
        response.as_ref().map(|r| r.status).ok(),
        Some(200),
        "POST {url}: {response:?}"
    );
}

/// One pair's sources in the aggregator's batch answer: (source, used, reason).
fn quote_sources(aggregator: u16, pair: &str) -> Vec<(String, bool, String)> {
    let Some((200, body)) = Enclave::http_get(aggregator, &format!("/quotes/batch?pairs={pair}"))
    else {
        return Vec::new();
    };
    let v: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
    v["quotes"][pair]["sources"]
        .as_array()
        .map(|sources| {
            sources
                .iter()
                .map(|s| {
                    (
                        s["source"].as_str().unwrap_or_default().to_owned(),
                        s["used"].as_bool().unwrap_or(false),
                        s["reason"].as_str().unwrap_or_default().to_owned(),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

/// A feed's row of a live-view frame: (on-chain answer, match) when it has an answer.
fn feed_row<'a>(frame: &'a str, feed: &str) -> Option<(&'a str, &'a str)> {
    let row = frame
        .lines()
        .find(|l| l.split_whitespace().next() == Some(feed))?;
    // FEED ANSWER E:R AGE ("12 s") ON-CHAIN MATCH STATUS SOURCES…
    let cells: Vec<&str> = row.split_whitespace().collect();
    if cells.get(1) == Some(&"-") {
        return None;
    }
    Some((cells.get(5)?, cells.get(6)?))
}

/// The alert notifications the demo's receiver took so far (its alerts.jsonl).
fn notifications(log: &Path) -> Vec<Value> {
    fs::read_to_string(log)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

/// The first notification after the first `skip` that is `status` of `alert` for `subject`.
fn notification(
    log: &Path,
    skip: usize,
    alert: &str,
    subject: &str,
    status: &str,
) -> Option<Value> {
    notifications(log)
        .into_iter()
        .skip(skip)
        .find(|n| n["alert"] == alert && n["subject"] == subject && n["status"] == status)
}

struct Demo {
    child: Child,
    out: PathBuf,
    err: PathBuf,
}

impl Demo {
    fn logs(&self) -> String {
        let mut text = format!(
            "--- demo stdout\n{}\n--- demo stderr\n{}",
            fs::read_to_string(&self.out).unwrap_or_default(),
            fs::read_to_string(&self.err).unwrap_or_default()
        );
        if let Some(dir) = self.dir() {
            let log = fs::read_to_string(dir.join("enclave.log")).unwrap_or_default();
            let tail: Vec<&str> = log.lines().rev().take(60).collect();
            text.push_str("\n--- enclave.log (tail)\n");
            text.push_str(&tail.into_iter().rev().collect::<Vec<_>>().join("\n"));
        }
        text
    }

    fn dir(&self) -> Option<PathBuf> {
        fs::read_to_string(&self.out)
            .unwrap_or_default()
            .lines()
            .find_map(|l| l.strip_prefix("demo directory "))
            .and_then(|rest| rest.split_whitespace().next())
            .map(PathBuf::from)
    }

    fn state(&self) -> Value {
        self.dir()
            .and_then(|d| fs::read_to_string(d.join("demo.json")).ok())
            .and_then(|t| serde_json::from_str(&t).ok())
            .unwrap_or(Value::Null)
    }

    fn running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// Polls `condition` until it holds; fails if the deadline passes or the demo exits.
    fn wait(&mut self, timeout: Duration, what: &str, mut condition: impl FnMut(&Demo) -> bool) {
        let deadline = Instant::now() + timeout;
        while !condition(self) {
            assert!(
                self.running(),
                "the demo exited while waiting for {what}\n{}",
                self.logs()
            );
            assert!(
                Instant::now() < deadline,
                "timed out after {timeout:?} waiting for {what}\n{}",
                self.logs()
            );
            std::thread::sleep(Duration::from_millis(250));
        }
    }

    /// Waits for the first notification after the first `skip` in the receiver's `log` that is
    /// `status` of `alert` for USDC-USD (the feed the demo's alerts are about), and returns it.
    fn wait_notification(&mut self, log: &Path, skip: usize, alert: &str, status: &str) -> Value {
        let mut found = None;
        self.wait(
            ALERT,
            &format!("{alert} USDC-USD {status} at the webhook"),
            |_| {
                found = notification(log, skip, alert, "USDC-USD", status);
                found.is_some()
            },
        );
        found.expect("found")
    }

    /// Asserts that the demo has printed `text`, which tells the user `what`.
    fn assert_prints(&self, text: &str, what: &str) {
        assert!(
            fs::read_to_string(&self.out)
                .unwrap_or_default()
                .contains(text),
            "the demo prints {what}\n{}",
            self.logs()
        );
    }

    /// Waits for a line of the demo's output that starts with `start`.
    fn wait_output_line(&mut self, start: &str) {
        self.wait(
            Duration::from_secs(10),
            &format!("{start:?} in the demo's output"),
            |d| has_line(&fs::read_to_string(&d.out).unwrap_or_default(), start, &[]),
        );
    }
}

impl Drop for Demo {
    fn drop(&mut self) {
        // A failed test still leaves nothing running: the demo's own stop first.
        if self.running() {
            let group = Pid::from_raw(self.child.id() as i32);
            let _ = killpg(group, Signal::SIGINT);
            let deadline = Instant::now() + Duration::from_secs(90);
            while self.running() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(100));
            }
            let _ = killpg(group, Signal::SIGKILL);
            let _ = self.child.wait();
        }
        for (pid, _) in children(&[]) {
            let _ = kill(Pid::from_raw(pid as i32), Signal::SIGKILL);
        }
    }
}

#[test]
fn the_demo_lands_reports_within_a_minute_shows_them_live_alerts_on_a_stopped_source_and_a_depeg_and_stops_clean(
) {
    if let Some(reason) = devchain::skip_reason() {
        eprintln!("SKIPPED: {reason}");
        return;
    }
    enclave::supervisor::process::become_subreaper().expect("child subreaper");
    let home = PrivateClone::new();
    let logs = tempfile::tempdir().expect("temp dir");
    let (out, err) = (logs.path().join("stdout"), logs.path().join("stderr"));
    let child = start_demo(&home.clone, &out, &err);
    let demo_pid = child.id();
    let mut demo = Demo { child, out, err };

    demo.wait(Duration::from_secs(120), "the demo's state file", |d| {
        d.state()["ports"]["supervisor"].is_u64()
    });
    if is_root() {
        // The demo printed its directory: it is past `unshare`, in its own namespace.
        enter_network_of(demo_pid);
    }
    let state = demo.state();
    let dir = demo.dir().expect("demo directory");
    assert!(
        !dir.starts_with(home.home.path()),
        "the demo's files are outside the 0700 home"
    );
    let supervisor = state["ports"]["supervisor"].as_u64().expect("port") as u16;
    let aggregator = state["ports"]["aggregator"].as_u64().expect("port") as u16;
    let rpc_url = state["rpc"].as_str().expect("rpc").to_owned();
    let control = state["control"].as_str().expect("control").to_owned();
    let feeds: Vec<(String, String)> = state["feeds"]
        .as_array()
        .expect("feeds")
        .iter()
        .map(|f| {
            (
                f["name"].as_str().expect("name").to_owned(),
                f["contract"].as_str().expect("contract").to_owned(),
            )
        })
        .collect();
    assert_eq!(feeds.len(), 3, "{state}");

    demo.wait(SERVICES_UP, "every service up", |_| {
        Enclave::http_get(supervisor, "/healthz").map(|(code, _)| code) == Some(200)
    });
    let up = Instant::now();

    // Reports land on the chain, for every feed, within a minute of the services being up.
    demo.wait(REPORTS, "a report on the chain for every feed", |_| {
        feeds
            .iter()
            .all(|(_, contract)| latest_round(&rpc_url, contract).is_some_and(|(r, _)| r > 0))
    });
    eprintln!(
        "reports on chain {:.1} s after the services were up",
        up.elapsed().as_secs_f64()
    );

    // The liar (kucoin, 8 % high) is left out as an outlier; the honest sources are used.
    demo.wait(
        Duration::from_secs(30),
        "kucoin left out as an outlier",
        |_| {
            let sources = quote_sources(aggregator, "BTC-USD");
            sources
                .iter()
                .any(|(s, used, reason)| s == "kucoin" && !used && reason.starts_with("outlier"))
                && sources
                    .iter()
                    .filter(|(s, used, _)| s != "kucoin" && *used)
                    .count()
                    >= 3
        },
    );
    let kucoin: f64 = {
        let (_, body) =
            Enclave::http_get(aggregator, "/quotes/batch?pairs=BTC-USD").expect("batch");
        let v: Value = serde_json::from_str(&body).expect("json");
        let liar = v["quotes"]["BTC-USD"]["sources"]
            .as_array()
            .expect("sources")
            .iter()
            .find(|s| s["source"] == "kucoin")
            .cloned()
            .expect("kucoin listed");
        liar["price"]
            .as_str()
            .expect("price")
            .parse()
            .expect("number")
    };
    let (_, btc) = latest_round(&rpc_url, &feeds[0].1).expect("BTC-USD on chain");
    let on_chain = btc as f64 / 1e8;
    assert!(
        on_chain < kucoin / 1.05,
        "the on-chain answer {on_chain} must not follow the liar's {kucoin}"
    );

    // The live view the demo points at: every feed with its on-chain answer, which is the
    // contract's, and the DON's report matching it; the liar shown left out, not down.
    let root = state["root"].as_str().expect("root").to_owned();
    demo.assert_prints(
        &format!("--root {root} status --watch"),
        "how to open the live view",
    );
    let view = LiveView::start(&root);
    let mut frame = String::new();
    demo.wait(
        Duration::from_secs(60),
        "a live-view frame with every feed's on-chain answer, matching the contract",
        |_| {
            let Some(last) = view.last_frame() else {
                return false;
            };
            frame = last;
            feeds.iter().all(|(name, contract)| {
                let (Some((shown, matches)), Some((_, answer))) =
                    (feed_row(&frame, name), latest_round(&rpc_url, contract))
                else {
                    return false;
                };
                let on_chain = answer as f64 / 1e8;
                matches == "yes"
                    && shown
                        .parse::<f64>()
                        .is_ok_and(|v| (v - on_chain).abs() <= on_chain.abs() * 1e-12)
            })
        },
    );
    assert!(
        has_line(&frame, "alerts ", &[" up "]),
        "the alerter runs:\n{frame}"
    );
    assert!(
        frame.contains("kucoin left out (outlier)"),
        "the liar is shown left out:\n{frame}"
    );
    assert_eq!(view.stop(), Some(0), "the live view exits 0 on SIGTERM");

    // The source the demo says to stop: USDC-USD is left with fewer sources than it needs, and
    // the enclave's alert reaches the demo's webhook receiver, which prints it; BTC-USD keeps
    // its price. Started again, the alert resolves.
    let alerts_log = PathBuf::from(state["alerts"]["log"].as_str().expect("alerts log"));
    let source = state["alerts"]["source"]
        .as_str()
        .expect("source")
        .to_owned();
    demo.assert_prints(
        &format!("{control}/sources/{source}/stop"),
        "the command that fires an alert",
    );
    let mark = notifications(&alerts_log).len();
    command_stand_ins(&format!("{control}/sources/{source}/stop"));
    let firing = demo.wait_notification(&alerts_log, mark, "sources_unavailable", "firing");
    let summary = firing["summary"].as_str().expect("summary");
    assert!(
        summary.starts_with("USDC-USD has no price: ") && summary.contains(&format!("{source}: ")),
        "{firing}"
    );
    assert_eq!(firing["instance"], "enclave-demo", "{firing}");
    demo.wait_output_line(
        "[alert] FIRING critical sources_unavailable USDC-USD: USDC-USD has no price",
    );
    let btc_sources = quote_sources(aggregator, "BTC-USD");
    assert!(
        btc_sources
            .iter()
            .filter(|(s, used, _)| s != &source && s != "kucoin" && *used)
            .count()
            >= 2,
        "BTC-USD keeps its price without {source}: {btc_sources:?}"
    );
    command_stand_ins(&format!("{control}/sources/{source}/start"));
    let resolved = demo.wait_notification(&alerts_log, mark, "sources_unavailable", "resolved");
    assert_eq!(resolved["startsAt"], firing["startsAt"], "{resolved}");
    assert!(resolved["endsAt"].is_string(), "{resolved}");
    demo.wait_output_line("[alert] RESOLVED sources_unavailable USDC-USD after ");

    // A depeg, as the demo suggests: USDC at 0.97 fires `depeg`; back at 1 it resolves.
    let mark = notifications(&alerts_log).len();
    command_stand_ins(&format!("{control}/prices/USDC?usd=0.97"));
    let depeg = demo.wait_notification(&alerts_log, mark, "depeg", "firing");
    assert!(
        depeg["summary"]
            .as_str()
            .is_some_and(|t| t.contains("below its peg 1")),
        "{depeg}"
    );
    command_stand_ins(&format!("{control}/prices/USDC?usd=1"));
    demo.wait_notification(&alerts_log, mark, "depeg", "resolved");

    // Ctrl-C: SIGINT to the demo's process group, as a terminal sends it.
    killpg(Pid::from_raw(demo_pid as i32), Signal::SIGINT).expect("SIGINT");
    let deadline = Instant::now() + Duration::from_secs(120);
    let status = loop {
        if let Some(status) = demo.child.try_wait().expect("try_wait") {
            break status;
        }
        assert!(
            Instant::now() < deadline,
            "the demo did not stop\n{}",
            demo.logs()
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(status.code(), Some(0), "{}", demo.logs());
    let leftovers = children(&[]);
    assert!(
        leftovers.is_empty(),
        "processes left behind: {leftovers:?}\n{}",
        demo.logs()
    );
    assert!(
        !dir.exists(),
        "the demo's directory {} is removed",
        dir.display()
    );
}
