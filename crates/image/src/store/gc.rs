//! What the store no longer needs: blobs and layers of removed images (`rmi`), and the
//! temps of killed commands (every command, at open).
use super::Store;
use crate::error::Result;
use crate::sys::owned_temp;
use crate::{container, util};
use std::collections::HashSet;
use std::fs;
use std::path::PathBuf;

impl Store {
    /// Removes the temp files and dirs of killed commands (`sys::owned_temp`): blobs
    /// being written, layers being unpacked, index and container records being saved.
    /// A temp of a command still running is never touched.
    pub fn sweep_leftovers(&self) {
        let mut dirs = vec![self.tmp_dir(), self.root.join("layers"), self.root.clone()];
        if let Ok(rd) = fs::read_dir(self.root.join("containers")) {
            dirs.extend(rd.flatten().map(|e| e.path()));
        }
        for d in dirs {
            for dead in owned_temp::dead_in(&d) {
                util::remove_tree(&dead);
            }
        }
    }

    /// Deletes blobs and layer dirs no image (and no container) needs, and stale temp
    /// files. Holds the exclusive gc lock, so no writer is in the middle of its work.
    pub fn sweep(&self) -> Result<()> {
        let _g = self.lock("gc.lock", true)?;
        let mut blobs: HashSet<String> = HashSet::new();
        let mut layers: HashSet<String> = HashSet::new();
        for r in self.list()? {
            blobs.insert(r.manifest.clone());
            if let Ok(img) = self.load(&r) {
                blobs.insert(img.id.clone());
                blobs.extend(img.layer_blobs());
                layers.extend(img.diff_ids());
            } else {
                return Ok(()); // never sweep on a store we cannot read whole
            }
        }
        let layers_root = self.root.join("layers");
        let mut kept_dirs: HashSet<PathBuf> = HashSet::new();
        for c in container::all(&self.root) {
            kept_dirs.extend(c.lowers.iter().cloned());
        }
        if let Ok(rd) = fs::read_dir(&layers_root) {
            for e in rd.flatten() {
                let name = e.file_name().to_string_lossy().into_owned();
                let path = e.path();
                let dead_temp = name.starts_with(".tmp-")
                    && owned_temp::owner_alive(e.file_name().as_os_str()) != Some(true);
                let temp = name.starts_with(".tmp-");
                if dead_temp || (!temp && !layers.contains(&name) && !kept_dirs.contains(&path)) {
                    util::remove_tree(&path);
                }
            }
        }
        if let Ok(rd) = fs::read_dir(self.blobs_dir()) {
            for e in rd.flatten() {
                let name = e.file_name().to_string_lossy().into_owned();
                let keep = blobs.contains(&name) || kept_dirs.contains(&layers_root.join(&name)); // a container's layer blob
                if !keep {
                    let _ = fs::remove_file(e.path());
                }
            }
        }
        // Under the exclusive lock every temp of a writer is its owner's until it ends.
        if let Ok(rd) = fs::read_dir(self.tmp_dir()) {
            for e in rd.flatten() {
                if owned_temp::owner_alive(&e.file_name()) != Some(true) {
                    util::remove_tree(&e.path());
                }
            }
        }
        Ok(())
    }
}
