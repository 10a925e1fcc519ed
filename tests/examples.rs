//! The three programs a library user writes, as `examples/`, run against the in-process
//! server: a package mirror, an API fan-out with follow-up jobs, and a session embedded in
//! a program with a producer thread.

mod support;

use std::process::{Command, Output};
use std::time::Duration;

use support::{Reply, Resource, TempDir, TestServer, random_bytes, sha256_hex};

fn run(example: &str, args: &[&str], dir: &std::path::Path) -> (Output, String, String) {
    let out = Command::new(support::cli::example(example))
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    (out, stdout, stderr)
}

/// The mirror fetches its index on its own thread, downloads and verifies every file, and
/// on a re-run skips them all without a request; it keeps no validator store.
#[test]
fn the_mirror_example_downloads_verified_files_and_skips_them_on_a_rerun() {
    let server = TestServer::start();
    let tmp = TempDir::new();
    let files: Vec<(String, Vec<u8>)> = (0..5)
        .map(|i| {
            (
                format!("pkgs/p{i}.tar"),
                random_bytes(20 + i, 10_000 + i as usize * 7_000),
            )
        })
        .collect();
    let index: Vec<serde_json::Value> = files
        .iter()
        .map(|(p, b)| serde_json::json!({"path": p, "sha256": sha256_hex(b), "size": b.len()}))
        .collect();
    let index = serde_json::to_vec(&index).unwrap();
    server.route("/index.json", move |_| Reply::ok(&index));
    for (p, b) in &files {
        server.file(&format!("/{p}"), b.clone());
    }
    let base = server.url("");
    let (out, stdout, stderr) = run("mirror", &[&base, "m"], tmp.path());
    assert!(out.status.success(), "{stdout}{stderr}");
    assert!(
        stdout.contains("mirror: 5 ok, 0 skipped, 0 failed"),
        "{stdout}"
    );
    for (p, b) in &files {
        assert_eq!(&std::fs::read(tmp.join("m").join(p)).unwrap(), b, "{p}");
    }
    let (out, stdout, _) = run("mirror", &[&base, "m"], tmp.path());
    assert!(out.status.success());
    assert!(
        stdout.contains("mirror: 0 ok, 5 skipped, 0 failed"),
        "{stdout}"
    );
    for (p, _) in &files {
        assert_eq!(server.hits(&format!("/{p}")), 1, "{p} requested again");
    }
    assert!(!tmp.join("m/.fetchpool/validators").exists());
}

/// The fan-out follows the `Link` header to page 2, reads `X-Total-Count`, follows a
/// user's redirect and prints its final URL, downloads the avatars, and a stalled API
/// call ends at its own 300 ms stall limit while the avatars, slower than that between
/// chunks, keep the pool's longer one.
#[test]
fn the_fanout_example_follows_pages_users_and_avatars_with_short_api_limits() {
    let server = TestServer::start();
    let tmp = TempDir::new();
    server.route("/api/users", |req| match req.query() {
        Some("page=1") => Reply::ok(br#"[{"login":"ada"},{"login":"bob"}]"#)
            .header("Link", "</api/users?page=2>; rel=\"next\"")
            .header("X-Total-Count", "3"),
        Some("page=2") => Reply::ok(br#"[{"login":"zed"}]"#).header("X-Total-Count", "3"),
        _ => Reply::status(404),
    });
    server.route("/api/users/ada", |_| {
        Reply::ok(br#"{"login":"ada","avatar":"/avatars/ada.png"}"#)
    });
    server.route("/api/users/bob", |_| {
        Reply::redirect(301, "/api/v2/users/bob")
    });
    server.route("/api/v2/users/bob", |_| {
        Reply::ok(br#"{"login":"bob","avatar":"/avatars/bob.png"}"#)
    });
    server.route("/api/users/zed", |_| {
        Reply::ok(vec![b' '; 100]).stall_after(5)
    });
    for who in ["ada", "bob"] {
        let png = random_bytes(who.len() as u64 + 30, 6_000);
        server.route(&format!("/avatars/{who}.png"), move |_| {
            Reply::ok(&png).drip(2_000, Duration::from_millis(450))
        });
    }
    let (out, stdout, stderr) = run("fanout", &[&server.url(""), "av"], tmp.path());
    assert!(out.status.success(), "{stdout}{stderr}");
    for line in [
        "page 1\t2 users of 3",
        "page 2\t1 users of 3",
        &format!("user ada\tfrom {}", server.url("/api/users/ada")),
        &format!("user bob\tfrom {}", server.url("/api/v2/users/bob")),
        "avatar ada\t6000 bytes",
        "avatar bob\t6000 bytes",
        "fanout: 6 ok, 1 failed, 0 cancelled",
    ] {
        assert!(
            stdout.lines().any(|l| l == line),
            "no line {line:?} in\n{stdout}"
        );
    }
    let zed = stdout
        .lines()
        .find(|l| l.starts_with("failed\t") && l.contains("/api/users/zed"))
        .unwrap_or_else(|| panic!("no failed line for zed in\n{stdout}"));
    assert!(zed.contains("stall") && zed.contains("0.3 s"), "{zed}");
    assert_eq!(server.hits("/api/users/zed"), 2, "one retry of its own");
    assert_eq!(std::fs::read(tmp.join("av/ada.png")).unwrap().len(), 6_000);
}

/// The embedded session: a producer thread submits, the main thread's status line comes
/// from `next_event_timeout`, and the huge transfer cancelled by its id mid-body ends
/// `cancelled` with the bytes it received (kept for a resume) while the others finish.
#[test]
fn the_session_example_cancels_one_transfer_by_id_and_the_others_finish() {
    let server = TestServer::start();
    let tmp = TempDir::new();
    for i in 1..=4 {
        server.file(&format!("/files/{i}"), random_bytes(i, 20_000));
    }
    let huge = Resource::new(random_bytes(99, 4 << 20));
    server.route("/huge", move |req| {
        Reply::file(req, &huge).drip(16 << 10, Duration::from_millis(30))
    });
    let (out, stdout, stderr) = run("session", &[&server.url(""), "4", "s"], tmp.path());
    assert!(out.status.success(), "{stdout}{stderr}");
    assert!(
        stdout.contains("session: 4 ok, 1 cancelled, 0 failed, interrupted false"),
        "{stdout}"
    );
    let line = stdout
        .lines()
        .find(|l| l.starts_with("cancelled\t") && l.contains("/huge"))
        .unwrap_or_else(|| panic!("no cancelled line for /huge in\n{stdout}"));
    let part = std::fs::metadata(tmp.join("s/huge.part")).unwrap().len();
    assert!((64 << 10..4 << 20).contains(&part), "{part}");
    assert!(
        line.contains(&format!("\t{part} bytes")),
        "{line} vs {part}"
    );
    for i in 1..=4 {
        assert_eq!(
            std::fs::read(tmp.join(format!("s/{i}"))).unwrap(),
            random_bytes(i, 20_000)
        );
    }
    assert!(
        stderr.lines().any(|l| l.starts_with("status: ")),
        "{stderr}"
    );
}
