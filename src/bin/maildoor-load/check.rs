//! The check after the load: is every message the server answered 250
//! really in the Maildir, whole?
//!
//! Messages are found by queue id (maildoor names each file
//! `<queue id>.<host>,S=<size>`); each one found must be as long as its
//! `,S=` says, its header must carry this run's `X-Load-Run` and its own
//! `X-Load-Seq`, so a file from another run or another message never
//! counts, and it must end with the body as sent (line ends aside),
//! after an empty line: not an octet of it lost, changed or added.

use std::collections::HashMap;
use std::fs;
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::client::Delivered;

/// How deep below the given directory `new/` and `cur/` are looked for
/// (per-recipient Maildirs such as `DIR/<domain>/<user>/new`).
const MAX_DEPTH: usize = 3;

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

/// Looks for every delivered message under `dir`; each must end with
/// `body` (as sent, CRLF line ends).
pub fn check(dir: &Path, run: &str, body: &[u8], delivered: &[Delivered]) -> Check {
    let index = index(dir);
    // The body as stored: maildoor keeps LF line ends, and after the
    // empty line that ends the header.
    let mut tail = b"\n\n".to_vec();
    tail.extend(body.iter().copied().filter(|&b| b != b'\r'));
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
            Some(path) if !content_matches(path, run, d.seq, &tail) => {
                c.wrong_content += 1;
                "not this run's message, or not whole"
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

/// The file ends with `tail` (the empty line and the body, LF line
/// ends), and the part before it carries this run and this message
/// number. A CR in the file is ignored (a server may keep CRLF).
fn content_matches(path: &Path, run: &str, seq: u64, tail: &[u8]) -> bool {
    let Ok(mut stored) = fs::read(path) else {
        return false;
    };
    stored.retain(|&b| b != b'\r');
    let Some(head) = stored.strip_suffix(tail) else {
        return false;
    };
    let has = |needle: String| memchr::memmem::find(head, needle.as_bytes()).is_some();
    has(format!("X-Load-Run: {run}")) && has(format!("X-Load-Seq: {seq:010}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    const BODY: &[u8] = b"xxxx\r\nyyyy\r\n";

    /// A message as maildoor stores it: trace headers, the load header,
    /// an empty line, the body; LF line ends.
    fn stored(run: &str, seq: u64, body: &[u8]) -> Vec<u8> {
        let mut m = format!(
            "Return-Path: <a@b>\nReceived: from x\n\tby h;\n\tdate\nX-Load-Run: {run}\nX-Load-Seq: {seq:010}\n\n"
        )
        .into_bytes();
        m.extend(body.iter().copied().filter(|&b| b != b'\r'));
        m
    }

    /// Checks one message `content` filed under queue id `q1`.
    fn check_one(content: &[u8]) -> Check {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("new")).unwrap();
        let name = format!("q1.h,S={}", content.len());
        std::fs::write(dir.path().join("new").join(name), content).unwrap();
        let delivered = [Delivered {
            seq: 7,
            queue_id: "q1".into(),
            latency: Duration::ZERO,
        }];
        check(dir.path(), "run1", BODY, &delivered)
    }

    #[test]
    fn a_whole_message_is_found() {
        let c = check_one(&stored("run1", 7, BODY));
        assert!(c.ok(), "{c:?}");
        // A server that keeps CRLF passes too.
        let crlf: Vec<u8> = String::from_utf8(stored("run1", 7, BODY))
            .unwrap()
            .replace('\n', "\r\n")
            .into_bytes();
        assert!(check_one(&crlf).ok());
    }

    #[test]
    fn a_message_not_whole_or_not_its_own_is_wrong_content() {
        let whole = stored("run1", 7, BODY);
        let mut changed = whole.clone();
        *changed.last_mut().unwrap() = b'z';
        let mut longer = whole.clone();
        longer.extend_from_slice(b"X-Load-Seq: 0000000008\n");
        let shorter = whole.get(..whole.len() - 3).unwrap().to_vec();
        let mut inside = whole.clone();
        inside.insert(whole.len() - 6, b'q');
        for (what, bad) in [
            ("an octet changed", changed),
            ("something after the body", longer),
            ("the end cut off", shorter),
            ("an octet inside", inside),
            ("another run", stored("run2", 7, BODY)),
            ("another message", stored("run1", 8, BODY)),
        ] {
            let c = check_one(&bad);
            assert_eq!(c.wrong_content, 1, "{what}: {c:?}");
            assert!(!c.ok(), "{what}");
        }
    }
}
