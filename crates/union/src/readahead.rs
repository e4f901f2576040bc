//! Reading ahead of sequential readers (served reads, copy-ups), deeper than the kernel's
//! read-ahead, and dropping from the layer's page cache what they have left behind.
//!
//! Ahead: the kernel reads ahead of a file read in sequence one window at a time, so the
//! disk has little queued; a virtual disk gives much more with more in flight. Cold 1 GiB
//! copies here: 1.2-2.0 s with the kernel's read-ahead alone, 1.0 s with WILLNEED advice
//! kept 16 MiB ahead. The advice only starts the reads, the data lands in the page cache.
//!
//! Behind: a file read through FUSE is cached twice, in the mount's page cache and in the
//! layer's, and its reply is a copy into pages the kernel has just allocated for the
//! mount. On a virtual machine whose host takes back the memory the guest frees (free
//! page reporting), the first touch of such a page costs a fault in the host: the copies
//! of a cold 1 GiB read took 2/3 of two CPUs (perf: `fuse_copy_folio`), 3-7 s once the
//! host had reclaimed the free memory. Dropped behind the reader, the layer's pages go
//! back to the allocator and come again as the next pages the read needs, already
//! backed: the copies fell to 1/8, the read to 0.83-0.89 s from 1.2-1.9. What the mount
//! caches is the file; the layer's second copy of a big file read once is seldom read
//! again (small ones stay: see DROP_AFTER).
use std::os::fd::RawFd;

/// How far ahead of the reader the advice reaches.
const LEAD: u64 = 16 << 20;
/// How much one advice asks for (each costs a system call that queues the reads).
const CHUNK: u64 = 8 << 20;
/// A stream this long is sequential enough to read ahead of and drop behind.
const START: u64 = 512 << 10;
/// Reads this far behind or beyond the end of the last one still belong to its stream:
/// FUSE's read-ahead requests reach the serving threads slightly out of order.
const SLACK: u64 = 2 << 20;
/// A stream this long is a big file read once, whose pages behind it are dropped. Below
/// (binaries, libraries: what the containers of one image read again) they stay, for
/// the next mount of the layer to find in the page cache.
const DROP_AFTER: u64 = 64 << 20;
/// The layer's pages are dropped this far behind the reader (a late request of the
/// stream still finds its pages), in whole folios.
const BEHIND: u64 = 2 << 20;
/// The largest folio the page cache makes (2 MiB on x86-64): pages are dropped in whole
/// units of it, as a range that covers part of a folio drops nothing of it.
pub const FOLIO: u64 = 2 << 20;

/// The read-ahead state of one open file.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ReadAhead {
    /// Where the current sequential stream started.
    start: u64,
    /// The furthest end read in the stream.
    end: u64,
    /// The end of what has been advised.
    advised: u64,
    /// The end of what has been dropped.
    dropped: u64,
}

/// What to do after a read: ranges (offset, length) to read ahead and to drop.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Advice {
    pub ahead: Option<(u64, u64)>,
    pub behind: Option<(u64, u64)>,
}

impl ReadAhead {
    /// Records a read of LEN bytes at OFF (LEN: what it returned, ASKED: what was asked;
    /// a short read is the end of the file and reads nothing ahead).
    pub fn after_read(&mut self, off: u64, len: u64, asked: u64) -> Advice {
        let end = off + len;
        if off + SLACK < self.end || off > self.end + SLACK {
            // A new stream: what came before it is nobody's to drop.
            *self = ReadAhead {
                start: off,
                end,
                advised: end,
                dropped: off.next_multiple_of(FOLIO),
            };
            return Advice::default();
        }
        self.end = self.end.max(end);
        if self.end - self.start < START {
            return Advice::default();
        }
        let mut advice = Advice::default();
        if len == asked && self.end + LEAD > self.advised {
            let from = self.advised.max(self.end);
            self.advised = from + CHUNK;
            advice.ahead = Some((from, CHUNK));
        }
        let upto = self.end.saturating_sub(BEHIND) / FOLIO * FOLIO;
        if self.end - self.start >= DROP_AFTER && upto > self.dropped {
            advice.behind = Some((self.dropped, upto - self.dropped));
            self.dropped = upto;
        }
        advice
    }
}

impl Advice {
    /// Starts reading ahead in FD and drops its pages behind, as advised. Errors are
    /// ignored: advice is a hint, and a read reports what matters. Dropping leaves dirty
    /// and mapped pages alone.
    pub fn apply(self, fd: RawFd) {
        for (range, advice) in [
            (self.ahead, libc::POSIX_FADV_WILLNEED),
            (self.behind, libc::POSIX_FADV_DONTNEED),
        ] {
            if let Some((off, len)) = range {
                // SAFETY: no memory is passed.
                unsafe { libc::posix_fadvise(fd, off as i64, len as i64, advice) };
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const K128: u64 = 128 << 10;

    /// Reads 128 KiB at each offset, returning the advice the reads gave.
    fn reads(ra: &mut ReadAhead, offs: impl IntoIterator<Item = u64>) -> Vec<Advice> {
        offs.into_iter()
            .map(|o| ra.after_read(o, K128, K128))
            .collect()
    }

    fn aheads(advice: &[Advice]) -> Vec<(u64, u64)> {
        advice.iter().filter_map(|a| a.ahead).collect()
    }

    fn behinds(advice: &[Advice]) -> Vec<(u64, u64)> {
        advice.iter().filter_map(|a| a.behind).collect()
    }

    #[test]
    fn a_sequential_reader_is_kept_lead_ahead_once_its_stream_is_long_enough() {
        let mut ra = ReadAhead::default();
        let ahead = aheads(&reads(&mut ra, (0..512).map(|i| i * K128))); // 64 MiB
        // Nothing until 512 KiB were read, then chunks back to back.
        assert_eq!(ahead[0], (START, CHUNK));
        for w in ahead.windows(2) {
            assert_eq!(w[1].0, w[0].0 + w[0].1);
        }
        // Never more than LEAD + CHUNK ahead, and at least LEAD ahead of the end.
        assert!(ra.advised <= ra.end + LEAD + CHUNK);
        assert!(ra.advised > ra.end + LEAD - CHUNK);
    }

    #[test]
    fn what_a_reader_of_a_big_file_left_behind_is_dropped_in_whole_folios() {
        let mut ra = ReadAhead::default();
        let advice = reads(&mut ra, (0..1024).map(|i| i * K128)); // 128 MiB
        // Nothing while the stream is shorter than DROP_AFTER.
        let first = advice.iter().position(|a| a.behind.is_some()).unwrap() as u64;
        assert_eq!((first + 1) * K128, DROP_AFTER);
        let behind = behinds(&advice);
        // Back to back from the start, whole folios, never within BEHIND of the reader.
        assert_eq!(behind[0].0, 0);
        for w in behind.windows(2) {
            assert_eq!(w[1].0, w[0].0 + w[0].1);
        }
        assert!(
            behind
                .iter()
                .all(|&(o, l)| o % FOLIO == 0 && l % FOLIO == 0)
        );
        let (o, l) = *behind.last().unwrap();
        assert_eq!(o + l, ((128 << 20) - BEHIND) / FOLIO * FOLIO);
    }

    #[test]
    fn a_stream_started_mid_file_drops_nothing_before_it() {
        let mut ra = ReadAhead::default();
        let from = (100 << 20) + 3 * K128;
        let behind = behinds(&reads(&mut ra, (0..1024).map(|i| from + i * K128)));
        assert!(behind[0].0 >= from);
        assert_eq!(behind[0].0 % FOLIO, 0);
    }

    #[test]
    fn reordered_reads_stay_in_their_stream() {
        let mut ra = ReadAhead::default();
        let order = [0, 2, 1, 3, 5, 4, 6, 7, 9, 8].map(|i| i * K128);
        let advice = reads(&mut ra, order);
        assert_eq!(ra.start, 0);
        assert!(!aheads(&advice).is_empty());
    }

    #[test]
    fn random_and_short_reads_advise_nothing() {
        let mut ra = ReadAhead::default();
        let offs = [7u64, 300, 3, 900, 12, 500].map(|i| i * (1 << 20));
        assert!(reads(&mut ra, offs).iter().all(|a| *a == Advice::default()));
        // The end of a file: a short read reads nothing ahead.
        let mut ra = ReadAhead::default();
        reads(&mut ra, (0..8).map(|i| i * K128));
        assert_eq!(ra.after_read(8 * K128, 100, K128).ahead, None);
    }

    #[test]
    fn a_jump_starts_a_new_stream() {
        let mut ra = ReadAhead::default();
        reads(&mut ra, (0..64).map(|i| i * K128));
        let advice = reads(&mut ra, (0..8).map(|i| (1 << 30) + i * K128));
        assert_eq!(ra.start, 1 << 30);
        assert!(aheads(&advice).iter().all(|&(o, _)| o >= (1 << 30) + START));
        assert!(behinds(&advice).iter().all(|&(o, _)| o >= 1 << 30));
    }
}
