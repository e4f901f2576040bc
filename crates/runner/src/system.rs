//! `info`, `version`, `system df`, `system prune`: the store and the host as a whole.
use crate::error::Result;
use crate::state::Status;
use crate::{cgroups, image, lifecycle, volumes};
use serde::Serialize;
use std::path::{Path, PathBuf};

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct Version {
    pub version: String,
    pub os: String,
    pub arch: String,
    pub kernel_version: String,
}

pub fn version() -> Version {
    Version {
        version: env!("CARGO_PKG_VERSION").to_string(),
        os: std::env::consts::OS.to_string(),
        arch: oci_arch().to_string(),
        kernel_version: kernel_release(),
    }
}

/// The architecture as OCI and docker name it (amd64, arm64, ...).
fn oci_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "x86" => "386",
        "powerpc64" => "ppc64le",
        other => other,
    }
}

fn kernel_release() -> String {
    nix::sys::utsname::uname()
        .map(|u| u.release().to_string_lossy().into_owned())
        .unwrap_or_default()
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct Info {
    pub containers: usize,
    pub containers_running: usize,
    pub containers_paused: usize,
    pub containers_stopped: usize,
    pub images: usize,
    pub volumes: usize,
    pub storage_driver: String,
    pub root_dir: PathBuf,
    pub rootless: bool,
    /// `1` (v1 controllers, hybrid host) or `2`.
    pub cgroup_version: String,
    /// What this host cannot enforce, as docker's.
    pub warnings: Vec<String>,
    pub kernel_version: String,
    pub operating_system: String,
    pub architecture: String,
    pub ncpu: usize,
    pub mem_total: u64,
    pub server_version: String,
}

pub fn info(root: &Path) -> Result<Info> {
    let all = lifecycle::list(root, true)?;
    let running = all.iter().filter(|c| c.status == Status::Running);
    let paused = running.clone().filter(|c| c.paused).count();
    let running = running.count();
    let images = image::listing::images(root)?
        .into_iter()
        .map(|r| r.id)
        .collect::<std::collections::HashSet<_>>()
        .len();
    let mounts = cgroups::Mounts::read();
    let v2_only = mounts.v1.is_empty() && mounts.v2.is_some();
    // SAFETY: getter.
    let rootless = unsafe { libc::geteuid() } != 0;
    // Rootless containers have no device cgroup and need none (see cgroups::create).
    let warnings = cgroups::devices_unrestricted(&mounts)
        .filter(|_| !rootless)
        .map(|w| format!("containers' {w}"))
        .into_iter()
        .collect();
    Ok(Info {
        containers: all.len(),
        containers_running: running - paused,
        containers_paused: paused,
        containers_stopped: all.len() - running,
        images,
        volumes: volumes::list(root)?.len(),
        storage_driver: "unionctl (FUSE union, overlay format)".into(),
        root_dir: root.to_path_buf(),
        rootless,
        cgroup_version: if v2_only { "2" } else { "1" }.into(),
        warnings,
        kernel_version: kernel_release(),
        operating_system: os_name(),
        architecture: std::env::consts::ARCH.to_string(),
        ncpu: std::thread::available_parallelism().map_or(1, |n| n.get()),
        mem_total: crate::stats::host_memory(),
        server_version: env!("CARGO_PKG_VERSION").to_string(),
    })
}

/// PRETTY_NAME of /etc/os-release.
fn os_name() -> String {
    std::fs::read_to_string("/etc/os-release")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("PRETTY_NAME="))
                .map(|v| v.trim_matches('"').to_string())
        })
        .unwrap_or_else(|| "Linux".into())
}

/// One row of `system df`.
#[derive(Debug, Clone, Default, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct UsageRow {
    pub kind: String,
    pub total: usize,
    pub active: usize,
    pub size: u64,
    pub reclaimable: u64,
}

/// Images, containers (their upper layers) and named volumes: count, in use, bytes.
pub fn df(root: &Path) -> Result<Vec<UsageRow>> {
    let i = image::prune::usage(root)?;
    let images = UsageRow {
        kind: "Images".into(),
        total: i.total,
        active: i.active,
        size: i.size,
        reclaimable: i.reclaimable,
    };
    let mut containers = UsageRow {
        kind: "Containers".into(),
        ..Default::default()
    };
    for c in lifecycle::list(root, true)? {
        let size = volumes::du(&c.upper());
        containers.total += 1;
        containers.size += size;
        if c.status == Status::Running {
            containers.active += 1;
        } else {
            containers.reclaimable += size;
        }
    }
    let mut vols = UsageRow {
        kind: "Local Volumes".into(),
        ..Default::default()
    };
    for v in volumes::list(root)? {
        let size = volumes::du(&v.mountpoint);
        vols.total += 1;
        vols.size += size;
        if volumes::users(root, &v.name)?.is_empty() {
            vols.reclaimable += size;
        } else {
            vols.active += 1;
        }
    }
    Ok(vec![images, containers, vols])
}

/// What `system prune` removed.
#[derive(Debug, Clone, Default)]
pub struct Pruned {
    pub containers: Vec<String>,
    pub images: Vec<String>,
    pub volumes: Vec<String>,
    pub reclaimed: u64,
}

/// Stopped containers, then dangling images (every unused one with `all_images`), and
/// with `with_volumes` the volumes no container uses.
pub fn prune(root: &Path, all_images: bool, with_volumes: bool) -> Result<Pruned> {
    let (containers, mut reclaimed) = lifecycle::prune(root)?;
    let mut out = Pruned {
        containers,
        ..Default::default()
    };
    if with_volumes {
        let (v, b) = volumes::prune(root)?;
        out.volumes = v;
        reclaimed += b;
    }
    let i = image::prune::prune(root, all_images)?;
    out.images = i.lines;
    out.reclaimed = reclaimed + i.reclaimed;
    Ok(out)
}
