//! The loopback HTTP/1.1 server: accept thread, one thread per connection, keep-alive, routing,
//! and the bookkeeping tests assert on (connections, request log, hits, concurrency).

use std::collections::HashMap;
use std::io::{BufReader, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use super::reply::{After, Kind, Reply};
use super::request::{Request, RequestLog, find_header, read_body, read_head, route_key};
use super::resource::Resource;

type Handler = Arc<dyn Fn(&Request) -> Reply + Send + Sync + 'static>;

/// An in-process HTTP/1.1 server on `127.0.0.1` and a random port.
///
/// Routes are matched on the path without its query; unrouted paths go to the fallback handler
/// if one is set, else answer 404. Every method takes `&self`, so routes can change while
/// clients run. Dropping the server stops accepting, closes open connections and ends
/// deliberate stalls and hangs.
///
/// ```ignore
/// let server = TestServer::start();
/// server.file("/a.bin", random_bytes(1, 1000));
/// server.route("/flaky", |req| if req.hit == 1 { Reply::status(503) } else { Reply::ok("ok") });
/// // ... run the client against server.url("/a.bin") ...
/// assert_eq!(server.hits("/flaky"), 2);
/// ```
pub struct TestServer {
    addr: SocketAddr,
    shared: Arc<Shared>,
    acceptor: Option<JoinHandle<()>>,
}

struct Shared {
    stop: Stopper,
    routes: Mutex<HashMap<String, Handler>>,
    fallback: Mutex<Option<Handler>>,
    connections: AtomicUsize,
    /// Body bytes written to sockets so far (heads and chunk framing not counted).
    body_bytes: AtomicU64,
    /// The client address of every accepted connection, in accept order.
    peers: Mutex<Vec<SocketAddr>>,
    close_every: AtomicUsize,
    panics: AtomicUsize,
    log: Mutex<Vec<RequestLog>>,
    hits: Mutex<HashMap<String, usize>>,
    /// In-flight and peak counts for every prefix of every path seen, updated as requests start
    /// and finish, so any prefix can be asked about afterwards.
    flight: Mutex<HashMap<String, (usize, usize)>>,
    /// Clones of open connections, so dropping the server can shut them down.
    open: Mutex<HashMap<usize, TcpStream>>,
}

impl TestServer {
    /// Binds `127.0.0.1:0` and starts accepting.
    pub fn start() -> TestServer {
        TestServer::start_on(0)
    }

    /// Binds `127.0.0.1:port` and starts accepting: a server that comes back on the
    /// port an earlier one left (a restart).
    pub fn start_on(port: u16) -> TestServer {
        let listener = TcpListener::bind(("127.0.0.1", port)).expect("bind test server");
        let addr = listener.local_addr().expect("test server address");
        let shared = Arc::new(Shared {
            stop: Stopper::default(),
            routes: Mutex::default(),
            fallback: Mutex::default(),
            connections: AtomicUsize::new(0),
            body_bytes: AtomicU64::new(0),
            peers: Mutex::default(),
            close_every: AtomicUsize::new(0),
            panics: AtomicUsize::new(0),
            log: Mutex::default(),
            hits: Mutex::default(),
            flight: Mutex::default(),
            open: Mutex::default(),
        });
        let acceptor = {
            let shared = shared.clone();
            thread::Builder::new()
                .name(format!("testserver-{}", addr.port()))
                .spawn(move || accept_loop(listener, shared))
                .expect("spawn accept thread")
        };
        TestServer {
            addr,
            shared,
            acceptor: Some(acceptor),
        }
    }

    /// The bound address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The bound port.
    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// `http://127.0.0.1:PORT/path` (a missing leading `/` is added).
    pub fn url(&self, path: &str) -> String {
        let slash = if path.starts_with('/') { "" } else { "/" };
        format!("http://{}{slash}{path}", self.addr)
    }

    /// Routes `path` (query ignored) to `handler`, replacing any earlier route or file there.
    pub fn route(&self, path: &str, handler: impl Fn(&Request) -> Reply + Send + Sync + 'static) {
        lock(&self.shared.routes).insert(route_key(path).to_owned(), Arc::new(handler));
    }

    /// Answers every unrouted path with `handler` instead of 404.
    pub fn fallback(&self, handler: impl Fn(&Request) -> Reply + Send + Sync + 'static) {
        *lock(&self.shared.fallback) = Some(Arc::new(handler));
    }

    /// Serves `body` at `path` as a static file with default validators and range support
    /// (see [`Resource`]); calling it again replaces the content. Returns the resource so
    /// tests can read its `ETag` and `Last-Modified`.
    pub fn file(&self, path: &str, body: impl Into<Arc<[u8]>>) -> Resource {
        let res = Resource::new(body);
        self.serve(path, res.clone());
        res
    }

    /// Serves a prepared resource at `path` (for custom validators or no range support).
    pub fn serve(&self, path: &str, res: Resource) {
        self.route(path, move |req| Reply::file(req, &res));
    }

    /// Closes every `n`th accepted connection right after its first response, without a
    /// `Connection: close` header: the stale keep-alive connection a client finds in its pool.
    /// `0` (the default) turns this off.
    pub fn close_every(&self, n: usize) {
        self.shared.close_every.store(n, Ordering::SeqCst);
    }

    /// Body bytes written to client sockets so far, over every request (response heads
    /// and chunk framing not counted): what a client cost the server.
    pub fn body_bytes_sent(&self) -> u64 {
        self.shared.body_bytes.load(Ordering::Relaxed)
    }

    /// TCP connections accepted so far.
    pub fn connections(&self) -> usize {
        self.shared.connections.load(Ordering::SeqCst)
    }

    /// The client address of every connection accepted so far, in accept order (to prove
    /// that only a proxy connected).
    pub fn peers(&self) -> Vec<SocketAddr> {
        lock(&self.shared.peers).clone()
    }

    /// Every request whose head was read so far, in arrival order.
    pub fn requests(&self) -> Vec<RequestLog> {
        lock(&self.shared.log).clone()
    }

    /// Requests to `path` (query ignored) so far.
    pub fn hits(&self, path: &str) -> usize {
        lock(&self.shared.hits)
            .get(route_key(path))
            .copied()
            .unwrap_or(0)
    }

    /// Peak number of requests whose path (query included) starts with `prefix` that were being
    /// handled at the same time: from head read to response written or connection cut.
    pub fn max_concurrent(&self, prefix: &str) -> usize {
        lock(&self.shared.flight)
            .get(prefix)
            .map_or(0, |&(_, peak)| peak)
    }

    /// Requests whose path starts with `prefix` being handled right now.
    pub fn in_flight(&self, prefix: &str) -> usize {
        lock(&self.shared.flight)
            .get(prefix)
            .map_or(0, |&(now, _)| now)
    }

    /// Handler panics so far (each one closed its connection).
    pub fn handler_panics(&self) -> usize {
        self.shared.panics.load(Ordering::SeqCst)
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.shared.stop.0.store(true, Ordering::SeqCst);
        // The accept loop blocks in accept(); a connection of our own wakes it to see the flag.
        let _ = TcpStream::connect_timeout(&self.addr, Duration::from_secs(1));
        if let Some(acceptor) = self.acceptor.take() {
            let _ = acceptor.join();
        }
        for (_, stream) in lock(&self.shared.open).drain() {
            let _ = stream.shutdown(Shutdown::Both);
        }
    }
}

/// The server-wide stop flag, with a sleep that ends early when it is raised.
#[derive(Clone, Default)]
pub(crate) struct Stopper(Arc<AtomicBool>);

impl Stopper {
    pub fn stopped(&self) -> bool {
        self.0.load(Ordering::SeqCst)
    }

    /// Sleeps `total` in short slices; `false` if the server stopped meanwhile.
    pub fn nap(&self, total: Duration) -> bool {
        let end = Instant::now() + total;
        loop {
            if self.stopped() {
                return false;
            }
            let now = Instant::now();
            if now >= end {
                return true;
            }
            thread::sleep((end - now).min(Duration::from_millis(10)));
        }
    }
}

fn accept_loop(listener: TcpListener, shared: Arc<Shared>) {
    for stream in listener.incoming() {
        if shared.stop.stopped() {
            return;
        }
        let Ok(stream) = stream else { continue };
        let conn = shared.connections.fetch_add(1, Ordering::SeqCst) + 1;
        if let Ok(peer) = stream.peer_addr() {
            lock(&shared.peers).push(peer);
        }
        let _ = stream.set_nodelay(true);
        if let Ok(clone) = stream.try_clone() {
            lock(&shared.open).insert(conn, clone);
        }
        let shared = shared.clone();
        // Connection threads are detached: they end when the peer closes or the server drops.
        let spawned = thread::Builder::new()
            .name(format!("testserver-conn-{conn}"))
            .spawn(move || serve_connection(&shared, stream, conn));
        if spawned.is_err() {
            eprintln!("test server: could not spawn a thread for connection {conn}");
        }
    }
}

fn serve_connection(shared: &Arc<Shared>, stream: TcpStream, conn: usize) {
    let Ok(read_half) = stream.try_clone() else {
        return;
    };
    let mut reader = BufReader::new(read_half);
    let mut writer = stream;
    let mut responses = 0usize;
    let graceful = loop {
        let Ok(Some(head)) = read_head(&mut reader) else {
            break false;
        };
        let hit = {
            let mut hits = lock(&shared.hits);
            let n = hits.entry(route_key(&head.path).to_owned()).or_insert(0);
            *n += 1;
            *n
        };
        let flight = Flight::begin(shared, &head.path, conn, &head.method, &head.headers);

        if find_header(&head.headers, "expect")
            .is_some_and(|e| e.eq_ignore_ascii_case("100-continue"))
            && writer.write_all(b"HTTP/1.1 100 Continue\r\n\r\n").is_err()
        {
            break false;
        }
        let Ok(body) = read_body(&mut reader, &head) else {
            break false;
        };
        lock(&shared.log)[flight.index].body = body.clone();
        let client_close = head.wants_close();
        let req = Request {
            method: head.method,
            path: head.path,
            version: head.version,
            headers: head.headers,
            body,
            hit,
            conn,
        };

        let handler = lock(&shared.routes)
            .get(req.path_only())
            .cloned()
            .or_else(|| lock(&shared.fallback).clone());
        let reply = match handler {
            Some(handler) => match catch_unwind(AssertUnwindSafe(|| handler(&req))) {
                Ok(reply) => reply,
                Err(_) => {
                    shared.panics.fetch_add(1, Ordering::SeqCst);
                    break false;
                }
            },
            None => Reply::status(404).body("no route\n"),
        };
        if reply.kind == Kind::Normal {
            lock(&shared.log)[flight.index].status = Some(reply.status);
        }
        let after = reply.write_to(&mut writer, &req, &shared.stop, &shared.body_bytes);
        drop(flight);
        responses += 1;

        let every = shared.close_every.load(Ordering::SeqCst);
        let stale = every > 0 && conn.is_multiple_of(every) && responses == 1;
        match after {
            Ok(After::KeepAlive) if !client_close && !stale && !shared.stop.stopped() => {}
            Ok(_) => break true,
            Err(_) => break false,
        }
    };
    let _ = writer.shutdown(if graceful {
        Shutdown::Write
    } else {
        Shutdown::Both
    });
    lock(&shared.open).remove(&conn);
}

/// One request's stay in the in-flight counts and its log entry's `finished` time; dropping it
/// (also while unwinding) ends both.
struct Flight<'a> {
    shared: &'a Shared,
    path: String,
    index: usize,
}

impl<'a> Flight<'a> {
    fn begin(
        shared: &'a Shared,
        path: &str,
        conn: usize,
        method: &str,
        headers: &[(String, String)],
    ) -> Flight<'a> {
        let index = {
            let mut log = lock(&shared.log);
            log.push(RequestLog {
                method: method.to_owned(),
                path: path.to_owned(),
                headers: headers.to_vec(),
                body: Vec::new(),
                conn,
                started: Instant::now(),
                finished: None,
                status: None,
            });
            log.len() - 1
        };
        let mut flight = lock(&shared.flight);
        for prefix in prefixes(path) {
            match flight.get_mut(prefix) {
                Some((now, peak)) => {
                    *now += 1;
                    *peak = (*peak).max(*now);
                }
                None => {
                    flight.insert(prefix.to_owned(), (1, 1));
                }
            }
        }
        Flight {
            shared,
            path: path.to_owned(),
            index,
        }
    }
}

impl Drop for Flight<'_> {
    fn drop(&mut self) {
        let mut flight = lock(&self.shared.flight);
        for prefix in prefixes(&self.path) {
            if let Some((now, _)) = flight.get_mut(prefix) {
                *now -= 1;
            }
        }
        drop(flight);
        lock(&self.shared.log)[self.index].finished = Some(Instant::now());
    }
}

/// Every prefix of `path` at a character boundary, from `""` to `path` itself.
fn prefixes(path: &str) -> impl Iterator<Item = &str> {
    path.char_indices()
        .map(move |(i, _)| &path[..i])
        .chain(std::iter::once(path))
}

/// Locks a mutex, ignoring poisoning: a panicking handler must not wedge the whole server.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}
