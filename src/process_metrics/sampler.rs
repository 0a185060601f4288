//! Measuring each service's process tree from /proc through one long-lived `sysinfo::System`.
//!
//! A sample costs one scan of every process's `stat` (for parents; sysinfo keeps those files
//! open between scans) and, for tree members only, CPU times, memory, the thread list and the
//! fd directory. Nothing else sysinfo can read (command lines, environments, users, disk I/O)
//! is ever refreshed.

use std::collections::{HashMap, HashSet};
use std::time::Instant;

use sysinfo::{Pid, Process, ProcessRefreshKind, ProcessesToUpdate, System};

use super::cpu::{CpuAccount, ProcessCpu};
use crate::service::state::{ServiceState, Status};

/// What one service's process tree measured in one sample.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct TreeReading {
    pub processes: u64,
    pub cpu_seconds_total: f64,
    /// None until the service has been sampled twice: a rate needs an interval.
    pub cpu_usage_cores: Option<f64>,
    /// Shared pages counted once: the sum of each process's PSS (see [`tree_memory`]).
    pub resident_memory_bytes: u64,
    /// Processes counted by their RSS because their PSS could not be read.
    pub memory_fallback_processes: u64,
    pub threads: u64,
    /// None when no process's fd directory was readable (processes of another user, when not
    /// running as root): an absent series is honest where 0 would not be.
    pub open_fds: Option<u64>,
}

/// One service in one sample: its state files, and its tree when it has running processes.
#[derive(Debug, Clone)]
pub(super) struct ServiceReading {
    pub state: ServiceState,
    pub tree: Option<TreeReading>,
}

pub(super) struct Sampler {
    system: System,
    /// By service name; kept while the service is down so its counter resumes where it was.
    accounts: HashMap<String, CpuAccount>,
}

impl Sampler {
    pub fn new() -> Self {
        Self {
            system: System::new(),
            accounts: HashMap::new(),
        }
    }

    pub fn measure(&mut self, states: Vec<ServiceState>) -> Vec<ServiceReading> {
        let trees = self.find_trees(&states);
        self.refresh_members(&trees);
        let now = Instant::now();
        self.accounts
            .retain(|name, _| states.iter().any(|state| &state.name == name));
        states
            .into_iter()
            .zip(trees)
            .map(|(state, pids)| {
                let tree = self.read_tree(&state.name, &pids, now);
                ServiceReading { state, tree }
            })
            .collect()
    }

    /// Each service's tree (empty when it has no running process), from one scan of parents.
    fn find_trees(&mut self, states: &[ServiceState]) -> Vec<Vec<Pid>> {
        // "Nothing" still reads each process's pid, parent and start time, which is all a tree
        // needs; the expensive parts are refreshed for tree members only.
        self.system.refresh_processes_specifics(
            ProcessesToUpdate::All,
            true,
            ProcessRefreshKind::nothing(),
        );
        let processes = self.system.processes();
        let children = children_by_parent(processes);
        states
            .iter()
            .map(|state| match main_pid(state) {
                Some(pid) if processes.contains_key(&pid) => tree_of(pid, &children),
                _ => Vec::new(),
            })
            .collect()
    }

    fn refresh_members(&mut self, trees: &[Vec<Pid>]) {
        let members = trees.concat();
        if members.is_empty() {
            return;
        }
        // A member that exited since the scan is removed, so it is not read as running.
        self.system.refresh_processes_specifics(
            ProcessesToUpdate::Some(&members),
            true,
            ProcessRefreshKind::nothing()
                .with_cpu()
                .with_memory()
                .with_tasks(),
        );
    }

    fn read_tree(&mut self, service: &str, pids: &[Pid], now: Instant) -> Option<TreeReading> {
        let processes: Vec<&Process> = pids
            .iter()
            .filter_map(|pid| self.system.process(*pid))
            .collect();
        let cpu: Vec<ProcessCpu> = processes.iter().map(|p| process_cpu(p)).collect();
        let account = self.accounts.entry(service.to_owned()).or_default();
        // Also when the service is down, so the interval of its next start is known.
        let cpu_usage_cores = account.update(&cpu, now);
        if processes.is_empty() {
            return None;
        }
        let memory = tree_memory(
            processes.iter().map(|p| (p.pid().as_u32(), p.memory())),
            read_pss,
        );
        Some(TreeReading {
            processes: processes.len() as u64,
            cpu_seconds_total: account.total_seconds(),
            cpu_usage_cores,
            resident_memory_bytes: memory.bytes,
            memory_fallback_processes: memory.fallbacks,
            threads: processes.iter().map(|p| threads(p)).sum(),
            open_fds: open_fds(&processes),
        })
    }
}

/// A process's proportional set size, as /proc says it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Pss {
    Bytes(u64),
    /// The process exited since the scan, or is a zombie: it counts nothing.
    Gone,
    /// No smaps_rollup (a kernel before 4.14) or no permission to read it.
    Unreadable,
}

/// A tree's memory with shared pages counted once, and how many processes had to be counted
/// by RSS instead.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(super) struct TreeMemory {
    pub bytes: u64,
    pub fallbacks: u64,
}

/// The sum of each process's PSS: a page shared by k processes counts 1/k in each, so pages
/// shared within the tree (PostgreSQL's shared buffers, a forked parent's memory) count once
/// and the sums of different services add up to the memory really in use. Summing RSS instead
/// counts such a page once per process (384 MiB for a PostgreSQL whose PSS was 79 MiB). A
/// process whose PSS cannot be read counts with its RSS (`(pid, rss)`), and is counted.
pub(super) fn tree_memory(
    processes: impl Iterator<Item = (u32, u64)>,
    read_pss: impl Fn(u32) -> Pss,
) -> TreeMemory {
    let mut memory = TreeMemory::default();
    for (pid, rss) in processes {
        match read_pss(pid) {
            Pss::Bytes(bytes) => memory.bytes += bytes,
            Pss::Gone => {}
            Pss::Unreadable => {
                memory.bytes += rss;
                memory.fallbacks += 1;
            }
        }
    }
    memory
}

fn read_pss(pid: u32) -> Pss {
    match std::fs::read_to_string(format!("/proc/{pid}/smaps_rollup")) {
        // A zombie or a kernel thread has no mappings: an empty file, nothing resident.
        Ok(text) => Pss::Bytes(pss_kib(&text).unwrap_or(0).saturating_mul(1024)),
        // ESRCH: a zombie, whose memory is gone already.
        Err(e) if e.raw_os_error() == Some(libc::ESRCH) => Pss::Gone,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && !pid_exists(pid) => Pss::Gone,
        Err(_) => Pss::Unreadable,
    }
}

fn pid_exists(pid: u32) -> bool {
    std::path::Path::new(&format!("/proc/{pid}")).exists()
}

/// The `Pss:` line of smaps_rollup, in KiB.
fn pss_kib(smaps_rollup: &str) -> Option<u64> {
    smaps_rollup
        .lines()
        .find_map(|line| line.strip_prefix("Pss:"))
        .and_then(|rest| rest.trim().strip_suffix("kB"))
        .and_then(|kib| kib.trim().parse().ok())
}

/// The pid worth measuring: a service in any other status has no process of its own, so a
/// pid left in its files must not be taken for it (the kernel may have given it to another).
fn main_pid(state: &ServiceState) -> Option<Pid> {
    match state.status {
        Status::Starting | Status::Up | Status::Stopping => state.pid.map(Pid::from_u32),
        Status::Down | Status::Finished | Status::Failed => None,
    }
}

fn children_by_parent(processes: &HashMap<Pid, Process>) -> HashMap<Pid, Vec<Pid>> {
    let mut children: HashMap<Pid, Vec<Pid>> = HashMap::new();
    for (pid, process) in processes {
        // Threads are listed only when tasks of every process are scanned, which this module
        // never asks for; they must not count as child processes if they ever appear.
        if process.thread_kind().is_some() {
            continue;
        }
        if let Some(parent) = process.parent() {
            children.entry(parent).or_default().push(*pid);
        }
    }
    children
}

/// `root` and all its descendants. The seen-set guards against a parent loop that a pid reused
/// during the scan could fake.
fn tree_of(root: Pid, children: &HashMap<Pid, Vec<Pid>>) -> Vec<Pid> {
    let mut tree = vec![root];
    let mut seen = HashSet::from([root]);
    let mut next = 0;
    while let Some(&pid) = tree.get(next) {
        next += 1;
        for &child in children.get(&pid).into_iter().flatten() {
            if seen.insert(child) {
                tree.push(child);
            }
        }
    }
    tree
}

fn process_cpu(process: &Process) -> ProcessCpu {
    ProcessCpu {
        pid: process.pid().as_u32(),
        start_time: process.start_time(),
        run_time: process.run_time(),
        cpu_ms: process.accumulated_cpu_time(),
    }
}

/// sysinfo lists a process's tasks without its main thread.
fn threads(process: &Process) -> u64 {
    process.tasks().map_or(1, |tasks| tasks.len() as u64 + 1)
}

fn open_fds(processes: &[&Process]) -> Option<u64> {
    processes
        .iter()
        .filter_map(|p| p.open_files())
        .map(|n| n as u64)
        .reduce(|a, b| a + b)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::service::state::Kind;

    fn pid(n: u32) -> Pid {
        Pid::from_u32(n)
    }

    #[test]
    fn a_tree_is_the_root_and_every_descendant() {
        let children = HashMap::from([
            (pid(1), vec![pid(10), pid(20)]),
            (pid(10), vec![pid(11), pid(12)]),
            (pid(12), vec![pid(13)]),
            (pid(20), vec![pid(21)]),
        ]);
        let mut tree = tree_of(pid(10), &children);
        tree.sort();
        assert_eq!(tree, vec![pid(10), pid(11), pid(12), pid(13)]);
        assert_eq!(tree_of(pid(21), &children), vec![pid(21)]);
    }

    #[test]
    fn a_parent_loop_does_not_hang_the_walk() {
        let children = HashMap::from([(pid(5), vec![pid(6)]), (pid(6), vec![pid(5)])]);
        assert_eq!(tree_of(pid(5), &children), vec![pid(5), pid(6)]);
    }

    #[test]
    fn pss_is_read_from_the_pss_line_of_smaps_rollup() {
        let rollup = "55d0c8a3c000-7ffc5a7f1000 ---p 00000000 00:00 0    [rollup]\n\
                      Rss:              135168 kB\n\
                      Pss:               27034 kB\n\
                      Pss_Dirty:         26972 kB\n\
                      Pss_Anon:            112 kB\n\
                      Shared_Clean:        448 kB\n";
        assert_eq!(pss_kib(rollup), Some(27034));
        assert_eq!(pss_kib(""), None);
        assert_eq!(pss_kib("Pss_Anon: 5 kB\n"), None);
        assert_eq!(pss_kib("Pss: many kB\n"), None);
    }

    #[test]
    fn tree_memory_sums_pss_and_falls_back_to_rss_only_where_pss_is_unreadable() {
        /// (pid, rss, what smaps_rollup says)
        type Tree<'a> = &'a [(u32, u64, Pss)];
        let cases: [(Tree, TreeMemory); 4] = [
            (
                &[],
                TreeMemory {
                    bytes: 0,
                    fallbacks: 0,
                },
            ),
            (
                &[(1, 400, Pss::Bytes(100)), (2, 400, Pss::Bytes(100))],
                TreeMemory {
                    bytes: 200,
                    fallbacks: 0,
                },
            ),
            (
                &[(1, 400, Pss::Bytes(100)), (2, 300, Pss::Unreadable)],
                TreeMemory {
                    bytes: 400,
                    fallbacks: 1,
                },
            ),
            (
                &[(1, 400, Pss::Gone), (2, 300, Pss::Bytes(50))],
                TreeMemory {
                    bytes: 50,
                    fallbacks: 0,
                },
            ),
        ];
        for (processes, expected) in cases {
            let memory = tree_memory(processes.iter().map(|&(pid, rss, _)| (pid, rss)), |pid| {
                processes
                    .iter()
                    .find(|p| p.0 == pid)
                    .map(|p| p.2)
                    .expect("known pid")
            });
            assert_eq!(memory, expected, "{processes:?}");
        }
    }

    #[test]
    fn only_running_statuses_have_a_main_pid() {
        let mut state = ServiceState::new("node-1", Kind::Longrun);
        state.pid = Some(42);
        for status in Status::ALL {
            state.status = status;
            let running = matches!(status, Status::Starting | Status::Up | Status::Stopping);
            assert_eq!(main_pid(&state).is_some(), running, "{status}");
        }
    }
}
