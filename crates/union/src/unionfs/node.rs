//! The inode table: one node per object the kernel knows. An object is found by the inode
//! number the union shows for it (its key: so hard links are one node, and a node keeps
//! its number across copy-up); the kernel knows it by its node id, which is the key too
//! unless the kernel still holds a node of that id for another object (see `remember`).
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
    pub lowers: Arc<[LowerRef]>,
    /// Directory: carries a redirect xattr already.
    pub redirected: bool,
    /// Metacopy regular file (`overlay.metacopy`): its data is still `lowers`' last one's
    /// (until the first write copies it up); its metadata the upper's, or `lowers[0]`'s
    /// when that is a lower metacopy file.
    pub metacopy: bool,
    /// Non-directory copied up through the hard-link index: the index entry's name. The
    /// object is reached there, since not every alias has an upper name yet.
    pub index: Option<OsString>,
    /// A regular file whose last name went while the kernel still holds it (open and
    /// unlinked): kept open so fstat and I/O keep working.
    pub orphan: Option<Arc<std::os::fd::OwnedFd>>,
}

pub struct Node {
    /// The FUSE node id, also shown as st_ino: `key`, unless that id was taken when the
    /// node was made (see `NodeTable::remember`).
    pub ino: u64,
    /// The inode number the union has for the object (the lower object's, or the upper's
    /// for an upper-only one).
    pub key: u64,
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
    /// A merged dir's link count as last counted (`UnionFs::count_dir_links`; 0: not
    /// known), and the changes to its subdirs so far: a count taken across one is not
    /// kept.
    dir_links: AtomicU64,
    dir_changes: AtomicU64,
}

impl Node {
    pub fn new(ino: u64, kind: u32, state: NodeState) -> Node {
        Node {
            ino,
            key: ino,
            is_dir: kind == libc::S_IFDIR,
            kind,
            nlookup: AtomicU64::new(0),
            state: Mutex::new(state),
            copying: Mutex::new(()),
            changed: AtomicU64::new(0),
            dir_links: AtomicU64::new(0),
            dir_changes: AtomicU64::new(0),
        }
    }

    /// The link count kept for this dir, if any, and the change count to pass to
    /// `keep_dir_links` with a new count.
    pub fn dir_links(&self) -> (Option<u64>, u64) {
        let changes = self.dir_changes.load(Ordering::Acquire);
        let n = self.dir_links.load(Ordering::Acquire);
        ((n != 0).then_some(n), changes)
    }

    /// Keeps a link count counted after `dir_links` returned CHANGES, unless a subdir
    /// came or went since (checked again after the store: a change may race it).
    pub fn keep_dir_links(&self, n: u64, changes: u64) {
        self.dir_links.store(n, Ordering::Release);
        if self.dir_changes.load(Ordering::Acquire) != changes {
            self.dir_links.store(0, Ordering::Release);
        }
    }

    /// A subdir came or went (after the change on disk): the kept count is stale.
    pub fn dir_changed(&self) {
        self.dir_changes.fetch_add(1, Ordering::AcqRel);
        self.dir_links.store(0, Ordering::Release);
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

type InoMap<T> = HashMap<u64, T, BuildHasherDefault<InoHasher>>;

/// Node ids handed out when an object's own number is taken start here (far above the
/// numbers file systems give; `remember` checks anyway).
const FRESH_IDS: u64 = 0x7ff0 << 48;

#[derive(Default)]
struct Maps {
    /// Every node the kernel holds, by node id.
    nodes: InoMap<Arc<Node>>,
    /// Node id of the live object with each key. An object whose last name went leaves
    /// this map (its node stays in `nodes` until the kernel forgets it): a new object
    /// that gets its inode number then is another node.
    keys: InoMap<u64>,
}

#[derive(Default)]
pub struct NodeTable {
    map: RwLock<Maps>,
    /// Next node id tried when an object's own number is taken.
    fresh: AtomicU64,
    /// Live nodes whose id differs from their key (readdir's d_ino then needs the table).
    renumbered: AtomicU64,
    /// Counts changes of names and layers of nodes (see `touch`).
    changes: AtomicU64,
    /// Renames between their change on disk and their change of the table: paths derived
    /// from the table meanwhile may be stale.
    moving: AtomicU64,
}

impl NodeTable {
    pub fn get(&self, ino: u64) -> Option<Arc<Node>> {
        self.read().nodes.get(&ino).cloned()
    }

    /// The node of the live object whose inode number in the union is KEY.
    pub fn get_key(&self, key: u64) -> Option<Arc<Node>> {
        let maps = self.read();
        maps.keys
            .get(&key)
            .and_then(|id| maps.nodes.get(id))
            .cloned()
    }

    /// The number the union shows for the object with KEY: its node's id.
    pub fn shown_ino(&self, key: u64) -> u64 {
        if self.renumbered.load(Ordering::Relaxed) == 0 {
            return key;
        }
        self.read().keys.get(&key).copied().unwrap_or(key)
    }

    /// NODE's object lost its last name (its inode is gone or going): a later object with
    /// its number is another node.
    pub fn unhash(&self, node: &Node) {
        let mut maps = self.write();
        if maps.keys.get(&node.key) == Some(&node.ino) {
            maps.keys.remove(&node.key);
        }
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Maps> {
        self.map.read().unwrap_or_else(|p| p.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, Maps> {
        self.map.write().unwrap_or_else(|p| p.into_inner())
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
    ///
    /// A new object gets its key as node id unless the kernel may still hold that id for
    /// another object (one of another type, or one whose last name went: its inode number
    /// was reused). Sending that id would make the kernel find its old inode with a wrong
    /// type or generation, mark it bad, and fail every user of it with EIO; so it gets an
    /// unused id instead.
    pub fn remember_seen(&self, fresh: Node, seen: u64) -> Option<Arc<Node>> {
        let mut maps = self.write();
        if let Some(old) = maps.keys.get(&fresh.key).and_then(|id| maps.nodes.get(id))
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
            st.metacopy = new_state.metacopy;
            if new_state.index.is_some() {
                st.index = new_state.index;
            }
            drop(st);
            old.nlookup.fetch_add(1, Ordering::Relaxed);
            return Some(old.clone());
        }
        let mut fresh = fresh;
        fresh.ino = self.free_id(&maps, fresh.key);
        fresh.nlookup.store(1, Ordering::Relaxed);
        if fresh.ino != fresh.key {
            self.renumbered.fetch_add(1, Ordering::Relaxed);
            log::info!(
                "inode {} is still held by the kernel for another object: node id {} for the new one",
                fresh.key,
                fresh.ino
            );
        }
        let node = Arc::new(fresh);
        maps.keys.insert(node.key, node.ino);
        maps.nodes.insert(node.ino, node.clone());
        Some(node)
    }

    /// KEY when no node has that id, else an id no node has.
    fn free_id(&self, maps: &Maps, key: u64) -> u64 {
        if key != 0 && !maps.nodes.contains_key(&key) {
            return key;
        }
        loop {
            let id = FRESH_IDS + self.fresh.fetch_add(1, Ordering::Relaxed);
            if !maps.nodes.contains_key(&id) {
                return id;
            }
        }
    }

    /// Inserts the root node, which the kernel never forgets.
    pub fn insert_root(&self, node: Node) {
        node.nlookup.store(1 << 40, Ordering::Relaxed);
        let mut maps = self.write();
        maps.keys.insert(node.key, ROOT);
        maps.nodes.insert(ROOT, Arc::new(node));
    }

    /// The kernel dropped `n` references; the node goes when none remain.
    pub fn forget(&self, ino: u64, n: u64) {
        if ino == ROOT {
            return;
        }
        let mut maps = self.write();
        let Some(node) = maps.nodes.get(&ino) else {
            return;
        };
        let prev = node.nlookup.fetch_sub(
            n.min(node.nlookup.load(Ordering::Relaxed)),
            Ordering::Relaxed,
        );
        if prev > n {
            return;
        }
        let key = node.key;
        if key != ino {
            self.renumbered.fetch_sub(1, Ordering::Relaxed);
        }
        maps.nodes.remove(&ino);
        if maps.keys.get(&key) == Some(&ino) {
            maps.keys.remove(&key);
        }
    }

    pub fn len(&self) -> usize {
        self.read().nodes.len()
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
