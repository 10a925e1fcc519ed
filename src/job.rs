//! What one job is: a request, where its body goes, and what the result must look like.
//!
//! A [`Job`] is plain data built by the manifest reader or by a library caller. The pool
//! checks it ([`Job::check`]) before any request: the URL must be http(s), a file
//! destination must stay inside the output directory.

use std::any::Any;
use std::fmt;
use std::path::{Component, Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use crate::checksum::{Algorithm, Checksum};
use crate::error::Error;

/// The handle of a job within one session or run: its number in submission order,
/// starting at 0. [`Submitter::submit`](crate::Submitter::submit) returns it; every
/// [`Event`](crate::Event) and the [`Outcome`](crate::Outcome) carry it as `id`, and
/// [`Session::cancel_job`](crate::Session::cancel_job) takes it. Not to be confused with
/// the id a job is given for dependencies ([`Job::id`], [`Outcome::job_id`](crate::Outcome::job_id)).
///
/// ```
/// let id = fetchpool::JobId(3);
/// assert_eq!(id.to_string(), "#3");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct JobId(pub u64);

impl fmt::Display for JobId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "#{}", self.0)
    }
}

/// Where a job's response body goes.
///
/// ```
/// use fetchpool::{Destination, Job};
/// let job = Job::new("http://127.0.0.1:8080/a/b.txt");
/// assert_eq!(job.dest, Destination::File("b.txt".into()));
/// assert_eq!(job.to_memory().dest, Destination::Memory);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Destination {
    /// A file, relative to the pool's output directory. The body is written to
    /// `PATH.part` and renamed to `PATH` only once complete and verified.
    File(PathBuf),
    /// Kept in memory and handed back in the outcome (API calls). Bounded by
    /// [`crate::PoolBuilder::memory_limit`].
    Memory,
}

pub use crate::error::Origin;

/// One request to make and what to do with its response.
///
/// ```
/// use fetchpool::Job;
/// let job = Job::new("http://127.0.0.1:8080/data/a.bin")
///     .to_file("a.bin")
///     .sha256("e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
///     .header("Accept", "application/octet-stream");
/// assert_eq!(job.path().unwrap().to_str(), Some("a.bin"));
/// ```
///
/// Its `Debug` output hides credentials: the URL's password and signatures
/// ([`redact::url`](crate::redact::url)), the values of credential headers
/// ([`redact::is_secret_header`](crate::redact::is_secret_header)), and the request body,
/// shown by its length only.
#[derive(Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Job {
    /// The URL to request (http or https).
    pub url: String,
    /// Where the body goes. Defaults to a file named after the URL's last path segment.
    pub dest: Destination,
    /// The body's expected digest (md5, sha1, sha256, sha512 or crc32c). When set, it
    /// decides whether the body is right; when not, a digest the server announces does.
    pub checksum: Option<Checksum>,
    /// The expected size of the body in bytes.
    pub size: Option<u64>,
    /// The id other jobs name in [`Job::after`] to depend on this one (`"id"` in job
    /// lists and report lines); [`Outcome::job_id`](crate::Outcome::job_id) on its
    /// outcome. Unique within a run. Defaults to none.
    pub id: Option<String>,
    /// Ids of jobs that must succeed before this one starts.
    pub after: Vec<String>,
    /// The request method. Defaults to `GET`.
    pub method: String,
    /// Extra request headers, in order.
    pub headers: Vec<(String, String)>,
    /// A request body.
    pub body: Option<Vec<u8>>,
    /// Higher runs first among jobs that are ready. Defaults to 0.
    pub priority: i32,
    /// Where the job was read from, for messages.
    pub origin: Option<Origin>,
    /// This job's whole time budget, all its attempts and the waits between them, from
    /// its first start. Defaults to none: the pool's [`Config::max_time`](crate::Config::max_time).
    pub max_time: Option<Duration>,
    /// This job's stall limit: the longest wait for its next byte. Defaults to none: the
    /// pool's [`Config::idle_timeout`](crate::Config::idle_timeout).
    pub idle_timeout: Option<Duration>,
    /// Extra attempts for this job's transient errors. Defaults to none: the pool's
    /// [`Config::retries`](crate::Config::retries).
    pub retries: Option<u32>,
    /// Response headers to keep in the outcome ([`crate::Outcome::header`]), in addition
    /// to the pool's [`Config::keep_headers`](crate::Config::keep_headers); names
    /// compared without regard to case. Defaults to none.
    pub keep_headers: Vec<String>,
    /// Whether the file's path was derived from the URL rather than given: such a job
    /// is renamed when another job of the list would write the same file (see
    /// [`Plan::renamed`](crate::Plan::renamed)), where a given path is an error.
    pub(crate) named_from_url: bool,
    /// The caller's value carried to the outcome ([`Job::context`]).
    pub(crate) context: Option<Context>,
}

impl fmt::Debug for Job {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Job")
            .field("url", &crate::redact::url(&self.url))
            .field("dest", &self.dest)
            .field("checksum", &self.checksum)
            .field("size", &self.size)
            .field("id", &self.id)
            .field("after", &self.after)
            .field("method", &self.method)
            .field("headers", &crate::redact::Headers(&self.headers))
            .field(
                "body",
                &self.body.as_ref().map(|b| format!("{} bytes", b.len())),
            )
            .field("priority", &self.priority)
            .field("origin", &self.origin)
            .field("max_time", &self.max_time)
            .field("idle_timeout", &self.idle_timeout)
            .field("retries", &self.retries)
            .field("keep_headers", &self.keep_headers)
            .field("named_from_url", &self.named_from_url)
            .field("context", &self.context)
            .finish()
    }
}

/// A caller's value carried from a [`Job`] to its [`Outcome`](crate::Outcome), shared, never
/// copied: two jobs are equal in it only when they carry the same value (one `Arc`).
#[derive(Clone)]
pub(crate) struct Context(pub(crate) Arc<dyn Any + Send + Sync>);

impl fmt::Debug for Context {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Context(..)")
    }
}

impl PartialEq for Context {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}

impl Eq for Context {}

impl Job {
    /// A `GET` of `url` into a file named after the URL's last path segment.
    pub fn new(url: impl Into<String>) -> Job {
        Job::named(url, &Naming::LastSegment)
    }

    /// A `GET` of `url` into a file whose path `naming` derives from the URL.
    pub fn named(url: impl Into<String>, naming: &Naming) -> Job {
        let url = url.into();
        let dest = Destination::File(path_for(&url, naming));
        let mut job = Job::with_dest(url, dest);
        job.named_from_url = true;
        job
    }

    /// A `GET` of `url` into `dest`, without deriving a file name first.
    pub(crate) fn with_dest(url: String, dest: Destination) -> Job {
        Job {
            url,
            dest,
            checksum: None,
            size: None,
            id: None,
            after: Vec::new(),
            method: "GET".to_string(),
            headers: Vec::new(),
            body: None,
            priority: 0,
            origin: None,
            max_time: None,
            idle_timeout: None,
            retries: None,
            keep_headers: Vec::new(),
            named_from_url: false,
            context: None,
        }
    }

    /// Write the body to `path`, relative to the output directory.
    pub fn to_file(mut self, path: impl Into<PathBuf>) -> Job {
        self.dest = Destination::File(path.into());
        self.named_from_url = false;
        self
    }

    /// Keep the body in memory and return it in the outcome.
    pub fn to_memory(mut self) -> Job {
        self.dest = Destination::Memory;
        self.named_from_url = false;
        self
    }

    /// Require the body's sha256 (hex) to be `hex`.
    pub fn sha256(self, hex: impl Into<String>) -> Job {
        self.checksum(Checksum::new(Algorithm::Sha256, hex))
    }

    /// Require the body's digest to be `checksum` (see [`Checksum`]'s `ALGO:HEX` form).
    ///
    /// ```
    /// use fetchpool::Job;
    /// let job = Job::new("http://127.0.0.1/a.bin")
    ///     .checksum("md5:9e107d9d372bb6826bd81d3542a419d6".parse().unwrap());
    /// assert_eq!(job.checksum.unwrap().to_string(), "md5:9e107d9d372bb6826bd81d3542a419d6");
    /// ```
    pub fn checksum(mut self, checksum: Checksum) -> Job {
        self.checksum = Some(checksum);
        self
    }

    /// Require the body to be exactly `bytes` long.
    pub fn size(mut self, bytes: u64) -> Job {
        self.size = Some(bytes);
        self
    }

    /// Give this job the id that others name in [`Job::after`] to depend on it.
    pub fn id(mut self, id: impl Into<String>) -> Job {
        self.id = Some(id.into());
        self
    }

    /// Start only after the job named `id` succeeded.
    pub fn after(mut self, id: impl Into<String>) -> Job {
        self.after.push(id.into());
        self
    }

    /// Use `method` instead of `GET`.
    pub fn method(mut self, method: impl Into<String>) -> Job {
        self.method = method.into();
        self
    }

    /// Add a request header.
    pub fn header(mut self, name: impl Into<String>, value: impl Into<String>) -> Job {
        self.headers.push((name.into(), value.into()));
        self
    }

    /// Send `body` with the request.
    pub fn body(mut self, body: impl Into<Vec<u8>>) -> Job {
        self.body = Some(body.into());
        self
    }

    /// Set the priority: higher runs first among ready jobs.
    pub fn priority(mut self, priority: i32) -> Job {
        self.priority = priority;
        self
    }

    /// Give this job its own whole time budget (all attempts and the waits between them,
    /// from its first start), instead of the pool's. On expiry the job fails with a
    /// [`TimeoutPhase::Deadline`](crate::TimeoutPhase::Deadline) timeout.
    ///
    /// ```
    /// use std::time::Duration;
    /// let api = fetchpool::Job::new("http://127.0.0.1:8080/api/users")
    ///     .to_memory()
    ///     .max_time(Duration::from_secs(5))
    ///     .idle_timeout(Duration::from_secs(2))
    ///     .retries(1);
    /// assert_eq!(api.max_time, Some(Duration::from_secs(5)));
    /// ```
    pub fn max_time(mut self, limit: Duration) -> Job {
        self.max_time = Some(limit);
        self
    }

    /// Give this job its own stall limit (the longest wait for its next byte), instead
    /// of the pool's. A stall fails the attempt with a
    /// [`TimeoutPhase::Stall`](crate::TimeoutPhase::Stall) timeout, retried like the
    /// pool's.
    pub fn idle_timeout(mut self, limit: Duration) -> Job {
        self.idle_timeout = Some(limit);
        self
    }

    /// Give this job its own number of extra attempts for transient errors, instead of
    /// the pool's.
    pub fn retries(mut self, retries: u32) -> Job {
        self.retries = Some(retries);
        self
    }

    /// Keep these response headers in the outcome, in addition to the pool's
    /// ([`crate::PoolBuilder::keep_headers`]); names compared without regard to case.
    ///
    /// ```
    /// let job = fetchpool::Job::new("http://127.0.0.1:8080/api/users?page=1")
    ///     .to_memory()
    ///     .keep_headers(["Link", "X-Total-Count"]);
    /// assert_eq!(job.keep_headers, ["Link", "X-Total-Count"]);
    /// ```
    pub fn keep_headers<S: Into<String>>(mut self, names: impl IntoIterator<Item = S>) -> Job {
        self.keep_headers.extend(names.into_iter().map(Into::into));
        self
    }

    /// Carries `value` to this job's outcome, where [`Outcome::context`](crate::Outcome::context)
    /// gives it back by type: what the caller needs to act on the result (a row to update,
    /// the page a listing came from), without encoding it in the id or the URL. A clone of
    /// the job shares the value.
    ///
    /// ```no_run
    /// use fetchpool::{Job, Pool};
    /// struct User { login: String }
    /// let pool = Pool::builder().build()?;
    /// let report = pool.run([Job::new("http://127.0.0.1:8080/avatars/1.png")
    ///     .context(User { login: "ada".into() })])?;
    /// let user = report.outcomes[0].context::<User>().unwrap();
    /// assert_eq!(user.login, "ada");
    /// # Ok::<(), fetchpool::Error>(())
    /// ```
    pub fn context<T: Any + Send + Sync>(mut self, value: T) -> Job {
        self.context = Some(Context(Arc::new(value)));
        self
    }

    /// The value given with [`Job::context`], if it is a `T`.
    pub fn context_ref<T: Any>(&self) -> Option<&T> {
        self.context.as_ref()?.0.downcast_ref()
    }

    /// The destination path, for file jobs.
    pub fn path(&self) -> Option<&Path> {
        match &self.dest {
            Destination::File(p) => Some(p),
            Destination::Memory => None,
        }
    }

    /// Checks what can be checked without a network or a filesystem: the URL is http(s)
    /// and parses, the destination stays inside the output directory, the checksum is hex
    /// of its algorithm's length.
    /// The message says what to fix; the caller adds the line.
    pub fn check(&self) -> Result<(), Error> {
        check_url(&self.url)?;
        if let Destination::File(path) = &self.dest {
            check_relative_path(path)?;
            check_no_encoding(&self.headers)?;
            check_lengths(path)?;
            check_not_reserved(path)?;
        }
        if let Some(checksum) = &self.checksum {
            checksum.check().map_err(|e| Error::config(e.to_string()))?;
        }
        for (name, value) in &self.headers {
            check_header(name, value)?;
        }
        check_header_names(&self.keep_headers)?;
        for (what, limit) in [
            ("time budget", self.max_time),
            ("idle timeout", self.idle_timeout),
        ] {
            if limit.is_some_and(|d| d.is_zero()) {
                return Err(Error::config(format!(
                    "the job's {what} is zero, which no request can meet; give a positive \
                     duration, or none for the pool's"
                )));
            }
        }
        if self.method.is_empty() || !self.method.bytes().all(|b| b.is_ascii_alphabetic()) {
            return Err(Error::config(format!(
                "method '{}' is not an HTTP method; use GET, POST, PUT, …",
                shown(&self.method)
            )));
        }
        Ok(())
    }

    /// Checks that the file this job writes, inside `output_dir` as given, stays within
    /// the system's path length: 4085 bytes (4096 less the `.part.meta` of its working
    /// files and the final NUL), what [`Job::check`] cannot know without the output
    /// directory. A memory job passes.
    pub fn check_within(&self, output_dir: &Path) -> Result<(), Error> {
        let Destination::File(path) = &self.dest else {
            return Ok(());
        };
        let dir = output_dir.as_os_str().len();
        let len = dir + usize::from(dir > 0) + path.as_os_str().len();
        if len > PATH_MAX {
            return Err(Error::config(format!(
                "output path '{}' is {len} bytes long inside the output directory '{}'; \
                 paths can be at most {PATH_MAX} bytes (4096 less the '{WORK_SUFFIX}' \
                 suffix of working files): shorten the path or the output directory",
                crate::redact::clip(&path.to_string_lossy(), crate::redact::SHOWN_CHARS),
                crate::redact::clip(&output_dir.to_string_lossy(), crate::redact::SHOWN_CHARS),
            )));
        }
        Ok(())
    }
}

/// The longest suffix fetchpool adds to a file's name for its working files
/// (`PATH.part.meta`, the resume sidecar).
const WORK_SUFFIX: &str = ".part.meta";

/// The longest name of a folder, in bytes: the usual file system limit (`NAME_MAX`, 255
/// on Linux, macOS and Windows).
pub(crate) const NAME_MAX: usize = 255;

/// The longest file name a job may write, in bytes: [`NAME_MAX`] less the `.part.meta`
/// that its working files add (245). Names derived from URLs are shortened to fit
/// ([`file_name_for`]); a listed path with a longer name is refused.
pub(crate) const FILE_NAME_MAX: usize = NAME_MAX - WORK_SUFFIX.len();

/// The longest path a job may write, output directory included, in bytes: the usual
/// `PATH_MAX` (4096, its final NUL included) less the `.part.meta` of working files.
pub(crate) const PATH_MAX: usize = 4096 - 1 - WORK_SUFFIX.len();

/// Checks the lengths the file system will check only when the file is created: each
/// folder name at most [`NAME_MAX`] bytes, the file name at most [`FILE_NAME_MAX`], the
/// whole relative path at most [`PATH_MAX`].
fn check_lengths(path: &Path) -> Result<(), Error> {
    let bytes = path.as_os_str().as_encoded_bytes();
    // The common case: no name can be longer than the whole path.
    if bytes.len() <= FILE_NAME_MAX {
        return Ok(());
    }
    let shown = || crate::redact::clip(&path.to_string_lossy(), 60).into_owned();
    if bytes.len() > PATH_MAX {
        return Err(Error::config(format!(
            "output path '{}' is {} bytes long; paths can be at most {PATH_MAX} bytes \
             (4096 less the '{WORK_SUFFIX}' suffix of working files): shorten it",
            shown(),
            bytes.len()
        )));
    }
    let names: Vec<&std::ffi::OsStr> = path
        .components()
        .filter_map(|c| match c {
            Component::Normal(n) => Some(n),
            _ => None,
        })
        .collect();
    for (i, name) in names.iter().enumerate() {
        let len = name.as_encoded_bytes().len();
        let last = i + 1 == names.len();
        if last && len > FILE_NAME_MAX {
            return Err(Error::config(format!(
                "output path '{}' has a file name of {len} bytes; file names can be at most \
                 {FILE_NAME_MAX} bytes ({NAME_MAX} less the '{WORK_SUFFIX}' suffix of \
                 working files): shorten it",
                shown()
            )));
        }
        if len > NAME_MAX {
            return Err(Error::config(format!(
                "output path '{}' has a folder name of {len} bytes; folder names can be at \
                 most {NAME_MAX} bytes: shorten it",
                shown()
            )));
        }
    }
    Ok(())
}

/// Refuses a request header asking for an encoded body (`Accept-Encoding` other than
/// `identity`). Bodies are saved as sent and never decoded, so such a header could only
/// put compressed bytes at a file's path, or splice a compressed range onto a part.
pub(crate) fn check_no_encoding(headers: &[(String, String)]) -> Result<(), Error> {
    for (name, value) in headers {
        if name.trim().eq_ignore_ascii_case("accept-encoding")
            && !value.trim().eq_ignore_ascii_case("identity")
        {
            return Err(Error::config(format!(
                "header 'Accept-Encoding: {}' asks for an encoded body, which would be saved \
                 undecoded (bodies are written as sent, never decompressed); remove the header",
                value.trim()
            )));
        }
    }
    Ok(())
}

/// Checks names of response headers to keep: each a header name (see [`check_header`]).
pub(crate) fn check_header_names(names: &[String]) -> Result<(), Error> {
    for name in names {
        check_header(name, "").map_err(|_| {
            Error::config(format!(
                "'{}' is not a header name, so no response header can be kept by it \
                 (letters, digits and !#$%&'*+-.^_`|~ only)",
                shown(name)
            ))
        })?;
    }
    Ok(())
}

/// Checks that a request header can be sent as given: a name of token characters
/// (letters, digits and ``!#$%&'*+-.^_`|~``) and a value on one line without control
/// characters (tabs are allowed). The message names the header but never quotes its
/// value, which may be a credential.
///
/// ```
/// assert!(fetchpool::check_header("Accept", "*/*").is_ok());
/// let e = fetchpool::check_header("X-A", "one\r\nX-Injected: two").unwrap_err();
/// assert_eq!(e.to_string(), "request header 'X-A' has a line break in its value; a header value is one line");
/// ```
pub fn check_header(name: &str, value: &str) -> Result<(), Error> {
    const TCHAR: &[u8] = b"!#$%&'*+-.^_`|~";
    if name.is_empty() {
        return Err(Error::config(
            "request header with an empty name; a header is a name (letters, digits and \
             !#$%&'*+-.^_`|~) and a value",
        ));
    }
    if let Some(i) = name
        .bytes()
        .position(|b| !(b.is_ascii_alphanumeric() || TCHAR.contains(&b)))
    {
        let bad = name[i..].chars().next().unwrap_or('?');
        return Err(Error::config(format!(
            "request header '{}…' has {bad:?} at byte {} of its name, which header names \
             cannot hold (letters, digits and !#$%&'*+-.^_`|~ only)",
            crate::redact::clip(&name[..i], 60),
            i + 1
        )));
    }
    let name = crate::redact::clip(name, 60);
    if value.contains(['\r', '\n']) {
        return Err(Error::config(format!(
            "request header '{name}' has a line break in its value; a header value is one line"
        )));
    }
    // What the request builder accepts (http's HeaderValue): no control byte but tab.
    if let Some(i) = value
        .bytes()
        .position(|b| (b < 32 && b != b'\t') || b == 127)
    {
        return Err(Error::config(format!(
            "request header '{name}' has a control character (0x{:02x}) at byte {} of its \
             value; a header value is text, spaces and tabs",
            value.as_bytes()[i],
            i + 1
        )));
    }
    Ok(())
}

/// Checks that `url` is an absolute http or https URL with a host.
pub(crate) fn check_url(url: &str) -> Result<(), Error> {
    let url_shown = || shown(url);
    // The URI parser lets anything through after '#': a space, CR or LF there would reach
    // log lines and messages as they are.
    if let Some(c) = url.chars().find(|c| c.is_control() || *c == ' ') {
        return Err(Error::config(format!(
            "URL '{}' has a space or control character ({c:?}); percent-encode it (%20 for a space)",
            url_shown().escape_debug()
        )));
    }
    let parsed: ureq::http::Uri = url.parse().map_err(|e| {
        Error::config(format!(
            "invalid URL '{}': {e}; write it as http://host/path",
            url_shown()
        ))
    })?;
    match parsed.scheme_str() {
        Some("http") | Some("https") => {}
        Some(other) => {
            return Err(Error::config(format!(
                "URL '{}' has scheme '{}'; fetchpool fetches only http:// and https:// URLs",
                url_shown(),
                shown(other)
            )));
        }
        None => {
            return Err(Error::config(format!(
                "URL '{}' has no scheme; write it as http://{0} or https://{0}",
                url_shown()
            )));
        }
    }
    match parsed.host() {
        Some(h) if !h.is_empty() => {}
        _ => {
            return Err(Error::config(format!(
                "URL '{}' has no host; write it as http://host/path",
                url_shown()
            )));
        }
    }
    // The URI parser keeps any text after the host's ':' and reads a port it cannot parse
    // as none at all, which would send the request to port 80 or 443 instead.
    let authority = parsed.authority().map_or("", |a| a.as_str());
    let hostport = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    let after_host = match hostport.strip_prefix('[') {
        Some(v6) => v6.split_once(']').map_or("", |(_, tail)| tail),
        None => hostport.find(':').map_or("", |i| &hostport[i..]),
    };
    match after_host.strip_prefix(':') {
        Some(port) if !port.is_empty() && !matches!(port.parse::<u16>(), Ok(1..)) => {
            Err(Error::config(format!(
                "URL '{}' has port '{}'; a port is a number from 1 to 65535",
                url_shown(),
                shown(port)
            )))
        }
        Some(_) => Ok(()),
        None if after_host.is_empty() => Ok(()),
        // Only after `]`: `[::1]8:80` parses, and its port would be read past the junk.
        None => Err(Error::config(format!(
            "URL '{}' has '{}' after its IPv6 address; write it as http://[ADDRESS]:PORT/",
            url_shown(),
            shown(after_host)
        ))),
    }
}

/// Checks that `path` is relative and never climbs out of the directory it is joined to.
pub(crate) fn check_relative_path(path: &Path) -> Result<(), Error> {
    if path.as_os_str().is_empty() {
        return Err(Error::config("empty output path; give a file name"));
    }
    // The common case, read as bytes: relative, no `..`, some name other than `.`.
    #[cfg(unix)]
    {
        let bytes = path.as_os_str().as_encoded_bytes();
        if bytes[0] != b'/'
            && !has_dot_dot(bytes)
            && bytes
                .split(|b| *b == b'/')
                .any(|s| !s.is_empty() && s != b".")
        {
            return Ok(());
        }
    }
    let mut depth: i64 = 0;
    for component in path.components() {
        match component {
            Component::Normal(_) => depth += 1,
            Component::CurDir => {}
            Component::ParentDir => {
                depth -= 1;
                if depth < 0 {
                    return Err(Error::config(format!(
                        "output path '{}' escapes the output directory; use a path inside it, without leading '..'",
                        shown(&path.to_string_lossy())
                    )));
                }
            }
            Component::RootDir | Component::Prefix(_) => {
                return Err(Error::config(format!(
                    "output path '{}' is absolute; give a path relative to the output directory",
                    shown(&path.to_string_lossy())
                )));
            }
        }
    }
    if depth == 0 {
        return Err(Error::config(format!(
            "output path '{}' names the output directory itself; give a file name",
            shown(&path.to_string_lossy())
        )));
    }
    Ok(())
}

/// Untrusted text as a message quotes it: cut to a readable length.
fn shown(s: &str) -> std::borrow::Cow<'_, str> {
    crate::redact::clip(s, crate::redact::SHOWN_CHARS)
}

/// The output directory's state directory (validators, the run lock). No job path may
/// lie inside it.
pub(crate) const STATE_DIR: &str = ".fetchpool";

/// Refuses a path that is one of fetchpool's own working files: a name ending in `.part`
/// or `.part.meta` (another job's partial body or its sidecar) or anything inside the
/// state directory. Compared without regard to ASCII case, so that a case-insensitive
/// filesystem cannot fold a job's path onto a working file either.
///
/// Reserved names rather than working files kept elsewhere: `PATH.part` beside `PATH`
/// is renamed into place within one directory (one filesystem, however the tree is
/// mounted), and a user can see and clean up what an interrupted run left.
pub(crate) fn check_not_reserved(path: &Path) -> Result<(), Error> {
    let bytes = path.as_os_str().as_encoded_bytes();
    let dotted = has_dot_dot(bytes) || bytes.starts_with(b".");
    let normalized;
    let path = if dotted {
        normalized = normalize(path);
        normalized.as_path()
    } else {
        path
    };
    let name = path.file_name().map_or(&[][..], |n| n.as_encoded_bytes());
    let ends = |suffix: &[u8]| {
        name.len() > suffix.len() && name[name.len() - suffix.len()..].eq_ignore_ascii_case(suffix)
    };
    for suffix in [".part", ".part.meta"] {
        if ends(suffix.as_bytes()) {
            return Err(Error::config(format!(
                "output path '{}' ends in '{suffix}', the name fetchpool gives its own working \
                 files (a partial body, its resume record); give the job another path",
                shown(&path.to_string_lossy())
            )));
        }
    }
    let first = path
        .components()
        .find_map(|c| match c {
            Component::Normal(c) => Some(c.as_encoded_bytes()),
            _ => None,
        })
        .unwrap_or_default();
    if first.eq_ignore_ascii_case(STATE_DIR.as_bytes()) {
        return Err(Error::config(format!(
            "output path '{}' is inside the state directory '{STATE_DIR}' where fetchpool keeps \
             its own files; give the job another path",
            shown(&path.to_string_lossy())
        )));
    }
    Ok(())
}

/// Whether `bytes` contain `..` anywhere: without it a path has no parent component.
pub(crate) fn has_dot_dot(bytes: &[u8]) -> bool {
    bytes.windows(2).any(|w| w == b"..")
}

/// The normalized form of a relative path (`a/./b/../c` → `a/c`), used to find two jobs
/// that write the same file.
pub(crate) fn normalize(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for component in path.components() {
        match component {
            Component::ParentDir => {
                out.pop();
            }
            Component::Normal(c) => out.push(c),
            _ => {}
        }
    }
    out
}

/// How a job without a given path names its file from its URL.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum Naming {
    /// The URL's last path segment, percent-decoded and sanitized (`index.html` for a
    /// path ending in `/`). The default.
    #[default]
    LastSegment,
    /// The URL's whole path, each segment sanitized as a file name, like `wget -x`:
    /// `http://h/a/b/c.json` is `a/b/c.json`.
    KeepPath {
        /// Put the host first (`h/a/b/c.json`, with `_PORT` after a port that is not the
        /// scheme's default). Defaults to false.
        host: bool,
        /// Leading directories of the path to drop, like wget's `--cut-dirs`: 1 makes
        /// `a/b/c.json` into `b/c.json`. Defaults to 0.
        cut_dirs: usize,
    },
}

/// The path a job for `url` writes when none is given, as `naming` derives it.
pub(crate) fn path_for(url: &str, naming: &Naming) -> PathBuf {
    match naming {
        Naming::LastSegment => PathBuf::from(file_name_for(url)),
        Naming::KeepPath { host, cut_dirs } => {
            let path = url_path(url);
            let mut raw: Vec<&str> = path.split('/').skip(1).collect();
            // `a/b` names `b` in `a`; `a/b/` names `index.html` in `a/b`.
            let last = raw.pop().unwrap_or("");
            let name = fit_name(sanitize(&crate::url::percent_decode_lossy(last)));
            let mut out = PathBuf::new();
            if *host {
                out.push(host_dir(url));
            }
            // A segment that sanitizes to nothing (``, `.`, `..`) is no folder.
            raw.iter()
                .map(|s| sanitize(&crate::url::percent_decode_lossy(s)))
                .filter(|s| !s.is_empty())
                .skip(*cut_dirs)
                .for_each(|s| out.push(if s.len() > NAME_MAX { shorten(&s) } else { s }));
            out.push(name);
            out
        }
    }
}

/// The folder for a URL's host: the host in lowercase, with `_PORT` after a port that is
/// not the scheme's default; characters a file name cannot hold become `_`.
fn host_dir(url: &str) -> String {
    let key = crate::url::host_key(url);
    let hostport = key.split_once("://").map_or(key.as_str(), |(_, r)| r);
    let default = if key.starts_with("https:") {
        ":443"
    } else {
        ":80"
    };
    let host = hostport.strip_suffix(default).unwrap_or(hostport);
    let dir = sanitize(host);
    if dir.is_empty() { "_".to_string() } else { dir }
}

/// The path of a URL: after the authority, before the query and fragment.
fn url_path(url: &str) -> &str {
    let without_query = url.split(['?', '#']).next().unwrap_or("");
    let after_scheme = without_query
        .split_once("://")
        .map(|(_, r)| r)
        .unwrap_or(without_query);
    after_scheme
        .find('/')
        .map(|i| &after_scheme[i..])
        .unwrap_or("/")
}

/// One decoded path segment as a file or folder name: separators, control characters
/// and `:` become `_`, surrounding spaces and leading dots go (so `..` is nothing).
fn sanitize(decoded: &str) -> String {
    let cleaned: String = decoded
        .chars()
        .map(|c| {
            if c == '/' || c == '\\' || c.is_control() || c == ':' {
                '_'
            } else {
                c
            }
        })
        .collect();
    cleaned.trim().trim_start_matches('.').to_string()
}

/// The name a job whose URL-derived path would be another job's gets instead: the file
/// name's stem, `-`, the first 8 hex digits of the sha256 of the URL (without user info
/// and fragment), then the extension (`items?page=2` → `items-` and 8 hex digits,
/// `a/index.json` → `index-` and 8 hex digits `.json`). The same URL always gets the
/// same name.
pub(crate) fn disambiguated(path: &Path, url: &str) -> PathBuf {
    use sha2::{Digest, Sha256};
    let digest = Sha256::digest(identity_of(url).as_bytes());
    let hash = crate::checksum::hex(&digest[..4]);
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let (stem, ext) = match name.rfind('.') {
        Some(i) if i > 0 && name.len() - i <= 16 => name.split_at(i),
        _ => (name.as_str(), ""),
    };
    let mut keep = stem.len().min(FILE_NAME_MAX - 9 - ext.len());
    while !stem.is_char_boundary(keep) {
        keep -= 1;
    }
    path.with_file_name(format!("{}-{hash}{ext}", &stem[..keep]))
}

/// The file name a `Content-Disposition` header gives (`filename*=UTF-8''…` preferred
/// over `filename=…`), as one safe name: its last component only (after any `/` or `\`),
/// sanitized as a name from a URL is, fitted to the length limit; `None` when nothing is
/// left or the name is one of fetchpool's working files.
pub(crate) fn content_disposition_name(header: &str) -> Option<String> {
    let mut plain = None;
    let mut extended = None;
    for part in header.split(';').skip(1) {
        let Some((key, value)) = part.split_once('=') else {
            continue;
        };
        let (key, value) = (key.trim().to_ascii_lowercase(), value.trim());
        if key == "filename*" {
            // RFC 5987: charset'language'percent-encoded.
            let mut fields = value.splitn(3, '\'');
            let (charset, _, encoded) = (fields.next()?, fields.next()?, fields.next()?);
            if charset.eq_ignore_ascii_case("utf-8") {
                extended = Some(crate::url::percent_decode_lossy(encoded));
            }
        } else if key == "filename" {
            let unquoted = value
                .strip_prefix('"')
                .and_then(|v| v.strip_suffix('"'))
                .map(|v| v.replace("\\\"", "\"").replace("\\\\", "\\"))
                .unwrap_or_else(|| value.to_string());
            plain = Some(unquoted);
        }
    }
    let raw = extended.or(plain)?;
    let last = raw.rsplit(['/', '\\']).next().unwrap_or("");
    let name = sanitize(last);
    if name.is_empty() {
        return None;
    }
    let name = fit_name(name);
    check_not_reserved(Path::new(&name)).ok()?;
    Some(name)
}

/// The URL without its user info and fragment: what names a resource for
/// [`disambiguated`] (a password never feeds a name).
pub(crate) fn identity_of(url: &str) -> String {
    let url = url.split('#').next().unwrap_or("");
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    let end = rest.find(['/', '?']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(end);
    let host = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    format!("{scheme}://{host}{tail}")
}

/// The file name for a URL given without a path: its last path segment, percent-decoded
/// and sanitized; `index.html` when the path ends in `/`.
pub fn file_name_for(url: &str) -> String {
    let path = url_path(url);
    let segment = path.rsplit('/').next().unwrap_or("");
    fit_name(sanitize(&crate::url::percent_decode_lossy(segment)))
}

/// A sanitized file name as a job may write it: `index.html` for none, shortened past
/// [`FILE_NAME_MAX`] bytes.
fn fit_name(cleaned: String) -> String {
    if cleaned.is_empty() {
        "index.html".to_string()
    } else if cleaned.len() > FILE_NAME_MAX {
        shorten(&cleaned)
    } else {
        cleaned
    }
}

/// A name longer than [`FILE_NAME_MAX`] bytes, cut to fit the same way every time: the
/// start of the name, `-`, the first 8 hex digits of the whole name's sha256, and its
/// extension (the suffix from a `.` within its last 16 bytes, like `.tar.gz`).
/// Different long names get different short ones, and the same URL always the same.
fn shorten(name: &str) -> String {
    use sha2::{Digest, Sha256};
    const EXTENSION_MAX: usize = 16;
    const HASH_HEX: usize = 8;
    let tail_start = (name.len() - EXTENSION_MAX..name.len())
        .find(|&i| name.is_char_boundary(i))
        .unwrap_or(name.len());
    let extension = name[tail_start..]
        .find('.')
        .map_or("", |i| &name[tail_start + i..]);
    let digest = crate::checksum::hex(&Sha256::digest(name.as_bytes()));
    let mut keep = FILE_NAME_MAX - 1 - HASH_HEX - extension.len();
    while !name.is_char_boundary(keep) {
        keep -= 1;
    }
    format!("{}-{}{extension}", &name[..keep], &digest[..HASH_HEX])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_names_come_from_the_last_segment_sanitized() {
        assert_eq!(file_name_for("http://h/a/b/c.tar.gz?x=1"), "c.tar.gz");
        assert_eq!(file_name_for("http://h/"), "index.html");
        assert_eq!(file_name_for("http://h"), "index.html");
        assert_eq!(file_name_for("http://h/a%20b.txt"), "a b.txt");
        assert_eq!(
            file_name_for("http://h/..%2F..%2Fetc%2Fpasswd"),
            "_.._etc_passwd"
        );
        assert_eq!(file_name_for("http://h/.."), "index.html");
        assert_eq!(file_name_for("http://h/%2e%2e"), "index.html");
    }

    #[test]
    fn long_derived_names_are_shortened_the_same_way_every_time() {
        let long = format!("http://h/{}.tar.gz?x=1", "a".repeat(300));
        let name = file_name_for(&long);
        assert_eq!(name.len(), FILE_NAME_MAX);
        assert!(name.starts_with(&"a".repeat(200)), "{name}");
        assert!(name.ends_with(".tar.gz"), "{name}");
        assert_eq!(name, file_name_for(&long));
        let other = file_name_for(&format!("http://h/{}b.tar.gz", "a".repeat(300)));
        assert_ne!(name, other);
        assert_eq!(name.len(), other.len());
        // Multi-byte characters are cut at a boundary; no extension past 16 bytes.
        let accents = file_name_for(&format!("http://h/{}", "é".repeat(200)));
        assert!(
            accents.len() <= FILE_NAME_MAX && accents.contains('-'),
            "{accents}"
        );
        let dots = file_name_for(&format!("http://h/{}", ".x".repeat(200)));
        assert!(dots.len() <= FILE_NAME_MAX, "{dots}");
        assert!(check_lengths(Path::new(&name)).is_ok());
        assert_eq!(
            file_name_for(&format!("http://h/{}", "b".repeat(245))).len(),
            245
        );
    }

    #[test]
    fn names_and_paths_too_long_for_the_file_system_are_refused() {
        let ok = format!("{}/{}", "d".repeat(255), "f".repeat(245));
        assert!(check_lengths(Path::new(&ok)).is_ok());
        let e = check_lengths(Path::new(&"f".repeat(246)))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("file name of 246 bytes") && e.contains("245"),
            "{e}"
        );
        let e = check_lengths(Path::new(&format!("{}/f", "d".repeat(256))))
            .unwrap_err()
            .to_string();
        assert!(e.contains("folder name of 256 bytes"), "{e}");
        let deep = "d/".repeat(2043) + "f";
        assert_eq!(deep.len(), 4087);
        let e = check_lengths(Path::new(&deep)).unwrap_err().to_string();
        assert!(e.contains("4087 bytes long") && e.contains("4085"), "{e}");
        assert!(check_lengths(Path::new(&deep[2..])).is_ok());
        let job = Job::new("http://h/x").to_file("a/b");
        assert!(job.check_within(Path::new(&"o".repeat(4081))).is_ok());
        let e = job.check_within(Path::new(&"o".repeat(4082))).unwrap_err();
        assert!(e.to_string().contains("4086 bytes long"), "{e}");
    }

    #[test]
    fn paths_that_escape_are_refused() {
        assert!(check_relative_path(Path::new("a/b.txt")).is_ok());
        assert!(check_relative_path(Path::new("a/../b.txt")).is_ok());
        assert!(check_relative_path(Path::new("../x")).is_err());
        assert!(check_relative_path(Path::new("a/../../x")).is_err());
        assert!(check_relative_path(Path::new("/etc/passwd")).is_err());
        assert!(check_relative_path(Path::new("a/..")).is_err());
        assert!(check_relative_path(Path::new("")).is_err());
        assert!(check_relative_path(Path::new(".")).is_err());
        assert!(check_relative_path(Path::new("././/")).is_err());
        assert!(check_relative_path(Path::new("a/./b")).is_ok());
        assert!(check_relative_path(Path::new("...")).is_ok());
        assert!(check_relative_path(Path::new("a..b/c")).is_ok());
    }

    #[test]
    fn working_file_names_are_reserved() {
        for bad in [
            "a.part",
            "d/a.bin.PART",
            "a.part.meta",
            "a.part/",
            ".fetchpool",
            ".fetchpool/validators/aa/bb",
            "./.FETCHPOOL/x",
            "a/../.fetchpool/lock",
            "x/../a.part",
        ] {
            assert!(check_not_reserved(Path::new(bad)).is_err(), "{bad}");
        }
        for good in [
            "a.bin",
            "a.partial",
            "part",
            ".part",
            "x.part/y",
            "d/.fetchpool/x",
            ".fetchpoolx/y",
            "fetchpool",
        ] {
            assert!(check_not_reserved(Path::new(good)).is_ok(), "{good}");
        }
    }

    #[test]
    fn urls_must_be_http_with_a_host() {
        assert!(check_url("http://127.0.0.1:80/x").is_ok());
        assert!(check_url("https://example.com").is_ok());
        let e = check_url("ftp://example.com/x").unwrap_err().to_string();
        assert!(e.contains("scheme 'ftp'"), "{e}");
        assert!(check_url("example.com/x").is_err());
        assert!(check_url("http://").is_err());
        assert!(check_url("http://exa mple.com/").is_err());
    }

    #[test]
    fn a_port_that_is_not_a_number_is_refused_not_replaced_by_the_default() {
        // Found by the `url` fuzz target: these went to port 80 (or 443).
        for url in [
            "http://127.0.0.1:abc/x",
            "http://127.0.0.1:99999/x",
            "http://h:0/x",
            "https://Exam:ple.COM",
            "http://user:pw@h:8o8o/",
            "http://[::1]:x/",
        ] {
            let e = check_url(url).expect_err(url).to_string();
            assert!(
                e.contains("a port is a number from 1 to 65535"),
                "{url}: {e}"
            );
        }
        // Found by the `url` fuzz target too: text between `]` and the port was skipped.
        for url in ["http://[21:D8::]8:060/x", "http://[::1]x/"] {
            let e = check_url(url).expect_err(url).to_string();
            assert!(
                e.contains("after its IPv6 address") || e.starts_with("invalid URL"),
                "{url}: {e}"
            );
        }
        for url in [
            "http://h:8080/x",
            "http://h:/x",
            "http://user:p:w@h/",
            "http://[::1]:8080/",
            "http://[::1]/",
            "https://h:65535",
        ] {
            assert!(check_url(url).is_ok(), "{url}");
        }
    }

    #[test]
    fn a_space_or_control_character_after_the_fragment_mark_is_refused() {
        // Found by the `url` fuzz target: the URI parser ignored what follows '#'.
        for url in [
            "http://h/a#x y",
            "http://h/a#x\r\nX-Injected: 1",
            "http://h/a#\u{1b}[31m",
            "http://h/a?q#\u{85}",
        ] {
            let e = check_url(url).expect_err(url).to_string();
            assert!(e.contains("space or control character"), "{url:?}: {e}");
            assert!(!e.contains(['\r', '\n', '\u{1b}']), "{e:?}");
        }
        assert!(check_url("http://h/a#frag-%20ment").is_ok());
        assert!(check_url("http://h/caf\u{e9}#\u{e9}t\u{e9}").is_ok());
    }

    #[test]
    fn content_disposition_names_are_one_safe_component() {
        let name = |h: &str| content_disposition_name(h);
        assert_eq!(
            name("attachment; filename=\"report.pdf\""),
            Some("report.pdf".into())
        );
        assert_eq!(
            name("attachment; filename=plain.txt"),
            Some("plain.txt".into())
        );
        assert_eq!(
            name("attachment; filename=\"a.txt\"; filename*=UTF-8''caf%C3%A9%20menu.txt"),
            Some("café menu.txt".into())
        );
        assert_eq!(
            name("attachment; filename=\"../../etc/passwd\""),
            Some("passwd".into())
        );
        assert_eq!(
            name("attachment; filename=\"..\\..\\win.ini\""),
            Some("win.ini".into())
        );
        assert_eq!(
            name("attachment; filename*=UTF-8''..%2F..%2Fx"),
            Some("x".into())
        );
        assert_eq!(
            name("attachment; filename=\".hidden\""),
            Some("hidden".into())
        );
        assert_eq!(name("attachment; filename=\"..\""), None);
        assert_eq!(name("attachment; filename=\"a.part\""), None);
        assert_eq!(name("attachment"), None);
        assert_eq!(name("inline; filename=\"\""), None);
        let long = name(&format!("attachment; filename=\"{}.bin\"", "n".repeat(400))).unwrap();
        assert!(
            long.len() <= FILE_NAME_MAX && long.ends_with(".bin"),
            "{long}"
        );
    }

    #[test]
    fn normalize_folds_dots() {
        assert_eq!(normalize(Path::new("a/./b/../c")), PathBuf::from("a/c"));
    }
}
