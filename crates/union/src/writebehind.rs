//! Writing back a file written in sequence while it is being written, and dropping it
//! from the layer's page cache once written.
//!
//! Through FUSE a file reaches the page cache at the pace of the daemon's copies, and the
//! kernel starts writing it back only past its dirty thresholds (a tenth of memory) or at
//! fsync: the disk idles while the data comes, then fsync waits for all of it. Started
//! behind the writer, the write-back overlaps the copies.
//!
//! The mount's page cache holds what was written, so the layer's copy of a stream is
//! dropped a chunk after its write-back started (pages still dirty or being written stay):
//! freed at once, those pages come back as the next ones the writes need, already backed
//! by the host (see `readahead`).
use crate::readahead::FOLIO;
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
    /// Where the last write-back started: what lies before it is dropped next.
    last: u64,
    /// The end of what was dropped.
    dropped: u64,
}

/// What to do after a write: ranges (offset, length) to write back and to drop.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Behind {
    pub write_back: Option<(u64, u64)>,
    pub drop: Option<(u64, u64)>,
}

impl WriteBehind {
    /// Records a write of LEN bytes at OFF.
    pub fn after_write(&mut self, off: u64, len: u64) -> Behind {
        if off != self.end {
            *self = WriteBehind {
                start: off,
                end: off,
                started: off,
                last: off,
                dropped: off.next_multiple_of(FOLIO),
            };
        }
        self.end = off + len;
        if self.end - self.start < START || self.end - self.started < CHUNK {
            return Behind::default();
        }
        let from = self.started;
        self.started = self.end;
        let upto = self.last / FOLIO * FOLIO;
        self.last = from;
        let drop = (upto > self.dropped).then(|| (self.dropped, upto - self.dropped));
        if drop.is_some() {
            self.dropped = upto;
        }
        Behind {
            write_back: Some((from, self.end - from)),
            drop,
        }
    }
}

impl Behind {
    /// Starts the write-back in FD without waiting for it, and drops what is clean;
    /// errors are ignored (fsync reports what matters).
    pub fn apply(self, fd: RawFd) {
        if let Some((off, len)) = self.write_back {
            // SAFETY: no memory is passed.
            unsafe {
                libc::sync_file_range(fd, off as i64, len as i64, libc::SYNC_FILE_RANGE_WRITE)
            };
        }
        if let Some((off, len)) = self.drop {
            // SAFETY: no memory is passed.
            unsafe { libc::posix_fadvise(fd, off as i64, len as i64, libc::POSIX_FADV_DONTNEED) };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const M: u64 = 1 << 20;

    fn writes(wb: &mut WriteBehind, offs: impl IntoIterator<Item = u64>) -> Vec<Behind> {
        offs.into_iter().map(|o| wb.after_write(o, M)).collect()
    }

    #[test]
    fn a_sequential_writer_is_written_back_behind_in_chunks() {
        let mut wb = WriteBehind::default();
        let got: Vec<_> = writes(&mut wb, (0..64).map(|i| i * M))
            .iter()
            .filter_map(|b| b.write_back)
            .collect();
        assert_eq!(got[0], (0, CHUNK));
        assert!(got.windows(2).all(|w| w[1].0 == w[0].0 + w[0].1));
        assert_eq!(got.iter().map(|r| r.1).sum::<u64>(), 64 * M);
    }

    #[test]
    fn what_was_written_back_is_dropped_a_chunk_later_in_whole_folios() {
        let mut wb = WriteBehind::default();
        let all = writes(&mut wb, (0..64).map(|i| i * M));
        let drops: Vec<_> = all.iter().filter_map(|b| b.drop).collect();
        assert_eq!(drops[0].0, 0);
        assert!(drops.windows(2).all(|w| w[1].0 == w[0].0 + w[0].1));
        assert!(drops.iter().all(|&(o, l)| o % FOLIO == 0 && l % FOLIO == 0));
        // Never what write-back was started for last, nor what was not yet written back.
        for b in &all {
            if let (Some((o, l)), Some((w, _))) = (b.drop, b.write_back) {
                assert!(o + l + CHUNK <= w);
            }
        }
        assert_eq!(wb.dropped, 64 * M - 2 * CHUNK);
    }

    #[test]
    fn short_files_and_scattered_writes_start_nothing() {
        let mut wb = WriteBehind::default();
        assert!(
            writes(&mut wb, (0..7).map(|i| i * M))
                .iter()
                .all(|b| *b == Behind::default())
        );
        let mut wb = WriteBehind::default();
        let offs = [5u64, 90, 3, 44, 12, 70, 1, 33, 8, 60].map(|o| o * M);
        assert!(
            writes(&mut wb, offs)
                .iter()
                .all(|b| *b == Behind::default())
        );
    }

    #[test]
    fn a_rewrite_from_the_start_is_a_new_stream() {
        let mut wb = WriteBehind::default();
        writes(&mut wb, (0..16).map(|i| i * M));
        assert_eq!(wb.after_write(0, M), Behind::default());
        assert_eq!(wb.start, 0);
        assert_eq!(wb.started, 0);
        assert_eq!(wb.dropped, 0);
    }
}
