//! DATA decoder tests: dot-unstuffing, line endings, every split of the
//! terminator across reads, and the smuggling variants that must not end
//! a message.

use super::*;

/// Feeds `input` in the given pieces; returns (output, bytes consumed
/// after which the message ended, if it did).
fn decode_split(input: &[u8], cuts: &[usize]) -> (Vec<u8>, Option<usize>) {
    let mut d = DataDecoder::new();
    let mut out = Vec::new();
    let mut start = 0;
    let mut bounds: Vec<usize> = cuts.to_vec();
    bounds.push(input.len());
    for end in bounds {
        let piece = &input[start..end];
        if let Progress::Done(n) = d.feed(piece, &mut out) {
            return (out, Some(start + n));
        }
        start = end;
    }
    (out, None)
}

fn decode(input: &[u8]) -> (Vec<u8>, Option<usize>) {
    decode_split(input, &[])
}

#[test]
fn plain_message() {
    let (out, end) = decode(b"Subject: x\r\n\r\nhello\r\n.\r\n");
    assert_eq!(out, b"Subject: x\n\nhello\n");
    assert_eq!(end, Some(24));
}

#[test]
fn empty_message() {
    let (out, end) = decode(b".\r\nQUIT\r\n");
    assert_eq!(out, b"");
    assert_eq!(end, Some(3));
}

#[test]
fn dot_unstuffing() {
    let (out, _) = decode(b"..\r\n..leading\r\n...\r\nmid.dle\r\n .space\r\n.x\r\n.\r\n");
    assert_eq!(out, b".\n.leading\n..\nmid.dle\n .space\nx\n");
}

#[test]
fn pipelined_bytes_after_end_are_not_consumed() {
    let input = b"a\r\n.\r\nMAIL FROM:<>\r\n";
    let (out, end) = decode(input);
    assert_eq!(out, b"a\n");
    assert_eq!(&input[end.unwrap()..], b"MAIL FROM:<>\r\n");
}

#[test]
fn every_split_of_the_terminator() {
    let input = b"line one\r\n..two\r\n.\r\nNEXT";
    let want = b"line one\n.two\n".to_vec();
    let end = input.len() - 4;
    for a in 0..=input.len() {
        for b in a..=input.len() {
            let (out, got) = decode_split(input, &[a, b]);
            assert_eq!(out, want, "cuts {a},{b}");
            assert_eq!(got, Some(end), "cuts {a},{b}");
        }
    }
    // One byte at a time.
    let cuts: Vec<usize> = (1..input.len()).collect();
    assert_eq!(decode_split(input, &cuts), (want, Some(end)));
}

#[test]
fn smuggling_variants_never_end_the_message() {
    // RFC 5321 §4.1.1.4: only CRLF.CRLF ends DATA.
    for bad in [
        &b"a\n.\nb"[..],
        b"a\n.\r\nb",
        b"a\r.\rb",
        b"a\r\n.\nb",
        b"a\r\n.\rb",
        b"a\r.\r\nb",
        b"a\n.\n",
        b"\n.\r\n",
        b"a\r\n.\r",
        b"a\r\n. \r\n",
        b"a\r\n\r.\r\n",
    ] {
        for cut in 0..=bad.len() {
            let (_, end) = decode_split(bad, &[cut]);
            assert_eq!(end, None, "{bad:?} split at {cut} ended the message");
        }
    }
}

#[test]
fn smuggled_message_is_kept_as_content() {
    let input = b"body\n.\nMAIL FROM:<evil@x>\r\n.\r\n";
    let (out, end) = decode(input);
    assert_eq!(end, Some(input.len()));
    assert_eq!(out, b"body\n.\nMAIL FROM:<evil@x>\n");
}

#[test]
fn bare_cr_and_lf_are_flagged() {
    let mut d = DataDecoder::new();
    let mut out = Vec::new();
    d.feed(b"a\rb\r\n", &mut out);
    assert!(d.saw_bare_cr());
    assert!(!d.saw_bare_lf());
    d.feed(b"c\nd\r\n.\r\n", &mut out);
    assert!(d.saw_bare_lf());
    assert!(d.is_done());
    assert_eq!(out, b"a\rb\nc\nd\n");
}

#[test]
fn crlf_becomes_lf_and_cr_runs_survive() {
    let (out, end) = decode(b"x\r\r\ny\r\n.\r\n");
    assert!(end.is_some());
    assert_eq!(out, b"x\r\ny\n");
}

#[test]
fn sizes_and_line_lengths() {
    let mut d = DataDecoder::new();
    let mut out = Vec::new();
    let body = b"12345\r\n..\r\n1234567890\r\n";
    // RFC 1870: the stuffing dot of `..` does not count.
    let size = body.len() as u64 - 1;
    assert_eq!(d.feed(body, &mut out), Progress::NeedMore);
    assert_eq!(d.wire_size(), size);
    assert_eq!(d.feed(b".\r\n", &mut out), Progress::Done(3));
    assert_eq!(d.wire_size(), size);
    assert_eq!(d.longest_line(), 10);
}

#[test]
fn a_bare_lf_counts_as_the_crlf_it_stands_for() {
    let mut d = DataDecoder::new();
    let mut out = Vec::new();
    // 43 lines `y` LF: 129 octets with CRLF ends, 86 as sent.
    let body = b"y\n".repeat(43);
    d.feed(&body, &mut out);
    assert_eq!(d.feed(b"\r\n.\r\n", &mut out), Progress::Done(5));
    assert_eq!(d.wire_size(), 43 * 3 + 2);
    // A CR LF split across reads is one line end, not a bare LF.
    let mut d = DataDecoder::new();
    d.feed(b"ab\r", &mut out);
    d.feed(b"\ncd\r\n", &mut out);
    assert!(!d.saw_bare_lf());
    assert_eq!(d.wire_size(), 8);
}

#[test]
fn feeding_after_done_consumes_nothing() {
    let mut d = DataDecoder::new();
    let mut out = Vec::new();
    assert_eq!(d.feed(b".\r\n", &mut out), Progress::Done(3));
    assert_eq!(d.feed(b"QUIT\r\n", &mut out), Progress::Done(0));
    assert!(out.is_empty());
}

#[test]
fn binary_and_nul_bytes_pass_through() {
    let (out, end) = decode(b"\0\xff\xfe\r\n.\r\n");
    assert!(end.is_some());
    assert_eq!(out, b"\0\xff\xfe\n");
}
