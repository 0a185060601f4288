//! Boot: nothing starts before the configuration and the definitions are valid; services start
//! in dependency order, independent ones in parallel; readiness gates dependents.

use crate::common;
use crate::common::assert_contains;

use std::time::Duration;

use common::harness::{wait_until, Enclave};
use enclave::service::state::Status;

const T: Duration = Duration::from_secs(20);

#[test]
fn services_start_in_dependency_order_and_independent_ones_in_parallel() {
    let mut e = Enclave::new();
    let m = e.markers_dir();
    let order = m.join("order");
    // `first` is a oneshot that every longrun waits for.
    e.service(
        "first",
        "oneshot",
        &[("up", &format!("echo first >> {}", order.display()))],
    );
    // `left` and `right` each wait for the other to have started before they declare themselves
    // ready: started one after the other (right waiting for left's readiness) they would both
    // hit timeout-up.
    for (me, other) in [("left", "right"), ("right", "left")] {
        let body = format!(
            "echo {me} >> {order}\ntouch {m}/{me}\nn=0; while [ ! -e {m}/{other} ] && [ $n -lt 200 ]; do sleep 0.05; n=$((n+1)); done\n[ -e {m}/{other} ] && echo >&3\nexec sleep 1000",
            order = order.display(),
            m = m.display(),
        );
        e.longrun(
            me,
            &body,
            &[("notification-fd", "3"), ("timeout-up", "8000")],
        );
        e.depends(me, "first");
    }
    e.longrun(
        "last",
        &format!("echo last >> {}\nexec sleep 1000", order.display()),
        &[],
    );
    e.depends("last", "left");
    e.depends("last", "right");
    e.start(&[]);
    e.wait_status("last", Status::Up, T);
    let order = std::fs::read_to_string(&order).expect("order");
    let lines: Vec<&str> = order.lines().collect();
    assert_eq!(lines.first(), Some(&"first"), "{order}");
    assert_eq!(lines.last(), Some(&"last"), "{order}");
    assert_eq!(lines.len(), 4, "{order}");
    assert_eq!(e.state("first").expect("state").status, Status::Finished);
    e.stop_cleanly(T);
}

#[test]
fn a_longrun_with_notification_fd_gates_its_dependents_until_ready() {
    let mut e = Enclave::new();
    let gate = e.marker("gate");
    e.longrun(
        "slow",
        &format!(
            "while [ ! -e {} ]; do sleep 0.05; done\necho ready >&4\nexec sleep 1000",
            gate.display()
        ),
        &[("notification-fd", "4")],
    );
    e.recorder("after");
    e.depends("after", "slow");
    e.start(&[]);
    e.wait_status("slow", Status::Starting, T);
    // Not ready: the dependent must not start however long we look.
    for _ in 0..10 {
        assert!(
            !e.marker("after").exists(),
            "dependent started before readiness"
        );
        std::thread::sleep(Duration::from_millis(30));
    }
    std::fs::write(&gate, "").expect("open the gate");
    e.wait_status("slow", Status::Up, T);
    wait_until(T, "dependent started", || e.marker("after").exists());
    e.stop_cleanly(T);
}

#[test]
fn a_longrun_never_ready_within_timeout_up_fails_the_boot() {
    let mut e = Enclave::new();
    e.longrun(
        "mute",
        "exec sleep 1000",
        &[("notification-fd", "3"), ("timeout-up", "300")],
    );
    e.recorder("after");
    e.depends("after", "mute");
    e.start(&[]);
    let code = e.wait_exit(T);
    assert_ne!(code, 0);
    assert!(!e.marker("after").exists());
    assert_eq!(e.state("mute").expect("state").status, Status::Failed);
}

#[test]
fn a_failing_oneshot_aborts_the_boot_and_stops_what_started() {
    let mut e = Enclave::new();
    e.recorder("early");
    e.service("migrate", "oneshot", &[("up", "exit 3")]);
    e.depends("migrate", "early");
    e.recorder("late");
    e.depends("late", "migrate");
    e.start(&[]);
    assert_eq!(e.wait_exit(T), 3, "{}", e.logs());
    assert!(e.marker("early").exists(), "early was started");
    assert!(!e.marker("late").exists(), "late must never start");
    assert_eq!(e.state("migrate").expect("state").status, Status::Failed);
    assert_eq!(e.state("early").expect("state").status, Status::Down);
}

#[test]
fn a_oneshot_over_its_timeout_up_fails_the_boot() {
    let mut e = Enclave::new();
    e.service(
        "hang",
        "oneshot",
        &[("up", "sleep 1000"), ("timeout-up", "300")],
    );
    e.start(&[]);
    assert_ne!(e.wait_exit(T), 0);
    assert_eq!(e.state("hang").expect("state").status, Status::Failed);
}

fn assert_rejected_before_start(e: &mut Enclave, expected_code: i32, phrase: &str) {
    e.recorder("innocent");
    e.start(&[]);
    assert_eq!(e.wait_exit(T), expected_code, "{}", e.logs());
    assert!(!e.marker("innocent").exists(), "a service started");
    assert!(e.logs().contains(phrase), "no {phrase:?} in\n{}", e.logs());
}

#[test]
fn a_dependency_cycle_is_rejected_before_anything_starts() {
    let mut e = Enclave::new();
    e.recorder("a");
    e.recorder("b");
    e.depends("a", "b");
    e.depends("b", "a");
    assert_rejected_before_start(&mut e, 78, "dependency cycle");
}

#[test]
fn an_unknown_dependency_is_rejected_before_anything_starts() {
    let mut e = Enclave::new();
    e.recorder("a");
    e.depends("a", "ghost");
    assert_rejected_before_start(&mut e, 78, "service a: depends on unknown service ghost");
}

#[test]
fn an_unknown_type_is_rejected_before_anything_starts() {
    let mut e = Enclave::new();
    e.service("weird", "daemon", &[]);
    assert_rejected_before_start(&mut e, 78, "service weird: has unknown type");
}

#[test]
fn an_invalid_configuration_exits_78_starts_nothing_and_logs_every_problem_with_its_field() {
    let mut e = Enclave::new();
    e.configure(|s| s["totalNodes"] = serde_json::json!("2"));
    assert_rejected_before_start(&mut e, 78, "configuration rejected");
    let logs = e.logs();
    let line = logs
        .lines()
        .find(|l| l.contains("configuration rejected"))
        .expect("the rejection line");
    assert_contains(line, "solution.totalNodes: ");
}

#[test]
fn a_bad_signature_exits_77_and_starts_nothing() {
    let mut e = Enclave::new();
    let path = e.config_path();
    let text = std::fs::read_to_string(&path).expect("config");
    std::fs::write(
        &path,
        text.replacen("\"pgPort\": 5432", "\"pgPort\": 5433", 1),
    )
    .expect("tamper");
    assert_rejected_before_start(&mut e, 77, "signature");
}

#[test]
fn templates_become_one_instance_per_node_with_node_number() {
    let mut e = Enclave::new();
    let m = e.markers_dir();
    e.longrun(
        "node@",
        &format!(
            "echo $NODE_NUMBER > {}/node-$NODE_NUMBER\nexec sleep 1000",
            m.display()
        ),
        &[],
    );
    e.recorder("after-all-nodes");
    e.depends("after-all-nodes", "node@");
    e.start(&[]);
    e.wait_status("after-all-nodes", Status::Up, T);
    for i in 1..=5 {
        assert_eq!(e.read_marker(&format!("node-{i}")).trim(), i.to_string());
        assert_eq!(
            e.state(&format!("node-{i}")).expect("state").status,
            Status::Up
        );
    }
    e.stop_cleanly(T);
}

#[test]
fn only_starts_the_named_service_and_its_dependencies() {
    let mut e = Enclave::new();
    e.recorder("base");
    e.recorder("wanted");
    e.depends("wanted", "base");
    e.recorder("unwanted");
    e.start(&["--only", "wanted"]);
    e.wait_status("wanted", Status::Up, T);
    assert!(e.marker("base").exists());
    assert!(e.state("unwanted").is_none());
    assert!(!e.marker("unwanted").exists());
    e.stop_cleanly(T);
}

#[test]
fn services_get_a_clean_environment() {
    let mut e = Enclave::new();
    let out = e.marker("env");
    e.service(
        "envcheck",
        "oneshot",
        &[
            ("up", &format!("env | sort > {}", out.display())),
            ("env/GREETING", "hello\n"),
        ],
    );
    e.start(&[]);
    e.wait_status("envcheck", Status::Finished, T);
    let env = e.read_marker("env");
    let names: Vec<&str> = env.lines().filter_map(|l| l.split('=').next()).collect();
    for expected in [
        "CONFIGURATION_PATH",
        "CONFIGURATION_PUBLIC_KEY_FILE",
        "ENCLAVE_ROOT",
        "GREETING",
        "PATH",
    ] {
        assert!(names.contains(&expected), "{expected} missing from\n{env}");
    }
    assert!(env.contains("GREETING=hello\n"));
    assert!(!names.contains(&"HOME"), "inherited HOME leaked:\n{env}");
    e.stop_cleanly(T);
}

#[test]
fn without_the_image_key_nothing_starts() {
    let mut e = Enclave::new();
    std::fs::remove_file(e.root.join("etc/enclave/configuration.pub")).expect("remove key");
    assert_rejected_before_start(&mut e, 77, "no configuration verifying key");
}

#[test]
fn an_insecure_key_from_the_command_line_is_used_by_init_and_services_and_said_loudly() {
    let mut e = Enclave::new();
    std::fs::remove_file(e.root.join("etc/enclave/configuration.pub")).expect("remove key");
    // A service verifies the configuration with the key the supervisor hands it.
    e.service(
        "verify",
        "oneshot",
        &[(
            "up",
            "enclave config verify --public-key-file \"$CONFIGURATION_PUBLIC_KEY_FILE\" \"$CONFIGURATION_PATH\"",
        )],
    );
    let key = common::dev_public_key_path();
    e.start(&["--insecure-public-key-file", key.to_str().expect("utf-8")]);
    e.wait_status("verify", Status::Finished, T);
    assert_contains(&e.logs(), "INSECURE MODE");
    e.stop_cleanly(T);
}

/// Writes the configuration as signed, then adds members beside `solution`: the platform (or
/// anyone on the way) can, as the signature does not cover them.
fn add_unsigned_members(e: &Enclave, names: &[&str]) {
    let path = e.config_path();
    let mut document: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).expect("config")).expect("json");
    for name in names {
        document[*name] = serde_json::json!("value");
    }
    std::fs::write(&path, serde_json::to_string(&document).expect("json")).expect("write");
}

#[test]
fn hostile_unsigned_member_names_reach_init_and_service_logs_escaped() {
    use common::hostile::{assert_escaped, long_text, HOSTILE_TEXTS};
    let mut e = Enclave::new();
    let long = long_text();
    let names: Vec<&str> = HOSTILE_TEXTS
        .iter()
        .copied()
        .chain([long.as_str()])
        .collect();
    add_unsigned_members(&e, &names);
    // A real service that loads the configuration as every service does.
    e.service("keys", "oneshot", &[("up", "exec enclave keys init")]);
    e.start(&[]);
    e.wait_status("keys", Status::Finished, T);
    let service_log = std::fs::read_to_string(e.root.join("var/log/keys/current")).expect("log");
    for (what, text) in [
        ("init and stdout", e.logs()),
        ("service log", service_log.clone()),
    ] {
        assert_escaped(what, &text, 16_000);
    }
    // Every name was logged, escaped, by init and by the service.
    let escaped_newline = "x\\nFORGED 2025-01-01T00:00:00.000000Z ERROR";
    assert_contains(&e.logs(), escaped_newline);
    assert_contains(&service_log, escaped_newline);
    assert_contains(&service_log, "not covered by the signature");
    e.stop_cleanly(T);
}

#[test]
fn hostile_text_in_inits_rejection_line_is_escaped() {
    use common::hostile::{assert_escaped, HOSTILE_TEXTS};
    for hostile in HOSTILE_TEXTS {
        // Signed, but with an unknown member: the rejection line names it.
        let mut e = Enclave::new();
        e.configure(|s| s[hostile] = serde_json::json!(1));
        assert_rejected_before_start(&mut e, 78, "configuration rejected");
        assert_escaped("unknown member", &e.logs(), 16_000);
        assert_contains(&e.logs(), "unknown field");

        // A duplicate key beside `solution`: the JSON error quotes it.
        let mut e = Enclave::new();
        let path = e.config_path();
        let text = std::fs::read_to_string(&path).expect("config");
        let name = serde_json::to_string(hostile).expect("json string");
        let body = text.trim_end().strip_suffix('}').expect("an object");
        std::fs::write(&path, format!("{body}, {name}: 1, {name}: 2}}")).expect("write");
        assert_rejected_before_start(&mut e, 78, "duplicate key");
        assert_escaped("duplicate key", &e.logs(), 16_000);
    }
}

/// A FIFO, a socket, a device or a directory as the configuration: refused at once with 78,
/// naming the path, before anything starts.
#[test]
fn a_configuration_that_is_not_a_regular_file_stops_init_at_once_with_78() {
    let kinds = ["FIFO", "socket", "character device", "directory"];
    for kind in kinds {
        let mut e = Enclave::new();
        let path = e.config_path();
        std::fs::remove_file(&path).expect("remove");
        let _listener;
        match kind {
            "FIFO" => nix::unistd::mkfifo(&path, nix::sys::stat::Mode::from_bits_truncate(0o600))
                .expect("fifo"),
            "socket" => {
                _listener = std::os::unix::net::UnixListener::bind(&path).expect("socket");
            }
            "character device" => std::os::unix::fs::symlink("/dev/zero", &path).expect("link"),
            _ => std::fs::create_dir(&path).expect("dir"),
        }
        assert_rejected_before_start(&mut e, 78, kind);
        assert!(
            e.logs().contains(&path.display().to_string()),
            "{}",
            e.logs()
        );
    }
}
