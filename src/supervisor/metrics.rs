//! The supervisor's own metrics: service states and transitions, restarts, boot phases, which
//! configuration runs and whether it was verified in insecure mode.

use prometheus::{GaugeVec, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry};

use crate::service::state::Status;
use crate::telemetry::register;

/// Boot phases, in seconds since `enclave init` started.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BootPhase {
    ConfigurationVerified,
    PostgresReady,
    AllUp,
}

impl BootPhase {
    fn label(self) -> &'static str {
        match self {
            BootPhase::ConfigurationVerified => "configuration_verified",
            BootPhase::PostgresReady => "postgres_ready",
            BootPhase::AllUp => "all_up",
        }
    }
}

#[derive(Clone)]
pub struct SupervisorMetrics {
    state: IntGaugeVec,
    transitions: IntCounterVec,
    restarts: IntCounterVec,
    boot: GaugeVec,
    configuration: IntGaugeVec,
    insecure: IntGauge,
    shutting_down: IntGauge,
    state_files_stale: IntGauge,
    state_file_write_failures: IntCounter,
}

impl SupervisorMetrics {
    pub fn register(registry: &Registry) -> Result<Self, prometheus::Error> {
        let m = Self {
            state: register(registry, IntGaugeVec::new(
                Opts::new(
                    "enclave_supervisor_service_state",
                    "1 for the state each service is in (starting, up, stopping, down, finished, failed).",
                ),
                &["service", "state"],
            )?)?,
            transitions: register(registry, IntCounterVec::new(
                Opts::new(
                    "enclave_supervisor_service_transitions_total",
                    "State changes of each service, by the state entered.",
                ),
                &["service", "state"],
            )?)?,
            restarts: register(registry, IntCounterVec::new(
                Opts::new("enclave_supervisor_service_restarts_total", "Restarts of each service since boot."),
                &["service"],
            )?)?,
            boot: register(registry, GaugeVec::new(
                Opts::new(
                    "enclave_supervisor_boot_phase_seconds",
                    "Seconds from enclave init's start to each boot phase.",
                ),
                &["phase"],
            )?)?,
            configuration: register(registry, IntGaugeVec::new(
                Opts::new(
                    "enclave_configuration_info",
                    "The verified configuration: its digest and signature scheme (value 1).",
                ),
                &["digest", "scheme"],
            )?)?,
            insecure: register(registry, IntGauge::new(
                "enclave_supervisor_insecure_mode",
                "1 when the configuration was verified with a key from the command line (development only).",
            )?)?,
            shutting_down: register(registry, IntGauge::new(
                "enclave_supervisor_shutting_down",
                "1 once the supervisor is stopping the services.",
            )?)?,
            state_files_stale: register(registry, IntGauge::new(
                "enclave_supervisor_state_files_stale",
                "Services whose state files lag behind the supervisor because they could not be written (a full disk); their true state is in the state page. 0 when the files are current.",
            )?)?,
            state_file_write_failures: register(registry, IntCounter::new(
                "enclave_supervisor_state_file_write_failures_total",
                "Failed writes of a service's state files (each retried until it succeeds).",
            )?)?,
        };
        Ok(m)
    }

    pub fn configuration(&self, digest: &str, scheme: &str, insecure: bool) {
        self.configuration
            .with_label_values(&[digest, scheme])
            .set(1);
        self.insecure.set(i64::from(insecure));
    }

    pub fn state(&self, service: &str, status: Status) {
        for s in Status::ALL {
            self.state
                .with_label_values(&[service, s.as_str()])
                .set(i64::from(s == status));
        }
        self.transitions
            .with_label_values(&[service, status.as_str()])
            .inc();
    }

    pub fn restart(&self, service: &str) {
        self.restarts.with_label_values(&[service]).inc();
    }

    pub fn boot_phase(&self, phase: BootPhase, seconds: f64) {
        self.boot.with_label_values(&[phase.label()]).set(seconds);
    }

    pub fn shutting_down(&self) {
        self.shutting_down.set(1);
    }

    pub fn state_files_stale(&self, services: usize) {
        self.state_files_stale
            .set(i64::try_from(services).unwrap_or(i64::MAX));
    }

    pub fn state_file_write_failed(&self) {
        self.state_file_write_failures.inc();
    }
}
