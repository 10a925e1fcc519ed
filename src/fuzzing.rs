//! Internal functions exposed to the fuzz targets in `tests/fuzz`, and only to them.
//!
//! Compiled only with the `fuzzing` feature, which nothing but the fuzz crate turns on,
//! and hidden from the docs: these are not part of the library's API and change without
//! notice. Each function is a thin wrapper over the crate-private one it names, so the
//! fuzz targets exercise exactly the code a run uses.

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::config::Config;
use crate::error::Error;

/// The URI type the URL check parses with (ureq's `http::Uri`).
pub use ureq::http::Uri;

pub use crate::job::file_name_for;
pub use crate::net::http_date::{format_http_date, parse_http_date, parse_retry_after};
pub use crate::shard::shard_of;

/// [`crate::job`]'s URL check: absolute http(s) with a host.
pub fn check_url(url: &str) -> Result<(), Error> {
    crate::job::check_url(url)
}

/// [`crate::job`]'s output-path check: relative, never climbing out of the output dir.
pub fn check_relative_path(path: &Path) -> Result<(), Error> {
    crate::job::check_relative_path(path)
}

/// The normalized form of a relative path, as the plan compares paths.
pub fn normalize(path: &Path) -> PathBuf {
    crate::job::normalize(path)
}

/// `scheme://host:port`, the key per-host limits are counted under.
pub fn host_key(url: &str) -> String {
    crate::url::host_key(url)
}

/// Resolves a `Location` value against the URL it came from.
pub fn resolve(base: &str, reference: &str) -> String {
    crate::fetch::redirect::resolve(base, reference)
}

/// The redirect check a worker applies to each `Location`: the next URL, or the error
/// the job fails with. `seen` holds the URLs visited since `start`.
pub fn follow(
    cfg: &Config,
    from: &str,
    location: &str,
    start: &str,
    seen: &[String],
) -> Result<String, Error> {
    crate::fetch::redirect::follow(cfg, from, location, start, seen)
}

/// A parsed `Content-Range` value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ContentRange {
    /// `bytes START-END/TOTAL` (`TOTAL` is `None` for `*`).
    Bytes {
        /// First byte position.
        start: u64,
        /// Last byte position, inclusive.
        end: u64,
        /// The complete length, when given.
        total: Option<u64>,
    },
    /// `bytes */TOTAL`.
    Unsatisfied {
        /// The complete length.
        total: u64,
    },
}

/// Parses a `Content-Range` value as a resumed download reads it.
pub fn parse_content_range(value: &str) -> Option<ContentRange> {
    use crate::output::sidecar::ContentRange as C;
    crate::output::sidecar::parse_content_range(value).map(|c| match c {
        C::Bytes { start, end, total } => ContentRange::Bytes { start, end, total },
        C::Unsatisfied { total } => ContentRange::Unsatisfied { total },
    })
}

/// What a resumed download does with a response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RangeAnswer {
    /// Write the body from zero.
    Fresh,
    /// Append to the part from this offset.
    Continue(u64),
    /// The part is already whole at this length.
    Complete(u64),
    /// Drop the part and ask again without a range.
    Restart,
}

/// The validator the sidecar of [`judge_range`] records: a response of the same version
/// carries it as its `ETag`.
pub const SIDECAR_ETAG: &str = "\"v\"";

/// Judges a response (`status`, its headers as name/value pairs) to a request that
/// resumed at `offset` with a recorded `total` and the validator [`SIDECAR_ETAG`] (or to
/// a plain request when `offset` is `None`).
pub fn judge_range(
    offset: Option<u64>,
    total: Option<u64>,
    status: u16,
    headers: &[(&str, &[u8])],
) -> RangeAnswer {
    use crate::output::sidecar::{RangeAnswer as R, ResumePoint, Sidecar};
    let resume = offset.map(|offset| ResumePoint {
        offset,
        sidecar: Sidecar {
            url: String::new(),
            validator: SIDECAR_ETAG.into(),
            total,
        },
    });
    match crate::output::sidecar::judge(resume.as_ref(), status, &header_map(headers)) {
        R::Fresh => RangeAnswer::Fresh,
        R::Continue(n) => RangeAnswer::Continue(n),
        R::Complete(n) => RangeAnswer::Complete(n),
        R::Restart => RangeAnswer::Restart,
    }
}

/// The `If-Range` validator a response offers: a strong `ETag`, else `Last-Modified`.
pub fn range_validator(headers: &[(&str, &[u8])]) -> Option<String> {
    crate::output::validators::range_validator(&header_map(headers))
}

/// The request headers a resume from `offset` with `validator` sends.
pub fn resume_headers(offset: u64, validator: &str) -> Vec<(String, String)> {
    use crate::output::sidecar::{Prepared, ResumePoint, Sidecar};
    Prepared {
        resume: Some(ResumePoint {
            offset,
            sidecar: Sidecar {
                url: String::new(),
                validator: validator.to_string(),
                total: None,
            },
        }),
        ..Prepared::default()
    }
    .headers()
}

/// The backoff before the attempt after `attempt`, with jitter seeded by `seed`.
pub fn retry_delay(
    cfg: &Config,
    attempt: u32,
    retry_after: Option<Duration>,
    seed: u64,
) -> Duration {
    crate::pool::retry::delay(
        cfg,
        attempt,
        retry_after,
        &mut crate::pool::retry::Jitter(seed | 1),
    )
}

/// A header map of the pairs that make valid names and values; others are left out, as
/// an HTTP parser would refuse them.
fn header_map(headers: &[(&str, &[u8])]) -> ureq::http::HeaderMap {
    use ureq::http::header::{HeaderName, HeaderValue};
    let mut map = ureq::http::HeaderMap::new();
    for (name, value) in headers {
        if let (Ok(n), Ok(v)) = (
            HeaderName::from_bytes(name.as_bytes()),
            HeaderValue::from_bytes(value),
        ) {
            map.append(n, v);
        }
    }
    map
}
