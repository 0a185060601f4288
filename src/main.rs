use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = enclave::cli::Cli::parse();
    enclave::logging::init();
    match enclave::cli::run(cli) {
        Ok(code) => ExitCode::from(code),
        Err(failure) => {
            eprintln!("error: {failure:#}");
            ExitCode::from(enclave::cli::exit_code_of(&failure))
        }
    }
}
