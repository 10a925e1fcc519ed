//! Failures with names: timeouts by phase, the error taxonomy against real sockets,
//! retries with backoff and `Retry-After`, per-host back-off, stale keep-alive
//! connections, local I/O errors, events and attempt counts.

mod support;

use std::collections::HashSet;
use std::fs;
use std::net::TcpListener;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use fetchpool::{ErrorKind, Event, Job, Pool, Status, TimeoutPhase};
use support::cli::{fetchpool, write_list};
use support::{Reply, TempDir, TestServer, http_date, random_bytes, sha256_hex};

/// Seconds between the starts of two logged requests.
fn gap(a: &support::RequestLog, b: &support::RequestLog) -> f64 {
    b.started.duration_since(a.started).as_secs_f64()
}

#[test]
fn a_body_that_stalls_after_half_fails_as_a_stall_within_the_idle_timeout() {
    let server = TestServer::start();
    let tmp = TempDir::new();
    let body = random_bytes(1, 200_000);
    server.route("/stall.bin", move |_| Reply::ok(&body).stall_after(100_000));
    let url = server.url("/stall.bin");
    let t0 = Instant::now();
    let run = fetchpool(
        tmp.path(),
        &[&url, "-o", "out", "--idle-timeout", "2", "--retries", "0"],
        None,
    );
    let took = t0.elapsed();
    assert_eq!(run.code, 1, "stderr: {}", run.stderr);
    let line = run.line(&url);
    assert_eq!(line["status"], "failed");
    assert_eq!(line["error"]["kind"], "timeout");
    assert_eq!(line["error"]["phase"], "stall");
    assert_eq!(line["attempts"], 1);
    assert_eq!(line["http_status"], 200);
    eprintln!("stall after half, --idle-timeout 2: failed in {took:?}");
    assert!(took < Duration::from_secs(4), "took {took:?}");
    assert!(took >= Duration::from_secs(2), "gave up early: {took:?}");
    assert!(!tmp.join("out/stall.bin").exists());
    assert_eq!(server.hits("/stall.bin"), 1);
}

#[test]
fn a_server_that_never_answers_fails_at_the_deadline() {
    let server = TestServer::start();
    let tmp = TempDir::new();
    server.route("/silent", |_| Reply::hang());
    let url = server.url("/silent");
    let t0 = Instant::now();
    let run = fetchpool(tmp.path(), &[&url, "-o", "out", "--max-time", "3"], None);
    let took = t0.elapsed();
    assert_eq!(run.code, 1, "stderr: {}", run.stderr);
    let line = run.line(&url);
    assert_eq!(line["status"], "failed");
    assert_eq!(line["error"]["kind"], "timeout");
    assert_eq!(line["error"]["phase"], "deadline");
    assert_eq!(line["attempts"], 1, "no budget is left for a retry");
    let elapsed_ms = line["elapsed_ms"].as_u64().unwrap();
    eprintln!("silent server, --max-time 3: job failed at {elapsed_ms} ms, run {took:?}");
    assert!(
        (2900..4000).contains(&elapsed_ms),
        "job elapsed {elapsed_ms} ms"
    );
    assert!(took < Duration::from_secs(6), "run took {took:?}");
}

#[test]
fn a_closed_port_is_a_connect_failure() {
    let port = {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let tmp = TempDir::new();
    let url = format!("http://127.0.0.1:{port}/x.bin");
    let run = fetchpool(tmp.path(), &[&url, "-o", "out", "--retries", "1"], None);
    assert_eq!(run.code, 1, "stderr: {}", run.stderr);
    let line = run.line(&url);
    assert_eq!(line["status"], "failed");
    assert_eq!(line["error"]["kind"], "connect");
    assert_eq!(line["error"]["phase"], serde_json::Value::Null);
    assert_eq!(line["attempts"], 2, "a refused connection is worth a retry");
    assert_eq!(line["http_status"], serde_json::Value::Null);
}

#[test]
fn two_503s_then_200_end_ok_after_three_attempts() {
    let server = TestServer::start();
    let tmp = TempDir::new();
    let body = random_bytes(3, 4096);
    let served = body.clone();
    server.route("/flaky", move |req| match req.hit {
        1 | 2 => Reply::status(503).body("busy\n"),
        _ => Reply::ok(&served),
    });
    let url = server.url("/flaky");
    let run = fetchpool(tmp.path(), &[&url, "-o", "out"], None);
    assert_eq!(run.code, 0, "stderr: {}", run.stderr);
    let line = run.line(&url);
    assert_eq!(line["status"], "ok");
    assert_eq!(line["attempts"], 3);
    assert_eq!(line["http_status"], 200);
    assert_eq!(line["sha256"], sha256_hex(&body));
    assert_eq!(server.hits("/flaky"), 3);
    assert_eq!(fs::read(tmp.join("out/flaky")).unwrap(), body);
}

#[test]
fn a_403_is_never_retried() {
    let server = TestServer::start();
    let tmp = TempDir::new();
    server.route("/forbidden", |_| Reply::status(403));
    let url = server.url("/forbidden");
    let run = fetchpool(tmp.path(), &[&url, "-o", "out", "--retries", "5"], None);
    let line = run.line(&url);
    assert_eq!(line["error"]["kind"], "http");
    assert_eq!(line["http_status"], 403);
    assert_eq!(line["attempts"], 1);
    assert_eq!(server.hits("/forbidden"), 1);
}

/// A 429 with `Retry-After: 2` delays the job's retry by 2 s and pauses its host: a job
/// for the same host waiting behind it starts no earlier either.
#[test]
fn retry_after_seconds_delays_the_retry_and_pauses_the_host() {
    let server = TestServer::start();
    let tmp = TempDir::new();
    server.route("/limited", |req| match req.hit {
        1 => Reply::status(429).header("Retry-After", "2"),
        _ => Reply::ok("fine\n"),
    });
    server.route("/other", |_| Reply::ok("other\n"));
    let list = format!("{}\n{}\n", server.url("/limited"), server.url("/other"));
    let name = write_list(tmp.path(), "l.txt", &list);
    let run = fetchpool(
        tmp.path(),
        &["-i", &name, "-o", "out", "-j", "2", "--per-host", "1"],
        None,
    );
    assert_eq!(run.code, 0, "stderr: {}", run.stderr);
    assert_eq!(run.line(&server.url("/limited"))["attempts"], 2);
    assert_eq!(run.line(&server.url("/other"))["attempts"], 1);
    let log = server.requests();
    let limited: Vec<_> = log.iter().filter(|r| r.path == "/limited").collect();
    let other: Vec<_> = log.iter().filter(|r| r.path == "/other").collect();
    assert_eq!((limited.len(), other.len()), (2, 1));
    let retry = gap(limited[0], limited[1]);
    let other = gap(limited[0], other[0]);
    eprintln!("429 Retry-After 2: retry after {retry:.2} s, same-host job after {other:.2} s");
    assert!(retry >= 2.0, "retry came {retry:.2} s after the 429");
    assert!(
        other >= 2.0,
        "the paused host got a request {other:.2} s after the 429"
    );
    assert!(retry < 4.0, "retry came {retry:.2} s after the 429");
}

#[test]
fn retry_after_as_an_http_date_delays_the_retry() {
    let server = TestServer::start();
    let tmp = TempDir::new();
    server.route("/dated", |req| match req.hit {
        1 => {
            let at = SystemTime::now() + Duration::from_secs(3);
            Reply::status(503).header("Retry-After", &http_date(at))
        }
        _ => Reply::ok("later\n"),
    });
    let url = server.url("/dated");
    let run = fetchpool(tmp.path(), &[&url, "-o", "out"], None);
    assert_eq!(run.code, 0, "stderr: {}", run.stderr);
    assert_eq!(run.line(&url)["attempts"], 2);
    let log = server.requests();
    // The date has whole seconds, so "now + 3 s" means a wait between 2 and 3 s.
    let retry = gap(&log[0], &log[1]);
    eprintln!("503 Retry-After HTTP-date (now + 3 s): retry after {retry:.2} s");
    assert!(retry >= 2.0, "retry came {retry:.2} s after the 503");
    assert!(retry < 5.0, "retry came {retry:.2} s after the 503");
}

#[test]
fn a_body_shorter_than_its_content_length_fails_after_two_requests_leaving_no_file() {
    let server = TestServer::start();
    let tmp = TempDir::new();
    server.route("/short.bin", |_| {
        Reply::ok(random_bytes(5, 10_000)).declared_len(20_000)
    });
    let url = server.url("/short.bin");
    let run = fetchpool(tmp.path(), &[&url, "-o", "out", "--retries", "1"], None);
    assert_eq!(run.code, 1, "stderr: {}", run.stderr);
    let line = run.line(&url);
    assert_eq!(line["status"], "failed");
    assert_eq!(line["error"]["kind"], "network");
    assert_eq!(line["attempts"], 2);
    assert_eq!(server.hits("/short.bin"), 2);
    assert!(!tmp.join("out/short.bin").exists());
}

/// The server closes a keep-alive connection without warning twice per 100 requests: once
/// right after a response with no `Connection: close` (ureq's pool finds it dead, or the
/// next request races the close), and once as a request arrives on a reused connection
/// (the close raced the request: nothing is answered). With `--retries 0`, a stale
/// connection that cost an attempt would fail its job.
#[test]
fn ten_thousand_requests_survive_stale_keep_alive_connections_without_spending_attempts() {
    let server = TestServer::start();
    let tmp = TempDir::new();
    let count = AtomicUsize::new(0);
    let due = AtomicUsize::new(0);
    let dropped = Arc::new(AtomicUsize::new(0));
    let conns_seen = Mutex::new(HashSet::new());
    let dropped_in_handler = dropped.clone();
    server.fallback(move |req| {
        let n = count.fetch_add(1, Ordering::SeqCst);
        let reused = !conns_seen.lock().unwrap().insert(req.conn);
        if n % 100 == 49 {
            due.fetch_add(1, Ordering::SeqCst);
        }
        if reused
            && due
                .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |d| d.checked_sub(1))
                .is_ok()
        {
            dropped_in_handler.fetch_add(1, Ordering::SeqCst);
            return Reply::raw(b"");
        }
        let body = req.path.as_bytes();
        if n % 100 == 99 {
            let head = format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n", body.len());
            return Reply::raw([head.as_bytes(), body].concat());
        }
        Reply::ok(body)
    });
    let mut list = String::with_capacity(10_000 * 40);
    for i in 0..10_000 {
        list.push_str(&server.url(&format!("/r/{i}")));
        list.push('\n');
    }
    let name = write_list(tmp.path(), "l.txt", &list);
    let t0 = Instant::now();
    let run = fetchpool(
        tmp.path(),
        &[
            "-i",
            &name,
            "-o",
            "out",
            "-j",
            "32",
            "--per-host",
            "32",
            "--retries",
            "0",
        ],
        None,
    );
    let took = t0.elapsed();
    let not_ok: Vec<_> = run
        .report
        .iter()
        .filter(|l| l["status"] != "ok" || l["attempts"] != 1)
        .collect();
    assert!(
        not_ok.is_empty(),
        "{} jobs: {:#?}",
        not_ok.len(),
        &not_ok[..not_ok.len().min(3)]
    );
    assert_eq!(run.code, 0, "stderr: {}", run.stderr);
    assert_eq!(run.report.len(), 10_000);
    let dropped = dropped.load(Ordering::SeqCst);
    let requests = server.requests().len();
    let connections = server.connections();
    eprintln!(
        "10,000 jobs: {requests} requests ({dropped} dropped unanswered), \
         {connections} connections, {took:?}"
    );
    assert!(dropped >= 90, "only {dropped} stale connections were tried");
    assert_eq!(requests, 10_000 + dropped);
    assert!(
        connections < 400,
        "{connections} connections for 10,000 requests"
    );
}

/// Jobs wait in the queue for up to 50 s, but each job's budget starts when it starts.
#[test]
fn a_thousand_queued_jobs_never_fail_for_a_deadline_they_did_not_start() {
    let server = TestServer::start();
    let tmp = TempDir::new();
    server.fallback(|req| Reply::ok(req.path.as_bytes()).delay(Duration::from_millis(200)));
    let mut list = String::new();
    for i in 0..1000 {
        list.push_str(&server.url(&format!("/slow/{i}")));
        list.push('\n');
    }
    let name = write_list(tmp.path(), "l.txt", &list);
    let t0 = Instant::now();
    let run = fetchpool(
        tmp.path(),
        &["-i", &name, "-o", "out", "-j", "4", "--max-time", "2"],
        None,
    );
    let took = t0.elapsed();
    assert_eq!(run.code, 0, "stderr: {}", run.stderr);
    assert_eq!(run.with_status("ok").len(), 1000);
    assert!(
        took > Duration::from_secs(40),
        "the queue took only {took:?}"
    );
    eprintln!("1,000 jobs at 0.2 s over -j 4: {took:?}");
    let slowest = run
        .report
        .iter()
        .map(|l| l["elapsed_ms"].as_u64().unwrap())
        .max()
        .unwrap();
    eprintln!("slowest job by its own clock: {slowest} ms");
    assert!(slowest < 2000, "a job's own clock showed {slowest} ms");
}

#[test]
fn an_unwritable_part_file_is_an_io_error_naming_it_not_a_network_error() {
    let server = TestServer::start();
    let tmp = TempDir::new();
    // Over the sidecar threshold (1 MiB), so the body goes to a named .part file (smaller
    // ones start unnamed). A directory where the .part file must go: creating it fails
    // whoever runs the test (a read-only directory would not stop root).
    server.file("/blocked.bin", random_bytes(6, 2_000_000));
    fs::create_dir_all(tmp.join("out/blocked.bin.part")).unwrap();
    local_file_failure(&tmp, &server.url("/blocked.bin"), "blocked.bin.part");
    assert!(!tmp.join("out/blocked.bin").exists());
}

/// Downloads `url` into `tmp/out`, where the test put something in the way: the job
/// must fail once (retries allowed but not used), kind `io`, its message naming
/// `names`; returns the message.
fn local_file_failure(tmp: &TempDir, url: &str, names: &str) -> String {
    let run = fetchpool(tmp.path(), &[url, "-o", "out", "--retries", "3"], None);
    assert_eq!(run.code, 1, "stderr: {}", run.stderr);
    let line = run.line(url);
    assert_eq!(line["status"], "failed");
    assert_eq!(line["error"]["kind"], "io");
    assert_eq!(line["attempts"], 1, "a local file error is not retried");
    let message = line["error"]["message"].as_str().unwrap().to_string();
    assert!(message.contains(names), "{message}");
    message
}

/// A library caller sees every kind of event, with a retry's reason and delay.
#[test]
fn events_tell_an_observer_what_happened_to_each_job() {
    let server = TestServer::start();
    let tmp = TempDir::new();
    let big = random_bytes(7, 3 << 20);
    server.file("/big.bin", big.clone());
    server.route("/moved", |_| Reply::redirect(302, "/big.bin"));
    server.route("/busy", |req| match req.hit {
        1 => Reply::status(503).header("Retry-After", "1"),
        _ => Reply::ok("done\n"),
    });
    let pool = Pool::builder()
        .workers(2)
        .output_dir(tmp.join("out"))
        .build()
        .unwrap();
    let mut events = Vec::new();
    let summary = pool.run_with(
        vec![
            Job::new(server.url("/moved")).to_file("big.bin"),
            Job::new(server.url("/busy")).to_memory(),
        ],
        |event, _| events.push(event.clone()),
    );
    assert_eq!(summary.ok, 2, "{events:#?}");

    let queued = events
        .iter()
        .filter(|e| matches!(e, Event::Queued { .. }))
        .count();
    assert_eq!(queued, 2);
    let starts: Vec<u32> = events
        .iter()
        .filter_map(|e| match e {
            Event::Started { attempt, .. } => Some(*attempt),
            _ => None,
        })
        .collect();
    assert_eq!(starts.iter().filter(|a| **a == 1).count(), 2);
    assert_eq!(starts.iter().filter(|a| **a == 2).count(), 1);

    let redirected: Vec<(u16, &str)> = events
        .iter()
        .filter_map(|e| match e {
            Event::Redirected { status, to, .. } => Some((*status, to.as_str())),
            _ => None,
        })
        .collect();
    assert_eq!(redirected, [(302, server.url("/big.bin").as_str())]);

    let finished: Vec<&fetchpool::Outcome> = events
        .iter()
        .filter_map(|e| match e {
            Event::Finished(o) => Some(&**o),
            _ => None,
        })
        .collect();
    assert_eq!(finished.len(), 2);
    let busy = finished.iter().find(|o| o.url.ends_with("/busy")).unwrap();
    let moved = finished.iter().find(|o| o.url.ends_with("/moved")).unwrap();

    let progress: Vec<(u64, Option<u64>)> = events
        .iter()
        .filter_map(|e| match e {
            Event::Progress { id, bytes, total } if *id == moved.id => Some((*bytes, *total)),
            _ => None,
        })
        .collect();
    assert!(progress.len() >= 2, "{progress:?}");
    assert!(progress.windows(2).all(|w| w[0].0 < w[1].0), "{progress:?}");
    assert!(
        progress
            .iter()
            .all(|(b, t)| *t == Some(big.len() as u64) && *b <= big.len() as u64)
    );

    let retrying: Vec<_> = events
        .iter()
        .filter_map(|e| match e {
            Event::Retrying {
                attempt,
                reason,
                delay,
                ..
            } => Some((*attempt, reason.clone(), *delay)),
            _ => None,
        })
        .collect();
    assert_eq!(retrying.len(), 1);
    let (attempt, reason, delay) = &retrying[0];
    assert_eq!(*attempt, 1);
    assert_eq!(reason.kind(), ErrorKind::Http);
    assert_eq!(reason.http_status(), Some(503));
    assert_eq!(reason.retry_after(), Some(Duration::from_secs(1)));
    assert_eq!(*delay, Duration::from_secs(1));

    assert_eq!((busy.status, busy.attempts), (Status::Ok, 2));
    assert_eq!((moved.status, moved.attempts), (Status::Ok, 1));
    assert_eq!(moved.redirects, [server.url("/big.bin")]);
    assert_eq!(fs::read(tmp.join("out/big.bin")).unwrap(), big);
    // Each job's events run queued → started … → finished.
    for o in [busy, moved] {
        let mine: Vec<&Event> = events
            .iter()
            .filter(|e| event_id(e) == Some(o.id))
            .collect();
        assert!(matches!(mine[0], Event::Queued { .. }), "{mine:#?}");
        assert!(
            matches!(mine[1], Event::Started { attempt: 1, .. }),
            "{mine:#?}"
        );
        assert!(
            matches!(mine.last().unwrap(), Event::Finished(_)),
            "{mine:#?}"
        );
    }
}

fn event_id(e: &Event) -> Option<fetchpool::JobId> {
    match e {
        Event::Queued { id, .. }
        | Event::Started { id, .. }
        | Event::Progress { id, .. }
        | Event::Redirected { id, .. }
        | Event::Retrying { id, .. } => Some(*id),
        Event::Finished(o) => Some(o.id),
        _ => None,
    }
}

/// `attempts` counts every attempt through a mix of failures: two resets before any
/// response and a 500, then success.
#[test]
fn attempts_count_every_attempt_across_kinds_of_failure() {
    let server = TestServer::start();
    let tmp = TempDir::new();
    let calls = Arc::new(AtomicUsize::new(0));
    let seen = calls.clone();
    server.route("/mixed", move |req| {
        seen.fetch_add(1, Ordering::SeqCst);
        match req.hit {
            1 => Reply::raw(b""),
            2 => Reply::status(500),
            _ => Reply::ok("at last\n"),
        }
    });
    let pool = Pool::builder()
        .output_dir(tmp.path())
        .retry_base_delay(Duration::from_millis(10))
        .build()
        .unwrap();
    let report = pool
        .run(vec![Job::new(server.url("/mixed")).to_memory()])
        .unwrap();
    let o = &report.outcomes[0];
    assert_eq!(o.status, Status::Ok, "{:?}", o.error);
    assert_eq!(o.attempts, 3);
    assert_eq!(calls.load(Ordering::SeqCst), 3);
    assert_eq!(o.body.as_deref(), Some(&b"at last\n"[..]));
}

#[test]
fn a_stall_with_retries_left_is_retried_and_reported_as_a_stall() {
    let server = TestServer::start();
    let tmp = TempDir::new();
    server.route("/stuck", |_| Reply::hang());
    let pool = Pool::builder()
        .output_dir(tmp.path())
        .idle_timeout(Duration::from_millis(500))
        .retries(1)
        .retry_base_delay(Duration::from_millis(10))
        .build()
        .unwrap();
    let report = pool
        .run(vec![Job::new(server.url("/stuck")).to_memory()])
        .unwrap();
    let o = &report.outcomes[0];
    let e = o.error.as_ref().unwrap();
    assert_eq!((o.status, o.attempts), (Status::Failed, 2));
    assert_eq!(e.kind(), ErrorKind::Timeout);
    assert_eq!(e.phase(), Some(TimeoutPhase::Stall));
    assert_eq!(server.hits("/stuck"), 2);
}

/// A disk that refuses more bytes mid-body. fetchpool never writes through a link (a
/// `.part` linked to `/dev/full` is replaced), so the refusal is a file-size limit
/// (`ulimit -f`, with `SIGXFSZ` ignored so that the write fails with `EFBIG` instead):
/// after 512 KiB every write of the `.part` fails, as on a full disk.
#[cfg(target_os = "linux")]
#[test]
fn a_write_that_fails_mid_body_is_an_io_error_naming_the_part_file() {
    let server = TestServer::start();
    let tmp = TempDir::new();
    // Over the sidecar threshold, so the body goes to the named .part (see above).
    let url = server.url("/full.bin");
    server.file("/full.bin", random_bytes(8, 2_000_000));
    let report = tmp.join("report.jsonl");
    let out = std::process::Command::new("sh")
        .current_dir(tmp.path())
        .args(["-c", "trap '' XFSZ; ulimit -f 1024; exec \"$0\" \"$@\""])
        .arg(support::cli::bin())
        .args([url.as_str(), "-o", "out", "--retries", "3", "--report"])
        .arg(&report)
        .env_remove("http_proxy")
        .env_remove("HTTP_PROXY")
        .env_remove("ALL_PROXY")
        .env_remove("all_proxy")
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(1),
        "stderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let line: serde_json::Value =
        serde_json::from_str(fs::read_to_string(&report).unwrap().trim()).unwrap();
    assert_eq!(line["status"], "failed");
    assert_eq!(line["error"]["kind"], "io");
    assert_eq!(line["attempts"], 1, "a local file error is not retried");
    let message = line["error"]["message"].as_str().unwrap();
    assert!(message.contains("full.bin.part"), "{message}");
    assert!(message.contains("File too large"), "{message}");
    assert_eq!(server.hits("/full.bin"), 1);
    assert!(!tmp.join("out/full.bin").exists());
    assert!(!tmp.join("out/full.bin.part").exists());
}

#[test]
fn a_small_body_whose_path_is_a_directory_is_an_io_error_naming_it() {
    let server = TestServer::start();
    let tmp = TempDir::new();
    server.file("/taken.bin", random_bytes(10, 5000));
    fs::create_dir_all(tmp.join("out/taken.bin/inside")).unwrap();
    local_file_failure(&tmp, &server.url("/taken.bin"), "taken.bin");
    assert!(
        tmp.join("out/taken.bin/inside").is_dir(),
        "the directory is untouched"
    );
    assert!(
        !tmp.join("out/taken.bin.part").exists(),
        "nothing is left beside it"
    );
}

#[test]
fn a_connection_cut_mid_body_is_a_network_failure() {
    let server = TestServer::start();
    let tmp = TempDir::new();
    let body = random_bytes(9, 100_000);
    server.route("/cut.bin", move |_| Reply::ok(&body).cut_after(40_000));
    let pool = Pool::builder()
        .output_dir(tmp.path())
        .retries(0)
        .build()
        .unwrap();
    let report = pool
        .run(vec![Job::new(server.url("/cut.bin")).to_file("cut.bin")])
        .unwrap();
    let o = &report.outcomes[0];
    let e = o.error.as_ref().unwrap();
    assert_eq!((o.status, o.attempts), (Status::Failed, 1));
    assert_eq!(e.kind(), ErrorKind::Network, "{e}");
    assert!(e.is_transient());
    assert_eq!(o.http_status, Some(200));
    assert!(!tmp.join("cut.bin").exists());
}

/// A 503 whose `Retry-After` date has a twelve-digit year overflowed the date's seconds
/// and panicked the worker reading it: the run hung with no report line. The date is
/// now invalid, so the retry waits the usual backoff. (Found by the `headers` fuzz target.)
#[test]
fn a_retry_after_date_in_a_huge_year_is_ignored_instead_of_hanging_the_run() {
    let server = TestServer::start();
    let tmp = TempDir::new();
    server.route("/far", |req| match req.hit {
        1 => Reply::status(503).header("Retry-After", "Sun, 06 Nov 999999999999 08:49:37 GMT"),
        _ => Reply::ok("later\n"),
    });
    let url = server.url("/far");
    let mut child = support::cli::spawn(tmp.path(), &[&url, "-o", "out"]);
    let deadline = Instant::now() + Duration::from_secs(20);
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            let run = support::cli::wait(child, tmp.path());
            panic!("the run hung; stderr: {}", run.stderr);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let run = support::cli::wait(child, tmp.path());
    assert_eq!(run.code, 0, "stderr: {}", run.stderr);
    let line = run.line(&url);
    assert_eq!(line["status"], "ok");
    assert_eq!(line["attempts"], 2);
    assert_eq!(fs::read(tmp.join("out/far")).unwrap(), b"later\n");
}
