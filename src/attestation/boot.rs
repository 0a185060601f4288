//! What `enclave init` does with the identity, between verifying the configuration and starting
//! the services:
//!
//! 1. [`publish`]: choose the evidence provider ([`super::evidence::Provider::choose`]), make
//!    sure every node's keys exist (the same code as `enclave keys init`; the `node-keys`
//!    oneshot then finds them and only checks them) with birth evidence for keys made now
//!    ([`super::birth`]), build the identity, write `identity.json`, set the identity metrics,
//!    log the document once;
//! 2. [`attest`]: extend RTMR3 when the platform has it, take the provider's evidence over the
//!    identity (a quote is written to `identity.quote` and checked by the enclave itself),
//!    record the outcome in the document and the metrics.
//!
//! Birth evidence is taken in [`publish`], synchronously: it happens once, at the boot that
//! generates the keys, and the identity must carry it.
//!
//! Keys are ensured here rather than read after the `node-keys` oneshot because the quote binds
//! the identity at boot, before anything runs: on a first boot there would be no keys to bind
//! yet. Generating them here is safe: key files are created atomically and never replaced, so
//! the oneshot (or a node) running at the same time ends up with the same keys.
//!
//! Nothing here stops the boot. When the keys cannot be had (a damaged key file), no identity
//! is published and the `node-keys` oneshot fails the boot with its precise error, as before.

use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::{Duration, SystemTime};

use base64::Engine as _;
use sha2::{Digest as _, Sha256};

use super::birth;
use super::evidence::{Evidence, Provider};
use super::identity::{
    rfc3339, AttestationStatus, Identity, IdentityDigests, IdentityDocument, IdentityInputs,
    QuoteRecord, RtmrRecord, RTMR_EVENT,
};
use super::member_key::{sign_identity, Membership};
use super::metrics::AttestationMetrics;
use super::rtmr::{self, RtmrEvent};
use super::tsm::{self, ConfigFs, Kernel};
use super::{order_certificate, write_atomic, AttestationPaths, EVENT_LOG_FILE, QUOTE_FILE};
use crate::config::signature::Verified;
use crate::config::Config;
use crate::keys::KeyStore;
use crate::paths::Root;

/// `identity.json` and `identity.quote` are public.
const PUBLIC_MODE: u32 = 0o644;

/// What the identity is built from at boot.
pub struct BootFacts<'a> {
    pub root: &'a Root,
    pub config: &'a Config,
    pub verified: &'a Verified,
    /// Base64 SPKI of the key the configuration was verified with.
    pub verifying_key: String,
    pub insecure_key: bool,
    pub boot_time: SystemTime,
    /// In a DON across enclaves: this enclave's member, whose nodes alone it keys and lists,
    /// and whose operator key signs the identity.
    pub member: Option<&'a Membership>,
}

/// A published identity, ready to be attested.
#[derive(Debug)]
pub struct Published {
    pub document: IdentityDocument,
    pub digests: IdentityDigests,
    /// The provider that attests it.
    pub provider: Provider,
    /// `attestation.collateralFile`: the enclave checks its own quote with it.
    pub collateral: Option<PathBuf>,
}

/// Builds and publishes the identity; `None` (after logging why) when it cannot be built.
/// Node keys generated here get their birth evidence from the chosen provider (through `fs`
/// for a quote) before the identity is built.
pub fn publish(
    facts: &BootFacts<'_>,
    paths: &AttestationPaths,
    fs: &dyn ConfigFs,
    metrics: &AttestationMetrics,
) -> Option<Published> {
    metrics.unavailable();
    // Nothing from an earlier boot may be taken for this one's.
    for stale in [paths.identity_file(), paths.quote_file()] {
        match std::fs::remove_file(&stale) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                tracing::error!(path = %stale.display(), error = %e, "cannot remove the previous boot's identity file");
            }
            _ => {}
        }
    }
    if let Err(e) = std::fs::create_dir_all(&paths.identity_dir) {
        tracing::error!(path = %paths.identity_dir.display(), error = %e, "cannot create the identity directory; no identity published");
        return None;
    }
    let provider = Provider::choose(&facts.config.attestation, paths);
    announce(&provider);
    metrics.provider(provider.name(), provider.insecure());
    let boot_id = random_boot_id();
    let store = KeyStore::from_config(facts.root, facts.config);
    let (nodes, births) = match birth::ensure_keys(
        &store,
        &Membership::nodes_here(facts.member, facts.config),
        &provider,
        fs,
        &hex::encode(boot_id),
    ) {
        Ok(found) => found,
        Err(e) => {
            tracing::error!(error = %e, "node keys unavailable: no identity published, no attestation");
            return None;
        }
    };
    metrics.birth(&births);
    birth::log_missing(&births);
    let order_certificate = match order_certificate::read(&paths.order_certificate) {
        Ok(certificate) => certificate,
        Err(e) => {
            tracing::error!(error = %e, "the order certificate is left out of the identity");
            None
        }
    };
    let identity = Identity::build(IdentityInputs {
        boot_time: facts.boot_time,
        boot_id,
        config_digest: &facts.verified.digest_hex,
        scheme: facts.verified.scheme,
        verifying_key: &facts.verifying_key,
        insecure_key: facts.insecure_key,
        image_digest: std::env::var(super::IMAGE_DIGEST_ENV).ok(),
        binary_sha256: own_binary_sha256(),
        nodes: &nodes,
        order_certificate,
        provider: provider.name(),
        insecure: provider.insecure(),
    });
    let identity = Identity {
        member: facts.member.map(|m| m.name.clone()),
        ..identity
    };
    let digests = match identity.digests() {
        Ok(d) => d,
        Err(e) => {
            tracing::error!(error = %e, "cannot canonicalise the identity; no identity published");
            return None;
        }
    };
    let document = IdentityDocument {
        identity,
        digests: digests.recorded(),
        attestation: super::identity::Attestation::pending(),
        evidence: None,
        birth: births,
        member_signature: facts.member.map(|m| sign_identity(&m.key, &digests.sha512)),
    };
    write_document(paths, &document);
    metrics.identity(&document.identity, &digests);
    let compact = serde_json::json!({
        "identity": &document.identity,
        "digests": &document.digests,
    });
    tracing::info!(
        identity = %compact,
        file = %paths.identity_file().display(),
        "enclave identity"
    );
    Some(Published {
        document,
        digests,
        provider,
        collateral: facts.config.attestation.collateral_file.clone(),
    })
}

/// Says which provider attests this boot; the simulated one loudly, at every boot.
fn announce(provider: &Provider) {
    match provider {
        Provider::Simulated { .. } => tracing::error!(
            provider = provider.name(),
            "SIMULATED attestation: a development CA signs made-up quotes; this identity and \
             its key births prove NOTHING (allowed on development chains only)"
        ),
        Provider::None { reason } => tracing::warn!(
            provider = provider.name(),
            reason = %reason,
            "no evidence provider: nothing will prove this identity"
        ),
        _ => tracing::info!(provider = provider.name(), "evidence provider"),
    }
}

/// SHA-256 of the running executable; None (logged) when the platform hides it.
fn own_binary_sha256() -> Option<String> {
    let mut hasher = Sha256::new();
    let hashed = std::fs::File::open("/proc/self/exe")
        .and_then(|mut file| std::io::copy(&mut file, &mut hasher));
    match hashed {
        Ok(_) => Some(hex::encode(hasher.finalize())),
        Err(e) => {
            tracing::warn!(error = %e, "cannot read /proc/self/exe: the identity has no binary digest");
            None
        }
    }
}

/// 16 random bytes: a boot's (or a `keys init` run's) id.
pub fn random_boot_id() -> [u8; 16] {
    use k256::elliptic_curve::rand_core::{OsRng, RngCore};
    let mut id = [0u8; 16];
    OsRng.fill_bytes(&mut id);
    id
}

fn write_document(paths: &AttestationPaths, document: &IdentityDocument) {
    let path = paths.identity_file();
    if let Err(e) = write_atomic(&path, document.to_pretty_json().as_bytes(), PUBLIC_MODE) {
        tracing::error!(path = %path.display(), error = %e, "cannot write the identity document");
    }
}

/// Extends RTMR3 where the platform offers it, takes the provider's evidence over the
/// identity's SHA-512, then records the outcome in the document and the metrics. Returns the
/// document as written.
pub fn attest(
    fs: &dyn ConfigFs,
    published: Published,
    paths: &AttestationPaths,
    metrics: &AttestationMetrics,
) -> IdentityDocument {
    let Published {
        mut document,
        digests,
        provider,
        collateral,
    } = published;
    document.attestation.rtmr3 = Some(extend_rtmr3(fs, &document, &digests, paths));
    metrics.rtmr3_extended(
        document
            .attestation
            .rtmr3
            .as_ref()
            .is_some_and(|r| r.extended),
    );
    let outcome = match &provider {
        Provider::None { reason } => Err((AttestationStatus::Unavailable, reason.clone())),
        Provider::Tdx { report_dir } => quote_identity(
            fs,
            report_dir,
            &digests,
            collateral.as_deref(),
            paths,
            metrics,
        )
        .map(|(quote, record, self_check)| {
            document.attestation.quote = Some(record);
            document.attestation.self_check = Some(self_check);
            (AttestationStatus::Quoted, quote)
        })
        .map_err(|reason| (AttestationStatus::Failed, reason)),
        other => other
            .take(fs, &digests.sha512)
            .map(|evidence| {
                metrics.evidenced();
                let status = if other.insecure() {
                    AttestationStatus::Simulated
                } else {
                    AttestationStatus::Signed
                };
                tracing::info!(
                    provider = other.name(),
                    report_data = %hex::encode(digests.sha512),
                    "evidence taken: it binds the identity's SHA-512"
                );
                (status, evidence)
            })
            .map_err(|e| (AttestationStatus::Failed, e.to_string())),
    };
    match outcome {
        Ok((status, evidence)) => {
            document.attestation.status = status;
            document.evidence = Some(evidence);
        }
        Err((status, reason)) => {
            if status == AttestationStatus::Unavailable {
                tracing::warn!(reason = %reason, "attestation unavailable: no evidence binds this identity");
            } else {
                tracing::error!(reason = %reason, "attestation failed: no evidence binds this identity; the enclave runs on");
            }
            document.attestation.status = status;
            document.attestation.reason = Some(reason);
            metrics.unavailable();
        }
    }
    write_document(paths, &document);
    document
}

/// A TDX quote over the identity, written to `identity.quote` and checked by the enclave
/// itself: its structure and REPORTDATA always (by [`tsm::request_quote`]), its signatures
/// and TCB with `collateral` when one is configured.
fn quote_identity(
    fs: &dyn ConfigFs,
    report_dir: &Path,
    digests: &IdentityDigests,
    collateral: Option<&Path>,
    paths: &AttestationPaths,
    metrics: &AttestationMetrics,
) -> Result<(Evidence, QuoteRecord, String), String> {
    let quote = tsm::request_quote(fs, report_dir, &digests.sha512).map_err(|e| e.to_string())?;
    let quote_sha256 = hex::encode(Sha256::digest(&quote));
    let sha512 = hex::encode(digests.sha512);
    write_atomic(&paths.quote_file(), &quote, PUBLIC_MODE).map_err(|e| {
        format!(
            "cannot write the quote to {}: {e}",
            paths.quote_file().display()
        )
    })?;
    let quote_base64 = base64::engine::general_purpose::STANDARD.encode(&quote);
    tracing::info!(
        quote_sha256 = %quote_sha256,
        report_data = %sha512,
        file = %paths.quote_file().display(),
        quote_base64 = %quote_base64,
        "TDX quote obtained: its REPORTDATA is the identity's SHA-512"
    );
    metrics.quoted(&quote_sha256, &sha512);
    let now = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let self_check = self_check(&quote, collateral, now);
    let record = QuoteRecord {
        file: QUOTE_FILE.to_owned(),
        sha256: quote_sha256,
        bytes: quote.len(),
        provider: tsm::TDX_PROVIDER.to_owned(),
    };
    Ok((
        Evidence::Tdx {
            quote: quote_base64,
        },
        record,
        self_check,
    ))
}

/// The enclave's own verdict on its quote at `now` (Unix seconds), as the document records it.
fn self_check(quote: &[u8], collateral: Option<&Path>, now: u64) -> String {
    let structure = "structure, TDX and REPORTDATA checked";
    let Some(path) = collateral else {
        return format!("{structure}; signatures not checked (no attestation.collateralFile)");
    };
    let checked = crate::config::regular_file::read_bounded(
        path,
        super::dcap::collateral::MAX_COLLATERAL_BYTES as u64,
    )
    .map_err(|e| format!("cannot read {}: {e}", path.display()))
    .and_then(|bytes| {
        super::dcap::collateral::parse(&bytes).map_err(|e| format!("{}: {e}", path.display()))
    })
    .and_then(|collateral| {
        super::dcap::verify_quote(
            quote,
            &collateral,
            now,
            &super::dcap::QuotePolicy::default(),
        )
        .map_err(|e| e.to_string())
    });
    match checked {
        Ok(verified) if verified.accepted() => format!(
            "{structure}; signatures verified to Intel's root with the configured collateral, \
             TCB status {}",
            verified.facts.tcb_status
        ),
        Ok(verified) => {
            let refusals: Vec<String> = verified.refusals.iter().map(ToString::to_string).collect();
            tracing::error!(refusals = %refusals.join("; "), "the enclave's own quote is refused by the default policy");
            format!(
                "{structure}; REFUSED by the default policy: {}",
                refusals.join("; ")
            )
        }
        Err(e) => {
            tracing::error!(error = %e, "the enclave's own quote does not verify with the configured collateral");
            format!("{structure}; signatures NOT verified: {e}")
        }
    }
}

fn extend_rtmr3(
    fs: &dyn ConfigFs,
    document: &IdentityDocument,
    digests: &IdentityDigests,
    paths: &AttestationPaths,
) -> RtmrRecord {
    let record = |extended, value: Option<String>, reason: Option<String>| RtmrRecord {
        extended,
        event_log: EVENT_LOG_FILE.to_owned(),
        value,
        reason,
    };
    if !paths.rtmr3.exists() {
        return record(
            false,
            None,
            Some(format!("no RTMR3 interface at {}", paths.rtmr3.display())),
        );
    }
    let extension = match rtmr::extend(fs, &paths.rtmr3, &digests.sha384) {
        Ok(extension) => extension,
        Err(e) => {
            tracing::error!(error = %e, "RTMR3 not extended");
            return record(false, None, Some(e.to_string()));
        }
    };
    let event = RtmrEvent {
        time: rfc3339(SystemTime::now()),
        rtmr: 3,
        event: RTMR_EVENT.to_owned(),
        boot_id: document.identity.boot_id.clone(),
        digest: hex::encode(digests.sha384),
        rtmr_before: extension.before.map(hex::encode),
        rtmr_after: extension.after.map(hex::encode),
    };
    let mut problems = Vec::new();
    if let Err(e) = rtmr::append_event(&paths.event_log(), &event) {
        tracing::error!(error = %e, "RTMR3 was extended but the event is not in the log: the log no longer replays");
        problems.push(e.to_string());
    }
    if let Err(e) = rtmr::check(&paths.rtmr3, &extension, &digests.sha384) {
        tracing::error!(error = %e, "RTMR3 extension");
        problems.push(e.to_string());
    }
    tracing::info!(
        digest = %event.digest,
        rtmr3 = event.rtmr_after.as_deref().unwrap_or("unreadable"),
        log = %paths.event_log().display(),
        "RTMR3 extended with the identity's SHA-384"
    );
    record(
        true,
        event.rtmr_after,
        (!problems.is_empty()).then(|| problems.join("; ")),
    )
}

/// How often the wait for the attestation looks whether a stop was requested.
const STOP_POLL: Duration = Duration::from_millis(50);

/// [`attest`] with the real kernel interfaces on a thread of its own, waiting at most `wait`
/// for it: a quote normally takes well under a second, but the host's quoting service can hang,
/// and that must not hold the boot. A late result is still recorded when it comes. The wait
/// ends early once `stop_requested` says so (SIGTERM during the boot). Returns the thread, for
/// its owner to join once it is done (it cannot be interrupted while the platform answers).
pub fn attest_in_background(
    published: Published,
    paths: AttestationPaths,
    metrics: AttestationMetrics,
    wait: Duration,
    stop_requested: impl Fn() -> bool,
) -> Option<std::thread::JoinHandle<()>> {
    let (done, finished) = mpsc::channel();
    let spawned = std::thread::Builder::new()
        .name("attestation".into())
        .spawn(move || {
            attest(&Kernel, published, &paths, &metrics);
            let _ = done.send(());
        });
    let thread = match spawned {
        Ok(thread) => thread,
        Err(e) => {
            tracing::error!(error = %e, "cannot start the attestation thread; no attestation");
            return None;
        }
    };
    let started = std::time::Instant::now();
    loop {
        let left = wait.saturating_sub(started.elapsed());
        match finished.recv_timeout(left.min(STOP_POLL)) {
            Ok(()) | Err(mpsc::RecvTimeoutError::Disconnected) => return Some(thread),
            Err(mpsc::RecvTimeoutError::Timeout) => {}
        }
        if stop_requested() {
            tracing::info!(
                waited = ?started.elapsed(),
                "stop requested while waiting for the attestation; not waiting any longer"
            );
            return Some(thread);
        }
        if started.elapsed() >= wait {
            tracing::warn!(
                waited = ?wait,
                "attestation still running; services start now and its result is recorded when it comes"
            );
            return Some(thread);
        }
    }
}

/// The identity document at `path`, if there is one.
pub fn read_document(path: &Path) -> std::io::Result<Option<IdentityDocument>> {
    match std::fs::read_to_string(path) {
        Ok(text) => serde_json::from_str(&text)
            .map(Some)
            .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::attestation::quote::TdQuote;
    use crate::attestation::tsm::simulated::{Fault, SimulatedKernel};
    use crate::config::signature::Scheme;
    use prometheus::Registry;

    struct Setup {
        _tmp: tempfile::TempDir,
        root: Root,
        paths: AttestationPaths,
        config: Config,
        registry: Registry,
        metrics: AttestationMetrics,
    }

    fn setup() -> Setup {
        let tmp = tempfile::tempdir().expect("tmp");
        let root = Root::new(tmp.path());
        let document = serde_json::from_str(
            &std::fs::read_to_string(
                Path::new(env!("CARGO_MANIFEST_DIR")).join("configuration.example.json"),
            )
            .expect("example"),
        )
        .expect("json");
        let config = crate::config::validate_document(&document)
            .expect("valid")
            .config;
        let paths = AttestationPaths {
            identity_dir: root.map("/run/enclave"),
            tsm_report_dir: root.map(tsm::REPORT_DIR),
            rtmr3: root.map(rtmr::RTMR3_PATH),
            order_certificate: root.map(order_certificate::ORDER_CERTIFICATE_PATH),
            order_key: root.map(order_certificate::ORDER_KEY_PATH),
        };
        let registry = Registry::new();
        let metrics = AttestationMetrics::register(&registry).expect("metrics");
        Setup {
            _tmp: tmp,
            root,
            paths,
            config,
            registry,
            metrics,
        }
    }

    fn facts<'a>(s: &'a Setup, verified: &'a Verified) -> BootFacts<'a> {
        BootFacts {
            root: &s.root,
            config: &s.config,
            verified,
            verifying_key: "MCowBQYDK2VwAyEAGb9ECWmEzf6FQbrBZ9w7lshQhqowtrbLDFw4rXAxZuE=".into(),
            insecure_key: false,
            boot_time: SystemTime::now(),
            member: None,
        }
    }

    fn verified() -> Verified {
        Verified {
            scheme: Scheme::Native,
            digest_hex: "ab".repeat(32),
        }
    }

    fn text(registry: &Registry) -> String {
        crate::telemetry::encode::text(registry)
    }

    fn assert_reason_contains(document: &IdentityDocument, expected: &str) {
        let reason = document.attestation.reason.as_deref().unwrap_or("");
        assert!(reason.contains(expected), "{reason}");
    }

    #[test]
    fn without_a_tee_the_identity_is_published_and_attestation_is_unavailable() {
        let s = setup();
        let v = verified();
        let published = publish(&facts(&s, &v), &s.paths, &Kernel, &s.metrics).expect("published");
        assert_eq!(published.document.identity.nodes.len(), 5);
        let document = attest(&Kernel, published, &s.paths, &s.metrics);
        assert_eq!(document.attestation.status, AttestationStatus::Unavailable);
        assert_reason_contains(&document, "configfs-tsm");
        assert!(!s.paths.quote_file().exists(), "no quote is made up");
        let written = read_document(&s.paths.identity_file())
            .expect("read")
            .expect("exists");
        assert_eq!(written, document);
        let metrics = text(&s.registry);
        assert!(
            metrics.contains("enclave_attestation_available 0"),
            "{metrics}"
        );
        assert_eq!(
            metrics.matches("enclave_identity_info{").count(),
            5,
            "{metrics}"
        );
        assert!(metrics.contains(&format!("config_digest=\"{}\"", "ab".repeat(32))));
    }

    #[test]
    fn on_a_tdx_guest_rtmr3_is_extended_and_the_quote_binds_the_identity() {
        let s = setup();
        std::fs::create_dir_all(&s.paths.tsm_report_dir).expect("configfs");
        std::fs::create_dir_all(s.paths.rtmr3.parent().expect("dir")).expect("sysfs");
        std::fs::write(&s.paths.rtmr3, [0u8; 48]).expect("rtmr3");
        let kernel = SimulatedKernel::default();
        let v = verified();
        let published = publish(&facts(&s, &v), &s.paths, &kernel, &s.metrics).expect("published");
        let digests = published.digests;
        let document = attest(&kernel, published, &s.paths, &s.metrics);
        assert_eq!(
            document.attestation.status,
            AttestationStatus::Quoted,
            "{document:?}"
        );
        assert_eq!(document.identity.evidence.provider, "tdx");
        let quote = std::fs::read(s.paths.quote_file()).expect("quote");
        let parsed = TdQuote::parse(&quote).expect("TDX quote");
        assert_eq!(parsed.report_data, digests.sha512);
        // The same quote is in the document, and the enclave checked it itself.
        use base64::Engine as _;
        assert_eq!(
            document.evidence,
            Some(Evidence::Tdx {
                quote: base64::engine::general_purpose::STANDARD.encode(&quote)
            })
        );
        assert!(document
            .attestation
            .self_check
            .as_deref()
            .unwrap_or("")
            .starts_with("structure, TDX and REPORTDATA checked"));
        // Keys generated at this boot were born with a quote over their digest.
        for birth in &document.birth {
            let record = birth.record.as_ref().expect("birth evidence");
            assert!(birth.present(), "{birth:?}");
            let Evidence::Tdx { quote } = &record.evidence else {
                panic!("not a quote: {record:?}");
            };
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(quote)
                .expect("base64");
            let birth_quote = TdQuote::parse(&bytes).expect("quote");
            assert_eq!(birth_quote.report_data, record.keys.report_data());
            assert_eq!(record.keys.boot_id, document.identity.boot_id);
        }
        // The quote was taken after the extension: it reports the extended RTMR3.
        assert_eq!(parsed.rtmr[3], rtmr::extended(&[0; 48], &digests.sha384));
        let rtmr3 = document.attestation.rtmr3.expect("rtmr3");
        assert!(rtmr3.extended && rtmr3.reason.is_none(), "{rtmr3:?}");
        let events = rtmr::read_events(&std::fs::read_to_string(s.paths.event_log()).expect("log"))
            .expect("events");
        assert_eq!(rtmr::replay(&events).expect("replays"), parsed.rtmr[3]);
        let metrics = text(&s.registry);
        assert!(
            metrics.contains("enclave_attestation_available 1"),
            "{metrics}"
        );
        assert!(
            metrics.contains("enclave_attestation_rtmr3_extended 1"),
            "{metrics}"
        );
        assert!(metrics.contains(&format!(
            "quote_sha256=\"{}\"",
            hex::encode(Sha256::digest(&quote))
        )));
        // The report entry is gone.
        assert_eq!(
            std::fs::read_dir(&s.paths.tsm_report_dir)
                .expect("dir")
                .count(),
            0
        );
    }

    #[test]
    fn a_failing_quote_is_recorded_and_leaves_no_quote_file() {
        let s = setup();
        std::fs::create_dir_all(&s.paths.tsm_report_dir).expect("configfs");
        // A quote file from an earlier boot must not survive.
        std::fs::create_dir_all(&s.paths.identity_dir).expect("dir");
        std::fs::write(s.paths.quote_file(), b"old").expect("old quote");
        let kernel = SimulatedKernel::with_fault(Fault::ConcurrentWriter);
        let v = verified();
        let published = publish(&facts(&s, &v), &s.paths, &Kernel, &s.metrics).expect("published");
        let document = attest(&kernel, published, &s.paths, &s.metrics);
        assert_eq!(document.attestation.status, AttestationStatus::Failed);
        assert_reason_contains(&document, "another process");
        assert!(!s.paths.quote_file().exists());
        assert!(text(&s.registry).contains("enclave_attestation_available 0"));
    }

    /// A self-signed order certificate whose subject is `name` = `value`, where the Super
    /// Protocol puts it.
    fn install_order_certificate(
        s: &Setup,
        name: rcgen::DnType,
        value: impl Into<rcgen::DnValue>,
    ) -> rcgen::Certificate {
        let key = rcgen::KeyPair::generate().expect("key");
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).expect("params");
        params.distinguished_name.push(name, value);
        let cert = params.self_signed(&key).expect("cert");
        std::fs::create_dir_all(s.paths.order_certificate.parent().expect("dir")).expect("mkdir");
        std::fs::write(&s.paths.order_certificate, cert.pem()).expect("write");
        cert
    }

    #[test]
    fn the_order_certificate_goes_into_the_identity() {
        let s = setup();
        let cert = install_order_certificate(&s, rcgen::DnType::CommonName, "order 42");
        let v = verified();
        let published = publish(&facts(&s, &v), &s.paths, &Kernel, &s.metrics).expect("published");
        let certificate = published
            .document
            .identity
            .order_certificate
            .expect("certificate");
        assert_eq!(
            certificate.sha256_fingerprint,
            hex::encode(Sha256::digest(cert.der()))
        );
        assert!(certificate.subject.contains("order 42"));
        assert!(text(&s.registry).contains("enclave_order_certificate_info{"));
    }

    #[test]
    fn a_long_order_certificate_subject_is_cut_in_its_metric_label() {
        let s = setup();
        install_order_certificate(&s, rcgen::DnType::OrganizationName, "o".repeat(20_000));
        let v = verified();
        publish(&facts(&s, &v), &s.paths, &Kernel, &s.metrics).expect("published");
        let metrics = text(&s.registry);
        let line = metrics
            .lines()
            .find(|l| l.starts_with("enclave_order_certificate_info{"))
            .expect("the certificate's series");
        assert!(line.len() < 600, "{} bytes: {line}", line.len());
        assert!(line.contains("ooo…"), "{line}");
    }

    #[test]
    fn damaged_keys_publish_no_identity() {
        let s = setup();
        let store = KeyStore::from_config(&s.root, &s.config);
        store.ensure_all(&[1]).expect("keys");
        std::fs::write(store.node_dir(1).join("onchain.key"), "not hex\n").expect("damage");
        let v = verified();
        assert!(publish(&facts(&s, &v), &s.paths, &Kernel, &s.metrics).is_none());
        assert!(!s.paths.identity_file().exists());
        assert!(text(&s.registry).contains("enclave_attestation_available 0"));
    }

    #[test]
    fn the_enclave_checks_its_own_quote_with_the_configured_collateral() {
        let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/dcap");
        let intel_quote = std::fs::read(fixtures.join("tdx_quote")).expect("sample quote");
        let collateral = fixtures.join("tdx_quote_collateral.json");
        let tmp = tempfile::tempdir().expect("tmp");
        let malformed = tmp.path().join("collateral.json");
        std::fs::write(&malformed, "{\"not\": \"collateral\"}").expect("write");
        let missing = tmp.path().join("absent.json");
        let simulated = crate::attestation::quote_builder::synthetic_quote(&Default::default());
        // Inside and after the sample collateral's window (tests/fixtures/dcap/SOURCE.md).
        let inside = 1_751_000_000;
        let after = 1_752_919_235;
        /// What, quote, collateral file, time, expected verdict.
        type Case<'a> = (&'a str, &'a [u8], Option<&'a Path>, u64, &'a str);
        let cases: Vec<Case> = vec![
            ("no collateral", &intel_quote, None, inside, "signatures not checked (no attestation.collateralFile)"),
            ("Intel's sample inside its window", &intel_quote, Some(&collateral), inside, "signatures verified to Intel's root with the configured collateral, TCB status UpToDate"),
            ("Intel's sample after its window", &intel_quote, Some(&collateral), after, "NOT verified"),
            ("a quote no Intel key signed", &simulated, Some(&collateral), inside, "signatures NOT verified"),
            ("an unreadable collateral file", &intel_quote, Some(&missing), inside, "signatures NOT verified: cannot read"),
            ("a malformed collateral file", &intel_quote, Some(&malformed), inside, "signatures NOT verified"),
        ];
        for (case, quote, collateral, now, expected) in cases {
            let verdict = self_check(quote, collateral, now);
            assert!(
                verdict.starts_with("structure, TDX and REPORTDATA checked; "),
                "{case}: {verdict}"
            );
            assert!(verdict.contains(expected), "{case}: {verdict}");
        }
    }
}
