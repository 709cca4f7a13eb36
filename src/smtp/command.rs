//! The command parser: one SMTP command line in, one typed [`Command`] out.
//!
//! Built with `nom` over the line's text (without its CRLF). Grammar from
//! RFC 5321 §4.1 (commands, paths, mailboxes, address literals), RFC 1870
//! (SIZE), RFC 6152 (BODY=8BITMIME) and RFC 6531 (SMTPUTF8 and UTF-8 in
//! addresses). The parser is pure: it never looks at session state; whether
//! a command is allowed *now* is the state machine's business.

use std::fmt;
use std::net::{Ipv4Addr, Ipv6Addr};

use nom::branch::alt;
use nom::bytes::complete::{tag, tag_no_case, take_while1};
use nom::character::complete::{char, space0, space1};
use nom::combinator::{all_consuming, map, opt, recognize, verify};
use nom::multi::{many0, separated_list1};
use nom::sequence::{delimited, preceded, tuple};
use nom::IResult;

use super::idna::domain_key;
use super::reply::{codes, Reply};

/// A domain as it appears after `@` or as the EHLO argument (RFC 5321 §4.1.2).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Domain {
    /// A host name such as `mail.example.org` (U-labels allowed, RFC 6531).
    Name(String),
    /// An address literal such as `[127.0.0.1]` or `[IPv6:::1]`.
    Literal(AddressLiteral),
}

/// The contents of an address literal (RFC 5321 §4.1.3).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum AddressLiteral {
    /// `[192.0.2.1]`
    V4(Ipv4Addr),
    /// `[IPv6:2001:db8::1]`
    V6(Ipv6Addr),
    /// `[tag:content]`, a general address literal.
    General {
        /// The standardized tag before the colon.
        tag: String,
        /// What follows the colon.
        content: String,
    },
}

/// A mailbox `local-part@domain` (RFC 5321 §4.1.2). `local` holds the
/// local part's meaning: quotes and backslash escapes removed.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Mailbox {
    /// The local part, unquoted.
    pub local: String,
    /// The domain.
    pub domain: Domain,
}

/// The MAIL FROM argument: a mailbox or the null path `<>` used by bounces.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReversePath {
    /// `<>` (RFC 5321 §4.5.5).
    Null,
    /// `<mailbox>`
    Mailbox(Mailbox),
}

/// The RCPT TO argument: a mailbox, or `<postmaster>` with no domain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ForwardPath {
    /// `<Postmaster>` (case-insensitive, RFC 5321 §4.1.1.3).
    Postmaster,
    /// `<mailbox>`
    Mailbox(Mailbox),
}

/// The BODY parameter of MAIL (RFC 6152).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Body {
    /// `BODY=7BIT`
    SevenBit,
    /// `BODY=8BITMIME`
    EightBitMime,
}

/// The parameters of MAIL FROM that maildoor understands.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MailParams {
    /// `SIZE=n`, the client's estimate of the message size (RFC 1870).
    pub size: Option<u64>,
    /// `BODY=7BIT|8BITMIME` (RFC 6152).
    pub body: Option<Body>,
    /// `SMTPUTF8` (RFC 6531 §3.4).
    pub smtputf8: bool,
}

/// One parsed SMTP command (RFC 5321 §4.1.1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// `EHLO domain` (extended hello).
    Ehlo(Domain),
    /// `HELO domain`.
    Helo(Domain),
    /// `MAIL FROM:<path> [params]`.
    Mail {
        /// The reverse path.
        from: ReversePath,
        /// Its parameters.
        params: MailParams,
    },
    /// `RCPT TO:<path>`.
    Rcpt {
        /// The forward path.
        to: ForwardPath,
    },
    /// `DATA`.
    Data,
    /// `RSET`.
    Rset,
    /// `NOOP [string]`.
    Noop,
    /// `QUIT`.
    Quit,
    /// `VRFY string`.
    Vrfy(String),
    /// `EXPN string`.
    Expn(String),
    /// `HELP [string]`.
    Help(Option<String>),
    /// `STARTTLS` (RFC 3207).
    StartTls,
}

/// Why a command line was refused; each maps to one reply.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    /// The verb is not one we know: 500 5.5.2.
    #[error("command unrecognized")]
    Unknown,
    /// A known verb with bad arguments: 501 5.5.4.
    #[error("syntax error: {0}")]
    Syntax(&'static str),
    /// A MAIL or RCPT parameter we do not support: 555 5.5.4.
    #[error("unsupported parameter {0}")]
    UnknownParam(String),
    /// MAIL FROM or RCPT TO with a malformed address: 501 5.1.7 for the
    /// sender, 501 5.1.3 for a recipient (RFC 3463).
    #[error("bad address")]
    BadAddress {
        /// True for MAIL FROM.
        sender: bool,
    },
    /// A verb of SMTP or one of its extensions that maildoor does not
    /// offer (TURN, ETRN, AUTH, BDAT...): 502 5.5.1 (RFC 5321 §4.2.4).
    #[error("command not implemented")]
    NotImplemented,
}

impl ParseError {
    /// The reply this error earns (RFC 5321 §4.2.2, RFC 3463).
    pub fn reply(&self) -> Reply {
        match self {
            ParseError::Unknown => Reply::new(500, codes::UNKNOWN, "Error: command not recognized"),
            ParseError::Syntax(why) => Reply::new(501, codes::BAD_ARGS, format!("Syntax error: {why}")),
            ParseError::UnknownParam(p) => Reply::new(
                555,
                codes::BAD_ARGS,
                format!("Unsupported parameter {}", sanitize(p)),
            ),
            ParseError::BadAddress { sender: true } => {
                Reply::new(501, codes::BAD_SENDER, "Syntax error: bad sender address")
            }
            ParseError::BadAddress { sender: false } => {
                Reply::new(501, codes::BAD_ADDRESS, "Syntax error: bad recipient address")
            }
            ParseError::NotImplemented => {
                Reply::new(502, codes::BAD_SEQUENCE, "Error: command not implemented")
            }
        }
    }
}

/// Keeps client text that is echoed in a reply short and printable.
fn sanitize(s: &str) -> String {
    s.chars().filter(|c| !c.is_control()).take(64).collect::<String>()
}

/// Parses one command line. `line` excludes the line ending.
pub fn parse(line: &[u8]) -> Result<Command, ParseError> {
    // NOOP's argument, if any, is ignored (RFC 5321 §4.1.1.9), even when
    // it is not UTF-8; control characters (a bare CR) are still refused.
    if let Some(arg) = line
        .get(..4)
        .filter(|v| v.eq_ignore_ascii_case(b"NOOP"))
        .and_then(|_| line.get(4..))
        .filter(|arg| arg.first().is_none_or(|b| matches!(b, b' ' | b'\t' | b'\r')))
    {
        let arg = arg.trim_ascii_end();
        return if arg.iter().any(|&b| b == 0x7f || (b < 0x20 && b != b'\t')) {
            Err(ParseError::Syntax("control characters in command"))
        } else {
            Ok(Command::Noop)
        };
    }
    let line = std::str::from_utf8(line).map_err(|_| ParseError::Syntax("invalid UTF-8"))?;
    // Trailing CRs are line-ending debris; a CR anywhere else is a bare CR,
    // which RFC 5321 §2.3.8 forbids in commands.
    let line = line.trim_end_matches([' ', '\t', '\r']);
    if line.contains(|c: char| c == '\0' || (c.is_control() && c != '\t')) {
        return Err(ParseError::Syntax("control characters in command"));
    }
    let verb_end = line.find([' ', '\t']).unwrap_or(line.len());
    let (verb, rest) = line.split_at(verb_end);
    let verb = verb.to_ascii_uppercase();
    match verb.as_str() {
        "EHLO" => Ok(Command::Ehlo(hello_arg(rest)?)),
        "HELO" => Ok(Command::Helo(hello_arg(rest)?)),
        "MAIL" => parse_mail(rest),
        "RCPT" => parse_rcpt(rest),
        "DATA" => no_args(rest, Command::Data),
        "RSET" => no_args(rest, Command::Rset),
        "QUIT" => no_args(rest, Command::Quit),
        "STARTTLS" => no_args(rest, Command::StartTls),
        "NOOP" => Ok(Command::Noop),
        "VRFY" => Ok(Command::Vrfy(required_text(rest)?)),
        "EXPN" => Ok(Command::Expn(required_text(rest)?)),
        "HELP" => {
            let arg = rest.trim();
            Ok(Command::Help((!arg.is_empty()).then(|| arg.to_string())))
        }
        // RFC 821's mail-to-terminal verbs and TURN, ETRN (RFC 1985),
        // ATRN (RFC 2645), AUTH (RFC 4954), BDAT (RFC 3030): known, not
        // offered.
        "SEND" | "SOML" | "SAML" | "TURN" | "ETRN" | "ATRN" | "AUTH" | "BDAT" => {
            Err(ParseError::NotImplemented)
        }
        _ => Err(ParseError::Unknown),
    }
}

fn no_args(rest: &str, cmd: Command) -> Result<Command, ParseError> {
    if rest.trim().is_empty() {
        Ok(cmd)
    } else {
        Err(ParseError::Syntax("no arguments allowed"))
    }
}

fn required_text(rest: &str) -> Result<String, ParseError> {
    let arg = rest.trim();
    if arg.is_empty() {
        Err(ParseError::Syntax("argument required"))
    } else {
        Ok(arg.to_string())
    }
}

fn hello_arg(rest: &str) -> Result<Domain, ParseError> {
    let arg = rest.trim_start_matches([' ', '\t']);
    if arg.is_empty() {
        return Err(ParseError::Syntax("hostname required"));
    }
    let arg = arg.strip_suffix('.').unwrap_or(arg);
    all_consuming(domain_or_literal)(arg)
        .map(|(_, d)| d)
        .map_err(|_| ParseError::Syntax("invalid hostname"))
}

fn parse_mail(rest: &str) -> Result<Command, ParseError> {
    let path = after_keyword(rest, "FROM:").ok_or(ParseError::Syntax("expected MAIL FROM:<address>"))?;
    let (params, from) = reverse_path(path).map_err(|_| ParseError::BadAddress { sender: true })?;
    let params = mail_params(&split_params(params)?)?;
    Ok(Command::Mail { from, params })
}

fn parse_rcpt(rest: &str) -> Result<Command, ParseError> {
    let path = after_keyword(rest, "TO:").ok_or(ParseError::Syntax("expected RCPT TO:<address>"))?;
    let (params, to) = forward_path(path).map_err(|_| ParseError::BadAddress { sender: false })?;
    if let Some((key, _)) = split_params(params)?.into_iter().next() {
        return Err(ParseError::UnknownParam(key.to_string()));
    }
    Ok(Command::Rcpt { to })
}

/// What follows ` FROM:` / ` TO:`: one space before the keyword (RFC
/// 5321), optional spaces after the colon (a common client habit,
/// accepted).
fn after_keyword<'a>(rest: &'a str, keyword: &'static str) -> Option<&'a str> {
    let clause: IResult<&'a str, _> = tuple((space1, tag_no_case(keyword), space0))(rest);
    clause.ok().map(|(path, _)| path)
}

/// Splits the text after a path into `keyword[=value]` pairs (RFC 5321 §4.1.2 esmtp-param).
fn split_params(rest: &str) -> Result<Vec<(&str, Option<&str>)>, ParseError> {
    if rest.is_empty() {
        return Ok(Vec::new());
    }
    if !rest.starts_with([' ', '\t']) {
        return Err(ParseError::Syntax("junk after address"));
    }
    rest.split([' ', '\t'])
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (key, value) = match p.split_once('=') {
                Some((k, v)) => (k, Some(v)),
                None => (p, None),
            };
            let key_ok = key.starts_with(|c: char| c.is_ascii_alphanumeric())
                && key.chars().all(|c| c.is_ascii_alphanumeric() || c == '-');
            let value_ok =
                value.is_none_or(|v| !v.is_empty() && v.chars().all(|c| c > ' ' && c != '=' && c != '\x7f'));
            if key_ok && value_ok {
                Ok((key, value))
            } else {
                Err(ParseError::Syntax("malformed parameter"))
            }
        })
        .collect()
}

/// MAIL's parameters. A parameter given twice with the same meaning is
/// taken once (Python's smtplib repeats SMTPUTF8 when a caller also asks
/// for it); twice with different values, it is refused.
fn mail_params(raw: &[(&str, Option<&str>)]) -> Result<MailParams, ParseError> {
    fn once<T: PartialEq>(slot: &mut Option<T>, value: T) -> Result<(), ParseError> {
        match slot {
            Some(old) if *old != value => Err(ParseError::Syntax("conflicting repeated parameter")),
            _ => {
                *slot = Some(value);
                Ok(())
            }
        }
    }
    let mut params = MailParams::default();
    for &(key, value) in raw {
        match (key.to_ascii_uppercase().as_str(), value) {
            ("SIZE", Some(v)) => {
                if v.len() > 20 || !v.bytes().all(|b| b.is_ascii_digit()) {
                    return Err(ParseError::Syntax("SIZE needs a number"));
                }
                // More than u64::MAX is certainly too big; saturate so the
                // state machine answers 552 rather than 501.
                once(&mut params.size, v.parse::<u64>().unwrap_or(u64::MAX))?;
            }
            ("BODY", Some(v)) => {
                let body = match v.to_ascii_uppercase().as_str() {
                    "7BIT" => Body::SevenBit,
                    "8BITMIME" => Body::EightBitMime,
                    _ => return Err(ParseError::Syntax("BODY must be 7BIT or 8BITMIME")),
                };
                once(&mut params.body, body)?;
            }
            ("SMTPUTF8", None) => params.smtputf8 = true,
            ("SIZE" | "BODY", None) => return Err(ParseError::Syntax("parameter needs a value")),
            ("SMTPUTF8", Some(_)) => return Err(ParseError::Syntax("SMTPUTF8 takes no value")),
            _ => return Err(ParseError::UnknownParam(key.to_string())),
        }
    }
    Ok(params)
}

fn reverse_path(i: &str) -> IResult<&str, ReversePath> {
    alt((
        map(tag("<>"), |_| ReversePath::Null),
        map(path, ReversePath::Mailbox),
    ))(i)
}

fn forward_path(i: &str) -> IResult<&str, ForwardPath> {
    alt((
        map(delimited(char('<'), tag_no_case("postmaster"), char('>')), |_| {
            ForwardPath::Postmaster
        }),
        map(path, ForwardPath::Mailbox),
    ))(i)
}

/// `"<" [ A-d-l ":" ] Mailbox ">"`; the source route is parsed and dropped
/// (RFC 5321 §4.1.2 and Appendix C).
fn path(i: &str) -> IResult<&str, Mailbox> {
    let adl = separated_list1(char(','), preceded(char('@'), domain_or_literal));
    delimited(
        char('<'),
        preceded(opt(tuple((adl, char(':')))), mailbox),
        char('>'),
    )(i)
}

fn mailbox(i: &str) -> IResult<&str, Mailbox> {
    map(
        tuple((local_part, char('@'), domain_or_literal)),
        |(local, _, domain)| Mailbox { local, domain },
    )(i)
}

/// RFC 5321's atext, with RFC 6531's UTF-8: any non-ASCII character that
/// is visible (see [`is_visible`]; a U+2028 or U+202E in a local part
/// would go raw into our trace headers and logs).
fn is_atext(c: char) -> bool {
    c.is_ascii_alphanumeric() || "!#$%&'*+-/=?^_`{|}~".contains(c) || !c.is_ascii() && is_visible(c)
}

fn local_part(i: &str) -> IResult<&str, String> {
    alt((
        map(
            recognize(separated_list1(char('.'), take_while1(is_atext))),
            str::to_string,
        ),
        quoted_string,
    ))(i)
}

/// `DQUOTE *(qtextSMTP / quoted-pairSMTP) DQUOTE`, returned unquoted.
fn quoted_string(i: &str) -> IResult<&str, String> {
    let qtext = take_while1(|c: char| {
        c >= ' ' && c != '"' && c != '\\' && c != '\x7f' && (c.is_ascii() || is_visible(c))
    });
    let pair = preceded(
        char('\\'),
        nom::character::complete::satisfy(|c| (' '..='~').contains(&c)),
    );
    delimited(
        char('"'),
        map(
            many0(alt((
                qtext,
                map(recognize(pair), |s: &str| s.get(1..).unwrap_or_default()),
            ))),
            |parts| parts.concat(),
        ),
        char('"'),
    )(i)
}

/// True for a host name as MAIL and RCPT take one (U-labels allowed):
/// the check `domains` and `hostname` are held to, so a configured name
/// is one a client can write.
pub fn is_domain_name(name: &str) -> bool {
    name_fits(name)
        && name
            .split('.')
            .all(|l| !l.is_empty() && l.chars().all(is_label_char))
}

fn is_label_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '-' || c == '_' || !c.is_ascii() && is_visible(c)
}

/// A non-ASCII character that can be part of a name: not a control, not
/// white space or a line/paragraph separator (U+2028 would break a
/// `Received:` line for some readers), not an invisible format character.
fn is_visible(c: char) -> bool {
    !c.is_control()
        && !c.is_whitespace()
        && !matches!(
            c,
            '\u{ad}'
                | '\u{61c}'
                | '\u{115f}'
                | '\u{1160}'
                | '\u{180e}'
                | '\u{200b}'..='\u{200f}'
                | '\u{202a}'..='\u{202e}'
                | '\u{2060}'..='\u{206f}'
                | '\u{3164}'
                | '\u{feff}'
                | '\u{ffa0}'
                | '\u{fff9}'..='\u{fffb}'
                | '\u{e0000}'..='\u{e007f}'
        )
}

fn domain_or_literal(i: &str) -> IResult<&str, Domain> {
    alt((
        map(address_literal, Domain::Literal),
        map(
            verify(
                recognize(separated_list1(char('.'), take_while1(is_label_char))),
                name_fits,
            ),
            |d: &str| Domain::Name(d.to_string()),
        ),
    ))(i)
}

/// A domain name within the limits of RFC 5321 §4.5.3.1.2 (255 octets)
/// and of DNS (63 octets per ASCII label; a UTF-8 label is not held to
/// its own octet count, since the A-label it stands for is often shorter).
fn name_fits(name: &str) -> bool {
    name.len() <= 255 && name.split('.').all(|l| l.len() <= 63 || !l.is_ascii())
}

fn address_literal(i: &str) -> IResult<&str, AddressLiteral> {
    let (rest, inner) = delimited(
        char('['),
        // dcontent (RFC 5321 §4.1.3): printable ASCII but `[`, `]`, `\\`;
        // SMTPUTF8 leaves address literals ASCII.
        take_while1(|c: char| c.is_ascii_graphic() && c != '[' && c != ']' && c != '\\'),
        char(']'),
    )(i)?;
    let fail = || nom::Err::Error(nom::error::Error::new(i, nom::error::ErrorKind::Verify));
    let lit = if let Some(v6) = inner
        .get(..5)
        .filter(|p| p.eq_ignore_ascii_case("IPv6:"))
        .and_then(|_| inner.get(5..))
    {
        AddressLiteral::V6(ipv6(v6).ok_or_else(fail)?)
    } else if let Some(v4) = dotted_quad(inner) {
        AddressLiteral::V4(v4)
    } else {
        let (tag, content) = inner.split_once(':').ok_or_else(fail)?;
        let tag_ok = !tag.is_empty()
            && tag.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
            && !tag.ends_with('-');
        if !tag_ok || content.is_empty() {
            return Err(fail());
        }
        AddressLiteral::General {
            tag: tag.to_string(),
            content: content.to_string(),
        }
    };
    Ok((rest, lit))
}

/// An IPv6 address literal's inside. Its IPv4 tail (`::ffff:127.0.0.1`)
/// is an IPv4 literal of RFC 5321 §4.1.3, leading zeros allowed, which
/// the standard library's parser refuses: that tail is read by
/// [`dotted_quad`] and written back plain first.
fn ipv6(s: &str) -> Option<Ipv6Addr> {
    match s.rsplit_once(':') {
        Some((head, tail)) if tail.contains('.') => format!("{head}:{}", dotted_quad(tail)?).parse().ok(),
        _ => s.parse().ok(),
    }
}

/// An IPv4 address literal's inside, as RFC 5321 §4.1.3 writes it: four
/// `Snum`s of one to three decimal digits up to 255, leading zeros
/// allowed (`127.000.000.001`), unlike the standard library's parser.
fn dotted_quad(s: &str) -> Option<Ipv4Addr> {
    let mut octets = [0u8; 4];
    let mut parts = s.split('.');
    for octet in &mut octets {
        let part = parts.next()?;
        if part.is_empty() || part.len() > 3 || !part.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        *octet = part.parse().ok()?;
    }
    parts.next().is_none().then(|| Ipv4Addr::from(octets))
}

impl Domain {
    /// True for a host name that is `name` in either form and any case
    /// (their [`domain_key`]s are equal): `xn--bcher-kva.example` is
    /// `Bücher.example`.
    pub fn is_name(&self, name: &str) -> bool {
        matches!(self, Domain::Name(n) if domain_key(n) == domain_key(name))
    }

    /// True when the domain or literal has any non-ASCII character.
    pub fn is_ascii(&self) -> bool {
        match self {
            Domain::Name(n) => n.is_ascii(),
            Domain::Literal(_) => true,
        }
    }
}

impl Mailbox {
    /// True when local part and domain are pure ASCII (RFC 6531 needs
    /// SMTPUTF8 otherwise).
    pub fn is_ascii(&self) -> bool {
        self.local.is_ascii() && self.domain.is_ascii()
    }
}

impl fmt::Display for AddressLiteral {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AddressLiteral::V4(a) => write!(f, "[{a}]"),
            AddressLiteral::V6(a) => write!(f, "[IPv6:{a}]"),
            AddressLiteral::General { tag, content } => write!(f, "[{tag}:{content}]"),
        }
    }
}

impl fmt::Display for Domain {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Domain::Name(n) => f.write_str(n),
            Domain::Literal(l) => l.fmt(f),
        }
    }
}

impl fmt::Display for Mailbox {
    /// Writes the mailbox in its canonical form: the local part as a
    /// dot-string when it is one, quoted otherwise.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let dot_string = !self.local.is_empty()
            && self
                .local
                .split('.')
                .all(|atom| !atom.is_empty() && atom.chars().all(is_atext));
        if dot_string {
            f.write_str(&self.local)?;
        } else {
            f.write_str("\"")?;
            for c in self.local.chars() {
                if c == '"' || c == '\\' {
                    f.write_str("\\")?;
                }
                write!(f, "{c}")?;
            }
            f.write_str("\"")?;
        }
        write!(f, "@{}", self.domain)
    }
}

impl fmt::Display for ReversePath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ReversePath::Null => f.write_str("<>"),
            ReversePath::Mailbox(m) => write!(f, "<{m}>"),
        }
    }
}

impl fmt::Display for ForwardPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ForwardPath::Postmaster => f.write_str("<postmaster>"),
            ForwardPath::Mailbox(m) => write!(f, "<{m}>"),
        }
    }
}

impl fmt::Display for Command {
    /// The command's wire form (without CRLF); parsing it gives the same command.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Command::Ehlo(d) => write!(f, "EHLO {d}"),
            Command::Helo(d) => write!(f, "HELO {d}"),
            Command::Mail { from, params } => {
                write!(f, "MAIL FROM:{from}")?;
                if let Some(size) = params.size {
                    write!(f, " SIZE={size}")?;
                }
                match params.body {
                    Some(Body::SevenBit) => f.write_str(" BODY=7BIT")?,
                    Some(Body::EightBitMime) => f.write_str(" BODY=8BITMIME")?,
                    None => {}
                }
                if params.smtputf8 {
                    f.write_str(" SMTPUTF8")?;
                }
                Ok(())
            }
            Command::Rcpt { to } => write!(f, "RCPT TO:{to}"),
            Command::Data => f.write_str("DATA"),
            Command::Rset => f.write_str("RSET"),
            Command::Noop => f.write_str("NOOP"),
            Command::Quit => f.write_str("QUIT"),
            Command::Vrfy(s) => write!(f, "VRFY {s}"),
            Command::Expn(s) => write!(f, "EXPN {s}"),
            Command::Help(None) => f.write_str("HELP"),
            Command::Help(Some(s)) => write!(f, "HELP {s}"),
            Command::StartTls => f.write_str("STARTTLS"),
        }
    }
}

#[cfg(test)]
#[path = "command_tests.rs"]
mod tests;
