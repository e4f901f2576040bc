//! The I/O mode of every open file, decided and recorded per inode under one lock.
//!
//! The kernel (fs/fuse/iomode.c) gives each inode one I/O mode at a time and fails an
//! open that breaks it with EIO:
//! - an inode with a passthrough open has a backing file, and every other open of it must
//!   carry FOPEN_PASSTHROUGH with that same backing file (even a direct-I/O one);
//! - an inode with page-cache ("cached") opens takes no passthrough open;
//! - a FOPEN_DIRECT_IO open without FOPEN_PASSTHROUGH takes no mode (we do not allow
//!   shared mmap of those, which would take the cached mode).
//!
//! FOPEN_PASSTHROUGH | FOPEN_DIRECT_IO counts as a passthrough open but sends reads and
//! writes to us: it is how an open that must not pass through joins an inode that has a
//! backing file.
//!
//! The kernel drops an open's mode before it sends us the RELEASE, so what is recorded
//! here always covers what the kernel holds.
use fuser::BackingId;
use std::collections::HashMap;
use std::io;
use std::sync::{Arc, Mutex};

/// How one open is served.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(super) enum OpenMode {
    /// FOPEN_PASSTHROUGH: reads and writes go to the inode's backing file.
    Passthrough,
    /// FOPEN_PASSTHROUGH | FOPEN_DIRECT_IO: served by us beside passthrough opens.
    PassthroughDirect,
    /// Through the page cache.
    Cached,
    /// FOPEN_DIRECT_IO: served by us, no page cache.
    Direct,
}

/// What an open would like, before the inode's other opens are considered.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(super) enum Want {
    /// Passthrough to the file with this (st_dev, st_ino).
    Passthrough((u64, u64)),
    Cached,
    /// Served by us without the page cache (a writable set-ID file: its writes must
    /// reach us to drop the bits).
    Direct,
}

struct Backing {
    id: Arc<BackingId>,
    /// (st_dev, st_ino) of the real file behind it.
    real: (u64, u64),
}

/// The opens of one inode.
#[derive(Default)]
struct InodeIo {
    /// The backing file while there are passthrough opens (of either kind).
    backing: Option<Backing>,
    /// Opens with FOPEN_PASSTHROUGH.
    passthrough: usize,
    /// Page-cache opens.
    cached: usize,
    /// Taken out of the map (no opens left): whoever still holds it starts over.
    gone: bool,
}

impl InodeIo {
    fn is_idle(&self) -> bool {
        self.passthrough == 0 && self.cached == 0
    }
}

/// The I/O modes of open inodes, one lock per inode.
#[derive(Default)]
pub(super) struct IoModes {
    inodes: Mutex<HashMap<u64, Arc<Mutex<InodeIo>>>>,
}

/// The mode chosen for an open, with the backing id to reply with for passthrough modes.
pub(super) struct Chosen {
    pub mode: OpenMode,
    /// Kept by the reply until sent, even if the inode's last open goes meanwhile.
    pub backing: Option<Arc<BackingId>>,
}

impl IoModes {
    /// Chooses and records the mode of a new open of INO that wants WANT; REGISTER makes
    /// the open's file a backing file (called under the inode's lock: one short ioctl).
    /// Whatever the other opens of the inode, the choice is one the kernel accepts.
    pub fn open(
        &self,
        ino: u64,
        want: Want,
        register: impl FnOnce() -> io::Result<BackingId>,
    ) -> (Chosen, Option<io::Error>) {
        let mut register = Some(register);
        loop {
            let entry = self.inodes.lock().unwrap().entry(ino).or_default().clone();
            let mut io = entry.lock().unwrap();
            if io.gone {
                continue;
            }
            return choose(&mut io, want, &mut register);
        }
    }

    /// Forgets an open of INO in MODE (at its release).
    pub fn release(&self, ino: u64, mode: OpenMode) {
        let mut map = self.inodes.lock().unwrap();
        let Some(entry) = map.get(&ino).cloned() else {
            return;
        };
        let mut io = entry.lock().unwrap();
        match mode {
            OpenMode::Passthrough | OpenMode::PassthroughDirect => {
                io.passthrough = io.passthrough.saturating_sub(1);
                if io.passthrough == 0 {
                    // Closes the backing id: the kernel keeps its own reference.
                    io.backing = None;
                }
            }
            OpenMode::Cached => io.cached = io.cached.saturating_sub(1),
            OpenMode::Direct => {}
        }
        if io.is_idle() {
            io.gone = true;
            map.remove(&ino);
        }
    }
}

/// The choice for one open, under the inode's lock.
fn choose(
    io: &mut InodeIo,
    want: Want,
    register: &mut Option<impl FnOnce() -> io::Result<BackingId>>,
) -> (Chosen, Option<io::Error>) {
    let chosen = |io: &mut InodeIo, mode| {
        match mode {
            OpenMode::Passthrough | OpenMode::PassthroughDirect => io.passthrough += 1,
            OpenMode::Cached => io.cached += 1,
            OpenMode::Direct => {}
        }
        let backing = match mode {
            OpenMode::Passthrough | OpenMode::PassthroughDirect => {
                io.backing.as_ref().map(|b| b.id.clone())
            }
            _ => None,
        };
        Chosen { mode, backing }
    };
    // The kernel wants every open of an inode with a backing file to pass through, to
    // that file: one on another file (or that must reach us) is served by us beside it.
    if let Some(b) = &io.backing {
        let mode = match want {
            Want::Passthrough(real) if real == b.real => OpenMode::Passthrough,
            _ => OpenMode::PassthroughDirect,
        };
        return (chosen(io, mode), None);
    }
    let real = match want {
        Want::Cached => return (chosen(io, OpenMode::Cached), None),
        Want::Direct => return (chosen(io, OpenMode::Direct), None),
        Want::Passthrough(real) => real,
    };
    // Page-cache opens: no passthrough beside them.
    if io.cached > 0 {
        return (chosen(io, OpenMode::Cached), None);
    }
    let Some(register) = register.take() else {
        return (chosen(io, OpenMode::Cached), None);
    };
    match register() {
        Ok(id) => {
            io.backing = Some(Backing {
                id: Arc::new(id),
                real,
            });
            (chosen(io, OpenMode::Passthrough), None)
        }
        Err(e) => (chosen(io, OpenMode::Cached), Some(e)),
    }
}
