//! The identity and attestation metrics, in the supervisor's registry (so they are pushed with
//! its other metrics and reach dashboards).

use prometheus::{IntGauge, IntGaugeVec, Opts, Registry};

use super::identity::{Identity, IdentityDigests};
use crate::telemetry::register;

/// Labels of `enclave_identity_info`, one series per node.
const IDENTITY_LABELS: [&str; 14] = [
    "identity_sha512",
    "boot_id",
    "config_digest",
    "config_scheme",
    "version",
    "git_revision",
    "image_digest",
    "binary_sha256",
    "node",
    "role",
    "peer_id",
    "offchain_public_key",
    "onchain_signing_address",
    "transmitter_address",
];

#[derive(Clone)]
pub struct AttestationMetrics {
    identity: IntGaugeVec,
    available: IntGauge,
    quote: IntGaugeVec,
    rtmr3: IntGauge,
    order_certificate: IntGaugeVec,
    provider: IntGaugeVec,
    insecure: IntGauge,
    birth: IntGaugeVec,
}

impl AttestationMetrics {
    pub fn register(registry: &Registry) -> Result<Self, prometheus::Error> {
        let m = Self {
            identity: register(registry, IntGaugeVec::new(
                Opts::new(
                    "enclave_identity_info",
                    "The enclave's identity (value 1), one series per node: the digest a quote binds, \
                     the configuration, the software and the node's public keys.",
                ),
                &IDENTITY_LABELS,
            )?)?,
            available: register(registry, IntGauge::new(
                "enclave_attestation_available",
                "1 when evidence (a TDX quote, an order certificate's signature, or simulated evidence) binds this boot's identity, 0 when there is none (no provider, or it failed).",
            )?)?,
            quote: register(registry, IntGaugeVec::new(
                Opts::new(
                    "enclave_attestation_quote_info",
                    "The TDX quote of this boot (value 1): its SHA-256 and the REPORTDATA it carries.",
                ),
                &["quote_sha256", "identity_sha512"],
            )?)?,
            rtmr3: register(registry, IntGauge::new(
                "enclave_attestation_rtmr3_extended",
                "1 when RTMR3 was extended with this boot's identity.",
            )?)?,
            order_certificate: register(registry, IntGaugeVec::new(
                Opts::new(
                    "enclave_order_certificate_info",
                    "The Super Protocol order certificate (value 1): its SHA-256 fingerprint and subject.",
                ),
                &["sha256_fingerprint", "subject"],
            )?)?,
            provider: register(registry, IntGaugeVec::new(
                Opts::new(
                    "enclave_attestation_provider_info",
                    "The evidence provider of this boot (value 1): tdx, superprotocol, simulated or none.",
                ),
                &["provider"],
            )?)?,
            insecure: register(registry, IntGauge::new(
                "enclave_attestation_insecure",
                "1 when the evidence proves nothing (the simulated provider, for development chains only).",
            )?)?,
            birth: register(registry, IntGaugeVec::new(
                Opts::new(
                    "enclave_key_birth_evidence",
                    "Per node: 1 when its keys have birth evidence (taken when they were generated), 0 when not.",
                ),
                &["node"],
            )?)?,
        };
        Ok(m)
    }

    pub fn identity(&self, identity: &Identity, digests: &IdentityDigests) {
        let sha512 = hex::encode(digests.sha512);
        let image = identity.software.image_digest.clone().unwrap_or_default();
        let binary = identity.software.binary_sha256.clone().unwrap_or_default();
        for node in &identity.nodes {
            let number = node.node.to_string();
            self.identity
                .with_label_values(&[
                    sha512.as_str(),
                    &identity.boot_id,
                    &identity.configuration.digest,
                    &identity.configuration.scheme,
                    &identity.software.version,
                    &identity.software.git_revision,
                    &image,
                    &binary,
                    &number,
                    &node.role,
                    &node.peer_id,
                    &node.offchain_public_key,
                    &node.onchain_signing_address,
                    &node.transmitter_address,
                ])
                .set(1);
        }
        if let Some(certificate) = &identity.order_certificate {
            self.order_certificate
                // The subject is whatever the certificate file says, up to its 1 MiB.
                .with_label_values(&[
                    certificate.sha256_fingerprint.as_str(),
                    &crate::telemetry::sample::bounded(&certificate.subject),
                ])
                .set(1);
        }
    }

    pub fn quoted(&self, quote_sha256: &str, identity_sha512: &str) {
        self.quote
            .with_label_values(&[quote_sha256, identity_sha512])
            .set(1);
        self.available.set(1);
    }

    pub fn unavailable(&self) {
        self.available.set(0);
    }

    /// The provider's name is one of four constants, never input.
    pub fn provider(&self, name: &str, insecure: bool) {
        self.provider.reset();
        self.provider.with_label_values(&[name]).set(1);
        self.insecure.set(i64::from(insecure));
    }

    pub fn birth(&self, births: &[super::birth::NodeBirth]) {
        for birth in births {
            self.birth
                .with_label_values(&[birth.node.to_string().as_str()])
                .set(i64::from(birth.present()));
        }
    }

    /// Evidence other than a quote (an order certificate's signature, simulated evidence)
    /// binds this boot's identity.
    pub fn evidenced(&self) {
        self.available.set(1);
    }

    pub fn rtmr3_extended(&self, extended: bool) {
        self.rtmr3.set(i64::from(extended));
    }
}
