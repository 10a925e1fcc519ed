//! The `fetchpool` binary: arguments → configuration and jobs → a run → an exit code.
//!
//! This file parses the arguments, sets up logging, hands over to [`cli`] and turns its
//! answer into the exit code; everything else the binary does lives under `src/cli/`,
//! which uses only the library's public API.

mod cli;

use std::process::ExitCode;

use clap::Parser;

use cli::args::{Cli, Command};

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(cli.run.verbose, cli.run.quiet);
    let result = match cli.command {
        Some(Command::Verify(args)) => cli::verify::verify(args),
        Some(Command::Report(args)) => cli::report::report(args),
        None => cli::run::run(cli.run),
    };
    match result {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            // A configuration error from the library is shown in the command line's
            // terms: the flag of the setting it is about.
            match e.downcast_ref::<fetchpool::Error>() {
                Some(config @ fetchpool::Error::Config { .. }) => {
                    eprintln!("fetchpool: {}", cli::hints::message(config));
                }
                _ => eprintln!("fetchpool: {e:#}"),
            }
            ExitCode::from(cli::EXIT_CONFIG)
        }
    }
}

fn init_logging(verbose: u8, quiet: bool) {
    let default = match (quiet, verbose) {
        (true, _) => "error",
        (false, 0) => "warn",
        (false, 1) => "info",
        (false, _) => "debug",
    };
    let logger =
        env_logger::Builder::from_env(env_logger::Env::default().default_filter_or(default))
            .format_timestamp_millis()
            // Through the bar when one is drawn, so log lines never tear it.
            .target(env_logger::Target::Pipe(Box::new(cli::progress::LogWriter)))
            .build();
    let max = logger.filter();
    if log::set_boxed_logger(Box::new(NoWireTrace(logger))).is_ok() {
        log::set_max_level(max);
    }
}

/// The HTTP library's trace records are dropped whatever `RUST_LOG` asks: at trace, ureq
/// logs each request's whole URL (query signatures included) and a hex dump of the bytes
/// it sends (Authorization and API-key headers included), and no log of fetchpool shows
/// a secret. Its debug records, which mask the URL's path and credentials, stay.
struct NoWireTrace(env_logger::Logger);

impl NoWireTrace {
    fn wire(metadata: &log::Metadata) -> bool {
        metadata.level() == log::Level::Trace && metadata.target().starts_with("ureq")
    }
}

impl log::Log for NoWireTrace {
    fn enabled(&self, metadata: &log::Metadata) -> bool {
        !Self::wire(metadata) && self.0.enabled(metadata)
    }

    fn log(&self, record: &log::Record) {
        if !Self::wire(record.metadata()) {
            self.0.log(record);
        }
    }

    fn flush(&self) {
        self.0.flush();
    }
}
