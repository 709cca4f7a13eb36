//! `maildoor mailbox watch`: a line for each message that arrives in
//! `new/`, found by looking at the directory every [`POLL`] (portable, no
//! inotify dependency), until SIGINT or SIGTERM. A user's per-recipient
//! Maildir that does not exist yet is looked for at the same pace, and
//! watched from its first message on.

use std::collections::HashSet;
use std::future::Future;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::list::Row;
use super::message::UserFilter;
use super::name::unique_part;
use super::{Folder, Mailbox, MailboxError};

/// What `watch` looks at.
#[derive(Debug)]
pub enum Watched {
    /// A Maildir, and the user (normalised address) whose messages to
    /// keep when it is the shared one.
    Maildir(Mailbox, Option<UserFilter>),
    /// A user's per-recipient Maildir that is not there yet.
    Awaited {
        /// The Maildir root.
        root: PathBuf,
        /// The address, as given to `--user`.
        user: String,
        /// The server's `recipient_delimiter`.
        delimiter: Option<char>,
        /// The server's domains (see `Mailbox::locate_user`).
        domains: Vec<String>,
        /// Where the server will make it.
        expected: PathBuf,
    },
}

/// How often `new/` is looked at.
pub const POLL: Duration = Duration::from_millis(200);

/// The messages in a Maildir by the unique part of their file names (up
/// to the `:2,` flags), in `new/` and `cur/`: a message another reader
/// marks seen within one [`POLL`] of its arrival has left `new/` before
/// it could be seen there, and is still reported. Cheap between arrivals:
/// `new/` is read without looking up any file (a full scan of 20,000
/// messages every [`POLL`] kept half a CPU busy), and `cur/` only when its
/// modification time has moved, or is too recent to tell.
#[derive(Default)]
struct Names {
    cur: HashSet<String>,
    cur_changed: Option<std::time::SystemTime>,
}

impl Names {
    /// The names in `new/` now, and whether `cur/` was read again (then
    /// [`Names::cur`] holds its names now).
    fn now(&mut self, mb: &Mailbox) -> Result<(HashSet<String>, bool), MailboxError> {
        let cur = mb.root().join(Folder::Cur.dir());
        let changed = std::fs::metadata(&cur)
            .and_then(|m| m.modified())
            .map_err(|e| MailboxError::io(&cur, e))?;
        // File times may move in coarse ticks: a change within the last
        // second may hide another in the same tick.
        let recent = changed.elapsed().map_or(true, |age| age < Duration::from_secs(1));
        let reread = self.cur_changed != Some(changed) || recent;
        if reread {
            self.cur = read_names(&cur)?;
            self.cur_changed = Some(changed);
        }
        Ok((read_names(&mb.root().join(Folder::New.dir()))?, reread))
    }

    /// Every message there now, in `new/` or `cur/`.
    fn all(&mut self, mb: &Mailbox) -> Result<HashSet<String>, MailboxError> {
        let (mut names, _) = self.now(mb)?;
        names.extend(self.cur.iter().cloned());
        Ok(names)
    }
}

/// The unique parts of the file names in `dir`.
fn read_names(dir: &Path) -> Result<HashSet<String>, MailboxError> {
    let read = std::fs::read_dir(dir).map_err(|e| MailboxError::io(dir, e))?;
    let mut names = HashSet::new();
    for item in read {
        let item = item.map_err(|e| MailboxError::io(dir, e))?;
        names.insert(unique_part(&item.file_name().to_string_lossy()).to_string());
    }
    Ok(names)
}

/// The user's Maildir once it is there with `cur/`, `new/` and `tmp/` (the
/// server makes them one after the other), found as `--user` finds it.
fn appeared(
    root: &Path,
    user: &str,
    delimiter: Option<char>,
    domains: &[String],
) -> Result<Option<Mailbox>, MailboxError> {
    match Mailbox::locate_user(root, user, delimiter, domains)?.found {
        Some(dir) => match Mailbox::open(dir) {
            Ok(mb) => Ok(Some(mb)),
            Err(MailboxError::NotMaildir(_)) => Ok(None),
            Err(e) => Err(e),
        },
        None => Ok(None),
    }
}

/// Writes a progress line to `err` (stderr: it is no result).
fn say(err: &mut dyn Write, line: std::fmt::Arguments<'_>) {
    let _ = writeln!(err, "{line} (Ctrl-C to stop)");
    let _ = err.flush();
}

/// Watches until `stop` completes; `json` prints JSON lines. The line
/// `watching <dir>` goes to `err` once the messages already there are
/// known, so whatever arrives after it is reported. An awaited Maildir
/// gets `waiting for <dir> to be created` first; every message in it
/// when it appears is reported, those that created it among them.
pub async fn watch(
    what: Watched,
    json: bool,
    out: &mut dyn Write,
    err: &mut dyn Write,
    stop: impl Future<Output = ()>,
) -> Result<(), MailboxError> {
    let stdout = |e| MailboxError::Io {
        path: "<stdout>".into(),
        source: e,
    };
    tokio::pin!(stop);
    let mut tick = tokio::time::interval(POLL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let (mb, filter, mut known) = match what {
        Watched::Maildir(mb, filter) => {
            let known = Names::default().all(&mb)?;
            (mb, filter, known)
        }
        Watched::Awaited {
            root,
            user,
            delimiter,
            domains,
            expected,
        } => {
            say(
                err,
                format_args!("waiting for {} to be created", expected.display()),
            );
            loop {
                tokio::select! {
                    _ = &mut stop => return Ok(()),
                    _ = tick.tick() => {}
                }
                if let Some(mb) = appeared(&root, &user, delimiter, &domains)? {
                    break (mb, None, HashSet::new());
                }
            }
        }
    };
    say(err, format_args!("watching {}", mb.root().join("new").display()));
    let mut names = Names::default();
    loop {
        tokio::select! {
            _ = &mut stop => return Ok(()),
            _ = tick.tick() => {}
        }
        // `known` only grows (names are unique; a message that leaves is
        // never back), so an idle look costs one read of new/.
        let (in_new, reread) = names.now(&mb)?;
        let fresh = |n: &String| !known.contains(n);
        let arrived = in_new.iter().any(fresh) || reread && names.cur.iter().any(fresh);
        if !arrived {
            continue;
        }
        // Something arrived: the full scan gives it its short id.
        let entries = mb.scan()?;
        for entry in &entries {
            let unique = entry.name.unique.as_str();
            if known.contains(unique) || !(in_new.contains(unique) || names.cur.contains(unique)) {
                continue;
            }
            // Looked at once, whether it is reported or not.
            known.insert(unique.to_string());
            let Some(row) = Row::read_warning(entry, err) else {
                continue;
            };
            if filter.as_ref().is_some_and(|f| !row.is_for(f)) {
                continue;
            }
            if json {
                row.write_json(out).map_err(stdout)?;
            } else {
                row.write_line(out).map_err(stdout)?;
            }
            out.flush().map_err(stdout)?;
        }
    }
}

/// Completes on the first SIGINT (Ctrl-C) or SIGTERM.
pub async fn interrupted() {
    use tokio::signal::unix::{signal, SignalKind};
    match (signal(SignalKind::interrupt()), signal(SignalKind::terminate())) {
        (Ok(mut int), Ok(mut term)) => {
            tokio::select! {
                _ = int.recv() => {}
                _ = term.recv() => {}
            }
        }
        _ => {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}
