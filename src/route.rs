//! Where a local recipient's mail goes with `delivery = "per-recipient"`:
//! the Maildir `<maildir>/<domain>/<local-part>/` (Dovecot's `%d/%n`).
//!
//! Nothing from the client becomes a path component unchecked (DESIGN.md,
//! decision 5): the local part is case-folded, cut at the recipient
//! delimiter, and must be a short run of safe characters; the domain is
//! one of our own configured domains. Anything else is refused at RCPT
//! time with 553 5.1.3, before a byte of the message is read.

use std::path::{Path, PathBuf};

use crate::smtp::command::{Domain, ForwardPath};
use crate::smtp::idna::{domain_key, lower};

/// Longest local part, in octets (RFC 5321 §4.5.3.1.1).
pub const MAX_LOCAL_PART: usize = 64;

/// A validated mailbox: directory names for the domain and the user.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct MailboxKey {
    /// The domain directory (a configured local domain, lower case).
    pub domain: String,
    /// The user directory (the normalised local part).
    pub user: String,
}

impl MailboxKey {
    /// The Maildir for this mailbox under `root`.
    pub fn path(&self, root: &Path) -> PathBuf {
        root.join(&self.domain).join(&self.user)
    }
}

/// Why a recipient cannot have a per-recipient Maildir.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum RouteError {
    /// Empty after normalisation, or longer than [`MAX_LOCAL_PART`].
    #[error("local part is empty or too long")]
    Length,
    /// A character that is not safe in a directory name.
    #[error("local part has characters not allowed in a mailbox name")]
    Character,
    /// Starts or ends with a dot, or has two in a row.
    #[error("local part has a misplaced dot")]
    Dot,
    /// Starts with `-`: a directory named `-rf` is an option to every
    /// command an administrator runs over the mailboxes with `*`.
    #[error("local part starts with '-'")]
    Dash,
}

/// Characters allowed besides letters and digits: RFC 5322 atext without
/// `/` (a path separator) and `%` (the old percent-hack routing).
const SAFE_PUNCT: &str = "!#$&'*+-=?^_`{|}~.";

/// Maps a local recipient to its mailbox. `primary` is the domain used for
/// `<postmaster>` and address-literal recipients; `domains` are the local
/// domains, whose directory is named as configured (in lower case), in
/// whichever form (A-labels or U-labels) the recipient wrote the domain;
/// `delimiter` cuts `user+tag` down to `user`.
pub fn mailbox_key(
    to: &ForwardPath,
    primary: &str,
    domains: &[String],
    delimiter: Option<char>,
) -> Result<MailboxKey, RouteError> {
    let (local, domain) = match to {
        ForwardPath::Postmaster => ("postmaster", lower(primary)),
        ForwardPath::Mailbox(m) => {
            let domain = match &m.domain {
                Domain::Name(n) => {
                    let key = domain_key(n);
                    domains
                        .iter()
                        .find(|d| domain_key(d) == key)
                        .map_or_else(|| lower(n), |d| lower(d))
                }
                Domain::Literal(_) => lower(primary),
            };
            (m.local.as_str(), domain)
        }
    };
    let local = local.to_lowercase();
    let local = match delimiter {
        Some(d) => local.split(d).next().unwrap_or_default().to_string(),
        None => local,
    };
    if local.is_empty() || local.len() > MAX_LOCAL_PART {
        return Err(RouteError::Length);
    }
    if !local
        .chars()
        .all(|c| c.is_alphanumeric() || SAFE_PUNCT.contains(c))
    {
        return Err(RouteError::Character);
    }
    if local.starts_with('.') || local.ends_with('.') || local.contains("..") {
        return Err(RouteError::Dot);
    }
    if local.starts_with('-') {
        return Err(RouteError::Dash);
    }
    Ok(MailboxKey { domain, user: local })
}

/// Which per-recipient mailboxes exist, for `mailboxes = "existing"`:
/// the state machine asks at RCPT, the server answers from the file
/// system ([`MailboxDirs`]), tests from a list.
pub trait Mailboxes: std::fmt::Debug + Send + Sync {
    /// True if mail for `key` has a Maildir to go to.
    fn exists(&self, key: &MailboxKey) -> bool;
}

/// The mailboxes that exist as Maildirs (with a `new/`) under a root.
#[derive(Debug, Clone)]
pub struct MailboxDirs {
    root: PathBuf,
}

impl MailboxDirs {
    /// Mailboxes under `root`, as `<domain>/<local-part>/`.
    pub fn new(root: impl Into<PathBuf>) -> Self {
        MailboxDirs { root: root.into() }
    }
}

impl Mailboxes for MailboxDirs {
    /// Without following a symbolic link below the root: delivery would
    /// refuse one (see `Maildir::open_sibling`), so RCPT does too.
    fn exists(&self, key: &MailboxKey) -> bool {
        let domain = self.root.join(&key.domain);
        let mailbox = domain.join(&key.user);
        [&domain, &mailbox, &mailbox.join("new")]
            .iter()
            .all(|p| std::fs::symlink_metadata(p).is_ok_and(|m| m.is_dir()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::smtp::command::parse;
    use crate::smtp::command::Command;

    fn key(rcpt: &str, delim: Option<char>) -> Result<MailboxKey, RouteError> {
        let Ok(Command::Rcpt { to }) = parse(format!("RCPT TO:{rcpt}").as_bytes()) else {
            panic!("{rcpt} does not parse");
        };
        mailbox_key(
            &to,
            "localhost",
            &["localhost".into(), "bücher.example".into()],
            delim,
        )
    }

    fn ok(rcpt: &str, domain: &str, user: &str) {
        assert_eq!(
            key(rcpt, Some('+')),
            Ok(MailboxKey {
                domain: domain.into(),
                user: user.into()
            }),
            "{rcpt}"
        );
    }

    #[test]
    fn normal_addresses() {
        ok("<Alice@Example.ORG>", "example.org", "alice");
        ok("<first.last@localhost>", "localhost", "first.last");
        ok("<user+tag@localhost>", "localhost", "user");
        ok("<user+@localhost>", "localhost", "user");
        ok("<postmaster>", "localhost", "postmaster");
        ok("<u@[127.0.0.1]>", "localhost", "u");
        ok("<Jürgen@localhost>", "localhost", "jürgen");
        // Both forms of an internationalized domain: one directory,
        // named as the domain is configured.
        ok("<u@Bücher.example>", "bücher.example", "u");
        ok("<u@XN--BCHER-KVA.example>", "bücher.example", "u");
        // Not a local domain (the reader may ask): as written.
        ok("<u@Other.Example>", "other.example", "u");
        ok("<o'brien@localhost>", "localhost", "o'brien");
        assert_eq!(key("<a+b@localhost>", None).unwrap().user, "a+b");
    }

    #[test]
    fn an_existing_mailbox_is_a_directory_not_a_link() {
        let dir = tempfile::tempdir().unwrap();
        let dirs = MailboxDirs::new(dir.path());
        let key = |user: &str| MailboxKey {
            domain: "localhost".into(),
            user: user.into(),
        };
        std::fs::create_dir_all(dir.path().join("localhost/bob/new")).unwrap();
        std::fs::create_dir_all(dir.path().join("elsewhere/new")).unwrap();
        std::os::unix::fs::symlink(dir.path().join("elsewhere"), dir.path().join("localhost/carol")).unwrap();
        assert!(dirs.exists(&key("bob")));
        assert!(!dirs.exists(&key("carol")));
        assert!(!dirs.exists(&key("dave")));
    }

    #[test]
    fn unsafe_local_parts_are_refused() {
        for rcpt in [
            "<\"../etc\"@localhost>",
            "<\"..\"@localhost>",
            "<\".\"@localhost>",
            "<\"a/b\"@localhost>",
            "<\"/abs\"@localhost>",
            "<%2e%2e@localhost>",
            "<\"a b\"@localhost>",
            "<\"a\\\"b\"@localhost>",
            "<\"\"@localhost>",
            "<+tag@localhost>",
            "<\".hidden\"@localhost>",
            "<-rf@localhost>",
        ] {
            assert!(key(rcpt, Some('+')).is_err(), "{rcpt} should be refused");
        }
        assert_eq!(key("<-rf@localhost>", None), Err(RouteError::Dash));
        let long = format!("<{}@localhost>", "a".repeat(65));
        assert_eq!(key(&long, None), Err(RouteError::Length));
        let max = format!("<{}@localhost>", "a".repeat(64));
        assert!(key(&max, None).is_ok());
        // Two-octet characters count as octets.
        let wide = format!("<{}@localhost>", "ü".repeat(33));
        assert_eq!(key(&wide, None), Err(RouteError::Length));
    }

    #[test]
    fn paths_stay_inside_the_root() {
        let root = Path::new("/srv/mail");
        let k = key("<User@Example.org>", None).unwrap();
        assert_eq!(k.path(root), Path::new("/srv/mail/example.org/user"));
        assert!(k.path(root).starts_with(root));
    }
}
