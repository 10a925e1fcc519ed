//! Writes shell completions and the man page for the `fetchpool` binary (`make manpages`).
//!
//! It compiles the binary's own `src/cli/args.rs`, so the completions and the man page come
//! from the very definitions `--help` prints, while the binary itself links neither
//! clap_complete nor clap_mangen.
//!
//! Usage: `cargo run --example gen_docs -- [OUT_DIR]` (default `target/manpages`).

#[allow(dead_code)]
#[path = "../src/cli/args.rs"]
mod cli;

use std::fs;
use std::path::PathBuf;

use clap::CommandFactory;
use clap_complete::Shell;

fn main() -> std::io::Result<()> {
    let out = PathBuf::from(
        std::env::args()
            .nth(1)
            .unwrap_or_else(|| "target/manpages".into()),
    );
    let completions = out.join("completions");
    fs::create_dir_all(&completions)?;
    let mut cmd = cli::Cli::command();
    for shell in [
        Shell::Bash,
        Shell::Zsh,
        Shell::Fish,
        Shell::Elvish,
        Shell::PowerShell,
    ] {
        let path = clap_complete::generate_to(shell, &mut cmd, "fetchpool", &completions)?;
        println!("{}", path.display());
    }
    let man = out.join("man");
    fs::create_dir_all(&man)?;
    let cmd = cli::Cli::command();
    clap_mangen::generate_to(cmd, &man)?;
    for entry in fs::read_dir(&man)? {
        println!("{}", entry?.path().display());
    }
    Ok(())
}
