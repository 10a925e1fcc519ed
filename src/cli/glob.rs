//! File-name patterns among report arguments: `'report-*.jsonl'` expanded here, for a
//! pattern quoted on the command line or a batch system that starts fetchpool without a
//! shell. Only `*` (any run of characters) and `?` (one character), in any component.

use std::path::{Path, PathBuf};

/// Each argument as given when it names a file or has no pattern; else the files its
/// pattern matches, sorted by name. A file named twice (by name and by a pattern) is
/// taken once. A pattern that matches nothing is an error naming it, never an empty list.
pub fn expand(args: &[PathBuf]) -> anyhow::Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    for arg in args {
        if arg.exists() || !arg.to_string_lossy().contains(['*', '?']) {
            out.push(arg.clone());
            continue;
        }
        // Component by component: `s*/report-?.jsonl` reads only the directories it names.
        let mut found = vec![PathBuf::new()];
        for part in arg.components() {
            let part = part.as_os_str().to_string_lossy();
            if !part.contains(['*', '?']) {
                found.iter_mut().for_each(|p| p.push(part.as_ref()));
                continue;
            }
            let mut next = Vec::new();
            for dir in &found {
                let here = if dir.as_os_str().is_empty() {
                    Path::new(".")
                } else {
                    dir
                };
                let Ok(entries) = std::fs::read_dir(here) else {
                    continue;
                };
                for name in entries.filter_map(|e| e.ok()?.file_name().into_string().ok()) {
                    if matches(&part, &name) && (part.starts_with('.') || !name.starts_with('.')) {
                        next.push(dir.join(name));
                    }
                }
            }
            found = next;
        }
        found.retain(|p| p.is_file());
        if found.is_empty() {
            anyhow::bail!("no file matches '{}'", arg.display());
        }
        found.sort();
        out.extend(found);
    }
    let mut seen = std::collections::HashSet::new();
    out.retain(|p| seen.insert(p.clone()));
    Ok(out)
}

/// Whether `name` matches `pattern` (`*` and `?`).
fn matches(pattern: &str, name: &str) -> bool {
    let (p, n): (Vec<char>, Vec<char>) = (pattern.chars().collect(), name.chars().collect());
    // Iterative matching with one backtrack point: the last `*` seen.
    let (mut i, mut j, mut star, mut mark) = (0, 0, None, 0);
    while j < n.len() {
        if i < p.len() && (p[i] == '?' || p[i] == n[j]) {
            i += 1;
            j += 1;
        } else if i < p.len() && p[i] == '*' {
            star = Some(i);
            mark = j;
            i += 1;
        } else if let Some(s) = star {
            i = s + 1;
            mark += 1;
            j = mark;
        } else {
            return false;
        }
    }
    p[i..].iter().all(|&c| c == '*')
}

#[cfg(test)]
mod tests {
    use super::matches;

    #[test]
    fn star_and_question_mark_match_file_names() {
        assert!(matches("report-*.jsonl", "report-1.jsonl"));
        assert!(matches("report-*.jsonl", "report-.jsonl"));
        assert!(matches("report-?.jsonl", "report-3.jsonl"));
        assert!(!matches("report-?.jsonl", "report-12.jsonl"));
        assert!(matches("*-*.jsonl", "report-12.jsonl"));
        assert!(!matches("report-*.jsonl", "report-1.json"));
        assert!(matches("*", "anything"));
        assert!(!matches("a*b", "acbd"));
    }
}
