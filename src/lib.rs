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
pub use net::ratelimit::parse_rate;
pub use output::check::{Problem, Verification, count_verified, verify};
pub use output::extraneous::Extraneous;
pub use plan::{Namer, Names, Plan, PlanChecker};
pub use pool::{CancelHandle, Pool, Session, Submitter};
pub use report::{Outcome, Report, Status, Summary};
pub use shard::Shard;
pub use sums::checksum_file_line;
pub use url::resource_key;

/// The README's Rust examples, compiled as doctests so that they cannot rot.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
