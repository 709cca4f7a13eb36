//! Spare files for `tmp/`, made ahead of need while mail arrives steadily.
//!
//! Making a file is not free. Its inode must be found, and on ext4 without
//! a journal (as on the machine maildoor is measured on) that search steps
//! over every inode of the block group freed in the last minute or so
//! (`recently_deleted` in the kernel): after mass deletes, such as a mail
//! reader expunging a folder, one create was measured at 0.5-0.8 ms of
//! CPU, all of it with `tmp/` locked. Made at the moment a message ends,
//! that time sits between the client's final dot and its 250, and every
//! rename out of `tmp/` meanwhile waits behind it. (With a journal the
//! kernel does not skip those inodes, and a create costs far less.)
//!
//! Under steady load a helper thread makes a few files in advance, nameless
//! (`O_TMPFILE` in `tmp/`: the inode search runs without the directory's
//! lock, and nothing shows in `tmp/`). A message takes one when it needs
//! its file (a small one as it ends, a big one at its first spilled chunk)
//! and links it into `tmp/` under its usual name, a short step under the
//! lock; from there it is delivered as any other. A message that finds no
//! spare makes its file itself, as before, and so does every message where
//! the file system has no `O_TMPFILE` or `/proc` is missing.
//!
//! Spares exist only under load: the pool starts once [`HOT_TAKES`]
//! messages take a file within [`HOT_WINDOW`], and grows only when such a
//! message found it empty. After [`IDLE`] with no message the spares are
//! closed, which frees them (on ext4 without a journal that too counts as
//! recent deletes, but only of up to [`MAX_SPARES`] inodes); so it is when
//! the Maildir is dropped or [`super::Maildir::drop_spares`] is called at
//! shutdown. A crash leaves no name behind; the kernel frees an unlinked
//! inode, or, on ext4 without a journal, the next `fsck` does.

use std::collections::VecDeque;
use std::fs::File;
use std::sync::{mpsc, Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use super::maildir::Maildir;

/// Messages taking a file within [`HOT_WINDOW`] that count as steady load.
pub const HOT_TAKES: u32 = 32;
/// See [`HOT_TAKES`].
pub const HOT_WINDOW: Duration = Duration::from_millis(250);
/// With no message for this long, the spares are closed.
pub const IDLE: Duration = Duration::from_secs(1);
/// The most spares kept (each holds a descriptor).
pub const MAX_SPARES: usize = 64;

/// The spare files of one Maildir and the handle that wakes their maker.
#[derive(Debug)]
pub struct Spares {
    /// Shared with the maker thread, which closes idle spares without
    /// touching the Maildir itself.
    state: Arc<Mutex<State>>,
    /// Wakes the maker thread; dropping it (with the Maildir) stops it.
    wake: mpsc::Sender<()>,
}

#[derive(Debug, Default)]
struct State {
    ready: VecDeque<File>,
    /// How many spares the maker keeps ready.
    want: usize,
    window_start: Option<Instant>,
    in_window: u32,
    last_take: Option<Instant>,
    /// Set when this file system cannot make or name nameless files.
    unsupported: bool,
    /// Spares handed out (tests).
    #[cfg(test)]
    taken: usize,
}

impl State {
    /// Closes every spare and forgets the load seen so far.
    fn clear(&mut self) -> VecDeque<File> {
        self.want = 0;
        self.window_start = None;
        self.in_window = 0;
        std::mem::take(&mut self.ready)
    }

    /// Stops making spares for good (see [`Spares::give_up`]).
    fn give_up(state: &Mutex<State>, why: &std::io::Error) {
        let (first, closed) = {
            let mut s = lock(state);
            (!std::mem::replace(&mut s.unsupported, true), s.clear())
        };
        drop(closed);
        if first {
            tracing::info!(error = %why, "tmp/ files are made one at a time, as each message needs one: none can be made ahead here");
        }
    }
}

fn lock(state: &Mutex<State>) -> std::sync::MutexGuard<'_, State> {
    state.lock().unwrap_or_else(|p| p.into_inner())
}

impl Spares {
    /// Starts the maker thread for `maildir`'s `tmp/`; `mode`, if given,
    /// is what each spare is set to (see [`Maildir::create_nameless`]).
    /// The thread holds only a weak reference to the Maildir, taken up
    /// while it makes files: it ends once the Maildir is gone.
    pub fn start(maildir: Weak<Maildir>, mode: Option<u32>) -> std::io::Result<Self> {
        let (wake, rx) = mpsc::channel();
        let state = Arc::new(Mutex::new(State::default()));
        let shared = Arc::clone(&state);
        std::thread::Builder::new()
            .name("maildoor-spare".into())
            .spawn(move || maker(&maildir, &shared, mode, &rx))?;
        Ok(Spares { state, wake })
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        lock(&self.state)
    }

    /// Called as a message needs its file: counts the demand, and returns
    /// the oldest spare if one is ready.
    pub fn take(&self) -> Option<File> {
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
        let closed = self.state().clear();
        drop(closed);
    }

    /// Stops making spares for good: this file system cannot make them
    /// or name them (`why`, logged once).
    pub fn give_up(&self, why: &std::io::Error) {
        State::give_up(&self.state, why);
    }

    /// Spares ready now (tests).
    #[cfg(test)]
    fn ready(&self) -> usize {
        self.state().ready.len()
    }

    /// The pool as the maker thread holds it: gone once the thread ends.
    #[cfg(test)]
    fn pool(&self) -> Weak<Mutex<State>> {
        Arc::downgrade(&self.state)
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
fn maker(maildir: &Weak<Maildir>, state: &Mutex<State>, mode: Option<u32>, rx: &mpsc::Receiver<()>) {
    loop {
        match rx.recv_timeout(IDLE) {
            Ok(()) => {}
            Err(mpsc::RecvTimeoutError::Timeout) => {
                let closed = {
                    let mut s = lock(state);
                    let idle = s.last_take.is_none_or(|t| t.elapsed() >= IDLE);
                    let warm = s.want > 0 || !s.ready.is_empty() || s.window_start.is_some();
                    if idle && warm {
                        s.clear()
                    } else {
                        VecDeque::new()
                    }
                };
                drop(closed);
                continue;
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => return,
        }
        // Wake-ups that came meanwhile are served by this one pass.
        while rx.try_recv().is_ok() {}
        loop {
            {
                let s = lock(state);
                if s.ready.len() >= s.want {
                    break;
                }
            }
            let Some(md) = maildir.upgrade() else {
                return;
            };
            let made = md.create_nameless(mode);
            drop(md);
            match made {
                Ok(file) => {
                    let mut s = lock(state);
                    if s.ready.len() < s.want {
                        s.ready.push_back(file);
                    }
                    // Otherwise cleared meanwhile: the file is closed.
                }
                Err(e) => {
                    if cannot_work(&e) {
                        State::give_up(state, &e);
                    }
                    // Any other failure (a full disk, a removed tmp/) is
                    // left for the messages themselves to meet and report.
                    break;
                }
            }
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
        assert_eq!(spares(&md).state().want, 0, "below the load that asks for spares");
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
        // The warm-up itself may have taken one the maker was quick to make.
        let taken_before = spares(&md).state().taken;
        let id = md.next_id();
        let mut tmp = md.create(&id).unwrap();
        assert_eq!(
            spares(&md).state().taken,
            taken_before + 1,
            "the message's file was a spare"
        );
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
        // The warm-up itself may have taken a spare the maker was quick
        // to make: count only what is taken from here on.
        let taken_before = spares(&md).state().taken;
        for _ in 0..HOT_TAKES * 2 {
            let tmp = md.create(&md.next_id()).unwrap();
            assert!(md.commit(tmp).unwrap().exists());
        }
        std::thread::sleep(Duration::from_millis(50));
        assert_eq!(spares(&md).ready(), 0);
        assert_eq!(spares(&md).state().taken, taken_before);
        assert_eq!(entries(&dir.path().join("new")), HOT_TAKES as usize * 2);
        assert!(cannot_work(&std::io::Error::from_raw_os_error(libc::EOPNOTSUPP)));
        assert!(!cannot_work(&std::io::Error::from_raw_os_error(libc::ENOSPC)));
    }

    #[test]
    fn dropping_the_maildir_ends_the_maker_and_closes_its_spares() {
        let (_dir, md) = after_files(HOT_TAKES + 1);
        assert!(eventually(|| made_or_unsupported(&md)), "no spare was made");
        let pool = spares(&md).pool();
        drop(md);
        // The pool, and every descriptor in it, goes with the thread.
        assert!(
            eventually(|| pool.upgrade().is_none()),
            "the maker outlived its Maildir"
        );
    }
}
