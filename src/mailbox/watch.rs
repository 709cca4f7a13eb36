//! `maildoor mailbox watch`: a line for each message that arrives in
//! `new/`, found by looking at the directory every [`POLL`] (portable, no
//! inotify dependency), until SIGINT or SIGTERM.

use std::collections::HashSet;
use std::future::Future;
use std::io::Write;
use std::time::Duration;

use super::list::Row;
use super::{Folder, Mailbox, MailboxError};

/// How often `new/` is looked at.
pub const POLL: Duration = Duration::from_millis(200);

/// File names in `new/` now.
fn names_in_new(mb: &Mailbox) -> Result<HashSet<String>, MailboxError> {
    Ok(mb
        .scan()?
        .into_iter()
        .filter(|e| e.folder == Folder::New)
        .map(|e| e.name.file)
        .collect())
}

/// Watches `mb` until `stop` completes; `filter` keeps messages for one
/// user (normalised address); `json` prints JSON lines. The line
/// `watching <dir>` goes to `err` once the messages already there are
/// known, so whatever arrives after it is reported.
pub async fn watch(
    mb: &Mailbox,
    filter: Option<&str>,
    json: bool,
    out: &mut dyn Write,
    err: &mut dyn Write,
    stop: impl Future<Output = ()>,
) -> Result<(), MailboxError> {
    let stdout = |e| MailboxError::Io {
        path: "<stdout>".into(),
        source: e,
    };
    let mut known = names_in_new(mb)?;
    let _ = writeln!(
        err,
        "watching {} (Ctrl-C to stop)",
        mb.root().join("new").display()
    );
    let _ = err.flush();
    tokio::pin!(stop);
    let mut tick = tokio::time::interval(POLL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = &mut stop => return Ok(()),
            _ = tick.tick() => {}
        }
        let entries = mb.scan()?;
        let mut now = HashSet::new();
        for entry in entries.iter().filter(|e| e.folder == Folder::New) {
            now.insert(entry.name.file.clone());
            if known.contains(&entry.name.file) {
                continue;
            }
            let Some(row) = Row::read_warning(entry, err) else {
                continue;
            };
            if filter.is_some_and(|u| !row.is_for(u)) {
                continue;
            }
            if json {
                row.write_json(out).map_err(stdout)?;
            } else {
                row.write_line(out).map_err(stdout)?;
            }
            out.flush().map_err(stdout)?;
        }
        known = now;
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
