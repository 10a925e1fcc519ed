//! The blocking library in ten lines: download a few files with checksums, then read
//! the outcomes.
//!
//! Run: `cargo run --example download -- http://127.0.0.1:8080/a.bin http://127.0.0.1:8080/b.bin`

use fetchpool::{Job, Pool};

fn main() -> Result<(), fetchpool::Error> {
    let urls: Vec<String> = std::env::args().skip(1).collect();
    let pool = Pool::builder().workers(4).output_dir("downloads").build()?;
    let report = pool.run(urls.iter().map(Job::new))?;
    for o in &report.outcomes {
        println!(
            "{}\t{}\t{} bytes\t{}",
            o.status,
            o.url,
            o.bytes,
            o.sha256.as_deref().unwrap_or("-")
        );
    }
    std::process::exit(if report.summary.all_succeeded() { 0 } else { 1 });
}
