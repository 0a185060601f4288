//! Keeping the other members of a DON across enclaves admitted
//! (docs/design/don-across-tees.md#membership-checks): the supervisor fetches each other
//! member's identity document from its `identityUrl`, judges it with
//! [`admission`](super::admission) against this enclave's own signed configuration, and does so
//! again every `don.recheckMs` (sooner, with backoff, while a member is refused or cannot be
//! reached, and at once when a node reconnected to one of its nodes: [`RECHECK_DIR`]). [`standing`] decides what each check changes; here it is fetched, logged once per
//! change, counted ([`metrics`]) and written for the nodes: the admitted document of member
//! `<name>` is `<root>/run/enclave/members/<name>.json`, removed when the member is refused.

pub mod claims;
pub mod metrics;
pub mod standing;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use self::claims::{Claim, Claims};
use self::metrics::MemberMetrics;
use self::standing::{observe, Check, Event, Standing};
use super::admission::{admit_document, AdmittedMember, Policy, Refusal};
use super::dcap::QuotePolicy;
use super::evidence::signing::read_certificates;
use super::measurements::MeasurementRecord;
use super::outcome::QuoteCheck;
use crate::backoff::{Attempts, Backoff};
use crate::config::schema::attestation::ProviderChoice;
use crate::config::schema::don::{DonConfig, Member};
use crate::config::signature::PublicKey;
use crate::config::Config;
use crate::logging::Untrusted;

/// Where the admitted members' identities are written, under the identity directory.
pub const MEMBERS_DIR: &str = "members";
/// Under [`MEMBERS_DIR`]: a node that reconnected to a member's node asks for that member to be
/// checked again now with an empty file named after it; the check removes it.
pub const RECHECK_DIR: &str = "recheck";
/// Requests are honoured at most this often per member (a flapping connection must not make the
/// supervisor fetch a document every second).
const RECHECK_REQUEST_MIN: Duration = Duration::from_secs(5);
/// How often a waiting check looks for a request.
const REQUEST_POLL: Duration = Duration::from_secs(1);
/// An identity document is a few KiB per node (quotes, certificate chains); more is refused,
/// here, by the nodes reading the admitted copies and by `enclave don-config --identity`.
pub const MAX_DOCUMENT_BYTES: u64 = 1024 * 1024;
const FETCH_TIMEOUT: Duration = Duration::from_secs(10);
/// Retries of a member that is refused or unreachable start here and grow to `recheckMs`.
const RETRY_FIRST: Duration = Duration::from_secs(1);
/// A member answered for by two enclaves stays refused at least this long after the last sign.
const DUPLICATE_HOLD_MIN: Duration = Duration::from_secs(60);

#[derive(Debug, thiserror::Error)]
pub enum MembershipCheckError {
    #[error("cannot build the HTTP client: {0}")]
    Http(String),
    #[error("attestation.simulated.caCertificateFile: {0}")]
    DevCa(String),
    #[error("attestation.collateralFile: {0}")]
    Collateral(String),
    #[error("{0}")]
    Backoff(#[from] crate::backoff::BackoffError),
}

/// How this enclave judges a member's identity document: against its own signed configuration,
/// allowed measurements and trust anchors. The supervisor's membership checks and `enclave
/// don-config` judge with the same.
pub struct Judge {
    configuration: Value,
    public_key: PublicKey,
    measurements: Vec<MeasurementRecord>,
    trusted_cas: Vec<Vec<u8>>,
    collateral: Option<dcap_qvl::QuoteCollateralV3>,
    policy: QuotePolicy,
    allow_simulated: bool,
}

/// What a judge trusts besides the configuration: CAs (the simulated provider's development
/// CA, Super Protocol's root), Intel's collateral for TDX quotes, and whether simulated evidence
/// counts at all.
pub struct Anchors {
    pub trusted_cas: Vec<Vec<u8>>,
    pub collateral: Option<dcap_qvl::QuoteCollateralV3>,
    pub allow_simulated: bool,
}

impl Anchors {
    /// The configuration's own: the simulated provider's CA is the only trust anchor it names,
    /// trusted only where simulated evidence is (dev chains); `attestation.collateralFile`.
    pub fn of(config: &Config) -> Result<Self, MembershipCheckError> {
        let attestation = &config.attestation;
        let allow_simulated = attestation.provider == ProviderChoice::Simulated;
        let trusted_cas = match (&attestation.simulated, allow_simulated) {
            (Some(ca), true) => read_certificates(&ca.certificate_file)
                .map_err(|e| MembershipCheckError::DevCa(e.to_string()))?,
            _ => Vec::new(),
        };
        let collateral = attestation
            .collateral_file
            .as_deref()
            .map(read_collateral)
            .transpose()?;
        Ok(Self {
            trusted_cas,
            collateral,
            allow_simulated,
        })
    }
}

impl Judge {
    /// For `config`, whose document is `configuration` (as verified with `public_key`), with
    /// the configuration's own trust anchors.
    pub fn new(
        config: &Config,
        configuration: Value,
        public_key: PublicKey,
    ) -> Result<Self, MembershipCheckError> {
        Ok(Self::with_anchors(
            config,
            configuration,
            public_key,
            Anchors::of(config)?,
        ))
    }

    /// The same with `anchors` given (an outsider's: `enclave don-config --trusted-ca`).
    pub fn with_anchors(
        config: &Config,
        configuration: Value,
        public_key: PublicKey,
        anchors: Anchors,
    ) -> Self {
        Self {
            configuration,
            public_key,
            measurements: config.attestation.allowed_measurements.clone(),
            trusted_cas: anchors.trusted_cas,
            collateral: anchors.collateral,
            policy: QuotePolicy::default(),
            allow_simulated: anchors.allow_simulated,
        }
    }

    /// Admits or refuses the identity document `text` as of now.
    pub fn judge(&self, text: &str) -> Result<AdmittedMember, Refusal> {
        let quote_check = self.collateral.as_ref().map(|collateral| QuoteCheck {
            collateral,
            at: unix_now(),
            policy: &self.policy,
        });
        let policy = Policy {
            configuration: &self.configuration,
            public_key: &self.public_key,
            measurements: &self.measurements,
            trusted_cas: &self.trusted_cas,
            quote_check,
            allow_simulated: self.allow_simulated,
            at: None,
        };
        admit_document(text, &policy)
    }
}

/// What every check of every member uses.
pub struct Checker {
    others: Vec<Member>,
    judge: Judge,
    dir: PathBuf,
    http: reqwest::Client,
    metrics: MemberMetrics,
    recheck: Duration,
}

impl Checker {
    /// For the enclave that is member `me` of `don` (`config`'s), whose configuration document
    /// is `configuration` (as verified with `public_key`), writing into `dir`.
    pub fn new(
        config: &Config,
        don: &DonConfig,
        me: &str,
        configuration: Value,
        public_key: PublicKey,
        dir: PathBuf,
        metrics: MemberMetrics,
    ) -> Result<Self, MembershipCheckError> {
        let judge = Judge::new(config, configuration, public_key)?;
        let http = reqwest::Client::builder()
            .timeout(FETCH_TIMEOUT)
            .redirect(reqwest::redirect::Policy::none())
            // A new connection (and name lookup) per check: a pooled one would keep asking the
            // same enclave, and two answering at one name would never be noticed.
            .pool_max_idle_per_host(0)
            .build()
            .map_err(|e| MembershipCheckError::Http(e.to_string()))?;
        let others: Vec<Member> = don
            .members
            .iter()
            .filter(|m| m.name != me)
            .cloned()
            .collect();
        for member in &others {
            metrics.declare(&member.name);
        }
        Ok(Self {
            others,
            judge,
            dir,
            http,
            metrics,
            recheck: don.recheck,
        })
    }

    /// One task per other member, owned by `tasks`, until `stop`.
    pub fn spawn(
        self,
        tasks: &TaskTracker,
        stop: &CancellationToken,
    ) -> Result<(), MembershipCheckError> {
        let retry = Backoff::new(RETRY_FIRST, self.recheck.max(RETRY_FIRST), 0.2)?;
        if let Err(e) = std::fs::create_dir_all(&self.dir) {
            tracing::error!(dir = %self.dir.display(), error = %e, "cannot create the members' directory; admitted identities are not written");
        }
        let checker = Arc::new(self);
        for member in checker.others.clone() {
            tasks.spawn(
                checker
                    .clone()
                    .keep_checking(member, retry.attempts(), stop.clone()),
            );
        }
        Ok(())
    }

    async fn keep_checking(
        self: Arc<Self>,
        member: Member,
        mut retry: Attempts,
        stop: CancellationToken,
    ) {
        let mut standing = Standing::Unknown;
        let mut claims = Claims::default();
        // Long enough to see the two claimants answer in turn a few times; refused meanwhile,
        // the member is checked every second or so (the retry backoff).
        let hold = (self.recheck * 5).max(DUPLICATE_HOLD_MIN).as_secs();
        loop {
            let (mut check, mut text) = self.check(&member).await;
            let now = unix_now();
            if let Check::Judged(Ok(identity)) = &check {
                if identity.member == member.name {
                    if let Claim::Twice { boots } = claims.record(&identity.boot_id, now, hold) {
                        check = Check::ClaimedTwice(format!(
                            "two enclaves answer for this member: boots {} and {} in turn (its operator key is in two enclaves)",
                            Untrusted::bounded(&boots.0, 64),
                            Untrusted::bounded(&boots.1, 64)
                        ));
                        text = None;
                    }
                }
            }
            let (next, events) = observe(&standing, &member.name, check, now);
            // The nodes' copy follows the standing: written only once the standing admits
            // (a document that verifies but names another member is refused), gone when refused.
            match (&next, text) {
                (Standing::Admitted { .. }, Some(text)) => self.write(&member.name, &text),
                (Standing::Refused { .. }, _) => remove(&self.path_of(&member.name)),
                _ => {}
            }
            self.report(&member.name, &next, &events);
            let wait = if next.is_admitted() {
                retry.reset();
                self.recheck
            } else {
                retry.next_delay()
            };
            standing = next;
            tokio::select! {
                () = stop.cancelled() => return,
                () = tokio::time::sleep(wait) => {}
                () = self.requested(&member.name) => {
                    tracing::debug!(member = %member.name, "a node reconnected to the member: checking it again now");
                }
            }
        }
    }

    /// Resolves when a node asks for `member` to be checked again (see [`RECHECK_DIR`]), no
    /// sooner than [`RECHECK_REQUEST_MIN`] from now; consumes the request.
    async fn requested(&self, member: &str) {
        tokio::time::sleep(RECHECK_REQUEST_MIN).await;
        let path = self.dir.join(RECHECK_DIR).join(member);
        loop {
            if tokio::fs::remove_file(&path).await.is_ok() {
                return;
            }
            tokio::time::sleep(REQUEST_POLL).await;
        }
    }

    /// Fetches and judges the member's identity document; the document when it verified.
    async fn check(&self, member: &Member) -> (Check, Option<String>) {
        let text = match self.fetch(member).await {
            Ok(text) => text,
            Err(error) => return (Check::Unreachable(error), None),
        };
        let judged = self.judge.judge(&text);
        let verified = judged.is_ok().then_some(text);
        (Check::Judged(judged), verified)
    }

    async fn fetch(&self, member: &Member) -> Result<String, String> {
        let mut response = self
            .http
            .get(member.identity_url.expose().clone())
            .send()
            .await
            .map_err(fetch_error)?;
        if !response.status().is_success() {
            return Err(format!("HTTP {}", response.status().as_u16()));
        }
        let mut body = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(fetch_error)? {
            if (body.len() + chunk.len()) as u64 > MAX_DOCUMENT_BYTES {
                return Err(format!(
                    "the document is larger than {MAX_DOCUMENT_BYTES} bytes"
                ));
            }
            body.extend_from_slice(&chunk);
        }
        String::from_utf8(body).map_err(|_| "the document is not UTF-8".to_owned())
    }

    fn path_of(&self, member: &str) -> PathBuf {
        // Member names are validated (a-z, 0-9, '-'): a plain file name.
        self.dir.join(format!("{member}.json"))
    }

    fn write(&self, member: &str, text: &str) {
        if let Err(e) = super::write_atomic(&self.path_of(member), text.as_bytes(), 0o644) {
            tracing::error!(member, error = %e, "cannot write the member's admitted identity");
        }
    }

    fn report(&self, member: &str, standing: &Standing, events: &[Event]) {
        self.metrics.record(member, standing, events);
        for event in events {
            match event {
                Event::Admitted { boot_id } => {
                    tracing::info!(member, boot_id = %Untrusted::bounded(boot_id, 64), "DON member admitted: its identity verified");
                }
                Event::Restarted { boot_id } => {
                    tracing::info!(member, boot_id = %Untrusted::bounded(boot_id, 64), "DON member restarted with the same keys; still admitted");
                }
                Event::KeysChanged { boot_id } => {
                    tracing::warn!(member, boot_id = %Untrusted::bounded(boot_id, 64), "DON member admitted with other node keys than before");
                }
                Event::Refused {
                    reason,
                    detail,
                    first,
                } => {
                    if *first {
                        tracing::warn!(member, reason, detail = %Untrusted::bounded(detail, 2000), "DON member refused");
                    }
                }
                Event::Unreachable { error, first } => {
                    if *first {
                        tracing::warn!(member, error = %Untrusted::bounded(error, 500), "cannot fetch the DON member's identity");
                    }
                }
                Event::Reachable => {
                    tracing::info!(member, "the DON member's identity can be fetched again")
                }
            }
        }
    }
}

fn remove(path: &Path) {
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            tracing::error!(path = %path.display(), error = %e, "cannot remove a refused member's identity");
        }
        _ => {}
    }
}

/// A collateral file as `enclave attestation collateral fetch` writes it.
pub fn read_collateral(path: &Path) -> Result<dcap_qvl::QuoteCollateralV3, MembershipCheckError> {
    let bytes = crate::config::regular_file::read_bounded(
        path,
        super::dcap::collateral::MAX_COLLATERAL_BYTES as u64,
    )
    .map_err(|e| MembershipCheckError::Collateral(e.to_string()))?;
    super::dcap::collateral::parse(&bytes)
        .map_err(|e| MembershipCheckError::Collateral(e.to_string()))
}

/// What went wrong, with its causes, without the URL (it may carry credentials).
fn fetch_error(e: reqwest::Error) -> String {
    let e = e.without_url();
    let mut text = e.to_string();
    let mut source = std::error::Error::source(&e);
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}
