//! The DATA decoder on arbitrary bytes split at fuzzer-chosen points.
//!
//! Input layout: the first byte says how many cut points follow (0–15),
//! each cut is two bytes (little endian, taken modulo the body length + 1),
//! and the rest is the body as the client sent it.
//!
//! Checked against a one-shot feed: same output, same end, same counters.
//! Checked against a tiny reference model written without the decoder's
//! state machine: the message ends right after the first `CRLF . CRLF`
//! (the start of DATA counts as a line start), and the output is the body
//! split at CRLF, one stuffing dot removed per line, lines joined by LF.

#![no_main]

use libfuzzer_sys::fuzz_target;
use maildoor::smtp::data::{DataDecoder, Progress};

/// What a decoder reported after some reads.
#[derive(Debug, PartialEq, Eq)]
struct Run {
    out: Vec<u8>,
    end: Option<usize>,
    wire_size: u64,
    bare_lf: bool,
    bare_cr: bool,
    longest_line: usize,
}

fn run(body: &[u8], cuts: &[usize]) -> Run {
    let mut d = DataDecoder::new();
    let mut out = Vec::new();
    let mut end = None;
    let mut start = 0;
    for &cut in cuts.iter().chain(std::iter::once(&body.len())) {
        let piece = &body[start..cut];
        match d.feed(piece, &mut out) {
            Progress::Done(n) => {
                assert!(n <= piece.len(), "Done({n}) past a piece of {}", piece.len());
                end = Some(start + n);
                break;
            }
            Progress::NeedMore => assert!(!d.is_done()),
        }
        start = cut;
    }
    Run {
        out,
        end,
        wire_size: d.wire_size(),
        bare_lf: d.saw_bare_lf(),
        bare_cr: d.saw_bare_cr(),
        longest_line: d.longest_line(),
    }
}

/// Reference: where the message ends (just after the terminator).
fn reference_end(body: &[u8]) -> Option<usize> {
    // Data starts at a line start, as if right after a CRLF.
    let mut framed = b"\r\n".to_vec();
    framed.extend_from_slice(body);
    framed
        .windows(5)
        .position(|w| w == b"\r\n.\r\n")
        .map(|p| p + 5 - 2)
}

/// Reference: the decoded text of `body` (without its terminator).
fn reference_out(body: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut lines = Vec::new();
    let mut rest = body;
    while let Some(p) = rest.windows(2).position(|w| w == b"\r\n") {
        lines.push(&rest[..p]);
        rest = &rest[p + 2..];
    }
    for line in lines {
        out.extend_from_slice(line.strip_prefix(b".").unwrap_or(line));
        out.push(b'\n');
    }
    out.extend_from_slice(rest.strip_prefix(b".").unwrap_or(rest));
    out
}

/// Reference: how many dots dot-stuffing added, which RFC 1870 leaves out
/// of the size: one per CRLF-delimited line starting with `.`, except a
/// trailing `.` or `.CR` whose meaning the next byte would decide.
fn stuffed_dots(body: &[u8]) -> u64 {
    let mut n = 0;
    let mut rest = body;
    while let Some(p) = rest.windows(2).position(|w| w == b"\r\n") {
        n += u64::from(rest.first() == Some(&b'.'));
        rest = &rest[p + 2..];
    }
    n + u64::from(rest.first() == Some(&b'.') && rest != b"." && rest != b".\r")
}

/// LFs not preceded by CR: each counts as CRLF toward the size.
fn bare_lfs(body: &[u8]) -> u64 {
    let bare = body
        .iter()
        .enumerate()
        .filter(|&(i, &b)| b == b'\n' && (i == 0 || body[i - 1] != b'\r'));
    bare.count() as u64
}

fn has_bare_cr(body: &[u8]) -> bool {
    body.iter()
        .enumerate()
        .any(|(i, &b)| b == b'\r' && body.get(i + 1) != Some(&b'\n'))
}

fuzz_target!(|data: &[u8]| {
    let Some((&n, rest)) = data.split_first() else {
        return;
    };
    let n = usize::from(n % 16);
    if rest.len() < 2 * n {
        return;
    }
    let (cut_bytes, body) = rest.split_at(2 * n);
    let mut cuts: Vec<usize> = cut_bytes
        .chunks_exact(2)
        .map(|c| usize::from(u16::from_le_bytes([c[0], c[1]])) % (body.len() + 1))
        .collect();
    cuts.sort_unstable();

    let whole = run(body, &[]);
    let split = run(body, &cuts);
    assert_eq!(split, whole, "cuts {cuts:?} changed the result");

    // Only CRLF.CRLF ends the message, and it ends at the first one.
    assert_eq!(whole.end, reference_end(body), "end position");
    match whole.end {
        Some(end) => {
            // The message proper: everything before `. CR LF`.
            let msg = &body[..end - 3];
            assert_eq!(whole.out, reference_out(msg), "decoded text");
            let size = msg.len() as u64 - stuffed_dots(msg) + bare_lfs(msg);
            assert_eq!(whole.wire_size, size, "wire size");
            assert_eq!(whole.bare_lf, bare_lfs(msg) > 0, "bare LF flag");
            assert_eq!(whole.bare_cr, has_bare_cr(msg), "bare CR flag");
        }
        None => {
            // A trailing CR (or `CRLF . CR`) may still be waiting for its LF.
            let want = reference_out(body);
            assert!(want.starts_with(&whole.out), "decoded text is not a prefix");
            let pending = &want[whole.out.len()..];
            assert!(pending.is_empty() || pending == b"\r", "pending {pending:?}");
            let size = body.len() as u64 - stuffed_dots(body) + bare_lfs(body);
            assert_eq!(whole.wire_size, size, "wire size");
            assert_eq!(whole.bare_lf, bare_lfs(body) > 0, "bare LF flag");
        }
    }
});
