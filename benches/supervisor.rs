//! Supervisor figures: boot time of 20 trivial longruns, supervisor RSS, restart latency.
//! Run with `scripts/bench-supervisor.sh` (or `cargo bench --bench supervisor`).

use std::path::PathBuf;
use std::time::{Duration, Instant};

use enclave::paths::Root;
use enclave::service::state::{StateDir, Status};
use serde_json::Value;

mod common;
use common::{install_config, install_sleepers, rss_kib, spawn_init, wait};

const SERVICES: usize = 20;
const RESTART_SAMPLES: usize = 20;

fn main() {
    let repo = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let dir = tempfile::tempdir().expect("temp dir");
    let root = dir.path().join("root");
    let services = dir.path().join("s6-rc.d");
    install_config(&repo, &root, |solution| {
        // Many samples of one service must stay below the restart limit.
        solution["maxRestarts"] = Value::from(1000);
        solution["supervisor"] =
            serde_json::json!({"restartBackoffInitialMs": 10, "restartBackoffMaxMs": 10});
    });
    install_sleepers(&services, SERVICES);
    let state = StateDir::new(&Root::new(&root));
    let started = Instant::now();
    let mut init = spawn_init(&root, &services);
    wait(Duration::from_secs(30), || {
        state
            .read_all()
            .is_ok_and(|all| all.len() == SERVICES && all.iter().all(|s| s.status == Status::Up))
    });
    let boot = started.elapsed();
    let rss_boot_kib = rss_kib(init.id());
    let mut latencies = Vec::new();
    for sample in 0..RESTART_SAMPLES {
        let name = format!("svc-{:02}", sample % SERVICES);
        let old = state.read(&name).expect("state").pid.expect("pid");
        let killed = Instant::now();
        nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(old as i32),
            nix::sys::signal::Signal::SIGKILL,
        )
        .expect("kill");
        wait(Duration::from_secs(10), || {
            state
                .read(&name)
                .is_ok_and(|s| s.status == Status::Up && s.pid.is_some_and(|p| p != old))
        });
        latencies.push(killed.elapsed());
        // The next kill of the same service must not hit the restart limit.
        std::thread::sleep(Duration::from_millis(50));
    }
    let rss_after_kib = rss_kib(init.id());
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(init.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .expect("term");
    let stop = Instant::now();
    let status = init.wait().expect("wait");
    let shutdown = stop.elapsed();
    latencies.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    println!("supervisor benchmark ({SERVICES} trivial longruns, restart backoff 10 ms)");
    println!("  boot to all up:            {:8.1} ms", ms(boot));
    println!("  supervisor RSS after boot: {rss_boot_kib:8} KiB");
    println!("  supervisor RSS after {RESTART_SAMPLES} restarts: {rss_after_kib} KiB");
    println!(
        "  restart latency (kill -9 -> new pid up): p50 {:.1} ms, max {:.1} ms (includes the 10 ms backoff)",
        ms(latencies[latencies.len() / 2]),
        ms(latencies[latencies.len() - 1])
    );
    println!(
        "  SIGTERM to exit:           {:8.1} ms (exit status {status})",
        ms(shutdown)
    );
}
