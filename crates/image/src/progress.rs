//! How the long copies (save, load, import, export, commit, pull, push) tell their caller
//! what they are doing, item by item (a layer blob, a config), for the caller to show:
//! the library never prints. Items come one after another: `begin`, any number of
//! `advance`, then `end` (an error ends the copy without `end`).

/// What kind of item is being copied.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Item {
    /// A layer blob, named by its digest (`sha256:...`).
    Blob,
    /// An image config blob.
    Config,
    /// An image manifest.
    Manifest,
    /// A layer being made from a tree or a tar (commit, import), named by its source.
    Layer,
    /// A container's file system written as a tar (export), named by the container.
    Filesystem,
}

/// How an item ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Copied.
    Done,
    /// Not copied: the destination has it already.
    Exists,
}

/// Receives the progress of a copy.
pub trait Progress {
    /// An item starts; `total` is its size in bytes when known.
    fn begin(&mut self, item: Item, name: &str, total: Option<u64>);
    /// `bytes` more of the current item are copied.
    fn advance(&mut self, bytes: u64);
    /// The current item ended.
    fn end(&mut self, outcome: Outcome);
}

/// A `Progress` that ignores everything.
pub struct Silent;

impl Progress for Silent {
    fn begin(&mut self, _: Item, _: &str, _: Option<u64>) {}
    fn advance(&mut self, _: u64) {}
    fn end(&mut self, _: Outcome) {}
}

/// An item that is there already: begun and ended at once.
pub fn exists(p: &mut dyn Progress, item: Item, name: &str, total: Option<u64>) {
    p.begin(item, name, total);
    p.end(Outcome::Exists);
}

/// A reader that reports the bytes it passes as progress of the current item.
pub struct ProgressReader<'a, R> {
    pub inner: R,
    pub progress: &'a mut dyn Progress,
}

impl<R: std::io::Read> std::io::Read for ProgressReader<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.progress.advance(n as u64);
        Ok(n)
    }
}
