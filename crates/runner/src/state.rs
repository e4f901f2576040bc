//! Container records under the store root: `containers/<id>/state.json` (the contract with
//! the image store, see ARCHITECTURE.md), written via temp + rename, guarded by flock.
use crate::error::{Context, Result, io};
use crate::sys::FileLock;
use serde::{Deserialize, Serialize};
use std::fs;
use std::path::{Path, PathBuf};

#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Created,
    Running,
    Exited,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Created => "created",
            Status::Running => "running",
            Status::Exited => "exited",
        }
    }
}

/// A bind mount from the host into the container.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct Volume {
    pub host: PathBuf,
    pub container: String,
    pub readonly: bool,
    /// Made by unionctl for `-v /ctr/path` (anonymous); removed by `rm -v`.
    #[serde(default)]
    pub anonymous: bool,
    /// A named volume (`-v NAME:/path`): `host` is its `_data` dir.
    #[serde(default)]
    pub name: Option<String>,
}

/// How the container was asked to run; everything `start` needs to run it again.
#[derive(Serialize, Deserialize, Clone, Debug, Default)]
pub struct Config {
    /// From the image; the process runs `entrypoint + cmd`.
    #[serde(default)]
    pub entrypoint: Vec<String>,
    pub cmd: Vec<String>,
    pub env: Vec<String>,
    pub workdir: String,
    /// `UID[:GID]` or `NAME[:GROUP]` as given; resolved inside the rootfs at start.
    pub user: Option<String>,
    pub hostname: String,
    #[serde(default)]
    pub tty: bool,
    #[serde(default)]
    pub interactive: bool,
    #[serde(default)]
    pub init: bool,
    #[serde(default)]
    pub network: String,
    #[serde(default)]
    pub volumes: Vec<Volume>,
    #[serde(default)]
    pub memory: Option<u64>,
    #[serde(default)]
    pub cpus: Option<f64>,
    #[serde(default)]
    pub pids_limit: Option<i64>,
    #[serde(default)]
    pub auto_remove: bool,
    /// `--log-opt max-size` / `max-file` (None: the defaults of `logfile`).
    #[serde(default)]
    pub log_max_size: Option<u64>,
    #[serde(default)]
    pub log_max_files: Option<u32>,
    /// Capabilities, no_new_privs and seccomp in effect; none in records made before
    /// they were recorded.
    #[serde(default)]
    pub security: Option<Security>,
    #[serde(default)]
    pub restart: crate::flags::RestartPolicy,
    #[serde(default)]
    pub read_only: bool,
    #[serde(default)]
    pub tmpfs: Vec<crate::flags::Tmpfs>,
    #[serde(default)]
    pub ulimits: Vec<crate::flags::Ulimit>,
    /// Signal number `stop` sends first (None: SIGTERM).
    #[serde(default)]
    pub stop_signal: Option<i32>,
    /// Seconds `stop` waits before SIGKILL (None: 10).
    #[serde(default)]
    pub stop_timeout: Option<u64>,
    #[serde(default)]
    pub labels: std::collections::BTreeMap<String, String>,
    #[serde(default)]
    pub add_hosts: Vec<crate::flags::HostEntry>,
    #[serde(default)]
    pub dns: Vec<std::net::IpAddr>,
    #[serde(default)]
    pub shm_size: Option<u64>,
    /// `--device`: host nodes made in the container and allowed in its device cgroup.
    #[serde(default)]
    pub devices: Vec<crate::flags::DeviceMapping>,
    /// `--device-cgroup-rule`: more lines allowed in the device cgroup.
    #[serde(default)]
    pub device_cgroup_rules: Vec<crate::flags::DeviceRule>,
}

/// What a container's processes may do, as decided at `run`.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
pub struct Security {
    pub privileged: bool,
    pub no_new_privileges: bool,
    /// Capability names: the bounding set, and root's effective set.
    pub capabilities: Vec<String>,
    /// The seccomp profile in effect: its file, `builtin`, or `unconfined`.
    pub seccomp: String,
    /// Digest of the compiled filter (`seccomp.bpf` beside the record).
    pub seccomp_digest: Option<String>,
}

impl Config {
    /// The argv the container runs.
    pub fn argv(&self) -> Vec<String> {
        self.entrypoint
            .iter()
            .chain(self.cmd.iter())
            .cloned()
            .collect()
    }
}

#[derive(Serialize, Deserialize, Clone, Debug)]
pub struct Container {
    pub id: String,
    pub name: String,
    pub image: Option<String>,
    /// The reference the image was asked for by (`alpine:3`), for `ps`.
    #[serde(default)]
    pub image_ref: Option<String>,
    pub rootfs: Option<PathBuf>,
    /// Lower layers, top first.
    pub lowers: Vec<PathBuf>,
    pub created: String,
    pub status: Status,
    /// Host pid of the container's pid 1 while running.
    pub pid: Option<i32>,
    pub exit_code: Option<i32>,
    pub config: Config,
    /// Extra fields (additive to the contract).
    #[serde(default)]
    pub started_at: Option<String>,
    #[serde(default)]
    pub finished_at: Option<String>,
    /// Start time (clock ticks since boot, /proc/PID/stat field 22) of `pid`, against pid reuse.
    #[serde(default)]
    pub pid_start: Option<u64>,
    /// Host pid of the supervising `unionctl` process and its start time.
    #[serde(default)]
    pub supervisor_pid: Option<i32>,
    #[serde(default)]
    pub supervisor_start: Option<u64>,
    /// Rootless: the supervisor's mount namespace (`mnt:[N]`), where the union daemon
    /// lives; lets a later command end that daemon if the supervisor was killed.
    #[serde(default)]
    pub union_mnt_ns: Option<String>,
    #[serde(default)]
    pub rootless: bool,
    #[serde(default)]
    pub paused: bool,
    /// cgroup directories made for this container (removed when it stops).
    #[serde(default)]
    pub cgroups: Vec<PathBuf>,
    /// How often the supervisor started the command again (`--restart`).
    #[serde(default)]
    pub restart_count: u32,
    /// Set by `stop`/`kill`/`rm -f`: the restart policy no longer applies (docker's
    /// "manually stopped"); cleared by `start`.
    #[serde(default)]
    pub stopped_by_user: bool,
    /// Directory of this record (not stored).
    #[serde(skip)]
    pub dir: PathBuf,
}

impl Container {
    /// A new record in state `created`: no image or rootfs yet, nothing run.
    pub fn new(id: String, name: String, config: Config, dir: PathBuf) -> Container {
        Container {
            id,
            name,
            image: None,
            image_ref: None,
            rootfs: None,
            lowers: vec![],
            created: crate::timestamp::now_nanos(),
            status: Status::Created,
            pid: None,
            exit_code: None,
            config,
            started_at: None,
            finished_at: None,
            pid_start: None,
            supervisor_pid: None,
            supervisor_start: None,
            union_mnt_ns: None,
            // SAFETY: getter.
            rootless: unsafe { libc::geteuid() } != 0,
            paused: false,
            cgroups: vec![],
            restart_count: 0,
            stopped_by_user: false,
            dir,
        }
    }

    pub fn short_id(&self) -> &str {
        &self.id[..12.min(self.id.len())]
    }
    pub fn upper(&self) -> PathBuf {
        self.dir.join("upper")
    }
    pub fn work(&self) -> PathBuf {
        self.dir.join("work")
    }
    pub fn merged(&self) -> PathBuf {
        self.dir.join("merged")
    }
    /// The container's output, as records (see `logfile`); rotated to `ctr.log.N`.
    pub fn log_path(&self) -> PathBuf {
        self.dir.join("ctr.log")
    }
    /// A detached supervisor's own errors.
    pub fn supervisor_log_path(&self) -> PathBuf {
        self.dir.join("supervisor.log")
    }
    pub fn state_path(&self) -> PathBuf {
        self.dir.join("state.json")
    }
    pub fn attach_socket(&self) -> PathBuf {
        self.dir.join("attach.sock")
    }
    /// The compiled seccomp filter every process of the container loads.
    pub fn seccomp_path(&self) -> PathBuf {
        self.dir.join("seccomp.bpf")
    }

    /// Writes state.json atomically and durably (`sys::durable`); readers never see half a
    /// record.
    pub fn save(&self) -> Result<()> {
        let data = serde_json::to_vec_pretty(self)?;
        crate::sys::durable::write_file(&self.state_path(), &data, 0o644)
            .with_context(|| format!("saving container {}", self.id))
    }

    pub fn load(dir: &Path) -> Result<Container> {
        let path = dir.join("state.json");
        let data = fs::read(&path).map_err(io("reading", &path))?;
        let mut c: Container = serde_json::from_slice(&data)
            .with_context(|| format!("{}: bad container record", path.display()))?;
        c.dir = dir.to_path_buf();
        Ok(c)
    }

    /// Re-reads the record under its lock, lets `f` change it, and saves it.
    pub fn update<F: FnOnce(&mut Container)>(&mut self, f: F) -> Result<()> {
        let _lock = FileLock::exclusive(&self.dir.join(".lock"))?;
        let mut fresh = Container::load(&self.dir)?;
        f(&mut fresh);
        fresh.save()?;
        *self = fresh;
        Ok(())
    }

    /// Whether the container's pid 1 is alive (and is still the same process).
    pub fn pid_alive(&self) -> bool {
        match (self.pid, self.pid_start) {
            (Some(pid), start) => process_alive(pid, start),
            _ => false,
        }
    }

    pub fn supervisor_alive(&self) -> bool {
        match self.supervisor_pid {
            Some(pid) => process_alive(pid, self.supervisor_start),
            None => false,
        }
    }

    /// Status as shown to users: a record that says running but whose supervisor is gone
    /// (killed, machine rebooted) is exited.
    pub fn live_status(&self) -> Status {
        if self.status == Status::Running && !self.supervisor_alive() && !self.pid_alive() {
            Status::Exited
        } else {
            self.status
        }
    }
}

pub use crate::sys::proc::{proc_start_time, proc_state, process_alive};

pub fn containers_dir(root: &Path) -> PathBuf {
    root.join("containers")
}

/// Every container record under `root`, oldest first.
pub fn list(root: &Path) -> Result<Vec<Container>> {
    let dir = containers_dir(root);
    let mut out = Vec::new();
    let entries = match fs::read_dir(&dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
        Err(e) => return Err(io("listing", &dir)(e)),
    };
    for entry in entries {
        let entry = entry?;
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if !is_container_id(&name) {
            continue;
        }
        // A record being created or removed may be half there: skip it.
        if let Ok(c) = Container::load(&entry.path()) {
            out.push(c);
        }
    }
    out.sort_by(|a, b| a.created.cmp(&b.created).then(a.id.cmp(&b.id)));
    Ok(out)
}

fn is_container_id(name: &str) -> bool {
    name.len() == 64 && name.bytes().all(|b| b.is_ascii_hexdigit())
}

/// Removes what killed commands left in the containers dir: a container dir without a
/// state.json (a `run` killed between its mkdir and its first save: every record is
/// created under the containers lock and state.json is only ever replaced by rename, so
/// none is being made now) and the state.json temps of dead writers. The caller holds
/// `containers/.lock`.
pub fn sweep_leftovers_locked(root: &Path) {
    let Ok(entries) = fs::read_dir(containers_dir(root)) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        if !is_container_id(&name.to_string_lossy()) {
            continue;
        }
        let dir = entry.path();
        if !dir.join("state.json").exists() {
            log::info!("removing {}: a half-created container", dir.display());
            let _ = fs::remove_dir_all(&dir);
            continue;
        }
        for tmp in crate::sys::owned_temp::dead_in(&dir) {
            let _ = fs::remove_file(&tmp);
        }
    }
}

/// `sweep_leftovers_locked` under the containers lock.
pub fn sweep_leftovers(root: &Path) -> Result<()> {
    let dir = containers_dir(root);
    if !dir.is_dir() {
        return Ok(());
    }
    let _lock = FileLock::exclusive(&dir.join(".lock"))?;
    sweep_leftovers_locked(root);
    Ok(())
}

/// Finds a container by exact name, exact id or unique id prefix.
pub fn find_container(root: &Path, name_or_id: &str) -> Result<Container> {
    if name_or_id.is_empty() {
        bail!("empty container name");
    }
    let all = list(root)?;
    pick(all, name_or_id)
}

fn pick(all: Vec<Container>, key: &str) -> Result<Container> {
    if let Some(c) = all.iter().find(|c| c.name == key || c.id == key) {
        return Ok(c.clone());
    }
    let mut hits: Vec<&Container> = all.iter().filter(|c| c.id.starts_with(key)).collect();
    match hits.len() {
        0 => Err(crate::error::Error::no_such("container", key)),
        1 => Ok(hits.remove(0).clone()),
        n => bail!("container id prefix {key:?} is ambiguous ({n} containers match)"),
    }
}

/// Checks a user-given container name (Docker's rule): `spec::is_docker_name`, and not
/// what a container id looks like (64 hex digits), so a name never hides an id.
pub fn validate_container_name(name: &str) -> Result<()> {
    if !crate::spec::is_docker_name(name) {
        bail!("invalid container name {name:?}: use [a-zA-Z0-9][a-zA-Z0-9_.-]*");
    }
    if name.len() == 64 && name.bytes().all(|b| b.is_ascii_hexdigit()) {
        bail!("invalid container name {name:?}: looks like a container id");
    }
    Ok(())
}

/// 64 random hex digits.
pub fn new_id() -> Result<String> {
    let mut buf = [0u8; 32];
    let mut f = fs::File::open("/dev/urandom").map_err(io("opening", Path::new("/dev/urandom")))?;
    std::io::Read::read_exact(&mut f, &mut buf)
        .map_err(io("reading", Path::new("/dev/urandom")))?;
    Ok(hex::encode(buf))
}

/// A readable name derived from the id, e.g. "brave_turing".
pub fn generated_name(id: &str) -> String {
    const ADJ: [&str; 16] = [
        "brave", "calm", "eager", "fancy", "gentle", "happy", "jolly", "keen", "lucid", "merry",
        "nifty", "proud", "quiet", "silly", "tender", "witty",
    ];
    const NOUN: [&str; 16] = [
        "babbage", "curie", "darwin", "euler", "fermi", "gauss", "hopper", "kepler", "lovelace",
        "noether", "pascal", "ritchie", "shannon", "thompson", "turing", "wozniak",
    ];
    let b = hex::decode(&id[..6.min(id.len())]).unwrap_or_default();
    let a = b.first().copied().unwrap_or(0) as usize % ADJ.len();
    let n = b.get(1).copied().unwrap_or(0) as usize % NOUN.len();
    format!("{}_{}_{}", ADJ[a], NOUN[n], &id[..4.min(id.len())])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ctr(id: &str, name: &str) -> Container {
        Container::new(id.into(), name.into(), Config::default(), PathBuf::new())
    }

    #[test]
    fn pick_by_name_id_and_prefix() {
        let a = ctr(&"ab".repeat(32), "web");
        let b = ctr(&format!("ac{}", "0".repeat(62)), "db");
        let all = vec![a.clone(), b.clone()];
        assert_eq!(pick(all.clone(), "web").unwrap().id, a.id);
        assert_eq!(pick(all.clone(), "abab").unwrap().id, a.id);
        assert_eq!(pick(all.clone(), &b.id).unwrap().name, "db");
        let e = pick(all.clone(), "a").unwrap_err().to_string();
        assert!(e.contains("ambiguous"), "{e}");
        let e = pick(all, "zz").unwrap_err().to_string();
        assert!(e.contains(r#"container "zz": no such container"#), "{e}");
    }

    #[test]
    fn names() {
        assert!(validate_container_name("web-1.a_b").is_ok());
        assert!(validate_container_name("-x").is_err());
        assert!(validate_container_name("a/b").is_err());
        assert!(validate_container_name("").is_err());
        let id = "0f".repeat(32);
        assert!(validate_container_name(&id).is_err());
        assert!(validate_container_name(&generated_name(&id)).is_ok());
    }
}
