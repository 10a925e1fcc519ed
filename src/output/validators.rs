//! The validator store: what a finished file's last download said (`ETag`,
//! `Last-Modified`), one small file per output path under `OUTPUT/.fetchpool/validators/`
//! read only when that job runs, so that the next request for it is conditional and a 304
//! skips it. A stored entry counts only while the file keeps the size and mtime it had
//! when the entry was written. A file the run moved to its `Content-Disposition` name
//! keeps its entry under the URL's name, with the name it went to (`placed`): the next
//! run looks for it there, and may replace it there with a new version.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::time::UNIX_EPOCH;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use ureq::http::HeaderMap;

use super::nofollow;

/// Validators remembered from the last download of a file, for a conditional request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Stored {
    /// The resource key ([`crate::resource_key`]) the validators were given for.
    pub(crate) url: String,
    pub(crate) etag: Option<String>,
    pub(crate) last_modified: Option<String>,
    /// The file's size and mtime (ns since the epoch) when the entry was written: a file
    /// changed locally since then is not vouched for.
    pub(crate) len: u64,
    pub(crate) mtime_ns: u64,
    /// Where the file went when it was moved to its `Content-Disposition` name, relative
    /// to the output directory; the size and mtime above are that file's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) placed: Option<PathBuf>,
}

/// Where the entry of the file at `rel` lives in the state directory `store` (by
/// default the output directory's `.fetchpool`).
fn store_path(store: &Path, rel: &Path) -> PathBuf {
    let key = crate::checksum::hex(&Sha256::digest(rel.to_string_lossy().as_bytes()));
    store.join("validators").join(&key[..2]).join(&key[2..])
}

fn stamp(path: &Path) -> Option<(u64, u64)> {
    let m = fs::metadata(path).ok()?;
    let mtime = m.modified().ok()?.duration_since(UNIX_EPOCH).ok()?;
    Some((m.len(), mtime.as_nanos() as u64))
}

/// The entry for the file at `rel` when it was written for `url`'s resource, whether or
/// not the file is still as it was.
fn load_entry(store: &Path, rel: &Path, url: &str) -> Option<Stored> {
    let text = nofollow::read(&store_path(store, rel)).ok()?;
    let mut stored: Stored = serde_json::from_slice(&text).ok()?;
    // A placed name is a sibling of `rel` (a Content-Disposition move keeps the folder):
    // anything else in the store is not ours to follow.
    if let Some(placed) = &stored.placed {
        let sibling = placed.parent() == rel.parent()
            && placed.file_name().is_some()
            && placed
                .components()
                .all(|c| matches!(c, std::path::Component::Normal(_)));
        if !sibling {
            stored.placed = None;
        }
    }
    if crate::url::resource_key(&stored.url) != crate::url::resource_key(url) {
        log::info!(
            "{}: stored validators are of another URL (host or path changed); not used",
            rel.display()
        );
        return None;
    }
    Some(stored)
}

/// The entry for the file at `rel` (or where it was placed) while that file is as the
/// entry found it.
pub(crate) fn load_stored(
    store: &Path,
    output_dir: &Path,
    rel: &Path,
    url: &str,
) -> Option<Stored> {
    let stored = load_entry(store, rel, url)?;
    let at = stored.placed.as_deref().unwrap_or(rel);
    let (len, mtime_ns) = stamp(&output_dir.join(at))?;
    (stored.len == len && stored.mtime_ns == mtime_ns).then_some(stored)
}

/// Where an earlier run moved the file of `rel` (its `Content-Disposition` name), whether
/// or not the file is still as it left it: a checksum will judge it.
pub(crate) fn placed(store: &Path, rel: &Path, url: &str) -> Option<PathBuf> {
    load_entry(store, rel, url)?.placed
}

/// Where an earlier run moved the file of `rel`, while that file is as the run left it:
/// only such a file may be replaced by a new version.
pub(crate) fn placed_unchanged(
    store: &Path,
    output_dir: &Path,
    rel: &Path,
    url: &str,
) -> Option<PathBuf> {
    load_stored(store, output_dir, rel, url)?.placed
}

/// Remembers the validators of a file just put in place, complete and verified (its caller
/// runs only after the commit), so that a later 304 vouches only for a whole file of that
/// version. `placed` is where the file went when it was moved to its
/// `Content-Disposition` name: remembered even without validators, so that the next run
/// finds it. Best effort: a store that cannot be written only costs a full download next
/// time.
pub(crate) fn remember(
    store: &Path,
    output_dir: &Path,
    rel: &Path,
    url: &str,
    headers: &HeaderMap,
    placed: Option<&Path>,
) {
    let get = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    };
    let (etag, last_modified) = (get("etag"), get("last-modified"));
    if etag.is_none() && last_modified.is_none() && placed.is_none() {
        return;
    }
    let Some((len, mtime_ns)) = stamp(&output_dir.join(placed.unwrap_or(rel))) else {
        return;
    };
    let entry = Stored {
        url: crate::url::resource_key(url),
        etag,
        last_modified,
        len,
        mtime_ns,
        placed: placed.map(Path::to_path_buf),
    };
    let file = store_path(store, rel);
    let dirs = file.parent().and_then(|d| d.strip_prefix(output_dir).ok());
    if let Some(link) = dirs.and_then(|d| nofollow::find_link(output_dir, d)) {
        log::warn!(
            "{}: a symbolic link in the state directory; no validators are kept",
            link.display()
        );
        return;
    }
    let written = file
        .parent()
        .map_or(Ok(()), fs::create_dir_all)
        .and_then(|_| {
            nofollow::write(
                &file,
                &serde_json::to_vec(&entry).map_err(io::Error::other)?,
            )
        });
    if let Err(e) = written {
        log::debug!("validator store {}: {e}", file.display());
    }
}

/// The validator a later `If-Range` can use: a strong `ETag`, else `Last-Modified` when
/// there is no `ETag` at all. A weak tag cannot guard a range, and a client holding a tag
/// must not send a date instead (RFC 9110 §13.1.5): a body with a weak tag has none, and is
/// fetched from zero when it breaks. An encoded body (`Content-Encoding`) has none either:
/// its ranges need not be in the coordinates of the bytes on disk.
pub(crate) fn range_validator(headers: &HeaderMap) -> Option<String> {
    if encoded(headers) {
        return None;
    }
    // Any ETag, even one that is not text, rules out the date (RFC 9110 §13.1.5).
    match headers.get("etag").map(|v| v.to_str()) {
        Some(Ok(tag)) if tag.starts_with('"') => Some(tag.to_string()),
        Some(_) => None,
        None => headers
            .get("last-modified")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string),
    }
}

/// Whether the body is sent with a `Content-Encoding` other than `identity`.
pub(crate) fn encoded(headers: &HeaderMap) -> bool {
    headers.get_all("content-encoding").iter().any(|v| {
        v.to_str()
            .map_or(true, |v| !v.trim().eq_ignore_ascii_case("identity"))
    })
}

/// Whether a response is of the version `validator` (a sidecar's) names: the same strong
/// `ETag` when the validator is one, else the same `Last-Modified` from a response without
/// any `ETag` (a date held where the server now tags its bodies, weakly or not, may come
/// from a body that changed within its second). A response without the header to compare
/// (a 206 may omit `Last-Modified`) is not taken on trust.
pub(crate) fn same_version(validator: &str, headers: &HeaderMap) -> bool {
    let get = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    if validator.starts_with('"') {
        return get("etag") == Some(validator);
    }
    if headers.contains_key("etag") {
        return false;
    }
    match get("last-modified") {
        Some(date) if date == validator => true,
        Some(date) => {
            let parse = |d: &str| crate::net::http_date::parse_http_date(d);
            parse(date).is_some() && parse(date) == parse(validator)
        }
        None => false,
    }
}

/// Response headers that carry `validator` (a sidecar's), for the validator store when a
/// part is finished without a request.
pub(crate) fn validator_headers(validator: &str) -> HeaderMap {
    let mut h = HeaderMap::new();
    let name = if validator.starts_with('"') {
        "etag"
    } else {
        "last-modified"
    };
    if let Ok(v) = ureq::http::HeaderValue::from_str(validator) {
        h.insert(name, v);
    }
    h
}

#[cfg(test)]
mod tests {
    use super::*;
    use ureq::http::HeaderValue;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, HeaderValue::from_str(v).unwrap());
        }
        h
    }

    #[test]
    fn a_weak_etag_leaves_no_validator_and_no_date_stands_in_for_it() {
        let date = "Wed, 01 Jan 2025 00:00:00 GMT";
        let h = headers(&[("etag", "W/\"x\""), ("last-modified", date)]);
        assert_eq!(range_validator(&h), None);
        let h = headers(&[("etag", "\"x\""), ("last-modified", date)]);
        assert_eq!(range_validator(&h).as_deref(), Some("\"x\""));
        assert_eq!(
            range_validator(&headers(&[("last-modified", date)])).as_deref(),
            Some(date)
        );
        assert_eq!(range_validator(&headers(&[])), None);
        let gz = headers(&[("etag", "\"x\""), ("content-encoding", "gzip")]);
        assert_eq!(range_validator(&gz), None);
        let plain = headers(&[("etag", "\"x\""), ("content-encoding", "identity")]);
        assert_eq!(range_validator(&plain).as_deref(), Some("\"x\""));
    }

    #[test]
    fn a_date_never_stands_in_for_an_etag_that_is_not_ascii() {
        // Found by the `headers` fuzz target: an ETag with bytes over 0x7f read as no
        // ETag at all, and the Last-Modified date was sent in If-Range instead.
        let date = "Wed, 01 Jan 2025 00:00:00 GMT";
        let mut h = headers(&[("last-modified", date)]);
        h.insert("etag", HeaderValue::from_bytes(b"\"caf\xe9\"").unwrap());
        assert_eq!(range_validator(&h), None);
    }

    #[test]
    fn a_placed_name_is_followed_only_to_a_sibling_and_only_while_unchanged() {
        let dir = std::env::temp_dir().join(format!("fetchpool-placed-{}", std::process::id()));
        let (out, store) = (dir.join("out"), dir.join("out/.fetchpool"));
        fs::create_dir_all(out.join("d")).unwrap();
        fs::write(out.join("d/real.txt"), b"body").unwrap();
        let (rel, url) = (Path::new("d/a"), "http://h.example/d/a");
        let to = Path::new("d/real.txt");
        remember(&store, &out, rel, url, &HeaderMap::new(), Some(to));
        assert_eq!(
            placed_unchanged(&store, &out, rel, url).as_deref(),
            Some(to)
        );
        assert_eq!(placed(&store, rel, "http://other.example/d/a"), None);
        // A name outside the file's folder, written into the store by anyone, is not followed.
        for bad in ["../x", "/etc/passwd", "e/real.txt", "d/../x"] {
            let mut entry = load_entry(&store, rel, url).unwrap();
            entry.placed = Some(PathBuf::from(bad));
            fs::write(store_path(&store, rel), serde_json::to_vec(&entry).unwrap()).unwrap();
            assert_eq!(placed(&store, rel, url), None, "{bad}");
        }
        // Changed since it was placed: still found for a checksum, no longer ours to replace.
        remember(&store, &out, rel, url, &HeaderMap::new(), Some(to));
        fs::write(out.join("d/real.txt"), b"edited by hand").unwrap();
        assert_eq!(placed(&store, rel, url).as_deref(), Some(to));
        assert_eq!(placed_unchanged(&store, &out, rel, url), None);
        fs::remove_dir_all(&dir).unwrap();
    }
}
