//! Table tests for the command parser: line in, command or error out.

use super::*;

fn mb(local: &str, domain: &str) -> Mailbox {
    Mailbox {
        local: local.into(),
        domain: Domain::Name(domain.into()),
    }
}

fn mail(from: ReversePath, params: MailParams) -> Command {
    Command::Mail { from, params }
}

fn rcpt(local: &str, domain: &str) -> Command {
    Command::Rcpt {
        to: ForwardPath::Mailbox(mb(local, domain)),
    }
}

fn from(local: &str, domain: &str) -> ReversePath {
    ReversePath::Mailbox(mb(local, domain))
}

fn name(d: &str) -> Domain {
    Domain::Name(d.into())
}

#[test]
fn names_keep_to_the_dns_limits() {
    let label = "a".repeat(63);
    let longest = [label.as_str(); 4].join("."); // 255 octets
    assert_eq!(longest.len(), 255);
    for ok in [
        format!("EHLO {label}.example"),
        format!("EHLO {longest}"),
        format!("RCPT TO:<u@{longest}>"),
        // A UTF-8 label is not held to 63 octets of UTF-8.
        format!("EHLO {}.example", "日".repeat(30)),
    ] {
        assert!(parse(ok.as_bytes()).is_ok(), "{ok}");
    }
    for bad in [
        format!("EHLO {label}a.example"),
        format!("EHLO {longest}.b"),
        format!("MAIL FROM:<u@{label}a.example>"),
        format!("RCPT TO:<u@{longest}.b>"),
    ] {
        assert!(parse(bad.as_bytes()).is_err(), "{bad}");
    }
    assert!(matches!(
        parse("RCPT TO:<bob@[127.000.0.1]>".as_bytes()),
        Ok(Command::Rcpt { .. })
    ));
}

#[test]
fn valid_lines() {
    let p = MailParams::default;
    let cases: Vec<(&str, Command)> = vec![
        (
            "EHLO client.example.org",
            Command::Ehlo(name("client.example.org")),
        ),
        ("ehlo client", Command::Ehlo(name("client"))),
        ("EhLo client.example.", Command::Ehlo(name("client.example"))),
        (
            "EHLO [127.0.0.1]",
            Command::Ehlo(Domain::Literal(AddressLiteral::V4("127.0.0.1".parse().unwrap()))),
        ),
        (
            "EHLO [IPv6:::1]",
            Command::Ehlo(Domain::Literal(AddressLiteral::V6("::1".parse().unwrap()))),
        ),
        (
            "EHLO [ipv6:2001:db8::5]",
            Command::Ehlo(Domain::Literal(AddressLiteral::V6(
                "2001:db8::5".parse().unwrap(),
            ))),
        ),
        (
            "EHLO under_score.example",
            Command::Ehlo(name("under_score.example")),
        ),
        ("EHLO host  ", Command::Ehlo(name("host"))),
        // RFC 5321 §4.1.3: an Snum is 1*3DIGIT, leading zeros and all.
        (
            "EHLO [127.000.000.001]",
            Command::Ehlo(Domain::Literal(AddressLiteral::V4("127.0.0.1".parse().unwrap()))),
        ),
        (
            "EHLO [010.0.0.1]",
            Command::Ehlo(Domain::Literal(AddressLiteral::V4("10.0.0.1".parse().unwrap()))),
        ),
        // ... also as the IPv4 tail of an IPv6 literal (IPv6v4-comp).
        (
            "EHLO [IPv6:::ffff:127.000.000.001]",
            Command::Ehlo(Domain::Literal(AddressLiteral::V6(
                "::ffff:127.0.0.1".parse().unwrap(),
            ))),
        ),
        (
            "EHLO [IPv6:1:2:3:4:5:6:10.0.0.1]",
            Command::Ehlo(Domain::Literal(AddressLiteral::V6(
                "1:2:3:4:5:6:a00:1".parse().unwrap(),
            ))),
        ),
        ("EHLO bücher.example", Command::Ehlo(name("bücher.example"))),
        ("HELO relay.example.org", Command::Helo(name("relay.example.org"))),
        ("helo x", Command::Helo(name("x"))),
        (
            "MAIL FROM:<alice@example.org>",
            mail(from("alice", "example.org"), p()),
        ),
        (
            "mail from:<alice@example.org>",
            mail(from("alice", "example.org"), p()),
        ),
        (
            "MAIL FROM: <alice@example.org>",
            mail(from("alice", "example.org"), p()),
        ),
        ("MAIL FROM:<>", mail(ReversePath::Null, p())),
        (
            "MAIL FROM:<> SIZE=100",
            mail(
                ReversePath::Null,
                MailParams {
                    size: Some(100),
                    ..p()
                },
            ),
        ),
        (
            "MAIL FROM:<a@b.c> SIZE=0",
            mail(from("a", "b.c"), MailParams { size: Some(0), ..p() }),
        ),
        (
            "MAIL FROM:<a@b.c> size=1000 body=8bitmime",
            mail(
                from("a", "b.c"),
                MailParams {
                    size: Some(1000),
                    body: Some(Body::EightBitMime),
                    ..p()
                },
            ),
        ),
        (
            "MAIL FROM:<a@b.c> BODY=7BIT",
            mail(
                from("a", "b.c"),
                MailParams {
                    body: Some(Body::SevenBit),
                    ..p()
                },
            ),
        ),
        (
            "MAIL FROM:<a@b.c> SMTPUTF8",
            mail(
                from("a", "b.c"),
                MailParams {
                    smtputf8: true,
                    ..p()
                },
            ),
        ),
        (
            "MAIL FROM:<a@b.c> SIZE=5 BODY=8BITMIME SMTPUTF8",
            mail(
                from("a", "b.c"),
                MailParams {
                    size: Some(5),
                    body: Some(Body::EightBitMime),
                    smtputf8: true,
                },
            ),
        ),
        (
            "MAIL FROM:<a@b.c>  SIZE=5",
            mail(from("a", "b.c"), MailParams { size: Some(5), ..p() }),
        ),
        (
            "MAIL FROM:<a@b.c> SIZE=99999999999999999999",
            mail(
                from("a", "b.c"),
                MailParams {
                    size: Some(u64::MAX),
                    ..p()
                },
            ),
        ),
        (
            "MAIL FROM:<\"john doe\"@example.org>",
            mail(from("john doe", "example.org"), p()),
        ),
        (
            "MAIL FROM:<\"a\\\"b\"@example.org>",
            mail(from("a\"b", "example.org"), p()),
        ),
        ("MAIL FROM:<\"\"@example.org>", mail(from("", "example.org"), p())),
        (
            "MAIL FROM:<first.last+tag@example.org>",
            mail(from("first.last+tag", "example.org"), p()),
        ),
        (
            "MAIL FROM:<o'brien@example.ie>",
            mail(from("o'brien", "example.ie"), p()),
        ),
        (
            "MAIL FROM:<@relay.one,@relay.two:user@example.org>",
            mail(from("user", "example.org"), p()),
        ),
        (
            "MAIL FROM:<@relay.one:user@example.org>",
            mail(from("user", "example.org"), p()),
        ),
        (
            "MAIL FROM:<user@[192.0.2.1]>",
            mail(
                ReversePath::Mailbox(Mailbox {
                    local: "user".into(),
                    domain: Domain::Literal(AddressLiteral::V4("192.0.2.1".parse().unwrap())),
                }),
                p(),
            ),
        ),
        (
            "MAIL FROM:<josé@exämple.org> SMTPUTF8",
            mail(
                from("josé", "exämple.org"),
                MailParams {
                    smtputf8: true,
                    ..p()
                },
            ),
        ),
        ("RCPT TO:<user@localhost>", rcpt("user", "localhost")),
        ("rcpt to:<User@LocalHost>", rcpt("User", "LocalHost")),
        ("RCPT TO: <user@localhost>", rcpt("user", "localhost")),
        (
            "RCPT TO:<postmaster>",
            Command::Rcpt {
                to: ForwardPath::Postmaster,
            },
        ),
        (
            "RCPT TO:<PostMaster>",
            Command::Rcpt {
                to: ForwardPath::Postmaster,
            },
        ),
        ("RCPT TO:<postmaster@localhost>", rcpt("postmaster", "localhost")),
        ("RCPT TO:<@hop.example:user@localhost>", rcpt("user", "localhost")),
        (
            "RCPT TO:<user@[IPv6:2001:db8::1]>",
            Command::Rcpt {
                to: ForwardPath::Mailbox(Mailbox {
                    local: "user".into(),
                    domain: Domain::Literal(AddressLiteral::V6("2001:db8::1".parse().unwrap())),
                }),
            },
        ),
        (
            "RCPT TO:<user@[x-tag:opaque]>",
            Command::Rcpt {
                to: ForwardPath::Mailbox(Mailbox {
                    local: "user".into(),
                    domain: Domain::Literal(AddressLiteral::General {
                        tag: "x-tag".into(),
                        content: "opaque".into(),
                    }),
                }),
            },
        ),
        (
            "RCPT TO:<\"with space\"@localhost>",
            rcpt("with space", "localhost"),
        ),
        ("DATA", Command::Data),
        ("data", Command::Data),
        ("DATA ", Command::Data),
        ("RSET", Command::Rset),
        ("NOOP", Command::Noop),
        ("NOOP anything at all", Command::Noop),
        ("QUIT", Command::Quit),
        ("quit", Command::Quit),
        ("VRFY user", Command::Vrfy("user".into())),
        ("VRFY <user@localhost>", Command::Vrfy("<user@localhost>".into())),
        ("EXPN list", Command::Expn("list".into())),
        ("HELP", Command::Help(None)),
        ("HELP MAIL", Command::Help(Some("MAIL".into()))),
        ("STARTTLS", Command::StartTls),
    ];
    for (line, want) in cases {
        assert_eq!(parse(line.as_bytes()), Ok(want), "{line:?}");
    }
}

#[test]
fn invalid_lines() {
    let syntax = |l: &str| {
        matches!(
            parse(l.as_bytes()),
            Err(ParseError::Syntax(_) | ParseError::BadAddress { .. })
        )
    };
    let unknown = |l: &str| parse(l.as_bytes()) == Err(ParseError::Unknown);
    let param = |l: &str| matches!(parse(l.as_bytes()), Err(ParseError::UnknownParam(_)));
    for line in [
        "",
        "FOO",
        "MAILFROM:<a@b>",
        "XEXCH50",
        "EHLOx host",
        "RCPTTO:<a@b>",
        "   ",
        "ÉHLO x",
    ] {
        assert!(
            unknown(line),
            "{line:?} should be unknown: {:?}",
            parse(line.as_bytes())
        );
    }
    for line in [
        "EHLO",
        "HELO",
        "EHLO two words",
        "EHLO bad..name",
        // Unicode white space, separators and invisible characters are no
        // part of a name (U+2028 would split a Received: line for some).
        "EHLO a\u{2028}b.example",
        "EHLO a\u{a0}b.example",
        "EHLO a\u{200b}b.example",
        "RCPT TO:<u@a\u{2029}b.example>",
        "EHLO [999.1.1.1]",
        "EHLO [0001.2.3.4]",
        "EHLO [1.2.3]",
        "EHLO [1.2.3.4.5]",
        "EHLO [1.2.3.]",
        "EHLO [+1.2.3.4]",
        "EHLO [x:ü]",
        "RCPT TO:<u@[x:café]>",
        "EHLO [IPv6:nonsense]",
        "EHLO [unterminated",
        "EHLO [IPv6:::ffff:127.0.0.256]",
        "EHLO [IPv6:::ffff:127.0.0.0001]",
        "MAIL",
        "MAIL FROM",
        "MAIL FROM:",
        "MAIL FROM:alice@example.org",
        "MAIL FROM:<alice@example.org",
        "MAIL FROM:<alice>",
        "MAIL FROM:<alice@>",
        "MAIL FROM:<@example.org>",
        "MAIL FROM:<a..b@example.org>",
        "MAIL FROM:<.a@example.org>",
        "MAIL FROM:<a@b.c>junk",
        "MAIL TO:<a@b.c>",
        "MAIL FROM:<a b@c.d>",
        "MAIL FROM:<a@b.c> SIZE=abc",
        "MAIL FROM:<a@b.c> SIZE=",
        "MAIL FROM:<a@b.c> SIZE",
        "MAIL FROM:<a@b.c> SIZE=1 SIZE=2",
        "MAIL FROM:<a@b.c> BODY=7BIT BODY=8BITMIME",
        "MAIL FROM:<a@b.c> BODY=BINARYMIME",
        "MAIL FROM:<a@b.c> SMTPUTF8=yes",
        "MAIL FROM:<a@b.c> =x",
        "RCPT",
        "RCPT TO:",
        "RCPT TO:<>",
        "RCPT TO:user@localhost",
        "RCPT FROM:<user@localhost>",
        "RCPT TO:<user@localhost> extra<",
        "RCPT TO:<\"unterminated@localhost>",
        // Invisible or line-breaking characters in a local part would go
        // raw into our trace headers and logs.
        "RCPT TO:<bob\u{2028}x@localhost>",
        "RCPT TO:<\"bob\u{2028}Received: x\"@localhost>",
        "MAIL FROM:<\u{202e}evil@b.test>",
        "RCPT TO:<\"a\u{feff}b\"@localhost>",
        "RCPT TO:<a\u{85}b@localhost>",
        "RCPT TO:<a\u{61c}b@localhost>",
        "RCPT TO:<a\u{e0041}b@localhost>",
        "EHLO a\u{ad}b.example",
        "DATA now",
        "RSET all",
        "QUIT please",
        "STARTTLS now",
        "VRFY",
        "EXPN",
        "MAIL FROM:<a@b.c>\0",
        "EHLO a\x01b",
    ] {
        assert!(
            syntax(line),
            "{line:?} should be a syntax error: {:?}",
            parse(line.as_bytes())
        );
    }
    for line in [
        "MAIL FROM:<a@b.c> AUTH=<>",
        "MAIL FROM:<a@b.c> RET=HDRS",
        "MAIL FROM:<a@b.c> X-UNKNOWN",
        "RCPT TO:<u@localhost> NOTIFY=NEVER",
        "RCPT TO:<u@localhost> ORCPT=rfc822;u@localhost",
    ] {
        assert!(
            param(line),
            "{line:?} should be an unknown parameter: {:?}",
            parse(line.as_bytes())
        );
    }
    assert_eq!(
        parse(b"MAIL FROM:<a@b.c> \xff"),
        Err(ParseError::Syntax("invalid UTF-8"))
    );
}

#[test]
fn bad_addresses_and_verbs_not_offered() {
    let sender = Err(ParseError::BadAddress { sender: true });
    let recipient = Err(ParseError::BadAddress { sender: false });
    for line in [
        "MAIL FROM:",
        "MAIL FROM:alice@example.org",
        "MAIL FROM: <alice@example.org",
        "MAIL FROM:<alice@>",
        "MAIL FROM:<a..b@example.org>",
    ] {
        assert_eq!(parse(line.as_bytes()), sender, "{line:?}");
    }
    for line in [
        "RCPT TO:",
        "RCPT TO:<>",
        "RCPT TO:user@localhost",
        "RCPT TO:<\"u@localhost>",
    ] {
        assert_eq!(parse(line.as_bytes()), recipient, "{line:?}");
    }
    // Without the keyword it is the command that is malformed.
    assert!(matches!(parse(b"MAIL TO:<a@b.c>"), Err(ParseError::Syntax(_))));
    assert!(matches!(parse(b"RCPT <a@b.c>"), Err(ParseError::Syntax(_))));
    for line in [
        "TURN",
        "etrn example.org",
        "AUTH PLAIN",
        "BDAT 10",
        "SEND FROM:<a@b>",
        "SOML",
        "SAML",
        "ATRN",
    ] {
        assert_eq!(
            parse(line.as_bytes()),
            Err(ParseError::NotImplemented),
            "{line:?}"
        );
    }
}

#[test]
fn errors_map_to_replies() {
    assert_eq!(ParseError::Unknown.reply().code, 500);
    assert_eq!(ParseError::Unknown.reply().enhanced, Some(codes::UNKNOWN));
    assert_eq!(ParseError::Syntax("x").reply().code, 501);
    assert_eq!(ParseError::Syntax("x").reply().enhanced, Some(codes::BAD_ARGS));
    let r = ParseError::BadAddress { sender: true }.reply();
    assert_eq!((r.code, r.enhanced), (501, Some(codes::BAD_SENDER)));
    let r = ParseError::BadAddress { sender: false }.reply();
    assert_eq!((r.code, r.enhanced), (501, Some(codes::BAD_ADDRESS)));
    let r = ParseError::NotImplemented.reply();
    assert_eq!((r.code, r.enhanced), (502, Some(codes::BAD_SEQUENCE)));
    let r = ParseError::UnknownParam("X\r\nINJECT".into()).reply();
    assert_eq!(r.code, 555);
    assert!(!r.to_string().contains('\n'));
}

#[test]
fn display_round_trips() {
    for line in [
        "EHLO client.example",
        "HELO [127.0.0.1]",
        "EHLO [IPv6:::1]",
        "MAIL FROM:<> SIZE=10 BODY=8BITMIME SMTPUTF8",
        "MAIL FROM:<\"a b\\\"c\"@x.org>",
        "RCPT TO:<postmaster>",
        "RCPT TO:<u@[x:y]>",
        "VRFY bob",
        "HELP DATA",
        "NOOP",
    ] {
        let cmd = parse(line.as_bytes()).unwrap();
        assert_eq!(parse(cmd.to_string().as_bytes()), Ok(cmd.clone()), "{line}");
    }
}

#[test]
fn a_parameter_repeated_with_the_same_meaning_is_taken_once() {
    // Python's smtplib sends `SMTPUTF8 SMTPUTF8` when a caller also asks
    // for it.
    let Ok(Command::Mail { params, .. }) =
        parse(b"MAIL FROM:<a@b.c> size=188 SMTPUTF8 SMTPUTF8 BODY=8BITMIME body=8bitmime SIZE=188")
    else {
        panic!("refused");
    };
    assert_eq!(
        (params.size, params.body, params.smtputf8),
        (Some(188), Some(Body::EightBitMime), true)
    );
}

/// Found by the `command_parser` fuzz target: `VRFY ?\rHLOE` parsed as a
/// VRFY whose argument held a bare CR. Only trailing CRs are line-ending
/// debris; a CR inside the line is refused like any control character.
#[test]
fn bare_cr_inside_a_command_is_refused() {
    for line in [
        &b"VRFY ?\rHLOE"[..],
        b"HELP a\rb",
        b"EXPN x\r y",
        b"NOOP\rQUIT",
        b"VRFY a\r\rb\r",
    ] {
        assert_eq!(
            parse(line),
            Err(ParseError::Syntax("control characters in command")),
            "{line:?}"
        );
    }
    assert_eq!(parse(b"NOOP\r"), Ok(Command::Noop));
    // NOOP's argument is ignored, even when it is not UTF-8.
    for line in [&b"NOOP \xff\xfe"[..], b"noop\tanything at all", b"NOOP \r\r"] {
        assert_eq!(parse(line), Ok(Command::Noop), "{line:?}");
    }
    assert_eq!(parse(b"NOOPS"), Err(ParseError::Unknown));
    assert!(parse(b"NOOP \xff\0").is_err());
    assert_eq!(parse(b"VRFY bob \r\r"), Ok(Command::Vrfy("bob".into())));
}
