//! The state machine fed arbitrary command lines: it never panics, every
//! reply is well formed (a 2xx–5xx code, no line break smuggled into a
//! reply line), and the envelope always agrees with the phase.
//!
//! Input layout: byte 0 picks the policy (STARTTLS offered, error limit,
//! recipient limit); the rest is split at LF into command lines. After a
//! 354 the next line's first byte picks how the DATA transfer ended.

#![no_main]

use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;

use libfuzzer_sys::fuzz_target;
use maildoor::smtp::command::parse;
use maildoor::smtp::reply::{codes, Reply};
use maildoor::smtp::state::{DataOutcome, Next, Phase, Policy, Session};

fn check_reply(r: &Reply) {
    assert!((200..600).contains(&r.code), "reply code {}", r.code);
    assert!(!r.lines.is_empty(), "reply without text");
    for line in &r.lines {
        assert!(!line.contains(['\r', '\n']), "line break in reply line {line:?}");
        // RFC 6531 §3.7.4.2: replies are ASCII.
        assert!(line.is_ascii(), "non-ASCII reply line {line:?}");
    }
    let mut wire = Vec::new();
    r.write_to(&mut wire);
    assert!(wire.ends_with(b"\r\n"));
}

fn check_invariants(s: &Session, max_rcpts: usize) {
    if s.phase() == Phase::Closed {
        // The error limit closes the session wherever it was.
        return;
    }
    let in_transaction = matches!(s.phase(), Phase::Mail | Phase::Rcpt | Phase::Data);
    assert_eq!(
        s.envelope().is_some(),
        in_transaction,
        "envelope in {:?}",
        s.phase()
    );
    if let Some(env) = s.envelope() {
        assert!(env.rcpts.len() <= max_rcpts);
        assert_eq!(
            env.rcpts.is_empty(),
            s.phase() == Phase::Mail,
            "recipients {} in {:?}",
            env.rcpts.len(),
            s.phase()
        );
    }
}

fn outcome(pick: u8) -> DataOutcome {
    match pick % 5 {
        0 => DataOutcome::Stored("1.M1P1Q1".into()),
        1 => DataOutcome::TooBig,
        2 => DataOutcome::Rejected(Reply::new(550, codes::UNKNOWN, "no")),
        3 => DataOutcome::StoreFailed { full: true },
        _ => DataOutcome::StoreFailed { full: false },
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&p, input)) = data.split_first() else {
        return;
    };
    let max_recipients = usize::from(p >> 4) % 4 + 1;
    let policy = Arc::new(Policy {
        hostname: "mx.test".into(),
        domains: vec!["localhost".into(), "example.org".into()],
        max_message_size: 1000,
        max_recipients,
        max_errors: u32::from(p & 0x7) * 4 + 1,
        starttls: p & 0x8 != 0,
        per_recipient: p & 0x4 != 0,
        recipient_delimiter: Some('+'),
        existing_mailboxes: None,
    });
    let mut s = Session::new(policy, IpAddr::V4(Ipv4Addr::LOCALHOST));
    check_reply(&s.greeting());
    let mut lines = input.split(|&b| b == b'\n');
    while let Some(raw) = lines.next() {
        let line = raw.strip_suffix(b"\r").unwrap_or(raw);
        let mut step = s.command(parse(line));
        check_reply(&step.reply);
        if step.next != Next::StartTls {
            // Between 220 and the handshake the old envelope may linger;
            // `tls_started` drops it (checked below).
            check_invariants(&s, max_recipients);
        }
        if step.next == Next::ReceiveData {
            assert_eq!(step.reply.code, 354);
            assert_eq!(s.phase(), Phase::Data);
            let pick = lines.next().and_then(|l| l.first().copied()).unwrap_or(0);
            step = s.data_done(outcome(pick));
            check_reply(&step.reply);
            check_invariants(&s, max_recipients);
        }
        match step.next {
            Next::Continue => assert_ne!(s.phase(), Phase::Closed),
            Next::ReceiveData => unreachable!("data_done asked for more data"),
            Next::StartTls => {
                assert_eq!(step.reply.code, 220);
                s.tls_started();
                assert!(s.is_tls());
                check_invariants(&s, max_recipients);
            }
            Next::Close => {
                assert_eq!(step.reply.code, 221);
                return;
            }
            Next::CloseWith(r) => {
                check_reply(&r);
                assert_eq!(r.code, 421);
                return;
            }
        }
    }
});
