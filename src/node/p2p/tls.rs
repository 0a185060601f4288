//! The node's TLS side: an ephemeral self-signed certificate for its Ed25519 key and the rustls
//! configurations of both roles (TLS 1.3 only, ring provider, mutual authentication by the
//! verifiers in `verifier.rs`, no session resumption).

use std::sync::Arc;

use ed25519_dalek::pkcs8::EncodePrivateKey;
use ed25519_dalek::SigningKey;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName};
use rustls::{ClientConfig, ServerConfig};

use super::error::P2pError;
use super::stats::Stats;
use super::verifier::{Allowed, PeerClientVerifier, PeerServerVerifier};
use crate::keys::peer_id::PeerId;

/// Peers are identified by key, not by name; this name only fills the mandatory field.
const SERVER_NAME: &str = "enclave-p2p";

/// The certificate and key a node presents on every connection.
pub(crate) struct TlsIdentity {
    chain: Vec<CertificateDer<'static>>,
    key: PrivatePkcs8KeyDer<'static>,
}

impl TlsIdentity {
    /// A fresh self-signed certificate on each start: nothing checks validity dates or issuers,
    /// only the key, so there is nothing to persist or rotate.
    pub fn new(key: &SigningKey) -> Result<Self, P2pError> {
        let cert_error = |e: &dyn std::fmt::Display| P2pError::Certificate(e.to_string());
        let pkcs8 = key.to_pkcs8_der().map_err(|e| cert_error(&e))?;
        let pkcs8 = PrivatePkcs8KeyDer::from(pkcs8.as_bytes().to_vec());
        let key_pair = rcgen::KeyPair::from_pkcs8_der_and_sign_algo(&pkcs8, &rcgen::PKCS_ED25519)
            .map_err(|e| cert_error(&e))?;
        let mut params =
            rcgen::CertificateParams::new(Vec::<String>::new()).map_err(|e| cert_error(&e))?;
        let peer = PeerId(key.verifying_key().to_bytes());
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, peer.to_string());
        let cert = params.self_signed(&key_pair).map_err(|e| cert_error(&e))?;
        Ok(Self {
            chain: vec![cert.der().clone()],
            key: pkcs8,
        })
    }

    fn key(&self) -> PrivateKeyDer<'static> {
        PrivateKeyDer::Pkcs8(self.key.clone_key())
    }

    #[cfg(test)]
    pub fn certificate(&self) -> &CertificateDer<'static> {
        &self.chain[0]
    }
}

pub(crate) fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

pub(crate) fn server_name() -> ServerName<'static> {
    ServerName::DnsName(
        rustls::pki_types::DnsName::try_from(SERVER_NAME)
            .expect("a constant, valid DNS name")
            .to_owned(),
    )
}

/// What the acceptor uses: any allowed peer may dial in.
pub(crate) fn server_config(
    identity: &TlsIdentity,
    allowed: Allowed,
    stats: Arc<Stats>,
) -> Result<Arc<ServerConfig>, P2pError> {
    let provider = provider();
    let verifier =
        PeerClientVerifier::new(allowed, provider.signature_verification_algorithms, stats);
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .with_client_cert_verifier(Arc::new(verifier))
        .with_single_cert(identity.chain.clone(), identity.key())?;
    // A resumed session would skip the certificate check; connections are long-lived anyway.
    config.session_storage = Arc::new(rustls::server::NoServerSessionStorage {});
    config.send_tls13_tickets = 0;
    Ok(Arc::new(config))
}

/// What a dialer of `expected` uses: only that peer's key is accepted.
pub(crate) fn client_config(
    identity: &TlsIdentity,
    expected: PeerId,
    allowed: Allowed,
    stats: Arc<Stats>,
) -> Result<Arc<ClientConfig>, P2pError> {
    let provider = provider();
    let verifier = PeerServerVerifier::new(
        expected,
        allowed,
        provider.signature_verification_algorithms,
        stats,
    );
    let mut config = ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(verifier))
        .with_client_auth_cert(identity.chain.clone(), identity.key())?;
    config.resumption = rustls::client::Resumption::disabled();
    // The name means nothing here, so do not send it in clear.
    config.enable_sni = false;
    Ok(Arc::new(config))
}

#[cfg(test)]
mod tests {
    //! Real TLS handshakes over an in-memory pipe: the verifiers' decisions as a peer sees them,
    //! including the handshake-signature check.

    use std::sync::atomic::Ordering;

    use rustls::client::ResolvesClientCert;
    use rustls::sign::CertifiedKey;
    use rustls::SignatureScheme;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio_rustls::{TlsAcceptor, TlsConnector};

    use super::*;
    use crate::node::p2p::test_keys::{id, key};
    use crate::node::p2p::verifier::{is_refusal, PeerServerVerifier};

    fn allowed(seeds: &[u8]) -> Allowed {
        Allowed::new(seeds.iter().map(|s| id(*s)).collect(), None)
    }

    struct Outcome {
        /// The client's PeerId as the server saw it, or the server's error.
        server: std::io::Result<PeerId>,
        /// Whether the client got the server's first byte (i.e. was accepted).
        client: std::io::Result<()>,
        server_stats: Arc<Stats>,
        client_stats: Arc<Stats>,
    }

    async fn handshake(
        server_seed: u8,
        server_allows: &[u8],
        client: Arc<ClientConfig>,
    ) -> Outcome {
        handshake_with(
            server_seed,
            server_allows,
            client,
            Arc::new(Stats::default()),
        )
        .await
    }

    async fn handshake_with(
        server_seed: u8,
        server_allows: &[u8],
        client: Arc<ClientConfig>,
        client_stats: Arc<Stats>,
    ) -> Outcome {
        let server_stats = Arc::new(Stats::default());
        let server_identity = TlsIdentity::new(&key(server_seed)).expect("identity");
        let server_config = server_config(
            &server_identity,
            allowed(server_allows),
            server_stats.clone(),
        )
        .expect("server config");
        let (a, b) = tokio::io::duplex(64 * 1024);
        let server = async move {
            let mut tls = TlsAcceptor::from(server_config).accept(a).await?;
            let peer = tls
                .get_ref()
                .1
                .peer_certificates()
                .and_then(|c| c.first())
                .and_then(crate::node::p2p::verifier::peer_id_of)
                .ok_or_else(|| std::io::Error::other("no peer certificate"))?;
            tls.write_all(b"!").await?;
            tls.flush().await?;
            Ok(peer)
        };
        let client = async move {
            let mut tls = TlsConnector::from(client).connect(server_name(), b).await?;
            let mut byte = [0u8; 1];
            tls.read_exact(&mut byte).await?;
            Ok(())
        };
        let (server, client) = tokio::join!(server, client);
        Outcome {
            server,
            client,
            server_stats,
            client_stats,
        }
    }

    fn client(seed: u8, expected: u8, allows: &[u8], stats: Arc<Stats>) -> Arc<ClientConfig> {
        let identity = TlsIdentity::new(&key(seed)).expect("identity");
        client_config(&identity, id(expected), allowed(allows), stats).expect("client config")
    }

    fn refusals(stats: &Stats) -> u64 {
        stats.handshake_refusals.load(Ordering::Relaxed)
    }

    #[tokio::test]
    async fn allowed_peers_authenticate_each_other() {
        let stats = Arc::new(Stats::default());
        let out = handshake_with(2, &[1, 2], client(1, 2, &[1, 2], stats.clone()), stats).await;
        assert_eq!(out.server.expect("server"), id(1));
        out.client.expect("client accepted");
        assert_eq!(refusals(&out.server_stats) + refusals(&out.client_stats), 0);
    }

    #[tokio::test]
    async fn an_unknown_dialer_is_refused_during_the_handshake() {
        let out = handshake(
            2,
            &[1, 2],
            client(9, 2, &[1, 2], Arc::new(Stats::default())),
        )
        .await;
        let error = out.server.expect_err("refused");
        assert!(is_refusal(&error), "{error}");
        assert_eq!(refusals(&out.server_stats), 1);
        // The dialer finishes its side of TLS 1.3 first, then learns of the refusal.
        assert!(out.client.is_err());
    }

    #[tokio::test]
    async fn a_dialer_refuses_an_acceptor_that_is_not_the_peer_it_dialed() {
        let stats = Arc::new(Stats::default());
        // Peer 3 is allowed, but the dialer meant to reach peer 2.
        let out = handshake_with(
            3,
            &[1, 2, 3],
            client(1, 2, &[1, 2, 3], stats.clone()),
            stats,
        )
        .await;
        let error = out.client.expect_err("refused");
        assert!(is_refusal(&error), "{error}");
        assert_eq!(refusals(&out.client_stats), 1);
        assert!(out.server.is_err());
    }

    /// Presents one key's certificate but signs with another key.
    #[derive(Debug)]
    struct StolenCertificate(Arc<CertifiedKey>);

    impl ResolvesClientCert for StolenCertificate {
        fn resolve(&self, _: &[&[u8]], _: &[SignatureScheme]) -> Option<Arc<CertifiedKey>> {
            Some(self.0.clone())
        }

        fn has_certs(&self) -> bool {
            true
        }
    }

    #[tokio::test]
    async fn a_copied_certificate_without_its_key_fails_the_signature_check() {
        let victim = TlsIdentity::new(&key(1)).expect("identity");
        let thief = TlsIdentity::new(&key(9)).expect("identity");
        let thief_key = rustls::crypto::ring::sign::any_eddsa_type(&thief.key).expect("key");
        let stolen = CertifiedKey::new(victim.chain.clone(), thief_key);
        let stats = Arc::new(Stats::default());
        let verifier = PeerServerVerifier::new(
            id(2),
            allowed(&[1, 2]),
            provider().signature_verification_algorithms,
            stats,
        );
        let config = ClientConfig::builder_with_provider(provider())
            .with_protocol_versions(&[&rustls::version::TLS13])
            .expect("versions")
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(verifier))
            .with_client_cert_resolver(Arc::new(StolenCertificate(Arc::new(stolen))));
        let out = handshake(2, &[1, 2], Arc::new(config)).await;
        let error = out.server.expect_err("refused");
        assert!(is_refusal(&error), "{error}");
        assert_eq!(refusals(&out.server_stats), 1);
        assert!(out.client.is_err());
    }
}
