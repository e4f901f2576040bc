//! Directory handles and their listings (readdir, readdirplus).
use super::*;

/// One position of a directory listing.
pub(super) enum Slot<'a> {
    Dot,
    DotDot,
    Entry(&'a DirEntry),
}

/// A directory's listing, taken when it is read from offset 0 (a first read or a
/// rewind) and served by offset, so that offsets stay stable while the directory
/// changes. Listings are kept per directory, not per open: the kernel opens directories
/// without asking us (no OPENDIR) and hands the offsets of one reader's listing to every
/// reader of its cached copy, so a listing stays until the kernel forgets the directory
/// (or a newer one replaces it, or the budget below runs out: then a reader further on
/// gets a fresh listing at its offset, as after a change).
pub(super) struct Listing {
    /// In the upper half of every offset handed out, which says which listing it is of.
    generation: u64,
    entries: Vec<DirEntry>,
}

/// The listings kept, by directory.
#[derive(Default)]
pub(super) struct Listings {
    by_dir: HashMap<u64, Vec<Arc<Listing>>>,
    /// Entries in all of them.
    entries: usize,
}

/// Listings of one directory kept at once: readers that started at different times.
const LISTINGS_PER_DIR: usize = 4;
/// Entries kept in all listings (~50 bytes each); the oldest listings go first.
const LISTED_ENTRIES: usize = 1 << 18;

/// The offset of the slot after `slot` in listing `generation`.
fn cookie(generation: u64, slot: usize) -> u64 {
    generation << 32 | (slot as u64 + 1)
}

impl Listings {
    fn keep(&mut self, ino: u64, l: Arc<Listing>) {
        self.entries += l.entries.len();
        let kept = self.by_dir.entry(ino).or_default();
        kept.push(l);
        if kept.len() > LISTINGS_PER_DIR {
            let old = kept.remove(0);
            self.entries -= old.entries.len();
        }
        while self.entries > LISTED_ENTRIES && self.by_dir.len() > 1 {
            let Some((&dir, _)) = self
                .by_dir
                .iter()
                .filter(|(d, _)| **d != ino)
                .min_by_key(|(_, v)| v[0].generation)
            else {
                break;
            };
            self.forget(dir);
        }
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
        let (generation, slot) = (offset >> 32, (offset & 0xffff_ffff) as usize);
        if offset != 0 {
            let kept = self
                .listings
                .lock()
                .unwrap()
                .by_dir
                .get(&ino)
                .and_then(|v| v.iter().find(|l| l.generation == generation).cloned());
            if let Some(l) = kept {
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
        // 31 bits, never 0: offsets stay positive and nonzero.
        let generation = self.next_listing.fetch_add(1, Ordering::Relaxed) % 0x7fff_ffff + 1;
        let l = Arc::new(Listing {
            generation,
            entries,
        });
        self.listings.lock().unwrap().keep(ino, l.clone());
        Ok((l, slot))
    }

    /// Walks the listing of directory INO from OFFSET: ".", "..", then its entries.
    /// ADD gets the offset of the next slot and the slot, and tells when the reply is full.
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
