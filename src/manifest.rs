//! Reads job lists, one job per line, streamed: the list is never held in memory.
//!
//! Three formats, chosen per line so that lists can be concatenated:
//! - plain: `URL` (the file is named after the URL's last path segment);
//! - TSV: `URL<TAB>PATH[<TAB>CHECKSUM[<TAB>SIZE]]`, the checksum as `ALGO:HEX` (md5, sha1,
//!   sha256, sha512, crc32c) or bare 64 hex digits (a sha256);
//! - JSON lines: `{"url": …, "path": …, "sha256": …, "checksum": "ALGO:HEX", "size": …,
//!   "id": …, "after": […], "method": …, "headers": {…}, "body": …, "priority": …,
//!   "memory": …, "timeout": …, "max_time": …, "retries": …}` (`timeout`, the stall limit,
//!   and `max_time`, the job's whole budget, in seconds; `retries` extra attempts: each the
//!   pool's when absent).
//!
//! A reader given a base URL ([`ManifestReader::base_url`]) also reads checksum files
//! (`SHA256SUMS`, `SHA512SUMS`, `MD5SUMS`, BSD tags; see `crate::sums`): each line a job
//! for `BASE/PATH` into `PATH`, verified with its digest.
//!
//! Blank lines and lines starting with `#` are ignored. Every error names the list and
//! the 1-based line, and says what to fix. A line is kept in memory only up to
//! [`MAX_LINE`] bytes, however long it is, and messages quote at most a readable start of
//! it: a hostile list costs no more memory than a good one.

use std::collections::BTreeMap;
use std::io::{self, BufRead};

use serde::Deserialize;

use crate::checksum::{Algorithm, Checksum};
use crate::error::Error;
use crate::job::{Destination, Job, Naming, Origin};
use crate::redact::{SHOWN_CHARS, clip};

/// The longest line a job list may have, in bytes (1 MiB): far more than any URL, path
/// and checksum need, and than the JSON form needs for headers and a small request body.
/// A longer line is an error naming it; only its first [`MAX_LINE`] bytes are read into
/// memory.
pub const MAX_LINE: usize = 1 << 20;

/// An iterator over the jobs of one list.
///
/// ```
/// use fetchpool::ManifestReader;
/// let list = "# assets\nhttp://127.0.0.1/a.bin\nhttp://127.0.0.1/b\tdir/b.bin\n";
/// let jobs: Vec<_> = ManifestReader::new("list.txt", list.as_bytes())
///     .collect::<Result<_, _>>()
///     .unwrap();
/// assert_eq!(jobs[1].path().unwrap().to_str(), Some("dir/b.bin"));
/// assert_eq!(jobs[1].origin.as_ref().unwrap().line, 3);
/// ```
pub struct ManifestReader<R> {
    name: std::sync::Arc<str>,
    input: R,
    line_no: u64,
    /// The current line, at most [`MAX_LINE`] bytes of it (and its newline).
    buf: Vec<u8>,
    failed: bool,
    naming: Naming,
    to_memory: bool,
    /// The URL checksum-file paths are under, when the list may be one.
    base_url: Option<String>,
}

impl<R: BufRead> ManifestReader<R> {
    /// Reads the list `input`, called `name` in messages (a path, `-` for stdin).
    pub fn new(name: impl Into<String>, input: R) -> Self {
        ManifestReader {
            name: name.into().into(),
            input,
            line_no: 0,
            buf: Vec::new(),
            failed: false,
            naming: Naming::LastSegment,
            to_memory: false,
            base_url: None,
        }
    }

    /// Makes every job of a plain or TSV line a memory job (JSON lines say it with
    /// `"memory"`). Defaults to false.
    pub fn to_memory(mut self, yes: bool) -> Self {
        self.to_memory = yes;
        self
    }

    /// How lines without a path name their files. Defaults to
    /// [`Naming::LastSegment`].
    pub fn naming(mut self, naming: Naming) -> Self {
        self.naming = naming;
        self
    }

    /// Reads checksum-file lines too (`HEX  PATH`, `HEX *PATH`, `ALGO (PATH) = HEX`), as
    /// jobs for `base/PATH` into `PATH` with the line's checksum. Without a base URL such
    /// a line is an error: it names no URL.
    ///
    /// ```
    /// use fetchpool::ManifestReader;
    /// let sums = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855  d/empty.txt\n";
    /// let jobs: Vec<_> = ManifestReader::new("SHA256SUMS", sums.as_bytes())
    ///     .base_url("http://127.0.0.1/mirror/")
    ///     .collect::<Result<_, _>>()
    ///     .unwrap();
    /// assert_eq!(jobs[0].url, "http://127.0.0.1/mirror/d/empty.txt");
    /// assert_eq!(jobs[0].path().unwrap().to_str(), Some("d/empty.txt"));
    /// ```
    pub fn base_url(mut self, url: impl Into<String>) -> Self {
        self.base_url = Some(url.into());
        self
    }

    fn origin(&self) -> Origin {
        Origin {
            source: self.name.clone(),
            line: self.line_no,
        }
    }

    /// A problem of the current line: a configuration error placed on it.
    fn error(&self, message: impl std::fmt::Display) -> Error {
        Error::config(message.to_string()).at(self.origin())
    }

    /// Reads the next line into `buf`, keeping at most [`MAX_LINE`] bytes and its
    /// newline, and returns the line's whole length in bytes (`None` at the end).
    fn read_line(&mut self) -> io::Result<Option<u64>> {
        self.buf.clear();
        let mut total: u64 = 0;
        loop {
            let available = match self.input.fill_buf() {
                Ok(b) => b,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            };
            if available.is_empty() {
                return Ok((total > 0).then_some(total));
            }
            let (n, done) = match available.iter().position(|&b| b == b'\n') {
                Some(i) => (i + 1, true),
                None => (available.len(), false),
            };
            let room = (MAX_LINE + 1).saturating_sub(self.buf.len());
            self.buf.extend_from_slice(&available[..n.min(room)]);
            self.input.consume(n);
            total += n as u64;
            if done {
                return Ok(Some(total));
            }
        }
    }
}

impl<R: BufRead> Iterator for ManifestReader<R> {
    type Item = Result<Job, Error>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed {
            return None;
        }
        loop {
            let total = match self.read_line() {
                Ok(None) => return None,
                Ok(Some(total)) => total,
                Err(e) => {
                    self.failed = true;
                    self.line_no += 1;
                    return Some(Err(self.error(format_args!(
                        "cannot read the job list: {e} (job lists are UTF-8 text, one job per line)"
                    ))));
                }
            };
            self.line_no += 1;
            let kept = self.buf.strip_suffix(b"\n").unwrap_or(&self.buf);
            let kept = kept.strip_suffix(b"\r").unwrap_or(kept);
            if kept.len() > MAX_LINE {
                let start: String = String::from_utf8_lossy(&kept[..240])
                    .chars()
                    .take(60)
                    .collect();
                return Some(Err(self.error(format_args!(
                    "line is {total} bytes long, more than the {MAX_LINE} a job line may have; \
                     it starts '{start}…'"
                ))));
            }
            let line = match std::str::from_utf8(kept) {
                Ok(line) => line,
                Err(e) => {
                    return Some(Err(self.error(format_args!(
                        "not UTF-8 text (byte {} of the line); job lists are UTF-8 text, one \
                         job per line: percent-encode other bytes in URLs",
                        e.valid_up_to() + 1
                    ))));
                }
            };
            if line.trim().is_empty() || line.trim_start().starts_with('#') {
                continue;
            }
            let mut parsed = match crate::sums::line(line.trim_end()) {
                Some(sum) => sum
                    .and_then(|sum| self.sum_job(sum))
                    .map_err(|m| self.error(m)),
                None => parse_line(line, &self.naming).map_err(|m| self.error(m)),
            };
            if self.to_memory
                && !line.trim_start().starts_with('{')
                && let Ok(job) = parsed
            {
                parsed = Ok(job.to_memory());
            }
            let parsed = parsed.and_then(|mut job| {
                job.origin = Some(self.origin());
                job.check().map_err(|e| e.at(self.origin()))?;
                Ok(job)
            });
            return Some(parsed);
        }
    }
}

impl<R> ManifestReader<R> {
    /// The job of a checksum-file line, for the base URL.
    fn sum_job(&self, sum: crate::sums::SumLine) -> Result<Job, String> {
        let Some(base) = &self.base_url else {
            return Err(format!(
                "'{}' is a checksum-file line (digest and path), which names no URL; read the \
                 list with the base URL its paths are under",
                clip(&sum.path, SHOWN_CHARS)
            ));
        };
        let url = crate::sums::url_under(base, &sum.path);
        Ok(Job::with_dest(url, Destination::File(sum.path.into())).checksum(sum.checksum))
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct JsonJob {
    url: String,
    path: Option<String>,
    sha256: Option<String>,
    checksum: Option<String>,
    size: Option<u64>,
    id: Option<String>,
    #[serde(default)]
    after: Vec<String>,
    method: Option<String>,
    #[serde(default)]
    headers: BTreeMap<String, String>,
    body: Option<String>,
    #[serde(default)]
    memory: bool,
    #[serde(default)]
    priority: i32,
    /// The stall limit, in seconds.
    timeout: Option<f64>,
    /// The job's whole budget, in seconds.
    max_time: Option<f64>,
    retries: Option<u32>,
}

/// A JSON line's `name` in seconds as a duration: more than 0 and at most a year.
fn seconds(name: &str, value: Option<f64>) -> Result<Option<std::time::Duration>, String> {
    const YEAR: f64 = 365.0 * 86400.0;
    match value {
        None => Ok(None),
        Some(v) if v.is_finite() && v > 0.0 && v <= YEAR => {
            Ok(Some(std::time::Duration::from_secs_f64(v)))
        }
        Some(v) => Err(format!(
            "\"{name}\": {v} is not a number of seconds above 0 (at most a year, {YEAR}); \
             write it like \"{name}\": 30 or 2.5"
        )),
    }
}

fn parse_line(line: &str, naming: &Naming) -> Result<Job, String> {
    let trimmed = line.trim();
    if trimmed.starts_with('{') {
        return parse_json(trimmed, naming);
    }
    if line.contains('\t') {
        return parse_tsv(line, naming);
    }
    if trimmed.contains(char::is_whitespace) {
        return Err(format!(
            "'{}' has spaces; separate URL, path, sha256 and size with TABs, or percent-encode spaces in the URL",
            clip(trimmed, SHOWN_CHARS)
        ));
    }
    Ok(Job::named(trimmed, naming))
}

fn parse_tsv(line: &str, naming: &Naming) -> Result<Job, String> {
    let fields: Vec<&str> = line.split('\t').map(str::trim).collect();
    if fields.len() > 4 {
        return Err(format!(
            "{} tab-separated fields; expected URL<TAB>PATH[<TAB>CHECKSUM[<TAB>SIZE]]",
            fields.len()
        ));
    }
    let mut job = match fields.get(1).filter(|p| !p.is_empty()) {
        Some(path) => Job::with_dest(fields[0].to_string(), Destination::File(path.into())),
        None => Job::named(fields[0], naming),
    };
    if let Some(sum) = fields.get(2).filter(|s| !s.is_empty() && **s != "-") {
        job = job.checksum(parse_checksum(sum)?);
    }
    if let Some(size) = fields.get(3).filter(|s| !s.is_empty() && **s != "-") {
        let n = size.parse::<u64>().map_err(|_| {
            format!(
                "size '{}' is not a number of bytes; write it as digits",
                clip(size, SHOWN_CHARS)
            )
        })?;
        job = job.size(n);
    }
    Ok(job)
}

/// A checksum field: `ALGO:HEX` or bare 64 hex digits (a sha256).
fn parse_checksum(text: &str) -> Result<Checksum, String> {
    if !text.contains(':') {
        // A bare value keeps the sha256 message lists always had.
        return Ok(Checksum::new(Algorithm::Sha256, text));
    }
    text.parse()
        .map_err(|e: crate::checksum::ParseChecksumError| e.to_string())
}

fn parse_json(line: &str, naming: &Naming) -> Result<Job, String> {
    let j: JsonJob = serde_json::from_str(line)
        .map_err(|e| format!("invalid JSON job: {e}; see the JSON-lines job format"))?;
    let mut job = match (j.memory, j.path) {
        (true, _) => Job::with_dest(j.url, Destination::Memory),
        (false, Some(path)) => Job::with_dest(j.url, Destination::File(path.into())),
        (false, None) => Job::named(j.url, naming),
    };
    match (j.sha256, j.checksum) {
        (Some(_), Some(_)) => {
            return Err(
                "both \"sha256\" and \"checksum\" given; give one (\"checksum\": \"ALGO:HEX\")"
                    .to_string(),
            );
        }
        (Some(sha), None) => job = job.sha256(sha),
        (None, Some(sum)) => job = job.checksum(parse_checksum(&sum)?),
        (None, None) => {}
    }
    job.size = j.size;
    job.id = j.id;
    job.after = j.after;
    if let Some(m) = j.method {
        job.method = m.to_ascii_uppercase();
    }
    job.headers = j.headers.into_iter().collect();
    job.body = j.body.map(String::into_bytes);
    job.priority = j.priority;
    job.idle_timeout = seconds("timeout", j.timeout)?;
    job.max_time = seconds("max_time", j.max_time)?;
    job.retries = j.retries;
    Ok(job)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;
    use std::path::Path;

    fn read(list: &str) -> Vec<Result<Job, Error>> {
        ManifestReader::new("jobs.txt", list.as_bytes()).collect()
    }

    #[test]
    fn three_formats_on_one_list() {
        let sha = "ab".repeat(32);
        let list = format!(
            "http://h/x/a.bin\n\n# comment\nhttp://h/b\tout/b.bin\t{sha}\t12\n{{\"url\":\"http://h/c\",\"path\":\"c.json\",\"id\":\"c\",\"after\":[\"x\"],\"method\":\"post\",\"headers\":{{\"K\":\"V\"}},\"body\":\"hi\"}}\n"
        );
        let jobs: Vec<Job> = read(&list).into_iter().map(Result::unwrap).collect();
        assert_eq!(jobs.len(), 3);
        assert_eq!(jobs[0].path(), Some(Path::new("a.bin")));
        assert_eq!(jobs[1].path(), Some(Path::new("out/b.bin")));
        assert_eq!(
            jobs[1].checksum.as_ref().map(|c| c.hex.as_str()),
            Some(sha.as_str())
        );
        assert_eq!(jobs[1].size, Some(12));
        assert_eq!(jobs[1].origin.as_ref().unwrap().line, 4);
        assert_eq!(jobs[2].method, "POST");
        assert_eq!(jobs[2].after, vec!["x".to_string()]);
        assert_eq!(jobs[2].headers, vec![("K".to_string(), "V".to_string())]);
        assert_eq!(jobs[2].body.as_deref(), Some(&b"hi"[..]));
    }

    #[test]
    fn errors_name_the_list_and_line() {
        let results = read(
            "http://h/a\nftp://h/b\nhttp://h/c\t../../etc/x\n{\"url\":1}\nhttp://h/d\tp\tnothex\n",
        );
        let msgs: Vec<String> = results
            .iter()
            .filter_map(|r| r.as_ref().err())
            .map(|e| e.to_string())
            .collect();
        assert_eq!(msgs.len(), 4, "{msgs:?}");
        assert!(
            msgs[0].starts_with("jobs.txt:2: ") && msgs[0].contains("ftp"),
            "{}",
            msgs[0]
        );
        assert!(
            msgs[1].starts_with("jobs.txt:3: ") && msgs[1].contains("escapes"),
            "{}",
            msgs[1]
        );
        assert!(
            msgs[2].starts_with("jobs.txt:4: ") && msgs[2].contains("JSON"),
            "{}",
            msgs[2]
        );
        assert!(
            msgs[3].starts_with("jobs.txt:5: ") && msgs[3].contains("sha256"),
            "{}",
            msgs[3]
        );
    }

    #[test]
    fn a_line_longer_than_the_limit_is_an_error_and_the_next_line_still_reads() {
        // Generated, never held: 64 MiB of one line, then a good line.
        let endless = std::io::repeat(b'a').take(64 << 20);
        let list = endless.chain(&b"\nhttp://h/b\n"[..]);
        let results: Vec<_> =
            ManifestReader::new("big.txt", std::io::BufReader::new(list)).collect();
        assert_eq!(results.len(), 2);
        let e = results[0].as_ref().unwrap_err().to_string();
        assert!(
            e.starts_with("big.txt:1: line is 67108865 bytes long, more than the 1048576"),
            "{e}"
        );
        assert!(e.len() < 300, "{e}");
        assert_eq!(results[1].as_ref().unwrap().url, "http://h/b");
    }

    #[test]
    fn a_line_that_is_not_utf8_is_named_and_reading_goes_on() {
        let results: Vec<_> =
            ManifestReader::new("l", &b"http://h/\xff\nhttp://h/b\n"[..]).collect();
        let e = results[0].as_ref().unwrap_err().to_string();
        assert!(
            e.starts_with("l:1: not UTF-8 text (byte 10 of the line)"),
            "{e}"
        );
        assert_eq!(results[1].as_ref().unwrap().url, "http://h/b");
    }

    #[test]
    fn per_job_limits_are_read_and_bad_ones_name_the_line() {
        let jobs = read(
            "{\"url\":\"http://h/a\",\"timeout\":2.5,\"max_time\":60,\"retries\":0}\n\
             {\"url\":\"http://h/b\",\"timeout\":0}\n\
             {\"url\":\"http://h/c\",\"max_time\":-1}\n\
             {\"url\":\"http://h/d\",\"retries\":-2}\n\
             {\"url\":\"http://h/e\",\"timeout\":\"30s\"}\n",
        );
        let a = jobs[0].as_ref().unwrap();
        assert_eq!(a.idle_timeout, Some(std::time::Duration::from_millis(2500)));
        assert_eq!(a.max_time, Some(std::time::Duration::from_secs(60)));
        assert_eq!(a.retries, Some(0));
        let e: Vec<String> = jobs[1..]
            .iter()
            .map(|r| r.as_ref().unwrap_err().to_string())
            .collect();
        assert!(
            e[0].starts_with("jobs.txt:2: \"timeout\": 0 is not"),
            "{}",
            e[0]
        );
        assert!(
            e[1].starts_with("jobs.txt:3: \"max_time\": -1 is not"),
            "{}",
            e[1]
        );
        assert!(e[2].starts_with("jobs.txt:4: invalid JSON job"), "{}", e[2]);
        assert!(e[3].starts_with("jobs.txt:5: invalid JSON job"), "{}", e[3]);
    }

    #[test]
    fn crlf_lines_are_accepted() {
        let jobs: Vec<Job> = read("http://h/a\r\nhttp://h/b\tb.x\r\n")
            .into_iter()
            .map(Result::unwrap)
            .collect();
        assert_eq!(jobs[1].path(), Some(Path::new("b.x")));
    }
}
