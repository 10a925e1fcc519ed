//! fetchpool's own files on disk and the jobs' files never meet: reserved working-file
//! names, one run per output directory, and no write through a link fetchpool did not make.

mod support;

use std::fs;

use fetchpool::{ErrorKind, Job, Pool, Status};
use serde_json::Value;
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

// ---------------------------------------------------------------------------------------
// No write through a link fetchpool did not make

#[cfg(unix)]
fn is_link(p: &std::path::Path) -> bool {
    fs::symlink_metadata(p).is_ok_and(|m| m.file_type().is_symlink())
}

#[cfg(unix)]
#[test]
fn planted_part_and_sidecar_symlinks_are_replaced_not_written_through() {
    use std::os::unix::fs::symlink;
    let server = TestServer::start();
    let tmp = TempDir::new();
    let big = random_bytes(4, 2 << 20);
    let small = random_bytes(5, 5_000);
    let big_res = server.file("/big.bin", big.clone());
    server.file("/small.bin", small.clone());
    fs::create_dir_all(tmp.join("out")).unwrap();
    for name in [
        "victim-part",
        "victim-meta",
        "victim-small",
        "victim-resume",
    ] {
        fs::write(tmp.join(name), b"precious").unwrap();
    }
    symlink(tmp.join("victim-part"), tmp.join("out/big.bin.part")).unwrap();
    symlink(tmp.join("victim-meta"), tmp.join("out/big.bin.part.meta")).unwrap();
    symlink(tmp.join("victim-small"), tmp.join("out/small.bin.part")).unwrap();
    // A part that is a link, beside a sidecar that would resume it.
    fs::write(
        tmp.join("out/r.bin.part.meta"),
        format!(
            "{{\"url\":\"{}\",\"validator\":{},\"total\":{}}}\n",
            server.url("/big.bin"),
            serde_json::to_string(big_res.etag.as_deref().unwrap()).unwrap(),
            big.len()
        ),
    )
    .unwrap();
    symlink(tmp.join("victim-resume"), tmp.join("out/r.bin.part")).unwrap();
    let list = write_list(
        tmp.path(),
        "list.tsv",
        &format!(
            "{}\tbig.bin\n{}\tsmall.bin\n{}\tr.bin\t{}\n",
            server.url("/big.bin"),
            server.url("/small.bin"),
            server.url("/big.bin"),
            sha256_hex(&big)
        ),
    );
    let run = fetchpool(tmp.path(), &["-i", &list, "-o", "out"], None);
    assert_eq!(run.code, 0, "stderr: {}", run.stderr);
    for name in [
        "victim-part",
        "victim-meta",
        "victim-small",
        "victim-resume",
    ] {
        assert_eq!(fs::read(tmp.join(name)).unwrap(), b"precious", "{name}");
    }
    for (name, body) in [("big.bin", &big), ("small.bin", &small), ("r.bin", &big)] {
        let path = tmp.join("out").join(name);
        assert!(!is_link(&path), "{name} is a link");
        assert_eq!(&fs::read(&path).unwrap(), body, "{name}");
        assert!(!tmp.join(format!("out/{name}.part")).exists());
    }
    assert_eq!(
        run.line(&server.url("/big.bin"))["resumed_from"],
        Value::Null
    );
}

#[cfg(unix)]
#[test]
fn a_directory_link_inside_the_output_tree_is_not_written_through() {
    use std::os::unix::fs::symlink;
    let server = TestServer::start();
    let tmp = TempDir::new();
    server.file("/a", random_bytes(6, 3_000));
    fs::create_dir_all(tmp.join("out")).unwrap();
    fs::create_dir_all(tmp.join("elsewhere")).unwrap();
    symlink(tmp.join("elsewhere"), tmp.join("out/sub")).unwrap();
    let url = server.url("/a");
    let list = write_list(
        tmp.path(),
        "list.tsv",
        &format!("{url}\tsub/x.bin\n{url}\tsub/deeper/y.bin\n{url}\tok.bin\n"),
    );
    let run = fetchpool(tmp.path(), &["-i", &list, "-o", "out"], None);
    assert_eq!(run.code, 1, "stderr: {}", run.stderr);
    let failed = run.with_status("failed");
    assert_eq!(failed.len(), 2, "{:#?}", run.report);
    for line in failed {
        assert_eq!(line["error"]["kind"], "io");
        let message = line["error"]["message"].as_str().unwrap();
        assert!(message.contains("symbolic link"), "{message}");
    }
    assert_eq!(fs::read_dir(tmp.join("elsewhere")).unwrap().count(), 0);
    assert_eq!(
        fs::read(tmp.join("out/ok.bin")).unwrap(),
        random_bytes(6, 3_000)
    );
    assert_eq!(
        server.hits("/a"),
        1,
        "no request for a job that cannot be written"
    );

    // The state directory as a link: the run does not start.
    fs::create_dir_all(tmp.join("state-elsewhere")).unwrap();
    fs::create_dir_all(tmp.join("out2")).unwrap();
    symlink(tmp.join("state-elsewhere"), tmp.join("out2/.fetchpool")).unwrap();
    let run = fetchpool(tmp.path(), &["-i", &list, "-o", "out2"], None);
    assert_eq!(run.code, 2, "stderr: {}", run.stderr);
    assert!(
        run.stderr.contains("out2/.fetchpool: is a symbolic link"),
        "{}",
        run.stderr
    );
    assert_eq!(
        fs::read_dir(tmp.join("state-elsewhere")).unwrap().count(),
        0
    );
    assert_eq!(server.hits("/a"), 1);
}

// ---------------------------------------------------------------------------------------
// One run per output directory

#[cfg(target_os = "linux")]
#[test]
fn a_second_run_on_one_output_directory_exits_2_naming_the_holder() {
    use std::time::{Duration, Instant};
    use support::cli::{spawn, wait};
    use support::{Reply, Resource, wait_until};
    let server = TestServer::start();
    let tmp = TempDir::new();
    let res = Resource::new(random_bytes(7, 8 << 20));
    server.route("/slow.bin", move |req| {
        Reply::file(req, &res).drip(64 * 1024, Duration::from_millis(20))
    });
    server.file("/other.bin", random_bytes(8, 1_000));
    let first = spawn(tmp.path(), &[&server.url("/slow.bin"), "-o", "out"]);
    let part = tmp.join("out/slow.bin.part");
    assert!(
        wait_until(Duration::from_secs(20), || part.exists()),
        "the first run never started"
    );
    let started = Instant::now();
    let second = fetchpool(tmp.path(), &[&server.url("/other.bin"), "-o", "out"], None);
    assert!(started.elapsed() < Duration::from_secs(5));
    assert_eq!(second.code, 2, "stderr: {}", second.stderr);
    assert!(
        second.stderr.contains(&format!(
            "in use by another fetchpool run (pid {})",
            first.id()
        )),
        "{}",
        second.stderr
    );
    assert!(second.stderr.contains("-o"), "{}", second.stderr);
    assert_eq!(server.hits("/other.bin"), 0);
    // --dry-run and verify read only: they take no lock.
    let dry = fetchpool(
        tmp.path(),
        &[&server.url("/other.bin"), "-o", "out", "--dry-run"],
        None,
    );
    assert_eq!(dry.code, 0, "stderr: {}", dry.stderr);
    // kill -9: the kernel releases the lock with the process.
    let pid = first.id().to_string();
    assert!(
        std::process::Command::new("kill")
            .args(["-9", &pid])
            .status()
            .unwrap()
            .success()
    );
    assert_eq!(wait(first, tmp.path()).code, -1);
    let third = fetchpool(tmp.path(), &[&server.url("/other.bin"), "-o", "out"], None);
    assert_eq!(third.code, 0, "stderr: {}", third.stderr);
    assert_eq!(
        fs::read(tmp.join("out/other.bin")).unwrap(),
        random_bytes(8, 1_000)
    );
}

#[cfg(target_os = "linux")]
#[test]
fn the_library_holds_the_output_directory_for_a_run_and_says_who_has_it() {
    let server = TestServer::start();
    let tmp = TempDir::new();
    server.file("/a", random_bytes(9, 1_000));
    let first = Pool::builder().output_dir(tmp.path()).build().unwrap();
    let second = Pool::builder().output_dir(tmp.path()).build().unwrap();
    let held = first.lock_output().unwrap();
    let err = second
        .run(vec![Job::new(server.url("/a")).to_file("a.bin")])
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Config);
    match &err {
        fetchpool::Error::OutputInUse { dir, pid } => {
            assert_eq!(dir, tmp.path());
            assert_eq!(*pid, Some(std::process::id()));
        }
        other => panic!("{other:?}"),
    }
    // A session takes the lock with its first file job; memory jobs need none.
    let mut session = second.start();
    session
        .submit(Job::new(server.url("/a")).to_file("b.bin"))
        .unwrap();
    session
        .submit(Job::new(server.url("/a")).to_memory())
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
    assert_eq!(
        outcomes[0].error.as_ref().unwrap().kind(),
        ErrorKind::Config
    );
    assert_eq!(outcomes[1].status, Status::Ok);
    assert_eq!(server.hits("/a"), 1);
    // The holder's own runs go on under the lock it holds.
    let report = first
        .run(vec![Job::new(server.url("/a")).to_file("a.bin")])
        .unwrap();
    assert_eq!(report.summary.ok, 1);
    drop(held);
    let report = second
        .run(vec![Job::new(server.url("/a")).to_file("c.bin")])
        .unwrap();
    assert_eq!(report.summary.ok, 1);
    // Released at the end of the run: the first pool can take it again.
    drop(first.lock_output().unwrap());
}

#[cfg(unix)]
#[test]
fn a_link_planted_at_the_writability_probe_is_not_written_through() {
    let tmp = TempDir::new();
    fs::create_dir_all(tmp.join("out")).unwrap();
    fs::write(tmp.join("victim"), b"precious").unwrap();
    let probe = tmp.join(format!("out/.fetchpool-probe-{}", std::process::id()));
    std::os::unix::fs::symlink(tmp.join("victim"), &probe).unwrap();
    Pool::builder().output_dir(tmp.join("out")).build().unwrap();
    assert_eq!(fs::read(tmp.join("victim")).unwrap(), b"precious");
    assert!(!is_link(&probe) && !probe.exists());
}
