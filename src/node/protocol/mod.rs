//! The OCR1 protocol (ocr-and-sources.md A.1): one instance per feed, as pure state machines.

pub mod config;
pub mod instance;
pub mod messages;
pub mod pacemaker;
pub mod verify;

#[cfg(test)]
mod simulation;
