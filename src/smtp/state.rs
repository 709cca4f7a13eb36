//! The per-connection SMTP state machine (RFC 5321 §4.1.4, §3.3).
//!
//! Pure: it takes parsed commands and the outcome of a DATA transfer and
//! answers with the reply to send and what the I/O layer must do next. It
//! never touches a socket or a file, so every transition is unit-tested
//! with plain values.

use std::borrow::Cow;
use std::net::IpAddr;
use std::sync::Arc;

use super::command::{AddressLiteral, Command, Domain, ForwardPath, MailParams, ParseError, ReversePath};
use super::idna::a_labels;
use super::reply::{codes, Reply};
use crate::route;

/// The policy a session applies; shared by all sessions of a server.
#[derive(Debug, Clone)]
pub struct Policy {
    /// The name we greet with and put in `Received:`.
    pub hostname: String,
    /// Domains we accept mail for (compared without ASCII case).
    pub domains: Vec<String>,
    /// Largest message we accept, in octets (RFC 1870 SIZE).
    pub max_message_size: u64,
    /// Most recipients per transaction (RFC 5321 §4.5.3.1.8).
    pub max_recipients: usize,
    /// Protocol errors after which the session is closed with 421 (counted
    /// since the session's last delivered message).
    pub max_errors: u32,
    /// Whether STARTTLS can be offered.
    pub starttls: bool,
    /// `delivery = "per-recipient"`: every recipient must map to a safe
    /// mailbox directory (see [`crate::route`]).
    pub per_recipient: bool,
    /// `recipient_delimiter`: `user+tag` is delivered to `user`.
    pub recipient_delimiter: Option<char>,
    /// `mailboxes = "existing"` (with per-recipient delivery): only
    /// recipients whose mailbox exists are accepted, and postmaster.
    /// `None`: a mailbox is created by its first message.
    pub existing_mailboxes: Option<std::sync::Arc<dyn route::Mailboxes>>,
}

impl Policy {
    /// The domain for `<postmaster>` and address-literal recipients.
    pub fn primary_domain(&self) -> &str {
        self.domains
            .first()
            .map_or(self.hostname.as_str(), String::as_str)
    }

    /// The per-recipient mailbox of a local recipient (see
    /// [`route::mailbox_key`]).
    pub fn mailbox_key(&self, to: &ForwardPath) -> Result<route::MailboxKey, route::RouteError> {
        route::mailbox_key(to, self.primary_domain(), &self.domains, self.recipient_delimiter)
    }
}

/// Where the session is in the dialogue.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Greeted, waiting for EHLO/HELO.
    Connected,
    /// Hello done, no transaction.
    Ready,
    /// MAIL accepted, waiting for RCPT.
    Mail,
    /// At least one RCPT accepted.
    Rcpt,
    /// 354 sent, the body is being received.
    Data,
    /// QUIT or a fatal error: nothing more is read.
    Closed,
}

/// A mail transaction: the envelope of one message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Envelope {
    /// MAIL FROM.
    pub from: ReversePath,
    /// MAIL parameters.
    pub params: MailParams,
    /// Accepted recipients, in order, without duplicates.
    pub rcpts: Vec<ForwardPath>,
}

/// How the client said hello.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hello {
    /// The argument of EHLO/HELO.
    pub name: Domain,
    /// True after EHLO (the `with ESMTP` of `Received:`).
    pub extended: bool,
}

/// What the I/O layer must do after sending the reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Next {
    /// Read the next command.
    Continue,
    /// Receive the message body, then call [`Session::data_done`].
    ReceiveData,
    /// Start the TLS handshake, then call [`Session::tls_started`].
    StartTls,
    /// Close the connection.
    Close,
    /// Send this further reply, then close (error limit reached).
    CloseWith(Reply),
}

/// The answer to one event: a reply and what to do next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Step {
    /// The reply to send.
    pub reply: Reply,
    /// What to do after sending it.
    pub next: Next,
}

/// How the reception of a message body ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DataOutcome {
    /// Stored durably under this queue id.
    Stored(String),
    /// Larger than the SIZE limit; nothing stored.
    TooBig,
    /// Refused by content policy (bare LF with `bare_lf = "reject"`, overlong lines).
    Rejected(Reply),
    /// The store failed; nothing stored. The text says why (for the log).
    StoreFailed {
        /// True when the disk is full (452 4.3.1 rather than 451 4.3.0).
        full: bool,
    },
}

/// One session's protocol state.
#[derive(Debug, Clone)]
pub struct Session {
    policy: Arc<Policy>,
    local_ip: IpAddr,
    phase: Phase,
    hello: Option<Hello>,
    envelope: Option<Envelope>,
    errors: u32,
    tls: bool,
}

impl Session {
    /// A new session on a connection that arrived at `local_ip`.
    pub fn new(policy: Arc<Policy>, local_ip: IpAddr) -> Self {
        Session {
            policy,
            local_ip,
            phase: Phase::Connected,
            hello: None,
            envelope: None,
            errors: 0,
            tls: false,
        }
    }

    /// The 220 greeting (RFC 5321 §4.2; no enhanced code, RFC 2034 §3).
    pub fn greeting(&self) -> Reply {
        Reply::plain(
            220,
            vec![format!("{} ESMTP maildoor", self.policy.hostname).into()],
        )
    }

    /// The current phase.
    pub fn phase(&self) -> Phase {
        self.phase
    }

    /// The client's hello, once given.
    pub fn hello(&self) -> Option<&Hello> {
        self.hello.as_ref()
    }

    /// The transaction in progress, if any.
    pub fn envelope(&self) -> Option<&Envelope> {
        self.envelope.as_ref()
    }

    /// True when the session runs over TLS.
    pub fn is_tls(&self) -> bool {
        self.tls
    }

    /// Handles one parsed (or unparsable) command line.
    pub fn command(&mut self, cmd: Result<Command, ParseError>) -> Step {
        let reply = match cmd {
            Ok(cmd) => return self.dispatch(cmd),
            Err(e) => e.reply(),
        };
        self.error(reply)
    }

    /// A command line longer than the limit (RFC 5321 §4.5.3.1.4).
    pub fn line_too_long(&mut self) -> Step {
        self.error(Reply::new(500, codes::LINE_TOO_LONG, "Error: line too long"))
    }

    /// A command line that ended in a bare LF while the policy rejects them.
    pub fn bare_lf_command(&mut self) -> Step {
        self.error(bare_lf_reply())
    }

    /// Ends the DATA phase with the outcome of storing the message.
    pub fn data_done(&mut self, outcome: DataOutcome) -> Step {
        self.phase = Phase::Ready;
        self.envelope = None;
        let reply = match outcome {
            DataOutcome::Stored(id) => {
                // A client that delivers mail is not misbehaving: its count
                // starts again (as Postfix's hard error limit counts errors
                // "without delivering mail").
                self.errors = 0;
                return ok(Reply::new(250, codes::OK, format!("Ok: queued as {id}")));
            }
            DataOutcome::TooBig => Reply::new(552, codes::TOO_BIG, "Error: message exceeds size limit"),
            DataOutcome::Rejected(reply) => reply,
            // Our failure, not the client's: it does not count towards
            // max_errors, so a client is not cut off while the disk is full.
            DataOutcome::StoreFailed { full: true } => {
                return ok(Reply::new(
                    452,
                    codes::SYSTEM_FULL,
                    "Error: insufficient system storage, try again later",
                ))
            }
            DataOutcome::StoreFailed { full: false } => {
                return ok(Reply::new(
                    451,
                    codes::SYSTEM_TEMP,
                    "Error: local storage failure, try again later",
                ))
            }
        };
        self.error(reply)
    }

    /// The TLS handshake succeeded: everything learnt before is forgotten
    /// (RFC 3207 §4.2).
    pub fn tls_started(&mut self) {
        self.phase = Phase::Connected;
        self.hello = None;
        self.envelope = None;
        self.tls = true;
    }

    fn error(&mut self, reply: Reply) -> Step {
        self.errors += 1;
        if self.errors >= self.policy.max_errors {
            self.phase = Phase::Closed;
            return Step {
                reply,
                next: Next::CloseWith(Reply::new(
                    421,
                    codes::POLICY_TEMP,
                    format!("{} Error: too many errors", self.policy.hostname),
                )),
            };
        }
        Step {
            reply,
            next: Next::Continue,
        }
    }

    fn dispatch(&mut self, cmd: Command) -> Step {
        match cmd {
            Command::Ehlo(name) => self.greet(name, true),
            Command::Helo(name) => self.greet(name, false),
            Command::Mail { from, params } => self.mail(from, params),
            Command::Rcpt { to } => self.rcpt(to),
            Command::Data => self.data(),
            Command::Rset => {
                self.envelope = None;
                if self.phase != Phase::Connected {
                    self.phase = Phase::Ready;
                }
                ok(Reply::new(250, codes::OK, "Ok"))
            }
            Command::Noop => ok(Reply::new(250, codes::OK, "Ok")),
            Command::Quit => {
                self.phase = Phase::Closed;
                Step {
                    reply: Reply::new(221, codes::OK, "Bye"),
                    next: Next::Close,
                }
            }
            Command::Vrfy(_) => ok(Reply::new(
                252,
                codes::PROTO_OK,
                "Cannot VRFY user, but will accept message and attempt delivery",
            )),
            Command::Expn(_) => self.error(Reply::new(502, codes::BAD_SEQUENCE, "Error: EXPN not supported")),
            Command::Help(_) => {
                let starttls = if self.offers_starttls() { " STARTTLS" } else { "" };
                ok(Reply::new(
                    214,
                    codes::OK,
                    format!(
                        "Commands: EHLO HELO MAIL RCPT DATA RSET NOOP QUIT VRFY HELP{starttls}; see RFC 5321"
                    ),
                ))
            }
            Command::StartTls => self.starttls(),
        }
    }

    fn greet(&mut self, name: Domain, extended: bool) -> Step {
        self.envelope = None;
        self.phase = Phase::Ready;
        // Replies are ASCII (RFC 6531 §3.7.4.2): a UTF-8 name is echoed
        // in A-labels.
        let shown = match &name {
            Domain::Name(n) if !n.is_ascii() => a_labels(n),
            other => other.to_string(),
        };
        let mut greeting = format!("{} Hello {}", self.policy.hostname, shown);
        // A reply line is 512 octets at most with its code and CRLF (RFC
        // 5321 §4.5.3.1.5); a long host name and a long client name
        // together may not fit, and the echo is only a courtesy.
        if greeting.len() > 512 - 6 {
            greeting = format!("{} Hello", self.policy.hostname);
        }
        self.hello = Some(Hello { name, extended });
        if !extended {
            // No enhanced code here, as in the EHLO reply (RFC 2034 §3):
            // the first word names the server (RFC 5321 §4.1.1.1).
            return ok(Reply::plain(250, vec![greeting.into()]));
        }
        let mut lines: Vec<Cow<'static, str>> = vec![
            greeting.into(),
            "PIPELINING".into(),
            format!("SIZE {}", self.policy.max_message_size).into(),
            "8BITMIME".into(),
            "ENHANCEDSTATUSCODES".into(),
            "SMTPUTF8".into(),
        ];
        if self.offers_starttls() {
            lines.push("STARTTLS".into());
        }
        ok(Reply::plain(250, lines))
    }

    fn mail(&mut self, from: ReversePath, params: MailParams) -> Step {
        match self.phase {
            Phase::Connected => return self.error(need_hello()),
            Phase::Mail | Phase::Rcpt => {
                return self.error(Reply::new(503, codes::BAD_SEQUENCE, "Error: nested MAIL command"))
            }
            _ => {}
        }
        // Service extensions exist only after EHLO (RFC 5321 §4.1.1.1).
        let has_params = params.size.is_some() || params.body.is_some() || params.smtputf8;
        if has_params && !self.hello.as_ref().is_some_and(|h| h.extended) {
            return self.error(Reply::new(
                555,
                codes::BAD_ARGS,
                "Error: MAIL parameters need EHLO",
            ));
        }
        if params.size.is_some_and(|s| s > self.policy.max_message_size) {
            return self.error(Reply::new(
                552,
                codes::TOO_BIG,
                "Error: message size exceeds fixed limit",
            ));
        }
        if let ReversePath::Mailbox(m) = &from {
            if !m.is_ascii() && !params.smtputf8 {
                return self.error(need_smtputf8(550));
            }
        }
        self.envelope = Some(Envelope {
            from,
            params,
            rcpts: Vec::new(),
        });
        self.phase = Phase::Mail;
        ok(Reply::new(250, codes::SENDER_OK, "Ok"))
    }

    fn rcpt(&mut self, to: ForwardPath) -> Step {
        let max = self.policy.max_recipients;
        let local = self.is_local(&to);
        let Some(smtputf8) = self.envelope.as_ref().map(|e| e.params.smtputf8) else {
            return self.error(Reply::new(503, codes::BAD_SEQUENCE, "Error: need MAIL command"));
        };
        if let ForwardPath::Mailbox(m) = &to {
            if !m.is_ascii() && !smtputf8 {
                return self.error(need_smtputf8(553));
            }
        }
        if !local {
            return self.error(Reply::new(550, codes::RELAY_DENIED, "Error: relay access denied"));
        }
        if self.policy.per_recipient {
            let routed = self.policy.mailbox_key(&to);
            match routed {
                Err(e) => return self.error(Reply::new(553, codes::BAD_ADDRESS, format!("Error: {e}"))),
                // RFC 5321 §4.5.1: postmaster is always accepted.
                Ok(key) if key.user != "postmaster" => {
                    if let Some(existing) = &self.policy.existing_mailboxes {
                        if !existing.exists(&key) {
                            // Not a protocol error either (as for 452): a
                            // list with a few stale addresses must not get
                            // its session closed and lose the good ones.
                            return ok(Reply::new(
                                550,
                                codes::NO_SUCH_MAILBOX,
                                "Error: no such mailbox here",
                            ));
                        }
                    }
                }
                Ok(_) => {}
            }
        }
        let Some(env) = self.envelope.as_mut() else {
            return self.error(Reply::new(503, codes::BAD_SEQUENCE, "Error: need MAIL command"));
        };
        if env.rcpts.len() >= max {
            // 452, not 552: the client should send the rest in another
            // transaction (RFC 5321 §4.5.3.1.10). Not a protocol error:
            // counting it would close the session (max_errors) and lose
            // the recipients already accepted.
            return ok(Reply::new(
                452,
                codes::TOO_MANY_RCPTS,
                "Error: too many recipients",
            ));
        }
        if !env.rcpts.contains(&to) {
            env.rcpts.push(to);
        }
        self.phase = Phase::Rcpt;
        ok(Reply::new(250, codes::RCPT_OK, "Ok"))
    }

    fn data(&mut self) -> Step {
        match self.phase {
            Phase::Rcpt => {
                self.phase = Phase::Data;
                Step {
                    reply: Reply::plain(354, vec!["End data with <CR><LF>.<CR><LF>".into()]),
                    next: Next::ReceiveData,
                }
            }
            Phase::Mail => self.error(Reply::new(554, codes::BAD_SEQUENCE, "Error: no valid recipients")),
            Phase::Connected => self.error(need_hello()),
            _ => self.error(Reply::new(503, codes::BAD_SEQUENCE, "Error: need MAIL command")),
        }
    }

    /// True while STARTTLS is configured and TLS is not active yet: the
    /// EHLO and HELP replies then name it.
    fn offers_starttls(&self) -> bool {
        self.policy.starttls && !self.tls
    }

    fn starttls(&mut self) -> Step {
        if self.tls {
            return self.error(Reply::new(503, codes::BAD_SEQUENCE, "Error: TLS already active"));
        }
        if !self.policy.starttls {
            return self.error(Reply::new(
                502,
                codes::BAD_SEQUENCE,
                "Error: STARTTLS not available",
            ));
        }
        match self.phase {
            Phase::Connected => return self.error(need_hello()),
            // The handshake resets the session (RFC 3207 §4.2), which would
            // silently drop the envelope given so far: the client is told
            // to finish or RSET it first, as Postfix does.
            Phase::Mail | Phase::Rcpt => {
                return self.error(Reply::new(
                    503,
                    codes::BAD_SEQUENCE,
                    "Error: mail transaction in progress; RSET first",
                ))
            }
            _ => {}
        }
        self.phase = Phase::Connected;
        Step {
            reply: Reply::new(220, codes::OK, "Ready to start TLS"),
            next: Next::StartTls,
        }
    }

    /// Local recipients: `<postmaster>`, any mailbox at one of our domains,
    /// or at an address literal naming the address the client connected to.
    fn is_local(&self, to: &ForwardPath) -> bool {
        match to {
            ForwardPath::Postmaster => true,
            ForwardPath::Mailbox(m) => match &m.domain {
                Domain::Name(_) => self.policy.domains.iter().any(|d| m.domain.is_name(d)),
                Domain::Literal(AddressLiteral::V4(a)) => IpAddr::V4(*a) == self.local_ip,
                Domain::Literal(AddressLiteral::V6(a)) => {
                    IpAddr::V6(*a) == self.local_ip
                        || a.to_ipv4_mapped().map(IpAddr::V4) == Some(self.local_ip)
                }
                Domain::Literal(AddressLiteral::General { .. }) => false,
            },
        }
    }
}

fn ok(reply: Reply) -> Step {
    Step {
        reply,
        next: Next::Continue,
    }
}

fn need_hello() -> Reply {
    Reply::new(503, codes::BAD_SEQUENCE, "Error: send HELO/EHLO first")
}

/// A non-ASCII address without SMTPUTF8: 550 at MAIL, 553 at RCPT (RFC
/// 6531 §3.5).
fn need_smtputf8(code: u16) -> Reply {
    Reply::new(
        code,
        codes::NEED_SMTPUTF8,
        "Error: non-ASCII address needs SMTPUTF8",
    )
}

/// 550 5.5.2 for bare LF when the policy rejects it (as Postfix does).
pub fn bare_lf_reply() -> Reply {
    Reply::new(550, codes::UNKNOWN, "Error: bare <CR> or <LF> received")
}

#[cfg(test)]
#[path = "state_tests.rs"]
mod tests;
