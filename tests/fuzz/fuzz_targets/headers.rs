//! Response and request headers a resumed or retried download reads and writes.
//!
//! The first byte picks the check, the rest is its input:
//! - 0: HTTP-dates: a parsed date formats to a date that parses to the same instant, and
//!   formatting any instant parses back to it.
//! - 1: `Retry-After` (seconds or a date) against a "now" from the input: never a panic,
//!   seconds read exactly, a past date means "now".
//! - 2: `Content-Range`: a parsed value formats back to one that parses the same; the
//!   resume verdict on a response continues or completes only at the offset asked for.
//! - 3: the `Range`/`If-Range` a resume sends, read back as a server would, and the
//!   verdict on the exact answer a server gives to it.
//! - 4: the `If-Range` validator offered by `ETag`/`Last-Modified`: never a weak tag.
//! - 5: backoff delays from any base, ceiling, attempt and `Retry-After`: never above the
//!   ceiling.
//! - 6: rates (`500K`, `1.5M/s`): an accepted rate is at least 1 byte per second.
#![no_main]

use std::time::{Duration, UNIX_EPOCH};

use fetchpool::fuzzing::{
    ContentRange, RangeAnswer, SIDECAR_ETAG, judge_range, parse_content_range, range_validator,
    resume_headers, retry_delay,
};
use fetchpool::fuzzing::{format_http_date, parse_http_date, parse_retry_after};
use fetchpool::{Config, parse_rate};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    match mode % 7 {
        0 => dates(rest),
        1 => retry_after(rest),
        2 => content_range(rest),
        3 => resume(rest),
        4 => validator(rest),
        5 => backoff(rest),
        _ => {
            if let Ok(n) = parse_rate(&String::from_utf8_lossy(rest)) {
                assert!(n >= 1);
            }
        }
    }
});

/// Takes `N` bytes as a little-endian number (missing bytes are zero).
fn num(bytes: &mut &[u8], n: usize) -> u64 {
    let take = n.min(bytes.len());
    let mut v = 0u64;
    for (i, b) in bytes[..take].iter().enumerate() {
        v |= (*b as u64) << (8 * i);
    }
    *bytes = &bytes[take..];
    v
}

fn dates(rest: &[u8]) {
    let text = String::from_utf8_lossy(rest);
    if let Some(t) = parse_http_date(&text) {
        let shown = format_http_date(t);
        assert_eq!(parse_http_date(&shown), Some(t), "{text:?} → {shown:?}");
    }
    // Any instant up to the year 9999 round-trips.
    let mut r = rest;
    let secs = num(&mut r, 8) % 253_402_300_800;
    let t = UNIX_EPOCH + Duration::from_secs(secs);
    let shown = format_http_date(t);
    assert_eq!(shown.len(), 29, "{shown:?}");
    assert_eq!(parse_http_date(&shown), Some(t), "{secs} → {shown:?}");
}

fn retry_after(rest: &[u8]) {
    let mut r = rest;
    let now = UNIX_EPOCH + Duration::from_secs(num(&mut r, 5));
    let text = String::from_utf8_lossy(r);
    let parsed = parse_retry_after(&text, now);
    if let Ok(secs) = text.trim().parse::<u64>() {
        assert_eq!(parsed, Some(Duration::from_secs(secs)));
    } else if let Some(at) = parse_http_date(text.trim()) {
        let want = at.duration_since(now).unwrap_or(Duration::ZERO);
        assert_eq!(parsed, Some(want), "{text:?}");
    }
}

fn show(c: ContentRange) -> String {
    match c {
        ContentRange::Bytes { start, end, total } => match total {
            Some(t) => format!("bytes {start}-{end}/{t}"),
            None => format!("bytes {start}-{end}/*"),
        },
        ContentRange::Unsatisfied { total } => format!("bytes */{total}"),
    }
}

fn content_range(rest: &[u8]) {
    let mut r = rest;
    let flags = num(&mut r, 1);
    let offset = (flags & 1 != 0).then(|| num(&mut r, 3));
    let total = (flags & 2 != 0).then(|| num(&mut r, 3));
    let status = if flags & 4 != 0 {
        206
    } else if flags & 8 != 0 {
        416
    } else {
        200
    };
    let same = flags & 16 != 0;
    let parsed = parse_content_range(&String::from_utf8_lossy(r));
    if let Some(c) = parsed {
        assert_eq!(parse_content_range(&show(c)), Some(c), "{}", show(c));
    }
    let mut headers = vec![("content-range", r)];
    if same {
        headers.push(("etag", SIDECAR_ETAG.as_bytes()));
    }
    let verdict = judge_range(offset, total, status, &headers);
    match verdict {
        RangeAnswer::Continue(n) => {
            assert_eq!((status, Some(n)), (206, offset));
            assert!(same, "continued a part from a response of another version");
            let Some(ContentRange::Bytes {
                start,
                end,
                total: t,
            }) = parsed
            else {
                panic!("continued without a byte range: {verdict:?}");
            };
            assert!(start == n && end >= start);
            if let (Some(t), Some(want)) = (t, total) {
                assert_eq!(t, want);
            }
            // The range runs to the end of the body, by its total or the recorded one.
            if let Some(t) = t.or(total) {
                assert_eq!(end.checked_add(1), Some(t));
            }
        }
        RangeAnswer::Complete(n) => {
            assert_eq!((status, Some(n)), (416, offset));
            assert!(same, "completed a part from a response of another version");
            assert_eq!(parsed, Some(ContentRange::Unsatisfied { total: n }));
            assert!(total.is_none_or(|t| t == n));
        }
        RangeAnswer::Fresh => assert!(status == 200 || offset.is_none() && status != 206),
        RangeAnswer::Restart => assert!(status != 200),
    }
}

fn resume(rest: &[u8]) {
    let mut r = rest;
    let offset = num(&mut r, 8);
    let extra = num(&mut r, 4);
    let validator = String::from_utf8_lossy(r);
    let headers = resume_headers(offset, &validator);
    let get = |name: &str| {
        headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    };
    let range = get("range").expect("a resume sends Range");
    let asked: u64 = range
        .strip_prefix("bytes=")
        .and_then(|s| s.strip_suffix('-'))
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("Range {range:?} is not bytes=N-"));
    assert_eq!(asked, offset);
    assert_eq!(get("if-range"), Some(&*validator));
    // The exact answers a server gives: the rest of the body, or "you have it all", from
    // the same version; from another version, never.
    let etag = ("etag", SIDECAR_ETAG.as_bytes());
    let other = ("etag", &b"\"w\""[..]);
    if let Some(total) = offset.checked_add(extra).filter(|t| *t > offset) {
        let cr = format!("bytes {offset}-{}/{total}", total - 1);
        let range = ("content-range", cr.as_bytes());
        let judge =
            |total, headers: &[(&str, &[u8])]| judge_range(Some(offset), Some(total), 206, headers);
        assert_eq!(
            judge(total, &[range, etag]),
            RangeAnswer::Continue(offset),
            "{cr}"
        );
        assert_eq!(judge(total, &[range, other]), RangeAnswer::Restart, "{cr}");
        assert_eq!(judge(total, &[range]), RangeAnswer::Restart, "{cr}");
        if total < u64::MAX {
            assert_eq!(
                judge(total + 1, &[range, etag]),
                RangeAnswer::Restart,
                "{cr}"
            );
        }
    }
    let cr = format!("bytes */{offset}");
    let range = ("content-range", cr.as_bytes());
    assert_eq!(
        judge_range(Some(offset), Some(offset), 416, &[range, etag]),
        RangeAnswer::Complete(offset)
    );
    assert_eq!(
        judge_range(Some(offset), Some(offset), 416, &[range, other]),
        RangeAnswer::Restart
    );
}

/// Whether an HTTP parser keeps `value` as a header value.
fn kept(value: &[u8]) -> bool {
    value.iter().all(|&b| b >= 32 && b != 127 || b == b'\t')
}

fn validator(rest: &[u8]) {
    let mut r = rest;
    let flags = num(&mut r, 1);
    let (etag, date) = match r.iter().position(|b| *b == 0) {
        Some(i) => (&r[..i], &r[i + 1..]),
        None => (r, &b""[..]),
    };
    let mut headers = Vec::new();
    if flags & 1 != 0 {
        headers.push(("etag", etag));
    }
    if flags & 2 != 0 {
        headers.push(("last-modified", date));
    }
    if flags & 4 != 0 {
        headers.push(("content-encoding", &b"gzip"[..]));
    }
    let has_etag = flags & 1 != 0 && kept(etag);
    let v = range_validator(&headers);
    if flags & 4 != 0 {
        assert_eq!(v, None, "an encoded body offered {v:?} for If-Range");
        return;
    }
    let Some(v) = v else {
        return;
    };
    if has_etag {
        // A strong tag, never a weak one, and never a date while a tag is held.
        assert!(
            v.as_bytes() == etag && v.starts_with('"'),
            "{v:?} offered while ETag {etag:?} is held"
        );
    } else {
        assert!(
            flags & 2 != 0 && v.as_bytes() == date,
            "{v:?} is not the Last-Modified date"
        );
    }
}

fn backoff(rest: &[u8]) {
    let mut r = rest;
    let scale = |v: u64, sel: u64| match sel % 4 {
        0 => Duration::from_millis(v),
        1 => Duration::from_secs(v),
        2 => Duration::from_nanos(v),
        _ => Duration::MAX,
    };
    let sel = num(&mut r, 1);
    let base = scale(num(&mut r, 8), sel);
    let max = scale(num(&mut r, 8), sel >> 2);
    let attempt = num(&mut r, 4) as u32;
    let ra = (sel & 16 != 0).then(|| scale(num(&mut r, 8), sel >> 5));
    let seed = num(&mut r, 8);
    let mut cfg = Config::default();
    cfg.retry_base_delay = base;
    cfg.retry_max_delay = max;
    let d = retry_delay(&cfg, attempt, ra, seed);
    assert!(d <= max, "{d:?} above the ceiling {max:?}");
    if let Some(ra) = ra {
        assert_eq!(d, ra.min(max));
    }
}
