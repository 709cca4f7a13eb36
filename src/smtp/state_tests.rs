//! State machine transitions, written as dialogues: command line in,
//! reply code and enhanced code out.

use super::*;
use crate::smtp::command::parse;
use crate::smtp::reply::Enhanced;

fn policy() -> Arc<Policy> {
    Arc::new(Policy {
        hostname: "mx.test".into(),
        domains: vec!["localhost".into(), "example.org".into()],
        max_message_size: 1000,
        max_recipients: 3,
        max_errors: 10,
        starttls: false,
        per_recipient: false,
        recipient_delimiter: None,
        existing_mailboxes: None,
    })
}

fn session() -> Session {
    Session::new(policy(), "127.0.0.1".parse().unwrap())
}

/// Sends one line; returns (code, enhanced code).
fn send(s: &mut Session, line: &str) -> (u16, Option<Enhanced>) {
    let step = s.command(parse(line.as_bytes()));
    (step.reply.code, step.reply.enhanced)
}

fn code(s: &mut Session, line: &str) -> u16 {
    send(s, line).0
}

fn e(a: u8, b: u16, c: u16) -> Option<Enhanced> {
    Some(Enhanced(a, b, c))
}

#[test]
fn a_hello_reply_line_stays_within_512_octets() {
    let label = "h".repeat(63);
    let long = [label.as_str(); 4].join(".")[..253].to_string();
    let mut s = Session::new(
        Arc::new(Policy {
            hostname: long.clone(),
            ..(*policy()).clone()
        }),
        "127.0.0.1".parse().unwrap(),
    );
    let client = [label.as_str(); 4].join(".");
    for verb in ["EHLO", "HELO"] {
        let text = s
            .command(parse(format!("{verb} {client}").as_bytes()))
            .reply
            .to_string();
        assert!(text.lines().all(|l| l.len() + 2 <= 512), "{text}");
        let first = format!("250{}{long} Hello", if verb == "EHLO" { '-' } else { ' ' });
        assert_eq!(text.lines().next(), Some(first.as_str()));
    }
    // A name that fits is echoed.
    assert!(session()
        .command(parse(b"HELO c.test"))
        .reply
        .to_string()
        .ends_with("Hello c.test"));
}

#[test]
fn greeting_and_ehlo_advertise_extensions() {
    let mut s = session();
    assert_eq!(s.greeting().to_string(), "220 mx.test ESMTP maildoor");
    let step = s.command(parse(b"EHLO client"));
    assert_eq!(step.reply.code, 250);
    let text = step.reply.to_string();
    for ext in [
        "PIPELINING",
        "SIZE 1000",
        "8BITMIME",
        "ENHANCEDSTATUSCODES",
        "SMTPUTF8",
    ] {
        assert!(text.contains(ext), "{ext} missing from {text}");
    }
    assert!(!text.contains("STARTTLS"));
    assert_eq!(s.phase(), Phase::Ready);
    // Neither reply to a hello carries an enhanced code (RFC 2034 §3):
    // the first word after 250 is the server's name.
    assert!(text.starts_with("250-mx.test Hello client\r\n"), "{text}");
    let step = s.command(parse(b"HELO client"));
    assert_eq!(step.reply.enhanced, None);
    assert_eq!(step.reply.to_string(), "250 mx.test Hello client");
}

#[test]
fn full_transaction() {
    let mut s = session();
    assert_eq!(send(&mut s, "EHLO c"), (250, None));
    assert_eq!(send(&mut s, "MAIL FROM:<a@b.c>"), (250, e(2, 1, 0)));
    assert_eq!(s.phase(), Phase::Mail);
    assert_eq!(send(&mut s, "RCPT TO:<u@localhost>"), (250, e(2, 1, 5)));
    assert_eq!(s.phase(), Phase::Rcpt);
    let step = s.command(parse(b"DATA"));
    assert_eq!(step.reply.code, 354);
    assert_eq!(step.next, Next::ReceiveData);
    assert_eq!(s.phase(), Phase::Data);
    let step = s.data_done(DataOutcome::Stored("ID1".into()));
    assert_eq!(step.reply.to_string(), "250 2.0.0 Ok: queued as ID1");
    assert_eq!(s.phase(), Phase::Ready);
    assert!(s.envelope().is_none());
    // A second transaction on the same session.
    assert_eq!(code(&mut s, "MAIL FROM:<>"), 250);
    assert_eq!(code(&mut s, "RCPT TO:<postmaster>"), 250);
    let step = s.command(parse(b"QUIT"));
    assert_eq!((step.reply.code, step.next), (221, Next::Close));
}

#[test]
fn bad_sequences_get_503() {
    let mut s = session();
    assert_eq!(send(&mut s, "MAIL FROM:<a@b.c>"), (503, e(5, 5, 1)));
    assert_eq!(send(&mut s, "RCPT TO:<u@localhost>"), (503, e(5, 5, 1)));
    assert_eq!(send(&mut s, "DATA"), (503, e(5, 5, 1)));
    assert_eq!(code(&mut s, "HELO c"), 250);
    assert_eq!(send(&mut s, "RCPT TO:<u@localhost>"), (503, e(5, 5, 1)));
    assert_eq!(send(&mut s, "DATA"), (503, e(5, 5, 1)));
    assert_eq!(code(&mut s, "MAIL FROM:<a@b.c>"), 250);
    assert_eq!(send(&mut s, "MAIL FROM:<a@b.c>"), (503, e(5, 5, 1)));
    assert_eq!(send(&mut s, "DATA"), (554, e(5, 5, 1)));
}

#[test]
fn commands_allowed_anywhere() {
    let mut s = session();
    assert_eq!(send(&mut s, "NOOP"), (250, e(2, 0, 0)));
    assert_eq!(send(&mut s, "RSET"), (250, e(2, 0, 0)));
    assert_eq!(s.phase(), Phase::Connected);
    assert_eq!(send(&mut s, "VRFY bob"), (252, e(2, 5, 0)));
    assert_eq!(send(&mut s, "EXPN list"), (502, e(5, 5, 1)));
    assert_eq!(send(&mut s, "HELP"), (214, e(2, 0, 0)));
    assert_eq!(send(&mut s, "STARTTLS"), (502, e(5, 5, 1)));
}

#[test]
fn rset_and_ehlo_clear_the_transaction() {
    let mut s = session();
    code(&mut s, "EHLO c");
    code(&mut s, "MAIL FROM:<a@b.c>");
    code(&mut s, "RCPT TO:<u@localhost>");
    assert_eq!(code(&mut s, "RSET"), 250);
    assert!(s.envelope().is_none());
    assert_eq!(s.phase(), Phase::Ready);
    assert_eq!(code(&mut s, "RCPT TO:<u@localhost>"), 503);
    code(&mut s, "MAIL FROM:<a@b.c>");
    assert_eq!(code(&mut s, "EHLO again"), 250);
    assert!(s.envelope().is_none());
    assert_eq!(code(&mut s, "MAIL FROM:<a@b.c>"), 250);
}

#[test]
fn relay_is_refused_and_local_domains_accepted() {
    let mut s = session();
    code(&mut s, "EHLO c");
    code(&mut s, "MAIL FROM:<a@b.c>");
    assert_eq!(send(&mut s, "RCPT TO:<victim@elsewhere.net>"), (550, e(5, 7, 1)));
    assert_eq!(send(&mut s, "RCPT TO:<x@localhost.evil.net>"), (550, e(5, 7, 1)));
    assert_eq!(
        send(&mut s, "RCPT TO:<postmaster@elsewhere.net>"),
        (550, e(5, 7, 1))
    );
    assert_eq!(code(&mut s, "RCPT TO:<User@EXAMPLE.org>"), 250);
    assert_eq!(code(&mut s, "RCPT TO:<postmaster>"), 250);
    assert_eq!(code(&mut s, "RCPT TO:<u@[127.0.0.1]>"), 250);
    assert_eq!(code(&mut s, "RCPT TO:<u@[10.0.0.1]>"), 550);
    assert_eq!(code(&mut s, "RCPT TO:<u@[x:y]>"), 550);
    assert_eq!(s.envelope().unwrap().rcpts.len(), 3);
}

#[test]
fn recipient_limit_gives_452_and_duplicates_collapse() {
    let mut s = session();
    code(&mut s, "EHLO c");
    code(&mut s, "MAIL FROM:<a@b.c>");
    for i in 0..3 {
        assert_eq!(code(&mut s, &format!("RCPT TO:<u{i}@localhost>")), 250);
    }
    assert_eq!(send(&mut s, "RCPT TO:<u9@localhost>"), (452, e(4, 5, 3)));
    let mut s = session();
    code(&mut s, "EHLO c");
    code(&mut s, "MAIL FROM:<a@b.c>");
    code(&mut s, "RCPT TO:<u@localhost>");
    code(&mut s, "RCPT TO:<u@localhost>");
    assert_eq!(s.envelope().unwrap().rcpts.len(), 1);
}

#[test]
fn size_is_checked_at_mail_and_after_data() {
    let mut s = session();
    code(&mut s, "EHLO c");
    assert_eq!(send(&mut s, "MAIL FROM:<a@b.c> SIZE=1001"), (552, e(5, 3, 4)));
    assert_eq!(code(&mut s, "MAIL FROM:<a@b.c> SIZE=1000"), 250);
    code(&mut s, "RCPT TO:<u@localhost>");
    code(&mut s, "DATA");
    let step = s.data_done(DataOutcome::TooBig);
    assert_eq!((step.reply.code, step.reply.enhanced), (552, e(5, 3, 4)));
    assert_eq!(s.phase(), Phase::Ready);
}

#[test]
fn storage_failures_are_temporary() {
    for (full, want) in [(false, (451, e(4, 3, 0))), (true, (452, e(4, 3, 1)))] {
        let mut s = session();
        code(&mut s, "EHLO c");
        code(&mut s, "MAIL FROM:<a@b.c>");
        code(&mut s, "RCPT TO:<u@localhost>");
        code(&mut s, "DATA");
        let step = s.data_done(DataOutcome::StoreFailed { full });
        assert_eq!((step.reply.code, step.reply.enhanced), want);
    }
}

#[test]
fn utf8_addresses_need_smtputf8() {
    let mut s = session();
    code(&mut s, "EHLO c");
    assert_eq!(send(&mut s, "MAIL FROM:<josé@b.c>"), (550, e(5, 6, 7)));
    assert_eq!(code(&mut s, "MAIL FROM:<a@b.c>"), 250);
    assert_eq!(send(&mut s, "RCPT TO:<müller@localhost>"), (553, e(5, 6, 7)));
    code(&mut s, "RSET");
    assert_eq!(code(&mut s, "MAIL FROM:<josé@b.c> SMTPUTF8"), 250);
    assert_eq!(code(&mut s, "RCPT TO:<müller@localhost>"), 250);
}

#[test]
fn a_local_domain_is_local_in_either_of_its_forms() {
    let mut p = (*policy()).clone();
    p.domains = vec!["xn--bcher-kva.example".into()];
    let mut s = Session::new(Arc::new(p), "127.0.0.1".parse().unwrap());
    let hello = s
        .command(parse("EHLO mail.bücher.example".as_bytes()))
        .reply
        .to_string();
    assert!(
        hello.is_ascii() && hello.contains("Hello mail.xn--bcher-kva.example"),
        "{hello}"
    );
    code(&mut s, "MAIL FROM:<a@b.c> SMTPUTF8");
    for rcpt in ["x@bücher.example", "x@BÜCHER.example", "x@XN--bcher-KVA.example"] {
        assert_eq!(code(&mut s, &format!("RCPT TO:<{rcpt}>")), 250, "{rcpt}");
    }
    assert_eq!(send(&mut s, "RCPT TO:<x@bucher.example>"), (550, e(5, 7, 1)));
}

#[test]
fn parse_errors_and_long_lines() {
    let mut s = session();
    assert_eq!(send(&mut s, "BOGUS"), (500, e(5, 5, 2)));
    assert_eq!(send(&mut s, "MAIL FROM:nobrackets"), (501, e(5, 1, 7)));
    assert_eq!(send(&mut s, "MAIL nokeyword"), (501, e(5, 5, 4)));
    code(&mut s, "EHLO c");
    assert_eq!(send(&mut s, "MAIL FROM:<a@b.c> FOO=1"), (555, e(5, 5, 4)));
    let step = s.line_too_long();
    assert_eq!((step.reply.code, step.reply.enhanced), (500, e(5, 5, 2)));
    let step = s.bare_lf_command();
    assert_eq!((step.reply.code, step.reply.enhanced), (550, e(5, 5, 2)));
}

#[test]
fn error_limit_closes_with_421() {
    let mut s = session();
    for _ in 0..9 {
        assert_eq!(s.command(parse(b"BOGUS")).next, Next::Continue);
    }
    let step = s.command(parse(b"BOGUS"));
    assert_eq!(step.reply.code, 500);
    match step.next {
        Next::CloseWith(r) => assert_eq!((r.code, r.enhanced), (421, e(4, 7, 0))),
        other => panic!("expected close, got {other:?}"),
    }
    assert_eq!(s.phase(), Phase::Closed);
}

#[test]
fn a_delivered_message_starts_the_error_count_again() {
    let mut s = session();
    code(&mut s, "EHLO c");
    for _ in 0..9 {
        assert_eq!(s.command(parse(b"BOGUS")).next, Next::Continue);
    }
    code(&mut s, "MAIL FROM:<a@b.c>");
    code(&mut s, "RCPT TO:<u@localhost>");
    assert_eq!(s.command(parse(b"DATA")).next, Next::ReceiveData);
    assert_eq!(s.data_done(DataOutcome::Stored("id".into())).reply.code, 250);
    for _ in 0..9 {
        assert_eq!(s.command(parse(b"BOGUS")).next, Next::Continue);
    }
    assert!(matches!(s.command(parse(b"BOGUS")).next, Next::CloseWith(_)));
}

#[test]
fn storage_failures_are_not_the_clients_errors() {
    let mut s = session();
    code(&mut s, "EHLO c");
    // Twice max_errors transactions on a full, then a failing, disk.
    for full in [true, false].repeat(10) {
        code(&mut s, "MAIL FROM:<a@b.c>");
        code(&mut s, "RCPT TO:<u@localhost>");
        assert_eq!(s.command(parse(b"DATA")).next, Next::ReceiveData);
        let step = s.data_done(DataOutcome::StoreFailed { full });
        assert_eq!(
            (step.reply.code, step.next),
            (if full { 452 } else { 451 }, Next::Continue)
        );
    }
    assert_eq!(s.command(parse(b"BOGUS")).next, Next::Continue);
}

#[test]
fn starttls_when_offered_resets_everything_outside_a_transaction() {
    let mut p = (*policy()).clone();
    p.starttls = true;
    let mut s = Session::new(Arc::new(p), "127.0.0.1".parse().unwrap());
    assert_eq!(code(&mut s, "STARTTLS"), 503);
    let ehlo = s.command(parse(b"EHLO c")).reply.to_string();
    assert!(ehlo.contains("STARTTLS"));
    assert!(s.command(parse(b"HELP")).reply.to_string().contains("STARTTLS"));
    code(&mut s, "MAIL FROM:<a@b.c>");
    // Not in the middle of a transaction: the reset would drop it.
    assert_eq!(send(&mut s, "STARTTLS"), (503, e(5, 5, 1)));
    code(&mut s, "RCPT TO:<user@localhost>");
    assert_eq!(code(&mut s, "STARTTLS"), 503);
    assert!(s.envelope().is_some());
    code(&mut s, "RSET");
    let step = s.command(parse(b"STARTTLS"));
    assert_eq!((step.reply.code, step.next), (220, Next::StartTls));
    s.tls_started();
    assert!(s.hello().is_none() && s.envelope().is_none());
    assert_eq!(code(&mut s, "MAIL FROM:<a@b.c>"), 503);
    let ehlo = s.command(parse(b"EHLO c")).reply.to_string();
    assert!(!ehlo.contains("STARTTLS"));
    assert!(!s.command(parse(b"HELP")).reply.to_string().contains("STARTTLS"));
    assert_eq!(code(&mut s, "STARTTLS"), 503);
}

#[test]
fn per_recipient_delivery_refuses_unsafe_mailbox_names() {
    let mut p = (*policy()).clone();
    p.per_recipient = true;
    p.recipient_delimiter = Some('+');
    let mut s = Session::new(Arc::new(p), "127.0.0.1".parse().unwrap());
    code(&mut s, "EHLO c");
    code(&mut s, "MAIL FROM:<a@b.c>");
    assert_eq!(send(&mut s, "RCPT TO:<\"../x\"@localhost>"), (553, e(5, 1, 3)));
    assert_eq!(send(&mut s, "RCPT TO:<\"a/b\"@localhost>"), (553, e(5, 1, 3)));
    assert_eq!(send(&mut s, "RCPT TO:<%2e%2e@localhost>"), (553, e(5, 1, 3)));
    assert_eq!(code(&mut s, "RCPT TO:<user+tag@localhost>"), 250);
    assert_eq!(code(&mut s, "RCPT TO:<postmaster>"), 250);
    // Outside our domains it is still a relay refusal, not a name problem.
    assert_eq!(
        send(&mut s, "RCPT TO:<\"../x\"@elsewhere.net>"),
        (550, e(5, 7, 1))
    );
}

/// A fixed list of existing mailboxes, as `user@domain`.
#[derive(Debug)]
struct Listed(Vec<&'static str>);

impl route::Mailboxes for Listed {
    fn exists(&self, key: &route::MailboxKey) -> bool {
        self.0.contains(&format!("{}@{}", key.user, key.domain).as_str())
    }
}

#[test]
fn existing_mailboxes_only_refuses_unknown_recipients_but_never_postmaster() {
    let mut p = (*policy()).clone();
    p.per_recipient = true;
    p.recipient_delimiter = Some('+');
    p.existing_mailboxes = Some(Arc::new(Listed(vec!["alice@example.org"])));
    let mut s = Session::new(Arc::new(p), "127.0.0.1".parse().unwrap());
    code(&mut s, "EHLO c");
    code(&mut s, "MAIL FROM:<a@b.c>");
    assert_eq!(send(&mut s, "RCPT TO:<bob@example.org>"), (550, e(5, 1, 1)));
    assert_eq!(send(&mut s, "RCPT TO:<alice@localhost>"), (550, e(5, 1, 1)));
    assert_eq!(code(&mut s, "RCPT TO:<Alice+news@Example.ORG>"), 250);
    assert_eq!(code(&mut s, "RCPT TO:<postmaster>"), 250);
    assert_eq!(code(&mut s, "RCPT TO:<PostMaster@localhost>"), 250);
    // Names are still checked first, and relaying is still refused.
    assert_eq!(send(&mut s, "RCPT TO:<\"../x\"@localhost>"), (553, e(5, 1, 3)));
    assert_eq!(send(&mut s, "RCPT TO:<bob@elsewhere.net>"), (550, e(5, 7, 1)));
    // Unknown mailboxes are not protocol errors: many do not close the session.
    for i in 0..20 {
        assert_eq!(code(&mut s, &format!("RCPT TO:<gone{i}@example.org>")), 550);
    }
    assert_eq!(code(&mut s, "DATA"), 354);
}

#[test]
fn too_many_recipients_is_not_a_protocol_error() {
    let mut p = (*policy()).clone();
    p.max_errors = 3;
    let mut s = Session::new(Arc::new(p), "127.0.0.1".parse().unwrap());
    code(&mut s, "EHLO c");
    code(&mut s, "MAIL FROM:<a@b.c>");
    for i in 0..3 {
        assert_eq!(code(&mut s, &format!("RCPT TO:<u{i}@localhost>")), 250);
    }
    for i in 3..10 {
        let step = s.command(parse(format!("RCPT TO:<u{i}@localhost>").as_bytes()));
        assert_eq!((step.reply.code, step.next), (452, Next::Continue));
    }
    assert_eq!(s.command(parse(b"DATA")).reply.code, 354);
}

#[test]
fn mail_parameters_need_ehlo() {
    let mut s = session();
    code(&mut s, "HELO c");
    assert_eq!(send(&mut s, "MAIL FROM:<a@b.c> SIZE=10"), (555, e(5, 5, 4)));
    assert_eq!(code(&mut s, "MAIL FROM:<a@b.c>"), 250);
}
