//! Settings: `config/default.toml` (built into the binary), then an
//! optional `--config FILE`, then `MAILDOOR_*` environment variables, then
//! command-line flags. Everything is validated here, once, before anything
//! binds; a bad value is an error that names its key.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use config::{Config, Environment, File, FileFormat};
use serde::Deserialize;

use crate::cidr::Cidr;
use crate::smtp::idna::{a_labels, domain_key, lower};

/// The built-in defaults: the text of `config/default.toml`.
pub const DEFAULT_TOML: &str = include_str!("../config/default.toml");

/// What to do with a bare LF line ending (see `bare_lf` in default.toml).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BareLf {
    /// Treat it as a line ending (the default, as Postfix 3.9 does).
    Normalize,
    /// Answer 550 5.5.2.
    Reject,
}

/// The keys of the settings file, as read before validation.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Raw {
    listen: Vec<String>,
    hostname: String,
    domains: Vec<String>,
    maildir: PathBuf,
    max_message_size: u64,
    max_recipients: usize,
    max_errors: u32,
    max_connections: usize,
    max_connections_per_ip: usize,
    limit_exempt: Vec<String>,
    command_timeout: f64,
    data_timeout: f64,
    data_end_timeout: f64,
    shutdown_grace: f64,
    max_session_time: f64,
    min_data_rate: u64,
    data_rate_grace: f64,
    greet_delay: f64,
    bare_lf: String,
    long_lines: String,
    delivery: String,
    mailboxes: String,
    recipient_delimiter: String,
    log_level: String,
    tls_cert: String,
    tls_key: String,
    /// `[tls]` with `cert` and `key`: the same settings written as
    /// `tls.cert` / `tls.key`; `tls_cert` / `tls_key` win when both are set
    /// (flags and `MAILDOOR_TLS_CERT` / `_KEY` set those).
    #[serde(default)]
    tls: RawTls,
    listener: Vec<RawListener>,
    reuse_port: bool,
    proxy_trusted: Vec<String>,
    proxy_timeout: f64,
}

/// The `[tls]` table, as read before validation.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTls {
    #[serde(default)]
    cert: String,
    #[serde(default)]
    key: String,
}

/// One `[[listener]]` table, as read before validation.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawListener {
    address: String,
    #[serde(default)]
    proxy_protocol: bool,
    #[serde(default)]
    implicit_tls: bool,
}

/// One socket to accept SMTP on, with its options (RFC 8314 §3.3 for
/// implicit TLS; HAProxy's PROXY protocol spec for `proxy_protocol`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Listener {
    /// Address and port to bind.
    pub address: SocketAddr,
    /// Every connection starts with a PROXY v1 or v2 header.
    pub proxy_protocol: bool,
    /// TLS starts at connect (submissions/"smtps"), not with STARTTLS.
    pub implicit_tls: bool,
}

impl Listener {
    /// A plain SMTP listener on `address`.
    pub fn plain(address: SocketAddr) -> Self {
        Listener {
            address,
            proxy_protocol: false,
            implicit_tls: false,
        }
    }
}

/// The `MAILDOOR_*` variables in `env` that name no setting (a typo such
/// as `MAILDOOR_MAX_MESAGE_SIZE`): they are ignored, and the server warns
/// about each.
pub fn unknown_env_vars(env: impl IntoIterator<Item = (String, String)>) -> Vec<String> {
    let mut unknown: Vec<String> = env
        .into_iter()
        .filter(|(k, _)| k.starts_with("MAILDOOR_") && setting_of(k).is_none())
        .map(|(k, _)| k)
        .collect();
    unknown.sort();
    unknown
}

/// The setting a `MAILDOOR_<KEY>` variable names, if it names one.
fn setting_of(var: &str) -> Option<String> {
    let key = var.strip_prefix("MAILDOOR_")?.to_ascii_lowercase();
    kind_of(&key).is_some().then_some(key)
}

/// What a setting (or a field of a table setting) holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// Text: a number or a switch there is a mistake, not a name.
    Text,
    /// A list of text; in the environment, comma-separated.
    List,
    /// A count: whole numbers only.
    Whole,
    /// A duration in seconds: any number.
    Seconds,
    /// true or false.
    Switch,
}

/// Every setting a `MAILDOOR_*` variable can set, with its kind (the
/// `[[listener]]` and `[tls]` tables are read from files only: see
/// [`check_table`]).
const SETTINGS: &[(&str, Kind)] = &[
    ("listen", Kind::List),
    ("hostname", Kind::Text),
    ("domains", Kind::List),
    ("maildir", Kind::Text),
    ("max_message_size", Kind::Whole),
    ("max_recipients", Kind::Whole),
    ("max_errors", Kind::Whole),
    ("max_connections", Kind::Whole),
    ("max_connections_per_ip", Kind::Whole),
    ("limit_exempt", Kind::List),
    ("command_timeout", Kind::Seconds),
    ("data_timeout", Kind::Seconds),
    ("data_end_timeout", Kind::Seconds),
    ("shutdown_grace", Kind::Seconds),
    ("max_session_time", Kind::Seconds),
    ("min_data_rate", Kind::Whole),
    ("data_rate_grace", Kind::Seconds),
    ("greet_delay", Kind::Seconds),
    ("bare_lf", Kind::Text),
    ("long_lines", Kind::Text),
    ("delivery", Kind::Text),
    ("mailboxes", Kind::Text),
    ("recipient_delimiter", Kind::Text),
    ("log_level", Kind::Text),
    ("tls_cert", Kind::Text),
    ("tls_key", Kind::Text),
    ("reuse_port", Kind::Switch),
    ("proxy_trusted", Kind::List),
    ("proxy_timeout", Kind::Seconds),
];

/// The kind of setting `key`, if it is one.
fn kind_of(key: &str) -> Option<Kind> {
    SETTINGS.iter().find(|(k, _)| *k == key).map(|(_, kind)| *kind)
}

/// Validated settings of a server.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Sockets to listen on.
    pub listen: Vec<SocketAddr>,
    /// Our host name.
    pub hostname: String,
    /// Local domains, lower case.
    pub domains: Vec<String>,
    /// The Maildir to deliver to.
    pub maildir: PathBuf,
    /// SIZE limit in octets.
    pub max_message_size: u64,
    /// Recipients per message.
    pub max_recipients: usize,
    /// Errors before a session is closed.
    pub max_errors: u32,
    /// Concurrent sessions in all.
    pub max_connections: usize,
    /// Concurrent sessions per client IP.
    pub max_connections_per_ip: usize,
    /// Clients exempt from the per-IP limit.
    pub limit_exempt: Vec<Cidr>,
    /// Wait for the greeting's answer and each command.
    pub command_timeout: Duration,
    /// Wait for each block of DATA.
    pub data_timeout: Duration,
    /// Longest the reply to the final dot may take.
    pub data_end_timeout: Duration,
    /// Grace period for sessions in DATA at shutdown.
    pub shutdown_grace: Duration,
    /// Longest a session may last.
    pub max_session_time: Duration,
    /// Slowest average DATA rate (octets/s) once `data_rate_grace` is over.
    pub min_data_rate: u64,
    /// Time a DATA transfer may take before its rate is checked.
    pub data_rate_grace: Duration,
    /// Silence required from the client before the greeting.
    pub greet_delay: Duration,
    /// Bare LF policy.
    pub bare_lf: BareLf,
    /// Refuse messages with lines over 1000 octets (`long_lines = "reject"`).
    pub reject_long_lines: bool,
    /// `delivery = "per-recipient"`: one Maildir per recipient under
    /// `maildir/<domain>/<local-part>/`; otherwise all mail in `maildir`.
    pub per_recipient: bool,
    /// `user<delim>tag` is delivered to `user`.
    pub recipient_delimiter: Option<char>,
    /// `mailboxes = "existing"`: with per-recipient delivery, accept only
    /// recipients whose Maildir already exists (and postmaster).
    pub existing_mailboxes_only: bool,
    /// Log filter (tracing-subscriber `EnvFilter` syntax).
    pub log_level: String,
    /// Listeners with options (`[[listener]]`); an entry for an address
    /// also in `listen` replaces it. See [`Settings::listeners`].
    pub listener: Vec<Listener>,
    /// PEM certificate chain for TLS; `None`: no TLS.
    pub tls_cert: Option<PathBuf>,
    /// PEM private key for TLS, set exactly when `tls_cert` is.
    pub tls_key: Option<PathBuf>,
    /// Set SO_REUSEPORT so several processes share each port.
    pub reuse_port: bool,
    /// Proxies whose PROXY headers are believed.
    pub proxy_trusted: Vec<Cidr>,
    /// Wait for the PROXY header of a new connection.
    pub proxy_timeout: Duration,
}

/// Values given on the command line; each one set wins over every file
/// and environment variable.
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    /// `--config FILE`.
    pub config: Option<PathBuf>,
    /// `--listen` (repeatable).
    pub listen: Vec<String>,
    /// `--maildir`.
    pub maildir: Option<PathBuf>,
    /// `--domain` (repeatable).
    pub domains: Vec<String>,
    /// `--hostname`.
    pub hostname: Option<String>,
    /// `--max-message-size`.
    pub max_message_size: Option<u64>,
    /// `--log-level`.
    pub log_level: Option<String>,
    /// `--tls-cert`.
    pub tls_cert: Option<PathBuf>,
    /// `--tls-key`.
    pub tls_key: Option<PathBuf>,
}

/// A settings error; the text names the key and the file or variable.
#[derive(Debug, thiserror::Error)]
#[error("configuration error: {0}")]
pub struct SettingsError(String);

fn bad(key: &str, why: impl std::fmt::Display) -> SettingsError {
    SettingsError(format!("{key}: {why}"))
}

/// The config crate converts between kinds on its own: `1.5` or `true`
/// would become a count of 2 or 1, `true` a timeout of a second, and
/// `hostname = 5` the name "5"; a list or table of the wrong kind fails
/// without naming its key. A value of the wrong kind is an error naming
/// its key instead (`listener[0].address` inside a table), in a file or
/// the environment alike (where every value starts as text: `1000` is a
/// whole number there, `1.5` is not; its text settings are set as text,
/// whatever they look like: see `Settings::load`).
fn check_kinds(built: &Config) -> Result<(), SettingsError> {
    use config::ValueKind as K;
    let number_text = |t: &str, whole: bool| {
        let t = t.trim();
        if whole {
            !t.is_empty() && t.bytes().all(|b| b.is_ascii_digit())
        } else {
            t.parse::<f64>().is_ok_and(f64::is_finite)
        }
    };
    for &(key, kind) in SETTINGS {
        let Ok(v) = built.get::<config::Value>(key) else {
            continue;
        };
        let fits = match (kind, &v.kind) {
            (Kind::Text, K::String(_)) => true,
            (Kind::List, K::Array(items)) => items.iter().all(|i| matches!(i.kind, K::String(_))),
            (Kind::Whole | Kind::Seconds, K::I64(_) | K::I128(_) | K::U64(_) | K::U128(_)) => true,
            (Kind::Seconds, K::Float(f)) => f.is_finite(),
            (Kind::Whole | Kind::Seconds, K::String(t)) => number_text(t, kind == Kind::Whole),
            (Kind::Switch, K::Boolean(_)) => true,
            (Kind::Switch, K::String(t)) => {
                matches!(t.trim().to_ascii_lowercase().as_str(), "true" | "false")
            }
            _ => false,
        };
        if !fits {
            let why = match kind {
                Kind::Text => format!("{v} is not text (write it in quotes)"),
                Kind::List => "must be a list of text, like [\"a\", \"b\"]".to_string(),
                Kind::Whole => format!("{v} is not a whole number"),
                Kind::Seconds => format!("{v} is not a number of seconds"),
                Kind::Switch => format!("{v} is not true or false"),
            };
            return Err(bad(key, why));
        }
    }
    if let Ok(v) = built.get::<config::Value>("tls") {
        let K::Table(t) = &v.kind else {
            return Err(bad(
                "tls",
                format!("{v} is not a table ([tls] with cert and key)"),
            ));
        };
        check_table("tls", t, &[("cert", Kind::Text), ("key", Kind::Text)], None)?;
    }
    if let Ok(v) = built.get::<config::Value>("listener") {
        let K::Array(items) = &v.kind else {
            return Err(bad(
                "listener",
                format!("{v} is not a list of [[listener]] tables"),
            ));
        };
        let fields = [
            ("address", Kind::Text),
            ("proxy_protocol", Kind::Switch),
            ("implicit_tls", Kind::Switch),
        ];
        for (n, item) in items.iter().enumerate() {
            let key = format!("listener[{n}]");
            let K::Table(t) = &item.kind else {
                return Err(bad(
                    &key,
                    format!("{item} is not a table (address, proxy_protocol, implicit_tls)"),
                ));
            };
            check_table(&key, t, &fields, Some("address"))?;
        }
    }
    Ok(())
}

/// Checks the fields of table `key` (`[tls]`, one `[[listener]]`): only
/// `fields`, each of its kind, and `required` present; errors name the
/// field as `key.field`.
fn check_table(
    key: &str,
    table: &config::Map<String, config::Value>,
    fields: &[(&str, Kind)],
    required: Option<&str>,
) -> Result<(), SettingsError> {
    for (name, v) in table {
        let Some((_, kind)) = fields.iter().find(|(f, _)| f == name) else {
            let known: Vec<&str> = fields.iter().map(|(f, _)| *f).collect();
            return Err(bad(
                &format!("{key}.{name}"),
                format!("unknown key (known: {})", known.join(", ")),
            ));
        };
        // A file's table: no text standing in for a switch.
        let fits = match kind {
            Kind::Switch => matches!(v.kind, config::ValueKind::Boolean(_)),
            _ => matches!(v.kind, config::ValueKind::String(_)),
        };
        if !fits {
            let what = match kind {
                Kind::Switch => "true or false",
                _ => "text (write it in quotes)",
            };
            return Err(bad(&format!("{key}.{name}"), format!("{v} is not {what}")));
        }
    }
    if let Some(field) = required.filter(|f| !table.contains_key(*f)) {
        return Err(bad(&format!("{key}.{field}"), "missing"));
    }
    Ok(())
}

impl Settings {
    /// Loads the layers in order and validates the result. `env` is the
    /// process environment (passed in so tests can give their own).
    pub fn load(
        over: &Overrides,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Self, SettingsError> {
        let mut b = Config::builder().add_source(File::from_str(DEFAULT_TOML, FileFormat::Toml));
        if let Some(path) = &over.config {
            if !path.is_file() {
                return Err(bad(
                    "--config",
                    format!("{} is not a readable file", path.display()),
                ));
            }
            b = b.add_source(File::from(path.clone()).format(FileFormat::Toml).required(true));
        }
        let mut vars = HashMap::new();
        let mut emptied = Vec::new();
        let mut texts = Vec::new();
        for (k, v) in env {
            if let Some(key) = setting_of(&k) {
                let kind = kind_of(&key);
                if kind == Some(Kind::List) && v.trim().is_empty() {
                    // An empty list, not a list of one empty string.
                    emptied.push(key);
                } else if kind == Some(Kind::Text) {
                    // Kept as written: the environment source would read
                    // MAILDOOR_MAILDIR=007 as the number 7.
                    texts.push((key, v));
                } else {
                    vars.insert(key, v);
                }
            }
        }
        let lists = SETTINGS.iter().filter(|(_, kind)| *kind == Kind::List);
        let environment = lists.fold(
            Environment::default()
                .source(Some(vars))
                .try_parsing(true)
                .list_separator(","),
            |e, (key, _)| e.with_list_parse_key(key),
        );
        b = b.add_source(environment);
        let set = |b: config::ConfigBuilder<config::builder::DefaultState>, key: &str, v: config::Value| {
            b.set_override(key, v).map_err(|e| bad(key, e))
        };
        for key in emptied {
            b = set(b, &key, Vec::<String>::new().into())?;
        }
        for (key, v) in texts {
            b = set(b, &key, v.into())?;
        }
        if !over.listen.is_empty() {
            b = set(b, "listen", over.listen.clone().into())?;
        }
        if let Some(m) = &over.maildir {
            b = set(b, "maildir", m.to_string_lossy().into_owned().into())?;
        }
        if !over.domains.is_empty() {
            b = set(b, "domains", over.domains.clone().into())?;
        }
        if let Some(h) = &over.hostname {
            b = set(b, "hostname", h.clone().into())?;
        }
        if let Some(s) = over.max_message_size {
            b = set(b, "max_message_size", s.into())?;
        }
        if let Some(l) = &over.log_level {
            b = set(b, "log_level", l.clone().into())?;
        }
        if let Some(c) = &over.tls_cert {
            b = set(b, "tls_cert", c.to_string_lossy().into_owned().into())?;
        }
        if let Some(k) = &over.tls_key {
            b = set(b, "tls_key", k.to_string_lossy().into_owned().into())?;
        }
        let built = b.build().map_err(|e| SettingsError(e.to_string()))?;
        check_kinds(&built)?;
        let raw: Raw = Config::try_deserialize(built).map_err(|e| {
            let e = e.to_string();
            match &over.config {
                // Only a --config file can hold an unknown key (the
                // environment is filtered to known ones): name it.
                Some(path) if e.starts_with("unknown field") => {
                    SettingsError(format!("{e} in {}", path.display()))
                }
                _ => SettingsError(e),
            }
        })?;
        Self::validate(raw)
    }

    /// Every socket to bind: the `listen` addresses as plain listeners, and
    /// the `[[listener]]` tables, which replace a `listen` entry with the
    /// same address (port 0 entries are never merged).
    pub fn listeners(&self) -> Vec<Listener> {
        let mut all: Vec<Listener> = self
            .listen
            .iter()
            .filter(|a| a.port() == 0 || !self.listener.iter().any(|l| l.address == **a))
            .map(|a| Listener::plain(*a))
            .collect();
        all.extend(self.listener.iter().copied());
        all
    }

    /// The built-in defaults, validated: handy for tests and embedding.
    pub fn defaults() -> Self {
        match Self::load(&Overrides::default(), std::iter::empty()) {
            Ok(s) => s,
            // The built-in file is covered by a unit test; reaching this is a build defect.
            Err(e) => unreachable!("built-in defaults are invalid: {e}"),
        }
    }

    fn validate(raw: Raw) -> Result<Self, SettingsError> {
        if raw.listen.is_empty() && raw.listener.is_empty() {
            return Err(bad("listen", "at least one address:port is needed"));
        }
        let listen = raw
            .listen
            .iter()
            .map(|a| {
                a.trim().parse::<SocketAddr>().map_err(|_| {
                    bad(
                        "listen",
                        format!("{a:?} is not address:port (IPv6 as [::1]:2525)"),
                    )
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        given_once("listen", listen.iter(), raw.reuse_port)?;
        let hostname = match raw.hostname.trim() {
            "" => system_hostname(),
            h => h.to_string(),
        };
        if !valid_name(&hostname) {
            return Err(bad("hostname", format!("{hostname:?} is not a valid host name")));
        }
        // The greeting and every reply are ASCII (RFC 6531 §3.7.1): an
        // internationalized name is used in its A-label form.
        let hostname = a_labels(&hostname);
        let mut domains: Vec<String> = if raw.domains.is_empty() {
            vec!["localhost".into(), hostname.clone()]
        } else {
            raw.domains.iter().map(|d| d.trim().to_string()).collect()
        };
        for d in &mut domains {
            // Kept as written (lower case): per-recipient Maildirs are
            // named so. Recipients are compared by `domain_key`, so
            // `bücher.example` and `xn--bcher-kva.example` are one domain.
            let stripped = lower(d.strip_suffix('.').unwrap_or(d));
            if !valid_name(&stripped) {
                return Err(bad("domains", format!("{d:?} is not a valid domain")));
            }
            *d = stripped;
        }
        // One domain written twice, in either form, counts once; the first
        // stays first: it is where `<postmaster>` goes.
        let mut seen = std::collections::HashSet::new();
        domains.retain(|d| seen.insert(domain_key(d)));
        if raw.maildir.as_os_str().is_empty() {
            return Err(bad("maildir", "must not be empty"));
        }
        let positive = |key: &str, v: u64| {
            if v == 0 {
                Err(bad(key, "must be greater than 0"))
            } else {
                Ok(())
            }
        };
        positive("max_message_size", raw.max_message_size)?;
        positive("max_recipients", raw.max_recipients as u64)?;
        positive("max_errors", u64::from(raw.max_errors))?;
        positive("max_connections", raw.max_connections as u64)?;
        positive("max_connections_per_ip", raw.max_connections_per_ip as u64)?;
        let secs = |key: &str, v: f64| {
            if v.is_finite() && v > 0.0 && v < 1e9 {
                Ok(Duration::from_secs_f64(v))
            } else if v >= 1e9 {
                Err(bad(
                    key,
                    format!("{v} seconds is too long (under 1e9, some 31 years)"),
                ))
            } else {
                Err(bad(key, format!("{v} is not a positive number of seconds")))
            }
        };
        // For the times where 0 means "not at all".
        let secs_or_zero = |key: &str, v: f64| {
            if v == 0.0 {
                Ok(Duration::ZERO)
            } else if v < 0.0 || v.is_nan() {
                Err(bad(key, format!("{v} is not 0 or a positive number of seconds")))
            } else {
                secs(key, v)
            }
        };
        let log_level = raw.log_level.trim().to_string();
        if !is_log_filter(&log_level) {
            return Err(bad(
                "log_level",
                format!(
                    "{log_level:?} is not a log level (error, warn, info, debug, trace or off; \
                     or target=level directives, comma-separated)"
                ),
            ));
        }
        let listener = raw
            .listener
            .iter()
            .map(|l| {
                let address = l.address.trim().parse::<SocketAddr>().map_err(|_| {
                    bad(
                        "listener.address",
                        format!("{:?} is not address:port (IPv6 as [::1]:2525)", l.address),
                    )
                })?;
                Ok(Listener {
                    address,
                    proxy_protocol: l.proxy_protocol,
                    implicit_tls: l.implicit_tls,
                })
            })
            .collect::<Result<Vec<_>, SettingsError>>()?;
        // Every socket that will be bound (see `listeners`), so that a
        // table overlapping a `listen` entry it does not replace is an
        // error here, not an "address in use" at start.
        given_once(
            "listener.address",
            listen
                .iter()
                .filter(|a| !listener.iter().any(|l| l.address == **a))
                .chain(listener.iter().map(|l| &l.address)),
            raw.reuse_port,
        )?;
        let path = |v: &str| match v.trim() {
            "" => None,
            p => Some(PathBuf::from(p)),
        };
        let (tls_cert, tls_key) = (
            path(&raw.tls_cert).or_else(|| path(&raw.tls.cert)),
            path(&raw.tls_key).or_else(|| path(&raw.tls.key)),
        );
        match (&tls_cert, &tls_key) {
            (Some(_), None) => return Err(bad("tls_key", "must be set when tls_cert is")),
            (None, Some(_)) => return Err(bad("tls_cert", "must be set when tls_key is")),
            _ => {}
        }
        if tls_cert.is_none() && listener.iter().any(|l| l.implicit_tls) {
            return Err(bad("listener.implicit_tls", "needs tls_cert and tls_key"));
        }
        let proxy_trusted = raw
            .proxy_trusted
            .iter()
            .filter(|c| !c.trim().is_empty())
            .map(|c| c.parse().map_err(|e| bad("proxy_trusted", e)))
            .collect::<Result<Vec<Cidr>, _>>()?;
        if proxy_trusted.is_empty() && listener.iter().any(|l| l.proxy_protocol) {
            return Err(bad(
                "proxy_trusted",
                "must list the proxies' addresses (CIDR) when a listener has proxy_protocol = true",
            ));
        }
        let per_recipient = two_way("delivery", &raw.delivery, ["shared", "per-recipient"])?;
        Ok(Settings {
            listener,
            tls_cert,
            tls_key,
            reuse_port: raw.reuse_port,
            proxy_trusted,
            proxy_timeout: secs("proxy_timeout", raw.proxy_timeout)?,
            listen,
            hostname,
            domains,
            maildir: raw.maildir,
            max_message_size: raw.max_message_size,
            max_recipients: raw.max_recipients,
            max_errors: raw.max_errors,
            max_connections: raw.max_connections,
            max_connections_per_ip: raw.max_connections_per_ip,
            limit_exempt: raw
                .limit_exempt
                .iter()
                .map(|c| c.parse().map_err(|e| bad("limit_exempt", e)))
                .collect::<Result<_, _>>()?,
            command_timeout: secs("command_timeout", raw.command_timeout)?,
            data_timeout: secs("data_timeout", raw.data_timeout)?,
            data_end_timeout: secs("data_end_timeout", raw.data_end_timeout)?,
            // 0: sessions in DATA are closed at once too.
            shutdown_grace: secs_or_zero("shutdown_grace", raw.shutdown_grace)?,
            max_session_time: secs("max_session_time", raw.max_session_time)?,
            min_data_rate: raw.min_data_rate,
            data_rate_grace: secs("data_rate_grace", raw.data_rate_grace)?,
            greet_delay: secs_or_zero("greet_delay", raw.greet_delay)?,
            per_recipient,
            existing_mailboxes_only: match (
                two_way("mailboxes", &raw.mailboxes, ["create", "existing"])?,
                per_recipient,
            ) {
                (true, false) => {
                    return Err(bad(
                        "mailboxes",
                        "\"existing\" needs delivery = \"per-recipient\"",
                    ))
                }
                (existing, _) => existing,
            },
            recipient_delimiter: {
                let mut chars = raw.recipient_delimiter.chars();
                match (chars.next(), chars.next()) {
                    (None, _) => None,
                    (Some(c), None) if "+-_=#~".contains(c) => Some(c),
                    _ => return Err(bad("recipient_delimiter", "must be empty or one of + - _ = # ~")),
                }
            },
            reject_long_lines: two_way("long_lines", &raw.long_lines, ["accept", "reject"])?,
            bare_lf: if two_way("bare_lf", &raw.bare_lf, ["normalize", "reject"])? {
                BareLf::Reject
            } else {
                BareLf::Normalize
            },
            log_level,
        })
    }
}

/// A setting that takes one of two words (any case, spaces trimmed):
/// false for the first, true for the second; anything else is an error
/// naming `key` and both words.
fn two_way(key: &str, value: &str, [no, yes]: [&str; 2]) -> Result<bool, SettingsError> {
    match value.trim().to_ascii_lowercase() {
        v if v == no => Ok(false),
        v if v == yes => Ok(true),
        other => Err(bad(key, format!("{other:?} is not \"{no}\" or \"{yes}\""))),
    }
}

/// A host or domain name: dot-separated labels of letters, digits, `-`
/// and `_` (or any non-ASCII letter), 253 octets at most.
pub fn valid_hostname(h: &str) -> bool {
    !h.is_empty()
        && h.len() <= 253
        && h.split('.').all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && l.chars().all(|c| {
                    c.is_ascii_alphanumeric() || c == '-' || c == '_' || !c.is_ascii() && c.is_alphanumeric()
                })
        })
}

/// A host or domain name, internationalized or not: one the SMTP parser
/// takes (at most 255 octets as written, so it also fits as a directory
/// name), whose A-label form is a valid host name (DNS's limits of 63 and
/// 253 octets apply to that form, RFC 5890 §2.3.2.1).
pub fn valid_name(name: &str) -> bool {
    crate::smtp::command::is_domain_name(name) && valid_hostname(&a_labels(name))
}

/// The machine's host name (`/proc/sys/kernel/hostname`), or `localhost`.
pub fn system_hostname() -> String {
    ["/proc/sys/kernel/hostname", "/etc/hostname"]
        .iter()
        .filter_map(|p| std::fs::read_to_string(p).ok())
        .map(|s| s.trim().to_string())
        .find(|s| valid_hostname(s))
        .unwrap_or_else(|| "localhost".to_string())
}

/// Refuses an address given twice under `key`, or, unless `reuse_port`
/// (with which Linux lets them bind side by side), one that a wildcard
/// address of its family and port already covers (`0.0.0.0:2525` and
/// `127.0.0.1:2525`): the second bind would fail with "address in use"
/// against our own socket. Port 0 may repeat: each gets its own port.
fn given_once<'a>(
    key: &str,
    addrs: impl Iterator<Item = &'a SocketAddr>,
    reuse_port: bool,
) -> Result<(), SettingsError> {
    let covers = |w: &SocketAddr, b: &SocketAddr| {
        w.port() == b.port() && w.is_ipv4() == b.is_ipv4() && w.ip().is_unspecified()
    };
    let mut seen: Vec<SocketAddr> = Vec::new();
    for a in addrs.filter(|a| a.port() != 0) {
        if seen.contains(a) {
            return Err(bad(key, format!("{a} is given twice")));
        }
        if let Some(other) = seen
            .iter()
            .find(|b| !reuse_port && (covers(b, a) || covers(a, b)))
        {
            return Err(bad(
                key,
                format!("{a} and {other} overlap (a wildcard address takes its family's every address on that port)"),
            ));
        }
        seen.push(*a);
    }
    Ok(())
}

/// True for a `log_level` value: a level name, or comma-separated
/// directives that are each a level or `target=level` (tracing's
/// `EnvFilter` syntax). A bare word that is not a level would be taken by
/// `EnvFilter` as a target name and silence every other log line, so it is
/// refused.
pub fn is_log_filter(value: &str) -> bool {
    const LEVELS: [&str; 6] = ["error", "warn", "info", "debug", "trace", "off"];
    let is_level = |w: &str| LEVELS.iter().any(|l| l.eq_ignore_ascii_case(w.trim()));
    !value.trim().is_empty()
        && tracing_subscriber::EnvFilter::try_new(value).is_ok()
        && value.split(',').all(|d| match d.rsplit_once('=') {
            Some((target, level)) => !target.trim().is_empty() && is_level(level),
            None => is_level(d),
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn defaults_are_valid() {
        let s = Settings::defaults();
        assert_eq!(s.listen, vec!["0.0.0.0:25".parse::<SocketAddr>().unwrap()]);
        assert_eq!(s.max_message_size, 25 * 1024 * 1024);
        assert_eq!(s.max_recipients, 100);
        assert!(s.domains.contains(&"localhost".to_string()));
        assert!(s.domains.contains(&s.hostname.to_ascii_lowercase()) || s.domains.contains(&s.hostname));
        assert_eq!(s.command_timeout, Duration::from_secs(300));
        assert_eq!(s.bare_lf, BareLf::Normalize);
    }

    #[test]
    fn layers_apply_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("local.toml");
        std::fs::write(
            &file,
            "max_message_size = 1000\nmax_recipients = 5\nhostname = \"file.test\"\n",
        )
        .unwrap();
        let over = Overrides {
            config: Some(file),
            hostname: Some("flag.test".into()),
            ..Default::default()
        };
        let s = Settings::load(
            &over,
            env(&[
                ("MAILDOOR_MAX_RECIPIENTS", "7"),
                ("MAILDOOR_LISTEN", "127.0.0.1:2525,[::1]:2526"),
                ("MAILDOOR_REQUIRE_CLIENTS", "1"),
                ("OTHER", "x"),
            ]),
        )
        .unwrap();
        assert_eq!(s.max_message_size, 1000); // file over default
        assert_eq!(s.max_recipients, 7); // env over file
        assert_eq!(s.hostname, "flag.test"); // flag over file
        assert_eq!(s.listen.len(), 2);
        assert_eq!(s.listen[1], "[::1]:2526".parse::<SocketAddr>().unwrap());
        assert_eq!(s.domains, vec!["localhost".to_string(), "flag.test".to_string()]);
    }

    #[test]
    fn internationalized_names_count_in_either_form() {
        let over = Overrides {
            hostname: Some("mx.Bücher.example".into()),
            domains: vec![
                "Bücher2.example".into(),
                "xn--bcher2-3ya.example".into(),
                "b.test".into(),
            ],
            ..Default::default()
        };
        let s = Settings::load(&over, env(&[])).unwrap();
        assert_eq!(s.hostname, "mx.xn--bcher-kva.example");
        // As written, in lower case; the A-label spelling of the same
        // domain is not a second one.
        assert_eq!(
            s.domains,
            vec!["bücher2.example".to_string(), "b.test".to_string()]
        );
        // DNS's 63-octet limit is on the A-label: 40 ü are 80 octets of
        // UTF-8 but `xn--` and 42 letters; 63 of them are too many.
        let name = |n: usize| format!("{}.example", "ü".repeat(n));
        let with = |d: String| Overrides {
            domains: vec![d],
            ..Default::default()
        };
        assert_eq!(
            Settings::load(&with(name(40)), env(&[])).unwrap().domains,
            [name(40)]
        );
        // Combining marks are part of many scripts' names; `İ` is `i` and a
        // combining dot in lower case.
        for good in ["हिन्दी.example", "เว็บไซต์.example", "İstanbul.example"] {
            assert_eq!(
                Settings::load(&with(good.into()), env(&[])).unwrap().domains,
                [lower(good)]
            );
        }
        // More than 255 octets as written cannot be a directory name (nor
        // a name a client can write), short as its A-labels may be.
        let long = format!("{0}.{0}.{0}", "ü".repeat(55));
        assert!(valid_hostname(&a_labels(&long)));
        for bad in [
            name(63),
            long,
            "a/b.example".into(),
            "a b.example".into(),
            "a\u{200b}b.example".into(),
        ] {
            let err = Settings::load(&with(bad.clone()), env(&[]))
                .unwrap_err()
                .to_string();
            assert!(err.contains("domains"), "{bad}: {err}");
        }
    }

    #[test]
    fn flags_win_over_env() {
        let over = Overrides {
            listen: vec!["127.0.0.1:2600".into()],
            domains: vec!["Example.ORG".into()],
            max_message_size: Some(42),
            ..Default::default()
        };
        let s = Settings::load(
            &over,
            env(&[
                ("MAILDOOR_LISTEN", "127.0.0.1:1"),
                ("MAILDOOR_MAX_MESSAGE_SIZE", "9"),
            ]),
        )
        .unwrap();
        assert_eq!(s.listen, vec!["127.0.0.1:2600".parse::<SocketAddr>().unwrap()]);
        assert_eq!(s.domains, vec!["example.org".to_string()]);
        assert_eq!(s.max_message_size, 42);
    }

    #[test]
    fn empty_list_variables_are_empty_lists_and_typos_are_found() {
        let s = Settings::load(
            &Overrides::default(),
            env(&[("MAILDOOR_DOMAINS", ""), ("MAILDOOR_LIMIT_EXEMPT", " ")]),
        )
        .unwrap();
        assert_eq!(
            s.domains,
            Settings::load(&Overrides::default(), env(&[])).unwrap().domains
        );
        assert!(s.limit_exempt.is_empty());
        let vars = env(&[
            ("MAILDOOR_MAX_MESAGE_SIZE", "1"),
            ("MAILDOOR_LISTEN", "127.0.0.1:2525"),
            ("PATH", "/bin"),
        ]);
        assert_eq!(
            unknown_env_vars(vars),
            vec!["MAILDOOR_MAX_MESAGE_SIZE".to_string()]
        );
    }

    #[test]
    fn overlapping_listeners_are_fine_with_reuse_port() {
        let vars = [
            ("MAILDOOR_LISTEN", "0.0.0.0:2525,127.0.0.1:2525"),
            ("MAILDOOR_REUSE_PORT", "true"),
        ];
        let s = Settings::load(&Overrides::default(), env(&vars)).unwrap();
        assert_eq!(s.listen.len(), 2);
    }

    #[test]
    fn zero_means_no_wait_where_it_can() {
        let zero = [("MAILDOOR_SHUTDOWN_GRACE", "0"), ("MAILDOOR_GREET_DELAY", "0")];
        let s = Settings::load(&Overrides::default(), env(&zero)).unwrap();
        assert_eq!(
            (s.shutdown_grace, s.greet_delay),
            (Duration::ZERO, Duration::ZERO)
        );
    }

    #[test]
    fn existing_mailboxes_go_with_per_recipient_delivery() {
        let s = Settings::load(&Overrides::default(), env(&[])).unwrap();
        assert!(!s.existing_mailboxes_only);
        let s = Settings::load(
            &Overrides::default(),
            env(&[
                ("MAILDOOR_DELIVERY", "per-recipient"),
                ("MAILDOOR_MAILBOXES", "Existing"),
            ]),
        )
        .unwrap();
        assert!(s.per_recipient && s.existing_mailboxes_only);
    }

    #[test]
    fn log_levels_and_directives_are_taken() {
        for ok in [
            "info",
            "WARN",
            " debug ",
            "off",
            "warn,maildoor=debug",
            "maildoor::session=trace",
        ] {
            assert!(is_log_filter(ok), "{ok}");
        }
        for bad in ["", "bogus", "info,", "=info", "maildoor=", "loud["] {
            assert!(!is_log_filter(bad), "{bad:?}");
        }
    }

    #[test]
    fn bad_values_name_their_key() {
        let cases: &[(&str, &str, &str)] = &[
            ("MAILDOOR_LISTEN", "nonsense", "listen"),
            (
                "MAILDOOR_LISTEN",
                "127.0.0.1:2525,[::1]:2525,127.0.0.1:2525",
                "127.0.0.1:2525 is given twice",
            ),
            (
                "MAILDOOR_LISTEN",
                "0.0.0.0:2525,127.0.0.1:2525",
                "127.0.0.1:2525 and 0.0.0.0:2525 overlap",
            ),
            (
                "MAILDOOR_LISTEN",
                "[::1]:2525,[::]:2525",
                "[::]:2525 and [::1]:2525 overlap",
            ),
            ("MAILDOOR_MAX_MESSAGE_SIZE", "abc", "max_message_size"),
            ("MAILDOOR_MAX_MESSAGE_SIZE", "0", "max_message_size"),
            ("MAILDOOR_BARE_LF", "sometimes", "bare_lf"),
            ("MAILDOOR_COMMAND_TIMEOUT", "-1", "command_timeout"),
            ("MAILDOOR_DOMAINS", "bad domain", "domains"),
            ("MAILDOOR_HOSTNAME", "a/b", "hostname"),
            ("MAILDOOR_LOG_LEVEL", "loud[", "log_level"),
            ("MAILDOOR_LOG_LEVEL", "bogus", "log_level"),
            ("MAILDOOR_LOG_LEVEL", "info,bogus", "log_level"),
            ("MAILDOOR_LOG_LEVEL", "maildoor=loud", "log_level"),
            ("MAILDOOR_LIMIT_EXEMPT", "127.0.0.1/99", "limit_exempt"),
            ("MAILDOOR_LONG_LINES", "maybe", "long_lines"),
            ("MAILDOOR_MAILBOXES", "some", "mailboxes"),
            ("MAILDOOR_MAILBOXES", "existing", "mailboxes"),
            ("MAILDOOR_DELIVERY", "everywhere", "delivery"),
            ("MAILDOOR_RECIPIENT_DELIMITER", "ab", "recipient_delimiter"),
            ("MAILDOOR_RECIPIENT_DELIMITER", "/", "recipient_delimiter"),
            ("MAILDOOR_GREET_DELAY", "-2", "greet_delay"),
            ("MAILDOOR_MAX_SESSION_TIME", "0", "max_session_time"),
            (
                "MAILDOOR_COMMAND_TIMEOUT",
                "1e12",
                "command_timeout: 1000000000000 seconds is too long",
            ),
            ("MAILDOOR_SHUTDOWN_GRACE", "-1", "shutdown_grace"),
            // Kinds the config crate would convert on its own.
            (
                "MAILDOOR_MAX_MESSAGE_SIZE",
                "1.5",
                "max_message_size: 1.5 is not a whole number",
            ),
            ("MAILDOOR_MAX_RECIPIENTS", "1.4", "max_recipients"),
            ("MAILDOOR_MAX_ERRORS", "true", "max_errors"),
            (
                "MAILDOOR_COMMAND_TIMEOUT",
                "true",
                "command_timeout: true is not a number",
            ),
            ("MAILDOOR_REUSE_PORT", "yes", "reuse_port"),
        ];
        for (k, v, key) in cases {
            let err = Settings::load(&Overrides::default(), env(&[(k, v)]))
                .unwrap_err()
                .to_string();
            assert!(err.contains(key), "{k}={v}: {err}");
        }
    }

    #[test]
    fn a_file_value_of_the_wrong_kind_is_an_error_not_a_conversion() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("x.toml");
        let load = |text: &str| {
            std::fs::write(&file, text).unwrap();
            Settings::load(
                &Overrides {
                    config: Some(file.clone()),
                    ..Overrides::default()
                },
                std::iter::empty(),
            )
        };
        for (text, key) in [
            ("max_message_size = 1.5", "max_message_size"),
            ("max_message_size = 1e30", "max_message_size"),
            ("max_recipients = true", "max_recipients"),
            ("min_data_rate = 0.4", "min_data_rate"),
            ("command_timeout = true", "command_timeout"),
            ("reuse_port = 1", "reuse_port"),
            ("reuse_port = \"yes\"", "reuse_port"),
            ("hostname = 5", "hostname"),
            ("maildir = true", "maildir"),
            ("domains = \"example.test\"", "domains"),
            ("domains = [\"a.test\", 5]", "domains"),
            ("listen = 2525", "listen"),
            ("proxy_trusted = \"127.0.0.1\"", "proxy_trusted"),
            ("tls = \"x\"", "tls"),
            ("[tls]\nbogus = 1", "tls.bogus"),
            ("[tls]\ncert = 1", "tls.cert"),
            ("listener = \"x\"", "listener"),
            ("listener = [5]", "listener[0]"),
            ("[[listener]]\nproxy_protocol = true", "listener[0].address"),
            (
                "[[listener]]\naddress = \"127.0.0.1:2525\"\nimplicit_tls = \"yes\"",
                "listener[0].implicit_tls",
            ),
            (
                "[[listener]]\naddress = \"127.0.0.1:2525\"\nport = 1",
                "listener[0].port",
            ),
        ] {
            let err = load(text).unwrap_err().to_string();
            assert!(err.contains(&format!("{key}: ")), "{text}: {err}");
        }
        let s = load("max_message_size = \"1000\"\ncommand_timeout = 2.5\nreuse_port = true\n").unwrap();
        assert_eq!(s.max_message_size, 1000);
        assert_eq!(s.command_timeout, Duration::from_millis(2500));
        // The environment's text: whole numbers and seconds as written,
        // and text that looks like a number is still text.
        let s = Settings::load(
            &Overrides::default(),
            env(&[
                ("MAILDOOR_MAX_RECIPIENTS", "7"),
                ("MAILDOOR_DATA_TIMEOUT", "0.5"),
                ("MAILDOOR_HOSTNAME", "007"),
                ("MAILDOOR_MAILDIR", "1e3"),
            ]),
        )
        .unwrap();
        assert_eq!((s.max_recipients, s.hostname.as_str()), (7, "007"));
        assert_eq!(s.maildir, std::path::PathBuf::from("1e3"));
    }

    #[test]
    fn unknown_key_in_file_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("x.toml");
        std::fs::write(&file, "max_mesage_size = 1\n").unwrap();
        let over = Overrides {
            config: Some(file),
            ..Default::default()
        };
        let err = Settings::load(&over, env(&[])).unwrap_err().to_string();
        assert!(err.contains("max_mesage_size") && err.contains("x.toml"), "{err}");
        let missing = Overrides {
            config: Some("/nonexistent/x.toml".into()),
            ..Default::default()
        };
        assert!(Settings::load(&missing, env(&[]))
            .unwrap_err()
            .to_string()
            .contains("--config"));
    }

    #[test]
    fn listener_tables_and_tls_keys() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("l.toml");
        std::fs::write(
            &file,
            "listen = [\"127.0.0.1:2525\", \"[::1]:2525\"]\ntls_cert = \"c.pem\"\ntls_key = \"k.pem\"\nproxy_trusted = [\"10.0.0.0/8\"]\n\n[[listener]]\naddress = \"127.0.0.1:2525\"\nproxy_protocol = true\n\n[[listener]]\naddress = \"[::]:465\"\nimplicit_tls = true\n",
        )
        .unwrap();
        let over = Overrides {
            config: Some(file.clone()),
            ..Default::default()
        };
        let s = Settings::load(&over, env(&[("MAILDOOR_PROXY_TRUSTED", "127.0.0.1,::1/128")])).unwrap();
        let all = s.listeners();
        assert_eq!(all.len(), 3, "{all:?}");
        assert_eq!(all[0], Listener::plain("[::1]:2525".parse().unwrap()));
        assert!(all[1].proxy_protocol && !all[1].implicit_tls);
        assert_eq!(all[1].address, "127.0.0.1:2525".parse().unwrap());
        assert!(all[2].implicit_tls && all[2].address.is_ipv6());
        assert_eq!(s.tls_cert, Some(PathBuf::from("c.pem")));
        assert_eq!(s.proxy_trusted.len(), 2);

        // The same two settings as a [tls] table (tls.cert / tls.key); the
        // environment's MAILDOOR_TLS_CERT still wins over the file.
        std::fs::write(&file, "[tls]\ncert = \"t.pem\"\nkey = \"tk.pem\"\n").unwrap();
        let s = Settings::load(&over, env(&[])).unwrap();
        assert_eq!(
            (s.tls_cert, s.tls_key),
            (Some("t.pem".into()), Some("tk.pem".into()))
        );
        let s = Settings::load(&over, env(&[("MAILDOOR_TLS_CERT", "e.pem")])).unwrap();
        assert_eq!(s.tls_cert, Some("e.pem".into()));
        std::fs::write(&file, "tls.cert = \"d.pem\"\n").unwrap();
        let err = Settings::load(&over, env(&[])).unwrap_err().to_string();
        assert!(err.contains("tls_key"), "{err}");

        let cases: &[(&str, &str, &str)] = &[
            ("MAILDOOR_TLS_CERT", "c.pem", "tls_key"),
            ("MAILDOOR_TLS_KEY", "k.pem", "tls_cert"),
            ("MAILDOOR_PROXY_TRUSTED", "10.0.0.0/40", "proxy_trusted"),
            ("MAILDOOR_REUSE_PORT", "maybe", "reuse_port"),
            ("MAILDOOR_PROXY_TIMEOUT", "0", "proxy_timeout"),
        ];
        for (k, v, key) in cases {
            let err = Settings::load(&Overrides::default(), env(&[(k, v)]))
                .unwrap_err()
                .to_string();
            assert!(err.contains(key), "{k}={v}: {err}");
        }
        let bad = |text: &str, key: &str| {
            std::fs::write(&file, text).unwrap();
            let err = Settings::load(&over, env(&[])).unwrap_err().to_string();
            assert!(err.contains(key), "{text}: {err}");
        };
        bad("[[listener]]\naddress = \"nowhere\"\n", "listener.address");
        bad(
            "[[listener]]\naddress = \"127.0.0.1:465\"\n[[listener]]\naddress = \"127.0.0.1:465\"\n",
            "listener.address: 127.0.0.1:465 is given twice",
        );
        bad(
            "[[listener]]\naddress = \"127.0.0.1:465\"\nimplicit_tls = true\n",
            "implicit_tls",
        );
        bad(
            "[[listener]]\naddress = \"127.0.0.1:2626\"\nproxy_protocol = true\n",
            "proxy_trusted",
        );
        bad(
            "[[listener]]\naddress = \"127.0.0.1:2626\"\nproxy = true\n",
            "proxy",
        );
        // A table beside the `listen` entry whose wildcard covers it (the
        // default 0.0.0.0:25): the second bind could only fail.
        bad(
            "[[listener]]\naddress = \"127.0.0.1:25\"\n",
            "listener.address: 127.0.0.1:25 and 0.0.0.0:25 overlap",
        );
        std::fs::write(
            &file,
            "reuse_port = true\n[[listener]]\naddress = \"127.0.0.1:25\"\n",
        )
        .unwrap();
        assert_eq!(Settings::load(&over, env(&[])).unwrap().listeners().len(), 2);
    }
}
