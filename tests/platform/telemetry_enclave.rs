//! The whole local enclave (supervisor, PostgreSQL, process-metrics exporter from the repo's
//! definitions) pushes its metrics continuously to a real Pushgateway, and every service's
//! `/metrics` passes `promtool check metrics`.

use crate::common;

use std::process::Command;
use std::time::Duration;

use common::harness::{free_port, wait_until, Enclave};
use common::receivers::{binary, group_samples, Pushgateway};
use enclave::service::state::Status;
use serde_json::json;

const T: Duration = Duration::from_secs(120);

fn promtool_check(text: &str) -> Result<(), String> {
    let promtool = binary("promtool")?;
    let mut child = Command::new(promtool)
        .args(["check", "metrics"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .map_err(|e| e.to_string())?;
    use std::io::Write;
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(text.as_bytes())
        .map_err(|e| e.to_string())?;
    let out = child.wait_with_output().map_err(|e| e.to_string())?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ))
    }
}

#[test]
fn a_local_enclave_pushes_supervisor_postgres_and_process_metrics_to_a_pushgateway() {
    let gateway = match Pushgateway::start() {
        Ok(g) => g,
        Err(reason) => {
            eprintln!("SKIPPED a_local_enclave_pushes_…: {reason}");
            return;
        }
    };
    let mut e = Enclave::new();
    e.use_repo_services();
    let pg_port = free_port();
    let url = gateway.url();
    e.configure(|s| {
        s["pgPort"] = json!(pg_port);
        s["telemetry"]["instance"] = json!("test-enclave");
        s["telemetry"]["targets"] = json!([{"url": url, "intervalMs": 1000, "timeoutMs": 500}]);
    });
    e.start(&["--only", "postgres-init", "--only", "process-metrics"]);
    e.wait_status("postgres-init", Status::Finished, T);
    e.wait_status("process-metrics", Status::Up, T);
    // Up is readiness: the exporter signals it once `/metrics` listens, so it answers at once.
    assert!(
        Enclave::http_get(e.port("processMetrics"), "/metrics").is_some(),
        "process-metrics is up but /metrics does not answer"
    );

    // The group holds the last push: one made before postgres was up is replaced a second later.
    let postgres_up = |group: &serde_json::Value| {
        group_samples(group, "enclave_supervisor_service_state")
            .iter()
            .any(|(l, v)| {
                l.get("service").map(String::as_str) == Some("postgres")
                    && l.get("state").map(String::as_str) == Some("up")
                    && *v == 1.0
            })
    };
    let mut supervisor = serde_json::Value::Null;
    wait_until(T, "a supervisor push with postgres up", || {
        match gateway.group(&[("job", "supervisor"), ("instance", "test-enclave")]) {
            Some(group) => {
                supervisor = group;
                postgres_up(&supervisor)
            }
            None => false,
        }
    });
    assert!(!group_samples(&supervisor, "enclave_configuration_info").is_empty());
    // The identity, one series per node, and no TEE here.
    assert_eq!(
        group_samples(&supervisor, "enclave_identity_info").len(),
        5,
        "{supervisor}"
    );
    assert_eq!(
        group_samples(&supervisor, "enclave_attestation_available")
            .iter()
            .map(|(_, v)| *v)
            .collect::<Vec<_>>(),
        vec![0.0]
    );

    // The exporter's group carries process metrics of postgres and the PostgreSQL metrics.
    wait_until(T, "process and PostgreSQL metrics pushed", || {
        gateway
            .group(&[("job", "process-metrics"), ("instance", "test-enclave")])
            .is_some_and(|g| {
                let up = group_samples(&g, "enclave_postgres_up");
                let memory = group_samples(&g, "enclave_service_resident_memory_bytes");
                up.iter().any(|(_, v)| *v == 1.0)
                    && memory.iter().any(|(l, v)| {
                        l.get("service").map(String::as_str) == Some("postgres") && *v > 0.0
                    })
            })
    });
    // Continuously: the push counter keeps growing.
    let pushes = |job: &str| -> f64 {
        gateway
            .group(&[("job", job), ("instance", "test-enclave")])
            .map(|g| {
                group_samples(&g, "enclave_telemetry_pushes_total")
                    .iter()
                    .filter(|(l, _)| l.get("result").map(String::as_str) == Some("success"))
                    .map(|(_, v)| *v)
                    .sum()
            })
            .unwrap_or(0.0)
    };
    let before = pushes("process-metrics");
    wait_until(T, "more pushes", || {
        pushes("process-metrics") >= before + 2.0
    });

    let exporter = e.port("processMetrics");
    wait_until(T, "the exporter healthy", || {
        Enclave::http_get(exporter, "/healthz").is_some_and(|(code, _)| code == 200)
    });

    // Every service's own endpoint passes promtool.
    for port in [e.port("supervisor"), e.port("processMetrics")] {
        let (code, text) = Enclave::http_get(port, "/metrics").expect("endpoint answers");
        assert_eq!(code, 200);
        match promtool_check(&text) {
            Ok(()) => {}
            Err(reason) if reason.contains("not found") => eprintln!("promtool skipped: {reason}"),
            Err(problems) => panic!("promtool check metrics failed on port {port}:\n{problems}"),
        }
    }

    e.stop_cleanly(T);
    // A clean stop removes the groups: nothing stale stays on the gateway.
    assert!(gateway
        .group(&[("job", "supervisor"), ("instance", "test-enclave")])
        .is_none());
    assert!(gateway
        .group(&[("job", "process-metrics"), ("instance", "test-enclave")])
        .is_none());
}
