//! Trace headers added at delivery: `Return-Path:` and `Received:`
//! (RFC 5321 §4.4, RFC 5322 §3.6.7), and the RFC 5322 date they carry.

use std::net::SocketAddr;
use std::time::{SystemTime, UNIX_EPOCH};

use crate::smtp::command::{Domain, ForwardPath, ReversePath};
use crate::smtp::idna::a_labels;
use crate::smtp::state::{Envelope, Hello};

/// What the `Received:` header says about the connection.
#[derive(Debug, Clone)]
pub struct TraceInfo<'a> {
    /// The client's hello, if any.
    pub hello: Option<&'a Hello>,
    /// The client's address and port.
    pub peer: SocketAddr,
    /// Our host name.
    pub hostname: &'a str,
    /// Our first local domain: where `<postmaster>` is delivered, and so
    /// the domain the `for` clause gives it.
    pub primary_domain: &'a str,
    /// The queue id, as in the 250 reply and the log.
    pub queue_id: &'a str,
    /// True when the session runs over TLS.
    pub tls: bool,
    /// The TLS version and cipher (`TLSv1.3 with cipher ...`), recorded
    /// as a comment after the `from` clause, as Postfix does.
    pub tls_details: Option<&'a str>,
}

/// The client's address as RFC 5321's `TCP-info` (§4.4), an address
/// literal (`[192.0.2.1]`, `[IPv6:2001:db8::1]`; an IPv4-mapped address
/// as IPv4), and its port in a comment of its own after it: `TCP-info`
/// has no room for a port. `([192.0.2.1]) (port 49904)`.
pub fn peer_info(peer: SocketAddr) -> String {
    let ip = match peer {
        SocketAddr::V4(a) => format!("[{}]", a.ip()),
        SocketAddr::V6(a) => match a.ip().to_ipv4_mapped() {
            Some(v4) => format!("[{v4}]"),
            None => format!("[IPv6:{}]", a.ip()),
        },
    };
    format!("({ip}) (port {})", peer.port())
}

/// The protocol keyword of the `with` clause (RFC 3848, RFC 6531 §3.7.3).
/// There is no registered "SMTPS": TLS is `ESMTPS` even after HELO (a
/// STARTTLS client spoke ESMTP to get there; implicit TLS is `ESMTPS` in
/// practice too).
fn protocol(info: &TraceInfo<'_>, env: &Envelope) -> &'static str {
    let extended = info.hello.is_some_and(|h| h.extended);
    match (env.params.smtputf8, info.tls) {
        (true, false) => "UTF8SMTP",
        (true, true) => "UTF8SMTPS",
        (false, true) => "ESMTPS",
        (false, false) if extended => "ESMTP",
        (false, false) => "SMTP",
    }
}

/// The `Return-Path:` and `Received:` lines (LF endings) to put on top of
/// a message delivered for `rcpts`.
pub fn headers(info: &TraceInfo<'_>, env: &Envelope, rcpts: &[ForwardPath], now: SystemTime) -> String {
    let from = match &env.from {
        ReversePath::Null => "<>".to_string(),
        other => other.to_string(),
    };
    // A client may say hello with a UTF-8 (U-label) name (RFC 6531
    // §3.7.1); a message that is not SMTPUTF8 must keep its header ASCII,
    // so the name goes in as A-labels there.
    let utf8 = env.params.smtputf8;
    let helo = info.hello.map_or_else(
        || "unknown".to_string(),
        |h| match &h.name {
            Domain::Name(n) => header_name(n, utf8),
            literal => literal.to_string(),
        },
    );
    // Our own name too, when it is configured in UTF-8.
    let by = header_name(info.hostname, utf8);
    let using = match info.tls_details {
        Some(d) => format!("\n\t(using {d})"),
        None => String::new(),
    };
    let mut s = format!(
        // The id is a msg-id (RFC 5321 §4.4: an Atom has no dots, the
        // queue id has); the queue id of the 250 reply and the log is its
        // left part.
        "Return-Path: {from}\nReceived: from {helo} {}{using}\n\tby {by} (maildoor) with {} id <{}@{by}>",
        peer_info(info.peer),
        protocol(info, env),
        info.queue_id,
    );
    match rcpts {
        [] => {}
        // The FOR clause takes a path with a domain (RFC 5321 §4.4):
        // `<postmaster>` alone is the postmaster of our first domain, where
        // it is delivered (and where `mailbox --user postmaster` looks).
        [ForwardPath::Postmaster] => s.push_str(&format!(
            "\n\tfor <postmaster@{}>",
            header_name(info.primary_domain, utf8)
        )),
        [one] => s.push_str(&format!("\n\tfor {one}")),
        many => {
            // One recipient per folded line: a hundred of them must not
            // make one line longer than RFC 5322 §2.1.1 allows.
            let list: Vec<String> = many.iter().map(|r| comment_text(&r.to_string())).collect();
            s.push_str(&format!("\n\t(envelope recipients: {})", list.join(",\n\t ")));
        }
    }
    s.push_str(&format!(";\n\t{}\n", rfc5322_date(now)));
    s
}

/// A host name as a header of a message may carry it: as it is in an
/// SMTPUTF8 message or when it is ASCII, else in A-labels.
fn header_name(name: &str, utf8: bool) -> String {
    if utf8 || name.is_ascii() {
        name.to_string()
    } else {
        a_labels(name)
    }
}

/// `text` made safe inside a comment: `(`, `)` and `\\` (which a quoted
/// local part may hold) become quoted pairs (RFC 5322 §3.2.2), so the
/// comment ends where we end it.
fn comment_text(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if matches!(c, '(' | ')' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// Formats a time as an RFC 5322 §3.3 date in UTC, e.g.
/// `Wed, 25 Nov 2026 11:00:00 +0000`.
pub fn rfc5322_date(t: SystemTime) -> String {
    let secs = t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let days = secs / 86_400;
    let rem = secs % 86_400;
    let (y, m, d) = civil_from_days(days as i64);
    const WD: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
    const MON: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    format!(
        "{}, {:02} {} {} {:02}:{:02}:{:02} +0000",
        WD.get((days % 7) as usize).unwrap_or(&"Thu"),
        d,
        MON.get((m - 1) as usize).unwrap_or(&"Jan"),
        y,
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// Days since 1970-01-01 to (year, month, day), proleptic Gregorian
/// (the well-known era-based conversion).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::smtp::command::{Domain, MailParams, Mailbox};
    use std::time::Duration;

    fn null_envelope() -> Envelope {
        Envelope {
            from: ReversePath::Null,
            params: MailParams::default(),
            rcpts: vec![],
        }
    }

    /// A session from 127.0.0.1:4000 with no hello and no TLS.
    fn plain_info() -> TraceInfo<'static> {
        TraceInfo {
            hello: None,
            peer: "127.0.0.1:4000".parse().unwrap(),
            hostname: "mx.test",
            primary_domain: "example.test",
            queue_id: "ID1",
            tls: false,
            tls_details: None,
        }
    }

    #[test]
    fn dates() {
        assert_eq!(rfc5322_date(UNIX_EPOCH), "Thu, 01 Jan 1970 00:00:00 +0000");
        let t = UNIX_EPOCH + Duration::from_secs(1_795_600_200);
        assert_eq!(rfc5322_date(t), "Wed, 25 Nov 2026 09:50:00 +0000");
        let leap = UNIX_EPOCH + Duration::from_secs(951_782_400); // 2000-02-29
        assert_eq!(rfc5322_date(leap), "Tue, 29 Feb 2000 00:00:00 +0000");
    }

    #[test]
    fn many_recipients_fold_one_per_line_and_read_back() {
        let env = null_envelope();
        let rcpts: Vec<ForwardPath> = (0..100)
            .map(|i| {
                ForwardPath::Mailbox(Mailbox {
                    local: format!("user{i}-{}", "x".repeat(40)),
                    domain: Domain::Name("example.org".into()),
                })
            })
            .collect();
        let info = plain_info();
        let h = headers(&info, &env, &rcpts, UNIX_EPOCH);
        // Every line stays short (RFC 5322 §2.1.1 allows 998 octets).
        assert!(h.lines().all(|l| l.len() < 100), "{h}");
        assert!(h.contains("(envelope recipients: <user0-"), "{h}");
        // The reader finds every one of them again.
        let message = format!("{h}Subject: x\n\nbody\n");
        let summary = crate::mailbox::message::summarize(message.as_bytes()).unwrap();
        let want: Vec<String> = rcpts
            .iter()
            .map(|r| r.to_string().trim_matches(['<', '>']).to_string())
            .collect();
        assert_eq!(summary.envelope_to, want);
    }

    #[test]
    fn quoted_local_parts_keep_the_comment_whole_and_read_back() {
        let env = null_envelope();
        let info = plain_info();
        let rcpt = |local: &str| {
            ForwardPath::Mailbox(Mailbox {
                local: local.into(),
                domain: Domain::Name("example.test".into()),
            })
        };
        let read_back = |rcpts: &[ForwardPath]| {
            let message = format!("{}Subject: x\n\nbody\n", headers(&info, &env, rcpts, UNIX_EPOCH));
            let summary = crate::mailbox::message::summarize(message.as_bytes()).unwrap();
            (message, summary.envelope_to)
        };
        // Local parts as parsed (unquoted); they are written quoted.
        let many = [rcpt("a)b(c"), rcpt("a\"q;)"), rcpt("plain")];
        let (message, to) = read_back(&many);
        assert!(
            message.contains(
                "(envelope recipients: <\"a\\)b\\(c\"@example.test>,\n\t <\"a\\\\\"q;\\)\"@example.test>,"
            ),
            "{message}"
        );
        let want: Vec<String> = many
            .iter()
            .map(|r| r.to_string().trim_matches(['<', '>']).to_string())
            .collect();
        assert_eq!(to, want);
        // One recipient: the `for` clause, whose path may hold `;` and `>`.
        let one = [rcpt("a;b> c")];
        let (_, to) = read_back(&one);
        assert_eq!(to, vec!["\"a;b> c\"@example.test".to_string()]);
        // A local part that spells a recipient list is not one.
        let forged = [rcpt("x (envelope recipients: <victim@localhost>)")];
        let (_, to) = read_back(&forged);
        assert_eq!(
            to,
            vec!["\"x (envelope recipients: <victim@localhost>)\"@example.test".to_string()]
        );
    }

    #[test]
    fn a_utf8_hello_name_goes_into_an_ascii_header_as_a_labels() {
        let hello = Hello {
            name: Domain::Name("mail.bücher.example".into()),
            extended: true,
        };
        let info = TraceInfo {
            hello: Some(&hello),
            ..plain_info()
        };
        let mut env = null_envelope();
        let h = headers(&info, &env, &[], UNIX_EPOCH);
        assert!(
            h.is_ascii() && h.contains("from mail.xn--bcher-kva.example ("),
            "{h}"
        );
        let ours = TraceInfo {
            hostname: "mäil.example",
            ..info.clone()
        };
        let h = headers(&ours, &env, &[], UNIX_EPOCH);
        assert!(
            h.is_ascii() && h.contains("by xn--mil-qla.example (maildoor)"),
            "{h}"
        );
        // An SMTPUTF8 message may carry the name as the client said it.
        env.params.smtputf8 = true;
        let h = headers(&info, &env, &[], UNIX_EPOCH);
        assert!(h.contains("from mail.bücher.example ("), "{h}");
    }

    #[test]
    fn received_names_everything() {
        let hello = Hello {
            name: Domain::Name("client.example".into()),
            extended: true,
        };
        let env = null_envelope();
        let rcpt = ForwardPath::Mailbox(Mailbox {
            local: "u".into(),
            domain: Domain::Name("localhost".into()),
        });
        let info = TraceInfo {
            hello: Some(&hello),
            peer: "[::1]:4000".parse().unwrap(),
            ..plain_info()
        };
        let h = headers(&info, &env, &[rcpt], UNIX_EPOCH);
        assert_eq!(
            h,
            "Return-Path: <>\nReceived: from client.example ([IPv6:::1]) (port 4000)\n\tby mx.test (maildoor) with ESMTP id <ID1@mx.test>\n\tfor <u@localhost>;\n\tThu, 01 Jan 1970 00:00:00 +0000\n"
        );
        let h = headers(&info, &env, &[ForwardPath::Postmaster], UNIX_EPOCH);
        assert!(h.contains("\n\tfor <postmaster@example.test>;\n"), "{h}");
        assert_eq!(
            peer_info("127.0.0.1:25".parse().unwrap()),
            "([127.0.0.1]) (port 25)"
        );
        assert_eq!(
            peer_info("[::ffff:192.0.2.1]:25".parse().unwrap()),
            "([192.0.2.1]) (port 25)"
        );
        let tls = TraceInfo {
            tls: true,
            tls_details: Some("TLSv1.3 with cipher TLS13_AES_256_GCM_SHA384"),
            ..info
        };
        let h = headers(&tls, &env, &[], UNIX_EPOCH);
        assert!(
            h.contains("([IPv6:::1]) (port 4000)\n\t(using TLSv1.3 with cipher TLS13_AES_256_GCM_SHA384)\n\tby mx.test (maildoor) with ESMTPS id <ID1@mx.test>"),
            "{h}"
        );
        // HELO inside TLS: still ESMTPS, there is no registered "SMTPS".
        let helo = Hello {
            extended: false,
            ..hello.clone()
        };
        for (over, keyword) in [(tls, " with ESMTPS id <ID1@"), (info, " with SMTP id <ID1@")] {
            let h = headers(
                &TraceInfo {
                    hello: Some(&helo),
                    ..over
                },
                &env,
                &[],
                UNIX_EPOCH,
            );
            assert!(h.contains(keyword), "{h}");
        }
    }
}
