//! Thin fuser adapter and the `mount`/`umount` commands.
use crate::cli::*;

pub fn cmd_mount(_a: MountArgs) -> anyhow::Result<i32> {
    anyhow::bail!("mount: not implemented yet")
}
pub fn cmd_umount(_a: UmountArgs) -> anyhow::Result<i32> {
    anyhow::bail!("umount: not implemented yet")
}
pub fn cmd_layers(_a: LayersArgs) -> anyhow::Result<i32> {
    anyhow::bail!("layers: not implemented yet")
}
pub fn cmd_which(_a: WhichArgs) -> anyhow::Result<i32> {
    anyhow::bail!("which: not implemented yet")
}
