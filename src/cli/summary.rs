//! The final summary on stderr: what happened, what went wrong, and what to do next.

use std::collections::BTreeMap;
use std::io::{self, Write};
use std::path::Path;

use fetchpool::{Error, ErrorKind, Summary};

use crate::cli::args::RunArgs;
use crate::cli::hints;

/// The final summary on stderr: counts, bytes, time, rate, failures by kind with
/// examples and advice, where the report is, and how to go on.
pub fn print_summary(args: &RunArgs, s: &Summary, first: &BTreeMap<ErrorKind, (String, Error)>) {
    if args.json {
        let _ = writeln!(io::stdout(), "{}", s.to_json());
    }
    let mut err = io::stderr().lock();
    if args.quiet {
        // Errors only: one line when something failed, pointing at the details.
        if !s.all_succeeded() {
            let kinds: Vec<String> = s
                .failures
                .iter()
                .map(|(k, (n, _))| format!("{k}: {n}"))
                .collect();
            let _ = writeln!(
                err,
                "fetchpool: {} of {} jobs did not succeed ({}){}",
                s.failed + s.cancelled,
                s.total(),
                kinds.join(", "),
                args.report
                    .as_ref()
                    .map(|r| format!("; details in {}", r.display()))
                    .unwrap_or_default()
            );
        }
        return;
    }
    let _ = writeln!(err, "{}", counts_line(s));
    for (kind, (n, urls)) in &s.failures {
        let _ = writeln!(err, "  {kind}: {n} (e.g. {})", urls.join(", "));
        if let Some((url, error)) = first.get(kind) {
            let _ = writeln!(err, "    {}", hints::message(error));
            if let Some(h) = hints::hint(error, url, proxy_name(args, url).as_deref()) {
                let _ = writeln!(err, "    hint: {h}");
            }
        }
    }
    if let Some(r) = &args.report {
        let _ = writeln!(err, "report: {}", r.display());
    }
    // An interrupted run says how to resume it right after this summary (main.rs).
    if !s.interrupted && !s.all_succeeded() {
        match &args.report {
            Some(r) => {
                // Said in words, not by echoing argv: a command line can hold a proxy
                // password, an Authorization header or credentials in a URL.
                let stdin = if args.input.iter().any(|i| i == Path::new("-")) {
                    ", with the same list on stdin"
                } else {
                    ""
                };
                let _ = writeln!(
                    err,
                    "retry only what did not succeed: run the same command with --retry-failed {}{stdin}",
                    shell_quote(&r.display().to_string())
                );
            }
            None => {
                let _ = writeln!(
                    err,
                    "add --report FILE to be able to retry only the failures with --retry-failed FILE"
                );
            }
        }
    }
}

/// "N jobs: … ok, … skipped, … failed, … cancelled; BYTES in T s (RATE/s)".
pub fn counts_line(s: &Summary) -> String {
    let secs = s.elapsed.as_secs_f64().max(1e-9);
    format!(
        "{} jobs: {} ok, {} skipped, {} failed, {} cancelled; {} in {:.2} s ({}/s)",
        s.total(),
        s.ok,
        s.skipped,
        s.failed,
        s.cancelled,
        human_bytes(s.bytes),
        s.elapsed.as_secs_f64(),
        human_bytes((s.bytes as f64 / secs) as u64)
    )
}

/// The proxy `url` went through, as the user named it (password hidden): `--proxy`
/// first, then the environment unless `--no-proxy-env`. Only words a hint.
fn proxy_name(args: &RunArgs, url: &str) -> Option<String> {
    match args.proxy.as_deref() {
        Some("") => None,
        Some(p) => Some(
            fetchpool::proxy::ProxyChoice::parse(p)
                .map_or_else(|_| p.to_string(), |c| c.redacted()),
        ),
        None if args.no_proxy_env => None,
        None => hints::env_proxy(url),
    }
}

/// `s` quoted for a POSIX shell when it needs quoting.
fn shell_quote(s: &str) -> String {
    if !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./:=,@%+".contains(c))
    {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', r"'\''"))
    }
}

pub fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut unit = 0;
    while v >= 1024.0 && unit < UNITS.len() - 1 {
        v /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[unit])
    }
}
