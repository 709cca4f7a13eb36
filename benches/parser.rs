//! The command parser: nanoseconds per command line.
//!
//! `mix` is what a server parses for typical mail: per message an EHLO,
//! a MAIL with SIZE/BODY parameters, recipients, DATA and QUIT, with the
//! occasional RSET and NOOP; throughput is in commands (elements). The
//! other benches are single lines, to see which verb costs what.

use std::hint::black_box;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use maildoor::smtp::command::parse;

/// Command lines as they arrive (without CRLF), in a realistic proportion.
const MIX: &[&str] = &[
    "EHLO mail.example.org",
    "MAIL FROM:<alice@example.net> SIZE=12345 BODY=8BITMIME",
    "RCPT TO:<bob@localhost>",
    "DATA",
    "QUIT",
    "EHLO [192.0.2.7]",
    "MAIL FROM:<> SIZE=2048",
    "RCPT TO:<postmaster>",
    "DATA",
    "RSET",
    "ehlo relay-03.mx.example.com",
    "MAIL FROM:<newsletter+bounces-123@lists.example.com> BODY=7BIT SIZE=40960",
    "RCPT TO:<bob@localhost>",
    "RCPT TO:<\"carol smith\"@example.org>",
    "RCPT TO:<dave@example.org>",
    "NOOP",
    "DATA",
    "QUIT",
    "HELO client",
    "MAIL FROM:<user@[IPv6:2001:db8::1]>",
    "RCPT TO:<erin@localhost>",
    "DATA",
    "QUIT",
];

fn parser(c: &mut Criterion) {
    let mut g = c.benchmark_group("parser");
    g.warm_up_time(Duration::from_millis(500));
    g.measurement_time(Duration::from_secs(2));
    g.throughput(Throughput::Elements(MIX.len() as u64));
    g.bench_function("mix", |b| {
        b.iter(|| {
            for line in MIX {
                let _ = black_box(parse(black_box(line.as_bytes())));
            }
        })
    });
    g.throughput(Throughput::Elements(1));
    for (name, line) in [
        (
            "mail_size_body",
            "MAIL FROM:<alice@example.net> SIZE=12345 BODY=8BITMIME",
        ),
        ("rcpt", "RCPT TO:<bob@localhost>"),
        ("data", "DATA"),
    ] {
        g.bench_function(name, |b| b.iter(|| black_box(parse(black_box(line.as_bytes())))));
    }
    g.finish();
}

criterion_group!(benches, parser);
criterion_main!(benches);
