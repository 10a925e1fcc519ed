//! Checksums beyond sha256: md5, sha1 and sha512 in TSV and JSON lists, digests the
//! server announces (Repr-Digest, Content-MD5, x-goog-hash, an S3 ETag when asked), and
//! the skip without a request for a tree listed with md5s.

mod support;

use std::fs;
use std::path::Path;
use std::process::Command;

use base64::Engine as _;
use md5::Md5;
use sha1::Sha1;
use sha2::{Digest, Sha256, Sha512};
use support::cli::{fetchpool, verify, write_list};
use support::{Reply, Resource, TempDir, TestServer, random_bytes, sha256_hex};

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn md5_hex(b: &[u8]) -> String {
    hex(&Md5::digest(b))
}

fn sha1_hex(b: &[u8]) -> String {
    hex(&Sha1::digest(b))
}

fn sha512_hex(b: &[u8]) -> String {
    hex(&Sha512::digest(b))
}

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// `body` with its byte at `at` flipped.
fn flipped(body: &[u8], at: usize) -> Vec<u8> {
    let mut b = body.to_vec();
    b[at] ^= 0x01;
    b
}

/// Nothing at `out/path` nor beside it.
fn assert_no_file(dir: &Path, path: &str) {
    assert!(!dir.join(path).exists(), "{path} exists");
    assert!(
        !dir.join(format!("{path}.part")).exists(),
        "{path}.part exists"
    );
}

/// Three files with md5, sha1 and sha512 checksums, and a fourth whose body has one
/// byte flipped against each kind.
fn kinds_list(server: &TestServer) -> (String, Vec<(String, Vec<u8>)>) {
    let mut list = String::from("# checksum kinds\n");
    let mut good = Vec::new();
    for (i, (algo, f)) in [
        ("md5", md5_hex as fn(&[u8]) -> String),
        ("sha1", sha1_hex),
        ("sha512", sha512_hex),
    ]
    .into_iter()
    .enumerate()
    {
        let body = random_bytes(10 + i as u64, 20_000 + i * 999);
        server.file(&format!("/good/{algo}"), body.clone());
        list.push_str(&format!(
            "{}\t{algo}.bin\t{algo}:{}\t{}\n",
            server.url(&format!("/good/{algo}")),
            f(&body),
            body.len()
        ));
        // The same kind of checksum for a body with one byte flipped.
        let bad = random_bytes(20 + i as u64, 5_000);
        server.file(&format!("/bad/{algo}"), flipped(&bad, 1234));
        list.push_str(&format!(
            "{}\tbad-{algo}.bin\t{}:{}\n",
            server.url(&format!("/bad/{algo}")),
            algo.to_uppercase(),
            f(&bad).to_uppercase()
        ));
        good.push((format!("{algo}.bin"), body));
    }
    (list, good)
}

#[test]
fn md5_sha1_and_sha512_in_a_tsv_list_verify_and_one_wrong_byte_fails_with_kind_checksum() {
    let server = TestServer::start();
    let tmp = TempDir::new();
    let (list, good) = kinds_list(&server);
    let name = write_list(tmp.path(), "kinds.tsv", &list);
    let run = fetchpool(tmp.path(), &["-i", &name, "-o", "out"], None);
    assert_eq!(run.code, 1, "stderr: {}", run.stderr);
    for (algo, (path, body)) in ["md5", "sha1", "sha512"].iter().zip(&good) {
        let line = run.line(&server.url(&format!("/good/{algo}")));
        assert_eq!(line["status"], "ok", "{algo}: {line}");
        assert_eq!(line["verified"], format!("{algo}:list"));
        assert_eq!(line["sha256"], sha256_hex(body));
        assert!(fs::read(tmp.join("out").join(path)).unwrap() == *body);

        let bad = run.line(&server.url(&format!("/bad/{algo}")));
        assert_eq!(bad["status"], "failed", "{algo}: {bad}");
        assert_eq!(bad["error"]["kind"], "checksum");
        assert_eq!(bad["attempts"], 1, "a checksum mismatch is not retried");
        let message = bad["error"]["message"].as_str().unwrap();
        assert!(
            message.contains(&format!("expected {algo} ")) && message.contains("job's checksum"),
            "{message}"
        );
        assert_no_file(&tmp.join("out"), &format!("bad-{algo}.bin"));
    }
}

#[test]
fn a_json_list_takes_a_checksum_field_of_any_kind_beside_sha256() {
    let server = TestServer::start();
    let tmp = TempDir::new();
    let a = random_bytes(1, 3000);
    let b = random_bytes(2, 4000);
    let c = random_bytes(3, 5000);
    server.file("/a", a.clone());
    server.file("/b", b.clone());
    server.file("/c", flipped(&c, 0));
    let list = format!(
        "{{\"url\":\"{}\",\"path\":\"a.bin\",\"checksum\":\"sha512:{}\"}}\n\
         {{\"url\":\"{}\",\"path\":\"b.bin\",\"sha256\":\"{}\"}}\n\
         {{\"url\":\"{}\",\"path\":\"c.bin\",\"checksum\":\"md5:{}\"}}\n",
        server.url("/a"),
        sha512_hex(&a),
        server.url("/b"),
        sha256_hex(&b),
        server.url("/c"),
        md5_hex(&c),
    );
    let name = write_list(tmp.path(), "jobs.jsonl", &list);
    let run = fetchpool(tmp.path(), &["-i", &name, "-o", "out"], None);
    assert_eq!(run.code, 1, "stderr: {}", run.stderr);
    assert_eq!(run.line(&server.url("/a"))["verified"], "sha512:list");
    assert_eq!(run.line(&server.url("/b"))["verified"], "sha256:list");
    let bad = run.line(&server.url("/c"));
    assert_eq!(bad["error"]["kind"], "checksum");
    assert_no_file(&tmp.join("out"), "c.bin");
    assert!(fs::read(tmp.join("out/a.bin")).unwrap() == a);

    // Both fields on one line, or an unknown algorithm: exit 2 naming the line.
    for line in [
        format!(
            "{{\"url\":\"{}\",\"sha256\":\"{}\",\"checksum\":\"md5:{}\"}}\n",
            server.url("/a"),
            sha256_hex(&a),
            md5_hex(&a)
        ),
        format!("{}\tx.bin\twhirlpool:00ff\n", server.url("/a")),
        format!("{}\tx.bin\tmd5:{}\n", server.url("/a"), &md5_hex(&a)[..30]),
    ] {
        let name = write_list(tmp.path(), "bad.jsonl", &line);
        let before = server.requests().len();
        let run = fetchpool(tmp.path(), &["-i", &name, "-o", "out2"], None);
        assert_eq!(run.code, 2, "{line}: {}", run.stderr);
        assert!(run.stderr.contains("bad.jsonl:1: "), "{}", run.stderr);
        assert_eq!(server.requests().len(), before, "no request");
    }
}

#[test]
fn verify_checks_md5_sha1_and_sha512_and_names_a_flipped_byte() {
    let server = TestServer::start();
    let tmp = TempDir::new();
    let (list, good) = kinds_list(&server);
    // Only the good lines: a tree that is whole.
    let list: String = list
        .lines()
        .filter(|l| l.contains("/good/"))
        .map(|l| format!("{l}\n"))
        .collect();
    let name = write_list(tmp.path(), "good.tsv", &list);
    let run = fetchpool(tmp.path(), &["-i", &name, "-o", "out"], None);
    assert_eq!(run.code, 0, "stderr: {}", run.stderr);
    let (code, out) = verify(tmp.path(), &["-i", &name, "-o", "out"]);
    assert_eq!(code, 0, "{out}");
    assert_eq!(out, "");
    for (path, body) in &good {
        fs::write(tmp.join("out").join(path), flipped(body, body.len() / 2)).unwrap();
    }
    let (code, out) = verify(tmp.path(), &["-i", &name, "-o", "out", "--json"]);
    assert_eq!(code, 1, "{out}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["ok"], 0);
    let bad = v["mismatched"].as_array().unwrap();
    assert_eq!(bad.len(), 3, "{v}");
    for (m, (algo, (path, body))) in bad.iter().zip(["md5", "sha1", "sha512"].iter().zip(&good)) {
        assert_eq!(m["path"], *path);
        let f = match *algo {
            "md5" => md5_hex,
            "sha1" => sha1_hex,
            _ => sha512_hex,
        };
        assert_eq!(m["expected"], format!("{algo}:{}", f(body)));
        assert_eq!(
            m["actual"],
            format!("{algo}:{}", f(&flipped(body, body.len() / 2)))
        );
    }
}

#[test]
fn a_second_run_over_an_md5_listed_tree_sends_no_request() {
    let server = TestServer::start();
    let tmp = TempDir::new();
    let mut list = String::new();
    for i in 0..20u64 {
        let body = random_bytes(300 + i, 2000 + 71 * i as usize);
        server.file(&format!("/s3/{i}"), body.clone());
        // As an S3 listing gives it: the ETag's MD5.
        list.push_str(&format!(
            "{}\td/f{i}.bin\tmd5:{}\n",
            server.url(&format!("/s3/{i}")),
            md5_hex(&body)
        ));
    }
    let name = write_list(tmp.path(), "s3.tsv", &list);
    let first = fetchpool(tmp.path(), &["-i", &name, "-o", "out"], None);
    assert_eq!(first.code, 0, "stderr: {}", first.stderr);
    assert_eq!(server.requests().len(), 20);
    let second = fetchpool(tmp.path(), &["-i", &name, "-o", "out"], None);
    assert_eq!(second.code, 0, "stderr: {}", second.stderr);
    assert_eq!(second.with_status("skipped").len(), 20);
    assert_eq!(server.requests().len(), 20, "no request in the second run");
    let line = second.line(&server.url("/s3/3"));
    assert_eq!(line["verified"], "md5:list");
    assert_eq!(
        line["sha256"],
        sha256_hex(&random_bytes(303, 2000 + 71 * 3))
    );
    // One damaged file is fetched again, and only it.
    fs::write(tmp.join("out/d/f5.bin"), b"damaged").unwrap();
    let third = fetchpool(tmp.path(), &["-i", &name, "-o", "out"], None);
    assert_eq!(third.code, 0, "stderr: {}", third.stderr);
    assert_eq!(third.with_status("skipped").len(), 19);
    assert_eq!(server.requests().len(), 21);
    assert_eq!(server.hits("/s3/5"), 2);
}

/// Serves `body` at `path` with extra headers `head`.
fn with_headers(server: &TestServer, path: &str, body: Vec<u8>, head: Vec<(&'static str, String)>) {
    server.route(path, move |_| {
        let mut reply = Reply::ok(&body);
        for (k, v) in &head {
            reply = reply.header(k, v);
        }
        reply
    });
}

#[test]
fn a_wrong_body_behind_a_server_digest_fails_with_kind_checksum_and_a_right_one_is_verified() {
    let server = TestServer::start();
    let tmp = TempDir::new();
    let body = random_bytes(7, 30_000);
    let wrong = flipped(&body, 29_999);
    let repr = |b: &[u8]| format!("sha-256=:{}:", b64(&Sha256::digest(b)));
    let repr512 = |b: &[u8]| format!("sha-512=:{}:", b64(&Sha512::digest(b)));
    let goog = |b: &[u8]| {
        format!(
            "crc32c={}, md5={}",
            b64(&crc32c::crc32c(b).to_be_bytes()),
            b64(&Md5::digest(b))
        )
    };
    let cmd5 = |b: &[u8]| b64(&Md5::digest(b));
    let amz = |b: &[u8]| b64(&Sha256::digest(b));
    type Header = fn(&[u8]) -> String;
    let cases: [(&str, &'static str, Header, &str, &str); 5] = [
        (
            "repr",
            "Repr-Digest",
            repr,
            "sha256:repr-digest",
            "Repr-Digest",
        ),
        (
            "repr512",
            "Repr-Digest",
            repr512,
            "sha512:repr-digest",
            "Repr-Digest",
        ),
        (
            "goog",
            "x-goog-hash",
            goog,
            "md5:x-goog-hash",
            "x-goog-hash",
        ),
        (
            "cmd5",
            "Content-MD5",
            cmd5,
            "md5:content-md5",
            "Content-MD5",
        ),
        (
            "amz",
            "x-amz-checksum-sha256",
            amz,
            "sha256:x-amz-checksum",
            "x-amz-checksum",
        ),
    ];
    let mut list = String::new();
    for (name, header, value, _, _) in &cases {
        // The digest is of `body`; the right path sends it, the wrong one a flipped byte.
        with_headers(
            &server,
            &format!("/right/{name}"),
            body.clone(),
            vec![(header, value(&body))],
        );
        with_headers(
            &server,
            &format!("/wrong/{name}"),
            wrong.clone(),
            vec![(header, value(&body))],
        );
        for kind in ["right", "wrong"] {
            list.push_str(&format!(
                "{}\t{kind}-{name}.bin\n",
                server.url(&format!("/{kind}/{name}"))
            ));
        }
    }
    server.file("/plain", body.clone());
    list.push_str(&format!("{}\tplain.bin\n", server.url("/plain")));
    let name = write_list(tmp.path(), "l.tsv", &list);
    let run = fetchpool(tmp.path(), &["-i", &name, "-o", "out"], None);
    assert_eq!(run.code, 1, "stderr: {}", run.stderr);
    for (name, _, _, verified, words) in &cases {
        let right = run.line(&server.url(&format!("/right/{name}")));
        assert_eq!(right["status"], "ok", "{name}: {right}");
        assert_eq!(right["verified"], *verified, "{name}");
        assert!(fs::read(tmp.join(format!("out/right-{name}.bin"))).unwrap() == body);
        let wrong = run.line(&server.url(&format!("/wrong/{name}")));
        assert_eq!(wrong["status"], "failed", "{name}: {wrong}");
        assert_eq!(wrong["error"]["kind"], "checksum", "{name}");
        let message = wrong["error"]["message"].as_str().unwrap();
        assert!(message.contains(words), "{name}: {message}");
        assert_no_file(&tmp.join("out"), &format!("wrong-{name}.bin"));
    }
    assert_eq!(run.line(&server.url("/plain"))["verified"], "none");
}

#[test]
fn etag_md5_catches_a_wrong_body_behind_a_plain_md5_etag_and_ignores_a_multipart_one() {
    let server = TestServer::start();
    let tmp = TempDir::new();
    let body = random_bytes(9, 12_345);
    let etag = format!("\"{}\"", md5_hex(&body));
    server.serve("/right", Resource::new(body.clone()).with_etag(&etag));
    server.serve("/wrong", Resource::new(flipped(&body, 5)).with_etag(&etag));
    let multipart = format!("\"{}-3\"", md5_hex(b"parts"));
    server.serve("/multi", Resource::new(body.clone()).with_etag(&multipart));
    let list = format!(
        "{}\tright.bin\n{}\twrong.bin\n{}\tmulti.bin\n",
        server.url("/right"),
        server.url("/wrong"),
        server.url("/multi")
    );
    let name = write_list(tmp.path(), "l.tsv", &list);

    // Without --etag-md5 an ETag is opaque: all three are ok.
    let run = fetchpool(tmp.path(), &["-i", &name, "-o", "plain"], None);
    assert_eq!(run.code, 0, "stderr: {}", run.stderr);
    assert_eq!(run.line(&server.url("/wrong"))["verified"], "none");

    let run = fetchpool(tmp.path(), &["-i", &name, "-o", "out", "--etag-md5"], None);
    assert_eq!(run.code, 1, "stderr: {}", run.stderr);
    assert_eq!(run.line(&server.url("/right"))["verified"], "md5:etag");
    let wrong = run.line(&server.url("/wrong"));
    assert_eq!(wrong["error"]["kind"], "checksum");
    let message = wrong["error"]["message"].as_str().unwrap();
    assert!(message.contains("ETag"), "{message}");
    assert_no_file(&tmp.join("out"), "wrong.bin");
    let multi = run.line(&server.url("/multi"));
    assert_eq!(multi["status"], "ok");
    assert_eq!(multi["verified"], "none");
}

#[test]
fn a_digest_of_an_encoded_body_is_never_taken_for_the_files() {
    let server = TestServer::start();
    let tmp = TempDir::new();
    let body = random_bytes(11, 4000);
    // Its digests describe the bytes as sent; the file would be them only by accident.
    with_headers(
        &server,
        "/gz",
        body.clone(),
        vec![
            ("Content-Encoding", "gzip".to_string()),
            ("Content-MD5", b64(&Md5::digest(b"something else"))),
            (
                "Repr-Digest",
                format!("sha-256=:{}:", b64(&Sha256::digest(&body))),
            ),
        ],
    );
    let url = server.url("/gz");
    let run = fetchpool(tmp.path(), &[&url, "-o", "out"], None);
    assert_eq!(run.code, 0, "stderr: {}", run.stderr);
    let line = run.line(&url);
    assert_eq!(line["status"], "ok");
    assert_eq!(line["verified"], "none");
}

#[test]
fn a_listed_checksum_decides_over_a_server_digest_that_disagrees() {
    let server = TestServer::start();
    let tmp = TempDir::new();
    let body = random_bytes(12, 6000);
    with_headers(
        &server,
        "/f",
        body.clone(),
        vec![(
            "Repr-Digest",
            format!("sha-256=:{}:", b64(&Sha256::digest(b"other"))),
        )],
    );
    let list = format!("{}\tf.bin\tmd5:{}\n", server.url("/f"), md5_hex(&body));
    let name = write_list(tmp.path(), "l.tsv", &list);
    let run = fetchpool(tmp.path(), &["-i", &name, "-o", "out", "-v"], None);
    assert_eq!(run.code, 0, "stderr: {}", run.stderr);
    let line = run.line(&server.url("/f"));
    assert_eq!(line["verified"], "md5:list");
    assert!(
        run.stderr.contains("the job's checksum decides"),
        "{}",
        run.stderr
    );
}

/// A small tree on the server under `/mirror/`, nested, with a space in one name.
fn mirror_tree(server: &TestServer) -> Vec<(String, Vec<u8>)> {
    let files: Vec<(String, Vec<u8>)> = [
        "README",
        "pool/main/a/alpha_1.0.deb",
        "pool/main/b/beta 2.deb",
        "dists/stable/Release",
    ]
    .iter()
    .enumerate()
    .map(|(i, p)| (p.to_string(), random_bytes(400 + i as u64, 3000 + 517 * i)))
    .collect();
    for (path, body) in &files {
        server.file(
            &format!("/mirror/{}", path.replace(' ', "%20")),
            body.clone(),
        );
    }
    files
}

fn sha256sum_c(dir: &Path, file: &Path) -> (i32, String) {
    let out = Command::new("sha256sum")
        .arg("-c")
        .arg(file)
        .current_dir(dir)
        .output()
        .expect("sha256sum");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr),
    )
}

#[test]
fn a_sha256sums_file_with_a_base_url_downloads_the_tree_and_write_checksums_passes_sha256sum_c() {
    let server = TestServer::start();
    let tmp = TempDir::new();
    let files = mirror_tree(&server);
    // As sha256sum writes it: text and binary mode, a "./" path.
    let mut sums = String::new();
    for (i, (path, body)) in files.iter().enumerate() {
        let mark = if i == 1 { " *" } else { "  " };
        let path = if i == 3 {
            format!("./{path}")
        } else {
            path.clone()
        };
        sums.push_str(&format!("{}{mark}{path}\n", sha256_hex(body)));
    }
    write_list(tmp.path(), "SHA256SUMS", &sums);
    let base = server.url("/mirror/");
    let written = tmp.join("held.sha256");
    let args = [
        "-i",
        "SHA256SUMS",
        "--base-url",
        &base,
        "-o",
        "out",
        "--write-checksums",
        written.to_str().unwrap(),
    ];
    let run = fetchpool(tmp.path(), &args, None);
    assert_eq!(run.code, 0, "stderr: {}", run.stderr);
    assert_eq!(run.with_status("ok").len(), 4);
    for (path, body) in &files {
        assert!(
            fs::read(tmp.join("out").join(path)).unwrap() == *body,
            "{path}"
        );
    }
    assert!(run.report.iter().all(|l| l["verified"] == "sha256:list"));
    let (code, said) = sha256sum_c(&tmp.join("out"), &written);
    assert_eq!(code, 0, "{said}");
    assert_eq!(said.matches(": OK").count(), 4, "{said}");
    assert!(!tmp.join("held.sha256.partial").exists());

    // Again: every file is skipped without a request, and still listed.
    let before = server.requests().len();
    let run = fetchpool(tmp.path(), &args, None);
    assert_eq!(run.code, 0, "stderr: {}", run.stderr);
    assert_eq!(run.with_status("skipped").len(), 4);
    assert_eq!(server.requests().len(), before);
    let (code, said) = sha256sum_c(&tmp.join("out"), &written);
    assert_eq!((code, said.matches(": OK").count()), (0, 4), "{said}");

    // A list without checksums: the second run's files are 304s, hashed for the file.
    let plain: String = files
        .iter()
        .map(|(p, _)| {
            format!(
                "{}\t{p}\n",
                server.url(&format!("/mirror/{}", p.replace(' ', "%20")))
            )
        })
        .collect();
    let name = write_list(tmp.path(), "plain.tsv", &plain);
    let mine = tmp.join("plain.sha256");
    for _ in 0..2 {
        let run = fetchpool(
            tmp.path(),
            &[
                "-i",
                &name,
                "-o",
                "plain",
                "--write-checksums",
                mine.to_str().unwrap(),
            ],
            None,
        );
        assert_eq!(run.code, 0, "stderr: {}", run.stderr);
        let (code, said) = sha256sum_c(&tmp.join("plain"), &mine);
        assert_eq!((code, said.matches(": OK").count()), (0, 4), "{said}");
    }
    assert_eq!(
        server
            .requests()
            .iter()
            .filter(|r| r.status == Some(304))
            .count(),
        4
    );
}

#[test]
fn sha512sums_md5sums_and_bsd_tags_are_checksum_files_too_and_a_wrong_byte_fails() {
    let server = TestServer::start();
    let tmp = TempDir::new();
    let files = mirror_tree(&server);
    let sums = format!(
        "{}  {}\n{}  {}\nSHA256 ({}) = {}\nSHA1 ({}) = {}\n",
        sha512_hex(&files[0].1),
        files[0].0,
        md5_hex(&files[1].1),
        files[1].0,
        files[2].0,
        sha256_hex(&files[2].1),
        files[3].0,
        sha1_hex(&flipped(&files[3].1, 100)),
    );
    write_list(tmp.path(), "SUMS", &sums);
    let run = fetchpool(
        tmp.path(),
        &[
            "-i",
            "SUMS",
            "--base-url",
            &server.url("/mirror"),
            "-o",
            "out",
        ],
        None,
    );
    assert_eq!(run.code, 1, "stderr: {}", run.stderr);
    let verified: Vec<&str> = files[..3]
        .iter()
        .map(|(p, _)| {
            run.line(&server.url(&format!("/mirror/{}", p.replace(' ', "%20"))))["verified"]
                .as_str()
                .unwrap()
        })
        .collect();
    assert_eq!(verified, ["sha512:list", "md5:list", "sha256:list"]);
    let bad = run.line(&server.url(&format!("/mirror/{}", files[3].0)));
    assert_eq!(bad["error"]["kind"], "checksum");
    assert_no_file(&tmp.join("out"), &files[3].0);

    // Without a base URL the lines name no URL: exit 2 before any request.
    let before = server.requests().len();
    let run = fetchpool(tmp.path(), &["-i", "SUMS", "-o", "out2"], None);
    assert_eq!(run.code, 2, "stderr: {}", run.stderr);
    assert!(run.stderr.contains("SUMS:1: "), "{}", run.stderr);
    assert!(run.stderr.contains("checksum-file line"), "{}", run.stderr);
    assert_eq!(server.requests().len(), before);
}

#[test]
fn verify_reads_a_sha256sums_file_and_names_a_flipped_byte() {
    let tmp = TempDir::new();
    let mut sums = String::new();
    for i in 0..6u64 {
        let body = random_bytes(500 + i, 7000 + 13 * i as usize);
        let path = format!("d{}/f{i}.bin", i % 2);
        fs::create_dir_all(tmp.join("tree").join(format!("d{}", i % 2))).unwrap();
        fs::write(tmp.join("tree").join(&path), &body).unwrap();
        sums.push_str(&format!("{}  {path}\n", sha256_hex(&body)));
    }
    write_list(tmp.path(), "SHA256SUMS", &sums);
    let (code, out) = verify(tmp.path(), &["-i", "SHA256SUMS", "-o", "tree"]);
    assert_eq!((code, out.as_str()), (0, ""));
    let victim = tmp.join("tree/d1/f3.bin");
    let body = fs::read(&victim).unwrap();
    fs::write(&victim, flipped(&body, 4000)).unwrap();
    let (code, out) = verify(tmp.path(), &["-i", "SHA256SUMS", "-o", "tree"]);
    assert_eq!(code, 1, "{out}");
    assert!(out.starts_with("mismatch\td1/f3.bin\texpected "), "{out}");
    assert_eq!(out.lines().count(), 1, "{out}");
}

#[test]
fn the_library_verifies_a_memory_job_by_its_checksum_or_the_servers_and_says_against_what() {
    use fetchpool::{Algorithm, Checksum, DigestSource, Error, Job, Pool, Status};
    let server = TestServer::start();
    let body = random_bytes(31, 2048);
    server.file("/listed", body.clone());
    with_headers(
        &server,
        "/announced",
        body.clone(),
        vec![("Content-MD5", b64(&Md5::digest(&body)))],
    );
    with_headers(
        &server,
        "/lying",
        body.clone(),
        vec![("Content-MD5", b64(&Md5::digest(b"another body")))],
    );
    let tmp = TempDir::new();
    let pool = Pool::builder().output_dir(tmp.path()).build().unwrap();
    let sha1: Checksum = format!("sha1:{}", sha1_hex(&body)).parse().unwrap();
    let report = pool
        .run(vec![
            Job::new(server.url("/listed")).to_memory().checksum(sha1),
            Job::new(server.url("/announced")).to_memory(),
            Job::new(server.url("/lying")).to_memory(),
        ])
        .unwrap();
    let by_url = |path: &str| {
        let url = server.url(path);
        report.outcomes.iter().find(|o| o.url == url).unwrap()
    };
    let (listed, announced, lying) = (by_url("/listed"), by_url("/announced"), by_url("/lying"));
    let verified = |o: &fetchpool::Outcome| o.verified.map(|v| (v.algorithm, v.source));
    assert_eq!(
        verified(listed),
        Some((Algorithm::Sha1, DigestSource::List))
    );
    assert_eq!(listed.body.as_deref(), Some(&body[..]));
    assert_eq!(
        verified(announced),
        Some((Algorithm::Md5, DigestSource::ContentMd5))
    );
    assert_eq!(lying.status, Status::Failed);
    match &lying.error {
        Some(Error::Digest {
            algorithm: Algorithm::Md5,
            source: DigestSource::ContentMd5,
            expected,
            actual,
        }) => {
            assert_eq!(*expected, md5_hex(b"another body"));
            assert_eq!(*actual, md5_hex(&body));
        }
        other => panic!("{other:?}"),
    }
    assert!(lying.body.is_none());
}

#[test]
fn a_checksum_file_path_that_escapes_the_output_directory_is_refused_on_its_line() {
    let tmp = TempDir::new();
    let sha = sha256_hex(b"x");
    for (bad, says) in [
        (
            format!("{sha}  ../etc/passwd\n"),
            "escapes the output directory",
        ),
        (format!("{sha}  /etc/passwd\n"), "is absolute"),
        (
            format!("SHA256 (.fetchpool/lock) = {sha}\n"),
            "state directory",
        ),
    ] {
        write_list(tmp.path(), "SUMS", &bad);
        let run = fetchpool(
            tmp.path(),
            &[
                "-i",
                "SUMS",
                "--base-url",
                "http://127.0.0.1:9/m/",
                "-o",
                "out",
            ],
            None,
        );
        assert_eq!(run.code, 2, "{bad}: {}", run.stderr);
        assert!(run.stderr.contains("SUMS:1: "), "{}", run.stderr);
        assert!(run.stderr.contains(says), "{bad}: {}", run.stderr);
    }
    let run = fetchpool(
        tmp.path(),
        &[
            "-i",
            "SUMS",
            "--base-url",
            "ftp://127.0.0.1/m/",
            "-o",
            "out",
        ],
        None,
    );
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert!(run.stderr.contains("--base-url"), "{}", run.stderr);
}
