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
        run.stderr.contains("lines 1 and 2 fetch the same URL"),
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
