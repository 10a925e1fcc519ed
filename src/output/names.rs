//! Where each file of a job lives on disk besides `PATH`: its `PATH.part`, the part's
//! sidecar `PATH.part.meta`.

use std::path::{Path, PathBuf};

/// `PATH.part`: where a body stays until it is complete and verified.
pub(crate) fn part_path(path: &Path) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(".part");
    PathBuf::from(s)
}

/// `PATH.part.meta`.
pub(crate) fn meta_path(path: &Path) -> PathBuf {
    let mut s = part_path(path).into_os_string();
    s.push(".meta");
    PathBuf::from(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sidecar_sits_next_to_the_part() {
        assert_eq!(
            meta_path(Path::new("d/a.bin")),
            PathBuf::from("d/a.bin.part.meta")
        );
    }

    #[test]
    fn part_path_appends() {
        assert_eq!(
            part_path(Path::new("a/b.bin")),
            PathBuf::from("a/b.bin.part")
        );
    }
}
