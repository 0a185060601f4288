//! OCR1 (Chainlink Off-Chain Reporting v1) primitives whose bytes must match libocr and the
//! deployed `OffchainAggregator` exactly: reports, signatures, signed observations, leader
//! selection, the deviation test, the config digest and the transmission order. Pure functions,
//! no IO. Expected values in the tests come from `vectors.py` (independent Python libraries).

pub mod config_digest;
pub mod deviation;
pub mod int192;
pub mod leader;
pub mod observation;
pub mod permutation;
pub mod report;
pub mod shared_secret;
pub mod signature;
pub mod types;
