//! Writing back a file written in sequence while it is being written.
//!
//! Through FUSE a file reaches the page cache at the pace of the daemon's copies, and the
//! kernel starts writing it back only past its dirty thresholds (a tenth of memory) or at
//! fsync: the disk idles while the data comes, then fsync waits for all of it. Started
//! behind the writer, the write-back overlaps the copies.
use std::os::fd::RawFd;

/// A stream this long is one to write back behind.
const START: u64 = 8 << 20;
/// Write-back is started for this much at a time.
const CHUNK: u64 = 8 << 20;

/// The write-behind state of one open file.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct WriteBehind {
    /// Where the current sequential stream started.
    start: u64,
    /// The end of the last write.
    end: u64,
    /// The end of what write-back was started for.
    started: u64,
}

impl WriteBehind {
    /// Records a write of LEN bytes at OFF; returns the range, (offset, length), whose
    /// write-back to start now, if any.
    pub fn after_write(&mut self, off: u64, len: u64) -> Option<(u64, u64)> {
        if off != self.end {
            *self = WriteBehind {
                start: off,
                end: off,
                started: off,
            };
        }
        self.end = off + len;
        if self.end - self.start < START || self.end - self.started < CHUNK {
            return None;
        }
        let from = self.started;
        self.started = self.end;
        Some((from, self.end - from))
    }
}

/// Starts writing (offset, length) of FD back to its disk, without waiting for it;
/// errors are ignored (fsync reports what matters).
pub fn start(fd: RawFd, (off, len): (u64, u64)) {
    // SAFETY: no memory is passed.
    unsafe {
        libc::sync_file_range(fd, off as i64, len as i64, libc::SYNC_FILE_RANGE_WRITE);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const M: u64 = 1 << 20;

    #[test]
    fn a_sequential_writer_is_written_back_behind_in_chunks() {
        let mut wb = WriteBehind::default();
        let got: Vec<_> = (0..64).filter_map(|i| wb.after_write(i * M, M)).collect();
        assert_eq!(got[0], (0, CHUNK));
        assert!(got.windows(2).all(|w| w[1].0 == w[0].0 + w[0].1));
        assert_eq!(got.iter().map(|r| r.1).sum::<u64>(), 64 * M);
    }

    #[test]
    fn short_files_and_scattered_writes_start_nothing() {
        let mut wb = WriteBehind::default();
        assert!((0..7).all(|i| wb.after_write(i * M, M).is_none()));
        let mut wb = WriteBehind::default();
        let offs = [5u64, 90, 3, 44, 12, 70, 1, 33, 8, 60];
        assert!(offs.iter().all(|&o| wb.after_write(o * M, M).is_none()));
    }

    #[test]
    fn a_rewrite_from_the_start_is_a_new_stream() {
        let mut wb = WriteBehind::default();
        (0..16).for_each(|i| {
            wb.after_write(i * M, M);
        });
        assert_eq!(wb.after_write(0, M), None);
        assert_eq!(wb.start, 0);
        assert_eq!(wb.started, 0);
    }
}
