use std::path::{Path, PathBuf};
use std::process::Command;

fn main() {
    // sqlx::migrate! embeds migrations/ at compile time; a new file there must trigger a rebuild.
    println!("cargo:rerun-if-changed=migrations");
    // The git commit the binary is built from goes into its identity document
    // (src/attestation/identity.rs). ENCLAVE_GIT_REVISION overrides it (a build outside a
    // checkout); without either it is "unknown".
    println!("cargo:rerun-if-env-changed=ENCLAVE_GIT_REVISION");
    let revision = std::env::var("ENCLAVE_GIT_REVISION")
        .ok()
        .map(|r| r.trim().to_owned())
        .filter(|r| !r.is_empty())
        .or_else(git_revision)
        .unwrap_or_else(|| "unknown".to_owned());
    println!("cargo:rustc-env=ENCLAVE_GIT_REVISION={revision}");
}

fn git(args: &[&str]) -> Option<String> {
    let out = Command::new("git").args(args).output().ok()?;
    if !out.status.success() {
        return None;
    }
    let text = String::from_utf8(out.stdout).ok()?.trim().to_owned();
    (!text.is_empty()).then_some(text)
}

/// `git rev-parse HEAD`, re-run when HEAD or the branch it names moves.
fn git_revision() -> Option<String> {
    let git_dir = PathBuf::from(git(&["rev-parse", "--git-dir"])?);
    let watch = |path: &Path| {
        if path.exists() {
            println!("cargo:rerun-if-changed={}", path.display());
        }
    };
    watch(&git_dir.join("HEAD"));
    watch(&git_dir.join("packed-refs"));
    if let Some(branch) = git(&["symbolic-ref", "-q", "HEAD"]) {
        watch(&git_dir.join(branch));
    }
    git(&["rev-parse", "HEAD"])
}
