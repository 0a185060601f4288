use std::process::ExitCode;

use clap::Parser;

/// Enough for every problem of a rejected configuration, not for a flood.
const MAX_ERROR_CHARS: usize = 16 * 1024;

fn main() -> ExitCode {
    let cli = enclave::cli::Cli::parse();
    enclave::logging::init();
    match enclave::cli::run(cli) {
        Ok(code) => ExitCode::from(code),
        Err(failure) => {
            // The chain can quote input (a path, a peer's or an upstream's words): one line,
            // escaped, bounded.
            let message = format!("{failure:#}");
            eprintln!(
                "error: {}",
                enclave::logging::Untrusted::bounded(&message, MAX_ERROR_CHARS)
            );
            ExitCode::from(enclave::cli::exit_code_of(&failure))
        }
    }
}
