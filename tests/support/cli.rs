//! Runs the `fetchpool` binary the way a user would and reads back what it said: exit
//! code, stdout, stderr and the `--report` lines.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};

use serde_json::Value;

/// The binary under test.
pub fn bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_fetchpool"))
}

/// An example program, next to the binary. `cargo test --all-targets` builds examples
/// only in test form, so a missing one is built here (cargo serialises concurrent builds).
pub fn example(name: &str) -> PathBuf {
    let path = bin().parent().unwrap().join("examples").join(name);
    if !path.exists() {
        let mut cargo = Command::new(env!("CARGO"));
        cargo.args(["build", "--quiet", "--example", name]);
        if !cfg!(debug_assertions) {
            cargo.arg("--release");
        }
        let status = cargo
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .status()
            .expect("run cargo");
        assert!(status.success(), "cargo build --example {name} failed");
    }
    path
}

/// What one run of the binary produced.
#[derive(Debug)]
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
    /// The `--report` lines, when the run was given `report` (see [`fetchpool`]).
    pub report: Vec<Value>,
}

impl Run {
    /// The report line for `url`, panicking with the whole report when absent. Reports
    /// show URLs with their secrets hidden; `url` may be given either way.
    pub fn line(&self, url: &str) -> &Value {
        let shown = fetchpool::redact::url(url);
        self.report
            .iter()
            .find(|l| l["url"] == *shown)
            .unwrap_or_else(|| panic!("no report line for {url}: {:#?}", self.report))
    }

    /// Report lines with `status`.
    pub fn with_status(&self, status: &str) -> Vec<&Value> {
        self.report
            .iter()
            .filter(|l| l["status"] == status)
            .collect()
    }
}

/// Runs `fetchpool ARGS` in `dir`, with `--report dir/report.jsonl` appended, stdin from
/// `stdin` when given; waits for it and collects everything.
pub fn fetchpool(dir: &Path, args: &[&str], stdin: Option<&str>) -> Run {
    fetchpool_env(dir, args, stdin, &[])
}

/// As [`fetchpool`], with `env` set on top of an environment cleared of every proxy
/// variable and of `SSL_CERT_FILE` / `SSL_CERT_DIR` (so only the ones a test names apply).
pub fn fetchpool_env(dir: &Path, args: &[&str], stdin: Option<&str>, env: &[(&str, &str)]) -> Run {
    let mut cmd = command(dir, args, env);
    cmd.stdin(if stdin.is_some() {
        Stdio::piped()
    } else {
        Stdio::null()
    });
    let mut child = cmd.spawn().expect("start fetchpool");
    if let Some(input) = stdin {
        child
            .stdin
            .take()
            .unwrap()
            .write_all(input.as_bytes())
            .unwrap();
    }
    wait(child, dir)
}

/// Starts `fetchpool ARGS` in `dir` like [`fetchpool`] does, without waiting, so that a
/// test can signal it (`child.id()`); collect it with [`wait`].
pub fn spawn(dir: &Path, args: &[&str]) -> Child {
    command(dir, args, &[])
        .stdin(Stdio::null())
        .spawn()
        .expect("start fetchpool")
}

/// Waits for a run started by [`spawn`] and collects what it said. A run ended by a
/// signal has code -1.
pub fn wait(child: Child, dir: &Path) -> Run {
    let out = child.wait_with_output().expect("wait for fetchpool");
    finish(out, &dir.join("report.jsonl"))
}

fn command(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Command {
    let report = dir.join("report.jsonl");
    let _ = std::fs::remove_file(&report);
    let mut cmd = Command::new(bin());
    cmd.current_dir(dir)
        .args(args)
        .arg("--report")
        .arg(&report)
        .env_remove("http_proxy")
        .env_remove("HTTP_PROXY")
        .env_remove("https_proxy")
        .env_remove("HTTPS_PROXY")
        .env_remove("ALL_PROXY")
        .env_remove("all_proxy")
        .env_remove("NO_PROXY")
        .env_remove("no_proxy")
        .env_remove("REQUEST_METHOD")
        // The system's trust store is the default: only the one a test names applies.
        .env_remove("SSL_CERT_FILE")
        .env_remove("SSL_CERT_DIR")
        .envs(env.iter().copied())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    cmd
}

fn finish(out: Output, report: &Path) -> Run {
    let report = std::fs::read_to_string(report)
        .map(|s| {
            s.lines()
                .map(|l| serde_json::from_str(l).expect("report line is JSON"))
                .collect()
        })
        .unwrap_or_default();
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        report,
    }
}

/// Runs `fetchpool verify ARGS` in `dir`: its exit code and standard output.
pub fn verify(dir: &Path, args: &[&str]) -> (i32, String) {
    let out = Command::new(bin())
        .current_dir(dir)
        .arg("verify")
        .args(args)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

/// Writes `text` to `dir/name` and returns the name, for `-i`.
pub fn write_list(dir: &Path, name: &str, text: &str) -> String {
    std::fs::write(dir.join(name), text).unwrap();
    name.to_string()
}
