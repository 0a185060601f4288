//! [`ProcessMetrics`]: samples on demand and renders the last sample as a Prometheus collector.
//!
//! The values are measured readings, not events, so rather than mirroring them into prometheus
//! counters and gauges (which would also keep the series of services long gone), the collector
//! keeps the last sample and renders it with the right types on each gather.

use crate::telemetry::sample;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use prometheus::core::{Collector, Desc};
use prometheus::proto::{LabelPair, Metric, MetricFamily, MetricType};

use super::sampler::{Sampler, ServiceReading, TreeReading};
use super::{Sample, SampleError};
use crate::service::state::{Exit, ServiceState, StateDir, Status};

const SERVICE_LABEL: &str = "service";
const STATUS_LABEL: &str = "status";

/// Where a family's samples come from.
#[derive(Clone, Copy)]
enum Source {
    /// One series per service, from its state files.
    State(fn(&ServiceState) -> Option<f64>),
    /// One series per known status per service, 1 for the current one.
    Status,
    /// One series per service with running processes, from its tree.
    Tree(fn(&TreeReading) -> Option<f64>),
    /// One series about the exporter itself.
    Own(fn(&Published) -> Option<f64>),
}

impl Source {
    fn labels(self) -> Vec<String> {
        match self {
            Source::State(_) | Source::Tree(_) => vec![SERVICE_LABEL.to_owned()],
            Source::Status => vec![SERVICE_LABEL.to_owned(), STATUS_LABEL.to_owned()],
            Source::Own(_) => Vec::new(),
        }
    }
}

struct Family {
    name: &'static str,
    help: &'static str,
    kind: MetricType,
    source: Source,
}

fn exit_code(state: &ServiceState) -> Option<f64> {
    match state.last_exit? {
        Exit::Code(code) => Some(f64::from(code)),
        Exit::Signal(_) => None,
    }
}

fn exit_signal(state: &ServiceState) -> Option<f64> {
    match state.last_exit? {
        Exit::Signal(signal) => Some(f64::from(signal)),
        Exit::Code(_) => None,
    }
}

const FAMILIES: [Family; 16] = [
    Family {
        name: "enclave_service_up",
        help: "Whether the service is where a healthy boot leaves it: 1 for a longrun that is up or a oneshot that finished, else 0.",
        kind: MetricType::GAUGE,
        source: Source::State(|s| Some(f64::from(u8::from(s.is_healthy())))),
    },
    Family {
        name: "enclave_service_status",
        help: "The service's supervisor status: 1 on the series of the current status, 0 on the others.",
        kind: MetricType::GAUGE,
        source: Source::Status,
    },
    Family {
        name: "enclave_service_restarts_total",
        help: "Restarts of the service by the supervisor since boot.",
        kind: MetricType::COUNTER,
        source: Source::State(|s| Some(s.restart_count as f64)),
    },
    Family {
        name: "enclave_service_last_restart_timestamp_seconds",
        help: "Unix time of the service's last restart; absent when it never restarted.",
        kind: MetricType::GAUGE,
        source: Source::State(|s| s.last_restart.map(|t| t as f64)),
    },
    Family {
        name: "enclave_service_last_exit_code",
        help: "Exit code of the service's last exit; absent when it never exited or was killed by a signal.",
        kind: MetricType::GAUGE,
        source: Source::State(exit_code),
    },
    Family {
        name: "enclave_service_last_exit_signal",
        help: "Signal that ended the service's last exit; absent when it never exited or exited with a code.",
        kind: MetricType::GAUGE,
        source: Source::State(exit_signal),
    },
    Family {
        name: "enclave_service_processes",
        help: "Processes in the service's tree: its main process and all descendants.",
        kind: MetricType::GAUGE,
        source: Source::Tree(|t| Some(t.processes as f64)),
    },
    Family {
        name: "enclave_service_cpu_seconds_total",
        help: "CPU time (user and system) used by the service's process tree while sampled, including processes that have exited since.",
        kind: MetricType::COUNTER,
        source: Source::Tree(|t| Some(t.cpu_seconds_total)),
    },
    Family {
        name: "enclave_service_cpu_usage_cores",
        help: "CPU used by the service's process tree over the last sampling interval, in cores (1 = one core busy).",
        kind: MetricType::GAUGE,
        source: Source::Tree(|t| t.cpu_usage_cores),
    },
    Family {
        name: "enclave_service_resident_memory_bytes",
        help: "Resident memory of the service's process tree with shared pages counted once: the sum of each process's proportional set size (Pss in /proc/<pid>/smaps_rollup), where a page shared by k processes counts 1/k in each; a process whose PSS is unreadable counts with its RSS (see enclave_service_memory_fallback_processes).",
        kind: MetricType::GAUGE,
        source: Source::Tree(|t| Some(t.resident_memory_bytes as f64)),
    },
    Family {
        name: "enclave_service_memory_fallback_processes",
        help: "Processes of the service's tree counted by RSS in enclave_service_resident_memory_bytes because their /proc/<pid>/smaps_rollup could not be read (a kernel before 4.14, or no permission); 0 when the figure is PSS throughout.",
        kind: MetricType::GAUGE,
        source: Source::Tree(|t| Some(t.memory_fallback_processes as f64)),
    },
    Family {
        name: "enclave_service_threads",
        help: "Threads of all processes in the service's tree.",
        kind: MetricType::GAUGE,
        source: Source::Tree(|t| Some(t.threads as f64)),
    },
    Family {
        name: "enclave_service_open_fds",
        help: "Open file descriptors of the processes in the service's tree whose fd directory is readable.",
        kind: MetricType::GAUGE,
        source: Source::Tree(|t| t.open_fds.map(|n| n as f64)),
    },
    Family {
        name: "enclave_process_metrics_samples_total",
        help: "Samples of the service processes taken by the exporter, failed ones included.",
        kind: MetricType::COUNTER,
        source: Source::Own(|p| Some(p.samples as f64)),
    },
    Family {
        name: "enclave_process_metrics_sample_failures_total",
        help: "Samples that failed: the state directory was unreadable or no service process could be measured.",
        kind: MetricType::COUNTER,
        source: Source::Own(|p| Some(p.failures as f64)),
    },
    Family {
        name: "enclave_process_metrics_sample_duration_seconds",
        help: "Wall-clock time the last sample took.",
        kind: MetricType::GAUGE,
        source: Source::Own(|p| p.last_duration.map(|d| d.as_secs_f64())),
    },
];

/// What the collector renders: the last sample and the exporter's own counts.
#[derive(Debug, Default)]
struct Published {
    services: Vec<ServiceReading>,
    samples: u64,
    failures: u64,
    last_duration: Option<Duration>,
    last_succeeded: Option<bool>,
}

/// Per-service process metrics, sampled from the state files and /proc (via sysinfo).
///
/// Clones share one sampler and one last sample, so the sampling loop and the registry can each
/// hold one.
#[derive(Clone)]
pub struct ProcessMetrics {
    inner: Arc<Inner>,
}

struct Inner {
    state_dir: StateDir,
    /// Every family that has a descriptor, with it.
    descs: Vec<(&'static Family, Desc)>,
    /// Held for a whole sample; `published` is separate so a gather never waits for /proc.
    sampler: Mutex<Sampler>,
    published: Mutex<Published>,
}

impl ProcessMetrics {
    pub fn new(state_dir: StateDir) -> Self {
        Self {
            inner: Arc::new(Inner {
                state_dir,
                descs: descs(),
                sampler: Mutex::new(Sampler::new()),
                published: Mutex::new(Published::default()),
            }),
        }
    }

    /// One sample: reads all state files, measures each running service's whole process tree
    /// (the main pid and all its descendants, e.g. PostgreSQL's backends count toward
    /// `postgres`). Fails when the state directory is unreadable or no service process could be
    /// measured; the state files' series are still published in the latter case.
    pub fn sample(&self) -> Result<Sample, SampleError> {
        let started = Instant::now();
        let (services, outcome) = self.measure();
        self.publish(services, outcome.is_ok(), started.elapsed());
        outcome
    }

    fn measure(&self) -> (Vec<ServiceReading>, Result<Sample, SampleError>) {
        let path = self.inner.state_dir.path();
        let states = match self.inner.state_dir.read_all() {
            Ok(states) => states,
            Err(source) => {
                let error = SampleError::StateDir {
                    path: path.to_owned(),
                    source,
                };
                // Nothing is known: the series disappear rather than repeat stale values.
                return (Vec::new(), Err(error));
            }
        };
        let services = lock(&self.inner.sampler).measure(states);
        let processes = services
            .iter()
            .filter_map(|s| s.tree.as_ref())
            .map(|tree| tree.processes as usize)
            .sum();
        let outcome = if processes == 0 {
            Err(SampleError::NoProcess {
                path: path.to_owned(),
                services: services.len(),
            })
        } else {
            Ok(Sample {
                services: services.len(),
                processes,
            })
        };
        (services, outcome)
    }

    fn publish(&self, services: Vec<ServiceReading>, succeeded: bool, duration: Duration) {
        let mut published = lock(&self.inner.published);
        published.services = services;
        published.samples += 1;
        published.failures += u64::from(!succeeded);
        published.last_duration = Some(duration);
        published.last_succeeded = Some(succeeded);
    }

    /// Whether the last sample succeeded (`None` before the first): the exporter's health.
    pub fn last_sample_succeeded(&self) -> Option<bool> {
        lock(&self.inner.published).last_succeeded
    }
}

/// The data behind both mutexes is replaced or updated whole, so a panic elsewhere cannot leave
/// it half-written; at worst one service's CPU account misses a sample.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

fn descs() -> Vec<(&'static Family, Desc)> {
    FAMILIES
        .iter()
        .filter_map(|family| {
            let desc = Desc::new(
                family.name.to_owned(),
                family.help.to_owned(),
                family.source.labels(),
                HashMap::new(),
            );
            match desc {
                Ok(desc) => Some((family, desc)),
                // Only a typo in FAMILIES gets here, and the tests catch it; a missing family
                // beats an exporter that cannot start.
                Err(error) => {
                    tracing::error!(family = family.name, %error, "invalid metric descriptor");
                    None
                }
            }
        })
        .collect()
}

impl std::fmt::Debug for ProcessMetrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProcessMetrics")
            .field("state_dir", &self.inner.state_dir.path())
            .field("published", &*lock(&self.inner.published))
            .finish()
    }
}

impl Collector for ProcessMetrics {
    fn desc(&self) -> Vec<&Desc> {
        self.inner.descs.iter().map(|(_, desc)| desc).collect()
    }

    fn collect(&self) -> Vec<MetricFamily> {
        let published = lock(&self.inner.published);
        self.inner
            .descs
            .iter()
            .map(|(family, desc)| {
                let mut out = MetricFamily::default();
                out.set_name(desc.fq_name.clone());
                out.set_help(desc.help.clone());
                out.set_field_type(family.kind);
                out.set_metric(family.metrics(&published));
                out
            })
            .collect()
    }
}

impl Family {
    fn metrics(&self, published: &Published) -> Vec<Metric> {
        let services = published.services.iter();
        match self.source {
            Source::State(value_of) => services
                .filter_map(|s| {
                    Some(self.metric(service_labels(&s.state.name), value_of(&s.state)?))
                })
                .collect(),
            Source::Status => services
                .flat_map(|s| self.status_metrics(&s.state))
                .collect(),
            Source::Tree(value_of) => services
                .filter_map(|s| {
                    let value = value_of(s.tree.as_ref()?)?;
                    Some(self.metric(service_labels(&s.state.name), value))
                })
                .collect(),
            Source::Own(value_of) => value_of(published)
                .map(|value| self.metric(Vec::new(), value))
                .into_iter()
                .collect(),
        }
    }

    fn status_metrics(&self, state: &ServiceState) -> Vec<Metric> {
        Status::ALL
            .into_iter()
            .map(|status| {
                let mut labels = service_labels(&state.name);
                labels.push(sample::label(STATUS_LABEL, status.as_str()));
                self.metric(labels, f64::from(u8::from(status == state.status)))
            })
            .collect()
    }

    fn metric(&self, labels: Vec<LabelPair>, value: f64) -> Metric {
        sample::metric(self.kind, labels, value)
    }
}

fn service_labels(service: &str) -> Vec<LabelPair> {
    vec![sample::label(SERVICE_LABEL, service)]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_family_has_a_valid_descriptor() {
        assert_eq!(descs().len(), FAMILIES.len());
    }

    #[test]
    fn counters_and_only_counters_end_in_total() {
        for family in &FAMILIES {
            assert_eq!(
                family.name.ends_with("_total"),
                family.kind == MetricType::COUNTER,
                "{}",
                family.name
            );
        }
    }
}
