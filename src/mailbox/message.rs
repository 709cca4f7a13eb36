//! What a stored message says about itself, decoded with mailparse: the
//! main headers (RFC 2047 encoded words and UTF-8 turned into text), the
//! envelope recipients from the `Received:` header maildoor added, and the
//! check that a file is a message at all.

use mailparse::{MailHeader, MailHeaderMap};
use serde::Serialize;

use crate::smtp::command::{self, Command, Domain, ForwardPath};

/// The headers `list` shows, decoded.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Summary {
    /// `Date:` as written.
    pub date: Option<String>,
    /// `Date:` as seconds since the epoch, when it parses ([`parse_date`]);
    /// `None` when the header is missing or unreadable, and then readers
    /// date the message by its delivery.
    pub date_unix: Option<i64>,
    /// `From:`, decoded.
    pub from: String,
    /// `To:`, decoded.
    pub to: String,
    /// `Cc:`, decoded.
    pub cc: String,
    /// `Subject:`, decoded.
    pub subject: String,
    /// `Message-ID:`.
    pub message_id: String,
    /// Envelope recipients from maildoor's `Received:` header.
    pub envelope_to: Vec<String>,
}

/// Why a file is not a message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Invalid {
    /// Zero bytes.
    #[error("empty file")]
    Empty,
    /// The first line is not `Name: value`.
    #[error("does not start with a header line")]
    NoHeader,
    /// mailparse refused it.
    #[error("{0}")]
    Parse(String),
}

/// A header value decoded for people: encoded words and UTF-8 (or, failing
/// that, Latin-1) turned into text, folding undone.
pub fn decode_value(h: &MailHeader<'_>) -> String {
    h.get_value().trim().to_string()
}

/// Characters that could steer a terminal (escape sequences, CR, NUL...)
/// become U+FFFD; tabs and, when `keep_newlines`, newlines stay.
pub fn sanitize(s: &str, keep_newlines: bool) -> String {
    s.chars()
        .map(|c| match c {
            '\t' => c,
            '\n' if keep_newlines => c,
            c if c.is_control() => '\u{FFFD}',
            c => c,
        })
        .collect()
}

/// RFC 5322 §2.2: a field name is printable ASCII except `:` and space.
fn is_field_name(name: &[u8]) -> bool {
    !name.is_empty() && name.iter().all(|&b| (33..=126).contains(&b) && b != b':')
}

/// True when `line` starts a header field: a name, optional blanks (the
/// obsolete syntax of RFC 5322 §4.5), then `:`.
fn is_header_line(line: &[u8]) -> bool {
    let Some(colon) = line.iter().position(|&b| b == b':') else {
        return false;
    };
    let name = line.get(..colon).unwrap_or_default();
    let trimmed_len = name
        .iter()
        .rposition(|&b| b != b' ' && b != b'\t')
        .map_or(0, |i| i + 1);
    is_field_name(name.get(..trimmed_len).unwrap_or_default())
}

/// Checks that `raw` (at least its header block) is a message: not empty,
/// opening with a header line, and accepted by mailparse.
pub fn check(raw: &[u8]) -> Result<(), Invalid> {
    if raw.is_empty() {
        return Err(Invalid::Empty);
    }
    let first = raw.split(|&b| b == b'\n').next().unwrap_or_default();
    if !is_header_line(first) {
        return Err(Invalid::NoHeader);
    }
    mailparse::parse_headers(raw)
        .map(|_| ())
        .map_err(|e| Invalid::Parse(e.to_string()))
}

/// The decoded summary of a message whose header block is `raw`.
pub fn summarize(raw: &[u8]) -> Result<Summary, Invalid> {
    check(raw)?;
    let (headers, _) = mailparse::parse_headers(raw).map_err(|e| Invalid::Parse(e.to_string()))?;
    let get = |name: &str| {
        headers
            .get_all_headers(name)
            .iter()
            .map(|h| decode_value(h))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let date = headers.get_first_header("Date").map(|h| decode_value(h));
    let date_unix = date.as_deref().and_then(parse_date);
    Ok(Summary {
        date_unix,
        date,
        from: get("From"),
        to: get("To"),
        cc: get("Cc"),
        subject: get("Subject"),
        message_id: get("Message-ID"),
        envelope_to: envelope_recipients(&headers),
    })
}

/// A `Date:` value as seconds since the epoch, or `None` when it names no
/// date. mailparse's `dateparse` skips words it does not know and answers
/// 0 when nothing was left (`"not a date"`, `"Jan 2026"`), so 0 is taken
/// as no date: a header that really says 1970-01-01 00:00:00 UTC is dated
/// like one that is missing, by the delivery.
pub fn parse_date(value: &str) -> Option<i64> {
    mailparse::dateparse(value).ok().filter(|&secs| secs != 0)
}

/// The recipients in maildoor's own `Received:` header (the first one
/// that says `(maildoor)`): `for <a@b>` for one recipient, the comment
/// `(envelope recipients: <a@b>, <c@d>)` for several.
pub fn envelope_recipients(headers: &[MailHeader<'_>]) -> Vec<String> {
    let ours = headers
        .get_all_headers("Received")
        .into_iter()
        .map(|h| String::from_utf8_lossy(h.get_value_raw()).replace(['\r', '\n', '\t'], " "))
        .find(|v| v.contains("(maildoor)"));
    let Some(value) = ours else {
        return Vec::new();
    };
    // What follows `(maildoor) with <protocol> id <queue id>` says who the
    // message was for; a recipient's own text further on (a quoted local
    // part may hold anything) is never taken for it.
    let Some((_, after)) = value.split_once("(maildoor)") else {
        return Vec::new();
    };
    let mut words = after.split(' ').filter(|w| !w.is_empty());
    let shape = (words.next(), words.next(), words.next(), words.next());
    let (Some("with"), Some(_), Some("id"), Some(id)) = shape else {
        return Vec::new();
    };
    let rest = after
        .split_once(&format!(" id {id}"))
        .map_or("", |(_, rest)| rest)
        .trim_start();
    if let Some(list) = rest.strip_prefix("(envelope recipients:") {
        angle_addresses(&comment_body(list), usize::MAX).unwrap_or_else(|| {
            // Written before comments were escaped (a `"` or `\\` in a
            // quoted local part then reads as unbalanced): take each
            // `<...>` as it stands, as the reader of that time did.
            let raw = list.split(')').next().unwrap_or_default();
            raw.split('<')
                .skip(1)
                .filter_map(|a| a.split_once('>').map(|(addr, _)| addr.to_string()))
                .filter(|a| !a.is_empty())
                .collect()
        })
    } else if let Some(path) = rest.strip_prefix("for ") {
        angle_addresses(path, 1).unwrap_or_default()
    } else {
        Vec::new()
    }
}

/// The rest of a comment that `text` is inside of, up to the parenthesis
/// that closes it, with its quoted pairs (`\(`, `\)`, `\\`) undone.
fn comment_body(text: &str) -> String {
    let mut out = String::new();
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => out.extend(chars.next()),
            ')' => break,
            c => out.push(c),
        }
    }
    out
}

/// Up to `most` addresses between `<` and `>` in `s`, in order. A quoted
/// local part may hold `>`, `;` or `\"` (RFC 5321 §4.1.2): inside quotes
/// only the closing quote counts. `None` when an address never closes.
fn angle_addresses(s: &str, most: usize) -> Option<Vec<String>> {
    let mut out = Vec::new();
    let mut chars = s.chars();
    while out.len() < most && chars.by_ref().any(|c| c == '<') {
        let mut addr = String::new();
        let mut quoted = false;
        let mut closed = false;
        while let Some(c) = chars.next() {
            match c {
                '>' if !quoted => {
                    closed = true;
                    break;
                }
                '"' => quoted = !quoted,
                '\\' if quoted => {
                    addr.push(c);
                    addr.extend(chars.next());
                    continue;
                }
                _ => {}
            }
            addr.push(c);
        }
        if !closed {
            return None;
        }
        if !addr.is_empty() {
            out.push(addr);
        }
    }
    Some(out)
}

/// `addr` as an SMTP path, the way a client would give it in RCPT TO
/// (angle brackets optional): what the server parsed and delivered for.
pub fn parse_address(addr: &str) -> Option<ForwardPath> {
    let bare = addr.trim().trim_start_matches('<').trim_end_matches('>');
    match command::parse(format!("RCPT TO:<{bare}>").as_bytes()) {
        Ok(Command::Rcpt { to }) => Some(to),
        _ => None,
    }
}

/// The domain of `to` when it is a host name (not `<postmaster>`, not an
/// address literal).
pub fn named_domain(to: &ForwardPath) -> Option<&str> {
    match to {
        ForwardPath::Mailbox(m) => match &m.domain {
            Domain::Name(n) => Some(n),
            Domain::Literal(_) => None,
        },
        ForwardPath::Postmaster => None,
    }
}

/// An address typed by a user, made comparable with the recipients the
/// server recorded (see [`normalize_address`]): in the form the server
/// writes it (`"bob"@x` is `bob@x`, `"a b"@x` stays quoted) when it parses
/// as SMTP, else as typed.
pub fn normalize_user(user: &str) -> String {
    match parse_address(user) {
        Some(path) => normalize_address(&path.to_string()),
        None => normalize_address(user),
    }
}

/// Normalises an address for comparison: angle brackets and blanks gone,
/// lower case (local parts are case-sensitive in theory, never in
/// practice; a reader errs on the side of showing mail).
pub fn normalize_address(addr: &str) -> String {
    addr.trim()
        .trim_start_matches('<')
        .trim_end_matches('>')
        .trim()
        .to_lowercase()
}

/// The bare addresses in an address-list header value (To, Cc); when the
/// value does not parse, every `<...>` and word with an `@`.
pub fn addresses_in(value: &str) -> Vec<String> {
    match mailparse::addrparse(value) {
        Ok(list) => list
            .iter()
            .flat_map(|a| match a {
                mailparse::MailAddr::Single(s) => vec![s.addr.clone()],
                mailparse::MailAddr::Group(g) => g.addrs.iter().map(|s| s.addr.clone()).collect(),
            })
            .collect(),
        Err(_) => value
            .split(|c: char| c == ',' || c.is_whitespace())
            .filter(|w| w.contains('@'))
            .map(|w| w.to_string())
            .collect(),
    }
}

impl Summary {
    /// True when `user` (already normalised) is an envelope recipient, or
    /// is in To or Cc.
    pub fn is_for(&self, user: &str) -> bool {
        self.is_for_in(user, None)
    }

    /// As [`Summary::is_for`], with the server's first domain, which
    /// `<postmaster>` and address-literal recipients are delivered to.
    fn is_for_in(&self, user: &str, primary: Option<&str>) -> bool {
        self.envelope_to
            .iter()
            .map(String::as_str)
            .chain(addresses_in(&self.to).iter().map(String::as_str))
            .chain(addresses_in(&self.cc).iter().map(String::as_str))
            .any(|a| reached(normalize_address(a), primary) == user)
    }
}

/// Who `--user` asks for, as the mailbox the server delivers to: like
/// delivery (`route::mailbox_key`), `<postmaster>` and an address-literal
/// domain stand for the server's first domain, so `postmaster@example.org`
/// finds mail sent to `<Postmaster>`, and `bob@example.org` mail sent to
/// `bob@[192.0.2.1]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserFilter {
    user: String,
    primary: Option<String>,
}

impl UserFilter {
    /// A filter for `user` on a server whose first domain is `primary`.
    pub fn new(user: &str, primary: Option<&str>) -> Self {
        UserFilter {
            user: reached(normalize_user(user), primary),
            primary: primary.map(str::to_ascii_lowercase),
        }
    }

    /// True when the message is for the user.
    pub fn accepts(&self, summary: &Summary) -> bool {
        summary.is_for_in(&self.user, self.primary.as_deref())
    }
}

/// A normalised address as the mailbox it reaches on a server whose first
/// domain is `primary` (unchanged without one).
fn reached(addr: String, primary: Option<&str>) -> String {
    let Some(primary) = primary else {
        return addr;
    };
    let local = match parse_address(&addr) {
        Some(ForwardPath::Postmaster) => "postmaster".to_string(),
        Some(ForwardPath::Mailbox(m)) if matches!(m.domain, Domain::Literal(_)) => m.local,
        _ => return addr,
    };
    // Rebuilt from the parse, so the local part is written as the server
    // writes it (`"Bob"` is `bob`) whatever the literal holds.
    let reached = ForwardPath::Mailbox(command::Mailbox {
        local,
        domain: Domain::Name(primary.to_string()),
    });
    normalize_address(&reached.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    const STORED: &str = "Return-Path: <alice@example.net>\nReceived: from client.example ([127.0.0.1]:49904)\n\tby mx.example.org (maildoor) with ESMTP id 1795606291.M586647P9934Q0\n\tfor <bob@localhost>;\n\tWed, 25 Nov 2026 11:31:31 +0000\nFrom: =?UTF-8?B?QWxpY2UgTcO8bGxlcg==?= <alice@example.net>\nTo: Bob <bob@localhost>, carol@localhost\nSubject: =?UTF-8?Q?Gr=C3=BC=C3=9Fe?= aus\n =?ISO-8859-1?Q?K=F6ln?=\nDate: Wed, 25 Nov 2026 12:31:31 +0100\n\nHi Bob!\n";

    #[test]
    fn decodes_encoded_words_and_folding() {
        let s = summarize(STORED.as_bytes()).unwrap();
        assert_eq!(s.from, "Alice Müller <alice@example.net>");
        assert_eq!(s.subject, "Grüße aus Köln");
        assert_eq!(s.to, "Bob <bob@localhost>, carol@localhost");
        assert_eq!(s.date_unix, Some(1_795_606_291));
        assert_eq!(s.envelope_to, ["bob@localhost"]);
        // Raw UTF-8 (RFC 6532) and Latin-1 bytes both come out as text.
        let s = summarize("Subject: Grüße\n\n".as_bytes()).unwrap();
        assert_eq!(s.subject, "Grüße");
        let s = summarize(b"Subject: K\xf6ln\n\n").unwrap();
        assert_eq!(s.subject, "Köln");
    }

    #[test]
    fn unreadable_date_is_no_date() {
        for bad in [
            "not a date",
            "Jan 2026",
            "32 Nov 2026 10:00:00 +0000",
            "25 Nov 2026 xx:00",
        ] {
            let s = summarize(format!("Date: {bad}\n\n").as_bytes()).unwrap();
            assert_eq!(s.date.as_deref(), Some(bad));
            assert_eq!(s.date_unix, None, "{bad}");
        }
        assert_eq!(summarize(b"Subject: x\n\n").unwrap().date_unix, None);
        assert_eq!(parse_date("25 Nov 2026 11:31:31 GMT"), Some(1_795_606_291));
    }

    #[test]
    fn envelope_recipients_of_a_header_written_before_comments_were_escaped() {
        let raw = "Received: from x ([::1]:1)\n\tby h (maildoor) with SMTP id 1.M2P3Q4\n\t(envelope recipients: <\"a\\\"b\"@x.test>,\n\t <c@x.test>);\n\tThu, 01 Jan 1970 00:00:00 +0000\n\n";
        let s = summarize(raw.as_bytes()).unwrap();
        assert_eq!(s.envelope_to, ["\"a\\\"b\"@x.test", "c@x.test"]);
    }

    #[test]
    fn envelope_recipients_from_the_comment() {
        let raw = "Return-Path: <>\nReceived: from x ([::1]:1)\n\tby h (maildoor) with SMTP id 1.M2P3Q4\n\t(envelope recipients: <a@localhost>, <B@Example.org>);\n\tThu, 01 Jan 1970 00:00:00 +0000\nReceived: from elsewhere by y for <zzz@else>;\n\n";
        let s = summarize(raw.as_bytes()).unwrap();
        assert_eq!(s.envelope_to, ["a@localhost", "B@Example.org"]);
        assert!(s.is_for(&normalize_address("<b@example.org>")));
        // A user names an address as a client would write it in RCPT.
        assert_eq!(normalize_user("\"B\"@Example.org"), "b@example.org");
        assert_eq!(normalize_user("<\"d\\\\e\"@x.test>"), "\"d\\\\e\"@x.test");
        assert_eq!(normalize_user("not an address"), "not an address");
        assert!(!s.is_for("zzz@else"));
        // Only our own Received header counts.
        let s = summarize(b"Received: from a by b for <x@y>; now\n\n").unwrap();
        assert!(s.envelope_to.is_empty());
    }

    #[test]
    fn postmaster_and_address_literals_reach_the_first_domain() {
        let raw = "Return-Path: <>\nReceived: from x ([::1]:1)\n\tby h (maildoor) with SMTP id 1.M2P3Q4\n\t(envelope recipients: <Postmaster>, <bob@[127.0.0.1]>, <\"a@b\"@[IPv6:::1]>);\n\tThu, 01 Jan 1970 00:00:00 +0000\n\n";
        let s = summarize(raw.as_bytes()).unwrap();
        let on = |user: &str| UserFilter::new(user, Some("Example.org")).accepts(&s);
        for user in [
            "postmaster@example.org",
            "postmaster",
            "<PostMaster@Example.ORG>",
            "bob@example.org",
            "bob@[127.0.0.1]",
            "\"Bob\"@[192.0.2.1]",
            "\"a@b\"@example.org",
        ] {
            assert!(on(user), "{user}");
        }
        for user in ["postmaster@other.test", "bob@other.test", "carol@example.org"] {
            assert!(!on(user), "{user}");
        }
        // Without a first domain, addresses are compared as written.
        assert!(UserFilter::new("postmaster", None).accepts(&s));
        assert!(!UserFilter::new("postmaster@example.org", None).accepts(&s));
    }

    #[test]
    fn user_matches_to_and_cc() {
        let s = summarize(STORED.as_bytes()).unwrap();
        assert!(s.is_for("bob@localhost"));
        assert!(s.is_for("carol@localhost"));
        assert!(!s.is_for("alice@example.net"));
        let s = summarize(b"Cc: \"Dan, D.\" <dan@x.org>\nTo: undisclosed-recipients:;\n\n").unwrap();
        assert!(s.is_for("dan@x.org"));
        assert_eq!(addresses_in("garbage <<< e@f, g@h"), ["e@f", "g@h"]);
    }

    #[test]
    fn not_messages() {
        assert_eq!(check(b""), Err(Invalid::Empty));
        assert_eq!(check(b"hello world\n"), Err(Invalid::NoHeader));
        assert_eq!(check(b"\x00\x01\x02binary"), Err(Invalid::NoHeader));
        assert_eq!(check(b"\nbody only\n"), Err(Invalid::NoHeader));
        assert_eq!(check(b": no name\n"), Err(Invalid::NoHeader));
        assert!(matches!(check(b"A: b\n\rx"), Err(Invalid::Parse(_))));
        assert_eq!(check(b"Subject : obsolete but fine\n\n"), Ok(()));
        assert_eq!(check(b"X: y"), Ok(()));
    }

    #[test]
    fn sanitizes_terminal_controls() {
        assert_eq!(
            sanitize("a\x1b[2Jb\tc\nd\r", false),
            "a\u{FFFD}[2Jb\tc\u{FFFD}d\u{FFFD}"
        );
        assert_eq!(sanitize("x\ny", true), "x\ny");
    }
}
