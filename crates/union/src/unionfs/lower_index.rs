//! The names in a merged directory's lower dirs, read once. Lower layers never change
//! under a mount, so a lookup answers from one table which of the lower dirs hold the
//! name or an aufs whiteout `.wh.NAME` for it: a miss costs no system call at all, and a
//! hit goes straight to the layers that have it, however many layers there are.
//!
//! Lazy and bounded: a set of lower dirs is read at its second lookup (one lookup in a
//! big dir never pays for a listing); names are kept as 64-bit hashes (a match is
//! confirmed by the lstat the lookup makes anyway, so only absence is taken on trust, and
//! absence is exact); the index holds at most `MAX_ENTRIES` names per generation: when
//! the young generation fills it becomes the old one and the former old one is dropped
//! (sets still in use move back on their next lookup). Dirs whose names fold case
//! (ext4/f2fs casefold) are never indexed: there a name's bytes do not say it is absent.
use super::node::LowerRef;
use crate::sys;
use crate::whiteout::{AUFS_OPAQUE, AUFS_PREFIX};
use std::collections::{HashMap, HashSet};
use std::ffi::OsStr;
use std::hash::BuildHasher;
use std::os::fd::RawFd;
use std::os::unix::ffi::OsStrExt;
use std::sync::{Arc, RwLock};

/// Names per generation (two generations: at most ~32 MiB).
const MAX_ENTRIES: usize = 1 << 20;
/// Sets of dirs looked up once, waiting for a second lookup (forgotten at once when full).
const MAX_SEEN: usize = 1 << 16;
const NAME_MAX: usize = 255;

/// The names of one set of lower dirs (a merged dir's, top first).
struct MergedNames {
    dirs: Box<[(usize, Box<[u8]>)]>,
    /// (hash of a name, position of the dir << 1 | 1 when the entry is `.wh.NAME`), sorted;
    /// None: some dir could not be indexed, every lookup probes.
    entries: Option<Box<[(u64, u32)]>>,
}

impl MergedNames {
    fn size(&self) -> usize {
        self.entries.as_ref().map_or(0, |e| e.len()) + self.dirs.len()
    }

    fn is_for(&self, dirs: &[LowerRef]) -> bool {
        self.dirs.len() == dirs.len()
            && self
                .dirs
                .iter()
                .zip(dirs)
                .all(|((l, p), d)| *l == d.layer && **p == *d.path.as_bytes())
    }
}

#[derive(Default)]
struct Generations {
    young: HashMap<u64, Arc<MergedNames>>,
    old: HashMap<u64, Arc<MergedNames>>,
    young_entries: usize,
    seen: HashSet<u64>,
}

#[derive(Default)]
pub struct LowerIndex {
    gens: RwLock<Generations>,
    hasher: std::hash::RandomState,
}

/// Which lower dirs (positions in the list asked about, top first) may hold a name.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Holders {
    /// (position, may hold `.wh.NAME`), ascending; a dir listed may hold NAME itself.
    pub dirs: Vec<(usize, bool)>,
}

impl LowerIndex {
    /// The lower dirs among `dirs` that may hold NAME or its aufs whiteout; None when the
    /// set is not indexed (yet): then every dir is to be probed.
    pub fn holders(
        &self,
        dirs: &[LowerRef],
        name: &OsStr,
        fd_of: impl Fn(usize) -> RawFd,
    ) -> Option<Holders> {
        if dirs.is_empty() || name.len() > NAME_MAX {
            return None; // the layer's own lookup gives ENAMETOOLONG
        }
        let merged = self.merged(dirs, fd_of)?;
        let entries = merged.entries.as_ref()?;
        let h = self.hasher.hash_one(name.as_bytes());
        let from = entries.partition_point(|e| e.0 < h);
        let mut out = Holders::default();
        for &(_, v) in entries[from..].iter().take_while(|e| e.0 == h) {
            let (pos, whiteout) = ((v >> 1) as usize, v & 1 == 1);
            match out.dirs.last_mut() {
                Some(last) if last.0 == pos => last.1 |= whiteout,
                _ => out.dirs.push((pos, whiteout)),
            }
        }
        Some(out)
    }

    /// A cheap key for a set of dirs, computed at every lookup (SipHash over a hundred
    /// layers cost more than the rest of it): a multiply-rotate mix of the layer numbers
    /// and path words. A collision only costs a miss in the table (`is_for` checks).
    fn set_key(dirs: &[LowerRef]) -> u64 {
        const K: u64 = 0x517c_c1b7_2722_0a95;
        let mix = |h: u64, w: u64| (h.rotate_left(5) ^ w).wrapping_mul(K);
        let mut h = dirs.len() as u64;
        for d in dirs {
            h = mix(h, d.layer as u64);
            let p = d.path.as_bytes();
            for c in p.chunks(8) {
                let mut w = [0u8; 8];
                w[..c.len()].copy_from_slice(c);
                h = mix(h, u64::from_le_bytes(w));
            }
            h = mix(h, p.len() as u64);
        }
        h
    }

    /// The index of a set of dirs: found, read now (second lookup), or None (first).
    fn merged(
        &self,
        dirs: &[LowerRef],
        fd_of: impl Fn(usize) -> RawFd,
    ) -> Option<Arc<MergedNames>> {
        let key = Self::set_key(dirs);
        {
            let g = self.gens.read().unwrap_or_else(|p| p.into_inner());
            if let Some(m) = g.young.get(&key).filter(|m| m.is_for(dirs)) {
                return Some(m.clone());
            }
        }
        {
            let mut g = self.gens.write().unwrap_or_else(|p| p.into_inner());
            if let Some(m) = g.young.get(&key).filter(|m| m.is_for(dirs)) {
                return Some(m.clone());
            }
            if let Some(m) = g.old.remove(&key).filter(|m| m.is_for(dirs)) {
                g.add(key, m.clone());
                return Some(m);
            }
            if g.seen.len() >= MAX_SEEN {
                g.seen.clear();
            }
            if g.seen.insert(key) {
                return None; // first lookup in these dirs: probe them
            }
            g.seen.remove(&key);
        }
        // Read outside the lock; two threads reading the same dirs do no harm.
        let m = Arc::new(MergedNames {
            dirs: dirs
                .iter()
                .map(|d| (d.layer, d.path.as_bytes().into()))
                .collect(),
            entries: self.read_names(dirs, fd_of),
        });
        let mut g = self.gens.write().unwrap_or_else(|p| p.into_inner());
        g.add(key, m.clone());
        Some(m)
    }

    fn read_names(
        &self,
        dirs: &[LowerRef],
        fd_of: impl Fn(usize) -> RawFd,
    ) -> Option<Box<[(u64, u32)]>> {
        let mut entries = Vec::new();
        for (pos, d) in dirs.iter().enumerate() {
            let names = sys::exact_dir_names(fd_of(d.layer), &d.path).ok()??;
            for (n, _, _) in names {
                let b = n.as_bytes();
                let hidden = b.strip_prefix(AUFS_PREFIX).filter(|_| n != AUFS_OPAQUE);
                let (name, marker) = match hidden {
                    Some(h) => (h, 1),
                    None => (b, 0),
                };
                entries.push((self.hasher.hash_one(name), (pos as u32) << 1 | marker));
            }
            if entries.len() > MAX_ENTRIES / 2 {
                return None; // too big to keep: probe as without an index
            }
        }
        entries.sort_unstable();
        Some(entries.into_boxed_slice())
    }
}

impl Generations {
    fn add(&mut self, key: u64, m: Arc<MergedNames>) {
        let n = m.size();
        if self.young_entries + n > MAX_ENTRIES {
            self.old = std::mem::take(&mut self.young);
            self.young_entries = 0;
        }
        self.young_entries += n;
        if let Some(prev) = self.young.insert(key, m) {
            self.young_entries -= prev.size();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::ffi::OsString;
    use std::os::fd::AsRawFd;

    #[test]
    fn a_set_of_dirs_is_read_at_its_second_lookup_and_answers_exactly() {
        let t = tempfile::tempdir().unwrap();
        for (l, files) in [
            ("top", &["here", ".wh.gone", ".wh..wh..opq"][..]),
            ("bottom", &["here", "gone", "deep"][..]),
        ] {
            std::fs::create_dir_all(t.path().join(l).join("d")).unwrap();
            for f in files {
                std::fs::write(t.path().join(l).join("d").join(f), "").unwrap();
            }
        }
        let fds: Vec<_> = ["top", "bottom"]
            .iter()
            .map(|l| std::fs::File::open(t.path().join(l)).unwrap())
            .collect();
        let fd_of = |layer: usize| fds[layer].as_raw_fd();
        let dirs: Vec<LowerRef> = (0..2)
            .map(|layer| LowerRef {
                layer,
                path: OsString::from("d"),
            })
            .collect();
        let ix = LowerIndex::default();
        let holders = |n: &str| ix.holders(&dirs, OsStr::new(n), fd_of).map(|h| h.dirs);
        assert_eq!(holders("missing"), None, "first lookup: not read yet");
        assert_eq!(holders("missing"), Some(vec![]));
        assert_eq!(holders("here"), Some(vec![(0, false), (1, false)]));
        assert_eq!(holders("gone"), Some(vec![(0, true), (1, false)]));
        assert_eq!(holders("deep"), Some(vec![(1, false)]));
        assert_eq!(
            holders(".wh..opq"),
            Some(vec![]),
            "the opaque marker hides nothing"
        );
        assert_eq!(holders(&"x".repeat(300)), None);
        // another set of dirs (one layer only) is its own entry
        assert_eq!(ix.holders(&dirs[1..], OsStr::new("here"), fd_of), None);
    }

    #[test]
    fn generations_stay_bounded() {
        let mut g = Generations::default();
        for i in 0..5u64 {
            let m = MergedNames {
                dirs: Box::new([]),
                entries: Some(vec![(0, 0); MAX_ENTRIES / 2].into_boxed_slice()),
            };
            g.add(i, Arc::new(m));
            assert!(g.young_entries <= MAX_ENTRIES);
        }
        // young {4}, old {2, 3}: 0 and 1 went with the generation before
        assert_eq!(g.young.len() + g.old.len(), 3);
        assert!(g.young.contains_key(&4) && g.old.contains_key(&2));
    }
}
