//! `fetchpool verify`: hashes every listed file in parallel; no network.

use std::collections::HashSet;
use std::fs::File;
use std::io::{self, BufRead, BufReader};
use std::path::Path;
use std::sync::Mutex;

use anyhow::Context as _;
use fetchpool::ManifestReader;

use super::{EXIT_CONFIG, EXIT_FAILED, EXIT_OK, args, human_bytes};

/// `fetchpool verify`: hashes every listed file in parallel; no network.
pub fn verify(args: args::VerifyArgs) -> anyhow::Result<u8> {
    let (name, reader): (String, Box<dyn BufRead + Send>) = if args.input == Path::new("-") {
        ("-".into(), Box::new(BufReader::new(io::stdin())))
    } else {
        let file = File::open(&args.input)
            .with_context(|| format!("cannot open job list '{}'", args.input.display()))?;
        (
            args.input.display().to_string(),
            Box::new(BufReader::with_capacity(64 * 1024, file)),
        )
    };
    // A checksum file names no URL; verify reads only paths and checksums.
    let jobs = ManifestReader::new(name, reader).base_url("http://localhost/");
    // Every listed path, to name the files the list does not.
    let listed = Mutex::new(HashSet::new());
    let jobs = jobs.inspect(|job| {
        if let Ok(job) = job
            && let Some(path) = job.path()
        {
            listed
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .insert(path.to_path_buf());
        }
    });
    let result = match fetchpool::verify(&args.output_dir, jobs) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("fetchpool: {e}");
            return Ok(EXIT_CONFIG);
        }
    };
    let listed = listed.into_inner().unwrap_or_else(|e| e.into_inner());
    let extra = match fetchpool::Extraneous::find(&args.output_dir, &listed) {
        Ok(extra) => extra,
        Err(e) => {
            eprintln!("fetchpool: {e}");
            return Ok(EXIT_CONFIG);
        }
    };
    if args.json {
        let mut v = result.to_json();
        v["extra"] = extra
            .files
            .iter()
            .map(|p| p.to_string_lossy().into_owned())
            .collect::<Vec<_>>()
            .into();
        println!("{v}");
    } else {
        for (path, problem) in &result.problems {
            match problem {
                fetchpool::Problem::Missing => println!("missing\t{}", path.display()),
                fetchpool::Problem::Mismatch { expected, actual } => println!(
                    "mismatch\t{}\texpected {expected}, found {actual}",
                    path.display()
                ),
                fetchpool::Problem::Unreadable { message } => {
                    println!("unreadable\t{}\t{message}", path.display())
                }
                _ => println!("problem\t{}", path.display()),
            }
        }
        for path in &extra.files {
            println!("extra\t{}", path.display());
        }
    }
    eprintln!(
        "{} files ok ({}), {} with problems{}{}",
        result.ok,
        human_bytes(result.bytes),
        result.problems.len(),
        if extra.files.is_empty() {
            String::new()
        } else {
            format!(", {} not in the list", extra.files.len())
        },
        if result.unchecked > 0 {
            format!(", {} present without sha256 or size", result.unchecked)
        } else {
            String::new()
        }
    );
    Ok(if result.is_clean() {
        EXIT_OK
    } else {
        EXIT_FAILED
    })
}
