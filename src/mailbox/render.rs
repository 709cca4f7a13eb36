//! `maildoor mailbox show`: a message made readable. The main headers, the
//! text/plain part with its transfer encoding (quoted-printable, base64)
//! and charset undone, and a list of attachments by name, type and size.

use std::io::{self, Write};

use mailparse::body::Body;
use mailparse::{DispositionType, MailHeaderMap, ParsedMail};

use super::message::{check, decode_value, sanitize, Invalid};

/// The headers `show` prints, in this order, when present.
pub const MAIN_HEADERS: [&str; 5] = ["Date", "From", "To", "Cc", "Subject"];

/// A MIME part that is not the text being shown.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attachment {
    /// File name (`filename` of Content-Disposition or `name` of
    /// Content-Type), decoded; `None` when the part has neither.
    pub name: Option<String>,
    /// MIME type, lower case.
    pub mime: String,
    /// Size in octets after the transfer encoding is undone.
    pub size: usize,
}

/// A message taken apart for reading.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Readable {
    /// (name, decoded value) of the main headers present.
    pub headers: Vec<(String, String)>,
    /// The text/plain body, decoded; `None` when the message has none.
    pub text: Option<String>,
    /// Why the text's transfer encoding could not be undone, when it could
    /// not: `text` is then that part's body as stored.
    pub undecoded: Option<String>,
    /// `text` is the message's HTML made plain (it has no text/plain).
    pub from_html: bool,
    /// Everything else worth naming.
    pub attachments: Vec<Attachment>,
}

fn parse(raw: &[u8]) -> Result<ParsedMail<'_>, Invalid> {
    check(raw)?;
    // mailparse takes multiparts apart recursively, each level scanning
    // the rest of the message again: a sender's 50,000 nested multiparts
    // (2.8 MB) overflowed the stack after seconds of work. Every part
    // starts with its own header, so counting `Content-Type:` lines bounds
    // the depth and the work.
    let types = raw
        .split(|&b| b == b'\n')
        .filter(|line| {
            line.get(..13)
                .is_some_and(|h| h.eq_ignore_ascii_case(b"content-type:"))
        })
        .count();
    if types > MAX_PARTS {
        return Err(Invalid::Parse(format!(
            "more than {MAX_PARTS} MIME parts (Content-Type lines: {types}); --raw shows it as stored"
        )));
    }
    mailparse::parse_mail(raw).map_err(|e| Invalid::Parse(e.to_string()))
}

/// Most `Content-Type:` lines a message may have for `show` to take it
/// apart (see [`parse`]).
const MAX_PARTS: usize = 500;

/// True for parts a reader would save rather than read inline.
fn is_attachment(part: &ParsedMail<'_>) -> bool {
    let disp = part.get_content_disposition();
    disp.disposition == DispositionType::Attachment || disp.params.contains_key("filename")
}

fn part_name(part: &ParsedMail<'_>) -> Option<String> {
    params_of(part, "Content-Disposition")
        .remove("filename")
        .or_else(|| params_of(part, "Content-Type").remove("name"))
        .map(|n| decode_words(&n))
}

/// Stands for a `;` inside a quoted string while mailparse reads the
/// parameters (a private-use character, unlikely in a header).
const QUOTED_SEMICOLON: char = '\u{E000}';

/// The parameters of a part's `header` (`Content-Type`,
/// `Content-Disposition`), names lower-cased, RFC 2231 continuations and
/// charsets decoded by mailparse, but quoted strings kept whole: mailparse
/// cuts parameters at every `;`, even inside quotes (`filename="a;b.pdf"`
/// would become `"a`). The quoted `;` are hidden from it and put back, and
/// quoted pairs (`\"`) unescaped before it reads them.
fn params_of(part: &ParsedMail<'_>, header: &str) -> std::collections::BTreeMap<String, String> {
    let Some(value) = part.headers.get_first_value(header) else {
        return std::collections::BTreeMap::new();
    };
    if value.contains(QUOTED_SEMICOLON) {
        return mailparse::parse_content_disposition(&value).params;
    }
    mailparse::parse_content_disposition(&hide_quoted_semicolons(&value))
        .params
        .into_iter()
        .map(|(k, v)| (k, v.replace(QUOTED_SEMICOLON, ";")))
        .collect()
}

/// `value` with each `;` inside a quoted string replaced by
/// [`QUOTED_SEMICOLON`], and each quoted pair (RFC 5322 §3.2.1: `\"`,
/// `\\`) by the character it stands for. mailparse only strips a value's
/// outer quotes, so a `"` left inside does no harm.
fn hide_quoted_semicolons(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    let (mut quoted, mut escaped) = (false, false);
    for c in value.chars() {
        match c {
            _ if escaped => {
                escaped = false;
                out.push(if c == ';' { QUOTED_SEMICOLON } else { c });
            }
            '\\' if quoted => escaped = true,
            '"' => {
                quoted = !quoted;
                out.push(c);
            }
            ';' if quoted => out.push(QUOTED_SEMICOLON),
            c => out.push(c),
        }
    }
    out
}

/// The names IANA registers for US-ASCII (with `csascii`). encoding_rs
/// reads the WHATWG ones (`us-ascii`, `ascii`, `ansi_x3.4-1968`) as
/// windows-1252, and the others not at all.
const ASCII_LABELS: [&str; 11] = [
    "us-ascii",
    "ascii",
    "ansi_x3.4-1968",
    "ansi_x3.4-1986",
    "iso-ir-6",
    "iso_646.irv:1991",
    "iso646-us",
    "us",
    "ibm367",
    "cp367",
    "csascii",
];

/// True when a part names no charset, names US-ASCII, or names one that
/// no decoder knows (`x-unknown`): its bytes say more than its label.
fn declares_ascii(part: &ParsedMail<'_>) -> bool {
    part.ctype.params.get("charset").is_none_or(|c| {
        let label = c.trim().to_ascii_lowercase();
        ASCII_LABELS.contains(&label.as_str()) || charset::Charset::for_label(label.as_bytes()).is_none()
    })
}

/// How many octets at the end of a part's decoded body `decoded` are the
/// line break before the next boundary: in a multipart message that break
/// belongs to the boundary (RFC 2046 §5.1.1), but mailparse leaves it in
/// the part, where decoding quoted-printable turns it into CRLF. Base64
/// decoding drops it by itself.
fn boundary_break(part: &ParsedMail<'_>, multipart: bool, decoded: &[u8]) -> usize {
    if !multipart || matches!(part.get_body_encoded(), Body::Base64(_)) {
        0
    } else if decoded.ends_with(b"\r\n") {
        2
    } else {
        usize::from(decoded.ends_with(b"\n"))
    }
}

/// A part's body exactly as stored, transfer encoding not undone.
fn stored_body<'a>(part: &'a ParsedMail<'a>) -> &'a [u8] {
    match part.get_body_encoded() {
        Body::Base64(b) | Body::QuotedPrintable(b) => b.get_raw(),
        Body::SevenBit(b) | Body::EightBit(b) => b.get_raw(),
        Body::Binary(b) => b.get_raw(),
    }
}

/// The text of a part: transfer encoding undone, then the charset. Text
/// that names no charset (or US-ASCII, or one no decoder knows) but is
/// not ASCII is read as UTF-8 when it is valid UTF-8, as swaks and many
/// scripts send it and as mblaze reads it; otherwise the declared charset
/// applies (mailparse reads US-ASCII as windows-1252). When the transfer
/// encoding cannot be undone, the part's own body as stored, and why.
fn part_text(part: &ParsedMail<'_>) -> (String, Option<String>) {
    let decoded = part.get_body_raw().and_then(|bytes| {
        if declares_ascii(part) && !bytes.is_ascii() {
            if let Ok(utf8) = String::from_utf8(bytes) {
                return Ok(utf8);
            }
        }
        part.get_body()
    });
    // Base64 that a strict decoder refuses (its `=` padding left off, as
    // some senders do) is still read: the charset then as declared.
    let decoded = decoded.or_else(|why| match lenient_base64(part) {
        Some(bytes) => Ok(match std::str::from_utf8(&bytes) {
            Ok(utf8) if declares_ascii(part) => utf8.to_string(),
            _ => decode_charset(&part.ctype.charset, &bytes),
        }),
        None => Err(why),
    });
    match decoded {
        Ok(text) => (text, None),
        Err(why) => (
            String::from_utf8_lossy(stored_body(part)).into_owned(),
            Some(why.to_string()),
        ),
    }
}

/// A base64 part's bytes, read leniently: up to the first `=`, padding
/// not needed, white space anywhere. `None` for a part that is not
/// base64, or whose body leaves bits that make no whole octet pattern
/// (a single stray letter at the end).
fn lenient_base64(part: &ParsedMail<'_>) -> Option<Vec<u8>> {
    let Body::Base64(body) = part.get_body_encoded() else {
        return None;
    };
    let raw = body.get_raw();
    // Only a body of base64 letters, white space and `=`: anything else
    // is not base64 at all, and stays "could not be decoded".
    if !raw
        .iter()
        .all(|&b| b.is_ascii_alphanumeric() || b"+/= \t\r\n".contains(&b))
    {
        return None;
    }
    let mut out = Vec::new();
    let (mut acc, mut bits) = (0u32, 0u32);
    for &b in raw.iter().take_while(|&&b| b != b'=') {
        let v = match b {
            b'A'..=b'Z' => b - b'A',
            b'a'..=b'z' => b - b'a' + 26,
            b'0'..=b'9' => b - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => continue,
        };
        acc = (acc << 6) | u32::from(v);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    (bits < 6).then_some(out)
}

/// `bytes` in the charset labelled `label` (windows-1252 when no decoder
/// knows the label, as mailparse does for US-ASCII).
fn decode_charset(label: &str, bytes: &[u8]) -> String {
    let charset = charset::Charset::for_label(label.trim().as_bytes())
        .or_else(|| charset::Charset::for_label(b"windows-1252"));
    match charset {
        Some(c) => c.decode_without_bom_handling(bytes).0.into_owned(),
        None => String::from_utf8_lossy(bytes).into_owned(),
    }
}

/// Decodes encoded words a sender left in a parameter value (common for
/// file names, although RFC 2047 §5 does not allow them there).
fn decode_words(s: &str) -> String {
    let line = format!("X: {s}");
    match mailparse::parse_header(line.as_bytes()) {
        Ok((h, _)) => decode_value(&h),
        Err(_) => s.to_string(),
    }
}

/// Takes a message apart: main headers, first inline text/plain part,
/// attachments (every other leaf part that is not inline text).
pub fn readable(raw: &[u8]) -> Result<Readable, Invalid> {
    let mail = parse(raw)?;
    let headers = MAIN_HEADERS
        .iter()
        .filter_map(|name| {
            let values: Vec<String> = mail
                .headers
                .get_all_headers(name)
                .iter()
                .map(|h| decode_value(h))
                .collect();
            (!values.is_empty()).then(|| (name.to_string(), values.join(", ")))
        })
        .collect();
    let mut text = None;
    let mut undecoded = None;
    let mut html = None;
    let mut attachments = Vec::new();
    let mut all = Vec::new();
    leaves(&mail, false, &mut all);
    let multipart = !mail.subparts.is_empty();
    for (part, alternative) in all {
        let mime = reader_type(part);
        let inline = !is_attachment(part);
        if inline && mime == "text/plain" {
            let (body, why) = part_text(part);
            let body = body.replace("\r\n", "\n");
            match &mut text {
                None => {
                    text = Some(body);
                    undecoded = why;
                    continue;
                }
                // More text of a mixed message (a list footer, a second
                // note), not another version of it: shown after the first,
                // as mail readers show it.
                Some(first) if !alternative && why.is_none() && part_name(part).is_none() => {
                    if !first.ends_with('\n') {
                        first.push('\n');
                    }
                    first.push('\n');
                    first.push_str(&body);
                    continue;
                }
                Some(_) => {}
            }
        }
        if inline && mime == "text/html" {
            // The message's body in HTML (an alternative to its text, or
            // its only form), not an attachment: kept in case there is no
            // text/plain.
            if html.is_none() {
                html = Some(part_text(part));
            }
            continue;
        }
        let size = part
            .get_body_raw()
            .ok()
            .map(|b| b.len() - boundary_break(part, multipart, &b))
            .or_else(|| lenient_base64(part).map(|b| b.len()))
            .unwrap_or(0);
        attachments.push(Attachment {
            name: part_name(part),
            mime: mime.to_string(),
            size,
        });
    }
    let from_html = text.is_none() && html.is_some();
    if let (None, Some((body, why))) = (&text, html) {
        // Undecodable HTML is shown as stored, like undecodable text.
        text = Some(match why {
            None => super::html::to_text(&body),
            Some(_) => body.replace("\r\n", "\n"),
        });
        undecoded = why;
    }
    Ok(Readable {
        headers,
        text,
        undecoded,
        from_html,
        attachments,
    })
}

/// The leaves of `part`'s tree in order, each with whether it is inside a
/// multipart/alternative (versions of one text, not more text). A
/// multipart with no parts (a boundary never found) is a leaf.
fn leaves<'a>(part: &'a ParsedMail<'a>, alternative: bool, out: &mut Vec<(&'a ParsedMail<'a>, bool)>) {
    if part.ctype.mimetype.starts_with("multipart/") && !part.subparts.is_empty() {
        let alternative = alternative || part.ctype.mimetype == "multipart/alternative";
        for sub in &part.subparts {
            leaves(sub, alternative, out);
        }
    } else {
        out.push((part, alternative));
    }
}

/// The type a reader takes a leaf part for. An invalid Content-Type (no
/// `type/subtype`: `text`, `;;;`) is text/plain (RFC 2045 §5.2), and so
/// is a multipart whose boundary is missing or never occurs: it has no
/// parts, and its body is all the text there is.
fn reader_type<'p>(part: &'p mailparse::ParsedMail<'_>) -> &'p str {
    let mime = part.ctype.mimetype.as_str();
    let valid = mime
        .split_once('/')
        .is_some_and(|(t, sub)| !t.is_empty() && !sub.is_empty() && !sub.contains('/'));
    if !valid || mime.starts_with("multipart/") {
        "text/plain"
    } else {
        mime
    }
}

/// Every header of the message, decoded, one per line (`--headers`).
pub fn all_headers(raw: &[u8]) -> Result<Vec<(String, String)>, Invalid> {
    check(raw)?;
    let (headers, _) = mailparse::parse_headers(raw).map_err(|e| Invalid::Parse(e.to_string()))?;
    Ok(headers.iter().map(|h| (h.get_key(), decode_value(h))).collect())
}

/// Writes `(name, value)` header lines, sanitised for a terminal.
pub fn write_headers(out: &mut dyn Write, headers: &[(String, String)]) -> io::Result<()> {
    for (name, value) in headers {
        writeln!(out, "{}: {}", sanitize(name, false), sanitize(value, false))?;
    }
    Ok(())
}

/// Writes the readable form: headers, a blank line, the text, then the
/// attachment list.
pub fn write_readable(out: &mut dyn Write, r: &Readable) -> io::Result<()> {
    write_headers(out, &r.headers)?;
    writeln!(out)?;
    match &r.text {
        Some(text) => {
            if r.from_html {
                writeln!(out, "[no text/plain part; the HTML part as text]")?;
            }
            if let Some(why) = &r.undecoded {
                writeln!(
                    out,
                    "[this part could not be decoded ({}); shown as stored]",
                    sanitize(why, false)
                )?;
            }
            let text = sanitize(text, true);
            out.write_all(text.as_bytes())?;
            if !text.is_empty() && !text.ends_with('\n') {
                writeln!(out)?;
            }
        }
        None => writeln!(out, "(no text/plain part)")?,
    }
    if !r.attachments.is_empty() {
        writeln!(out)?;
        writeln!(out, "Attachments:")?;
        for (i, a) in r.attachments.iter().enumerate() {
            let name = a
                .name
                .as_deref()
                .map_or_else(|| "(no name)".to_string(), |n| sanitize(n, false));
            writeln!(
                out,
                "  {}. {}  {}  {} bytes",
                i + 1,
                name,
                sanitize(&a.mime, false),
                a.size
            )?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIME: &str = "From: a@b\nTo: c@d\nSubject: =?UTF-8?B?w4TDpMOk?=\nMIME-Version: 1.0\nContent-Type: multipart/mixed; boundary=\"XX\"\n\npreamble\n--XX\nContent-Type: text/plain; charset=utf-8\nContent-Transfer-Encoding: quoted-printable\n\nGr=C3=BC=C3=9Fe, a long line that is =\nsoft-broken.\n--XX\nContent-Type: application/octet-stream; name=\"data.bin\"\nContent-Disposition: attachment; filename=\"data.bin\"\nContent-Transfer-Encoding: base64\n\nAAECAwQ=\n--XX\nContent-Type: text/plain; name=\"=?UTF-8?Q?n=C3=B6tes.txt?=\"\nContent-Disposition: attachment\n\nsecond text\n--XX--\n";

    #[test]
    fn deeply_nested_multiparts_are_refused_not_a_stack_overflow() {
        let mut raw = String::from("Subject: deep\n");
        for i in 0..20_000 {
            raw.push_str(&format!(
                "Content-Type: multipart/mixed; boundary=b{i}\n\n--b{i}\n"
            ));
        }
        raw.push_str("Content-Type: text/plain\n\nx\n");
        let Err(Invalid::Parse(why)) = readable(raw.as_bytes()) else {
            panic!("taken apart");
        };
        assert!(why.contains("more than 500 MIME parts"), "{why}");
        // Nested as deep as the limit allows, it is read.
        let mut raw = String::from("Subject: deep\n");
        for i in 0..MAX_PARTS - 1 {
            raw.push_str(&format!(
                "Content-Type: multipart/mixed; boundary=b{i}\n\n--b{i}\n"
            ));
        }
        raw.push_str("Content-Type: text/plain\n\nx\n");
        let text = readable(raw.as_bytes()).unwrap().text.unwrap();
        assert!(text.trim_start() == "x\n", "{text:?}");
    }

    #[test]
    fn attachment_sizes_leave_out_the_boundary_line_break() {
        let raw = "Subject: s\r\nContent-Type: multipart/mixed; boundary=Q\r\n\r\n--Q\r\nContent-Type: text/plain\r\n\r\nbody\r\n--Q\r\nContent-Disposition: attachment; filename=a.txt\r\n\r\nattached text\r\n--Q\r\nContent-Disposition: attachment; filename=qp.txt\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\nline=3Done=\r\ncontinued\r\n--Q\r\nContent-Disposition: attachment; filename=two.txt\r\n\r\nline\r\n\r\n--Q--\r\n";
        let sizes: Vec<usize> = readable(raw.as_bytes())
            .unwrap()
            .attachments
            .iter()
            .map(|a| a.size)
            .collect();
        // `attached text`, `line=onecontinued`, `line` + CRLF.
        assert_eq!(sizes, [13, 17, 6]);
    }

    #[test]
    fn text_and_attachments() {
        let r = readable(MIME.as_bytes()).unwrap();
        assert_eq!(
            r.headers,
            [
                ("From".to_string(), "a@b".to_string()),
                ("To".to_string(), "c@d".to_string()),
                ("Subject".to_string(), "Äää".to_string()),
            ]
        );
        assert_eq!(
            r.text.as_deref(),
            Some("Grüße, a long line that is soft-broken.\n")
        );
        assert_eq!(
            r.attachments,
            [
                Attachment {
                    name: Some("data.bin".into()),
                    mime: "application/octet-stream".into(),
                    size: 5
                },
                Attachment {
                    name: Some("nötes.txt".into()),
                    mime: "text/plain".into(),
                    // `second text`: the line break after it is the
                    // boundary's.
                    size: 11
                },
            ]
        );
        let mut out = Vec::new();
        write_readable(&mut out, &r).unwrap();
        let out = String::from_utf8(out).unwrap();
        assert!(out.contains("Subject: Äää\n\nGrüße"), "{out}");
        assert!(
            out.contains("  1. data.bin  application/octet-stream  5 bytes\n"),
            "{out}"
        );
    }

    #[test]
    fn attachment_names_keep_quoted_semicolons_and_quotes() {
        let part = |params: &str| {
            format!("--M\nContent-Type: application/pdf{params}\nContent-Transfer-Encoding: base64\n\nAAEC\n")
        };
        let raw = format!(
            "Subject: s\nContent-Type: multipart/mixed; boundary=M\n\n--M\nContent-Type: text/plain\n\nHi.\n{}{}{}{}{}--M--\n",
            part("\nContent-Disposition: attachment; filename=\"semi;colon.pdf\"; size=3"),
            part("; name=\"=?UTF-8?Q?a;b.pdf?=\""),
            part("\nContent-Disposition: attachment; filename=\"=?UTF-8?B?w6k7eC5wZGY=?=\""),
            part("\nContent-Disposition: attachment; filename=\"quote\\\"d.pdf\""),
            part("\nContent-Disposition: attachment; filename*=UTF-8''%C3%A4%3B.pdf"),
        );
        let r = readable(raw.as_bytes()).unwrap();
        let names: Vec<_> = r
            .attachments
            .iter()
            .map(|a| a.name.clone().unwrap_or_default())
            .collect();
        assert_eq!(
            names,
            ["semi;colon.pdf", "a;b.pdf", "é;x.pdf", "quote\"d.pdf", "ä;.pdf"]
        );
        // A backslash that RFC 2231 encoding carries is the name's own.
        let raw = format!(
            "Subject: s\nContent-Type: multipart/mixed; boundary=M\n\n--M\nContent-Type: text/plain\n\nHi.\n{}--M--\n",
            part("\nContent-Disposition: attachment; filename*=UTF-8''a%5Cb.pdf"),
        );
        let r = readable(raw.as_bytes()).unwrap();
        assert_eq!(r.attachments[0].name.as_deref(), Some("a\\b.pdf"));
    }

    #[test]
    fn more_inline_text_of_a_mixed_message_follows_the_first() {
        let raw = "Subject: s\nContent-Type: multipart/mixed; boundary=M\n\n\
            --M\nContent-Type: multipart/alternative; boundary=A\n\n\
            --A\nContent-Type: text/plain\n\nHello.\n--A\nContent-Type: text/html\n\n<p>Hello.</p>\n\
            --A\nContent-Type: text/plain; format=flowed\n\nHello, again.\n--A--\n\
            --M\nContent-Type: text/plain\nContent-Disposition: inline\n\n-- \nlist footer\n\
            --M\nContent-Type: text/plain; name=\"notes.txt\"\n\nfile\n--M--\n";
        let r = readable(raw.as_bytes()).unwrap();
        assert_eq!(r.text.as_deref(), Some("Hello.\n\n-- \nlist footer\n"));
        // Another version of the text, and a named file, stay attachments.
        let listed: Vec<_> = r.attachments.iter().map(|a| a.name.clone()).collect();
        assert_eq!(listed, [None, Some("notes.txt".to_string())]);
    }

    #[test]
    fn a_broken_content_type_is_read_as_text() {
        for (ctype, body) in [
            // A boundary that never occurs, and none at all.
            (
                "multipart/mixed; boundary=\"NOPE\"",
                "--WRONG\nContent-Type: text/plain\n\nhello\n--WRONG--\n",
            ),
            ("multipart/mixed", "hello\n"),
            // No type/subtype (RFC 2045 §5.2: text/plain).
            ("text", "hello\n"),
            (";;;===", "hello\n"),
        ] {
            let raw = format!("Subject: s\nContent-Type: {ctype}\n\n{body}");
            let r = readable(raw.as_bytes()).unwrap();
            assert!(
                r.text.as_deref().is_some_and(|t| t.contains("hello")),
                "{ctype}: {:?}",
                r.text
            );
            assert!(r.attachments.is_empty(), "{ctype}: {:?}", r.attachments);
        }
    }

    #[test]
    fn base64_latin1_body_and_no_text() {
        let raw = "Subject: x\nContent-Type: text/plain; charset=iso-8859-1\nContent-Transfer-Encoding: base64\n\nS/Zsbg==\n";
        assert_eq!(readable(raw.as_bytes()).unwrap().text.as_deref(), Some("Köln"));
        let raw = "Subject: x\nContent-Type: text/html\n\n<p>hi &amp; bye</p>\n";
        let r = readable(raw.as_bytes()).unwrap();
        assert_eq!((r.text.as_deref(), r.from_html), (Some("hi & bye\n"), true));
        assert!(r.attachments.is_empty());
        // With both, the text is shown and the HTML alternative is not
        // listed as an attachment; an HTML file attached still is.
        let raw = "Subject: x\nContent-Type: multipart/mixed; boundary=M\n\n--M\n\
            Content-Type: multipart/alternative; boundary=A\n\n--A\nContent-Type: text/plain\n\nplain\n\
            --A\nContent-Type: text/html\n\n<p>html</p>\n--A--\n--M\nContent-Type: text/html\n\
            Content-Disposition: attachment; filename=page.html\n\n<p>file</p>\n--M--\n";
        let r = readable(raw.as_bytes()).unwrap();
        assert_eq!((r.text.as_deref(), r.from_html), (Some("plain\n"), false));
        let names: Vec<_> = r.attachments.iter().map(|a| a.name.as_deref()).collect();
        assert_eq!(names, [Some("page.html")]);
        assert!(readable(b"not a message").is_err());
    }

    #[test]
    fn undecodable_body_is_the_part_as_stored_never_the_headers() {
        let single = "Return-Path: <a@b>\nReceived: from x by y; now\nSubject: bad\nContent-Type: text/plain\nContent-Transfer-Encoding: base64\n\n!!!not base64@@@\n";
        let multi = "Subject: bad\nContent-Type: multipart/mixed; boundary=B\n\n--B\nContent-Type: text/plain\nContent-Transfer-Encoding: base64\n\n!!!not base64@@@\n--B--\n";
        for raw in [single, multi] {
            let r = readable(raw.as_bytes()).unwrap();
            assert_eq!(r.text.as_deref(), Some("!!!not base64@@@\n"), "{raw}");
            assert!(
                r.undecoded.as_deref().is_some_and(|w| w.contains("ase64")),
                "{r:?}"
            );
            let mut out = Vec::new();
            write_readable(&mut out, &r).unwrap();
            let out = String::from_utf8(out).unwrap();
            assert!(
                out.starts_with("Subject: bad\n\n[this part could not be decoded (")
                    && out.ends_with("; shown as stored]\n!!!not base64@@@\n"),
                "{out}"
            );
        }
        let r = readable(MIME.as_bytes()).unwrap();
        assert_eq!(r.undecoded, None);
        // Base64 without its padding is read all the same, in its charset.
        for (body, charset, want) in [
            ("R3LDvMOfZQ", "utf-8", "Grüße"),
            ("R3L832U", "iso-8859-1", "Grüße"),
            ("R3LDvMOfZQ=", "", "Grüße"),
        ] {
            let raw = format!(
                "Content-Type: text/plain; charset={charset}\nContent-Transfer-Encoding: base64\n\n{body}\n"
            );
            let r = readable(raw.as_bytes()).unwrap();
            assert_eq!((r.text.as_deref(), r.undecoded), (Some(want), None), "{body}");
        }
        let attached = "Content-Type: multipart/mixed; boundary=B\n\n--B\nContent-Type: text/plain\n\nhi\n--B\nContent-Type: application/octet-stream\nContent-Transfer-Encoding: base64\n\nAAECAwQ\n--B--\n";
        assert_eq!(readable(attached.as_bytes()).unwrap().attachments[0].size, 5);
    }

    #[test]
    fn undeclared_8bit_text_is_utf8_when_it_is_valid_utf8() {
        let text = |raw: &[u8]| readable(raw).unwrap().text.unwrap();
        // No charset, US-ASCII under any of its names, no Content-Type at all,
        // 8bit or base64: raw UTF-8 reads as UTF-8.
        for ctype in [
            "Content-Type: text/plain\n",
            "Content-Type: text/plain; charset=us-ascii\n",
            "Content-Type: text/plain; charset=\"US-ASCII\"\n",
            "Content-Type: text/plain; charset=ANSI_X3.4-1968\n",
            "Content-Type: text/plain; charset=iso646-us\n",
            "Content-Transfer-Encoding: 8bit\n",
            "",
        ] {
            let raw = format!("Subject: Grüße\n{ctype}\nGrüße\n");
            assert_eq!(text(raw.as_bytes()), "Grüße\n", "{ctype:?}");
            let r = readable(raw.as_bytes()).unwrap();
            assert_eq!(r.headers, [("Subject".to_string(), "Grüße".to_string())]);
        }
        let b64 = "Content-Type: text/plain\nContent-Transfer-Encoding: base64\n\nR3LDvMOfZQ==\n";
        assert_eq!(text(b64.as_bytes()), "Grüße");
        // Not UTF-8: as before (US-ASCII read as windows-1252).
        assert_eq!(text(b"Content-Type: text/plain\n\nGr\xfc\xdfe\n"), "Grüße\n");
        // A label no decoder knows: valid UTF-8 is read as UTF-8.
        let unknown = "Content-Type: text/plain; charset=x-unknown-42\n\nM\u{fc}ller\n";
        assert_eq!(text(unknown.as_bytes()), "Müller\n");
        // A declared charset wins, even over bytes that are valid UTF-8.
        let latin1 = "Content-Type: text/plain; charset=iso-8859-1\n\nGrüße\n";
        assert_eq!(text(latin1.as_bytes()), "GrÃ¼ÃŸe\n");
        let jis = b"Content-Type: text/plain; charset=ISO-2022-JP\n\n\x1b$B$3$s$K$A$O\x1b(B\n";
        assert_eq!(text(jis), "こんにちは\n");
        assert_eq!(
            text(b"Content-Type: text/plain; charset=windows-1252\n\n\x80\n"),
            "€\n"
        );
    }

    #[test]
    fn all_headers_decoded() {
        let h = all_headers(MIME.as_bytes()).unwrap();
        assert_eq!(h.len(), 5);
        assert_eq!(h.get(2), Some(&("Subject".to_string(), "Äää".to_string())));
    }

    proptest::proptest! {
        /// Whatever a file holds, reading it is a value or an error, never
        /// a panic: messages built from MIME-ish pieces, and plain bytes.
        #[test]
        fn never_panics(
            pieces in proptest::collection::vec(proptest::sample::select(vec![
                "Content-Type: multipart/mixed; boundary=X\n", "Content-Type: text/plain; charset=iso-8859-1\n",
                "Content-Transfer-Encoding: base64\n", "Content-Transfer-Encoding: quoted-printable\n",
                "Content-Disposition: attachment; filename*=UTF-8''%C3%A4\n", "Subject: =?UTF-8?B?w6Q=?=\n",
                "\n", "\r\n", "--X\n", "--X--", "--X", "=\n", "=E2=8\n", "AAE=\n", "!!!\n", "\x00ÿ", " fold\n",
            ]), 0..24),
            tail in proptest::collection::vec(proptest::num::u8::ANY, 0..64),
        ) {
            let mut raw: Vec<u8> = pieces.concat().into_bytes();
            raw.extend_from_slice(&tail);
            let _ = readable(&raw);
            let _ = all_headers(&raw);
            let _ = crate::mailbox::message::summarize(&raw);
            let _ = readable(&tail);
        }
    }
}
