//! Intel DCAP quote verification, offline: the verifier ([`verifier::verify_quote`], a pure
//! function of quote, collateral, time and policy, built on the `dcap-qvl` crate), the policy
//! it applies ([`policy`]), the collateral file ([`collateral`]) and the client that fetches
//! collateral from a PCCS or Intel's PCS ([`pccs`]; the only part that does I/O).
//!
//! `enclave quote verify`, `enclave verify-identity --collateral` and `enclave attestation
//! collateral fetch` (which checks what it fetched) all go through [`verifier::verify_quote`].

pub mod collateral;
pub mod facts;
pub mod pccs;

pub mod policy;
pub mod verifier;

pub use policy::{PlatformFlag, QuotePolicy, Refusal};
pub use verifier::{verify_quote, QuoteFacts, Rejected, Verified};

#[cfg(test)]
mod tests;
