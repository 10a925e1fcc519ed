//! Follow-up jobs: fetch a JSON document into memory, read a file's URL (and its
//! sha256) from it, and download that file, all in one run. The observer of
//! [`Pool::run_with`] gets a [`fetchpool::Submitter`]; what it submits joins the run, and
//! the run ends only when the follow-ups have finished too.
//!
//! The document looks like `{"url": "http://…/data.bin", "sha256": "…"}`.
//!
//! Run: `cargo run --example chain -- http://127.0.0.1:8080/latest.json`

use fetchpool::{Event, Job, Pool};

fn main() -> Result<(), fetchpool::Error> {
    let Some(index) = std::env::args().nth(1) else {
        eprintln!("usage: chain URL-OF-JSON-DOCUMENT");
        std::process::exit(2);
    };
    let pool = Pool::builder().workers(4).output_dir("downloads").build()?;
    let summary = pool.run_with([Job::new(index.clone()).to_memory()], |event, submitter| {
        let Event::Finished(outcome) = event else {
            return;
        };
        println!(
            "{}\t{}\t{} bytes",
            outcome.status, outcome.url, outcome.bytes
        );
        if outcome.url != index {
            return;
        }
        let doc: serde_json::Value = match outcome.json() {
            Ok(doc) => doc,
            Err(e) => {
                eprintln!("{index} is not JSON: {e}");
                return;
            }
        };
        let Some(url) = doc["url"].as_str() else {
            eprintln!("{index} has no \"url\"");
            return;
        };
        let mut job = Job::new(url);
        if let Some(sha) = doc["sha256"].as_str() {
            job = job.sha256(sha);
        }
        if let Err(e) = submitter.submit(job) {
            eprintln!("cannot submit {url}: {e}");
        }
    });
    std::process::exit(if summary.all_succeeded() && summary.ok == 2 {
        0
    } else {
        1
    });
}
