//! `enclave verify-identity IDENTITY.json [--quote FILE] [--event-log FILE] [--config FILE
//! --public-key-file FILE]`: what a third party runs on what an enclave published.

use std::path::Path;

use anyhow::Context;

use super::config_cmd::public_key;
use super::KeyArgs;
use crate::attestation::verify::{verify, Evidence};
use crate::config::read_document;
use crate::exit;

/// A quote is a few KiB and an event log a few lines per boot; anything this large is not one.
const MAX_INPUT_BYTES: u64 = 16 * 1024 * 1024;

fn read_bounded(path: &Path, what: &str) -> anyhow::Result<Vec<u8>> {
    use std::io::Read as _;
    let file = std::fs::File::open(path)
        .with_context(|| format!("cannot read the {what} {}", path.display()))?;
    let mut bytes = Vec::new();
    file.take(MAX_INPUT_BYTES + 1)
        .read_to_end(&mut bytes)
        .with_context(|| format!("cannot read the {what} {}", path.display()))?;
    anyhow::ensure!(
        bytes.len() as u64 <= MAX_INPUT_BYTES,
        "the {what} {} is larger than {MAX_INPUT_BYTES} bytes",
        path.display()
    );
    Ok(bytes)
}

pub fn run(
    config: Option<&Path>,
    identity: &Path,
    quote: Option<&Path>,
    event_log: Option<&Path>,
    key: &KeyArgs,
) -> anyhow::Result<u8> {
    let text = String::from_utf8(read_bounded(identity, "identity document")?)
        .with_context(|| format!("{} is not UTF-8 text", identity.display()))?;
    let quote = quote.map(|p| read_bounded(p, "quote")).transpose()?;
    let event_log = event_log
        .map(|p| {
            read_bounded(p, "event log").and_then(|b| {
                String::from_utf8(b).with_context(|| format!("{} is not UTF-8 text", p.display()))
            })
        })
        .transpose()?;
    let configuration = config.map(read_document).transpose()?;
    let public_key = public_key(key, None)?;
    let report = verify(
        &text,
        &Evidence {
            quote: quote.as_deref(),
            configuration: configuration.as_ref(),
            public_key: public_key.as_ref(),
            event_log: event_log.as_deref(),
        },
    );
    for check in &report.checks {
        println!("{check}");
    }
    if report.verified() {
        println!(
            "identity verified: {} checks passed, none failed",
            report.passes()
        );
        Ok(exit::OK)
    } else {
        println!(
            "identity NOT verified: {} of {} checks failed",
            report.failures(),
            report.failures() + report.passes()
        );
        Ok(exit::FAILURE)
    }
}
