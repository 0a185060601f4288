//! A DON across enclaves, as an operator tries it: scripts/don/don.py (what scripts/don.sh runs)
//! starts one bootstrap enclave and four oracle enclaves from the image under test, each its own
//! container with its own PostgreSQL and volumes on a private Docker network, admitting each
//! other by simulated attestation and reporting to the dev chain. The tests then cut members
//! off, kill them, and put impostors on the network, and watch the chain and the members'
//! metrics (each container's own address on the network; the host reaches it directly).

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::common::receivers::{get, http};
use crate::common::repo;
use crate::docker::{docker, docker_ok, tail};

/// don.py is ready (network, stand-ins, keys, configuration, `docker-compose up`) within this.
pub const STARTED: Duration = Duration::from_secs(240);
/// Every member admitted by every other and reports from every feed on the chain (five
/// PostgreSQL initdbs and boots on two cores).
pub const FORMED: Duration = Duration::from_secs(400);
/// Anything else awaited: rounds after a change, readmission.
pub const T: Duration = Duration::from_secs(180);
const SUPERVISOR_PORT: u16 = 3002;
const NODE_API_BASE: u16 = 6600;
pub const ORACLES: [&str; 4] = ["oracle-2", "oracle-3", "oracle-4", "oracle-5"];
pub const MEMBERS: [&str; 5] = ["boot", "oracle-2", "oracle-3", "oracle-4", "oracle-5"];

/// The running DON; dropping it stops don.py, which removes the containers, their volumes and
/// the network.
pub struct Don {
    child: Child,
    lines: mpsc::Receiver<String>,
    output: Vec<String>,
    pub state: Value,
}

impl Don {
    pub fn start(image: &str) -> Self {
        let python = crate::common::devchain::python();
        let venv = python
            .parent()
            .and_then(|bin| bin.parent())
            .expect("the venv's directory");
        let mut child = Command::new("python3")
            .arg(repo().join("scripts/don/don.py"))
            // Checks every 3 s and a report at least every 10 s: the scenarios' waits stay short.
            .args([
                "--image",
                image,
                "--recheck-ms",
                "3000",
                "--heartbeat-ms",
                "10000",
            ])
            .env("DEVCHAIN_VENV", venv)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .process_group(0)
            .spawn()
            .expect("don.py starts");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    return;
                }
            }
        });
        let mut don = Self {
            child,
            lines,
            output: Vec::new(),
            state: Value::Null,
        };
        let state_line = don.wait_line(STARTED, |l| l.contains("; state in "));
        let path = PathBuf::from(state_line.rsplit("; state in ").next().expect("path"));
        don.wait_line(STARTED, |l| l == "ready");
        don.state = serde_json::from_str(&std::fs::read_to_string(&path).expect("state"))
            .expect("state JSON");
        don
    }

    fn wait_line(&mut self, timeout: Duration, accept: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    eprintln!("don.py: {line}");
                    self.output.push(line.clone());
                    if accept(&line) {
                        return line;
                    }
                }
                Err(_) => panic!(
                    "don.py did not get there within {timeout:?}; its output:\n{}",
                    self.output.join("\n")
                ),
            }
        }
    }

    pub fn network(&self) -> String {
        self.state["network"].as_str().expect("network").to_owned()
    }

    pub fn container(&self, member: &str) -> String {
        self.state["members"][member]["container"]
            .as_str()
            .expect("container")
            .to_owned()
    }

    /// The member's address on the DON's network now (it changes when it is reconnected).
    pub fn ip(&self, member: &str) -> Option<String> {
        let out = docker(&[
            "inspect",
            "-f",
            &format!(
                "{{{{with index .NetworkSettings.Networks \"{}\"}}}}{{{{.IPAddress}}}}{{{{end}}}}",
                self.network()
            ),
            &self.container(member),
        ]);
        let ip = String::from_utf8_lossy(&out.stdout).trim().to_owned();
        (out.status.success() && !ip.is_empty()).then_some(ip)
    }

    fn metrics(&self, member: &str, port: u16) -> Option<String> {
        let ip = self.ip(member)?;
        get(&format!("http://{ip}:{port}/metrics"))
            .ok()
            .filter(|r| r.status == 200)
            .map(|r| r.body)
    }

    /// `series` (name with labels, exactly as exposed) in the member's supervisor's metrics.
    pub fn supervisor_metric(&self, member: &str, series: &str) -> Option<f64> {
        value_of(&self.metrics(member, SUPERVISOR_PORT)?, series)
    }

    /// `series` in the metrics of node `node`'s API on `member`.
    pub fn node_metric(&self, member: &str, node: u16, series: &str) -> Option<f64> {
        value_of(&self.metrics(member, NODE_API_BASE + node)?, series)
    }

    /// Whether `by` admits `member` now.
    pub fn admits(&self, by: &str, member: &str) -> bool {
        self.supervisor_metric(
            by,
            &format!("enclave_don_member_admitted{{member=\"{member}\"}}"),
        ) == Some(1.0)
    }

    /// Each feed's name and contract address.
    fn feeds(&self) -> Vec<(String, String)> {
        self.state["feeds"]
            .as_array()
            .expect("feeds")
            .iter()
            .map(|f| {
                (
                    f["name"].as_str().expect("name").to_owned(),
                    f["contract"].as_str().expect("contract").to_owned(),
                )
            })
            .collect()
    }

    /// Each feed's latest round id on its contract.
    pub fn rounds(&self) -> BTreeMap<String, u128> {
        let rpc = self.state["rpc"].as_str().expect("rpc");
        self.feeds()
            .into_iter()
            .map(|(name, contract)| {
                let round = latest_round_id(rpc, &contract).unwrap_or(0);
                (name, round)
            })
            .collect()
    }

    /// Waits until every feed's round moved `n` past `from` (reports keep landing).
    pub fn wait_rounds_past(&self, from: &BTreeMap<String, u128>, n: u128, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        loop {
            let now = self.rounds();
            if now.iter().all(|(feed, r)| *r >= from[feed] + n) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "reports stopped: rounds {now:?}, from {from:?} (+{n}) within {timeout:?}\n{}",
                self.logs_tail()
            );
            std::thread::sleep(Duration::from_millis(500));
        }
    }

    pub fn wait(&self, timeout: Duration, what: &str, mut ok: impl FnMut(&Self) -> bool) {
        let deadline = Instant::now() + timeout;
        while !ok(self) {
            assert!(
                Instant::now() < deadline,
                "timed out after {timeout:?} waiting for {what}\n{}",
                self.logs_tail()
            );
            std::thread::sleep(Duration::from_millis(500));
        }
    }

    pub fn logs_tail(&self) -> String {
        MEMBERS
            .iter()
            .map(|m| {
                let out = docker(&["logs", "--tail", "40", &self.container(m)]);
                format!(
                    "--- {m} ---\n{}{}",
                    tail(&String::from_utf8_lossy(&out.stdout), 40),
                    tail(&String::from_utf8_lossy(&out.stderr), 40)
                )
            })
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// Every member admitted by every other.
    pub fn wait_all_admitted(&self, timeout: Duration) {
        self.wait(timeout, "every member admitted by every other", |d| {
            MEMBERS.iter().all(|by| {
                MEMBERS
                    .iter()
                    .filter(|m| *m != by)
                    .all(|member| d.admits(by, member))
            })
        });
    }

    /// Starts watching the chain: every feed's longest time between two new rounds from now
    /// until [`GapWatch::stop`].
    pub fn watch_gaps(&self) -> GapWatch {
        let rpc = self.state["rpc"].as_str().expect("rpc").to_owned();
        let feeds = self.feeds();
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let stopped = stop.clone();
        let thread = std::thread::spawn(move || {
            let started = Instant::now();
            let mut last: BTreeMap<String, (u128, Instant)> = BTreeMap::new();
            let mut longest: BTreeMap<String, Duration> = BTreeMap::new();
            while !stopped.load(std::sync::atomic::Ordering::Relaxed) {
                for (name, contract) in &feeds {
                    let Some(round) = latest_round_id(&rpc, contract) else {
                        continue;
                    };
                    let now = Instant::now();
                    // Since the round seen last was first seen (or since watching began).
                    let (seen, since) = *last.get(name).unwrap_or(&(round, started));
                    let gap = longest.entry(name.clone()).or_default();
                    *gap = (*gap).max(now.duration_since(since));
                    if round != seen || !last.contains_key(name) {
                        last.insert(name.clone(), (round, now));
                    }
                }
                std::thread::sleep(Duration::from_millis(250));
            }
            longest
        });
        GapWatch { stop, thread }
    }

    pub fn dir(&self) -> PathBuf {
        PathBuf::from(self.state["dir"].as_str().expect("dir"))
    }
}

/// Longest time without a new round, per feed (see [`Don::watch_gaps`]).
pub struct GapWatch {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    thread: std::thread::JoinHandle<BTreeMap<String, Duration>>,
}

impl GapWatch {
    pub fn stop(self) -> BTreeMap<String, Duration> {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        self.thread.join().expect("the gap watcher")
    }
}

impl Drop for Don {
    fn drop(&mut self) {
        // SIGTERM: don.py stops the containers (30 s grace each, in parallel) and removes them.
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(120);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A sample's value in Prometheus text.
fn value_of(text: &str, series: &str) -> Option<f64> {
    text.lines().find_map(|l| {
        l.strip_prefix(series)?
            .strip_prefix(' ')?
            .trim()
            .parse()
            .ok()
    })
}

/// `latestRoundData()`'s round id, by JSON-RPC.
fn latest_round_id(rpc: &str, contract: &str) -> Option<u128> {
    let body = json!({"jsonrpc": "2.0", "id": 1, "method": "eth_call",
                      "params": [{"to": contract, "data": "0xfeaf968c"}, "latest"]})
    .to_string();
    let response = http(
        "POST",
        rpc,
        None,
        Some(("application/json", body.as_bytes())),
    )
    .ok()?;
    let answer: Value = serde_json::from_str(&response.body).ok()?;
    let data = answer["result"].as_str()?.strip_prefix("0x")?;
    u128::from_str_radix(data.get(32..64)?, 16).ok()
}

pub fn disconnect(don: &Don, member: &str) {
    docker_ok(&[
        "network",
        "disconnect",
        &don.network(),
        &don.container(member),
    ]);
}

pub fn reconnect(don: &Don, member: &str) {
    // The alias is the member's name in everyone's configuration (p2pAddresses, identityUrl).
    docker_ok(&[
        "network",
        "connect",
        "--alias",
        member,
        &don.network(),
        &don.container(member),
    ]);
}
