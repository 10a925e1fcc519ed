//! The job lists a run reads: files, standard input (spooled so it can be read twice)
//! and URLs given as arguments.
//!
//! Job lists are read twice: once to check the whole list (nothing is requested if any
//! line is wrong), once to stream jobs into the pool, so memory does not grow with the
//! list. Standard input is spooled to a temporary file that has no name (see
//! [`spool_stdin`]) so that it too can be read twice.

use std::fs::File;
use std::io::{self, BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use anyhow::Context as _;
use fetchpool::ManifestReader;

use super::args::RunArgs;

/// A job list the user named: a file, stdin (spooled to a file) or the arguments.
pub struct Source {
    kind: Kind,
    naming: fetchpool::Naming,
    to_memory: bool,
    /// `--base-url`: the list may be a checksum file whose paths are under it.
    base_url: Option<String>,
}

enum Kind {
    File {
        name: String,
        path: PathBuf,
    },
    /// Standard input's copy, read from the start by every reader.
    Stdin(Arc<File>),
    Args(Vec<String>),
}

impl Source {
    pub fn name(&self) -> &str {
        match &self.kind {
            Kind::File { name, .. } => name,
            Kind::Stdin(_) => "-",
            Kind::Args(_) => "arguments",
        }
    }

    pub fn open(&self) -> anyhow::Result<ManifestReader<Box<dyn BufRead + Send>>> {
        let reader: Box<dyn BufRead + Send> = match &self.kind {
            Kind::File { path, name } => Box::new(BufReader::with_capacity(
                64 * 1024,
                File::open(path).with_context(|| format!("cannot open job list '{name}'"))?,
            )),
            Kind::Stdin(file) => Box::new(BufReader::with_capacity(
                64 * 1024,
                SpoolReader {
                    file: file.clone(),
                    pos: 0,
                },
            )),
            Kind::Args(urls) => Box::new(io::Cursor::new(urls.join("\n").into_bytes())),
        };
        let reader = ManifestReader::new(self.name(), reader)
            .naming(self.naming.clone())
            .to_memory(self.to_memory);
        Ok(match &self.base_url {
            Some(base) => reader.base_url(base.clone()),
            None => reader,
        })
    }
}

/// Reads the spooled stdin from the start, at its own offset: every reader of the one
/// file sees the whole list.
struct SpoolReader {
    file: Arc<File>,
    pos: u64,
}

impl io::Read for SpoolReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = read_at(&self.file, buf, self.pos)?;
        self.pos += n as u64;
        Ok(n)
    }
}

#[cfg(unix)]
fn read_at(file: &File, buf: &mut [u8], pos: u64) -> io::Result<usize> {
    std::os::unix::fs::FileExt::read_at(file, buf, pos)
}

#[cfg(windows)]
fn read_at(file: &File, buf: &mut [u8], pos: u64) -> io::Result<usize> {
    std::os::windows::fs::FileExt::seek_read(file, buf, pos)
}

/// Copies stdin to a temporary file that no other user can name: on Linux an unnamed
/// file (`O_TMPFILE`, mode 0600) in the temporary directory; elsewhere, or where the file
/// system lacks it, a new file under a random name, created only if nothing is there (a
/// planted file or link makes the creation fail rather than be followed) and removed at
/// once. Either way nothing is left behind, even after `kill -9`.
fn spool_stdin() -> anyhow::Result<File> {
    let dir = std::env::temp_dir();
    let mut file = unnamed_in(&dir)
        .or_else(|| exclusive_in(&dir))
        .with_context(|| {
            format!(
                "cannot spool stdin to a temporary file in {}; set TMPDIR to a writable directory",
                dir.display()
            )
        })?;
    io::copy(&mut io::stdin().lock(), &mut file).context("cannot read the job list from stdin")?;
    Ok(file)
}

#[cfg(target_os = "linux")]
fn unnamed_in(dir: &Path) -> Option<File> {
    use rustix::fs::{CWD, Mode, OFlags, openat};
    let flags = OFlags::TMPFILE | OFlags::RDWR | OFlags::CLOEXEC;
    openat(CWD, dir, flags, Mode::from_raw_mode(0o600))
        .ok()
        .map(File::from)
}

#[cfg(not(target_os = "linux"))]
fn unnamed_in(_dir: &Path) -> Option<File> {
    None
}

fn exclusive_in(dir: &Path) -> Option<File> {
    use std::hash::{BuildHasher, RandomState};
    for attempt in 0u32..16 {
        // RandomState's keys are random per process: the name cannot be guessed ahead.
        let token = RandomState::new().hash_one((std::process::id(), attempt, Instant::now()));
        let path = dir.join(format!(".fetchpool-stdin-{token:016x}"));
        let mut options = std::fs::OpenOptions::new();
        options.read(true).write(true).create_new(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        match options.open(&path) {
            Ok(file) => {
                let _ = std::fs::remove_file(&path);
                return Some(file);
            }
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
            Err(_) => return None,
        }
    }
    None
}

/// Every job of `sources` in order, with the names `names` gave: jobs are numbered from
/// 1 across the lists as [`name_all`] numbered them. A list that cannot be opened is one
/// error in the stream.
pub fn jobs<'a>(
    sources: &'a [Source],
    names: &'a fetchpool::Names,
) -> impl Iterator<Item = Result<fetchpool::Job, fetchpool::Error>> + Send + 'a {
    type Jobs = Box<dyn Iterator<Item = Result<fetchpool::Job, fetchpool::Error>> + Send>;
    let mut position = 0;
    sources
        .iter()
        .flat_map(|s| match s.open() {
            Ok(reader) => Box::new(reader) as Jobs,
            Err(e) => Box::new(std::iter::once(Err(fetchpool::Error::config(format!(
                "{e:#}"
            ))))),
        })
        .map(move |job| {
            job.map(|mut job| {
                position += 1;
                names.rename(position, &mut job);
                job
            })
        })
}

/// The first reading: the names of the whole list made unique (URL-derived names that
/// repeat get their URL's hash), before any selection, so every shard and every
/// `--retry-failed` run sees the same name for the same job.
pub fn name_all(sources: &[Source]) -> anyhow::Result<fetchpool::Names> {
    let mut namer = fetchpool::Namer::new();
    for source in sources {
        source.open()?.flatten().for_each(|job| namer.add(&job));
    }
    let mut reread: anyhow::Result<()> = Ok(());
    let names = namer.finish(|visit| {
        for source in sources {
            match source.open() {
                Ok(reader) => reader.flatten().for_each(|job| visit(&job)),
                Err(e) => reread = Err(e),
            }
        }
    });
    reread?;
    Ok(names)
}

pub fn sources(args: &RunArgs) -> anyhow::Result<Vec<Source>> {
    if let Some(base) = &args.base_url
        && !(base.starts_with("http://") || base.starts_with("https://"))
    {
        anyhow::bail!(
            "--base-url '{}' is not an http:// or https:// URL; give the URL the checksum \
             file's paths are under",
            fetchpool::redact::url(base)
        );
    }
    let mut out = Vec::new();
    let mut stdin: Option<Arc<File>> = None;
    for path in &args.input {
        if path == Path::new("-") {
            // Read once; `-i -` given twice names the same list twice.
            let file = match &stdin {
                Some(f) => f.clone(),
                None => stdin.insert(Arc::new(spool_stdin()?)).clone(),
            };
            out.push(Kind::Stdin(file));
        } else {
            out.push(Kind::File {
                name: path.display().to_string(),
                path: path.clone(),
            });
        }
    }
    if !args.urls.is_empty() {
        out.push(Kind::Args(args.urls.clone()));
    }
    let naming = match args.keep_path.as_deref() {
        None => fetchpool::Naming::LastSegment,
        Some(which) => fetchpool::Naming::KeepPath {
            host: which == "host",
            cut_dirs: args.cut_dirs,
        },
    };
    let out: Vec<Source> = out
        .into_iter()
        .map(|kind| Source {
            kind,
            naming: naming.clone(),
            to_memory: args.to_memory,
            base_url: args.base_url.clone(),
        })
        .collect();
    if out.is_empty() {
        anyhow::bail!(
            "no jobs: give URLs as arguments or a job list with -i FILE (-i - for stdin); see --help"
        );
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Seek, Write};

    #[test]
    fn the_spool_fallback_is_a_new_file_removed_at_once() {
        let dir = std::env::temp_dir().join(format!("fetchpool-spool-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let mut file = exclusive_in(&dir).expect("a new file");
        assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 0, "no name left");
        file.write_all(b"http://h/a\n").unwrap();
        file.rewind().unwrap();
        let file = Arc::new(file);
        let mut text = String::new();
        for _ in 0..2 {
            text.clear();
            SpoolReader {
                file: file.clone(),
                pos: 0,
            }
            .read_to_string(&mut text)
            .unwrap();
            assert_eq!(text, "http://h/a\n");
        }
        std::fs::remove_dir(&dir).unwrap();
    }
}
