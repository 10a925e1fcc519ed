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
    fs::create_dir_all(tmp.join("state-elsewhere")).unwrap();
    symlink(tmp.join("elsewhere"), tmp.join("out/sub")).unwrap();
    symlink(tmp.join("state-elsewhere"), tmp.join("out/.fetchpool")).unwrap();
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
        fs::read_dir(tmp.join("state-elsewhere")).unwrap().count(),
        0
    );
    assert_eq!(
        fs::read(tmp.join("out/ok.bin")).unwrap(),
        random_bytes(6, 3_000)
    );
    assert_eq!(
        server.hits("/a"),
        1,
        "no request for a job that cannot be written"
    );
}
