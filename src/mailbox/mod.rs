//! Reading the Maildir back: `maildoor mailbox list | show | delete |
//! count | watch`.
//!
//! The store writes; this module reads, the way any Maildir reader does
//! (qmail's maildir(5), as Dovecot, mutt and mblaze read it): messages are
//! the files in `new/` (unread) and `cur/` (seen at least once), names
//! starting with `.` are ignored and `tmp/` is never looked at. Showing a
//! message moves it from `new/<name>` to `cur/<name>:2,S`, as mutt would.
//! Headers and bodies are decoded with mailparse ([`message`], [`render`]).

pub mod cli;
mod html;
pub mod list;
pub mod message;
pub mod name;
pub mod render;
mod watch;

use std::fs;
use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::time::UNIX_EPOCH;

pub use cli::{MailboxArgs, MailboxCmd};
pub use name::MessageName;

/// The two directories that hold messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Folder {
    /// `new/`: delivered, never seen by a reader.
    New,
    /// `cur/`: seen by a reader (the `S` flag says whether it was read).
    Cur,
}

impl Folder {
    /// The directory name.
    pub fn dir(self) -> &'static str {
        match self {
            Folder::New => "new",
            Folder::Cur => "cur",
        }
    }
}

/// A reading error; each one is a clear line on stderr and exit status 1.
#[derive(Debug, thiserror::Error)]
pub enum MailboxError {
    /// The directory lacks `cur/`, `new/` or `tmp/`.
    #[error("{0} is not a Maildir (it needs cur/, new/ and tmp/ directories)")]
    NotMaildir(PathBuf),
    /// Nothing is at the path given as the Maildir.
    #[error("{0} does not exist (no mail delivered there yet, or another --maildir meant?)")]
    Missing(PathBuf),
    /// `show` printed the message but could not move it to `cur/`.
    #[error("the message was shown but could not be marked seen: {0}")]
    NotMarkedSeen(Box<MailboxError>),
    /// No message matches the id.
    #[error("no message with id {0:?}")]
    UnknownId(String),
    /// Several messages match the id.
    #[error(
        "id {id:?} is ambiguous: it matches {}{}",
        candidates.join(", "),
        match matches - candidates.len() {
            0 => String::new(),
            more => format!(" and {more} more ({matches} in all)"),
        }
    )]
    AmbiguousId {
        /// What the user typed.
        id: String,
        /// The first few matches: queue ids, or `folder/file` where two share one.
        candidates: Vec<String>,
        /// How many messages match.
        matches: usize,
    },
    /// `--user` is not an address that can name a Maildir.
    #[error("{0:?} is not a usable address (expected local-part@domain)")]
    BadAddress(String),
    /// The file is not a message (`show` needs one; `--raw` does not).
    #[error("{path} is not a valid message: {reason}")]
    InvalidMessage {
        /// The file.
        path: PathBuf,
        /// Why.
        reason: message::Invalid,
    },
    /// A file system error, with the path it concerns.
    #[error("{path}: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The error.
        source: io::Error,
    },
}

impl MailboxError {
    fn io(path: &Path, source: io::Error) -> Self {
        MailboxError::Io {
            path: path.to_path_buf(),
            source,
        }
    }

    /// True when the error is a closed output pipe (`maildoor mailbox list
    /// | head`), which is no failure.
    pub fn is_broken_pipe(&self) -> bool {
        matches!(self, MailboxError::Io { source, .. } if source.kind() == io::ErrorKind::BrokenPipe)
    }
}

/// One message file.
#[derive(Debug, Clone)]
pub struct Entry {
    /// Where it is.
    pub folder: Folder,
    /// What its name says.
    pub name: MessageName,
    /// Its full path.
    pub path: PathBuf,
    /// Delivery time (seconds, microseconds): from the name, else the
    /// file's modification time.
    pub delivered: (u64, u32),
    /// Size in octets: `,S=` from the name, else the file's length.
    pub size: u64,
    /// Stable short id (a unique prefix of [`name::hash_hex`]).
    pub short: String,
}

impl Entry {
    /// `new`, `seen`, or `old` (in `cur/` without the seen flag).
    pub fn status(&self) -> &'static str {
        match (self.folder, self.name.is_seen()) {
            (Folder::New, _) => "new",
            (Folder::Cur, true) => "seen",
            (Folder::Cur, false) => "old",
        }
    }
}

/// How the server lays out the Maildir it delivers into: what `--user`
/// needs to find a user's mail.
#[derive(Debug, Clone, Copy)]
pub struct Layout<'a> {
    /// The configured `maildir`.
    pub root: &'a Path,
    /// `delivery = "per-recipient"`: each recipient's mail goes to
    /// `<root>/<domain>/<local-part>/`, made on its first delivery.
    pub per_recipient: bool,
    /// `recipient_delimiter`: `bob+tag` is delivered to `bob`.
    pub delimiter: Option<char>,
    /// The server's `domains`: mail for any other domain is refused.
    pub domains: &'a [String],
}

impl Layout<'_> {
    /// The server's first domain: `<postmaster>` and address-literal
    /// recipients are delivered there.
    pub fn primary(&self) -> Option<&str> {
        self.domains.first().map(String::as_str)
    }
}

/// Where a user's own (per-recipient) Maildir is, or will be.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserMaildir {
    /// The directory that holds it now, if one does.
    pub found: Option<PathBuf>,
    /// Where the server makes it on the user's first delivery (the local
    /// part in lower case, cut at the delimiter); `None` when that cut
    /// leaves nothing a directory can be named after.
    pub expected: Option<PathBuf>,
}

/// A Maildir opened for reading.
#[derive(Debug, Clone)]
pub struct Mailbox {
    root: PathBuf,
}

/// Largest header block `list` reads from one file; longer blocks are cut.
pub const HEADER_READ_LIMIT: u64 = 1024 * 1024;

impl Mailbox {
    /// Opens the Maildir at `root`; it must have `cur/`, `new/` and `tmp/`.
    pub fn open(root: impl Into<PathBuf>) -> Result<Self, MailboxError> {
        let root = root.into();
        if !root.exists() {
            return Err(MailboxError::Missing(root));
        }
        if ["cur", "new", "tmp"].iter().any(|d| !root.join(d).is_dir()) {
            return Err(MailboxError::NotMaildir(root));
        }
        Ok(Mailbox { root })
    }

    /// Opens the Maildir of `user` (`local@domain`): the per-recipient
    /// Maildir `root/<domain>/<local>/` when it exists, else `root`
    /// itself. The bool says whether the per-recipient one was found (then
    /// every message in it is the user's; otherwise the caller filters).
    /// `delimiter` is the server's `recipient_delimiter`: `bob+tag` reads
    /// `bob`'s Maildir, where the server delivered it.
    pub fn open_for_user(
        root: &Path,
        user: &str,
        delimiter: Option<char>,
        domains: &[String],
    ) -> Result<(Self, bool), MailboxError> {
        match Mailbox::locate_user(root, user, delimiter, domains)?.found {
            Some(dir) => Ok((Mailbox::open(dir)?, true)),
            None => Ok((Mailbox::open(root)?, false)),
        }
    }

    /// Where the per-recipient Maildir of `user` (`local@domain`) is under
    /// `root`, or will be: `root/<domain>/<local>/`, trying the local part
    /// as typed, in lower case, and cut at `delimiter` (the server's
    /// `recipient_delimiter`), in that order. `domains` are the server's:
    /// a local domain's directory is named as configured, and the first is
    /// where `<postmaster>` and address-literal recipients are delivered.
    pub fn locate_user(
        root: &Path,
        user: &str,
        delimiter: Option<char>,
        domains: &[String],
    ) -> Result<UserMaildir, MailboxError> {
        let primary = domains.first().map(String::as_str);
        // First as the server names it: the address parsed as SMTP (quoted
        // local parts too) and keyed as delivery keys it. Postmaster's and
        // an address literal's Maildir is under the server's first domain;
        // without it, only the plain forms below.
        let parsed = message::parse_address(user);
        let server = parsed
            .as_ref()
            .filter(|to| primary.is_some() || message::named_domain(to).is_some())
            .and_then(|to| {
                crate::route::mailbox_key(to, primary.unwrap_or_default(), domains, delimiter).ok()
            })
            .map(|key| key.path(root));
        let addr = message::normalize_address(user);
        let plain = addr
            .rsplit_once('@')
            .filter(|(l, d)| safe_component(l) && safe_component(d));
        let Some((local, domain)) = plain else {
            // An address the server takes, but whose local part can name
            // no directory: no Maildir of its own, its mail is filtered.
            return match (server, parsed) {
                (Some(dir), _) => Ok(UserMaildir {
                    found: dir.is_dir().then(|| dir.clone()),
                    expected: Some(dir),
                }),
                (None, Some(_)) => Ok(UserMaildir {
                    found: None,
                    expected: None,
                }),
                (None, None) => Err(MailboxError::BadAddress(user.to_string())),
            };
        };
        // The address as typed first (local parts may keep their case),
        // then all lower case.
        let typed = user.trim().trim_start_matches('<').trim_end_matches('>');
        let typed_local = typed.rsplit_once('@').map_or(local, |(l, _)| l);
        let base = delimiter.and_then(|d| local.split(d).next()).unwrap_or(local);
        let dir = |l: &str| safe_component(l).then(|| root.join(domain).join(l));
        let found = server
            .iter()
            .cloned()
            .chain([typed_local, local, base].into_iter().filter_map(dir))
            .find(|d| d.is_dir());
        Ok(UserMaildir {
            found,
            expected: server.or_else(|| dir(base)),
        })
    }

    /// The Maildir's top directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Every message in `new/` and `cur/`, oldest delivery first, each
    /// with a short id unique in this Maildir.
    pub fn scan(&self) -> Result<Vec<Entry>, MailboxError> {
        let mut entries = Vec::new();
        for folder in [Folder::New, Folder::Cur] {
            let dir = self.root.join(folder.dir());
            let read = fs::read_dir(&dir).map_err(|e| MailboxError::io(&dir, e))?;
            for item in read {
                let item = item.map_err(|e| MailboxError::io(&dir, e))?;
                let file = item.file_name().to_string_lossy().into_owned();
                if file.starts_with('.') {
                    continue;
                }
                let meta = match item.metadata() {
                    Ok(m) if m.is_file() => m,
                    // Gone meanwhile (another reader moved it), or not a file.
                    _ => continue,
                };
                let name = MessageName::parse(&file);
                let delivered = name.time.unwrap_or_else(|| {
                    let t = meta
                        .modified()
                        .ok()
                        .and_then(|t| t.duration_since(UNIX_EPOCH).ok());
                    t.map_or((0, 0), |d| (d.as_secs(), d.subsec_micros()))
                });
                let size = name.size.unwrap_or(meta.len());
                entries.push(Entry {
                    folder,
                    path: item.path(),
                    delivered,
                    size,
                    short: String::new(),
                    name,
                });
            }
        }
        // A message another reader moved from new/ to cur/ while the two
        // were read is in both lists: it is the one in cur/. (A copy left
        // in new/ beside one in cur/ is still there, and stays listed.)
        let in_cur: std::collections::HashSet<String> = entries
            .iter()
            .filter(|e| e.folder == Folder::Cur)
            .map(|e| e.name.unique.clone())
            .collect();
        entries.retain(|e| e.folder == Folder::Cur || !in_cur.contains(&e.name.unique) || e.path.exists());
        entries.sort_by(|a, b| {
            (a.delivered, a.name.counter, &a.name.file).cmp(&(b.delivered, b.name.counter, &b.name.file))
        });
        let hashes: Vec<String> = entries.iter().map(|e| name::hash_hex(&e.name.unique)).collect();
        for (e, short) in entries.iter_mut().zip(name::short_ids(&hashes)) {
            e.short = short;
        }
        Ok(entries)
    }

    /// The one message `id` names: its queue id, unique part or file name
    /// exactly; else a unique prefix of a queue id or of a short id.
    pub fn resolve(&self, id: &str) -> Result<Entry, MailboxError> {
        let entries = self.scan()?;
        resolve_in(&entries, id).cloned()
    }

    /// Marks a message seen: `new/<name>` → `cur/<name>:2,S`, or adds `S`
    /// to the flags of a message in `cur/`. Never replaces another file.
    /// Returns the new path. Another reader that marked it seen first
    /// (the file is gone, and there under the seen name) is no error.
    pub fn mark_seen(&self, entry: &Entry) -> Result<PathBuf, MailboxError> {
        if entry.folder == Folder::Cur && entry.name.is_seen() {
            return Ok(entry.path.clone());
        }
        let dest = self.root.join("cur").join(entry.name.with_flag('S'));
        if dest.exists() {
            if !entry.path.exists() {
                return Ok(dest);
            }
            return Err(MailboxError::io(
                &dest,
                io::Error::from(io::ErrorKind::AlreadyExists),
            ));
        }
        match fs::rename(&entry.path, &dest) {
            Ok(()) => Ok(dest),
            // Moved meanwhile by another reader (into cur/, or to other
            // flags there): marked where it is now.
            Err(e) if e.kind() == io::ErrorKind::NotFound => match Mailbox::moved(entry) {
                Some(now) => self.mark_seen(&now),
                None => Err(MailboxError::io(&entry.path, e)),
            },
            Err(e) => Err(MailboxError::io(&entry.path, e)),
        }
    }

    /// Where a message is now when another reader has renamed it since it
    /// was listed: moved from `new/` to `cur/`, or given other flags
    /// there (`cur/<unique>:2,<flags>` under another name).
    pub fn moved(entry: &Entry) -> Option<Entry> {
        let cur = entry.path.parent()?.parent()?.join(Folder::Cur.dir());
        let prefix = format!("{}:", entry.name.unique);
        let file = fs::read_dir(&cur)
            .ok()?
            .filter_map(Result::ok)
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .find(|f| f.starts_with(&prefix) && *f != entry.name.file)?;
        Some(Entry {
            folder: Folder::Cur,
            path: cur.join(&file),
            name: MessageName::parse(&file),
            ..entry.clone()
        })
    }

    /// Deletes a message.
    pub fn delete(&self, entry: &Entry) -> Result<(), MailboxError> {
        fs::remove_file(&entry.path).map_err(|e| MailboxError::io(&entry.path, e))
    }
}

/// Shortest prefix of a short id that `resolve` tries (fewer hex digits
/// would match too much to be meant as one).
pub const SHORT_PREFIX_MIN: usize = 4;

/// `resolve` over a list already scanned. A file name wins over a queue
/// id (two files may share one: a copy in `new/` and one in `cur/`), and
/// a path ending in `new/<file>` or `cur/<file>` (as mlist prints) names
/// the file in that folder.
pub fn resolve_in<'a>(entries: &'a [Entry], id: &str) -> Result<&'a Entry, MailboxError> {
    let id = id.trim();
    let mut parts = id.rsplit('/');
    let file = parts.next().unwrap_or(id);
    let folder = match parts.next() {
        Some("new") => Some(Folder::New),
        Some("cur") => Some(Folder::Cur),
        _ => None,
    };
    match resolve_where(entries, file, folder) {
        // The folder only tells files apart: a message listed in `new/`
        // may have been read (moved to `cur/`) since.
        Err(MailboxError::UnknownId(_)) if folder.is_some() => resolve_where(entries, file, None),
        found => found,
    }
}

/// [`resolve_in`] for the file name or id `id`, among the entries in
/// `folder` (all, without one).
fn resolve_where<'a>(
    entries: &'a [Entry],
    id: &str,
    folder: Option<Folder>,
) -> Result<&'a Entry, MailboxError> {
    if id.is_empty() {
        return Err(MailboxError::UnknownId(id.to_string()));
    }
    let here = |e: &&Entry| folder.is_none_or(|f| e.folder == f);
    let by_file: Vec<&Entry> = entries
        .iter()
        .filter(here)
        .filter(|e| e.name.file == id)
        .collect();
    let exact: Vec<&Entry> = if by_file.is_empty() {
        entries
            .iter()
            .filter(here)
            .filter(|e| e.name.queue_id == id || e.name.unique == id)
            .collect()
    } else {
        by_file
    };
    let matches = if exact.is_empty() {
        let hex = id.to_ascii_lowercase();
        entries
            .iter()
            .filter(here)
            .filter(|e| {
                let by_short =
                    hex.len() >= SHORT_PREFIX_MIN && name::hash_hex(&e.name.unique).starts_with(&hex);
                by_short || e.name.queue_id.starts_with(id)
            })
            .collect()
    } else {
        exact
    };
    match matches.as_slice() {
        [] => Err(MailboxError::UnknownId(id.to_string())),
        [one] => Ok(one),
        many => {
            // Name them so that each can be given back: the queue id, or
            // the folder and file when two share a queue id.
            let shared = |e: &Entry| many.iter().filter(|o| o.name.queue_id == e.name.queue_id).count() > 1;
            Err(MailboxError::AmbiguousId {
                id: id.to_string(),
                candidates: many
                    .iter()
                    .take(5)
                    .map(|e| {
                        if shared(e) {
                            format!("{}/{}", e.folder.dir(), e.name.file)
                        } else {
                            e.name.queue_id.clone()
                        }
                    })
                    .collect(),
                matches: many.len(),
            })
        }
    }
}

/// True when `s` can be one path component: not empty, not `.` or `..`, no
/// `/` and no NUL (DESIGN.md: nothing from outside becomes a path unchecked).
fn safe_component(s: &str) -> bool {
    !s.is_empty() && s != "." && s != ".." && !s.contains(['/', '\0', '\\'])
}

/// Reads the header block of a file (up to the first empty line, at most
/// [`HEADER_READ_LIMIT`] octets): what `list` needs, without reading
/// large bodies.
pub fn read_header_block(path: &Path) -> io::Result<Vec<u8>> {
    let file = fs::File::open(path)?;
    let mut reader = io::BufReader::new(file.take(HEADER_READ_LIMIT));
    let mut block = Vec::new();
    loop {
        let start = block.len();
        let n = io::BufRead::read_until(&mut reader, b'\n', &mut block)?;
        let line = block.get(start..).unwrap_or_default();
        if n == 0 || line == b"\n" || line == b"\r\n" {
            return Ok(block);
        }
    }
}

/// Reads a whole message file.
pub fn read_message(path: &Path) -> Result<Vec<u8>, MailboxError> {
    fs::read(path).map_err(|e| MailboxError::io(path, e))
}

#[cfg(test)]
mod tests;
