//! Shared test support: an in-process HTTP/1.1 server that misbehaves on purpose, plus small
//! helpers (deterministic data, hashing, temporary directories, waiting on conditions).
//!
//! The server is std-only (a `TcpListener`, an accept thread, one thread per connection) so
//! integration tests exercise fetchpool over real sockets without any external process. It can
//! serve files with validators and ranges ([`TestServer::file`]), run arbitrary handlers
//! ([`TestServer::route`]), and produce the failures a downloader must survive: slow first
//! bytes, stalls, resets, short bodies, drips, garbage, huge heads, silence, stale keep-alive
//! connections ([`Reply`]). It counts connections and logs every request with its timing, so
//! tests can assert on connection reuse, headers sent and concurrency reached.
//!
//! Beside it: a forward proxy ([`proxy::TestProxy`], absolute form and `CONNECT`) and a
//! SOCKS5 proxy ([`socks::SocksProxy`]) that log what they carry, and a TLS front with a CA made at test time ([`tls::TlsFront`]).
//!
//! Each test binary uses a subset of this module, hence the blanket `dead_code` allowance.

#![allow(dead_code)]

pub mod cli;
mod helpers;
pub mod proxy;
mod relay;
mod reply;
mod request;
mod resource;
mod server;
pub mod socks;
pub mod tls;

// Re-exports are the module's API; a test binary that skips some would warn without this.
#[allow(unused_imports)]
pub use helpers::{TempDir, random_bytes, sha256_hex, wait_until};
#[allow(unused_imports)]
pub use reply::Reply;
#[allow(unused_imports)]
pub use request::{Request, RequestLog};
#[allow(unused_imports)]
pub use resource::{Resource, http_date, parse_http_date};
#[allow(unused_imports)]
pub use server::TestServer;
