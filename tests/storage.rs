//! Storage failures seen from the client: a full disk, a read-only and a
//! missing Maildir each get a 4xx, leave nothing half-written, and the
//! server delivers again as soon as the cause is gone, without a restart.
//! The full-disk and read-only cases need a small tmpfs, so they run only
//! where the test may mount one (root); elsewhere they skip and say so.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::TestServer;

/// A tmpfs mounted for one test; unmounted on drop.
struct Tmpfs {
    path: PathBuf,
}

impl Tmpfs {
    fn mount(path: &Path, size: &str) -> Option<Tmpfs> {
        std::fs::create_dir_all(path).ok()?;
        let ok = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(path)
            .stderr(std::process::Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if !ok {
            eprintln!("SKIP: cannot mount a tmpfs here (needs root); full-disk and read-only cases not run");
            return None;
        }
        Some(Tmpfs {
            path: path.to_path_buf(),
        })
    }

    fn remount(&self, opt: &str) {
        let st = Command::new("mount")
            .args(["-o", &format!("remount,{opt}")])
            .arg(&self.path)
            .status()
            .unwrap();
        assert!(st.success());
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.path).status();
    }
}

#[test]
fn full_disk_and_read_only_maildir() {
    let base = tempfile::tempdir().unwrap();
    let mnt = base.path().join("mnt");
    let Some(fs) = Tmpfs::mount(&mnt, "1m") else {
        return;
    };
    let srv = TestServer::with(|s| s.maildir = mnt.join("maildir"));
    // Fill the file system to the last block.
    let filler = mnt.join("filler");
    {
        use std::io::Write;
        let mut f = std::fs::File::create(&filler).unwrap();
        let block = vec![0u8; 4096];
        while f.write_all(&block).is_ok() {}
    }
    let body = "x".repeat(100_000);
    let r = srv.client().deliver("a@b.c", &["u@localhost"], body.as_bytes());
    assert!(r.text.starts_with("452 4.3.1"), "{}", r.text);
    assert!(srv.files("tmp").is_empty(), "tmp file left behind");
    assert!(srv.files("new").is_empty());
    // Room again: delivery resumes without a restart.
    std::fs::remove_file(&filler).unwrap();
    let r = srv.client().deliver("a@b.c", &["u@localhost"], body.as_bytes());
    assert_eq!(r.code, 250, "{}", r.text);
    assert_eq!(srv.files("new").len(), 1);

    // Read-only: 451, then fine again once writable.
    fs.remount("ro");
    let r = srv.client().deliver("a@b.c", &["u@localhost"], b"ro");
    assert!(r.text.starts_with("451 4.3.0"), "{}", r.text);
    fs.remount("rw");
    let r = srv.client().deliver("a@b.c", &["u@localhost"], b"rw");
    assert_eq!(r.code, 250, "{}", r.text);
    assert_eq!(srv.files("new").len(), 2);
    assert!(srv.files("tmp").is_empty());
}

#[test]
fn missing_maildir() {
    let srv = TestServer::start();
    std::fs::remove_dir_all(srv.maildir()).unwrap();
    let r = srv.client().deliver("a@b.c", &["u@localhost"], b"gone");
    assert!(r.text.starts_with("451 4.3.0"), "{}", r.text);
    // The session and the server go on.
    let mut c = srv.client();
    assert_eq!(c.reply().code, 220);
    assert_eq!(c.cmd("NOOP").code, 250);
    for sub in ["tmp", "new", "cur"] {
        std::fs::create_dir_all(srv.maildir().join(sub)).unwrap();
    }
    let r = srv.client().deliver("a@b.c", &["u@localhost"], b"back");
    assert_eq!(r.code, 250, "{}", r.text);
}
