//! Who may connect: the certificate verifiers of both TLS sides. There is no CA; a certificate
//! is just a carrier for the peer's Ed25519 key, which must be one of the configured peers (and,
//! for a dialer, the very peer it meant to reach). The TLS 1.3 handshake signature, checked with
//! the crypto provider's algorithms, proves the peer holds that key.

use std::collections::HashSet;
use std::fmt;
use std::sync::Arc;
use std::time::Instant;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::WebPkiSupportedAlgorithms;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{CertificateError, DigitallySignedStruct, DistinguishedName, SignatureScheme};

use super::stats::{bump, Stats};
use crate::keys::peer_id::PeerId;
use crate::net::log_summary::Line;

/// DER of an Ed25519 SubjectPublicKeyInfo up to the key: SEQUENCE { SEQUENCE { OID 1.3.101.112 },
/// BIT STRING (0 unused bits) } — RFC 8410 fixes this encoding, so anything else is not Ed25519.
const ED25519_SPKI_PREFIX: [u8; 12] = [
    0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x03, 0x21, 0x00,
];

/// Which peers are admitted right now, beyond being in the peer set: in a DON across enclaves,
/// those whose member's attestation verifies (docs/design/don-across-tees.md). Asked at every
/// handshake, so a member refused later is refused from its next connection on.
pub type Gate = Arc<dyn Fn(&PeerId) -> bool + Send + Sync>;

/// The peers allowed on this node's connections (never including the node itself).
#[derive(Clone)]
pub(crate) struct Allowed {
    set: Arc<HashSet<PeerId>>,
    gate: Option<Gate>,
}

impl Allowed {
    pub fn new(set: HashSet<PeerId>, gate: Option<Gate>) -> Self {
        Self {
            set: Arc::new(set),
            gate,
        }
    }

    fn contains(&self, peer: &PeerId) -> bool {
        self.set.contains(peer)
    }

    fn admitted(&self, peer: &PeerId) -> bool {
        self.gate.as_ref().is_none_or(|gate| gate(peer))
    }

    fn len(&self) -> usize {
        self.set.len()
    }
}

/// The Ed25519 key a certificate carries, if it parses as X.509 and its key is Ed25519.
pub(crate) fn peer_id_of(cert: &CertificateDer<'_>) -> Option<PeerId> {
    let parsed = webpki::EndEntityCert::try_from(cert).ok()?;
    let spki = parsed.subject_public_key_info();
    let key = spki.as_ref().strip_prefix(&ED25519_SPKI_PREFIX[..])?;
    let key: [u8; 32] = key.try_into().ok()?;
    Some(PeerId(key))
}

/// Whether a failed handshake was our verifier's refusal (already counted and logged there).
pub(crate) fn is_refusal(error: &std::io::Error) -> bool {
    error
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<rustls::Error>())
        .is_some_and(|e| matches!(e, rustls::Error::InvalidCertificate(_)))
}

/// Why a verifier refused a peer, per side: the summary key of its log line.
#[derive(Clone, Copy)]
enum Why {
    NoEd25519Key,
    NotInPeerSet,
    NotAdmitted,
    NotTheDialedPeer,
    BadSignature,
}

fn refusal_key(side: &'static str, why: Why) -> &'static str {
    match (side, why) {
        ("accept", Why::NoEd25519Key) => "accept: its certificate does not carry an Ed25519 key",
        ("accept", Why::NotInPeerSet) => "accept: its key is not in the peer set",
        ("accept", Why::NotAdmitted) => "accept: its member is not admitted by attestation",
        ("accept", Why::NotTheDialedPeer) => "accept: not the peer dialed",
        ("accept", Why::BadSignature) => "accept: its handshake signature does not verify",
        (_, Why::NoEd25519Key) => "dial: its certificate does not carry an Ed25519 key",
        (_, Why::NotInPeerSet) => "dial: its key is not in the peer set",
        (_, Why::NotAdmitted) => "dial: its member is not admitted by attestation",
        (_, Why::NotTheDialedPeer) => "dial: not the peer dialed",
        (_, Why::BadSignature) => "dial: its handshake signature does not verify",
    }
}

/// Writes a summary line of refusals (see [`Policy::refuse`]). The first refusal of a kind is
/// logged at once; anyone can make more, so further ones are summed up every 10 s.
pub(crate) fn write_refusal_line(line: &Line) {
    let (count, seconds) = (line.count, line.seconds());
    let latest = line.detail.as_deref().unwrap_or("");
    let (side, why) = line.reason.split_once(": ").unwrap_or(("", line.reason));
    if count == 1 {
        tracing::warn!(
            side,
            "refused a peer during the TLS handshake: {why} ({latest})"
        );
    } else {
        tracing::warn!(
            side,
            count,
            "refused {count} peers during the TLS handshake in {seconds} s: {why} (latest: {latest})"
        );
    }
}

/// The checks both sides share; counts and logs a refusal.
struct Policy {
    allowed: Allowed,
    algorithms: WebPkiSupportedAlgorithms,
    stats: Arc<Stats>,
    side: &'static str,
}

impl Policy {
    fn refuse(&self, why: Why, detail: String) {
        bump(&self.stats.handshake_refusals);
        let key = refusal_key(self.side, why);
        if let Some(line) = self.stats.log.record(key, Some(detail), Instant::now()) {
            write_refusal_line(&line);
        }
    }

    fn check_certificate(
        &self,
        cert: &CertificateDer<'_>,
        expected: Option<PeerId>,
    ) -> Result<PeerId, rustls::Error> {
        let refused =
            || rustls::Error::InvalidCertificate(CertificateError::ApplicationVerificationFailure);
        let Some(peer) = peer_id_of(cert) else {
            self.refuse(Why::NoEd25519Key, "no peer id".into());
            return Err(refused());
        };
        if !self.allowed.contains(&peer) {
            self.refuse(Why::NotInPeerSet, peer.short());
            return Err(refused());
        }
        if !self.allowed.admitted(&peer) {
            self.refuse(Why::NotAdmitted, peer.short());
            return Err(refused());
        }
        if let Some(expected) = expected {
            if peer != expected {
                self.refuse(
                    Why::NotTheDialedPeer,
                    format!("dialed {} but {} answered", expected.short(), peer.short()),
                );
                return Err(refused());
            }
        }
        Ok(peer)
    }
}

fn no_tls12() -> rustls::Error {
    rustls::Error::PeerIncompatible(rustls::PeerIncompatible::Tls12NotOffered)
}

/// Every key is Ed25519, so that is the only handshake signature we ask for or accept.
fn schemes() -> Vec<SignatureScheme> {
    vec![SignatureScheme::ED25519]
}

/// The handshake-signature half that both verifiers share: TLS 1.3 only, Ed25519 only, each
/// signature checked by the verifier's `policy`.
macro_rules! handshake_signatures {
    () => {
        fn verify_tls12_signature(
            &self,
            _message: &[u8],
            _cert: &CertificateDer<'_>,
            _dss: &DigitallySignedStruct,
        ) -> Result<HandshakeSignatureValid, rustls::Error> {
            Err(no_tls12())
        }

        fn verify_tls13_signature(
            &self,
            message: &[u8],
            cert: &CertificateDer<'_>,
            dss: &DigitallySignedStruct,
        ) -> Result<HandshakeSignatureValid, rustls::Error> {
            let policy = &self.policy;
            rustls::crypto::verify_tls13_signature(message, cert, dss, &policy.algorithms).map_err(
                |e| {
                    policy.refuse(Why::BadSignature, e.to_string());
                    // One error kind for every refusal, so callers can tell refusals from other
                    // failures.
                    rustls::Error::InvalidCertificate(CertificateError::BadSignature)
                },
            )
        }

        fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
            schemes()
        }
    };
}

/// The acceptor's check of a dialer: any allowed peer.
pub(crate) struct PeerClientVerifier {
    policy: Policy,
}

impl PeerClientVerifier {
    pub fn new(allowed: Allowed, algorithms: WebPkiSupportedAlgorithms, stats: Arc<Stats>) -> Self {
        Self {
            policy: Policy {
                allowed,
                algorithms,
                stats,
                side: "accept",
            },
        }
    }
}

impl fmt::Debug for PeerClientVerifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PeerClientVerifier({} peers)", self.policy.allowed.len())
    }
}

impl ClientCertVerifier for PeerClientVerifier {
    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &[]
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        self.policy.check_certificate(end_entity, None)?;
        Ok(ClientCertVerified::assertion())
    }

    handshake_signatures!();
}

/// The dialer's check of the acceptor: exactly the peer it dialed (an allowed one).
pub(crate) struct PeerServerVerifier {
    policy: Policy,
    expected: PeerId,
}

impl PeerServerVerifier {
    pub fn new(
        expected: PeerId,
        allowed: Allowed,
        algorithms: WebPkiSupportedAlgorithms,
        stats: Arc<Stats>,
    ) -> Self {
        Self {
            policy: Policy {
                allowed,
                algorithms,
                stats,
                side: "dial",
            },
            expected,
        }
    }
}

impl fmt::Debug for PeerServerVerifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PeerServerVerifier(expects {})", self.expected.short())
    }
}

impl ServerCertVerifier for PeerServerVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        self.policy
            .check_certificate(end_entity, Some(self.expected))?;
        Ok(ServerCertVerified::assertion())
    }

    handshake_signatures!();
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::Ordering;

    use super::*;
    use crate::node::p2p::test_keys::{id, key};
    use crate::node::p2p::tls::{provider, TlsIdentity};

    fn cert(seed: u8) -> CertificateDer<'static> {
        TlsIdentity::new(&key(seed))
            .expect("identity")
            .certificate()
            .clone()
    }

    fn allowed(seeds: &[u8]) -> Allowed {
        Allowed::new(seeds.iter().map(|s| id(*s)).collect(), None)
    }

    fn refusals(stats: &Stats) -> u64 {
        stats.handshake_refusals.load(Ordering::Relaxed)
    }

    #[test]
    fn the_peer_id_is_the_certificates_ed25519_key() {
        assert_eq!(peer_id_of(&cert(1)), Some(id(1)));
        let p256 = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).expect("p256");
        let other = rcgen::CertificateParams::new(Vec::<String>::new())
            .expect("params")
            .self_signed(&p256)
            .expect("cert");
        assert_eq!(peer_id_of(other.der()), None);
        assert_eq!(
            peer_id_of(&CertificateDer::from(b"not a certificate".to_vec())),
            None
        );
    }

    #[test]
    fn the_acceptor_admits_allowed_keys_only_and_counts_refusals() {
        let stats = Arc::new(Stats::default());
        let verifier = PeerClientVerifier::new(
            allowed(&[1, 2]),
            provider().signature_verification_algorithms,
            stats.clone(),
        );
        let now = UnixTime::now();
        assert!(verifier.verify_client_cert(&cert(1), &[], now).is_ok());
        assert!(verifier.verify_client_cert(&cert(2), &[], now).is_ok());
        assert_eq!(refusals(&stats), 0);
        let refused = verifier
            .verify_client_cert(&cert(3), &[], now)
            .expect_err("unknown key");
        assert_eq!(
            refused,
            rustls::Error::InvalidCertificate(CertificateError::ApplicationVerificationFailure)
        );
        assert_eq!(refusals(&stats), 1);
        assert!(verifier.client_auth_mandatory());
        assert_eq!(
            verifier.supported_verify_schemes(),
            vec![SignatureScheme::ED25519]
        );
    }

    #[test]
    fn a_peer_in_the_set_whose_member_is_not_admitted_is_refused_on_both_sides_while_it_is_not() {
        let admitted = Arc::new(std::sync::Mutex::new(HashSet::from([id(1)])));
        let gate: Gate = {
            let admitted = admitted.clone();
            Arc::new(move |peer: &PeerId| admitted.lock().expect("lock").contains(peer))
        };
        let allowed = Allowed::new([id(1), id(2)].into_iter().collect(), Some(gate));
        let algorithms = provider().signature_verification_algorithms;
        let stats = Arc::new(Stats::default());
        let accept = PeerClientVerifier::new(allowed.clone(), algorithms, stats.clone());
        let dial = PeerServerVerifier::new(id(2), allowed, algorithms, stats.clone());
        let name = crate::node::p2p::tls::server_name();
        let now = UnixTime::now();
        // (peer 2 admitted?, accepted?, dialed successfully?)
        for (admit, ok) in [(false, false), (true, true), (false, false)] {
            if admit {
                admitted.lock().expect("lock").insert(id(2));
            } else {
                admitted.lock().expect("lock").remove(&id(2));
            }
            assert_eq!(accept.verify_client_cert(&cert(2), &[], now).is_ok(), ok);
            assert_eq!(
                dial.verify_server_cert(&cert(2), &[], &name, &[], now)
                    .is_ok(),
                ok
            );
            assert!(accept.verify_client_cert(&cert(1), &[], now).is_ok());
        }
        assert_eq!(refusals(&stats), 4);
    }

    #[test]
    fn the_dialer_admits_only_the_peer_it_dialed() {
        let stats = Arc::new(Stats::default());
        let verifier = PeerServerVerifier::new(
            id(2),
            allowed(&[1, 2]),
            provider().signature_verification_algorithms,
            stats.clone(),
        );
        let name = crate::node::p2p::tls::server_name();
        let now = UnixTime::now();
        assert!(verifier
            .verify_server_cert(&cert(2), &[], &name, &[], now)
            .is_ok());
        // Allowed, but not who we dialed (a stale address now used by another oracle).
        assert!(verifier
            .verify_server_cert(&cert(1), &[], &name, &[], now)
            .is_err());
        assert!(verifier
            .verify_server_cert(&cert(3), &[], &name, &[], now)
            .is_err());
        assert_eq!(refusals(&stats), 2);
    }

    #[test]
    fn refusals_are_told_apart_from_other_failures() {
        let refusal = std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            rustls::Error::InvalidCertificate(CertificateError::BadSignature),
        );
        assert!(is_refusal(&refusal));
        let alert = std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            rustls::Error::AlertReceived(rustls::AlertDescription::BadCertificate),
        );
        assert!(!is_refusal(&alert));
        assert!(!is_refusal(&std::io::Error::other("reset")));
    }
}
