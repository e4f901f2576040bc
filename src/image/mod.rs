//! Image store: OCI layout, layers, commit, tag, save/load, export/import.
use crate::cli::*;
use std::path::PathBuf;

pub fn cmd_images(_root: Option<PathBuf>, _a: ImagesArgs) -> anyhow::Result<i32> {
    anyhow::bail!("images: not implemented yet")
}

pub fn cmd_tag(_root: Option<PathBuf>, _a: TagArgs) -> anyhow::Result<i32> {
    anyhow::bail!("tag: not implemented yet")
}

pub fn cmd_rmi(_root: Option<PathBuf>, _a: RmiArgs) -> anyhow::Result<i32> {
    anyhow::bail!("rmi: not implemented yet")
}

pub fn cmd_history(_root: Option<PathBuf>, _a: ImgArgs) -> anyhow::Result<i32> {
    anyhow::bail!("history: not implemented yet")
}

pub fn cmd_inspect(_root: Option<PathBuf>, _a: InspectArgs) -> anyhow::Result<i32> {
    anyhow::bail!("inspect: not implemented yet")
}

pub fn cmd_commit(_root: Option<PathBuf>, _a: CommitArgs) -> anyhow::Result<i32> {
    anyhow::bail!("commit: not implemented yet")
}

pub fn cmd_diff(_root: Option<PathBuf>, _a: CtrArgs) -> anyhow::Result<i32> {
    anyhow::bail!("diff: not implemented yet")
}

pub fn cmd_save(_root: Option<PathBuf>, _a: SaveArgs) -> anyhow::Result<i32> {
    anyhow::bail!("save: not implemented yet")
}

pub fn cmd_load(_root: Option<PathBuf>, _a: LoadArgs) -> anyhow::Result<i32> {
    anyhow::bail!("load: not implemented yet")
}

pub fn cmd_export(_root: Option<PathBuf>, _a: ExportArgs) -> anyhow::Result<i32> {
    anyhow::bail!("export: not implemented yet")
}

pub fn cmd_import(_root: Option<PathBuf>, _a: ImportArgs) -> anyhow::Result<i32> {
    anyhow::bail!("import: not implemented yet")
}

/// What `unionctl run IMAGE` needs from the store: the image's unpacked layer dirs
/// (top layer first, ready to be lower layers) and its run configuration.
#[derive(Debug, Clone, Default)]
pub struct ImageRunInfo {
    /// Full image id (sha256 hex of the config blob).
    pub id: String,
    /// Unpacked layer directories, top-most first (the order of `--lower`).
    pub lowers: Vec<PathBuf>,
    pub entrypoint: Vec<String>,
    pub cmd: Vec<String>,
    pub env: Vec<String>,
    pub workdir: Option<String>,
    pub user: Option<String>,
}

/// Resolves an image reference (name[:tag], id or id prefix) for `run`.
pub fn resolve_for_run(_root: &std::path::Path, reference: &str) -> anyhow::Result<ImageRunInfo> {
    anyhow::bail!("image {reference:?}: no such image")
}
