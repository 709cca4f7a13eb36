//! The `maildoor` command: parse flags, load settings, run the server.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use maildoor::{Overrides, Server, Settings};

/// maildoor: a small, fast SMTP server that delivers mail durably into a Maildir.
///
/// Without a subcommand it runs the server. Settings come from the built-in
/// config/default.toml, then --config FILE, then MAILDOOR_* environment
/// variables (e.g. MAILDOOR_LISTEN, MAILDOOR_MAX_MESSAGE_SIZE), then these flags.
#[derive(Debug, Parser)]
#[command(name = "maildoor", version, about, long_about)]
struct Cli {
    /// A TOML file with settings that override the defaults (same keys as config/default.toml).
    #[arg(long, value_name = "FILE", global = true)]
    config: Option<PathBuf>,

    /// Maildir the server delivers into and `mailbox` reads (default: maildir, relative to the working directory).
    #[arg(long, value_name = "DIR", global = true)]
    maildir: Option<PathBuf>,

    #[command(flatten)]
    server: ServerArgs,

    #[command(subcommand)]
    command: Option<Cmd>,
}

/// The server's flags: given before any subcommand, or after `serve`.
#[derive(Debug, Clone, Default, clap::Args)]
struct ServerArgs {
    /// Address and port to listen on, e.g. 127.0.0.1:2525 or [::1]:2525 (repeatable; default 0.0.0.0:25).
    #[arg(long, value_name = "ADDR:PORT")]
    listen: Vec<String>,

    /// Domain to accept mail for (repeatable; default: localhost and the host name).
    #[arg(long = "domain", value_name = "DOMAIN")]
    domains: Vec<String>,

    /// Host name for the greeting, Received: headers and file names (default: the machine's).
    #[arg(long, value_name = "NAME")]
    hostname: Option<String>,

    /// Largest message accepted, in octets (advertised as SIZE; default 26214400).
    #[arg(long, value_name = "BYTES")]
    max_message_size: Option<u64>,

    /// Log verbosity: error, warn, info, debug (whole dialogue), trace or off, or target=level directives (warn,maildoor::session=debug); wins over RUST_LOG.
    #[arg(long, value_name = "LEVEL")]
    log_level: Option<String>,

    /// PEM certificate chain for STARTTLS and implicit-TLS listeners (key tls_cert; needs --tls-key).
    #[arg(long, value_name = "FILE", requires = "tls_key")]
    tls_cert: Option<PathBuf>,

    /// PEM private key that goes with --tls-cert (key tls_key).
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    tls_key: Option<PathBuf>,
}

impl ServerArgs {
    /// True when any server flag was given.
    fn is_given(&self) -> bool {
        let ServerArgs {
            listen,
            domains,
            hostname,
            max_message_size,
            log_level,
            tls_cert,
            tls_key,
        } = self;
        !listen.is_empty()
            || !domains.is_empty()
            || hostname.is_some()
            || max_message_size.is_some()
            || log_level.is_some()
            || tls_cert.is_some()
            || tls_key.is_some()
    }

    /// These flags, with those given after `serve` (`later`) added to the
    /// lists and winning where only one value is kept.
    fn and(self, later: ServerArgs) -> ServerArgs {
        ServerArgs {
            listen: [self.listen, later.listen].concat(),
            domains: [self.domains, later.domains].concat(),
            hostname: later.hostname.or(self.hostname),
            max_message_size: later.max_message_size.or(self.max_message_size),
            log_level: later.log_level.or(self.log_level),
            tls_cert: later.tls_cert.or(self.tls_cert),
            tls_key: later.tls_key.or(self.tls_key),
        }
    }
}

#[derive(Debug, Subcommand)]
enum Cmd {
    /// Run the SMTP server (what maildoor does without a subcommand); takes
    /// the same flags.
    Serve(ServerArgs),
    /// Read the mail in the Maildir (--maildir DIR or the configured one).
    Mailbox(maildoor::mailbox::MailboxArgs),
    /// Write a self-signed TLS certificate and key (cert.pem, key.pem) for
    /// testing; give them to --tls-cert and --tls-key.
    GenCert {
        /// The name the certificate is for (its subject alternative name).
        #[arg(long, value_name = "NAME")]
        hostname: String,
        /// Directory to write cert.pem and key.pem into (created if missing).
        #[arg(long, value_name = "DIR", default_value = ".")]
        out: PathBuf,
        /// Replace cert.pem and key.pem if they exist (by default an
        /// existing pair is kept and gen-cert fails).
        #[arg(long)]
        force: bool,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Some(Cmd::GenCert { hostname, out, force }) = &cli.command {
        // clap lists the global flags under every subcommand, and takes
        // server flags before it; gen-cert reads no settings, so taking
        // them quietly would be a lie.
        if cli.config.is_some() || cli.maildir.is_some() || cli.server.is_given() {
            eprintln!("maildoor: gen-cert reads no settings: --config, --maildir and server flags do not apply to it");
            return ExitCode::from(2);
        }
        return gen_cert(hostname, out, *force);
    }
    let server = match &cli.command {
        Some(Cmd::Serve(after)) => cli.server.clone().and(after.clone()),
        _ => cli.server.clone(),
    };
    let over = Overrides {
        config: cli.config.clone(),
        listen: server.listen,
        maildir: cli.maildir.clone(),
        domains: server.domains,
        hostname: server.hostname,
        max_message_size: server.max_message_size,
        log_level: server.log_level.clone(),
        tls_cert: server.tls_cert,
        tls_key: server.tls_key,
    };
    let settings = match Settings::load(&over, std::env::vars()) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("maildoor: {e}");
            return ExitCode::from(2);
        }
    };
    match cli.command {
        None | Some(Cmd::Serve(_)) => serve(settings, server.log_level.is_some()),
        Some(Cmd::Mailbox(args)) => mailbox(
            &args,
            &maildoor::mailbox::Layout {
                root: &settings.maildir,
                per_recipient: settings.per_recipient,
                delimiter: settings.recipient_delimiter,
                domains: &settings.domains,
            },
        ),
        Some(Cmd::GenCert { .. }) => ExitCode::SUCCESS, // handled before settings load
    }
}

/// Runs `maildoor mailbox ...`: exit 0, or 1 with the error on stderr. A
/// closed stdout (`| head`) is not an error.
fn mailbox(args: &maildoor::mailbox::MailboxArgs, layout: &maildoor::mailbox::Layout<'_>) -> ExitCode {
    let mut out = std::io::stdout().lock();
    let mut err = std::io::stderr();
    match maildoor::mailbox::cli::run(args, layout, &mut out, &mut err) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) if e.is_broken_pipe() => ExitCode::SUCCESS,
        Err(e) => {
            // File names are anyone's bytes: no terminal controls from them.
            eprintln!(
                "maildoor: {}",
                maildoor::mailbox::message::sanitize(&e.to_string(), false)
            );
            ExitCode::FAILURE
        }
    }
}

/// `maildoor gen-cert`: writes `cert.pem` and `key.pem` (mode 0600),
/// never over existing files unless `force`.
fn gen_cert(hostname: &str, out: &std::path::Path, force: bool) -> ExitCode {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let is_ip = hostname.parse::<std::net::IpAddr>().is_ok();
    if !is_ip && !maildoor::config::valid_hostname(hostname) {
        eprintln!("maildoor: --hostname {hostname:?} is not a host name or IP address");
        return ExitCode::from(2);
    }
    if !force {
        for name in ["cert.pem", "key.pem"] {
            let path = out.join(name);
            if path.exists() {
                eprintln!(
                    "maildoor: {} exists; keeping it (use --force to replace the pair)",
                    path.display()
                );
                return ExitCode::FAILURE;
            }
        }
    }
    let (cert, key) = match maildoor::tls::self_signed(hostname) {
        Ok(pair) => pair,
        Err(e) => {
            eprintln!("maildoor: cannot make a certificate for {hostname:?}: {e}");
            return ExitCode::from(2);
        }
    };
    let write = |name: &str, text: &str, mode: u32| -> std::io::Result<PathBuf> {
        std::fs::create_dir_all(out)?;
        let path = out.join(name);
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(mode)
            .open(&path)?;
        f.write_all(text.as_bytes())?;
        f.sync_all()?;
        Ok(path)
    };
    match (write("cert.pem", &cert, 0o644), write("key.pem", &key, 0o600)) {
        (Ok(c), Ok(k)) => {
            println!("wrote {} and {}", c.display(), k.display());
            println!(
                "use them with: --tls-cert {} --tls-key {} (or tls_cert and tls_key in a config file)",
                c.display(),
                k.display()
            );
            ExitCode::SUCCESS
        }
        (Err(e), _) | (_, Err(e)) => {
            eprintln!("maildoor: cannot write into {}: {e}", out.display());
            ExitCode::FAILURE
        }
    }
}

fn init_logging(settings: &Settings, flag_given: bool) {
    use tracing_subscriber::EnvFilter;
    // RUST_LOG wins over the log_level key (not over the flag), when it
    // is a filter we can use; otherwise say so once logging is up.
    let rust_log = std::env::var("RUST_LOG")
        .ok()
        .filter(|v| !flag_given && !v.trim().is_empty());
    let (filter, ignored) = match rust_log {
        Some(v) if maildoor::config::is_log_filter(&v) => (v, None),
        other => (settings.log_level.clone(), other),
    };
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    tracing_subscriber::fmt()
        .with_env_filter(EnvFilter::try_new(&filter).unwrap_or_else(|_| EnvFilter::new("info")))
        .with_ansi(ansi)
        .with_writer(std::io::stderr)
        // A log that cannot be written (stderr a closed pipe, `| head`) is
        // lost, not reported with eprintln!, which would panic the task
        // that logged: a session, or the one that waits for signals.
        .log_internal_errors(false)
        .init();
    for var in maildoor::config::unknown_env_vars(std::env::vars()) {
        tracing::warn!(variable = %var, "not a maildoor setting; ignored (see config/default.toml for the keys)");
    }
    if let Some(v) = ignored {
        tracing::warn!(
            rust_log = %v,
            log_level = %settings.log_level,
            "RUST_LOG is not a log level or target=level list; using log_level"
        );
    }
}

fn serve(settings: Settings, log_flag: bool) -> ExitCode {
    init_logging(&settings, log_flag);
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("maildoor: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let files = maildoor::server::raise_open_file_limit();
    // One per session, plus listeners, logs, up to 64 spare files made
    // ahead of need under load (store::spare), and the per-recipient
    // mailboxes kept open.
    let wanted = settings.max_connections as u64 + 128 + maildoor::store::commit::OPEN_FILES_FOR_MAILBOXES;
    if files < wanted {
        tracing::warn!(
            open_files = files,
            max_connections = settings.max_connections,
            "open file limit is below max_connections; raise the hard limit (ulimit -Hn)"
        );
    } else {
        tracing::info!(open_files = files, "open file limit");
    }
    let code = runtime.block_on(async {
        let server = match Server::bind(settings).await {
            Ok(s) => s,
            Err(e) => {
                eprintln!("maildoor: {e}");
                // A certificate or key that cannot be used is a bad setting.
                return match e {
                    maildoor::server::StartError::Tls(_) => ExitCode::from(2),
                    _ => ExitCode::FAILURE,
                };
            }
        };
        let (stop, hurry) = stop_signals();
        server.run_until(stop, hurry).await;
        ExitCode::SUCCESS
    });
    // The sessions have ended (or been given up on after the abort). What
    // may still run on the blocking pool is file work for messages nobody
    // was told are delivered (a chunk of an abandoned message, the commit
    // of one whose session got 421; a 250 only ever follows a finished
    // commit): on a store that hangs (a dead NFS server) that never
    // returns, and the runtime's plain drop would wait for it forever.
    // Left in tmp/, such a file is removed at the next start.
    runtime.shutdown_timeout(std::time::Duration::from_secs(2));
    code
}

/// Two futures: the first completes on the first SIGINT or SIGTERM (stop
/// accepting, let messages in DATA finish), the second on the next one
/// (close every session now). SIGHUP is logged and otherwise ignored.
fn stop_signals() -> (
    impl std::future::Future<Output = ()>,
    impl std::future::Future<Output = ()>,
) {
    use tokio::signal::unix::{signal, SignalKind};
    // SIGHUP would end the process on the spot (its default): a closed
    // terminal, or a habit of "reload" from other daemons. maildoor does
    // not reload its settings, so it says so and goes on.
    if let Ok(mut hup) = signal(SignalKind::hangup()) {
        tokio::spawn(async move {
            while hup.recv().await.is_some() {
                tracing::warn!(
                    "SIGHUP received: settings are not reloaded; restart maildoor to apply changes (SIGTERM stops it in order)"
                );
            }
        });
    }
    let (count_tx, count_rx) = tokio::sync::watch::channel(0u32);
    let term = signal(SignalKind::terminate());
    let int = signal(SignalKind::interrupt());
    tokio::spawn(async move {
        match (term, int) {
            (Ok(mut term), Ok(mut int)) => loop {
                tokio::select! {
                    _ = term.recv() => tracing::info!("SIGTERM received"),
                    _ = int.recv() => tracing::info!("SIGINT received"),
                }
                count_tx.send_modify(|n| *n += 1);
            },
            _ => loop {
                if tokio::signal::ctrl_c().await.is_err() {
                    return;
                }
                count_tx.send_modify(|n| *n += 1);
            },
        }
    });
    let nth = |n: u32| {
        let mut rx = count_rx.clone();
        async move {
            // An error means the signal task is gone: never fires.
            if rx.wait_for(|c| *c >= n).await.is_err() {
                std::future::pending::<()>().await;
            }
        }
    };
    (nth(1), nth(2))
}
