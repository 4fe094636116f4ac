//! The echoloc command: replay captures, capture live, check a config.

mod cli;

use clap::Parser;

fn main() {
    let args = cli::Cli::parse();
    let code = match cli::run(args) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("echoloc: {e:#}");
            2
        }
    };
    std::process::exit(code);
}
