//! The end-to-end path: job list → pool → verified file on disk → report → exit code.

mod support;

use std::fs;
use std::path::Path;

use support::cli::{fetchpool, write_list};
use support::{Reply, TempDir, TestServer, random_bytes, sha256_hex};

/// Every file under `dir` whose name ends in `.part`.
fn part_files(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in fs::read_dir(&d).unwrap() {
            let p = entry.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else if p.to_string_lossy().ends_with(".part") {
                out.push(p.display().to_string());
            }
        }
    }
    out
}

#[test]
fn two_hundred_files_are_downloaded_verified_with_one_request_each() {
    let server = TestServer::start();
    let tmp = TempDir::new();
    let mut list = String::from("# 200 files, one empty, some nested\n");
    let mut bodies = Vec::new();
    for i in 0..200u64 {
        let len = if i == 7 {
            0
        } else {
            (i * 7919 % 300_001) as usize
        };
        let body = random_bytes(i, len);
        let path = if i % 3 == 0 {
            format!("nested/d{}/f{i}.bin", i % 5)
        } else {
            format!("f{i}.bin")
        };
        server.file(&format!("/files/{i}"), body.clone());
        list.push_str(&format!(
            "{}\t{path}\t{}\t{}\n",
            server.url(&format!("/files/{i}")),
            sha256_hex(&body),
            body.len()
        ));
        bodies.push((path, body));
    }
    let name = write_list(tmp.path(), "list.tsv", &list);
    let run = fetchpool(tmp.path(), &["-i", &name, "-o", "out", "-j", "8"], None);
    assert_eq!(run.code, 0, "stderr: {}", run.stderr);
    assert_eq!(run.with_status("ok").len(), 200);
    for (i, (path, body)) in bodies.iter().enumerate() {
        let got = fs::read(tmp.join("out").join(path)).unwrap();
        assert!(got == *body, "{path} differs");
        assert_eq!(
            server.hits(&format!("/files/{i}")),
            1,
            "requests for {path}"
        );
    }
    assert_eq!(server.requests().len(), 200);
    assert!(part_files(&tmp.join("out")).is_empty());
    let empty = run.line(&server.url("/files/7"));
    assert_eq!(empty["bytes"], 0);
    assert_eq!(empty["sha256"], sha256_hex(b""));
}

#[test]
fn wrong_sha256_fails_that_job_only_and_leaves_no_file() {
    let server = TestServer::start();
    let tmp = TempDir::new();
    server.file("/good", random_bytes(1, 5000));
    server.file("/bad", random_bytes(2, 5000));
    let list = format!(
        "{}\tgood.bin\t{}\n{}\tbad.bin\t{}\n",
        server.url("/good"),
        sha256_hex(&random_bytes(1, 5000)),
        server.url("/bad"),
        "0".repeat(64)
    );
    let name = write_list(tmp.path(), "l.tsv", &list);
    let run = fetchpool(tmp.path(), &["-i", &name, "-o", "out"], None);
    assert_eq!(run.code, 1);
    let bad = run.line(&server.url("/bad"));
    assert_eq!(bad["status"], "failed");
    assert_eq!(bad["error"]["kind"], "checksum");
    assert_eq!(bad["attempts"], 1, "a checksum mismatch is not retried");
    assert!(!tmp.join("out/bad.bin").exists());
    assert!(!tmp.join("out/bad.bin.part").exists());
    assert_eq!(run.line(&server.url("/good"))["status"], "ok");
    assert!(tmp.join("out/good.bin").exists());
}

#[test]
fn not_found_is_an_http_failure_after_one_request() {
    let server = TestServer::start();
    let tmp = TempDir::new();
    let url = server.url("/missing.bin");
    let run = fetchpool(tmp.path(), &[&url, "-o", "out"], None);
    assert_eq!(run.code, 1);
    let line = run.line(&url);
    assert_eq!(line["status"], "failed");
    assert_eq!(line["error"]["kind"], "http");
    assert_eq!(line["http_status"], 404);
    assert_eq!(line["attempts"], 1);
    assert_eq!(server.hits("/missing.bin"), 1);
    assert!(!tmp.join("out/missing.bin").exists());
}

#[test]
fn invalid_lists_exit_2_before_any_request_naming_the_line() {
    let server = TestServer::start();
    server.file("/a", b"a".to_vec());
    let ok = server.url("/a");
    let cases: Vec<(String, &str)> = vec![
        (format!("{ok}\nnot a url\n"), "l.txt:2"),
        (format!("{ok}\nftp://127.0.0.1/x\n"), "l.txt:2"),
        (
            format!("{ok}\tsame\n# c\n{ok}\tother\n{ok}\tsame\n"),
            "lines 1 and 4",
        ),
        (format!("{ok}\t/etc/passwd\n"), "l.txt:1"),
        (format!("{ok}\tx\n{ok}\t../x\n"), "l.txt:2"),
        (format!("{ok}\ty\n{ok}\ta/../../x\n"), "l.txt:2"),
        (
            format!(
                "{{\"url\":\"{ok}\",\"id\":\"a\",\"after\":[\"b\"]}}\n{{\"url\":\"{ok}\",\"path\":\"b\",\"id\":\"b\",\"after\":[\"a\"]}}\n"
            ),
            "cycle",
        ),
    ];
    for (list, needle) in cases {
        let tmp = TempDir::new();
        let name = write_list(tmp.path(), "l.txt", &list);
        let run = fetchpool(tmp.path(), &["-i", &name, "-o", "out"], None);
        assert_eq!(run.code, 2, "list {list:?}: {}", run.stderr);
        assert!(
            run.stderr.contains(needle),
            "list {list:?}: expected '{needle}' in: {}",
            run.stderr
        );
        assert!(run.report.is_empty());
    }
    // An output directory that cannot be created: a regular file stands in its way.
    let tmp = TempDir::new();
    fs::write(tmp.join("blocker"), b"").unwrap();
    let run = fetchpool(tmp.path(), &[&ok, "-o", "blocker/out"], None);
    assert_eq!(run.code, 2);
    assert!(
        run.stderr.contains("cannot create output directory"),
        "{}",
        run.stderr
    );
    assert_eq!(
        server.requests().len(),
        0,
        "no request may reach the server"
    );
}

#[test]
fn three_thousand_tiny_requests_reuse_at_most_sixteen_connections() {
    let server = TestServer::start();
    let tmp = TempDir::new();
    server.fallback(|req| Reply::ok(req.path.as_bytes()));
    let list: String = (0..3000)
        .map(|i| format!("{}\tt/{i}\n", server.url(&format!("/tiny/{i}"))))
        .collect();
    let name = write_list(tmp.path(), "l.tsv", &list);
    let run = fetchpool(
        tmp.path(),
        &["-i", &name, "-o", "out", "-j", "8", "--per-host", "8"],
        None,
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(run.with_status("ok").len(), 3000);
    assert_eq!(server.requests().len(), 3000);
    let conns = server.connections();
    eprintln!("3,000 requests over -j 8: {conns} connections");
    assert!(
        conns <= 16,
        "{conns} connections for 3000 requests on 8 workers"
    );
}

#[test]
fn garbage_and_a_huge_header_fail_cleanly_while_others_succeed() {
    let server = TestServer::start();
    let tmp = TempDir::new();
    server.route("/garbage", |_| {
        Reply::raw(b"\x00\x01 this is not HTTP at all\r\n\r\n".as_slice())
    });
    server.route("/huge", |_| Reply::huge_header(1 << 20));
    server.file("/fine", random_bytes(3, 10_000));
    let list = format!(
        "{}\n{}\n{}\n",
        server.url("/garbage"),
        server.url("/huge"),
        server.url("/fine")
    );
    let name = write_list(tmp.path(), "l.txt", &list);
    let run = fetchpool(
        tmp.path(),
        &["-i", &name, "-o", "out", "--retries", "0"],
        None,
    );
    assert_eq!(run.code, 1, "{}", run.stderr);
    for path in ["/garbage", "/huge"] {
        let line = run.line(&server.url(path));
        assert_eq!(line["status"], "failed", "{path}");
        assert_eq!(line["error"]["kind"], "protocol", "{path}: {line}");
    }
    assert_eq!(run.line(&server.url("/fine"))["status"], "ok");
    assert!(!run.stderr.contains("panicked"));
}

#[test]
fn plain_urls_from_stdin_are_named_after_their_last_segment() {
    let server = TestServer::start();
    let tmp = TempDir::new();
    server.file("/dir/report%20final.csv", b"a,b\n".to_vec());
    let input = format!("{}\n", server.url("/dir/report%20final.csv"));
    let run = fetchpool(
        tmp.path(),
        &["-i", "-", "-o", "out", "--json"],
        Some(&input),
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(
        fs::read(tmp.join("out/report final.csv")).unwrap(),
        b"a,b\n"
    );
    let summary: serde_json::Value = serde_json::from_str(run.stdout.trim()).unwrap();
    assert_eq!(summary["ok"], 1);
    assert_eq!(summary["jobs"], 1);
}
