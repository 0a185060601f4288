//! The OCR1 protocol (ocr-and-sources.md A.1): one instance per feed, as pure state machines,
//! and the rollback [`fence`] that keeps an instance from signing a round it may have signed before.

pub mod config;
pub mod fence;
pub mod instance;
pub mod messages;
pub mod pacemaker;
pub mod verify;

#[cfg(test)]
mod simulation;
