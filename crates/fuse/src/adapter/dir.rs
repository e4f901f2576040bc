//! Directory handles and their listings (readdir, readdirplus).
use super::*;

/// One position of a directory listing.
pub(super) enum Slot<'a> {
    Dot,
    DotDot,
    Entry(&'a DirEntry),
}

/// A directory's listing, taken when it is read from offset 0 (a first read or a rewind),
/// in overlayfs' order (upper, then each lower's new names). An offset names a listing
/// and a slot in it, so a reader goes on in the listing it started (as overlayfs keeps a
/// listing per open) while the directory changes. The kernel opens directories without
/// asking us (no OPENDIR) and hands the offsets of whichever listing filled its cache to
/// every reader of it, so listings are kept per directory: the last LISTINGS_PER_DIR
/// used, until the kernel forgets the directory. Offsets stay below 2^31 (32-bit
/// programs' readdir and telldir).
pub(super) struct Listing {
    /// In the offsets' top bits: which listing of the directory they are of.
    generation: u64,
    entries: Vec<DirEntry>,
}

/// Offsets: GENERATION_BITS of listing, then the slot after the entry, from 1.
const SLOT_BITS: u32 = 25;
const GENERATION_BITS: u32 = 6;
/// Listings of one directory kept, the least recently used going first: readers of
/// the same directory that started at different times (after changes between).
const LISTINGS_PER_DIR: usize = 16;
/// Entries kept in all listings (~50 bytes each); over it, the other directories'
/// listings go (a reader further on in one of them then gets a fresh listing at its slot).
const LISTED_ENTRIES: usize = 1 << 18;

/// The offset of the slot after `slot` in listing `generation`.
fn cookie(generation: u64, slot: usize) -> u64 {
    generation << SLOT_BITS | (slot as u64 + 1).min((1 << SLOT_BITS) - 1)
}

/// The listings kept: per directory, least recently used first.
#[derive(Default)]
pub(super) struct Listings {
    by_dir: HashMap<u64, Vec<Arc<Listing>>>,
    /// Entries in all of them.
    entries: usize,
}

impl Listings {
    /// The listing GENERATION of directory INO, marked as used now.
    fn used(&mut self, ino: u64, generation: u64) -> Option<Arc<Listing>> {
        let kept = self.by_dir.get_mut(&ino)?;
        let i = kept.iter().position(|l| l.generation == generation)?;
        let l = kept.remove(i);
        kept.push(l.clone());
        Some(l)
    }

    /// Keeps a new listing of INO, with a generation none of its kept listings has.
    fn keep(&mut self, ino: u64, entries: Vec<DirEntry>) -> Arc<Listing> {
        if self.entries + entries.len() > LISTED_ENTRIES {
            let mine = self.by_dir.remove(&ino).unwrap_or_default();
            self.entries = mine.iter().map(|l| l.entries.len()).sum();
            self.by_dir.clear();
            self.by_dir.insert(ino, mine);
        }
        let kept = self.by_dir.entry(ino).or_default();
        // The next generation not in use among the kept ones (at most 16 of 64).
        let last = kept.iter().map(|l| l.generation).max().unwrap_or(0);
        let generation = (1..=1 << GENERATION_BITS)
            .map(|d| (last + d) % (1 << GENERATION_BITS))
            .find(|g| kept.iter().all(|l| l.generation != *g))
            .unwrap_or(0);
        let l = Arc::new(Listing {
            generation,
            entries,
        });
        self.entries += l.entries.len();
        kept.push(l.clone());
        if kept.len() > LISTINGS_PER_DIR {
            let old = kept.remove(0);
            self.entries -= old.entries.len();
        }
        l
    }

    /// Drops the listings of a directory the kernel no longer knows.
    pub(super) fn forget(&mut self, ino: u64) {
        if let Some(v) = self.by_dir.remove(&ino) {
            self.entries -= v.iter().map(|l| l.entries.len()).sum::<usize>();
        }
    }
}

impl UnionFuse {
    /// The listing an offset of directory INO points into, and the slot it points at.
    /// Offset 0, or an offset of a listing let go, lists the directory anew.
    fn listing(&self, ino: u64, offset: u64) -> Result<(Arc<Listing>, usize), Errno> {
        let generation = offset >> SLOT_BITS;
        let slot = (offset & ((1 << SLOT_BITS) - 1)) as usize;
        if offset != 0 {
            if let Some(l) = self.listings.lock().unwrap().used(ino, generation) {
                return Ok((l, slot));
            }
        } else {
            // As overlayfs when it reads an impure directory.
            self.fs.drop_stale_impure(ino);
        }
        let entries = self
            .fs
            .list_dir(ino)
            .map_err(|e| self.fail("readdir", ino, None, &e))?;
        Ok((self.listings.lock().unwrap().keep(ino, entries), slot))
    }

    /// Walks the listing of directory INO from OFFSET: ".", "..", then its entries.
    /// ADD gets the offset after the slot and the slot, and tells when the reply is full.
    pub(super) fn each_entry(
        &self,
        ino: u64,
        offset: u64,
        mut add: impl FnMut(u64, Slot<'_>) -> bool,
    ) -> Result<(), Errno> {
        let (l, start) = self.listing(ino, offset)?;
        let mut i = start;
        loop {
            let slot = match i {
                0 => Slot::Dot,
                1 => Slot::DotDot,
                _ => match l.entries.get(i - 2) {
                    Some(e) => Slot::Entry(e),
                    None => return Ok(()),
                },
            };
            if add(cookie(l.generation, i), slot) {
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
