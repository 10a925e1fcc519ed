//! A package-index mirror: fetch the index (a one-off request on this thread), check the
//! list, download every file with its sha256 verified, and skip what is already right on
//! a re-run without a request.
//!
//! The index at `BASE/index.json` is a JSON list of `{"path", "sha256", "size"}`; each
//! file is at `BASE/PATH`. The index call gets a short budget of its own; the files keep
//! the pool's limits, made for large downloads. Jobs carry a sha256, so no validator store
//! is needed: the mirror writes nothing but its files.
//!
//! Run: `cargo run --example mirror -- http://127.0.0.1:8080 mirror-dir`

use std::time::Duration;

use fetchpool::{Job, Pool, Status};

#[derive(serde::Deserialize)]
struct Entry {
    path: String,
    sha256: String,
    size: u64,
}

fn main() -> Result<(), fetchpool::Error> {
    let mut args = std::env::args().skip(1);
    let (Some(base), Some(dir)) = (args.next(), args.next()) else {
        eprintln!("usage: mirror BASE-URL OUTPUT-DIR");
        std::process::exit(2);
    };
    let base = base.trim_end_matches('/');
    let pool = Pool::builder()
        .workers(8)
        .per_host(4)
        .idle_timeout(Duration::from_secs(30))
        .output_dir(&dir)
        .state_dir(None)
        .build()?;

    let index = pool.fetch(
        Job::new(format!("{base}/index.json"))
            .to_memory()
            .max_time(Duration::from_secs(10))
            .idle_timeout(Duration::from_secs(2))
            .retries(2),
    );
    let entries: Vec<Entry> = match (&index.error, index.json()) {
        (None, Ok(entries)) => entries,
        (Some(e), _) => fail(&format!("index: {e}")),
        (None, Err(e)) => fail(&format!("index is not a list of files: {e}")),
    };
    let jobs: Vec<Job> = entries
        .iter()
        .map(|e| {
            Job::new(format!("{base}/{}", e.path))
                .to_file(&e.path)
                .sha256(&e.sha256)
                .size(e.size)
        })
        .collect();
    // The whole list is refused before any request if two entries name one file.
    pool.check(&jobs)?;
    let report = pool.run(jobs)?;
    for o in &report.outcomes {
        let path = o.path.as_deref().unwrap_or("".as_ref()).display();
        match &o.error {
            None => println!("{}\t{path}\t{} bytes", o.status, o.bytes),
            Some(e) => println!("{}\t{path}\t{e}", o.status),
        }
    }
    let s = &report.summary;
    println!(
        "mirror: {} ok, {} skipped, {} failed, {} bytes",
        s.ok, s.skipped, s.failed, s.bytes
    );
    let failed = report.outcomes.iter().any(|o| o.status == Status::Failed);
    std::process::exit(i32::from(failed));
}

fn fail(message: &str) -> ! {
    eprintln!("mirror: {message}");
    std::process::exit(1);
}
