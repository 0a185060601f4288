//! Service output is prefixed on the container's stdout and kept in per-service files; state
//! files and `enclave status` tell what runs.

use crate::common;

use std::time::Duration;

use common::harness::{wait_until, Enclave};
use common::{code, stdout};
use enclave::service::state::Status;

const T: Duration = Duration::from_secs(20);

fn status(e: &Enclave, args: &[&str]) -> std::process::Output {
    let root = e.root.to_str().expect("utf-8").to_owned();
    let mut all = vec!["--root", root.as_str(), "status"];
    all.extend_from_slice(args);
    common::enclave(&all)
}

/// A longrun "waiter" that notifies readiness once the returned gate file exists.
fn waiter(e: &Enclave) -> std::path::PathBuf {
    let gate = e.marker("gate");
    e.longrun(
        "waiter",
        &format!(
            "while [ ! -e {} ]; do sleep 0.05; done\necho >&3\nexec sleep 1000",
            gate.display()
        ),
        &[("notification-fd", "3")],
    );
    gate
}

#[test]
fn output_is_prefixed_on_stdout_and_kept_in_the_service_log() {
    let mut e = Enclave::new();
    e.longrun(
        "talker",
        "echo hello from talker\necho to stderr >&2\nexec sleep 1000",
        &[],
    );
    e.start(&[]);
    e.wait_status("talker", Status::Up, T);
    let log = e.root.join("var/log/talker/current");
    wait_until(T, "the log file", || {
        std::fs::read_to_string(&log)
            .is_ok_and(|t| t.contains("hello from talker") && t.contains("to stderr"))
    });
    wait_until(T, "prefixed stdout", || {
        std::fs::read_to_string(&e.stdout).is_ok_and(|t| t.contains("[talker] hello from talker"))
    });
    e.stop_cleanly(T);
}

#[test]
fn status_check_passes_only_when_everything_is_up() {
    let mut e = Enclave::new();
    e.service("prepare", "oneshot", &[("up", "true")]);
    let gate = waiter(&e);
    e.start(&[]);
    e.wait_status("waiter", Status::Starting, T);
    let out = status(&e, &["--check"]);
    assert_eq!(code(&out), 1);
    std::fs::write(&gate, "").expect("gate");
    e.wait_status("waiter", Status::Up, T);
    let out = status(&e, &["--check"]);
    assert_eq!(code(&out), 0, "{}", common::stderr(&out));
    let table = stdout(&status(&e, &[]));
    assert!(
        table.contains("waiter") && table.contains("prepare") && table.contains("finished"),
        "{table}"
    );
    let json: serde_json::Value =
        serde_json::from_str(&stdout(&status(&e, &["--json"]))).expect("json");
    let names: Vec<&str> = json
        .as_array()
        .expect("array")
        .iter()
        .filter_map(|s| s["name"].as_str())
        .collect();
    assert_eq!(names, ["prepare", "waiter"]);
    e.stop_cleanly(T);
    assert_eq!(code(&status(&e, &["--check"])), 1);
}

#[test]
fn status_without_a_running_supervisor_says_so() {
    let dir = tempfile::tempdir().expect("tmp");
    let out = common::enclave(&["--root", dir.path().to_str().expect("utf-8"), "status"]);
    assert_eq!(code(&out), 1);
    assert!(
        common::stderr(&out).contains("run/service"),
        "{}",
        common::stderr(&out)
    );
}

#[test]
fn the_supervisor_serves_its_metrics_and_health() {
    let mut e = Enclave::new();
    let gate = waiter(&e);
    e.start(&[]);
    let port = e.port("supervisor");
    e.wait_status("waiter", Status::Starting, T);
    wait_until(T, "the supervisor endpoint", || {
        Enclave::http_get(port, "/healthz").is_some()
    });
    let (code, body) = Enclave::http_get(port, "/healthz").expect("health");
    assert_eq!(code, 503, "{body}");
    assert!(body.contains("waiter is starting"), "{body}");
    std::fs::write(&gate, "").expect("gate");
    e.wait_status("waiter", Status::Up, T);
    wait_until(T, "healthy", || {
        Enclave::http_get(port, "/healthz").is_some_and(|(c, _)| c == 200)
    });
    let (code, metrics) = Enclave::http_get(port, "/metrics").expect("metrics");
    assert_eq!(code, 200);
    for expected in [
        "enclave_supervisor_service_state{service=\"waiter\",state=\"up\"} 1",
        "enclave_supervisor_service_state{service=\"waiter\",state=\"starting\"} 0",
        "enclave_supervisor_service_transitions_total{service=\"waiter\",state=\"up\"} 1",
        "enclave_supervisor_boot_phase_seconds{phase=\"configuration_verified\"}",
        "enclave_supervisor_boot_phase_seconds{phase=\"all_up\"}",
        "enclave_supervisor_insecure_mode 0",
        "scheme=\"native-ed25519\"",
    ] {
        assert!(
            metrics.contains(expected),
            "missing {expected:?} in\n{metrics}"
        );
    }
    let (code, body) = Enclave::http_get(port, "/nope").expect("404");
    assert_eq!(code, 404);
    assert!(body.contains("\"error\""));
    e.stop_cleanly(T);
}
