//! `enclave init`: the boot sequence. Nothing starts until the configuration is verified and
//! valid and the service definitions form a valid graph.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use std::net::SocketAddr;

use prometheus::Registry;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::definition;
use super::executor::Supervisor;
use super::graph::Graph;
use super::logs::LogHub;
use super::metrics::{BootPhase, SupervisorMetrics};
use super::process::become_subreaper;
use super::restart::RestartLimits;
use crate::attestation::boot::{self as identity_boot, BootFacts};
use crate::attestation::member_key::{Membership, OPERATOR_KEY_ENV};
use crate::attestation::membership::metrics::MemberMetrics;
use crate::attestation::membership::{Checker, MEMBERS_DIR};
use crate::attestation::metrics::AttestationMetrics;
use crate::attestation::tsm::Kernel;
use crate::attestation::AttestationPaths;
use crate::config::schema::Config;
use crate::config::{load_verified, read_key_file, VerifiedConfig};
use crate::exit;
use crate::logging::Untrusted;
use crate::paths::Root;
use crate::service::state::StateDir;
use crate::telemetry::{self, server, Pusher};

pub const DEFAULT_SERVICES_DIR: &str = "/etc/enclave/s6-rc.d";
const MINIMAL_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
const LOG_FLUSH_TIMEOUT: Duration = Duration::from_secs(2);
const PUSH_SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(5);
/// How long the boot waits for the TDX quote (normally well under a second) before starting the
/// services anyway.
const ATTESTATION_WAIT: Duration = Duration::from_secs(30);

#[derive(Debug, Clone)]
pub struct InitOptions {
    pub root: Root,
    pub config_path: PathBuf,
    pub services_dir: PathBuf,
    /// Start only these (and what they depend on); empty = everything.
    pub only: Vec<String>,
    /// Local development only: a verifying key other than the image's.
    pub insecure_public_key_file: Option<PathBuf>,
}

/// Boots and supervises the tree; returns the container's exit code.
pub fn run(options: InitOptions) -> u8 {
    let started = std::time::Instant::now();
    if let Err(e) = super::early_signals::install() {
        tracing::warn!(error = %e, "cannot catch termination signals before the event loop runs");
    }
    let boot_time = std::time::SystemTime::now();
    let root = match std::path::absolute(options.root.dir()) {
        Ok(dir) => Root::new(dir),
        Err(e) => {
            tracing::error!(error = %e, "cannot resolve the root directory");
            return exit::FAILURE;
        }
    };
    let config_path = std::path::absolute(&options.config_path).unwrap_or(options.config_path);
    let key_path = match &options.insecure_public_key_file {
        Some(file) => {
            tracing::warn!(
                key = %Untrusted::path(file),
                "INSECURE MODE: the configuration is verified with a key from the command line, not the image's; for local development only"
            );
            std::path::absolute(file).unwrap_or_else(|_| file.clone())
        }
        None => root.configuration_public_key(),
    };
    let loaded = read_key_file(&key_path).and_then(|key| {
        load_verified(&config_path, &key).map(|verified| (key.to_base64_spki(), verified))
    });
    let (verifying_key, verified) = match loaded {
        Ok(v) => v,
        Err(e) => {
            tracing::error!("configuration rejected, nothing started: {e}");
            return e.exit_code();
        }
    };
    tracing::info!(
        scheme = %verified.verified.scheme,
        digest = %verified.verified.digest_hex,
        "configuration verified"
    );
    if let Some(code) = stop_requested("configuration verification") {
        return code;
    }
    // In a DON across enclaves, this enclave is the member whose operator key it was given, and
    // runs that member's nodes only.
    let member = match Membership::of(verified.config.don.as_ref()) {
        Ok(member) => member,
        Err(e) => {
            tracing::error!("configuration rejected, nothing started: solution.don: {e}");
            return exit::CONFIG_INVALID;
        }
    };
    if let Some(m) = &member {
        tracing::info!(member = %m.name, nodes = ?m.nodes, "this enclave is a member of a DON across enclaves");
    }
    let nodes = Membership::nodes_here(member.as_ref(), &verified.config);
    // Services run with their definition folder as working directory: every path must be absolute.
    let services_dir = std::path::absolute(&options.services_dir).unwrap_or(options.services_dir);
    let graph = match load_graph(&services_dir, &nodes, &options.only) {
        Ok(graph) => graph,
        Err(code) => return code,
    };
    let limits = match RestartLimits::from_policy(&verified.config.restart) {
        Ok(limits) => limits,
        Err(e) => {
            tracing::error!("invalid restart policy, nothing started: {e}");
            return exit::CONFIG_INVALID;
        }
    };
    if let Some(code) = stop_requested("service definitions") {
        return code;
    }
    if std::process::id() != 1 {
        if let Err(e) = become_subreaper() {
            tracing::warn!(error = %e, "cannot become a child subreaper; orphans will not be reaped by us");
        }
    }
    let env = base_env(&root, &config_path, &key_path);
    let boot = Boot {
        started,
        boot_time,
        verified_after: started.elapsed(),
        insecure: options.insecure_public_key_file.is_some(),
        verifying_key,
        member,
    };
    supervise(&root, &verified, graph, limits, env, boot)
}

fn load_graph(dir: &Path, nodes: &[u32], only: &[String]) -> Result<Graph, u8> {
    let definitions = definition::load(dir, nodes).map_err(|errors| {
        for e in &errors.0 {
            tracing::error!("invalid service definition, nothing started: {e}");
        }
        exit::CONFIG_INVALID
    })?;
    let graph = Graph::build(definitions).map_err(|errors| {
        for e in &errors {
            tracing::error!("invalid service graph, nothing started: {e}");
        }
        exit::CONFIG_INVALID
    })?;
    graph.select(only).map_err(|e| {
        tracing::error!("{e}");
        exit::USAGE
    })
}

/// The clean environment every service starts from. The directory of this binary comes first
/// on PATH so that `exec enclave …` in a run script finds the same binary in local runs.
fn base_env(root: &Root, config: &Path, key: &Path) -> BTreeMap<String, String> {
    let mut path = MINIMAL_PATH.to_owned();
    if let Some(dir) = std::env::current_exe()
        .ok()
        .and_then(|e| e.parent().map(Path::to_path_buf))
    {
        path = format!("{}:{path}", dir.display());
    }
    let mut env = BTreeMap::from([
        ("PATH".to_owned(), path),
        ("ENCLAVE_ROOT".to_owned(), root.dir().display().to_string()),
        (
            "CONFIGURATION_PATH".to_owned(),
            config.display().to_string(),
        ),
        (
            "CONFIGURATION_PUBLIC_KEY_FILE".to_owned(),
            key.display().to_string(),
        ),
    ]);
    if let Ok(filter) = std::env::var("RUST_LOG") {
        env.insert("RUST_LOG".to_owned(), filter);
    }
    // In a DON across enclaves the services key and run this member's nodes only: they learn
    // which member from the same key file (its path; the key stays in the file).
    if let Some(file) = std::env::var_os(OPERATOR_KEY_ENV) {
        let file = std::path::absolute(&file).unwrap_or_else(|_| PathBuf::from(&file));
        env.insert(OPERATOR_KEY_ENV.to_owned(), file.display().to_string());
    }
    env
}

/// A termination signal that came during the boot (recorded by the early handler) ends it
/// between two phases: nothing has started yet, so the exit is clean (0). The event loop checks
/// once more, for a signal after the last phase.
fn stop_requested(phase: &str) -> Option<u8> {
    let signal = super::early_signals::requested()?;
    tracing::info!(%signal, phase, "stop requested during the boot: starting nothing");
    Some(exit::OK)
}

/// When the boot started, how long verification took, and how the key was chosen.
struct Boot {
    started: std::time::Instant,
    /// The wall clock at `started`: the identity's boot time.
    boot_time: std::time::SystemTime,
    verified_after: Duration,
    insecure: bool,
    /// Base64 SPKI of the key the configuration was verified with.
    verifying_key: String,
    /// This enclave's member of a DON across enclaves.
    member: Option<Membership>,
}

fn supervise(
    root: &Root,
    verified: &VerifiedConfig,
    graph: Graph,
    limits: RestartLimits,
    env: BTreeMap<String, String>,
    boot: Boot,
) -> u8 {
    let state_dir = StateDir::new(root);
    if let Err(e) = state_dir.reset() {
        tracing::error!(path = %state_dir.path().display(), error = %e, "cannot prepare the state directory");
        return exit::FAILURE;
    }
    let logs = LogHub::new(root.map("/var/log"), verified.config.logs);
    let registry = Registry::new();
    let metrics = match SupervisorMetrics::register(&registry) {
        Ok(m) => m,
        Err(e) => {
            tracing::error!(error = %e, "cannot register the supervisor's metrics");
            return exit::FAILURE;
        }
    };
    metrics.configuration(
        &verified.verified.digest_hex,
        &verified.verified.scheme.to_string(),
        boot.insecure,
    );
    metrics.boot_phase(
        BootPhase::ConfigurationVerified,
        boot.verified_after.as_secs_f64(),
    );
    let attestation = publish_identity(root, verified, &boot, &registry);
    if let Some(code) = stop_requested("keys, identity and attestation") {
        join_attestation(attestation);
        return code;
    }
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            tracing::error!(error = %e, "cannot start the async runtime");
            return exit::FAILURE;
        }
    };
    let started = tokio::time::Instant::from_std(boot.started);
    let config = &verified.config;
    let code = runtime.block_on(async {
        let pusher = Pusher::start(
            &registry,
            &telemetry::targets_for(config, false),
            &telemetry::identity(config, "supervisor"),
        )
        .map_err(std::io::Error::other)?;
        let supervisor = Supervisor::new(
            graph,
            limits,
            env,
            state_dir.clone(),
            &logs,
            metrics,
            started,
        )?;
        // Everything init starts besides the supervisor (the metrics endpoint) belongs here and
        // is cancelled and joined before the exit code is known.
        let tasks = TaskTracker::new();
        let stop = CancellationToken::new();
        check_members(root, verified, &boot, &registry, &tasks, &stop);
        let outcome = serve_and_supervise(
            config,
            &registry,
            crate::attestation::serve::router(root),
            &state_dir,
            supervisor,
            pusher,
            &tasks,
            &stop,
        )
        .await;
        stop.cancel();
        tasks.close();
        tasks.wait().await;
        outcome
    });
    drop(runtime);
    logs.flush(LOG_FLUSH_TIMEOUT);
    join_attestation(attestation);
    match code {
        Ok(code) => {
            tracing::info!(exit_code = code, "enclave stopped");
            code
        }
        Err(e) => {
            tracing::error!(error = %e, "supervisor failed");
            exit::FAILURE
        }
    }
}

/// Serves the supervisor's metrics while the supervisor runs; returns its exit code once the
/// tree is down, the endpoint closed and the last push done.
#[allow(clippy::too_many_arguments)]
async fn serve_and_supervise(
    config: &Config,
    registry: &Registry,
    identity_api: axum::Router,
    state_dir: &StateDir,
    supervisor: Supervisor,
    pusher: Pusher,
    tasks: &TaskTracker,
    stop: &CancellationToken,
) -> std::io::Result<u8> {
    let addr = SocketAddr::new(config.ports.listen_host, config.ports.supervisor);
    let server = tasks.spawn(server::serve_with(
        addr,
        registry.clone(),
        health_of(state_dir.clone()),
        identity_api,
        stop.clone().cancelled_owned(),
    ));
    let supervised = match supervisor.stop_on_termination_signals() {
        Ok(()) => supervisor.run().await,
        Err(e) => Err(e),
    };
    stop.cancel();
    match server.await {
        Ok(Err(e)) => {
            tracing::error!(%addr, error = %e, "the supervisor's metrics endpoint failed")
        }
        Err(e) => tracing::error!(error = %e, "the supervisor's metrics endpoint panicked"),
        Ok(Ok(())) => {}
    }
    pusher.shutdown(PUSH_SHUTDOWN_TIMEOUT).await;
    supervised
}

/// The attestation thread is joined if it is done; one still waiting on the platform cannot be
/// interrupted, and ends with the process.
fn join_attestation(attestation: Option<std::thread::JoinHandle<()>>) {
    let Some(thread) = attestation else { return };
    if !thread.is_finished() {
        tracing::info!("the attestation is still running at exit; its result is not recorded");
        return;
    }
    if thread.join().is_err() {
        tracing::error!("the attestation thread panicked");
    }
}

/// States the enclave's identity and attests it where the platform can, before any service
/// starts (src/attestation/boot.rs). Whatever goes wrong here is logged and shown in the
/// metrics; it never stops the boot.
/// Returns the attestation's thread when it still runs in the background.
fn publish_identity(
    root: &Root,
    verified: &VerifiedConfig,
    boot: &Boot,
    registry: &Registry,
) -> Option<std::thread::JoinHandle<()>> {
    let metrics = match AttestationMetrics::register(registry) {
        Ok(m) => m,
        Err(e) => {
            tracing::error!(error = %e, "cannot register the attestation metrics");
            return None;
        }
    };
    let paths = AttestationPaths::from_env(root);
    let facts = BootFacts {
        root,
        config: &verified.config,
        verified: &verified.verified,
        verifying_key: boot.verifying_key.clone(),
        insecure_key: boot.insecure,
        boot_time: boot.boot_time,
        member: boot.member.as_ref(),
    };
    let published = identity_boot::publish(&facts, &paths, &Kernel, &metrics)?;
    identity_boot::attest_in_background(published, paths, metrics, ATTESTATION_WAIT, || {
        super::early_signals::requested().is_some()
    })
}

/// In a DON across enclaves, keeps checking the other members' identities
/// (src/attestation/membership): what cannot be set up is logged and leaves every member
/// unadmitted (the metrics say so); it never stops the boot.
fn check_members(
    root: &Root,
    verified: &VerifiedConfig,
    boot: &Boot,
    registry: &Registry,
    tasks: &TaskTracker,
    stop: &CancellationToken,
) {
    let (Some(member), Some(don)) = (&boot.member, &verified.config.don) else {
        return;
    };
    let started = (|| -> Result<(), String> {
        let key = crate::config::signature::PublicKey::from_base64_spki(&boot.verifying_key)
            .map_err(|e| e.to_string())?;
        let metrics = MemberMetrics::register(registry).map_err(|e| e.to_string())?;
        let dir = AttestationPaths::from_env(root)
            .identity_dir
            .join(MEMBERS_DIR);
        Checker::new(
            &verified.config,
            don,
            &member.name,
            verified.document.clone(),
            key,
            dir,
            metrics,
        )
        .and_then(|checker| checker.spawn(tasks, stop))
        .map_err(|e| e.to_string())
    })();
    if let Err(e) = started {
        tracing::error!(error = %e, "cannot check the other members of the DON; none is admitted");
    }
}

/// The supervisor is healthy when every service is where a good boot leaves it.
fn health_of(state_dir: StateDir) -> server::HealthCheck {
    std::sync::Arc::new(move || {
        let states = state_dir
            .read_all()
            .map_err(|e| format!("cannot read service states: {e}"))?;
        let unhealthy: Vec<String> = states
            .iter()
            .filter(|s| !s.is_healthy())
            .map(|s| format!("{} is {}", s.name, s.status))
            .collect();
        if unhealthy.is_empty() {
            Ok(())
        } else {
            Err(unhealthy.join(", "))
        }
    })
}
