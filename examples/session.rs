//! A long-lived session embedded in a program: a producer thread submits jobs as it
//! finds them, the main thread draws a status line from `next_event_timeout` (no thread
//! of its own for it), and one transfer is cancelled by its id mid-body, which ends it
//! `cancelled` with the bytes it received while the others go on.
//!
//! The producer submits `BASE/files/1` … `BASE/files/N` and then `BASE/huge`, the one the
//! main thread cancels once it has received 64 KiB of it.
//!
//! Run: `cargo run --example session -- http://127.0.0.1:8080 4 out-dir`

use std::time::{Duration, Instant};

use fetchpool::{Event, Job, JobId, Pool};

fn main() -> Result<(), fetchpool::Error> {
    let mut args = std::env::args().skip(1);
    let (Some(base), Some(n), Some(dir)) = (args.next(), args.next(), args.next()) else {
        eprintln!("usage: session BASE-URL COUNT OUTPUT-DIR");
        std::process::exit(2);
    };
    let base = base.trim_end_matches('/').to_string();
    let n: u32 = n.parse().unwrap_or(4);
    let pool = Pool::builder().workers(4).output_dir(dir).build()?;
    let mut session = pool.start();
    let submitter = session.submitter();
    // The session's own submitter is not needed: the producer's is the input.
    session.close();
    let (huge_tx, huge_rx) = crossbeam_channel::bounded::<JobId>(1);
    let producer = std::thread::spawn(move || {
        for i in 1..=n {
            submitter.submit(Job::new(format!("{base}/files/{i}")))?;
        }
        let huge = submitter.submit(Job::new(format!("{base}/huge")))?;
        let _ = huge_tx.send(huge);
        Ok::<(), fetchpool::Error>(())
    });

    let (mut huge, mut done, mut received) = (None, 0u32, 0u64);
    let mut last_status = Instant::now();
    loop {
        huge = huge.or_else(|| huge_rx.try_recv().ok());
        match session.next_event_timeout(Duration::from_millis(100)) {
            Some(Event::Progress { id, bytes, .. }) if Some(id) == huge && bytes >= 64 << 10 => {
                session.cancel_job(id);
            }
            Some(Event::Finished(o)) => {
                done += 1;
                received += o.bytes;
                let error = o
                    .error
                    .as_ref()
                    .map(|e| format!("\t{e}"))
                    .unwrap_or_default();
                println!("{}\t{}\t{} bytes{error}", o.status, o.url, o.bytes);
            }
            Some(_) => {}
            None if session.is_over() => break,
            None => {}
        }
        if last_status.elapsed() >= Duration::from_millis(200) {
            last_status = Instant::now();
            eprintln!("status: {done} finished, {received} bytes");
        }
    }
    producer.join().expect("the producer thread")?;
    let summary = session.wait();
    println!(
        "session: {} ok, {} cancelled, {} failed, interrupted {}",
        summary.ok, summary.cancelled, summary.failed, summary.interrupted
    );
    Ok(())
}
