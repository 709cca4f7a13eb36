//! Unit tests of the Maildir reader: scanning, id matching, marking seen.

use super::*;

fn maildir() -> (tempfile::TempDir, Mailbox) {
    let dir = tempfile::tempdir().unwrap();
    for sub in ["cur", "new", "tmp"] {
        fs::create_dir(dir.path().join(sub)).unwrap();
    }
    let mb = Mailbox::open(dir.path()).unwrap();
    (dir, mb)
}

fn put(dir: &Path, sub: &str, name: &str, body: &str) {
    fs::write(dir.join(sub).join(name), body).unwrap();
}

#[test]
fn scan_orders_by_delivery_and_skips_dot_files_and_tmp() {
    let (dir, mb) = maildir();
    put(dir.path(), "new", "1700000002.M5P1Q0.h,S=3", "A: b\n\n");
    put(dir.path(), "cur", "1700000001.M9P1Q3.h,S=3:2,S", "A: b\n\n");
    put(dir.path(), "new", "1700000002.M5P1Q1.h,S=3", "A: b\n\n");
    put(dir.path(), "new", ".hidden", "A: b\n\n");
    put(dir.path(), "tmp", "1600000000.M1P1Q0.h", "A: b\n\n");
    let e = mb.scan().unwrap();
    let ids: Vec<&str> = e.iter().map(|e| e.name.queue_id.as_str()).collect();
    assert_eq!(
        ids,
        ["1700000001.M9P1Q3", "1700000002.M5P1Q0", "1700000002.M5P1Q1"]
    );
    let status: Vec<&str> = e.iter().map(Entry::status).collect();
    assert_eq!(status, ["seen", "new", "new"]);
    assert!(e.iter().all(|e| e.short.len() >= name::SHORT_MIN));
}

#[test]
fn two_hosts_sharing_a_queue_id_get_short_ids_of_their_own() {
    let (dir, mb) = maildir();
    put(dir.path(), "new", "1733200001.M1P1Q1.hostA,S=30", "A: b\n\n");
    put(dir.path(), "cur", "1733200001.M1P1Q1.hostB,S=35:2,S", "A: b\n\n");
    let e = mb.scan().unwrap();
    assert_ne!(e[0].short, e[1].short);
    for one in &e {
        assert_eq!(one.short.len(), name::SHORT_MIN, "{}", one.short);
        assert_eq!(resolve_in(&e, &one.short).unwrap().name.file, one.name.file);
    }
    // The short id stays when the message is read (new/ to cur/).
    let before = e.iter().find(|x| x.folder == Folder::New).unwrap().short.clone();
    let read = mb
        .mark_seen(e.iter().find(|x| x.folder == Folder::New).unwrap())
        .unwrap();
    let after = mb.scan().unwrap();
    let moved = after.iter().find(|x| x.path == read).unwrap();
    assert_eq!(moved.short, before);
}

#[test]
fn not_a_maildir() {
    let dir = tempfile::tempdir().unwrap();
    fs::create_dir(dir.path().join("new")).unwrap();
    let err = Mailbox::open(dir.path()).unwrap_err();
    assert!(matches!(err, MailboxError::NotMaildir(_)));
    assert!(err.to_string().contains("is not a Maildir"), "{err}");
}

#[test]
fn ids_resolve_exactly_by_prefix_or_short_id() {
    let (dir, mb) = maildir();
    put(dir.path(), "new", "1700000000.M1P7Q1.h,S=1", "A: b\n\n");
    put(dir.path(), "new", "1700000000.M1P7Q10.h,S=1", "A: b\n\n");
    put(dir.path(), "cur", "1700000000.M2P7Q2.h,S=1:2,S", "A: b\n\n");
    let e = mb.scan().unwrap();
    // Exact queue id wins over being a prefix of another.
    assert_eq!(
        resolve_in(&e, "1700000000.M1P7Q1").unwrap().name.queue_id,
        "1700000000.M1P7Q1"
    );
    assert_eq!(
        resolve_in(&e, "1700000000.M1P7Q10").unwrap().name.queue_id,
        "1700000000.M1P7Q10"
    );
    assert_eq!(
        resolve_in(&e, "1700000000.M2").unwrap().name.queue_id,
        "1700000000.M2P7Q2"
    );
    // A file name or a path (as mlist prints) works too.
    let by_path = format!("{}/cur/1700000000.M2P7Q2.h,S=1:2,S", dir.path().display());
    assert_eq!(
        resolve_in(&e, &by_path).unwrap().name.queue_id,
        "1700000000.M2P7Q2"
    );
    for entry in &e {
        let found = resolve_in(&e, &entry.short).unwrap();
        assert_eq!(found.name.queue_id, entry.name.queue_id);
        let upper = entry.short.to_uppercase();
        assert_eq!(resolve_in(&e, &upper).unwrap().name.queue_id, entry.name.queue_id);
    }
    match resolve_in(&e, "1700000000.M1") {
        Err(err @ MailboxError::AmbiguousId { .. }) => {
            assert!(!err.to_string().contains("more"), "{err}");
            let MailboxError::AmbiguousId {
                candidates, matches, ..
            } = err
            else {
                unreachable!()
            };
            assert_eq!((candidates.len(), matches), (2, 2));
        }
        other => panic!("{other:?}"),
    }
    // Many matches: a few are named, and the error says how many in all.
    let many = MailboxError::AmbiguousId {
        id: "17".into(),
        candidates: vec!["a".into(); 5],
        matches: 14,
    };
    assert!(
        many.to_string().ends_with("a, a, a, a, a and 9 more (14 in all)"),
        "{many}"
    );
    assert!(matches!(resolve_in(&e, "nope"), Err(MailboxError::UnknownId(_))));
    assert!(matches!(resolve_in(&e, ""), Err(MailboxError::UnknownId(_))));

    // Two files with one queue id (a copy in new/, one in cur/): each is
    // reached by its file name, or by its folder and file, and the
    // ambiguity error names them apart.
    let (dir, mb) = maildir();
    put(dir.path(), "new", "1700000000.M1P1Q1.h", "Subject: new copy\n\n");
    put(
        dir.path(),
        "cur",
        "1700000000.M1P1Q1.h:2,S",
        "Subject: cur copy\n\n",
    );
    let e = mb.scan().unwrap();
    for (id, folder) in [
        ("1700000000.M1P1Q1.h", Folder::New),
        ("new/1700000000.M1P1Q1.h", Folder::New),
        ("1700000000.M1P1Q1.h:2,S", Folder::Cur),
        ("cur/1700000000.M1P1Q1.h", Folder::Cur),
        ("/x/md/cur/1700000000.M1", Folder::Cur),
    ] {
        assert_eq!(resolve_in(&e, id).unwrap().folder, folder, "{id}");
    }

    match resolve_in(&e, "1700000000.M1P1Q1") {
        Err(MailboxError::AmbiguousId { mut candidates, .. }) => {
            candidates.sort();
            assert_eq!(
                candidates,
                ["cur/1700000000.M1P1Q1.h:2,S", "new/1700000000.M1P1Q1.h"]
            )
        }
        other => panic!("{other:?}"),
    }
    // A path printed before the message was read still finds it in cur/.
    let (dir, mb) = maildir();
    put(
        dir.path(),
        "cur",
        "1700000000.M2P1Q1.h,S=5:2,S",
        "Subject: read\n\n",
    );
    let e = mb.scan().unwrap();
    let found = resolve_in(&e, "/md/new/1700000000.M2P1Q1.h,S=5").unwrap();
    assert_eq!(found.folder, Folder::Cur);
    assert!(matches!(resolve_in(&e, "/"), Err(MailboxError::UnknownId(_))));
}

#[test]
fn mark_seen_moves_new_to_cur_and_keeps_flags() {
    let (dir, mb) = maildir();
    put(dir.path(), "new", "1.M1P1Q1.h,S=6", "A: b\n\n");
    put(dir.path(), "cur", "1.M1P1Q2.h,S=6:2,FR", "A: b\n\n");
    put(dir.path(), "cur", "1.M1P1Q3.h,S=6:2,S", "A: b\n\n");
    let e = mb.scan().unwrap();
    let moved: Vec<PathBuf> = e.iter().map(|e| mb.mark_seen(e).unwrap()).collect();
    let names: Vec<String> = moved
        .iter()
        .map(|p| p.strip_prefix(dir.path()).unwrap().display().to_string())
        .collect();
    assert_eq!(
        names,
        [
            "cur/1.M1P1Q1.h,S=6:2,S",
            "cur/1.M1P1Q2.h,S=6:2,FRS",
            "cur/1.M1P1Q3.h,S=6:2,S"
        ]
    );
    assert!(fs::read_dir(dir.path().join("new")).unwrap().next().is_none());
    // Marking again changes nothing. A stale entry (another reader marked
    // it seen first) is seen, not an error; deleting it is an error, not a
    // panic.
    let e2 = mb.scan().unwrap();
    assert!(e2.iter().all(|e| mb.mark_seen(e).is_ok()));
    assert_eq!(mb.mark_seen(&e[0]).unwrap(), moved[0]);
    assert!(mb.delete(&e[0]).is_err());
    // Read by `Row` or `show` after such a move, it is found in cur/.
    let found = Mailbox::moved(&e[0]).unwrap();
    assert_eq!((found.folder, &found.path), (Folder::Cur, &moved[0]));
    assert!(crate::mailbox::list::Row::read(&e[0]).is_some());
    // Another reader gave it other flags (as Dovecot and mutt do): it is
    // found under its new name, and marked seen there.
    let flagged = dir.path().join("cur/1.M1P1Q1.h,S=6:2,RS");
    fs::rename(&moved[0], &flagged).unwrap();
    assert_eq!(mb.mark_seen(&e[0]).unwrap(), flagged);
    let unseen = dir.path().join("cur/1.M1P1Q1.h,S=6:2,");
    fs::rename(&flagged, &unseen).unwrap();
    let seen = dir.path().join("cur/1.M1P1Q1.h,S=6:2,S");
    assert_eq!(mb.mark_seen(&e[0]).unwrap(), seen);
    assert!(seen.is_file() && !unseen.exists());
}

#[test]
fn per_user_maildir_or_shared() {
    let (dir, _) = maildir();
    let (_, own) = Mailbox::open_for_user(dir.path(), "bob@localhost", None, &[]).unwrap();
    assert!(!own);
    let user_dir = dir.path().join("localhost").join("bob");
    for sub in ["cur", "new", "tmp"] {
        fs::create_dir_all(user_dir.join(sub)).unwrap();
    }
    let (mb, own) = Mailbox::open_for_user(dir.path(), "<Bob@LOCALHOST>", None, &[]).unwrap();
    assert!(own);
    assert_eq!(mb.root(), user_dir);
    // With the server's recipient delimiter, bob+tag reads bob's Maildir;
    // without it there is no such mailbox.
    let (mb, own) = Mailbox::open_for_user(dir.path(), "Bob+Tag@localhost", Some('+'), &[]).unwrap();
    assert!(own);
    assert_eq!(mb.root(), user_dir);
    let (_, own) = Mailbox::open_for_user(dir.path(), "Bob+Tag@localhost", None, &[]).unwrap();
    assert!(!own);
    // Addresses the server takes whose local part names no directory:
    // no Maildir of their own (their mail is filtered), never a path.
    for odd in ["a/b@c", "\"../x\"@localhost", "\"d\\\\e\"@localhost"] {
        let found = Mailbox::locate_user(dir.path(), odd, Some('+'), &[]).unwrap();
        assert_eq!((found.found, found.expected), (None, None), "{odd}");
    }
    // A quoted local part that needs no quotes is the same mailbox.
    let (mb, own) = Mailbox::open_for_user(dir.path(), "\"Bob\"@localhost", None, &[]).unwrap();
    assert!(own);
    assert_eq!(mb.root(), user_dir);
    for bad in ["bob", "../x@localhost", "a@..", "@localhost", "a@b/c", "a@."] {
        assert!(
            matches!(
                Mailbox::open_for_user(dir.path(), bad, Some('+'), &[]),
                Err(MailboxError::BadAddress(_))
            ),
            "{bad}"
        );
    }
}

#[test]
fn a_user_maildir_is_expected_where_the_server_will_make_it() {
    let (dir, _) = maildir();
    let root = dir.path();
    let bob = root.join("example.org").join("bob");
    let at = |user: &str, delimiter| Mailbox::locate_user(root, user, delimiter, &[]).unwrap();
    // Not there yet: expected at the lower-case local part, cut at the
    // delimiter, as the server names it.
    for (user, delimiter) in [
        ("bob@example.org", None),
        ("<Bob@Example.ORG>", None),
        ("Bob+News@example.org", Some('+')),
    ] {
        let u = at(user, delimiter);
        assert_eq!(u.found, None, "{user}");
        assert_eq!(u.expected.as_deref(), Some(bob.as_path()), "{user}");
    }
    assert_eq!(
        at("bob+news@example.org", None).expected,
        Some(root.join("example.org").join("bob+news"))
    );
    // A local part that the delimiter cuts to nothing names no mailbox.
    assert_eq!(at("+news@example.org", Some('+')).expected, None);
    fs::create_dir_all(bob.join("new")).unwrap();
    assert_eq!(at("Bob+News@example.org", Some('+')).found, Some(bob.clone()));
    // open_for_user reads what locate_user found, once it is a Maildir.
    assert!(Mailbox::open_for_user(root, "bob@example.org", None, &[]).is_err());
    for sub in ["cur", "tmp"] {
        fs::create_dir(bob.join(sub)).unwrap();
    }
    let (mb, own) = Mailbox::open_for_user(root, "bob@example.org", None, &[]).unwrap();
    assert!(own);
    assert_eq!(mb.root(), bob);
}

#[test]
fn postmaster_and_address_literals_are_found_under_the_first_domain() {
    let (dir, _) = maildir();
    let root = dir.path();
    let at = |user: &str| {
        Mailbox::locate_user(root, user, None, &["example.org".into(), "bücher.example".into()])
            .unwrap()
            .expected
    };
    let postmaster = root.join("example.org").join("postmaster");
    for user in [
        "postmaster",
        "<Postmaster>",
        "postmaster@example.org",
        "postmaster@[127.0.0.1]",
    ] {
        assert_eq!(at(user).as_deref(), Some(postmaster.as_path()), "{user}");
    }
    assert_eq!(at("bob@[IPv6:::1]"), Some(root.join("example.org").join("bob")));
    // Named domains are their own, whatever the first one is.
    assert_eq!(at("bob@other.test"), Some(root.join("other.test").join("bob")));
    // A local domain's directory is named as configured, in whichever
    // form the address writes it.
    for user in ["bob@xn--bcher-kva.example", "bob@BÜCHER.example"] {
        assert_eq!(at(user), Some(root.join("bücher.example").join("bob")), "{user}");
    }
    // Without the first domain, postmaster has no Maildir to name.
    assert_eq!(
        Mailbox::locate_user(root, "postmaster", None, &[])
            .unwrap()
            .expected,
        None
    );
}

#[test]
fn header_block_stops_at_the_empty_line() {
    let (dir, _) = maildir();
    put(dir.path(), "new", "m", "A: b\r\nC: d\r\n\r\nbody\n");
    assert_eq!(
        read_header_block(&dir.path().join("new/m")).unwrap(),
        b"A: b\r\nC: d\r\n\r\n"
    );
    put(dir.path(), "new", "n", "A: b");
    assert_eq!(read_header_block(&dir.path().join("new/n")).unwrap(), b"A: b");
}
