//! What a caller asks of `run` and `exec`: the docker flags as plain values, checked by
//! the runner (the command line that produces them belongs to the binary).
use crate::flags::{HostEntry, MountSpec, RestartPolicy, Tmpfs, Ulimit};
use std::net::IpAddr;
use std::path::PathBuf;

/// A new container: `image` (unless `rootfs`) then the command, as `docker run`.
#[derive(Debug, Clone, Default)]
pub struct RunOptions {
    /// Remove the container when it exits.
    pub rm: bool,
    /// Run in the background under a supervisor; `run` returns its id.
    pub detach: bool,
    pub interactive: bool,
    pub tty: bool,
    /// A tiny init as pid 1 that reaps zombies and forwards signals.
    pub init: bool,
    pub name: Option<String>,
    /// `HOST:CTR[:ro]` or `CTR` (anonymous).
    pub volumes: Vec<String>,
    /// `K=V`, or `K` to take the caller's value.
    pub env: Vec<String>,
    pub workdir: Option<String>,
    /// `UID[:GID]` or names from the image's /etc/passwd and /etc/group.
    pub user: Option<String>,
    pub hostname: Option<String>,
    /// `none` or `host`.
    pub network: String,
    pub memory: Option<String>,
    pub cpus: Option<String>,
    pub pids_limit: Option<i64>,
    /// The only lower layer, instead of an image.
    pub rootfs: Option<PathBuf>,
    /// Docker's `--log-opt`: `max-size=10m`, `max-file=2`.
    pub log_opts: Vec<String>,
    /// IMAGE (unless `rootfs`) then CMD ARG...
    pub args: Vec<String>,
    pub security: SecurityOptions,
    /// Replaces the image's entrypoint (and drops its cmd, as docker); "" clears it.
    pub entrypoint: Option<String>,
    /// Files of `K=V` lines, read before `env` (which wins).
    pub env_files: Vec<PathBuf>,
    /// When the supervisor starts the command again after it exits.
    pub restart: RestartPolicy,
    /// The container's root file system is mounted read-only (volumes and tmpfs stay
    /// writable).
    pub read_only: bool,
    pub tmpfs: Vec<Tmpfs>,
    /// `--mount`: binds and volumes join `volumes`, tmpfs mounts join `tmpfs`.
    pub mounts: Vec<MountSpec>,
    pub ulimits: Vec<Ulimit>,
    /// Signal `stop` sends first (default SIGTERM).
    pub stop_signal: Option<i32>,
    /// Seconds `stop` waits before SIGKILL (default 10).
    pub stop_timeout: Option<u64>,
    pub labels: Vec<(String, String)>,
    /// Extra /etc/hosts lines.
    pub add_hosts: Vec<HostEntry>,
    /// Name servers for /etc/resolv.conf instead of the host's.
    pub dns: Vec<IpAddr>,
    /// Size of /dev/shm in bytes (default 64 MiB).
    pub shm_size: Option<u64>,
    /// `--device HOST[:CONTAINER[:PERMS]]`, checked (and the host node looked up) at
    /// create.
    pub devices: Vec<String>,
    /// `--device-cgroup-rule 'TYPE MAJOR:MINOR ACCESS'`.
    pub device_cgroup_rules: Vec<String>,
}

/// Capabilities, seccomp and privileges of a new container, as docker's flags (shared by
/// every verb that creates one).
#[derive(Debug, Clone, Default)]
pub struct SecurityOptions {
    /// `seccomp=PROFILE.json|unconfined`, `no-new-privileges[=true|false]`.
    pub security_opt: Vec<String>,
    /// Capability names (with or without `CAP_`, any case) or `ALL`.
    pub cap_add: Vec<String>,
    pub cap_drop: Vec<String>,
    /// Every capability, no seccomp filter, no masked paths, writable /sys and /proc/sys.
    pub privileged: bool,
}

/// A new process in a running container, as `docker exec`.
#[derive(Debug, Clone, Default)]
pub struct ExecOptions {
    pub interactive: bool,
    pub tty: bool,
    pub env: Vec<String>,
    pub workdir: Option<String>,
    pub user: Option<String>,
    pub container: String,
    pub cmd: Vec<String>,
}

/// How `run` ended.
#[derive(Debug)]
pub enum RunOutcome {
    /// `detach`: the container runs on under its supervisor; its id.
    Detached(String),
    /// The container's main process exited with this status (128+N for signal N).
    Exited(i32),
    /// The container was created but could not start; nothing of it is left.
    NotStarted(crate::error::Error),
    /// `detach`: the container's command could not run (missing, not executable); the
    /// container exited with this status (127, 126) and stays, as docker's does.
    NotRun(i32, crate::error::Error),
}
