//! The final summary on stderr: what happened, what went wrong, and what to do next.

use std::collections::BTreeMap;
use std::io::{self, Write};
use std::path::Path;

use fetchpool::{ErrorKind, Summary};

use crate::cli::RunArgs;
use crate::hints;

/// The final summary on stderr: counts, bytes, time, rate, failures by kind with
/// examples and advice, where the report is, and how to go on.
pub fn print_summary(args: &RunArgs, s: &Summary, first: &BTreeMap<ErrorKind, (String, String)>) {
    if args.json {
        println!("{}", s.to_json());
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
    let secs = s.elapsed.as_secs_f64().max(1e-9);
    let _ = writeln!(
        err,
        "{} jobs: {} ok, {} skipped, {} failed, {} cancelled; {} in {:.2} s ({}/s)",
        s.total(),
        s.ok,
        s.skipped,
        s.failed,
        s.cancelled,
        human_bytes(s.bytes),
        secs,
        human_bytes((s.bytes as f64 / secs) as u64)
    );
    for (kind, (n, urls)) in &s.failures {
        let _ = writeln!(err, "  {kind}: {n} (e.g. {})", urls.join(", "));
        if let Some((url, message)) = first.get(kind) {
            let _ = writeln!(err, "    {message}");
            let failure = hints::Failure {
                kind: *kind,
                message,
                url,
            };
            // Names the proxy from the environment; once --proxy exists (issue 6), the
            // flag's value should come first.
            if let Some(h) = hints::hint(&failure, hints::env_proxy(url).as_deref()) {
                let _ = writeln!(err, "    hint: {h}");
            }
        }
    }
    if let Some(r) = &args.report {
        let _ = writeln!(err, "report: {}", r.display());
    }
    if s.interrupted {
        let _ = writeln!(
            err,
            "interrupted: run the same command again to resume; partial files are kept"
        );
    } else if !s.all_succeeded() {
        match &args.report {
            Some(r) => {
                let _ = writeln!(
                    err,
                    "retry only what did not succeed: {}",
                    retry_command(r, args.input.iter().any(|i| i == Path::new("-")))
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

/// This command line with `--retry-failed REPORT`, quoted for a POSIX shell.
fn retry_command(report: &Path, stdin: bool) -> String {
    let mut out = vec!["fetchpool".to_string()];
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        if a == "--retry-failed" {
            args.next();
            continue;
        }
        if a.starts_with("--retry-failed=") {
            continue;
        }
        out.push(shell_quote(&a));
    }
    out.push("--retry-failed".into());
    out.push(shell_quote(&report.display().to_string()));
    let mut cmd = out.join(" ");
    if stdin {
        cmd.push_str("   (with the same list on stdin)");
    }
    cmd
}

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
