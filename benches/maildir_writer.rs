//! The Maildir writer: durable deliveries per second (with fsync).
//!
//! `single` is one message at a time through the plain writer:
//! `Maildir::create`, write 1 KiB, `Maildir::commit` (fdatasync, rename,
//! fsync of `new/`). `group_commit/N` is N tokio tasks delivering at once
//! through the server's `GroupCommit` pipeline, which shares flushes
//! between them. The Maildir is in `target/tmp`, on the file system of
//! the repository; `new/` is emptied between samples (untimed). These
//! measure the disk as much as the code: compare runs of one sitting only.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, SamplingMode, Throughput};
use maildoor::store::{GroupCommit, Maildir};

const BODY: [u8; 1024] = [b'x'; 1024];

fn empty_new(md: &Maildir) {
    if let Ok(entries) = std::fs::read_dir(md.root().join("new")) {
        for e in entries.flatten() {
            let _ = std::fs::remove_file(e.path());
        }
    }
}

fn writer(c: &mut Criterion) {
    let dir = tempfile::Builder::new()
        .prefix("maildir-bench")
        .tempdir_in(env!("CARGO_TARGET_TMPDIR"))
        .expect("temporary directory in target/tmp");
    let md = Arc::new(Maildir::open(dir.path().join("single"), "bench").expect("maildir"));
    let mut g = c.benchmark_group("maildir_writer");
    g.sample_size(10);
    g.sampling_mode(SamplingMode::Flat);
    g.warm_up_time(Duration::from_millis(500));
    g.measurement_time(Duration::from_secs(4));
    g.throughput(Throughput::Elements(1));

    g.bench_function("single", |b| {
        b.iter_custom(|iters| {
            let start = Instant::now();
            for _ in 0..iters {
                let id = md.next_id();
                let mut tmp = md.create(&id).expect("create");
                tmp.write_all(&BODY).expect("write");
                md.commit(tmp).expect("commit");
            }
            let took = start.elapsed();
            empty_new(&md);
            took
        })
    });

    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let gc = Arc::new(GroupCommit::start().expect("group commit"));
    for tasks in [1u64, 20] {
        let md = Arc::new(Maildir::open(dir.path().join(format!("group{tasks}")), "bench").expect("maildir"));
        g.bench_with_input(BenchmarkId::new("group_commit", tasks), &tasks, |b, &tasks| {
            b.iter_custom(|iters| {
                let next = Arc::new(AtomicU64::new(0));
                let start = Instant::now();
                rt.block_on(async {
                    let handles: Vec<_> = (0..tasks)
                        .map(|_| {
                            let (md, gc, next) = (Arc::clone(&md), Arc::clone(&gc), Arc::clone(&next));
                            tokio::spawn(async move {
                                while next.fetch_add(1, Ordering::Relaxed) < iters {
                                    let id = md.next_id();
                                    let md2 = Arc::clone(&md);
                                    gc.commit(md2, id, None, BODY.to_vec(), Vec::new())
                                        .await
                                        .expect("commit");
                                }
                            })
                        })
                        .collect();
                    for h in handles {
                        h.await.expect("task");
                    }
                });
                let took = start.elapsed();
                empty_new(&md);
                took
            })
        });
    }
    g.finish();
}

criterion_group!(benches, writer);
criterion_main!(benches);
