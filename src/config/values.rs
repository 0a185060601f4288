//! Value types shared by several configuration sections: URLs that may carry credentials,
//! EVM addresses, and the checks that read them from JSON.

use std::fmt;
use std::str::FromStr;

use sha3::{Digest, Keccak256};
use url::Url;

use super::reader::Report;

/// A URL whose printed form hides what may be secret: the user-info (`user:pass@`) and the query
/// string (API keys travel there). Use [`RedactedUrl::expose`] to connect.
#[derive(Clone, PartialEq, Eq)]
pub struct RedactedUrl(Url);

impl RedactedUrl {
    pub fn expose(&self) -> &Url {
        &self.0
    }

    pub fn scheme(&self) -> &str {
        self.0.scheme()
    }

    pub fn path(&self) -> &str {
        self.0.path()
    }
}

impl fmt::Display for RedactedUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let u = &self.0;
        write!(f, "{}://", u.scheme())?;
        if !u.username().is_empty() || u.password().is_some() {
            f.write_str("***@")?;
        }
        if let Some(host) = u.host_str() {
            f.write_str(host)?;
        }
        if let Some(port) = u.port() {
            write!(f, ":{port}")?;
        }
        f.write_str(u.path())?;
        if u.query().is_some() {
            f.write_str("?***")?;
        }
        Ok(())
    }
}

impl fmt::Debug for RedactedUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "\"{self}\"")
    }
}

/// Parses an absolute URL with one of `schemes` and a host. The message never repeats the text,
/// which may hold credentials.
pub fn url(r: &mut Report, path: &str, text: &str, schemes: &[&str]) -> Option<RedactedUrl> {
    let expected = schemes.join(" or ");
    match Url::parse(text.trim()) {
        Ok(u) if schemes.contains(&u.scheme()) && u.host_str().is_some_and(|h| !h.is_empty()) => {
            Some(RedactedUrl(u))
        }
        Ok(u) if !schemes.contains(&u.scheme()) => {
            r.error(
                path,
                format!("must be a {expected} URL, not {}", u.scheme()),
            );
            None
        }
        _ => {
            r.error(path, format!("must be a valid {expected} URL with a host"));
            None
        }
    }
}

/// A 20-byte EVM account or contract address.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct EvmAddress(pub [u8; 20]);

#[derive(Debug, PartialEq, Eq)]
pub enum AddressError {
    Format,
    Checksum,
}

impl fmt::Display for AddressError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Format => f.write_str("must be 0x followed by 40 hex digits"),
            Self::Checksum => f.write_str(
                "mixed-case address fails its EIP-55 checksum (a typo?); write it in one case to skip the check",
            ),
        }
    }
}

impl FromStr for EvmAddress {
    type Err = AddressError;

    /// Mixed-case input must carry a valid EIP-55 checksum, so that a mistyped contract address is
    /// caught here rather than on chain.
    fn from_str(s: &str) -> Result<Self, AddressError> {
        let hex_part = s
            .strip_prefix("0x")
            .filter(|h| h.len() == 40 && h.bytes().all(|b| b.is_ascii_hexdigit()))
            .ok_or(AddressError::Format)?;
        let mut bytes = [0u8; 20];
        hex::decode_to_slice(hex_part, &mut bytes).map_err(|_| AddressError::Format)?;
        let address = EvmAddress(bytes);
        let has_upper = hex_part.bytes().any(|b| b.is_ascii_uppercase());
        let has_lower = hex_part.bytes().any(|b| b.is_ascii_lowercase());
        if has_upper && has_lower && address.to_checksummed() != s {
            return Err(AddressError::Checksum);
        }
        Ok(address)
    }
}

impl EvmAddress {
    /// The EIP-55 mixed-case form.
    pub fn to_checksummed(&self) -> String {
        let lower = hex::encode(self.0);
        let hash = Keccak256::digest(lower.as_bytes());
        let mut out = String::with_capacity(42);
        out.push_str("0x");
        for (i, c) in lower.chars().enumerate() {
            let nibble = (hash[i / 2] >> (if i % 2 == 0 { 4 } else { 0 })) & 0x0f;
            if c.is_ascii_alphabetic() && nibble >= 8 {
                out.push(c.to_ascii_uppercase());
            } else {
                out.push(c);
            }
        }
        out
    }
}

impl fmt::Display for EvmAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_checksummed())
    }
}

impl fmt::Debug for EvmAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_checksummed())
    }
}

pub fn evm_address(r: &mut Report, path: &str, text: &str) -> Option<EvmAddress> {
    match text.parse() {
        Ok(a) => Some(a),
        Err(e) => {
            r.error(path, e.to_string());
            None
        }
    }
}

/// Whether `s` is 1..=`max` characters from `[A-Za-z0-9]` and `extra`.
pub fn is_token(s: &str, max: usize, extra: &[char]) -> bool {
    !s.is_empty()
        && s.chars().count() <= max
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || extra.contains(&c))
}

/// A Prometheus label name: `[a-zA-Z_][a-zA-Z0-9_]*`, not reserved (`__` prefix).
pub fn is_label_name(s: &str) -> bool {
    let mut chars = s.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
        && !s.starts_with("__")
}

/// A secp256k1 private key written as 64 hex digits (optionally `0x`-prefixed), as the
/// reference's `faucetPrivateKey` is: parsed once here so that a key the chain would refuse
/// (zero, or beyond the curve order) is a configuration error, not a failure at first use.
/// The message never contains the key.
pub fn secp256k1_private_key(text: &str) -> Result<k256::ecdsa::SigningKey, &'static str> {
    let trimmed = text.trim();
    let hex_part = trimmed.strip_prefix("0x").unwrap_or(trimmed);
    if hex_part.len() != 64 || !hex_part.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err("must be 64 hex digits (optionally 0x-prefixed)");
    }
    let bytes =
        hex::decode(hex_part).map_err(|_| "must be 64 hex digits (optionally 0x-prefixed)")?;
    k256::ecdsa::SigningKey::from_slice(&bytes)
        .map_err(|_| "is not a valid secp256k1 private key (zero or not below the curve order)")
}

/// Reads `field` as a secp256k1 private key into a secret, reporting a bad one at its path.
pub fn secp256k1_key_field(
    r: &mut Report,
    f: &mut crate::config::reader::Fields<'_>,
    field: &str,
) -> Option<crate::config::secret::Secret<String>> {
    let text = f.string(r, field)?;
    match secp256k1_private_key(text) {
        Ok(_) => {
            let trimmed = text.trim();
            let hex_part = trimmed.strip_prefix("0x").unwrap_or(trimmed);
            Some(crate::config::secret::Secret::new(hex_part.to_owned()))
        }
        Err(message) => {
            r.error(f.path_of(field), message);
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_print_without_credentials_or_query() {
        let mut r = Report::default();
        let u = url(
            &mut r,
            "p",
            "https://user:pa55word@proxy.example.com:8080/x?access_key=SECRETKEY",
            &["https"],
        )
        .expect("valid");
        let shown = format!("{u} {u:?}");
        assert!(
            !shown.contains("pa55word") && !shown.contains("user") && !shown.contains("SECRETKEY")
        );
        assert!(shown.contains("proxy.example.com:8080/x"));
    }

    #[test]
    fn url_errors_do_not_repeat_the_text() {
        let mut r = Report::default();
        assert!(url(&mut r, "p", "ftp://u:topsecret@h/", &["http", "https"]).is_none());
        assert!(url(&mut r, "p", "not a url topsecret", &["http", "https"]).is_none());
        assert_eq!(r.problems.len(), 2);
        assert!(r.problems.iter().all(|p| !p.message.contains("topsecret")));
    }

    #[test]
    fn addresses_are_checked_with_eip55() {
        let good = "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed";
        assert_eq!(good.parse::<EvmAddress>().unwrap().to_string(), good);
        assert!(good.to_lowercase().parse::<EvmAddress>().is_ok());
        assert_eq!(
            "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAeD".parse::<EvmAddress>(),
            Err(AddressError::Checksum)
        );
        assert_eq!("0x1234".parse::<EvmAddress>(), Err(AddressError::Format));
        assert_eq!(
            "5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed".parse::<EvmAddress>(),
            Err(AddressError::Format)
        );
    }

    #[test]
    fn label_names_follow_prometheus() {
        assert!(is_label_name("service"));
        assert!(is_label_name("_x1"));
        assert!(!is_label_name("1x"));
        assert!(!is_label_name("__name__"));
        assert!(!is_label_name("a-b"));
    }
}
