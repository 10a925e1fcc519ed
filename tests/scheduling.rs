//! Scheduling: per-host caps without head-of-line blocking, strict serial order,
//! dependencies, fail-fast, priority, and follow-up jobs submitted while the pool runs.
//!
//! Figures are measured on the server side (its request log holds when each request's
//! head was read and when its response was written), so they prove what the network saw,
//! not what fetchpool believes it did.

mod support;

use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use fetchpool::{Event, Job, Pool, Status};
use support::cli::{fetchpool, write_list};
use support::{Reply, RequestLog, TempDir, TestServer, random_bytes, sha256_hex, wait_until};

/// The logged request for `path`, panicking with the whole log when there is none.
fn request<'a>(log: &'a [RequestLog], path: &str) -> &'a RequestLog {
    log.iter()
        .find(|r| r.path == path)
        .unwrap_or_else(|| panic!("no request for {path}: {log:#?}"))
}

fn finished(r: &RequestLog) -> Instant {
    r.finished.expect("the response was written")
}

#[test]
fn a_slow_host_at_its_cap_does_not_hold_up_another_host() {
    let slow = TestServer::start();
    let fast = TestServer::start();
    let tmp = TempDir::new();
    let mut list = String::new();
    for i in 0..40 {
        slow.route(&format!("/a/{i}"), |_| {
            Reply::ok("slow").delay(Duration::from_millis(500))
        });
        list.push_str(&format!("{}\ta{i}\n", slow.url(&format!("/a/{i}"))));
    }
    for i in 0..40 {
        fast.route(&format!("/b/{i}"), |_| Reply::ok("fast"));
        list.push_str(&format!("{}\tb{i}\n", fast.url(&format!("/b/{i}"))));
    }
    let name = write_list(tmp.path(), "list.tsv", &list);

    let run = fetchpool(
        tmp.path(),
        &["-i", &name, "-o", "out", "--per-host", "2", "-j", "16"],
        None,
    );

    assert_eq!(run.code, 0, "stderr: {}", run.stderr);
    assert_eq!(run.with_status("ok").len(), 80);
    assert_eq!(
        slow.max_concurrent("/a/"),
        2,
        "the cap is reached, never passed"
    );
    assert!(
        fast.max_concurrent("/b/") <= 2,
        "{}",
        fast.max_concurrent("/b/")
    );
    let (a, b) = (slow.requests(), fast.requests());
    assert_eq!((a.len(), b.len()), (40, 40));
    let last_b = b.iter().map(finished).max().unwrap();
    let a_started = a.iter().filter(|r| r.started <= last_b).count();
    eprintln!(
        "per-host: peak A {}, peak B {}, A started when the last B finished: {a_started}",
        slow.max_concurrent("/a/"),
        fast.max_concurrent("/b/")
    );
    assert!(
        a_started < 10,
        "all 40 B jobs should finish while A is still on its first requests; A had started {a_started}"
    );
}

#[test]
fn serial_runs_one_job_at_a_time_in_input_order_retry_included() {
    let server = TestServer::start();
    let tmp = TempDir::new();
    let mut list = String::new();
    for (i, byte) in random_bytes(20, 20).into_iter().enumerate() {
        let delay = Duration::from_millis(u64::from(byte % 60));
        let path = format!("/s/{i:02}");
        if i == 7 {
            // No Retry-After: the retry waits for the jittered backoff, during which
            // nothing else may start.
            server.route(&path, move |req| {
                if req.hit == 1 {
                    Reply::status(503).delay(delay)
                } else {
                    Reply::ok("seven").delay(delay)
                }
            });
        } else {
            server.route(&path, move |_| Reply::ok(format!("job {i}")).delay(delay));
        }
        list.push_str(&format!("{}\ts{i:02}\n", server.url(&path)));
    }
    let name = write_list(tmp.path(), "list.tsv", &list);

    let run = fetchpool(
        tmp.path(),
        &[
            "-i",
            &name,
            "-o",
            "out",
            "--serial",
            "-j",
            "8",
            "--retries",
            "2",
        ],
        None,
    );

    assert_eq!(run.code, 0, "stderr: {}", run.stderr);
    assert_eq!(run.with_status("ok").len(), 20);
    assert_eq!(run.line(&server.url("/s/07"))["attempts"], 2);
    let log = server.requests();
    let mut expected: Vec<String> = (0..20).map(|i| format!("/s/{i:02}")).collect();
    expected.insert(8, "/s/07".into());
    let seen: Vec<&str> = log.iter().map(|r| r.path.as_str()).collect();
    assert_eq!(seen, expected);
    assert_eq!(log[7].status, Some(503));
    for pair in log.windows(2) {
        assert!(
            pair[1].started >= finished(&pair[0]),
            "{} started before {} was answered",
            pair[1].path,
            pair[0].path
        );
    }
    assert_eq!(server.max_concurrent("/s/"), 1);
}

/// A JSON-lines job named `id` for `url`, after `after`.
fn json_job(url: &str, path: &str, id: &str, after: &[&str]) -> String {
    serde_json::json!({"url": url, "path": path, "id": id, "after": after}).to_string() + "\n"
}

#[test]
fn a_chain_of_dependencies_runs_one_after_another() {
    let server = TestServer::start();
    let tmp = TempDir::new();
    for p in ["/a", "/b", "/c"] {
        server.route(p, |_| Reply::ok("step").delay(Duration::from_millis(200)));
    }
    // Listed backwards: order comes from the links, not from the list.
    let list = json_job(&server.url("/c"), "c", "c", &["b"])
        + &json_job(&server.url("/b"), "b", "b", &["a"])
        + &json_job(&server.url("/a"), "a", "a", &[]);
    let name = write_list(tmp.path(), "list.jsonl", &list);

    let run = fetchpool(tmp.path(), &["-i", &name, "-o", "out", "-j", "8"], None);

    assert_eq!(run.code, 0, "stderr: {}", run.stderr);
    assert_eq!(run.with_status("ok").len(), 3);
    let log = server.requests();
    let (a, b, c) = (
        request(&log, "/a"),
        request(&log, "/b"),
        request(&log, "/c"),
    );
    assert!(b.started >= finished(a), "b started before a was answered");
    assert!(c.started >= finished(b), "c started before b was answered");
    assert_eq!(log.len(), 3);
}

#[test]
fn a_failed_dependency_cancels_the_chain_without_requesting_it() {
    let server = TestServer::start();
    let tmp = TempDir::new();
    server.route("/b", |_| Reply::ok("b"));
    server.route("/c", |_| Reply::ok("c"));
    server.route("/free", |_| Reply::ok("free"));
    let list = json_job(&server.url("/a"), "a", "a", &[])
        + &json_job(&server.url("/b"), "b", "b", &["a"])
        + &json_job(&server.url("/c"), "c", "c", &["b"])
        + &json_job(&server.url("/free"), "free", "free", &[]);
    let name = write_list(tmp.path(), "list.jsonl", &list);

    let run = fetchpool(tmp.path(), &["-i", &name, "-o", "out"], None);

    assert_eq!(run.code, 1, "stderr: {}", run.stderr);
    let a = run.line(&server.url("/a"));
    assert_eq!(
        (a["status"].as_str(), a["http_status"].as_u64()),
        (Some("failed"), Some(404))
    );
    for p in ["/b", "/c"] {
        let line = run.line(&server.url(p));
        assert_eq!(line["status"], "cancelled", "{line}");
        assert_eq!(line["error"]["kind"], "dependency", "{line}");
        assert_eq!(line["attempts"], 0, "{line}");
        assert_eq!(server.hits(p), 0, "{p} was requested");
    }
    assert_eq!(run.line(&server.url("/free"))["status"], "ok");
    assert_eq!(run.report.len(), 4);
    assert!(tmp.join("out/free").exists());
}

#[test]
fn a_dependency_cycle_exits_2_before_any_request() {
    let server = TestServer::start();
    let tmp = TempDir::new();
    server.fallback(|_| Reply::ok("x"));
    let list = json_job(&server.url("/free"), "free", "free", &[])
        + &json_job(&server.url("/a"), "a", "a", &["c"])
        + &json_job(&server.url("/b"), "b", "b", &["a"])
        + &json_job(&server.url("/c"), "c", "c", &["b"]);
    let name = write_list(tmp.path(), "list.jsonl", &list);

    let run = fetchpool(tmp.path(), &["-i", &name, "-o", "out"], None);

    assert_eq!(run.code, 2, "stderr: {}", run.stderr);
    assert!(
        run.stderr.contains("cycle") && run.stderr.contains("2 → 4 → 3"),
        "{}",
        run.stderr
    );
    assert!(server.requests().is_empty());
    assert!(run.report.is_empty());
}

#[test]
fn fail_fast_starts_nothing_after_the_first_failure_and_reports_every_job() {
    let server = TestServer::start();
    let tmp = TempDir::new();
    let mut list = String::new();
    for i in 1..=40 {
        let path = format!("/f/{i:02}");
        if i != 5 {
            server.route(&path, |_| Reply::ok("x").delay(Duration::from_millis(150)));
        }
        list.push_str(&format!("{}\tf{i:02}\n", server.url(&path)));
    }
    let name = write_list(tmp.path(), "list.tsv", &list);

    let run = fetchpool(
        tmp.path(),
        &["-i", &name, "-o", "out", "--fail-fast", "-j", "4"],
        None,
    );

    assert_eq!(run.code, 1, "stderr: {}", run.stderr);
    assert_eq!(run.report.len(), 40);
    for i in 1..=40 {
        run.line(&server.url(&format!("/f/{i:02}")));
    }
    let failed = run.line(&server.url("/f/05"));
    assert_eq!(
        (failed["status"].as_str(), failed["http_status"].as_u64()),
        (Some("failed"), Some(404))
    );
    assert_eq!(run.with_status("failed").len(), 1);
    let log = server.requests();
    let failure = finished(request(&log, "/f/05"));
    let last_start = log.iter().map(|r| r.started).max().unwrap();
    let gap = last_start.saturating_duration_since(failure);
    eprintln!(
        "fail-fast: {} requests, last start {gap:?} after the failure",
        log.len()
    );
    assert!(
        gap <= Duration::from_millis(500),
        "a request started {gap:?} after the failure"
    );
    let cancelled = run.with_status("cancelled");
    assert_eq!(cancelled.len() + run.with_status("ok").len() + 1, 40);
    assert!(!cancelled.is_empty());
    for line in &cancelled {
        assert_eq!(line["error"]["kind"], "cancelled", "{line}");
        assert_eq!(line["attempts"], 0, "{line}");
        let url = line["url"].as_str().unwrap();
        let path = &url[server.url("").len() - 1..];
        assert_eq!(server.hits(path), 0, "{path} was requested");
    }
}

#[test]
fn higher_priority_runs_first_among_ready_jobs() {
    let server = TestServer::start();
    let tmp = TempDir::new();
    let open = Arc::new(AtomicBool::new(false));
    let gate = Arc::clone(&open);
    // The first job holds the only worker until every other job is queued.
    server.route("/gate", move |_| {
        assert!(wait_until(Duration::from_secs(10), || gate.load(Ordering::SeqCst)));
        Reply::ok("open")
    });
    server.fallback(|_| Reply::ok("x"));
    let pool = Pool::builder()
        .workers(1)
        .output_dir(tmp.path())
        .build()
        .unwrap();
    let mut session = pool.start();
    session
        .submit(Job::new(server.url("/gate")).to_memory())
        .unwrap();
    for (name, priority) in [
        ("low", -1),
        ("mid", 0),
        ("high", 5),
        ("mid2", 0),
        ("top", 9),
    ] {
        session
            .submit(
                Job::new(server.url(&format!("/{name}")))
                    .to_memory()
                    .priority(priority),
            )
            .unwrap();
    }
    session.close();
    let mut queued = 0;
    while queued < 6 {
        if let Some(Event::Queued { .. }) = session.next_event() {
            queued += 1;
        }
    }
    open.store(true, Ordering::SeqCst);
    let summary = session.wait();

    assert_eq!(summary.ok, 6);
    let order: Vec<String> = server.requests().into_iter().map(|r| r.path).collect();
    assert_eq!(order, ["/gate", "/top", "/high", "/mid", "/mid2", "/low"]);
}

#[test]
fn time_waiting_for_a_host_slot_does_not_count_against_max_time() {
    let server = TestServer::start();
    let tmp = TempDir::new();
    server.fallback(|_| Reply::ok("slow").delay(Duration::from_millis(400)));
    // Eight jobs in single file: the last waits 2.8 s for its slot, past a 2 s limit that
    // each 0.4 s request stays far inside even on a loaded machine.
    let pool = Pool::builder()
        .workers(4)
        .per_host(1)
        .max_time(Some(Duration::from_secs(2)))
        .output_dir(tmp.path())
        .build()
        .unwrap();
    let report = pool
        .run((0..8).map(|i| Job::new(server.url(&format!("/w/{i}"))).to_memory()))
        .unwrap();

    assert_eq!(report.summary.ok, 8, "{:#?}", report.outcomes);
    assert_eq!(server.max_concurrent("/w/"), 1);
    let log = server.requests();
    let span = finished(log.last().unwrap()) - log[0].started;
    assert!(span > Duration::from_millis(3200), "{span:?}");
}

#[test]
fn jobs_named_in_after_but_never_submitted_end_the_run_cancelled() {
    let server = TestServer::start();
    let tmp = TempDir::new();
    server.fallback(|_| Reply::ok("x"));
    let pool = Pool::builder().output_dir(tmp.path()).build().unwrap();
    let mut outcomes = Vec::new();
    // `run_with` leaves whole-list checks to the caller; a job waiting for an id that
    // never comes must still end, not hang the run.
    let summary = pool.run_with(
        [
            Job::new(server.url("/ok")).to_memory().id("ok"),
            Job::new(server.url("/orphan"))
                .to_memory()
                .after("ok")
                .after("ghost"),
        ],
        |event, _| {
            if let Event::Finished(o) = event {
                outcomes.push((
                    o.url.clone(),
                    o.status,
                    o.error.as_ref().map(|e| e.to_string()),
                ));
            }
        },
    );

    assert_eq!((summary.ok, summary.cancelled), (1, 1), "{outcomes:?}");
    let orphan = outcomes.iter().find(|o| o.0.ends_with("/orphan")).unwrap();
    assert_eq!(orphan.1, Status::Cancelled);
    assert!(orphan.2.as_deref().unwrap().contains("ghost"), "{orphan:?}");
    assert_eq!(server.hits("/orphan"), 0);
}

#[test]
fn the_chain_example_downloads_the_file_a_json_document_names() {
    let server = TestServer::start();
    let tmp = TempDir::new();
    let data = random_bytes(77, 50_000);
    server.file("/files/data.bin", data.clone());
    let doc =
        serde_json::json!({"url": server.url("/files/data.bin"), "sha256": sha256_hex(&data)});
    server.route("/latest.json", move |_| Reply::ok(doc.to_string()));

    let out = Command::new(support::cli::example("chain"))
        .arg(server.url("/latest.json"))
        .current_dir(tmp.path())
        .output()
        .unwrap();

    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 2, "{stdout}");
    assert!(
        lines[0].starts_with(&format!("ok\t{}\t", server.url("/latest.json"))),
        "{stdout}"
    );
    assert_eq!(
        lines[1],
        format!("ok\t{}\t50000 bytes", server.url("/files/data.bin"))
    );
    assert_eq!(std::fs::read(tmp.join("downloads/data.bin")).unwrap(), data);
    let paths: Vec<String> = server.requests().into_iter().map(|r| r.path).collect();
    assert_eq!(paths, ["/latest.json", "/files/data.bin"]);
}
