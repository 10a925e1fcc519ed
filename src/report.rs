//! Outcomes and summaries: how every job ended, as values and as JSON.
//!
//! An [`Outcome`] is one job's end; [`Outcome::to_json`] is one line of a report.
//! A [`Summary`] counts outcomes without keeping them, so a run of a million jobs costs
//! the same memory as a run of ten.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use serde_json::{Value, json};

use crate::checksum::Verified;
use crate::error::{Error, ErrorKind};
use crate::job::{Context, Destination, Job, JobId};
use crate::redact;

/// How a job ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Status {
    /// Downloaded and verified.
    Ok,
    /// Already up to date; nothing was written.
    Skipped,
    /// Failed; the outcome's error says why.
    Failed,
    /// Never finished: its session or the job was cancelled, a fail-fast stop, or a
    /// dependency failed.
    Cancelled,
}

impl Status {
    /// The name written in reports: `ok`, `skipped`, `failed`, `cancelled`.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Ok => "ok",
            Status::Skipped => "skipped",
            Status::Failed => "failed",
            Status::Cancelled => "cancelled",
        }
    }

    /// The status a report names (`"ok"` → [`Status::Ok`]), for reading reports back;
    /// `None` for any other word.
    pub fn from_name(name: &str) -> Option<Status> {
        [
            Status::Ok,
            Status::Skipped,
            Status::Failed,
            Status::Cancelled,
        ]
        .into_iter()
        .find(|s| s.as_str() == name)
    }

    /// Whether the job's result is usable (ok or skipped).
    pub fn is_success(self) -> bool {
        matches!(self, Status::Ok | Status::Skipped)
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How one job ended, with everything a report line says.
#[derive(Clone)]
#[non_exhaustive]
pub struct Outcome {
    /// The job's handle in this run: what submitting it returned, and the `id` of its
    /// events.
    pub id: JobId,
    /// The id the job was given for dependencies ([`Job::id`]), when it has one.
    pub job_id: Option<String>,
    /// The URL the job asked for (before redirects).
    pub url: String,
    /// The destination, relative to the output directory; `None` for memory jobs.
    pub path: Option<PathBuf>,
    /// How it ended.
    pub status: Status,
    /// The status of the last response received, if any.
    pub http_status: Option<u16>,
    /// Bytes in the final file or buffer; for a file job that failed or was cancelled,
    /// the bytes its attempts kept in `PATH.part` for a resume (0 when none were kept; a
    /// job that never started reports 0 even if an earlier run left a part); for a memory
    /// job that failed or was cancelled, the bytes its last attempt received.
    pub bytes: u64,
    /// The sha256 of the whole body, lowercase hex, when it was received.
    pub sha256: Option<String>,
    /// What the file or body was verified with, and against what (the job's checksum, a
    /// digest the server announced); `None` when nothing was compared.
    pub verified: Option<Verified>,
    /// Attempts made, the first included; 0 when the job never started.
    pub attempts: u32,
    /// Time from the job's first start to its end (queue time excluded).
    pub elapsed: Duration,
    /// Where the last attempt resumed a partial download, in bytes.
    pub resumed_from: Option<u64>,
    /// The URLs of every redirect hop, in order.
    pub redirects: Vec<String>,
    /// Why it failed or was cancelled.
    pub error: Option<Error>,
    /// The body, for memory jobs that succeeded.
    pub body: Option<Vec<u8>>,
    /// The kept response headers of the last response ([`crate::PoolBuilder::keep_headers`],
    /// [`crate::Job::keep_headers`]), in the order received, one entry per value; names
    /// lowercase. Empty when none were asked for or no response came.
    pub headers: Vec<(String, String)>,
    /// The caller's value from [`Job::context`].
    pub(crate) context: Option<Context>,
    /// The most connections that carried the body at once: 1 for a single stream, more
    /// for a file fetched in segments, 0 when no body was received.
    pub connections: u32,
}

/// `Debug` hides what a report hides: URLs' secrets, credential headers' values; the body
/// is shown by its length.
impl std::fmt::Debug for Outcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Outcome")
            .field("id", &self.id)
            .field("job_id", &self.job_id)
            .field("url", &redact::url(&self.url))
            .field("path", &self.path)
            .field("status", &self.status)
            .field("http_status", &self.http_status)
            .field("bytes", &self.bytes)
            .field("sha256", &self.sha256)
            .field("verified", &self.verified)
            .field("attempts", &self.attempts)
            .field("elapsed", &self.elapsed)
            .field("resumed_from", &self.resumed_from)
            .field(
                "redirects",
                &self
                    .redirects
                    .iter()
                    .map(|u| redact::url(u))
                    .collect::<Vec<_>>(),
            )
            .field("error", &self.error)
            .field(
                "body",
                &self.body.as_ref().map(|b| format!("{} bytes", b.len())),
            )
            .field("headers", &redact::Headers(&self.headers))
            .field("context", &self.context)
            .finish()
    }
}

/// What a job's attempts measured, for [`Outcome::new`]; all empty (the default) for a job
/// that never started.
#[derive(Default)]
pub(crate) struct Measured {
    pub(crate) http_status: Option<u16>,
    pub(crate) bytes: u64,
    pub(crate) sha256: Option<String>,
    pub(crate) verified: Option<Verified>,
    pub(crate) attempts: u32,
    pub(crate) elapsed: Duration,
    pub(crate) resumed_from: Option<u64>,
    pub(crate) redirects: Vec<String>,
    pub(crate) body: Option<Vec<u8>>,
    pub(crate) headers: Vec<(String, String)>,
    pub(crate) connections: u32,
}

/// Which job an outcome is about: its id, the URL it asked for, its path and the
/// caller's context.
pub(crate) struct Names {
    job_id: Option<String>,
    url: String,
    path: Option<PathBuf>,
    context: Option<Context>,
}

impl Names {
    /// Moves the URL and path out of `job`: the job is spent afterwards, only its `id` is
    /// left (for the dependency bookkeeping).
    pub(crate) fn take(job: &mut Job) -> Names {
        let path = match std::mem::replace(&mut job.dest, Destination::Memory) {
            Destination::File(p) => Some(p),
            Destination::Memory => None,
        };
        Names {
            job_id: job.id.clone(),
            url: std::mem::take(&mut job.url),
            path,
            context: job.context.take(),
        }
    }

    /// Copies them, leaving `job` as it was.
    pub(crate) fn of(job: &Job) -> Names {
        Names {
            job_id: job.id.clone(),
            url: job.url.clone(),
            path: job.path().map(PathBuf::from),
            context: job.context.clone(),
        }
    }
}

impl Outcome {
    /// The one place an outcome is built: which job, how it ended, what its attempts
    /// measured and why it failed.
    pub(crate) fn new(
        id: JobId,
        names: Names,
        status: Status,
        measured: Measured,
        error: Option<Error>,
    ) -> Outcome {
        let Measured {
            http_status,
            bytes,
            sha256,
            verified,
            attempts,
            elapsed,
            resumed_from,
            redirects,
            body,
            headers,
            connections,
        } = measured;
        Outcome {
            id,
            job_id: names.job_id,
            url: names.url,
            path: names.path,
            status,
            http_status,
            bytes,
            sha256,
            verified,
            attempts,
            elapsed,
            resumed_from,
            redirects,
            error,
            body,
            headers,
            context: names.context,
            connections,
        }
    }

    /// The body parsed as JSON into a `T`, without a copy: what a memory job for an API
    /// call wants. An outcome without a body (a file job, a failure) is an error, as an
    /// empty document is.
    ///
    /// ```no_run
    /// #[derive(serde::Deserialize)]
    /// struct Item { id: u64 }
    /// let pool = fetchpool::Pool::builder().build()?;
    /// let outcome = pool.fetch(fetchpool::Job::new("http://127.0.0.1:8080/api/items").to_memory());
    /// let items: Vec<Item> = outcome.json().expect("a JSON list of items");
    /// # Ok::<(), fetchpool::Error>(())
    /// ```
    pub fn json<T: serde::de::DeserializeOwned>(&self) -> Result<T, serde_json::Error> {
        serde_json::from_slice(self.body.as_deref().unwrap_or_default())
    }

    /// The body as text, invalid UTF-8 replaced by `U+FFFD` (borrowed when it is valid);
    /// `None` for an outcome without a body.
    pub fn text(&self) -> Option<Cow<'_, str>> {
        self.body.as_deref().map(String::from_utf8_lossy)
    }

    /// Takes the body out of the outcome, leaving `None`: the bytes move, never copied.
    pub fn take_body(&mut self) -> Option<Vec<u8>> {
        self.body.take()
    }

    /// The value the job carried ([`Job::context`]), if it is a `T`.
    ///
    /// ```
    /// # use fetchpool::Job;
    /// // A job that cannot start (its URL is not http) still ends with its context.
    /// let pool = fetchpool::Pool::builder().output_dir(std::env::temp_dir()).build()?;
    /// let summary = pool.run_with([Job::new("ftp://h/x").to_memory().context(7u32)], |event, _| {
    ///     if let fetchpool::Event::Finished(o) = event {
    ///         assert_eq!(o.context::<u32>(), Some(&7));
    ///         assert_eq!(o.context::<String>(), None);
    ///     }
    /// });
    /// assert_eq!(summary.failed, 1);
    /// # Ok::<(), fetchpool::Error>(())
    /// ```
    pub fn context<T: std::any::Any>(&self) -> Option<&T> {
        self.context.as_ref()?.0.downcast_ref()
    }

    /// The value of the kept response header `name` (any case), the first if it came
    /// more than once; `None` when it was not kept or not sent.
    ///
    /// ```no_run
    /// use fetchpool::{Job, Pool};
    /// let pool = Pool::builder().keep_headers(["X-Total-Count"]).build()?;
    /// let report = pool.run([Job::new("http://127.0.0.1:8080/api/users").to_memory()])?;
    /// let total: Option<u64> = report.outcomes[0]
    ///     .header("x-total-count")
    ///     .and_then(|v| v.parse().ok());
    /// # Ok::<(), fetchpool::Error>(())
    /// ```
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The URL the last response came from: the last redirect's target, or the job's URL
    /// when there was no redirect.
    pub fn final_url(&self) -> &str {
        self.redirects.last().unwrap_or(&self.url)
    }

    /// A job that ended without an attempt (cancelled, dependency failed, invalid).
    pub(crate) fn not_started(id: JobId, job: &Job, status: Status, error: Error) -> Outcome {
        let nothing = Measured::default();
        Outcome::new(id, Names::of(job), status, nothing, Some(error))
    }

    /// The outcome as one JSON object (one line of a report file), its URLs with their
    /// secrets hidden ([`crate::redact::url`]).
    pub fn to_json(&self) -> Value {
        // URLs with their secrets hidden: a report outlives the credentials' purpose. The
        // path is kept whole, so `--retry-failed` matches a line to its job by path (and
        // by the URL hidden the same way).
        let redirects: Vec<Cow<'_, str>> = self.redirects.iter().map(|u| redact::url(u)).collect();
        let mut v = json!({
            "url": redact::url(&self.url),
            "path": self.path.as_ref().map(|p| p.to_string_lossy().into_owned()),
            "status": self.status.as_str(),
            "http_status": self.http_status,
            "bytes": self.bytes,
            "sha256": self.sha256,
            "verified": self.verified.map_or_else(|| "none".to_string(), |v| v.to_string()),
            "attempts": self.attempts,
            "elapsed_ms": self.elapsed.as_millis() as u64,
            "resumed_from": self.resumed_from,
            "connections": self.connections,
            "redirects": redirects,
            "error": self.error.as_ref().map(|e| json!({
                "kind": e.kind().as_str(),
                "phase": e.phase().map(|p| p.as_str()),
                "message": e.to_string(),
            })),
        });
        if let Some(id) = &self.job_id {
            v["id"] = json!(id);
        }
        if !self.headers.is_empty() {
            v["headers"] = Value::Object(kept_headers_json(&self.headers));
        }
        v
    }
}

/// Kept headers as a report shows them: one member per name, repeated values joined by
/// `, `; URLs' secrets hidden ([`redact::text`]), and the values of credential headers
/// ([`redact::is_secret_header`]: `Set-Cookie`, `Authorization`, …) masked whole.
fn kept_headers_json(headers: &[(String, String)]) -> serde_json::Map<String, Value> {
    let mut out = serde_json::Map::new();
    for (name, value) in headers {
        let name = name.to_ascii_lowercase();
        let shown = if redact::is_secret_header(&name) {
            Cow::Borrowed(redact::MASK)
        } else {
            redact::text(value)
        };
        match out.get_mut(&name) {
            Some(Value::String(joined)) => {
                joined.push_str(", ");
                joined.push_str(&shown);
            }
            _ => {
                out.insert(name, Value::String(shown.into_owned()));
            }
        }
    }
    out
}

/// Counts and totals of a run; cheap to keep for any number of jobs.
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct Summary {
    /// Jobs downloaded and verified.
    pub ok: u64,
    /// Jobs already up to date.
    pub skipped: u64,
    /// Jobs that failed.
    pub failed: u64,
    /// Jobs cancelled.
    pub cancelled: u64,
    /// Bytes written by jobs that ended ok.
    pub bytes: u64,
    /// Wall time of the run.
    pub elapsed: Duration,
    /// Failures and cancellations by error kind: count and the first few URLs, their
    /// secrets hidden ([`crate::redact::url`]).
    pub failures: BTreeMap<ErrorKind, (u64, Vec<String>)>,
    /// Whether the run was interrupted (the caller cancelled it).
    pub interrupted: bool,
}

impl Summary {
    /// How many URLs per error kind a summary keeps as examples.
    const EXAMPLES: usize = 3;

    /// Adds one outcome.
    pub fn record(&mut self, outcome: &Outcome) {
        let kind = outcome.error.as_ref().map(Error::kind);
        self.count(outcome.status, outcome.bytes, kind, &outcome.url);
    }

    /// Adds one job's end as a report line tells it: its status, its `bytes`, its
    /// error's kind and its URL. What [`Summary::record`] does with an outcome, for a
    /// caller that reads reports back (several shards' reports make one summary).
    pub fn count(&mut self, status: Status, bytes: u64, kind: Option<ErrorKind>, url: &str) {
        match status {
            Status::Ok => {
                self.ok += 1;
                self.bytes += bytes;
            }
            Status::Skipped => self.skipped += 1,
            Status::Failed => self.failed += 1,
            Status::Cancelled => self.cancelled += 1,
        }
        if let Some(kind) = kind {
            let entry = self.failures.entry(kind).or_default();
            entry.0 += 1;
            if entry.1.len() < Self::EXAMPLES {
                entry.1.push(redact::url(url).into_owned());
            }
        }
    }

    /// Number of jobs counted.
    pub fn total(&self) -> u64 {
        self.ok + self.skipped + self.failed + self.cancelled
    }

    /// Whether every job ended ok or skipped.
    pub fn all_succeeded(&self) -> bool {
        self.failed == 0 && self.cancelled == 0
    }

    /// The summary as one JSON object.
    pub fn to_json(&self) -> Value {
        let secs = self.elapsed.as_secs_f64();
        let failures: serde_json::Map<String, Value> = self
            .failures
            .iter()
            .map(|(k, (n, urls))| {
                (
                    k.as_str().to_string(),
                    json!({"count": n, "examples": urls}),
                )
            })
            .collect();
        json!({
            "jobs": self.total(),
            "ok": self.ok,
            "skipped": self.skipped,
            "failed": self.failed,
            "cancelled": self.cancelled,
            "bytes": self.bytes,
            "elapsed_ms": self.elapsed.as_millis() as u64,
            "bytes_per_sec": if secs > 0.0 { (self.bytes as f64 / secs) as u64 } else { 0 },
            "failures": failures,
            "interrupted": self.interrupted,
        })
    }
}

/// A summary plus every outcome, in the order jobs finished. What [`crate::Pool::run`]
/// returns; use [`crate::Pool::run_with`] to see outcomes without keeping them.
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct Report {
    /// The counts.
    pub summary: Summary,
    /// Every outcome.
    pub outcomes: Vec<Outcome>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn report_line_has_every_contract_field() {
        let o = Outcome {
            id: JobId(0),
            job_id: None,
            url: "http://h/a".into(),
            path: Some("a".into()),
            status: Status::Failed,
            http_status: Some(404),
            bytes: 0,
            sha256: None,
            verified: None,
            attempts: 1,
            elapsed: Duration::from_millis(12),
            resumed_from: None,
            redirects: vec![],
            error: Some(Error::Status {
                code: 404,
                retry_after: None,
            }),
            body: None,
            headers: Vec::new(),
            context: None,
            connections: 1,
        };
        let v = o.to_json();
        for key in [
            "url",
            "path",
            "status",
            "http_status",
            "bytes",
            "sha256",
            "verified",
            "attempts",
            "elapsed_ms",
            "resumed_from",
            "connections",
            "redirects",
            "error",
        ] {
            assert!(v.get(key).is_some(), "missing {key}");
        }
        assert_eq!(v["error"]["kind"], "http");
        assert_eq!(v["http_status"], 404);
    }

    #[test]
    fn report_names_read_back_as_the_status_and_kind_they_name() {
        for status in [
            Status::Ok,
            Status::Skipped,
            Status::Failed,
            Status::Cancelled,
        ] {
            assert_eq!(Status::from_name(status.as_str()), Some(status));
        }
        assert_eq!(Status::from_name("done"), None);
        for kind in ErrorKind::ALL {
            assert_eq!(ErrorKind::from_name(kind.as_str()), Some(kind));
        }
        assert_eq!(ErrorKind::from_name("Timeout"), None);
    }
}
