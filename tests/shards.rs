//! A list split into shards, as batch systems run it: the shards' reports read back as
//! one summary (`fetchpool report`), retried together (`--retry-failed` with several
//! reports), and shards running at once into one output directory.

mod support;

use std::collections::BTreeSet;
use std::fs;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use serde_json::Value;
use support::cli::{Run, bin, fetchpool, write_list};
use support::{Reply, TempDir, TestServer, random_bytes, sha256_hex, wait_until};

/// `fetchpool report ARGS` in `dir`: exit code, stdout, stderr.
fn report(dir: &Path, args: &[&str]) -> (i32, String, String) {
    let out = Command::new(bin())
        .current_dir(dir)
        .arg("report")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run fetchpool report");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// A list of `n` files served by `server`, every fifth missing on the server (404) and
/// every seventh with a wrong sha256 in the list, so a run has ok and failed jobs of two
/// kinds; returns the list's text.
fn mixed_list(server: &TestServer, n: usize) -> String {
    let mut list = String::new();
    for i in 0..n {
        let body = random_bytes(100 + i as u64, 2_000 + i * 37);
        let sha = if i % 7 == 3 {
            sha256_hex(b"something else")
        } else {
            sha256_hex(&body)
        };
        if i % 5 != 4 {
            server.file(&format!("/f/{i}"), body);
        }
        list.push_str(&format!(
            "{}\tf/{i}.bin\t{sha}\n",
            server.url(&format!("/f/{i}"))
        ));
    }
    list
}

/// Runs shard `k` of `n` of `tmp/l.tsv` from `tmp/s{k}` into `tmp/{out}`; its report
/// is `tmp/s{k}/report.jsonl`.
fn run_shard(tmp: &TempDir, k: u64, n: u64, out: &str) -> Run {
    run_shard_with(tmp, k, n, out, &[])
}

/// [`run_shard`] with more arguments.
fn run_shard_with(tmp: &TempDir, k: u64, n: u64, out: &str, more: &[&str]) -> Run {
    let dir = tmp.join(format!("s{k}"));
    fs::create_dir_all(&dir).unwrap();
    let shard = format!("{k}/{n}");
    let out = format!("../{out}");
    let mut args = vec![
        "-i",
        "../l.tsv",
        "-o",
        &out,
        "--shard",
        &shard,
        "--retries",
        "0",
        "-q",
    ];
    args.extend_from_slice(more);
    fetchpool(&dir, &args, None)
}

/// The counts two summaries must share: everything but the time and which URLs a kind
/// shows as examples (the first to fail, which depends on the order jobs ended).
fn counts(v: &Value) -> Value {
    let kinds: serde_json::Map<String, Value> = v["failures"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(k, f)| (k.clone(), f["count"].clone()))
        .collect();
    serde_json::json!([
        v["jobs"],
        v["ok"],
        v["skipped"],
        v["failed"],
        v["cancelled"],
        v["bytes"],
        kinds
    ])
}

#[test]
fn report_over_four_shard_reports_counts_what_one_unsharded_run_counts() {
    let server = TestServer::start();
    let tmp = TempDir::new();
    write_list(tmp.path(), "l.tsv", &mixed_list(&server, 40));

    let whole = fetchpool(
        tmp.path(),
        &[
            "-i",
            "l.tsv",
            "-o",
            "whole",
            "--retries",
            "0",
            "-q",
            "--json",
        ],
        None,
    );
    assert_eq!(whole.code, 1, "{}", whole.stderr);
    let whole: Value = serde_json::from_str(whole.stdout.trim()).unwrap();
    assert_eq!(
        (
            whole["jobs"].as_u64(),
            whole["ok"].as_u64(),
            whole["failed"].as_u64()
        ),
        (Some(40), Some(27), Some(13)),
        "{whole}"
    );
    assert_eq!(whole["failures"]["http"]["count"], 8);
    assert_eq!(whole["failures"]["checksum"]["count"], 5);

    let mut taken = 0;
    for k in 1..=4 {
        let run = run_shard(&tmp, k, 4, "sharded");
        assert!(run.code == 0 || run.code == 1, "shard {k}: {}", run.stderr);
        assert!(
            run.report
                .iter()
                .all(|l| l["finished_at_ms"].as_u64() > Some(0)),
            "every report line says when its job ended"
        );
        taken += run.report.len();
    }
    assert_eq!(taken, 40);

    let (code, out, err) = report(
        tmp.path(),
        &[
            "--json",
            "-i",
            "l.tsv",
            "s1/report.jsonl",
            "s2/report.jsonl",
            "s3/report.jsonl",
            "s4/report.jsonl",
        ],
    );
    assert_eq!(code, 1, "a job failed: exit 1\n{err}");
    let combined: Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(counts(&combined), counts(&whole), "{combined}\n{whole}");
    assert_eq!(combined["reports"], 4);
    assert_eq!(combined["duplicated"]["count"], 0);
    assert_eq!(combined["missing"]["count"], 0);
    assert_eq!(combined["unlisted"]["count"], 0);
    assert_eq!(combined["span_known"], true);
    // The span covers the four runs one after the other: at least the longest job.
    assert!(combined["elapsed_ms"].as_u64().unwrap() > 0, "{combined}");
    assert!(
        err.contains("4 reports: 40 jobs: 27 ok, 0 skipped, 13 failed, 0 cancelled"),
        "{err}"
    );
    assert!(err.contains("  http: 8 (e.g. http://127.0.0.1:"), "{err}");

    // A quoted pattern reads the same four reports, and one named again counts once.
    let (code, out, _) = report(
        tmp.path(),
        &["--json", "s1/report.jsonl", "s?/report.jsonl"],
    );
    assert_eq!(code, 1);
    let globbed: Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(counts(&globbed), counts(&whole));
    assert_eq!(globbed["reports"], 4);
}

#[test]
fn report_names_duplicated_and_missing_jobs_and_counts_each_job_once() {
    let server = TestServer::start();
    let tmp = TempDir::new();
    let mut list = String::new();
    for i in 0..30 {
        let body = random_bytes(200 + i, 1_000);
        server.file(&format!("/d/{i}"), body.clone());
        list.push_str(&format!(
            "{}\td/{i}.bin\t{}\n",
            server.url(&format!("/d/{i}")),
            sha256_hex(&body)
        ));
    }
    write_list(tmp.path(), "l.tsv", &list);
    let shard: Vec<Run> = (1..=3).map(|k| run_shard(&tmp, k, 3, "out")).collect();
    for run in &shard {
        assert_eq!(run.code, 0, "{}", run.stderr);
    }
    let sizes: Vec<usize> = shard.iter().map(|r| r.report.len()).collect();
    assert_eq!(sizes.iter().sum::<usize>(), 30);
    // Shard 1 ran twice (a resubmission that kept the first report under another name),
    // shard 3's report is lost.
    fs::copy(tmp.join("s1/report.jsonl"), tmp.join("s1/again.jsonl")).unwrap();
    let (code, out, err) = report(
        tmp.path(),
        &[
            "--json",
            "-i",
            "l.tsv",
            "s1/report.jsonl",
            "s1/again.jsonl",
            "s2/report.jsonl",
        ],
    );
    assert_eq!(code, 1, "listed jobs without a line: exit 1\n{err}");
    let v: Value = serde_json::from_str(out.trim()).unwrap();
    let (one, two, three) = (sizes[0] as u64, sizes[1] as u64, sizes[2] as u64);
    assert_eq!(
        v["jobs"].as_u64(),
        Some(one + two),
        "each job counted once: {v}"
    );
    assert_eq!(v["ok"].as_u64(), Some(one + two));
    assert_eq!(v["duplicated"]["count"].as_u64(), Some(one));
    assert_eq!(v["missing"]["count"].as_u64(), Some(three));
    assert_eq!(v["unlisted"]["count"], 0);
    let missing: BTreeSet<&str> = v["missing"]["examples"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p.as_str().unwrap())
        .collect();
    let third: BTreeSet<&str> = shard[2]
        .report
        .iter()
        .map(|l| l["path"].as_str().unwrap())
        .collect();
    assert!(
        !missing.is_empty() && missing.is_subset(&third),
        "{missing:?} of {third:?}"
    );
    assert!(
        err.contains(&format!(
            "{three} listed job(s) have no line in any report: "
        )),
        "{err}"
    );
    assert!(
        err.contains(&format!(
            "{one} job(s) appear in more than one report, counted once by their latest line: "
        )),
        "{err}"
    );

    // Without the list, nothing is missing: every reported job ended ok.
    let (code, _, err) = report(tmp.path(), &["s1/report.jsonl", "s2/report.jsonl"]);
    assert_eq!(code, 0, "{err}");

    // A list of another run names the reported jobs it lacks.
    write_list(
        tmp.path(),
        "other.tsv",
        &format!("{}\tother.bin\n", server.url("/d/0")),
    );
    let (code, out, _) = report(
        tmp.path(),
        &["--json", "-i", "other.tsv", "s2/report.jsonl"],
    );
    assert_eq!(code, 1);
    let v: Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(v["unlisted"]["count"].as_u64(), Some(two));
    assert_eq!(v["missing"]["count"], 1);
}

#[test]
fn report_takes_a_jobs_latest_line_when_a_retry_fixed_it() {
    let tmp = TempDir::new();
    let line = |status: &str, at: u64, kind: Option<&str>| {
        let error = kind.map_or(
            Value::Null,
            |k| serde_json::json!({"kind": k, "message": "m"}),
        );
        serde_json::json!({"url": "http://h/a", "path": "a", "status": status, "bytes": 10,
            "elapsed_ms": 5, "finished_at_ms": at, "error": error})
        .to_string()
    };
    // The retry's report comes first on the command line; its line is the later one.
    fs::write(tmp.join("retry.jsonl"), line("ok", 2_000, None) + "\n").unwrap();
    fs::write(
        tmp.join("first.jsonl"),
        line("failed", 1_000, Some("http")) + "\n",
    )
    .unwrap();
    let (code, out, err) = report(tmp.path(), &["--json", "retry.jsonl", "first.jsonl"]);
    assert_eq!(code, 0, "{err}");
    let v: Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(
        (v["jobs"].as_u64(), v["ok"].as_u64(), v["failed"].as_u64()),
        (Some(1), Some(1), Some(0))
    );
    assert_eq!(v["bytes"], 10);
    assert_eq!(v["elapsed_ms"], 5, "span: from 1995 to 2000");
    assert_eq!(v["duplicated"]["count"], 1);

    // A line that is not a report line is exit 2, naming the file and line.
    fs::write(tmp.join("bad.jsonl"), line("ok", 1, None) + "\nnot json\n").unwrap();
    let (code, _, err) = report(tmp.path(), &["bad.jsonl"]);
    assert_eq!(code, 2);
    assert!(
        err.contains("bad.jsonl:2: not a report line (JSON)"),
        "{err}"
    );
    let (code, _, err) = report(tmp.path(), &["nothing-*.jsonl"]);
    assert_eq!(code, 2);
    assert!(err.contains("no file matches 'nothing-*.jsonl'"), "{err}");
}

#[test]
fn retry_failed_takes_the_reports_of_several_shards() {
    let server = TestServer::start();
    let tmp = TempDir::new();
    let mut list = String::new();
    let mut bodies = Vec::new();
    for i in 0..24 {
        let body = random_bytes(300 + i, 1_500);
        // Every third file fails its first request (a 500, with no retries).
        let path = format!("/r/{i}");
        let served = body.clone();
        if i % 3 == 0 {
            server.route(&path, move |req| {
                if req.hit == 1 {
                    Reply::status(500)
                } else {
                    Reply::ok(served.clone())
                }
            });
        } else {
            server.file(&path, body.clone());
        }
        list.push_str(&format!(
            "{}\tr/{i}.bin\t{}\n",
            server.url(&path),
            sha256_hex(&body)
        ));
        bodies.push(body);
    }
    write_list(tmp.path(), "l.tsv", &list);
    let mut failed = 0;
    for k in 1..=3 {
        let run = run_shard(&tmp, k, 3, "out");
        failed += run.with_status("failed").len();
    }
    assert_eq!(failed, 8);
    // One report by name, all three through a quoted pattern (s1's named twice is fine).
    let retry = fetchpool(
        tmp.path(),
        &[
            "-i",
            "l.tsv",
            "-o",
            "out",
            "--retries",
            "0",
            "--retry-failed",
            "s1/report.jsonl",
            "--retry-failed",
            "s?/report.jsonl",
        ],
        None,
    );
    assert_eq!(retry.code, 0, "{}", retry.stderr);
    let mut retried: Vec<&str> = retry
        .report
        .iter()
        .map(|l| l["path"].as_str().unwrap())
        .collect();
    retried.sort();
    let mut expected: Vec<String> = (0..24)
        .filter(|i| i % 3 == 0)
        .map(|i| format!("r/{i}.bin"))
        .collect();
    expected.sort();
    assert_eq!(retried, expected);
    for i in 0..24 {
        assert_eq!(
            server.hits(&format!("/r/{i}")),
            if i % 3 == 0 { 2 } else { 1 },
            "r/{i}"
        );
        assert_eq!(
            fs::read(tmp.join(format!("out/r/{i}.bin"))).unwrap(),
            bodies[i as usize]
        );
    }

    // A job that failed in one report and ended ok in another is not run again.
    let fixed = retry.report.clone();
    let text: String = fixed.iter().map(|l| format!("{l}\n")).collect();
    fs::write(tmp.join("fixed.jsonl"), text).unwrap();
    let again = fetchpool(
        tmp.path(),
        &[
            "-i",
            "l.tsv",
            "-o",
            "out",
            "--retry-failed",
            "s1/report.jsonl",
            "--retry-failed",
            "fixed.jsonl",
        ],
        None,
    );
    assert_eq!(again.code, 0, "{}", again.stderr);
    assert!(again.report.is_empty(), "{:?}", again.report);
    assert!(
        again.stderr.contains("nothing to do") || again.stderr.is_empty(),
        "{}",
        again.stderr
    );
}

#[test]
fn shards_of_one_list_run_at_once_into_one_output_directory() {
    let server = TestServer::start();
    let tmp = TempDir::new();
    let mut list = String::new();
    // Each shard runs one job at a time; answers wait (at most 3 s) until three
    // requests have been in flight at once, which only three runs at once can make.
    let in_flight = Arc::new(AtomicUsize::new(0));
    let met = Arc::new(AtomicBool::new(false));
    for i in 0..12 {
        let body = random_bytes(400 + i, 4_000);
        let (in_flight, met) = (in_flight.clone(), met.clone());
        server.route(&format!("/p/{i}"), move |_| {
            if in_flight.fetch_add(1, Ordering::SeqCst) + 1 >= 3 {
                met.store(true, Ordering::SeqCst);
            }
            wait_until(Duration::from_secs(3), || met.load(Ordering::SeqCst));
            in_flight.fetch_sub(1, Ordering::SeqCst);
            Reply::ok(body.clone())
        });
        list.push_str(&format!("{}\tp/{i}.bin\n", server.url(&format!("/p/{i}"))));
    }
    write_list(tmp.path(), "l.tsv", &list);
    let runs: Vec<Run> = std::thread::scope(|s| {
        let handles: Vec<_> = (1..=3)
            .map(|k| {
                let tmp = &tmp;
                s.spawn(move || run_shard_with(tmp, k, 3, "out", &["-j", "1"]))
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    for (k, run) in runs.iter().enumerate() {
        assert_eq!(run.code, 0, "shard {}: {}", k + 1, run.stderr);
    }
    assert_eq!(runs.iter().map(|r| r.report.len()).sum::<usize>(), 12);
    assert_eq!(
        server.max_concurrent("/p/"),
        3,
        "the three shards ran at once"
    );
    for i in 0..12 {
        assert!(tmp.join(format!("out/p/{i}.bin")).is_file());
    }
}

#[test]
fn a_shards_lock_keeps_out_the_whole_list_and_the_same_shard_only() {
    let server = TestServer::start();
    let tmp = TempDir::new();
    let mut list = String::new();
    for i in 0..9 {
        server.file(&format!("/q/{i}"), random_bytes(500 + i, 1_000));
        list.push_str(&format!("{}\tq/{i}.bin\n", server.url(&format!("/q/{i}"))));
    }
    write_list(tmp.path(), "l.tsv", &list);
    let pool = fetchpool::Pool::builder()
        .output_dir(tmp.join("out"))
        .build()
        .unwrap();
    let held = pool
        .lock_output_shard(fetchpool::Shard::parse("1/3").unwrap())
        .unwrap();

    let whole = fetchpool(tmp.path(), &["-i", "l.tsv", "-o", "out", "-q"], None);
    assert_eq!(whole.code, 2, "{}", whole.stderr);
    assert!(
        whole.stderr.contains("is in use by another fetchpool run"),
        "{}",
        whole.stderr
    );
    // Shard 1/1 (a Slurm array of one task) is the whole list.
    let all = run_shard(&tmp, 1, 1, "out");
    assert_eq!(all.code, 2, "{}", all.stderr);
    let same = run_shard(&tmp, 1, 3, "out");
    assert_eq!(same.code, 2, "{}", same.stderr);
    assert!(
        same.stderr
            .contains(&format!("(pid {})", std::process::id())),
        "the shard's holder is named: {}",
        same.stderr
    );
    let other = run_shard(&tmp, 2, 3, "out");
    assert_eq!(other.code, 0, "{}", other.stderr);
    assert!(!other.report.is_empty());
    assert_eq!(server.requests().len(), other.report.len());

    drop(held);
    let whole = fetchpool(tmp.path(), &["-i", "l.tsv", "-o", "out", "-q"], None);
    assert_eq!(whole.code, 0, "{}", whole.stderr);
}

/// The README's Kubernetes Indexed Job, as the test reads it: its completions, its
/// FETCHPOOL_SHARD_COUNT, the container's shell command and its volumes' mount paths.
struct Manifest {
    completions: u64,
    shard_count: u64,
    command: String,
    mounts: Vec<String>,
}

fn readme_manifest() -> Manifest {
    let readme =
        fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md")).unwrap();
    let block = readme
        .split("```yaml")
        .skip(1)
        .filter_map(|b| b.split("```").next())
        .find(|b| b.contains("completionMode: Indexed"))
        .expect("the README has an Indexed Job manifest");
    let lines: Vec<&str> = block.lines().map(str::trim).collect();
    let field = |name: &str| -> u64 {
        lines
            .iter()
            .find_map(|l| l.strip_prefix(name))
            .unwrap_or_else(|| panic!("no {name} in the manifest"))
            .trim()
            .parse()
            .unwrap()
    };
    let env = lines
        .iter()
        .find(|l| l.contains("name: FETCHPOOL_SHARD_COUNT"))
        .expect("FETCHPOOL_SHARD_COUNT in the manifest");
    let shard_count = env
        .split("value: \"")
        .nth(1)
        .unwrap()
        .split('"')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    assert!(lines.contains(&r#"command: ["sh", "-c"]"#), "{block}");
    // args: a folded scalar (`- >-`): its lines joined by spaces, up to the next key.
    let at = lines
        .iter()
        .position(|l| *l == "- >-")
        .expect("args as - >-");
    let command = lines[at + 1..]
        .iter()
        .take_while(|l| !l.contains(':') || l.starts_with("fetchpool") || l.starts_with("--"))
        .copied()
        .collect::<Vec<_>>()
        .join(" ");
    let mounts = block
        .split("mountPath: ")
        .skip(1)
        .map(|m| m.split('}').next().unwrap().trim().to_string())
        .collect();
    Manifest {
        completions: field("completions:"),
        shard_count,
        command,
        mounts,
    }
}

#[test]
fn kubernetes_readme_manifest_covers_the_list_exactly_once_over_its_completion_indexes() {
    let m = readme_manifest();
    assert_eq!(
        m.shard_count, m.completions,
        "FETCHPOOL_SHARD_COUNT is the Job's completions"
    );
    assert!(m.completions > 1);
    assert_eq!(m.mounts, ["/data", "/lists"]);
    assert!(
        m.command.starts_with("fetchpool ") && m.command.contains("--shard auto"),
        "{}",
        m.command
    );

    let server = TestServer::start();
    let tmp = TempDir::new();
    let mut list = String::new();
    let mut bodies = Vec::new();
    for i in 0..80 {
        let body = random_bytes(600 + i, 700 + i as usize * 13);
        server.file(&format!("/k/{i}"), body.clone());
        list.push_str(&format!(
            "{}\tk/{i}.bin\t{}\n",
            server.url(&format!("/k/{i}")),
            sha256_hex(&body)
        ));
        bodies.push(body);
    }
    // Each volume is a directory here; the pod's command line is the manifest's, with
    // the mount paths pointing at them.
    let mut command = m.command.clone();
    for mount in &m.mounts {
        let local = tmp.join(mount.trim_start_matches('/'));
        fs::create_dir_all(&local).unwrap();
        command = command.replace(&format!("{mount}/"), &format!("{}/", local.display()));
        command = command.replace(&format!("{mount} "), &format!("{} ", local.display()));
    }
    fs::write(tmp.join("lists/manifest.tsv"), &list).unwrap();
    let path = format!(
        "{}:{}",
        bin().parent().unwrap().display(),
        std::env::var("PATH").unwrap_or_default()
    );
    // Every pod at once, as parallelism lets them run, on the one volume.
    let pods: Vec<_> = (0..m.completions)
        .map(|index| {
            Command::new("sh")
                .args(["-c", &command])
                .env("PATH", &path)
                .env("JOB_COMPLETION_INDEX", index.to_string())
                .env("FETCHPOOL_SHARD_COUNT", m.shard_count.to_string())
                .env_remove("SLURM_ARRAY_TASK_ID")
                .env_remove("http_proxy")
                .env_remove("HTTP_PROXY")
                .env_remove("ALL_PROXY")
                .stdin(Stdio::null())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    for (index, pod) in pods.into_iter().enumerate() {
        let out = pod.wait_with_output().unwrap();
        assert_eq!(
            out.status.code(),
            Some(0),
            "pod {index}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let mut seen = BTreeSet::new();
    for index in 0..m.completions {
        let report = fs::read_to_string(tmp.join(format!("data/report-{index}.jsonl"))).unwrap();
        for line in report.lines() {
            let v: Value = serde_json::from_str(line).unwrap();
            assert_eq!(v["status"], "ok", "{v}");
            let path = v["path"].as_str().unwrap().to_string();
            assert!(seen.insert(path.clone()), "{path} ran in two pods");
        }
    }
    let listed: BTreeSet<String> = (0..80).map(|i| format!("k/{i}.bin")).collect();
    assert_eq!(seen, listed, "the pods' reports cover the list exactly");
    for (i, body) in bodies.iter().enumerate() {
        assert_eq!(
            &fs::read(tmp.join(format!("data/k/{i}.bin"))).unwrap(),
            body
        );
    }
    assert_eq!(server.requests().len(), 80, "one request per job");
}
