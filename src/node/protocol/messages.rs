//! The OCR1 protocol messages (ocr-and-sources.md A.1.4) and their wire form.
//!
//! Only Rust nodes talk to each other, so the wire form is ours (JSON, one message per frame);
//! what reaches the chain (report bytes, signatures) is bit-exact OCR1. Protocol messages are not
//! signed themselves: the sender is the authenticated TLS peer (A.3.4). Observations and reports
//! carry the signatures that stop a leader from forging or altering them.

use alloy_primitives::aliases::I192;
use serde::{Deserialize, Serialize};

use crate::node::ocr1::types::ConfigDigest;

/// An observation with its observer's Ed25519 signature over (digest, epoch, round, value).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignedObservation {
    #[serde(with = "int192_text")]
    pub value: I192,
    #[serde(with = "hex_bytes")]
    pub signature: [u8; 64],
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AttributedSignedObservation {
    pub observation: SignedObservation,
    pub observer: u8,
}

/// An observation as it appears in the report: value and observer index.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ReportObservation {
    #[serde(with = "int192_text")]
    pub value: I192,
    pub observer: u8,
}

/// One follower's secp256k1 signature (r ‖ s ‖ v, v ∈ {0,1}) over keccak256(report).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AttestedReportOne {
    pub observations: Vec<ReportObservation>,
    #[serde(with = "hex_bytes")]
    pub signature: [u8; 65],
}

/// A report with more than f signatures: what FINAL and FINAL-ECHO carry, and what is transmitted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AttestedReportMany {
    pub observations: Vec<ReportObservation>,
    #[serde(with = "hex_list")]
    pub signatures: Vec<[u8; 65]>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "kebab-case", deny_unknown_fields)]
pub enum Message {
    NewEpoch {
        epoch: u32,
    },
    ObserveReq {
        epoch: u32,
        round: u8,
    },
    Observe {
        epoch: u32,
        round: u8,
        observation: SignedObservation,
    },
    ReportReq {
        epoch: u32,
        round: u8,
        observations: Vec<AttributedSignedObservation>,
    },
    Report {
        epoch: u32,
        round: u8,
        report: AttestedReportOne,
    },
    Final {
        epoch: u32,
        round: u8,
        report: AttestedReportMany,
    },
    FinalEcho {
        epoch: u32,
        round: u8,
        report: AttestedReportMany,
    },
}

impl Message {
    pub fn kind(&self) -> &'static str {
        match self {
            Message::NewEpoch { .. } => "newepoch",
            Message::ObserveReq { .. } => "observe-req",
            Message::Observe { .. } => "observe",
            Message::ReportReq { .. } => "report-req",
            Message::Report { .. } => "report",
            Message::Final { .. } => "final",
            Message::FinalEcho { .. } => "final-echo",
        }
    }
}

/// A message for one feed's protocol instance: instances share the connections and are told
/// apart by their config digest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Envelope {
    pub digest: ConfigDigest,
    pub message: Message,
}

#[derive(Debug, thiserror::Error)]
#[error("undecodable protocol message: {0}")]
pub struct DecodeError(#[from] serde_json::Error);

impl Envelope {
    pub fn encode(&self) -> Vec<u8> {
        // Serialising plain data into a Vec cannot fail.
        serde_json::to_vec(self).unwrap_or_default()
    }

    pub fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        Ok(serde_json::from_slice(bytes)?)
    }
}

mod int192_text {
    use alloy_primitives::aliases::I192;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(v: &I192, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(v)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<I192, D::Error> {
        let text = <&str>::deserialize(d)?;
        // Only plain decimal: the hex forms FromStr also takes would give one value two spellings.
        if text.is_empty()
            || !text
                .trim_start_matches('-')
                .bytes()
                .all(|b| b.is_ascii_digit())
        {
            return Err(serde::de::Error::custom("int192 must be a decimal integer"));
        }
        I192::from_dec_str(text).map_err(serde::de::Error::custom)
    }
}

mod hex_bytes {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer, const N: usize>(v: &[u8; N], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&hex::encode(v))
    }

    pub fn deserialize<'de, D: Deserializer<'de>, const N: usize>(
        d: D,
    ) -> Result<[u8; N], D::Error> {
        let text = <&str>::deserialize(d)?;
        let mut out = [0u8; N];
        hex::decode_to_slice(text, &mut out).map_err(serde::de::Error::custom)?;
        Ok(out)
    }
}

mod hex_list {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(v: &[[u8; 65]], s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(v.iter().map(hex::encode))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<[u8; 65]>, D::Error> {
        let items = Vec::<&str>::deserialize(d)?;
        items
            .into_iter()
            .map(|text| {
                let mut out = [0u8; 65];
                hex::decode_to_slice(text, &mut out).map_err(serde::de::Error::custom)?;
                Ok(out)
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn digest() -> ConfigDigest {
        ConfigDigest([0xab; 16])
    }

    #[test]
    fn every_message_survives_the_wire() {
        let obs = SignedObservation {
            value: I192::try_from(-12345i64).unwrap(),
            signature: [7u8; 64],
        };
        let report = AttestedReportMany {
            observations: vec![ReportObservation {
                value: I192::MAX,
                observer: 3,
            }],
            signatures: vec![[1u8; 65], [2u8; 65]],
        };
        let messages = vec![
            Message::NewEpoch { epoch: u32::MAX },
            Message::ObserveReq { epoch: 1, round: 2 },
            Message::Observe {
                epoch: 1,
                round: 2,
                observation: obs.clone(),
            },
            Message::ReportReq {
                epoch: 1,
                round: 2,
                observations: vec![AttributedSignedObservation {
                    observation: obs,
                    observer: 0,
                }],
            },
            Message::Report {
                epoch: 1,
                round: 2,
                report: AttestedReportOne {
                    observations: report.observations.clone(),
                    signature: [9u8; 65],
                },
            },
            Message::Final {
                epoch: 1,
                round: 2,
                report: report.clone(),
            },
            Message::FinalEcho {
                epoch: 1,
                round: 2,
                report,
            },
        ];
        for message in messages {
            let envelope = Envelope {
                digest: digest(),
                message,
            };
            let bytes = envelope.encode();
            assert_eq!(Envelope::decode(&bytes).unwrap(), envelope);
        }
    }

    #[test]
    fn malformed_messages_are_refused() {
        for bad in [
            r#"{"digest":"abababababababababababababababab","message":{"type":"nope"}}"#,
            r#"{"digest":"abababababababababababababababab","message":{"type":"new-epoch","epoch":-1}}"#,
            r#"{"digest":"abababababababababababababababab","message":{"type":"observe-req","epoch":1,"round":256}}"#,
            r#"{"digest":"abababababababababababababababab","message":{"type":"observe","epoch":1,"round":1,"observation":{"value":"0x10","signature":"00"}}}"#,
            r#"{"digest":"abababababababababababababababab","message":{"type":"new-epoch","epoch":1,"extra":1}}"#,
            "garbage",
        ] {
            assert!(Envelope::decode(bad.as_bytes()).is_err(), "{bad}");
        }
    }

    #[test]
    fn int192_bounds_are_enforced_on_the_wire() {
        let too_big = format!(
            r#"{{"value":"{}0","signature":"{}"}}"#,
            I192::MAX,
            "00".repeat(64)
        );
        assert!(serde_json::from_str::<SignedObservation>(&too_big).is_err());
    }
}
