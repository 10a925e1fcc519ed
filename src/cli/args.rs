//! The command line: arguments, their defaults and units, and the help text that teaches.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use fetchpool::parse_size;

const EXAMPLES: &str = "\
Examples:
  fetchpool https://example.com/a.iso https://example.com/b.iso
  fetchpool -i urls.txt -o mirror -j 32 --report report.jsonl
  fetchpool -i manifest.tsv --per-host 4 --retries 5 --max-time 600
  fetchpool -i manifest.tsv --limit-rate 10M          at most 10 MiB/s in total
  fetchpool -i manifest.tsv --dry-run                 check the list, print the plan
  fetchpool -i manifest.tsv --report r.jsonl --retry-failed r.jsonl
                                                      re-run only what failed last time
  fetchpool -i manifest.tsv --shard 2/8               this machine's eighth of the list
  fetchpool -i manifest.tsv --shard auto              Kubernetes Indexed Job or Slurm array
  cat urls.txt | fetchpool -i - -o out --json
  fetchpool verify -i manifest.tsv -o mirror
  fetchpool report -i manifest.tsv 'report-*.jsonl'   one summary over the shards' reports
  fetchpool -i ids.txt --to-memory --responses out.jsonl --rate 20/s -u ann
                                                      an API run: 20 calls a second, each
                                                      answer a line of out.jsonl, the
                                                      password from FETCHPOOL_PASSWORD
  fetchpool -i SHA256SUMS --base-url https://mirror.example/debian/ -o debian
  fetchpool verify -i SHA256SUMS -o debian

Job lists (one job per line; '#' comments and blank lines ignored):
  plain   URL                                   file named after the URL's last segment
                                                (or its path, --keep-path); URLs whose
                                                names repeat get NAME-HASH.EXT (see README)
  TSV     URL<TAB>PATH[<TAB>CHECKSUM[<TAB>SIZE]]
          PATH relative to --output-dir; CHECKSUM md5:HEX, sha1:HEX, sha256:HEX,
          sha512:HEX, or bare 64 hex digits (a sha256)
  JSON    {\"url\":…, \"path\":…, \"checksum\":\"ALGO:HEX\" (or \"sha256\":…), \"size\":…,
           \"id\":…, \"after\":[…], \"method\":…, \"headers\":{…}, \"body\":…,
           \"priority\":…, \"memory\":…, \"timeout\":SECS, \"max_time\":SECS, \"retries\":N}

Units: durations in seconds (or 500ms, 5m, 1h); rates in bytes per second with K, M, G
suffixes that are 1024-based, as in curl (2M = 2,097,152 bytes/s).

Exit status: 0 all ok or skipped, 1 some job failed, 2 usage or configuration error,
130 stopped by Ctrl-C, 143 by SIGTERM, 129 by SIGHUP (each stops the run gracefully and
keeps partial files: run the same command again to resume).
Progress bar on stderr when it is a terminal; otherwise a status line every 30 s
(--progress, --progress-interval), and the final summary.
Logs go to stderr; set RUST_LOG=fetchpool=debug (or -v, -vv) for more.";

/// Bulk HTTP downloader: a fixed pool of threads, verified files, resumable runs.
#[derive(Parser, Debug)]
#[command(
    name = "fetchpool",
    version,
    about,
    after_help = EXAMPLES,
    args_conflicts_with_subcommands = true,
    max_term_width = 100
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,

    #[command(flatten)]
    pub run: RunArgs,
}

/// Subcommands.
#[derive(Subcommand, Debug)]
pub enum Command {
    /// Check files on disk against a manifest's checksums (or a SHA256SUMS-style
    /// checksum file), in parallel; no network.
    Verify(VerifyArgs),
    /// One summary over several --report files (the shards of one list); no network.
    Report(ReportArgs),
}

/// `fetchpool report`.
#[derive(Args, Debug)]
#[command(after_help = "\
A job in several reports counts once, by its latest line (finished_at_ms; without it, the
later report on the command line). With -i, listed jobs no report names and reported jobs
the list lacks are named too. Exit status: 0 every job ok or skipped, 1 a job failed or was
cancelled or a listed job has no line, 2 an unreadable report or list.

Example: fetchpool report -i manifest.tsv 'report-*.jsonl'")]
pub struct ReportArgs {
    /// Report files written by --report; a '*' or '?' in the path is expanded here
    /// too (for a quoted pattern, or where no shell expands it).
    #[arg(value_name = "REPORT", required = true)]
    pub reports: Vec<PathBuf>,
    /// The job list the reports came from; names its jobs that no report has. Repeatable.
    #[arg(short, long, value_name = "FILE")]
    pub input: Vec<PathBuf>,
    /// Print the summary as JSON on stdout.
    #[arg(long)]
    pub json: bool,
}

/// `fetchpool verify`.
#[derive(Args, Debug)]
pub struct VerifyArgs {
    /// Manifest with a checksum per file (TSV, JSON lines, or a checksum file such as
    /// SHA256SUMS); '-' reads stdin.
    #[arg(short, long, value_name = "FILE")]
    pub input: PathBuf,
    /// Directory the manifest's paths are relative to.
    #[arg(short, long, value_name = "DIR", default_value = ".")]
    pub output_dir: PathBuf,
    /// Print the summary as JSON on stdout.
    #[arg(long)]
    pub json: bool,
}

/// Downloading.
#[derive(Args, Debug)]
pub struct RunArgs {
    /// URLs to download (in addition to --input).
    #[arg(value_name = "URL", help_heading = "Input")]
    pub urls: Vec<String>,

    /// Job list: plain URLs, TSV or JSON lines; '-' reads stdin. Repeatable.
    #[arg(short, long, value_name = "FILE", help_heading = "Input")]
    pub input: Vec<PathBuf>,

    /// The URL the paths of a checksum file given with --input are under: each line of
    /// a SHA256SUMS, SHA512SUMS or MD5SUMS file (or BSD 'SHA256 (PATH) = HEX') becomes a
    /// job for URL/PATH into PATH, verified with its digest.
    #[arg(long, value_name = "URL", help_heading = "Input")]
    pub base_url: Option<String>,

    /// Read and check the list, print the plan (jobs, hosts, files already up to date),
    /// and exit without any request.
    #[arg(long, help_heading = "Input")]
    pub dry_run: bool,

    /// Re-run only the jobs that failed or were cancelled in an earlier --report FILE.
    /// Give the same job list as that run: the report names the jobs, the list says how
    /// to check them (sha256, size, headers). Jobs match by path and the URL's host and
    /// path (a re-signed URL still matches); a failed job the list lacks exits 2.
    /// Repeatable, and a quoted '*' or '?' in the file name is expanded here (the
    /// reports of several shards: --retry-failed 'report-*.jsonl'): a job is re-run when
    /// some report says it failed or was cancelled and none says it succeeded.
    #[arg(long, value_name = "REPORT", help_heading = "Input")]
    pub retry_failed: Vec<PathBuf>,

    /// Take only shard K of N of the job list, stable by output path, so N machines can
    /// split one list without coordination; 'auto' reads a Kubernetes Indexed Job
    /// (JOB_COMPLETION_INDEX) or a Slurm array (SLURM_ARRAY_TASK_ID) [default: all].
    #[arg(long, value_name = "K/N|auto", value_parser = parse_shard, help_heading = "Input")]
    pub shard: Option<ShardArg>,

    /// Number of shards for --shard auto, when the environment does not say it
    /// (Kubernetes: the Job's completions; also read from FETCHPOOL_SHARD_COUNT)
    /// [default: from the environment].
    #[arg(long, value_name = "N", help_heading = "Input")]
    pub shard_count: Option<u64>,

    /// Workers: the most requests in flight at once.
    #[arg(
        short = 'j',
        long = "workers",
        value_name = "N",
        default_value_t = 16,
        help_heading = "Concurrency"
    )]
    pub workers: usize,

    /// The most requests in flight to one host (scheme, host and port), to be gentler
    /// with a server than -j alone [default: the worker count, no separate cap].
    #[arg(long, value_name = "N", help_heading = "Concurrency")]
    pub per_host: Option<usize>,

    /// One job at a time, strictly in input order (retries included).
    #[arg(long, help_heading = "Concurrency")]
    pub serial: bool,

    /// After the first failure, start no new job.
    #[arg(long, help_heading = "Concurrency")]
    pub fail_fast: bool,

    /// Overall download rate shared by all workers, in bytes per second; K, M and G are
    /// 1024-based as in curl (10M = 10 MiB/s) [default: unlimited].
    #[arg(long, value_name = "RATE", value_parser = fetchpool::parse_rate, help_heading = "Concurrency")]
    pub limit_rate: Option<u64>,

    /// The most requests started per second in the whole run, one budget across all
    /// hosts: N/s, N/m or N/h (a bare N is per second), evenly spaced, no burst at the
    /// start. Retries count; jobs wait in line without holding a connection
    /// [default: unlimited].
    #[arg(long, value_name = "N/s|N/m|N/h", value_parser = parse_request_rate, help_heading = "Concurrency")]
    pub rate: Option<f64>,

    /// As --rate, for each host (scheme, host and port) on its own. Either way a 429
    /// halves its host's rate, which grows back by a quarter every 5 s without one
    /// [default: unlimited].
    #[arg(long, value_name = "N/s|N/m|N/h", value_parser = parse_request_rate, help_heading = "Concurrency")]
    pub per_host_rate: Option<f64>,
    /// The most connections one file is fetched over at once: a large file whose server
    /// serves ranges under a strong validator is split into segments, each connection
    /// counted against -j and --per-host; 1 never splits.
    #[arg(
        long,
        value_name = "N",
        default_value_t = 5,
        help_heading = "Concurrency"
    )]
    pub split: usize,

    /// The length of one segment of a split file, in bytes; K, M and G are 1024-based as
    /// in curl. Files longer than two segments are split.
    #[arg(long, value_name = "SIZE", default_value = "8M", value_parser = parse_size, help_heading = "Concurrency")]
    pub segment_size: u64,

    /// Limit for DNS, TCP, TLS and proxy handshakes, in seconds.
    #[arg(long, value_name = "SECS", default_value = "10", value_parser = parse_secs, help_heading = "Timeouts and retries")]
    pub connect_timeout: Duration,

    /// Fail a transfer when no byte arrives for this long, in seconds (stall).
    #[arg(long, value_name = "SECS", default_value = "30", value_parser = parse_secs, help_heading = "Timeouts and retries")]
    pub idle_timeout: Duration,

    /// A job's whole budget in seconds, retries included, from its first start [default: none].
    #[arg(long, value_name = "SECS", value_parser = parse_secs, help_heading = "Timeouts and retries")]
    pub max_time: Option<Duration>,

    /// Fail a transfer whose body arrives slower than this, in bytes per second averaged
    /// over each --min-rate-window (curl's --speed-limit); K, M, G as for --limit-rate.
    /// A timeout (phase min_rate), retried [default: none].
    #[arg(long, value_name = "RATE", value_parser = fetchpool::parse_rate, help_heading = "Timeouts and retries")]
    pub min_rate: Option<u64>,

    /// The window --min-rate is averaged over, in seconds (curl's --speed-time).
    #[arg(long, value_name = "SECS", default_value = "30", value_parser = parse_secs, help_heading = "Timeouts and retries")]
    pub min_rate_window: Duration,

    /// Extra attempts for transient errors (connect, timeout, reset, 408/429/5xx).
    #[arg(
        long,
        value_name = "N",
        default_value_t = 3,
        help_heading = "Timeouts and retries"
    )]
    pub retries: u32,

    /// First wait between attempts in seconds, doubled each retry; each wait is drawn
    /// between half the step and the step (1 s base, 3 retries: 3.5 to 7 s in all). An
    /// attempt that added bytes to the partial file does not use up a retry.
    #[arg(long, value_name = "SECS", default_value = "1", value_parser = parse_secs, help_heading = "Timeouts and retries")]
    pub retry_base: Duration,

    /// Longest wait between attempts in seconds, Retry-After included.
    #[arg(long, value_name = "SECS", default_value = "30", value_parser = parse_secs, help_heading = "Timeouts and retries")]
    pub retry_max_delay: Duration,

    /// Most redirects followed per request.
    #[arg(
        long,
        value_name = "N",
        default_value_t = 10,
        help_heading = "Proxy, redirects and TLS"
    )]
    pub max_redirects: u32,

    /// Follow redirects from https to plain http.
    #[arg(long, help_heading = "Proxy, redirects and TLS")]
    pub allow_downgrade: bool,

    /// Proxy for every request and redirect hop: http://, https://, socks5:// or
    /// socks5h://, with optional user:password@. '' means no proxy (environment ignored)
    /// [default: from the environment].
    #[arg(long, value_name = "URL", help_heading = "Proxy, redirects and TLS")]
    pub proxy: Option<String>,

    /// Hosts reached without the proxy, curl's rules: 'example.com,10.0.0.0/8,*'.
    /// Overrides NO_PROXY [default: from NO_PROXY].
    #[arg(long, value_name = "LIST", help_heading = "Proxy, redirects and TLS")]
    pub no_proxy: Option<String>,

    /// Ignore http_proxy, HTTPS_PROXY, ALL_PROXY and NO_PROXY (read by default, as curl does).
    #[arg(long, help_heading = "Proxy, redirects and TLS")]
    pub no_proxy_env: bool,

    /// Also trust the CA certificate(s) in this PEM file. Repeatable [default: the
    /// system's trust store only].
    #[arg(long, value_name = "FILE", help_heading = "Proxy, redirects and TLS")]
    pub cacert: Vec<PathBuf>,

    /// Trust the system's certificate store, as curl does: SSL_CERT_FILE and SSL_CERT_DIR
    /// when set, else the system's (/etc/ssl/certs); Mozilla's roots where there is none
    /// [default].
    #[arg(
        long,
        overrides_with = "no_ca_native",
        help_heading = "Proxy, redirects and TLS"
    )]
    pub ca_native: bool,

    /// Trust Mozilla's roots (built in) instead of the system's store.
    #[arg(
        long,
        overrides_with = "ca_native",
        help_heading = "Proxy, redirects and TLS"
    )]
    pub no_ca_native: bool,

    /// Client certificate (PEM) for servers that ask for one (mutual TLS); the file may
    /// hold the private key too.
    #[arg(long, value_name = "FILE", help_heading = "Proxy, redirects and TLS")]
    pub cert: Option<PathBuf>,

    /// The client certificate's private key (PEM, unencrypted), when not in --cert's file.
    #[arg(
        long,
        value_name = "FILE",
        requires = "cert",
        help_heading = "Proxy, redirects and TLS"
    )]
    pub key: Option<PathBuf>,

    /// Verify a body without a listed checksum against its ETag when that is a plain
    /// 32-hex MD5, as S3 gives for single-part uploads (a multipart '…-N' ETag is
    /// ignored). Off by default: other servers' ETags are not MD5s.
    #[arg(long, help_heading = "Output and reporting")]
    pub etag_md5: bool,

    /// After the run, write a sha256sum-compatible file of every file the run holds
    /// (downloaded or already up to date), its paths relative to --output-dir: check it
    /// there with 'sha256sum -c FILE' [default: none].
    #[arg(long, value_name = "FILE", help_heading = "Output and reporting")]
    pub write_checksums: Option<PathBuf>,

    /// After a run in which every job succeeded, delete the files under --output-dir
    /// that the job list does not name (a mirror sync); never the state directory, never
    /// a symbolic link or what it points to. With --dry-run, list them.
    #[arg(long, help_heading = "Output and reporting")]
    pub delete_extraneous: bool,

    /// With --delete-extraneous, refuse (exit 2, before any request, nothing deleted) to
    /// delete more than N files [default: no limit].
    #[arg(
        long,
        value_name = "N",
        requires = "delete_extraneous",
        help_heading = "Output and reporting"
    )]
    pub max_delete: Option<u64>,

    /// Where files go; created if missing.
    #[arg(
        short,
        long,
        value_name = "DIR",
        default_value = ".",
        help_heading = "Output and reporting"
    )]
    pub output_dir: PathBuf,

    /// Name files after the URL's whole path, like wget -x: 'http://h/a/b.json' is
    /// 'a/b.json'; '--keep-path=host' puts the host first ('h/a/b.json'). For lines
    /// without a path [default: the URL's last segment].
    #[arg(
        long,
        value_name = "host",
        num_args = 0..=1,
        require_equals = true,
        default_missing_value = "path",
        value_parser = ["path", "host"],
        hide_possible_values = true,
        help_heading = "Naming"
    )]
    pub keep_path: Option<String>,

    /// Name a file whose name comes from its URL after the server's Content-Disposition
    /// filename instead: its last component only, sanitized, in the same folder, never
    /// over an existing file.
    #[arg(long, help_heading = "Naming")]
    pub content_disposition: bool,

    /// Give each file the server's Last-Modified as its modification time (curl -R).
    #[arg(long, help_heading = "Naming")]
    pub remote_time: bool,

    /// With --keep-path, drop this many leading folders of the URL's path, like wget's
    /// --cut-dirs.
    #[arg(
        long,
        value_name = "N",
        default_value_t = 0,
        requires = "keep_path",
        help_heading = "Naming"
    )]
    pub cut_dirs: usize,

    /// Basic credentials for every job, 'USER:PASSWORD', or 'USER' with the password in
    /// the environment variable FETCHPOOL_PASSWORD (kept out of ps and shell history).
    /// Sent only to each job's own host, never to a proxy [default: none].
    #[arg(
        short = 'u',
        long = "user",
        value_name = "USER[:PASSWORD]",
        help_heading = "Credentials"
    )]
    pub user: Option<String>,

    /// Read Basic credentials per host from $NETRC or ~/.netrc (curl's format: machine,
    /// login, password, default), for jobs without credentials of their own.
    #[arg(long, help_heading = "Credentials")]
    pub netrc: bool,

    /// As --netrc, from FILE.
    #[arg(
        long,
        value_name = "FILE",
        conflicts_with = "netrc",
        help_heading = "Credentials"
    )]
    pub netrc_file: Option<PathBuf>,

    /// Extra request header, 'Name: value'; '@FILE' reads one header a line from FILE
    /// (out of ps and shell history). Repeatable. Accept-Encoding (other than identity)
    /// is refused: bodies are saved as sent, never decoded.
    #[arg(
        short = 'H',
        long = "header",
        value_name = "'K: V'",
        help_heading = "Output and reporting"
    )]
    pub headers: Vec<String>,

    /// Keep the body of every job of a plain or TSV list in memory, for --responses,
    /// instead of writing a file (JSON lines choose with "memory": true).
    #[arg(long, help_heading = "API runs")]
    pub to_memory: bool,

    /// The largest body a memory job keeps, in bytes with K, M, G (1024-based, as curl);
    /// a longer one fails with kind too_large and reading stops at the limit.
    #[arg(long, value_name = "SIZE", default_value = "64M", value_parser = parse_size, help_heading = "API runs")]
    pub memory_limit: u64,

    /// Write each memory job's response to FILE as it finishes, one JSON object a line
    /// ('-' for stdout): url, id, status, http_status, headers and body (the JSON value,
    /// a UTF-8 string or base64, as body_encoding says) [default: none].
    #[arg(long, value_name = "FILE", help_heading = "API runs")]
    pub responses: Option<PathBuf>,

    /// Keep this response header (e.g. ETag, Link, X-RateLimit-Remaining) in the report's
    /// and --responses' "headers". Repeatable [default: none].
    #[arg(long, value_name = "NAME", help_heading = "API runs")]
    pub save_header: Vec<String>,

    /// Write one JSON object per job to FILE as jobs finish [default: none].
    #[arg(long, value_name = "FILE", help_heading = "Output and reporting")]
    pub report: Option<PathBuf>,

    /// Print the final summary as one JSON object on stdout.
    #[arg(long, help_heading = "Output and reporting")]
    pub json: bool,

    /// How progress is shown on stderr: auto (the bar on a terminal, otherwise a status
    /// line every --progress-interval), bar, lines, json (one JSON object a line, for
    /// machines) or none.
    #[arg(
        long,
        value_name = "MODE",
        value_enum,
        default_value = "auto",
        hide_possible_values = true,
        help_heading = "Output and reporting"
    )]
    pub progress: ProgressMode,

    /// Seconds between two status lines of --progress lines or json.
    #[arg(long, value_name = "SECS", default_value = "30", value_parser = parse_secs, help_heading = "Output and reporting")]
    pub progress_interval: Duration,

    /// Print only errors: no progress bar, no summary.
    #[arg(short, long, help_heading = "Output and reporting")]
    pub quiet: bool,

    /// More log output on stderr (-v info, -vv debug); RUST_LOG overrides.
    #[arg(short, long, action = clap::ArgAction::Count, help_heading = "Output and reporting")]
    pub verbose: u8,
}

/// How progress is shown (`--progress`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ProgressMode {
    /// The bar when stderr is a terminal, otherwise status lines.
    Auto,
    /// The bar (drawn only on a terminal).
    Bar,
    /// One status line on stderr every interval.
    Lines,
    /// One JSON object on stderr every interval.
    Json,
    /// Nothing but the summary.
    None,
}

impl ProgressMode {
    /// `auto` decided: the bar on a terminal, lines elsewhere.
    pub fn resolve(self, quiet: bool, terminal: bool) -> ProgressMode {
        match self {
            _ if quiet => ProgressMode::None,
            ProgressMode::Auto if terminal => ProgressMode::Bar,
            ProgressMode::Auto => ProgressMode::Lines,
            other => other,
        }
    }
}

/// What `--shard` asked for: a fixed shard, or one read from the environment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ShardArg {
    /// `--shard K/N`.
    Fixed(fetchpool::Shard),
    /// `--shard auto`.
    Auto,
}

/// Parses `K/N` or `auto`.
pub fn parse_shard(s: &str) -> Result<ShardArg, String> {
    if s.trim().eq_ignore_ascii_case("auto") {
        return Ok(ShardArg::Auto);
    }
    // The library's message names no flag; this one does.
    fetchpool::Shard::parse(s)
        .map(ShardArg::Fixed)
        .map_err(|e| format!("--shard {e}"))
}

/// Parses a request rate: `50/s`, `3000/m`, `100/h`, or a bare number per second;
/// returns requests per second.
pub fn parse_request_rate(s: &str) -> Result<f64, String> {
    let t = s.trim();
    let (num, per) = match t.rsplit_once('/') {
        Some((n, unit)) => {
            let per = match unit.trim() {
                "s" | "sec" | "second" => 1.0,
                "m" | "min" | "minute" => 60.0,
                "h" | "hour" => 3600.0,
                other => {
                    return Err(format!(
                        "unknown unit '/{other}' in '{s}'; write requests per second, minute \
                         or hour: 50/s, 3000/m, 100/h"
                    ));
                }
            };
            (n.trim(), per)
        }
        None => (t, 1.0),
    };
    let value: f64 = num.parse().map_err(|_| {
        format!("'{s}' is not a request rate; write requests per second, minute or hour: 50/s, 3000/m, 100/h")
    })?;
    if !value.is_finite() || value <= 0.0 {
        return Err(format!("'{s}' must be more than 0 requests"));
    }
    Ok(value / per)
}

/// Parses seconds: `10`, `2.5`, or with a unit: `500ms`, `30s`, `5m`, `1h`.
pub fn parse_secs(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let (num, unit) = match s.find(|c: char| c.is_ascii_alphabetic()) {
        Some(i) => (&s[..i], &s[i..]),
        None => (s, "s"),
    };
    let value: f64 = num.parse().map_err(|_| {
        format!("'{s}' is not a duration; write seconds like 10 or 2.5, or 500ms, 5m")
    })?;
    let scale = match unit {
        "ms" => 0.001,
        "s" => 1.0,
        "m" => 60.0,
        "h" => 3600.0,
        _ => return Err(format!("unknown unit '{unit}' in '{s}'; use ms, s, m or h")),
    };
    if !value.is_finite() || value < 0.0 {
        return Err(format!("'{s}' must be a positive number of seconds"));
    }
    Ok(Duration::from_secs_f64(value * scale))
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn request_rates_per_second_minute_or_hour() {
        assert_eq!(parse_request_rate("50/s"), Ok(50.0));
        assert_eq!(parse_request_rate("50"), Ok(50.0));
        assert_eq!(parse_request_rate("120/m"), Ok(2.0));
        assert_eq!(parse_request_rate("1800/h"), Ok(0.5));
        assert!(parse_request_rate("0/s").is_err());
        assert!(
            parse_request_rate("5/d")
                .unwrap_err()
                .contains("unknown unit")
        );
        assert!(parse_request_rate("fast").is_err());
    }

    #[test]
    fn durations_with_units() {
        assert_eq!(parse_secs("10"), Ok(Duration::from_secs(10)));
        assert_eq!(parse_secs("2.5"), Ok(Duration::from_millis(2500)));
        assert_eq!(parse_secs("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_secs("5m"), Ok(Duration::from_secs(300)));
        assert!(parse_secs("ten").is_err());
        assert!(parse_secs("-1").is_err());
    }
}
