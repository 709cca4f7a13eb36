//! The DATA decoder: bytes per second through dot-unstuffing and end
//! detection, fed in 16 KiB reads as a socket delivers them.
//!
//! Bodies of 1 KiB and 1 MiB, plain (no line starts with a dot) or
//! stuffed (every fourth line starts with a stuffed dot, as a client
//! sends lines that begin with "."). Throughput counts wire bytes, the
//! terminator included.

use std::hint::black_box;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use maildoor::smtp::data::{DataDecoder, Progress};

/// Size of one read from the socket.
const READ: usize = 16 * 1024;

/// A body of about `size` bytes on the wire: 76-octet text lines ending in
/// CRLF, every fourth one dot-stuffed if `stuffed`, then `CRLF . CRLF`.
fn wire_body(size: usize, stuffed: bool) -> Vec<u8> {
    let mut v = Vec::with_capacity(size + 80);
    let mut n = 0;
    while v.len() < size {
        if stuffed && n % 4 == 0 {
            v.extend_from_slice(b"..");
        }
        v.extend_from_slice(b"The quick brown fox jumps over the lazy dog; 0123456789 abcdefghijklmnopq");
        v.extend_from_slice(b"\r\n");
        n += 1;
    }
    v.extend_from_slice(b".\r\n");
    v
}

fn decoder(c: &mut Criterion) {
    let mut g = c.benchmark_group("data_decoder");
    g.warm_up_time(Duration::from_millis(500));
    g.measurement_time(Duration::from_secs(2));
    for (label, size) in [("1KiB", 1024), ("1MiB", 1 << 20)] {
        for stuffed in [false, true] {
            let wire = wire_body(size, stuffed);
            let mut out = Vec::with_capacity(wire.len());
            g.throughput(Throughput::Bytes(wire.len() as u64));
            let id = BenchmarkId::new(if stuffed { "stuffed" } else { "plain" }, label);
            g.bench_with_input(id, &wire, |b, wire| {
                b.iter(|| {
                    out.clear();
                    let mut d = DataDecoder::new();
                    for chunk in wire.chunks(READ) {
                        if let Progress::Done(n) = d.feed(black_box(chunk), &mut out) {
                            black_box(n);
                            break;
                        }
                    }
                    assert!(d.is_done());
                    black_box(out.len())
                })
            });
        }
    }
    g.finish();
}

criterion_group!(benches, decoder);
criterion_main!(benches);
