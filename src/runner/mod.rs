//! Container runner: namespaces, rootfs, process, cgroups, life cycle.
use crate::cli::*;
use std::path::PathBuf;

pub fn cmd_run(_root: Option<PathBuf>, _a: RunArgs) -> anyhow::Result<i32> {
    anyhow::bail!("run: not implemented yet")
}

pub fn cmd_ps(_root: Option<PathBuf>, _a: PsArgs) -> anyhow::Result<i32> {
    anyhow::bail!("ps: not implemented yet")
}

pub fn cmd_start(_root: Option<PathBuf>, _a: CtrListArgs) -> anyhow::Result<i32> {
    anyhow::bail!("start: not implemented yet")
}

pub fn cmd_stop(_root: Option<PathBuf>, _a: StopArgs) -> anyhow::Result<i32> {
    anyhow::bail!("stop: not implemented yet")
}

pub fn cmd_restart(_root: Option<PathBuf>, _a: StopArgs) -> anyhow::Result<i32> {
    anyhow::bail!("restart: not implemented yet")
}

pub fn cmd_attach(_root: Option<PathBuf>, _a: CtrArgs) -> anyhow::Result<i32> {
    anyhow::bail!("attach: not implemented yet")
}

pub fn cmd_exec(_root: Option<PathBuf>, _a: ExecArgs) -> anyhow::Result<i32> {
    anyhow::bail!("exec: not implemented yet")
}

pub fn cmd_logs(_root: Option<PathBuf>, _a: CtrArgs) -> anyhow::Result<i32> {
    anyhow::bail!("logs: not implemented yet")
}

pub fn cmd_rm(_root: Option<PathBuf>, _a: RmArgs) -> anyhow::Result<i32> {
    anyhow::bail!("rm: not implemented yet")
}
