//! The pool's configuration and its builder; every default and unit is stated here.
//!
//! [`PoolBuilder::build`] checks the configuration before any request: the output
//! directory must be creatable and writable, CA files readable, proxies valid. Each
//! error says what to fix.

use std::fmt;
use std::fs;
use std::path::PathBuf;
use std::time::Duration;

use crate::error::Error;
use crate::error::Setting;
use crate::net::proxy::ProxySettings;

/// Everything that shapes a run. Build it with [`Pool::builder`](crate::Pool::builder).
///
/// Its `Debug` output hides credentials: the values of credential headers
/// ([`redact::is_secret_header`](crate::redact::is_secret_header)) and a proxy's password.
#[derive(Clone)]
#[non_exhaustive]
pub struct Config {
    /// Worker threads, hence the most requests in flight. Defaults to 16.
    pub workers: usize,
    /// Most requests in flight to one host (scheme, host and port). Defaults to the
    /// worker count: no cap of its own, as curl, aria2c and wget2 have none unless asked;
    /// a value above the worker count is taken as the worker count.
    pub per_host: usize,
    /// One job at a time, strictly in submission order, retries included. Defaults to false.
    pub serial: bool,
    /// After the first failure, start no new job. Defaults to false.
    pub fail_fast: bool,
    /// Limit for DNS, TCP, TLS and proxy handshakes. Defaults to 10 s.
    pub connect_timeout: Duration,
    /// Longest wait for the next byte (stall detector). Defaults to 30 s.
    pub idle_timeout: Duration,
    /// A job's whole budget, retries included, from its first start. Defaults to none.
    pub max_time: Option<Duration>,
    /// Extra attempts for transient errors. Defaults to 3.
    pub retries: u32,
    /// First backoff step; doubles each attempt, and each wait is drawn between half the
    /// step and the whole step (equal jitter). Defaults to 1 s, so 3 retries wait 3.5 s
    /// to 7 s in total. An attempt that added bytes to the job's partial file does not
    /// use up a retry (at most `retries` such attempts), and the steps start over after it.
    pub retry_base_delay: Duration,
    /// Longest wait between attempts, `Retry-After` included. Defaults to 30 s.
    pub retry_max_delay: Duration,
    /// Where file jobs write, relative paths resolved against it. Defaults to `.`.
    pub output_dir: PathBuf,
    /// Headers sent with every request, before each job's own; a job's header replaces
    /// one of the same name here. Defaults to none.
    pub headers: Vec<(String, String)>,
    /// Most redirects followed per attempt. Defaults to 10.
    pub max_redirects: u32,
    /// Follow redirects from https to http. Defaults to false.
    pub allow_downgrade: bool,
    /// Largest body a memory job accepts, in bytes. Defaults to 64 MiB.
    pub memory_limit: u64,
    /// The `User-Agent` header. Defaults to `fetchpool/VERSION`.
    pub user_agent: String,
    /// How many queued jobs the scheduler holds to look past a busy host. Defaults to
    /// 4096 or 64 per worker, whichever is larger. Memory grows with it, not with the list.
    pub lookahead: usize,
    /// Send the events a progress display needs: [`crate::Event::Queued`],
    /// [`crate::Event::Started`] and [`crate::Event::Progress`]. Without them an observer
    /// still sees `Redirected`, `Retrying` and `Finished`, and the pool wakes it three
    /// times less per job. Defaults to true.
    pub progress_events: bool,
    /// Which proxy each request (each redirect hop) goes through. Defaults to none
    /// (direct); set with [`PoolBuilder::proxy`], [`PoolBuilder::no_proxy`] and
    /// [`PoolBuilder::proxy_from_env`].
    pub proxy: ProxySettings,
    /// PEM files whose certificates are trusted in addition to the roots
    /// ([`Config::system_roots`]). Defaults to none.
    pub ca_certs: Vec<PathBuf>,
    /// Trust the system's certificate store, as curl does, instead of Mozilla's roots: the
    /// file `SSL_CERT_FILE` and the folders `SSL_CERT_DIR` name when either is set (read
    /// from the environment, and an unreadable one fails the build), else the platform's
    /// store (`/etc/ssl/certs` and the like; Mozilla's roots where there is none). Read
    /// once, when the pool is built. Defaults to false (Mozilla's roots, built in).
    pub system_roots: bool,
    /// A PEM file with the client certificate (chain) for servers that ask for one
    /// (mutual TLS), and with its private key unless [`Config::client_key`] names one.
    /// Read when the pool is built. Defaults to none.
    pub client_cert: Option<PathBuf>,
    /// The PEM file of [`Config::client_cert`]'s private key (unencrypted). Defaults to
    /// none (the key is in the certificate's file).
    pub client_key: Option<PathBuf>,
    /// One byte rate shared by all workers, in bytes per second. Defaults to none
    /// (unlimited).
    pub limit_rate: Option<u64>,
    /// The most requests started per second in the whole run (attempts and retries each
    /// count; redirect hops do not), evenly spaced with no burst. Jobs wait in the queue
    /// for their turn, holding no worker and no connection. Defaults to none (unlimited).
    pub request_rate: Option<f64>,
    /// The most requests started per second to each host (scheme, host and port), as
    /// [`Config::request_rate`] does for the run. Defaults to none (unlimited).
    ///
    /// Either way, a `429 Too Many Requests` slows its host: its rate becomes half of
    /// what it was over its last requests (at least one request every 2 s), further
    /// 429s within a second of that cut cutting no further, and it grows back by a
    /// quarter every 5 s without a 429 until it is above this limit (or, without one,
    /// twice the rate before the first cut), when the slow-down ends. Other hosts are not
    /// affected. A `Retry-After` also pauses the host until then.
    pub per_host_request_rate: Option<f64>,
    /// Give each file the modification time of the server's `Last-Modified`, like
    /// `curl -R` and `wget -N`. Defaults to false.
    pub remote_time: bool,
    /// Name a file whose name came from its URL after the response's
    /// `Content-Disposition` filename instead, in the same folder: only its last
    /// component, sanitized like a name from a URL (so never outside the output
    /// directory, never a working file's name), and never over an existing file (the
    /// URL's name is kept then). Such a file is not recognised as up to date by a later
    /// run. Defaults to false.
    pub content_disposition: bool,
    /// Take a plain 32-hex-digit ETag (an S3 single-part upload's) as the body's MD5 and
    /// verify against it when the job has no checksum; a multipart `"…-N"` ETag is
    /// never one. Defaults to false: other servers' ETags are opaque.
    pub etag_md5: bool,
    /// The slowest a body may arrive, in bytes per second averaged over each
    /// [`Config::min_rate_window`] of a transfer; slower fails the attempt with a
    /// [`crate::TimeoutPhase::MinRate`] timeout (retried like other timeouts, the part
    /// kept). Each transfer is judged alone, so under a shared `limit_rate` it must leave
    /// every transfer in flight its share. Defaults to none (no minimum).
    pub min_rate: Option<u64>,
    /// The window over which [`Config::min_rate`] is averaged, from the response head
    /// on; a window is judged when a read ends after it, so a server that falls silent
    /// is caught by [`Config::idle_timeout`] instead. Defaults to 30 s (curl's
    /// `--speed-time`).
    pub min_rate_window: Duration,
    /// Response headers kept in every outcome ([`crate::Outcome::header`]), lowercase;
    /// a job may name more ([`crate::Job::keep_headers`]). Defaults to none.
    pub keep_headers: Vec<String>,
    /// Where the validator store lives (the `ETag` and `Last-Modified` of each file
    /// downloaded without a sha256, for a conditional request on the next run, one small
    /// file per download under `validators/`); `None` keeps no store, so re-runs of jobs
    /// without a sha256 download again instead of asking "changed since?". Defaults to
    /// `OUTPUT_DIR/.fetchpool`. The output directory's run lock stays at
    /// `OUTPUT_DIR/.fetchpool/lock` either way: it guards the output directory.
    pub state_dir: Option<PathBuf>,
    /// The most connections one file is fetched over at once; 1 turns splitting off. A
    /// file is split only when its server has shown it serves ranges of it (a `200` with
    /// `Accept-Ranges: bytes` and a length, or a `206` with a total) under a strong
    /// validator, and when it is longer than two segments. Every connection counts against
    /// [`Config::workers`] and [`Config::per_host`]. Defaults to 5 (aria2c's default).
    pub split: usize,
    /// The length of one segment of a split file, in bytes: the unit a connection asks
    /// for, retries and records as done for a resume. Defaults to 8 MiB.
    pub segment_size: u64,
}

impl fmt::Debug for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Config")
            .field("workers", &self.workers)
            .field("per_host", &self.per_host)
            .field("serial", &self.serial)
            .field("fail_fast", &self.fail_fast)
            .field("connect_timeout", &self.connect_timeout)
            .field("idle_timeout", &self.idle_timeout)
            .field("max_time", &self.max_time)
            .field("retries", &self.retries)
            .field("retry_base_delay", &self.retry_base_delay)
            .field("retry_max_delay", &self.retry_max_delay)
            .field("output_dir", &self.output_dir)
            .field("headers", &crate::redact::Headers(&self.headers))
            .field("max_redirects", &self.max_redirects)
            .field("allow_downgrade", &self.allow_downgrade)
            .field("memory_limit", &self.memory_limit)
            .field("user_agent", &self.user_agent)
            .field("lookahead", &self.lookahead)
            .field("progress_events", &self.progress_events)
            .field("proxy", &self.proxy)
            .field("ca_certs", &self.ca_certs)
            .field("system_roots", &self.system_roots)
            .field("client_cert", &self.client_cert)
            .field("client_key", &self.client_key)
            .field("limit_rate", &self.limit_rate)
            .field("request_rate", &self.request_rate)
            .field("per_host_request_rate", &self.per_host_request_rate)
            .field("remote_time", &self.remote_time)
            .field("content_disposition", &self.content_disposition)
            .field("etag_md5", &self.etag_md5)
            .field("min_rate", &self.min_rate)
            .field("min_rate_window", &self.min_rate_window)
            .field("keep_headers", &self.keep_headers)
            .field("state_dir", &self.state_dir)
            .finish()
    }
}

impl Default for Config {
    fn default() -> Self {
        Config {
            workers: 16,
            per_host: usize::MAX,
            serial: false,
            fail_fast: false,
            connect_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(30),
            max_time: None,
            retries: 3,
            retry_base_delay: Duration::from_secs(1),
            retry_max_delay: Duration::from_secs(30),
            output_dir: PathBuf::from("."),
            headers: Vec::new(),
            max_redirects: 10,
            allow_downgrade: false,
            memory_limit: 64 << 20,
            user_agent: concat!("fetchpool/", env!("CARGO_PKG_VERSION")).to_string(),
            lookahead: 4096,
            progress_events: true,
            proxy: ProxySettings::direct(),
            ca_certs: Vec::new(),
            system_roots: false,
            client_cert: None,
            client_key: None,
            limit_rate: None,
            request_rate: None,
            per_host_request_rate: None,
            remote_time: false,
            content_disposition: false,
            etag_md5: false,
            min_rate: None,
            min_rate_window: Duration::from_secs(30),
            keep_headers: Vec::new(),
            state_dir: Some(PathBuf::from(".").join(crate::job::STATE_DIR)),
            split: 5,
            segment_size: 8 << 20,
        }
    }
}

/// Builds a [`Pool`](crate::Pool).
///
/// ```no_run
/// use std::time::Duration;
/// let pool = fetchpool::Pool::builder()
///     .workers(8)
///     .per_host(4)
///     .output_dir("downloads")
///     .idle_timeout(Duration::from_secs(20))
///     .build()?;
/// # Ok::<(), fetchpool::Error>(())
/// ```
#[derive(Debug, Clone, Default)]
pub struct PoolBuilder {
    config: Config,
    /// Set by [`PoolBuilder::state_dir`]; unset, the store follows the output directory.
    state_dir: Option<Option<PathBuf>>,
    proxy: Option<Secret>,
    no_proxy: Option<String>,
    proxy_from_env: bool,
}

/// A proxy URL as given, which may hold a password: never shown by `Debug`.
#[derive(Clone)]
struct Secret(String);

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(***)")
    }
}

/// The shortest segment a split file may use, in bytes: shorter ones cost more in
/// request heads than a second connection gains.
const MIN_SEGMENT: u64 = 64 << 10;

macro_rules! setter {
    ($(#[$doc:meta])* $name:ident: $ty:ty) => {
        $(#[$doc])*
        pub fn $name(mut self, value: $ty) -> Self {
            self.config.$name = value;
            self
        }
    };
}

impl PoolBuilder {
    /// A builder with every default.
    pub fn new() -> Self {
        Self::default()
    }

    setter!(/// Worker threads (at least 1). Defaults to 16.
        workers: usize);
    setter!(/// Most requests in flight per host (at least 1). Defaults to the worker count.
        per_host: usize);
    setter!(/// One job at a time in submission order. Defaults to false.
        serial: bool);
    setter!(/// Stop starting jobs after the first failure. Defaults to false.
        fail_fast: bool);
    setter!(/// Connection setup limit. Defaults to 10 s.
        connect_timeout: Duration);
    setter!(/// Stall limit: longest wait for the next byte. Defaults to 30 s.
        idle_timeout: Duration);
    setter!(/// A job's whole budget, retries included. Defaults to none.
        max_time: Option<Duration>);
    setter!(/// Extra attempts for transient errors. Defaults to 3.
        retries: u32);
    setter!(/// First backoff step, doubled each attempt, each wait drawn between half
        /// the step and the step. Defaults to 1 s.
        retry_base_delay: Duration);
    setter!(/// Longest wait between attempts. Defaults to 30 s.
        retry_max_delay: Duration);
    setter!(/// Most redirects per attempt. Defaults to 10.
        max_redirects: u32);
    setter!(/// Follow https → http redirects. Defaults to false.
        allow_downgrade: bool);
    setter!(/// Largest memory-job body in bytes. Defaults to 64 MiB.
        memory_limit: u64);
    setter!(/// Queued jobs held to look past a busy host. Defaults to 4096.
        lookahead: usize);
    setter!(/// Send Queued, Started and Progress events. Defaults to true.
        progress_events: bool);
    setter!(/// Overall byte rate of the run in bytes per second, shared by every worker.
        /// Defaults to none (unlimited).
        limit_rate: Option<u64>);
    setter!(/// Most requests started per second in the whole run, evenly spaced, with a
        /// 429 slowing its host (see [`Config::per_host_request_rate`]). Defaults to none.
        request_rate: Option<f64>);
    setter!(/// Most requests started per second to each host. Defaults to none.
        per_host_request_rate: Option<f64>);
    setter!(/// Set each file's modification time from `Last-Modified`. Defaults to false.
        remote_time: bool);
    setter!(/// Name URL-named files after `Content-Disposition` (see
        /// [`Config::content_disposition`]). Defaults to false.
        content_disposition: bool);
    setter!(/// Slowest body rate in bytes per second, averaged over each window of a
        /// transfer; slower fails the attempt (a `MinRate` timeout). Defaults to none.
        min_rate: Option<u64>);
    setter!(/// Window over which the minimum rate is averaged. Defaults to 30 s.
        min_rate_window: Duration);
    setter!(/// Most connections one file is fetched over at once (1: never split).
        /// Defaults to 5.
        split: usize);
    setter!(/// Length of one segment of a split file, in bytes. Defaults to 8 MiB.
        segment_size: u64);

    /// Where file jobs write. Defaults to the current directory.
    pub fn output_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.config.output_dir = dir.into();
        self
    }

    /// Adds a header sent with every request. An `Accept-Encoding` other than `identity`
    /// fails [`PoolBuilder::build`]: bodies are saved as sent, never decoded; so does a
    /// name or value that cannot be sent (see [`crate::check_header`]).
    pub fn header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.config.headers.push((name.into(), value.into()));
        self
    }

    /// The `User-Agent` header. Defaults to `fetchpool/VERSION`.
    pub fn user_agent(mut self, ua: impl Into<String>) -> Self {
        self.config.user_agent = ua.into();
        self
    }

    /// The proxy for every request: `http://`, `https://`, `socks5://` or `socks5h://`,
    /// with optional `user:password@` (percent-encoded). An empty string means "no
    /// proxy", also when [`PoolBuilder::proxy_from_env`] is on. Defaults to none.
    ///
    /// A request that should use a proxy never falls back to a direct connection.
    /// Plain-http targets behind an HTTP proxy are sent in absolute form (as curl does),
    /// https targets through `CONNECT`.
    pub fn proxy(mut self, url: impl Into<String>) -> Self {
        self.proxy = Some(Secret(url.into()));
        self
    }

    /// Hosts reached directly, with curl's `NO_PROXY` rules (see
    /// [`crate::net::proxy::NoProxy`]); overrides the environment's `NO_PROXY`. Defaults to none.
    pub fn no_proxy(mut self, list: impl Into<String>) -> Self {
        self.no_proxy = Some(list.into());
        self
    }

    /// Read `http_proxy`, `HTTPS_PROXY`, `ALL_PROXY`, `NO_PROXY` and friends as curl
    /// does (see [`crate::proxy`]); [`PoolBuilder::proxy`] and
    /// [`PoolBuilder::no_proxy`] win over them. Defaults to false: the library reads
    /// the environment only when asked.
    pub fn proxy_from_env(mut self, yes: bool) -> Self {
        self.proxy_from_env = yes;
        self
    }

    /// Trusts the certificates of this PEM file in addition to Mozilla's roots
    /// (repeatable). An unreadable file or one without a certificate fails
    /// [`PoolBuilder::build`]. Defaults to none.
    pub fn ca_cert(mut self, path: impl Into<PathBuf>) -> Self {
        self.config.ca_certs.push(path.into());
        self
    }

    /// Keeps these response headers of every job's last response in its outcome
    /// ([`crate::Outcome::header`], [`crate::Outcome::headers`]); names compared without
    /// regard to case. Repeatable; a job may add its own ([`crate::Job::keep_headers`]).
    /// A name that is not a header name fails [`PoolBuilder::build`]. Defaults to none.
    ///
    /// ```no_run
    /// let pool = fetchpool::Pool::builder()
    ///     .keep_headers(["Link", "X-RateLimit-Remaining"])
    ///     .build()?;
    /// let report = pool.run([fetchpool::Job::new("http://127.0.0.1:8080/api?page=1").to_memory()])?;
    /// let next_page = report.outcomes[0].header("link");
    /// # Ok::<(), fetchpool::Error>(())
    /// ```
    pub fn keep_headers<S: Into<String>>(mut self, names: impl IntoIterator<Item = S>) -> Self {
        self.config
            .keep_headers
            .extend(names.into_iter().map(|n| n.into().to_ascii_lowercase()));
        self
    }

    /// Verify a body against its ETag when that is a plain MD5 (see
    /// [`Config::etag_md5`]). Defaults to false.
    pub fn etag_md5(mut self, yes: bool) -> Self {
        self.config.etag_md5 = yes;
        self
    }

    /// Trust the system's certificate store instead of Mozilla's roots (see
    /// [`Config::system_roots`]; reads `SSL_CERT_FILE` and `SSL_CERT_DIR`). Defaults to
    /// false.
    pub fn system_roots(mut self, yes: bool) -> Self {
        self.config.system_roots = yes;
        self
    }

    /// Present the client certificate in the PEM file `cert` to servers that ask for one,
    /// with the private key from `key` or, when `None`, from `cert`. A file that cannot be
    /// read, holds no certificate or key, or a key that does not fit the certificate,
    /// fails [`PoolBuilder::build`]. Defaults to none.
    pub fn client_cert(mut self, cert: impl Into<PathBuf>, key: Option<PathBuf>) -> Self {
        self.config.client_cert = Some(cert.into());
        self.config.client_key = key;
        self
    }

    /// Where the validator store lives (see [`Config::state_dir`]); `None` keeps none, so
    /// a library run writes nothing but its files, their working files and the run lock.
    /// Defaults to `.fetchpool` in the output directory.
    ///
    /// ```no_run
    /// let pool = fetchpool::Pool::builder()
    ///     .output_dir("mirror")
    ///     .state_dir(None) // jobs carry a sha256: nothing to remember
    ///     .build()?;
    /// # Ok::<(), fetchpool::Error>(())
    /// ```
    pub fn state_dir(mut self, dir: Option<PathBuf>) -> Self {
        self.state_dir = Some(dir);
        self
    }

    /// The configuration as it stands.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Checks the configuration (limits, headers, proxy, output directory) and settles
    /// what follows from it (serial means one worker, the look-ahead, the proxy); the
    /// pool's [`PoolBuilder::build`] makes the pool from the result.
    pub(crate) fn validate(self) -> Result<Config, Error> {
        let mut config = self.config;
        config.state_dir = match self.state_dir {
            Some(dir) => dir,
            None => Some(config.output_dir.join(crate::job::STATE_DIR)),
        };
        if config.workers == 0 {
            return Err(Error::setting(
                Setting::Workers,
                "workers must be at least 1; 1 runs one job at a time",
            ));
        }
        if config.per_host == 0 {
            return Err(Error::config("per-host limit must be at least 1"));
        }
        config.per_host = config.per_host.min(config.workers);
        if config.split == 0 {
            return Err(Error::config(
                "the connections per file must be at least 1; 1 never splits a file",
            ));
        }
        if config.segment_size < MIN_SEGMENT {
            return Err(Error::config(format!(
                "the segment size must be at least {MIN_SEGMENT} bytes (64 KiB); the \
                 default is 8 MiB"
            )));
        }
        for (name, value) in &config.headers {
            crate::job::check_header(name, value)?;
        }
        crate::job::check_header_names(&config.keep_headers)?;
        if config.min_rate.is_some() && config.min_rate_window.is_zero() {
            return Err(Error::config(
                "the minimum rate's window must be longer than zero",
            ));
        }
        if let (Some(min), Some(limit)) = (config.min_rate, config.limit_rate)
            && min > limit
        {
            return Err(Error::config(format!(
                "the minimum rate ({min} bytes/s) is above the overall rate limit \
                 ({limit} bytes/s): every transfer would fail it; lower the minimum"
            )));
        }
        if config.serial {
            config.workers = 1;
        }
        crate::job::check_no_encoding(&config.headers)?;
        config.lookahead = config.lookahead.max(config.workers * 64);
        let proxy = self.proxy.as_ref().map(|s| s.0.as_str());
        let no_proxy = self.no_proxy.as_deref();
        let settings = if self.proxy_from_env {
            ProxySettings::from_env(proxy, no_proxy)
        } else {
            ProxySettings::new(proxy, no_proxy)
        };
        config.proxy = settings.map_err(|e| match e.source.as_str() {
            "proxy" => Error::setting(Setting::Proxy, e.message),
            _ => Error::config(e.to_string()),
        })?;
        check_output_dir(&config.output_dir)?;
        Ok(config)
    }
}

/// Creates the output directory if needed and proves it writable with a probe file.
fn check_output_dir(dir: &PathBuf) -> Result<(), Error> {
    fs::create_dir_all(dir).map_err(|e| {
        Error::setting(
            Setting::OutputDir,
            format!(
                "cannot create output directory '{}': {e}; choose another or fix its permissions",
                dir.display()
            ),
        )
    })?;
    let probe = dir.join(format!(".fetchpool-probe-{}", std::process::id()));
    // Its name is predictable: a link planted there is replaced, never written through.
    crate::output::nofollow::write(&probe, b"").map_err(|e| {
        Error::setting(
            Setting::OutputDir,
            format!(
                "output directory '{}' is not writable: {e}; choose another or fix its permissions",
                dir.display()
            ),
        )
    })?;
    let _ = fs::remove_file(&probe);
    Ok(())
}

impl Config {
    /// What this run asks of its finished files.
    pub(crate) fn placing(&self) -> crate::output::place::Placing<'_> {
        crate::output::place::Placing {
            output_dir: &self.output_dir,
            remote_time: self.remote_time,
            content_disposition: self.content_disposition,
            state_dir: self.state_dir.as_deref(),
        }
    }
}
