//! The library as a non-async codebase uses it, and the examples as a user runs them.

mod support;

use std::process::Command;

use fetchpool::{Event, Job, Pool, Status};
use support::{TempDir, TestServer, random_bytes, sha256_hex};

#[test]
fn run_returns_every_outcome_and_memory_jobs_carry_their_body() {
    let server = TestServer::start();
    let tmp = TempDir::new();
    server.file("/a.bin", random_bytes(9, 70_000));
    server.route("/api", |_| support::Reply::ok(b"{\"n\":1}"));
    let pool = Pool::builder()
        .workers(2)
        .output_dir(tmp.join("out"))
        .build()
        .unwrap();
    let report = pool
        .run(vec![
            Job::new(server.url("/a.bin")).sha256(sha256_hex(&random_bytes(9, 70_000))),
            Job::new(server.url("/api")).to_memory(),
        ])
        .unwrap();
    assert_eq!(report.summary.ok, 2);
    let api = report
        .outcomes
        .iter()
        .find(|o| o.url.ends_with("/api"))
        .unwrap();
    assert_eq!(api.body.as_deref(), Some(&b"{\"n\":1}"[..]));
    assert_eq!(api.path, None);
    assert_eq!(
        std::fs::read(tmp.join("out/a.bin")).unwrap(),
        random_bytes(9, 70_000)
    );
}

#[test]
fn memory_jobs_are_bounded_by_the_memory_limit() {
    let server = TestServer::start();
    let tmp = TempDir::new();
    server.file("/big", random_bytes(1, 10_000));
    let pool = Pool::builder()
        .output_dir(tmp.path())
        .memory_limit(1000)
        .build()
        .unwrap();
    let report = pool
        .run(vec![Job::new(server.url("/big")).to_memory()])
        .unwrap();
    let o = &report.outcomes[0];
    assert_eq!(o.status, Status::Failed);
    assert!(o.body.is_none());
    assert!(
        o.error
            .as_ref()
            .unwrap()
            .to_string()
            .contains("memory limit")
    );
}

#[test]
fn a_session_streams_events_in_order_per_job() {
    let server = TestServer::start();
    let tmp = TempDir::new();
    server.file("/x", b"x".to_vec());
    let pool = Pool::builder().output_dir(tmp.path()).build().unwrap();
    let mut session = pool.start();
    let id = session.submit(Job::new(server.url("/x"))).unwrap();
    session.close();
    let kinds: Vec<&str> = (&mut session)
        .map(|e| match e {
            Event::Queued { id: i, .. } if i == id => "queued",
            Event::Started { id: i, .. } if i == id => "started",
            Event::Finished(o) if o.id == id => "finished",
            _ => "other",
        })
        .filter(|k| *k != "other")
        .collect();
    assert_eq!(kinds, ["queued", "started", "finished"]);
    assert_eq!(session.wait().ok, 1);
}

#[test]
fn the_download_example_runs_against_the_test_server() {
    let server = TestServer::start();
    let tmp = TempDir::new();
    server.file("/one.bin", random_bytes(4, 1234));
    let status = Command::new(support::cli::example("download"))
        .arg(server.url("/one.bin"))
        .current_dir(tmp.path())
        .output()
        .unwrap();
    assert!(
        status.status.success(),
        "{}",
        String::from_utf8_lossy(&status.stderr)
    );
    let stdout = String::from_utf8_lossy(&status.stdout);
    assert!(stdout.starts_with("ok\t"), "{stdout}");
    assert_eq!(
        std::fs::read(tmp.join("downloads/one.bin")).unwrap(),
        random_bytes(4, 1234)
    );
}

#[test]
fn the_stream_example_keeps_api_responses_in_memory_and_writes_nothing() {
    let server = TestServer::start();
    let tmp = TempDir::new();
    server.route("/api/1", |_| support::Reply::ok(b"{\"id\":1}"));
    server.route("/api/2", |_| support::Reply::ok(b"{\"id\":2}"));
    let out = Command::new(support::cli::example("stream"))
        .args([server.url("/api/1"), server.url("/api/2")])
        .current_dir(tmp.path())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    let mut lines: Vec<&str> = stdout.lines().collect();
    lines.sort();
    assert_eq!(lines.len(), 2, "{stdout}");
    assert!(
        lines[0].starts_with("ok ") && lines[0].ends_with("8 bytes: {\"id\":1}"),
        "{stdout}"
    );
    assert!(
        lines[1].starts_with("ok ") && lines[1].ends_with("8 bytes: {\"id\":2}"),
        "{stdout}"
    );
    assert_eq!(
        std::fs::read_dir(tmp.path()).unwrap().count(),
        0,
        "a memory job writes no file"
    );
}

/// A failed job's `Outcome.bytes` are the bytes kept in its `.part` for a resume, not 0:
/// here a body cut at 1.5 MB with no retry left, and one whose retry was refused at once.
#[test]
fn a_failed_jobs_outcome_reports_the_bytes_kept_in_its_part() {
    let server = TestServer::start();
    let tmp = TempDir::new();
    let res = support::Resource::new(random_bytes(12, 3 << 20));
    let cut = 1_500_000;
    // With a retry left, the cut attempt grew the part and does not use it up.
    for (retries, attempts) in [(0, 1), (1, 3)] {
        let path = format!("/cut{retries}");
        let served = res.clone();
        // The first answer is cut at 1.5 MB, a ranged retry at once (no more bytes).
        server.route(&path, move |req| {
            let n = if req.hit == 1 { cut } else { 0 };
            support::Reply::file(req, &served).cut_after(n)
        });
        let out = tmp.join("out");
        let pool = Pool::builder()
            .output_dir(&out)
            .retries(retries)
            .retry_base_delay(std::time::Duration::from_millis(10))
            .build()
            .unwrap();
        let report = pool.run(vec![Job::new(server.url(&path))]).unwrap();
        let o = &report.outcomes[0];
        assert_eq!(o.status, Status::Failed);
        assert_eq!(o.attempts, attempts);
        let part = std::fs::metadata(out.join(format!("cut{retries}.part")))
            .unwrap()
            .len();
        assert_eq!(part, cut as u64, "retries {retries}");
        assert_eq!(o.bytes, part, "retries {retries}");
        assert_eq!(
            report.summary.bytes, 0,
            "the summary counts only finished files"
        );
    }
}

#[test]
fn a_minimum_rate_above_the_rate_limit_or_with_no_window_is_a_config_error() {
    let tmp = TempDir::new();
    let err = Pool::builder()
        .output_dir(tmp.path())
        .limit_rate(Some(10_000))
        .min_rate(Some(20_000))
        .build()
        .err()
        .unwrap();
    assert_eq!(err.kind(), fetchpool::ErrorKind::Config);
    assert!(err.to_string().contains("minimum rate"), "{err}");
    let err = Pool::builder()
        .output_dir(tmp.path())
        .min_rate(Some(1))
        .min_rate_window(std::time::Duration::ZERO)
        .build()
        .err()
        .unwrap();
    assert_eq!(err.kind(), fetchpool::ErrorKind::Config);
}

// ---------------------------------------------------------------------------------------
// Errors carry their context in fields, in the library's terms

#[test]
fn a_memory_limit_overrun_is_too_large_of_its_own_kind() {
    let server = TestServer::start();
    let tmp = TempDir::new();
    server.file("/big", random_bytes(1, 10_000));
    let pool = Pool::builder()
        .output_dir(tmp.path())
        .memory_limit(1000)
        .build()
        .unwrap();
    let report = pool
        .run(vec![Job::new(server.url("/big")).to_memory()])
        .unwrap();
    let e = report.outcomes[0].error.clone().unwrap();
    assert!(
        matches!(
            e,
            fetchpool::Error::TooLarge {
                limit: 1000,
                announced: Some(10_000)
            }
        ),
        "{e:?}"
    );
    assert_eq!(e.kind(), fetchpool::ErrorKind::TooLarge);
    assert_eq!(e.kind().as_str(), "too_large");
}

#[test]
fn submitting_to_a_closed_session_is_session_closed_not_cancelled() {
    let tmp = TempDir::new();
    let pool = Pool::builder().output_dir(tmp.path()).build().unwrap();
    let mut session = pool.start();
    session.close();
    let e = session
        .submit(Job::new("http://127.0.0.1:9/a"))
        .unwrap_err();
    assert!(matches!(e, fetchpool::Error::SessionClosed), "{e:?}");
    assert_eq!(e.kind(), fetchpool::ErrorKind::Config);
    assert_eq!(e.to_string(), "the session is closed to new jobs");
}

#[test]
fn configuration_errors_name_the_setting_never_a_command_line_flag() {
    use fetchpool::{Error, Setting, Shard};
    let tmp = TempDir::new();
    let no_flag = |e: &Error| {
        let m = e.to_string();
        assert!(
            !m.contains("--") && !m.contains(" -j") && !m.contains("-o "),
            "{m}"
        );
    };
    let e = Pool::builder()
        .workers(0)
        .output_dir(tmp.path())
        .build()
        .unwrap_err();
    assert_eq!(e.config_setting(), Some(Setting::Workers));
    no_flag(&e);
    std::fs::write(tmp.join("file"), b"").unwrap();
    let e = Pool::builder()
        .output_dir(tmp.join("file").join("sub"))
        .build()
        .unwrap_err();
    assert_eq!(e.config_setting(), Some(Setting::OutputDir));
    no_flag(&e);
    let e = Pool::builder()
        .proxy("ftp://p:21")
        .output_dir(tmp.path())
        .build()
        .unwrap_err();
    assert_eq!(e.config_setting(), Some(Setting::Proxy));
    no_flag(&e);
    let e = Pool::builder()
        .ca_cert(tmp.join("missing.pem"))
        .output_dir(tmp.path())
        .build()
        .unwrap_err();
    assert_eq!(e.config_setting(), Some(Setting::CaCert));
    no_flag(&e);
    let e = Shard::parse("0/3").unwrap_err();
    assert_eq!(e.config_setting(), Some(Setting::Shard));
    no_flag(&e);
    let e = Shard::from_env(
        |k| (k == "JOB_COMPLETION_INDEX").then(|| "1".to_string()),
        None,
    )
    .unwrap_err();
    assert_eq!(e.config_setting(), Some(Setting::ShardCount));
    no_flag(&e);
    let e = Shard::from_env(|_| None, None).unwrap_err();
    no_flag(&e);
}

#[test]
fn a_bad_list_line_is_a_config_error_with_its_list_and_line() {
    let list = "http://127.0.0.1/a\nhttp://127.0.0.1/b\tx\ty\tz\tw\n";
    let e = fetchpool::ManifestReader::new("jobs.txt", list.as_bytes())
        .find_map(Result::err)
        .unwrap();
    let origin = e.origin().expect("an origin");
    assert_eq!((&*origin.source, origin.line), ("jobs.txt", 2));
    assert!(
        e.to_string()
            .starts_with("jobs.txt:2: 5 tab-separated fields"),
        "{e}"
    );
}

#[test]
fn an_unknown_issuer_is_a_typed_tls_reason() {
    let ca = support::tls::TestCa::new("private CA");
    let plain = TestServer::start();
    plain.file("/f.bin", b"x".to_vec());
    let front = support::tls::TlsFront::start(&ca, support::tls::Leaf::Valid, &plain);
    let tmp = TempDir::new();
    let pool = Pool::builder().output_dir(tmp.path()).build().unwrap();
    let report = pool.run(vec![Job::new(front.url("/f.bin"))]).unwrap();
    let e = report.outcomes[0].error.clone().unwrap();
    assert!(
        matches!(
            e,
            fetchpool::Error::Tls {
                reason: fetchpool::TlsReason::UnknownIssuer,
                ..
            }
        ),
        "{e:?}"
    );
    assert!(!e.to_string().contains("--cacert"), "{e}");
}

#[test]
fn cancelling_or_dropping_a_session_leaves_the_pool_usable_for_later_runs() {
    let server = TestServer::start();
    let tmp = TempDir::new();
    server.file("/a.bin", random_bytes(3, 5_000));
    server.route("/slow", |_| {
        support::Reply::ok(random_bytes(4, 200_000))
            .drip(1_000, std::time::Duration::from_millis(50))
    });
    let pool = Pool::builder()
        .workers(2)
        .retries(0)
        .output_dir(tmp.join("out"))
        .build()
        .unwrap();

    // One session cancelled mid-body, another dropped mid-body without a close.
    let mut cancelled = pool.start();
    cancelled.submit(Job::new(server.url("/slow"))).unwrap();
    let mut started = false;
    for event in cancelled.by_ref() {
        if let Event::Started { .. } = event {
            started = true;
            break;
        }
    }
    assert!(started);
    cancelled.cancel();
    let summary = cancelled.wait();
    assert_eq!(summary.cancelled, 1);

    let mut dropped = pool.clone().start();
    dropped
        .submit(Job::new(server.url("/slow")).to_file("s2"))
        .unwrap();
    for event in dropped.by_ref() {
        if let Event::Started { .. } = event {
            break;
        }
    }
    drop(dropped);

    let report = pool
        .run(vec![
            Job::new(server.url("/a.bin")).sha256(sha256_hex(&random_bytes(3, 5_000))),
        ])
        .unwrap();
    let o = &report.outcomes[0];
    assert_eq!(o.status, Status::Ok, "{:?}", o.error);
    assert_eq!(o.attempts, 1);
}

// ---------------------------------------------------------------------------------------
// Per-job limits and kept headers

/// A 1 KB API call gives up on a stall after its own 300 ms while a slow download on the
/// same pool keeps the pool's 30 s stall limit and finishes.
#[test]
fn a_jobs_own_idle_timeout_ends_its_stall_while_other_jobs_keep_the_pools() {
    use fetchpool::{Error, TimeoutPhase};
    use std::time::{Duration, Instant};
    let server = TestServer::start();
    let tmp = TempDir::new();
    server.route("/api", |_| {
        support::Reply::ok(vec![b'x'; 1000]).stall_after(10)
    });
    let slow = random_bytes(5, 4_000);
    let served = slow.clone();
    server.route("/slow", move |_| {
        support::Reply::ok(&served).drip(1_000, Duration::from_millis(500))
    });
    let pool = Pool::builder().output_dir(tmp.path()).build().unwrap();
    let started = Instant::now();
    let report = pool
        .run(vec![
            Job::new(server.url("/api"))
                .to_memory()
                .idle_timeout(Duration::from_millis(300))
                .retries(0),
            Job::new(server.url("/slow")).sha256(sha256_hex(&slow)),
        ])
        .unwrap();
    let api = report.outcomes.iter().find(|o| o.path.is_none()).unwrap();
    assert_eq!(api.status, Status::Failed);
    assert!(
        matches!(
            api.error,
            Some(Error::Timeout {
                phase: TimeoutPhase::Stall,
                limit: Some(l)
            }) if l == Duration::from_millis(300)
        ),
        "{:?}",
        api.error
    );
    assert_eq!(api.attempts, 1);
    let file = report.outcomes.iter().find(|o| o.path.is_some()).unwrap();
    assert_eq!(file.status, Status::Ok, "{:?}", file.error);
    assert_eq!(file.bytes, 4_000);
    assert!(api.elapsed < Duration::from_secs(2), "{:?}", api.elapsed);
    assert!(
        started.elapsed() >= Duration::from_millis(1_000),
        "the slow file took its time"
    );
}

/// A job's own whole budget ends it with a deadline timeout; a job on the same route
/// without one (and a pool without one) runs to the end.
#[test]
fn a_jobs_own_max_time_ends_it_with_a_deadline_timeout_and_others_run_on() {
    use fetchpool::{Error, TimeoutPhase};
    use std::time::Duration;
    let server = TestServer::start();
    let tmp = TempDir::new();
    let body = random_bytes(6, 3_000);
    let served = body.clone();
    server.route("/drip", move |_| {
        support::Reply::ok(&served).drip(500, Duration::from_millis(200))
    });
    let pool = Pool::builder().output_dir(tmp.path()).build().unwrap();
    let report = pool
        .run(vec![
            Job::new(server.url("/drip"))
                .to_memory()
                .max_time(Duration::from_millis(400)),
            Job::new(server.url("/drip")).to_file("whole.bin"),
        ])
        .unwrap();
    let short = report.outcomes.iter().find(|o| o.path.is_none()).unwrap();
    assert_eq!(short.status, Status::Failed);
    assert!(
        matches!(
            short.error,
            Some(Error::Timeout {
                phase: TimeoutPhase::Deadline,
                limit: Some(l)
            }) if l == Duration::from_millis(400)
        ),
        "{:?}",
        short.error
    );
    let whole = report.outcomes.iter().find(|o| o.path.is_some()).unwrap();
    assert_eq!(whole.status, Status::Ok, "{:?}", whole.error);
    assert_eq!(std::fs::read(tmp.join("whole.bin")).unwrap(), body);
}

/// A job's own retries override the pool's, up and down.
#[test]
fn a_jobs_own_retries_override_the_pools() {
    let server = TestServer::start();
    let tmp = TempDir::new();
    server.route("/busy", |_| support::Reply::status(503));
    let pool = Pool::builder()
        .output_dir(tmp.path())
        .retries(1)
        .retry_base_delay(std::time::Duration::from_millis(5))
        .build()
        .unwrap();
    let report = pool
        .run(vec![
            Job::new(server.url("/busy"))
                .to_memory()
                .id("more")
                .retries(3),
            Job::new(server.url("/busy"))
                .to_memory()
                .id("none")
                .retries(0),
            Job::new(server.url("/busy")).to_memory().id("pool"),
        ])
        .unwrap();
    let attempts = |name: &str| {
        let o = report
            .outcomes
            .iter()
            .find(|o| o.job_id.as_deref() == Some(name))
            .unwrap();
        assert_eq!(o.status, Status::Failed);
        o.attempts
    };
    assert_eq!(
        (attempts("more"), attempts("none"), attempts("pool")),
        (4, 1, 2)
    );
    assert_eq!(server.hits("/busy"), 7);
}

/// Kept headers come from the last response, in the order it sent them, by the pool's
/// names and the job's; the final URL is the last redirect's target; a report line shows
/// them with credentials masked.
#[test]
fn kept_response_headers_and_the_final_url_are_read_from_outcomes() {
    let server = TestServer::start();
    let tmp = TempDir::new();
    server.route("/users", |_| {
        support::Reply::redirect(302, "/v2/users?page=1").header("X-Total-Count", "99")
    });
    server.route("/v2/users", |_| {
        support::Reply::ok(b"[{\"id\":1}]")
            .header("Link", "</v2/users?page=2>; rel=\"next\"")
            .header("X-Other", "not kept")
            .header("X-Total-Count", "42")
            .header("Set-Cookie", "session=s3cret")
    });
    server.route("/limited", |_| {
        support::Reply::status(429).header("X-RateLimit-Remaining", "0")
    });
    let pool = Pool::builder()
        .output_dir(tmp.path())
        .retries(0)
        .keep_headers(["x-total-count", "X-RateLimit-Remaining"])
        .build()
        .unwrap();
    let report = pool
        .run(vec![
            Job::new(server.url("/users"))
                .to_memory()
                .keep_headers(["LINK", "set-cookie"]),
            Job::new(server.url("/limited")).to_memory(),
        ])
        .unwrap();
    let users = report
        .outcomes
        .iter()
        .find(|o| o.url.ends_with("/users"))
        .unwrap();
    assert_eq!(users.status, Status::Ok);
    assert_eq!(
        users.headers,
        [
            (
                "link".to_string(),
                "</v2/users?page=2>; rel=\"next\"".to_string()
            ),
            ("x-total-count".to_string(), "42".to_string()),
            ("set-cookie".to_string(), "session=s3cret".to_string()),
        ]
    );
    assert_eq!(users.header("X-Total-Count"), Some("42"));
    assert_eq!(users.header("x-other"), None);
    assert_eq!(users.final_url(), server.url("/v2/users?page=1"));
    let line = users.to_json();
    assert_eq!(line["headers"]["x-total-count"], "42");
    assert_eq!(line["headers"]["set-cookie"], "***");
    assert!(!line.to_string().contains("s3cret"), "{line}");

    let limited = report
        .outcomes
        .iter()
        .find(|o| o.url.ends_with("/limited"))
        .unwrap();
    assert_eq!(limited.status, Status::Failed);
    assert_eq!(limited.header("x-ratelimit-remaining"), Some("0"));
    assert_eq!(limited.final_url(), limited.url);
    assert_eq!(
        Job::new(server.url("/x"))
            .keep_headers(["bad name"])
            .check()
            .unwrap_err()
            .kind(),
        fetchpool::ErrorKind::Config
    );
    let e = Pool::builder()
        .output_dir(tmp.path())
        .keep_headers(["a:b"])
        .build()
        .unwrap_err();
    assert_eq!(e.kind(), fetchpool::ErrorKind::Config);
}

// ---------------------------------------------------------------------------------------
// Sessions: cancel ends them; submits after it are refused; every entry point checks alike

/// Defect: `cancel()` left the event iterator running while any `Submitter` was alive,
/// the session's own included when `close()` was not called.
#[test]
fn cancel_ends_a_session_while_submitters_are_alive() {
    use std::time::Duration;
    let server = TestServer::start();
    let tmp = TempDir::new();
    server.route("/slow", |_| {
        support::Reply::ok(random_bytes(4, 200_000)).drip(1_000, Duration::from_millis(50))
    });
    let pool = Pool::builder()
        .retries(0)
        .output_dir(tmp.path())
        .build()
        .unwrap();
    let mut session = pool.start();
    let other = session.submitter();
    session.submit(Job::new(server.url("/slow"))).unwrap();
    assert!(session.by_ref().any(|e| matches!(e, Event::Started { .. })));
    session.cancel();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut finished = Vec::new();
        while let Some(event) = session.next_event() {
            if let Event::Finished(o) = event {
                finished.push(o.status);
            }
        }
        let _ = tx.send(finished);
    });
    let finished = rx
        .recv_timeout(Duration::from_secs(10))
        .expect("the session's events end after cancel, with submitters alive");
    assert_eq!(finished, [Status::Cancelled]);
    drop(other);
}

/// Defect: a submit after `cancel()` returned `Ok` and its job ended cancelled; it fails
/// with `Error::Cancelled`, from the session and from every submitter.
#[test]
fn a_submit_after_cancel_fails_with_cancelled() {
    let tmp = TempDir::new();
    let pool = Pool::builder().output_dir(tmp.path()).build().unwrap();
    let session = pool.start();
    let other = session.submitter();
    session.cancel();
    for result in [
        session.submit(Job::new("http://127.0.0.1:9/a")),
        other.submit(Job::new("http://127.0.0.1:9/b")),
        session.submitter().submit(Job::new("http://127.0.0.1:9/c")),
    ] {
        let e = result.unwrap_err();
        assert!(matches!(e, fetchpool::Error::Cancelled { .. }), "{e:?}");
    }
    let summary = session.wait();
    assert_eq!(summary.total(), 0);
    assert!(summary.interrupted);
}

/// Defect: `run_with` ran two jobs writing one file (both ok, the last one won) and two
/// jobs with one id, which `run` refuses: every entry point now checks alike. `run` and
/// `Pool::check` refuse the list; a streamed run, a session and follow-up jobs end the
/// later job `failed` with kind `config` before it is requested.
#[test]
fn run_with_and_sessions_refuse_two_jobs_writing_one_file_or_sharing_an_id() {
    use fetchpool::ErrorKind;
    let server = TestServer::start();
    let tmp = TempDir::new();
    server.file("/a", b"first".to_vec());
    server.file("/b", b"second".to_vec());
    let pool = Pool::builder().output_dir(tmp.path()).build().unwrap();
    let jobs = || {
        vec![
            Job::new(server.url("/a")).to_file("same.bin").id("x"),
            Job::new(server.url("/b")).to_file("./sub/../same.bin"),
            Job::new(server.url("/b")).to_file("other.bin").id("x"),
        ]
    };
    let e = pool.run(jobs()).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Config);

    let mut outcomes = Vec::new();
    let summary = pool.run_with(jobs(), |event, _| {
        if let Event::Finished(o) = event {
            outcomes.push((o.id.0, o.status, o.error.as_ref().map(|e| e.kind())));
        }
    });
    outcomes.sort_by_key(|o| o.0);
    assert_eq!(
        outcomes,
        [
            (0, Status::Ok, None),
            (1, Status::Failed, Some(ErrorKind::Config)),
            (2, Status::Failed, Some(ErrorKind::Config)),
        ]
    );
    assert_eq!((summary.ok, summary.failed), (1, 2));
    assert_eq!(std::fs::read(tmp.join("same.bin")).unwrap(), b"first");
    assert!(!tmp.join("other.bin").exists());
    assert_eq!(server.hits("/b"), 0, "refused before any request");

    // A session, the same way: the later job is refused, the earlier one untouched.
    let mut session = pool.start();
    session
        .submit(Job::new(server.url("/a")).to_file("s.bin"))
        .unwrap();
    session
        .submit(Job::new(server.url("/b")).to_file("s.bin"))
        .unwrap();
    session.close();
    let statuses: Vec<Status> = session
        .by_ref()
        .filter_map(|e| match e {
            Event::Finished(o) => Some(o.status),
            _ => None,
        })
        .collect();
    assert_eq!(statuses.iter().filter(|s| **s == Status::Failed).count(), 1);
    assert_eq!(std::fs::read(tmp.join("s.bin")).unwrap(), b"first");
}

// ---------------------------------------------------------------------------------------
// Per-job cancellation and a draining shutdown

/// A job cancelled by id mid-body ends `cancelled` with the bytes it received kept in its
/// part; a queued job cancelled through a submitter ends at once, never requested; the
/// other jobs and the session go on.
#[test]
fn a_job_cancelled_by_id_mid_body_ends_cancelled_with_its_bytes_and_others_go_on() {
    use std::time::Duration;
    let server = TestServer::start();
    let tmp = TempDir::new();
    let res = support::Resource::new(random_bytes(7, 400_000));
    server.route("/big", move |req| {
        support::Reply::file(req, &res).drip(4_000, Duration::from_millis(20))
    });
    let small = random_bytes(8, 3_000);
    server.file("/small", small.clone());
    server.file("/queued", b"never".to_vec());
    let pool = Pool::builder()
        .workers(2)
        .per_host(1)
        .output_dir(tmp.path())
        .build()
        .unwrap();
    let mut session = pool.start();
    let submitter = session.submitter();
    let big = session.submit(Job::new(server.url("/big"))).unwrap();
    // One connection per host: this one waits behind /big until it is cancelled.
    let queued = session.submit(Job::new(server.url("/queued"))).unwrap();
    submitter.cancel_job(queued);
    session
        .submit(Job::new(server.url("/small")).sha256(sha256_hex(&small)))
        .unwrap();
    drop(submitter);
    session.close();
    let mut outcomes = Vec::new();
    while let Some(event) = session.next_event() {
        match event {
            Event::Progress { id, bytes, .. } if id == big && bytes >= 40_000 => {
                session.cancel_job(big);
            }
            Event::Finished(o) => outcomes.push(*o),
            _ => {}
        }
    }
    let summary = session.wait();
    assert!(!summary.interrupted);
    let by = |id| outcomes.iter().find(|o| o.id == id).unwrap();
    let b = by(big);
    assert_eq!(b.status, Status::Cancelled);
    assert_eq!(
        b.error.as_ref().unwrap().kind(),
        fetchpool::ErrorKind::Cancelled
    );
    let part = std::fs::metadata(tmp.join("big.part")).unwrap().len();
    assert!((40_000..400_000).contains(&part), "{part}");
    assert_eq!(b.bytes, part);
    let q = by(queued);
    assert_eq!((q.status, q.attempts), (Status::Cancelled, 0));
    assert_eq!(server.hits("/queued"), 0);
    let s = outcomes.iter().find(|o| o.url.ends_with("/small")).unwrap();
    assert_eq!(s.status, Status::Ok);
    assert_eq!(std::fs::read(tmp.join("small")).unwrap(), small);
    assert_eq!((summary.ok, summary.cancelled), (1, 2));
}

/// `shutdown` drains: jobs already submitted finish, while a live submitter's later
/// submits fail with `SessionClosed`; a cancel handle can also cancel one job.
#[test]
fn shutdown_drains_submitted_jobs_and_refuses_later_submits() {
    let server = TestServer::start();
    let tmp = TempDir::new();
    server.file("/a", b"a".to_vec());
    server.file("/b", b"b".to_vec());
    let pool = Pool::builder()
        .workers(1)
        .output_dir(tmp.path())
        .build()
        .unwrap();
    let session = pool.start();
    let live = session.submitter();
    let handle = session.cancel_handle();
    let a = session.submit(Job::new(server.url("/a"))).unwrap();
    let b = session
        .submit(Job::new(server.url("/b")).after("nothing"))
        .unwrap();
    handle.cancel_job(b);
    assert_ne!(a, b);
    let summary = session.shutdown();
    assert_eq!((summary.ok, summary.cancelled), (1, 1));
    assert!(!summary.interrupted);
    let e = live.submit(Job::new(server.url("/a"))).unwrap_err();
    assert!(matches!(e, fetchpool::Error::SessionClosed), "{e:?}");
    assert_eq!(std::fs::read(tmp.join("a")).unwrap(), b"a");
}

// ---------------------------------------------------------------------------------------
// Per-job context and ids

/// A caller's value rides from the job to its outcome, typed, through retries, follow-up
/// jobs and jobs that never start; `Outcome::job_id` is the job's `Job::id`, and
/// `Outcome::id` the handle `submit` returned.
#[test]
fn a_jobs_context_comes_back_on_its_outcome_by_type() {
    #[derive(Debug, PartialEq)]
    struct Page(u32);
    #[derive(Debug, PartialEq)]
    struct User {
        login: String,
        page: u32,
    }
    let server = TestServer::start();
    let tmp = TempDir::new();
    server.route("/users", |req| {
        if req.hit == 1 {
            support::Reply::status(503)
        } else {
            support::Reply::ok(b"[\"ada\",\"bob\"]")
        }
    });
    server.route("/user", |_| support::Reply::ok(b"{}"));
    let pool = Pool::builder()
        .output_dir(tmp.path())
        .retry_base_delay(std::time::Duration::from_millis(5))
        .build()
        .unwrap();
    let mut users = Vec::new();
    let mut others = Vec::new();
    let summary = pool.run_with(
        [
            Job::new(server.url("/users"))
                .to_memory()
                .id("page-1")
                .context(Page(1)),
            Job::new("ftp://nowhere/x").to_memory().context(Page(9)),
        ],
        |event, submit| {
            let Event::Finished(o) = event else { return };
            if let Some(page) = o.context::<Page>() {
                others.push((o.job_id.clone(), o.status, page.0, o.attempts));
                if o.status == Status::Ok {
                    for login in ["ada", "bob"] {
                        let job = Job::new(server.url(&format!("/user?login={login}")))
                            .to_memory()
                            .context(User {
                                login: login.into(),
                                page: page.0,
                            });
                        submit.submit(job).unwrap();
                    }
                }
            } else if let Some(user) = o.context::<User>() {
                assert_eq!(o.status, Status::Ok);
                users.push((user.login.clone(), user.page));
            }
        },
    );
    assert_eq!(summary.ok, 3);
    others.sort_by_key(|o| o.2);
    assert_eq!(
        others,
        [
            (Some("page-1".into()), Status::Ok, 1, 2),
            (None, Status::Failed, 9, 0),
        ]
    );
    users.sort();
    assert_eq!(users, [("ada".into(), 1), ("bob".into(), 1)]);
    let job = Job::new("http://h/x").context(5u8);
    assert_eq!(job.context_ref::<u8>(), Some(&5));
    assert_eq!(job.clone(), job, "a clone shares the value");
}

// ---------------------------------------------------------------------------------------
// Events without blocking

/// A status line redrawn between events needs no thread of its own: `try_next_event`
/// and `next_event_timeout` return at once or after the timeout while a slow job runs,
/// `is_over` tells a quiet moment from the end, and the events channel works in a
/// `select!` beside the caller's own channels, the summary still counting every job.
#[test]
fn events_can_be_polled_with_a_timeout_or_selected_beside_other_channels() {
    use std::time::{Duration, Instant};
    let server = TestServer::start();
    let tmp = TempDir::new();
    server.route("/slow", |_| {
        support::Reply::ok(random_bytes(2, 2_000)).drip(250, Duration::from_millis(100))
    });
    let pool = Pool::builder()
        .output_dir(tmp.path())
        .progress_events(false)
        .build()
        .unwrap();

    let mut session = pool.start();
    let started = Instant::now();
    assert!(session.try_next_event().is_none());
    assert!(!session.is_over());
    assert!(
        started.elapsed() < Duration::from_millis(100),
        "try_next_event waits"
    );
    session
        .submit(Job::new(server.url("/slow")).to_memory())
        .unwrap();
    session.close();
    let (mut quiet, mut finished) = (0, 0);
    loop {
        match session.next_event_timeout(Duration::from_millis(100)) {
            Some(Event::Finished(o)) => {
                assert_eq!(o.status, Status::Ok);
                finished += 1;
            }
            Some(_) => {}
            None if session.is_over() => break,
            None => quiet += 1,
        }
        assert!(started.elapsed() < Duration::from_secs(10));
    }
    assert_eq!(finished, 1);
    assert!(
        quiet >= 3,
        "{quiet} quiet moments while the body dripped for 0.8 s"
    );
    assert!(session.try_next_event().is_none() && session.is_over());
    assert_eq!(session.wait().ok, 1);

    let mut session = pool.start();
    session
        .submit(Job::new(server.url("/slow")).to_memory())
        .unwrap();
    session
        .submit(Job::new(server.url("/slow")).to_memory())
        .unwrap();
    session.close();
    let events = session.events().clone();
    let (mine_tx, mine) = crossbeam_channel::unbounded::<&str>();
    mine_tx.send("hello").unwrap();
    let (mut got_mine, mut finished, mut ticks) = (false, 0, 0);
    let ticker = crossbeam_channel::tick(Duration::from_millis(100));
    loop {
        crossbeam_channel::select! {
            recv(events) -> event => match event {
                Ok(Event::Finished(_)) => finished += 1,
                Ok(_) => {}
                Err(_) => break,
            },
            recv(mine) -> msg => got_mine = msg == Ok("hello"),
            recv(ticker) -> _ => ticks += 1,
        }
    }
    assert!(got_mine && ticks >= 3, "{got_mine} {ticks}");
    assert_eq!(finished, 2);
    let summary = session.wait();
    assert_eq!((summary.ok, summary.total()), (2, 2));
}

// ---------------------------------------------------------------------------------------
// Bodies, one-off requests, the state directory

/// The observer of `run_with_owned` owns each event, so a body moves out without a copy;
/// `json` and `text` read a body in place.
#[test]
fn bodies_move_to_an_owning_observer_and_read_as_json_or_text() {
    #[derive(serde::Deserialize, Debug, PartialEq)]
    struct Item {
        id: u64,
    }
    let server = TestServer::start();
    let tmp = TempDir::new();
    server.route("/items", |_| support::Reply::ok(b"[{\"id\":1},{\"id\":2}]"));
    server.route("/latin", |_| support::Reply::ok(b"caf\xe9"));
    let pool = Pool::builder().output_dir(tmp.path()).build().unwrap();
    let mut bodies = Vec::new();
    let summary = pool.run_with_owned(
        [
            Job::new(server.url("/items")).to_memory(),
            Job::new(server.url("/latin")).to_memory(),
        ],
        |event, _| {
            if let Event::Finished(mut o) = event {
                if o.url.ends_with("/items") {
                    assert_eq!(
                        o.json::<Vec<Item>>().unwrap(),
                        [Item { id: 1 }, Item { id: 2 }]
                    );
                } else {
                    assert_eq!(o.text().as_deref(), Some("caf\u{fffd}"));
                    assert!(o.json::<serde_json::Value>().is_err());
                }
                bodies.push(o.take_body().unwrap());
                assert!(o.body.is_none() && o.text().is_none());
            }
        },
    );
    assert_eq!(summary.ok, 2);
    bodies.sort();
    assert_eq!(
        bodies,
        [b"[{\"id\":1},{\"id\":2}]".to_vec(), b"caf\xe9".to_vec()]
    );
    let report = pool
        .run([Job::new(server.url("/items")).to_memory()])
        .unwrap();
    assert_eq!(report.outcomes[0].json::<Vec<Item>>().unwrap().len(), 2);
}

/// `Pool::fetch` makes one request on the calling thread, retries included, checked as
/// `run` checks a job; a file job's file is in place when it returns.
#[test]
fn fetch_runs_one_job_on_the_calling_thread_with_its_retries() {
    let server = TestServer::start();
    let tmp = TempDir::new();
    server.route("/index.json", |req| {
        if req.hit == 1 {
            support::Reply::status(503).header("Retry-After", "0")
        } else {
            support::Reply::ok(b"[\"a.bin\"]").header("X-Total-Count", "1")
        }
    });
    server.file("/a.bin", random_bytes(11, 50_000));
    let pool = Pool::builder()
        .output_dir(tmp.path())
        .keep_headers(["x-total-count"])
        .retry_base_delay(std::time::Duration::from_millis(5))
        .build()
        .unwrap();
    let index = pool.fetch(Job::new(server.url("/index.json")).to_memory());
    assert_eq!((index.status, index.attempts), (Status::Ok, 2));
    assert_eq!(index.json::<Vec<String>>().unwrap(), ["a.bin"]);
    assert_eq!(index.header("x-total-count"), Some("1"));
    let file =
        pool.fetch(Job::new(server.url("/a.bin")).sha256(sha256_hex(&random_bytes(11, 50_000))));
    assert_eq!(file.status, Status::Ok, "{:?}", file.error);
    assert_eq!(
        std::fs::read(tmp.join("a.bin")).unwrap(),
        random_bytes(11, 50_000)
    );
    let bad = pool.fetch(Job::new(server.url("/x")).to_file("../escape"));
    assert_eq!(bad.status, Status::Failed);
    assert_eq!(bad.error.unwrap().kind(), fetchpool::ErrorKind::Config);
    assert_eq!(server.hits("/x"), 0);
}

/// With `state_dir(None)` a run keeps no validator store, so nothing but the file is
/// written and a re-run downloads again; with a directory of the caller's choice the
/// store lives there and a re-run asks "changed since?" (a 304, skipped).
#[test]
fn state_dir_none_keeps_no_validator_store_and_a_chosen_one_is_used() {
    let server = TestServer::start();
    let tmp = TempDir::new();
    server.file("/v.bin", random_bytes(13, 20_000));
    let out = tmp.join("out");
    let pool = Pool::builder()
        .output_dir(&out)
        .state_dir(None)
        .build()
        .unwrap();
    for _ in 0..2 {
        let report = pool.run([Job::new(server.url("/v.bin"))]).unwrap();
        assert_eq!(report.outcomes[0].status, Status::Ok);
    }
    assert_eq!(server.hits("/v.bin"), 2);
    assert!(!out.join(".fetchpool/validators").exists());

    let state = tmp.join("state");
    let pool = Pool::builder()
        .output_dir(&out)
        .state_dir(Some(state.clone()))
        .build()
        .unwrap();
    assert_eq!(pool.config().state_dir.as_deref(), Some(state.as_path()));
    let first = pool.run([Job::new(server.url("/v.bin"))]).unwrap();
    assert_eq!(first.outcomes[0].status, Status::Ok);
    assert!(state.join("validators").is_dir());
    let again = pool.run([Job::new(server.url("/v.bin"))]).unwrap();
    assert_eq!(again.outcomes[0].status, Status::Skipped);
    assert_eq!(again.outcomes[0].http_status, Some(304));
    assert!(!out.join(".fetchpool/validators").exists());
    let default = Pool::builder().output_dir(&out).build().unwrap();
    assert_eq!(default.config().state_dir, Some(out.join(".fetchpool")));
}

/// Defects 1 and 5 in the words of the issue: cancelling one session leaves another
/// session, running at the same time on the same pool, untouched (its transfer finishes),
/// and the cancelled job's outcome reports the bytes it received and kept in its part.
#[test]
fn cancelling_one_session_leaves_another_running_session_untouched() {
    use std::time::Duration;
    let server = TestServer::start();
    let tmp = TempDir::new();
    let body = random_bytes(21, 300_000);
    let res = support::Resource::new(body.clone());
    server.route("/drip", move |req| {
        support::Reply::file(req, &res).drip(10_000, Duration::from_millis(20))
    });
    let pool = Pool::builder()
        .retries(0)
        .output_dir(tmp.path())
        .build()
        .unwrap();
    let started = |s: &mut fetchpool::Session| {
        s.by_ref()
            .any(|e| matches!(e, Event::Progress { bytes, .. } if bytes >= 20_000))
    };
    let mut a = pool.start();
    a.submit(Job::new(server.url("/drip")).to_file("a.bin"))
        .unwrap();
    let mut b = pool.clone().start();
    b.submit(
        Job::new(server.url("/drip"))
            .to_file("b.bin")
            .sha256(sha256_hex(&body)),
    )
    .unwrap();
    b.close();
    assert!(started(&mut a) && started(&mut b));
    a.cancel();
    let mut cancelled = None;
    while let Some(event) = a.next_event() {
        if let Event::Finished(o) = event {
            cancelled = Some(*o);
        }
    }
    let o = cancelled.unwrap();
    assert_eq!(o.status, Status::Cancelled);
    let part = std::fs::metadata(tmp.join("a.bin.part")).unwrap().len();
    assert!(part >= 20_000, "{part}");
    assert_eq!(o.bytes, part);
    assert!(a.wait().interrupted);
    let summary = b.wait();
    assert_eq!(
        (summary.ok, summary.failed),
        (1, 0),
        "the other session went on"
    );
    assert_eq!(std::fs::read(tmp.join("b.bin")).unwrap(), body);
}

#[test]
fn debug_output_of_config_job_outcome_and_error_hides_credentials() {
    let server = TestServer::start();
    let tmp = TempDir::new();
    server.route("/api", |_| {
        support::Reply::ok(b"{}").header("Set-Cookie", "session=cookie-secret-7")
    });
    let pool = Pool::builder()
        .workers(1)
        .output_dir(tmp.join("out"))
        .header("Authorization", "Bearer pool-secret-1")
        .header("X-Api-Key", "pool-secret-2")
        .proxy("http://proxyuser:proxy-secret-3@127.0.0.1:9")
        .no_proxy("127.0.0.1")
        .keep_headers(["set-cookie"])
        .build()
        .unwrap();
    let config = format!("{:?}", pool.config());
    let job = Job::new(
        server
            .url("/api")
            .replace("http://", "http://ann:url-secret-4@"),
    )
    .to_memory()
    .header("X-Auth-Token", "job-secret-5")
    .body(b"body-secret-6".to_vec());
    let job_debug = format!("{job:?}");
    let report = pool.run(vec![job]).unwrap();
    let outcome = format!("{:?}", report.outcomes[0]);
    let error = fetchpool::Error::config("bad URL http://ann:error-secret-8@127.0.0.1/x");
    let error = format!("{error:?}");
    for (text, secret) in [
        (&config, "pool-secret-1"),
        (&config, "pool-secret-2"),
        (&config, "proxy-secret-3"),
        (&job_debug, "url-secret-4"),
        (&job_debug, "job-secret-5"),
        (&job_debug, "body-secret-6"),
        (&outcome, "url-secret-4"),
        (&outcome, "cookie-secret-7"),
        (&error, "error-secret-8"),
    ] {
        assert!(!text.contains(secret), "{secret} in {text}");
    }
    // What is not secret is still there to debug with.
    assert!(config.contains("Authorization") && config.contains("workers: 1"));
    assert!(job_debug.contains("ann:***@") && job_debug.contains("13 bytes"));
    assert!(outcome.contains("status: Ok"), "{outcome}");
    assert!(
        error.contains("Config") || error.contains("config"),
        "{error}"
    );
}

#[test]
fn the_per_host_cap_defaults_to_the_worker_count_as_on_the_command_line() {
    let pool = Pool::builder().workers(12).build().unwrap();
    assert_eq!(pool.config().per_host, 12);
    let pool = Pool::builder().workers(3).per_host(10).build().unwrap();
    assert_eq!(pool.config().per_host, 3);
    let pool = Pool::builder().workers(12).per_host(2).build().unwrap();
    assert_eq!(pool.config().per_host, 2);
}

/// A memory job keeps nothing for a resume, yet its outcome says how much of the body
/// came before it failed or was cancelled: bytes received, not 0. The cancelled one is
/// asked to end while its read waits on a stalled server: it ends cancelled when that
/// read gives up (at the stall limit), not failed with the read's timeout.
#[test]
fn a_failed_or_cancelled_memory_jobs_outcome_reports_the_bytes_it_received() {
    let server = TestServer::start();
    let body = random_bytes(21, 3 << 20);
    let cut = body.clone();
    server.route("/cut", move |_| support::Reply::ok(&cut).cut_after(150_000));
    // Progress is reported after each MiB, so the event for 1 MiB comes while the last
    // 10 bytes before the stall are read: the cancel finds the read waiting.
    let stall_at = (1 << 20) + 10;
    let stalled = body.clone();
    server.route("/stall", move |_| {
        support::Reply::ok(&stalled).stall_after(stall_at)
    });
    let pool = Pool::builder()
        .workers(2)
        .retries(0)
        .idle_timeout(std::time::Duration::from_secs(2))
        .build()
        .unwrap();
    let mut session = pool.start();
    let cut_id = session
        .submit(Job::new(server.url("/cut")).to_memory())
        .unwrap();
    let stall_id = session
        .submit(Job::new(server.url("/stall")).to_memory())
        .unwrap();
    let handle = session.cancel_handle();
    session.close();
    let mut outcomes = Vec::new();
    let mut cancelled = false;
    while let Some(event) = session.next_event() {
        match event {
            Event::Progress { id, bytes, .. }
                if id == stall_id && bytes >= 1 << 20 && !cancelled =>
            {
                handle.cancel_job(stall_id);
                cancelled = true;
            }
            Event::Finished(outcome) => outcomes.push(outcome),
            _ => {}
        }
    }
    assert!(cancelled, "no progress event for the stalled job");
    let cut = outcomes.iter().find(|o| o.id == cut_id).unwrap();
    assert_eq!(cut.status, Status::Failed);
    assert_eq!(cut.bytes, 150_000, "{cut:?}");
    let stall = outcomes.iter().find(|o| o.id == stall_id).unwrap();
    assert_eq!(stall.status, Status::Cancelled, "{stall:?}");
    assert!(
        (1 << 20..=stall_at as u64).contains(&stall.bytes),
        "{stall:?}"
    );
}
