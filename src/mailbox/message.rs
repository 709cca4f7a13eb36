//! What a stored message says about itself, decoded with mailparse: the
//! main headers (RFC 2047 encoded words and UTF-8 turned into text), the
//! envelope recipients from the `Received:` header maildoor added, and the
//! check that a file is a message at all.

use mailparse::{MailHeader, MailHeaderMap};
use serde::Serialize;

use crate::smtp::command::{self, Command, Domain, ForwardPath};
use crate::smtp::idna::domain_key;

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
    /// The addresses in `To:` and `Cc:`, read from the whole raw values
    /// (the decoded ones above may be cut: see [`decode_value`]), for
    /// `--user` to match against.
    #[serde(skip)]
    pub header_recipients: Vec<String>,
    /// `From:` as `list` shows it: each address's display name, or the
    /// address when it has none.
    #[serde(skip)]
    pub from_names: String,
    /// `To:` as `list` shows it: the bare addresses.
    #[serde(skip)]
    pub to_addresses: String,
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

/// Longest header value decoded whole. mailparse's decoding of encoded
/// words takes time quadratic in a value's length (it finds each word's
/// neighbours by counting characters from the start): a Subject of 60,000
/// encoded words on one line, 1 MB, took 4-10 s to list, and the server
/// accepts such a message. Past this, a value is cut at a space.
const MAX_DECODED: usize = 16 * 1024;

/// A header value decoded for people: encoded words and UTF-8 (or, failing
/// that, Latin-1) turned into text, folding undone. A value longer than
/// [`MAX_DECODED`] octets is cut and ends in " …".
pub fn decode_value(h: &MailHeader<'_>) -> String {
    let raw = h.get_value_raw();
    let head = match raw.get(..MAX_DECODED) {
        Some(head) if raw.len() > MAX_DECODED => head,
        _ => return h.get_value().trim().to_string(),
    };
    let cut = head
        .iter()
        .rposition(u8::is_ascii_whitespace)
        .unwrap_or(head.len());
    let line = [b"X: ", head.get(..cut).unwrap_or(head)].concat();
    let text = match mailparse::parse_header(&line) {
        Ok((short, _)) => short.get_value(),
        Err(_) => String::from_utf8_lossy(head).into_owned(),
    };
    format!("{} …", text.trim())
}

/// Characters that could steer a terminal (escape sequences, CR, NUL...)
/// become U+FFFD, and so do the bidirectional overrides and isolates
/// that make text read in another order than it is (`report<U+202E>fdp.exe`
/// shows as "report exe.pdf"). With `keep_newlines` (a body), newlines
/// and tabs stay; in a one-line field a tab becomes a space, so that it
/// cannot break the columns of a listing.
pub fn sanitize(s: &str, keep_newlines: bool) -> String {
    s.chars()
        .map(|c| match c {
            '\t' if keep_newlines => c,
            '\t' => ' ',
            '\n' if keep_newlines => c,
            '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}' => '\u{FFFD}',
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
/// obsolete syntax of RFC 5322 §4.5), then `:`. The store asks the same
/// of the data it receives (see `store::Delivery`).
pub(crate) fn is_header_line(line: &[u8]) -> bool {
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
    // Addresses are never encoded words, so the raw values serve, whole:
    // a cut display value must not hide a recipient from `--user`.
    let header_recipients = ["To", "Cc"]
        .iter()
        .flat_map(|name| headers.get_all_headers(name))
        .flat_map(|h| addresses_in(&String::from_utf8_lossy(h.get_value_raw())))
        .collect();
    let date = headers.get_first_header("Date").map(|h| decode_value(h));
    let date_unix = date.as_deref().and_then(parse_date);
    let from_names = headers
        .get_all_headers("From")
        .iter()
        .map(|h| display_names(h))
        .collect::<Vec<_>>()
        .join(", ");
    let to = get("To");
    let to_raw: Vec<String> = headers
        .get_all_headers("To")
        .iter()
        .flat_map(|h| addresses_in(&String::from_utf8_lossy(h.get_value_raw())))
        .collect();
    let to_addresses = if to_raw.is_empty() {
        to.clone()
    } else {
        to_raw.join(", ")
    };
    Ok(Summary {
        date_unix,
        date,
        from: get("From"),
        to,
        cc: get("Cc"),
        subject: get("Subject"),
        message_id: get("Message-ID"),
        envelope_to: envelope_recipients(&headers),
        header_recipients,
        from_names,
        to_addresses,
    })
}

/// The display names of an address-list header (the address where one
/// has none), comma-separated. Read as tokens (`addrparse_header`), so
/// that a comma or `<` inside an encoded word (`=?utf-8?q?Smith=2C_Bob?=`,
/// as mail programs write "Smith, Bob") stays part of its name. A value
/// too long to decode whole, or one that does not parse, is shown as
/// decoded.
fn display_names(h: &MailHeader) -> String {
    let list = (h.get_value_raw().len() <= MAX_DECODED)
        .then(|| mailparse::addrparse_header(h).ok())
        .flatten()
        .filter(|list| !list.is_empty());
    match list {
        Some(list) => list
            .iter()
            .map(|a| match a {
                mailparse::MailAddr::Single(s) => s.display_name.clone().unwrap_or_else(|| s.addr.clone()),
                mailparse::MailAddr::Group(g) => g.group_name.clone(),
            })
            .collect::<Vec<_>>()
            .join(", "),
        None => decode_value(h),
    }
}

/// A `Date:` value as seconds since the epoch, or `None` when it names no
/// date. The RFC 5322 §3.3 form is read here, with its obsolete parts
/// (§4.3: two- and three-digit years, zone names such as `EST`, comments,
/// seconds left out); a date in that form that cannot be (`31 Feb`,
/// `25:61`) is no date. So is C's `asctime` layout (`Wed Nov 25 11:40:00
/// 2026`), which mailparse cannot read. Anything else is left to
/// mailparse's lenient `dateparse`, whose 0 means it found nothing.
pub fn parse_date(value: &str) -> Option<i64> {
    match rfc5322_date(value) {
        Ok(secs) => Some(secs),
        Err(DateShape::Impossible) => None,
        Err(DateShape::Other) => mailparse::dateparse(value).ok().filter(|&secs| secs != 0),
    }
}

/// Why [`rfc5322_date`] gave no time.
#[derive(Debug, PartialEq, Eq)]
enum DateShape {
    /// Laid out as RFC 5322 says, but no such moment (`31 Feb`, `24:00`).
    Impossible,
    /// Not laid out as RFC 5322 says.
    Other,
}

/// `[day-of-week ","] day month year hour ":" minute [":" second] [zone]`,
/// comments and extra white space aside, or C's `asctime` layout; a
/// missing or unknown zone is taken as UTC (RFC 5322 §4.3 reads unknown
/// military zones as `-0000`).
fn rfc5322_date(value: &str) -> Result<i64, DateShape> {
    use DateShape::{Impossible, Other};
    // Comments out (nested ones too), commas as white space.
    let mut text = String::with_capacity(value.len());
    let mut depth = 0u32;
    for c in value.chars() {
        match c {
            '(' => depth += 1,
            ')' if depth > 0 => depth -= 1,
            _ if depth > 0 => {}
            ',' => text.push(' '),
            c => text.push(c),
        }
    }
    let mut words = text.split_whitespace().peekable();
    const DAYS: [&str; 7] = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];
    if words
        .peek()
        .is_some_and(|w| DAYS.iter().any(|d| w.to_ascii_lowercase().starts_with(d)))
    {
        words.next();
    }
    let number = |w: Option<&str>, most: usize| -> Result<(i64, usize), DateShape> {
        let w = w.ok_or(Other)?;
        if w.is_empty() || w.len() > most || !w.bytes().all(|b| b.is_ascii_digit()) {
            return Err(Other);
        }
        Ok((w.parse().map_err(|_| Other)?, w.len()))
    };
    const MONTHS: [&str; 12] = [
        "jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec",
    ];
    let month_of = |w: Option<&str>| -> Result<usize, DateShape> {
        let w = w.ok_or(Other)?.to_ascii_lowercase();
        Ok(MONTHS.iter().position(|m| *m == w).ok_or(Other)? + 1)
    };
    // C's `asctime` layout (`Wed Nov 25 11:40:00 2026`, and `date`'s
    // with a zone before the year): month first, four-digit year last.
    let asctime = words
        .peek()
        .is_some_and(|w| MONTHS.contains(&w.to_ascii_lowercase().as_str()));
    let (day, month, year, clock, zone) = if asctime {
        let month = month_of(words.next())?;
        let (day, _) = number(words.next(), 2)?;
        let clock = words.next().ok_or(Other)?;
        let (zone, year) = match (words.next(), words.next()) {
            (Some(year), None) => (None, year),
            (Some(zone), Some(year)) => (Some(zone), year),
            _ => return Err(Other),
        };
        match number(Some(year), 9)? {
            (year, 4..) => (day, month, year, clock, zone),
            _ => return Err(Other),
        }
    } else {
        let (day, _) = number(words.next(), 2)?;
        let month = month_of(words.next())?;
        let (year, digits) = number(words.next(), 9)?;
        let year = match digits {
            1 => return Err(Other),
            2 if year < 50 => 2000 + year,
            2 | 3 => 1900 + year,
            _ => year,
        };
        let clock = words.next().ok_or(Other)?;
        (day, month, year, clock, words.next())
    };
    let mut clock = clock.split(':');
    let (hour, _) = number(clock.next(), 2)?;
    let (minute, _) = number(clock.next(), 2)?;
    let second = match clock.next() {
        Some(s) => number(Some(s), 2)?.0,
        None => 0,
    };
    if clock.next().is_some() {
        return Err(Other);
    }
    let offset = match zone {
        None => 0,
        Some(zone) => zone_offset(zone)?,
    };
    if words.next().is_some() {
        return Err(Other);
    }
    let days_in_month = match month {
        2 if year % 4 == 0 && (year % 100 != 0 || year % 400 == 0) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    };
    // A leap second (60) is the last second of its minute here: Unix
    // time has no room for it.
    if !(1..=days_in_month).contains(&day) || hour > 23 || minute > 59 || second > 60 {
        return Err(Impossible);
    }
    let days = days_from_civil(year, month as i64, day);
    Ok(days * 86_400 + hour * 3600 + minute * 60 + second.min(59) - offset)
}

/// A zone's offset east of UTC in seconds: `+hhmm`/`-hhmm` (minutes
/// past 59 are no zone: [`DateShape::Impossible`]), or a name (RFC 5322
/// §4.3): the North American ones it lists, UT and GMT; any other
/// alphabetic zone (military letters, `CEST`) is unknown and read as UTC,
/// as the RFC says to treat it as `-0000`.
fn zone_offset(zone: &str) -> Result<i64, DateShape> {
    let bytes = zone.as_bytes();
    if let [sign @ (b'+' | b'-'), digits @ ..] = bytes {
        if digits.len() != 4 || !digits.iter().all(u8::is_ascii_digit) {
            return Err(DateShape::Other);
        }
        let n: i64 = zone
            .get(1..)
            .and_then(|d| d.parse().ok())
            .ok_or(DateShape::Other)?;
        let (hours, minutes) = (n / 100, n % 100);
        if minutes > 59 {
            return Err(DateShape::Impossible);
        }
        let secs = hours * 3600 + minutes * 60;
        return Ok(if *sign == b'-' { -secs } else { secs });
    }
    if zone.is_empty() || !zone.bytes().all(|b| b.is_ascii_alphabetic()) {
        return Err(DateShape::Other);
    }
    let hours = match zone.to_ascii_uppercase().as_str() {
        "EDT" => -4,
        "EST" | "CDT" => -5,
        "CST" | "MDT" => -6,
        "MST" | "PDT" => -7,
        "PST" => -8,
        _ => 0,
    };
    Ok(hours * 3600)
}

/// Days from 1970-01-01 to the given date of the proleptic Gregorian
/// calendar (negative before it): count whole 400-year eras, then the
/// days into the era with the year taken to start in March, so that a
/// leap day falls at its end.
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let year_of_era = year - era * 400;
    let month_from_march = (month + 9) % 12;
    let day_of_year = (153 * month_from_march + 2) / 5 + day - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

/// What marks maildoor's own `Received:` header: ` by HOST (maildoor) with`.
const MARK: &str = " (maildoor) ";

/// The recipients in maildoor's own `Received:` header (the first one
/// that says `(maildoor)`): `for <a@b>` for one recipient, the comment
/// `(envelope recipients: <a@b>, <c@d>)` for several.
pub fn envelope_recipients(headers: &[MailHeader<'_>]) -> Vec<String> {
    let ours = headers
        .get_all_headers("Received")
        .into_iter()
        .map(|h| String::from_utf8_lossy(h.get_value_raw()).replace(['\r', '\n', '\t'], " "))
        .find(|v| v.contains(MARK));
    let Some(value) = ours else {
        return Vec::new();
    };
    // What follows `(maildoor) with <protocol> id <queue id>` says who the
    // message was for; a recipient's own text further on (a quoted local
    // part may hold anything) is never taken for it. The mark is a word of
    // its own: the client's EHLO name before it has no spaces, so its
    // `[x:(maildoor)]` is not the mark.
    let Some((_, after)) = value.split_once(MARK) else {
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
/// practice; a reader errs on the side of showing mail), and a domain
/// name in A-labels, the form the server files it by
/// (`u@bücher.example` is `u@xn--bcher-kva.example`).
pub fn normalize_address(addr: &str) -> String {
    let addr = addr.trim().trim_start_matches('<').trim_end_matches('>').trim();
    match addr.rsplit_once('@') {
        Some((local, domain)) if !domain.starts_with('[') => {
            format!("{}@{}", local.to_lowercase(), domain_key(domain))
        }
        _ => addr.to_lowercase(),
    }
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
            .chain(self.header_recipients.iter().map(String::as_str))
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
    fn dates_in_every_form_rfc_5322_allows() {
        let nov25 = 1_795_606_291; // 2026-11-25 11:31:31 UTC
        for (date, want) in [
            ("Wed, 25 Nov 2026 11:31:31 +0000", Some(nov25)),
            ("Wed,25 Nov 2026 11:31:31 +0000", Some(nov25)),
            ("  wed ,  25  nov  2026  11:31:31  +0000  (UTC) ", Some(nov25)),
            ("25 Nov 2026 06:31:31 -0500", Some(nov25)),
            ("25 Nov 2026 06:31:31 EST", Some(nov25)),
            ("25 Nov 2026 11:31 EST", Some(nov25 - 31 + 5 * 3600)),
            ("Wed, 25 Nov 2026 11:31 EST", Some(nov25 - 31 + 5 * 3600)),
            ("25 Nov 26 11:31:31 GMT", Some(nov25)),
            ("Thu, 01 Jan 1970 00:00:00 +0000", Some(0)),
            ("Wed, 31 Dec 1969 23:59:59 +0000", Some(-1)),
            ("Thu, 01 Jan 1970 01:00:00 +0100", Some(0)),
            ("29 Feb 2024 00:00:00 +0000", Some(1_709_164_800)),
            ("1 Mar 2000 00:00:00 +0000", Some(951_868_800)),
            ("30 Jun 2026 23:59:60 +0000", Some(1_782_863_999)),
            // Laid out right, but no such moment.
            ("31 Feb 2026 10:00:00 +0000", None),
            ("29 Feb 2100 10:00:00 +0000", None),
            ("25 Nov 2026 25:61:61 +0000", None),
            ("25 Nov 2026 24:00:00 +0000", None),
            ("25 Nov 2026 11:31:31 +0099", None),
            // An unknown zone name is UTC (RFC 5322 §4.3: "-0000").
            ("25 Nov 2026 11:31:31 CEST", Some(nov25)),
            ("25 Nov 2026 11:31:31 z", Some(nov25)),
            // C's asctime layout, and date(1)'s with a zone.
            ("Wed Nov 25 11:31:31 2026", Some(nov25)),
            ("Wed Nov 25 06:31:31 EST 2026", Some(nov25)),
            ("Nov 25 11:31:31 2026", Some(nov25)),
            ("Wed Feb 31 11:31:31 2026", None),
            // A one-digit year is not RFC 5322's: left to mailparse,
            // which reads it as 2005, not as the year 5.
            ("1 Jan 5 00:00 +0000", Some(1_104_537_600)),
        ] {
            assert_eq!(parse_date(date), want, "{date}");
        }
    }

    #[test]
    fn list_columns_keep_a_comma_inside_an_encoded_name() {
        let s = summarize(
            b"From: =?utf-8?q?Smith=2C_Bob?= <bob3@example.net>\nTo: =?utf-8?q?Doe=2C_John?= <john@example.test>, carol@example.test\n\n",
        )
        .unwrap();
        assert_eq!(s.from_names, "Smith, Bob");
        assert_eq!(s.to_addresses, "john@example.test, carol@example.test");
        let s = summarize(b"From: =?utf-8?q?Smith_=3Cx=40y=3E?= <bob6@example.net>\nTo: undisclosed\n\n")
            .unwrap();
        assert_eq!(s.from_names, "Smith <x@y>");
        assert_eq!(s.to_addresses, "undisclosed");
        let s = summarize(b"From: =?x?= <a@b>, \"C D\" <c@d>, e@f\n\n").unwrap();
        assert_eq!(s.from_names, "=?x?=, C D, e@f");
    }

    #[test]
    fn a_client_name_that_says_maildoor_is_not_our_mark() {
        let raw = "Return-Path: <a@b>\nReceived: from [x:(maildoor)] ([127.0.0.1]) (port 4000)\n\tby mx.test (maildoor) with ESMTP id <1.M2P3Q4@mx.test>\n\tfor <bob@localhost>;\n\tThu, 01 Jan 1970 00:00:00 +0000\nTo: alice@localhost\n\n";
        assert_eq!(summarize(raw.as_bytes()).unwrap().envelope_to, ["bob@localhost"]);
    }

    #[test]
    fn envelope_recipients_in_the_current_received_layout() {
        let one = "Return-Path: <a@b>\nReceived: from c.example ([IPv6:::1]) (port 4000)\n\t(using TLSv1.3 with cipher TLS13_AES_256_GCM_SHA384)\n\tby mx.test (maildoor) with ESMTPS id <1.M2P3Q4@mx.test>\n\tfor <\"x y\"@localhost>;\n\tThu, 01 Jan 1970 00:00:00 +0000\n\n";
        assert_eq!(
            summarize(one.as_bytes()).unwrap().envelope_to,
            ["\"x y\"@localhost"]
        );
        let many = "Return-Path: <a@b>\nReceived: from c.example ([127.0.0.1]) (port 4000)\n\tby mx.test (maildoor) with ESMTP id <1.M2P3Q4@mx.test>\n\t(envelope recipients: <a@localhost>,\n\t <\"b\\)\"@localhost>);\n\tThu, 01 Jan 1970 00:00:00 +0000\n\n";
        assert_eq!(
            summarize(many.as_bytes()).unwrap().envelope_to,
            ["a@localhost", "\"b)\"@localhost"]
        );
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
        // One form for an internationalized domain, whichever was written.
        assert_eq!(normalize_user("Jö@Bücher.example"), "jö@xn--bcher-kva.example");
        assert_eq!(
            normalize_address("<u@XN--BCHER-KVA.example>"),
            "u@xn--bcher-kva.example"
        );
        assert_eq!(
            normalize_address("u@ΑΣ.example"),
            normalize_address("U@ασ.Example")
        );
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
        // One recipient: the for clause names the first domain.
        let one = "Received: from x ([::1]:1)\n\tby h (maildoor) with SMTP id 1.M2P3Q4\n\tfor <postmaster@example.org>;\n\tThu, 01 Jan 1970 00:00:00 +0000\n\n";
        let s = summarize(one.as_bytes()).unwrap();
        for user in ["postmaster", "postmaster@example.org", "<PostMaster@Example.ORG>"] {
            assert!(UserFilter::new(user, Some("Example.org")).accepts(&s), "{user}");
        }
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
    fn a_recipient_past_the_cut_of_a_long_to_header_is_still_found() {
        let many: Vec<String> = (0..2000)
            .map(|i| format!("=?UTF-8?B?w6k=?= <u{i}@b.test>"))
            .collect();
        let raw = format!("To: {}, bob@x.test\n\n", many.join(", "));
        let s = summarize(raw.as_bytes()).unwrap();
        assert!(s.to.ends_with(" …"), "the display value is not cut");
        assert!(s.is_for("bob@x.test"));
    }

    #[test]
    fn a_huge_header_value_is_cut_not_decoded_for_seconds() {
        let words = "=?UTF-8?B?w6k=?= ".repeat(60_000);
        let raw = format!("Subject: {words}\n\n");
        let (h, _) = mailparse::parse_header(raw.as_bytes()).unwrap();
        let v = decode_value(&h);
        assert!(
            v.starts_with("ééé") && v.ends_with("é …"),
            "{}",
            v.get(..20).unwrap_or(&v)
        );
        assert!(v.chars().filter(|&c| c == 'é').count() < 1100, "{}", v.len());
        let (small, _) = mailparse::parse_header(b"Subject: =?UTF-8?B?w6k=?= x\n").unwrap();
        assert_eq!(decode_value(&small), "é x");
    }

    #[test]
    fn sanitizes_terminal_controls() {
        assert_eq!(
            sanitize("a\x1b[2Jb\tc\nd\r", false),
            "a\u{FFFD}[2Jb c\u{FFFD}d\u{FFFD}"
        );
        assert_eq!(sanitize("x\ny\tz", true), "x\ny\tz");
        assert_eq!(
            sanitize("report \u{202E}fdp.exe", false),
            "report \u{FFFD}fdp.exe"
        );
        assert_eq!(sanitize("\u{2067}x\u{2069}", true), "\u{FFFD}x\u{FFFD}");
    }
}
