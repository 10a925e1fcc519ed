//! Trust: the system's certificate store by default (`SSL_CERT_FILE`, `SSL_CERT_DIR`),
//! Mozilla's roots with `--no-ca-native`, and client certificates for servers that demand
//! one (`--cert`, `--key`), with every bad file refused before any request.

mod support;

use support::cli::{fetchpool, fetchpool_env};
use support::tls::{Leaf, TestCa, TlsFront};
use support::{TempDir, TestServer};

const BODY: &[u8] = b"bytes behind a private CA";

fn backend() -> TestServer {
    let plain = TestServer::start();
    plain.file("/f.bin", BODY.to_vec());
    plain
}

#[test]
fn a_ca_only_in_a_system_style_store_named_by_ssl_cert_file_is_trusted_without_cacert() {
    let ca = TestCa::new("corporate inspection CA");
    let plain = backend();
    let front = TlsFront::start(&ca, Leaf::Valid, &plain);
    let tmp = TempDir::new();
    // A store laid out as a system's: a bundle file and a folder of certificates.
    std::fs::create_dir_all(tmp.join("etc/ssl/certs")).unwrap();
    let bundle = ca.write_pem(&tmp.join("etc/ssl"), "ca-bundle.crt");
    ca.write_pem(&tmp.join("etc/ssl/certs"), "corp.pem");
    let url = front.url("/f.bin");
    for (var, value) in [
        ("SSL_CERT_FILE", bundle.to_str().unwrap()),
        ("SSL_CERT_DIR", tmp.join("etc/ssl/certs").to_str().unwrap()),
    ] {
        let out = format!("out-{var}");
        let run = fetchpool_env(tmp.path(), &[&url, "-o", &out], None, &[(var, value)]);
        assert_eq!(run.code, 0, "{var}: {}", run.stderr);
        assert_eq!(run.line(&url)["status"], "ok");
        assert_eq!(std::fs::read(tmp.join(&out).join("f.bin")).unwrap(), BODY);
    }
    // Mozilla's roots alone do not hold it.
    let run = fetchpool_env(
        tmp.path(),
        &[&url, "-o", "moz", "--no-ca-native"],
        None,
        &[("SSL_CERT_FILE", bundle.to_str().unwrap())],
    );
    assert_eq!(run.code, 1, "{}", run.stderr);
    let line = run.line(&url);
    assert_eq!(line["error"]["kind"], "tls");
    assert!(
        line["error"]["message"]
            .as_str()
            .unwrap()
            .contains("unknown issuer"),
        "{line}"
    );
    assert_eq!(plain.hits("/f.bin"), 2);
}

#[test]
fn an_ssl_cert_file_that_cannot_be_read_exits_2_naming_it_before_any_request() {
    let ca = TestCa::new("fetchpool test CA");
    let plain = backend();
    let front = TlsFront::start(&ca, Leaf::Valid, &plain);
    let tmp = TempDir::new();
    let missing = tmp.join("no-such-bundle.crt");
    let run = fetchpool_env(
        tmp.path(),
        &[&front.url("/f.bin"), "-o", "out"],
        None,
        &[("SSL_CERT_FILE", missing.to_str().unwrap())],
    );
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert!(run.stderr.contains("SSL_CERT_FILE"), "{}", run.stderr);
    assert!(run.stderr.contains("no-such-bundle.crt"), "{}", run.stderr);
    assert!(front.peers().is_empty());
    assert_eq!(plain.connections(), 0);
}

#[test]
fn a_server_demanding_a_client_certificate_accepts_cert_and_key_and_refuses_without_them() {
    let ca = TestCa::new("server CA");
    let clients = TestCa::new("client CA");
    let strangers = TestCa::new("another client CA");
    let plain = backend();
    let front = TlsFront::requiring_client_cert(&ca, Leaf::Valid, &plain, &clients);
    let tmp = TempDir::new();
    let cacert = ca.write_pem(tmp.path(), "ca.pem");
    let cacert = cacert.to_str().unwrap();
    let (crt, key) = clients.write_client_cert(tmp.path(), "worker");
    let url = front.url("/f.bin");

    let run = fetchpool(
        tmp.path(),
        &[
            &url,
            "-o",
            "out",
            "--cacert",
            cacert,
            "--cert",
            crt.to_str().unwrap(),
            "--key",
            key.to_str().unwrap(),
        ],
        None,
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(std::fs::read(tmp.join("out/f.bin")).unwrap(), BODY);

    // One PEM file holding both.
    let both = tmp.join("both.pem");
    let text = std::fs::read_to_string(&crt).unwrap() + &std::fs::read_to_string(&key).unwrap();
    std::fs::write(&both, text).unwrap();
    let run = fetchpool(
        tmp.path(),
        &[
            &url,
            "-o",
            "out2",
            "--cacert",
            cacert,
            "--cert",
            both.to_str().unwrap(),
        ],
        None,
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(plain.hits("/f.bin"), 2);

    // Without one: kind tls, the reason, not retried, a hint naming --cert.
    let run = fetchpool(
        tmp.path(),
        &[&url, "-o", "none", "--cacert", cacert, "--retries", "2"],
        None,
    );
    assert_eq!(run.code, 1, "{}", run.stderr);
    let line = run.line(&url);
    assert_eq!(line["error"]["kind"], "tls", "{line}");
    assert_eq!(line["attempts"], 1);
    let message = line["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("requires a client certificate"),
        "{message}"
    );
    assert!(run.stderr.contains("--cert FILE"), "{}", run.stderr);
    assert!(!tmp.join("none/f.bin").exists());

    // One its CA did not issue: refused.
    let (other_crt, other_key) = strangers.write_client_cert(tmp.path(), "stranger");
    let run = fetchpool(
        tmp.path(),
        &[
            &url,
            "-o",
            "stranger",
            "--cacert",
            cacert,
            "--cert",
            other_crt.to_str().unwrap(),
            "--key",
            other_key.to_str().unwrap(),
        ],
        None,
    );
    assert_eq!(run.code, 1, "{}", run.stderr);
    let line = run.line(&url);
    assert_eq!(line["error"]["kind"], "tls", "{line}");
    let message = line["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("refused the client certificate"),
        "{message}"
    );
    assert_eq!(plain.hits("/f.bin"), 2, "no request got through");
}

#[test]
fn bad_client_certificate_files_exit_2_naming_the_file_before_any_request() {
    let ca = TestCa::new("server CA");
    let clients = TestCa::new("client CA");
    let plain = backend();
    let front = TlsFront::requiring_client_cert(&ca, Leaf::Valid, &plain, &clients);
    let tmp = TempDir::new();
    let (crt, key) = clients.write_client_cert(tmp.path(), "worker");
    let (_, other_key) = clients.write_client_cert(tmp.path(), "other");
    std::fs::write(tmp.join("empty.pem"), "nothing here\n").unwrap();
    let url = front.url("/f.bin");
    let crt = crt.to_str().unwrap().to_string();
    let key = key.to_str().unwrap().to_string();
    let other_key = other_key.to_str().unwrap().to_string();
    for (args, says, names) in [
        (
            vec!["--cert", "missing.crt"],
            "cannot read client certificate file",
            "missing.crt",
        ),
        (
            vec!["--cert", "empty.pem"],
            "holds no certificate",
            "empty.pem",
        ),
        (vec!["--cert", &crt], "holds no private key", "worker.crt"),
        (
            vec!["--cert", &crt, "--key", "empty.pem"],
            "holds no private key",
            "empty.pem",
        ),
        (
            vec!["--cert", &crt, "--key", "nokey.pem"],
            "cannot read",
            "nokey.pem",
        ),
        (
            vec!["--cert", &crt, "--key", &other_key],
            "does not fit",
            "other.key",
        ),
        (vec!["--key", &key], "--cert", "--cert"),
    ] {
        let mut all = vec![url.as_str(), "-o", "out"];
        all.extend(args.iter().copied());
        let run = fetchpool(tmp.path(), &all, None);
        assert_eq!(run.code, 2, "{args:?}: {}", run.stderr);
        assert!(run.stderr.contains(says), "{args:?}: {}", run.stderr);
        assert!(run.stderr.contains(names), "{args:?}: {}", run.stderr);
    }
    assert!(front.peers().is_empty());
    assert_eq!(plain.connections(), 0);
}
