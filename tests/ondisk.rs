//! fetchpool's own files on disk and the jobs' files never meet: reserved working-file
//! names, one run per output directory, and no write through a link fetchpool did not make.

mod support;

use std::fs;

use fetchpool::{ErrorKind, Job, Pool, Status};
use support::cli::{fetchpool, write_list};
use support::{TempDir, TestServer, random_bytes, sha256_hex};

// ---------------------------------------------------------------------------------------
// Job paths that are fetchpool's own working files

#[test]
fn job_paths_naming_working_files_are_refused_before_any_request() {
    let server = TestServer::start();
    let tmp = TempDir::new();
    server.file("/a", random_bytes(1, 5_000));
    server.file("/b", random_bytes(2, 10_000));
    let a = server.url("/a");
    let b = server.url("/b");
    for (line2, reason) in [
        ("a.bin.part", "'.part'"),
        ("a.bin.part.meta", "'.part.meta'"),
        ("A.BIN.PART", "'.part'"),
        ("sub/x.Part", "'.part'"),
        (".fetchpool/validators/00/x", "state directory"),
        ("./sub/../.FetchPool/lock", "state directory"),
    ] {
        let list = write_list(
            tmp.path(),
            "list.tsv",
            &format!("{a}\ta.bin\n{b}\t{line2}\n"),
        );
        let run = fetchpool(tmp.path(), &["-i", &list, "-o", "out"], None);
        assert_eq!(run.code, 2, "{line2}: stderr: {}", run.stderr);
        assert!(
            run.stderr.contains("list.tsv:2") && run.stderr.contains(reason),
            "{line2}: {}",
            run.stderr
        );
        assert_eq!(server.requests().len(), 0, "{line2}: nothing is requested");
        assert!(!tmp.join("out/a.bin").exists());
    }
    // Names that only look alike stay allowed.
    let list = write_list(
        tmp.path(),
        "ok.tsv",
        &format!("{a}\ta.bin\n{b}\ta.bin.partial\n{a}\tfetchpool/x\n{b}\tx.part/y.bin\n"),
    );
    let run = fetchpool(tmp.path(), &["-i", &list, "-o", "out"], None);
    assert_eq!(run.code, 0, "stderr: {}", run.stderr);
    assert_eq!(
        fs::read(tmp.join("out/a.bin.partial")).unwrap(),
        random_bytes(2, 10_000)
    );
}

#[test]
fn the_library_refuses_working_file_paths_in_run_and_in_a_session() {
    let server = TestServer::start();
    let tmp = TempDir::new();
    let body = random_bytes(3, 10_000);
    server.file("/a", body.clone());
    let pool = Pool::builder().output_dir(tmp.path()).build().unwrap();
    let err = pool
        .run(vec![
            Job::new(server.url("/a")).to_file("a.bin"),
            Job::new(server.url("/a")).to_file("a.bin.part"),
        ])
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Config);
    assert!(err.to_string().contains("'.part'"), "{err}");
    assert_eq!(server.requests().len(), 0);

    let mut session = pool.start();
    session
        .submit(Job::new(server.url("/a")).to_file(".fetchpool/validators/ab/cd"))
        .unwrap();
    session
        .submit(
            Job::new(server.url("/a"))
                .to_file("a.bin")
                .sha256(sha256_hex(&body)),
        )
        .unwrap();
    session.close();
    let mut outcomes: Vec<_> = (&mut session)
        .filter_map(|e| match e {
            fetchpool::Event::Finished(o) => Some(o),
            _ => None,
        })
        .collect();
    outcomes.sort_by_key(|o| o.id);
    assert_eq!(outcomes[0].status, Status::Failed);
    let e = outcomes[0].error.as_ref().unwrap();
    assert_eq!(e.kind(), ErrorKind::Config);
    assert!(e.to_string().contains("state directory"), "{e}");
    assert_eq!(outcomes[1].status, Status::Ok);
    assert_eq!(server.requests().len(), 1);
    assert_eq!(fs::read(tmp.join("a.bin")).unwrap(), body);
}
