//! The command line: one binary, one subcommand per role.

mod aggregator_cmd;
mod alerts_cmd;
mod attestation_cmd;
mod config_cmd;
mod don_config_cmd;
mod don_members_cmd;
mod keys_cmd;
mod node_cmd;
mod operator_key_cmd;
mod postgres_cmd;
mod process_metrics_cmd;
mod quote_cmd;
mod verify_identity_cmd;

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};

pub use quote_cmd::QuoteCheckArgs;

use crate::config::signature::Scheme;
use crate::config::{load_verified_with_key_file, ConfigError, VerifiedConfig};
use crate::exit;
use crate::paths::Root;
use crate::supervisor;

#[derive(Debug, Parser)]
#[command(
    name = "enclave",
    version,
    about = "All-in-one confidential price-oracle container",
    long_about = "All-in-one confidential price-oracle container: PID-1 supervisor, embedded \
                  PostgreSQL, price aggregator and OCR consensus nodes in one binary.\n\n\
                  Exit codes: 0 ok, 1 failure, 2 usage, 65 an input file of a verification \
                  unreadable or malformed, 77 configuration signature invalid or missing, 78 \
                  configuration invalid."
)]
pub struct Cli {
    /// Map every absolute path (/sp, /run, /var/log, /etc/enclave) under this directory.
    #[arg(long, env = "ENCLAVE_ROOT", global = true, value_name = "DIR")]
    pub root: Option<PathBuf>,

    /// The configuration file [default: <root>/sp/configurations/configuration.json].
    #[arg(long, env = "CONFIGURATION_PATH", global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run as the container's PID 1: verify the configuration, then start and supervise every
    /// service of the s6-rc definitions in dependency order.
    Init {
        /// The s6-rc source definitions [default: <root>/etc/enclave/s6-rc.d].
        #[arg(long, value_name = "DIR")]
        services: Option<PathBuf>,
        /// Start only this service, bundle or template and what it depends on (repeatable).
        #[arg(long, value_name = "NAME")]
        only: Vec<String>,
        /// INSECURE, local development only: verify the configuration with this key instead of
        /// the image's <root>/etc/enclave/configuration.pub. Logged loudly.
        #[arg(long, value_name = "FILE")]
        insecure_public_key_file: Option<PathBuf>,
    },
    /// Print every service's state; with --check, exit 0 only when all are up or finished.
    Status {
        /// One JSON array instead of a table.
        #[arg(long)]
        json: bool,
        /// Exit 1 unless every longrun is up and every oneshot finished (for HEALTHCHECK).
        #[arg(long)]
        check: bool,
        /// Only the enclave's identity (<root>/run/enclave/identity.json): a summary, or with
        /// --json the document itself.
        #[arg(long, conflicts_with = "check")]
        identity: bool,
        /// A live view, refreshed every second until Ctrl-C: services with CPU and memory, each
        /// feed's answer, round, age, on-chain answer, health and sources, the nodes, the
        /// attestation. Redrawn in place with colour on a terminal; plain frames otherwise.
        #[arg(long, conflicts_with_all = ["check", "json", "identity"])]
        watch: bool,
        /// Refresh interval of --watch.
        #[arg(long, value_name = "MS", default_value_t = 1000, requires = "watch",
              value_parser = clap::value_parser!(u64).range(200..=3_600_000))]
        interval_ms: u64,
    },
    /// The enclave's own alerts (longrun `alerts`): collects the enclave's state every
    /// `alerts.intervalMs` and notifies the configured channels (Slack, Discord, Telegram, a JSON
    /// webhook) when a rule fires and when it resolves. Idle without a channel.
    Alerts,
    /// Check an identity document (identity.json) written by an enclave: its digests, and
    /// against a configuration, a verifying key, a TDX quote (with --collateral: its signatures,
    /// certificates and TCB under the policy), an RTMR3 event log and allowed measurements when
    /// given. Prints what holds and what does not; exits 1 if anything does not, 65 if an input
    /// file cannot be read.
    VerifyIdentity {
        /// The identity document.
        identity: PathBuf,
        /// The TDX quote the enclave wrote beside it (identity.quote).
        #[arg(long, value_name = "FILE")]
        quote: Option<PathBuf>,
        /// The RTMR3 event log (identity-events.jsonl), replayed against the quote's RTMR3.
        #[arg(long, value_name = "FILE")]
        event_log: Option<PathBuf>,
        /// Intel's collateral for the quote (dcap-qvl's QuoteCollateralV3 JSON; `enclave
        /// attestation collateral fetch` makes one): the quote's signatures are verified with it.
        #[arg(long, value_name = "FILE")]
        collateral: Option<PathBuf>,
        /// The allowed measurements (a JSON array of records) [default: the --config's
        /// attestation.allowedMeasurements, if any].
        #[arg(long, value_name = "FILE")]
        measurements: Option<PathBuf>,
        /// A CA certificate (PEM) to trust: Super Protocol's root for `superprotocol` evidence,
        /// the development CA for `simulated` evidence. Repeatable.
        #[arg(long = "trusted-ca", value_name = "FILE")]
        trusted_ca: Vec<PathBuf>,
        /// Accept simulated evidence (no TEE; development runs only).
        #[arg(long)]
        allow_simulated: bool,
        /// Fail when a node key has no birth evidence (else it is reported as a note).
        #[arg(long)]
        require_birth: bool,
        #[command(flatten)]
        check: QuoteCheckArgs,
        /// The verifying key the image is expected to trust (the configuration is given with
        /// the global --config FILE).
        #[command(flatten)]
        key: KeyArgs,
    },
    /// Intel DCAP quotes.
    #[command(subcommand)]
    Quote(QuoteCommand),
    /// Attestation material: Intel's collateral.
    #[command(subcommand)]
    Attestation(AttestationCommand),
    /// Create keys for, sign, verify and check the configuration.
    #[command(subcommand)]
    Config(ConfigCommand),
    /// The price aggregator: one cached, rate-limited gateway to the price sources, with the
    /// reference's API and the batch API the nodes use (longrun `price-aggregator`).
    Aggregator {
        /// Write a newline to this descriptor once the API accepts connections (s6 readiness).
        #[arg(long, value_name = "FD")]
        notify_fd: Option<i32>,
    },
    /// One consensus node (longrun template `node@`): node 1 is the bootstrap (peer discovery),
    /// nodes 2..N are oracles (OCR consensus, reports, node API on 6600+i).
    Node {
        /// Which node (the supervisor sets NODE_NUMBER for each template instance).
        #[arg(long, env = "NODE_NUMBER", value_name = "N")]
        node: u32,
        /// Write a newline to this descriptor once the node API accepts connections (s6 readiness).
        #[arg(long, value_name = "FD")]
        notify_fd: Option<i32>,
    },
    /// Per-service CPU, memory, restarts and the PostgreSQL metrics, served and pushed
    /// (longrun `process-metrics`).
    ProcessMetrics {
        /// Write a newline to this descriptor once `/metrics` accepts connections (s6 readiness).
        #[arg(long, value_name = "FD")]
        notify_fd: Option<i32>,
    },
    /// The embedded PostgreSQL services.
    #[command(subcommand)]
    Postgres(PostgresCommand),
    /// Print, per feed, the OCR1 configuration its contract needs for this enclave's oracles
    /// (signers, transmitters, threshold, schedule, keys, encrypted shared secret, `encoded`,
    /// digest). The shared secret is dealt afresh each run, so the encryptions differ each time.
    DonConfig {
        /// Only this feed.
        #[arg(long, value_name = "NAME")]
        feed: Option<String>,
        /// Put it on the contracts (skipping those that already have it), sending from
        /// `chain.adminPrivateKey` or node 1's transmitter key.
        #[arg(long)]
        submit: bool,
        /// A DON across enclaves: a member's identity document (as its `identityUrl` serves
        /// it), once per member. Each is judged as the members judge each other; the admitted
        /// members' keys make the oracle set, printed with the identity behind each key.
        #[arg(long = "identity", value_name = "FILE", conflicts_with = "submit")]
        identities: Vec<PathBuf>,
        /// With --identity: read each feed's contract and fail unless its signers[] and
        /// transmitters[] are exactly the attested members' keys.
        #[arg(long, requires = "identities")]
        check_chain: bool,
        /// With --identity: trust this CA (PEM; the simulated provider's development CA, Super
        /// Protocol's root). Any of --trusted-ca, --collateral, --allow-simulated replaces the
        /// configuration's own anchors, whose files are inside the members' enclaves.
        #[arg(long = "trusted-ca", value_name = "FILE", requires = "identities")]
        trusted_cas: Vec<PathBuf>,
        /// With --identity: Intel's collateral for the members' TDX quotes.
        #[arg(long, value_name = "FILE", requires = "identities")]
        collateral: Option<PathBuf>,
        /// With --identity: accept simulated evidence (dev chains; it proves nothing).
        #[arg(long, requires = "identities")]
        allow_simulated: bool,
    },
    /// Every node's keys and the OCR shared secret in <spSecretsDir>.
    #[command(subcommand)]
    Keys(KeysCommand),
    /// Make a DON member's operator key (docs/design/don-across-tees.md): the private key goes
    /// to FILE (mode 0600; an existing file is never replaced), the public key is printed for
    /// `don.members[].operatorKey`. The enclave of that member gets FILE through
    /// ENCLAVE_OPERATOR_KEY_FILE.
    OperatorKey {
        #[arg(long, value_name = "FILE")]
        out: PathBuf,
    },
}

#[derive(Debug, Subcommand)]
pub enum QuoteCommand {
    /// Verify a DCAP quote offline: signatures to Intel's root, CRLs, QE identity, TCB status
    /// and advisories, collateral expiry, at a given time, under a policy; print what it says
    /// (TCB status, advisories, platform flags, MRTD, RTMR0-3, REPORTDATA, …). Exit 0 only when
    /// it is valid and the policy (and the measurements, when given) accept it; 1 when not; 65
    /// when an input file cannot be read or is malformed.
    Verify {
        /// The quote (raw bytes, as identity.quote or configfs-tsm's outblob).
        quote: PathBuf,
        /// Intel's collateral (dcap-qvl's QuoteCollateralV3 JSON; `enclave attestation
        /// collateral fetch` makes one).
        #[arg(long, value_name = "FILE")]
        collateral: PathBuf,
        /// Also require the TD's registers to match one of these records (a measurements
        /// file; identity fields in it are not compared here: use verify-identity).
        #[arg(long, value_name = "FILE")]
        measurements: Option<PathBuf>,
        /// One JSON object instead of text.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        check: QuoteCheckArgs,
    },
}

#[derive(Debug, Subcommand)]
pub enum AttestationCommand {
    /// Intel's collateral (TCB Info, QE Identity, CRLs and their certificate chains).
    #[command(subcommand)]
    Collateral(CollateralCommand),
    /// Print `attestation.allowedMeasurements` (JSON) admitting the simulated provider's TD
    /// running BINARY: what a DON of simulated enclaves (local tries, tests) allows. Nothing a
    /// real TD measures.
    SimulatedMeasurements {
        /// The enclave binary the members run (its SHA-256 is the allowed `binary_sha256`).
        #[arg(long, value_name = "FILE")]
        binary: PathBuf,
    },
}

#[derive(Debug, Subcommand)]
pub enum CollateralCommand {
    /// Fetch the collateral a quote needs from a PCCS or Intel's PCS, check that it verifies
    /// the quote, and write it (without a PCK certificate chain, so that every machine of the
    /// same FMSPC and PCK CA can use it). Intel issues it for 30 days: fetch it again before.
    Fetch {
        /// The PCCS or PCS base URL, e.g. https://api.trustedservices.intel.com or
        /// https://pccs.example:8081.
        #[arg(long, value_name = "URL")]
        pccs: String,
        /// The quote whose collateral is fetched.
        #[arg(long, value_name = "FILE")]
        quote: PathBuf,
        /// Where to write the collateral (replaced atomically, 0644).
        #[arg(long, value_name = "FILE")]
        out: PathBuf,
        /// Trust this CA (PEM) for the PCCS's TLS certificate besides the web's roots.
        #[arg(long, value_name = "FILE")]
        ca_file: Option<PathBuf>,
        /// Timeout of each request.
        #[arg(long, value_name = "DURATION", default_value = "60s", value_parser = humantime::parse_duration)]
        timeout: Duration,
        /// Check the fetched collateral against the quote as of this time (RFC 3339) [default: now].
        #[arg(long, value_name = "RFC3339", value_parser = quote_cmd::parse_at)]
        at: Option<u64>,
    },
}

#[derive(Debug, Subcommand)]
pub enum PostgresCommand {
    /// Create the cluster if the data directory is empty and apply the enclave's settings
    /// (oneshot `postgres-bootstrap`; idempotent).
    Bootstrap,
    /// Run the server in the foreground as the `postgres` user (longrun `postgres`).
    Run {
        /// Write a newline to this descriptor once the server accepts connections (s6 readiness).
        #[arg(long, value_name = "FD")]
        notify_fd: Option<i32>,
    },
    /// Create or update one role and one database per node with fresh passwords (oneshot
    /// `postgres-init`); waits until the server accepts connections.
    Init,
}

#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// Generate whatever is missing: every node's keys and the OCR shared secret (oneshot
    /// `node-keys`; idempotent, never replaces a key). Prints nothing secret.
    Init,
    /// Like `init`, then print every node's public keys and addresses as JSON, for registering
    /// them on-chain.
    Show,
}

#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Generate a configuration signing key pair: DIR/configuration.key (0600) and
    /// DIR/configuration.pub (base64 SPKI, the value of the image's CONFIGURATION_PUBLIC_KEY).
    Keygen {
        /// ed25519 (native scheme) or secp256k1 (the reference solution's scheme).
        #[arg(long)]
        scheme: Scheme,
        /// Directory to write the two files into (created if missing).
        #[arg(long, value_name = "DIR")]
        out: PathBuf,
        /// Replace existing key files.
        #[arg(long)]
        force: bool,
    },
    /// Sign a configuration (nested under "solution" or flat); writes solution.signature.
    Sign {
        /// The private key file written by `enclave config keygen` (or a base64 PKCS#8 / PEM key).
        #[arg(long, value_name = "FILE")]
        key: PathBuf,
        /// The configuration to sign.
        config: PathBuf,
        /// Write the signed configuration here instead of replacing CONFIG.
        #[arg(long, value_name = "FILE")]
        out: Option<PathBuf>,
        /// Sign even if the configuration does not validate.
        #[arg(long)]
        allow_invalid: bool,
    },
    /// Verify a configuration's signature; prints the scheme and digest.
    Verify {
        #[command(flatten)]
        key: KeyArgs,
        /// The configuration [default: --config or <root>/sp/configurations/configuration.json].
        config: Option<PathBuf>,
    },
    /// Validate a configuration and print every problem; checks the signature too when a key is given.
    Check {
        #[command(flatten)]
        key: KeyArgs,
        /// The configuration [default: --config or <root>/sp/configurations/configuration.json].
        config: Option<PathBuf>,
    },
}

/// The verifying key, given on the command line.
#[derive(Debug, Args, Default)]
#[group(multiple = false)]
pub struct KeyArgs {
    /// The verifying key as base64 SPKI DER.
    #[arg(long, value_name = "B64")]
    pub public_key: Option<String>,
    /// A file holding the verifying key as base64 SPKI DER.
    #[arg(long, value_name = "FILE")]
    pub public_key_file: Option<PathBuf>,
}

impl Cli {
    /// The verifying key a service uses: the one the supervisor verified with
    /// (`CONFIGURATION_PUBLIC_KEY_FILE`, set for every service), else the image's.
    pub fn service_public_key_file(&self) -> PathBuf {
        std::env::var_os("CONFIGURATION_PUBLIC_KEY_FILE")
            .map(PathBuf::from)
            .unwrap_or_else(|| self.root().configuration_public_key())
    }

    /// The configuration a service runs: the one at the default path (or `--config`), verified
    /// with [`Cli::service_public_key_file`].
    pub fn service_config(&self) -> Result<VerifiedConfig, ConfigError> {
        load_verified_with_key_file(&self.config_path(None), &self.service_public_key_file())
    }

    pub fn root(&self) -> Root {
        self.root.clone().map(Root::new).unwrap_or_default()
    }

    /// The configuration path: the positional argument, else `--config`, else the default.
    pub fn config_path(&self, positional: Option<&PathBuf>) -> PathBuf {
        positional
            .or(self.config.as_ref())
            .cloned()
            .unwrap_or_else(|| self.root().configuration())
    }
}

/// Runs the command; `Ok` carries the exit code of commands that decide their own.
pub fn run(cli: Cli) -> anyhow::Result<u8> {
    match &cli.command {
        Command::Init {
            services,
            only,
            insecure_public_key_file,
        } => {
            let root = cli.root();
            let options = supervisor::InitOptions {
                insecure_public_key_file: insecure_public_key_file.clone(),
                services_dir: services
                    .clone()
                    .unwrap_or_else(|| root.map(supervisor::DEFAULT_SERVICES_DIR)),
                config_path: cli.config_path(None),
                only: only.clone(),
                root,
            };
            Ok(supervisor::run(options))
        }
        Command::Status {
            watch: true,
            interval_ms,
            ..
        } => {
            let verified = crate::config::load_verified_with_key_file(
                &cli.config_path(None),
                &cli.service_public_key_file(),
            )?;
            crate::live_view::run(
                cli.root(),
                verified.config,
                std::time::Duration::from_millis(*interval_ms),
            )
        }
        Command::Status {
            json,
            check,
            identity,
            ..
        } => Ok(if *identity {
            supervisor::status::run_identity(&cli.root(), *json)
        } else {
            supervisor::status::run(&cli.root(), *json, *check)
        }),
        Command::VerifyIdentity {
            identity,
            quote,
            event_log,
            collateral,
            measurements,
            trusted_ca,
            allow_simulated,
            require_birth,
            check,
            key,
        } => verify_identity_cmd::run(
            cli.config.as_deref(),
            &verify_identity_cmd::Inputs {
                identity,
                quote: quote.as_deref(),
                event_log: event_log.as_deref(),
                collateral: collateral.as_deref(),
                measurements: measurements.as_deref(),
                trusted_cas: trusted_ca,
                allow_simulated: *allow_simulated,
                require_birth: *require_birth,
            },
            check,
            key,
        ),
        Command::Quote(QuoteCommand::Verify {
            quote,
            collateral,
            measurements,
            json,
            check,
        }) => quote_cmd::run(quote, collateral, measurements.as_deref(), check, *json),
        Command::Attestation(AttestationCommand::Collateral(CollateralCommand::Fetch {
            pccs,
            quote,
            out,
            ca_file,
            timeout,
            at,
        })) => attestation_cmd::fetch(&attestation_cmd::FetchArgs {
            pccs,
            quote,
            out,
            ca_file: ca_file.as_deref(),
            timeout: *timeout,
            at: *at,
        }),
        Command::Attestation(AttestationCommand::SimulatedMeasurements { binary }) => {
            attestation_cmd::simulated_measurements(binary)
        }
        Command::Config(command) => config_cmd::run(&cli, command).map(|()| exit::OK),
        Command::Postgres(command) => postgres_cmd::run(&cli, command),
        Command::Keys(command) => keys_cmd::run(&cli, command),
        Command::OperatorKey { out } => operator_key_cmd::run(out),
        Command::DonConfig {
            feed,
            submit,
            identities,
            check_chain,
            trusted_cas,
            collateral,
            allow_simulated,
        } => don_config_cmd::run(
            &cli,
            feed.as_deref(),
            *submit,
            &don_config_cmd::Attested {
                identities,
                check_chain: *check_chain,
                trusted_cas,
                collateral: collateral.as_deref(),
                allow_simulated: *allow_simulated,
            },
        ),
        Command::ProcessMetrics { notify_fd } => process_metrics_cmd::run(&cli, *notify_fd),
        Command::Alerts => alerts_cmd::run(&cli),
        Command::Aggregator { notify_fd } => aggregator_cmd::run(&cli, *notify_fd),
        Command::Node { node, notify_fd } => node_cmd::run(&cli, *node, *notify_fd),
    }
}

/// An input file of a verification command cannot be read or is malformed: nothing was judged
/// (exit 65, distinct from 1, "judged and not valid").
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct InputError(pub String);

/// The exit code for a failed command: the configuration's own codes where they apply.
pub fn exit_code_of(error: &anyhow::Error) -> u8 {
    if error.downcast_ref::<InputError>().is_some() {
        return exit::INPUT_INVALID;
    }
    // The node stopped because its RPC endpoint serves another chain than configured.
    // Or because the configuration asks for what this build cannot run.
    if let Some(
        crate::node::runtime::error::NodeError::WrongChain { .. }
        | crate::node::runtime::error::NodeError::DonAcrossEnclaves
        | crate::node::runtime::error::NodeError::Membership(_)
        | crate::node::runtime::error::NodeError::AnotherMembersNode { .. },
    ) = error.downcast_ref()
    {
        return exit::CONFIG_INVALID;
    }
    error
        .downcast_ref::<ConfigError>()
        .map(ConfigError::exit_code)
        .unwrap_or(exit::FAILURE)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::node::runtime::error::NodeError;

    #[test]
    fn a_node_stopped_on_another_chain_exits_with_the_configuration_code_and_other_node_errors_with_1(
    ) {
        let wrong = anyhow::Error::from(NodeError::WrongChain {
            expected: 7418,
            got: 1337,
        });
        assert_eq!(exit_code_of(&wrong), exit::CONFIG_INVALID);
        let don = anyhow::Error::from(NodeError::DonAcrossEnclaves);
        assert_eq!(exit_code_of(&don), exit::CONFIG_INVALID);
        let other = anyhow::Error::from(NodeError::UnknownNode { node: 9, total: 5 });
        assert_eq!(exit_code_of(&other), exit::FAILURE);
    }
}
