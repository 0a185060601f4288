//! End to end: the container image (scripts/build-image.sh) runs the whole enclave in Docker
//! against servers on the host — a Binance-format price server, the EVM dev chain with the OCR1
//! aggregator contracts, a Prometheus Pushgateway and VictoriaMetrics — exactly as an operator
//! runs it with scripts/run-docker.sh.
//!
//! Needs a Docker engine and `ENCLAVE_E2E_IMAGE` (scripts/test.sh builds the image and sets it);
//! otherwise each test prints `SKIPPED <test>: <reason>` and passes.

#[path = "../common/mod.rs"]
mod common;
mod docker;
mod don;
mod don_scenarios;
mod setup;

use std::collections::{BTreeSet, HashSet};
use std::process::Command;
use std::time::{Duration, Instant};

use common::devchain::{self, DevChain};
use common::price_server::PriceServer;
use common::receivers::{free_port_on, get, wait_for, Pushgateway, VictoriaMetrics};
use docker::{bridge_gateway, docker, docker_ok, image_or_skip_reason, tail, Container};
use serde_json::{json, Value};
use setup::{free_port_offset, Secrets, NODES};

/// Boot to every service up: the first boot runs initdb and generates the keys.
const BOOT: Duration = Duration::from_secs(180);
/// Anything else that is awaited (reports on chain, pushes, top-ups).
const T: Duration = Duration::from_secs(120);
/// `docker stop --time`: the grace period before Docker kills the container.
const GRACE_SECONDS: u64 = 30;

macro_rules! image_or_skip {
    ($test:expr) => {
        match image_or_skip_reason() {
            Ok(image) => image,
            Err(reason) => {
                eprintln!("SKIPPED {}: {reason}", $test);
                return;
            }
        }
    };
}

/// Every service of the repository's s6-rc.d for the example's five nodes.
fn all_services() -> BTreeSet<String> {
    let mut names: BTreeSet<String> = [
        "postgres-bootstrap",
        "postgres",
        "postgres-init",
        "node-keys",
        "price-aggregator",
        "process-metrics",
        "alerts",
    ]
    .iter()
    .map(|s| (*s).to_owned())
    .collect();
    names.extend((1..=NODES).map(|i| format!("node-{i}")));
    names
}

#[test]
fn the_image_runs_every_service_lands_reports_on_chain_pushes_metrics_and_stops_cleanly() {
    let test = "the_image_runs_every_service…";
    let image = image_or_skip!(test);
    if let Some(reason) = devchain::skip_reason() {
        eprintln!("SKIPPED {test}: {reason}");
        return;
    }
    // Host side, on the Docker bridge so that the container reaches it.
    let gateway = bridge_gateway();
    let prices = PriceServer::start_listening(&gateway);
    prices.set("BTCUSDT", "67123.45");
    prices.set("ETHUSDT", "3456.78");
    let pushgateway = receiver_or_skip!(
        test,
        Pushgateway::start_listening(&gateway, free_port_on(&gateway))
    );
    let vm = receiver_or_skip!(
        test,
        VictoriaMetrics::start_listening(&gateway, free_port_on(&gateway))
    );
    let chain = DevChain::start_listening(&gateway, 1337);
    let max = 10i128.pow(18);
    let contracts = [
        chain.deploy_aggregator(8, "BTC / USD", 1, max),
        chain.deploy_aggregator(8, "ETH / USD", 1, max),
    ];
    let secrets = Secrets::new();
    let admin = chain.owner.1.clone();
    let faucet = chain.accounts[0].1.clone();
    let host = |port: u16| format!("http://host.docker.internal:{port}");
    let solution = setup::solution(port_of(&prices.base), &secrets, |s| {
        s["chainlinkChainId"] = json!(1337);
        s["chainlinkRpcHttpUrl"] = json!(host(port_of(&chain.rpc)));
        s["faucetPrivateKey"] = json!(faucet);
        s["faucetMinWei"] = json!("100000000000000000");
        s["faucetTopupWei"] = json!("300000000000000000");
        s["balanceTopupCheckIntervalMs"] = json!(5000);
        s["chain"] = json!({"enabled": true, "contractPollIntervalMs": 1000,
                            "receiptTimeoutMs": 30000, "rebroadcastAfterMs": 5000,
                            "setConfigFunction": "superprotocol", "adminPrivateKey": admin,
                            "configureContracts": true});
        for (i, contract) in contracts.iter().enumerate() {
            s["feeds"][i]["contractAddress"] = json!(contract.to_lowercase());
        }
        s["telemetry"]["instance"] = json!("e2e");
        let vm_import = format!("{}/api/v1/import/prometheus", host(vm.process.port()));
        s["telemetry"]["targets"] = json!([
            {"url": host(pushgateway.process.port()), "intervalMs": 1000, "timeoutMs": 1000},
            {"url": vm_import, "intervalMs": 1000, "timeoutMs": 1000},
        ]);
        let push = &mut s["priceAggregatorConfig"]["metricsPush"];
        push["enabled"] = json!(true);
        push["url"] = json!(vm_import);
        push["intervalMs"] = json!(1000);
        push["timeoutMs"] = json!(1000);
    });

    // The operator's way in: scripts/run-docker.sh signs the configuration and runs the image.
    let name = format!("enclave-e2e-{}", std::process::id());
    let container = Container {
        name: name.clone(),
        volumes: vec![format!("{name}-secrets"), format!("{name}-pgdata")],
    };
    let workdir = tempfile::tempdir().expect("temp dir");
    let config = workdir.path().join("configuration.json");
    setup::write_config(&config, &solution, false);
    let offset = free_port_offset();
    let _signed_copy = RemoveOnDrop(setup::run_docker_workdir(&name));
    let out = Command::new(common::repo().join("scripts/run-docker.sh"))
        .env("NAME", &name)
        .env("IMAGE", &image)
        .env("CONFIG", &config)
        .env("HOST_PORT_OFFSET", offset.to_string())
        .env("STOP_TIMEOUT", GRACE_SECONDS.to_string())
        .output()
        .expect("scripts/run-docker.sh runs");
    assert!(
        out.status.success(),
        "run-docker.sh failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );

    // 1. Every service up.
    let boot = container.wait_all_up(BOOT);
    eprintln!("{name}: every service up {boot:?} after run-docker.sh returned");
    let status: Value =
        serde_json::from_str(&container.exec_ok(&["/init", "status", "--json"])).expect("JSON");
    let listed: BTreeSet<String> = status
        .as_array()
        .expect("array")
        .iter()
        .map(|s| s["name"].as_str().expect("name").to_owned())
        .collect();
    assert_eq!(listed, all_services(), "{status}");

    // The enclave states its identity: this configuration, the image (run-docker.sh passes its
    // id), the binary in it, every node's public keys; no TEE here, so no quote, and a third
    // party's `verify-identity` against the configuration and the image's key passes.
    let document: Value =
        serde_json::from_str(&container.exec_ok(&["cat", "/run/enclave/identity.json"]))
            .expect("identity.json is JSON");
    let identity = &document["identity"];
    let image_id = docker_ok(&["image", "inspect", "--format", "{{.Id}}", &image]);
    assert_eq!(
        identity["software"]["imageDigest"],
        image_id.as_str(),
        "{identity}"
    );
    let binary = container.exec_ok(&["sha256sum", "/usr/local/bin/enclave"]);
    assert_eq!(
        identity["software"]["binarySha256"].as_str(),
        binary.split_whitespace().next(),
        "{identity}"
    );
    assert_eq!(
        identity["nodes"].as_array().map(Vec::len),
        Some(NODES as usize)
    );
    assert!(!container.exists("/run/enclave/identity.quote"));
    let verified = container.exec(&[
        "/init",
        "verify-identity",
        "/run/enclave/identity.json",
        "--public-key-file",
        "/etc/enclave/configuration.pub",
    ]);
    assert!(
        verified.0,
        "verify-identity failed: {}{}",
        verified.1, verified.2
    );

    // 2. The aggregator in the container serves /quotes/batch from the host's price server,
    //    and refuses a bad request with a JSON error naming the field.
    let aggregator = format!("http://127.0.0.1:{}", 3000 + offset);
    let quotes = wait_for(T, "BTC-USD and ETH-USD quoted", || {
        let response = get(&format!("{aggregator}/quotes/batch?pairs=BTC-USD,ETH-USD")).ok()?;
        let body: Value = serde_json::from_str(&response.body).ok()?;
        (response.status == 200 && body["quotes"]["ETH-USD"]["status"] == "ok").then_some(body)
    });
    assert_eq!(quotes["quotes"]["BTC-USD"]["price"], "67123.45", "{quotes}");
    let bad = get(&format!("{aggregator}/quotes/batch")).expect("answers");
    assert_eq!(bad.status, 400, "{}", bad.body);
    let error: Value = serde_json::from_str(&bad.body).expect("a JSON error body");
    assert_eq!(error["field"], "pairs", "{error}");

    // 3. As in a TEE, where nobody can run a command inside: node 1 tops the oracles'
    //    transmitters up from the faucet and configures both contracts itself
    //    (chain.configureContracts); the oracles' reports land on chain. `don-config --submit`
    //    run by hand afterwards finds nothing to do.
    let keys: Value =
        serde_json::from_str(&container.exec_ok(&["/init", "keys", "show"])).expect("JSON");
    let transmitters = common::oracle_transmitters(&keys);
    assert_eq!(transmitters.len(), NODES as usize - 1, "{keys}");
    wait_for(T, "every transmitter funded by the faucet", || {
        transmitters
            .iter()
            .all(|t| chain.balance(t) >= 100_000_000_000_000_000)
            .then_some(())
    });
    let started = Instant::now();
    wait_for(T, "both medians on chain", || {
        (chain.latest_answer(&contracts[0]) == 6_712_345_000_000
            && chain.latest_answer(&contracts[1]) == 345_678_000_000)
            .then_some(())
    });
    eprintln!(
        "{name}: both answers on chain {:?} after the transmitters were funded",
        started.elapsed()
    );
    let again: Value =
        serde_json::from_str(&container.exec_ok(&["/init", "don-config", "--submit"]))
            .expect("JSON");
    for feed in again["feeds"].as_array().expect("feeds") {
        assert_eq!(feed["result"], "up-to-date", "{again}");
    }
    prices.set("BTCUSDT", "68000.00");
    wait_for(T, "the moved BTC price on chain", || {
        (chain.latest_answer(&contracts[0]) == 6_800_000_000_000).then_some(())
    });
    let latest = get(&format!(
        "http://127.0.0.1:{}/v1/feeds/BTC-USD/latest",
        6602 + offset
    ))
    .expect("node 2 answers");
    assert_eq!(latest.status, 200, "{}", latest.body);

    // 4. Metrics from every service reach both receivers.
    let mut jobs: BTreeSet<String> = ["supervisor", "process-metrics", "price-aggregator"]
        .iter()
        .map(|s| (*s).to_owned())
        .collect();
    jobs.extend((1..=NODES).map(|i| format!("node-{i}")));
    wait_for(T, "a Pushgateway group from every service", || {
        let pushed: BTreeSet<String> = pushgateway
            .groups()
            .iter()
            .filter(|g| g["labels"]["instance"] == "e2e")
            .filter_map(|g| g["labels"]["job"].as_str().map(str::to_owned))
            .collect();
        jobs.is_subset(&pushed).then_some(())
    });
    wait_for(T, "series from every service in VictoriaMetrics", || {
        let stored: BTreeSet<String> = vm
            .query(r#"count by (job) (enclave_telemetry_pushes_total{instance="e2e"})"#)
            .into_iter()
            .filter_map(|(labels, _)| labels.get("job").cloned())
            .collect();
        jobs.is_subset(&stored).then_some(())
    });
    let supervisor = pushgateway
        .group(&[("job", "supervisor"), ("instance", "e2e")])
        .expect("the supervisor's group");
    let identity_series = common::receivers::group_samples(&supervisor, "enclave_identity_info");
    assert_eq!(identity_series.len(), NODES as usize, "{identity_series:?}");
    assert!(identity_series.iter().all(|(labels, _)| {
        labels.get("config_digest").map(String::as_str)
            == identity["configuration"]["digest"].as_str()
    }));
    let available = common::receivers::group_samples(&supervisor, "enclave_attestation_available");
    assert_eq!(
        available.first().map(|(_, v)| *v),
        Some(0.0),
        "{available:?}"
    );
    wait_for(T, "landed transmissions counted in VictoriaMetrics", || {
        vm.query(r#"sum(enclave_node_transmissions_total{instance="e2e", outcome="landed"})"#)
            .first()
            .is_some_and(|(_, v)| *v >= 1.0)
            .then_some(())
    });

    // 5. No secret of the configuration, the keys or the database in any log or metric.
    let mut secret_values = vec![
        secrets.binance_api_key.clone(),
        secrets.metrics_password.clone(),
        admin.trim_start_matches("0x").to_owned(),
        faucet.trim_start_matches("0x").to_owned(),
    ];
    secret_values.extend(secret_files(&container));
    let everything = format!(
        "{}\n{}\n{}",
        container.logs(),
        container.exec_ok(&["sh", "-c", "find /var/log -type f -exec cat {} +"]),
        pushgateway.metrics_text()
    );
    assert_no_secret(&everything, &secret_values);

    // 6. docker stop: a clean shutdown within the grace period, exit 0, and the pushed groups
    //    are deleted (nothing stale stays on the gateway).
    let stopping = Instant::now();
    docker_ok(&["stop", "--time", &GRACE_SECONDS.to_string(), &name]);
    let took = stopping.elapsed();
    assert_eq!(container.exit_code(), 0, "{}", tail(&container.logs(), 40));
    assert!(
        took < Duration::from_secs(GRACE_SECONDS),
        "the stop took {took:?}"
    );
    assert!(container.logs().contains("enclave stopped exit_code=0"));
    eprintln!("{name}: docker stop → exit 0 after {took:?}");
    wait_for(T, "the pushed groups deleted", || {
        (!pushgateway
            .groups()
            .iter()
            .any(|g| g["labels"]["instance"] == "e2e"))
        .then_some(())
    });
}

#[test]
fn a_tampered_configuration_ends_the_container_with_77_at_once_and_starts_nothing() {
    let image = image_or_skip!("a_tampered_configuration…");
    let workdir = tempfile::tempdir().expect("temp dir");
    let config = workdir.path().join("configuration.json");
    setup::write_config(&config, &setup::solution(9, &Secrets::new(), |_| {}), true);
    let mut document = common::read_json(&config);
    document["solution"]["chainlinkNodeName"] = json!("tampered after signing");
    std::fs::write(&config, document.to_string()).expect("write");

    let name = format!("enclave-e2e-tampered-{}", std::process::id());
    let started = Instant::now();
    let container = Container::run(&name, &image, &config);
    let code = container.wait_exit(Duration::from_secs(30));
    let took = started.elapsed();
    let log = container.logs();
    assert_eq!(code, Some(77), "{log}");
    assert!(took < Duration::from_secs(15), "exit 77 took {took:?}");
    let rejections: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("configuration rejected"))
        .collect();
    assert_eq!(rejections.len(), 1, "one clear line: {log}");
    assert!(
        rejections[0].contains("nothing started") && rejections[0].contains("signature"),
        "{}",
        rejections[0]
    );
    assert!(
        !log.lines().any(|l| l.starts_with('[')),
        "a service wrote to the log: {log}"
    );
    let diff = docker_ok(&["diff", &name]);
    let started_something: Vec<&str> = diff
        .lines()
        .filter(|l| {
            [
                "/run/service",
                "/var/log/",
                "/run/enclave/",
                "/run/postgresql/",
            ]
            .iter()
            .any(|p| l.contains(p))
        })
        .collect();
    assert!(started_something.is_empty(), "{started_something:?}");
    // The anonymous volumes (keys, database) were left empty.
    let empty = docker(&[
        "run",
        "--rm",
        "--network",
        "none",
        "--volumes-from",
        &name,
        "--entrypoint",
        "/bin/sh",
        &image,
        "-c",
        r#"[ -z "$(ls -A /sp/secrets)" ] && [ -z "$(ls -A /sp/postgresql/data)" ]"#,
    ]);
    assert!(empty.status.success(), "the volumes are not empty");
    eprintln!("tampered configuration: exit 77 after {took:?}");
}

#[test]
fn an_aggregator_that_keeps_crashing_ends_the_container_non_zero_after_max_restarts() {
    let image = image_or_skip!("an_aggregator_that_keeps_crashing…");
    let max_restarts = 2;
    let workdir = tempfile::tempdir().expect("temp dir");
    let config = workdir.path().join("configuration.json");
    let solution = setup::solution(9, &Secrets::new(), |s| {
        s["maxRestarts"] = json!(max_restarts);
        s["restartWindowMs"] = json!(300_000);
    });
    setup::write_config(&config, &solution, true);
    let name = format!("enclave-e2e-crash-{}", std::process::id());
    let container = Container::run(&name, &image, &config);
    container.wait_all_up(BOOT);

    // SIGKILL every aggregator process the supervisor starts, until the container ends.
    let mut killed = HashSet::new();
    let deadline = Instant::now() + T;
    while container.running() {
        assert!(Instant::now() < deadline, "still running after {T:?}");
        if let Some(pid) = service_pid(&container, "price-aggregator") {
            if !killed.contains(&pid)
                && container
                    .exec(&["sh", "-c", "kill -9 \"$1\"", "sh", &pid.to_string()])
                    .0
            {
                killed.insert(pid);
            }
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let code = container.exit_code();
    let log = container.logs();
    assert_eq!(code, 128 + 9, "exit status of the killed service: {log}");
    assert_eq!(killed.len(), max_restarts + 1, "{killed:?}");
    assert!(
        log.lines()
            .any(|l| l.contains("restart limit exceeded") && l.contains("price-aggregator")),
        "{}",
        tail(&log, 40)
    );
    assert!(
        log.contains("enclave stopped exit_code=137"),
        "{}",
        tail(&log, 40)
    );
}

/// The pid of a service that is up, from the supervisor's status.
fn service_pid(container: &Container, service: &str) -> Option<u64> {
    let (ok, text, _) = container.exec(&["/init", "status", "--json"]);
    if !ok {
        return None;
    }
    let status: Value = serde_json::from_str(&text).ok()?;
    status
        .as_array()?
        .iter()
        .find(|s| s["name"] == service && s["status"] == "up")?["pid"]
        .as_u64()
}

/// The contents of every private file under /sp/secrets (keys, passwords, shared secret).
fn secret_files(container: &Container) -> Vec<String> {
    let listing = container.exec_ok(&[
        "find",
        "/sp/secrets",
        "-type",
        "f",
        "!",
        "-name",
        "public.json",
    ]);
    let files: Vec<&str> = listing.lines().collect();
    assert!(
        files.len() >= 4 * NODES as usize + 2,
        "keys and passwords expected: {files:?}"
    );
    files
        .iter()
        .map(|f| container.exec_ok(&["cat", f]).trim().to_owned())
        .filter(|s| s.len() >= 16)
        .collect()
}

fn assert_no_secret(text: &str, secrets: &[String]) {
    let lower = text.to_lowercase();
    for secret in secrets {
        assert!(
            !lower.contains(&secret.to_lowercase()),
            "a secret (starting {:.4}…) appears in the logs or metrics",
            secret
        );
    }
}

fn port_of(url: &str) -> u16 {
    url.rsplit(':')
        .next()
        .and_then(|p| p.trim_end_matches('/').parse().ok())
        .unwrap_or_else(|| panic!("no port in {url}"))
}

/// Removes a directory when the test ends, however it ends.
struct RemoveOnDrop(std::path::PathBuf);

impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
