//! Segmented downloads: a large file whose server serves ranges under a strong validator
//! is fetched over several connections, each segment a `Range` + `If-Range` request,
//! written in place, hashed in order and verified before the rename; a broken segment is
//! continued from its own offset, a `kill -9` keeps the finished segments for the next
//! run, and a file that changes between segments starts over from zero. Without range
//! support, without a strong validator, or for a small file, the download stays the one
//! plain request it always was.

mod support;

use std::fs;
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use support::cli::{fetchpool, spawn, wait, write_list};
use support::proxy::TestProxy;
use support::{Reply, Resource, TempDir, TestServer, random_bytes, sha256_hex, wait_until};

/// Segments of 256 KiB: a few MiB make a file of many segments.
const SEG: usize = 256 << 10;

fn list(tmp: &TempDir, url: &str, body: Option<&[u8]>) -> String {
    let line = match body {
        Some(b) => format!("{url}\tbig.bin\t{}\n", sha256_hex(b)),
        None => format!("{url}\tbig.bin\n"),
    };
    write_list(tmp.path(), "list.tsv", &line)
}

/// `Range: bytes=A-B` as (A, B + 1).
fn range_of(req: &support::RequestLog) -> Option<(usize, usize)> {
    let v = req.header("range")?.strip_prefix("bytes=")?;
    let (a, b) = v.split_once('-')?;
    Some((a.parse().ok()?, b.parse::<usize>().ok()? + 1))
}

fn split_args<'a>(list: &'a str, split: &'a str) -> Vec<&'a str> {
    vec![
        "-i",
        list,
        "-o",
        "out",
        "--split",
        split,
        "--segment-size",
        "256K",
        "-j",
        "8",
        "--per-host",
        "8",
    ]
}

/// Serves `res` at `/big` dripped (16 KiB every 10 ms) until the returned flag is
/// cleared, then at full speed: a first run that can be stopped mid-way, a fast re-run.
fn slow_until_told(server: &TestServer, res: &Resource) -> Arc<AtomicBool> {
    let slow = Arc::new(AtomicBool::new(true));
    let (res, flag) = (res.clone(), Arc::clone(&slow));
    server.route("/big", move |req| {
        let reply = Reply::file(req, &res);
        if flag.load(Ordering::SeqCst) {
            reply.drip(16 << 10, Duration::from_millis(10))
        } else {
            reply
        }
    });
    slow
}

/// The split sidecar's segment bitmap at `meta` (`1` = finished), empty while unreadable.
fn done_bits(meta: &std::path::Path) -> String {
    let text = fs::read_to_string(meta).unwrap_or_default();
    let v: serde_json::Value = serde_json::from_str(&text).unwrap_or_default();
    v["done"].as_str().unwrap_or("").to_string()
}

/// Sends `sig` (`-INT`, `-KILL`) to a running fetchpool.
fn signal(child: &std::process::Child, sig: &str) {
    let status = Command::new("kill")
        .args([sig, &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
}

/// Serves `res` at `/big`, each answer dripped (64 KiB every 5 ms, about 12 MB/s per
/// connection) so that several connections pay off and overlap.
fn dripping(server: &TestServer, res: Resource) {
    server.route("/big", move |req| {
        Reply::file(req, &res).drip(64 << 10, Duration::from_millis(5))
    });
}

#[test]
fn a_large_file_is_fetched_over_several_connections_each_segment_under_if_range() {
    let server = TestServer::start();
    let res = Resource::new(random_bytes(1, 24 * SEG + 1000));
    dripping(&server, res.clone());
    let tmp = TempDir::new();
    let list = list(&tmp, &server.url("/big"), Some(&res.body));

    let run = fetchpool(tmp.path(), &split_args(&list, "4"), None);
    assert_eq!(run.code, 0, "stderr: {}", run.stderr);
    assert!(fs::read(tmp.join("out/big.bin")).unwrap() == *res.body);
    assert!(!tmp.join("out/big.bin.part").exists());
    assert!(!tmp.join("out/big.bin.part.meta").exists());
    let line = run.line(&server.url("/big"));
    assert_eq!(line["status"], "ok");
    assert_eq!(line["sha256"], sha256_hex(&res.body));
    assert_eq!(line["bytes"], res.body.len() as u64);
    let connections = line["connections"].as_u64().unwrap();
    assert!((2..=4).contains(&connections), "{line}");

    let requests = server.requests();
    // The first request is the plain one a single stream sends.
    assert_eq!(requests[0].header("range"), None);
    assert!(requests.len() > 1, "{requests:?}");
    for r in &requests[1..] {
        let (a, b) = range_of(r).expect("every later request is ranged");
        assert_eq!(a % SEG, 0, "segments start on the grid: {a}");
        assert_eq!(b, (a + SEG).min(res.body.len()), "one segment each");
        assert_eq!(r.header("if-range"), res.etag.as_deref());
        assert_eq!(r.status, Some(206));
    }
    // The first answer's connection is closed where its stream stops (the next segment
    // was taken by a helper); the server may count it until its next write fails.
    let peak = server.max_concurrent("/big");
    assert!((2..=5).contains(&peak), "{peak} at once");
}

#[test]
fn a_reset_in_one_segment_is_continued_from_its_own_offset() {
    let server = TestServer::start();
    let res = Resource::new(random_bytes(2, 16 * SEG));
    let cut_once = Arc::new(AtomicBool::new(true));
    let broken = 5 * SEG;
    {
        let res = res.clone();
        let cut_once = Arc::clone(&cut_once);
        server.route("/big", move |req| {
            let reply = Reply::file(req, &res).drip(64 << 10, Duration::from_millis(5));
            let ours = req.header("range") == Some(&format!("bytes={broken}-{}", broken + SEG - 1));
            if ours && cut_once.swap(false, Ordering::SeqCst) {
                reply.cut_after(100_000)
            } else {
                reply
            }
        });
    }
    let tmp = TempDir::new();
    let list = list(&tmp, &server.url("/big"), Some(&res.body));

    // Helpers take segments in order, so segment 5 is asked for on its own.
    let run = fetchpool(tmp.path(), &split_args(&list, "4"), None);
    assert_eq!(run.code, 0, "stderr: {}", run.stderr);
    assert!(!cut_once.load(Ordering::SeqCst), "segment 5 was never cut");
    assert!(fs::read(tmp.join("out/big.bin")).unwrap() == *res.body);
    let line = run.line(&server.url("/big"));
    assert_eq!(line["status"], "ok");
    assert_eq!(
        line["attempts"], 1,
        "the segment was retried within the attempt"
    );
    let ranges: Vec<(usize, usize)> = server.requests().iter().filter_map(range_of).collect();
    let again = broken + 100_000;
    assert!(
        ranges.contains(&(again, broken + SEG)),
        "the segment continues at {again}: {ranges:?}"
    );
}

#[test]
fn kill_9_keeps_the_finished_segments_and_the_rerun_asks_only_for_the_missing_ones() {
    let server = TestServer::start();
    let res = Resource::new(random_bytes(3, 48 * SEG));
    let slow = slow_until_told(&server, &res);
    let tmp = TempDir::new();
    let list = list(&tmp, &server.url("/big"), Some(&res.body));
    let meta = tmp.join("out/big.bin.part.meta");
    let done_text = || done_bits(&meta);

    let child = spawn(tmp.path(), &split_args(&list, "4"));
    assert!(
        wait_until(Duration::from_secs(30), || done_text().matches('1').count()
            >= 4),
        "no segment finished"
    );
    signal(&child, "-KILL");
    let run = wait(child, tmp.path());
    assert_eq!(run.code, -1, "killed by a signal");
    assert!(!tmp.join("out/big.bin").exists());
    let done = done_text();
    assert_eq!(done.len(), 48);
    let missing: Vec<usize> = done
        .bytes()
        .enumerate()
        .filter(|(_, b)| *b == b'0')
        .map(|(k, _)| k)
        .collect();
    assert!(!missing.is_empty() && missing.len() < 48, "{done}");

    slow.store(false, Ordering::SeqCst);
    let before = server.requests().len();
    let run = fetchpool(tmp.path(), &split_args(&list, "4"), None);
    assert_eq!(run.code, 0, "stderr: {}", run.stderr);
    assert!(fs::read(tmp.join("out/big.bin")).unwrap() == *res.body);
    assert!(!meta.exists());
    let rerun = &server.requests()[before..];
    let mut asked: Vec<usize> = rerun
        .iter()
        .map(|r| {
            let (a, b) = range_of(r).expect("the re-run sends only ranged requests");
            assert_eq!(r.header("if-range"), res.etag.as_deref());
            assert_eq!(b - a, SEG, "whole segments");
            a / SEG
        })
        .collect();
    asked.sort();
    assert_eq!(asked, missing, "exactly the missing segments, once each");
    let line = run.line(&server.url("/big"));
    assert_eq!(line["status"], "ok");
    assert_eq!(line["sha256"], sha256_hex(&res.body));
    assert_eq!(
        line["resumed_from"],
        ((48 - missing.len()) * SEG) as u64,
        "the bytes kept"
    );
}

#[test]
fn a_file_changed_between_segments_starts_over_from_zero_and_is_never_spliced() {
    let server = TestServer::start();
    let old = Resource::new(random_bytes(4, 16 * SEG));
    let new = Resource::new(random_bytes(5, 12 * SEG + 77));
    assert_ne!(old.etag, new.etag);
    let current = Arc::new(Mutex::new(old.clone()));
    let served = Arc::new(AtomicUsize::new(0));
    {
        let (current, served, new) = (Arc::clone(&current), Arc::clone(&served), new.clone());
        server.route("/big", move |req| {
            // The file changes on the server after its third request.
            if served.fetch_add(1, Ordering::SeqCst) == 3 {
                *current.lock().unwrap() = new.clone();
            }
            let res = current.lock().unwrap().clone();
            Reply::file(req, &res).drip(64 << 10, Duration::from_millis(5))
        });
    }
    let tmp = TempDir::new();
    let list = list(&tmp, &server.url("/big"), None);

    let run = fetchpool(tmp.path(), &split_args(&list, "4"), None);
    assert_eq!(run.code, 0, "stderr: {}", run.stderr);
    assert!(
        fs::read(tmp.join("out/big.bin")).unwrap() == *new.body,
        "the new file, whole"
    );
    let line = run.line(&server.url("/big"));
    assert_eq!(line["sha256"], sha256_hex(&new.body));
    let requests = server.requests();
    // A segment under the old validator was answered 200 (If-Range failed): the file
    // started over with a plain request.
    assert!(
        requests
            .iter()
            .any(|r| r.header("if-range") == old.etag.as_deref() && r.status == Some(200)),
        "{requests:?}"
    );
    let fresh: Vec<_> = requests
        .iter()
        .filter(|r| r.header("range").is_none())
        .collect();
    assert_eq!(
        fresh.len(),
        2,
        "the first request and the one starting over"
    );
    // After the restart, every segment was asked under the new validator.
    let restart = requests
        .iter()
        .rposition(|r| r.header("range").is_none())
        .unwrap();
    for r in &requests[restart + 1..] {
        assert_eq!(r.header("if-range"), new.etag.as_deref());
    }
}

/// The one request a file that is not split costs, with its report line.
fn single(res: Resource, size: usize) -> (TestServer, support::cli::Run) {
    let _ = size;
    let server = TestServer::start();
    server.serve("/big", res);
    let tmp = TempDir::new();
    let list = list(&tmp, &server.url("/big"), None);
    let run = fetchpool(tmp.path(), &split_args(&list, "4"), None);
    assert_eq!(run.code, 0, "stderr: {}", run.stderr);
    (server, run)
}

#[test]
fn no_split_without_ranges_a_strong_validator_or_size_and_no_extra_request() {
    let body = random_bytes(6, 16 * SEG);
    let cases = [
        ("no range support", Resource::new(body.clone()).no_ranges()),
        (
            "no validator",
            Resource::new(body.clone()).no_etag().no_last_modified(),
        ),
        (
            "a weak ETag",
            Resource::new(body.clone()).with_etag("W/\"w1\""),
        ),
        ("two segments only", Resource::new(random_bytes(7, 2 * SEG))),
    ];
    for (why, res) in cases {
        let len = res.body.len();
        let (server, run) = single(res, len);
        let requests = server.requests();
        assert_eq!(requests.len(), 1, "{why}: {requests:?}");
        assert_eq!(requests[0].header("range"), None, "{why}");
        let line = run.line(&server.url("/big"));
        assert_eq!(line["status"], "ok", "{why}");
        assert_eq!(line["connections"], 1, "{why}");
        assert_eq!(line["bytes"], len as u64, "{why}");
    }
}

#[test]
fn split_one_turns_splitting_off() {
    let server = TestServer::start();
    let res = Resource::new(random_bytes(8, 16 * SEG));
    server.serve("/big", res.clone());
    let tmp = TempDir::new();
    let list = list(&tmp, &server.url("/big"), Some(&res.body));
    let run = fetchpool(tmp.path(), &split_args(&list, "1"), None);
    assert_eq!(run.code, 0, "stderr: {}", run.stderr);
    assert_eq!(server.requests().len(), 1);
    assert_eq!(run.line(&server.url("/big"))["connections"], 1);
}

#[test]
fn segments_go_through_the_proxy() {
    let server = TestServer::start();
    let res = Resource::new(random_bytes(9, 16 * SEG));
    dripping(&server, res.clone());
    let proxy = TestProxy::start();
    let tmp = TempDir::new();
    let list = list(&tmp, &server.url("/big"), Some(&res.body));
    let mut args = split_args(&list, "4");
    let url = proxy.url();
    args.extend(["--proxy", &url]);
    let run = fetchpool(tmp.path(), &args, None);
    assert_eq!(run.code, 0, "stderr: {}", run.stderr);
    assert!(fs::read(tmp.join("out/big.bin")).unwrap() == *res.body);
    let line = run.line(&server.url("/big"));
    assert!(line["connections"].as_u64().unwrap() >= 2, "{line}");
    // Every request the origin saw, the proxy carried.
    let carried = proxy
        .requests()
        .iter()
        .filter(|r| r.target.ends_with("/big"))
        .count();
    assert_eq!(carried, server.requests().len());
    let origin_peers = server.peers();
    let from_proxy = proxy.upstream_addrs(&format!("127.0.0.1:{}", server.port()));
    for p in origin_peers {
        assert!(from_proxy.contains(&p), "{p} did not come from the proxy");
    }
}

#[test]
fn the_rate_limit_holds_for_a_split_file() {
    let server = TestServer::start();
    let res = Resource::new(random_bytes(10, 24 * SEG));
    server.serve("/big", res.clone());
    let tmp = TempDir::new();
    let list = list(&tmp, &server.url("/big"), Some(&res.body));
    let mut args = split_args(&list, "4");
    args.extend(["--limit-rate", "3M"]);
    let t = Instant::now();
    let run = fetchpool(tmp.path(), &args, None);
    let took = t.elapsed();
    assert_eq!(run.code, 0, "stderr: {}", run.stderr);
    assert!(fs::read(tmp.join("out/big.bin")).unwrap() == *res.body);
    assert!(
        run.line(&server.url("/big"))["connections"]
            .as_u64()
            .unwrap()
            >= 2
    );
    // 6 MiB at 3 MiB/s: 2 s, less the bucket's first 50 ms.
    assert!(took >= Duration::from_millis(1800), "{took:?}");
}

#[test]
fn ctrl_c_keeps_the_finished_segments_and_the_rerun_continues_them() {
    let server = TestServer::start();
    let res = Resource::new(random_bytes(11, 48 * SEG));
    let slow = slow_until_told(&server, &res);
    let tmp = TempDir::new();
    let list = list(&tmp, &server.url("/big"), Some(&res.body));
    let meta = tmp.join("out/big.bin.part.meta");
    let done_count = || done_bits(&meta).matches('1').count();
    let child = spawn(tmp.path(), &split_args(&list, "4"));
    assert!(wait_until(Duration::from_secs(30), || done_count() >= 3));
    signal(&child, "-INT");
    let run = wait(child, tmp.path());
    assert_eq!(run.code, 130, "stderr: {}", run.stderr);
    let line = run.line(&server.url("/big"));
    assert_eq!(line["status"], "cancelled");
    assert_eq!(line["error"]["kind"], "cancelled");
    let kept = done_count();
    assert!((3..48).contains(&kept), "{kept}");
    assert_eq!(
        line["bytes"],
        (kept * SEG) as u64,
        "the bytes of the finished segments"
    );
    assert!(!tmp.join("out/big.bin").exists());

    slow.store(false, Ordering::SeqCst);
    let before = server.requests().len();
    let run = fetchpool(tmp.path(), &split_args(&list, "4"), None);
    assert_eq!(run.code, 0, "stderr: {}", run.stderr);
    assert!(fs::read(tmp.join("out/big.bin")).unwrap() == *res.body);
    assert_eq!(server.requests().len() - before, 48 - kept);
    assert_eq!(
        run.line(&server.url("/big"))["resumed_from"],
        (kept * SEG) as u64
    );
}

#[test]
fn a_split_file_takes_only_workers_no_queued_job_can_use() {
    let server = TestServer::start();
    let res = Resource::new(random_bytes(12, 24 * SEG));
    dripping(&server, res.clone());
    let mut text = format!(
        "{}\tbig.bin\t{}\n",
        server.url("/big"),
        sha256_hex(&res.body)
    );
    let mut smalls = Vec::new();
    for i in 0..3 {
        let body = random_bytes(20 + i, 200_000);
        let path = format!("/small{i}");
        let r = Resource::new(body.clone());
        server.route(&path, move |req| {
            Reply::file(req, &r).drip(20_000, Duration::from_millis(10))
        });
        text += &format!(
            "{}\tsmall{i}.bin\t{}\n",
            server.url(&path),
            sha256_hex(&body)
        );
        smalls.push(path);
    }
    let tmp = TempDir::new();
    let list = write_list(tmp.path(), "list.tsv", &text);
    let mut args = split_args(&list, "4");
    args[9] = "2"; // -j 2
    let run = fetchpool(tmp.path(), &args, None);
    assert_eq!(run.code, 0, "stderr: {}", run.stderr);
    assert_eq!(run.with_status("ok").len(), 4);
    let requests = server.requests();
    let last_small = requests
        .iter()
        .filter(|r| r.path.starts_with("/small"))
        .map(|r| r.started)
        .max()
        .unwrap();
    let segments: Vec<_> = requests.iter().filter(|r| range_of(r).is_some()).collect();
    assert!(
        !segments.is_empty(),
        "the big file was split once the list was served"
    );
    for r in segments {
        assert!(
            r.started > last_small,
            "a segment took a worker a small file was waiting for"
        );
    }
    assert!(
        run.line(&server.url("/big"))["connections"]
            .as_u64()
            .unwrap()
            >= 2
    );
}

#[test]
fn ctrl_c_while_every_segment_waits_on_a_silent_server_ends_the_file_cancelled() {
    let server = TestServer::start();
    let res = Resource::new(random_bytes(13, 32 * SEG));
    {
        let res = res.clone();
        server.route("/big", move |req| {
            let reply = Reply::file(req, &res);
            if req.header("range").is_some() {
                // Each segment sends a little and then nothing: its read waits.
                reply.stall_after(4 << 10)
            } else {
                reply.drip(16 << 10, Duration::from_millis(50))
            }
        });
    }
    let tmp = TempDir::new();
    let list = list(&tmp, &server.url("/big"), Some(&res.body));
    let child = spawn(tmp.path(), &split_args(&list, "4"));
    let ranged = || {
        server
            .requests()
            .iter()
            .filter(|r| range_of(r).is_some())
            .count()
    };
    assert!(wait_until(Duration::from_secs(30), || ranged() >= 3));
    // Let the segments' reads block on the silence.
    std::thread::sleep(Duration::from_millis(300));
    let asked = Instant::now();
    signal(&child, "-INT");
    let run = wait(child, tmp.path());
    assert!(
        asked.elapsed() < Duration::from_secs(10),
        "the cancel waited for the stall limit"
    );
    assert_eq!(run.code, 130, "stderr: {}", run.stderr);
    let line = run.line(&server.url("/big"));
    assert_eq!(line["status"], "cancelled", "{line}");
    assert_eq!(line["error"]["kind"], "cancelled", "{line}");
    assert!(!tmp.join("out/big.bin").exists());
}
