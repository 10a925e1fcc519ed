//! Stopped by a signal, a run ends like Ctrl-C ends it: SIGINT, SIGTERM (what `docker
//! stop`, Kubernetes, systemd and Slurm send) and SIGHUP each stop new jobs and transfers,
//! write a report line for every job, keep `.part` + sidecar (also for a small body that
//! was in flight unnamed) with the kept bytes in the report, exit 128 + the signal's
//! number, and the re-run continues every part with `Range`.

mod support;

use std::fs;
use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use support::cli::{fetchpool, spawn, wait, write_list};
use support::{Reply, Resource, TempDir, TestServer, random_bytes, sha256_hex, wait_until};

/// A large body (early sidecar, named `.part`) that cannot finish before the signal.
const BIG: usize = 32 << 20;
/// A small body (at most 1 MiB: unnamed until verified or kept), stalled at `HALF`.
const SMALL: usize = 600_000;
const HALF: usize = 300_000;

fn size(path: &Path) -> u64 {
    fs::metadata(path).map_or(0, |m| m.len())
}

/// The size of a file the process `pid` has open in `dir` without a name (O_TMPFILE),
/// if it has one.
fn unnamed_file_size(pid: u32, dir: &Path) -> Option<u64> {
    let dir = fs::canonicalize(dir).ok()?;
    fs::read_dir(format!("/proc/{pid}/fd"))
        .ok()?
        .flatten()
        .find(|fd| {
            fs::read_link(fd.path()).is_ok_and(|target| {
                target.starts_with(&dir) && target.to_string_lossy().ends_with(" (deleted)")
            })
        })
        .and_then(|fd| fs::metadata(fd.path()).ok())
        .map(|m| m.len())
}

/// Five jobs on three workers, caught mid-run: `done` finished, `big` dripping, `small`
/// stalled half-way, `hang` waiting for a head, `never` still queued. Everything but
/// `done` misbehaves while `slow` is set and is served whole, with ranges, afterwards.
struct Scene {
    server: TestServer,
    slow: Arc<AtomicBool>,
    bodies: Vec<(&'static str, Resource)>,
    list: String,
    tmp: TempDir,
}

fn scene() -> Scene {
    let server = TestServer::start();
    let slow = Arc::new(AtomicBool::new(true));
    let mut bodies = Vec::new();
    for (i, (name, len)) in [
        ("done", 5_000),
        ("big", BIG),
        ("small", SMALL),
        ("hang", 7_000),
        ("never", 9_000),
    ]
    .into_iter()
    .enumerate()
    {
        let res = Resource::new(random_bytes(40 + i as u64, len));
        let (r, slow) = (res.clone(), Arc::clone(&slow));
        server.route(&format!("/{name}"), move |req| {
            let reply = Reply::file(req, &r);
            match (name, slow.load(Ordering::SeqCst)) {
                (_, false) | ("done", _) => reply,
                ("big", true) => reply.drip(64 * 1024, Duration::from_millis(20)),
                ("small", true) => reply.stall_after(HALF),
                _ => Reply::hang(),
            }
        });
        bodies.push((name, res));
    }
    let tmp = TempDir::new();
    let text: String = bodies
        .iter()
        .map(|(name, res)| {
            let url = server.url(&format!("/{name}"));
            format!("{url}\t{name}.bin\t{}\n", sha256_hex(&res.body))
        })
        .collect();
    let list = write_list(tmp.path(), "list.tsv", &text);
    Scene {
        server,
        slow,
        bodies,
        list,
        tmp,
    }
}

/// Sends `signal` mid-run and checks everything the stop must leave: the exit code, one
/// report line per job with the bytes kept, `.part` + sidecar, then the resumed re-run.
fn stops_gracefully(signal: &str, code: i32) {
    let Scene {
        server,
        slow,
        bodies,
        list,
        tmp,
    } = scene();
    let out = tmp.join("out");
    // One stream for `big`: the bytes it keeps are its part's length (a split file's are
    // its finished segments, tests/segments.rs).
    let child = spawn(
        tmp.path(),
        &["-i", &list, "-o", "out", "-j", "3", "--split", "1"],
    );
    let pid = child.id();
    let big_part = out.join("big.bin.part");
    let small_part = out.join("small.bin.part");
    let caught = wait_until(Duration::from_secs(30), || {
        out.join("done.bin").exists()
            && size(&big_part) >= 1 << 20
            && (size(&small_part) == HALF as u64
                || unnamed_file_size(pid, &out) == Some(HALF as u64))
            && server.in_flight("/hang") == 1
    });
    assert!(caught, "the run never reached the state to stop it in");
    assert!(
        Command::new("kill")
            .args([signal, &pid.to_string()])
            .status()
            .unwrap()
            .success()
    );
    let run = wait(child, tmp.path());
    assert_eq!(run.code, code, "stderr: {}", run.stderr);
    assert!(run.stderr.contains("again to resume"), "{}", run.stderr);

    // One line per job, none missing, none twice.
    assert_eq!(run.report.len(), 5, "{:#?}", run.report);
    let line = |name: &str| run.line(&server.url(&format!("/{name}")));
    assert_eq!(line("done")["status"], "ok");
    assert_eq!(line("done")["bytes"], 5_000);
    for name in ["big", "small", "hang", "never"] {
        assert_eq!(line(name)["status"], "cancelled", "{name}");
        assert_eq!(line(name)["error"]["kind"], "cancelled", "{name}");
    }
    assert_eq!(line("never")["attempts"], 0);
    assert_eq!(line("hang")["attempts"], 1);
    // The bytes a cancelled line reports are the bytes kept for the resume.
    let big_kept = size(&big_part);
    assert!(big_kept >= 1 << 20 && big_kept < BIG as u64, "{big_kept}");
    assert_eq!(line("big")["bytes"], big_kept);
    assert_eq!(size(&small_part), HALF as u64);
    assert_eq!(line("small")["bytes"], HALF as u64);
    assert_eq!(line("hang")["bytes"], 0);
    assert_eq!(line("never")["bytes"], 0);
    for name in ["big", "small"] {
        assert!(out.join(format!("{name}.bin.part.meta")).exists(), "{name}");
        assert!(!out.join(format!("{name}.bin")).exists(), "{name}");
    }
    for name in ["hang", "never"] {
        assert!(!out.join(format!("{name}.bin.part")).exists(), "{name}");
        assert!(!out.join(format!("{name}.bin")).exists(), "{name}");
    }

    slow.store(false, Ordering::SeqCst);
    let before = server.requests().len();
    let again = fetchpool(tmp.path(), &["-i", &list, "-o", "out", "-j", "3"], None);
    assert_eq!(again.code, 0, "stderr: {}", again.stderr);
    assert_eq!(again.report.len(), 5, "{:#?}", again.report);
    let rerun = &server.requests()[before..];
    for (name, kept) in [("big", big_kept), ("small", HALF as u64)] {
        let path = format!("/{name}");
        let req = rerun
            .iter()
            .find(|r| r.path == path)
            .unwrap_or_else(|| panic!("no request for {path}"));
        assert_eq!(req.header("range"), Some(format!("bytes={kept}-").as_str()));
        assert_eq!(req.status, Some(206));
        assert_eq!(again.line(&server.url(&path))["resumed_from"], kept);
    }
    for (name, res) in &bodies {
        let l = again.line(&server.url(&format!("/{name}")));
        let want = if *name == "done" { "skipped" } else { "ok" };
        assert_eq!(l["status"], want, "{name}");
        assert!(fs::read(out.join(format!("{name}.bin"))).unwrap() == *res.body);
        assert!(!out.join(format!("{name}.bin.part")).exists());
        assert!(!out.join(format!("{name}.bin.part.meta")).exists());
    }
}

#[test]
fn sigint_mid_run_reports_every_job_keeps_parts_and_exits_130() {
    stops_gracefully("-INT", 130);
}

#[test]
fn sigterm_mid_run_stops_like_ctrl_c_and_exits_143() {
    stops_gracefully("-TERM", 143);
}

#[test]
fn sighup_mid_run_stops_like_ctrl_c_and_exits_129() {
    stops_gracefully("-HUP", 129);
}

/// SIGHUP from a terminal that closed: stderr is gone (here a pipe nobody reads, so
/// every write fails). The stop still ends with its exit code and a full report, never
/// a panic on the summary or the closing message.
#[test]
fn sighup_with_stderr_gone_still_exits_129_with_every_report_line() {
    let Scene {
        server, list, tmp, ..
    } = scene();
    let out = tmp.join("out");
    let mut child = spawn(tmp.path(), &["-i", &list, "-o", "out", "-j", "3"]);
    drop(child.stderr.take());
    let caught = wait_until(Duration::from_secs(30), || {
        out.join("done.bin").exists()
            && size(&out.join("big.bin.part")) >= 1 << 20
            && server.in_flight("/hang") == 1
    });
    assert!(caught, "the run never reached the state to stop it in");
    let pid = child.id().to_string();
    assert!(
        Command::new("kill")
            .args(["-HUP", &pid])
            .status()
            .unwrap()
            .success()
    );
    let run = wait(child, tmp.path());
    assert_eq!(run.code, 129);
    assert_eq!(run.report.len(), 5, "{:#?}", run.report);
    assert_eq!(run.with_status("cancelled").len(), 4);
}
