//! TLS: rustls with Mozilla's roots; `--cacert` adds a CA; certificate failures are kind
//! `tls`, name the reason, and are not retried; a bad CA file stops the run before any
//! request.

mod support;

use support::cli::fetchpool;
use support::tls::{Leaf, TestCa, TlsFront};
use support::{TempDir, TestServer};

fn https_server(leaf: Leaf) -> (TestCa, TestServer, TlsFront) {
    let ca = TestCa::new("fetchpool test CA");
    let plain = TestServer::start();
    plain.file("/f.bin", b"secure bytes".to_vec());
    let front = TlsFront::start(&ca, leaf, &plain);
    (ca, plain, front)
}

#[test]
fn own_ca_is_unknown_issuer_without_cacert_and_ok_with_it() {
    let (ca, plain, front) = https_server(Leaf::Valid);
    let tmp = TempDir::new();
    let url = front.url("/f.bin");
    let run = fetchpool(tmp.path(), &[&url, "-o", "out", "--retries", "3"], None);
    assert_eq!(run.code, 1);
    let line = run.line(&url);
    assert_eq!(line["status"], "failed");
    assert_eq!(line["error"]["kind"], "tls");
    assert_eq!(line["attempts"], 1, "a TLS failure is not retried");
    let message = line["error"]["message"].as_str().unwrap();
    assert!(message.contains("unknown issuer"), "{message}");
    assert_eq!(plain.hits("/f.bin"), 0);

    let cacert = ca.write_pem(tmp.path(), "ca.pem");
    let run = fetchpool(
        tmp.path(),
        &[&url, "-o", "out", "--cacert", cacert.to_str().unwrap()],
        None,
    );
    assert_eq!(run.code, 0, "stderr: {}", run.stderr);
    assert_eq!(run.line(&url)["status"], "ok");
    assert_eq!(
        std::fs::read(tmp.join("out/f.bin")).unwrap(),
        b"secure bytes"
    );
    assert_eq!(plain.hits("/f.bin"), 1);
}

#[test]
fn expired_and_wrong_name_certificates_say_so() {
    for (leaf, reason) in [
        (Leaf::Expired, "certificate expired"),
        (Leaf::OtherName, "name mismatch"),
    ] {
        let (ca, plain, front) = https_server(leaf);
        let tmp = TempDir::new();
        let cacert = ca.write_pem(tmp.path(), "ca.pem");
        let url = front.url("/f.bin");
        let run = fetchpool(
            tmp.path(),
            &[&url, "-o", "out", "--cacert", cacert.to_str().unwrap()],
            None,
        );
        assert_eq!(run.code, 1, "{leaf:?}");
        let line = run.line(&url);
        assert_eq!(line["error"]["kind"], "tls", "{leaf:?}");
        assert_eq!(line["attempts"], 1, "{leaf:?}");
        let message = line["error"]["message"].as_str().unwrap();
        assert!(message.contains(reason), "{leaf:?}: {message}");
        assert_eq!(plain.hits("/f.bin"), 0);
    }
}

#[test]
fn unreadable_or_invalid_ca_file_exits_2_before_any_request() {
    let (_ca, plain, front) = https_server(Leaf::Valid);
    let tmp = TempDir::new();
    std::fs::write(tmp.join("empty.pem"), "no certificate here\n").unwrap();
    std::fs::write(
        tmp.join("garbage.pem"),
        "-----BEGIN CERTIFICATE-----\nbm90IGEgY2VydGlmaWNhdGU=\n-----END CERTIFICATE-----\n",
    )
    .unwrap();
    for (file, says) in [
        ("missing.pem", "cannot read CA file"),
        ("empty.pem", "holds no certificate"),
        ("garbage.pem", "not a valid X.509 CA certificate"),
    ] {
        let run = fetchpool(tmp.path(), &[&front.url("/f.bin"), "--cacert", file], None);
        assert_eq!(run.code, 2, "{file}: {}", run.stderr);
        assert!(run.stderr.contains(says), "{file}: {}", run.stderr);
        assert!(run.stderr.contains(file), "{file}: {}", run.stderr);
    }
    assert!(front.peers().is_empty());
    assert_eq!(plain.connections(), 0);
}
