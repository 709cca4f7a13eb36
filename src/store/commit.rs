//! Group commit: many messages made durable by one flush.
//!
//! A durable delivery needs two flushes: the message's data (before its
//! name appears in `new/`), then `new/` itself (so the name survives a
//! crash). Done per message, each session waits for two journal commits.
//! Here two threads form a pipeline shared by all sessions:
//!
//! 1. *sync*: takes every small message waiting, writes each to its
//!    `tmp/` file, and flushes all their data at once (`syncfs` of each
//!    Maildir's `tmp/` in the batch, or `fdatasync` when it holds one);
//! 2. *publish*: renames the batch into `new/` (or links it into each
//!    recipient's Maildir, creating it durably if new), fsyncs each `new/`
//!    once, and only then answers each waiting session.
//!
//! While one batch is being published the next is being synced, so the
//! two flushes overlap and every flush serves as many messages as arrived
//! during the previous one. When nothing is waiting for the next flush
//! there is nothing to overlap with, and the thread that flushed the batch
//! publishes it itself if the publisher is free: one thread hop less for
//! a lone message. No session hears "done" before its message's data and
//! name are both on disk.
//!
//! A big message (one already spilled to its `tmp/` file while it was
//! received) skips the sync stage: its own `fdatasync` runs on the
//! blocking pool, beside those of other big messages, and most of its
//! data is already on its way to disk by then (see
//! [`TmpFile::start_writeback`]), as is its `tmp/` name (the file's first
//! flush ran while the rest arrived: see `Delivery::spill_if_full`). One
//! `syncfs` for it would also write out every other session's
//! half-received message and make each wait for all. It then joins the
//! publish stage like any other.

use std::collections::HashMap;
use std::io;
use std::path::PathBuf;
use std::sync::mpsc;
use std::sync::Arc;

use tokio::sync::oneshot;

use super::maildir::{Maildir, TmpFile, UniqueId};

/// Most messages in one batch (bounds the memory of a batch).
const MAX_BATCH: usize = 512;
/// Most per-recipient Maildirs remembered as open. Each holds two open
/// directories (`new/`, `tmp/`): the start-up check of the open file
/// limit counts [`OPEN_FILES_FOR_MAILBOXES`].
const MAX_OPENED: usize = 1024;

/// Open files the remembered per-recipient Maildirs may hold.
pub const OPEN_FILES_FOR_MAILBOXES: u64 = 2 * MAX_OPENED as u64;

type Done = oneshot::Sender<io::Result<PathBuf>>;

struct Job {
    maildir: Arc<Maildir>,
    id: UniqueId,
    file: Option<TmpFile>,
    rest: Vec<u8>,
    /// Per-recipient Maildirs to link the message into; empty: publish
    /// into `maildir` itself.
    targets: Vec<PathBuf>,
    done: Done,
}

struct Synced {
    maildir: Arc<Maildir>,
    tmp: TmpFile,
    /// As in [`Job`]; opened by the publish stage.
    targets: Vec<PathBuf>,
    done: Done,
}

/// The handle sessions use to commit messages; the pipeline threads stop
/// when the last handle is dropped.
#[derive(Debug)]
pub struct GroupCommit {
    tx: mpsc::Sender<Job>,
    /// Straight to the publish stage, for messages synced on their own.
    publish: mpsc::Sender<Vec<Synced>>,
    publisher: Arc<Publisher>,
}

/// The publish step and the per-recipient Maildirs it has opened. The
/// publish thread uses it, and so does whichever thread has just flushed
/// a batch when nothing else is waiting and the publisher is free: an idle
/// pipeline then costs a message one thread hop less.
#[derive(Debug, Default)]
struct Publisher {
    opened: std::sync::Mutex<HashMap<PathBuf, Arc<Maildir>>>,
}

impl Publisher {
    /// Publishes `batch` unless another thread is publishing; gives the
    /// batch back in that case.
    fn publish_if_free(&self, batch: Vec<Synced>) -> Option<Vec<Synced>> {
        match self.opened.try_lock() {
            Ok(mut opened) => {
                publish(batch, &mut opened);
                None
            }
            Err(std::sync::TryLockError::Poisoned(p)) => {
                publish(batch, &mut p.into_inner());
                None
            }
            Err(std::sync::TryLockError::WouldBlock) => Some(batch),
        }
    }

    fn publish(&self, batch: Vec<Synced>) {
        let mut opened = self.opened.lock().unwrap_or_else(|p| p.into_inner());
        publish(batch, &mut opened);
    }
}

impl GroupCommit {
    /// Starts the pipeline threads.
    pub fn start() -> io::Result<Self> {
        let (tx, rx) = mpsc::channel::<Job>();
        let (synced_tx, synced_rx) = mpsc::channel::<Vec<Synced>>();
        let publish = synced_tx.clone();
        let publisher = Arc::new(Publisher::default());
        let for_sync = Arc::clone(&publisher);
        let for_publish = Arc::clone(&publisher);
        std::thread::Builder::new()
            .name("maildoor-sync".into())
            .spawn(move || sync_stage(rx, synced_tx, &for_sync))?;
        std::thread::Builder::new()
            .name("maildoor-publish".into())
            .spawn(move || publish_stage(synced_rx, &for_publish))?;
        Ok(GroupCommit {
            tx,
            publish,
            publisher,
        })
    }

    /// Writes `rest` to the message's `tmp/` file (created if `file` is
    /// `None`), and returns once the message is durable in `new/` of
    /// `maildir`, or, when `targets` are given, in `new/` of each of those
    /// Maildirs (created when missing); the first path is returned.
    pub async fn commit(
        &self,
        maildir: Arc<Maildir>,
        id: UniqueId,
        file: Option<TmpFile>,
        rest: Vec<u8>,
        targets: Vec<PathBuf>,
    ) -> io::Result<PathBuf> {
        let (done, wait) = oneshot::channel();
        match file {
            Some(file) => {
                let publisher = Arc::clone(&self.publisher);
                let queued = tokio::task::spawn_blocking(move || {
                    let tmp = finish_file(&maildir, &id, Some(file), rest)?;
                    tmp.sync_data()?;
                    let synced = Synced {
                        maildir,
                        tmp,
                        targets,
                        done,
                    };
                    Ok::<_, io::Error>(publisher.publish_if_free(vec![synced]))
                })
                .await
                .map_err(io::Error::other)??;
                if let Some(batch) = queued {
                    self.publish.send(batch).map_err(|_| stopped())?;
                }
            }
            None => {
                let job = Job {
                    maildir,
                    id,
                    file,
                    rest,
                    targets,
                    done,
                };
                self.tx.send(job).map_err(|_| stopped())?;
            }
        }
        wait.await.map_err(|_| stopped())?
    }
}

#[cfg(test)]
impl GroupCommit {
    /// Holds the publish step until the guard is dropped, so that every
    /// commit meanwhile stalls just before its message is published: how
    /// tests stand in for a store that hangs.
    pub(crate) fn stall(&self) -> std::sync::MutexGuard<'_, HashMap<PathBuf, Arc<Maildir>>> {
        self.publisher.opened.lock().unwrap_or_else(|p| p.into_inner())
    }
}

fn stopped() -> io::Error {
    io::Error::other("the commit pipeline has stopped")
}

/// A copy of an error for each message of a failed batch.
fn copy(e: &io::Error) -> io::Error {
    match e.raw_os_error() {
        Some(code) => io::Error::from_raw_os_error(code),
        None => io::Error::new(e.kind(), e.to_string()),
    }
}

fn sync_stage(rx: mpsc::Receiver<Job>, out: mpsc::Sender<Vec<Synced>>, publisher: &Publisher) {
    // A job taken while checking whether anyone was waiting.
    let mut next = None;
    loop {
        let first = match next.take() {
            Some(job) => job,
            None => match rx.recv() {
                Ok(job) => job,
                Err(_) => return,
            },
        };
        let mut jobs = vec![first];
        while jobs.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(job) => jobs.push(job),
                Err(_) => break,
            }
        }
        // Opened before any message of the batch is written: see flush_data.
        let marks = if jobs.len() > 1 {
            open_marks(&jobs)
        } else {
            HashMap::new()
        };
        let mut batch = Vec::with_capacity(jobs.len());
        for job in jobs {
            match finish_file(&job.maildir, &job.id, job.file, job.rest) {
                Ok(tmp) => batch.push(Synced {
                    maildir: job.maildir,
                    tmp,
                    targets: job.targets,
                    done: job.done,
                }),
                Err(e) => {
                    let _ = job.done.send(Err(e));
                }
            }
        }
        if batch.is_empty() {
            continue;
        }
        let batch = flush_data(batch, &marks, |mark| {
            rustix::fs::syncfs(mark).map_err(io::Error::from)
        });
        if batch.is_empty() {
            continue;
        }
        // With nobody waiting for the next flush there is nothing to
        // overlap with: publish here if the publisher is free.
        next = rx.try_recv().ok();
        let batch = match next {
            None => publisher.publish_if_free(batch),
            Some(_) => Some(batch),
        };
        if let Some(batch) = batch {
            if out.send(batch).is_err() {
                return;
            }
        }
    }
}

fn open_target(
    opened: &mut HashMap<PathBuf, Arc<Maildir>>,
    like: &Maildir,
    root: &PathBuf,
) -> io::Result<Arc<Maildir>> {
    if opened.len() >= MAX_OPENED {
        // Any safe local part opens a mailbox: bound what is remembered.
        opened.clear();
    }
    if let Some(m) = opened.get(root) {
        // Opened again (its directories made again, or refused) if someone
        // removed or replaced them meanwhile.
        if m.still_in_place() {
            return Ok(Arc::clone(m));
        }
    }
    let m = match like.open_sibling(root.clone()) {
        // Out of descriptors: let go of the remembered ones and try again,
        // rather than refuse every delivery from now on.
        Err(e) if e.raw_os_error() == Some(libc::EMFILE) && !opened.is_empty() => {
            opened.clear();
            like.open_sibling(root.clone())?
        }
        other => other?,
    };
    let m = Arc::new(m);
    opened.insert(root.clone(), Arc::clone(&m));
    Ok(m)
}

fn finish_file(
    maildir: &Maildir,
    id: &UniqueId,
    file: Option<TmpFile>,
    rest: Vec<u8>,
) -> io::Result<TmpFile> {
    let mut tmp = match file {
        Some(f) => f,
        None => maildir.create(id)?,
    };
    tmp.write_all(&rest)?;
    super::recycle(rest);
    Ok(tmp)
}

/// One descriptor per Maildir of `jobs`, opened now (its `tmp/`, where
/// the files are, on whatever file system that is), before any of their
/// data is written, for [`flush_data`]. A Maildir whose `tmp/` cannot be
/// opened is left out.
fn open_marks(jobs: &[Job]) -> HashMap<PathBuf, std::fs::File> {
    let mut marks = HashMap::new();
    for job in jobs {
        let root = job.maildir.root();
        if !marks.contains_key(root) {
            if let Ok(f) = std::fs::File::open(root.join("tmp")) {
                marks.insert(root.to_path_buf(), f);
            }
        }
    }
    marks
}

/// Makes the data of every file in the batch durable: one `syncfs` per
/// Maildir (a batch normally touches one), or a plain `fdatasync` for a
/// batch of one. Returns the messages whose data is durable; each of the
/// others has been answered with its error.
///
/// `syncfs` reports a writeback error that happened after the descriptor
/// it is given was opened (Linux 5.8 and later), whoever wrote the data.
/// It is given the descriptor of the Maildir's `tmp/` from `marks`, opened
/// as the batch began, before any of its messages was written: every error
/// on the batch's files is seen. (A file's own descriptor would not do: a
/// file made ahead of need, see `spare`, may have been opened a minute
/// ago, and would report every error since.) A Maildir without one has
/// each of its files flushed on its own.
///
/// A failed `syncfs` fails every message of its Maildir in the batch
/// (451: the clients try again). It does not say whose data was lost, and
/// flushing each file again would not tell either: a file's descriptor
/// sees a failed write of its data, but not of the inode block that holds
/// its size and extents, which on a file system without a journal (ext2,
/// ext4 without one) `syncfs` wrote and the file's own flush then skips as
/// clean. Better a retry than a 250 for a message that may be gone.
fn flush_data(
    batch: Vec<Synced>,
    marks: &HashMap<PathBuf, std::fs::File>,
    syncfs: impl Fn(&std::fs::File) -> io::Result<()>,
) -> Vec<Synced> {
    // Per Maildir: None when its files are flushed one by one (a batch of
    // one, or no mark), else the outcome of its syncfs.
    let mut synced: HashMap<PathBuf, Option<io::Result<()>>> = HashMap::new();
    if batch.len() > 1 {
        for s in &batch {
            let root = s.maildir.root();
            if !synced.contains_key(root) {
                let outcome = marks.get(root).map(&syncfs);
                if let Some(Err(e)) = &outcome {
                    tracing::warn!(maildir = %root.display(), error = %e, "syncfs failed: the batch is refused");
                }
                synced.insert(root.to_path_buf(), outcome);
            }
        }
    }
    batch
        .into_iter()
        .filter_map(|s| {
            let outcome = match synced.get(s.maildir.root()) {
                Some(Some(Ok(()))) => Ok(()),
                Some(Some(Err(e))) => Err(copy(e)),
                _ => s.tmp.sync_data(),
            };
            match outcome {
                Ok(()) => Some(s),
                Err(e) => {
                    let _ = s.done.send(Err(e));
                    None
                }
            }
        })
        .collect()
}

/// The copies of one message in `new/`, with the Maildir of each.
type Placed = Vec<(Arc<Maildir>, PathBuf)>;

/// Puts one synced message into `new/`: renamed into its own Maildir, or
/// linked into each per-recipient Maildir (opened through `opened`).
/// Returns the paths created.
fn place(s: Synced, opened: &mut HashMap<PathBuf, Arc<Maildir>>) -> (Placed, Done, io::Result<()>) {
    if s.targets.is_empty() {
        let maildir = s.maildir;
        return match maildir.publish(s.tmp) {
            Ok(path) => (vec![(maildir, path)], s.done, Ok(())),
            Err(e) => (Vec::new(), s.done, Err(e)),
        };
    }
    let name = s.maildir.final_name(&s.tmp);
    let mut placed = Vec::with_capacity(s.targets.len());
    for root in &s.targets {
        match open_target(opened, &s.maildir, root).and_then(|t| Ok((t.link_in(&s.tmp, &name)?, t))) {
            Ok((path, target)) => placed.push((target, path)),
            Err(e) => {
                for (target, path) in &placed {
                    target.remove_new(path);
                }
                return (Vec::new(), s.done, Err(e));
            }
        }
    }
    // Dropping s.tmp removes the tmp/ name; the links keep the data.
    (placed, s.done, Ok(()))
}

fn publish_stage(rx: mpsc::Receiver<Vec<Synced>>, publisher: &Publisher) {
    while let Ok(mut batch) = rx.recv() {
        while let Ok(more) = rx.try_recv() {
            batch.extend(more);
        }
        publisher.publish(batch);
    }
}

/// Renames or links every message of `batch` into `new/`, fsyncs each
/// `new/` touched once, then answers each message's session.
fn publish(batch: Vec<Synced>, opened: &mut HashMap<PathBuf, Arc<Maildir>>) {
    let mut published = Vec::with_capacity(batch.len());
    for s in batch {
        match place(s, opened) {
            (paths, done, Ok(())) => published.push((paths, done)),
            (_, done, Err(e)) => {
                let _ = done.send(Err(e));
            }
        }
    }
    // One fsync per Maildir in the batch. Keyed by the Maildir itself, not
    // its path: a mailbox removed or replaced during the batch is opened
    // again, and the new one's new/ is another directory to flush.
    let mut dirs: HashMap<*const Maildir, Option<io::Error>> = HashMap::new();
    for (paths, _) in &published {
        for (maildir, _) in paths {
            dirs.entry(Arc::as_ptr(maildir))
                .or_insert_with(|| maildir.sync_new().err());
        }
    }
    for (paths, done) in published {
        let failed = paths
            .iter()
            .find_map(|(m, _)| dirs.get(&Arc::as_ptr(m)).and_then(Option::as_ref));
        let result = match (failed, paths.first()) {
            (None, Some((_, first))) => Ok(first.clone()),
            (failed, _) => {
                // Not known to be durable: take every copy back out.
                for (maildir, path) in &paths {
                    maildir.remove_new(path);
                }
                Err(failed.map_or_else(|| io::Error::other("no recipient mailbox"), copy))
            }
        };
        let _ = done.send(result);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::tests::rt;

    #[test]
    fn concurrent_commits_all_land() {
        let dir = tempfile::tempdir().unwrap();
        let md = Arc::new(Maildir::open(dir.path(), "h").unwrap());
        let gc = Arc::new(GroupCommit::start().unwrap());
        let paths = rt().block_on(async {
            let mut tasks = Vec::new();
            for i in 0..64u32 {
                let (md, gc) = (Arc::clone(&md), Arc::clone(&gc));
                tasks.push(tokio::spawn(async move {
                    let id = md.next_id();
                    let body = format!("message {i}\n").into_bytes();
                    gc.commit(md, id, None, body, Vec::new()).await.unwrap()
                }));
            }
            let mut v = Vec::new();
            for t in tasks {
                v.push(t.await.unwrap());
            }
            v
        });
        assert_eq!(paths.len(), 64);
        for p in &paths {
            let text = std::fs::read_to_string(p).unwrap();
            assert!(text.starts_with("message "));
            let size: u64 = p.to_string_lossy().rsplit("S=").next().unwrap().parse().unwrap();
            assert_eq!(size, text.len() as u64);
        }
        assert_eq!(std::fs::read_dir(dir.path().join("tmp")).unwrap().count(), 0);
    }

    type Answer = oneshot::Receiver<io::Result<PathBuf>>;

    /// A message of `md` with some data written, as the sync stage holds it.
    fn written(md: &Arc<Maildir>, tmp: Option<TmpFile>) -> (Synced, Answer) {
        let mut tmp = tmp.unwrap_or_else(|| md.create(&md.next_id()).unwrap());
        tmp.write_all(b"data\n").unwrap();
        let (done, answer) = oneshot::channel();
        let s = Synced {
            maildir: Arc::clone(md),
            tmp,
            targets: Vec::new(),
            done,
        };
        (s, answer)
    }

    fn marks_of(md: &Maildir) -> HashMap<PathBuf, std::fs::File> {
        let mark = std::fs::File::open(md.root().join("tmp")).unwrap();
        HashMap::from([(md.root().to_path_buf(), mark)])
    }

    #[test]
    fn a_batch_is_flushed_by_one_syncfs_of_its_maildir() {
        let dir = tempfile::tempdir().unwrap();
        let md = Arc::new(Maildir::open(dir.path(), "h").unwrap());
        let (batch, answers): (Vec<_>, Vec<_>) = (0..3).map(|_| written(&md, None)).unzip();
        let calls = std::cell::Cell::new(0);
        let kept = flush_data(batch, &marks_of(&md), |_| {
            calls.set(calls.get() + 1);
            Ok(())
        });
        assert_eq!((kept.len(), calls.get()), (3, 1));
        for mut a in answers {
            assert!(a.try_recv().is_err(), "answered before it was published");
        }
    }

    #[test]
    fn a_failed_syncfs_refuses_every_message_of_its_batch() {
        let dir = tempfile::tempdir().unwrap();
        let md = Arc::new(Maildir::open(dir.path(), "h").unwrap());
        let (batch, answers): (Vec<_>, Vec<_>) = (0..3).map(|_| written(&md, None)).unzip();
        let kept = flush_data(batch, &marks_of(&md), |_| {
            Err(io::Error::from_raw_os_error(libc::EIO))
        });
        assert!(kept.is_empty());
        for mut a in answers {
            let refused = a.try_recv().expect("a message was not answered");
            assert_eq!(refused.unwrap_err().raw_os_error(), Some(libc::EIO));
        }
    }

    #[test]
    fn a_message_flushed_alone_is_refused_when_its_flush_fails() {
        let dir = tempfile::tempdir().unwrap();
        let md = Arc::new(Maildir::open(dir.path(), "h").unwrap());
        // fdatasync of /dev/null fails (EINVAL).
        let null = std::fs::OpenOptions::new().write(true).open("/dev/null").unwrap();
        let (lost, mut answer) = written(&md, Some(TmpFile::over(null, &md.next_id())));
        let kept = flush_data(vec![lost], &HashMap::new(), |_| Ok(()));
        assert!(kept.is_empty());
        let refused = answer.try_recv().expect("the message was not answered");
        assert_eq!(refused.unwrap_err().raw_os_error(), Some(libc::EINVAL));
    }

    #[test]
    fn a_failing_message_does_not_sink_the_batch() {
        let dir = tempfile::tempdir().unwrap();
        let md = Arc::new(Maildir::open(dir.path().join("a"), "h").unwrap());
        let gc = GroupCommit::start().unwrap();
        let rt = rt();
        // A message whose tmp file already exists cannot be created.
        let id = md.next_id();
        let clash = md.create(&id).unwrap();
        let err = rt.block_on(gc.commit(Arc::clone(&md), id, None, b"x".to_vec(), Vec::new()));
        assert!(err.is_err());
        drop(clash);
        let ok = rt.block_on(gc.commit(Arc::clone(&md), md.next_id(), None, b"y".to_vec(), Vec::new()));
        assert!(ok.unwrap().exists());
    }
}

#[cfg(test)]
mod per_recipient_tests {
    use super::*;
    use crate::store::tests::rt;

    /// Commits `file` (already holding some of the message) and `rest` for
    /// two recipients; checks each got `whole` and nothing is left behind.
    fn commit_to_two(file: impl FnOnce(&Maildir, &UniqueId) -> Option<TmpFile>, rest: &[u8], whole: &[u8]) {
        let dir = tempfile::tempdir().unwrap();
        let md = Arc::new(Maildir::open(dir.path(), "h").unwrap());
        let gc = GroupCommit::start().unwrap();
        let targets = vec![dir.path().join("d.test/alice"), dir.path().join("d.test/bob")];
        let id = md.next_id();
        let file = file(&md, &id);
        let first = rt()
            .block_on(gc.commit(Arc::clone(&md), id, file, rest.to_vec(), targets.clone()))
            .unwrap();
        assert!(first.starts_with(&targets[0]));
        for t in &targets {
            let files: Vec<_> = std::fs::read_dir(t.join("new")).unwrap().collect();
            assert_eq!(files.len(), 1);
            let path = files[0].as_ref().unwrap().path();
            assert_eq!(std::fs::read(&path).unwrap(), whole);
            assert!(path.to_string_lossy().ends_with(&format!(",S={}", whole.len())));
        }
        // Nothing left in the shared tmp/ or new/.
        assert_eq!(std::fs::read_dir(dir.path().join("tmp")).unwrap().count(), 0);
        assert_eq!(std::fs::read_dir(dir.path().join("new")).unwrap().count(), 0);
    }

    #[test]
    fn one_write_many_links() {
        commit_to_two(|_, _| None, b"shared body\n", b"shared body\n");
    }

    #[test]
    fn a_spilled_message_syncs_on_its_own_and_still_links_to_each_recipient() {
        let spilled = |md: &Maildir, id: &UniqueId| {
            let mut tmp = md.create(id).unwrap();
            tmp.write_all(b"first chunk, ").unwrap();
            Some(tmp)
        };
        commit_to_two(spilled, b"then the rest\n", b"first chunk, then the rest\n");
    }
}
