//! scripts/run-local.sh from a clone inside a home directory of mode 0700 (as root's is): the
//! default root lives where the postgres account can reach it, every service comes up, the
//! enclave's files stay private, Ctrl-C stops it cleanly, and a ROOT that account cannot reach is
//! refused in one line before anything starts.

use crate::common;

use std::fs;
use std::os::unix::fs::MetadataExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::clone::PrivateClone;
use common::don::{fast_consensus, free_ranges};
use common::harness::{free_port, wait_until, Enclave};
use common::price_server::PriceServer;
use common::{example_path, read_json};
use nix::sys::signal::{kill, killpg, Signal};
use nix::unistd::Pid;
use serde_json::{json, Value};

const T: Duration = Duration::from_secs(180);

fn is_root() -> bool {
    nix::unistd::Uid::effective().is_root()
}

/// The example with free ports, a local Binance-format price server and no chain: nothing
/// leaves the machine and nothing collides with another test.
fn local_solution(prices: &PriceServer) -> (Value, u16) {
    let mut s = read_json(&example_path())["solution"].clone();
    let supervisor = free_port();
    let [api_base, p2p_base] = free_ranges(5);
    s["pgPort"] = json!(free_port());
    s["chainlinkChainId"] = json!(1337);
    s["ports"] = json!({"supervisor": supervisor, "processMetrics": free_port(),
                        "nodeApiBase": api_base, "nodeP2pBase": p2p_base});
    s["consensus"] = fast_consensus();
    s["priceAggregatorConfig"] = json!({"port": free_port(),
        "sources": {"binance": {"baseUrl": prices.base, "rps": null}}});
    s["feeds"] = json!([{"name": "BTC-USD", "decimals": 8,
        "contractAddress": "0x00000000000000000000000000000000000b7c01",
        "legs": [{"source": "binance", "base": "BTC", "quote": "USDT"}]}]);
    (s, supervisor)
}

/// run-local.sh as a user starts it, in its own process group (a terminal's Ctrl-C goes to the
/// group); output to files.
fn run_local(clone: &Path, env: &[(&str, &str)], out: &Path, err: &Path) -> Child {
    let mut command = Command::new(clone.join("scripts/run-local.sh"));
    command
        .env_remove("ROOT")
        .env_remove("CONFIG")
        .env_remove("ENCLAVE_ROOT")
        .env_remove("CONFIGURATION_PATH")
        .env("RUST_LOG", "info")
        .stdin(Stdio::null())
        .stdout(fs::File::create(out).expect("stdout file"))
        .stderr(fs::File::create(err).expect("stderr file"))
        .process_group(0);
    for (k, v) in env {
        command.env(k, v);
    }
    command.spawn().expect("run-local.sh starts")
}

/// Removes the enclave root when the test ends, however it ends.
struct RemoveRoot(Option<PathBuf>);

impl Drop for RemoveRoot {
    fn drop(&mut self) {
        if let Some(root) = &self.0 {
            let _ = fs::remove_dir_all(root);
        }
    }
}

/// Stops run-local (the enclave) when the test ends early.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        if matches!(self.0.try_wait(), Ok(None)) {
            let pid = Pid::from_raw(self.0.id() as i32);
            let _ = kill(pid, Signal::SIGTERM);
            let deadline = Instant::now() + Duration::from_secs(30);
            while Instant::now() < deadline && matches!(self.0.try_wait(), Ok(None)) {
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = killpg(pid, Signal::SIGKILL);
            let _ = self.0.wait();
        }
    }
}

fn mode(path: &Path) -> u32 {
    fs::metadata(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .mode()
        & 0o7777
}

#[test]
fn run_local_from_a_clone_in_a_0700_home_brings_every_service_up_and_keeps_the_files_private() {
    let home = PrivateClone::new();
    let prices = PriceServer::start();
    prices.set("BTCUSDT", "67123.45");
    let (solution, supervisor) = local_solution(&prices);
    let logs = tempfile::tempdir().expect("temp dir");
    let config = logs.path().join("configuration.json");
    PrivateClone::write_signed(&config, &solution);
    let (out, err) = (logs.path().join("stdout"), logs.path().join("stderr"));
    let mut cleanup = RemoveRoot(None);
    let mut running = Running(run_local(
        &home.clone,
        &[
            ("ENCLAVE_BIN", env!("CARGO_BIN_EXE_enclave")),
            ("CONFIG", config.to_str().expect("utf-8")),
        ],
        &out,
        &err,
    ));
    let logs_text = || {
        format!(
            "--- stderr\n{}\n--- stdout (tail)\n{}",
            fs::read_to_string(&err).unwrap_or_default(),
            fs::read_to_string(&out)
                .unwrap_or_default()
                .lines()
                .rev()
                .take(40)
                .collect::<Vec<_>>()
                .join("\n")
        )
    };

    // The script names its root in one line.
    let mut root = None;
    wait_until(
        Duration::from_secs(30),
        "run-local.sh naming its root",
        || {
            root = fs::read_to_string(&err)
                .unwrap_or_default()
                .lines()
                .find_map(|l| {
                    l.split_once("enclave root: ")
                        .and_then(|(_, rest)| rest.split_whitespace().next())
                        .map(PathBuf::from)
                });
            root.is_some()
        },
    );
    let root = root.expect("root");
    cleanup.0 = Some(root.clone());
    assert!(
        !root.starts_with(home.home.path()),
        "the root {} must not be inside the 0700 home",
        root.display()
    );

    let deadline = Instant::now() + T;
    while Enclave::http_get(supervisor, "/healthz").map(|(code, _)| code) != Some(200) {
        if let Ok(Some(status)) = running.0.try_wait() {
            panic!(
                "run-local.sh exited ({status}) before every service was up\n{}",
                logs_text()
            );
        }
        assert!(
            Instant::now() < deadline,
            "services not up within {T:?}\n{}",
            logs_text()
        );
        std::thread::sleep(Duration::from_millis(200));
    }

    // Nothing that protects the data was loosened: the configuration, the secrets and the
    // data directory are private; only the directories on PostgreSQL's way are searchable.
    let data = root.join("sp/postgresql/data");
    assert_eq!(mode(&data), 0o700);
    assert_eq!(
        mode(&root.join("sp/configurations/configuration.json")) & 0o077,
        0
    );
    assert_eq!(mode(&root.join("sp/secrets")) & 0o077, 0);
    assert_eq!(mode(&root.join("var")) & 0o077, 0);
    assert_eq!(
        mode(home.home.path()),
        0o700,
        "the home directory is left as it was"
    );
    if is_root() {
        let postgres = nix::unistd::User::from_name("postgres")
            .expect("passwd")
            .expect("a postgres user");
        assert_eq!(
            fs::metadata(&data).expect("data").uid(),
            postgres.uid.as_raw()
        );
        assert_eq!(mode(&root), 0o711);
    }

    // Ctrl-C: SIGINT to the foreground process group, as a terminal sends it.
    killpg(Pid::from_raw(running.0.id() as i32), Signal::SIGINT).expect("SIGINT");
    let deadline = Instant::now() + Duration::from_secs(60);
    let status = loop {
        if let Some(status) = running.0.try_wait().expect("try_wait") {
            break status;
        }
        assert!(Instant::now() < deadline, "no clean stop\n{}", logs_text());
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(status.code(), Some(0), "{}", logs_text());
}

#[test]
fn a_root_the_postgres_account_cannot_reach_is_refused_in_one_line_before_anything_starts() {
    if !is_root() {
        eprintln!("SKIPPED: only root makes the enclave run PostgreSQL as another account");
        return;
    }
    let home = PrivateClone::new();
    let logs = tempfile::tempdir().expect("temp dir");
    let (out, err) = (logs.path().join("stdout"), logs.path().join("stderr"));
    // The old default: a root inside the clone, so inside the 0700 home.
    let inside = home.clone.join(".local/root");
    let mut running = Running(run_local(
        &home.clone,
        &[
            ("ENCLAVE_BIN", env!("CARGO_BIN_EXE_enclave")),
            ("ROOT", inside.to_str().expect("utf-8")),
        ],
        &out,
        &err,
    ));
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(status) = running.0.try_wait().expect("try_wait") {
            break status;
        }
        assert!(Instant::now() < deadline, "run-local.sh did not refuse");
        std::thread::sleep(Duration::from_millis(50));
    };
    let stderr = fs::read_to_string(&err).unwrap_or_default();
    assert_eq!(status.code(), Some(1), "{stderr}");
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(lines.len(), 1, "one line: {stderr}");
    let home_dir = home.home.path().display().to_string();
    assert!(
        lines[0].contains("cannot reach")
            && lines[0].contains(&home_dir)
            && lines[0].contains("700"),
        "names the directory in the way and its mode: {stderr}"
    );
    assert!(
        !home.clone.join(".local").exists(),
        "nothing was made, installed or started"
    );
    assert_eq!(
        mode(home.home.path()),
        0o700,
        "the home directory is left as it was"
    );
}
