//! The inode table: one node per object the kernel knows, keyed by the inode number the
//! union shows (so hard links are one node, and a node keeps its number across copy-up).
use std::collections::HashMap;
use std::ffi::OsString;
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, RwLock};

pub const ROOT: u64 = 1;

/// Where a node's object lives in one lower layer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LowerRef {
    pub layer: usize,
    /// Path from that layer's root ("" is the root).
    pub path: OsString,
}

#[derive(Debug, Clone)]
pub struct NodeState {
    /// Names of this object in the union: (parent inode, name). The first one is used to
    /// find the object in the upper layer; hard links add more.
    pub aliases: Vec<(u64, OsString)>,
    /// The object exists in the upper layer (at the path of its aliases).
    pub upper: bool,
    /// Non-directory: its origin in a lower layer (at most one). Directory: the lower
    /// directories merged under it, top first (empty when opaque or pure upper).
    pub lowers: Vec<LowerRef>,
    /// Directory: carries a redirect xattr already.
    pub redirected: bool,
    /// Non-directory copied up through the hard-link index: the index entry's name. The
    /// object is reached there, since not every alias has an upper name yet.
    pub index: Option<OsString>,
    /// A regular file whose last name went while the kernel still holds it (open and
    /// unlinked): kept open so fstat and I/O keep working.
    pub orphan: Option<Arc<std::os::fd::OwnedFd>>,
}

pub struct Node {
    pub ino: u64,
    pub is_dir: bool,
    /// S_IFMT bits of the object.
    pub kind: u32,
    pub nlookup: AtomicU64,
    state: Mutex<NodeState>,
    /// Held through a copy-up of this node (its data copy included), so a second writer
    /// waits for the first one's copy; never taken by stat, lookup or readdir, which keep
    /// answering from the lower object until the copy is renamed into place.
    copying: Mutex<()>,
    /// The table's change count when this node's names or layers last changed (set with
    /// its state lock held): a lookup that began before then may have seen the old state.
    changed: AtomicU64,
}

impl Node {
    pub fn new(ino: u64, kind: u32, state: NodeState) -> Node {
        Node {
            ino,
            is_dir: kind == libc::S_IFDIR,
            kind,
            nlookup: AtomicU64::new(0),
            state: Mutex::new(state),
            copying: Mutex::new(()),
            changed: AtomicU64::new(0),
        }
    }

    /// Serialises copy-ups of this node (see `copying`).
    pub fn copy_guard(&self) -> MutexGuard<'_, ()> {
        self.copying.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn lock(&self) -> MutexGuard<'_, NodeState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn snapshot(&self) -> NodeState {
        self.lock().clone()
    }
}

/// Hashes an inode number with one multiplication: the numbers are spread already, and
/// SipHash cost more than the rest of a table lookup.
#[derive(Default, Clone, Copy)]
pub struct InoHasher(u64);

impl Hasher for InoHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.write_u64(self.0 ^ u64::from(*b));
        }
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = (n ^ (n >> 29)).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    }
}

#[derive(Default)]
pub struct NodeTable {
    map: RwLock<HashMap<u64, Arc<Node>, BuildHasherDefault<InoHasher>>>,
    /// Counts changes of names and layers of nodes (see `touch`).
    changes: AtomicU64,
    /// Renames between their change on disk and their change of the table: paths derived
    /// from the table meanwhile may be stale.
    moving: AtomicU64,
}

impl NodeTable {
    pub fn get(&self, ino: u64) -> Option<Arc<Node>> {
        self.map
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(&ino)
            .cloned()
    }

    /// The change count now: taken before a resolution that `remember_seen` records.
    pub fn changes(&self) -> u64 {
        self.changes.load(Ordering::SeqCst)
    }

    /// Records that NODE's names or layers changed; call with its state lock held, after
    /// the change.
    pub fn touch(&self, node: &Node) {
        let n = self.changes.fetch_add(1, Ordering::SeqCst) + 1;
        node.changed.store(n, Ordering::SeqCst);
    }

    /// A rename starts changing names on disk; it ends when the guard goes.
    pub fn start_move(&self) -> Moving<'_> {
        self.moving.fetch_add(1, Ordering::SeqCst);
        Moving(self)
    }

    /// Did names change (or are they changing) since the change count was SEEN?
    pub fn moved_since(&self, seen: u64) -> bool {
        self.moving.load(Ordering::SeqCst) > 0 || self.changes() != seen
    }

    /// Inserts `fresh` unless a node of the same number and type is already known, in which
    /// case the known one learns the new alias and state. Counts one kernel lookup.
    pub fn remember(&self, fresh: Node) -> Arc<Node> {
        self.remember_seen(fresh, u64::MAX)
            .expect("no change is newer than u64::MAX")
    }

    /// `remember` for a node resolved after the change count was SEEN: None (nothing
    /// recorded) when the known node changed since, so the resolution may be stale.
    pub fn remember_seen(&self, fresh: Node, seen: u64) -> Option<Arc<Node>> {
        let mut map = self.map.write().unwrap_or_else(|p| p.into_inner());
        if let Some(old) = map.get(&fresh.ino)
            && old.kind == fresh.kind
        {
            let mut st = old.lock();
            if old.changed.load(Ordering::SeqCst) > seen {
                return None;
            }
            // `fresh` goes away: take its state rather than copy it.
            let new_state = fresh.state.into_inner().unwrap_or_else(|p| p.into_inner());
            let alias = new_state
                .aliases
                .into_iter()
                .next()
                .expect("a fresh node has its name");
            st.aliases.retain(|a| *a != alias);
            st.aliases.insert(0, alias);
            st.upper = new_state.upper;
            st.lowers = new_state.lowers;
            st.redirected = new_state.redirected;
            if new_state.index.is_some() {
                st.index = new_state.index;
            }
            drop(st);
            old.nlookup.fetch_add(1, Ordering::Relaxed);
            return Some(old.clone());
        }
        fresh.nlookup.store(1, Ordering::Relaxed);
        let node = Arc::new(fresh);
        map.insert(node.ino, node.clone());
        Some(node)
    }

    /// Inserts the root node, which the kernel never forgets.
    pub fn insert_root(&self, node: Node) {
        node.nlookup.store(1 << 40, Ordering::Relaxed);
        self.map
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .insert(ROOT, Arc::new(node));
    }

    /// The kernel dropped `n` references; the node goes when none remain.
    pub fn forget(&self, ino: u64, n: u64) {
        if ino == ROOT {
            return;
        }
        let mut map = self.map.write().unwrap_or_else(|p| p.into_inner());
        if let Some(node) = map.get(&ino) {
            let prev = node.nlookup.fetch_sub(
                n.min(node.nlookup.load(Ordering::Relaxed)),
                Ordering::Relaxed,
            );
            if prev <= n {
                map.remove(&ino);
            }
        }
    }

    pub fn len(&self) -> usize {
        self.map.read().unwrap_or_else(|p| p.into_inner()).len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// A rename between its change on disk and the table's (see `NodeTable::start_move`).
pub struct Moving<'a>(&'a NodeTable);

impl Drop for Moving<'_> {
    fn drop(&mut self) {
        self.0.changes.fetch_add(1, Ordering::SeqCst);
        self.0.moving.fetch_sub(1, Ordering::SeqCst);
    }
}
