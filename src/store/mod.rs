//! Where accepted messages go: the durable Maildir writer and the trace
//! headers written at delivery.
//!
//! [`Delivery`] is the async face of the store for one message: the body
//! is gathered in a bounded buffer and spilled to the `tmp/` file whenever
//! the buffer fills, so a session's memory does not grow with the message;
//! the blocking file work runs on tokio's blocking pool.

pub mod commit;
pub mod maildir;
pub mod spare;
pub mod trace;

use std::io;
use std::path::PathBuf;
use std::sync::Arc;

use crate::bufpool::BufPool;

pub use commit::GroupCommit;
pub use maildir::{Maildir, TmpFile, UniqueId};

/// A Maildir and the commit pipeline that delivers into it.
#[derive(Debug)]
pub struct Store {
    maildir: Arc<Maildir>,
    committer: GroupCommit,
    /// Benchmark only (see [`Store::discarding`]): drop every message.
    discard: bool,
    /// A spilled message's file gets its first flush early (see `settle`):
    /// only where that takes work off the final flush, ext4 without a
    /// journal (see [`first_flush_syncs_the_directory`]).
    pub(crate) early_flush: bool,
    /// Tests only: chunk writes wait for this lock (see [`Store::stall`]).
    #[cfg(test)]
    writes: Arc<std::sync::Mutex<()>>,
}

impl Store {
    /// Opens (creating if needed) the Maildir at `root` and starts the
    /// commit pipeline.
    pub fn open(root: impl Into<PathBuf>, hostname: &str) -> io::Result<Self> {
        let maildir = Arc::new(Maildir::open(root, hostname)?);
        // Spares only save time: without their thread, files are made as
        // each message needs one.
        if let Err(e) = maildir.keep_spares() {
            tracing::warn!(error = %e, "cannot start the thread that makes tmp/ files ahead of need");
        }
        Ok(Store {
            early_flush: first_flush_syncs_the_directory(maildir.root()),
            maildir,
            committer: GroupCommit::start()?,
            discard: false,
            #[cfg(test)]
            writes: Arc::default(),
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

    /// Stands in for a hung store until the guard is dropped: chunk
    /// writes and the publish step (see [`GroupCommit::stall`]) wait.
    #[cfg(test)]
    pub(crate) fn stall(&self) -> impl Sized + '_ {
        let writes = self.writes.lock().unwrap_or_else(|p| p.into_inner());
        (writes, self.committer.stall())
    }
}

/// Bytes of a message kept in memory before they are written to `tmp/`.
pub const SPOOL_CHUNK: usize = 256 * 1024;

/// The buffers a big message is gathered in: a chunk and one read past it
/// (a session reads at most 128 KiB at a time), kept for the next big
/// message (see [`crate::bufpool`]). Four sessions receiving big messages
/// use about twelve.
static CHUNKS: BufPool = BufPool::new(SPOOL_CHUNK + SPOOL_CHUNK / 2, 16);

/// A message smaller than this is gathered in a buffer of its own and
/// never takes one of [`CHUNKS`].
const SMALL: usize = 8 * 1024;

/// An empty buffer from [`CHUNKS`].
fn chunk_buffer() -> Vec<u8> {
    let mut buf = CHUNKS.take();
    buf.clear();
    buf
}

/// Gives a message's buffer back once its bytes are written: kept for
/// the next big message if it is one of [`CHUNKS`], freed otherwise.
pub(crate) fn recycle(buf: Vec<u8>) {
    CHUNKS.give(buf);
}

/// One message on its way into the Maildir.
#[derive(Debug)]
pub struct Delivery {
    store: Arc<Store>,
    id: UniqueId,
    buf: Vec<u8>,
    file: Option<TmpFile>,
    /// The chunk being written to `tmp/` while the session reads the next
    /// one; it hands back the file and the emptied buffer. At most one is
    /// in flight, so a message holds at most two chunks in memory.
    writing: Option<tokio::task::JoinHandle<Spilled>>,
    /// The first flush of a spilled message's `tmp/` file, started as soon
    /// as the file is made and run while the rest arrives (see
    /// [`Delivery::spill_if_full`]); the commit waits for it.
    settling: Option<Settling>,
    failed: Option<io::Error>,
    targets: Vec<PathBuf>,
    /// Where the client's data starts in `buf`, until its first octet has
    /// been looked at (see [`Delivery::end_trace`]).
    data_start: Option<usize>,
}

/// What a chunk write hands back: the file (or why it failed) and the
/// buffer, emptied for reuse.
type Spilled = (io::Result<TmpFile>, Vec<u8>, Option<Settling>);

/// A flush running on the blocking pool.
type Settling = tokio::task::JoinHandle<io::Result<()>>;

/// Whether message data starts with a header field (as the mailbox
/// reader tells one: `message::is_header_line`) or with an empty line (an
/// empty header section): `Some(true)`; with anything else,
/// `Some(false)`; `None` while `data` is too short to tell (no colon and
/// no line end yet). A field name longer than a line may be is no field
/// name.
fn starts_with_header_field(data: &[u8]) -> Option<bool> {
    const MAX_LINE: usize = 998;
    if data.first() == Some(&b'\n') {
        return Some(true);
    }
    let head = data.get(..MAX_LINE).unwrap_or(data);
    let end = head.iter().position(|&b| b == b'\n');
    let line = head.get(..end.unwrap_or(head.len())).unwrap_or_default();
    let decided = line.contains(&b':') || end.is_some() || head.len() == MAX_LINE;
    decided.then(|| crate::mailbox::message::is_header_line(line))
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
        // Small to start: most messages are a few KiB; big ones move to a
        // bigger buffer (see `buffer`).
        let mut buf = Vec::with_capacity(header.len() + SMALL);
        buf.extend_from_slice(header.as_bytes());
        Delivery {
            store,
            id,
            buf,
            file: None,
            writing: None,
            settling: None,
            failed: None,
            targets,
            data_start: Some(header.len()),
        }
    }

    /// Keeps the client's data out of our trace header. Data whose first
    /// line is not a header field has no header section of its own, and
    /// would otherwise be read as part of ours: a first line that starts
    /// with a space or tab as more of our `Received:` field (RFC 5322
    /// §2.2.3 folding), letting the client write into it; any other one
    /// (`hello`, an mbox `From ` line) as a broken header that hides the
    /// rest of the message from readers. An empty line then goes before
    /// the data (RFC 5322 §2.1), which is kept whole, as the body.
    /// `finished`: no more data will come, so an undecided start is body.
    fn end_trace(&mut self, finished: bool) {
        let Some(at) = self.data_start else {
            return;
        };
        let data = self.buf.get(at..).unwrap_or_default();
        let separate = match starts_with_header_field(data) {
            Some(header) => !header,
            None if finished => !data.is_empty(),
            None => return,
        };
        if separate {
            self.buf.insert(at, b'\n');
        }
        self.data_start = None;
    }

    /// The queue id of this message.
    pub fn id(&self) -> &UniqueId {
        &self.id
    }

    /// The in-memory buffer that decoded body bytes are appended to, with
    /// room for `incoming` more octets (more may still be appended: the
    /// buffer grows).
    pub fn buffer(&mut self, incoming: usize) -> &mut Vec<u8> {
        let need = self.buf.len() + incoming;
        if need > self.buf.capacity() {
            // Past its first few KiB, a message moves to a big buffer
            // once, rather than doubling its way up.
            let mut big = chunk_buffer();
            big.reserve(need);
            big.extend_from_slice(&self.buf);
            recycle(std::mem::replace(&mut self.buf, big));
        }
        &mut self.buf
    }

    /// Once the buffer holds a full chunk, starts writing it to the `tmp/`
    /// file on the blocking pool and gives the session a fresh buffer, so
    /// the disk write overlaps with reading the next chunk. If the previous
    /// chunk is still being written, waits for it first. The first chunk
    /// creates the file and starts its first flush beside the writes (see
    /// `settle`). After a write error the body is dropped; the error is
    /// reported by [`Delivery::commit`].
    pub async fn spill_if_full(&mut self) {
        self.end_trace(false);
        // Until the data's first octet is known (a trace header for very
        // many recipients may fill a chunk alone) the buffer stays whole.
        if self.buf.len() < SPOOL_CHUNK || self.data_start.is_some() {
            return;
        }
        if self.failed.is_some() || self.store.discard {
            self.buf.clear();
            return;
        }
        let spare = self.wait_for_write().await.unwrap_or_else(chunk_buffer);
        if self.failed.is_some() {
            self.buf.clear();
            return;
        }
        let maildir = Arc::clone(&self.store.maildir);
        let early_flush = self.store.early_flush;
        let id = self.id.clone();
        let file = self.file.take();
        let buf = std::mem::replace(&mut self.buf, spare);
        #[cfg(test)]
        let writes = Arc::clone(&self.store.writes);
        self.writing = Some(tokio::task::spawn_blocking(move || {
            #[cfg(test)]
            let _gate = writes.lock().unwrap_or_else(|p| p.into_inner());
            let mut settling = None;
            let result = match file {
                Some(f) => Ok(f),
                None => maildir.create(&id).inspect(|f| {
                    if early_flush {
                        settling = Some(settle(f));
                    }
                }),
            };
            let result = result.and_then(|mut f| {
                f.write_all(&buf)?;
                f.start_writeback(buf.len() as u64);
                Ok(f)
            });
            let mut buf = buf;
            buf.clear();
            (result, buf, settling)
        }));
    }

    /// Waits for the chunk in flight, if any, and takes back its file (or
    /// its error). Returns its emptied buffer for reuse, if there was one.
    async fn wait_for_write(&mut self) -> Option<Vec<u8>> {
        let writing = self.writing.take()?;
        match writing.await {
            Ok((result, buf, settling)) => {
                if settling.is_some() {
                    self.settling = settling;
                }
                match result {
                    Ok(file) => self.file = Some(file),
                    Err(e) => self.failed = Some(e),
                }
                Some(buf)
            }
            Err(e) => {
                self.failed = Some(io::Error::other(e));
                None
            }
        }
    }

    /// Gives the message up: waits for the chunk being written, if any,
    /// and removes the `tmp/` file, so that nothing of it is left once
    /// this returns.
    pub async fn abandon(mut self) {
        if let Some(buf) = self.wait_for_write().await {
            recycle(buf);
        }
        recycle(std::mem::take(&mut self.buf));
        if let Some(file) = self.file.take() {
            // Dropping it removes its name; off the runtime's threads.
            let _ = tokio::task::spawn_blocking(move || drop(file)).await;
        }
    }

    /// Writes what is left, makes the message durable in `new/` (through
    /// the group commit) and returns its path. Nothing remains in `tmp/`
    /// or `new/` on error.
    pub async fn commit(mut self) -> io::Result<PathBuf> {
        self.end_trace(true);
        if let Some(buf) = self.wait_for_write().await {
            recycle(buf);
        }
        if let Some(settling) = self.settling.take() {
            if let Err(e) = settling.await.map_err(io::Error::other).and_then(|r| r) {
                self.failed.get_or_insert(e);
            }
        }
        if let Some(e) = self.failed.take() {
            recycle(std::mem::take(&mut self.buf));
            return Err(e);
        }
        if self.store.discard {
            recycle(std::mem::take(&mut self.buf));
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

/// True when `dir` is on ext4 (or ext2/3 run by the ext4 driver) without
/// a journal. There the first fsync of a new file also writes out the
/// directory it was made in, a synchronous write of its own before the
/// device flush, which [`settle`] can take off the end of a message. With
/// a journal (and on other file systems) every fsync is a journal commit
/// and an early one is just one flush more: measured 4-6 % slower on a
/// journaled ext4. Read from `/proc/fs/ext4/<dev>` and
/// `/proc/fs/jbd2/<dev>-<inode>`; false when they cannot be read.
pub fn first_flush_syncs_the_directory(dir: &std::path::Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    let Ok(meta) = std::fs::metadata(dir) else {
        return false;
    };
    let (major, minor) = (libc::major(meta.dev()), libc::minor(meta.dev()));
    let Ok(device) = std::fs::read_link(format!("/sys/dev/block/{major}:{minor}")) else {
        return false;
    };
    let Some(name) = device.file_name().and_then(|n| n.to_str()) else {
        return false;
    };
    if !std::path::Path::new("/proc/fs/ext4").join(name).is_dir() {
        return false;
    }
    let journal = format!("{name}-");
    match std::fs::read_dir("/proc/fs/jbd2") {
        Ok(entries) => !entries
            .filter_map(Result::ok)
            .any(|e| e.file_name().to_str().is_some_and(|n| n.starts_with(&journal))),
        // No jbd2 at all: no ext4 file system has a journal.
        Err(e) => e.kind() == io::ErrorKind::NotFound,
    }
}

/// Starts the first flush of a message's new `tmp/` file beside the
/// writes that follow, so that its name (and on some file systems the
/// `tmp/` directory itself: ext4 without a journal flushes the parent of a
/// file on its first fsync) is settled on disk by the time the message
/// ends. The flush at the end of the message then only has the data and
/// the file's size left to write. A message big enough to be spilled is
/// still arriving for several milliseconds, so this flush costs it no
/// waiting; a small message is never spilled and never pays for it.
fn settle(file: &TmpFile) -> Settling {
    let dup = file.file().try_clone();
    tokio::task::spawn_blocking(move || dup?.sync_all())
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A small multi-threaded runtime for the store's tests.
    pub(crate) fn rt() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap()
    }

    /// Feeds `body` to a delivery in pieces of `piece` bytes, spilling as
    /// the session does after each read.
    async fn feed(d: &mut Delivery, body: &[u8], piece: usize) {
        for part in body.chunks(piece) {
            d.buffer(part.len()).extend_from_slice(part);
            d.spill_if_full().await;
        }
    }

    /// Header-field lines, so nothing is added before them.
    fn body(len: usize) -> Vec<u8> {
        (0..len)
            .map(|i| b"X: abcdefghijklmnopqrstuvw\n"[i % 27])
            .collect()
    }

    #[test]
    fn a_small_message_keeps_its_own_buffer_and_a_big_one_moves_once() {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(Store::open(dir.path(), "h").unwrap());
        let id = store.maildir().next_id();
        let mut d = Delivery::begin(Arc::clone(&store), id, "H: x\n\n".into(), Vec::new());
        d.buffer(1000).extend_from_slice(&body(1000));
        assert!(
            d.buf.capacity() < SMALL + 100,
            "a small message took a big buffer"
        );
        // The read that no longer fits moves it to a big buffer, whole.
        d.buffer(SMALL).extend_from_slice(&body(SMALL));
        let big = d.buf.capacity();
        assert!(big >= SPOOL_CHUNK + SPOOL_CHUNK / 2, "{big}");
        let at = d.buf.as_ptr();
        d.buffer(SPOOL_CHUNK).extend_from_slice(&body(SPOOL_CHUNK));
        assert_eq!(d.buf.as_ptr(), at, "moved again");
        let mut whole = b"H: x\n\n".to_vec();
        whole.extend_from_slice(&body(1000));
        whole.extend_from_slice(&body(SMALL));
        whole.extend_from_slice(&body(SPOOL_CHUNK));
        assert!(d.buf == whole, "bytes lost in the move");
        let path = rt().block_on(d.commit()).unwrap();
        assert!(std::fs::read(path).unwrap() == whole);
    }

    #[test]
    fn a_message_of_many_chunks_arrives_whole_and_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(Store::open(dir.path(), "h").unwrap());
        let body = body(5 * SPOOL_CHUNK + 12_345);
        let path = rt().block_on(async {
            let id = store.maildir().next_id();
            let mut d = Delivery::begin(Arc::clone(&store), id, "Header: x\n\n".into(), Vec::new());
            feed(&mut d, &body, 100_000).await;
            d.commit().await.unwrap()
        });
        let stored = std::fs::read(&path).unwrap();
        let header = b"Header: x\n\n";
        assert_eq!(&stored[..header.len()], header);
        assert!(stored[header.len()..] == body[..], "body differs");
        assert!(path.to_string_lossy().ends_with(&format!(",S={}", stored.len())));
        assert_eq!(std::fs::read_dir(dir.path().join("tmp")).unwrap().count(), 0);
    }

    #[test]
    fn only_a_spilled_message_flushes_its_file_early_and_the_commit_takes_that_flush() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = Store::open(dir.path(), "h").unwrap();
        // Whatever file system the test runs on.
        store.early_flush = true;
        let store = Arc::new(store);
        rt().block_on(async {
            let id = store.maildir().next_id();
            let mut small = Delivery::begin(Arc::clone(&store), id, String::new(), Vec::new());
            feed(&mut small, &body(SPOOL_CHUNK - 1), 64 * 1024).await;
            assert!(
                small.settling.is_none() && small.writing.is_none(),
                "a small message was spilled"
            );
            small.commit().await.unwrap();

            let id = store.maildir().next_id();
            let mut big = Delivery::begin(Arc::clone(&store), id, String::new(), Vec::new());
            // The second chunk takes back the first's file, and with it
            // the flush started when the file was made.
            feed(&mut big, &body(2 * SPOOL_CHUNK), 64 * 1024).await;
            assert!(big.settling.is_some(), "no early flush for a spilled message");
            let flush = big.settling.as_ref().map(|s| s.abort_handle()).unwrap();
            feed(&mut big, &body(SPOOL_CHUNK), 64 * 1024).await;
            assert!(big.settling.is_some(), "a later chunk lost the early flush");
            let path = big.commit().await.unwrap();
            assert!(flush.is_finished(), "committed before the early flush ended");
            assert_eq!(std::fs::read(path).unwrap().len(), 3 * SPOOL_CHUNK);
        });
        assert_eq!(std::fs::read_dir(dir.path().join("tmp")).unwrap().count(), 0);
    }

    #[test]
    fn the_early_flush_is_only_for_ext4_without_a_journal() {
        // Not a block device, or not there: no.
        assert!(!first_flush_syncs_the_directory(std::path::Path::new("/proc")));
        assert!(!first_flush_syncs_the_directory(std::path::Path::new(
            "/no/such/dir"
        )));
        // Wherever the tests run, the answer agrees with /proc.
        let dir = tempfile::tempdir().unwrap();
        let here = first_flush_syncs_the_directory(dir.path());
        if here {
            assert!(std::path::Path::new("/proc/fs/ext4").is_dir());
        }
    }

    #[test]
    fn data_that_starts_with_white_space_cannot_continue_our_trace_header() {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(Store::open(dir.path(), "h").unwrap());
        let header =
            "Received: from x\n\tby h (maildoor) with SMTP id 1;\n\tThu, 01 Jan 1970 00:00:00 +0000\n";
        let stored_under = |header: &str, pieces: &[&[u8]]| {
            let path = rt().block_on(async {
                let id = store.maildir().next_id();
                let mut d = Delivery::begin(Arc::clone(&store), id, header.into(), Vec::new());
                for piece in pieces {
                    d.buffer(piece.len()).extend_from_slice(piece);
                    d.spill_if_full().await;
                }
                d.commit().await.unwrap()
            });
            String::from_utf8(std::fs::read(path).unwrap()).unwrap()
        };
        let stored = |pieces: &[&[u8]]| stored_under(header, pieces);
        // A trace header that fills a chunk alone (very many recipients)
        // is not spilled before the data's first octet is seen.
        let huge = format!("{header}X-Pad: {}\n", "p".repeat(SPOOL_CHUNK));
        assert_eq!(stored_under(&huge, &[b"", b" x\n"]), format!("{huge}\n x\n"));
        let forged =
            "\tby evil.example with ESMTP id FAKE; Mon, 01 Jan 2001 00:00:00 +0000\nSubject: ws\n\nbody\n";
        // Also when the first read brings nothing of the body.
        for pieces in [&[forged.as_bytes()][..], &[b"", forged.as_bytes()][..]] {
            assert_eq!(stored(pieces), format!("{header}\n{forged}"));
        }
        assert_eq!(stored(&[b"\r\tx\n"]), format!("{header}\n\r\tx\n"));
        for first in ["Subject: s\n\nb\n", "\nbody\n", "X-Obs-Form : v\n\nb\n", ""] {
            assert_eq!(
                stored(&[first.as_bytes()]),
                format!("{header}{first}"),
                "{first:?}"
            );
        }
        // A first line that is not a header field: body, after an empty
        // line, however the data arrives.
        for pieces in [
            &[&b"hello bob\nsecond line\n"[..]][..],
            &[b"x"],
            &[b"S", b" x\n"],
            &[b"Sub", b"ject", b" line\n"],
            &[b"From me@example.org Sat Dec  5 05:00:00 2026\nSubject: s\n\nb\n"],
            &[b":no name\n"],
            &[b"Caf\xc3\xa9: x\n"],
        ] {
            assert_eq!(
                stored(pieces),
                format!("{header}\n{}", String::from_utf8(pieces.concat()).unwrap()),
                "{pieces:?}"
            );
        }
        // A field name split across reads is still one.
        assert_eq!(
            stored(&[b"Subj", b"ect: s\n\nb\n"]),
            format!("{header}Subject: s\n\nb\n")
        );
        // A first line of a megabyte without a colon is decided at a
        // line's length, not buffered whole.
        let long = "a".repeat(2 * SPOOL_CHUNK);
        assert_eq!(stored(&[long.as_bytes(), b"\n"]), format!("{header}\n{long}\n"));
    }

    #[test]
    fn a_failed_chunk_write_is_reported_at_commit_and_leaves_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(Store::open(dir.path(), "h").unwrap());
        // No tmp/: the first chunk cannot be written.
        std::fs::remove_dir(dir.path().join("tmp")).unwrap();
        let result = rt().block_on(async {
            let id = store.maildir().next_id();
            let mut d = Delivery::begin(Arc::clone(&store), id, String::new(), Vec::new());
            feed(&mut d, &body(3 * SPOOL_CHUNK), 64 * 1024).await;
            d.commit().await
        });
        assert_eq!(result.unwrap_err().kind(), io::ErrorKind::NotFound);
        assert_eq!(std::fs::read_dir(dir.path().join("new")).unwrap().count(), 0);
    }

    #[test]
    fn a_message_dropped_mid_write_leaves_nothing_in_tmp() {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(Store::open(dir.path(), "h").unwrap());
        let rt = rt();
        rt.block_on(async {
            let id = store.maildir().next_id();
            let mut d = Delivery::begin(Arc::clone(&store), id, String::new(), Vec::new());
            feed(&mut d, &body(2 * SPOOL_CHUNK + 1), 32 * 1024).await;
            // A chunk may still be in flight: the client went away.
            drop(d);
        });
        // The blocking pool finishes the write, then removes the file.
        rt.shutdown_timeout(std::time::Duration::from_secs(10));
        assert_eq!(std::fs::read_dir(dir.path().join("tmp")).unwrap().count(), 0);
        assert_eq!(std::fs::read_dir(dir.path().join("new")).unwrap().count(), 0);
    }

    #[test]
    // The gate is held across awaits on purpose: it stands for a disk
    // that has not finished the write yet.
    #[allow(clippy::await_holding_lock)]
    fn an_abandoned_message_is_gone_from_tmp_when_abandon_returns() {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(Store::open(dir.path(), "h").unwrap());
        let tmp = dir.path().join("tmp");
        rt().block_on(async {
            let id = store.maildir().next_id();
            let mut d = Delivery::begin(Arc::clone(&store), id, String::new(), Vec::new());
            feed(&mut d, &body(SPOOL_CHUNK), 32 * 1024).await;
            // The first chunk is written (the file exists); the second
            // chunk's write is held until after abandon has started.
            let spare = d.wait_for_write().await;
            assert!(spare.is_some() && d.file.is_some());
            let gate = store.writes.lock().unwrap();
            feed(&mut d, &body(SPOOL_CHUNK), 32 * 1024).await;
            assert_eq!(std::fs::read_dir(&tmp).unwrap().count(), 1);
            let abandon = tokio::spawn(d.abandon());
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            drop(gate);
            abandon.await.unwrap();
            assert_eq!(std::fs::read_dir(&tmp).unwrap().count(), 0);
        });
    }
}
