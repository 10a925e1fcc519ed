//! Interrupted work continues, unchanged work is skipped, and `verify` checks a tree:
//! `.part` + sidecar, `Range` + `If-Range`, Ctrl-C and kill -9, sha256 and conditional
//! skips, and the retry of a body cut mid-way.

mod support;

use std::fs;
use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use support::cli::{Run, fetchpool, spawn, verify, wait, write_list};
use support::{Reply, Resource, TempDir, TestServer, random_bytes, sha256_hex, wait_until};

/// A large body, big enough that a slow server cannot finish it before the signal.
const BIG: usize = 64 << 20;

/// A server for `/big` that drips (64 KiB every 20 ms, about 3 MB/s) while `slow` is set
/// and answers at full speed otherwise; both honour `Range` and `If-Range`.
fn big_server(body: Vec<u8>) -> (TestServer, Arc<AtomicBool>, Resource) {
    let server = TestServer::start();
    let slow = Arc::new(AtomicBool::new(true));
    let res = Resource::new(body);
    serve_big(&server, &slow, res.clone());
    (server, slow, res)
}

fn serve_big(server: &TestServer, slow: &Arc<AtomicBool>, res: Resource) {
    let slow = Arc::clone(slow);
    server.route("/big", move |req| {
        let reply = Reply::file(req, &res);
        if slow.load(Ordering::SeqCst) {
            reply.drip(64 * 1024, Duration::from_millis(20))
        } else {
            reply
        }
    });
}

fn size(path: &Path) -> u64 {
    fs::metadata(path).map_or(0, |m| m.len())
}

/// Starts a download of `/big`, waits until its `.part` holds a few MiB, then sends
/// `signal` and returns the finished run and the bytes left in `.part`.
fn interrupted_run(server: &TestServer, tmp: &TempDir, list: &str, signal: &str) -> (Run, u64) {
    // One stream: these tests are about the `.part` of a single transfer (a split file's
    // resume is tests/segments.rs').
    let child = spawn(tmp.path(), &["-i", list, "-o", "out", "--split", "1"]);
    let part = tmp.join("out/big.bin.part");
    assert!(
        wait_until(Duration::from_secs(20), || size(&part) >= 4 << 20),
        "the download never got going"
    );
    let status = Command::new("kill")
        .args([signal, &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let run = wait(child, tmp.path());
    assert_eq!(server.hits("/big"), 1);
    (run, size(&part))
}

/// The re-run after an interruption: one ranged request from exactly the bytes kept,
/// answered 206, ending with the exact file and no leftovers.
fn assert_resumes(server: &TestServer, tmp: &TempDir, list: &str, res: &Resource, kept: u64) {
    let run = fetchpool(tmp.path(), &["-i", list, "-o", "out", "--split", "1"], None);
    assert_eq!(run.code, 0, "stderr: {}", run.stderr);
    let requests = server.requests();
    assert_eq!(requests.len(), 2);
    let again = &requests[1];
    assert_eq!(
        again.header("range"),
        Some(format!("bytes={kept}-").as_str())
    );
    assert_eq!(again.header("if-range"), res.etag.as_deref());
    assert_eq!(again.status, Some(206));
    let line = run.line(&server.url("/big"));
    assert_eq!(line["status"], "ok");
    assert_eq!(line["http_status"], 206);
    assert_eq!(line["resumed_from"], kept);
    assert_eq!(line["bytes"], BIG as u64);
    assert_eq!(line["sha256"], sha256_hex(&res.body));
    assert!(fs::read(tmp.join("out/big.bin")).unwrap() == *res.body);
    assert!(!tmp.join("out/big.bin.part").exists());
    assert!(!tmp.join("out/big.bin.part.meta").exists());
}

fn big_list(tmp: &TempDir, server: &TestServer, body: &[u8]) -> String {
    one_job_list(tmp, &server.url("/big"), "big.bin", body)
}

/// A TSV list of one job: `url` into `path`, checked against `body`'s sha256.
fn one_job_list(tmp: &TempDir, url: &str, path: &str, body: &[u8]) -> String {
    let line = format!("{url}\t{path}\t{}\n", sha256_hex(body));
    write_list(tmp.path(), "list.tsv", &line)
}

#[test]
fn ctrl_c_keeps_the_part_and_the_rerun_continues_it_with_if_range() {
    let (server, slow, res) = big_server(random_bytes(1, BIG));
    let tmp = TempDir::new();
    let list = big_list(&tmp, &server, &res.body);

    let (run, kept) = interrupted_run(&server, &tmp, &list, "-INT");
    assert_eq!(run.code, 130, "stderr: {}", run.stderr);
    assert!(run.stderr.contains("again to resume"), "{}", run.stderr);
    assert_eq!(run.line(&server.url("/big"))["status"], "cancelled");
    assert!(!tmp.join("out/big.bin").exists());
    assert!(kept >= 4 << 20 && kept < BIG as u64, "kept {kept}");
    let meta = fs::read_to_string(tmp.join("out/big.bin.part.meta")).unwrap();
    assert!(
        meta.contains(res.etag.as_deref().unwrap().trim_matches('"')),
        "{meta}"
    );

    slow.store(false, Ordering::SeqCst);
    assert_resumes(&server, &tmp, &list, &res, kept);
}

#[test]
fn kill_9_leaves_a_part_the_rerun_continues() {
    let (server, slow, res) = big_server(random_bytes(2, BIG));
    let tmp = TempDir::new();
    let list = big_list(&tmp, &server, &res.body);

    let (run, kept) = interrupted_run(&server, &tmp, &list, "-KILL");
    assert_eq!(run.code, -1, "killed by a signal");
    assert!(!tmp.join("out/big.bin").exists());
    assert!(tmp.join("out/big.bin.part.meta").exists());
    assert!(kept >= 4 << 20 && kept < BIG as u64, "kept {kept}");

    slow.store(false, Ordering::SeqCst);
    assert_resumes(&server, &tmp, &list, &res, kept);
}

#[test]
fn a_file_changed_between_runs_restarts_from_zero_and_is_never_spliced() {
    let old = random_bytes(3, 16 << 20);
    let new = random_bytes(4, 12 << 20);
    let (server, slow, old_res) = big_server(old);
    let tmp = TempDir::new();
    let list = write_list(
        tmp.path(),
        "list.txt",
        &format!("{}\tbig.bin\n", server.url("/big")),
    );

    let (run, _) = interrupted_run(&server, &tmp, &list, "-INT");
    assert_eq!(run.code, 130, "stderr: {}", run.stderr);

    let new_res = Resource::new(new.clone());
    assert_ne!(new_res.etag, old_res.etag);
    slow.store(false, Ordering::SeqCst);
    serve_big(&server, &slow, new_res);
    let run = fetchpool(tmp.path(), &["-i", &list, "-o", "out"], None);
    assert_eq!(run.code, 0, "stderr: {}", run.stderr);
    let again = &server.requests()[1];
    assert!(again.header("range").is_some());
    assert_eq!(again.header("if-range"), old_res.etag.as_deref());
    assert_eq!(again.status, Some(200), "the old validator no longer holds");
    let line = run.line(&server.url("/big"));
    assert_eq!(line["resumed_from"], serde_json::Value::Null);
    assert_eq!(line["bytes"], new.len() as u64);
    assert!(fs::read(tmp.join("out/big.bin")).unwrap() == new);
    assert!(!tmp.join("out/big.bin.part.meta").exists());
}

#[test]
fn a_body_cut_at_40_percent_is_retried_with_a_range_from_the_bytes_written() {
    // Below the sidecar threshold: the sidecar is written only when the body breaks.
    let body = random_bytes(5, 600_000);
    let cut = body.len() * 40 / 100;
    let server = TestServer::start();
    let res = Resource::new(body.clone());
    server.route("/cut", move |req| {
        let reply = Reply::file(req, &res);
        if req.hit == 1 {
            reply.cut_after(cut)
        } else {
            reply
        }
    });
    let tmp = TempDir::new();
    let list = one_job_list(&tmp, &server.url("/cut"), "cut.bin", &body);
    let run = fetchpool(tmp.path(), &["-i", &list, "-o", "out"], None);
    assert_eq!(run.code, 0, "stderr: {}", run.stderr);
    let requests = server.requests();
    assert_eq!(requests.len(), 2);
    assert_eq!(requests[0].header("range"), None);
    assert_eq!(
        requests[1].header("range"),
        Some(format!("bytes={cut}-").as_str())
    );
    assert_eq!(requests[1].status, Some(206));
    let line = run.line(&server.url("/cut"));
    assert_eq!(line["status"], "ok");
    assert_eq!(line["attempts"], 2);
    assert_eq!(line["resumed_from"], cut as u64);
    assert_eq!(line["sha256"], sha256_hex(&body));
    assert!(fs::read(tmp.join("out/cut.bin")).unwrap() == body);
    assert!(!tmp.join("out/cut.bin.part").exists());
    assert!(!tmp.join("out/cut.bin.part.meta").exists());
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

#[test]
fn small_bodies_write_no_sidecar_and_no_name_until_verified() {
    let server = TestServer::start();
    let body = random_bytes(6, 300_000);
    // Stalls after half: the transfer hangs with half the body written.
    let res = Resource::new(body.clone());
    server.route("/small", move |req| {
        Reply::file(req, &res).stall_after(150_000)
    });
    let tmp = TempDir::new();
    let child = spawn(tmp.path(), &[&server.url("/small"), "-o", "out"]);
    let part = tmp.join("out/small.part");
    let pid = child.id();
    // An unnamed file on Linux filesystems with O_TMPFILE; a named .part elsewhere.
    assert!(wait_until(Duration::from_secs(20), || {
        size(&part) == 150_000 || unnamed_file_size(pid, &tmp.join("out")) == Some(150_000)
    }));
    assert!(!tmp.join("out/small.part.meta").exists());
    assert!(!tmp.join("out/small").exists());
    Command::new("kill")
        .args(["-KILL", &child.id().to_string()])
        .status()
        .unwrap();
    wait(child, tmp.path());
}

#[test]
fn ctrl_c_during_a_small_body_names_its_part_and_the_rerun_continues_it() {
    let body = random_bytes(11, 600_000);
    let half = 300_000;
    let server = TestServer::start();
    let res = Resource::new(body.clone());
    let stall = Arc::new(AtomicBool::new(true));
    {
        let (res, stall) = (res.clone(), Arc::clone(&stall));
        server.route("/small", move |req| {
            let reply = Reply::file(req, &res);
            if stall.load(Ordering::SeqCst) {
                reply.stall_after(half)
            } else {
                reply
            }
        });
    }
    let tmp = TempDir::new();
    let list = one_job_list(&tmp, &server.url("/small"), "small.bin", &body);
    let child = spawn(tmp.path(), &["-i", &list, "-o", "out"]);
    let part = tmp.join("out/small.bin.part");
    let pid = child.id();
    assert!(wait_until(Duration::from_secs(20), || {
        size(&part) == half as u64 || unnamed_file_size(pid, &tmp.join("out")) == Some(half as u64)
    }));
    // Where the body went unnamed, nothing names it until the interruption does.
    let unnamed = unnamed_file_size(pid, &tmp.join("out")) == Some(half as u64);
    eprintln!(
        "small body in flight: unnamed file {unnamed}, named .part {}",
        part.exists()
    );
    assert_eq!(part.exists(), !unnamed);
    Command::new("kill")
        .args(["-INT", &pid.to_string()])
        .status()
        .unwrap();
    let run = wait(child, tmp.path());
    assert_eq!(run.code, 130, "stderr: {}", run.stderr);
    // Interrupted with bytes worth keeping: the body now has its .part name and sidecar.
    assert_eq!(size(&part), half as u64);
    assert!(tmp.join("out/small.bin.part.meta").exists());
    assert!(!tmp.join("out/small.bin").exists());

    stall.store(false, Ordering::SeqCst);
    let run = fetchpool(tmp.path(), &["-i", &list, "-o", "out"], None);
    assert_eq!(run.code, 0, "stderr: {}", run.stderr);
    let requests = server.requests();
    assert_eq!(requests.len(), 2);
    assert_eq!(
        requests[1].header("range"),
        Some(format!("bytes={half}-").as_str())
    );
    assert_eq!(requests[1].header("if-range"), res.etag.as_deref());
    assert_eq!(requests[1].status, Some(206));
    assert_eq!(run.line(&server.url("/small"))["resumed_from"], half as u64);
    assert!(fs::read(tmp.join("out/small.bin")).unwrap() == body);
    assert!(!part.exists());
    assert!(!tmp.join("out/small.bin.part.meta").exists());
}

/// Thirty small files served with ETags, and their list (with or without sha256).
fn thirty(server: &TestServer, tmp: &TempDir, with_sha: bool) -> (String, Vec<Vec<u8>>) {
    let mut list = String::new();
    let mut bodies = Vec::new();
    for i in 0..30u64 {
        let body = random_bytes(100 + i, 1000 + 37 * i as usize);
        server.file(&format!("/f/{i}"), body.clone());
        let sha = if with_sha {
            sha256_hex(&body)
        } else {
            String::new()
        };
        list.push_str(&format!(
            "{}\tf{i}.bin\t{sha}\n",
            server.url(&format!("/f/{i}"))
        ));
        bodies.push(body);
    }
    (write_list(tmp.path(), "list.tsv", &list), bodies)
}

#[test]
fn a_second_run_over_files_listed_with_sha256_sends_no_request() {
    let server = TestServer::start();
    let tmp = TempDir::new();
    let (list, bodies) = thirty(&server, &tmp, true);
    let first = fetchpool(tmp.path(), &["-i", &list, "-o", "out"], None);
    assert_eq!(first.code, 0, "stderr: {}", first.stderr);
    assert_eq!(first.with_status("ok").len(), 30);
    assert_eq!(server.requests().len(), 30);

    let second = fetchpool(tmp.path(), &["-i", &list, "-o", "out"], None);
    assert_eq!(second.code, 0, "stderr: {}", second.stderr);
    assert_eq!(second.with_status("skipped").len(), 30);
    assert_eq!(server.requests().len(), 30, "no request in the second run");

    // One file damaged: only that one is fetched again.
    fs::write(tmp.join("out/f7.bin"), b"damaged").unwrap();
    let third = fetchpool(tmp.path(), &["-i", &list, "-o", "out"], None);
    assert_eq!(third.code, 0, "stderr: {}", third.stderr);
    assert_eq!(third.with_status("skipped").len(), 29);
    assert_eq!(third.line(&server.url("/f/7"))["status"], "ok");
    assert_eq!(server.requests().len(), 31);
    // The damaged file was replaced in one step, with nothing left beside it.
    assert!(fs::read(tmp.join("out/f7.bin")).unwrap() == bodies[7]);
    let names: Vec<String> = fs::read_dir(tmp.join("out"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| !n.ends_with(".bin"))
        .collect();
    assert!(
        names.iter().all(|n| n == ".fetchpool"),
        "left over: {names:?}"
    );
}

#[test]
fn without_sha256_stored_etags_make_every_request_conditional_and_304_skips() {
    let server = TestServer::start();
    let tmp = TempDir::new();
    let (list, bodies) = thirty(&server, &tmp, false);
    let first = fetchpool(tmp.path(), &["-i", &list, "-o", "out"], None);
    assert_eq!(first.code, 0, "stderr: {}", first.stderr);
    assert_eq!(first.with_status("ok").len(), 30);
    let mtimes: Vec<_> = (0..30)
        .map(|i| {
            fs::metadata(tmp.join(format!("out/f{i}.bin")))
                .unwrap()
                .modified()
                .unwrap()
        })
        .collect();

    let second = fetchpool(tmp.path(), &["-i", &list, "-o", "out"], None);
    assert_eq!(second.code, 0, "stderr: {}", second.stderr);
    assert_eq!(second.with_status("skipped").len(), 30);
    let requests = &server.requests()[30..];
    assert_eq!(requests.len(), 30);
    for r in requests {
        assert!(
            r.header("if-none-match").is_some(),
            "unconditional: {}",
            r.path
        );
        assert_eq!(r.status, Some(304), "{}", r.path);
    }
    for i in 0..30 {
        let path = tmp.join(format!("out/f{i}.bin"));
        assert_eq!(fs::metadata(&path).unwrap().modified().unwrap(), mtimes[i]);
        assert!(fs::read(&path).unwrap() == bodies[i]);
        assert_eq!(
            second.line(&server.url(&format!("/f/{i}")))["http_status"],
            304
        );
    }
}

#[test]
fn verify_passes_an_intact_tree_and_names_a_flipped_byte_and_a_missing_file() {
    let tmp = TempDir::new();
    let mut list = String::new();
    for i in 0..40u64 {
        let body = random_bytes(200 + i, 10_000 + 101 * i as usize);
        let rel = format!("d{}/f{i}.bin", i % 4);
        fs::create_dir_all(tmp.join("tree").join(format!("d{}", i % 4))).unwrap();
        fs::write(tmp.join("tree").join(&rel), &body).unwrap();
        list.push_str(&format!("http://h/{i}\t{rel}\t{}\n", sha256_hex(&body)));
    }
    let list = write_list(tmp.path(), "list.tsv", &list);
    assert_eq!(
        verify(tmp.path(), &["-i", &list, "-o", "tree"]),
        (0, String::new())
    );

    let victim = tmp.join("tree/d1/f5.bin");
    let mut bytes = fs::read(&victim).unwrap();
    bytes[1234] ^= 1;
    fs::write(&victim, bytes).unwrap();
    let (code, out) = verify(tmp.path(), &["-i", &list, "-o", "tree"]);
    assert_eq!(code, 1);
    assert_eq!(out.lines().count(), 1, "{out}");
    assert!(out.starts_with("mismatch\td1/f5.bin\t"), "{out}");

    fs::remove_file(tmp.join("tree/d2/f10.bin")).unwrap();
    let (code, out) = verify(tmp.path(), &["-i", &list, "-o", "tree", "--json"]);
    assert_eq!(code, 1);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["ok"], 38);
    assert_eq!(v["missing"][0]["path"], "d2/f10.bin");
    assert_eq!(v["mismatched"][0]["path"], "d1/f5.bin");
}

#[test]
fn a_server_that_ignores_ranges_gets_a_clean_restart() {
    let body = random_bytes(7, 2 << 20);
    let cut = body.len() * 40 / 100;
    let server = TestServer::start();
    let res = Resource::new(body.clone()).no_ranges();
    server.route("/cut", move |req| {
        let reply = Reply::file(req, &res);
        if req.hit == 1 {
            reply.cut_after(cut)
        } else {
            reply
        }
    });
    let tmp = TempDir::new();
    let run = fetchpool(tmp.path(), &[&server.url("/cut"), "-o", "out"], None);
    assert_eq!(run.code, 0, "stderr: {}", run.stderr);
    let requests = server.requests();
    assert_eq!(requests.len(), 2);
    assert_eq!(
        requests[1].header("range"),
        Some(format!("bytes={cut}-").as_str())
    );
    assert_eq!(requests[1].status, Some(200));
    let line = run.line(&server.url("/cut"));
    assert_eq!(line["resumed_from"], serde_json::Value::Null);
    assert_eq!(line["bytes"], body.len() as u64);
    assert!(fs::read(tmp.join("out/cut")).unwrap() == body);
}

#[test]
fn a_part_already_whole_is_finished_from_the_416_without_a_body() {
    let body = random_bytes(8, 3 << 20);
    let server = TestServer::start();
    let res = server.file("/whole", body.clone());
    let tmp = TempDir::new();
    fs::create_dir_all(tmp.join("out")).unwrap();
    fs::write(tmp.join("out/whole.part"), &body).unwrap();
    // The sidecar format documented in README.md. The total is unknown (a body sent
    // without a length): a part with a known total that equals it needs no request at
    // all (tests/integrity.rs), one without is proven whole by the 416's length.
    let meta = serde_json::json!({
        "url": server.url("/whole"),
        "validator": res.etag.as_deref().unwrap(),
        "total": null,
    });
    fs::write(tmp.join("out/whole.part.meta"), meta.to_string()).unwrap();
    let run = fetchpool(tmp.path(), &[&server.url("/whole"), "-o", "out"], None);
    assert_eq!(run.code, 0, "stderr: {}", run.stderr);
    let requests = server.requests();
    assert_eq!(requests.len(), 1);
    assert_eq!(requests[0].status, Some(416));
    let line = run.line(&server.url("/whole"));
    assert_eq!(line["status"], "ok");
    assert_eq!(line["resumed_from"], body.len() as u64);
    assert_eq!(line["sha256"], sha256_hex(&body));
    assert!(fs::read(tmp.join("out/whole")).unwrap() == body);
    assert!(!tmp.join("out/whole.part.meta").exists());
}

#[test]
fn jobs_submitted_one_by_one_to_a_session_are_skipped_when_their_file_is_right() {
    let server = TestServer::start();
    let body = random_bytes(9, 50_000);
    server.file("/s.bin", body.clone());
    let tmp = TempDir::new();
    fs::create_dir_all(tmp.join("out")).unwrap();
    fs::write(tmp.join("out/s.bin"), &body).unwrap();
    let pool = fetchpool::Pool::builder()
        .workers(2)
        .output_dir(tmp.join("out"))
        .build()
        .unwrap();
    let mut session = pool.start();
    session
        .submit(fetchpool::Job::new(server.url("/s.bin")).sha256(sha256_hex(&body)))
        .unwrap();
    session.close();
    let outcomes: Vec<_> = (&mut session)
        .filter_map(|e| match e {
            fetchpool::Event::Finished(o) => Some(o),
            _ => None,
        })
        .collect();
    assert_eq!(outcomes.len(), 1);
    assert_eq!(outcomes[0].status, fetchpool::Status::Skipped);
    assert_eq!(outcomes[0].bytes, body.len() as u64);
    assert_eq!(server.requests().len(), 0);
}

#[test]
fn ctrl_c_interrupts_a_stalled_transfer_without_waiting_for_the_idle_timeout() {
    let server = TestServer::start();
    let body = random_bytes(10, 4 << 20);
    let res = Resource::new(body);
    server.route("/stall", move |req| {
        Reply::file(req, &res).stall_after(2 << 20)
    });
    let tmp = TempDir::new();
    let child = spawn(
        tmp.path(),
        &[&server.url("/stall"), "-o", "out", "--idle-timeout", "60"],
    );
    let part = tmp.join("out/stall.part");
    assert!(wait_until(Duration::from_secs(20), || size(&part) == 2 << 20));
    let signalled = std::time::Instant::now();
    Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    let run = wait(child, tmp.path());
    assert_eq!(run.code, 130, "stderr: {}", run.stderr);
    assert!(
        signalled.elapsed() < Duration::from_secs(15),
        "took {:?}: the blocked read was not interrupted",
        signalled.elapsed()
    );
    assert_eq!(size(&part), 2 << 20);
    assert!(tmp.join("out/stall.part.meta").exists());
}
