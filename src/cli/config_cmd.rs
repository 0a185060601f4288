//! `enclave config keygen | sign | verify | check`: the operator's configuration tools.

use std::fs;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use anyhow::Context;
use serde_json::Value;

use super::{Cli, ConfigCommand, KeyArgs};
use crate::config::json;
use crate::config::reader::{Report, MAX_PATH_CHARS};
use crate::config::regular_file;
use crate::config::signature::{self, PrivateKey, PublicKey, Scheme};
use crate::config::{
    read_document, read_key_file, validate_document, verify_document, ConfigError, Validated,
};
use crate::logging::Untrusted;
use crate::paths::Root;

pub const PRIVATE_KEY_FILE: &str = "configuration.key";
pub const PUBLIC_KEY_FILE: &str = "configuration.pub";

pub fn run(cli: &Cli, command: &ConfigCommand) -> anyhow::Result<()> {
    match command {
        ConfigCommand::Keygen { scheme, out, force } => keygen(*scheme, out, *force),
        ConfigCommand::Sign {
            key,
            config,
            out,
            allow_invalid,
        } => sign(key, config, out.as_deref(), *allow_invalid),
        ConfigCommand::Verify { key, config } => {
            let key = public_key(key, Some(&cli.root()))?.ok_or_else(|| {
                ConfigError::NoKey(
                    "pass --public-key or --public-key-file, set CONFIGURATION_PUBLIC_KEY, or install <root>/etc/enclave/configuration.pub".into(),
                )
            })?;
            verify(&cli.config_path(config.as_ref()), &key)
        }
        ConfigCommand::Check { key, config } => {
            let key = public_key(key, None)?;
            check(&cli.config_path(config.as_ref()), key.as_ref())
        }
    }
}

/// The verifying key from the flags; without flags and with a `root`, from the environment
/// (`CONFIGURATION_PUBLIC_KEY`, as the reference image sets it) or the image's key file.
pub(super) fn public_key(
    args: &KeyArgs,
    root: Option<&Root>,
) -> Result<Option<PublicKey>, ConfigError> {
    if let Some(b64) = &args.public_key {
        return Ok(Some(PublicKey::from_base64_spki(b64)?));
    }
    let file = match (&args.public_key_file, root) {
        (Some(file), _) => file.clone(),
        (None, Some(root)) => {
            if let Ok(b64) = std::env::var("CONFIGURATION_PUBLIC_KEY") {
                if !b64.trim().is_empty() {
                    return Ok(Some(PublicKey::from_base64_spki(&b64)?));
                }
            }
            let default = root.configuration_public_key();
            if !default.exists() {
                return Ok(None);
            }
            default
        }
        (None, None) => return Ok(None),
    };
    Ok(Some(read_key_file(&file)?))
}

fn keygen(scheme: Scheme, out: &Path, force: bool) -> anyhow::Result<()> {
    fs::create_dir_all(out).with_context(|| format!("cannot create {}", out.display()))?;
    let key = PrivateKey::generate(scheme)?;
    let public = key.public_key().to_base64_spki();
    let private_path = out.join(PRIVATE_KEY_FILE);
    let public_path = out.join(PUBLIC_KEY_FILE);
    for path in [&private_path, &public_path] {
        if path.exists() && !force {
            anyhow::bail!("{} exists; pass --force to replace it", path.display());
        }
    }
    write_new(
        &private_path,
        0o600,
        format!("{}\n", key.to_pkcs8_base64().expose()).as_bytes(),
    )?;
    write_new(&public_path, 0o644, format!("{public}\n").as_bytes())?;
    println!("{public}");
    eprintln!(
        "wrote {} (keep it secret) and {} ({scheme})",
        private_path.display(),
        public_path.display()
    );
    Ok(())
}

/// Writes a file with `mode` from the start, so a private key is never readable by others,
/// not even for a moment.
fn write_new(path: &Path, mode: u32, contents: &[u8]) -> anyhow::Result<()> {
    let _ = fs::remove_file(path);
    let mut file = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(path)
        .with_context(|| format!("cannot create {}", path.display()))?;
    file.write_all(contents)
        .and_then(|()| file.sync_all())
        .with_context(|| format!("cannot write {}", path.display()))
}

fn sign(
    key_path: &Path,
    config_path: &Path,
    out: Option<&Path>,
    allow_invalid: bool,
) -> anyhow::Result<()> {
    let key_bytes = regular_file::read_bounded(key_path, 64 * 1024)
        .with_context(|| format!("cannot read key {}", key_path.display()))?;
    let key_text = String::from_utf8(key_bytes)
        .with_context(|| format!("key {} is not text", key_path.display()))?;
    let key = PrivateKey::from_pkcs8_text(&key_text)?;
    let mut document = read_document(config_path)?;
    if !allow_invalid {
        if let Err(e) = validate_document(&document) {
            if let ConfigError::Invalid(report) = &e {
                print_report(report);
            }
            return Err(anyhow::Error::new(e)
                .context("refusing to sign (pass --allow-invalid to sign anyway)"));
        }
    }
    let solution = json::solution_of_mut(&mut document).map_err(|source| ConfigError::Json {
        path: config_path.to_owned(),
        source,
    })?;
    solution.shift_remove("signature");
    let signed = signature::sign(&Value::Object(solution.clone()), &key)?;
    solution.insert("signature".into(), Value::String(signed.signature_b64));
    let target = out.unwrap_or(config_path);
    write_replacing(
        target,
        format!("{}\n", serde_json::to_string_pretty(&document)?).as_bytes(),
    )?;
    eprintln!(
        "signed {} ({}, digest {})",
        target.display(),
        signed.scheme,
        signed.digest_hex
    );
    Ok(())
}

/// Replaces a file atomically (write beside it, then rename), keeping its permissions.
fn write_replacing(path: &Path, contents: &[u8]) -> anyhow::Result<()> {
    let mode = fs::metadata(path)
        .map(|m| std::os::unix::fs::PermissionsExt::mode(&m.permissions()) & 0o7777)
        .unwrap_or(0o644);
    let file_name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp: PathBuf = path.with_file_name(format!(".{file_name}.tmp-{}", std::process::id()));
    write_new(&tmp, mode, contents)?;
    fs::rename(&tmp, path).with_context(|| format!("cannot replace {}", path.display()))
}

fn verify(config_path: &Path, key: &PublicKey) -> anyhow::Result<()> {
    let document = read_document(config_path)?;
    let verified = verify_document(&document, key)?;
    println!("signature valid");
    println!("scheme: {}", verified.scheme);
    println!("digest: {}", verified.digest_hex);
    Ok(())
}

fn check(config_path: &Path, key: Option<&PublicKey>) -> anyhow::Result<()> {
    let document = read_document(config_path)?;
    let signature = key.map(|k| verify_document(&document, k));
    let validation = validate_document(&document);
    match &validation {
        Ok(Validated { report, .. }) | Err(ConfigError::Invalid(report)) => print_report(report),
        Err(_) => {}
    }
    match &signature {
        Some(Ok(v)) => println!("signature valid ({}, digest {})", v.scheme, v.digest_hex),
        Some(Err(e)) => eprintln!("error: {e}"),
        None => println!("signature not checked (no --public-key or --public-key-file given)"),
    }
    let Validated { config, .. } = match (signature, validation) {
        (Some(Err(e)), _) => return Err(e.into()),
        (_, Err(e)) => return Err(e.into()),
        (_, Ok(v)) => v,
    };
    println!(
        "configuration valid: {} nodes (1 bootstrap + {} oracles), {} feeds, {} sources enabled, {} push targets",
        config.nodes.total,
        config.nodes.oracles().len(),
        config.feeds.len(),
        config.aggregator.enabled_sources().count(),
        config.telemetry.targets.len() + usize::from(config.aggregator.metrics_push.is_some()),
    );
    Ok(())
}

fn print_report(report: &Report) {
    for problem in &report.problems {
        eprintln!("error: {problem}");
    }
    for warning in &report.warnings {
        eprintln!("warning: {warning}");
    }
    for ignored in &report.ignored {
        eprintln!(
            "note: {}: accepted for compatibility, not used by this project",
            Untrusted::bounded(ignored, MAX_PATH_CHARS)
        );
    }
    for member in &report.unsigned {
        eprintln!(
            "note: {}: beside `solution`, not covered by the signature; not used",
            Untrusted::bounded(member, MAX_PATH_CHARS)
        );
    }
}
