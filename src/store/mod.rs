//! Where accepted messages go: the durable Maildir writer and the trace
//! headers written at delivery.
//!
//! [`Delivery`] is the async face of the store for one message: the body
//! is gathered in a bounded buffer and spilled to the `tmp/` file whenever
//! the buffer fills, so a session's memory does not grow with the message;
//! the blocking file work runs on tokio's blocking pool.

pub mod commit;
pub mod maildir;
pub mod trace;

use std::io;
use std::path::PathBuf;
use std::sync::Arc;

pub use commit::GroupCommit;
pub use maildir::{Maildir, TmpFile, UniqueId};

/// A Maildir and the commit pipeline that delivers into it.
#[derive(Debug)]
pub struct Store {
    maildir: Arc<Maildir>,
    committer: GroupCommit,
    /// Benchmark only (see [`Store::discarding`]): drop every message.
    discard: bool,
}

impl Store {
    /// Opens (creating if needed) the Maildir at `root` and starts the
    /// commit pipeline.
    pub fn open(root: impl Into<PathBuf>, hostname: &str) -> io::Result<Self> {
        Ok(Store {
            maildir: Arc::new(Maildir::open(root, hostname)?),
            committer: GroupCommit::start()?,
            discard: false,
        })
    }

    /// Turns this store into one that throws every message away without
    /// touching the disk, and reports it delivered under a made-up path.
    /// Only `maildoor-load --serve-discard` uses it, to measure the cost of
    /// the protocol alone beside `smtp-sink`; it is not a setting and no
    /// configuration can reach it.
    #[doc(hidden)]
    pub fn discarding(mut self) -> Self {
        self.discard = true;
        self
    }

    /// The Maildir.
    pub fn maildir(&self) -> &Arc<Maildir> {
        &self.maildir
    }
}

/// Bytes of a message kept in memory before they are written to `tmp/`.
pub const SPOOL_CHUNK: usize = 256 * 1024;

/// One message on its way into the Maildir.
#[derive(Debug)]
pub struct Delivery {
    store: Arc<Store>,
    id: UniqueId,
    buf: Vec<u8>,
    file: Option<TmpFile>,
    failed: Option<io::Error>,
    targets: Vec<PathBuf>,
}

/// True for errors that mean "no space left" (452 4.3.1 rather than 451).
pub fn is_storage_full(e: &io::Error) -> bool {
    matches!(e.raw_os_error(), Some(libc::ENOSPC) | Some(libc::EDQUOT))
}

impl Delivery {
    /// Starts a message `id` whose first bytes are `header`. With
    /// `targets` (per-recipient Maildirs) the message is linked into each
    /// of them instead of the store's own Maildir.
    pub fn begin(store: Arc<Store>, id: UniqueId, header: String, targets: Vec<PathBuf>) -> Self {
        // Small to start: most messages are a few KiB; big ones grow it.
        let mut buf = Vec::with_capacity(header.len() + 8 * 1024);
        buf.extend_from_slice(header.as_bytes());
        Delivery {
            store,
            id,
            buf,
            file: None,
            failed: None,
            targets,
        }
    }

    /// The queue id of this message.
    pub fn id(&self) -> &UniqueId {
        &self.id
    }

    /// The in-memory buffer that decoded body bytes are appended to.
    pub fn buffer(&mut self) -> &mut Vec<u8> {
        &mut self.buf
    }

    /// Writes the buffer to the `tmp/` file once it holds a full chunk.
    /// After a write error the body is dropped; the error is reported by
    /// [`Delivery::commit`].
    pub async fn spill_if_full(&mut self) {
        if self.buf.len() < SPOOL_CHUNK {
            return;
        }
        if self.failed.is_some() || self.store.discard {
            self.buf.clear();
            return;
        }
        let maildir = Arc::clone(&self.store.maildir);
        let id = self.id.clone();
        let file = self.file.take();
        let buf = std::mem::take(&mut self.buf);
        let joined = tokio::task::spawn_blocking(move || {
            let result = open_or(file, &maildir, &id).and_then(|mut f| {
                f.write_all(&buf)?;
                Ok(f)
            });
            (result, buf)
        })
        .await;
        match joined {
            Ok((result, mut buf)) => {
                buf.clear();
                self.buf = buf;
                match result {
                    Ok(f) => self.file = Some(f),
                    Err(e) => self.failed = Some(e),
                }
            }
            Err(e) => self.failed = Some(io::Error::other(e)),
        }
    }

    /// Writes what is left, makes the message durable in `new/` (through
    /// the group commit) and returns its path. Nothing remains in `tmp/`
    /// or `new/` on error.
    pub async fn commit(mut self) -> io::Result<PathBuf> {
        if let Some(e) = self.failed.take() {
            return Err(e);
        }
        if self.store.discard {
            return Ok(self.store.maildir.root().join("discarded").join(self.id.as_str()));
        }
        let maildir = Arc::clone(&self.store.maildir);
        let rest = std::mem::take(&mut self.buf);
        let targets = std::mem::take(&mut self.targets);
        self.store
            .committer
            .commit(maildir, self.id.clone(), self.file.take(), rest, targets)
            .await
    }
}

fn open_or(file: Option<TmpFile>, maildir: &Maildir, id: &UniqueId) -> io::Result<TmpFile> {
    match file {
        Some(f) => Ok(f),
        None => maildir.create(id),
    }
}
