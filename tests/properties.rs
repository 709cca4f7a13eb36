//! Property tests for the sans-IO core, run with the normal test suite
//! (bounded case counts, a second or two in all): the command parser
//! never panics and its `Display` form parses back to the same command;
//! the DATA decoder does not care how its input is split into reads, ends
//! a message only at `CRLF . CRLF`, and undoes a client's dot-stuffing.
//! The `fuzz/` targets push the same properties much further.

use std::net::{Ipv4Addr, Ipv6Addr};

use maildoor::smtp::command::{
    parse, AddressLiteral, Body, Command, Domain, ForwardPath, MailParams, Mailbox, ReversePath,
};
use maildoor::smtp::data::{DataDecoder, Progress};
use proptest::prelude::*;

const TERMINATOR: &[u8] = b"\r\n.\r\n";

// ---------------------------------------------------------------- parser

fn domain_name() -> impl Strategy<Value = String> {
    prop::collection::vec("[a-zA-Z0-9][a-zA-Z0-9_-]{0,8}", 1..4).prop_map(|labels| labels.join("."))
}

fn domain() -> impl Strategy<Value = Domain> {
    prop_oneof![
        4 => domain_name().prop_map(Domain::Name),
        1 => any::<u32>().prop_map(|a| Domain::Literal(AddressLiteral::V4(Ipv4Addr::from(a)))),
        1 => any::<u128>().prop_map(|a| Domain::Literal(AddressLiteral::V6(Ipv6Addr::from(a)))),
        1 => ("[a-zA-Z0-9]([a-zA-Z0-9-]{0,4}[a-zA-Z0-9])?", "[!-Z^-~]{1,12}")
            .prop_filter("IPv6 is not a general tag", |(tag, _)| !tag.eq_ignore_ascii_case("IPv6"))
            .prop_map(|(tag, content)| Domain::Literal(AddressLiteral::General { tag, content })),
    ]
}

fn mailbox() -> impl Strategy<Value = Mailbox> {
    let local = prop_oneof![
        // Dot-strings, written bare.
        "[a-zA-Z0-9!#$%&'*+/=?^_`{|}~-]{1,8}(\\.[a-zA-Z0-9!#$%&'*+/=?^_`{|}~-]{1,8}){0,2}",
        // Anything printable, written as a quoted string (empty included).
        "[ -~]{0,16}",
    ];
    (local, domain()).prop_map(|(local, domain)| Mailbox { local, domain })
}

/// Free text for VRFY, EXPN and HELP: printable, no outer spaces.
fn text() -> impl Strategy<Value = String> {
    "[!-~]([ -~]{0,20}[!-~])?"
}

fn command() -> impl Strategy<Value = Command> {
    let params = (
        prop::option::of(any::<u64>()),
        prop::option::of(prop_oneof![Just(Body::SevenBit), Just(Body::EightBitMime)]),
        any::<bool>(),
    )
        .prop_map(|(size, body, smtputf8)| MailParams { size, body, smtputf8 });
    let from = prop_oneof![
        1 => Just(ReversePath::Null),
        4 => mailbox().prop_map(ReversePath::Mailbox),
    ];
    let to = prop_oneof![
        1 => Just(ForwardPath::Postmaster),
        4 => mailbox().prop_map(ForwardPath::Mailbox),
    ];
    prop_oneof![
        domain().prop_map(Command::Ehlo),
        domain().prop_map(Command::Helo),
        (from, params).prop_map(|(from, params)| Command::Mail { from, params }),
        to.prop_map(|to| Command::Rcpt { to }),
        Just(Command::Data),
        Just(Command::Rset),
        Just(Command::Noop),
        Just(Command::Quit),
        Just(Command::StartTls),
        text().prop_map(Command::Vrfy),
        text().prop_map(Command::Expn),
        prop::option::of(text()).prop_map(Command::Help),
    ]
}

/// Lines that look like commands: a real verb (any case) and then noise.
fn command_like_line() -> impl Strategy<Value = String> {
    let verb = prop::sample::select(vec![
        "EHLO ",
        "helo ",
        "MAIL FROM:",
        "mail from:<",
        "RCPT TO:",
        "RCPT TO:<",
        "DATA",
        "RSET",
        "NOOP ",
        "QUIT",
        "VRFY ",
        "EXPN ",
        "HELP ",
        "STARTTLS",
        "",
    ]);
    (verb, "[ -~\t]{0,80}").prop_map(|(v, rest)| format!("{v}{rest}"))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1000))]

    #[test]
    fn parse_never_panics_on_bytes(line in prop::collection::vec(any::<u8>(), 0..600)) {
        let _ = parse(&line);
    }

    #[test]
    fn parse_never_panics_on_ascii_lines(line in "[\\x00-\\x7f]{0,300}") {
        let _ = parse(line.as_bytes());
    }

    #[test]
    fn parsed_lines_round_trip(line in command_like_line()) {
        // Whatever the parser accepts, its wire form parses back the same.
        if let Ok(cmd) = parse(line.as_bytes()) {
            let wire = cmd.to_string();
            prop_assert!(!wire.contains(['\r', '\n']), "{wire:?}");
            prop_assert_eq!(parse(wire.as_bytes()), Ok(cmd), "via {:?}", wire);
        }
    }

    #[test]
    fn bare_cr_inside_a_line_never_parses(
        head in command_like_line(),
        tail in "[!-~][ -~]{0,20}",
    ) {
        // RFC 5321 §2.3.8; the fuzzer found VRFY accepting `a\rb`.
        let line = format!("{head}\r{tail}");
        prop_assert!(parse(line.as_bytes()).is_err(), "{line:?}");
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn display_then_parse_round_trips(cmd in command()) {
        let wire = cmd.to_string();
        prop_assert!(!wire.contains(['\r', '\n']), "{wire:?}");
        prop_assert_eq!(parse(wire.as_bytes()), Ok(cmd.clone()), "via {:?}", wire);
        // Lower-case verbs and a trailing CR (as the session may pass it) too.
        let mut lower = wire.clone();
        if let Some(sp) = lower.find([' ', ':']) {
            lower.replace_range(..sp, &wire[..sp].to_ascii_lowercase());
        } else {
            lower = lower.to_ascii_lowercase();
        }
        lower.push('\r');
        prop_assert_eq!(parse(lower.as_bytes()), Ok(cmd), "via {:?}", lower);
    }
}

// ---------------------------------------------------------- DATA decoder

/// Feeds `input` cut at `cuts` (sorted, within bounds); returns the output
/// and where the message ended, if it did.
fn decode(input: &[u8], cuts: &[usize]) -> (Vec<u8>, Option<usize>) {
    let mut d = DataDecoder::new();
    let mut out = Vec::new();
    let mut start = 0;
    for &end in cuts.iter().chain(std::iter::once(&input.len())) {
        if let Progress::Done(n) = d.feed(&input[start..end], &mut out) {
            assert!(d.is_done());
            return (out, Some(start + n));
        }
        start = end;
    }
    (out, None)
}

/// Bytes rich in the characters that matter to the decoder.
fn wire_bytes(max: usize) -> impl Strategy<Value = Vec<u8>> {
    let byte = prop_oneof![
        3 => Just(b'\r'),
        3 => Just(b'\n'),
        3 => Just(b'.'),
        2 => Just(b'a'),
        1 => Just(b' '),
        1 => any::<u8>(),
    ];
    prop::collection::vec(byte, 0..max)
}

/// An input and sorted cut points within it.
fn split_input() -> impl Strategy<Value = (Vec<u8>, Vec<usize>)> {
    wire_bytes(200).prop_flat_map(|input| {
        let len = input.len();
        (Just(input), prop::collection::vec(0..=len, 0..8)).prop_map(|(input, mut cuts)| {
            cuts.sort_unstable();
            (input, cuts)
        })
    })
}

/// A body with no `CRLF . CRLF` in it (the start of DATA counts as a line start).
fn body_without_terminator() -> impl Strategy<Value = Vec<u8>> {
    wire_bytes(120).prop_filter("contains the terminator", |b| {
        let mut framed = b"\r\n".to_vec();
        framed.extend_from_slice(b);
        !framed.windows(TERMINATOR.len()).any(|w| w == TERMINATOR)
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1000))]

    #[test]
    fn splitting_reads_changes_nothing((input, cuts) in split_input()) {
        prop_assert_eq!(decode(&input, &cuts), decode(&input, &[]), "cuts {:?}", cuts);
        // One byte at a time as well.
        let every: Vec<usize> = (1..input.len()).collect();
        prop_assert_eq!(decode(&input, &every), decode(&input, &[]));
    }

    #[test]
    fn only_crlf_dot_crlf_ends_data(body in body_without_terminator(), cut in any::<prop::sample::Index>()) {
        let cut = cut.index(body.len() + 1);
        let (_, end) = decode(&body, &[cut]);
        prop_assert_eq!(end, None, "{:?} ended the message", String::from_utf8_lossy(&body));

        // Append the terminator and something pipelined after it.
        let mut input = body.clone();
        input.extend_from_slice(TERMINATOR);
        input.extend_from_slice(b"QUIT\r\n");
        // The terminator's CRLF may complete a line the body left at `CRLF .`
        // (or at the very start, `.`): then the end comes two bytes earlier.
        let early = body.ends_with(b"\r\n.") || body == b".";
        let want = body.len() + if early { 2 } else { TERMINATOR.len() };
        let (_, end) = decode(&input, &[cut]);
        prop_assert_eq!(end, Some(want), "{:?}", String::from_utf8_lossy(&input));
    }

    #[test]
    fn dot_stuffing_round_trips(
        lines in prop::collection::vec(
            prop::collection::vec(
                prop_oneof![3 => Just(b'.'), 1 => Just(b' '), 4 => any::<u8>()]
                    .prop_filter("no line breaks", |b| *b != b'\r' && *b != b'\n'),
                0..40,
            ),
            0..12,
        ),
        cuts in prop::collection::vec(any::<prop::sample::Index>(), 0..6),
    ) {
        // Stuff as a client does (RFC 5321 §4.5.2) and end with CRLF.CRLF.
        let mut wire = Vec::new();
        let mut want = Vec::new();
        for line in &lines {
            if line.first() == Some(&b'.') {
                wire.push(b'.');
            }
            wire.extend_from_slice(line);
            wire.extend_from_slice(b"\r\n");
            want.extend_from_slice(line);
            want.push(b'\n');
        }
        wire.extend_from_slice(b".\r\n");
        let mut cuts: Vec<usize> = cuts.iter().map(|i| i.index(wire.len() + 1)).collect();
        cuts.sort_unstable();
        let (out, end) = decode(&wire, &cuts);
        prop_assert_eq!(end, Some(wire.len()));
        prop_assert_eq!(out, want);
    }
}

#[test]
fn smuggling_variants_are_content() {
    // Every variant, wherever the reads are split, leaves the message open.
    for variant in [&b"\n.\n"[..], b"\n.\r\n", b"\r.\r", b"\r\n.\n", b"\r\n.\r"] {
        let mut body = b"Subject: x\r\n\r\nhello".to_vec();
        body.extend_from_slice(variant);
        body.extend_from_slice(b"MAIL FROM:<evil@example.net>");
        for cut in 0..=body.len() {
            assert_eq!(decode(&body, &[cut]).1, None, "{variant:?} cut at {cut}");
        }
    }
}
