//! The exporter against a toy supervised tree: real processes, each in its own process group as
//! the supervisor starts them, with their pids in real state files.

use std::fs;
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::{killpg, Signal};
use prometheus::Registry;

use super::*;
use crate::paths::Root;
use crate::service::state::{Exit, Kind, ServiceState, StateDir, Status};
use crate::telemetry::testing::{encode, promtool_check, value};

const MIB: f64 = 1024.0 * 1024.0;

/// A temporary root with a state directory and the service processes started in it; dropping
/// it kills every process group it started.
struct Toy {
    root: tempfile::TempDir,
    state_dir: StateDir,
    children: Vec<Child>,
}

impl Toy {
    fn new() -> Self {
        let root = tempfile::tempdir().expect("temp root");
        let state_dir = StateDir::new(&Root::new(root.path()));
        state_dir.reset().expect("state dir");
        Self {
            root,
            state_dir,
            children: Vec::new(),
        }
    }

    fn metrics(&self) -> (Registry, ProcessMetrics) {
        let registry = Registry::new();
        let metrics = ProcessMetrics::new(self.state_dir.clone());
        registry
            .register(Box::new(metrics.clone()))
            .expect("register");
        (registry, metrics)
    }

    /// Runs `script` under `sh -c` in a new process group and returns its pid.
    fn spawn(&mut self, script: &str) -> u32 {
        let child = Command::new("sh")
            .args(["-c", script])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .process_group(0)
            .spawn()
            .expect("spawn sh");
        let pid = child.id();
        self.children.push(child);
        pid
    }

    /// Starts a longrun that is up, with no restarts.
    fn start(&mut self, name: &str, script: &str) -> u32 {
        let pid = self.spawn(script);
        let mut state = ServiceState::new(name, Kind::Longrun);
        state.status = Status::Up;
        state.pid = Some(pid);
        self.write(&state);
        pid
    }

    fn write(&self, state: &ServiceState) {
        self.state_dir.write(state).expect("write state");
    }
}

impl Drop for Toy {
    fn drop(&mut self) {
        for child in &mut self.children {
            // The group, so children of the shells die too.
            let group = nix::unistd::Pid::from_raw(child.id() as i32);
            let _ = killpg(group, Signal::SIGKILL);
            let _ = child.wait();
        }
    }
}

fn series(name: &str, service: &str) -> String {
    format!("{name}{{service=\"{service}\"}}")
}

fn service_value(text: &str, name: &str, service: &str) -> Option<f64> {
    value(text, &series(name, service))
}

const TREE_FAMILIES: [&str; 7] = [
    "enclave_service_processes",
    "enclave_service_cpu_seconds_total",
    "enclave_service_cpu_usage_cores",
    "enclave_service_resident_memory_bytes",
    "enclave_service_memory_fallback_processes",
    "enclave_service_threads",
    "enclave_service_open_fds",
];

fn assert_no_process_series(text: &str, service: &str) {
    for name in TREE_FAMILIES {
        let series = series(name, service);
        assert!(!text.contains(&series), "{series} present:\n{text}");
    }
}

/// Samples until `done` accepts the text, failing after `timeout`.
fn sample_until(
    registry: &Registry,
    metrics: &ProcessMetrics,
    timeout: Duration,
    what: &str,
    done: impl Fn(&str) -> bool,
) -> String {
    let deadline = Instant::now() + timeout;
    loop {
        // A sample may fail while a process is still starting; the condition decides.
        let _ = metrics.sample();
        let text = encode(registry);
        if done(&text) {
            return text;
        }
        assert!(
            Instant::now() < deadline,
            "no {what} within {timeout:?}:\n{text}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// CPU seconds (user + system) the kernel reports for `pid`, read apart from sysinfo.
fn cpu_seconds_of(pid: u32) -> f64 {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).expect("stat");
    // Fields after the parenthesised command name start at field 3 (state); utime and stime
    // are fields 14 and 15.
    let (_, after_name) = stat.rsplit_once(") ").expect("stat format");
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    let ticks: u64 =
        fields[11].parse::<u64>().expect("utime") + fields[12].parse::<u64>().expect("stime");
    // SAFETY: sysconf only reads a configuration value.
    let per_second = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    assert!(per_second > 0, "CLK_TCK");
    ticks as f64 / per_second as f64
}

#[test]
fn a_busy_service_uses_about_one_core_and_its_cpu_counter_grows() {
    let mut toy = Toy::new();
    let busy = toy.start("busy", "while :; do :; done");
    let (registry, metrics) = toy.metrics();

    let sample = metrics.sample().expect("first sample");
    let mut previous = (Instant::now(), cpu_seconds_of(busy));
    assert_eq!(
        sample,
        Sample {
            services: 1,
            processes: 1
        }
    );
    let text = encode(&registry);
    let cores = "enclave_service_cpu_usage_cores";
    let total = "enclave_service_cpu_seconds_total";
    assert_eq!(
        service_value(&text, cores, "busy"),
        None,
        "a rate needs an interval"
    );
    let mut last_total = service_value(&text, total, "busy").expect("counter from the start");

    // The machine is shared (two cores, other tests, other builds): every interval is checked
    // against the kernel's own figure, and the loop ends once the busy loop got most of a core.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        // The interval to measure over, not a wait for a condition.
        std::thread::sleep(Duration::from_millis(1500));
        metrics.sample().expect("sample");
        let now = (Instant::now(), cpu_seconds_of(busy));
        let used = now.1 - previous.1;
        let truth = used / (now.0 - previous.0).as_secs_f64();
        let text = encode(&registry);
        let rate = service_value(&text, cores, "busy").expect("rate");
        assert!(
            (rate - truth).abs() < 0.08,
            "exporter says {rate} cores, the kernel {truth}"
        );
        let total = service_value(&text, total, "busy").expect("counter");
        let grown = total - last_total;
        assert!(grown > 0.0, "counter went from {last_total} to {total}");
        assert!(
            (grown - used).abs() < 0.1,
            "counter grew {grown} s, the kernel counted {used} s"
        );
        if truth >= 0.6 {
            assert!((0.5..=1.2).contains(&rate), "rate {rate}:\n{text}");
            promtool_check(&text);
            return;
        }
        assert!(
            Instant::now() < deadline,
            "the busy loop never got 0.6 of a core (last {truth}): machine overloaded"
        );
        (previous, last_total) = (now, total);
    }
}

#[test]
fn the_cpu_counter_keeps_what_an_exited_child_used() {
    let mut toy = Toy::new();
    let main = toy.start(
        "batch",
        "timeout --foreground 3 sh -c 'while :; do :; done'; exec sleep 120",
    );
    let (registry, metrics) = toy.metrics();
    let get = |text: &str, name| service_value(text, name, "batch").unwrap_or(0.0);
    let text = sample_until(
        &registry,
        &metrics,
        Duration::from_secs(30),
        "busy child at work",
        |text| {
            get(text, "enclave_service_processes") >= 3.0
                && get(text, "enclave_service_cpu_seconds_total") >= 0.2
        },
    );
    let during = get(&text, "enclave_service_cpu_seconds_total");
    // The shell has exec'd sleep: one process left, which used next to no CPU itself.
    let text = sample_until(
        &registry,
        &metrics,
        Duration::from_secs(30),
        "busy child gone",
        |text| get(text, "enclave_service_processes") == 1.0,
    );
    let after = get(&text, "enclave_service_cpu_seconds_total");
    assert!(after >= during, "counter went from {during} to {after}");
    let alive = cpu_seconds_of(main);
    assert!(
        after > alive + 0.15,
        "counter {after} s is not more than the live process's {alive} s"
    );
}

#[test]
fn a_child_process_counts_toward_its_service() {
    let mut toy = Toy::new();
    // The shell's child holds 64 MiB of written (so resident) bytes and runs four threads.
    toy.start(
        "holder",
        "python3 -c 'import threading, time; b = b\"x\" * (64 << 20); \
         [threading.Thread(target=time.sleep, args=(120,), daemon=True).start() for _ in range(3)]; \
         time.sleep(120)' & wait",
    );
    let (registry, metrics) = toy.metrics();
    let text = sample_until(
        &registry,
        &metrics,
        Duration::from_secs(30),
        "64 MiB child with 4 threads",
        |text| {
            let get = |name| service_value(text, name, "holder").unwrap_or(0.0);
            get("enclave_service_resident_memory_bytes") >= 60.0 * MIB
                && get("enclave_service_threads") >= 5.0
        },
    );
    promtool_check(&text);
    let get = |name| service_value(&text, name, "holder");
    assert_eq!(get("enclave_service_processes"), Some(2.0), "{text}");
    // The shell's one thread and Python's main thread plus three.
    assert_eq!(get("enclave_service_threads"), Some(5.0), "{text}");
    // At least stdin, stdout and stderr of each.
    assert!(get("enclave_service_open_fds") >= Some(6.0), "{text}");
}

/// A parent maps 96 MiB of shared anonymous memory and writes all of it, then forks four
/// children that each read every page: all five have the 96 MiB resident.
const SHARER: &str = r#"
import mmap, os, sys, time
size = 96 << 20
m = mmap.mmap(-1, size, flags=mmap.MAP_SHARED | mmap.MAP_ANONYMOUS)
m.write(b"x" * size)
for _ in range(4):
    if os.fork() == 0:
        touched = sum(m[i] for i in range(0, size, 4096))
        with open(sys.argv[1], "a") as f:
            f.write("%d\n" % touched)
        time.sleep(120)
        os._exit(0)
time.sleep(120)
"#;

/// RSS of every process in process group `group` (the toy's tree), from /proc.
fn rss_of_group(group: u32) -> f64 {
    let mut total = 0.0;
    for entry in fs::read_dir("/proc").expect("/proc").filter_map(Result::ok) {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<u32>().ok())
        else {
            continue;
        };
        let Ok(stat) = fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        let Some((_, after_name)) = stat.rsplit_once(") ") else {
            continue;
        };
        // Field 5 (pgrp) is the third after the command name.
        if after_name.split_whitespace().nth(2) != Some(&group.to_string()) {
            continue;
        }
        let status = fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
        let kib: f64 = status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().strip_suffix("kB"))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0.0);
        total += kib * 1024.0;
    }
    total
}

#[test]
fn memory_shared_within_a_tree_counts_once_not_once_per_process() {
    let mut toy = Toy::new();
    let touched = toy.root.path().join("touched");
    let main = toy.start(
        "sharer",
        &format!("python3 -c '{SHARER}' {}", touched.display()),
    );
    let (registry, metrics) = toy.metrics();
    let text = sample_until(
        &registry,
        &metrics,
        Duration::from_secs(60),
        "four children that touched the shared memory",
        |text| {
            let children = fs::read_to_string(&touched).unwrap_or_default();
            children.lines().count() == 4
                && service_value(text, "enclave_service_processes", "sharer") >= Some(5.0)
        },
    );
    promtool_check(&text);
    let get = |name| service_value(&text, name, "sharer").expect(name);
    let memory = get("enclave_service_resident_memory_bytes");
    let rss = rss_of_group(main);
    // The sharing really happened: summed RSS counts the mapping in each of the 5 processes.
    assert!(rss >= 5.0 * 96.0 * MIB, "RSS sum {} MiB", rss / MIB);
    // The figure counts it once (plus the interpreters' own few MiB each).
    assert!(
        (90.0 * MIB..140.0 * MIB).contains(&memory),
        "memory {} MiB, RSS sum {} MiB\n{text}",
        memory / MIB,
        rss / MIB
    );
    assert_eq!(get("enclave_service_memory_fallback_processes"), 0.0);
}

#[test]
fn state_files_are_exported_and_services_without_processes_have_no_process_series() {
    let mut toy = Toy::new();
    let node = toy.spawn("sleep 120");
    let mut node_2 = ServiceState::new("node-2", Kind::Longrun);
    node_2.status = Status::Up;
    node_2.pid = Some(node);
    node_2.restart_count = 3;
    node_2.last_restart = Some(1_700_000_000);
    node_2.last_exit = Some(Exit::Signal(9));
    toy.write(&node_2);

    let mut init = ServiceState::new("postgres-init", Kind::Oneshot);
    init.status = Status::Finished;
    init.last_exit = Some(Exit::Code(0));
    toy.write(&init);

    let mut aggregator = ServiceState::new("price-aggregator", Kind::Longrun);
    aggregator.restart_count = 1;
    aggregator.last_restart = Some(1_700_000_100);
    aggregator.last_exit = Some(Exit::Code(3));
    toy.write(&aggregator);

    // A pid left in the files of a failed service is not its process, even when alive.
    let stranger = toy.spawn("sleep 120");
    let mut failed = ServiceState::new("failed", Kind::Longrun);
    failed.status = Status::Failed;
    failed.pid = Some(stranger);
    toy.write(&failed);

    let (registry, metrics) = toy.metrics();
    let sample = metrics.sample().expect("sample");
    assert_eq!(sample.services, 4);
    let text = encode(&registry);
    promtool_check(&text);
    assert_eq!(
        service_value(&text, "enclave_service_processes", "node-2"),
        Some(sample.processes as f64),
        "{text}"
    );

    let get = |name, service| service_value(&text, name, service);
    for (service, up) in [
        ("node-2", 1.0),
        ("postgres-init", 1.0),
        ("price-aggregator", 0.0),
        ("failed", 0.0),
    ] {
        assert_eq!(get("enclave_service_up", service), Some(up), "{service}");
    }
    let statuses = text
        .lines()
        .filter(|l| l.starts_with("enclave_service_status{service=\"node-2\","))
        .count();
    assert_eq!(statuses, Status::ALL.len(), "{text}");
    let status = |service: &str, status: &str| {
        value(
            &text,
            &format!("enclave_service_status{{service=\"{service}\",status=\"{status}\"}}"),
        )
    };
    assert_eq!(status("node-2", "up"), Some(1.0));
    assert_eq!(status("node-2", "down"), Some(0.0));
    assert_eq!(status("postgres-init", "finished"), Some(1.0));
    assert_eq!(status("price-aggregator", "down"), Some(1.0));
    assert_eq!(status("failed", "failed"), Some(1.0));

    assert_eq!(get("enclave_service_restarts_total", "node-2"), Some(3.0));
    assert_eq!(
        get("enclave_service_restarts_total", "price-aggregator"),
        Some(1.0)
    );
    assert_eq!(
        get("enclave_service_restarts_total", "postgres-init"),
        Some(0.0)
    );
    let last_restart = "enclave_service_last_restart_timestamp_seconds";
    assert_eq!(get(last_restart, "node-2"), Some(1_700_000_000.0));
    assert_eq!(get(last_restart, "price-aggregator"), Some(1_700_000_100.0));
    assert_eq!(get(last_restart, "postgres-init"), None);
    let (code, signal) = (
        "enclave_service_last_exit_code",
        "enclave_service_last_exit_signal",
    );
    assert_eq!(get(signal, "node-2"), Some(9.0));
    assert_eq!(get(code, "node-2"), None);
    assert_eq!(get(code, "price-aggregator"), Some(3.0));
    assert_eq!(get(signal, "price-aggregator"), None);
    assert_eq!(get(code, "postgres-init"), Some(0.0));
    assert_eq!(get(code, "failed"), None);
    assert_eq!(get(signal, "failed"), None);

    for service in ["postgres-init", "price-aggregator", "failed"] {
        assert_no_process_series(&text, service);
    }

    // Later state changes show up; a service gone from the state dir takes its series along.
    node_2.restart_count = 4;
    toy.write(&node_2);
    fs::remove_dir_all(toy.state_dir.path().join("price-aggregator")).expect("remove");
    metrics.sample().expect("sample");
    let text = encode(&registry);
    assert_eq!(
        service_value(&text, "enclave_service_restarts_total", "node-2"),
        Some(4.0)
    );
    assert!(!text.contains("price-aggregator"), "{text}");
}

#[test]
fn a_missing_or_unreadable_state_dir_fails_the_sample_and_clears_the_series() {
    let mut toy = Toy::new();
    toy.start("sleeper", "sleep 120");
    let (registry, metrics) = toy.metrics();
    metrics.sample().expect("sample");
    assert!(encode(&registry).contains("service=\"sleeper\""));

    fs::remove_dir_all(toy.state_dir.path()).expect("remove state dir");
    let error = metrics.sample().expect_err("missing state dir");
    assert!(matches!(error, SampleError::StateDir { .. }), "{error:?}");
    assert!(error.to_string().contains("run/service"), "{error}");
    let text = encode(&registry);
    assert!(!text.contains("service="), "{text}");

    // A file where the directory should be: unreadable even for root.
    fs::write(toy.state_dir.path(), "").expect("file");
    let error = metrics.sample().expect_err("state dir is a file");
    assert!(matches!(error, SampleError::StateDir { .. }), "{error:?}");

    let text = encode(&registry);
    promtool_check(&text);
    assert_eq!(
        value(&text, "enclave_process_metrics_samples_total"),
        Some(3.0)
    );
    assert_eq!(
        value(&text, "enclave_process_metrics_sample_failures_total"),
        Some(2.0)
    );
    let duration = value(&text, "enclave_process_metrics_sample_duration_seconds");
    assert!(duration.is_some_and(|d| d >= 0.0), "{text}");
}

#[test]
fn a_sample_without_any_live_service_process_fails() {
    let toy = Toy::new();
    let (registry, metrics) = toy.metrics();
    let error = metrics.sample().expect_err("empty state dir");
    assert!(
        matches!(error, SampleError::NoProcess { services: 0, .. }),
        "{error:?}"
    );

    toy.write(&up_with_exited_pid("gone"));
    toy.write(&ServiceState::new("down", Kind::Longrun));
    let error = metrics.sample().expect_err("no pid exists");
    assert!(
        matches!(error, SampleError::NoProcess { services: 2, .. }),
        "{error:?}"
    );
    // What the state files say is still published.
    let text = encode(&registry);
    assert_eq!(
        service_value(&text, "enclave_service_up", "gone"),
        Some(1.0)
    );
    assert_eq!(
        service_value(&text, "enclave_service_up", "down"),
        Some(0.0)
    );
    assert_no_process_series(&text, "gone");
    assert_no_process_series(&text, "down");
}

/// An up service whose pid is that of a process that has exited and been reaped.
fn up_with_exited_pid(name: &str) -> ServiceState {
    let mut child = Command::new("true").spawn().expect("spawn true");
    let pid = child.id();
    child.wait().expect("wait true");
    let mut state = ServiceState::new(name, Kind::Longrun);
    state.status = Status::Up;
    state.pid = Some(pid);
    state
}

fn counter(registry: &Registry, name: &str) -> f64 {
    value(&encode(registry), name).unwrap_or(0.0)
}

fn failures(registry: &Registry) -> f64 {
    counter(registry, "enclave_process_metrics_sample_failures_total")
}

fn successes(registry: &Registry) -> f64 {
    counter(registry, "enclave_process_metrics_samples_total") - failures(registry)
}

async fn eventually(what: &str, timeout: Duration, done: impl Fn() -> bool) {
    let deadline = Instant::now() + timeout;
    while !done() {
        assert!(Instant::now() < deadline, "no {what} within {timeout:?}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

#[tokio::test]
async fn run_sampling_gives_up_after_max_failures_consecutive_failures() {
    let toy = Toy::new();
    fs::remove_dir_all(toy.state_dir.path()).expect("remove state dir");
    let (registry, metrics) = toy.metrics();
    let outcome = tokio::time::timeout(
        Duration::from_secs(30),
        run_sampling(metrics, Duration::from_millis(10), 3),
    )
    .await
    .expect("gave up in time");
    match outcome {
        Err(SampleError::GaveUp { failures, last }) => {
            assert_eq!(failures, 3);
            assert!(matches!(*last, SampleError::StateDir { .. }), "{last:?}");
        }
        other => panic!("expected GaveUp, got {other:?}"),
    }
    assert_eq!(
        counter(&registry, "enclave_process_metrics_samples_total"),
        3.0
    );
    assert_eq!(failures(&registry), 3.0);
}

#[tokio::test]
async fn run_sampling_resets_the_failure_count_after_a_success() {
    let mut toy = Toy::new();
    toy.start("sleeper", "sleep 120");
    let state_dir = toy.state_dir.path().to_owned();
    let aside = toy.root.path().join("aside");
    // Samples fail while the state directory is moved aside.
    fs::rename(&state_dir, &aside).expect("move aside");
    let (registry, metrics) = toy.metrics();
    // Room for the test to put the directory back before the loop would give up.
    let max_failures = 8;
    let run = tokio::spawn(run_sampling(
        metrics,
        Duration::from_millis(200),
        max_failures,
    ));

    eventually("2 failures", Duration::from_secs(30), || {
        failures(&registry) >= 2.0
    })
    .await;
    fs::rename(&aside, &state_dir).expect("move back");
    eventually("a success", Duration::from_secs(30), || {
        successes(&registry) >= 1.0
    })
    .await;
    let failed_before = failures(&registry);
    fs::rename(&state_dir, &aside).expect("move aside again");

    let outcome = tokio::time::timeout(Duration::from_secs(30), run)
        .await
        .expect("gave up in time")
        .expect("sampling task");
    assert!(
        matches!(outcome, Err(SampleError::GaveUp { failures, .. }) if failures == max_failures),
        "{outcome:?}"
    );
    // Failures before the success did not count toward giving up.
    assert_eq!(failures(&registry), failed_before + f64::from(max_failures));
    assert!(failed_before >= 2.0);
}
