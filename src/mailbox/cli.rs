//! The `maildoor mailbox` subcommands: their flags (clap) and what each one
//! does, writing to the given output and error streams so tests can run
//! them without a terminal.

use std::io::Write;

use clap::{Args, Subcommand};

use super::list::Row;
use super::message::{self, UserFilter};
use super::watch::{self, Watched};
use super::{read_message, render, resolve_in, Entry, Layout, Mailbox, MailboxError};
use crate::smtp::idna::domain_key;

/// `maildoor mailbox`: read the mail in the Maildir.
#[derive(Debug, Args)]
pub struct MailboxArgs {
    /// Only mail for this address: the per-recipient Maildir
    /// <maildir>/<domain>/<local-part>/ when there is one (the local part
    /// cut at recipient_delimiter, as the server does), else the messages
    /// whose envelope recipient, To or Cc is ADDR. With delivery =
    /// "per-recipient", `watch` waits for that Maildir when it does not
    /// exist yet.
    #[arg(long, value_name = "ADDR", global = true)]
    pub user: Option<String>,

    /// What to do.
    #[command(subcommand)]
    pub cmd: MailboxCmd,
}

/// The mailbox subcommands.
#[derive(Debug, Subcommand)]
pub enum MailboxCmd {
    /// One line per message, oldest first: short id, date (UTC), from, to,
    /// subject, size, and new/old/seen.
    List {
        /// One JSON object per line instead.
        #[arg(long)]
        json: bool,
    },
    /// Print a message (headers, text, attachments) and mark it seen.
    Show {
        /// Queue id, a unique prefix of it, the short id from `list`, or the file name.
        id: String,
        /// Print the stored bytes exactly.
        #[arg(long, conflicts_with = "headers")]
        raw: bool,
        /// Print every header, decoded, and nothing else (no text).
        #[arg(long)]
        headers: bool,
        /// Leave the message unseen (no move to cur/).
        #[arg(long)]
        peek: bool,
    },
    /// Print a line for each message arriving in new/, until Ctrl-C. With
    /// --user and delivery = "per-recipient": in the user's own Maildir,
    /// waiting for it to be created when it does not exist yet.
    Watch {
        /// One JSON object per line instead.
        #[arg(long)]
        json: bool,
    },
    /// Delete a message.
    Delete {
        /// Queue id, a unique prefix of it, the short id from `list`, or the file name.
        id: String,
    },
    /// Count the messages: total, new (in new/), seen, and old (in cur/,
    /// not seen) when there are any.
    Count {
        /// Print a JSON object instead.
        #[arg(long)]
        json: bool,
    },
}

/// The Maildir to read, and the user whose messages to keep when it is
/// shared.
struct Selection {
    mailbox: Mailbox,
    filter: Option<UserFilter>,
}

fn select(layout: &Layout<'_>, user: Option<&str>) -> Result<Selection, MailboxError> {
    match user {
        None => Ok(Selection {
            mailbox: Mailbox::open(layout.root)?,
            filter: None,
        }),
        Some(user) => {
            let (mailbox, own) = Mailbox::open_for_user(layout.root, user, layout.delimiter, layout.domains)?;
            Ok(Selection {
                mailbox,
                filter: (!own).then(|| UserFilter::new(user, layout.primary())),
            })
        }
    }
}

fn stdout_error(e: std::io::Error) -> MailboxError {
    MailboxError::Io {
        path: "<stdout>".into(),
        source: e,
    }
}

/// What `watch` looks at: the selection, except that with per-recipient
/// delivery a user's Maildir that does not exist yet is waited for (the
/// shared Maildir never gets their mail).
fn watched(layout: &Layout<'_>, user: Option<&str>, err: &mut dyn Write) -> Result<Watched, MailboxError> {
    if let (Some(user), true) = (user, layout.per_recipient) {
        let found = Mailbox::locate_user(layout.root, user, layout.delimiter, layout.domains)?;
        if found.found.is_none() {
            let expected = found
                .expected
                .ok_or_else(|| MailboxError::BadAddress(user.to_string()))?;
            // A typo in the domain would wait forever: the server refuses
            // mail for domains it does not serve.
            let parsed = message::parse_address(user);
            if let Some(domain) = parsed.as_ref().and_then(message::named_domain) {
                let served = layout.domains.iter().any(|d| domain_key(d) == domain_key(domain));
                if !served && !layout.domains.is_empty() {
                    let _ = writeln!(
                        err,
                        "maildoor: {domain} is not one of the server's domains ({}): no mail will arrive for {user}",
                        layout.domains.join(", ")
                    );
                }
            }
            return Ok(Watched::Awaited {
                root: layout.root.to_path_buf(),
                user: user.to_string(),
                delimiter: layout.delimiter,
                domains: layout.domains.to_vec(),
                expected,
            });
        }
    }
    let sel = select(layout, user)?;
    Ok(Watched::Maildir(sel.mailbox, sel.filter))
}

/// Runs one `maildoor mailbox` command on the Maildir the server delivers
/// into as `layout` says. Results go to `out`; warnings (files that are
/// not messages) to `err`.
pub fn run(
    args: &MailboxArgs,
    layout: &Layout<'_>,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> Result<(), MailboxError> {
    let user = args.user.as_deref();
    if layout.per_recipient && user.is_none() {
        // The shared Maildir gets no mail in this layout: say where it is.
        let _ = writeln!(
            err,
            "note: delivery is per-recipient, so mail is in {}/<domain>/<local-part>/; \
             give --user ADDR to read one recipient's",
            layout.root.display()
        );
    }
    match &args.cmd {
        MailboxCmd::List { json } => list(&select(layout, user)?, *json, out, err),
        MailboxCmd::Show {
            id,
            raw,
            headers,
            peek,
        } => show(&select(layout, user)?, id, *raw, *headers, *peek, out),
        MailboxCmd::Delete { id } => {
            let sel = select(layout, user)?;
            let entry = resolve(&sel, id)?;
            sel.mailbox.delete(&entry)?;
            let what = format!("{} ({})", entry.name.queue_id, entry.name.file);
            writeln!(out, "deleted {}", message::sanitize(&what, false)).map_err(stdout_error)
        }
        MailboxCmd::Count { json } => count(&select(layout, user)?, *json, out, err),
        MailboxCmd::Watch { json } => {
            let what = watched(layout, user, err)?;
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|e| MailboxError::Io {
                    path: "<runtime>".into(),
                    source: e,
                })?;
            runtime.block_on(watch::watch(what, *json, out, err, watch::interrupted()))
        }
    }
}

/// The rows of the selection, warning on `err` about files that are not
/// messages (those stay in an unfiltered list, so they can be deleted).
fn rows(sel: &Selection, err: &mut dyn Write) -> Result<Vec<Row>, MailboxError> {
    let mut rows = Vec::new();
    for entry in sel.mailbox.scan()? {
        let Some(row) = Row::read_warning(&entry, err) else {
            continue;
        };
        if sel.filter.as_ref().is_some_and(|f| !row.is_for(f)) {
            continue;
        }
        rows.push(row);
    }
    Ok(rows)
}

fn list(sel: &Selection, json: bool, out: &mut dyn Write, err: &mut dyn Write) -> Result<(), MailboxError> {
    for row in rows(sel, err)? {
        if json {
            row.write_json(out).map_err(stdout_error)?;
        } else {
            row.write_line(out).map_err(stdout_error)?;
        }
    }
    out.flush().map_err(stdout_error)
}

fn count(sel: &Selection, json: bool, out: &mut dyn Write, err: &mut dyn Write) -> Result<(), MailboxError> {
    let rows = rows(sel, err)?;
    let total = rows.len();
    let status = |s: &str| rows.iter().filter(|r| r.entry.status() == s).count();
    let (new, seen, old) = (status("new"), status("seen"), status("old"));
    // The text says "old" only when there is some, so that the common
    // output stays as it always was; JSON keeps one set of keys.
    let line = if json {
        serde_json::json!({ "total": total, "new": new, "seen": seen, "old": old }).to_string()
    } else if old > 0 {
        format!("{total} total, {new} new, {seen} seen, {old} old")
    } else {
        format!("{total} total, {new} new, {seen} seen")
    };
    writeln!(out, "{line}").map_err(stdout_error)
}

/// The message `id` names among those of the selection: with a `--user`
/// filter on a shared Maildir, another user's message is no message.
fn resolve(sel: &Selection, id: &str) -> Result<Entry, MailboxError> {
    let Some(filter) = &sel.filter else {
        return sel.mailbox.resolve(id);
    };
    let theirs: Vec<Entry> = sel
        .mailbox
        .scan()?
        .into_iter()
        .filter(|e| Row::read(e).is_some_and(|row| row.is_for(filter)))
        .collect();
    resolve_in(&theirs, id).cloned()
}

fn show(
    sel: &Selection,
    id: &str,
    raw: bool,
    headers: bool,
    peek: bool,
    out: &mut dyn Write,
) -> Result<(), MailboxError> {
    let mb = &sel.mailbox;
    let mut entry = resolve(sel, id)?;
    // Another reader may have marked it seen since it was found.
    let bytes = match read_message(&entry.path) {
        Err(e) if !entry.path.exists() => match Mailbox::moved(&entry) {
            Some(moved) => {
                entry = moved;
                read_message(&entry.path)?
            }
            None => return Err(e),
        },
        read => read?,
    };
    let invalid = |reason| MailboxError::InvalidMessage {
        path: entry.path.clone(),
        reason,
    };
    if raw {
        out.write_all(&bytes).map_err(stdout_error)?;
    } else if headers {
        let all = render::all_headers(&bytes).map_err(invalid)?;
        render::write_headers(out, &all).map_err(stdout_error)?;
    } else {
        let readable = render::readable(&bytes).map_err(invalid)?;
        render::write_readable(out, &readable).map_err(stdout_error)?;
    }
    out.flush().map_err(stdout_error)?;
    if !peek {
        mb.mark_seen(&entry)
            .map_err(|e| MailboxError::NotMarkedSeen(Box::new(e)))?;
    }
    Ok(())
}
