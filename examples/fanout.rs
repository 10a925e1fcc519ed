//! An API fan-out with follow-up jobs: list users page by page (following the `Link`
//! header), fetch each user's JSON, then download each user's avatar, all in one run.
//!
//! The API calls are small, so they get limits of their own (2 s in all, 300 ms without
//! a byte, one retry) while the avatar downloads keep the pool's longer stall limit.
//! Each job carries its context (which page, which user), read back from the outcome by
//! type; bodies are parsed in place with `Outcome::json`; headers (`Link`,
//! `X-Total-Count`) and the final URL after redirects are read from outcomes.
//!
//! `BASE/api/users?page=N` is a list of `{"login"}` (a `Link: <URL>; rel="next"` header
//! names the next page), `BASE/api/users/LOGIN` is `{"login", "avatar"}` with the
//! avatar's path.
//!
//! Run: `cargo run --example fanout -- http://127.0.0.1:8080 avatars-dir`

use std::time::Duration;

use fetchpool::{Event, Job, Pool, Status, Submitter};

/// What each job is for, carried to its outcome.
enum Step {
    Page(u32),
    User(String),
    Avatar(String),
}

#[derive(serde::Deserialize)]
struct Listed {
    login: String,
}

#[derive(serde::Deserialize)]
struct User {
    login: String,
    avatar: String,
}

/// An API call: in memory, with its own short limits.
fn api(url: String, step: Step) -> Job {
    Job::new(url)
        .to_memory()
        .max_time(Duration::from_secs(2))
        .idle_timeout(Duration::from_millis(300))
        .retries(1)
        .context(step)
}

fn main() -> Result<(), fetchpool::Error> {
    let mut args = std::env::args().skip(1);
    let (Some(base), Some(dir)) = (args.next(), args.next()) else {
        eprintln!("usage: fanout BASE-URL OUTPUT-DIR");
        std::process::exit(2);
    };
    let base = base.trim_end_matches('/').to_string();
    let pool = Pool::builder()
        .workers(4)
        .output_dir(dir)
        .keep_headers(["Link", "X-Total-Count"])
        .build()?;
    let first = api(format!("{base}/api/users?page=1"), Step::Page(1));
    let follow = |submitter: &Submitter, job: Job| {
        if let Err(e) = submitter.submit(job) {
            eprintln!("cannot submit: {e}");
        }
    };
    let summary = pool.run_with_owned([first], |event, submitter| {
        let Event::Finished(o) = event else { return };
        let Some(step) = o.context::<Step>() else {
            return;
        };
        if o.status != Status::Ok {
            let error = o.error.as_ref().map(|e| e.to_string()).unwrap_or_default();
            println!("{}\t{}\t{error}", o.status, o.url);
            return;
        }
        match step {
            Step::Page(n) => {
                let users: Vec<Listed> = o.json().unwrap_or_default();
                let total = o.header("x-total-count").unwrap_or("?");
                println!("page {n}\t{} users of {total}", users.len());
                for u in users {
                    let url = format!("{base}/api/users/{}", u.login);
                    follow(submitter, api(url, Step::User(u.login)));
                }
                if let Some(next) = o.header("link").and_then(next_link) {
                    follow(submitter, api(format!("{base}{next}"), Step::Page(n + 1)));
                }
            }
            Step::User(login) => match o.json::<User>() {
                Ok(user) => {
                    println!("user {login}\tfrom {}", o.final_url());
                    let job = Job::new(format!("{base}{}", user.avatar))
                        .to_file(format!("{}.png", user.login))
                        .context(Step::Avatar(user.login));
                    follow(submitter, job);
                }
                Err(e) => println!("user {login}\tnot JSON: {e}"),
            },
            Step::Avatar(login) => println!("avatar {login}\t{} bytes", o.bytes),
        }
    });
    println!(
        "fanout: {} ok, {} failed, {} cancelled",
        summary.ok, summary.failed, summary.cancelled
    );
    Ok(())
}

/// The target of a `Link` header's `rel="next"`: `</path?page=2>; rel="next"`.
fn next_link(link: &str) -> Option<&str> {
    link.split(',')
        .find(|part| part.contains("rel=\"next\""))
        .and_then(|part| part.split_once('<'))
        .and_then(|(_, rest)| rest.split_once('>'))
        .map(|(target, _)| target)
}
