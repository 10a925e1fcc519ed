//! Checksums: which algorithm ([`Algorithm`]: md5, sha1, sha256, sha512, crc32c), an
//! expected value ([`Checksum`], written `ALGO:HEX`), and the one streaming hasher that
//! computes any set of them over a body or a file ([`Hasher`]).
//!
//! A body is always hashed with sha256 (the report's `sha256`); any other algorithm is
//! computed only when something asks for it: the job's checksum, or a digest the server
//! announced. One pass over the bytes feeds every algorithm asked for.

use std::fmt;
use std::io::{self, Read};
use std::path::Path;
use std::str::FromStr;

use sha2::Digest as _;

use crate::redact::{SHOWN_CHARS, clip};

/// A checksum algorithm.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum Algorithm {
    /// MD5 (32 hex digits): S3 ETags of single-part uploads, `Content-MD5`, `MD5SUMS`.
    Md5,
    /// SHA-1 (40 hex digits).
    Sha1,
    /// SHA-256 (64 hex digits): the default, and what every report line carries.
    Sha256,
    /// SHA-512 (128 hex digits).
    Sha512,
    /// CRC32C (Castagnoli), big-endian (8 hex digits): GCS's `x-goog-hash` and S3's
    /// `x-amz-checksum-crc32c`. A check against corruption, not against tampering.
    Crc32c,
}

impl Algorithm {
    /// Every algorithm, in the order of [`Algorithm::name`]'s list.
    pub const ALL: [Algorithm; 5] = [
        Algorithm::Md5,
        Algorithm::Sha1,
        Algorithm::Sha256,
        Algorithm::Sha512,
        Algorithm::Crc32c,
    ];

    /// The lowercase name used in lists and reports: `md5`, `sha1`, `sha256`, `sha512`,
    /// `crc32c`.
    pub fn name(self) -> &'static str {
        match self {
            Algorithm::Md5 => "md5",
            Algorithm::Sha1 => "sha1",
            Algorithm::Sha256 => "sha256",
            Algorithm::Sha512 => "sha512",
            Algorithm::Crc32c => "crc32c",
        }
    }

    /// The digest's length in hex digits.
    pub fn hex_len(self) -> usize {
        match self {
            Algorithm::Md5 => 32,
            Algorithm::Sha1 => 40,
            Algorithm::Sha256 => 64,
            Algorithm::Sha512 => 128,
            Algorithm::Crc32c => 8,
        }
    }

    /// The algorithm named `name` (any case; `sha-256` as HTTP digest fields write it
    /// is accepted too).
    pub fn from_name(name: &str) -> Option<Algorithm> {
        let folded = name.trim().to_ascii_lowercase().replace('-', "");
        Algorithm::ALL.into_iter().find(|a| a.name() == folded)
    }
}

impl fmt::Display for Algorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// An expected digest: an algorithm and its value in lowercase hex.
///
/// ```
/// use fetchpool::{Algorithm, Checksum};
/// let c: Checksum = "MD5:9E107D9D372BB6826BD81D3542A419D6".parse().unwrap();
/// assert_eq!(c.algorithm, Algorithm::Md5);
/// assert_eq!(c.to_string(), "md5:9e107d9d372bb6826bd81d3542a419d6");
/// // Bare 64 hex digits are a sha256, as lists have always written it.
/// let bare: Checksum = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855".parse().unwrap();
/// assert_eq!(bare.algorithm, Algorithm::Sha256);
/// assert!("sha1:abc".parse::<Checksum>().is_err());
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub struct Checksum {
    /// Which algorithm.
    pub algorithm: Algorithm,
    /// The digest, lowercase hex.
    pub hex: String,
}

impl Checksum {
    /// A checksum of `algorithm` with value `hex`, lowercased; not checked until
    /// [`Checksum::check`] (a job's check calls it).
    pub fn new(algorithm: Algorithm, hex: impl Into<String>) -> Checksum {
        Checksum {
            algorithm,
            hex: hex.into().to_ascii_lowercase(),
        }
    }

    /// Checks that the value is as many hex digits as the algorithm gives.
    pub fn check(&self) -> Result<(), ParseChecksumError> {
        let len = self.algorithm.hex_len();
        if self.hex.len() != len || !self.hex.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(ParseChecksumError(format!(
                "{} '{}' is not {len} hex digits; give the full hex digest",
                self.algorithm,
                clip(&self.hex, SHOWN_CHARS)
            )));
        }
        Ok(())
    }
}

impl Checksum {
    /// The `algorithm` digest of the file at `path`, read whole.
    ///
    /// ```no_run
    /// use fetchpool::{Algorithm, Checksum};
    /// let sum = Checksum::of_file("mirror/a.iso", Algorithm::Sha256)?;
    /// println!("{}  a.iso", sum.hex);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn of_file(path: impl AsRef<Path>, algorithm: Algorithm) -> io::Result<Checksum> {
        let (digests, _) = hash_file(path.as_ref(), [algorithm])?;
        Ok(Checksum::new(
            algorithm,
            digests.get(algorithm).unwrap_or_default(),
        ))
    }
}

impl fmt::Display for Checksum {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.algorithm, self.hex)
    }
}

/// Why a checksum's text or value is not usable; the message says what to write instead.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseChecksumError(String);

impl fmt::Display for ParseChecksumError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ParseChecksumError {}

impl FromStr for Checksum {
    type Err = ParseChecksumError;

    /// `ALGO:HEX` (`md5`, `sha1`, `sha256`, `sha512`, `crc32c`, any case) or bare 64 hex
    /// digits (a sha256).
    fn from_str(text: &str) -> Result<Checksum, ParseChecksumError> {
        let text = text.trim();
        let checksum = match text.split_once(':') {
            Some((name, hex)) => {
                let algorithm = Algorithm::from_name(name).ok_or_else(|| {
                    ParseChecksumError(format!(
                        "checksum '{}' names an unknown algorithm '{}'; write md5:HEX, \
                         sha1:HEX, sha256:HEX, sha512:HEX or crc32c:HEX",
                        clip(text, SHOWN_CHARS),
                        clip(name, SHOWN_CHARS)
                    ))
                })?;
                Checksum::new(algorithm, hex.trim())
            }
            None if text.len() == 64 => Checksum::new(Algorithm::Sha256, text),
            None => {
                return Err(ParseChecksumError(format!(
                    "checksum '{}' is not 64 hex digits (a sha256) and names no algorithm; \
                     write it as ALGO:HEX, e.g. md5:{}",
                    clip(text, SHOWN_CHARS),
                    clip(text, SHOWN_CHARS)
                )));
            }
        };
        checksum.check()?;
        Ok(checksum)
    }
}

/// Where an expected digest came from: the job list, or a header of the server's answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum DigestSource {
    /// The job's own checksum (its list, or the caller).
    List,
    /// `Repr-Digest` (RFC 9530): a digest of the whole representation.
    ReprDigest,
    /// `Digest` (RFC 3230, obsoleted by RFC 9530's `Repr-Digest`).
    Digest,
    /// `Content-MD5` (RFC 1864).
    ContentMd5,
    /// Google Cloud Storage's `x-goog-hash` (md5 and crc32c).
    GoogHash,
    /// S3's `x-amz-checksum-sha256` or `x-amz-checksum-crc32c`.
    AmzChecksum,
    /// An S3-style ETag that is a plain MD5 (checked only when asked for).
    Etag,
}

impl DigestSource {
    /// The short name reports use after the algorithm (`"sha256:list"`, `"md5:etag"`).
    pub fn name(self) -> &'static str {
        match self {
            DigestSource::List => "list",
            DigestSource::ReprDigest => "repr-digest",
            DigestSource::Digest => "digest",
            DigestSource::ContentMd5 => "content-md5",
            DigestSource::GoogHash => "x-goog-hash",
            DigestSource::AmzChecksum => "x-amz-checksum",
            DigestSource::Etag => "etag",
        }
    }

    /// Where the value came from, in words, for messages.
    pub fn words(self) -> &'static str {
        match self {
            DigestSource::List => "the job's checksum",
            DigestSource::ReprDigest => "the server's Repr-Digest header",
            DigestSource::Digest => "the server's Digest header",
            DigestSource::ContentMd5 => "the server's Content-MD5 header",
            DigestSource::GoogHash => "the server's x-goog-hash header",
            DigestSource::AmzChecksum => "the server's x-amz-checksum header",
            DigestSource::Etag => "the server's ETag (an MD5)",
        }
    }
}

impl fmt::Display for DigestSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// What a job's body (or file) was verified with: an algorithm and where the expected
/// value came from. Reports write it `ALGO:SOURCE` (`"sha256:list"`, `"md5:etag"`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub struct Verified {
    /// The algorithm compared.
    pub algorithm: Algorithm,
    /// Where the expected digest came from.
    pub source: DigestSource,
}

impl fmt::Display for Verified {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.algorithm, self.source)
    }
}

/// One algorithm's running state.
#[derive(Clone)]
enum State {
    Md5(md5::Md5),
    Sha1(sha1::Sha1),
    Sha256(sha2::Sha256),
    Sha512(sha2::Sha512),
    Crc32c(u32),
}

impl State {
    fn new(algorithm: Algorithm) -> State {
        match algorithm {
            Algorithm::Md5 => State::Md5(md5::Md5::new()),
            Algorithm::Sha1 => State::Sha1(sha1::Sha1::new()),
            Algorithm::Sha256 => State::Sha256(sha2::Sha256::new()),
            Algorithm::Sha512 => State::Sha512(sha2::Sha512::new()),
            Algorithm::Crc32c => State::Crc32c(0),
        }
    }

    fn update(&mut self, bytes: &[u8]) {
        match self {
            State::Md5(h) => h.update(bytes),
            State::Sha1(h) => h.update(bytes),
            State::Sha256(h) => h.update(bytes),
            State::Sha512(h) => h.update(bytes),
            State::Crc32c(c) => *c = crc32c::crc32c_append(*c, bytes),
        }
    }

    fn finish(self) -> String {
        match self {
            State::Md5(h) => hex(&h.finalize()),
            State::Sha1(h) => hex(&h.finalize()),
            State::Sha256(h) => hex(&h.finalize()),
            State::Sha512(h) => hex(&h.finalize()),
            State::Crc32c(c) => hex(&c.to_be_bytes()),
        }
    }
}

/// Bytes as lowercase hex.
pub(crate) fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        out.push(DIGITS[usize::from(b >> 4)] as char);
        out.push(DIGITS[usize::from(b & 15)] as char);
    }
    out
}

/// A streaming hasher for a set of algorithms, fed once per chunk: sha256 always, the
/// others only when asked for.
#[derive(Clone)]
pub(crate) struct Hasher {
    states: Vec<(Algorithm, State)>,
}

impl Default for Hasher {
    /// A hasher of sha256 alone.
    fn default() -> Self {
        Hasher::new([])
    }
}

impl Hasher {
    /// A hasher of sha256 and of each algorithm in `also`.
    pub(crate) fn new(also: impl IntoIterator<Item = Algorithm>) -> Hasher {
        let mut hasher = Hasher {
            states: vec![(Algorithm::Sha256, State::new(Algorithm::Sha256))],
        };
        for a in also {
            hasher.add(a);
        }
        hasher
    }

    /// Computes `algorithm` too, unless it already does. Only before the first byte.
    pub(crate) fn add(&mut self, algorithm: Algorithm) {
        if !self.states.iter().any(|(a, _)| *a == algorithm) {
            self.states.push((algorithm, State::new(algorithm)));
        }
    }

    /// Feeds `bytes` to every algorithm.
    pub(crate) fn update(&mut self, bytes: &[u8]) {
        for (_, state) in &mut self.states {
            state.update(bytes);
        }
    }

    /// Every digest, lowercase hex.
    pub(crate) fn finish(self) -> Digests {
        Digests(
            self.states
                .into_iter()
                .map(|(a, s)| (a, s.finish()))
                .collect(),
        )
    }
}

impl io::Write for Hasher {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.update(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// The digests a [`Hasher`] computed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Digests(Vec<(Algorithm, String)>);

impl Digests {
    /// The digest of `algorithm`, if it was computed.
    pub(crate) fn get(&self, algorithm: Algorithm) -> Option<&str> {
        self.0
            .iter()
            .find(|(a, _)| *a == algorithm)
            .map(|(_, h)| h.as_str())
    }

    /// The sha256, which every hasher computes.
    pub(crate) fn sha256(&self) -> String {
        self.get(Algorithm::Sha256).unwrap_or_default().to_string()
    }
}

/// Hashes a whole file with sha256 and `also`, returning the digests and its length.
pub(crate) fn hash_file(
    path: &Path,
    also: impl IntoIterator<Item = Algorithm>,
) -> io::Result<(Digests, u64)> {
    let mut file = std::fs::File::open(path)?;
    let mut hasher = Hasher::new(also);
    let mut buf = vec![0u8; 256 * 1024];
    let mut len = 0u64;
    loop {
        match file.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                hasher.update(&buf[..n]);
                len += n as u64;
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok((hasher.finish(), len))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_algorithm_matches_its_known_digest_of_the_quick_brown_fox() {
        let text = b"The quick brown fox jumps over the lazy dog";
        let mut h = Hasher::new(Algorithm::ALL);
        h.update(&text[..10]);
        h.update(&text[10..]);
        let d = h.finish();
        assert_eq!(
            d.get(Algorithm::Md5),
            Some("9e107d9d372bb6826bd81d3542a419d6")
        );
        assert_eq!(
            d.get(Algorithm::Sha1),
            Some("2fd4e1c67a2d28fced849ee1bb76e7391b93eb12")
        );
        assert_eq!(
            d.sha256(),
            "d7a8fbb307d7809469ca9abcb0082e4f8d5651e46d3cdb762d02d0bf37c9e592"
        );
        assert!(
            d.get(Algorithm::Sha512)
                .unwrap()
                .starts_with("07e547d9586f6a73f73fbac0435ed76951218fb7d0c8d788a309d785436bbb64")
        );
        // CRC32C("123456789") is the standard check value 0xe3069283.
        let mut c = Hasher::new([Algorithm::Crc32c]);
        c.update(b"123456789");
        assert_eq!(c.finish().get(Algorithm::Crc32c), Some("e3069283"));
    }

    #[test]
    fn only_sha256_and_what_is_asked_for_is_computed() {
        let d = Hasher::new([Algorithm::Md5]).finish();
        assert!(d.get(Algorithm::Md5).is_some());
        assert!(d.get(Algorithm::Sha1).is_none());
        assert!(d.get(Algorithm::Sha512).is_none());
        assert_eq!(Hasher::default().finish().0.len(), 1);
    }

    #[test]
    fn checksums_parse_as_algo_colon_hex_or_bare_sha256() {
        for bad in [
            "sha512:",
            "md5:xyz",
            "sha1:00",
            "whirlpool:00",
            "9e107d9d372bb6826bd81d3542a419d6",
        ] {
            assert!(bad.parse::<Checksum>().is_err(), "{bad}");
        }
        let e = "9e107d9d372bb6826bd81d3542a419d6"
            .parse::<Checksum>()
            .unwrap_err()
            .to_string();
        assert!(e.contains("ALGO:HEX"), "{e}");
        let c: Checksum = "SHA-1:2FD4E1C67A2D28FCED849EE1BB76E7391B93EB12"
            .parse()
            .unwrap();
        assert_eq!(c.algorithm, Algorithm::Sha1);
        assert_eq!(c.hex, "2fd4e1c67a2d28fced849ee1bb76e7391b93eb12");
    }
}
