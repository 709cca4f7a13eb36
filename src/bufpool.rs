//! Big buffers kept for the next message instead of given back.
//!
//! A big message passes through a few buffers of a few hundred KiB (the
//! session's large read buffer, the chunks on their way to `tmp/`). Freed
//! after each message, the allocator hands such blocks back to the kernel
//! (`munmap`, or `madvise` when it trims an arena), and the next message
//! pays a page fault and a page of zeros for every 4 KiB it touches:
//! 21,000-24,000 faults for 200 one-MiB messages, a tenth of the
//! server's CPU time in `perf`. A pool keeps a few of them, so that a
//! steady stream of big messages reuses the same memory. It holds at most
//! `keep` buffers, which bounds what it can hold on to when the stream
//! stops.

use std::sync::Mutex;

/// Buffers of one size class.
#[derive(Debug)]
pub(crate) struct BufPool {
    /// The capacity of every buffer handed out.
    size: usize,
    /// Most buffers kept while unused.
    keep: usize,
    free: Mutex<Vec<Vec<u8>>>,
}

impl BufPool {
    /// A pool of buffers of `size` octets that keeps at most `keep`.
    pub(crate) const fn new(size: usize, keep: usize) -> Self {
        BufPool {
            size,
            keep,
            free: Mutex::new(Vec::new()),
        }
    }

    /// A buffer with room for at least the pool's size. Its length is
    /// whatever it was given back with (its octets are initialised, and
    /// stale): callers that append clear it first.
    pub(crate) fn take(&self) -> Vec<u8> {
        let kept = self.free.lock().unwrap_or_else(|p| p.into_inner()).pop();
        kept.unwrap_or_else(|| Vec::with_capacity(self.size))
    }

    /// Takes `buf` back for a later [`BufPool::take`], if it is of this
    /// pool's size (a small one, or one that grew past a quarter more, is
    /// simply freed: what the pool holds stays within `keep` × 1.25 ×
    /// size) and the pool is not full.
    pub(crate) fn give(&self, buf: Vec<u8>) {
        if buf.capacity() < self.size || buf.capacity() > self.size + self.size / 4 {
            return;
        }
        let mut free = self.free.lock().unwrap_or_else(|p| p.into_inner());
        if free.len() < self.keep {
            free.push(buf);
        }
    }

    /// Buffers kept now (tests).
    #[cfg(test)]
    pub(crate) fn kept(&self) -> usize {
        self.free.lock().unwrap_or_else(|p| p.into_inner()).len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_buffer_given_back_is_the_next_one_taken() {
        let pool = BufPool::new(1024, 2);
        let mut a = pool.take();
        assert!(a.capacity() >= 1024);
        a.extend_from_slice(b"abc");
        let at = a.as_ptr();
        pool.give(a);
        let b = pool.take();
        assert_eq!(b.as_ptr(), at, "not reused");
        // Its contents come along: a caller that appends clears it.
        assert_eq!(b, b"abc");
        assert_eq!(pool.kept(), 0);
    }

    #[test]
    fn only_buffers_of_its_size_are_kept_and_only_so_many() {
        let pool = BufPool::new(1024, 2);
        pool.give(Vec::with_capacity(100));
        pool.give(Vec::with_capacity(1281));
        assert_eq!(pool.kept(), 0, "kept a buffer of another size");
        for _ in 0..3 {
            pool.give(Vec::with_capacity(1024));
        }
        assert_eq!(pool.kept(), 2);
        // Emptied, the pool makes new ones.
        for _ in 0..3 {
            assert!(pool.take().capacity() >= 1024);
        }
        assert_eq!(pool.kept(), 0);
    }
}
