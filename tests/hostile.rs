//! Misuse and hostile input: secrets in URLs never printed, names and paths too long for
//! the file system, lists of bad lines that must not cost memory, another local user's
//! planted files, and headers that cannot be sent.

mod support;

use std::fs;

use support::cli::{fetchpool, fetchpool_env, write_list};
use support::{Reply, TempDir, TestServer};

/// Every secret a URL of the list below carries; none may be printed or written.
const SECRETS: &[&str] = &[
    "hunter2pw",
    "AMZSIGSECRET",
    "AMZCREDSECRET",
    "AMZTOKENSECRET",
    "PLAINSIGSECRET",
    "AZURESIGSECRET",
    "GOOGSIGSECRET",
    "HOPTOKENSECRET",
    "LOOPSIGSECRET",
];

fn assert_no_secret(what: &str, text: &str) {
    for s in SECRETS {
        assert!(!text.contains(s), "{what} shows {s}:\n{text}");
    }
}

#[test]
fn rust_log_trace_shows_no_request_bytes_signature_or_token() {
    let s = TestServer::start();
    s.route("/f", |_| Reply::ok("fine"));
    let url = s.url("/f?X-Amz-Signature=TRACESIGSECRET");
    let tmp = TempDir::new();
    let args = [
        url.as_str(),
        "-o",
        "out",
        "-H",
        "Authorization: Bearer TRACETOKENSECRET",
        "-H",
        "X-Api-Key: TRACEKEYSECRET",
    ];
    let run = fetchpool_env(tmp.path(), &args, None, &[("RUST_LOG", "trace")]);
    assert_eq!(run.code, 0, "stderr: {}", run.stderr);
    // The request went out with its secrets: the log is what must not show them.
    assert_eq!(
        s.requests()[0].header("authorization"),
        Some("Bearer TRACETOKENSECRET")
    );
    assert!(run.stderr.contains("DEBUG ureq"), "{}", run.stderr);
    for secret in ["TRACESIGSECRET", "TRACETOKENSECRET", "TRACEKEYSECRET"] {
        assert!(!run.stderr.contains(secret), "{secret}:\n{}", run.stderr);
    }
    // A hex dump splits a secret over lines: no trace line of the HTTP library at all.
    assert!(!run.stderr.contains("TRACE ureq"), "{}", run.stderr);
}

#[test]
fn passwords_and_url_signatures_never_reach_logs_summaries_json_or_reports() {
    let s = TestServer::start();
    let port = s.port();
    s.route("/denied", |_| Reply::status(403));
    s.route("/fine", |_| Reply::ok("fine"));
    let gone = "/gone?token=HOPTOKENSECRET";
    s.route("/hop", move |_| Reply::redirect(302, gone));
    s.route("/gone", |_| Reply::status(404));
    let again = format!("http://127.0.0.1:{port}/loop?sig=LOOPSIGSECRET");
    s.route("/loop", move |_| Reply::redirect(302, &again));
    let denied = format!(
        "http://ann:hunter2pw@127.0.0.1:{port}/denied?X-Amz-Credential=AMZCREDSECRET\
         &X-Amz-Security-Token=AMZTOKENSECRET&X-Amz-Signature=AMZSIGSECRET&part=7"
    );
    let fine = format!("http://127.0.0.1:{port}/fine?Signature=PLAINSIGSECRET");
    let hop = format!("http://127.0.0.1:{port}/hop?sig=AZURESIGSECRET");
    let looping = format!("http://127.0.0.1:{port}/loop?X-Goog-Signature=GOOGSIGSECRET");
    let tmp = TempDir::new();
    let list = write_list(
        tmp.path(),
        "list.txt",
        &format!("{denied}\tdenied.bin\n{fine}\tfine.bin\n{hop}\thop.bin\n{looping}\tloop.bin\n"),
    );
    let args = ["-i", &list, "-o", "out", "--retries", "0", "--json", "-v"];
    // RUST_LOG=debug: the library's own debug lines (redirect hops) and ureq's too.
    let run = fetchpool_env(tmp.path(), &args, None, &[("RUST_LOG", "debug")]);
    assert_eq!(run.code, 1, "stderr: {}", run.stderr);
    let report = fs::read_to_string(tmp.join("report.jsonl")).unwrap();
    assert_no_secret("stdout (--json)", &run.stdout);
    assert_no_secret("stderr (logs and summary)", &run.stderr);
    assert_no_secret("the report", &report);

    // What is shown instead: the URL as the reader knows it, secrets as ***.
    let shown_denied = format!(
        "http://ann:***@127.0.0.1:{port}/denied?X-Amz-Credential=***\
         &X-Amz-Security-Token=***&X-Amz-Signature=***&part=7"
    );
    let line = run.line(&shown_denied);
    assert_eq!(line["status"], "failed");
    assert_eq!(line["http_status"], 403);
    assert_eq!(line["path"], "denied.bin");
    let hop_line = run.line(&format!("http://127.0.0.1:{port}/hop?sig=***"));
    assert_eq!(
        hop_line["redirects"],
        serde_json::json!([format!("http://127.0.0.1:{port}/gone?token=***")])
    );
    let loop_line = run.line(&format!(
        "http://127.0.0.1:{port}/loop?X-Goog-Signature=***"
    ));
    assert_eq!(loop_line["error"]["kind"], "redirect");
    let message = loop_line["error"]["message"].as_str().unwrap();
    assert!(message.contains("/loop?sig=***"), "{message}");
    // The failed job's log line, the summary's examples and --json's examples.
    assert!(
        run.stderr
            .contains(&format!("failed {shown_denied}: server answered HTTP 403")),
        "{}",
        run.stderr
    );
    // Examples come in the order jobs finish: the 403 and the redirect's 404 race.
    assert!(
        run.stderr.contains(&format!("(e.g. {shown_denied}"))
            || run.stderr.contains(&format!(", {shown_denied})")),
        "{}",
        run.stderr
    );
    let summary: serde_json::Value = serde_json::from_str(run.stdout.trim()).unwrap();
    assert_eq!(
        summary["failures"]["http"]["examples"][0]
            .as_str()
            .map(|e| e == shown_denied || e.ends_with("/hop?sig=***")),
        Some(true),
        "{summary}"
    );
    assert_no_secret("--json examples", &summary["failures"].to_string());

    // --retry-failed still finds the failed jobs from the redacted report, and only them.
    fs::copy(tmp.join("report.jsonl"), tmp.join("run1.jsonl")).unwrap();
    s.route("/denied", |_| Reply::ok("now allowed"));
    let retry = [
        "-i",
        &list,
        "-o",
        "out",
        "--retries",
        "0",
        "-v",
        "--retry-failed",
        "run1.jsonl",
    ];
    let run = fetchpool(tmp.path(), &retry, None);
    assert_eq!(run.code, 1, "stderr: {}", run.stderr);
    assert_eq!(run.report.len(), 3, "{:#?}", run.report);
    assert_eq!(run.line(&shown_denied)["status"], "ok");
    assert_eq!(
        fs::read(tmp.join("out/denied.bin")).unwrap(),
        b"now allowed"
    );
    assert_eq!(s.hits("/fine"), 1, "an ok job is not run again");
    assert_eq!(s.hits("/denied"), 2);
    let report = fs::read_to_string(tmp.join("report.jsonl")).unwrap();
    assert_no_secret("stderr of the retry", &run.stderr);
    assert_no_secret("the retry's report", &report);
}

#[test]
fn a_300_character_name_from_a_url_is_shortened_not_failed_at_run_time() {
    let s = TestServer::start();
    let long = format!("{}.tar.gz", "a".repeat(293));
    assert_eq!(long.len(), 300);
    s.file(&format!("/{long}"), b"long name".to_vec());
    let tmp = TempDir::new();
    let url = s.url(&long);
    let run = fetchpool(tmp.path(), &[&url, "-o", "out"], None);
    assert_eq!(run.code, 0, "stderr: {}", run.stderr);
    // The start of the name, 8 hex digits of the whole name's sha256, its extension:
    // 245 bytes, so that PATH.part.meta still fits in 255.
    let want = format!(
        "{}-{}.tar.gz",
        "a".repeat(229),
        &support::sha256_hex(long.as_bytes())[..8]
    );
    assert_eq!(want.len(), 245);
    assert_eq!(run.line(&url)["path"], want.as_str());
    assert_eq!(fs::read(tmp.join("out").join(&want)).unwrap(), b"long name");
    assert_eq!(
        fetchpool::Job::new(&url).path(),
        Some(std::path::Path::new(&want))
    );
    // The same name on the next run: the file is recognised, not fetched under another.
    let run = fetchpool(tmp.path(), &[&url, "-o", "out"], None);
    assert_eq!(run.code, 0, "stderr: {}", run.stderr);
    assert_eq!(run.line(&url)["status"], "skipped");
    assert_eq!(
        fs::read_dir(tmp.join("out")).unwrap().count(),
        2,
        "the file and .fetchpool"
    );
}

#[test]
fn a_listed_path_too_long_for_the_file_system_stops_the_run_naming_the_line() {
    let s = TestServer::start();
    s.fallback(|_| Reply::ok("x"));
    let tmp = TempDir::new();
    let url = s.url("/x");
    let cases = [
        ("name", "f".repeat(300), "file name of 300 bytes"),
        ("just over", "f".repeat(246), "file name of 246 bytes"),
        (
            "folder",
            format!("{}/f", "d".repeat(256)),
            "folder name of 256 bytes",
        ),
        ("path", "d/".repeat(2100) + "f", "4201 bytes long"),
    ];
    for (what, path, says) in &cases {
        let list = write_list(
            tmp.path(),
            "list.tsv",
            &format!("{url}\tok.bin\n{url}\t{path}\n"),
        );
        let run = fetchpool(tmp.path(), &["-i", &list, "-o", "out"], None);
        assert_eq!(run.code, 2, "{what}: {}", run.stderr);
        assert!(
            run.stderr.contains("list.tsv:2: "),
            "{what}: {}",
            run.stderr
        );
        assert!(run.stderr.contains(says), "{what}: {}", run.stderr);
        assert!(run.stderr.contains("shorten"), "{what}: {}", run.stderr);
        assert!(
            run.stderr.lines().all(|l| l.len() < 400),
            "{what}: {}",
            run.stderr
        );
    }
    // Within the output directory as given: a deep -o leaves less room for the path.
    let deep_out = "o/".repeat(1000);
    let path = "p/".repeat(1100) + "f";
    let list = write_list(tmp.path(), "list.tsv", &format!("{url}\t{path}\n"));
    let run = fetchpool(tmp.path(), &["-i", &list, "-o", &deep_out], None);
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert!(run.stderr.contains("list.tsv:1: "), "{}", run.stderr);
    assert!(
        run.stderr.contains("inside the output directory"),
        "{}",
        run.stderr
    );
    assert_eq!(s.requests().len(), 0, "nothing is requested");
}

/// Runs the binary under `/usr/bin/time` (package `time`) and returns its exit code, its
/// stderr and its peak resident set size in KiB.
fn peak_rss(dir: &std::path::Path, args: &[&str]) -> (i32, String, u64) {
    let stats = dir.join("time.out");
    let out = std::process::Command::new("/usr/bin/time")
        .arg("-f")
        .arg("%M")
        .arg("-o")
        .arg(&stats)
        .arg(support::cli::bin())
        .args(args)
        .current_dir(dir)
        .stdin(std::process::Stdio::null())
        .output()
        .expect("/usr/bin/time runs (apt-get install time)");
    let kib = fs::read_to_string(&stats).unwrap();
    let kib = kib.lines().last().unwrap().trim().parse().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).into_owned(),
        kib,
    )
}

#[test]
fn bad_lines_cost_no_more_memory_than_good_ones_and_print_twenty_and_a_count() {
    const LINES: usize = 60_000;
    let tmp = TempDir::new();
    let mut good = String::new();
    let mut bad = String::new();
    for i in 0..LINES {
        good.push_str(&format!("http://127.0.0.1:9/dir/file-{i}.bin\n"));
        bad.push_str(&format!("ftp://127.0.0.1:9/dir/file-{i}.bin\n"));
    }
    write_list(tmp.path(), "good.txt", &good);
    write_list(tmp.path(), "bad.txt", &bad);
    let (code, _, good_kib) = peak_rss(tmp.path(), &["-i", "good.txt", "--dry-run"]);
    assert_eq!(code, 0);
    let (code, stderr, bad_kib) = peak_rss(tmp.path(), &["-i", "bad.txt", "--dry-run"]);
    assert_eq!(code, 2, "{stderr}");
    let shown: Vec<&str> = stderr
        .lines()
        .filter(|l| l.starts_with("fetchpool: bad.txt:"))
        .collect();
    assert_eq!(shown.len(), 20, "{stderr}");
    assert!(
        shown[0].starts_with("fetchpool: bad.txt:1: URL 'ftp://"),
        "{stderr}"
    );
    assert!(
        stderr.contains(&format!("… and {} more problems", LINES - 20)),
        "{stderr}"
    );
    // Before, every message was kept: 60k bad lines peaked at 1.9x a good list.
    assert!(
        bad_kib <= good_kib + good_kib / 4 + 2048,
        "bad lines: {bad_kib} KiB peak, good lines: {good_kib} KiB"
    );
}

#[test]
fn a_20_mb_line_is_neither_kept_whole_nor_echoed_whole() {
    let tmp = TempDir::new();
    write_list(tmp.path(), "small.txt", "http://127.0.0.1:9/a.bin\n");
    let (_, _, baseline_kib) = peak_rss(tmp.path(), &["-i", "small.txt", "--dry-run"]);
    let huge = format!("http://127.0.0.1:9/{} b\n", "a".repeat(20 << 20));
    write_list(
        tmp.path(),
        "huge.txt",
        &format!("http://127.0.0.1:9/ok.bin\n{huge}"),
    );
    let (code, stderr, kib) = peak_rss(tmp.path(), &["-i", "huge.txt", "--dry-run"]);
    assert_eq!(code, 2, "{}", &stderr[..stderr.len().min(2000)]);
    assert!(stderr.len() < 1000, "{} bytes of stderr", stderr.len());
    assert!(
        stderr.contains("huge.txt:2: line is 20971542 bytes long, more than the 1048576"),
        "{stderr}"
    );
    // Before: the line, its trimmed copy and the message echoing it, ~60 MiB more.
    assert!(
        kib < baseline_kib + 8 * 1024,
        "a 20 MB line: {kib} KiB peak, a one-line list: {baseline_kib} KiB"
    );
    // A long line under the limit is quoted by its start and its length.
    let long = format!("http://127.0.0.1:9/{} b", "c".repeat(500_000));
    write_list(tmp.path(), "long.txt", &format!("{long}\n"));
    let run = fetchpool(tmp.path(), &["-i", "long.txt", "--dry-run"], None);
    assert_eq!(run.code, 2);
    assert!(
        run.stderr.len() < 1000,
        "{} bytes of stderr",
        run.stderr.len()
    );
    assert!(
        run.stderr.contains("cccc… (500021 characters)' has spaces"),
        "{}",
        run.stderr
    );
}

#[test]
fn a_symlink_planted_at_the_old_stdin_spool_path_is_neither_followed_nor_overwritten() {
    use std::io::Write;
    use std::process::{Command, Stdio};
    let tmp = TempDir::new();
    let spool_dir = tmp.join("tmp");
    fs::create_dir(&spool_dir).unwrap();
    let victim = tmp.join("victim.txt");
    fs::write(&victim, "precious").unwrap();
    // The report for --retry-failed is a FIFO: fetchpool waits on it before it spools
    // stdin, which leaves time to plant the link where the spool used to go.
    let fifo = tmp.join("report.fifo");
    assert!(
        Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap()
            .success()
    );
    let mut child = Command::new(support::cli::bin())
        .current_dir(tmp.path())
        .args(["-i", "-", "-o", "out", "--retry-failed", "report.fifo"])
        .env("TMPDIR", &spool_dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let planted = spool_dir.join(format!("fetchpool-stdin-{}.list", child.id()));
    std::os::unix::fs::symlink(&victim, &planted).unwrap();
    fs::write(&fifo, "").unwrap();
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(b"http://127.0.0.1:9/a.bin\n").unwrap();
    drop(stdin);
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(stderr.contains("0 of 1 listed jobs"), "{stderr}");
    assert_eq!(fs::read_to_string(&victim).unwrap(), "precious");
    assert_eq!(fs::read_link(&planted).unwrap(), victim);
    // The spool leaves nothing behind under its own name either.
    let left: Vec<_> = fs::read_dir(&spool_dir)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(left, vec![planted.file_name().unwrap().to_owned()]);
}

#[test]
fn a_list_on_stdin_is_read_as_often_as_the_checks_need() {
    let s = TestServer::start();
    s.file("/a.bin", b"A".to_vec());
    s.file("/b.bin", b"B".to_vec());
    let tmp = TempDir::new();
    let list = format!("{}\n{}\n", s.url("/a.bin"), s.url("/b.bin"));
    let run = fetchpool(tmp.path(), &["-i", "-", "-o", "out"], Some(&list));
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(fs::read(tmp.join("out/b.bin")).unwrap(), b"B");
    // Two jobs given one file: found on a second reading of stdin's copy.
    let twice = format!(
        "{}\ta.bin\n{}\tx/../a.bin\n",
        s.url("/a.bin"),
        s.url("/b.bin")
    );
    let run = fetchpool(tmp.path(), &["-i", "-", "-o", "out"], Some(&twice));
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert!(
        run.stderr.contains("-: lines 1 and 2 write the same file"),
        "{}",
        run.stderr
    );
}

#[test]
fn a_bad_header_stops_the_run_before_any_request_naming_it_and_the_fix() {
    let s = TestServer::start();
    s.fallback(|_| Reply::ok("x"));
    let tmp = TempDir::new();
    let url = s.url("/a.bin");
    let cases: &[(&str, &str)] = &[
        ("Authorization Bearer SECRETTOKEN", "has no ':'"),
        (": SECRETTOKEN", "empty name"),
        ("Bad Name: SECRETTOKEN", "' ' at byte 4"),
        ("X-Ok\u{7f}: SECRETTOKEN", "'\\u{7f}' at byte 5"),
        ("X-A: SECRETTOKEN\r\nX-Injected: 1", "line break"),
        ("X-A: SECRETTOKEN\nX-Injected: 1", "line break"),
        ("X-A: SECRET\u{1}TOKEN", "control character"),
    ];
    for (header, says) in cases {
        let run = fetchpool(tmp.path(), &[&url, "-o", "out", "-H", header], None);
        assert_eq!(run.code, 2, "{header:?}: {}", run.stderr);
        assert!(run.stderr.contains(says), "{header:?}: {}", run.stderr);
        assert!(run.stderr.contains("-H"), "{header:?}: {}", run.stderr);
        assert!(
            run.stderr.contains("'Name: value'"),
            "{header:?}: {}",
            run.stderr
        );
        assert!(
            !run.stderr.contains("SECRETTOKEN"),
            "{header:?}: {}",
            run.stderr
        );
        assert!(run.report.is_empty(), "{header:?}: no job ran");
    }
    // A job's own header in a JSON line: the line is named.
    let list = write_list(
        tmp.path(),
        "list.jsonl",
        &format!("{{\"url\":\"{url}\",\"headers\":{{\"X-A\":\"v\\r\\nX-Injected: 1\"}}}}\n"),
    );
    let run = fetchpool(tmp.path(), &["-i", &list, "-o", "out"], None);
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert!(
        run.stderr
            .contains("list.jsonl:1: request header 'X-A' has a line break"),
        "{}",
        run.stderr
    );
    assert_eq!(s.requests().len(), 0, "nothing is requested");
    // The library says it in its own terms when the pool is built.
    for (name, value) in [("X-A", "a\r\nb"), ("", "v"), ("X A", "v")] {
        let e = fetchpool::Pool::builder()
            .output_dir(tmp.join("lib"))
            .header(name, value)
            .build()
            .err()
            .unwrap_or_else(|| panic!("{name:?}: {value:?} was accepted"));
        assert_eq!(e.kind(), fetchpool::ErrorKind::Config);
        let m = e.to_string();
        assert!(m.starts_with("request header"), "{m}");
        assert!(!m.contains("-H") && !m.contains("--header"), "{m}");
    }
}
