//! Mirror sync: `--delete-extraneous` removes exactly the files that left the list (never
//! the state directory, never a symbolic link or what it points to), only after a run in
//! which every job succeeded; `--max-delete` refuses before any request; `--dry-run` and
//! `verify` list them.

mod support;

use std::fs;
use std::path::Path;
use std::process::Command;

use support::cli::{self, fetchpool, write_list};
use support::{TempDir, TestServer, random_bytes, sha256_hex};

const ALL: [&str; 4] = ["a.bin", "d1/b.bin", "d1/d2/c.bin", "d3/e.bin"];

/// Serves the four files and returns the TSV list of `paths` among them.
fn list_of(server: &TestServer, paths: &[&str]) -> String {
    let mut list = String::new();
    for (i, path) in ALL.iter().enumerate() {
        let body = random_bytes(600 + i as u64, 1500 + 10 * i);
        server.file(&format!("/m/{path}"), body.clone());
        if paths.contains(path) {
            list.push_str(&format!(
                "{}\t{path}\t{}\n",
                server.url(&format!("/m/{path}")),
                sha256_hex(&body)
            ));
        }
    }
    list
}

fn exists(p: &Path) -> bool {
    fs::symlink_metadata(p).is_ok()
}

/// A mirror of all four files, a stray file, links pointing outside the tree, and an
/// outside folder they point to.
fn mirror(server: &TestServer, tmp: &TempDir) {
    let name = write_list(tmp.path(), "all.tsv", &list_of(server, &ALL));
    let run = fetchpool(tmp.path(), &["-i", &name, "-o", "out"], None);
    assert_eq!(run.code, 0, "{}", run.stderr);
    fs::write(tmp.join("out/d1/d2/stray.txt"), b"not listed").unwrap();
    fs::create_dir_all(tmp.join("outside/deep")).unwrap();
    fs::write(tmp.join("outside/keep.txt"), b"outside the tree").unwrap();
    fs::write(tmp.join("outside/deep/also.txt"), b"outside too").unwrap();
    std::os::unix::fs::symlink(tmp.join("outside"), tmp.join("out/d3/elsewhere")).unwrap();
    std::os::unix::fs::symlink(tmp.join("outside/keep.txt"), tmp.join("out/d1/d2/link.txt"))
        .unwrap();
    assert!(tmp.join("out/.fetchpool/lock").exists());
}

#[test]
fn delete_extraneous_removes_exactly_the_files_that_left_the_list() {
    let server = TestServer::start();
    let tmp = TempDir::new();
    mirror(&server, &tmp);
    let name = write_list(
        tmp.path(),
        "now.tsv",
        &list_of(&server, &["a.bin", "d1/b.bin"]),
    );

    let dry = fetchpool(
        tmp.path(),
        &["-i", &name, "-o", "out", "--delete-extraneous", "--dry-run"],
        None,
    );
    assert_eq!(dry.code, 0, "{}", dry.stderr);
    assert!(
        dry.stdout.contains(
            "  would delete (not in the list): 3; kept 2 symbolic link(s) not in the list"
        ),
        "{}",
        dry.stdout
    );
    for gone in ["d1/d2/c.bin", "d1/d2/stray.txt", "d3/e.bin"] {
        assert!(
            dry.stdout.contains(&format!("\n    {gone}\n")),
            "{}",
            dry.stdout
        );
        assert!(
            tmp.join("out").join(gone).exists(),
            "a dry run deletes nothing"
        );
    }

    let before = server.requests().len();
    let run = fetchpool(
        tmp.path(),
        &["-i", &name, "-o", "out", "--delete-extraneous"],
        None,
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(run.with_status("skipped").len(), 2);
    assert_eq!(
        server.requests().len(),
        before,
        "both files were up to date"
    );
    assert!(
        run.stderr.contains("deleted 3 file(s) not in the job list"),
        "{}",
        run.stderr
    );
    let out = tmp.join("out");
    for gone in ["d1/d2/c.bin", "d1/d2/stray.txt", "d3/e.bin"] {
        assert!(!exists(&out.join(gone)), "{gone} is still there");
    }
    for kept in ["a.bin", "d1/b.bin", ".fetchpool/lock"] {
        assert!(out.join(kept).is_file(), "{kept} is gone");
    }
    // The links stay, and so does everything they point to; so do the folders holding them.
    assert!(
        fs::symlink_metadata(out.join("d3/elsewhere"))
            .unwrap()
            .is_symlink()
    );
    assert!(
        fs::symlink_metadata(out.join("d1/d2/link.txt"))
            .unwrap()
            .is_symlink()
    );
    assert_eq!(
        fs::read(tmp.join("outside/keep.txt")).unwrap(),
        b"outside the tree"
    );
    assert_eq!(
        fs::read(tmp.join("outside/deep/also.txt")).unwrap(),
        b"outside too"
    );

    // Once the links go too, the folders the deletions emptied go with the next sync.
    fs::remove_file(out.join("d3/elsewhere")).unwrap();
    fs::remove_file(out.join("d1/d2/link.txt")).unwrap();
    fs::write(out.join("d3/late.txt"), b"x").unwrap();
    let run = fetchpool(
        tmp.path(),
        &["-i", &name, "-o", "out", "--delete-extraneous"],
        None,
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(!exists(&out.join("d3")), "an emptied folder is removed");
    assert!(out.join("d1").is_dir() && !exists(&out.join("d1/d2")));
}

#[test]
fn max_delete_refuses_over_the_limit_before_any_request_and_deletes_nothing() {
    let server = TestServer::start();
    let tmp = TempDir::new();
    mirror(&server, &tmp);
    let name = write_list(tmp.path(), "now.tsv", &list_of(&server, &["a.bin"]));
    fs::remove_file(tmp.join("out/a.bin")).unwrap();
    let before = server.requests().len();
    let run = fetchpool(
        tmp.path(),
        &[
            "-i",
            &name,
            "-o",
            "out",
            "--delete-extraneous",
            "--max-delete",
            "3",
        ],
        None,
    );
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert!(
        run.stderr.contains("would delete 4 files") && run.stderr.contains("--max-delete 3"),
        "{}",
        run.stderr
    );
    assert_eq!(server.requests().len(), before, "no request");
    for kept in ["d1/b.bin", "d1/d2/c.bin", "d1/d2/stray.txt", "d3/e.bin"] {
        assert!(tmp.join("out").join(kept).exists(), "{kept} was deleted");
    }
    let run = fetchpool(
        tmp.path(),
        &[
            "-i",
            &name,
            "-o",
            "out",
            "--delete-extraneous",
            "--max-delete",
            "4",
        ],
        None,
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(!tmp.join("out/d1/b.bin").exists());
    assert!(tmp.join("out/a.bin").exists());
}

#[test]
fn nothing_is_deleted_after_a_run_in_which_a_job_failed() {
    let server = TestServer::start();
    let tmp = TempDir::new();
    mirror(&server, &tmp);
    let mut list = list_of(&server, &["a.bin"]);
    list.push_str(&format!("{}\tmissing.bin\n", server.url("/no/such/file")));
    let name = write_list(tmp.path(), "now.tsv", &list);
    let run = fetchpool(
        tmp.path(),
        &["-i", &name, "-o", "out", "--delete-extraneous"],
        None,
    );
    assert_eq!(run.code, 1, "{}", run.stderr);
    assert!(
        run.stderr.contains("--delete-extraneous deleted nothing"),
        "{}",
        run.stderr
    );
    assert!(tmp.join("out/d3/e.bin").exists());
    assert!(tmp.join("out/d1/d2/stray.txt").exists());
}

#[test]
fn the_runs_own_files_inside_the_output_directory_are_kept() {
    let server = TestServer::start();
    let tmp = TempDir::new();
    let name = write_list(tmp.path(), "list.tsv", &list_of(&server, &["a.bin"]));
    fs::write(tmp.join("stray.txt"), b"x").unwrap();
    // The helper's --report is tmp/report.jsonl: inside this output directory.
    let run = fetchpool(
        tmp.path(),
        &[
            "-i",
            &name,
            "-o",
            ".",
            "--delete-extraneous",
            "--write-checksums",
            "held.sha256",
        ],
        None,
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(!tmp.join("stray.txt").exists());
    for kept in ["list.tsv", "report.jsonl", "held.sha256", "a.bin"] {
        assert!(tmp.join(kept).exists(), "{kept} was deleted");
    }
}

#[test]
fn verify_lists_the_files_the_list_does_not_name() {
    let server = TestServer::start();
    let tmp = TempDir::new();
    mirror(&server, &tmp);
    let name = write_list(
        tmp.path(),
        "now.tsv",
        &list_of(&server, &["a.bin", "d1/b.bin"]),
    );
    let out = Command::new(cli::bin())
        .current_dir(tmp.path())
        .args(["verify", "-i", &name, "-o", "out"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "extra files are not a failure");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        stdout,
        "extra\td1/d2/c.bin\nextra\td1/d2/stray.txt\nextra\td3/e.bin\n"
    );
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("2 files ok"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let json = Command::new(cli::bin())
        .current_dir(tmp.path())
        .args(["verify", "-i", &name, "-o", "out", "--json"])
        .output()
        .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    assert_eq!(
        v["extra"],
        serde_json::json!(["d1/d2/c.bin", "d1/d2/stray.txt", "d3/e.bin"])
    );
}

#[test]
fn a_file_placed_under_its_content_disposition_name_is_not_extraneous() {
    let server = TestServer::start();
    let tmp = TempDir::new();
    server.route("/download", |_| {
        support::Reply::ok(b"named by the server")
            .header("Content-Disposition", "attachment; filename=\"real.txt\"")
    });
    fs::create_dir_all(tmp.join("out")).unwrap();
    fs::write(tmp.join("out/stray.txt"), b"x").unwrap();
    let url = server.url("/download");
    let run = fetchpool(
        tmp.path(),
        &[
            &url,
            "-o",
            "out",
            "--content-disposition",
            "--delete-extraneous",
        ],
        None,
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(run.line(&url)["path"], "real.txt");
    assert_eq!(
        fs::read(tmp.join("out/real.txt")).unwrap(),
        b"named by the server"
    );
    assert!(!tmp.join("out/stray.txt").exists());
}
