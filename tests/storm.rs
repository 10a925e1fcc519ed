//! A storm of `kill -9`s: the real binary killed at random moments of a download of a
//! few hundred files, some larger than 1 MiB. After every kill no final path holds a
//! wrong or partial file; the last run ends with every file exact, having cost the server
//! little more than the corpus once. With and without checksums in the list.

mod support;

use std::fmt::Write as _;
use std::fs;
use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use support::cli::{fetchpool, spawn, wait};
use support::{Reply, Resource, TempDir, TestServer, random_bytes, sha256_hex, wait_until};

/// Kills per storm.
const KILLS: usize = 6;
/// Small files and large (over 1 MiB, so they are resumed rather than fetched again).
const SMALL: usize = 288;
const LARGE: usize = 12;
/// The most the whole storm may cost the server, as a multiple of the corpus.
const BOUND: f64 = 1.5;

/// xorshift64*: the storm's kill points, reproducible from the printed seed.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) % n
    }
}

struct Corpus {
    files: Vec<(String, Arc<[u8]>, String)>,
    bytes: u64,
}

/// The corpus, served with validators and ranges, each body at most 16 KiB per 10 ms per
/// connection (about 1.6 MB/s, slower than a loaded debug build reads), so that kills
/// land in the middle of bodies and little waits unread in socket buffers.
fn corpus(server: &TestServer, seed: u64) -> Corpus {
    let mut rng = Rng(seed | 1);
    let mut files = Vec::new();
    for i in 0..SMALL + LARGE {
        let len = if i % (SMALL / LARGE + 1) == 0 {
            (1 << 20) + rng.below(3 << 19) as usize
        } else {
            1 + rng.below(48 << 10) as usize
        };
        let body: Arc<[u8]> = random_bytes(seed ^ i as u64, len).into();
        let res = Resource::new(body.clone());
        let path = format!("/c/{}/f{i}.bin", i % 7);
        server.route(&path, move |req| {
            Reply::file(req, &res).drip(16 << 10, Duration::from_millis(10))
        });
        let hash = sha256_hex(&body);
        files.push((path, body, hash));
    }
    let bytes = files.iter().map(|(_, b, _)| b.len() as u64).sum();
    Corpus { files, bytes }
}

/// Every final path present holds exactly its file: never a wrong or partial one.
/// Returns how many are present.
fn assert_nothing_wrong(out: &Path, corpus: &Corpus, after: &str) -> usize {
    let mut present = 0;
    for (path, body, hash) in &corpus.files {
        let file = out.join(&path[1..]);
        if let Ok(got) = fs::read(&file) {
            assert_eq!(
                got.len(),
                body.len(),
                "{after}: {path} has the wrong length"
            );
            assert_eq!(&sha256_hex(&got), hash, "{after}: {path} is wrong");
            present += 1;
        }
    }
    present
}

fn storm(with_checksums: bool) {
    let seed = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(1, |d| d.as_nanos() as u64);
    let started = Instant::now();
    let server = TestServer::start();
    let tmp = TempDir::new();
    let corpus = corpus(&server, seed);
    let mut list = String::new();
    for (path, body, hash) in &corpus.files {
        let url = server.url(path);
        let rel = &path[1..];
        if with_checksums {
            let _ = writeln!(list, "{url}\t{rel}\t{hash}\t{}", body.len());
        } else {
            let _ = writeln!(list, "{url}\t{rel}");
        }
    }
    fs::write(tmp.join("list.tsv"), list).unwrap();
    let args = ["-i", "list.tsv", "-o", "out", "-q"];
    let out = tmp.join("out");
    let mut rng = Rng(seed.rotate_left(17) | 1);
    let mut parts_seen = 0;
    for kill in 1..=KILLS {
        // Somewhere between 0.5 and 3.5 MB into this run's bodies, counted from its first
        // byte on disk: a kill while the run starts up (hashing what is there, its reads
        // not begun) would cost only the bytes sitting in socket buffers, not what the
        // storm is about.
        let on_disk = bytes_on_disk(&out);
        let child = spawn(tmp.path(), &args);
        let reached = wait_until(Duration::from_secs(30), || bytes_on_disk(&out) > on_disk) && {
            let at = server.body_bytes_sent() + (512 << 10) + rng.below(3 << 20);
            wait_until(Duration::from_secs(30), || server.body_bytes_sent() >= at)
        };
        let pid = child.id().to_string();
        let killed = Command::new("kill").args(["-9", &pid]).status().unwrap();
        assert!(killed.success());
        let run = wait(child, tmp.path());
        if !reached {
            // The run finished before its kill point: the storm is over early.
            assert_eq!(run.code, 0, "stderr: {}", run.stderr);
            break;
        }
        assert_eq!(run.code, -1, "kill {kill} did not land: {}", run.stderr);
        let after = format!("kill {kill} (seed {seed})");
        let present = assert_nothing_wrong(&out, &corpus, &after);
        let parts = walk_parts(&out);
        parts_seen += parts;
        eprintln!("{after}: {present} files in place, {parts} .part files");
    }
    let run = fetchpool(tmp.path(), &args, None);
    assert_eq!(run.code, 0, "seed {seed}: stderr: {}", run.stderr);
    let present = assert_nothing_wrong(&out, &corpus, "the last run");
    assert_eq!(
        present,
        corpus.files.len(),
        "seed {seed}: every file in place"
    );
    assert_eq!(walk_parts(&out), 0, "no .part left");
    let served = server.body_bytes_sent();
    let ranged = server
        .requests()
        .iter()
        .filter(|r| r.header("range").is_some())
        .count();
    let ratio = served as f64 / corpus.bytes as f64;
    eprintln!(
        "storm (checksums: {with_checksums}, seed {seed}): corpus {} bytes, served {served} \
         ({ratio:.3}x), {ranged} ranged requests, {} requests, {:.1} s",
        corpus.bytes,
        server.requests().len(),
        started.elapsed().as_secs_f64()
    );
    assert!(parts_seen > 0, "seed {seed}: no kill landed mid-body");
    assert!(ranged > 0, "seed {seed}: nothing was resumed");
    assert!(
        ratio <= BOUND,
        "seed {seed}: served {ratio:.3}x the corpus, more than {BOUND}x"
    );
}

/// Bytes of every file in the tree, parts included (unnamed files do not show).
fn bytes_on_disk(dir: &Path) -> u64 {
    let Ok(entries) = fs::read_dir(dir) else {
        return 0;
    };
    entries
        .flatten()
        .map(|e| match e.metadata() {
            Ok(m) if m.is_dir() => bytes_on_disk(&e.path()),
            Ok(m) => m.len(),
            Err(_) => 0,
        })
        .sum()
}

/// `.part` files left in the tree.
fn walk_parts(dir: &Path) -> usize {
    let Ok(entries) = fs::read_dir(dir) else {
        return 0;
    };
    entries
        .flatten()
        .map(|e| {
            let p = e.path();
            if p.is_dir() {
                walk_parts(&p)
            } else {
                usize::from(p.to_string_lossy().ends_with(".part"))
            }
        })
        .sum()
}

#[test]
fn kill_9_storm_with_checksums_leaves_nothing_wrong_and_refetches_little() {
    storm(true);
}

#[test]
fn kill_9_storm_without_checksums_leaves_nothing_wrong_and_refetches_little() {
    storm(false);
}
