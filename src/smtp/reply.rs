//! SMTP replies: a three-digit code, an optional enhanced status code
//! (RFC 3463) and one or more lines of text.
//!
//! Every reply the server sends is built here, so a reader can find where a
//! code comes from in one hop. Rendering follows RFC 5321 §4.2: all lines
//! but the last use `code-text`, the last `code text`, each ends in CRLF.

use std::borrow::Cow;
use std::fmt;

/// An enhanced mail system status code, `class.subject.detail` (RFC 3463).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Enhanced(pub u8, pub u16, pub u16);

impl fmt::Display for Enhanced {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}.{}", self.0, self.1, self.2)
    }
}

/// One SMTP reply (RFC 5321 §4.2).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    /// The three-digit reply code.
    pub code: u16,
    /// The enhanced status code; `None` only for the greeting and the EHLO
    /// reply, which RFC 2034 §3 exempts.
    pub enhanced: Option<Enhanced>,
    /// Text lines, at least one.
    pub lines: Vec<Cow<'static, str>>,
}

impl Reply {
    /// A one-line reply with an enhanced status code.
    pub fn new(code: u16, enhanced: Enhanced, text: impl Into<Cow<'static, str>>) -> Self {
        Reply {
            code,
            enhanced: Some(enhanced),
            lines: vec![text.into()],
        }
    }

    /// A reply without enhanced status code (greeting, EHLO).
    pub fn plain(code: u16, lines: Vec<Cow<'static, str>>) -> Self {
        Reply {
            code,
            enhanced: None,
            lines,
        }
    }

    /// Appends the wire form of this reply (CRLF line endings) to `out`.
    pub fn write_to(&self, out: &mut Vec<u8>) {
        let last = self.lines.len().saturating_sub(1);
        for (i, line) in self.lines.iter().enumerate() {
            let sep = if i == last { ' ' } else { '-' };
            let mut s = format!("{}{}", self.code, sep);
            if let Some(e) = self.enhanced {
                s.push_str(&e.to_string());
                if !line.is_empty() {
                    s.push(' ');
                }
            }
            s.push_str(line);
            s.push_str("\r\n");
            out.extend_from_slice(s.as_bytes());
        }
        if self.lines.is_empty() {
            out.extend_from_slice(format!("{}\r\n", self.code).as_bytes());
        }
    }
}

impl fmt::Display for Reply {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut v = Vec::new();
        self.write_to(&mut v);
        f.write_str(String::from_utf8_lossy(&v).trim_end())
    }
}

/// Enhanced codes used by maildoor, named after their RFC 3463 meaning.
pub mod codes {
    use super::Enhanced;
    /// 2.0.0 Other undefined status (success).
    pub const OK: Enhanced = Enhanced(2, 0, 0);
    /// 2.1.0 Originator address valid.
    pub const SENDER_OK: Enhanced = Enhanced(2, 1, 0);
    /// 2.1.5 Destination address valid.
    pub const RCPT_OK: Enhanced = Enhanced(2, 1, 5);
    /// 2.5.0 Other or undefined protocol status (used by VRFY 252).
    pub const PROTO_OK: Enhanced = Enhanced(2, 5, 0);
    /// 4.3.0 Other or undefined mail system status.
    pub const SYSTEM_TEMP: Enhanced = Enhanced(4, 3, 0);
    /// 4.3.1 Mail system full.
    pub const SYSTEM_FULL: Enhanced = Enhanced(4, 3, 1);
    /// 4.3.2 System not accepting network messages.
    pub const SHUTTING_DOWN: Enhanced = Enhanced(4, 3, 2);
    /// 4.4.2 Bad connection (timeout).
    pub const TIMEOUT: Enhanced = Enhanced(4, 4, 2);
    /// 4.5.3 Too many recipients.
    pub const TOO_MANY_RCPTS: Enhanced = Enhanced(4, 5, 3);
    /// 4.7.0 Other or undefined security status (error limit, connection limit).
    pub const POLICY_TEMP: Enhanced = Enhanced(4, 7, 0);
    /// 5.1.1 Bad destination mailbox address (no such mailbox).
    pub const NO_SUCH_MAILBOX: Enhanced = Enhanced(5, 1, 1);
    /// 5.1.3 Bad destination mailbox address syntax.
    pub const BAD_ADDRESS: Enhanced = Enhanced(5, 1, 3);
    /// 5.1.7 Bad sender's mailbox address syntax.
    pub const BAD_SENDER: Enhanced = Enhanced(5, 1, 7);
    /// 5.3.4 Message too big for system.
    pub const TOO_BIG: Enhanced = Enhanced(5, 3, 4);
    /// 5.5.1 Invalid command (bad sequence, not implemented).
    pub const BAD_SEQUENCE: Enhanced = Enhanced(5, 5, 1);
    /// 5.5.2 Syntax error (unknown command).
    pub const UNKNOWN: Enhanced = Enhanced(5, 5, 2);
    /// 5.5.4 Invalid command arguments.
    pub const BAD_ARGS: Enhanced = Enhanced(5, 5, 4);
    /// 5.5.2 Syntax error, for a command line over the length limit:
    /// RFC 3463 has no code of its own for it (X.5.6 is AUTH's, RFC 4954).
    pub const LINE_TOO_LONG: Enhanced = Enhanced(5, 5, 2);
    /// 5.6.0 Other or undefined media error (message content refused).
    pub const MEDIA_ERROR: Enhanced = Enhanced(5, 6, 0);
    /// 5.6.7 Non-ASCII address without SMTPUTF8 (RFC 6531 §3.6).
    pub const NEED_SMTPUTF8: Enhanced = Enhanced(5, 6, 7);
    /// 5.7.1 Delivery not authorized (relaying denied).
    pub const RELAY_DENIED: Enhanced = Enhanced(5, 7, 1);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_single_and_multiline() {
        let r = Reply::new(250, codes::OK, "Ok");
        assert_eq!(r.to_string(), "250 2.0.0 Ok");
        let r = Reply::plain(250, vec!["host".into(), "PIPELINING".into()]);
        let mut v = Vec::new();
        r.write_to(&mut v);
        assert_eq!(v, b"250-host\r\n250 PIPELINING\r\n");
    }
}
