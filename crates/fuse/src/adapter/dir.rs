//! Directory handles and their listings (readdir, readdirplus).
use super::*;

/// One position of a directory listing.
pub(super) enum Slot<'a> {
    Dot,
    DotDot,
    Entry(&'a DirEntry),
}

/// An open directory: the listing taken when it is read from offset 0 (the first read,
/// or a rewinddir), served by offset so that offsets stay stable while it changes.
pub(super) struct DirHandle {
    pub(super) entries: Vec<DirEntry>,
}

impl UnionFuse {
    /// The listing of an open directory, taken anew when read from offset 0.
    pub(super) fn listing(
        &self,
        ino: u64,
        fh: FileHandle,
        offset: u64,
    ) -> Result<Arc<Mutex<DirHandle>>, Errno> {
        let h = self
            .dirs
            .lock()
            .unwrap()
            .get(&fh.0)
            .cloned()
            .ok_or(Errno::EBADF)?;
        if offset == 0 {
            h.lock().unwrap().entries = self
                .fs
                .list_dir(ino)
                .map_err(|e| self.fail("readdir", ino, None, &e))?;
        }
        Ok(h)
    }

    /// Walks the listing of directory INO from OFFSET: ".", "..", then its entries.
    /// ADD gets the offset of the next slot and the slot, and tells when the reply is full.
    pub(super) fn each_entry(
        &self,
        ino: u64,
        fh: FileHandle,
        offset: u64,
        mut add: impl FnMut(u64, Slot<'_>) -> bool,
    ) -> Result<(), Errno> {
        let h = self.listing(ino, fh, offset)?;
        let list = &h.lock().unwrap().entries;
        let mut i = offset as usize;
        loop {
            let slot = match i {
                0 => Slot::Dot,
                1 => Slot::DotDot,
                _ => match list.get(i - 2) {
                    Some(e) => Slot::Entry(e),
                    None => return Ok(()),
                },
            };
            if add((i + 1) as u64, slot) {
                return Ok(());
            }
            i += 1;
        }
    }

    pub(super) fn parent_of(&self, ino: u64) -> u64 {
        if ino == ROOT {
            return ROOT;
        }
        self.fs
            .nodes
            .get(ino)
            .and_then(|n| n.lock().aliases.first().map(|a| a.0))
            .unwrap_or(ROOT)
    }
}
