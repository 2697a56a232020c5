//! The `vigil` binary: parse, run, map the outcome to an exit code.
#![deny(missing_docs)]

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = vigil::cli::Cli::parse();
    match vigil::cli::run(cli) {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            eprintln!("vigil: error: {e:#}");
            ExitCode::from(2)
        }
    }
}
