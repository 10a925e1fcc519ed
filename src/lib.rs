//! fetchpool: bulk HTTP downloads and request runs on a fixed pool of threads.
//!
//! A scheduler thread hands jobs to `N` worker threads over bounded crossbeam channels;
//! each worker makes blocking requests with one shared [`ureq::Agent`], reusing keep-alive
//! connections the way a set of curl threads would. There is no async runtime.
//!
//! Every job ends `ok`, `skipped`, `failed` (with an [`ErrorKind`]) or `cancelled`.
//! Bodies stream into `PATH.part` while their sha256 is computed, and only a complete,
//! verified file is renamed to `PATH`.
//!
//! ```no_run
//! use fetchpool::{Job, Pool};
//!
//! let pool = Pool::builder().workers(8).output_dir("downloads").build()?;
//! let report = pool.run(vec![
//!     Job::new("http://127.0.0.1:8080/a.bin").sha256(
//!         "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"),
//!     Job::new("http://127.0.0.1:8080/api/items").to_memory(),
//! ])?;
//! for outcome in &report.outcomes {
//!     println!("{} {} {:?}", outcome.status, outcome.url, outcome.error);
//! }
//! # Ok::<(), fetchpool::Error>(())
//! ```
//!
//! # The ways in
//!
//! - [`Pool::run`]: a list in, a [`Report`] out; the list is checked first
//!   ([`Pool::check`]) and refused whole before any request.
//! - [`Pool::run_with`] / [`Pool::run_with_owned`]: a streamed list, an observer called
//!   with every [`Event`] on your thread, follow-up jobs through its [`Submitter`].
//! - [`Pool::start`]: a [`Session`] to submit to from any thread and read events from:
//!   blocking, [`Session::try_next_event`], [`Session::next_event_timeout`], or
//!   [`Session::events`] in a `select!`. [`Session::cancel`] stops it whatever submitters
//!   live; [`Session::shutdown`] drains it; [`Session::cancel_job`] ends one job.
//! - [`Pool::fetch`]: one request on the calling thread, retries included.
//!
//! # Per job
//!
//! A [`Job`] may carry its own limits ([`Job::max_time`], [`Job::idle_timeout`],
//! [`Job::retries`]), ask for response headers ([`Job::keep_headers`], or
//! [`PoolBuilder::keep_headers`] for all), and carry any value to its outcome
//! ([`Job::context`]). Its [`Outcome`] has the headers ([`Outcome::header`]), the
//! [`final URL`](Outcome::final_url), the bytes received (kept in `PATH.part` when it did
//! not finish), the body ([`Outcome::json`], [`Outcome::text`],
//! [`Outcome::take_body`]) and the context ([`Outcome::context`]).
//!
//! # What is written
//!
//! File jobs write under [`PoolBuilder::output_dir`]: `PATH.part` (and, for a large body,
//! a resume sidecar) while a body arrives, `PATH` once verified, and `.fetchpool/lock`
//! while a run holds the directory. The validator store (for conditional requests on the next run) lives in
//! `.fetchpool/validators` unless [`PoolBuilder::state_dir`] moves it or turns it off.
#![forbid(unsafe_code)]
#![deny(missing_docs)]

mod checksum;
mod config;
mod error;
mod event;
mod fetch;
#[cfg(feature = "fuzzing")]
#[doc(hidden)]
pub mod fuzzing;
mod job;
mod lock;
mod manifest;
mod net;
mod output;
mod plan;
mod pool;
pub mod redact;
mod report;
mod shard;
mod sums;
mod units;
mod url;

/// The channel crate whose [`Receiver`](crossbeam_channel::Receiver) [`Session::events`]
/// returns, re-exported so that a caller's `select!` uses the same version.
pub use crossbeam_channel;

pub use checksum::{Algorithm, Checksum, DigestSource, ParseChecksumError, Verified};
pub use config::{Config, PoolBuilder};
pub use error::{Error, ErrorKind, RedirectReason, Setting, TimeoutPhase, TlsReason};
pub use event::Event;
pub use job::{Destination, Job, JobId, Naming, Origin, check_header};
pub use lock::OutputLock;
pub use manifest::ManifestReader;
pub use net::proxy;
pub use output::check::{Problem, Verification, count_verified, verify};
pub use output::extraneous::Extraneous;
pub use plan::{Namer, Names, Plan, PlanChecker};
pub use pool::{CancelHandle, Pool, Session, Submitter};
pub use report::{Outcome, Report, Status, Summary};
pub use shard::Shard;
pub use sums::checksum_file_line;
pub use units::{parse_rate, parse_size};
pub use url::resource_key;

/// The README's Rust examples, compiled as doctests so that they cannot rot.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
