//! The DATA body decoder (RFC 5321 §4.1.1.4 and §4.5.2).
//!
//! Bytes arrive in reads of any size; the decoder removes dot-stuffing,
//! turns CRLF line endings into LF (the Maildir convention) and finds the
//! end of the message. Only `CRLF . CRLF` ends a message: a bare LF or a
//! bare CR next to a dot never does, which closes the SMTP smuggling hole
//! (CVE-2023-51766 and its relatives). The decoder is pure and keeps only
//! a few bytes of state, so it works the same however the input is split.

/// Where the decoder is within the current line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// At the start of a line that followed a CRLF (or the start of data).
    LineStart,
    /// Saw `CRLF .`: either a stuffing dot or the start of the terminator.
    Dot,
    /// Saw `CRLF . CR`.
    DotCr,
    /// Inside a line.
    Text,
    /// Saw a CR inside a line.
    Cr,
    /// The terminator has been seen.
    Done,
}

/// Streaming DATA decoder. Feed it with [`DataDecoder::feed`] until it
/// reports the end of the message.
#[derive(Debug, Clone)]
pub struct DataDecoder {
    state: State,
    /// Octets of the message on the wire so far, terminator excluded.
    wire_size: u64,
    /// Length of the current line in octets, without its line ending.
    line_len: usize,
    /// Longest line seen, without its line ending.
    max_line: usize,
    bare_lf: bool,
    bare_cr: bool,
}

/// What a call to [`DataDecoder::feed`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Progress {
    /// All input consumed; the message goes on.
    NeedMore,
    /// The terminator ended within the input; the first `n` bytes belonged
    /// to the message, the rest is what the client pipelined after it.
    Done(usize),
}

impl Default for DataDecoder {
    fn default() -> Self {
        Self::new()
    }
}

impl DataDecoder {
    /// A decoder at the start of a message body.
    pub fn new() -> Self {
        DataDecoder {
            state: State::LineStart,
            wire_size: 0,
            line_len: 0,
            max_line: 0,
            bare_lf: false,
            bare_cr: false,
        }
    }

    /// Size of the message as RFC 1870 counts it: CRLF line endings (a
    /// bare LF, which is stored as a line end, counts as the CRLF it
    /// stands for), the dots added by dot-stuffing and the terminator
    /// excluded.
    pub fn wire_size(&self) -> u64 {
        self.wire_size
    }

    /// True once a bare LF (LF not preceded by CR) was seen.
    pub fn saw_bare_lf(&self) -> bool {
        self.bare_lf
    }

    /// True once a bare CR (CR not followed by LF) was seen.
    pub fn saw_bare_cr(&self) -> bool {
        self.bare_cr
    }

    /// Longest text line seen, in octets without its line ending.
    pub fn longest_line(&self) -> usize {
        self.max_line.max(self.line_len)
    }

    /// True once the terminator has been seen.
    pub fn is_done(&self) -> bool {
        self.state == State::Done
    }

    /// Decodes `input`, appending message bytes to `out`.
    pub fn feed(&mut self, input: &[u8], out: &mut Vec<u8>) -> Progress {
        let mut i = 0;
        while i < input.len() {
            if self.state == State::Done {
                return Progress::Done(i);
            }
            if self.state == State::LineStart {
                // A line that starts with an ordinary octet is plain text:
                // let the fast path below copy it with the rest of its line.
                if let Some(&b) = input.get(i) {
                    if !matches!(b, b'.' | b'\r' | b'\n') {
                        self.state = State::Text;
                    }
                }
            }
            if self.state == State::Text {
                // Fast path: copy up to the next CR or LF in one go and, when
                // that is a CRLF, end the line here too.
                let rest = input.get(i..).unwrap_or_default();
                let run = memchr::memchr2(b'\r', b'\n', rest).unwrap_or(rest.len());
                out.extend_from_slice(rest.get(..run).unwrap_or_default());
                self.line_len += run;
                if rest.get(run..run + 2) == Some(b"\r\n") {
                    out.push(b'\n');
                    self.end_line();
                    self.state = State::LineStart;
                    self.wire_size += run as u64 + 2;
                    i += run + 2;
                    continue;
                }
                self.wire_size += run as u64;
                i += run;
                if run > 0 {
                    continue;
                }
            }
            let b = input.get(i).copied().unwrap_or_default();
            i += 1;
            self.wire_size += 1;
            self.step(b, out);
            if self.state == State::Done {
                // `. CR LF` is the terminator, not the message.
                self.wire_size = self.wire_size.saturating_sub(3);
            }
        }
        if self.state == State::Done {
            Progress::Done(i)
        } else {
            Progress::NeedMore
        }
    }

    fn end_line(&mut self) {
        self.max_line = self.max_line.max(self.line_len);
        self.line_len = 0;
    }

    /// Moves the state machine by one byte. Counting of wire octets is
    /// done by the caller; this only decides what reaches `out`.
    fn step(&mut self, b: u8, out: &mut Vec<u8>) {
        match (self.state, b) {
            (State::LineStart, b'.') => self.state = State::Dot,
            (State::Dot, b'\r') => self.state = State::DotCr,
            (State::DotCr, b'\n') => self.state = State::Done,
            (State::Dot, _) => {
                // A stuffing dot: drop it, the byte is ordinary content.
                // RFC 1870 §4: the size excludes the added dots.
                self.wire_size = self.wire_size.saturating_sub(1);
                self.state = State::Text;
                self.step(b, out);
            }
            (State::DotCr, _) => {
                // `CRLF . CR x`: the dot was stuffing, the CR is bare.
                self.wire_size = self.wire_size.saturating_sub(1);
                self.state = State::Cr;
                self.step(b, out);
            }
            (State::Cr, b'\n') => {
                out.push(b'\n');
                self.end_line();
                self.state = State::LineStart;
            }
            (State::Cr, _) => {
                // The previous CR was bare: keep it as content.
                self.bare_cr = true;
                out.push(b'\r');
                self.line_len += 1;
                self.state = State::Text;
                self.step(b, out);
            }
            (State::LineStart | State::Text, b'\r') => self.state = State::Cr,
            (State::LineStart | State::Text, b'\n') => {
                // Bare LF: a line ending for the stored file, but never the
                // start of a line where a dot could end the message. It
                // counts toward the size as CRLF (RFC 1870 §3).
                self.bare_lf = true;
                self.wire_size += 1;
                out.push(b'\n');
                self.end_line();
                self.state = State::Text;
            }
            (State::LineStart | State::Text, _) => {
                out.push(b);
                self.line_len += 1;
                self.state = State::Text;
            }
            (State::Done, _) => {}
        }
    }
}

#[cfg(test)]
#[path = "data_tests.rs"]
mod tests;
