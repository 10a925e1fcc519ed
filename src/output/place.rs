//! A finished file's last touches: the server's modification time and name, when asked.

/// What a run asks of its finished files.
pub(crate) struct Placing<'a> {
    /// The output directory the file's path is relative to.
    pub(crate) output_dir: &'a std::path::Path,
    /// Give the file the server's `Last-Modified` as its modification time.
    pub(crate) remote_time: bool,
    /// Move a file named after its URL to its `Content-Disposition` name.
    pub(crate) content_disposition: bool,
    /// The state directory, whose validator store says where earlier runs moved files.
    pub(crate) state_dir: Option<&'a std::path::Path>,
}

/// After a file is in place at `rel`: gives it the server's `Last-Modified` as its
/// modification time when asked, and moves it to its `Content-Disposition` name when
/// asked and the job's name came from its URL. The move replaces only the file an earlier
/// run moved there for this job and nobody changed since (the validator store says so):
/// when the name is taken otherwise the file stays at `rel`. Returns the new path, if it
/// moved. Best effort: the file is complete and verified either way.
pub(crate) fn place(
    cfg: Placing<'_>,
    job: &crate::job::Job,
    rel: &std::path::Path,
    head: &ureq::http::HeaderMap,
) -> Option<std::path::PathBuf> {
    let path = cfg.output_dir.join(rel);
    let header = |name: &str| head.get(name).and_then(|v| v.to_str().ok());
    if cfg.remote_time
        && let Some(at) = header("last-modified").and_then(crate::net::http_date::parse_http_date)
    {
        let set = std::fs::OpenOptions::new()
            .write(true)
            .open(&path)
            .and_then(|f| f.set_modified(at));
        if let Err(e) = set {
            log::info!("{}: cannot set its modification time: {e}", path.display());
        }
    }
    if !(cfg.content_disposition && job.named_from_url) {
        return None;
    }
    let name = crate::job::content_disposition_name(header("content-disposition")?)?;
    let new_rel = rel.with_file_name(&name);
    if new_rel == rel {
        return None;
    }
    let target = cfg.output_dir.join(&new_rel);
    let ours = cfg.state_dir.and_then(|store| {
        super::validators::placed_unchanged(store, cfg.output_dir, rel, &job.url)
    });
    if ours.as_deref() == Some(new_rel.as_path()) {
        // The last version of this very file: replaced in one step.
        match std::fs::rename(&path, &target) {
            Ok(()) => return Some(new_rel),
            Err(e) => log::info!("{}: cannot replace its last version: {e}", target.display()),
        }
    }
    // A link fails if anything (a file, a planted link) has the name: nothing is replaced.
    match std::fs::hard_link(&path, &target) {
        Ok(()) => {
            let _ = std::fs::remove_file(&path);
            Some(new_rel)
        }
        Err(e) => {
            log::info!(
                "{}: kept its name from the URL, the server's name '{}' is not free: {e}",
                crate::redact::url(&job.url),
                crate::redact::clip(&name, crate::redact::SHOWN_CHARS)
            );
            None
        }
    }
}
