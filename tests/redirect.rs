//! Redirects are followed by fetchpool, hop by hop: the chain is in the report, loops
//! and too many hops are kind `redirect`, credentials never reach another host, https →
//! http needs `--allow-downgrade`, and only http and https are followed.

mod support;

use serde_json::json;
use support::cli::fetchpool;
use support::tls::{Leaf, TestCa, TlsFront};
use support::{Reply, TempDir, TestServer};

fn header_of(server: &TestServer, path: &str, name: &str) -> Vec<Option<String>> {
    server
        .requests()
        .iter()
        .filter(|r| r.path == path)
        .map(|r| {
            r.headers
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(name))
                .map(|(_, v)| v.clone())
        })
        .collect()
}

#[test]
fn authorization_and_cookie_reach_host_a_and_never_host_b() {
    let (a, b) = (TestServer::start(), TestServer::start());
    b.file("/file", b"B".to_vec());
    let to_b = b.url("/file");
    a.route("/start", move |_| Reply::redirect(302, &to_b));
    let tmp = TempDir::new();
    let run = fetchpool(
        tmp.path(),
        &[
            &a.url("/start"),
            "-o",
            "out",
            "-H",
            "Authorization: Bearer tok-123",
            "-H",
            "Cookie: session=s3",
            "-H",
            "X-Trace: keep",
        ],
        None,
    );
    assert_eq!(run.code, 0, "stderr: {}", run.stderr);
    assert_eq!(
        header_of(&a, "/start", "authorization"),
        [Some("Bearer tok-123".to_string())]
    );
    assert_eq!(
        header_of(&a, "/start", "cookie"),
        [Some("session=s3".to_string())]
    );
    assert_eq!(header_of(&b, "/file", "authorization"), [None]);
    assert_eq!(header_of(&b, "/file", "cookie"), [None]);
    assert_eq!(
        header_of(&b, "/file", "x-trace"),
        [Some("keep".to_string())]
    );
}

#[test]
fn credentials_stay_on_a_same_host_redirect() {
    let a = TestServer::start();
    a.file("/file", b"A".to_vec());
    a.route("/start", |_| Reply::redirect(302, "/file"));
    let tmp = TempDir::new();
    let run = fetchpool(
        tmp.path(),
        &[
            &a.url("/start"),
            "-o",
            "out",
            "-H",
            "Authorization: Bearer t",
        ],
        None,
    );
    assert_eq!(run.code, 0, "stderr: {}", run.stderr);
    assert_eq!(
        header_of(&a, "/file", "authorization"),
        [Some("Bearer t".to_string())]
    );
}

#[test]
fn three_hop_chain_301_absolute_302_path_307_relative_is_ok_and_recorded() {
    let s = TestServer::start();
    let absolute = s.url("/one/hop1");
    s.route("/start", move |_| Reply::redirect(301, &absolute));
    s.route("/one/hop1", |_| Reply::redirect(302, "/two/hop2"));
    s.route("/two/hop2", |_| Reply::redirect(307, "../three/final.bin"));
    s.file("/three/final.bin", b"the end".to_vec());
    let tmp = TempDir::new();
    let run = fetchpool(tmp.path(), &[&s.url("/start"), "-o", "out"], None);
    assert_eq!(run.code, 0, "stderr: {}", run.stderr);
    let line = run.line(&s.url("/start"));
    assert_eq!(line["status"], "ok");
    assert_eq!(line["http_status"], 200);
    assert_eq!(
        line["redirects"],
        json!([
            s.url("/one/hop1"),
            s.url("/two/hop2"),
            s.url("/three/final.bin")
        ])
    );
    assert_eq!(std::fs::read(tmp.join("out/start")).unwrap(), b"the end");
    assert_eq!(s.requests().len(), 4);
}

#[test]
fn loop_fails_with_kind_redirect_and_is_not_retried() {
    let (a, b) = (TestServer::start(), TestServer::start());
    let (to_a, to_b) = (a.url("/ping"), b.url("/pong"));
    a.route("/ping", move |_| Reply::redirect(302, &to_b));
    b.route("/pong", move |_| Reply::redirect(302, &to_a));
    let tmp = TempDir::new();
    let run = fetchpool(tmp.path(), &[&a.url("/ping"), "-o", "out"], None);
    assert_eq!(run.code, 1);
    let line = run.line(&a.url("/ping"));
    assert_eq!(line["error"]["kind"], "redirect");
    assert_eq!(line["attempts"], 1);
    assert_eq!(line["redirects"], json!([b.url("/pong")]));
    assert!(
        line["error"]["message"].as_str().unwrap().contains("loop"),
        "{line}"
    );
    assert_eq!((a.hits("/ping"), b.hits("/pong")), (1, 1));
}

#[test]
fn more_hops_than_max_redirects_fail_with_kind_redirect() {
    let s = TestServer::start();
    for i in 0..5 {
        let next = format!("/r{}", i + 1);
        s.route(&format!("/r{i}"), move |_| Reply::redirect(302, &next));
    }
    s.file("/r5", b"far".to_vec());
    let tmp = TempDir::new();
    let run = fetchpool(
        tmp.path(),
        &[&s.url("/r0"), "-o", "out", "--max-redirects", "3"],
        None,
    );
    assert_eq!(run.code, 1);
    let line = run.line(&s.url("/r0"));
    assert_eq!(line["error"]["kind"], "redirect");
    assert_eq!(
        line["redirects"],
        json!([s.url("/r1"), s.url("/r2"), s.url("/r3")])
    );
    assert!(
        line["error"]["message"]
            .as_str()
            .unwrap()
            .contains("more than 3 redirects"),
        "{line}"
    );
    assert_eq!(s.hits("/r4"), 0);
    let run = fetchpool(
        tmp.path(),
        &[&s.url("/r0"), "-o", "out", "--max-redirects", "5"],
        None,
    );
    assert_eq!(run.code, 0, "stderr: {}", run.stderr);
}

#[test]
fn https_to_http_is_refused_unless_allowed() {
    let ca = TestCa::new("ca");
    let (plain, target) = (TestServer::start(), TestServer::start());
    target.file("/file", b"plain".to_vec());
    let to = target.url("/file");
    plain.route("/start", move |_| Reply::redirect(302, &to));
    let front = TlsFront::start(&ca, Leaf::Valid, &plain);
    let tmp = TempDir::new();
    let cacert = ca.write_pem(tmp.path(), "ca.pem");
    let cacert = cacert.to_str().unwrap();
    let url = front.url("/start");
    let run = fetchpool(tmp.path(), &[&url, "-o", "out", "--cacert", cacert], None);
    assert_eq!(run.code, 1);
    let line = run.line(&url);
    assert_eq!(line["error"]["kind"], "redirect");
    assert!(
        line["error"]["message"]
            .as_str()
            .unwrap()
            .contains("--allow-downgrade"),
        "{line}"
    );
    assert_eq!(target.hits("/file"), 0);
    let run = fetchpool(
        tmp.path(),
        &[&url, "-o", "out", "--cacert", cacert, "--allow-downgrade"],
        None,
    );
    assert_eq!(run.code, 0, "stderr: {}", run.stderr);
    assert_eq!(target.hits("/file"), 1);
}

#[test]
fn only_http_and_https_redirects_are_followed() {
    let s = TestServer::start();
    s.route("/ftp", |_| Reply::redirect(302, "ftp://127.0.0.1/file"));
    s.route("/file", |_| Reply::redirect(302, "file:///etc/passwd"));
    let tmp = TempDir::new();
    let run = fetchpool(
        tmp.path(),
        &[&s.url("/ftp"), &s.url("/file"), "-o", "out"],
        None,
    );
    assert_eq!(run.code, 1);
    for path in ["/ftp", "/file"] {
        let line = run.line(&s.url(path));
        assert_eq!(line["error"]["kind"], "redirect", "{path}");
        assert!(
            line["error"]["message"]
                .as_str()
                .unwrap()
                .contains("only http and https"),
            "{line}"
        );
    }
}

#[test]
fn location_with_a_non_http_scheme_and_no_slashes_is_refused_not_fetched_as_a_path() {
    // A catch-all server: read as a relative path, `data:…` or `file:/etc/passwd` would
    // be "found" on the same host and the job would end ok with this page's bytes.
    let s = TestServer::start();
    s.fallback(|_| Reply::ok("catch-all page"));
    let targets = [
        ("/data", "data:text/plain;base64,SGVsbG8="),
        ("/js", "javascript:alert(1)"),
        ("/mail", "mailto:root@example.com"),
        ("/file", "file:/etc/passwd"),
        ("/upper", "FILE:/etc/passwd"),
        ("/plus", "view-source+x.y:foo"),
        ("/urn", "urn:isbn:0451450523"),
    ];
    for (path, to) in targets {
        let to = to.to_string();
        s.route(path, move |_| Reply::redirect(302, &to));
    }
    let tmp = TempDir::new();
    let urls: Vec<String> = targets.iter().map(|(p, _)| s.url(p)).collect();
    let mut args: Vec<&str> = urls.iter().map(String::as_str).collect();
    args.extend(["-o", "out"]);
    let run = fetchpool(tmp.path(), &args, None);
    assert_eq!(run.code, 1, "stderr: {}", run.stderr);
    for (path, to) in targets {
        let line = run.line(&s.url(path));
        assert_eq!(line["status"], "failed", "{line}");
        assert_eq!(line["error"]["kind"], "redirect", "{line}");
        assert_eq!(line["attempts"], 1, "{line}");
        assert_eq!(line["redirects"], json!([]), "{to}: {line}");
        let message = line["error"]["message"].as_str().unwrap();
        assert!(message.contains("only http and https"), "{to}: {message}");
    }
    // Only the redirecting paths were asked for: nothing was fetched in their place.
    let asked: Vec<String> = s.requests().iter().map(|r| r.path.clone()).collect();
    let mut asked_sorted = asked.clone();
    asked_sorted.sort();
    let mut want: Vec<String> = targets.iter().map(|(p, _)| p.to_string()).collect();
    want.sort();
    assert_eq!(asked_sorted, want, "{asked:?}");
    // Nothing but the state directory (the run's lock) is in the output directory.
    let written: Vec<_> = std::fs::read_dir(tmp.join("out"))
        .map(|d| d.flatten().map(|e| e.file_name()).collect())
        .unwrap_or_default();
    assert!(written.iter().all(|n| n == ".fetchpool"), "{written:?}");
}
