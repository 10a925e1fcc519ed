//! Static resources served the way a well-behaved file server does: strong `ETag`,
//! `Last-Modified`, conditional requests (304), byte ranges (206/416) and `If-Range`.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::reply::Reply;
use super::request::Request;

/// A file's content and validators. Cheap to clone (the body is shared).
///
/// The default `ETag` is the quoted hex FNV-1a hash of the content and the default
/// `Last-Modified` a date in 2020–2029 derived from the same hash, so new content gets new
/// validators and identical content keeps them.
#[derive(Debug, Clone)]
pub struct Resource {
    /// The full content.
    pub body: Arc<[u8]>,
    /// Quoted strong entity tag, or `None` to send no `ETag`.
    pub etag: Option<String>,
    /// Modification time (whole seconds), or `None` to send no `Last-Modified`.
    pub last_modified: Option<SystemTime>,
    /// Whether `Range` requests are honoured (`Accept-Ranges: bytes`); `true` by default.
    pub ranges: bool,
    /// Whether `If-Range` is ignored, so that a range of a changed file is still answered
    /// 206 (moto's S3 server does this); `false` by default.
    pub ignore_if_range: bool,
    /// Whether a 416 leaves out `Content-Range: bytes */N` (Apache, lighttpd and moto
    /// do); `false` by default.
    pub bare_416: bool,
}

impl Resource {
    /// A resource with default validators and range support.
    pub fn new(body: impl Into<Arc<[u8]>>) -> Resource {
        let body = body.into();
        let hash = fnv1a(&body);
        let ten_years = 10 * 365 * 24 * 3600;
        let modified = UNIX_EPOCH + Duration::from_secs(1_577_836_800 + hash % ten_years);
        Resource {
            body,
            etag: Some(format!("\"{hash:016x}\"")),
            last_modified: Some(modified),
            ranges: true,
            ignore_if_range: false,
            bare_416: false,
        }
    }

    /// Sets the entity tag; quotes are added when missing.
    pub fn with_etag(mut self, etag: &str) -> Resource {
        self.etag = Some(quote(etag));
        self
    }

    /// Sends no `ETag`.
    pub fn no_etag(mut self) -> Resource {
        self.etag = None;
        self
    }

    /// Sets `Last-Modified` (truncated to whole seconds on the wire).
    pub fn with_last_modified(mut self, at: SystemTime) -> Resource {
        self.last_modified = Some(at);
        self
    }

    /// Sends no `Last-Modified`.
    pub fn no_last_modified(mut self) -> Resource {
        self.last_modified = None;
        self
    }

    /// Ignores `Range` and always answers 200 with the full body, like a server without
    /// range support.
    pub fn no_ranges(mut self) -> Resource {
        self.ranges = false;
        self
    }

    /// Answers a range with 206 whatever `If-Range` says (a server that ignores it).
    pub fn ignoring_if_range(mut self) -> Resource {
        self.ignore_if_range = true;
        self
    }

    /// Answers an unsatisfiable range with a 416 that has no `Content-Range`.
    pub fn bare_416(mut self) -> Resource {
        self.bare_416 = true;
        self
    }

    /// The `Last-Modified` header value, if any.
    pub fn last_modified_header(&self) -> Option<String> {
        self.last_modified.map(http_date)
    }
}

impl Reply {
    /// Answers `req` from `res` as a file server would: 304 for a matching `If-None-Match`
    /// (or, without it, a satisfied `If-Modified-Since`); 206 with `Content-Range` for
    /// `Range: bytes=N-`, `bytes=N-M` or `bytes=-S` unless an `If-Range` validator no longer
    /// matches; 416 when the range starts past the end; 200 with the full body otherwise.
    /// Handlers can chain misbehaviour onto the result (`Reply::file(req, &res).cut_after(10)`).
    pub fn file(req: &Request, res: &Resource) -> Reply {
        let len = res.body.len();
        let modified = res.last_modified_header();
        let with_validators = |mut reply: Reply| {
            if let Some(etag) = &res.etag {
                reply = reply.header("ETag", etag);
            }
            if let Some(date) = &modified {
                reply = reply.header("Last-Modified", date);
            }
            if res.ranges {
                reply = reply.header("Accept-Ranges", "bytes");
            }
            reply
        };
        let get_or_head =
            req.method.eq_ignore_ascii_case("GET") || req.method.eq_ignore_ascii_case("HEAD");

        if get_or_head && not_modified(req, res) {
            return with_validators(Reply::status(304));
        }
        let range = req.header("range").filter(|_| {
            res.ranges && get_or_head && (res.ignore_if_range || if_range_holds(req, res))
        });
        match range.map(|r| parse_range(r, len)) {
            Some(Some(Ok((start, end)))) => with_validators(Reply::status(206))
                .header("Content-Range", &format!("bytes {start}-{}/{len}", end - 1))
                .shared_body(res.body.clone(), Some(start..end)),
            Some(Some(Err(()))) if res.bare_416 => with_validators(Reply::status(416)),
            Some(Some(Err(()))) => with_validators(Reply::status(416))
                .header("Content-Range", &format!("bytes */{len}")),
            // No Range, or one we don't understand (several ranges, other units): whole body.
            _ => with_validators(Reply::status(200)).shared_body(res.body.clone(), None),
        }
    }
}

/// RFC 9110 §13.2.2: `If-None-Match` decides when present; otherwise `If-Modified-Since`.
fn not_modified(req: &Request, res: &Resource) -> bool {
    if let Some(inm) = req.header("if-none-match") {
        let Some(etag) = &res.etag else { return false };
        return inm
            .split(',')
            .map(str::trim)
            .any(|tag| tag == "*" || weak_eq(tag, etag));
    }
    match (
        req.header("if-modified-since").and_then(parse_http_date),
        res.last_modified,
    ) {
        (Some(since), Some(modified)) => secs(modified) <= secs(since),
        _ => false,
    }
}

/// `If-Range` holds when absent, when it is our strong ETag, or when it is exactly our date.
fn if_range_holds(req: &Request, res: &Resource) -> bool {
    let Some(cond) = req.header("if-range") else {
        return true;
    };
    if cond.starts_with('"') || cond.starts_with("W/") {
        return res.etag.as_deref() == Some(cond);
    }
    match (parse_http_date(cond), res.last_modified) {
        (Some(date), Some(modified)) => secs(date) == secs(modified),
        _ => false,
    }
}

/// `None`: not a single byte range we serve. `Some(Err)`: unsatisfiable. `Some(Ok)`: the
/// half-open byte range to send.
fn parse_range(header: &str, len: usize) -> Option<Result<(usize, usize), ()>> {
    let spec = header.trim().strip_prefix("bytes=")?.trim();
    if spec.contains(',') {
        return None;
    }
    let (first, last) = spec.split_once('-')?;
    let (first, last) = (first.trim(), last.trim());
    if first.is_empty() {
        let suffix: usize = last.parse().ok()?;
        if suffix == 0 || len == 0 {
            return Some(Err(()));
        }
        return Some(Ok((len - suffix.min(len), len)));
    }
    let start: usize = first.parse().ok()?;
    let end = if last.is_empty() {
        len
    } else {
        let last: usize = last.parse().ok()?;
        if last < start {
            return None;
        }
        last.saturating_add(1).min(len)
    };
    if start >= len {
        return Some(Err(()));
    }
    Some(Ok((start, end)))
}

fn weak_eq(a: &str, b: &str) -> bool {
    a.trim_start_matches("W/") == b.trim_start_matches("W/")
}

fn quote(etag: &str) -> String {
    if etag.starts_with('"') || etag.starts_with("W/") {
        etag.to_owned()
    } else {
        format!("\"{etag}\"")
    }
}

fn secs(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

/// 64-bit FNV-1a: cheap, deterministic, good enough to tell test bodies apart.
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

const DAYS: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

/// Formats an IMF-fixdate (`Sun, 06 Nov 1994 08:49:37 GMT`).
pub fn http_date(t: SystemTime) -> String {
    let secs = secs(t);
    let days = secs / 86_400;
    let rem = secs % 86_400;
    let (y, m, d) = civil_from_days(days as i64);
    format!(
        "{}, {d:02} {} {y} {:02}:{:02}:{:02} GMT",
        DAYS[(days % 7) as usize],
        MONTHS[(m - 1) as usize],
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// Parses an IMF-fixdate; other legacy formats give `None`.
pub fn parse_http_date(s: &str) -> Option<SystemTime> {
    let mut it = s.split_whitespace().skip(1);
    let d: u32 = it.next()?.parse().ok()?;
    let month = it.next()?;
    let m = MONTHS.iter().position(|&x| x == month)? as u32 + 1;
    let y: i64 = it.next()?.parse().ok()?;
    let mut hms = it.next()?.split(':').map(|p| p.parse::<u64>().ok());
    let (h, mi, se) = (hms.next()??, hms.next()??, hms.next()??);
    let days = u64::try_from(days_from_civil(y, m, d)).ok()?;
    Some(UNIX_EPOCH + Duration::from_secs(days * 86_400 + h * 3600 + mi * 60 + se))
}

// Howard Hinnant's days-from-civil algorithms (proleptic Gregorian, days since 1970-01-01).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let mp = i64::from(if m > 2 { m - 3 } else { m + 9 });
    let doy = (153 * mp + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}
