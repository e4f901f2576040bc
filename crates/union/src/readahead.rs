//! Reading ahead of a sequential reader, deeper than the kernel's read-ahead.
//!
//! The kernel reads ahead of a file read in sequence one window at a time (a few MiB), so
//! the disk has little queued; a virtual disk gives much more with more in flight. Cold
//! 1 GiB reads here: 0.7-2.2 s with the kernel's read-ahead alone, 0.53-0.66 s with
//! WILLNEED advice kept 16 MiB ahead; copies (copy-up) 1.2-2.0 s against 1.0 s. The
//! advice only starts the reads, the data lands in the page cache as usual.
use std::os::fd::RawFd;

/// How far ahead of the reader the advice reaches.
const LEAD: u64 = 16 << 20;
/// How much one advice asks for (each costs a system call that queues the reads).
const CHUNK: u64 = 8 << 20;
/// A stream this long is sequential enough to read ahead of.
const START: u64 = 512 << 10;
/// Reads this far behind or beyond the end of the last one still belong to its stream:
/// FUSE's read-ahead requests reach the serving threads slightly out of order.
const SLACK: u64 = 2 << 20;

/// The read-ahead state of one open file.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ReadAhead {
    /// Where the current sequential stream started.
    start: u64,
    /// The furthest end read in the stream.
    end: u64,
    /// The end of what has been advised.
    advised: u64,
}

impl ReadAhead {
    /// Records a read of LEN bytes at OFF (LEN: what it returned; a short read is the end
    /// of the file and advises nothing) and returns the range, (offset, length), to
    /// advise next, if any.
    pub fn after_read(&mut self, off: u64, len: u64, asked: u64) -> Option<(u64, u64)> {
        let end = off + len;
        if off + SLACK < self.end || off > self.end + SLACK {
            *self = ReadAhead {
                start: off,
                end,
                advised: end,
            };
            return None;
        }
        self.end = self.end.max(end);
        if len < asked || self.end - self.start < START || self.end + LEAD <= self.advised {
            return None;
        }
        let from = self.advised.max(self.end);
        self.advised = from + CHUNK;
        Some((from, CHUNK))
    }
}

/// Starts reading (offset, length) of FD into the page cache; errors are ignored (the
/// advice is only a hint, a read reports what matters).
pub fn advise(fd: RawFd, (off, len): (u64, u64)) {
    // SAFETY: no memory is passed.
    unsafe { libc::posix_fadvise(fd, off as i64, len as i64, libc::POSIX_FADV_WILLNEED) };
}

/// Advice for a copy that has reached OFF, reading ahead of it from ADVISED (updated).
pub fn for_copy(off: u64, advised: &mut u64) -> Option<(u64, u64)> {
    if off + LEAD <= *advised {
        return None;
    }
    let from = (*advised).max(off);
    *advised = from + CHUNK;
    Some((from, CHUNK))
}

#[cfg(test)]
mod tests {
    use super::*;

    const K128: u64 = 128 << 10;

    /// Reads 128 KiB at each offset, returning the advice the reads gave.
    fn reads(ra: &mut ReadAhead, offs: impl IntoIterator<Item = u64>) -> Vec<(u64, u64)> {
        offs.into_iter()
            .filter_map(|o| ra.after_read(o, K128, K128))
            .collect()
    }

    #[test]
    fn a_sequential_reader_is_kept_lead_ahead_once_its_stream_is_long_enough() {
        let mut ra = ReadAhead::default();
        let advice = reads(&mut ra, (0..512).map(|i| i * K128)); // 64 MiB
        // Nothing until 512 KiB were read, then chunks back to back.
        assert_eq!(advice[0], (START, CHUNK));
        for w in advice.windows(2) {
            assert_eq!(w[1].0, w[0].0 + w[0].1);
        }
        // Never more than LEAD + CHUNK ahead, and at least LEAD ahead of the end.
        assert!(ra.advised <= ra.end + LEAD + CHUNK);
        assert!(ra.advised > ra.end + LEAD - CHUNK);
    }

    #[test]
    fn reordered_reads_stay_in_their_stream() {
        let mut ra = ReadAhead::default();
        let order = [0, 2, 1, 3, 5, 4, 6, 7, 9, 8].map(|i| i * K128);
        let advice = reads(&mut ra, order);
        assert_eq!(ra.start, 0);
        assert!(!advice.is_empty());
    }

    #[test]
    fn random_and_short_reads_advise_nothing() {
        let mut ra = ReadAhead::default();
        let offs = [7u64, 300, 3, 900, 12, 500].map(|i| i * (1 << 20));
        assert!(reads(&mut ra, offs).is_empty());
        // The end of a file: a short read advises nothing.
        let mut ra = ReadAhead::default();
        reads(&mut ra, (0..8).map(|i| i * K128));
        assert_eq!(ra.after_read(8 * K128, 100, K128), None);
    }

    #[test]
    fn a_jump_starts_a_new_stream() {
        let mut ra = ReadAhead::default();
        reads(&mut ra, (0..64).map(|i| i * K128));
        let advice = reads(&mut ra, (0..8).map(|i| (1 << 30) + i * K128));
        assert_eq!(ra.start, 1 << 30);
        assert!(advice.iter().all(|&(o, _)| o >= (1 << 30) + START));
    }

    #[test]
    fn a_copy_is_advised_ahead_in_chunks() {
        let mut advised = 0;
        let mut got = vec![];
        for off in (0..64u64).map(|i| i << 20) {
            got.extend(for_copy(off, &mut advised));
        }
        assert_eq!(got[0], (0, CHUNK));
        assert!(got.windows(2).all(|w| w[1].0 == w[0].0 + CHUNK));
        assert!(advised >= 63 * (1 << 20) + LEAD);
    }
}
