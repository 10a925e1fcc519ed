//! The command line as people meet it: progress, summary, help, rate limit, dry run,
//! sharding and retrying the failures of an earlier run.

mod support;

use std::collections::BTreeMap;
use std::fs;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use fetchpool::{Job, Shard};
use serde_json::Value;
use support::cli::{bin, fetchpool, write_list};
use support::{TempDir, TestServer, random_bytes, sha256_hex};

/// Variables that would change what a run does, removed from every child.
const SCRUBBED: &[&str] = &[
    "http_proxy",
    "HTTP_PROXY",
    "https_proxy",
    "HTTPS_PROXY",
    "all_proxy",
    "ALL_PROXY",
    "no_proxy",
    "NO_PROXY",
    "JOB_COMPLETION_INDEX",
    "FETCHPOOL_SHARD_COUNT",
    "SLURM_ARRAY_TASK_ID",
    "SLURM_ARRAY_TASK_MIN",
    "SLURM_ARRAY_TASK_COUNT",
    "SLURM_ARRAY_TASK_STEP",
    "RUST_LOG",
];

/// Runs the binary in `dir` with `args` and `env`, no report; returns code, stdout, stderr.
fn run_env(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> (i32, String, String) {
    let mut cmd = Command::new(bin());
    cmd.current_dir(dir).args(args).stdin(Stdio::null());
    for v in SCRUBBED {
        cmd.env_remove(v);
    }
    cmd.envs(env.iter().copied());
    let out = cmd.output().expect("run fetchpool");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

// ---------------------------------------------------------------------------------------
// Progress and summary

#[test]
fn on_a_terminal_the_bar_appears_and_ends_with_the_summary() {
    let server = TestServer::start();
    let tmp = TempDir::new();
    for i in 0..4 {
        server.file(&format!("/p/{i}.bin"), random_bytes(i, 256 * 1024));
    }
    let urls: Vec<String> = (0..4).map(|i| server.url(&format!("/p/{i}.bin"))).collect();
    // 1 MiB at 1 MiB/s: about a second, so the bar (5 redraws a second) is drawn.
    let command = format!(
        "{} -o {} -j 2 --limit-rate 1M {}",
        bin().display(),
        tmp.join("out").display(),
        urls.join(" ")
    );
    let out = Command::new("script")
        .args(["-qec", &command, "/dev/null"])
        .env("TERM", "xterm")
        .env("COLUMNS", "120")
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .output()
        .expect("run under script(1)");
    let screen = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{screen}");
    let bar = screen
        .rfind("files [")
        .unwrap_or_else(|| panic!("no bar in {screen:?}"));
    assert!(
        screen.contains("in flight") && screen.contains("ETA"),
        "{screen:?}"
    );
    assert!(
        screen.contains('\u{1b}'),
        "a terminal gets escape codes: {screen:?}"
    );
    let summary = screen
        .rfind("4 jobs: 4 ok, 0 skipped, 0 failed, 0 cancelled")
        .unwrap_or_else(|| panic!("no summary in {screen:?}"));
    assert!(bar < summary, "the summary comes after the bar: {screen:?}");
    let tail = &screen[summary..];
    assert!(
        !tail.contains("files ["),
        "nothing of the bar after the summary: {tail:?}"
    );
}

#[test]
fn piped_output_has_no_bar_and_no_escape_codes_only_the_summary() {
    let server = TestServer::start();
    let tmp = TempDir::new();
    server.file("/a.bin", random_bytes(1, 100_000));
    server.file("/b.bin", random_bytes(2, 50_000));
    let run = fetchpool(
        tmp.path(),
        &[&server.url("/a.bin"), &server.url("/b.bin"), "-o", "out"],
        None,
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(!run.stderr.contains('\u{1b}'), "{:?}", run.stderr);
    assert!(!run.stderr.contains("files ["), "{:?}", run.stderr);
    assert!(run.stdout.is_empty(), "{:?}", run.stdout);
    let first = run.stderr.lines().next().unwrap();
    assert!(
        first.starts_with("2 jobs: 2 ok, 0 skipped, 0 failed, 0 cancelled; 146.5 KiB in "),
        "{first}"
    );
    assert!(run.stderr.contains("report: "), "{}", run.stderr);
}

#[test]
fn summary_groups_failures_by_kind_with_advice_and_the_retry_command() {
    let server = TestServer::start();
    let tmp = TempDir::new();
    server.file("/ok.bin", random_bytes(3, 1000));
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let refused = format!("http://127.0.0.1:{closed}/x.bin");
    let missing = [server.url("/missing1"), server.url("/missing2")];
    let run = fetchpool(
        tmp.path(),
        &[
            &server.url("/ok.bin"),
            &missing[0],
            &missing[1],
            &refused,
            "-o",
            "out",
            "--retries",
            "0",
        ],
        None,
    );
    assert_eq!(run.code, 1);
    let err = &run.stderr;
    assert!(
        err.contains("4 jobs: 1 ok, 0 skipped, 3 failed, 0 cancelled"),
        "{err}"
    );
    let http = err
        .lines()
        .find(|l| l.starts_with("  http: 2 (e.g. "))
        .unwrap_or_else(|| panic!("{err}"));
    assert!(
        http.contains(&missing[0]) && http.contains(&missing[1]),
        "{http}"
    );
    assert!(
        err.contains("hint: the server has no such file: check the URLs in the list"),
        "{err}"
    );
    assert!(
        err.contains(&format!("  connect: 1 (e.g. {refused})")),
        "{err}"
    );
    assert!(
        err.contains(&format!("hint: nothing answers at 127.0.0.1:{closed}")),
        "{err}"
    );
    let report = tmp.join("report.jsonl");
    assert!(
        err.contains(&format!("report: {}", report.display())),
        "{err}"
    );
    assert!(
        err.contains(&format!("--retry-failed {}", report.display())),
        "{err}"
    );
}

#[test]
fn quiet_prints_nothing_on_success_and_one_line_on_failure() {
    let server = TestServer::start();
    let tmp = TempDir::new();
    server.file("/a.bin", random_bytes(4, 1000));
    let ok = fetchpool(
        tmp.path(),
        &[&server.url("/a.bin"), "-o", "out", "-q"],
        None,
    );
    assert_eq!(
        (ok.code, ok.stderr.as_str(), ok.stdout.as_str()),
        (0, "", "")
    );
    let bad = fetchpool(tmp.path(), &[&server.url("/nope"), "-o", "out", "-q"], None);
    assert_eq!(bad.code, 1);
    let report = tmp.join("report.jsonl");
    assert_eq!(
        bad.stderr,
        format!(
            "fetchpool: 1 of 1 jobs did not succeed (http: 1); details in {}\n",
            report.display()
        )
    );
}

// ---------------------------------------------------------------------------------------
// Help

/// Every long option in `--help` and its `[default: …]` (`None` when it shows none).
fn help_options(help: &str) -> BTreeMap<String, Option<String>> {
    // Join each option's wrapped lines, then read its name and default.
    let mut entries: Vec<String> = Vec::new();
    let mut in_options = false;
    for line in help.lines() {
        if line.is_empty() {
            in_options = false;
            continue;
        }
        if !line.starts_with(' ') {
            in_options = line.ends_with(':') && line != "Commands:" && line != "Examples:";
            continue;
        }
        if !in_options {
            continue;
        }
        let t = line.trim_start();
        if t.starts_with('-') && line.len() - t.len() <= 6 {
            entries.push(t.to_string());
        } else if t.starts_with('[') && line.len() - t.len() <= 2 {
            entries.push(t.to_string()); // the URL positional: skipped below
        } else if let Some(last) = entries.last_mut() {
            last.push(' ');
            last.push_str(t);
        }
    }
    let mut out = BTreeMap::new();
    for e in entries.iter().filter(|e| !e.starts_with('[')) {
        let Some(long) = e
            .split_whitespace()
            .find(|w| w.starts_with("--"))
            .map(|w| w.trim_end_matches([',', '.']).to_string())
        else {
            continue;
        };
        let default = e.find("[default: ").map(|i| {
            let rest = &e[i + "[default: ".len()..];
            rest[..rest.find(']').unwrap()].to_string()
        });
        out.insert(long, default);
    }
    out
}

/// The README's option table: option → default (`—` means none shown).
fn readme_options() -> BTreeMap<String, Option<String>> {
    let readme = fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md"))
        .expect("README.md");
    let table = readme
        .split("<!-- options-table -->")
        .nth(1)
        .expect("README has an <!-- options-table --> section");
    let mut out = BTreeMap::new();
    for row in table.lines().filter(|l| l.starts_with("| `")) {
        // `\|` is a literal bar inside a cell.
        let row = row.replace("\\|", "¦");
        let cells: Vec<&str> = row.split('|').map(str::trim).collect();
        let option = cells[1]
            .split('`')
            .nth(1)
            .unwrap()
            .split(", ")
            .find(|w| w.starts_with("--"))
            .unwrap()
            .split_whitespace()
            .next()
            .unwrap()
            .to_string();
        let default = cells[2].trim_matches('`');
        out.insert(option, (default != "—").then(|| default.to_string()));
    }
    out
}

#[test]
fn readme_option_table_matches_help_option_for_option_and_default_for_default() {
    let (code, help, _) = run_env(Path::new("."), &["--help"], &[]);
    assert_eq!(code, 0);
    let help = help_options(&help);
    assert!(help.len() >= 25, "parsed too few options: {help:#?}");
    assert_eq!(help["--workers"], Some("16".into()));
    assert_eq!(help["--limit-rate"], Some("unlimited".into()));
    assert_eq!(help["--serial"], None);
    assert_eq!(
        readme_options(),
        help,
        "README's option table and --help differ"
    );
}

#[test]
fn help_teaches_groups_units_and_examples_and_version_prints() {
    let (_, help, _) = run_env(Path::new("."), &["--help"], &[]);
    for heading in [
        "Input:",
        "Concurrency:",
        "Timeouts and retries:",
        "Proxy, redirects and TLS:",
        "Output and reporting:",
        "Examples:",
    ] {
        assert!(help.contains(&format!("\n{heading}\n")), "no {heading}");
    }
    assert!(help.contains("--connect-timeout <SECS>"), "{help}");
    assert!(help.contains("1024-based"), "{help}");
    let (code, version, _) = run_env(Path::new("."), &["--version"], &[]);
    assert_eq!(code, 0);
    assert_eq!(
        version,
        format!("fetchpool {}\n", env!("CARGO_PKG_VERSION"))
    );
}

// ---------------------------------------------------------------------------------------
// Rate limit

/// Downloads `parts` files totalling 10 MiB at `--limit-rate 2M` with `-j workers` and
/// returns the wall time.
fn ten_mib_at_2m(parts: usize, workers: usize) -> Duration {
    let server = TestServer::start();
    let tmp = TempDir::new();
    let size = (10 << 20) / parts;
    let mut list = String::new();
    for i in 0..parts {
        let body = random_bytes(i as u64, size);
        server.file(&format!("/big/{i}"), body.clone());
        list.push_str(&format!(
            "{}\tbig{i}.bin\t{}\n",
            server.url(&format!("/big/{i}")),
            sha256_hex(&body)
        ));
    }
    let name = write_list(tmp.path(), "l.tsv", &list);
    let workers = workers.to_string();
    let started = Instant::now();
    let run = fetchpool(
        tmp.path(),
        &[
            "-i",
            &name,
            "-o",
            "out",
            "-j",
            &workers,
            "--limit-rate",
            "2M",
        ],
        None,
    );
    let took = started.elapsed();
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(run.with_status("ok").len(), parts);
    took
}

#[test]
fn limit_rate_2m_makes_one_10_mib_download_take_5_seconds() {
    let took = ten_mib_at_2m(1, 1);
    eprintln!("1 × 10 MiB at -j 1: {took:?}");
    assert!(
        (4.25..=5.75).contains(&took.as_secs_f64()),
        "took {took:?}, want 5 s ± 15 %"
    );
}

#[test]
fn limit_rate_is_one_budget_shared_by_all_workers() {
    let took = ten_mib_at_2m(4, 4);
    eprintln!("4 × 2.5 MiB at -j 4: {took:?}");
    assert!(
        (4.25..=5.75).contains(&took.as_secs_f64()),
        "took {took:?}, want 5 s ± 15 %"
    );
}

// ---------------------------------------------------------------------------------------
// Dry run

#[test]
fn dry_run_makes_no_request_and_reports_the_plan() {
    let server = TestServer::start();
    let tmp = TempDir::new();
    let bodies: Vec<Vec<u8>> = (0..3).map(|i| random_bytes(10 + i, 20_000)).collect();
    let mut list = String::new();
    for (i, b) in bodies.iter().enumerate() {
        server.file(&format!("/d/{i}"), b.clone());
        list.push_str(&format!(
            "{}\tf{i}.bin\t{}\n",
            server.url(&format!("/d/{i}")),
            sha256_hex(b)
        ));
    }
    list.push_str(&format!("{}\n", server.url("/other.bin")));
    fs::create_dir_all(tmp.join("out")).unwrap();
    fs::write(tmp.join("out/f0.bin"), &bodies[0]).unwrap(); // up to date
    fs::write(tmp.join("out/f1.bin"), b"stale").unwrap(); // present but different
    let name = write_list(tmp.path(), "l.tsv", &list);
    let run = fetchpool(tmp.path(), &["-i", &name, "-o", "out", "--dry-run"], None);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(server.requests().len(), 0);
    assert_eq!(server.connections(), 0);
    assert_eq!(
        run.stdout,
        format!(
            "dry run: 4 jobs to 1 host(s), output in out\n  http://{}\t4 jobs\n  \
             already up to date (checksum matches): 1\n  to fetch: 3\nno request was made\n",
            server.addr()
        )
    );
    assert!(!tmp.join("out/f2.bin").exists());
    assert!(run.report.is_empty(), "a dry run writes no report");

    // The run agrees with the plan: the file the dry run called up to date is skipped.
    let real = fetchpool(tmp.path(), &["-i", &name, "-o", "out"], None);
    assert_eq!(real.with_status("skipped").len(), 1, "{:#?}", real.report);
    assert_eq!(real.line(&server.url("/d/0"))["status"], "skipped");
    assert_eq!(server.hits("/d/0"), 0);
}

// ---------------------------------------------------------------------------------------
// Sharding

fn ten_thousand_jobs(base: &str) -> Vec<(String, String)> {
    (0..10_000)
        .map(|i| {
            (
                format!("{base}/files/{i}"),
                format!("data/{:02}/part-{i:05}.bin", i % 37),
            )
        })
        .collect()
}

#[test]
fn shards_1_2_3_of_3_cover_10000_jobs_exactly_once_in_near_thirds() {
    let server = TestServer::start();
    let tmp = TempDir::new();
    let jobs = ten_thousand_jobs(server.url("").trim_end_matches('/'));
    let shards: Vec<Shard> = (1..=3)
        .map(|k| Shard::parse(&format!("{k}/3")).unwrap())
        .collect();
    let mut sizes = [0u64; 3];
    for (url, path) in &jobs {
        let job = Job::new(url.as_str()).to_file(path.as_str());
        let owners: Vec<usize> = (0..3).filter(|&k| shards[k].contains(&job)).collect();
        assert_eq!(owners.len(), 1, "{path} is in shards {owners:?}");
        sizes[owners[0]] += 1;
    }
    eprintln!("shard sizes of 10,000: {sizes:?}");
    for n in sizes {
        assert!((3000..=3667).contains(&n), "shard of {n} jobs: {sizes:?}");
    }
    // The binary takes the same shares, counted in its plan pass, with no request.
    let list: String = jobs.iter().map(|(u, p)| format!("{u}\t{p}\n")).collect();
    let name = write_list(tmp.path(), "l.tsv", &list);
    for (k, want) in sizes.iter().enumerate() {
        let shard = format!("{}/3", k + 1);
        let (code, out, err) = run_env(
            tmp.path(),
            &[
                "-i",
                &name,
                "-o",
                "out",
                "--dry-run",
                "--json",
                "--shard",
                &shard,
            ],
            &[],
        );
        assert_eq!(code, 0, "{err}");
        let plan: Value = serde_json::from_str(&out).unwrap();
        assert_eq!(plan["listed"], 10_000);
        assert_eq!(plan["jobs"], *want, "{plan}");
        assert_eq!(plan["shard"], shard);
    }
    assert_eq!(server.requests().len(), 0);
}

#[test]
fn shard_auto_reads_kubernetes_indexed_jobs_and_slurm_arrays() {
    let tmp = TempDir::new();
    let jobs = ten_thousand_jobs("http://127.0.0.1:9");
    let list: String = jobs.iter().map(|(u, p)| format!("{u}\t{p}\n")).collect();
    let name = write_list(tmp.path(), "l.tsv", &list);
    let count = |k: u64, n: u64| {
        let s = Shard::new(k, n).unwrap();
        jobs.iter()
            .filter(|(u, p)| s.contains(&Job::new(u.as_str()).to_file(p.as_str())))
            .count() as u64
    };
    let plan = |extra: &[&str], env: &[(&str, &str)]| -> Value {
        let mut args = vec![
            "-i",
            name.as_str(),
            "--dry-run",
            "--json",
            "--shard",
            "auto",
        ];
        args.extend_from_slice(extra);
        let (code, out, err) = run_env(tmp.path(), &args, env);
        assert_eq!(code, 0, "{err}");
        serde_json::from_str(&out).unwrap()
    };
    // Kubernetes Indexed Job: 0-based index, count from the flag or the variable.
    let k8s = plan(&["--shard-count", "4"], &[("JOB_COMPLETION_INDEX", "1")]);
    assert_eq!(
        (k8s["shard"].as_str(), k8s["jobs"].as_u64()),
        (Some("2/4"), Some(count(1, 4)))
    );
    let k8s = plan(
        &[],
        &[
            ("JOB_COMPLETION_INDEX", "0"),
            ("FETCHPOOL_SHARD_COUNT", "2"),
        ],
    );
    assert_eq!(
        (k8s["shard"].as_str(), k8s["jobs"].as_u64()),
        (Some("1/2"), Some(count(0, 2)))
    );
    // Slurm array --array=3-5: task ids 3, 4, 5 are shards 1, 2, 3 of 3.
    let slurm = plan(
        &[],
        &[
            ("SLURM_ARRAY_TASK_ID", "5"),
            ("SLURM_ARRAY_TASK_MIN", "3"),
            ("SLURM_ARRAY_TASK_COUNT", "3"),
        ],
    );
    assert_eq!(
        (slurm["shard"].as_str(), slurm["jobs"].as_u64()),
        (Some("3/3"), Some(count(2, 3)))
    );
    // Neither engine, or a Kubernetes index without a count: a usage error naming the fix.
    let (code, _, err) = run_env(
        tmp.path(),
        &["-i", &name, "--dry-run", "--shard", "auto"],
        &[],
    );
    assert_eq!(code, 2);
    assert!(
        err.contains("JOB_COMPLETION_INDEX") && err.contains("SLURM_ARRAY_TASK_ID"),
        "{err}"
    );
    let (code, _, err) = run_env(
        tmp.path(),
        &["-i", &name, "--dry-run", "--shard", "auto"],
        &[("JOB_COMPLETION_INDEX", "1")],
    );
    assert_eq!(code, 2);
    assert!(err.contains("--shard-count"), "{err}");
}

// ---------------------------------------------------------------------------------------
// Retrying the failures of an earlier run

#[test]
fn retry_failed_reruns_exactly_the_failed_jobs_of_a_report() {
    let server = TestServer::start();
    let tmp = TempDir::new();
    let good: Vec<Vec<u8>> = (0..3).map(|i| random_bytes(20 + i, 10_000)).collect();
    let fixed = random_bytes(30, 10_000);
    for (i, b) in good.iter().enumerate() {
        server.file(&format!("/g/{i}"), b.clone());
    }
    // /late is missing at first (404); /wrong serves other bytes than the list says.
    server.file("/wrong", random_bytes(31, 10_000));
    let mut list = String::new();
    for (i, b) in good.iter().enumerate() {
        list.push_str(&format!(
            "{}\tg{i}.bin\t{}\n",
            server.url(&format!("/g/{i}")),
            sha256_hex(b)
        ));
    }
    list.push_str(&format!("{}\tlate.bin\n", server.url("/late")));
    list.push_str(&format!(
        "{}\twrong.bin\t{}\n",
        server.url("/wrong"),
        sha256_hex(&fixed)
    ));
    let name = write_list(tmp.path(), "l.tsv", &list);
    let first = fetchpool(tmp.path(), &["-i", &name, "-o", "out"], None);
    assert_eq!(first.code, 1);
    assert_eq!(first.with_status("ok").len(), 3);
    assert_eq!(first.with_status("failed").len(), 2);
    fs::copy(tmp.join("report.jsonl"), tmp.join("first.jsonl")).unwrap();

    server.file("/late", random_bytes(32, 5_000));
    server.file("/wrong", fixed.clone());
    let second = fetchpool(
        tmp.path(),
        &["-i", &name, "-o", "out", "--retry-failed", "first.jsonl"],
        None,
    );
    assert_eq!(second.code, 0, "{}", second.stderr);
    let mut urls: Vec<&str> = second
        .report
        .iter()
        .map(|l| l["url"].as_str().unwrap())
        .collect();
    urls.sort();
    assert_eq!(urls, vec![server.url("/late"), server.url("/wrong")]);
    assert_eq!(second.with_status("ok").len(), 2);
    for i in 0..3 {
        assert_eq!(
            server.hits(&format!("/g/{i}")),
            1,
            "g{i} was not asked for again"
        );
    }
    assert_eq!((server.hits("/late"), server.hits("/wrong")), (2, 2));
    assert_eq!(fs::read(tmp.join("out/wrong.bin")).unwrap(), fixed);

    // A report with nothing left to retry runs nothing.
    let third = fetchpool(
        tmp.path(),
        &[
            "-i",
            &name,
            "-o",
            "out",
            "--retry-failed",
            "first.jsonl",
            "--dry-run",
        ],
        None,
    );
    assert_eq!(third.code, 0);
    assert!(
        third.stdout.starts_with("dry run: 2 jobs"),
        "{}",
        third.stdout
    );
}

#[test]
fn retry_failed_without_the_job_list_says_what_to_give() {
    let tmp = TempDir::new();
    fs::write(
        tmp.join("r.jsonl"),
        "{\"url\":\"http://h/a\",\"path\":\"a\",\"status\":\"failed\"}\n",
    )
    .unwrap();
    let (code, _, err) = run_env(tmp.path(), &["--retry-failed", "r.jsonl"], &[]);
    assert_eq!(code, 2);
    assert!(err.contains("give the same -i FILE or URLs again"), "{err}");
}

#[test]
fn retry_failed_reruns_failed_and_cancelled_jobs_never_ok_or_skipped_ones() {
    let server = TestServer::start();
    let tmp = TempDir::new();
    for name in ["ok", "skipped", "failed", "cancelled"] {
        server.file(&format!("/{name}"), random_bytes(40, 1_000));
    }
    let list: String = ["ok", "skipped", "failed", "cancelled"]
        .iter()
        .map(|n| format!("{}\t{n}.bin\n", server.url(&format!("/{n}"))))
        .collect();
    let name = write_list(tmp.path(), "l.tsv", &list);
    let report: String = ["ok", "skipped", "failed", "cancelled"]
        .iter()
        .map(|n| {
            format!(
                "{{\"url\":\"{}\",\"path\":\"{n}.bin\",\"status\":\"{n}\"}}\n",
                server.url(&format!("/{n}"))
            )
        })
        .collect();
    fs::write(tmp.join("earlier.jsonl"), report).unwrap();
    let run = fetchpool(
        tmp.path(),
        &["-i", &name, "-o", "out", "--retry-failed", "earlier.jsonl"],
        None,
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
    let mut paths: Vec<&str> = run
        .report
        .iter()
        .map(|l| l["path"].as_str().unwrap())
        .collect();
    paths.sort();
    assert_eq!(paths, ["cancelled.bin", "failed.bin"]);
    assert_eq!((server.hits("/ok"), server.hits("/skipped")), (0, 0));
}

#[test]
fn a_bad_rate_is_a_usage_error_that_shows_the_form() {
    let (code, _, err) = run_env(Path::new("."), &["--limit-rate", "fast", "http://h/a"], &[]);
    assert_eq!(code, 2);
    assert!(
        err.contains("write bytes per second like 500K, 10M or 1.5G"),
        "{err}"
    );
}

// ---------------------------------------------------------------------------------------
// Error messages that point to the fix

#[test]
fn an_unknown_tls_issuer_gets_a_hint_to_pass_the_ca_with_cacert() {
    let ca = support::tls::TestCa::new("private CA");
    let plain = TestServer::start();
    plain.file("/f.bin", b"x".to_vec());
    let front = support::tls::TlsFront::start(&ca, support::tls::Leaf::Valid, &plain);
    let tmp = TempDir::new();
    let run = fetchpool(tmp.path(), &[&front.url("/f.bin"), "-o", "out"], None);
    assert_eq!(run.code, 1);
    assert!(
        run.stderr.contains(
            "    hint: 127.0.0.1 presents a certificate no trusted CA signed: if it is your own \
             CA, pass it with --cacert FILE (PEM) or add it to the system's trust store\n"
        ),
        "{}",
        run.stderr
    );
}

/// The hint names a proxy from the environment the way the run read it (the library's
/// rules) and the way `--proxy` is named: user kept, password hidden. Before, the binary
/// read the variables itself and dropped the credentials and their `@` only.
#[test]
fn a_proxy_from_the_environment_is_named_in_the_hint_as_the_run_used_it() {
    let ca = support::tls::TestCa::new("private CA");
    let plain = TestServer::start();
    plain.file("/f.bin", b"x".to_vec());
    let front = support::tls::TlsFront::start(&ca, support::tls::Leaf::Valid, &plain);
    let proxy = support::proxy::TestProxy::start();
    proxy.connect_only_to(&[443]);
    let tmp = TempDir::new();
    let with_creds = format!("http://user:s3cret@127.0.0.1:{}", proxy.port());
    let (code, _, stderr) = run_env(
        tmp.path(),
        &[&front.url("/f.bin"), "-o", "out"],
        &[("https_proxy", &with_creds)],
    );
    assert_eq!(code, 1, "{stderr}");
    let want = format!(
        "    hint: proxy http://user:***@127.0.0.1:{} refused CONNECT to 127.0.0.1:{}; ",
        proxy.port(),
        front.port()
    );
    assert!(stderr.contains(&want), "{stderr}");
    assert!(!stderr.contains("s3cret"), "{stderr}");
}

#[test]
fn a_proxy_refusing_connect_is_named_with_the_port_it_refused() {
    let ca = support::tls::TestCa::new("private CA");
    let plain = TestServer::start();
    plain.file("/f.bin", b"x".to_vec());
    let front = support::tls::TlsFront::start(&ca, support::tls::Leaf::Valid, &plain);
    let proxy = support::proxy::TestProxy::start();
    proxy.connect_only_to(&[443]);
    let tmp = TempDir::new();
    let run = fetchpool(
        tmp.path(),
        &[&front.url("/f.bin"), "-o", "out", "--proxy", &proxy.url()],
        None,
    );
    assert_eq!(run.code, 1);
    let port = front.port();
    let want = format!(
        "    hint: proxy {} refused CONNECT to 127.0.0.1:{port}; many proxies allow CONNECT \
         only to port 443: allow port {port} there",
        proxy.url()
    );
    assert!(run.stderr.contains(&want), "{}", run.stderr);
}
