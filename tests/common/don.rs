//! A decentralized oracle network of real processes for tests: the supervisor runs PostgreSQL,
//! the price aggregator (against a local Binance-format server) and `node-keys`; the test runs
//! each `enclave node` itself, so it can kill, restart or leave out any of them.

use std::collections::HashMap;
use std::fs::{self, OpenOptions};
use std::net::TcpListener;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use enclave::service::state::Status;
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use serde_json::{json, Value};

use super::harness::{free_port, wait_until, Enclave};
use super::price_server::PriceServer;

pub const T: Duration = Duration::from_secs(90);

/// Consensus timing for tests: fast rounds on a private chain id (no libocr chain minimums).
pub fn fast_consensus() -> Value {
    json!({"deltaProgressMs": 3000, "deltaResendMs": 1000, "deltaRoundMs": 1000,
           "deltaGraceMs": 200, "deltaStageMs": 1000, "rMax": 3})
}

/// What every test DON's configuration shares: PostgreSQL on `pg_port`, the nodes' API and P2P
/// ports from `api_base` and `p2p_base`, the dev chain's id and [`fast_consensus`].
pub fn configure_nodes(s: &mut Value, pg_port: u16, api_base: u16, p2p_base: u16) {
    s["pgPort"] = json!(pg_port);
    s["chainlinkChainId"] = json!(1337);
    s["ports"]["nodeApiBase"] = json!(api_base);
    s["ports"]["nodeP2pBase"] = json!(p2p_base);
    s["consensus"] = fast_consensus();
}

/// Sets every feed's heartbeat to `ms`. For tests that wait for a report on *every* oracle: an
/// oracle that is in another round when a report is finalized ignores its final echoes (as in
/// libocr) and, with a flat price, gets its first report only at the next heartbeat — with the
/// default 60 s, too close to the tests' deadlines on a loaded machine.
pub fn heartbeat_every(s: &mut Value, ms: u64) {
    if let Some(feeds) = s["feeds"].as_array_mut() {
        for feed in feeds {
            feed["heartbeatMs"] = json!(ms);
        }
    }
}

/// One BTC-USD feed from Binance's BTCUSDT, reported to a contract nobody reads.
pub fn btc_usd_feed() -> Value {
    json!([{"name": "BTC-USD", "decimals": 8,
        "contractAddress": "0x00000000000000000000000000000000000b7c01",
        "legs": [{"source": "binance", "base": "BTC", "quote": "USDT"}]}])
}

pub struct Don {
    pub enclave: Enclave,
    pub prices: PriceServer,
    pub total: u32,
    pub api_base: u16,
    pub p2p_base: u16,
    pub feeds: Vec<String>,
    nodes: HashMap<u32, Child>,
    logs: PathBuf,
}

/// `(feed name, Binance symbol, base, quote, price)`.
pub type Feed<'a> = (&'a str, &'a str, &'a str, &'a str, &'a str);

/// One BTC-USD feed from BTCUSDT at 1000.00, for tests where the feed is not the point.
pub const BTC_USD: &[Feed<'static>] = &[("BTC-USD", "BTCUSDT", "BTC", "USDT", "1000.00")];

/// A base such that base+1..=base+count are all free.
pub fn free_range(count: u16) -> u16 {
    let [base] = free_ranges(count);
    base
}

/// `N` bases, each with base+1..=base+count free, none overlapping another: the ports of every
/// range chosen are held while the next is chosen (two draws of [`free_range`] could meet: the
/// API and the P2P ports of one test once did).
pub fn free_ranges<const N: usize>(count: u16) -> [u16; N] {
    let mut held = Vec::new();
    let mut bases = [0u16; N];
    for base_out in bases.iter_mut() {
        *base_out = (0..200)
            .find_map(|_| {
                // Below the kernel's ephemeral range (32768+), where free_port() and dialers
                // draw from.
                let base = 20_000 + (fastrand::u16(..12_000) / 10) * 10;
                let listeners: Vec<_> = (1..=count)
                    .map_while(|i| TcpListener::bind(("127.0.0.1", base + i)).ok())
                    .collect();
                (listeners.len() == usize::from(count)).then(|| {
                    held.extend(listeners);
                    base
                })
            })
            .expect("no free port range");
    }
    bases
}

impl Don {
    /// Configures `total` nodes (node 1 the bootstrap) and the feeds, starts the supporting
    /// services and, unless listed in `skip`, every node.
    pub fn start(
        total: u32,
        feeds: &[Feed<'_>],
        skip: &[u32],
        configure: impl FnOnce(&mut Value),
    ) -> Don {
        Self::start_prepared(total, feeds, skip, configure, |_| {})
    }

    /// [`Don::start`], with `prepare` given the enclave's root before anything starts (to mount
    /// a filesystem under it, say).
    pub fn start_prepared(
        total: u32,
        feeds: &[Feed<'_>],
        skip: &[u32],
        configure: impl FnOnce(&mut Value),
        prepare: impl FnOnce(&std::path::Path),
    ) -> Don {
        let prices = PriceServer::start();
        for (_, symbol, _, _, price) in feeds {
            prices.set(symbol, price);
        }
        let mut enclave = Enclave::new();
        enclave.use_repo_services();
        let [api_base, p2p_base] = free_ranges(total as u16);
        let pg_port = free_port();
        let aggregator_port = free_port();
        let base_url = prices.base.clone();
        let feed_configs: Vec<Value> = feeds
            .iter()
            .enumerate()
            .map(|(i, (name, _, base, quote, _))| {
                json!({"name": name, "decimals": 8, "contractAddress": format!("0x{:040x}", 0xfeed00 + i),
                       "alphaPPB": 5_000_000, "heartbeatMs": 60_000,
                       "legs": [{"source": "binance", "base": base, "quote": quote}]})
            })
            .collect();
        let list: Vec<String> = (1..=total).map(|i| i.to_string()).collect();
        enclave.configure(|s| {
            s["totalNodes"] = json!(total);
            s["nodesList"] = json!(list.join(" "));
            s["primaryNodes"] = json!(list.join(" "));
            configure_nodes(s, pg_port, api_base, p2p_base);
            s["priceAggregatorConfig"] = json!({
                "port": aggregator_port,
                "sources": {"binance": {"baseUrl": base_url, "rps": null, "ttl": 1000}},
            });
            s["feeds"] = Value::from(feed_configs);
            configure(s);
        });
        prepare(&enclave.root);
        enclave.start(&[
            "--only",
            "node-keys",
            "--only",
            "postgres-init",
            "--only",
            "price-aggregator",
        ]);
        enclave.wait_status("node-keys", Status::Finished, T);
        enclave.wait_status("postgres-init", Status::Finished, T);
        enclave.wait_status("price-aggregator", Status::Up, T);
        let logs = enclave.root.join("node-logs");
        fs::create_dir_all(&logs).expect("mkdir");
        let mut don = Don {
            enclave,
            prices,
            total,
            api_base,
            p2p_base,
            feeds: feeds.iter().map(|f| f.0.to_owned()).collect(),
            nodes: HashMap::new(),
            logs,
        };
        for node in 1..=total {
            if !skip.contains(&node) {
                don.spawn(node);
            }
        }
        don
    }

    pub fn spawn(&mut self, node: u32) {
        let log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.logs.join(format!("node-{node}.log")))
            .expect("log file");
        let child = super::enclave_at(&self.enclave.root)
            .args(["node", "--node", &node.to_string()])
            .env_remove("NODE_NUMBER")
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("dup"))
            .stderr(log)
            .process_group(0)
            .spawn()
            .expect("enclave node starts");
        self.nodes.insert(node, child);
    }

    /// SIGKILL, as a crash.
    pub fn crash(&mut self, node: u32) {
        if let Some(mut child) = self.nodes.remove(&node) {
            let _ = kill(Pid::from_raw(child.id() as i32), Signal::SIGKILL);
            let _ = child.wait();
        }
    }

    pub fn pid(&self, node: u32) -> Option<u32> {
        self.nodes.get(&node).map(Child::id)
    }

    pub fn is_running(&mut self, node: u32) -> bool {
        self.nodes
            .get_mut(&node)
            .is_some_and(|c| matches!(c.try_wait(), Ok(None)))
    }

    /// SIGTERM; returns the exit code.
    pub fn stop(&mut self, node: u32) -> Option<i32> {
        let mut child = self.nodes.remove(&node)?;
        let _ = kill(Pid::from_raw(child.id() as i32), Signal::SIGTERM);
        child.wait().ok()?.code()
    }

    pub fn api(&self, node: u32, path: &str) -> Option<(u16, String)> {
        Enclave::http_get(self.api_base + node as u16, path)
    }

    pub fn json(&self, node: u32, path: &str) -> Option<(u16, Value)> {
        let (code, body) = self.api(node, path)?;
        Some((code, serde_json::from_str(&body).ok()?))
    }

    pub fn latest(&self, node: u32, feed: &str) -> Option<Value> {
        match self.json(node, &format!("/v1/feeds/{feed}/latest"))? {
            (200, v) => Some(v),
            _ => None,
        }
    }

    /// Waits until `node` has a finalized report of `feed` that `accept` likes.
    pub fn wait_latest(
        &self,
        node: u32,
        feed: &str,
        what: &str,
        accept: impl Fn(&Value) -> bool,
    ) -> Value {
        let mut found = None;
        let waited = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            wait_until(T, &format!("node {node}, {feed}: {what}"), || {
                found = self.latest(node, feed).filter(|v| accept(v));
                found.is_some()
            })
        }));
        if let Err(e) = waited {
            let logs = self.logs(node);
            let tail: String = logs
                .chars()
                .rev()
                .take(6000)
                .collect::<Vec<_>>()
                .into_iter()
                .rev()
                .collect();
            eprintln!("node {node}'s log ends with:\n{tail}");
            std::panic::resume_unwind(e);
        }
        found.expect("found")
    }

    pub fn metric(&self, node: u32, name_and_labels: &str) -> f64 {
        let Some((_, text)) = self.api(node, "/metrics") else {
            return 0.0;
        };
        text.lines()
            .filter(|l| l.starts_with(name_and_labels))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum()
    }

    /// The node's own database credentials: (host, port, database, user, password).
    pub fn credentials(&self, node: u32) -> [String; 5] {
        let pgpass = self
            .enclave
            .root
            .join(format!("run/enclave/secrets/node-{node}.pgpass"));
        let line = fs::read_to_string(&pgpass).expect("pgpass");
        let fields: Vec<String> = line.trim().split(':').map(str::to_owned).collect();
        fields.try_into().expect("five pgpass fields")
    }

    /// Runs a PostgreSQL client `program` (psql, pg_dump, pg_restore) on the node's database
    /// with `args`; its stdout.
    pub fn pg(&self, node: u32, program: &str, args: &[&str]) -> String {
        let [host, port, database, user, password] = self.credentials(node);
        let out = Command::new(program)
            .args(["-h", &host, "-p", &port, "-U", &user, "-d", &database])
            .args(args)
            .env("PGPASSWORD", password)
            .output()
            .unwrap_or_else(|e| panic!("{program} runs: {e}"));
        assert!(
            out.status.success(),
            "{program} {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// The rows `sql` selects from the node's database, each as its columns.
    pub fn query(&self, node: u32, sql: &str) -> Vec<Vec<String>> {
        self.pg(node, "psql", &["-At", "-F", "|", "-c", sql])
            .lines()
            .map(|l| l.split('|').map(str::to_owned).collect())
            .collect()
    }

    /// `enclave keys show`.
    pub fn keys(&self) -> Value {
        let out = super::enclave_at(&self.enclave.root)
            .args(["keys", "show"])
            .output()
            .expect("keys show");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).expect("keys JSON")
    }

    /// `enclave don-config [--submit]`: exit code, the JSON printed, stderr.
    pub fn don_config(&self, submit: bool) -> (i32, Value, String) {
        let mut command = super::enclave_at(&self.enclave.root);
        command.arg("don-config");
        if submit {
            command.arg("--submit");
        }
        let out = command.output().expect("don-config runs");
        let value = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
        (
            out.status.code().unwrap_or(-1),
            value,
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    pub fn logs(&self, node: u32) -> String {
        fs::read_to_string(self.logs.join(format!("node-{node}.log"))).unwrap_or_default()
    }

    pub fn oracles(&self) -> Vec<u32> {
        (2..=self.total).collect()
    }
}

impl Drop for Don {
    fn drop(&mut self) {
        let nodes: Vec<u32> = self.nodes.keys().copied().collect();
        for node in nodes {
            self.crash(node);
        }
        // The enclave (PostgreSQL, aggregator) stops in its own Drop.
        if let Ok(dir) = std::env::var("KEEP_DON_LOGS") {
            let _ = std::process::Command::new("cp")
                .arg("-r")
                .arg(&self.enclave.root)
                .arg(&dir)
                .status();
        }
    }
}
