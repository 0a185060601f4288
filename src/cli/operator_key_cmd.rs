//! `enclave operator-key --out FILE`: a new operator key for a member of a DON across enclaves.

use std::io::Write as _;
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::Path;

use anyhow::Context as _;

use crate::attestation::member_key::OperatorKey;
use crate::exit;
use crate::logging::Untrusted;

pub fn run(out: &Path) -> anyhow::Result<u8> {
    let key = OperatorKey::generate();
    // create_new: an operator key that already names a member must never be replaced by accident.
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(out)
        .with_context(|| format!("cannot create {}", Untrusted::path(out)))?;
    file.write_all(format!("{}\n", key.to_hex().as_str()).as_bytes())
        .and_then(|()| file.sync_all())
        .with_context(|| format!("cannot write {}", Untrusted::path(out)))?;
    println!("{}", hex::encode(key.public().as_bytes()));
    eprintln!(
        "operator key written to {} (keep it secret; give it to this member's enclave as ENCLAVE_OPERATOR_KEY_FILE); its public key above is the member's don.members[].operatorKey",
        Untrusted::path(out)
    );
    Ok(exit::OK)
}
