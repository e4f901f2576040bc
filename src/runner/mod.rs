//! Container runner: namespaces, rootfs, process, cgroups, life cycle.
//!
//! `run` writes a record under the store root and becomes (or, with `-d`, forks) the
//! container's supervisor; every other command reads and updates that record.
pub mod cgroups;
pub mod exec;
pub mod idmap;
pub mod initlayer;
pub mod lifecycle;
pub mod linux;
pub mod process;
pub mod rootfs;
pub mod spec;
pub mod state;
pub mod supervisor;
pub mod tty;
pub mod union;

use crate::cli::*;
use std::path::PathBuf;

pub use lifecycle::{pause, unpause};
pub use state::{Container, Status, find_container};

/// The store root: `--root`/`UNIONCTL_ROOT` if given, else /var/lib/unionctl as root and
/// `$XDG_DATA_HOME/unionctl` (or `~/.local/share/unionctl`) otherwise.
pub fn store_root(opt: Option<PathBuf>) -> PathBuf {
    if let Some(p) = opt {
        // Absolute, so that a detached supervisor (which leaves the caller's working
        // directory) finds it again.
        return std::path::absolute(&p).unwrap_or(p);
    }
    // SAFETY: getter.
    if unsafe { libc::geteuid() } == 0 {
        return PathBuf::from("/var/lib/unionctl");
    }
    if let Some(x) = std::env::var_os("XDG_DATA_HOME").filter(|x| !x.is_empty()) {
        return PathBuf::from(x).join("unionctl");
    }
    let home = std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/tmp"));
    home.join(".local/share/unionctl")
}

pub fn cmd_run(root: Option<PathBuf>, a: RunArgs) -> anyhow::Result<i32> {
    lifecycle::run(&store_root(root), a)
}

pub fn cmd_ps(root: Option<PathBuf>, a: ListArgs) -> anyhow::Result<i32> {
    lifecycle::ps(&store_root(root), a)
}

pub fn cmd_start(root: Option<PathBuf>, a: CtrListArgs) -> anyhow::Result<i32> {
    lifecycle::start(&store_root(root), a)
}

pub fn cmd_stop(root: Option<PathBuf>, a: StopArgs) -> anyhow::Result<i32> {
    lifecycle::stop(&store_root(root), a)
}

pub fn cmd_restart(root: Option<PathBuf>, a: StopArgs) -> anyhow::Result<i32> {
    lifecycle::restart(&store_root(root), a)
}

pub fn cmd_attach(root: Option<PathBuf>, a: AttachArgs) -> anyhow::Result<i32> {
    lifecycle::attach(&store_root(root), a)
}

pub fn cmd_exec(root: Option<PathBuf>, a: ExecArgs) -> anyhow::Result<i32> {
    exec::exec(&store_root(root), a)
}

pub fn cmd_logs(root: Option<PathBuf>, a: CtrArgs) -> anyhow::Result<i32> {
    lifecycle::logs(&store_root(root), a)
}

pub fn cmd_rm(root: Option<PathBuf>, a: RmArgs) -> anyhow::Result<i32> {
    lifecycle::rm(&store_root(root), a)
}

/// Prints a phase and the milliseconds since the first call when UNIONCTL_TRACE is set
/// (to see where container start-up time goes).
pub fn trace(phase: &str) {
    use std::sync::OnceLock;
    use std::time::Instant;
    static START: OnceLock<Option<Instant>> = OnceLock::new();
    if let Some(t0) =
        START.get_or_init(|| std::env::var_os("UNIONCTL_TRACE").map(|_| Instant::now()))
    {
        eprintln!("[{:7.2} ms] {phase}", t0.elapsed().as_secs_f64() * 1000.0);
    }
}
