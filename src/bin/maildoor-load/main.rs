//! maildoor-load: an SMTP load generator for loopback measurements.
//!
//! N concurrent connections send M messages of S bytes, one connection per
//! message (like Postfix's `smtp-source`) or many per connection
//! (`--reuse`), pipelined (`--pipeline`, RFC 2920) or not. It reports
//! messages/s, MiB/s, the latency from the end of DATA to the 250, and
//! failures by kind; with `--maildir` it then checks that every message
//! answered 250 is in the Maildir, whole, and exits 1 if any is not
//! (3 when no message at all was delivered, 2 for a usage error).
//!
//! `--serve-discard ADDR` instead runs a maildoor server that discards
//! every message (the protocol's cost alone), to compare with `smtp-sink`.

mod check;
mod client;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use clap::Parser;
use serde::Serialize;

use client::{Job, Message, Outcome};

/// Command-line options.
#[derive(Debug, Parser)]
#[command(
    name = "maildoor-load",
    about = "SMTP load generator: N connections, M messages of S bytes; checks the Maildir afterwards",
    after_help = "Examples:\n  maildoor-load --server 127.0.0.1:2525 --connections 20 --messages 5000 --size 1024 --maildir maildir\n  maildoor-load --server 127.0.0.1:2525 --reuse --pipeline --json\n  maildoor-load --serve-discard 127.0.0.1:2626   # then: smtp-source -s 20 -m 5000 -l 1024 -t user@bench.test 127.0.0.1:2626"
)]
struct Args {
    /// The server to load, ADDR:PORT.
    #[arg(long, required_unless_present = "serve_discard")]
    server: Option<SocketAddr>,
    /// Concurrent connections.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..=100_000))]
    connections: u64,
    /// Messages to send in all.
    #[arg(long, default_value_t = 100)]
    messages: u64,
    /// Bytes per message as sent (headers included, terminator excluded).
    #[arg(long, default_value_t = 1024)]
    size: usize,
    /// Send many messages per connection (MAIL/RCPT/DATA repeated, no
    /// RSET); default is one connection per message.
    #[arg(long)]
    reuse: bool,
    /// Send MAIL, RCPT and DATA in one write (RFC 2920 PIPELINING).
    #[arg(long)]
    pipeline: bool,
    /// Envelope sender.
    #[arg(long, default_value = "load@localhost")]
    from: String,
    /// Envelope recipient.
    #[arg(long, default_value = "user@localhost")]
    to: String,
    /// Afterwards, check that every message answered 250 is in DIR/new or
    /// DIR/cur (or a Maildir below DIR), with the size its name says.
    #[arg(long, value_name = "DIR")]
    maildir: Option<PathBuf>,
    /// Print the report as one JSON object.
    #[arg(long)]
    json: bool,
    /// Seconds to wait for a connection or a reply before counting a timeout.
    #[arg(long, default_value_t = 60)]
    timeout: u64,
    /// Instead of sending, run a maildoor server on ADDR whose store
    /// discards every message, until Ctrl-C or SIGTERM.
    #[arg(long, value_name = "ADDR")]
    serve_discard: Option<SocketAddr>,
    /// A domain the discarding server accepts mail for (repeatable;
    /// localhost and bench.test always).
    #[arg(long)]
    domain: Vec<String>,
}

/// Latency from the end of DATA to the 250, in milliseconds.
#[derive(Debug, Serialize)]
struct Latency {
    p50_ms: f64,
    p99_ms: f64,
    max_ms: f64,
}

/// Everything the run measured.
#[derive(Debug, Serialize)]
struct Report {
    server: String,
    connections: u64,
    messages: u64,
    size: usize,
    reuse: bool,
    pipeline: bool,
    run: String,
    sent: u64,
    delivered: usize,
    failed: u64,
    elapsed_s: f64,
    messages_per_s: f64,
    mib_per_s: f64,
    latency: Option<Latency>,
    errors: BTreeMap<String, u64>,
    check: Option<check::Check>,
    lost: usize,
}

fn main() -> ExitCode {
    let args = Args::parse();
    let rt = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("maildoor-load: cannot start the runtime: {e}");
            return ExitCode::from(2);
        }
    };
    if let Some(addr) = args.serve_discard {
        return rt.block_on(serve_discard(addr, &args.domain));
    }
    let Some(server) = args.server else {
        eprintln!("maildoor-load: --server is required");
        return ExitCode::from(2);
    };
    let report = rt.block_on(run(server, &args));
    if args.json {
        match serde_json::to_string(&report) {
            Ok(j) => println!("{j}"),
            Err(e) => eprintln!("maildoor-load: {e}"),
        }
    } else {
        print_report(&report);
    }
    if !report.check.as_ref().is_none_or(check::Check::ok) {
        ExitCode::from(1)
    } else if report.delivered == 0 && args.messages > 0 {
        ExitCode::from(3)
    } else {
        ExitCode::SUCCESS
    }
}

async fn run(server: SocketAddr, args: &Args) -> Report {
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default();
    let run_id = format!("{:08x}{:08x}", now.as_secs() as u32, std::process::id());
    let message = Message::new(run_id.clone(), &args.from, &args.to, args.size);
    let job = Arc::new(Job {
        server,
        messages: args.messages,
        reuse: args.reuse,
        pipeline: args.pipeline,
        from: args.from.clone(),
        to: args.to.clone(),
        timeout: Duration::from_secs(args.timeout.max(1)),
        message,
    });
    let next = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let tasks: Vec<_> = (0..args.connections.min(args.messages.max(1)))
        .map(|_| tokio::spawn(client::worker(Arc::clone(&job), Arc::clone(&next))))
        .collect();
    let mut all = Outcome::default();
    for t in tasks {
        match t.await {
            Ok(o) => {
                all.sent += o.sent;
                all.delivered.extend(o.delivered);
                for (k, n) in o.errors {
                    *all.errors.entry(k).or_default() += n;
                }
            }
            Err(e) => *all.errors.entry(format!("task {e}")).or_default() += 1,
        }
    }
    let elapsed = started.elapsed().as_secs_f64().max(1e-9);
    let delivered = all.delivered.len();
    let mut lat: Vec<Duration> = all.delivered.iter().map(|d| d.latency).collect();
    lat.sort();
    let check = args
        .maildir
        .as_deref()
        .map(|dir| check::check(dir, &run_id, job.message.body(), &all.delivered));
    Report {
        server: server.to_string(),
        connections: args.connections,
        messages: args.messages,
        size: job.message.size,
        reuse: args.reuse,
        pipeline: args.pipeline,
        run: run_id,
        sent: all.sent,
        delivered,
        failed: all.errors.values().sum(),
        elapsed_s: round3(elapsed),
        messages_per_s: round3(delivered as f64 / elapsed),
        mib_per_s: round3(delivered as f64 * job.message.size as f64 / (1 << 20) as f64 / elapsed),
        latency: (!lat.is_empty()).then(|| Latency {
            p50_ms: ms(percentile(&lat, 50.0)),
            p99_ms: ms(percentile(&lat, 99.0)),
            max_ms: ms(lat.last().copied().unwrap_or_default()),
        }),
        errors: all.errors,
        lost: check.as_ref().map_or(0, |c| c.missing),
        check,
    }
}

/// Nearest-rank percentile of sorted values.
fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted.get(rank.saturating_sub(1)).copied().unwrap_or_default()
}

fn ms(d: Duration) -> f64 {
    round3(d.as_secs_f64() * 1000.0)
}

fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

fn print_report(r: &Report) {
    println!(
        "maildoor-load: {} connections to {}, {} messages of {} bytes, {}, {}",
        r.connections,
        r.server,
        r.messages,
        r.size,
        if r.reuse {
            "reused connections"
        } else {
            "one connection per message"
        },
        if r.pipeline { "pipelined" } else { "not pipelined" },
    );
    println!(
        "sent {}, delivered (250) {} in {:.3} s",
        r.sent, r.delivered, r.elapsed_s
    );
    println!(
        "throughput: {:.1} messages/s, {:.2} MiB/s",
        r.messages_per_s, r.mib_per_s
    );
    if let Some(l) = &r.latency {
        println!(
            "latency end of DATA -> 250: p50 {:.3} ms, p99 {:.3} ms, max {:.3} ms",
            l.p50_ms, l.p99_ms, l.max_ms
        );
    }
    if r.errors.is_empty() {
        println!("errors: none");
    } else {
        let kinds: Vec<String> = r.errors.iter().map(|(k, n)| format!("{k}: {n}")).collect();
        println!("errors: {} ({})", r.failed, kinds.join(", "));
    }
    if let Some(c) = &r.check {
        println!(
            "check {}: {} of {} found whole, {} missing (LOST), {} bad size, {} wrong content",
            c.maildir, c.found, c.checked, c.missing, c.bad_size, c.wrong_content
        );
        for p in &c.problems {
            println!("  {p}");
        }
    }
}

/// Runs a maildoor server on `addr` that discards every message, until
/// Ctrl-C or SIGTERM. Its Maildir (unused) is a fresh directory in the
/// system's temporary directory, removed at the end.
async fn serve_discard(addr: SocketAddr, domains: &[String]) -> ExitCode {
    let dir = std::env::temp_dir().join(format!("maildoor-discard-{}", std::process::id()));
    let mut s = maildoor::Settings::defaults();
    s.listen = vec![addr];
    s.maildir = dir.clone();
    s.hostname = "discard.maildoor-load".into();
    s.domains = ["localhost", "bench.test"].map(String::from).to_vec();
    s.domains.extend(domains.iter().cloned());
    s.max_connections = 20_000;
    let server = match maildoor::Server::bind_discarding(s).await {
        Ok(server) => server,
        Err(e) => {
            eprintln!("maildoor-load: {e}");
            return ExitCode::from(2);
        }
    };
    for a in server.local_addrs() {
        eprintln!(
            "maildoor-load: discarding server on {a} (pid {}); Ctrl-C stops",
            std::process::id()
        );
    }
    server.run(stop_signal()).await;
    let _ = std::fs::remove_dir_all(&dir);
    ExitCode::SUCCESS
}

async fn stop_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    match signal(SignalKind::terminate()) {
        Ok(mut term) => {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
        }
        Err(_) => {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}
