//! Boot time with evidence on and off: `enclave init` until 5 trivial longruns are up and the
//! identity's attestation has an outcome, on a fresh root (first boot: 5 nodes' keys generated,
//! with birth evidence when on) and again on the same root (a reboot: the keys exist), with
//! `attestation.provider` `none` (off) and `simulated` (on). Alternating samples; medians. Run
//! with `scripts/bench-attestation.sh` (or `cargo bench --bench attestation_boot`).
//!
//! The simulated provider signs with a local key: it measures the enclave's own cost of evidence
//! (taking, writing, publishing), not a TDX host's quoting latency, which adds one quote per new
//! node key and one per boot.

use std::fs;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use enclave::paths::Root;
use enclave::service::state::{StateDir, Status};
use serde_json::{json, Value};

mod common;
use common::{dev_ca, install_config, install_sleepers, spawn_init, wait};

const SERVICES: usize = 5;
const SAMPLES: usize = 7;

fn main() {
    let repo = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let ca_dir = tempfile::tempdir().expect("temp dir");
    let (ca_key, ca_cert) = dev_ca(ca_dir.path());
    let simulated = json!({
        "provider": "simulated",
        "simulated": {"caKeyFile": ca_key, "caCertificateFile": ca_cert}
    });
    let off = json!({"provider": "none"});
    let mut times: [Vec<Duration>; 4] = Default::default();
    // One unmeasured pair of boots warms the page cache for the binary.
    boots(&repo, &off);
    for _ in 0..SAMPLES {
        let (first, again) = boots(&repo, &off);
        times[0].push(first);
        times[1].push(again);
        let (first, again) = boots(&repo, &simulated);
        times[2].push(first);
        times[3].push(again);
    }
    let [off_first, off_again, on_first, on_again] = times.map(|mut v| {
        v.sort();
        v[v.len() / 2].as_secs_f64() * 1000.0
    });
    println!(
        "boot with evidence ({SERVICES} trivial longruns, 5 nodes, {SAMPLES} samples each, median)"
    );
    for (what, off_ms, on_ms) in [
        ("first boot (keys generated)", off_first, on_first),
        ("reboot (keys exist)", off_again, on_again),
    ] {
        println!(
            "  {what:28} evidence off {off_ms:7.1} ms, on (simulated) {on_ms:7.1} ms: {:+.1} ms ({:+.1}%)",
            on_ms - off_ms,
            (on_ms - off_ms) / off_ms * 100.0
        );
    }
}

/// A first boot on a fresh root, then a second boot on the same root; the time each took.
fn boots(repo: &Path, attestation: &Value) -> (Duration, Duration) {
    let dir = tempfile::tempdir().expect("temp dir");
    let root = dir.path().join("root");
    let services = dir.path().join("s6-rc.d");
    install_config(repo, &root, |solution| {
        solution["chainlinkChainId"] = json!(1337);
        solution["attestation"] = attestation.clone();
        // Free ports: the supervisor's endpoint must not clash with anything running.
        for port in ["supervisor", "processMetrics", "alerts"] {
            let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
            solution["ports"][port] = json!(listener.local_addr().expect("addr").port());
        }
        solution["telemetry"]["targets"] = json!([]);
    });
    install_sleepers(&services, SERVICES);
    let first = boot(&root, &services);
    let again = boot(&root, &services);
    (first, again)
}

/// `enclave init` on `root` until the services are up and the attestation recorded.
fn boot(root: &Path, services: &Path) -> Duration {
    let state = StateDir::new(&Root::new(root));
    let identity = root.join("run/enclave/identity.json");
    // What the previous boot left must not pass for this one's.
    let _ = fs::remove_file(&identity);
    let _ = fs::remove_dir_all(state.path());
    let started = Instant::now();
    let mut init = spawn_init(root, services);
    wait(Duration::from_secs(60), || {
        let up = state
            .read_all()
            .is_ok_and(|all| all.len() == SERVICES && all.iter().all(|s| s.status == Status::Up));
        up && fs::read_to_string(&identity).is_ok_and(|t| !t.contains("\"pending\""))
    });
    let took = started.elapsed();
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(init.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .expect("term");
    init.wait().expect("wait");
    took
}
