//! Nothing wrong at a final path when the server or the list does not play along: servers
//! that ignore `If-Range`, encoded bodies, parts already whole, weak tags, signed URLs that
//! change between runs, and bodies longer than listed.
//!
//! Most cases start from a `.part` and sidecar planted the way an interrupted run leaves
//! them (the format README.md documents), so each test is one or two short runs.

mod support;

use std::fs;
use std::path::Path;

use serde_json::Value;
use support::cli::{fetchpool, write_list};
use support::{Reply, Resource, TempDir, TestServer, random_bytes, sha256_hex};

/// Above the 1 MiB sidecar threshold, like the files where resuming pays.
const LEN: usize = 2 << 20;

/// Leaves `out/REL.part` holding `head` and its sidecar naming `url`, `validator` and
/// `total`: what an interrupted run leaves behind.
fn plant_part(
    tmp: &TempDir,
    rel: &str,
    head: &[u8],
    url: &str,
    validator: &str,
    total: Option<usize>,
) {
    fs::create_dir_all(tmp.join("out")).unwrap();
    fs::write(tmp.join(format!("out/{rel}.part")), head).unwrap();
    let meta = serde_json::json!({"url": url, "validator": validator, "total": total});
    fs::write(tmp.join(format!("out/{rel}.part.meta")), meta.to_string()).unwrap();
}

/// A TSV list of one job, with the sha256 column when `sha` is given.
fn list(tmp: &TempDir, url: &str, rel: &str, sha: Option<&[u8]>) -> String {
    let sha = sha.map(sha256_hex).unwrap_or_default();
    write_list(tmp.path(), "list.tsv", &format!("{url}\t{rel}\t{sha}\n"))
}

fn no_leftovers(tmp: &TempDir, rel: &str) {
    assert!(
        !tmp.join(format!("out/{rel}.part")).exists(),
        "{rel}.part left"
    );
    assert!(
        !tmp.join(format!("out/{rel}.part.meta")).exists(),
        "{rel}.part.meta left"
    );
}

fn read(tmp: &TempDir, rel: &str) -> Vec<u8> {
    fs::read(tmp.join("out").join(rel)).unwrap()
}

// ---- item 2: a server that ignores If-Range ----

#[test]
fn a_206_for_a_changed_file_from_a_server_ignoring_if_range_is_not_spliced() {
    let old = Resource::new(random_bytes(20, LEN));
    let new = Resource::new(random_bytes(21, LEN)).ignoring_if_range();
    assert_ne!(old.etag, new.etag);
    let server = TestServer::start();
    server.serve("/obj", new.clone());
    let tmp = TempDir::new();
    let url = server.url("/obj");
    plant_part(
        &tmp,
        "obj",
        &old.body[..LEN / 2],
        &url,
        old.etag.as_deref().unwrap(),
        Some(LEN),
    );
    // No sha256: only the validators can tell the versions apart.
    let list = list(&tmp, &url, "obj", None);

    let run = fetchpool(tmp.path(), &["-i", &list, "-o", "out"], None);
    assert_eq!(run.code, 0, "stderr: {}", run.stderr);
    let requests = server.requests();
    assert_eq!(
        requests.len(),
        2,
        "the ranged answer is dropped, then a whole body"
    );
    assert_eq!(requests[0].header("if-range"), old.etag.as_deref());
    assert_eq!(requests[0].status, Some(206), "the server ignored If-Range");
    assert_eq!(requests[1].header("range"), None);
    assert_eq!(requests[1].status, Some(200));
    let line = run.line(&url);
    assert_eq!(line["status"], "ok");
    assert_eq!(line["resumed_from"], Value::Null);
    assert_eq!(line["sha256"], sha256_hex(&new.body));
    assert!(read(&tmp, "obj") == *new.body);
    no_leftovers(&tmp, "obj");

    // The validator stored is the whole new file's: the next run's 304 vouches for it.
    let again = fetchpool(tmp.path(), &["-i", &list, "-o", "out"], None);
    assert_eq!(again.code, 0, "stderr: {}", again.stderr);
    assert_eq!(again.line(&url)["status"], "skipped");
    assert_eq!(server.requests()[2].status, Some(304));
    assert!(read(&tmp, "obj") == *new.body);
}

#[test]
fn a_206_with_another_last_modified_is_not_spliced_when_the_validator_is_a_date() {
    let at = |s: u64| std::time::UNIX_EPOCH + std::time::Duration::from_secs(s);
    let old = Resource::new(random_bytes(22, LEN))
        .no_etag()
        .with_last_modified(at(1_700_000_000));
    let new = Resource::new(random_bytes(23, LEN))
        .no_etag()
        .with_last_modified(at(1_700_000_100))
        .ignoring_if_range();
    let server = TestServer::start();
    server.serve("/obj", new.clone());
    let tmp = TempDir::new();
    let url = server.url("/obj");
    let date = old.last_modified_header().unwrap();
    plant_part(&tmp, "obj", &old.body[..LEN / 2], &url, &date, Some(LEN));
    let list = list(&tmp, &url, "obj", None);

    let run = fetchpool(tmp.path(), &["-i", &list, "-o", "out"], None);
    assert_eq!(run.code, 0, "stderr: {}", run.stderr);
    let requests = server.requests();
    assert_eq!(requests.len(), 2);
    assert_eq!(requests[0].header("if-range"), Some(date.as_str()));
    assert_eq!(requests[0].status, Some(206));
    assert_eq!(requests[1].header("range"), None);
    assert_eq!(run.line(&url)["resumed_from"], Value::Null);
    assert!(read(&tmp, "obj") == *new.body);
    no_leftovers(&tmp, "obj");
}

#[test]
fn a_206_without_any_validator_is_not_appended_to_a_part_that_has_one() {
    let body = random_bytes(24, LEN);
    let res = Resource::new(body.clone())
        .no_etag()
        .no_last_modified()
        .ignoring_if_range();
    let server = TestServer::start();
    server.serve("/obj", res);
    let tmp = TempDir::new();
    let url = server.url("/obj");
    // The head on disk is of another version; nothing in the 206 says which it is.
    let stale = random_bytes(25, LEN / 2);
    plant_part(&tmp, "obj", &stale, &url, "\"v1\"", Some(LEN));
    let list = list(&tmp, &url, "obj", None);

    let run = fetchpool(tmp.path(), &["-i", &list, "-o", "out"], None);
    assert_eq!(run.code, 0, "stderr: {}", run.stderr);
    let requests = server.requests();
    assert_eq!(requests.len(), 2);
    assert_eq!(requests[0].status, Some(206));
    assert_eq!(requests[1].header("range"), None);
    assert_eq!(run.line(&url)["resumed_from"], Value::Null);
    assert!(read(&tmp, "obj") == body);
    no_leftovers(&tmp, "obj");
}

#[test]
fn a_206_shorter_than_its_content_range_is_never_the_whole_file() {
    let body = random_bytes(29, LEN);
    let res = Resource::new(body.clone());
    let server = TestServer::start();
    {
        let res = res.clone();
        // Content-Range says "to the end", the body stops 1000 bytes after the offset.
        server.route("/obj", move |req| {
            let reply = Reply::file(req, &res);
            if req.header("range").is_some() && req.hit % 2 == 1 {
                let short = reply.body_bytes()[..1000].to_vec();
                reply.body(short)
            } else {
                reply
            }
        });
    }
    let url = server.url("/obj");
    // With the total recorded, and without (a body first sent with no length).
    for (n, total) in [(0, Some(LEN)), (2, None)] {
        let tmp = TempDir::new();
        let etag = res.etag.as_deref().unwrap();
        plant_part(&tmp, "obj", &body[..LEN / 2], &url, etag, total);
        let list = list(&tmp, &url, "obj", None);
        let run = fetchpool(tmp.path(), &["-i", &list, "-o", "out"], None);
        assert_eq!(run.code, 0, "stderr: {}", run.stderr);
        let requests = &server.requests()[n..];
        assert_eq!(
            requests.len(),
            2,
            "the short answer, then the rest ({total:?})"
        );
        assert_eq!(requests[0].status, Some(206));
        // The 1000 bytes were right: the retry continues after them.
        let resumed = LEN / 2 + 1000;
        let range = format!("bytes={resumed}-");
        assert_eq!(requests[1].header("range"), Some(range.as_str()));
        assert_eq!(run.line(&url)["attempts"], 2);
        assert_eq!(run.line(&url)["resumed_from"], resumed as u64);
        assert!(read(&tmp, "obj") == body);
        no_leftovers(&tmp, "obj");
    }
}

/// A server that keeps one strong ETag across contents (a tag made of size and mtime, a
/// file rewritten within the same second): only the sha256 can tell.
fn same_tag_server(body: &[u8]) -> (TestServer, Resource) {
    let res = Resource::new(body.to_vec()).with_etag("same");
    let server = TestServer::start();
    server.serve("/obj", res.clone());
    (server, res)
}

#[test]
fn a_resumed_body_failing_its_sha256_is_fetched_again_from_zero_in_the_same_attempt() {
    let body = random_bytes(26, LEN);
    let (server, res) = same_tag_server(&body);
    let tmp = TempDir::new();
    let url = server.url("/obj");
    plant_part(
        &tmp,
        "obj",
        &random_bytes(27, LEN / 2),
        &url,
        res.etag.as_deref().unwrap(),
        Some(LEN),
    );
    let list = list(&tmp, &url, "obj", Some(&body));

    let run = fetchpool(
        tmp.path(),
        &["-i", &list, "-o", "out", "--retries", "0"],
        None,
    );
    assert_eq!(run.code, 0, "stderr: {}", run.stderr);
    let requests = server.requests();
    assert_eq!(requests.len(), 2);
    assert_eq!(requests[0].status, Some(206));
    assert_eq!(requests[1].header("range"), None);
    assert_eq!(requests[1].status, Some(200));
    let line = run.line(&url);
    assert_eq!(line["status"], "ok");
    assert_eq!(line["attempts"], 1);
    assert_eq!(line["resumed_from"], Value::Null);
    assert_eq!(line["sha256"], sha256_hex(&body));
    assert!(read(&tmp, "obj") == body);
    no_leftovers(&tmp, "obj");
}

#[test]
fn a_checksum_failure_after_the_fresh_retry_says_the_whole_download_differs() {
    let body = random_bytes(28, LEN);
    let (server, res) = same_tag_server(&body);
    let tmp = TempDir::new();
    let url = server.url("/obj");
    plant_part(
        &tmp,
        "obj",
        &body[..LEN / 2],
        &url,
        res.etag.as_deref().unwrap(),
        Some(LEN),
    );
    // The list is out of date: neither the resumed nor the fresh body has its sha256.
    let list = list(&tmp, &url, "obj", Some(b"an older version"));

    let run = fetchpool(
        tmp.path(),
        &["-i", &list, "-o", "out", "--retries", "0"],
        None,
    );
    assert_eq!(run.code, 1, "stderr: {}", run.stderr);
    assert_eq!(server.requests().len(), 2, "resumed, then once from zero");
    let line = run.line(&url);
    assert_eq!(line["status"], "failed");
    assert_eq!(line["error"]["kind"], "checksum");
    assert!(
        run.stderr
            .contains("a fresh download (from byte 0) differs"),
        "{}",
        run.stderr
    );
    assert!(
        !run.stderr.contains("the list or the server is stale"),
        "{}",
        run.stderr
    );
    assert!(!tmp.join("out/obj").exists());
    no_leftovers(&tmp, "obj");
}

// ---- item 3: Accept-Encoding and encoded bodies ----

#[test]
fn an_accept_encoding_header_is_refused_before_any_request() {
    let server = TestServer::start();
    server.file("/a.txt", b"hello".to_vec());
    let tmp = TempDir::new();
    let run = fetchpool(
        tmp.path(),
        &[
            &server.url("/a.txt"),
            "-o",
            "out",
            "-H",
            "Accept-Encoding: gzip",
        ],
        None,
    );
    assert_eq!(run.code, 2, "stderr: {}", run.stderr);
    assert!(
        run.stderr.contains("'Accept-Encoding: gzip'"),
        "{}",
        run.stderr
    );
    assert!(run.stderr.contains("remove the header"), "{}", run.stderr);

    // The same header on one line of a list names that line.
    let line = serde_json::json!({
        "url": server.url("/a.txt"), "path": "a.txt", "headers": {"accept-encoding": "br, gzip"}
    });
    let list = write_list(tmp.path(), "list.jsonl", &format!("{line}\n"));
    let run = fetchpool(tmp.path(), &["-i", &list, "-o", "out"], None);
    assert_eq!(run.code, 2, "stderr: {}", run.stderr);
    assert!(run.stderr.contains("list.jsonl:1"), "{}", run.stderr);
    assert!(
        run.stderr.contains("'Accept-Encoding: br, gzip'"),
        "{}",
        run.stderr
    );
    assert_eq!(server.requests().len(), 0);

    // `identity` asks for the bytes as they are: allowed.
    let run = fetchpool(
        tmp.path(),
        &[
            &server.url("/a.txt"),
            "-o",
            "out",
            "-H",
            "Accept-Encoding: identity",
        ],
        None,
    );
    assert_eq!(run.code, 0, "stderr: {}", run.stderr);
    assert_eq!(read(&tmp, "a.txt"), b"hello");
}

#[test]
fn a_206_with_content_encoding_is_not_appended() {
    let body = random_bytes(30, LEN);
    let res = Resource::new(body.clone());
    let server = TestServer::start();
    {
        let res = res.clone();
        // Caddy's way: a gzip body of the range, in uncompressed coordinates, same tag.
        server.route("/obj", move |req| {
            let reply = Reply::file(req, &res);
            if req.header("range").is_some() {
                reply.header("Content-Encoding", "gzip")
            } else {
                reply
            }
        });
    }
    let tmp = TempDir::new();
    let url = server.url("/obj");
    plant_part(
        &tmp,
        "obj",
        &body[..LEN / 2],
        &url,
        res.etag.as_deref().unwrap(),
        Some(LEN),
    );
    let list = list(&tmp, &url, "obj", None);

    let run = fetchpool(tmp.path(), &["-i", &list, "-o", "out"], None);
    assert_eq!(run.code, 0, "stderr: {}", run.stderr);
    let requests = server.requests();
    assert_eq!(requests.len(), 2);
    assert_eq!(requests[0].status, Some(206));
    assert_eq!(requests[1].header("range"), None);
    assert_eq!(run.line(&url)["resumed_from"], Value::Null);
    assert!(read(&tmp, "obj") == body);
    no_leftovers(&tmp, "obj");
}

#[test]
fn an_encoded_body_gets_no_sidecar_and_a_broken_one_is_fetched_again_from_zero() {
    // What a server sends encoded unasked (a .gz served with Content-Encoding) is saved
    // as sent, but never resumed: its ranges need not match the bytes on disk.
    let body = random_bytes(31, LEN);
    let res = Resource::new(body.clone());
    let server = TestServer::start();
    let cut = LEN * 40 / 100;
    server.route("/obj.gz", move |req| {
        let reply = Reply::file(req, &res).header("Content-Encoding", "gzip");
        if req.hit == 1 {
            reply.cut_after(cut)
        } else {
            reply
        }
    });
    let tmp = TempDir::new();
    let url = server.url("/obj.gz");
    let list = list(&tmp, &url, "obj.gz", Some(&body));

    let run = fetchpool(tmp.path(), &["-i", &list, "-o", "out"], None);
    assert_eq!(run.code, 0, "stderr: {}", run.stderr);
    let requests = server.requests();
    assert_eq!(requests.len(), 2);
    assert_eq!(
        requests[1].header("range"),
        None,
        "an encoded body is not resumed"
    );
    assert_eq!(requests[1].header("if-range"), None);
    let line = run.line(&url);
    assert_eq!(line["attempts"], 2);
    assert_eq!(line["resumed_from"], Value::Null);
    assert!(read(&tmp, "obj.gz") == body);
    no_leftovers(&tmp, "obj.gz");
}

// ---- item 4: a part that is already whole ----

#[test]
fn a_complete_part_is_finished_without_a_request() {
    let body = random_bytes(40, LEN);
    // Apache's, lighttpd's and moto's 416: no Content-Range saying the length.
    let res = Resource::new(body.clone()).bare_416();
    let server = TestServer::start();
    server.serve("/obj", res.clone());
    let tmp = TempDir::new();
    let url = server.url("/obj");
    for (rel, sha) in [("with-sha", Some(&body[..])), ("without-sha", None)] {
        plant_part(
            &tmp,
            rel,
            &body,
            &url,
            res.etag.as_deref().unwrap(),
            Some(LEN),
        );
        let list = list(&tmp, &url, rel, sha);
        let run = fetchpool(tmp.path(), &["-i", &list, "-o", "out"], None);
        assert_eq!(run.code, 0, "stderr: {}", run.stderr);
        let line = run.line(&url);
        assert_eq!(line["status"], "ok", "{rel}");
        assert_eq!(line["http_status"], Value::Null, "{rel}");
        assert_eq!(line["resumed_from"], LEN as u64, "{rel}");
        assert_eq!(line["sha256"], sha256_hex(&body), "{rel}");
        assert!(read(&tmp, rel) == body, "{rel}");
        no_leftovers(&tmp, rel);
    }
    assert_eq!(
        server.requests().len(),
        0,
        "no request for a part already whole"
    );

    // Without a sha256, the sidecar's validator is kept: the next run asks with it.
    let list = list(&tmp, &url, "without-sha", None);
    let run = fetchpool(tmp.path(), &["-i", &list, "-o", "out"], None);
    assert_eq!(
        run.line(&url)["status"],
        "skipped",
        "stderr: {}",
        run.stderr
    );
    let requests = server.requests();
    assert_eq!(requests[0].header("if-none-match"), res.etag.as_deref());
    assert_eq!(requests[0].status, Some(304));
}

#[test]
fn a_complete_part_failing_its_sha256_is_fetched_again_from_zero() {
    let body = random_bytes(41, LEN);
    let server = TestServer::start();
    let res = server.file("/obj", body.clone());
    let tmp = TempDir::new();
    let url = server.url("/obj");
    plant_part(
        &tmp,
        "obj",
        &random_bytes(42, LEN),
        &url,
        res.etag.as_deref().unwrap(),
        Some(LEN),
    );
    let list = list(&tmp, &url, "obj", Some(&body));
    let run = fetchpool(
        tmp.path(),
        &["-i", &list, "-o", "out", "--retries", "0"],
        None,
    );
    assert_eq!(run.code, 0, "stderr: {}", run.stderr);
    let requests = server.requests();
    assert_eq!(requests.len(), 1);
    assert_eq!(requests[0].header("range"), None);
    assert_eq!(requests[0].status, Some(200));
    assert_eq!(run.line(&url)["resumed_from"], Value::Null);
    assert!(read(&tmp, "obj") == body);
    no_leftovers(&tmp, "obj");
}

#[test]
fn a_416_without_content_range_restarts_once_from_zero() {
    // A part of unknown total that is in fact whole: the range is unsatisfiable, and the
    // 416 does not say the length, so nothing proves the part whole.
    let body = random_bytes(43, LEN);
    let res = Resource::new(body.clone()).bare_416();
    let server = TestServer::start();
    server.serve("/obj", res.clone());
    let tmp = TempDir::new();
    let url = server.url("/obj");
    plant_part(&tmp, "obj", &body, &url, res.etag.as_deref().unwrap(), None);
    let list = list(&tmp, &url, "obj", Some(&body));
    let run = fetchpool(tmp.path(), &["-i", &list, "-o", "out"], None);
    assert_eq!(run.code, 0, "stderr: {}", run.stderr);
    let requests = server.requests();
    assert_eq!(requests.len(), 2);
    assert_eq!(requests[0].status, Some(416));
    assert_eq!(requests[1].header("range"), None);
    assert_eq!(requests[1].status, Some(200));
    assert_eq!(run.line(&url)["attempts"], 1);
    assert!(read(&tmp, "obj") == body);
    no_leftovers(&tmp, "obj");
}

// ---- item 5: weak entity tags ----

#[test]
fn a_weak_etag_is_never_replaced_by_a_date_in_if_range() {
    let body = random_bytes(50, LEN);
    let res = Resource::new(body.clone()).with_etag("W/\"weak\"");
    let server = TestServer::start();
    let cut = LEN * 40 / 100;
    server.route("/obj", move |req| {
        let reply = Reply::file(req, &res);
        if req.hit == 1 {
            reply.cut_after(cut)
        } else {
            reply
        }
    });
    let tmp = TempDir::new();
    let url = server.url("/obj");
    let list = list(&tmp, &url, "obj", Some(&body));
    let run = fetchpool(tmp.path(), &["-i", &list, "-o", "out"], None);
    assert_eq!(run.code, 0, "stderr: {}", run.stderr);
    let requests = server.requests();
    assert_eq!(requests.len(), 2);
    // A weak tag cannot guard a range, and no date may stand in for it: from zero.
    assert_eq!(requests[1].header("if-range"), None);
    assert_eq!(requests[1].header("range"), None);
    assert_eq!(requests[1].status, Some(200));
    assert_eq!(run.line(&url)["resumed_from"], Value::Null);
    assert!(read(&tmp, "obj") == body);
    no_leftovers(&tmp, "obj");
}

// ---- item 6: signed URLs that change between runs ----

#[test]
fn a_re_signed_url_continues_the_part_of_the_old_signature() {
    let body = random_bytes(60, LEN);
    let server = TestServer::start();
    let res = server.file("/bucket/obj", body.clone());
    let tmp = TempDir::new();
    let old = server.url("/bucket/obj?X-Amz-Signature=aaaa&X-Amz-Expires=60");
    let new = server.url("/bucket/obj?X-Amz-Signature=bbbb&X-Amz-Expires=60");
    plant_part(
        &tmp,
        "obj",
        &body[..LEN / 2],
        &old,
        res.etag.as_deref().unwrap(),
        Some(LEN),
    );
    let list = list(&tmp, &new, "obj", Some(&body));
    let run = fetchpool(tmp.path(), &["-i", &list, "-o", "out"], None);
    assert_eq!(run.code, 0, "stderr: {}", run.stderr);
    let requests = server.requests();
    assert_eq!(requests.len(), 1);
    assert_eq!(
        requests[0].header("range"),
        Some(format!("bytes={}-", LEN / 2).as_str())
    );
    assert_eq!(requests[0].status, Some(206));
    assert_eq!(run.line(&new)["resumed_from"], (LEN / 2) as u64);
    assert!(read(&tmp, "obj") == body);
    no_leftovers(&tmp, "obj");
    // The sidecar and the store keep no signature.
    let store = walk(&tmp.join("out/.fetchpool"));
    assert!(store.iter().all(|t| !t.contains("Signature")), "{store:?}");
}

/// The text of every file under `dir`.
fn walk(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    if let Ok(entries) = fs::read_dir(dir) {
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                out.extend(walk(&p));
            } else {
                out.push(fs::read_to_string(&p).unwrap_or_default());
            }
        }
    }
    out
}

#[test]
fn a_re_signed_url_is_asked_conditionally_and_answered_304() {
    let server = TestServer::start();
    let res = server.file("/bucket/obj", random_bytes(61, 5000));
    let tmp = TempDir::new();
    let first = list(&tmp, &server.url("/bucket/obj?sig=1"), "obj", None);
    let run = fetchpool(tmp.path(), &["-i", &first, "-o", "out"], None);
    assert_eq!(run.code, 0, "stderr: {}", run.stderr);

    let url = server.url("/bucket/obj?sig=2");
    let second = list(&tmp, &url, "obj", None);
    let run = fetchpool(tmp.path(), &["-i", &second, "-o", "out"], None);
    assert_eq!(run.code, 0, "stderr: {}", run.stderr);
    assert_eq!(run.line(&url)["status"], "skipped");
    let again = &server.requests()[1];
    assert_eq!(again.header("if-none-match"), res.etag.as_deref());
    assert_eq!(again.status, Some(304));
    // The store keeps the host and path, not the signature.
    let walked = walk(&tmp.join("out/.fetchpool"));
    assert!(walked.iter().all(|t| !t.contains("sig=")), "{walked:?}");
}

#[test]
fn a_part_of_another_path_is_dropped_with_an_info_line() {
    let body = random_bytes(62, LEN);
    let server = TestServer::start();
    let res = server.file("/new/obj", body.clone());
    let tmp = TempDir::new();
    plant_part(
        &tmp,
        "obj",
        &body[..LEN / 2],
        &server.url("/old/obj"),
        res.etag.as_deref().unwrap(),
        Some(LEN),
    );
    let url = server.url("/new/obj");
    let list = list(&tmp, &url, "obj", Some(&body));
    let run = fetchpool(tmp.path(), &["-i", &list, "-o", "out", "-v"], None);
    assert_eq!(run.code, 0, "stderr: {}", run.stderr);
    assert!(
        run.stderr.contains(
            "obj.part: the partial file is of another URL (host or path changed); starting over"
        ),
        "{}",
        run.stderr
    );
    assert_eq!(server.requests()[0].header("range"), None);
    assert!(read(&tmp, "obj") == body);
    no_leftovers(&tmp, "obj");
}

#[test]
fn retry_failed_finds_failed_jobs_whose_urls_were_re_signed() {
    let server = TestServer::start();
    let body = random_bytes(63, 3000);
    let res = Resource::new(body.clone());
    server.route("/bucket/obj", move |req| {
        if req.hit == 1 {
            Reply::status(500)
        } else {
            Reply::file(req, &res)
        }
    });
    let tmp = TempDir::new();
    let first = list(&tmp, &server.url("/bucket/obj?sig=1"), "obj", Some(&body));
    let run = fetchpool(
        tmp.path(),
        &["-i", &first, "-o", "out", "--retries", "0"],
        None,
    );
    assert_eq!(run.code, 1, "stderr: {}", run.stderr);
    fs::copy(tmp.join("report.jsonl"), tmp.join("run1.jsonl")).unwrap();

    let url = server.url("/bucket/obj?sig=2");
    let second = list(&tmp, &url, "obj", Some(&body));
    let run = fetchpool(
        tmp.path(),
        &["-i", &second, "-o", "out", "--retry-failed", "run1.jsonl"],
        None,
    );
    assert_eq!(run.code, 0, "stderr: {}", run.stderr);
    assert_eq!(run.line(&url)["status"], "ok");
    assert!(read(&tmp, "obj") == body);
}

#[test]
fn retry_failed_exits_2_when_failed_jobs_of_the_report_are_not_in_the_list() {
    let server = TestServer::start();
    server.route("/a", |_| Reply::status(500));
    server.route("/b", |_| Reply::status(500));
    server.file("/c", b"c".to_vec());
    let tmp = TempDir::new();
    let full = format!(
        "{}\ta\n{}\tb\n{}\tc\n",
        server.url("/a"),
        server.url("/b"),
        server.url("/c")
    );
    let list_all = write_list(tmp.path(), "all.tsv", &full);
    let run = fetchpool(
        tmp.path(),
        &["-i", &list_all, "-o", "out", "--retries", "0"],
        None,
    );
    assert_eq!(run.code, 1);
    fs::copy(tmp.join("report.jsonl"), tmp.join("run1.jsonl")).unwrap();
    let requests = server.requests().len();

    // A list that lost both failed jobs (a different list, or one made anew).
    let other = write_list(
        tmp.path(),
        "other.tsv",
        &format!("{}\tc\n", server.url("/c")),
    );
    let run = fetchpool(
        tmp.path(),
        &["-i", &other, "-o", "out", "--retry-failed", "run1.jsonl"],
        None,
    );
    assert_eq!(run.code, 2, "stderr: {}", run.stderr);
    assert!(
        run.stderr
            .contains("2 failed or cancelled job(s) in run1.jsonl match no job of the list (a, b)"),
        "{}",
        run.stderr
    );
    assert_eq!(server.requests().len(), requests, "no request");
}

// ---- item 7: bodies longer than listed ----

#[test]
fn a_body_without_length_longer_than_the_listed_size_is_cut_off_at_the_size() {
    let big = random_bytes(70, 64 << 20);
    let server = TestServer::start();
    for (path, chunked) in [("/close", false), ("/chunked", true)] {
        let big = big.clone();
        server.route(path, move |_| {
            let reply = Reply::ok(&big);
            if chunked {
                reply.chunked()
            } else {
                reply.until_close()
            }
        });
    }
    let tmp = TempDir::new();
    let lines = format!(
        "{}\tclose.bin\t\t1000\n{}\tchunked.bin\t\t1000\n",
        server.url("/close"),
        server.url("/chunked")
    );
    let list = write_list(tmp.path(), "list.tsv", &lines);
    let started = std::time::Instant::now();
    let run = fetchpool(tmp.path(), &["-i", &list, "-o", "out"], None);
    assert_eq!(run.code, 1, "stderr: {}", run.stderr);
    for (path, rel) in [("/close", "close.bin"), ("/chunked", "chunked.bin")] {
        let line = run.line(&server.url(path));
        assert_eq!(line["status"], "failed");
        assert_eq!(line["error"]["kind"], "checksum");
        assert_eq!(
            line["error"]["message"],
            "checksum mismatch: expected 1000 bytes, got more than 1000 bytes (the rest was not read)"
        );
        assert!(!tmp.join("out").join(rel).exists());
        no_leftovers(&tmp, rel);
    }
    eprintln!("both failed after {:?}", started.elapsed());
}

#[test]
fn a_memory_job_over_the_memory_limit_is_cut_off_at_the_limit() {
    let big = random_bytes(71, 16 << 20);
    let server = TestServer::start();
    {
        let big = big.clone();
        server.route("/chunked", move |_| Reply::ok(&big).chunked());
    }
    server.route("/announced", move |_| Reply::ok(&big));
    let tmp = TempDir::new();
    let pool = fetchpool::Pool::builder()
        .output_dir(tmp.path())
        .memory_limit(1000)
        .retries(0)
        .build()
        .unwrap();
    let report = pool
        .run(vec![
            fetchpool::Job::new(server.url("/chunked")).to_memory(),
            fetchpool::Job::new(server.url("/announced")).to_memory(),
        ])
        .unwrap();
    let message = |url: &str| {
        let o = report.outcomes.iter().find(|o| o.url == url).unwrap();
        assert_eq!(o.status, fetchpool::Status::Failed);
        let e = o.error.as_ref().unwrap();
        assert_eq!(e.kind(), fetchpool::ErrorKind::TooLarge);
        e.to_string()
    };
    assert_eq!(
        message(&server.url("/chunked")),
        "body too large for memory: at most 1000 bytes (the memory limit; write the body to a \
         file instead), got more than 1000 bytes (the rest was not read)"
    );
    assert_eq!(
        message(&server.url("/announced")),
        "body too large for memory: at most 1000 bytes (the memory limit; write the body to a \
         file instead), got 16777216 bytes announced by the server (nothing was read)"
    );
}
