//! API runs from the command line: lists of URLs that differ only by their query or
//! folder, concurrency against one host, credentials, request rates, progress in logs
//! and captured responses.

mod support;

use std::collections::BTreeSet;
use std::fs;
use std::path::Path;

use support::cli::{fetchpool, write_list};
use support::{Reply, TempDir, TestServer, sha256_hex};

/// The name a URL-derived file gets when another URL of the list has the same name, as
/// README documents it: STEM-HASH.EXT, HASH the first 8 hex digits of the sha256 of the
/// URL without user info and fragment.
fn hashed(name: &str, url: &str) -> String {
    let hash = &sha256_hex(url.as_bytes())[..8];
    match name.rfind('.') {
        Some(i) if i > 0 => format!("{}-{hash}{}", &name[..i], &name[i..]),
        _ => format!("{name}-{hash}"),
    }
}

/// Every file under `dir` (relative, `/`-separated), the report left out.
fn files(dir: &Path) -> BTreeSet<String> {
    fn walk(root: &Path, dir: &Path, out: &mut BTreeSet<String>) {
        for entry in fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                if path.file_name().unwrap() != ".fetchpool" {
                    walk(root, &path, out);
                }
            } else {
                let rel = path.strip_prefix(root).unwrap().to_string_lossy();
                if rel != "report.jsonl" {
                    out.insert(rel.replace('\\', "/"));
                }
            }
        }
    }
    let mut out = BTreeSet::new();
    walk(dir, dir, &mut out);
    out
}

#[test]
fn urls_that_differ_only_by_query_or_folder_each_get_their_own_file() {
    let server = TestServer::start();
    server.fallback(|req| Reply::ok(format!("body of {}", req.path)));
    let tmp = TempDir::new();

    // Fifty pages of one endpoint: each its own file, named STEM-HASH.
    let pages: Vec<String> = (1..=50)
        .map(|n| server.url(&format!("/api/items?page={n}")))
        .collect();
    let list = write_list(tmp.path(), "pages.txt", &(pages.join("\n") + "\n"));
    let run = fetchpool(tmp.path(), &["-i", &list, "-o", "pages"], None);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let expected: BTreeSet<String> = pages.iter().map(|u| hashed("items", u)).collect();
    assert_eq!(expected.len(), 50);
    assert_eq!(files(&tmp.join("pages")), expected);
    for url in &pages {
        let body = fs::read(tmp.join("pages").join(hashed("items", url))).unwrap();
        let path = &url[url.find("/api").unwrap()..];
        assert_eq!(body, format!("body of {path}").as_bytes());
    }

    // One name in two folders: both files, each named with its URL's hash.
    let a = server.url("/a/index.json");
    let b = server.url("/b/index.json");
    let c = server.url("/c/other.json");
    let run = fetchpool(tmp.path(), &[&a, &b, &c, "-o", "folders"], None);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let expected: BTreeSet<String> = [hashed("index.json", &a), hashed("index.json", &b)]
        .into_iter()
        .chain(["other.json".to_string()])
        .collect();
    assert_eq!(files(&tmp.join("folders")), expected);

    // A given path stays as given; the URL-derived name beside it is renamed.
    let list = write_list(tmp.path(), "mixed.txt", &format!("{a}\tindex.json\n{b}\n"));
    let run = fetchpool(tmp.path(), &["-i", &list, "-o", "mixed"], None);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let expected: BTreeSet<String> = ["index.json".to_string(), hashed("index.json", &b)]
        .into_iter()
        .collect();
    assert_eq!(files(&tmp.join("mixed")), expected);

    // Two given paths that repeat are still refused, before any request.
    let before = server.requests().len();
    let list = write_list(
        tmp.path(),
        "dup.txt",
        &format!("{a}\tx.json\n{b}\tx.json\n"),
    );
    let run = fetchpool(tmp.path(), &["-i", &list, "-o", "dup"], None);
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert!(
        run.stderr
            .contains("lines 1 and 2 write the same file; give each job its own path"),
        "{}",
        run.stderr
    );
    // The same URL twice cannot be told apart either.
    let list = write_list(tmp.path(), "same.txt", &format!("{a}\n{a}\n"));
    let run = fetchpool(tmp.path(), &["-i", &list, "-o", "same"], None);
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert!(
        run.stderr.contains("lines 1 and 2 write the same file"),
        "{}",
        run.stderr
    );
    assert_eq!(
        server.requests().len(),
        before,
        "no request for a refused list"
    );
}

#[test]
fn keep_path_reproduces_the_url_tree_with_the_host_optional() {
    let server = TestServer::start();
    server.fallback(|req| Reply::ok(req.path.clone()));
    let tmp = TempDir::new();
    let urls = [
        server.url("/a/index.json"),
        server.url("/b/index.json"),
        server.url("/b/c/d%20e.txt"),
        server.url("/dir/"),
        server.url("/x/../../up.txt"),
    ];
    let args = |extra: &[&'static str], out: &'static str| {
        let mut v: Vec<String> = urls.to_vec();
        v.extend(extra.iter().map(|s| s.to_string()));
        v.extend(["-o".to_string(), out.to_string()]);
        v
    };
    let run_with = |extra: &[&'static str], out: &'static str| {
        let a = args(extra, out);
        let a: Vec<&str> = a.iter().map(String::as_str).collect();
        fetchpool(tmp.path(), &a, None)
    };

    let run = run_with(&["--keep-path"], "tree");
    assert_eq!(run.code, 0, "{}", run.stderr);
    let tree: BTreeSet<String> = [
        "a/index.json",
        "b/index.json",
        "b/c/d e.txt",
        "dir/index.html",
        "x/up.txt",
    ]
    .into_iter()
    .map(String::from)
    .collect();
    assert_eq!(files(&tmp.join("tree")), tree);
    assert_eq!(
        fs::read_to_string(tmp.join("tree/b/c/d e.txt")).unwrap(),
        "/b/c/d%20e.txt"
    );

    let run = run_with(&["--keep-path=host"], "hosted");
    assert_eq!(run.code, 0, "{}", run.stderr);
    let host = format!("127.0.0.1_{}", server.port());
    let with_host: BTreeSet<String> = tree.iter().map(|p| format!("{host}/{p}")).collect();
    assert_eq!(files(&tmp.join("hosted")), with_host);

    let run = run_with(&["--keep-path", "--cut-dirs", "1"], "cut");
    assert_eq!(run.code, 0, "{}", run.stderr);
    // `b/c/d e.txt` loses `b`; names directly under one folder move up and, as two
    // `index.json` now meet, each gets its URL's hash.
    let cut: BTreeSet<String> = [
        hashed("index.json", &urls[0]),
        hashed("index.json", &urls[1]),
        "c/d e.txt".to_string(),
        "index.html".to_string(),
        "up.txt".to_string(),
    ]
    .into_iter()
    .collect();
    assert_eq!(files(&tmp.join("cut")), cut);
}

#[test]
fn twenty_workers_alone_keep_twenty_requests_in_flight_to_one_host() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::{Duration, Instant};
    let server = TestServer::start();
    // Each answer waits until twenty requests are in, or 5 s: a cap below twenty shows as
    // a high-water mark below twenty (and a slow run), never as a flaky pass.
    let arrived = Arc::new(AtomicUsize::new(0));
    let seen = arrived.clone();
    server.route("/slow", move |_| {
        seen.fetch_add(1, Ordering::SeqCst);
        let deadline = Instant::now() + Duration::from_secs(5);
        while seen.load(Ordering::SeqCst) < 20 && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(5));
        }
        Reply::ok("x")
    });
    let tmp = TempDir::new();
    let list: String = (0..40)
        .map(|n| format!("{}\tf{n}\n", server.url(&format!("/slow?n={n}"))))
        .collect();
    let list = write_list(tmp.path(), "list.txt", &list);
    let run = fetchpool(tmp.path(), &["-i", &list, "-o", "out", "-j", "20"], None);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(run.with_status("ok").len(), 40);
    assert_eq!(server.max_concurrent("/slow"), 20);
}

/// A password no output may show, and the `Authorization` value it makes with `user`.
const SECRET: &str = "s3cr3t-Zq9!pw";

fn basic(user: &str, password: &str) -> String {
    use base64::Engine as _;
    let pair = format!("{user}:{password}");
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(pair)
    )
}

/// Asserts that `secret` (or its Basic form for `user`) is in no byte of what the run
/// showed: stdout (`--json`), stderr, the report and any other file named.
fn assert_hidden(run: &support::cli::Run, user: &str, secret: &str, files: &[&Path]) {
    let basic = basic(user, secret);
    let encoded = basic.trim_start_matches("Basic ");
    let report = serde_json::to_string(&run.report).unwrap();
    let mut texts = vec![
        ("stdout", run.stdout.clone()),
        ("stderr", run.stderr.clone()),
        ("report", report),
    ];
    for f in files {
        texts.push(("file", fs::read_to_string(f).unwrap_or_default()));
    }
    for (name, text) in texts {
        assert!(!text.contains(secret), "{name} shows the secret: {text}");
        assert!(
            !text.contains(encoded),
            "{name} shows the credential: {text}"
        );
    }
}

#[test]
fn user_netrc_and_url_credentials_authenticate_and_are_never_shown() {
    let server = TestServer::start();
    let want = basic("ann", SECRET);
    server.fallback(move |req| match req.header("Authorization") {
        Some(v) if v == want => Reply::ok(format!("hello {}", req.path)),
        _ => Reply::status(401).header("WWW-Authenticate", "Basic realm=\"api\""),
    });
    let tmp = TempDir::new();
    let url = server.url("/private/a.json");
    let check = |run: &support::cli::Run, out: &str| {
        assert_eq!(run.code, 0, "{}", run.stderr);
        assert_eq!(
            fs::read_to_string(tmp.join(out).join("a.json")).unwrap(),
            "hello /private/a.json"
        );
        assert_hidden(run, "ann", SECRET, &[]);
    };
    let verbose = ["-vv", "--json"];

    // -u USER:PASSWORD.
    let user = format!("ann:{SECRET}");
    let mut args = vec![url.as_str(), "-o", "u", "-u", &user];
    args.extend(verbose);
    check(&fetchpool(tmp.path(), &args, None), "u");

    // -u USER with the password in the environment.
    let mut args = vec![url.as_str(), "-o", "env", "-u", "ann"];
    args.extend(verbose);
    let run =
        support::cli::fetchpool_env(tmp.path(), &args, None, &[("FETCHPOOL_PASSWORD", SECRET)]);
    check(&run, "env");
    // Without it: exit 2 before any request, naming the variable.
    let before = server.requests().len();
    let run = fetchpool(tmp.path(), &[&url, "-o", "none", "-u", "ann"], None);
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert!(run.stderr.contains("FETCHPOOL_PASSWORD"), "{}", run.stderr);
    assert_eq!(server.requests().len(), before);

    // --netrc-file, and --netrc reading $NETRC; the first entry for the host wins.
    let netrc = format!(
        "machine other.example login x password y\n\
         machine 127.0.0.1\n  login ann\n  password \"{SECRET}\"\n\
         machine 127.0.0.1 login bob password wrong\n\
         default login anonymous password guest\n"
    );
    let netrc_path = tmp.join("credentials.netrc");
    fs::write(&netrc_path, netrc).unwrap();
    let mut args = vec![
        url.as_str(),
        "-o",
        "netrc",
        "--netrc-file",
        "credentials.netrc",
    ];
    args.extend(verbose);
    check(&fetchpool(tmp.path(), &args, None), "netrc");
    let mut args = vec![url.as_str(), "-o", "netrc-env", "--netrc"];
    args.extend(verbose);
    let run = support::cli::fetchpool_env(
        tmp.path(),
        &args,
        None,
        &[("NETRC", netrc_path.to_str().unwrap())],
    );
    check(&run, "netrc-env");

    // user:password in the URL.
    let with_userinfo = url.replacen("://", &format!("://ann:{}@", "s3cr3t-Zq9%21pw"), 1);
    let mut args = vec![with_userinfo.as_str(), "-o", "userinfo"];
    args.extend(verbose);
    check(&fetchpool(tmp.path(), &args, None), "userinfo");

    // A memory run: the responses file shows no credential either.
    let mut args = vec![
        url.as_str(),
        "-u",
        &user,
        "--to-memory",
        "--responses",
        "responses.jsonl",
        "--save-header",
        "WWW-Authenticate",
    ];
    args.extend(verbose);
    let run = fetchpool(tmp.path(), &args, None);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let responses = tmp.join("responses.jsonl");
    assert!(
        fs::read_to_string(&responses)
            .unwrap()
            .contains("hello /private/a.json")
    );
    assert_hidden(&run, "ann", SECRET, &[&responses]);

    // A wrong password fails (401) and still shows none of it, nor the right one.
    let wrong = url.replacen("://", "://ann:wr0ng-Pw-77@", 1);
    let run = fetchpool(
        tmp.path(),
        &[
            &wrong,
            "-vv",
            "--json",
            "--to-memory",
            "--responses",
            "responses.jsonl",
        ],
        None,
    );
    assert_eq!(run.code, 1, "{}", run.stderr);
    assert_eq!(run.report[0]["http_status"], 401);
    assert_hidden(&run, "ann", "wr0ng-Pw-77", &[&responses]);
    assert!(fs::read_to_string(&responses).unwrap().contains("ann:***@"));
    assert!(run.stderr.contains("ann:***@"), "{}", run.stderr);
}

#[test]
fn credentials_are_dropped_on_a_redirect_to_another_host_and_header_files_work() {
    let target = TestServer::start();
    target.fallback(|req| {
        Reply::ok(format!(
            "auth={}",
            req.header("Authorization").unwrap_or("none")
        ))
    });
    let origin = TestServer::start();
    let elsewhere = target.url("/landing.txt");
    origin.route("/moved.txt", move |_| Reply::redirect(302, &elsewhere));
    let tmp = TempDir::new();
    let user = format!("ann:{SECRET}");
    let run = fetchpool(
        tmp.path(),
        &[&origin.url("/moved.txt"), "-o", "out", "-u", &user],
        None,
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(
        fs::read_to_string(tmp.join("out/moved.txt")).unwrap(),
        "auth=none"
    );
    let sent = origin.requests()[0].headers.clone();
    assert!(
        sent.iter()
            .any(|(k, v)| k.eq_ignore_ascii_case("authorization") && *v == basic("ann", SECRET)),
        "{sent:?}"
    );

    // -H @FILE: headers one a line, comments skipped; a bad line names file and line only.
    fs::write(
        tmp.join("headers.txt"),
        format!("# API token\nAuthorization: Bearer {SECRET}\n\nX-Trace: 1\n"),
    )
    .unwrap();
    let run = fetchpool(
        tmp.path(),
        &[
            &target.url("/h.txt"),
            "-o",
            "hdr",
            "-H",
            "@headers.txt",
            "-vv",
        ],
        None,
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(
        fs::read_to_string(tmp.join("hdr/h.txt")).unwrap(),
        format!("auth=Bearer {SECRET}")
    );
    assert!(!run.stderr.contains(SECRET), "{}", run.stderr);
    fs::write(tmp.join("bad.txt"), format!("X-Ok: 1\nBearer {SECRET}\n")).unwrap();
    let run = fetchpool(tmp.path(), &[&target.url("/h.txt"), "-H", "@bad.txt"], None);
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert!(
        run.stderr.contains("-H @bad.txt: line 2 has no ':'"),
        "{}",
        run.stderr
    );
    assert!(!run.stderr.contains(SECRET), "{}", run.stderr);
}

#[test]
fn credentials_never_go_to_a_proxy_that_is_not_the_target() {
    use support::proxy::TestProxy;
    use support::tls::{Leaf, TestCa, TlsFront};
    let ca = TestCa::new("ca");
    let plain = TestServer::start();
    let want = basic("ann", SECRET);
    plain.fallback(move |req| match req.header("Authorization") {
        Some(v) if v == want => Reply::ok("in"),
        _ => Reply::status(401),
    });
    let front = TlsFront::start(&ca, Leaf::Valid, &plain);
    let proxy = TestProxy::start();
    let tmp = TempDir::new();
    let cacert = ca.write_pem(tmp.path(), "ca.pem");
    let user = format!("ann:{SECRET}");
    let run = fetchpool(
        tmp.path(),
        &[
            &front.url("/in.txt"),
            "-o",
            "out",
            "-u",
            &user,
            "--proxy",
            &proxy.url(),
            "--cacert",
            cacert.to_str().unwrap(),
        ],
        None,
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(fs::read_to_string(tmp.join("out/in.txt")).unwrap(), "in");
    // The proxy carried a tunnel and got no credential of the target's.
    let asked = proxy.requests();
    assert_eq!(asked.len(), 1, "{asked:?}");
    assert_eq!(asked[0].method, "CONNECT");
    assert_eq!(asked[0].auth, None);
}

/// Start times of every request the servers saw, sorted, as seconds after the first.
fn starts(servers: &[&TestServer]) -> Vec<f64> {
    let mut all: Vec<std::time::Instant> = servers
        .iter()
        .flat_map(|s| s.requests().into_iter().map(|r| r.started))
        .collect();
    all.sort();
    let first = all[0];
    all.iter().map(|t| (*t - first).as_secs_f64()).collect()
}

/// A list of `n` jobs per server, each to its own file.
fn rate_list(dir: &Path, servers: &[&TestServer], n: usize) -> String {
    let mut list = String::new();
    for (i, s) in servers.iter().enumerate() {
        for k in 0..n {
            list.push_str(&format!("{}\th{i}/f{k}\n", s.url(&format!("/r?k={k}"))));
        }
    }
    write_list(dir, "rate.txt", &list)
}

#[test]
fn a_request_rate_is_one_budget_across_hosts_evenly_spaced_without_a_burst() {
    let (a, b) = (TestServer::start(), TestServer::start());
    for s in [&a, &b] {
        s.fallback(|_| Reply::ok("x"));
    }
    let tmp = TempDir::new();
    let list = rate_list(tmp.path(), &[&a, &b], 100);
    let run = fetchpool(
        tmp.path(),
        &["-i", &list, "-o", "out", "--rate", "50/s"],
        None,
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
    let t = starts(&[&a, &b]);
    assert_eq!(t.len(), 200);
    // 200 requests at 50/s: the last starts 3.98 s after the first.
    let span = t[199];
    assert!((3.4..=4.6).contains(&span), "200 requests took {span:.2} s");
    // One every 20 ms from the first: 6 in the first 0.1 s, 26 in the first 0.5 s (a
    // start made late by a busy machine is made up by the next, so allow a few more).
    let first_tenth = t.iter().filter(|s| **s < 0.1).count();
    let first_half_second = t.iter().filter(|s| **s < 0.5).count();
    assert!(
        first_tenth <= 8,
        "{first_tenth} requests in the first 0.1 s"
    );
    assert!(
        first_half_second <= 30,
        "{first_half_second} requests in the first 0.5 s"
    );
    println!("--rate 50/s: 200 requests over {span:.2} s, {first_half_second} in the first 0.5 s");
}

#[test]
fn a_per_host_rate_is_a_budget_for_each_host() {
    let (a, b) = (TestServer::start(), TestServer::start());
    for s in [&a, &b] {
        s.fallback(|_| Reply::ok("x"));
    }
    let tmp = TempDir::new();
    let list = rate_list(tmp.path(), &[&a, &b], 50);
    let run = fetchpool(
        tmp.path(),
        &["-i", &list, "-o", "out", "--per-host-rate", "25/s"],
        None,
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
    // Each host: 50 requests at 25/s, 1.96 s; both at once, so 1.96 s in all too.
    for s in [&a, &b] {
        let t = starts(&[s]);
        let span = t[49];
        assert!(
            (1.67..=2.25).contains(&span),
            "one host's 50 took {span:.2} s"
        );
    }
    let all = starts(&[&a, &b]);
    assert!(all[99] < 2.4, "both hosts took {:.2} s", all[99]);
}

#[test]
fn a_429_without_retry_after_slows_its_host_and_not_the_others() {
    let (a, b) = (TestServer::start(), TestServer::start());
    a.fallback(|req| {
        if req.hit == 20 {
            Reply::status(429)
        } else {
            Reply::ok("x")
        }
    });
    b.fallback(|_| Reply::ok("x"));
    let tmp = TempDir::new();
    let list = rate_list(tmp.path(), &[&a, &b], 80);
    let run = fetchpool(
        tmp.path(),
        &[
            "-i",
            &list,
            "-o",
            "out",
            "--per-host-rate",
            "20/s",
            "--retry-base",
            "100ms",
        ],
        None,
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(run.with_status("ok").len(), 160);
    let log = a.requests();
    let at = log
        .iter()
        .find(|r| r.status == Some(429))
        .expect("the 429")
        .started;
    let count = |s: &TestServer, from: f64, to: f64| {
        s.requests()
            .iter()
            .filter(|r| {
                let after = r.started.saturating_duration_since(at).as_secs_f64();
                let before = at.saturating_duration_since(r.started).as_secs_f64();
                (from..to).contains(&(after - before))
            })
            .count()
    };
    let (a_before, a_after) = (count(&a, -1.0, 0.0), count(&a, 0.0, 1.5));
    let (b_before, b_after) = (count(&b, -1.0, 0.0), count(&b, 0.0, 1.5));
    println!(
        "per 1 s before / 1.5 s after the 429: A {a_before} / {a_after}, B {b_before} / {b_after}"
    );
    // A ran at its 20/s before; after the 429 at most three quarters of that (22.5 in
    // 1.5 s); B kept its 20/s throughout.
    assert!(a_before >= 17, "A before the 429: {a_before}");
    assert!(a_after <= 22, "A after the 429: {a_after}");
    assert!(b_after >= 26, "B after A's 429: {b_after}");
}

#[test]
fn progress_without_a_terminal_is_a_status_line_or_json_every_interval() {
    let server = TestServer::start();
    server.fallback(|_| Reply::ok("0123456789"));
    let tmp = TempDir::new();
    // 40 jobs at 10 a second: a run of about 4 s.
    let list: String = (0..40)
        .map(|k| format!("{}\tf{k}\n", server.url(&format!("/p?k={k}"))))
        .collect();
    let list = write_list(tmp.path(), "list.txt", &list);
    let base = ["-i", list.as_str(), "-o", "out", "--rate", "10/s"];

    // stderr is a pipe here: auto means status lines.
    let mut args = base.to_vec();
    args.extend(["--progress-interval", "1"]);
    let run = fetchpool(tmp.path(), &args, None);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let lines: Vec<&str> = run
        .stderr
        .lines()
        .filter(|l| l.starts_with("fetchpool: ") && l.contains("/40 done"))
        .collect();
    assert!(lines.len() >= 3, "{}", run.stderr);
    for l in &lines {
        assert!(l.contains("/s · ") && l.contains(" in flight · "), "{l}");
    }

    let mut args = base.to_vec();
    args.extend(["--progress", "json", "--progress-interval", "1"]);
    let run = fetchpool(tmp.path(), &args, None);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let objects: Vec<serde_json::Value> = run
        .stderr
        .lines()
        .filter(|l| l.starts_with('{'))
        .map(|l| serde_json::from_str(l).expect("a progress line is JSON"))
        .collect();
    assert!(objects.len() >= 3, "{}", run.stderr);
    let mut last_done = 0;
    for o in &objects {
        let p = &o["progress"];
        assert_eq!(p["total"], 40, "{o}");
        let done = p["done"].as_u64().unwrap();
        assert!(done >= last_done && done <= 40, "{o}");
        assert_eq!(
            p["ok"].as_u64().unwrap() + p["failed"].as_u64().unwrap(),
            done
        );
        assert!(p["bytes"].as_u64().unwrap() <= 400, "{o}");
        assert!(p["in_flight"].is_u64() && p["bytes_per_s"].is_u64(), "{o}");
        last_done = done;
    }

    // none (and -q) print no status.
    let mut args = base.to_vec();
    args.extend(["--progress", "none", "--progress-interval", "1"]);
    let run = fetchpool(tmp.path(), &args, None);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(!run.stderr.contains(" done · "), "{}", run.stderr);
}

/// Page `n`'s body: JSON, plain text or bytes that are not UTF-8, by `n` mod 3.
fn page_body(n: usize) -> Vec<u8> {
    match n % 3 {
        0 => format!(r#"{{"page": {n}, "items": [{n}, "a\u00e9"], "next": null}}"#).into_bytes(),
        1 => format!("page {n}: plain text, é").into_bytes(),
        _ => {
            let mut b = vec![0xff, 0xfe, 0x00];
            b.extend_from_slice(&n.to_be_bytes());
            b
        }
    }
}

#[test]
fn a_thousand_api_calls_from_a_plain_list_come_back_as_response_lines() {
    use base64::Engine as _;
    let server = TestServer::start();
    server.fallback(|req| {
        let n: usize = req.path.rsplit('=').next().unwrap().parse().unwrap();
        Reply::ok(page_body(n))
            .header("ETag", &format!("\"p{n}\""))
            .header("X-RateLimit-Remaining", &(1000 - n).to_string())
    });
    let tmp = TempDir::new();
    let urls: Vec<String> = (1..=1000)
        .map(|n| server.url(&format!("/api/items?page={n}")))
        .collect();
    let list = write_list(tmp.path(), "pages.txt", &(urls.join("\n") + "\n"));
    let run = fetchpool(
        tmp.path(),
        &[
            "-i",
            &list,
            "--to-memory",
            "--responses",
            "responses.jsonl",
            "--save-header",
            "ETag",
            "--save-header",
            "x-ratelimit-remaining",
        ],
        None,
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(run.report.len(), 1000);
    for line in &run.report {
        assert!(line["headers"]["etag"].is_string(), "{line}");
    }
    let text = fs::read_to_string(tmp.join("responses.jsonl")).unwrap();
    let lines: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).expect("a response line is JSON"))
        .collect();
    assert_eq!(lines.len(), 1000);
    let mut seen = BTreeSet::new();
    for line in &lines {
        let url = line["url"].as_str().unwrap();
        let n: usize = url.rsplit('=').next().unwrap().parse().unwrap();
        assert!(seen.insert(n), "page {n} twice");
        assert_eq!(line["status"], "ok", "{line}");
        assert_eq!(line["http_status"], 200, "{line}");
        assert_eq!(line["headers"]["etag"], format!("\"p{n}\""), "{line}");
        assert_eq!(
            line["headers"]["x-ratelimit-remaining"],
            (1000 - n).to_string(),
            "{line}"
        );
        let want = page_body(n);
        match line["body_encoding"].as_str().unwrap() {
            "json" => {
                assert_eq!(n % 3, 0, "{line}");
                let value: serde_json::Value = serde_json::from_slice(&want).unwrap();
                assert_eq!(line["body"], value);
            }
            "text" => {
                assert_eq!(n % 3, 1, "{line}");
                assert_eq!(line["body"].as_str().unwrap().as_bytes(), &want[..]);
            }
            "base64" => {
                assert_eq!(n % 3, 2, "{line}");
                let bytes = base64::engine::general_purpose::STANDARD
                    .decode(line["body"].as_str().unwrap())
                    .unwrap();
                assert_eq!(bytes, want);
            }
            other => panic!("body_encoding {other}"),
        }
    }
    assert_eq!(seen.len(), 1000);
    // No file written: the directory holds the list, the report and the responses.
    let left: BTreeSet<String> = fs::read_dir(tmp.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    let expected: BTreeSet<String> = ["pages.txt", "report.jsonl", "responses.jsonl"]
        .into_iter()
        .map(String::from)
        .collect();
    assert_eq!(left, expected);

    // `--responses -` writes the same lines to stdout.
    let run = fetchpool(
        tmp.path(),
        &[&urls[2], "--to-memory", "--responses", "-"],
        None,
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
    let line: serde_json::Value = serde_json::from_str(run.stdout.trim()).unwrap();
    assert_eq!(line["body"]["page"], 3);
}

#[test]
fn a_memory_body_over_the_limit_fails_with_its_own_kind_and_stops_reading() {
    use std::time::Duration;
    let server = TestServer::start();
    let big = vec![b'x'; 1 << 20];
    let announced = big.clone();
    server.route("/announced", move |_| Reply::ok(&announced));
    // 1 MiB in 4 KiB steps every 5 ms: 1.3 s to send it all.
    server.route("/dripped", move |_| {
        Reply::ok(&big)
            .chunked()
            .drip(4096, Duration::from_millis(5))
    });
    let tmp = TempDir::new();
    let run = fetchpool(
        tmp.path(),
        &[
            &server.url("/announced"),
            &server.url("/dripped"),
            "--to-memory",
            "--memory-limit",
            "16K",
            "--responses",
            "responses.jsonl",
        ],
        None,
    );
    assert_eq!(run.code, 1, "{}", run.stderr);
    for path in ["/announced", "/dripped"] {
        let line = run.line(&server.url(path));
        assert_eq!(line["status"], "failed", "{line}");
        assert_eq!(line["error"]["kind"], "too_large", "{line}");
        assert_eq!(line["attempts"], 1, "not retried: {line}");
    }
    // Reading stopped at the limit, long before the whole body could have arrived.
    let dripped = run.line(&server.url("/dripped"));
    assert!(dripped["elapsed_ms"].as_u64().unwrap() < 800, "{dripped}");
    assert!(run.stderr.contains("--memory-limit"), "{}", run.stderr);
    let text = fs::read_to_string(tmp.join("responses.jsonl")).unwrap();
    assert_eq!(text.lines().count(), 2);
}

#[test]
fn a_json_lines_timeout_fails_that_job_alone_and_bad_limits_exit_2_naming_the_line() {
    use std::time::Duration;
    let server = TestServer::start();
    // Sends its head and 10 bytes, then nothing for 10 s.
    server.route("/stalls", |_| Reply::ok(vec![b's'; 100]).stall_after(10));
    server.route("/slow", |_| {
        Reply::ok("fine").delay(Duration::from_millis(600))
    });
    server.route("/fast", |_| Reply::ok("fast"));
    let tmp = TempDir::new();
    let list = write_list(
        tmp.path(),
        "jobs.jsonl",
        &format!(
            "{{\"url\":\"{}\",\"path\":\"stalls\",\"timeout\":0.3,\"retries\":0}}\n\
             {{\"url\":\"{}\",\"path\":\"slow\"}}\n\
             {{\"url\":\"{}\",\"path\":\"fast\",\"max_time\":30,\"retries\":2}}\n",
            server.url("/stalls"),
            server.url("/slow"),
            server.url("/fast"),
        ),
    );
    let run = fetchpool(tmp.path(), &["-i", &list, "-o", "out"], None);
    assert_eq!(run.code, 1, "{}", run.stderr);
    let stalled = run.line(&server.url("/stalls"));
    assert_eq!(stalled["status"], "failed", "{stalled}");
    assert_eq!(stalled["error"]["kind"], "timeout", "{stalled}");
    assert_eq!(stalled["error"]["phase"], "stall", "{stalled}");
    assert_eq!(stalled["attempts"], 1, "{stalled}");
    // The pool's stall limit (30 s) still holds for the others: the 600 ms wait passes.
    assert_eq!(run.line(&server.url("/slow"))["status"], "ok");
    assert_eq!(run.line(&server.url("/fast"))["status"], "ok");
    assert_eq!(fs::read_to_string(tmp.join("out/slow")).unwrap(), "fine");

    // Bad values: exit 2 before any request, naming the line.
    let before = server.requests().len();
    for (line, says) in [
        (
            "{\"url\":\"URL\",\"timeout\":0}",
            "jobs-bad.jsonl:2: \"timeout\": 0 is not",
        ),
        (
            "{\"url\":\"URL\",\"max_time\":-5}",
            "jobs-bad.jsonl:2: \"max_time\": -5 is not",
        ),
        (
            "{\"url\":\"URL\",\"retries\":1.5}",
            "jobs-bad.jsonl:2: invalid JSON job",
        ),
        (
            "{\"url\":\"URL\",\"timeout\":\"fast\"}",
            "jobs-bad.jsonl:2: invalid JSON job",
        ),
    ] {
        let text = format!(
            "{}\n{}\n",
            server.url("/fast"),
            line.replace("URL", &server.url("/fast"))
        );
        let list = write_list(tmp.path(), "jobs-bad.jsonl", &text);
        let run = fetchpool(tmp.path(), &["-i", &list, "-o", "bad"], None);
        assert_eq!(run.code, 2, "{line}: {}", run.stderr);
        assert!(run.stderr.contains(says), "{line}: {}", run.stderr);
    }
    let run = fetchpool(
        tmp.path(),
        &[&server.url("/fast"), "-o", "bad", "--save-header", "X Rate"],
        None,
    );
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert!(
        run.stderr
            .contains("--save-header 'X Rate' is not a header name"),
        "{}",
        run.stderr
    );
    assert_eq!(server.requests().len(), before, "no request for a bad list");
}

#[test]
fn a_content_disposition_name_stays_inside_the_output_directory_and_replaces_nothing() {
    let server = TestServer::start();
    server.route("/dl/1", |_| {
        Reply::ok("report").header("Content-Disposition", "attachment; filename=\"report.pdf\"")
    });
    server.route("/dl/2", |_| {
        Reply::ok("evil").header(
            "Content-Disposition",
            "attachment; filename=\"../../escaped.txt\"",
        )
    });
    server.route("/dl/3", |_| {
        Reply::ok("second").header("Content-Disposition", "attachment; filename=\"report.pdf\"")
    });
    server.route("/dl/4", |_| {
        Reply::ok("meta").header("Content-Disposition", "attachment; filename=\"x.part\"")
    });
    let tmp = TempDir::new();
    let out = tmp.join("sub/out");
    fs::create_dir_all(&out).unwrap();
    let urls: Vec<String> = (1..=4).map(|n| server.url(&format!("/dl/{n}"))).collect();
    let mut args: Vec<&str> = urls.iter().map(String::as_str).collect();
    args.extend(["-o", "sub/out", "--content-disposition", "-j", "1"]);
    let run = fetchpool(tmp.path(), &args, None);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(
        fs::read_to_string(out.join("report.pdf")).unwrap(),
        "report"
    );
    // `../../escaped.txt` is only its last component, inside the output directory.
    assert_eq!(fs::read_to_string(out.join("escaped.txt")).unwrap(), "evil");
    assert!(!tmp.join("escaped.txt").exists() && !tmp.join("sub/escaped.txt").exists());
    // The second `report.pdf` does not replace the first: it keeps its URL's name.
    assert_eq!(fs::read_to_string(out.join("3")).unwrap(), "second");
    // A working file's name is refused: the URL's name stays.
    assert_eq!(fs::read_to_string(out.join("4")).unwrap(), "meta");
    assert_eq!(files(&out).len(), 4, "{:?}", files(&out));
    // The report names where each file went.
    assert_eq!(run.line(&urls[0])["path"], "report.pdf");
    assert_eq!(run.line(&urls[1])["path"], "escaped.txt");
    assert_eq!(run.line(&urls[2])["path"], "3");
}

#[test]
fn a_rerun_finds_files_under_their_content_disposition_names_and_replaces_only_them() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    let server = TestServer::start();
    let version = Arc::new(AtomicUsize::new(1));
    let v = Arc::clone(&version);
    server.route("/dl/a", move |req| {
        let etag = format!("\"v{}\"", v.load(Ordering::SeqCst));
        if req.header("if-none-match") == Some(etag.as_str()) {
            return Reply::status(304).header("ETag", &etag);
        }
        Reply::ok(format!("version {}", v.load(Ordering::SeqCst)))
            .header("ETag", &etag)
            .header("Content-Disposition", "attachment; filename=\"real.txt\"")
    });
    server.route("/dl/b", |_| {
        Reply::ok("listed").header("Content-Disposition", "attachment; filename=\"b.txt\"")
    });
    let tmp = TempDir::new();
    let (a, b) = (server.url("/dl/a"), server.url("/dl/b"));
    let list = write_list(
        tmp.path(),
        "list.jsonl",
        &format!(
            "{{\"url\": \"{a}\"}}\n{{\"url\": \"{b}\", \"sha256\": \"{}\"}}\n",
            sha256_hex(b"listed")
        ),
    );
    let args = [
        "-i",
        list.as_str(),
        "-o",
        "out",
        "--content-disposition",
        "--delete-extraneous",
    ];
    let run = fetchpool(tmp.path(), &args, None);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(
        files(&tmp.join("out")).len(),
        2,
        "{:?}",
        files(&tmp.join("out"))
    );

    // The next run looks for them where they went: a conditional request for the one
    // without a checksum (304), none for the one whose checksum the list gives, no
    // second copy under the URL's name, and neither is extraneous.
    let before = server.requests().len();
    let run = fetchpool(tmp.path(), &args, None);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let requests = server.requests();
    let again: Vec<_> = requests[before..].iter().collect();
    assert_eq!(again.len(), 1, "{again:?}");
    assert_eq!(again[0].header("if-none-match"), Some("\"v1\""));
    assert_eq!(run.line(&a)["http_status"], 304);
    assert_eq!(run.line(&a)["path"], "real.txt");
    assert_eq!(run.line(&b)["path"], "b.txt");
    assert_eq!(
        fs::read_to_string(tmp.join("out/real.txt")).unwrap(),
        "version 1"
    );
    assert_eq!(fs::read_to_string(tmp.join("out/b.txt")).unwrap(), "listed");
    assert_eq!(
        files(&tmp.join("out")).len(),
        2,
        "{:?}",
        files(&tmp.join("out"))
    );

    // A new version replaces the run's own file under that name, and only it.
    version.store(2, Ordering::SeqCst);
    let run = fetchpool(tmp.path(), &args, None);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(run.line(&a)["path"], "real.txt");
    assert_eq!(
        fs::read_to_string(tmp.join("out/real.txt")).unwrap(),
        "version 2"
    );
    assert_eq!(
        files(&tmp.join("out")).len(),
        2,
        "{:?}",
        files(&tmp.join("out"))
    );
}

#[test]
fn remote_time_sets_the_modification_time_from_last_modified() {
    use std::time::{Duration, SystemTime};
    let server = TestServer::start();
    let when = SystemTime::UNIX_EPOCH + Duration::from_secs(1_500_000_000);
    server.serve(
        "/old.txt",
        support::Resource::new(b"old".to_vec()).with_last_modified(when),
    );
    let tmp = TempDir::new();
    let run = fetchpool(
        tmp.path(),
        &[&server.url("/old.txt"), "-o", "out", "--remote-time"],
        None,
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
    let mtime = fs::metadata(tmp.join("out/old.txt"))
        .unwrap()
        .modified()
        .unwrap();
    assert_eq!(mtime, when);
    let run = fetchpool(tmp.path(), &[&server.url("/old.txt"), "-o", "now"], None);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let mtime = fs::metadata(tmp.join("now/old.txt"))
        .unwrap()
        .modified()
        .unwrap();
    assert!(mtime > when + Duration::from_secs(86400 * 365));
}

#[test]
fn renamed_jobs_keep_their_names_across_shards_and_retries() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};
    let server = TestServer::start();
    let missing = Arc::new(AtomicBool::new(false));
    let gone = missing.clone();
    server.fallback(move |req| {
        if req.path.ends_with("page=7") && gone.load(Ordering::SeqCst) {
            Reply::status(404)
        } else {
            Reply::ok(req.path.clone())
        }
    });
    let tmp = TempDir::new();
    let pages: Vec<String> = (1..=20)
        .map(|n| server.url(&format!("/items?page={n}")))
        .collect();
    let list = write_list(tmp.path(), "pages.txt", &(pages.join("\n") + "\n"));
    // Two shards of the list together write the twenty files one run would.
    let mut all = BTreeSet::new();
    for k in 1..=2 {
        let shard = format!("{k}/2");
        let run = fetchpool(
            tmp.path(),
            &[
                "-i",
                &list,
                "-o",
                "shards",
                "--shard",
                &shard,
                "--retries",
                "0",
            ],
            None,
        );
        assert!(run.code == 0 || run.code == 1, "{}", run.stderr);
        let taken: Vec<String> = run
            .report
            .iter()
            .map(|l| l["path"].as_str().unwrap().to_string())
            .collect();
        assert!(taken.len() < 20, "shard {shard} took {}", taken.len());
        all.extend(taken);
    }
    let expected: BTreeSet<String> = pages.iter().map(|u| hashed("items", u)).collect();
    assert_eq!(all, expected);
    // The page that failed is re-run alone, under the same name.
    missing.store(true, Ordering::SeqCst);
    let run = fetchpool(tmp.path(), &["-i", &list, "-o", "retry"], None);
    assert_eq!(run.code, 1, "{}", run.stderr);
    missing.store(false, Ordering::SeqCst);
    fs::copy(tmp.join("report.jsonl"), tmp.join("first.jsonl")).unwrap();
    let run = fetchpool(
        tmp.path(),
        &["-i", &list, "-o", "retry", "--retry-failed", "first.jsonl"],
        None,
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(run.report.len(), 1, "{:?}", run.report);
    assert_eq!(run.report[0]["path"], hashed("items", &pages[6]));
    assert_eq!(files(&tmp.join("retry")), expected);
}
