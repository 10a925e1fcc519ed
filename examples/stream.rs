//! The streaming form: submit jobs from your own thread, read events as they happen.
//! API responses stay in memory; nothing is written to disk.
//!
//! Run: `cargo run --example stream -- http://127.0.0.1:8080/api/1 http://127.0.0.1:8080/api/2`

use fetchpool::{Event, Job, Pool};

fn main() -> Result<(), fetchpool::Error> {
    let pool = Pool::builder().workers(8).per_host(8).build()?;
    let mut session = pool.start();
    for url in std::env::args().skip(1) {
        session.submit(Job::new(url).to_memory())?;
    }
    session.close();
    for event in &mut session {
        match event {
            Event::Retrying {
                id, delay, reason, ..
            } => eprintln!("{id}: retrying in {delay:?}: {reason}"),
            Event::Finished(o) => {
                let body = o.body.as_deref().unwrap_or_default();
                println!(
                    "{} {} {} bytes: {}",
                    o.status,
                    o.url,
                    body.len(),
                    String::from_utf8_lossy(&body[..body.len().min(60)])
                );
            }
            _ => {}
        }
    }
    let summary = session.wait();
    std::process::exit(if summary.all_succeeded() { 0 } else { 1 });
}
