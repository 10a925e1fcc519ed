//! Proves the shared test server behaves as its documentation says, using raw `TcpStream`
//! requests so that no HTTP client's own behaviour hides a server bug.

mod support;

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread;
use std::time::{Duration, UNIX_EPOCH};

use support::{
    Reply, Resource, TempDir, TestServer, http_date, parse_http_date, random_bytes, sha256_hex,
    wait_until,
};

const WAIT: Duration = Duration::from_secs(5);

/// A response as read off the wire.
#[derive(Debug)]
struct Resp {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Resp {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// One client connection with a read timeout, so a server bug fails the test instead of
/// hanging it.
struct Client {
    reader: BufReader<TcpStream>,
}

impl Client {
    fn connect(server: &TestServer) -> Client {
        let stream = TcpStream::connect(server.addr()).unwrap();
        stream.set_read_timeout(Some(WAIT)).unwrap();
        Client {
            reader: BufReader::new(stream),
        }
    }

    fn send(&mut self, method: &str, path: &str, extra: &[(&str, &str)]) {
        let mut req = format!("{method} {path} HTTP/1.1\r\nHost: test\r\n");
        for (k, v) in extra {
            req.push_str(&format!("{k}: {v}\r\n"));
        }
        req.push_str("\r\n");
        self.reader.get_mut().write_all(req.as_bytes()).unwrap();
    }

    fn head(&mut self) -> Resp {
        let mut line = String::new();
        self.reader.read_line(&mut line).unwrap();
        let status = line.split_whitespace().nth(1).unwrap().parse().unwrap();
        let mut headers = Vec::new();
        loop {
            line.clear();
            self.reader.read_line(&mut line).unwrap();
            let text = line.trim_end();
            if text.is_empty() {
                break;
            }
            let (k, v) = text.split_once(':').unwrap();
            headers.push((k.trim().to_owned(), v.trim().to_owned()));
        }
        Resp {
            status,
            headers,
            body: Vec::new(),
        }
    }

    /// Reads a whole response, framed as HTTP/1.1 says (`HEAD` when `bodiless`).
    fn response(&mut self, bodiless: bool) -> Resp {
        let mut resp = self.head();
        if bodiless || matches!(resp.status, 204 | 304) {
            return resp;
        }
        if let Some(len) = resp.header("content-length") {
            resp.body = vec![0; len.parse().unwrap()];
            self.reader.read_exact(&mut resp.body).unwrap();
        } else if resp.header("transfer-encoding") == Some("chunked") {
            loop {
                let mut size = String::new();
                self.reader.read_line(&mut size).unwrap();
                let size = usize::from_str_radix(size.trim(), 16).unwrap();
                let mut chunk = vec![0; size + 2];
                self.reader.read_exact(&mut chunk).unwrap();
                if size == 0 {
                    break;
                }
                resp.body.extend_from_slice(&chunk[..size]);
            }
        } else {
            self.reader.read_to_end(&mut resp.body).unwrap();
        }
        resp
    }

    fn get(&mut self, path: &str, extra: &[(&str, &str)]) -> Resp {
        self.send("GET", path, extra);
        self.response(false)
    }

    /// Reads whatever arrives until the server closes the connection.
    fn rest(&mut self) -> io::Result<Vec<u8>> {
        let mut rest = Vec::new();
        self.reader.read_to_end(&mut rest)?;
        Ok(rest)
    }
}

#[test]
fn keep_alive_serves_two_requests_on_one_connection() {
    let server = TestServer::start();
    server.route("/a", |_| Reply::ok("first"));
    server.route("/b", |_| Reply::ok("second"));
    let mut client = Client::connect(&server);

    assert_eq!(client.get("/a", &[]).body, b"first");
    assert_eq!(client.get("/b?x=1", &[]).body, b"second");

    assert_eq!(server.connections(), 1);
    let log = server.requests();
    assert_eq!(log.len(), 2);
    assert_eq!((log[0].conn, log[1].conn), (1, 1));
    assert_eq!(log[1].path, "/b?x=1");
    assert_eq!(log[1].status, Some(200));
    assert!(wait_until(WAIT, || server.requests()[1].finished.is_some()));
}

#[test]
fn connection_close_from_the_client_is_honoured() {
    let server = TestServer::start();
    server.route("/", |_| Reply::ok("bye"));
    let mut client = Client::connect(&server);

    let resp = client.get("/", &[("Connection", "close")]);

    assert_eq!(resp.body, b"bye");
    assert_eq!(client.rest().unwrap(), b"");
}

#[test]
fn close_reply_adds_the_header_and_closes() {
    let server = TestServer::start();
    server.route("/", |_| Reply::ok("x").close());
    let mut client = Client::connect(&server);

    let resp = client.get("/", &[]);

    assert_eq!(resp.header("connection"), Some("close"));
    assert_eq!(client.rest().unwrap(), b"");
}

#[test]
fn unrouted_paths_answer_404_until_a_fallback_is_set() {
    let server = TestServer::start();
    let mut client = Client::connect(&server);
    assert_eq!(client.get("/nothing", &[]).status, 404);

    server.fallback(|req| Reply::ok(req.path.clone()));

    assert_eq!(client.get("/nothing?q", &[]).body, b"/nothing?q");
}

#[test]
fn file_serves_ranges_with_206_and_416() {
    let server = TestServer::start();
    let data = random_bytes(7, 100);
    server.file("/f", data.clone());
    let mut client = Client::connect(&server);

    let full = client.get("/f", &[]);
    assert_eq!((full.status, &full.body), (200, &data));
    assert_eq!(full.header("accept-ranges"), Some("bytes"));

    let mid = client.get("/f", &[("Range", "bytes=10-19")]);
    assert_eq!(mid.status, 206);
    assert_eq!(mid.header("content-range"), Some("bytes 10-19/100"));
    assert_eq!(mid.body, &data[10..20]);

    let tail = client.get("/f", &[("Range", "bytes=90-")]);
    assert_eq!(tail.header("content-range"), Some("bytes 90-99/100"));
    assert_eq!(tail.body, &data[90..]);

    let past = client.get("/f", &[("Range", "bytes=100-")]);
    assert_eq!(past.status, 416);
    assert_eq!(past.header("content-range"), Some("bytes */100"));
    assert!(past.body.is_empty());
    assert_eq!(server.connections(), 1);
}

#[test]
fn if_range_with_a_stale_validator_gets_the_whole_new_file() {
    let server = TestServer::start();
    let old = server.file("/f", random_bytes(1, 50));
    let new_data = random_bytes(2, 60);
    let new = server.file("/f", new_data.clone());
    assert_ne!(old.etag, new.etag);
    let mut client = Client::connect(&server);

    let stale_etag = old.etag.clone().unwrap();
    let resp = client.get("/f", &[("Range", "bytes=10-"), ("If-Range", &stale_etag)]);
    assert_eq!((resp.status, &resp.body), (200, &new_data));

    let stale_date = old.last_modified_header().unwrap();
    let resp = client.get("/f", &[("Range", "bytes=10-"), ("If-Range", &stale_date)]);
    assert_eq!(resp.status, 200);

    let fresh = new.etag.clone().unwrap();
    let resp = client.get("/f", &[("Range", "bytes=10-"), ("If-Range", &fresh)]);
    assert_eq!((resp.status, &resp.body[..]), (206, &new_data[10..]));
}

#[test]
fn matching_if_none_match_gets_304_and_the_connection_stays_usable() {
    let server = TestServer::start();
    let res = server.file("/f", &b"hello"[..]);
    let mut client = Client::connect(&server);
    let etag = client.get("/f", &[]).header("etag").unwrap().to_owned();
    assert_eq!(Some(&etag), res.etag.as_ref());

    let resp = client.get("/f", &[("If-None-Match", &etag)]);
    assert_eq!(resp.status, 304);
    assert_eq!(resp.header("etag"), Some(etag.as_str()));

    let resp = client.get("/f", &[("If-None-Match", "\"other\"")]);
    assert_eq!((resp.status, &resp.body[..]), (200, &b"hello"[..]));
    assert_eq!(server.connections(), 1);
}

#[test]
fn if_modified_since_gets_304_unless_the_file_is_newer() {
    let server = TestServer::start();
    let res = server.file("/f", &b"hello"[..]);
    let date = res.last_modified_header().unwrap();
    let mut client = Client::connect(&server);

    assert_eq!(
        client.get("/f", &[("If-Modified-Since", &date)]).status,
        304
    );
    let earlier = http_date(res.last_modified.unwrap() - Duration::from_secs(1));
    assert_eq!(
        client.get("/f", &[("If-Modified-Since", &earlier)]).status,
        200
    );
}

#[test]
fn a_file_without_range_support_always_sends_everything() {
    let server = TestServer::start();
    server.serve(
        "/f",
        Resource::new(&b"0123456789"[..]).no_ranges().no_etag(),
    );
    let mut client = Client::connect(&server);

    let resp = client.get("/f", &[("Range", "bytes=5-")]);

    assert_eq!((resp.status, &resp.body[..]), (200, &b"0123456789"[..]));
    assert_eq!(resp.header("etag"), None);
    assert_eq!(resp.header("accept-ranges"), None);
}

#[test]
fn head_sends_the_length_without_a_body() {
    let server = TestServer::start();
    server.file("/f", random_bytes(3, 1234));
    let mut client = Client::connect(&server);

    client.send("HEAD", "/f", &[]);
    let resp = client.response(true);

    assert_eq!(resp.header("content-length"), Some("1234"));
    assert_eq!(client.get("/f", &[]).body.len(), 1234);
}

#[test]
fn cut_after_sends_n_bytes_then_closes() {
    let server = TestServer::start();
    server.route("/", |_| Reply::ok(vec![b'x'; 100]).cut_after(10));
    let mut client = Client::connect(&server);

    client.send("GET", "/", &[]);
    let head = client.head();

    assert_eq!(head.header("content-length"), Some("100"));
    assert_eq!(client.rest().map(|b| b.len()).unwrap_or(0), 10);
}

#[test]
fn declared_len_promises_more_than_it_sends() {
    let server = TestServer::start();
    server.route("/", |_| Reply::ok(vec![b'x'; 20]).declared_len(50));
    let mut client = Client::connect(&server);

    client.send("GET", "/", &[]);
    let head = client.head();

    assert_eq!(head.header("content-length"), Some("50"));
    assert_eq!(client.rest().unwrap().len(), 20);
}

#[test]
fn stall_after_goes_silent_until_the_server_is_dropped() {
    let server = TestServer::start();
    server.route("/", |_| Reply::ok(vec![b'x'; 100]).stall_after(30));
    let mut client = Client::connect(&server);
    client.send("GET", "/", &[]);
    assert_eq!(client.head().header("content-length"), Some("100"));
    let mut got = vec![0; 30];
    client.reader.read_exact(&mut got).unwrap();
    client
        .reader
        .get_ref()
        .set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let mut more = [0u8; 1];
    let silent = client.reader.read(&mut more).unwrap_err().kind();
    assert!(matches!(
        silent,
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
    ));
    assert!(server.requests()[0].finished.is_none());

    drop(server);

    client
        .reader
        .get_ref()
        .set_read_timeout(Some(WAIT))
        .unwrap();
    assert_eq!(client.rest().map(|b| b.len()).unwrap_or(0), 0);
}

#[test]
fn hang_never_answers() {
    let server = TestServer::start();
    server.route("/", |_| Reply::hang());
    let mut client = Client::connect(&server);
    client
        .reader
        .get_ref()
        .set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    client.send("GET", "/", &[]);

    let mut byte = [0u8; 1];
    let err = client.reader.read(&mut byte).unwrap_err().kind();

    assert!(matches!(
        err,
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
    ));
    assert_eq!(server.in_flight("/"), 1);
}

#[test]
fn drip_and_chunked_deliver_the_whole_body() {
    let server = TestServer::start();
    let data = random_bytes(9, 1000);
    let body = data.clone();
    server.route("/", move |_| {
        Reply::ok(&body)
            .drip(300, Duration::from_millis(5))
            .chunked()
    });
    let mut client = Client::connect(&server);

    let resp = client.get("/", &[]);

    assert_eq!(resp.header("transfer-encoding"), Some("chunked"));
    assert_eq!(sha256_hex(&resp.body), sha256_hex(&data));
}

#[test]
fn raw_huge_header_and_redirect_replies() {
    let server = TestServer::start();
    server.route("/raw", |_| Reply::raw("NOT HTTP\r\n"));
    server.route("/huge", |_| Reply::huge_header(1 << 20));
    server.route("/moved", |_| Reply::redirect(302, "/raw"));

    let mut client = Client::connect(&server);
    client.send("GET", "/raw", &[]);
    assert_eq!(client.rest().unwrap(), b"NOT HTTP\r\n");

    let mut client = Client::connect(&server);
    let resp = client.get("/huge", &[]);
    let head_len: usize = resp
        .headers
        .iter()
        .map(|(k, v)| k.len() + v.len() + 4)
        .sum();
    assert!(head_len >= 1 << 20, "head was {head_len} bytes");

    let resp = client.get("/moved", &[]);
    assert_eq!((resp.status, resp.header("location")), (302, Some("/raw")));
}

#[test]
fn hit_counter_lets_a_handler_fail_first_then_succeed() {
    let server = TestServer::start();
    server.route("/flaky", |req| {
        if req.hit == 1 {
            Reply::status(503).header("Retry-After", "1")
        } else {
            Reply::ok("ok")
        }
    });
    let mut client = Client::connect(&server);

    let first = client.get("/flaky", &[]);
    let second = client.get("/flaky?again", &[]);

    assert_eq!(
        (first.status, first.header("retry-after")),
        (503, Some("1"))
    );
    assert_eq!(second.status, 200);
    assert_eq!(server.hits("/flaky"), 2);
    assert_eq!(server.hits("/other"), 0);
}

#[test]
fn max_concurrent_counts_requests_handled_at_once() {
    let server = Arc::new(TestServer::start());
    let entered = Arc::new(AtomicUsize::new(0));
    let gate = entered.clone();
    server.route("/slow/x", move |_| {
        gate.fetch_add(1, Ordering::SeqCst);
        // Hold every request until all three are inside, so they overlap for certain.
        wait_until(WAIT, || gate.load(Ordering::SeqCst) >= 3);
        Reply::ok("done")
    });
    server.route("/fast", |_| Reply::ok("done"));

    let clients: Vec<_> = (0..3)
        .map(|_| {
            let server = server.clone();
            thread::spawn(move || Client::connect(&server).get("/slow/x", &[]).status)
        })
        .collect();
    for c in clients {
        assert_eq!(c.join().unwrap(), 200);
    }
    let mut client = Client::connect(&server);
    client.get("/fast", &[]);
    client.get("/slow/x", &[]);

    assert!(wait_until(WAIT, || server.in_flight("/") == 0));
    assert_eq!(server.max_concurrent("/slow"), 3);
    assert_eq!(server.max_concurrent("/slow/x"), 3);
    assert_eq!(server.max_concurrent("/fast"), 1);
    assert_eq!(server.max_concurrent("/none"), 0);
    assert_eq!(server.connections(), 4);
}

#[test]
fn close_every_drops_that_connection_after_one_response_without_warning() {
    let server = TestServer::start();
    server.route("/", |_| Reply::ok("x"));
    server.close_every(2);

    let mut first = Client::connect(&server);
    let mut second = Client::connect(&server);
    assert_eq!(first.get("/", &[]).status, 200);
    let resp = second.get("/", &[]);

    assert_eq!(resp.header("connection"), None);
    assert_eq!(second.rest().unwrap(), b"");
    assert_eq!(first.get("/", &[]).status, 200);
}

#[test]
fn a_panicking_handler_closes_only_its_connection() {
    let server = TestServer::start();
    server.route("/boom", |_| panic!("handler panic on purpose"));
    server.route("/ok", |_| Reply::ok("fine"));

    let mut client = Client::connect(&server);
    client.send("GET", "/boom", &[]);
    assert_eq!(client.rest().map(|b| b.len()).unwrap_or(0), 0);

    assert_eq!(Client::connect(&server).get("/ok", &[]).body, b"fine");
    assert_eq!(server.handler_panics(), 1);
    assert!(wait_until(WAIT, || server.in_flight("/boom") == 0));
}

#[test]
fn request_log_keeps_method_headers_body_and_timing() {
    let server = TestServer::start();
    server.route("/echo", |req| Reply::ok(&req.body));
    let mut client = Client::connect(&server);

    let body = "payload";
    let len = body.len().to_string();
    client.send(
        "POST",
        "/echo",
        &[("Content-Length", &len), ("X-Probe", "42")],
    );
    client.reader.get_mut().write_all(body.as_bytes()).unwrap();
    assert_eq!(client.response(false).body, b"payload");

    assert!(wait_until(WAIT, || server.requests()[0].finished.is_some()));
    let log = &server.requests()[0];
    assert_eq!((log.method.as_str(), log.path.as_str()), ("POST", "/echo"));
    assert_eq!(log.header("x-probe"), Some("42"));
    assert_eq!(log.body, b"payload");
    assert!(log.finished.unwrap() >= log.started);
}

#[test]
fn helpers_are_deterministic() {
    assert_eq!(random_bytes(5, 64), random_bytes(5, 64));
    assert_ne!(random_bytes(5, 64), random_bytes(6, 64));
    assert_eq!(random_bytes(5, 10), random_bytes(5, 64)[..10]);
    assert_eq!(
        sha256_hex(b"abc"),
        "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    );

    let date = "Sun, 06 Nov 1994 08:49:37 GMT";
    let parsed = parse_http_date(date).unwrap();
    assert_eq!(parsed, UNIX_EPOCH + Duration::from_secs(784_111_777));
    assert_eq!(http_date(parsed), date);

    let dir = TempDir::new();
    let path = dir.path().to_owned();
    std::fs::write(dir.join("f"), b"x").unwrap();
    drop(dir);
    assert!(!path.exists());
}
