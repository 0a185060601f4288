//! Process-metrics sampling cost: CPU time per sample for 10 services of 3 processes each, and
//! its share of a core at the default 5 s interval. Run with `scripts/bench-process-metrics.sh`.

use std::os::unix::process::CommandExt;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use enclave::paths::Root;
use enclave::process_metrics::{ProcessMetrics, DEFAULT_INTERVAL_MS};
use enclave::service::state::{Kind, ServiceState, StateDir, Status};

const SERVICES: usize = 10;
const ROUNDS: u32 = 100;

/// CPU time of the calling thread (sampling runs on it).
fn thread_cpu_time() -> Duration {
    let mut now = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime only writes the timespec it is given.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut now) };
    Duration::new(now.tv_sec as u64, now.tv_nsec as u32)
}

struct Tree(Vec<Child>);

impl Drop for Tree {
    fn drop(&mut self) {
        for child in &mut self.0 {
            let _ = nix::sys::signal::killpg(
                nix::unistd::Pid::from_raw(child.id() as i32),
                nix::sys::signal::Signal::SIGKILL,
            );
            let _ = child.wait();
        }
    }
}

fn main() {
    let root = tempfile::tempdir().expect("temp root");
    let state_dir = StateDir::new(&Root::new(root.path()));
    state_dir.reset().expect("state dir");
    let mut tree = Tree(Vec::new());
    for i in 0..SERVICES {
        let child = Command::new("sh")
            .args(["-c", "sleep 600 & sleep 600 & wait"])
            .stdin(Stdio::null())
            .process_group(0)
            .spawn()
            .expect("spawn");
        let mut state = ServiceState::new(&format!("service-{i}"), Kind::Longrun);
        state.status = Status::Up;
        state.pid = Some(child.id());
        state_dir.write(&state).expect("state");
        tree.0.push(child);
    }
    let metrics = ProcessMetrics::new(state_dir);
    // Until every shell has started its two children.
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while metrics.sample().map(|s| s.processes).unwrap_or(0) < SERVICES * 3 {
        assert!(
            std::time::Instant::now() < deadline,
            "toy tree did not start"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let started = thread_cpu_time();
    for _ in 0..ROUNDS {
        metrics.sample().expect("sample");
    }
    let per_sample = (thread_cpu_time() - started) / ROUNDS;
    let interval = Duration::from_millis(DEFAULT_INTERVAL_MS);
    let share = per_sample.as_secs_f64() / interval.as_secs_f64() * 100.0;
    let host_processes = std::fs::read_dir("/proc")
        .map(|d| {
            d.filter_map(Result::ok)
                .filter(|e| e.file_name().to_string_lossy().parse::<u32>().is_ok())
                .count()
        })
        .unwrap_or(0);
    println!("process-metrics sampling ({SERVICES} services, {} processes; {host_processes} processes on the host)", SERVICES * 3);
    println!(
        "  CPU per sample: {:.2} ms",
        per_sample.as_secs_f64() * 1000.0
    );
    println!(
        "  share of one core at {} ms interval: {share:.3} %",
        DEFAULT_INTERVAL_MS
    );
    drop(tree);
}
