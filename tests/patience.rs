//! How long fetchpool waits for a server, and when it gives up: retries that outlast a
//! server restart, and a minimum rate that ends a job a server only drips.

mod support;

use std::fs;
use std::net::TcpListener;
use std::thread;
use std::time::{Duration, Instant};

use support::cli::{fetchpool, spawn, wait};
use support::{Reply, Resource, TempDir, TestServer, random_bytes, sha256_hex, wait_until};

/// How long the server is gone: the restart the default retries must outlast.
const DOWNTIME: Duration = Duration::from_millis(1500);

/// A port nothing listens on now (connections are refused) that a server can bind later.
fn free_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

#[test]
fn a_server_down_for_one_and_a_half_seconds_is_outlasted_by_the_default_retries() {
    let port = free_port();
    let body = random_bytes(90, 50_000);
    let url = format!("http://127.0.0.1:{port}/f.bin");
    let tmp = TempDir::new();
    let t0 = Instant::now();
    let child = spawn(tmp.path(), &[&url, "-o", "out"]);
    // The server is down (its port refuses connections) and comes back after DOWNTIME.
    thread::sleep(DOWNTIME);
    let server = TestServer::start_on(port);
    server.file("/f.bin", body.clone());
    let run = wait(child, tmp.path());
    assert_eq!(run.code, 0, "stderr: {}", run.stderr);
    let line = run.line(&url);
    assert_eq!(line["status"], "ok");
    assert!(line["attempts"].as_u64().unwrap() >= 2, "{line}");
    assert_eq!(line["sha256"], sha256_hex(&body));
    assert!(fs::read(tmp.join("out/f.bin")).unwrap() == body);
    assert_eq!(server.hits("/f.bin"), 1);
    assert!(t0.elapsed() >= DOWNTIME);
}

#[test]
fn a_server_restarted_mid_body_is_outlasted_and_the_part_is_continued() {
    let body = random_bytes(91, 4 << 20);
    let cut = 1_500_000;
    let res = Resource::new(body.clone());
    let first = TestServer::start();
    let port = first.port();
    let served = res.clone();
    // Cut once; a retry that comes before the server is gone is turned away.
    first.route("/big", move |req| match req.hit {
        1 => Reply::file(req, &served).cut_after(cut),
        _ => Reply::status(503),
    });
    let url = first.url("/big");
    let tmp = TempDir::new();
    let child = spawn(tmp.path(), &[&url, "-o", "out"]);
    let part = tmp.join("out/big.part");
    assert!(
        wait_until(Duration::from_secs(20), || {
            fs::metadata(&part).is_ok_and(|m| m.len() == cut as u64)
                && first
                    .requests()
                    .first()
                    .is_some_and(|r| r.finished.is_some())
        }),
        "the first transfer was never cut"
    );
    // Killed right after the cut; back on the same port DOWNTIME later.
    drop(first);
    thread::sleep(DOWNTIME);
    let second = TestServer::start_on(port);
    second.serve("/big", res);
    let run = wait(child, tmp.path());
    assert_eq!(run.code, 0, "stderr: {}", run.stderr);
    let line = run.line(&url);
    assert_eq!(line["status"], "ok");
    assert_eq!(line["resumed_from"], cut as u64);
    assert_eq!(line["sha256"], sha256_hex(&body));
    let requests = second.requests();
    assert_eq!(requests.len(), 1);
    assert_eq!(
        requests[0].header("range"),
        Some(format!("bytes={cut}-").as_str())
    );
    assert_eq!(requests[0].status, Some(206));
    assert!(fs::read(tmp.join("out/big")).unwrap() == body);
}

#[test]
fn a_server_dripping_a_byte_every_300_ms_fails_the_minimum_rate_as_a_timeout() {
    let server = TestServer::start();
    // 200 bytes at one every 300 ms would take a minute.
    server.route("/drip", |_| {
        Reply::ok(random_bytes(92, 200)).drip(1, Duration::from_millis(300))
    });
    let url = server.url("/drip");
    let tmp = TempDir::new();
    let t0 = Instant::now();
    let run = fetchpool(
        tmp.path(),
        &[
            &url,
            "-o",
            "out",
            "--retries",
            "0",
            "--min-rate",
            "1K",
            "--min-rate-window",
            "1.5",
        ],
        None,
    );
    let took = t0.elapsed();
    assert_eq!(run.code, 1, "stderr: {}", run.stderr);
    let line = run.line(&url);
    assert_eq!(line["status"], "failed");
    assert_eq!(line["error"]["kind"], "timeout");
    assert_eq!(line["error"]["phase"], "min_rate");
    assert_eq!(line["attempts"], 1);
    assert!(took < Duration::from_secs(10), "took {took:?}");
    assert!(!tmp.join("out/drip").exists());
}

#[test]
fn a_transfer_above_the_minimum_rate_is_left_alone() {
    let server = TestServer::start();
    // 256 KiB at about 640 KiB/s, for well over one window.
    let body = random_bytes(93, 256 << 10);
    let served = body.clone();
    server.route("/steady", move |_| {
        Reply::ok(&served).drip(8 << 10, Duration::from_millis(12))
    });
    let url = server.url("/steady");
    let tmp = TempDir::new();
    let run = fetchpool(
        tmp.path(),
        &[
            &url,
            "-o",
            "out",
            "--retries",
            "0",
            "--min-rate",
            "16K",
            "--min-rate-window",
            "0.1",
        ],
        None,
    );
    assert_eq!(run.code, 0, "stderr: {}", run.stderr);
    assert_eq!(run.line(&url)["sha256"], sha256_hex(&body));
}

#[test]
fn a_minimum_rate_above_the_overall_limit_is_refused_before_any_request() {
    let server = TestServer::start();
    server.file("/f", b"x".to_vec());
    let url = server.url("/f");
    let tmp = TempDir::new();
    let run = fetchpool(
        tmp.path(),
        &[
            &url,
            "-o",
            "out",
            "--limit-rate",
            "10K",
            "--min-rate",
            "20K",
        ],
        None,
    );
    assert_eq!(run.code, 2, "stderr: {}", run.stderr);
    assert!(run.stderr.contains("--min-rate"), "{}", run.stderr);
    assert_eq!(server.hits("/f"), 0);
}
