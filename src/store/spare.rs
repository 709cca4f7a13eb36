//! Spare files for `tmp/`, made ahead of need while mail arrives steadily.
//!
//! Making a file is not free. Its inode must be found, and on ext4 that
//! search steps over every inode of the block group freed in the last
//! minute or so (`recently_deleted` in the kernel): after mass deletes,
//! such as a mail reader expunging a folder, one create was measured at
//! 0.5-0.8 ms of CPU, all of it with `tmp/` locked. Made at the moment a
//! message ends, that time sits between the client's final dot and its
//! 250, and every rename out of `tmp/` meanwhile waits behind it.
//!
//! Under steady load a helper thread makes a few files in advance, nameless
//! (`O_TMPFILE` in `tmp/`: the inode search runs without the directory's
//! lock, and nothing shows in `tmp/`). A message that ends takes one and
//! links it into `tmp/` under its usual name, a short step under the lock;
//! from there it is delivered as any other. A delivery that finds no spare
//! makes its file itself, as before, and so does every delivery where the
//! file system has no `O_TMPFILE`.
//!
//! Spares exist only under load: the pool starts once [`HOT_TAKES`]
//! messages end within [`HOT_WINDOW`], and grows only when such a message
//! found it empty. After [`IDLE`] with no message the spares are closed,
//! which frees them, as does dropping the Maildir or
//! [`super::Maildir::drop_spares`] at shutdown. A crash leaves no name
//! behind; the kernel frees an unlinked inode, or, on ext4 without a
//! journal, the next `fsck` does.

use std::collections::VecDeque;
use std::fs::File;
use std::sync::{mpsc, Mutex, Weak};
use std::time::{Duration, Instant};

use super::maildir::Maildir;

/// Messages ending within [`HOT_WINDOW`] that count as steady load.
pub const HOT_TAKES: u32 = 32;
/// See [`HOT_TAKES`].
pub const HOT_WINDOW: Duration = Duration::from_millis(250);
/// With no message for this long, the spares are closed.
pub const IDLE: Duration = Duration::from_secs(1);
/// The most spares kept (each holds a descriptor).
pub const MAX_SPARES: usize = 64;

/// A spare: the nameless file and when it was made.
pub type Spare = (File, Instant);

/// The spare files of one Maildir and the handle that wakes their maker.
#[derive(Debug)]
pub struct Spares {
    state: Mutex<State>,
    /// Wakes the maker thread; dropping it (with the Maildir) stops it.
    wake: mpsc::Sender<()>,
}

#[derive(Debug, Default)]
struct State {
    ready: VecDeque<Spare>,
    /// How many spares the maker keeps ready.
    want: usize,
    window_start: Option<Instant>,
    in_window: u32,
    last_take: Option<Instant>,
    /// Set when this file system cannot make nameless files.
    unsupported: bool,
    /// Spares handed out (tests).
    #[cfg(test)]
    taken: usize,
}

impl Spares {
    /// Starts the maker thread for `maildir`'s `tmp/`. The thread holds
    /// only a weak reference: it ends once the Maildir is gone.
    pub fn start(maildir: Weak<Maildir>) -> std::io::Result<Self> {
        let (wake, rx) = mpsc::channel();
        std::thread::Builder::new()
            .name("maildoor-spare".into())
            .spawn(move || maker(&maildir, &rx))?;
        Ok(Spares {
            state: Mutex::default(),
            wake,
        })
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Called as a message's file is needed: counts the demand, and
    /// returns the oldest spare if one is ready.
    pub fn take(&self) -> Option<Spare> {
        let now = Instant::now();
        let mut s = self.state();
        if s.unsupported {
            return None;
        }
        if s.window_start.is_none_or(|t| now.duration_since(t) > HOT_WINDOW) {
            s.window_start = Some(now);
            s.in_window = 0;
        }
        s.in_window = s.in_window.saturating_add(1);
        s.last_take = Some(now);
        let spare = s.ready.pop_front();
        #[cfg(test)]
        {
            s.taken += usize::from(spare.is_some());
        }
        if spare.is_none() && s.in_window >= HOT_TAKES {
            s.want = (s.want * 2).clamp(1, MAX_SPARES);
        }
        if s.want > 0 {
            let _ = self.wake.send(());
        }
        spare
    }

    /// Closes every spare and forgets the load seen so far.
    pub fn clear(&self) {
        let closed = {
            let mut s = self.state();
            s.want = 0;
            s.window_start = None;
            s.in_window = 0;
            std::mem::take(&mut s.ready)
        };
        drop(closed);
    }

    /// Stops making spares for good: this file system cannot make them
    /// or name them (`why`, logged once).
    pub fn give_up(&self, why: &std::io::Error) {
        let first = !std::mem::replace(&mut self.state().unsupported, true);
        self.clear();
        if first {
            tracing::info!(error = %why, "tmp/ files are made one at a time, as each message ends: none can be made ahead here");
        }
    }

    /// Spares ready now.
    pub fn ready(&self) -> usize {
        self.state().ready.len()
    }

    /// True when fewer spares are ready than wanted.
    fn short(&self) -> bool {
        let s = self.state();
        s.ready.len() < s.want
    }

    /// True when no message has ended for [`IDLE`].
    fn idle(&self) -> bool {
        self.state().last_take.is_none_or(|t| t.elapsed() >= IDLE)
    }
}

/// True for an error that says nameless files cannot be made or named
/// here at all (no `O_TMPFILE` in this file system or kernel, no linking
/// through `/proc`), rather than a passing failure such as a full disk.
pub fn cannot_work(e: &std::io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(
            libc::EOPNOTSUPP
                | libc::EISDIR
                | libc::EINVAL
                | libc::ENOSYS
                | libc::EPERM
                | libc::EACCES
                | libc::EXDEV
        )
    )
}

/// The maker thread: tops the pool up when woken, empties it when idle.
fn maker(maildir: &Weak<Maildir>, rx: &mpsc::Receiver<()>) {
    loop {
        let woken = match rx.recv_timeout(IDLE) {
            Ok(()) => true,
            Err(mpsc::RecvTimeoutError::Timeout) => false,
            Err(mpsc::RecvTimeoutError::Disconnected) => return,
        };
        let Some(md) = maildir.upgrade() else {
            return;
        };
        let Some(spares) = md.spares() else {
            return;
        };
        if !woken {
            if spares.idle() && spares.ready() > 0 {
                spares.clear();
            }
            continue;
        }
        // Wake-ups that came meanwhile are served by this one pass.
        while rx.try_recv().is_ok() {}
        while spares.short() {
            let file = match md.create_nameless() {
                Ok(file) => file,
                Err(e) => {
                    if cannot_work(&e) {
                        spares.give_up(&e);
                    }
                    // Any other failure (a full disk, a removed tmp/) is
                    // left for the deliveries themselves to meet and report.
                    break;
                }
            };
            let mut s = spares.state();
            if s.ready.len() < s.want {
                s.ready.push_back((file, Instant::now()));
            }
            // Otherwise cleared meanwhile: the file is closed and freed.
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    fn entries(dir: &std::path::Path) -> usize {
        std::fs::read_dir(dir).unwrap().count()
    }

    /// Polls `cond` for up to five seconds.
    fn eventually(cond: impl Fn() -> bool) -> bool {
        for _ in 0..500 {
            if cond() {
                return true;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        false
    }

    fn spares(md: &Maildir) -> &Spares {
        md.spares().unwrap()
    }

    /// A Maildir keeping spares that has just made `n` files in a row.
    fn after_files(n: u32) -> (tempfile::TempDir, Arc<Maildir>) {
        let dir = tempfile::tempdir().unwrap();
        let md = Arc::new(Maildir::open(dir.path(), "h").unwrap());
        md.keep_spares().unwrap();
        for _ in 0..n {
            drop(md.create(&md.next_id()).unwrap());
        }
        (dir, md)
    }

    fn made_or_unsupported(md: &Maildir) -> bool {
        let s = spares(md).state();
        !s.ready.is_empty() || s.unsupported
    }

    #[test]
    fn a_quiet_maildir_keeps_no_spares() {
        let (dir, md) = after_files(HOT_TAKES - 1);
        std::thread::sleep(Duration::from_millis(50));
        assert_eq!(spares(&md).ready(), 0);
        assert_eq!(entries(&dir.path().join("tmp")), 0);
    }

    #[test]
    fn under_load_spares_wait_unseen_and_become_ordinary_deliveries() {
        let (dir, md) = after_files(HOT_TAKES + 1);
        assert!(eventually(|| made_or_unsupported(&md)), "no spare was made");
        if spares(&md).state().unsupported {
            eprintln!("no O_TMPFILE on this file system: checking the plain path only");
            let tmp = md.create(&md.next_id()).unwrap();
            assert!(md.commit(tmp).unwrap().exists());
            return;
        }
        // Made, but nameless: nothing in tmp/ to see or to sweep.
        assert_eq!(entries(&dir.path().join("tmp")), 0);
        let id = md.next_id();
        let mut tmp = md.create(&id).unwrap();
        assert_eq!(spares(&md).state().taken, 1, "the message's file was a spare");
        let names: Vec<_> = std::fs::read_dir(dir.path().join("tmp"))
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        assert_eq!(
            names,
            [format!("{id}.h")],
            "a spare takes the message's own tmp/ name"
        );
        tmp.write_all(b"Subject: spare\n\nbody\n").unwrap();
        let path = md.commit(tmp).unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"Subject: spare\n\nbody\n");
        assert!(path.to_str().unwrap().ends_with(&format!("/new/{id}.h,S=21")));
        // The mode any message of this Maildir gets, umask included.
        use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
        let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        let plain = dir.path().join("plain");
        std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(md.message_mode())
            .open(&plain)
            .unwrap();
        assert_eq!(mode(&path), mode(&plain));
        assert_eq!(entries(&dir.path().join("tmp")), 0);
        md.drop_spares();
        assert_eq!(spares(&md).ready(), 0);
    }

    #[test]
    fn spares_are_closed_once_mail_stops() {
        let (_dir, md) = after_files(HOT_TAKES + 1);
        assert!(eventually(|| made_or_unsupported(&md)), "no spare was made");
        assert!(
            eventually(|| spares(&md).ready() == 0),
            "spares outlived the load"
        );
    }

    #[test]
    fn where_spares_cannot_work_files_are_made_as_before() {
        let (dir, md) = after_files(HOT_TAKES + 1);
        spares(&md).give_up(&std::io::Error::from_raw_os_error(libc::EOPNOTSUPP));
        for _ in 0..HOT_TAKES * 2 {
            let tmp = md.create(&md.next_id()).unwrap();
            assert!(md.commit(tmp).unwrap().exists());
        }
        std::thread::sleep(Duration::from_millis(50));
        assert_eq!(spares(&md).ready(), 0);
        assert_eq!(spares(&md).state().taken, 0);
        assert_eq!(entries(&dir.path().join("new")), HOT_TAKES as usize * 2);
        assert!(cannot_work(&std::io::Error::from_raw_os_error(libc::EOPNOTSUPP)));
        assert!(!cannot_work(&std::io::Error::from_raw_os_error(libc::ENOSPC)));
    }
}
