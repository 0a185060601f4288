//! Signed address announcements, the only thing discovery exchanges (ragedisco's layout,
//! ocr-and-sources.md A.3.3): an oracle signs where it can be reached, the bootstrap keeps the
//! newest per peer and relays it, and every receiver checks the signature itself, so the
//! bootstrap can withhold announcements but never forge or alter one.

use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};
use sha2::{Digest, Sha256};

use crate::keys::peer_id::PeerId;

const DOMAIN: &[u8] = b"announcement for chainlink peer discovery v2.0.0";
/// ragedisco's limit; more would only be a way to make every relay bigger.
pub(crate) const MAX_ADDRS: usize = 10;
/// The longest DNS name (253) plus `:65535` fits; anything longer is not an address.
const MAX_ADDR_LEN: usize = 261;
/// Discovery message kind of an announcement (the first byte of a discovery payload), so other
/// discovery messages can be added without confusing old nodes.
const KIND_ANNOUNCEMENT: u8 = 1;
const SIG_LEN: usize = 64;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum AnnouncementError {
    #[error("an announcement needs 1 to {MAX_ADDRS} addresses, got {0}")]
    AddressCount(usize),
    #[error("address {0:?} is not host:port (IPv6 in brackets, port 1-65535)")]
    Address(String),
    #[error("announcement is truncated or has trailing bytes")]
    Malformed,
    #[error("not an announcement (discovery message kind {0})")]
    Kind(u8),
    #[error("announcement from {0} which is not in the peer set")]
    UnknownPeer(String),
    #[error("announcement signature of {0} does not verify")]
    BadSignature(String),
}

/// Where a peer says it can be dialed, valid when `sig` verifies under `peer`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Announcement {
    pub addrs: Vec<String>,
    /// Higher supersedes lower; unix time in ms at the node's start, so a restarted node's
    /// announcement replaces the one of its previous run.
    pub counter: u64,
    pub peer: PeerId,
    pub sig: [u8; SIG_LEN],
}

impl Announcement {
    pub fn sign(
        key: &SigningKey,
        addrs: Vec<String>,
        counter: u64,
    ) -> Result<Self, AnnouncementError> {
        check_addresses(&addrs)?;
        let sig = key.sign(&digest(&addrs, counter)).to_bytes();
        Ok(Self {
            addrs,
            counter,
            peer: PeerId(key.verifying_key().to_bytes()),
            sig,
        })
    }

    /// Checks the form, that the peer is one we know, and the signature.
    pub fn verify(&self, known: impl Fn(&PeerId) -> bool) -> Result<(), AnnouncementError> {
        check_addresses(&self.addrs)?;
        if !known(&self.peer) {
            return Err(AnnouncementError::UnknownPeer(self.peer.short()));
        }
        let bad = || AnnouncementError::BadSignature(self.peer.short());
        let key = VerifyingKey::from_bytes(&self.peer.0).map_err(|_| bad())?;
        // Strict: no small-order keys or malleable signatures, so one announcement has one encoding.
        key.verify_strict(
            &digest(&self.addrs, self.counter),
            &Signature::from_bytes(&self.sig),
        )
        .map_err(|_| bad())
    }

    /// `kind(1) ‖ peer(32) ‖ u64_LE(counter) ‖ u32_LE(#addrs) ‖ Σ(u32_LE(len) ‖ addr) ‖ sig(64)`.
    pub fn encode(&self) -> Vec<u8> {
        let addr_bytes: usize = self.addrs.iter().map(|a| 4 + a.len()).sum();
        let mut out = Vec::with_capacity(1 + 32 + 8 + 4 + addr_bytes + SIG_LEN);
        out.push(KIND_ANNOUNCEMENT);
        out.extend_from_slice(self.peer.as_bytes());
        out.extend_from_slice(&self.counter.to_le_bytes());
        out.extend_from_slice(&(self.addrs.len() as u32).to_le_bytes());
        for addr in &self.addrs {
            out.extend_from_slice(&(addr.len() as u32).to_le_bytes());
            out.extend_from_slice(addr.as_bytes());
        }
        out.extend_from_slice(&self.sig);
        out
    }

    /// Parses [`Self::encode`]'s form; does not verify (see [`Self::verify`]).
    pub fn decode(bytes: &[u8]) -> Result<Self, AnnouncementError> {
        let mut r = Reader(bytes);
        let kind = r.take::<1>()?[0];
        if kind != KIND_ANNOUNCEMENT {
            return Err(AnnouncementError::Kind(kind));
        }
        let peer = PeerId(r.take::<32>()?);
        let counter = u64::from_le_bytes(r.take::<8>()?);
        let count = u32::from_le_bytes(r.take::<4>()?) as usize;
        if count == 0 || count > MAX_ADDRS {
            return Err(AnnouncementError::AddressCount(count));
        }
        let mut addrs = Vec::with_capacity(count);
        for _ in 0..count {
            let len = u32::from_le_bytes(r.take::<4>()?) as usize;
            if len > MAX_ADDR_LEN {
                return Err(AnnouncementError::Malformed);
            }
            let raw = r.slice(len)?;
            let addr = std::str::from_utf8(raw).map_err(|_| AnnouncementError::Malformed)?;
            addrs.push(addr.to_owned());
        }
        let sig = r.take::<SIG_LEN>()?;
        if !r.0.is_empty() {
            return Err(AnnouncementError::Malformed);
        }
        Ok(Self {
            addrs,
            counter,
            peer,
            sig,
        })
    }
}

/// `sha256(domain ‖ u32_LE(#addrs) ‖ Σ(u32_LE(len) ‖ addr) ‖ u64_LE(counter))`, ragedisco's
/// signed digest.
fn digest(addrs: &[String], counter: u64) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(DOMAIN);
    h.update((addrs.len() as u32).to_le_bytes());
    for addr in addrs {
        h.update((addr.len() as u32).to_le_bytes());
        h.update(addr.as_bytes());
    }
    h.update(counter.to_le_bytes());
    h.finalize().into()
}

fn check_addresses(addrs: &[String]) -> Result<(), AnnouncementError> {
    if addrs.is_empty() || addrs.len() > MAX_ADDRS {
        return Err(AnnouncementError::AddressCount(addrs.len()));
    }
    addrs.iter().try_for_each(|a| check_address(a))
}

/// `host:port` as `TcpStream::connect` takes it: a name or IPv4 address, or `[IPv6]`, and a
/// non-zero port.
pub(crate) fn check_address(addr: &str) -> Result<(), AnnouncementError> {
    let bad = || AnnouncementError::Address(addr.to_owned());
    if addr.len() > MAX_ADDR_LEN {
        return Err(bad());
    }
    let (host, port) = addr.rsplit_once(':').ok_or_else(bad)?;
    match port.parse::<u16>() {
        Ok(p) if p != 0 && !port.starts_with('+') => {}
        _ => return Err(bad()),
    }
    let host_ok = if let Some(inner) = host.strip_prefix('[') {
        inner
            .strip_suffix(']')
            .is_some_and(|ip| ip.parse::<std::net::Ipv6Addr>().is_ok())
    } else {
        !host.is_empty()
            && host
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-' || b == b'_')
    };
    if host_ok {
        Ok(())
    } else {
        Err(bad())
    }
}

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn slice(&mut self, n: usize) -> Result<&'a [u8], AnnouncementError> {
        if self.0.len() < n {
            return Err(AnnouncementError::Malformed);
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Ok(head)
    }

    fn take<const N: usize>(&mut self) -> Result<[u8; N], AnnouncementError> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.slice(N)?);
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::node::p2p::test_keys::{id, key};

    fn addrs() -> Vec<String> {
        vec!["127.0.0.1:9902".into(), "oracle-2.example:9902".into()]
    }

    #[test]
    fn a_signed_announcement_verifies_after_a_round_trip() {
        let ann = Announcement::sign(&key(1), addrs(), 1_700_000_000_123).expect("sign");
        assert_eq!(ann.peer, id(1));
        let decoded = Announcement::decode(&ann.encode()).expect("decode");
        assert_eq!(decoded, ann);
        assert_eq!(decoded.verify(|p| *p == id(1)), Ok(()));
    }

    #[test]
    fn the_digest_is_ragedisco_layout() {
        // Built by hand from the layout in ocr-and-sources.md A.3.3.
        let mut msg = DOMAIN.to_vec();
        msg.extend_from_slice(&[1, 0, 0, 0]);
        msg.extend_from_slice(&[9, 0, 0, 0]);
        msg.extend_from_slice(b"a.b:12345");
        msg.extend_from_slice(&7u64.to_le_bytes());
        let expected: [u8; 32] = Sha256::digest(&msg).into();
        assert_eq!(digest(&["a.b:12345".to_owned()], 7), expected);
    }

    #[test]
    fn a_tampered_address_or_counter_is_rejected() {
        let ann = Announcement::sign(&key(1), addrs(), 5).expect("sign");
        let known = |p: &PeerId| *p == id(1);

        let mut moved = ann.clone();
        moved.addrs[0] = "10.0.0.66:9902".into();
        assert!(matches!(
            moved.verify(known),
            Err(AnnouncementError::BadSignature(_))
        ));

        let mut replayed = ann.clone();
        replayed.counter += 1;
        assert!(matches!(
            replayed.verify(known),
            Err(AnnouncementError::BadSignature(_))
        ));

        let mut dropped = ann.clone();
        dropped.addrs.pop();
        assert!(matches!(
            dropped.verify(known),
            Err(AnnouncementError::BadSignature(_))
        ));

        // Someone else's signature under this peer's name.
        let mut forged = Announcement::sign(&key(2), addrs(), 5).expect("sign");
        forged.peer = id(1);
        assert!(matches!(
            forged.verify(known),
            Err(AnnouncementError::BadSignature(_))
        ));
    }

    #[test]
    fn an_unknown_peer_is_rejected_even_with_a_valid_signature() {
        let ann = Announcement::sign(&key(3), addrs(), 5).expect("sign");
        assert!(matches!(
            ann.verify(|p| *p == id(1)),
            Err(AnnouncementError::UnknownPeer(_))
        ));
    }

    #[test]
    fn malformed_encodings_are_rejected() {
        let bytes = Announcement::sign(&key(1), addrs(), 5)
            .expect("sign")
            .encode();
        for cut in 0..bytes.len() {
            assert!(Announcement::decode(&bytes[..cut]).is_err(), "cut at {cut}");
        }
        let mut trailing = bytes.clone();
        trailing.push(0);
        assert_eq!(
            Announcement::decode(&trailing),
            Err(AnnouncementError::Malformed)
        );
        let mut kind = bytes.clone();
        kind[0] = 9;
        assert_eq!(Announcement::decode(&kind), Err(AnnouncementError::Kind(9)));
        // A huge address count is refused before anything is allocated for it.
        let mut many = bytes[..41].to_vec();
        many.extend_from_slice(&u32::MAX.to_le_bytes());
        assert_eq!(
            Announcement::decode(&many),
            Err(AnnouncementError::AddressCount(u32::MAX as usize))
        );
    }

    #[test]
    fn addresses_must_be_host_and_port() {
        for ok in ["127.0.0.1:9900", "[::1]:9900", "node-2.oracle.internal:1"] {
            assert_eq!(check_address(ok), Ok(()), "{ok}");
        }
        for bad in [
            "",
            "9900",
            "host:",
            ":9900",
            "host:0",
            "host:65536",
            "host:+1",
            "::1:9900",
            "[nope]:1",
            "a b:1",
            "host:port",
        ] {
            assert!(check_address(bad).is_err(), "{bad}");
        }
        let too_many = vec!["h:1".to_owned(); MAX_ADDRS + 1];
        assert_eq!(
            Announcement::sign(&key(1), too_many, 1),
            Err(AnnouncementError::AddressCount(MAX_ADDRS + 1))
        );
        assert_eq!(
            Announcement::sign(&key(1), vec![], 1),
            Err(AnnouncementError::AddressCount(0))
        );
    }
}
