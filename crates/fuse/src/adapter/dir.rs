//! Directory handles and their listings (readdir, readdirplus).
use super::*;

/// One position of a directory listing.
pub(super) enum Slot<'a> {
    Dot,
    DotDot,
    Entry(&'a DirEntry),
}

/// A directory's listing in offset order. Each entry's offset is a hash of its name, so
/// an offset means the same place in any listing of the directory: the kernel opens
/// directories without asking us (no OPENDIR) and hands out the offsets of whichever
/// listing filled its cache, and a reader goes on after its last entry even in a listing
/// taken later. Unchanged entries are seen once; added or removed ones may or may not be,
/// as POSIX allows. Offsets stay below 2^31 (32-bit programs' readdir and telldir).
pub(super) struct Listing {
    /// (offset, entry), by offset; colliding hashes take the next free offset.
    entries: Vec<(u64, DirEntry)>,
}

/// Offsets: 0 is ".", 1 "..", entries from FIRST_ENTRY, END after the last.
const FIRST_ENTRY: u64 = 3;
const END: u64 = (1 << 31) - 1;
/// Entries kept in all listings (~50 bytes each): only a cache, whose loss costs one
/// more listing of a directory.
const LISTED_ENTRIES: usize = 1 << 18;

impl Listing {
    fn new(list: Vec<DirEntry>) -> Listing {
        use std::hash::{Hash, Hasher};
        let mut entries: Vec<(u64, DirEntry)> = list
            .into_iter()
            .map(|e| {
                // Fixed keys: the same name gets the same offset in every listing.
                let mut h = std::hash::DefaultHasher::new();
                e.name.hash(&mut h);
                (
                    FIRST_ENTRY + h.finish() % (END - FIRST_ENTRY - (1 << 20)),
                    e,
                )
            })
            .collect();
        entries.sort_unstable_by(|a, b| a.0.cmp(&b.0).then_with(|| a.1.name.cmp(&b.1.name)));
        for i in 1..entries.len() {
            if entries[i].0 <= entries[i - 1].0 {
                entries[i].0 = entries[i - 1].0 + 1;
            }
        }
        Listing { entries }
    }
}

/// The latest listing of each directory read, to serve a reader's next chunk.
#[derive(Default)]
pub(super) struct Listings {
    by_dir: HashMap<u64, Arc<Listing>>,
    /// Entries in all of them.
    entries: usize,
}

impl Listings {
    fn keep(&mut self, ino: u64, l: Arc<Listing>) {
        if self.entries + l.entries.len() > LISTED_ENTRIES {
            self.by_dir.clear();
            self.entries = 0;
        }
        self.entries += l.entries.len();
        if let Some(old) = self.by_dir.insert(ino, l) {
            self.entries -= old.entries.len();
        }
    }

    /// Drops the listing of a directory the kernel no longer knows.
    pub(super) fn forget(&mut self, ino: u64) {
        if let Some(old) = self.by_dir.remove(&ino) {
            self.entries -= old.entries.len();
        }
    }
}

impl UnionFuse {
    /// A listing of directory INO to serve OFFSET from: a fresh one at offset 0 (a first
    /// read or a rewind), else the one kept (any listing serves any offset).
    fn listing(&self, ino: u64, offset: u64) -> Result<Arc<Listing>, Errno> {
        if offset != 0 {
            if let Some(l) = self.listings.lock().unwrap().by_dir.get(&ino) {
                return Ok(l.clone());
            }
        } else {
            // As overlayfs when it reads an impure directory.
            self.fs.drop_stale_impure(ino);
        }
        let list = self
            .fs
            .list_dir(ino)
            .map_err(|e| self.fail("readdir", ino, None, &e))?;
        let l = Arc::new(Listing::new(list));
        self.listings.lock().unwrap().keep(ino, l.clone());
        Ok(l)
    }

    /// Walks the listing of directory INO from OFFSET: ".", "..", then its entries.
    /// ADD gets the offset after the slot and the slot, and tells when the reply is full.
    pub(super) fn each_entry(
        &self,
        ino: u64,
        offset: u64,
        mut add: impl FnMut(u64, Slot<'_>) -> bool,
    ) -> Result<(), Errno> {
        let l = self.listing(ino, offset)?;
        if offset == 0 && add(1, Slot::Dot) {
            return Ok(());
        }
        if offset <= 1 && add(2, Slot::DotDot) {
            return Ok(());
        }
        let from = offset.max(FIRST_ENTRY);
        let start = l.entries.partition_point(|(o, _)| *o < from);
        for (i, (_, e)) in l.entries.iter().enumerate().skip(start) {
            let next = l.entries.get(i + 1).map_or(END, |(o, _)| *o);
            if add(next, Slot::Entry(e)) {
                return Ok(());
            }
        }
        Ok(())
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
