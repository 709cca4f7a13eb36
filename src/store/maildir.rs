//! Durable Maildir delivery (the Maildir conventions of qmail, as read by
//! Dovecot, mutt, mblaze and Python's `mailbox`).
//!
//! A message is written to `tmp/` under a name no other process or host can
//! pick, fsynced, renamed into `new/`, and `new/` itself is fsynced. Only
//! then is the delivery reported durable, and only then does the client get
//! its 250. A crash at any moment leaves either nothing in `new/` or the
//! whole message; a failed or abandoned delivery removes its `tmp/` file.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use super::spare::{self, Spares};

/// A Maildir that messages are delivered into.
#[derive(Debug)]
pub struct Maildir {
    root: PathBuf,
    /// Host part of unique names, with `/` and `:` escaped as Maildir asks.
    host: String,
    pid: u32,
    counter: AtomicU64,
    /// The root's permission bits: directories made inside take them, and
    /// messages their read and write bits (see [`Maildir::open`]).
    mode: u32,
    /// Files made ahead of need, once [`Maildir::keep_spares`] is called.
    spares: std::sync::OnceLock<Spares>,
    /// When this Maildir was opened: no file of this process is older.
    opened: SystemTime,
    /// A per-recipient Maildir's `new/` and `tmp/`, reached without
    /// following a symbolic link (see [`Maildir::open_sibling`]); `None`
    /// for the configured Maildir itself, which is used by its path.
    beneath: Option<Beneath>,
}

/// Open directories of a Maildir below another: links and renames go
/// through them, never through a path someone could swap meanwhile.
#[derive(Debug)]
struct Beneath {
    new: std::os::fd::OwnedFd,
    tmp: std::os::fd::OwnedFd,
}

/// The mode of a Maildir made from nothing: mail is private.
const PRIVATE: u32 = 0o700;

/// The unique part of a message's file name, also its queue id:
/// `<secs>.M<usec>P<pid>Q<n>` (time, process, per-process counter).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UniqueId(String);

impl UniqueId {
    /// The id as text, e.g. `1764068400.M123456P4242Q7`.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for UniqueId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl Maildir {
    /// Opens the Maildir at `root`, creating `tmp/`, `new/` and `cur/` when
    /// missing (durably, see `create_layout`). `hostname` becomes part
    /// of every file name.
    ///
    /// Mail is private: a Maildir made here is `0700` and its messages
    /// `0600`. An existing Maildir's own permissions rule instead (as
    /// Dovecot does it): a root of `0750` gives `0640` messages, for a
    /// group of readers; the umask applies on top.
    pub fn open(root: impl Into<PathBuf>, hostname: &str) -> io::Result<Self> {
        let root = root.into();
        // The umask applies where each file and directory is made, so the
        // mode itself needs no second look after the layout is made.
        let mode = fs::metadata(&root).map_or(PRIVATE, |m| m.permissions().mode() & 0o777);
        create_layout(&root, mode)?;
        Ok(Maildir {
            mode,
            root,
            host: hostname.replace('/', "\\057").replace(':', "\\072"),
            pid: std::process::id(),
            counter: AtomicU64::new(0),
            spares: std::sync::OnceLock::new(),
            opened: SystemTime::now(),
            beneath: None,
        })
    }

    /// Opens (creating if needed) another Maildir at `root`, below this
    /// one (a per-recipient mailbox), that names its files the way this one
    /// does. No symbolic link is followed below this Maildir's root: a
    /// mailbox, a directory above it or its `tmp/`, `new/` or `cur/` that
    /// is one is refused, since whoever can write in a mailbox (its user,
    /// say) could otherwise point deliveries, made as maildoor's user, at
    /// any directory. The directories are made durable (each one's parent
    /// is fsynced, up to this Maildir's own root, even when they existed),
    /// so a message acknowledged in a brand-new mailbox survives a power
    /// loss.
    pub fn open_sibling(&self, root: impl Into<PathBuf>) -> io::Result<Self> {
        let root = root.into();
        let beneath = open_beneath(&self.root, &root, self.mode)?;
        Ok(Maildir {
            beneath: Some(beneath),
            root,
            host: self.host.clone(),
            pid: self.pid,
            counter: AtomicU64::new(0),
            mode: self.mode,
            spares: std::sync::OnceLock::new(),
            opened: SystemTime::now(),
        })
    }

    /// The mode new messages get (before the umask): the root's read and
    /// write bits (see [`Maildir::open`]).
    pub fn message_mode(&self) -> u32 {
        self.mode & 0o666
    }

    /// The Maildir's top directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// A fresh unique id for the next message.
    pub fn next_id(&self) -> UniqueId {
        let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default();
        let n = self.counter.fetch_add(1, Ordering::Relaxed);
        UniqueId(format!(
            "{}.M{}P{}Q{}",
            now.as_secs(),
            now.subsec_micros(),
            self.pid,
            n
        ))
    }

    /// Keeps spare `tmp/` files made ahead of need while mail arrives
    /// steadily (see [`super::spare`]); [`Maildir::create`] takes them.
    pub fn keep_spares(self: &Arc<Self>) -> io::Result<()> {
        // A spare is named through /proc/self/fd: without it, none.
        if self.spares.get().is_some() || !Path::new("/proc/self/fd").is_dir() {
            return Ok(());
        }
        // A spare gets the mode a named file would: where `tmp/` has a
        // default ACL, the kernel applies it to both; otherwise it is set
        // explicitly to our mode less the umask (read from /proc), as
        // kernels before 6.0 left the umask out for `O_TMPFILE` on file
        // systems without ACLs.
        let tmp = self.root.join("tmp");
        let fix = if rustix::fs::getxattr_query(&tmp, "system.posix_acl_default").is_ok() {
            None
        } else {
            let Some(umask) = umask() else {
                return Ok(());
            };
            Some(self.message_mode() & !umask)
        };
        let _ = self.spares.set(Spares::start(Arc::downgrade(self), fix)?);
        Ok(())
    }

    /// The spare files, if this Maildir keeps them (tests).
    #[cfg(test)]
    pub(crate) fn spares(&self) -> Option<&Spares> {
        self.spares.get()
    }

    /// Closes the spare files now (at shutdown); more are made only
    /// under new load.
    pub fn drop_spares(&self) {
        if let Some(spares) = self.spares.get() {
            spares.clear();
        }
    }

    /// Creates the `tmp/` file for message `id`: a spare made ahead of
    /// need given its name, when one is ready, or else a new file.
    pub fn create(&self, id: &UniqueId) -> io::Result<TmpFile> {
        if let Some(spares) = self.spares.get() {
            if let Some(spare) = spares.take() {
                match self.name_spare(spare, id) {
                    Ok(tmp) => return Ok(tmp),
                    Err(e) if spare::cannot_work(&e) => spares.give_up(&e),
                    // Anything else, a file made the usual way will meet
                    // and report.
                    Err(_) => {}
                }
            }
        }
        self.create_named(id)
    }

    /// Creates a `tmp/` file named for `id`.
    fn create_named(&self, id: &UniqueId) -> io::Result<TmpFile> {
        let path = self.tmp_path(id);
        let file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(self.message_mode())
            .open(&path)?;
        Ok(TmpFile::new(file, path, id))
    }

    /// Where message `id` is written: `tmp/<id>.<host>`.
    fn tmp_path(&self, id: &UniqueId) -> PathBuf {
        self.root.join("tmp").join(format!("{}.{}", id, self.host))
    }

    /// Makes a nameless file in `tmp/` (`O_TMPFILE`) for
    /// [`super::spare`]: what finding its inode costs is paid here, and
    /// without holding `tmp/` locked, as a named create would. Nothing of
    /// it shows in `tmp/`, and it vanishes when closed. It is made as a
    /// message's file is, then set to mode `fix` if given (see
    /// [`Maildir::keep_spares`]). An error where the file system (or
    /// kernel) has no `O_TMPFILE`.
    pub(crate) fn create_nameless(&self, fix: Option<u32>) -> io::Result<File> {
        use rustix::fs::{Mode, OFlags};
        let flags = OFlags::TMPFILE | OFlags::WRONLY | OFlags::CLOEXEC;
        let fd = rustix::fs::open(
            self.root.join("tmp"),
            flags,
            Mode::from_raw_mode(self.message_mode()),
        )?;
        if let Some(mode) = fix {
            rustix::fs::fchmod(&fd, Mode::from_raw_mode(mode))?;
        }
        Ok(File::from(fd))
    }

    /// Gives a file of [`Maildir::create_nameless`] its `tmp/` name for
    /// message `id` (a link through `/proc/self/fd`, which needs no
    /// privilege); from then on it is like any file [`Maildir::create`]
    /// makes.
    fn name_spare(&self, file: File, id: &UniqueId) -> io::Result<TmpFile> {
        use rustix::fs::{AtFlags, CWD};
        use std::os::fd::AsRawFd;
        let path = self.tmp_path(id);
        let proc_path = format!("/proc/self/fd/{}", file.as_raw_fd());
        rustix::fs::linkat(CWD, proc_path.as_str(), CWD, &path, AtFlags::SYMLINK_FOLLOW)?;
        Ok(TmpFile::new(file, path, id))
    }

    /// Makes one finished message durable in `new/`: fsync the file,
    /// [`Maildir::publish`] it, fsync `new/`. Returns the final path. On
    /// error nothing is left in `tmp/` or `new/`. (The server batches these
    /// steps over many messages: see `store::commit`.)
    pub fn commit(&self, tmp: TmpFile) -> io::Result<PathBuf> {
        tmp.sync_data()?;
        let dest = self.publish(tmp)?;
        if let Err(e) = self.sync_new() {
            // Not known to be durable: take the message back out, so the
            // client's retry cannot produce a duplicate.
            let _ = fs::remove_file(&dest);
            return Err(e);
        }
        Ok(dest)
    }

    /// Renames a message whose data is already durable from `tmp/` to
    /// `new/<id>.<host>,S=<size>`. The name is durable only after
    /// [`Maildir::sync_new`].
    pub fn publish(&self, mut tmp: TmpFile) -> io::Result<PathBuf> {
        let dest = self.root.join("new").join(self.final_name(&tmp));
        rename_no_replace(&tmp.path, &dest)?;
        // The rename is done: there is no tmp file left to clean up.
        tmp.path = PathBuf::new();
        Ok(dest)
    }

    /// The name a finished message gets in `new/`: `<id>.<host>,S=<size>`.
    pub fn final_name(&self, tmp: &TmpFile) -> String {
        format!("{}.{},S={}", tmp.id, self.host, tmp.size)
    }

    /// Puts a copy of a message whose data is durable into this Maildir's
    /// `new/` under `name`: a hard link when `tmp` is on the same file
    /// system, otherwise a full copy that is itself fsynced before it is
    /// renamed in. Durable only after [`Maildir::sync_new`].
    pub fn link_in(&self, tmp: &TmpFile, name: &str) -> io::Result<PathBuf> {
        let dest = self.root.join("new").join(name);
        if let Some(b) = &self.beneath {
            return self.link_beneath(b, tmp, name).map(|()| dest);
        }
        match fs::hard_link(&tmp.path, &dest) {
            Ok(()) => return Ok(dest),
            // Another file system, or one without hard links: copy.
            Err(e) if matches!(e.raw_os_error(), Some(libc::EXDEV | libc::EPERM | libc::EMLINK)) => {}
            Err(e) => return Err(e),
        }
        let copy = self.root.join("tmp").join(name);
        let result = fs::copy(&tmp.path, &copy)
            .and_then(|_| File::open(&copy)?.sync_data())
            .and_then(|()| fs::rename(&copy, &dest));
        if let Err(e) = result {
            let _ = fs::remove_file(&copy);
            return Err(e);
        }
        Ok(dest)
    }

    /// [`Maildir::link_in`] through the open directories of a Maildir
    /// below another.
    fn link_beneath(&self, b: &Beneath, tmp: &TmpFile, name: &str) -> io::Result<()> {
        use rustix::fs::{AtFlags, Mode, OFlags, CWD};
        use rustix::io::Errno;
        match rustix::fs::linkat(CWD, &tmp.path, &b.new, name, AtFlags::empty()) {
            Ok(()) => return Ok(()),
            Err(Errno::XDEV | Errno::PERM | Errno::MLINK) => {}
            Err(e) => return Err(e.into()),
        }
        let flags = OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC;
        let mut copy = File::from(rustix::fs::openat(
            &b.tmp,
            name,
            flags,
            Mode::from_raw_mode(self.message_mode()),
        )?);
        let result = File::open(&tmp.path)
            .and_then(|mut from| io::copy(&mut from, &mut copy))
            .and_then(|_| copy.sync_data())
            .and_then(|()| Ok(rustix::fs::renameat(&b.tmp, name, &b.new, name)?));
        if result.is_err() {
            let _ = rustix::fs::unlinkat(&b.tmp, name, AtFlags::empty());
        }
        result
    }

    /// Takes a message this Maildir's `new/` holds at `path` back out
    /// (when it is not known to be durable).
    pub fn remove_new(&self, path: &Path) {
        match (&self.beneath, path.file_name()) {
            (Some(b), Some(name)) => {
                let _ = rustix::fs::unlinkat(&b.new, name, rustix::fs::AtFlags::empty());
            }
            _ => {
                let _ = fs::remove_file(path);
            }
        }
    }

    /// True while the `new/` this Maildir delivers into is still the one
    /// at its path: a per-recipient mailbox removed, re-made or replaced
    /// by a link since it was opened must be opened again.
    pub fn still_in_place(&self) -> bool {
        use std::os::unix::fs::MetadataExt;
        let path = self.root.join("new");
        match &self.beneath {
            None => path.is_dir(),
            Some(b) => match (rustix::fs::fstat(&b.new), fs::symlink_metadata(&path)) {
                (Ok(st), Ok(m)) => m.is_dir() && st.st_dev == m.dev() && st.st_ino == m.ino(),
                _ => false,
            },
        }
    }

    /// Flushes `new/` itself, making every rename into it durable.
    pub fn sync_new(&self) -> io::Result<()> {
        if let Some(b) = &self.beneath {
            return Ok(rustix::fs::fsync(&b.new)?);
        }
        File::open(self.root.join("new"))?.sync_all()
    }

    /// Removes `tmp/` files older than `age` (the Maildir convention is 36
    /// hours), here and in the per-recipient Maildirs below this one
    /// (`<domain>/<local-part>/tmp/`); returns how many were removed. An
    /// error reading this Maildir's `tmp/` is returned; the per-recipient
    /// ones are swept as far as they can be read.
    ///
    /// Files this host's earlier processes left when they ended mid-write
    /// (killed, or stopped while the disk hung) are removed whatever their
    /// age: their name carries our host name and the pid of a process that
    /// no longer runs, or our own pid on a file last changed before this
    /// Maildir was opened (an earlier process had our pid: in a container
    /// every maildoor is pid 1), so nobody will finish them. Two live
    /// writers never share a host name and a pid (the names of their files
    /// could clash), so neither rule can take a file still being written.
    pub fn clean_tmp(&self, age: std::time::Duration) -> io::Result<usize> {
        // Without /proc nothing can be known gone: then only age counts.
        let proc_works = Path::new("/proc/self").exists();
        let abandoned = |name: &[u8], changed: SystemTime| proc_works && self.writer_gone(name, changed);
        let mut removed = clean_dir(&self.root.join("tmp"), age, &abandoned)?;
        for domain in subdirs(&self.root) {
            for mailbox in subdirs(&domain) {
                removed += clean_dir(&mailbox.join("tmp"), age, &abandoned).unwrap_or(0);
            }
        }
        Ok(removed)
    }

    /// True for a `tmp/` name of ours (`<secs>.M<usec>P<pid>Q<n>.<host>`,
    /// perhaps with `,S=<size>`)
    /// with our host name), last changed at `changed`, whose process is
    /// gone: no process has that pid in `/proc` (which the caller has
    /// checked is mounted), or it is our pid and the file is older than
    /// this Maildir's opening.
    fn writer_gone(&self, name: &[u8], changed: SystemTime) -> bool {
        let Ok(name) = std::str::from_utf8(name) else {
            return false;
        };
        let pid = name
            .split_once('.')
            .and_then(|(_, rest)| rest.split_once('.'))
            // A copy made where a hard link is impossible is named as in
            // new/: `<unique>.<host>,S=<size>`.
            .filter(|(_, host)| host.split(',').next() == Some(self.host.as_str()))
            .and_then(|(unique, _)| unique.strip_prefix('M'))
            .and_then(|u| u.split_once('P'))
            .and_then(|(_, rest)| rest.split_once('Q'))
            .and_then(|(pid, _)| pid.parse::<u32>().ok());
        let Some(pid) = pid else {
            return false;
        };
        if pid == self.pid {
            // A second of slack: some file systems keep whole seconds, and
            // a change time may trail the clock by a tick.
            return changed + std::time::Duration::from_secs(1) < self.opened;
        }
        !Path::new("/proc").join(pid.to_string()).exists()
    }
}

/// The process's umask, read from `/proc/self/status` (Linux 4.7 on):
/// setting it to read it would race with files made meanwhile.
fn umask() -> Option<u32> {
    let status = fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find_map(|l| l.strip_prefix("Umask:"))?;
    u32::from_str_radix(line.trim(), 8).ok()
}

/// Creates `root` with `tmp/`, `new/` and `cur/` where they are missing,
/// and makes the layout durable: `root` and the parent of each directory
/// that may have been created are fsynced, up to the first that existed.
/// A message answered 250 in a Maildir made a moment ago then survives a
/// power loss. Called once per Maildir opened, not per message. (A
/// Maildir below another is made by `open_beneath`.)
fn create_layout(root: &Path, mode: u32) -> io::Result<()> {
    let mut top = root;
    while let Some(parent) = parent_of(top) {
        if parent.is_dir() {
            break;
        }
        top = parent;
    }
    let mut dirs = fs::DirBuilder::new();
    dirs.recursive(true).mode(mode);
    for sub in ["tmp", "new", "cur"] {
        let dir = root.join(sub);
        dirs.create(&dir).map_err(|e| match e.kind() {
            // Say which path is in the way: "File exists" alone does not.
            io::ErrorKind::AlreadyExists | io::ErrorKind::NotADirectory => io::Error::new(
                e.kind(),
                format!(
                    "{} (or a directory above it) is not a directory: {e}",
                    dir.display()
                ),
            ),
            _ => e,
        })?;
    }
    File::open(root)?.sync_all()?;
    let mut dir = root;
    while let Some(parent) = parent_of(dir) {
        File::open(parent)?.sync_all()?;
        if dir == top {
            break;
        }
        dir = parent;
    }
    Ok(())
}

/// Opens, creating what is missing, the Maildir at `root` below the one
/// at `above` without following a symbolic link at any level below
/// `above`, and makes the layout durable (see [`Maildir::open_sibling`]).
fn open_beneath(above: &Path, root: &Path, mode: u32) -> io::Result<Beneath> {
    use rustix::fs::{Mode, OFlags, CWD};
    use rustix::io::Errno;
    use std::os::fd::OwnedFd;
    let rel = root.strip_prefix(above).map_err(|_| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{} is not below {}", root.display(), above.display()),
        )
    })?;
    let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC;
    let open_or_make = |parent: &OwnedFd, path: &Path| -> io::Result<OwnedFd> {
        let name = path.file_name().unwrap_or_default();
        let open = || rustix::fs::openat(parent, name, flags | OFlags::NOFOLLOW, Mode::empty());
        let opened = match open() {
            Err(Errno::NOENT) => match rustix::fs::mkdirat(parent, name, Mode::from_raw_mode(mode)) {
                Ok(()) | Err(Errno::EXIST) => open(),
                Err(e) => Err(e),
            },
            other => other,
        };
        opened.map_err(|e| match e {
            // Say which path is in the way: "Too many levels of symbolic
            // links" alone does not.
            Errno::LOOP | Errno::NOTDIR => io::Error::new(
                io::ErrorKind::NotADirectory,
                format!(
                    "{} is a symbolic link or not a directory: not delivered through",
                    path.display()
                ),
            ),
            e => e.into(),
        })
    };
    // Every directory from `above` down, to be fsynced; `mailbox` the
    // deepest so far.
    let mut chain = Vec::new();
    let mut mailbox = rustix::fs::openat(CWD, above, flags, Mode::empty())?;
    let mut path = above.to_path_buf();
    for part in rel.components() {
        let std::path::Component::Normal(name) = part else {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("{} is not a plain path below {}", root.display(), above.display()),
            ));
        };
        path.push(name);
        let below = open_or_make(&mailbox, &path)?;
        chain.push(std::mem::replace(&mut mailbox, below));
    }
    let tmp = open_or_make(&mailbox, &path.join("tmp"))?;
    let new = open_or_make(&mailbox, &path.join("new"))?;
    open_or_make(&mailbox, &path.join("cur"))?;
    rustix::fs::fsync(&mailbox)?;
    for fd in chain.iter().rev() {
        rustix::fs::fsync(fd)?;
    }
    Ok(Beneath { new, tmp })
}

/// The directory holding `p`; a relative path's top level is in the
/// working directory (`.`), not in "".
fn parent_of(p: &Path) -> Option<&Path> {
    p.parent().map(|d| {
        if d.as_os_str().is_empty() {
            Path::new(".")
        } else {
            d
        }
    })
}

/// Renames without ever replacing an existing file (`RENAME_NOREPLACE`),
/// so that even a name collision (pid reuse within one microsecond)
/// cannot overwrite a delivered message; where the file system lacks the
/// flag, a plain rename.
fn rename_no_replace(from: &Path, to: &Path) -> io::Result<()> {
    use rustix::fs::{renameat_with, RenameFlags, CWD};
    match renameat_with(CWD, from, CWD, to, RenameFlags::NOREPLACE) {
        Ok(()) => Ok(()),
        Err(e) if e == rustix::io::Errno::INVAL || e == rustix::io::Errno::NOSYS => fs::rename(from, to),
        Err(e) => Err(e.into()),
    }
}

/// Removes the regular files and symbolic links in `dir` older than `age`,
/// or whose name `abandoned` says so, except dot files (a `.gitkeep`, say,
/// is not a message); directories stay. Symbolic links are never
/// followed, neither `dir` itself nor its entries: an old link is removed
/// as itself, by its own age. Whoever can write in a mailbox must not be
/// able to point the sweep at files elsewhere.
fn clean_dir(
    dir: &Path,
    age: std::time::Duration,
    abandoned: &dyn Fn(&[u8], SystemTime) -> bool,
) -> io::Result<usize> {
    use rustix::fs::{AtFlags, Dir, FileType, Mode, OFlags};
    let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
    let fd = rustix::fs::openat(rustix::fs::CWD, dir, flags, Mode::empty())?;
    let now = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default();
    let mut removed = 0;
    for entry in Dir::read_from(&fd)? {
        let entry = entry?;
        let name = entry.file_name();
        if name.to_bytes().starts_with(b".") {
            continue;
        }
        let Ok(st) = rustix::fs::statat(&fd, name, AtFlags::SYMLINK_NOFOLLOW) else {
            continue;
        };
        let modified = u64::try_from(st.st_mtime)
            .ok()
            .map(|secs| std::time::Duration::new(secs, u32::try_from(st.st_mtime_nsec).unwrap_or(0)));
        let changed = u64::try_from(st.st_ctime)
            .map(|secs| {
                UNIX_EPOCH + std::time::Duration::new(secs, u32::try_from(st.st_ctime_nsec).unwrap_or(0))
            })
            .unwrap_or(UNIX_EPOCH);
        let old =
            modified.is_some_and(|m| now.saturating_sub(m) > age) || abandoned(name.to_bytes(), changed);
        let kind = FileType::from_raw_mode(st.st_mode);
        if matches!(kind, FileType::RegularFile | FileType::Symlink)
            && old
            && rustix::fs::unlinkat(&fd, name, AtFlags::empty()).is_ok()
        {
            removed += 1;
        }
    }
    Ok(removed)
}

/// The directories in `dir` that may be a per-recipient level (not a
/// Maildir's own `tmp`, `new` or `cur`, nor a dot directory).
fn subdirs(dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = fs::read_dir(dir) else {
        return Vec::new();
    };
    entries
        .filter_map(Result::ok)
        .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
        .filter(|e| {
            let name = e.file_name();
            let name = name.as_encoded_bytes();
            !name.starts_with(b".") && !matches!(name, b"tmp" | b"new" | b"cur")
        })
        .map(|e| e.path())
        .collect()
}

/// A message being written in `tmp/`. Dropping it without
/// [`Maildir::commit`] removes the file.
#[derive(Debug)]
pub struct TmpFile {
    file: File,
    path: PathBuf,
    size: u64,
    id: UniqueId,
}

impl TmpFile {
    /// An empty message file at `path` for message `id`.
    fn new(file: File, path: PathBuf, id: &UniqueId) -> Self {
        TmpFile {
            file,
            path,
            size: 0,
            id: id.clone(),
        }
    }

    /// A message file with no name, over any open file (tests: one whose
    /// flush fails).
    #[cfg(test)]
    pub(crate) fn over(file: File, id: &UniqueId) -> Self {
        TmpFile::new(file, PathBuf::new(), id)
    }

    /// Appends bytes to the message.
    pub fn write_all(&mut self, data: &[u8]) -> io::Result<()> {
        self.file.write_all(data)?;
        self.size += data.len() as u64;
        Ok(())
    }

    /// Asks the kernel to start writing the last `len` bytes written to
    /// disk now, without waiting for it, so that the flush at the end of
    /// the message has less left to do. Linux starts writeback of the
    /// range for `POSIX_FADV_DONTNEED` (PostgreSQL uses it the same way
    /// where `sync_file_range` is missing); the pages are not needed again
    /// by us either. It is only a hint: errors are ignored here and any
    /// real write error surfaces at the flush.
    pub fn start_writeback(&self, len: u64) {
        let start = self.size.saturating_sub(len);
        let _ = rustix::fs::fadvise(
            &self.file,
            start,
            std::num::NonZeroU64::new(len),
            rustix::fs::Advice::DontNeed,
        );
    }

    /// Bytes written so far.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// The message's unique id.
    pub fn id(&self) -> &UniqueId {
        &self.id
    }

    /// Flushes the file's data to disk (fdatasync).
    pub fn sync_data(&self) -> io::Result<()> {
        self.file.sync_data()
    }

    /// The open file (for its first flush on the blocking pool: `settle`).
    pub fn file(&self) -> &File {
        &self.file
    }
}

impl Drop for TmpFile {
    fn drop(&mut self) {
        if !self.path.as_os_str().is_empty() {
            let _ = fs::remove_file(&self.path);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(dir: &Path) -> Vec<String> {
        let mut v: Vec<String> = fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    }

    #[test]
    fn mail_is_private_unless_the_maildir_says_otherwise() {
        use std::os::unix::fs::PermissionsExt;
        let mode = |p: &Path| fs::metadata(p).unwrap().permissions().mode() & 0o777;
        // What the umask lets through (it applies on top, as to any file).
        let umask = fs::read_to_string("/proc/self/status")
            .ok()
            .and_then(|s| {
                s.lines()
                    .find_map(|l| l.strip_prefix("Umask:"))
                    .and_then(|m| u32::from_str_radix(m.trim(), 8).ok())
            })
            .unwrap_or(0o022);
        let mode = |p: &Path| mode(p) | umask;
        let deliver = |md: &Maildir| {
            let mut f = md.create(&md.next_id()).unwrap();
            f.write_all(b"x\n").unwrap();
            md.commit(f).unwrap()
        };
        let dir = tempfile::tempdir().unwrap();
        // Made here: 0700 all the way, 0600 messages (a umask can only
        // take bits away).
        let fresh = Maildir::open(dir.path().join("a/md"), "h").unwrap();
        for d in ["a", "a/md", "a/md/tmp", "a/md/new", "a/md/cur"] {
            assert_eq!(mode(&dir.path().join(d)), 0o700 | umask, "{d}");
        }
        assert_eq!(mode(&deliver(&fresh)), 0o600 | umask);
        // A per-recipient Maildir below takes its parent Maildir's mode.
        let user = fresh
            .open_sibling(dir.path().join("a/md/example.org/bob"))
            .unwrap();
        assert_eq!(mode(&dir.path().join("a/md/example.org")), 0o700 | umask);
        assert_eq!(mode(&deliver(&user)), 0o600 | umask);
        // An existing Maildir shared with a group keeps being shared.
        let shared = dir.path().join("shared");
        fs::create_dir(&shared).unwrap();
        fs::set_permissions(&shared, fs::Permissions::from_mode(0o750)).unwrap();
        let md = Maildir::open(&shared, "h").unwrap();
        assert_eq!(mode(&shared.join("new")), 0o750 | umask);
        assert_eq!(mode(&deliver(&md)), 0o640 | umask);
    }

    #[test]
    fn creates_layout_and_delivers_durably() {
        let dir = tempfile::tempdir().unwrap();
        let md = Maildir::open(dir.path().join("m"), "host/x:y").unwrap();
        for sub in ["tmp", "new", "cur"] {
            assert!(dir.path().join("m").join(sub).is_dir());
        }
        let id = md.next_id();
        let mut tmp = md.create(&id).unwrap();
        tmp.write_all(b"Subject: hi\n\nbody\n").unwrap();
        assert_eq!(names(&dir.path().join("m/tmp")).len(), 1);
        let path = md.commit(tmp).unwrap();
        assert!(names(&dir.path().join("m/tmp")).is_empty());
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        assert_eq!(name, format!("{id}.host\\057x\\072y,S=18"));
        assert_eq!(fs::read(&path).unwrap(), b"Subject: hi\n\nbody\n");
        assert_eq!(fs::metadata(&path).unwrap().len(), 18);
    }

    #[test]
    fn ids_are_unique_and_shaped() {
        let dir = tempfile::tempdir().unwrap();
        let md = Maildir::open(dir.path(), "h").unwrap();
        let a = md.next_id();
        let b = md.next_id();
        assert_ne!(a, b);
        let s = a.as_str();
        let (secs, rest) = s.split_once(".M").unwrap();
        assert!(secs.parse::<u64>().is_ok());
        assert!(rest.contains('P') && rest.contains('Q'));
    }

    #[test]
    fn publish_never_replaces_a_delivered_message() {
        let dir = tempfile::tempdir().unwrap();
        let md = Maildir::open(dir.path(), "h").unwrap();
        let mut tmp = md.create(&md.next_id()).unwrap();
        tmp.write_all(b"new").unwrap();
        let taken = dir.path().join("new").join(md.final_name(&tmp));
        fs::write(&taken, b"delivered before").unwrap();
        let err = md.publish(tmp).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::AlreadyExists);
        assert_eq!(fs::read(&taken).unwrap(), b"delivered before");
        // The failed message's tmp file is gone with it.
        assert_eq!(fs::read_dir(dir.path().join("tmp")).unwrap().count(), 0);
    }

    #[test]
    fn dropped_delivery_leaves_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let md = Maildir::open(dir.path(), "h").unwrap();
        let id = md.next_id();
        let mut tmp = md.create(&id).unwrap();
        tmp.write_all(b"partial").unwrap();
        drop(tmp);
        assert!(names(&dir.path().join("tmp")).is_empty());
        assert!(names(&dir.path().join("new")).is_empty());
    }

    #[test]
    fn clean_tmp_keeps_fresh_files() {
        let dir = tempfile::tempdir().unwrap();
        let md = Maildir::open(dir.path(), "h").unwrap();
        fs::write(dir.path().join("tmp/stale"), b"x").unwrap();
        fs::write(dir.path().join("tmp/.gitkeep"), b"").unwrap();
        assert_eq!(md.clean_tmp(std::time::Duration::from_secs(3600)).unwrap(), 0);
        assert_eq!(md.clean_tmp(std::time::Duration::ZERO).unwrap(), 1);
        assert!(dir.path().join("tmp/.gitkeep").exists());
    }

    #[test]
    fn clean_tmp_removes_what_dead_processes_of_this_host_left() {
        let dir = tempfile::tempdir().unwrap();
        let md = Maildir::open(dir.path(), "mx.h").unwrap();
        let dead = (3_000_000..4_000_000u32)
            .find(|p| !Path::new("/proc").join(p.to_string()).exists())
            .unwrap();
        let ours = std::process::id();
        let names = [
            format!("1795600000.M1P{dead}Q0.mx.h"),
            // A per-recipient copy where no hard link could be made.
            format!("1795600000.M1P{dead}Q1.mx.h,S=12"),
            format!("1795600000.M1P{dead}Q0.other.h"),
            format!("1795600000.M1P{dead}Q0.other.h,S=12"),
            format!("1795600000.M1P{ours}Q0.mx.h"),
            "1795600000.M1P1Q0.mx.h".to_string(),
            format!("1795600000.P{dead}.mx.h"),
        ];
        for n in &names {
            fs::write(dir.path().join("tmp").join(n), b"x").unwrap();
        }
        assert_eq!(md.clean_tmp(std::time::Duration::from_secs(3600)).unwrap(), 2);
        // Another host's, this process's, a live process's (pid 1; both
        // started before the files were made), and a name not of our
        // making stay until they are 36 hours old.
        for n in &names[2..] {
            assert!(dir.path().join("tmp").join(n).exists(), "{n}");
        }
    }

    #[test]
    fn our_pid_used_before_us_does_not_keep_an_older_file() {
        let dir = tempfile::tempdir().unwrap();
        let md = Maildir::open(dir.path(), "mx.h").unwrap();
        let now = SystemTime::now();
        let long_ago = UNIX_EPOCH + std::time::Duration::from_secs(1_000_000);
        // In a container every maildoor is pid 1, and a restarted one has
        // its predecessor's pid: a file of our pid changed before the
        // Maildir was opened is not this process's.
        let ours = format!("1795600000.M1P{}Q0.mx.h", std::process::id());
        assert!(md.writer_gone(ours.as_bytes(), long_ago));
        assert!(!md.writer_gone(ours.as_bytes(), now));
        let other_host = format!("1795600000.M1P{}Q0.other.h", std::process::id());
        assert!(!md.writer_gone(other_host.as_bytes(), long_ago));
        // Another live process's (pid 1 here) stays, however old.
        assert!(!md.writer_gone(b"1795600000.M1P1Q0.mx.h", long_ago));
    }

    #[test]
    fn a_new_maildir_is_made_durably_relative_or_not() {
        let dir = tempfile::tempdir().unwrap();
        let deep = dir.path().join("a/b/md");
        Maildir::open(&deep, "h").unwrap();
        assert!(["tmp", "new", "cur"].iter().all(|d| deep.join(d).is_dir()));
        // Relative to the working directory: the top level's parent is ".".
        assert_eq!(parent_of(Path::new("md")), Some(Path::new(".")));
        assert_eq!(parent_of(Path::new("/")), None);
    }

    #[test]
    fn clean_tmp_never_follows_symbolic_links() {
        let dir = tempfile::tempdir().unwrap();
        let md = Maildir::open(dir.path().join("md"), "h").unwrap();
        let elsewhere = dir.path().join("elsewhere");
        fs::create_dir(&elsewhere).unwrap();
        let precious = elsewhere.join("precious");
        fs::write(&precious, b"x").unwrap();
        let long_ago = SystemTime::now() - std::time::Duration::from_secs(48 * 3600);
        File::options()
            .write(true)
            .open(&precious)
            .unwrap()
            .set_modified(long_ago)
            .unwrap();
        // A mailbox whose tmp/ is a link to another directory, and a link
        // in the store's own tmp/ to an old file.
        let mallory = md.root().join("d.test/mallory");
        fs::create_dir_all(&mallory).unwrap();
        std::os::unix::fs::symlink(&elsewhere, mallory.join("tmp")).unwrap();
        std::os::unix::fs::symlink(&precious, md.root().join("tmp/link")).unwrap();
        let age = std::time::Duration::from_secs(36 * 3600);
        assert_eq!(md.clean_tmp(age).unwrap(), 0);
        assert!(precious.exists());
        assert!(md.root().join("tmp/link").symlink_metadata().is_ok());
        // Once the link itself is old, it goes, as itself: the file it
        // points to stays.
        let old = rustix::fs::Timespec {
            tv_sec: long_ago.duration_since(UNIX_EPOCH).unwrap().as_secs() as _,
            tv_nsec: 0,
        };
        let times = rustix::fs::Timestamps {
            last_access: old,
            last_modification: old,
        };
        let link = md.root().join("tmp/link");
        rustix::fs::utimensat(
            rustix::fs::CWD,
            &link,
            &times,
            rustix::fs::AtFlags::SYMLINK_NOFOLLOW,
        )
        .unwrap();
        assert_eq!(md.clean_tmp(age).unwrap(), 1);
        assert!(link.symlink_metadata().is_err());
        assert!(precious.exists());
    }

    #[test]
    fn a_mailbox_below_is_never_reached_through_a_symbolic_link() {
        use std::os::unix::fs::symlink;
        let dir = tempfile::tempdir().unwrap();
        let md = Maildir::open(dir.path().join("md"), "h").unwrap();
        let outside = dir.path().join("outside");
        fs::create_dir_all(outside.join("b/new")).unwrap();
        let root = md.root().to_path_buf();
        // A mailbox that is a link, one whose new/ is, a domain that is.
        fs::create_dir_all(root.join("localhost/bob")).unwrap();
        symlink(outside.join("a"), root.join("localhost/victim")).unwrap();
        symlink(outside.join("b/new"), root.join("localhost/bob/new")).unwrap();
        symlink(outside.join("c"), root.join("example.org")).unwrap();
        for user in ["localhost/victim", "localhost/bob", "example.org/carol"] {
            let err = md.open_sibling(root.join(user)).unwrap_err().to_string();
            assert!(err.contains("symbolic link"), "{user}: {err}");
        }
        assert_eq!(
            fs::read_dir(&outside).unwrap().count(),
            1,
            "made something outside"
        );
        assert_eq!(fs::read_dir(outside.join("b/new")).unwrap().count(), 0);

        // Opened while sound, then its new/ swapped for a link: the open
        // directory keeps taking the mail, and the mailbox is no longer
        // in place, so the next delivery opens it again (and is refused).
        let alice = md.open_sibling(root.join("localhost/alice")).unwrap();
        let tmp = {
            let mut t = md.create(&md.next_id()).unwrap();
            t.write_all(b"Subject: x\n\nbody\n").unwrap();
            t
        };
        assert!(alice.still_in_place());
        fs::rename(root.join("localhost/alice/new"), root.join("localhost/alice/old")).unwrap();
        symlink(outside.join("b/new"), root.join("localhost/alice/new")).unwrap();
        assert!(!alice.still_in_place());
        let name = md.final_name(&tmp);
        alice.link_in(&tmp, &name).unwrap();
        alice.sync_new().unwrap();
        assert!(root.join("localhost/alice/old").join(&name).is_file());
        assert_eq!(fs::read_dir(outside.join("b/new")).unwrap().count(), 0);
        alice.remove_new(&root.join("localhost/alice/new").join(&name));
        assert!(!root.join("localhost/alice/old").join(&name).exists());
        assert!(md.open_sibling(root.join("localhost/alice")).is_err());
    }

    #[test]
    fn clean_tmp_sweeps_per_recipient_mailboxes_too() {
        let dir = tempfile::tempdir().unwrap();
        let md = Maildir::open(dir.path(), "h").unwrap();
        let alice = md.open_sibling(dir.path().join("d.test/alice")).unwrap();
        fs::write(alice.root().join("tmp/left-by-a-crash"), b"x").unwrap();
        fs::write(alice.root().join("new/kept"), b"x").unwrap();
        // A stale file two days old, and a fresh one.
        let stale = dir.path().join("tmp/stale");
        fs::write(&stale, b"x").unwrap();
        let two_days = std::time::Duration::from_secs(48 * 3600);
        let long_ago = SystemTime::now() - two_days;
        for f in [&stale, &alice.root().join("tmp/left-by-a-crash")] {
            File::options()
                .write(true)
                .open(f)
                .unwrap()
                .set_modified(long_ago)
                .unwrap();
        }
        fs::write(alice.root().join("tmp/fresh"), b"x").unwrap();
        let removed = md.clean_tmp(std::time::Duration::from_secs(36 * 3600)).unwrap();
        assert_eq!(removed, 2);
        assert!(!stale.exists());
        assert!(!alice.root().join("tmp/left-by-a-crash").exists());
        assert!(alice.root().join("tmp/fresh").exists());
        assert!(alice.root().join("new/kept").exists());
    }

    #[test]
    fn open_fails_when_root_is_a_file() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("file");
        fs::write(&f, b"x").unwrap();
        assert!(Maildir::open(&f, "h").is_err());
    }
}
