//! The check after the load: is every message the server answered 250
//! really in the Maildir, whole?
//!
//! Messages are found by queue id (maildoor names each file
//! `<queue id>.<host>,S=<size>`); each one found must be as long as its
//! `,S=` says, and its header must carry this run's `X-Load-Run` and its
//! own `X-Load-Seq`, so a file from another run or another message never
//! counts.

use std::collections::HashMap;
use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::client::Delivered;

/// How deep below the given directory `new/` and `cur/` are looked for
/// (per-recipient Maildirs such as `DIR/<domain>/<user>/new`).
const MAX_DEPTH: usize = 3;

/// Bytes of each file read to find its load headers.
const HEAD: u64 = 64 * 1024;

/// Problems listed by name in the report (the rest are only counted).
const MAX_LISTED: usize = 20;

/// The result of the check.
#[derive(Debug, Serialize)]
pub struct Check {
    /// The directory checked.
    pub maildir: String,
    /// Messages answered 250, all looked for.
    pub checked: usize,
    /// Found, of the right size and content.
    pub found: usize,
    /// Answered 250 but no file: lost.
    pub missing: usize,
    /// A file whose length differs from its `,S=`.
    pub bad_size: usize,
    /// A file without this run's headers for that message.
    pub wrong_content: usize,
    /// The first few problems: `<queue id>: <what>`.
    pub problems: Vec<String>,
}

impl Check {
    /// True when every message answered 250 is there, whole.
    pub fn ok(&self) -> bool {
        self.found == self.checked
    }
}

/// Looks for every delivered message under `dir`.
pub fn check(dir: &Path, run: &str, delivered: &[Delivered]) -> Check {
    let index = index(dir);
    let mut c = Check {
        maildir: dir.display().to_string(),
        checked: delivered.len(),
        found: 0,
        missing: 0,
        bad_size: 0,
        wrong_content: 0,
        problems: Vec::new(),
    };
    for d in delivered {
        let problem = match index.get(&d.queue_id) {
            None => {
                c.missing += 1;
                "missing"
            }
            Some(path) if !size_matches(path) => {
                c.bad_size += 1;
                "length differs from ,S="
            }
            Some(path) if !content_matches(path, run, d.seq) => {
                c.wrong_content += 1;
                "not this run's message"
            }
            Some(_) => {
                c.found += 1;
                continue;
            }
        };
        if c.problems.len() < MAX_LISTED {
            c.problems.push(format!("{}: {problem}", d.queue_id));
        }
    }
    c
}

/// Every message file in a `new/` or `cur/` under `dir`, by each prefix
/// of its name that ends before a dot (one of which is its queue id).
fn index(dir: &Path) -> HashMap<String, PathBuf> {
    let mut map = HashMap::new();
    let mut todo = vec![(dir.to_path_buf(), 0)];
    while let Some((d, depth)) = todo.pop() {
        let Ok(entries) = fs::read_dir(&d) else { continue };
        for e in entries.flatten() {
            let (path, name) = (e.path(), e.file_name());
            let name = name.to_string_lossy();
            if !e.file_type().is_ok_and(|t| t.is_dir()) {
                continue;
            }
            if name == "new" || name == "cur" {
                for f in fs::read_dir(&path).into_iter().flatten().flatten() {
                    let fname = f.file_name().to_string_lossy().into_owned();
                    for (i, _) in fname.match_indices('.') {
                        if let Some(prefix) = fname.get(..i) {
                            map.entry(prefix.to_string()).or_insert_with(|| f.path());
                        }
                    }
                }
            } else if name != "tmp" && depth < MAX_DEPTH {
                todo.push((path, depth + 1));
            }
        }
    }
    map
}

/// The `,S=<size>` of a file name (before any `:2,` flags) equals its length.
fn size_matches(path: &Path) -> bool {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let Some((_, after)) = name.rsplit_once(",S=") else {
        return false;
    };
    let digits: String = after.chars().take_while(char::is_ascii_digit).collect();
    let len = fs::metadata(path).map(|m| m.len()).ok();
    digits.parse::<u64>().ok().is_some_and(|s| Some(s) == len)
}

/// The file's header carries this run and this message number.
fn content_matches(path: &Path, run: &str, seq: u64) -> bool {
    let mut head = Vec::new();
    let Ok(f) = fs::File::open(path) else { return false };
    if f.take(HEAD).read_to_end(&mut head).is_err() {
        return false;
    }
    let has = |needle: String| memchr::memmem::find(&head, needle.as_bytes()).is_some();
    has(format!("X-Load-Run: {run}")) && has(format!("X-Load-Seq: {seq:010}"))
}
