//! The proxy is never bypassed: every request and every redirect hop goes through the
//! proxy chosen for that hop's URL (flag or environment, curl's rules), plain-http targets
//! in absolute form (so proxies that allow `CONNECT` only to 443 work), https targets
//! through `CONNECT`; proxy failures are kind `proxy`; proxy passwords are never shown.

mod support;

use std::net::SocketAddr;

use support::cli::{fetchpool, fetchpool_env};
use support::proxy::TestProxy;
use support::socks::SocksProxy;
use support::tls::{Leaf, TestCa, TlsFront};
use support::{Reply, TempDir, TestServer};

fn sorted(mut v: Vec<SocketAddr>) -> Vec<SocketAddr> {
    v.sort();
    v
}

/// `127.0.0.1:PORT`, as a proxy sees a target.
fn authority(port: u16) -> String {
    format!("127.0.0.1:{port}")
}

/// Host A redirects `/start` to host B's `/file`; B serves it.
fn two_hosts() -> (TestServer, TestServer) {
    let (a, b) = (TestServer::start(), TestServer::start());
    b.file("/file", b"from B".to_vec());
    let to = b.url("/file");
    a.route("/start", move |_| Reply::redirect(302, &to));
    (a, b)
}

/// Both origins were reached only by the proxy: every connection they accepted came from
/// a socket the proxy opened to them, and there was at least one.
fn assert_only_proxy_connected(proxy: &TestProxy, origins: &[&TestServer]) {
    for origin in origins {
        let from_proxy = sorted(proxy.upstream_addrs(&authority(origin.port())));
        assert!(
            !from_proxy.is_empty(),
            "proxy never reached {}",
            origin.port()
        );
        assert_eq!(
            sorted(origin.peers()),
            from_proxy,
            "origin {}",
            origin.port()
        );
    }
}

#[test]
fn cross_host_redirect_goes_through_the_proxy_flag_for_both_hops() {
    let (a, b) = two_hosts();
    let proxy = TestProxy::start();
    // Squid's packaged rule: CONNECT only to 443. Plain http must not need CONNECT.
    proxy.connect_only_to(&[443]);
    let tmp = TempDir::new();
    let run = fetchpool(
        tmp.path(),
        &[&a.url("/start"), "-o", "out", "--proxy", &proxy.url()],
        None,
    );
    assert_eq!(run.code, 0, "stderr: {}", run.stderr);
    let line = run.line(&a.url("/start"));
    assert_eq!(line["status"], "ok");
    assert_eq!(line["redirects"], serde_json::json!([b.url("/file")]));
    assert_eq!(std::fs::read(tmp.join("out/start")).unwrap(), b"from B");
    assert_eq!(
        proxy.lines(),
        [
            format!("GET {}", a.url("/start")),
            format!("GET {}", b.url("/file"))
        ]
    );
    assert_only_proxy_connected(&proxy, &[&a, &b]);
}

#[test]
fn cross_host_redirect_goes_through_http_proxy_from_the_environment() {
    let (a, b) = two_hosts();
    let proxy = TestProxy::start();
    let tmp = TempDir::new();
    let run = fetchpool_env(
        tmp.path(),
        &[&a.url("/start"), "-o", "out"],
        None,
        &[("HTTP_PROXY", &proxy.url())],
    );
    assert_eq!(run.code, 0, "stderr: {}", run.stderr);
    assert_eq!(
        proxy.lines(),
        [
            format!("GET {}", a.url("/start")),
            format!("GET {}", b.url("/file"))
        ]
    );
    assert_only_proxy_connected(&proxy, &[&a, &b]);
}

#[test]
fn https_redirect_goes_through_https_proxy_from_the_environment_by_connect() {
    let ca = TestCa::new("fetchpool test CA");
    let (a_plain, b_plain) = (TestServer::start(), TestServer::start());
    let (a, b) = (
        TlsFront::start(&ca, Leaf::Valid, &a_plain),
        TlsFront::start(&ca, Leaf::Valid, &b_plain),
    );
    b_plain.file("/file", b"from B over TLS".to_vec());
    let to = b.url("/file");
    a_plain.route("/start", move |_| Reply::redirect(301, &to));
    let proxy = TestProxy::start();
    let tmp = TempDir::new();
    let cacert = ca.write_pem(tmp.path(), "ca.pem");
    let run = fetchpool_env(
        tmp.path(),
        &[
            &a.url("/start"),
            "-o",
            "out",
            "--cacert",
            cacert.to_str().unwrap(),
        ],
        None,
        // An http_proxy that must not be used for https targets.
        &[
            ("https_proxy", &proxy.url()),
            ("http_proxy", "http://127.0.0.1:1"),
        ],
    );
    assert_eq!(run.code, 0, "stderr: {}", run.stderr);
    let line = run.line(&a.url("/start"));
    assert_eq!(line["redirects"], serde_json::json!([b.url("/file")]));
    assert_eq!(
        std::fs::read(tmp.join("out/start")).unwrap(),
        b"from B over TLS"
    );
    assert_eq!(
        proxy.lines(),
        [
            format!("CONNECT {}", authority(a.port())),
            format!("CONNECT {}", authority(b.port()))
        ]
    );
    for front in [&a, &b] {
        assert_eq!(
            sorted(front.peers()),
            sorted(proxy.upstream_addrs(&authority(front.port())))
        );
    }
}

#[test]
fn no_proxy_flag_and_variable_send_matching_hosts_direct() {
    let origin = TestServer::start();
    origin.file("/f", b"direct".to_vec());
    let proxy = TestProxy::start();
    let tmp = TempDir::new();
    let flag = fetchpool(
        tmp.path(),
        &[
            &origin.url("/f"),
            "-o",
            "out1",
            "--proxy",
            &proxy.url(),
            "--no-proxy",
            "example.com, 127.0.0.0/8",
        ],
        None,
    );
    assert_eq!(flag.code, 0, "stderr: {}", flag.stderr);
    let env = fetchpool_env(
        tmp.path(),
        &[&origin.url("/f"), "-o", "out2"],
        None,
        &[("http_proxy", &proxy.url()), ("NO_PROXY", "127.0.0.1")],
    );
    assert_eq!(env.code, 0, "stderr: {}", env.stderr);
    assert_eq!(proxy.connections(), 0);
    assert_eq!(origin.hits("/f"), 2);
}

#[test]
fn empty_proxy_flag_and_no_proxy_env_turn_the_environment_off() {
    let origin = TestServer::start();
    origin.file("/f", b"direct".to_vec());
    let proxy = TestProxy::start();
    let tmp = TempDir::new();
    let env = [("http_proxy", proxy.url())];
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    for args in [vec!["--proxy", ""], vec!["--no-proxy-env"]] {
        let mut all = vec![origin.url("/f"), "-o".into(), "out".into()];
        all.extend(args.iter().map(|s| s.to_string()));
        let all: Vec<&str> = all.iter().map(String::as_str).collect();
        let run = fetchpool_env(tmp.path(), &all, None, &env);
        assert_eq!(run.code, 0, "{args:?}: {}", run.stderr);
    }
    assert_eq!(proxy.connections(), 0);
    assert_eq!(origin.hits("/f"), 2);
}

#[test]
fn unreachable_proxy_is_kind_proxy_and_never_falls_back_to_direct() {
    let origin = TestServer::start();
    origin.file("/f", b"x".to_vec());
    // Port 1 (tcpmux): nothing listens there on a test machine; the connection is refused.
    let dead_url = "http://127.0.0.1:1".to_string();
    let tmp = TempDir::new();
    let run = fetchpool(
        tmp.path(),
        &[
            &origin.url("/f"),
            "-o",
            "out",
            "--proxy",
            &dead_url,
            "--retries",
            "2",
        ],
        None,
    );
    assert_eq!(run.code, 1);
    let line = run.line(&origin.url("/f"));
    assert_eq!(line["status"], "failed");
    assert_eq!(line["error"]["kind"], "proxy");
    assert_eq!(line["attempts"], 1, "a proxy failure is not retried");
    assert!(
        line["error"]["message"]
            .as_str()
            .unwrap()
            .contains(&dead_url),
        "{line}"
    );
    assert_eq!(origin.connections(), 0);
}

#[test]
fn connect_refused_by_a_443_only_proxy_is_kind_proxy() {
    let ca = TestCa::new("ca");
    let plain = TestServer::start();
    plain.file("/f", b"x".to_vec());
    let front = TlsFront::start(&ca, Leaf::Valid, &plain);
    let proxy = TestProxy::start();
    proxy.connect_only_to(&[443]);
    let tmp = TempDir::new();
    let run = fetchpool(
        tmp.path(),
        &[&front.url("/f"), "-o", "out", "--proxy", &proxy.url()],
        None,
    );
    assert_eq!(run.code, 1);
    let line = run.line(&front.url("/f"));
    assert_eq!(line["error"]["kind"], "proxy");
    assert_eq!(line["attempts"], 1);
    assert_eq!(
        proxy.lines(),
        [format!("CONNECT {}", authority(front.port()))]
    );
    assert!(front.peers().is_empty());
}

#[test]
fn proxy_credentials_are_sent_and_never_shown() {
    let origin = TestServer::start();
    origin.file("/f", b"x".to_vec());
    let proxy = TestProxy::start();
    // "ann:hunter2" in base64.
    proxy.require_auth("Basic YW5uOmh1bnRlcjI=");
    let tmp = TempDir::new();
    let with_creds = format!("http://ann:hunter2@127.0.0.1:{}", proxy.port());
    let run = fetchpool(
        tmp.path(),
        &[
            &origin.url("/f"),
            "-o",
            "out",
            "--proxy",
            &with_creds,
            "-vv",
        ],
        None,
    );
    assert_eq!(run.code, 0, "stderr: {}", run.stderr);
    assert_eq!(
        proxy.requests()[0].auth.as_deref(),
        Some("Basic YW5uOmh1bnRlcjI=")
    );

    // A wrong password: 407 is the proxy's answer, kind proxy, password still hidden.
    let wrong = format!("http://ann:wrong-pw@127.0.0.1:{}", proxy.port());
    let run2 = fetchpool(
        tmp.path(),
        &[&origin.url("/f"), "-o", "out2", "--proxy", &wrong, "-vv"],
        None,
    );
    assert_eq!(run2.code, 1);
    let line = run2.line(&origin.url("/f"));
    assert_eq!(line["error"]["kind"], "proxy");
    assert!(
        line["error"]["message"]
            .as_str()
            .unwrap()
            .contains(&format!("http://ann:***@127.0.0.1:{}", proxy.port())),
        "{line}"
    );
    for out in [&run, &run2] {
        let everything = format!("{}{}{:?}", out.stdout, out.stderr, out.report);
        assert!(!everything.contains("hunter2"), "{everything}");
        assert!(!everything.contains("wrong-pw"), "{everything}");
    }
    assert_eq!(origin.hits("/f"), 1);
}

#[test]
fn invalid_proxy_url_is_a_configuration_error_before_any_request() {
    let origin = TestServer::start();
    let tmp = TempDir::new();
    let run = fetchpool(
        tmp.path(),
        &[&origin.url("/f"), "--proxy", "ftp://p:21"],
        None,
    );
    assert_eq!(run.code, 2);
    assert!(
        run.stderr.contains("unsupported proxy scheme 'ftp'"),
        "{}",
        run.stderr
    );
    let env = fetchpool_env(
        tmp.path(),
        &[&origin.url("/f")],
        None,
        &[("http_proxy", "http://u:pw@bad host:1")],
    );
    assert_eq!(env.code, 2);
    assert!(env.stderr.contains("http_proxy"), "{}", env.stderr);
    assert_eq!(origin.connections(), 0);
}

#[test]
fn socks5h_carries_both_hops_of_a_cross_host_redirect_with_credentials() {
    let (a, b) = two_hosts();
    let socks = SocksProxy::start();
    socks.require_auth("ann", "pw:1");
    let tmp = TempDir::new();
    let url = format!("socks5h://ann:pw%3A1@127.0.0.1:{}", socks.port());
    let run = fetchpool(
        tmp.path(),
        &[&a.url("/start"), "-o", "out", "--proxy", &url, "-vv"],
        None,
    );
    assert_eq!(run.code, 0, "stderr: {}", run.stderr);
    assert_eq!(std::fs::read(tmp.join("out/start")).unwrap(), b"from B");
    let targets: Vec<String> = socks.targets().into_iter().map(|(t, _)| t).collect();
    assert_eq!(targets, [authority(a.port()), authority(b.port())]);
    assert_eq!(
        socks.offered(),
        vec![("ann".to_string(), "pw:1".to_string()); 2]
    );
    for origin in [&a, &b] {
        assert_eq!(
            sorted(origin.peers()),
            sorted(socks.upstream_addrs(&authority(origin.port())))
        );
    }
    assert!(!run.stderr.contains("pw:1") && !run.stderr.contains("pw%3A1"));
}

#[test]
fn socks_proxy_refusing_credentials_is_kind_proxy() {
    let origin = TestServer::start();
    origin.file("/f", b"x".to_vec());
    let socks = SocksProxy::start();
    socks.require_auth("ann", "right");
    let tmp = TempDir::new();
    let url = format!("socks5://ann:wrong@127.0.0.1:{}", socks.port());
    let run = fetchpool(
        tmp.path(),
        &[&origin.url("/f"), "-o", "out", "--proxy", &url],
        None,
    );
    assert_eq!(run.code, 1);
    let line = run.line(&origin.url("/f"));
    assert_eq!(line["error"]["kind"], "proxy", "{line}");
    assert!(!format!("{line}").contains("wrong"), "{line}");
    assert_eq!(origin.connections(), 0);
}

#[test]
fn library_pool_with_a_proxy_sends_every_hop_through_it() {
    let (a, b) = two_hosts();
    let proxy = TestProxy::start();
    let tmp = TempDir::new();
    let pool = fetchpool::Pool::builder()
        .workers(2)
        .output_dir(tmp.path())
        .proxy(proxy.url())
        .build()
        .unwrap();
    let report = pool
        .run(vec![fetchpool::Job::new(a.url("/start")).to_memory()])
        .unwrap();
    let outcome = &report.outcomes[0];
    assert_eq!(outcome.status, fetchpool::Status::Ok, "{:?}", outcome.error);
    assert_eq!(outcome.body.as_deref(), Some(&b"from B"[..]));
    assert_eq!(outcome.redirects, [b.url("/file")]);
    assert_eq!(proxy.requests().len(), 2);
    assert_only_proxy_connected(&proxy, &[&a, &b]);
}
