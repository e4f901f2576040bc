//! Life cycle commands: run, ps, start, stop, restart, attach, logs, rm, pause/unpause.
use super::flags::MountSpec;
use super::logfile::{LogOptions, LogReader};
use super::options::{RunOptions, RunOutcome};
use super::rootfs::secure_join;
use super::spec;
use super::state::{self, Config, Container, Status, Volume};
use super::supervisor::{self, Stdio};
use super::{cgroups, linux};
use crate::error::{Context, Error, Result, io};
use crate::sys::FileLock;
use std::fs;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// What `run` will create, fully checked before anything is written.
struct NewContainer {
    image: Option<String>,
    image_ref: Option<String>,
    rootfs: Option<PathBuf>,
    lowers: Vec<PathBuf>,
    name: Option<String>,
    config: Config,
    /// The compiled seccomp filter, written beside the record.
    filter: Option<super::seccomp::Filter>,
}

/// Reads `path` from the first lower layer (top first) that has it.
fn read_in_layers(lowers: &[PathBuf], path: &str) -> String {
    lowers
        .iter()
        .find_map(|l| fs::read_to_string(secure_join(l, path)).ok())
        .unwrap_or_default()
}

fn validate_hostname(h: &str) -> Result<()> {
    let ok = !h.is_empty()
        && h.len() <= 63
        && h.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.')
        && !h.starts_with('-');
    if !ok {
        bail!("invalid hostname {h:?}: use letters, digits, '-' and '.', at most 63");
    }
    Ok(())
}

fn plan_run(root: &Path, a: &RunOptions) -> Result<NewContainer> {
    let mut config = Config::default();
    let (image, rootfs, lowers, cmd_args) = match &a.rootfs {
        Some(dir) => {
            let meta = fs::metadata(dir).map_err(io("--rootfs", dir))?;
            if !meta.is_dir() {
                bail!("--rootfs {}: not a directory", dir.display());
            }
            let abs = fs::canonicalize(dir).map_err(io("--rootfs", dir))?;
            (None, Some(abs.clone()), vec![abs], a.args.clone())
        }
        None => {
            let Some(reference) = a.args.first() else {
                bail!("give an IMAGE or --rootfs DIR");
            };
            let info = crate::image::resolve_for_run(root, reference)?;
            config.entrypoint = info.entrypoint.clone();
            config.cmd = info.cmd.clone();
            config.env = info.env.clone();
            config.workdir = info.workdir.clone().unwrap_or_default();
            config.user = info.user.clone().filter(|u| !u.is_empty());
            (
                Some(info.id.clone()),
                None,
                info.lowers.clone(),
                a.args[1..].to_vec(),
            )
        }
    };
    for l in &lowers {
        if !l.is_dir() {
            bail!("layer {}: not a directory", l.display());
        }
    }
    if let Some(ep) = &a.entrypoint {
        // As docker: a new entrypoint drops the image's cmd; "" clears the entrypoint.
        config.entrypoint = if ep.is_empty() {
            vec![]
        } else {
            vec![ep.clone()]
        };
        config.cmd = vec![];
    }
    if !cmd_args.is_empty() {
        config.cmd = cmd_args;
    }
    if config.argv().is_empty() {
        bail!("no command given and the image has none");
    }
    match a.network.as_str() {
        "none" | "host" => config.network = a.network.clone(),
        other => bail!("--network {other:?}: supported are none and host"),
    }
    let mut volumes = Vec::new();
    for v in &a.volumes {
        volumes.push((spec::parse_volume(v)?, format!("bad volume spec {v:?}")));
    }
    for m in &a.mounts {
        if let MountSpec::Volume(v) = m {
            volumes.push((v.clone(), format!("--mount target={}", v.container)));
        }
    }
    for (vol, what) in volumes {
        if !vol.anonymous && vol.name.is_none() {
            fs::metadata(&vol.host)
                .with_context(|| format!("{what}: host path {}", vol.host.display()))?;
        }
        config.volumes.push(vol);
    }
    if spec::env_get(&config.env, "PATH").is_none() {
        config.env.insert(0, format!("PATH={}", spec::DEFAULT_PATH));
    }
    for f in &a.env_files {
        for entry in crate::flags::read_env_file(f)? {
            spec::env_set(&mut config.env, &entry);
        }
    }
    for e in &a.env {
        if let Some(entry) = spec::parse_env(e, |k| std::env::var(k).ok())? {
            spec::env_set(&mut config.env, &entry);
        }
    }
    if let Some(w) = &a.workdir {
        if !w.starts_with('/') {
            bail!("-w {w:?}: the working directory must be an absolute path");
        }
        config.workdir = w.clone();
    }
    if config.workdir.is_empty() {
        config.workdir = "/".into();
    }
    if let Some(u) = &a.user {
        config.user = Some(u.clone());
    }
    if let Some(u) = &config.user {
        let passwd = read_in_layers(&lowers, "/etc/passwd");
        let group = read_in_layers(&lowers, "/etc/group");
        spec::resolve_user(u, &passwd, &group)?;
    }
    apply_limits(&mut config, a)?;
    if !a.log_opts.is_empty() {
        let l = super::logfile::LogLimits::from_opts(&a.log_opts)?;
        config.log_max_size = Some(l.max_size);
        config.log_max_files = Some(l.max_files);
    }
    if let Some(n) = &a.name {
        state::validate_container_name(n)?;
    }
    apply_docker_flags(&mut config, a)?;
    config.tty = a.tty;
    config.interactive = a.interactive;
    config.init = a.init;
    config.auto_remove = a.rm;
    crate::trace::phase("planned");
    let (security, filter) = super::security::plan(root, &a.security)?;
    crate::trace::phase("seccomp filter ready");
    config.security = Some(security);
    Ok(NewContainer {
        image_ref: image.as_ref().and(a.args.first().cloned()),
        image,
        rootfs,
        lowers,
        name: a.name.clone(),
        config,
        filter,
    })
}

/// The hostname and the resource limits of `run`, checked.
fn apply_limits(config: &mut Config, a: &RunOptions) -> Result<()> {
    if let Some(h) = &a.hostname {
        validate_hostname(h)?;
        config.hostname = h.clone();
    }
    if let Some(m) = &a.memory {
        config.memory = Some(spec::parse_bytes(m).map_err(|e| invalid!("--memory: {e}"))?);
    }
    if let Some(c) = &a.cpus {
        let n = std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1);
        config.cpus = Some(spec::parse_cpus(c, n)?);
    }
    if let Some(p) = a.pids_limit {
        if p == 0 || p < -1 {
            bail!("--pids-limit {p}: must be positive (or -1 for no limit)");
        }
        config.pids_limit = Some(p);
    }
    Ok(())
}

/// `--restart`, `--read-only`, `--tmpfs`, `--ulimit`, `--stop-*`, `--label`,
/// `--add-host`, `--dns`, `--shm-size` (each already a checked value), `--device` and
/// `--device-cgroup-rule` (parsed here: a bad value is the library's error).
fn apply_docker_flags(config: &mut Config, a: &RunOptions) -> Result<()> {
    if a.rm && a.restart != crate::flags::RestartPolicy::No {
        bail!("--restart {} cannot go with --rm", a.restart);
    }
    config.restart = a.restart;
    config.read_only = a.read_only;
    let mount_tmpfs = a.mounts.iter().filter_map(|m| match m {
        MountSpec::Tmpfs(t) => Some(t),
        MountSpec::Volume(_) => None,
    });
    config.tmpfs = a.tmpfs.iter().chain(mount_tmpfs).cloned().collect();
    let mut targets: Vec<&str> = config
        .volumes
        .iter()
        .map(|v| v.container.as_str())
        .collect();
    targets.extend(config.tmpfs.iter().map(|t| t.target.as_str()));
    targets.sort();
    if let Some(w) = targets.windows(2).find(|w| w[0] == w[1]) {
        bail!("duplicate mount point {}", w[0]);
    }
    config.ulimits = a.ulimits.clone();
    config.stop_signal = a.stop_signal;
    config.stop_timeout = a.stop_timeout;
    config.labels = a.labels.iter().cloned().collect();
    config.add_hosts = a.add_hosts.clone();
    config.dns = a.dns.clone();
    config.shm_size = a.shm_size;
    for d in &a.devices {
        let m: crate::flags::DeviceMapping = d.parse()?;
        crate::devices::resolve(&m).with_context(|| format!("--device {d:?}"))?;
        config.devices.push(m);
    }
    for r in &a.device_cgroup_rules {
        config.device_cgroup_rules.push(r.parse()?);
    }
    Ok(())
}

/// Writes the record and the container's directories; the name is claimed under the
/// store-wide lock so two `run --name x` cannot both win.
fn create(root: &Path, n: NewContainer) -> Result<Container> {
    let dir = state::containers_dir(root);
    fs::create_dir_all(&dir).map_err(io("mkdir", &dir))?;
    let _lock = FileLock::exclusive(&dir.join(".lock"))?;
    state::sweep_leftovers_locked(root);
    let id = state::new_id()?;
    let name = n.name.unwrap_or_else(|| state::generated_name(&id));
    if state::list(root)?.iter().any(|c| c.name == name) {
        bail!("container name {name:?} is already in use");
    }
    let cdir = dir.join(&id);
    let mut config = n.config;
    if config.hostname.is_empty() {
        // As docker: the host's name with the host's network (its /etc/hosts names it),
        // else the short id.
        config.hostname = match config.network.as_str() {
            "host" => nix::unistd::gethostname()
                .ok()
                .and_then(|h| h.into_string().ok())
                .unwrap_or_else(|| id[..12].to_string()),
            _ => id[..12].to_string(),
        };
    }
    let c = Container {
        image: n.image,
        image_ref: n.image_ref,
        rootfs: n.rootfs,
        lowers: n.lowers,
        ..Container::new(id.clone(), name, config, cdir.clone())
    };
    let made = (|| -> Result<Container> {
        let mut c = c;
        for d in [cdir.clone(), c.upper(), c.work(), c.merged()] {
            fs::create_dir_all(&d).map_err(io("mkdir", &d))?;
        }
        if let Some(f) = &n.filter {
            super::seccomp::write_program(&c.seccomp_path(), f.flags, &f.program)?;
        }
        let named = c.config.volumes.iter().any(|v| v.name.is_some());
        let _volumes = named.then(|| crate::volumes::lock(root)).transpose()?;
        for (i, v) in c.config.volumes.iter_mut().enumerate() {
            if v.anonymous {
                let host = root.join("volumes").join(format!("{id}-{i}"));
                fs::create_dir_all(&host).map_err(io("mkdir", &host))?;
                // A new volume starts with the image's content there, as docker's.
                crate::volumes::init_from_image(&host, &c.lowers, &v.container)?;
                v.host = host;
            } else if let Some(name) = &v.name {
                // Made on first use, filled from the image when empty, as docker does.
                let info = crate::volumes::create_locked(root, Some(name), &[])?;
                crate::volumes::init_from_image(&info.mountpoint, &c.lowers, &v.container)?;
                v.host = info.mountpoint;
            }
        }
        c.save()?;
        // The new record's name in containers/ survives a crash too.
        crate::sys::durable::fsync_dir(&dir)?;
        Ok(c)
    })();
    if made.is_err() {
        let _ = fs::remove_dir_all(&cdir);
    }
    made
}

/// Creates a container without starting it (`create`); `start` runs it. Returns its id.
pub fn create_container(root: &Path, a: RunOptions) -> Result<String> {
    let plan = plan_run(root, &a)?;
    Ok(create(root, plan)?.id)
}

/// Creates and runs a container; in the foreground this process becomes its supervisor
/// and returns when it exits.
pub fn run(root: &Path, a: RunOptions) -> Result<RunOutcome> {
    crate::trace::phase("run");
    let plan = plan_run(root, &a)?;
    let detach = a.detach;
    let mut c = create(root, plan)?;
    crate::trace::phase("created");
    if detach {
        return match supervisor::spawn_detached(&c, None) {
            Ok(()) => Ok(RunOutcome::Detached(c.id)),
            // It ran and exited, as docker's container whose command is missing.
            Err(Error::NotRun(code, what)) => {
                Ok(RunOutcome::NotRun(code, Error::NotRun(code, what)))
            }
            Err(e) => {
                let _ = supervisor::remove_container_files(&c);
                Err(e)
            }
        };
    }
    supervisor::claim_foreground(&mut c)?;
    match supervisor::supervise(&mut c, Stdio::Inherit, None, None) {
        Ok(code) => Ok(RunOutcome::Exited(code)),
        Err(e) => {
            // It never ran: leave nothing behind.
            let _ = supervisor::remove_container_files(&c);
            Ok(RunOutcome::NotStarted(e))
        }
    }
}

/// The containers under ROOT (only running ones unless `all`), with their live status.
pub fn list(root: &Path, all: bool) -> Result<Vec<Container>> {
    state::sweep_leftovers(root)?;
    Ok(state::list(root)?
        .into_iter()
        .map(|mut c| {
            c.status = c.live_status();
            c
        })
        .filter(|c| all || c.status == Status::Running)
        .collect())
}

/// Starts a created or exited container in the background.
pub fn start(root: &Path, name: &str) -> Result<()> {
    start_one(state::find_container(root, name)?, None)
}

/// ATTACHED: `start -a`'s connections, which see the output from the first byte.
fn start_one(c: Container, attached: Option<supervisor::Attached>) -> Result<()> {
    // Two `start`s at once must not both run it: the second waits, then sees it running.
    let _starting = FileLock::exclusive(&c.dir.join(".start.lock"))?;
    let mut c = Container::load(&c.dir)?;
    if c.live_status() == Status::Running {
        if c.paused {
            bail!(
                "container {} is paused: unpause it instead of starting it",
                c.name
            );
        }
        if attached.is_none() {
            // Already what was asked, as docker's start of a running container.
            return Ok(());
        }
        bail!("container {} is already running", c.name);
    }
    if c.status == Status::Running {
        // Its supervisor died: clean up before starting again.
        supervisor::recover(&mut c)?;
    }
    // A start is a new life: the restart policy applies again, counted from 0 (docker).
    c.update(|r| {
        r.stopped_by_user = false;
        r.restart_count = 0;
    })?;
    supervisor::spawn_detached(&c, attached)
}

/// Stops a running container: its stop signal (`--stop-signal`, default SIGTERM), then
/// SIGKILL after `grace` (default its `--stop-timeout`, else 10 s). Its restart policy
/// no longer applies.
pub fn stop(root: &Path, name: &str, grace: Option<Duration>) -> Result<()> {
    stop_one(state::find_container(root, name)?, grace)
}

/// The stop signal, then SIGKILL after `grace`; returns once the supervisor recorded the
/// exit.
pub fn stop_one(c: Container, grace: Option<Duration>) -> Result<()> {
    let mut c = c;
    if c.live_status() != Status::Running {
        // Nothing to stop: done, as docker's stop of a stopped container.
        return Ok(());
    }
    let grace = grace.unwrap_or_else(|| Duration::from_secs(c.config.stop_timeout.unwrap_or(10)));
    c.update(|r| r.stopped_by_user = true)?;
    if c.paused {
        let _ = unpause(&c);
    }
    // The pidfd is opened before the check that the pid is still pid 1: from then on it
    // cannot name another process.
    if let Some(pid) = c.pid
        && let Some(pidfd) = linux::pidfd_open(pid).filter(|_| c.pid_alive())
    {
        let _ = linux::kill(pid, c.config.stop_signal.unwrap_or(libc::SIGTERM));
        let exited = linux::wait_readable(&[pidfd.as_raw_fd()], Some(Instant::now() + grace));
        if !exited {
            let _ = linux::kill(pid, libc::SIGKILL);
        }
    }
    wait_exited(&mut c, Duration::from_secs(10))
}

/// Waits until the record satisfies `done` or its supervisor is gone (the fresh record),
/// or `limit` passes (None). Wakes on each rewrite of state.json (inotify on its dir) and
/// on the supervisor's exit (pidfd), never on a timer.
fn wait_record(
    c: &Container,
    limit: Duration,
    done: impl Fn(&Container) -> bool,
) -> Result<Option<Container>> {
    let deadline = Instant::now() + limit;
    let watch = linux::watch_dir(&c.dir)?;
    let supervisor = c.supervisor_pid.and_then(linux::pidfd_open);
    let mut fds = vec![watch.as_raw_fd()];
    fds.extend(supervisor.as_ref().map(|p| p.as_raw_fd()));
    loop {
        let fresh = Container::load(&c.dir)?;
        if done(&fresh) || !fresh.supervisor_alive() {
            return Ok(Some(fresh));
        }
        if !linux::wait_readable(&fds, Some(deadline)) {
            return Ok(None);
        }
        linux::drain(watch.as_raw_fd());
    }
}

/// Waits for the supervisor to record the exit; cleans up itself if the supervisor is gone.
fn wait_exited(c: &mut Container, limit: Duration) -> Result<()> {
    let Some(fresh) = wait_record(c, limit, |r| r.status != Status::Running)? else {
        bail!("container {}: its supervisor did not finish", c.name);
    };
    *c = fresh;
    if c.status == Status::Running {
        // Its supervisor is gone without recording the exit.
        return supervisor::recover(c);
    }
    Ok(())
}

/// Sends `signal` to the container's main process (`kill`, default SIGKILL). A
/// container killed by a terminating signal (KILL, TERM, INT, QUIT, its stop signal) is
/// not restarted by its policy, as docker's "manually stopped".
pub fn kill(root: &Path, name: &str, signal: i32) -> Result<()> {
    let mut c = state::find_container(root, name)?;
    if c.live_status() != Status::Running {
        return Err(Error::NotRunning(c.name.clone()));
    }
    let ends_it = [libc::SIGKILL, libc::SIGTERM, libc::SIGINT, libc::SIGQUIT].contains(&signal)
        || c.config.stop_signal == Some(signal);
    if ends_it {
        c.update(|r| r.stopped_by_user = true)?;
    }
    let Some(pid) = c.pid.filter(|_| c.pid_alive()) else {
        // Between two runs of a restart policy: nothing runs, and the supervisor sees the
        // stop in its back-off or when it counts the restart or records the new run.
        return Ok(());
    };
    linux::kill(pid, signal).map_err(|e| {
        invalid!(
            "kill {} with {}: {e}",
            c.name,
            crate::flags::signal_name(signal)
        )
    })
}

/// Blocks until the container is not running (after any restarts its policy makes) and
/// returns its exit code. Wakes on the record's rewrites and the supervisor's exit.
pub fn wait(root: &Path, name: &str) -> Result<i32> {
    let mut c = state::find_container(root, name)?;
    if c.status == Status::Created {
        // Not started yet: as docker, wait for a start (and then for the exit).
        let watch = linux::watch_dir(&c.dir)?;
        loop {
            c = Container::load(&c.dir)?;
            if c.status != Status::Created {
                break;
            }
            linux::wait_readable(&[watch.as_raw_fd()], None);
            linux::drain(watch.as_raw_fd());
        }
    }
    let fresh = loop {
        // A long wait is many bounded ones: the deadline only bounds one inotify wait.
        if let Some(f) = wait_record(&c, Duration::from_secs(3600), |r| {
            r.status != Status::Running
        })? {
            break f;
        }
    };
    let mut fresh = fresh;
    if fresh.status == Status::Running {
        // Its supervisor is gone without recording the exit.
        supervisor::recover(&mut fresh)?;
    }
    Ok(fresh.exit_code.unwrap_or(0))
}

/// Gives a container a new name (running or not), under the lock that claims names.
pub fn rename(root: &Path, name: &str, new_name: &str) -> Result<()> {
    state::validate_container_name(new_name)?;
    let dir = state::containers_dir(root);
    let _lock = FileLock::exclusive(&dir.join(".lock"))?;
    let mut c = state::find_container(root, name)?;
    if state::list(root)?.iter().any(|o| o.name == new_name) {
        bail!("container name {new_name:?} is already in use");
    }
    c.update(|r| r.name = new_name.to_string())
}

/// Removes every container that is not running; returns their ids and the bytes their
/// upper layers held.
pub fn prune(root: &Path) -> Result<(Vec<String>, u64)> {
    let mut ids = Vec::new();
    let mut bytes = 0;
    for c in list(root, true)? {
        if c.status == Status::Running {
            continue;
        }
        let size = crate::volumes::du(&c.upper());
        match rm_one(c.clone(), false, false) {
            Ok(()) => {
                bytes += size;
                ids.push(c.id);
            }
            // Started meanwhile: not ours to remove.
            Err(e) => log::warn!("container {}: {}", c.name, e.chain()),
        }
    }
    Ok((ids, bytes))
}

/// Stops the container if it runs (as `stop`), then starts it again.
pub fn restart(root: &Path, name: &str, grace: Option<Duration>) -> Result<()> {
    let c = state::find_container(root, name)?;
    let dir = c.dir.clone();
    if c.live_status() == Status::Running {
        stop_one(c, grace)?;
    }
    start_one(Container::load(&dir)?, None)
}

/// The log of a container: its output records, oldest first (see `logfile`); with
/// `opts.follow`, more as they come until the container exits.
pub fn logs(root: &Path, name: &str, opts: LogOptions) -> Result<LogReader> {
    let c = state::find_container(root, name)?;
    LogReader::open(&c.dir, opts).with_context(|| format!("logs of {}", c.name))
}

/// Connects our stdin and stdout to a running detached container until it exits (its
/// exit code is ours) or the detach keys are typed (0, the container runs on).
/// `detach_keys`: comma-separated, each `ctrl-X` or one character; "" for none.
pub fn attach(root: &Path, name: &str, detach_keys: &str) -> Result<i32> {
    let keys = super::tty::parse_detach_keys(detach_keys)?;
    let c = state::find_container(root, name)?;
    if c.live_status() != Status::Running {
        return Err(Error::NotRunning(c.name.clone()));
    }
    let detached = super::tty::attach_client(&c.id, &keys)
        .with_context(|| format!("attach to {} (only detached containers)", c.name))?;
    if detached {
        return Ok(0);
    }
    recorded_exit(&c)
}

/// The exit code the supervisor records just after closing an attach connection.
fn recorded_exit(c: &Container) -> Result<i32> {
    let fresh = match wait_record(c, Duration::from_secs(5), |r| {
        r.live_status() != Status::Running
    })? {
        Some(fresh) => fresh,
        None => Container::load(&c.dir)?,
    };
    Ok(fresh.exit_code.unwrap_or(0))
}

/// `start -a`: starts a created or exited container and stays connected to it as
/// `attach` does; returns the container's exit status (0 when the detach keys leave it
/// running). The connection is made before the command starts, so a short command's
/// output is not missed.
pub fn start_attached(root: &Path, name: &str, detach_keys: &str) -> Result<i32> {
    let keys = super::tty::parse_detach_keys(detach_keys)?;
    let c = state::find_container(root, name)?;
    let pair = || {
        std::os::unix::net::UnixStream::pair()
            .map_err(io("making the attach connection of", &c.dir))
    };
    let ((output, theirs), (mut status, their_status)) = (pair()?, pair()?);
    let started = start_one(
        c.clone(),
        Some(supervisor::Attached {
            output: theirs,
            status: their_status,
        }),
    );
    if let Err(Error::NotRun(code, _)) = started {
        // Its message is in the output (the command's stderr); its status is ours.
        let _ = super::tty::attach_over(output, &keys);
        return Ok(code);
    }
    started?;
    if super::tty::attach_over(output, &keys)? {
        return Ok(0);
    }
    // The supervisor writes the exit status once the run is over (a --rm container's
    // record is gone by then); nothing when it died.
    let mut code = String::new();
    let _ = std::io::Read::read_to_string(&mut status, &mut code);
    if let Ok(code) = code.parse() {
        return Ok(code);
    }
    recorded_exit(&c)
}

/// Removes a container: its record, upper layer and (with `volumes`) its anonymous
/// volumes; a running one only with `force` (killed first).
pub fn remove(root: &Path, name: &str, force: bool, volumes: bool) -> Result<()> {
    rm_one(state::find_container(root, name)?, force, volumes)
}

fn rm_one(c: Container, force: bool, volumes: bool) -> Result<()> {
    // A `start` at the same time (prune's record may be stale) must not run a container
    // whose tree goes away: under its lock, decide on the record as it is now.
    let lock = c.dir.join(".start.lock");
    let _starting = FileLock::exclusive(&lock).map_err(|e| match e.kind() {
        // Removed meanwhile by another `rm`.
        std::io::ErrorKind::NotFound => Error::no_such("container", &c.name),
        _ => io("locking", &lock)(e),
    })?;
    let mut c = Container::load(&c.dir)?;
    if c.live_status() == Status::Running {
        if !force {
            bail!(
                "container {} is running: stop it first or use rm -f",
                c.name
            );
        }
        c.update(|r| r.stopped_by_user = true)?;
        if c.paused {
            let _ = unpause(&c);
        }
        if let Some(pid) = c.pid.filter(|_| c.pid_alive()) {
            let _ = linux::kill(pid, libc::SIGKILL);
        }
        wait_exited(&mut c, Duration::from_secs(10))?;
    } else if c.status == Status::Running {
        supervisor::recover(&mut c)?;
    }
    let mut dirs: Vec<PathBuf> = Vec::new();
    if volumes {
        dirs.extend(
            c.config
                .volumes
                .iter()
                .filter(|v: &&Volume| v.anonymous)
                .map(|v| v.host.clone()),
        );
    }
    dirs.push(c.dir.clone());
    supervisor::remove_trees(&dirs)
}

/// Freezes every process of a running container (a v1 freezer cgroup made on demand,
/// else SIGSTOP to each process of its pid namespace). Used by `commit -p`.
pub fn pause(c: &Container) -> Result<()> {
    if c.live_status() != Status::Running {
        return Err(Error::NotRunning(c.name.clone()));
    }
    let mut c = Container::load(&c.dir)?;
    if c.paused {
        bail!("container {} is already paused", c.name);
    }
    let has_freezer = c.cgroups.iter().any(|d| d.join("freezer.state").exists());
    if !has_freezer
        && let Some(dir) = cgroups::freezer_for(&c.id, || ns_pids(&c).unwrap_or_default())
    {
        c.update(|r| r.cgroups.push(dir))?;
    }
    if cgroups::set_frozen(&c.cgroups, true)? {
        // A process forked during the move joins the frozen cgroup now.
        let _ = cgroups::freezer_for(&c.id, || ns_pids(&c).unwrap_or_default());
    } else {
        signal_all(&c, libc::SIGSTOP)?;
    }
    c.update(|r| r.paused = true)
}

pub fn unpause(c: &Container) -> Result<()> {
    if c.live_status() != Status::Running {
        return Err(Error::NotRunning(c.name.clone()));
    }
    let mut c = Container::load(&c.dir)?;
    if !c.paused {
        bail!("container {} is not paused", c.name);
    }
    if !cgroups::set_frozen(&c.cgroups, false)? {
        signal_all(&c, libc::SIGCONT)?;
    }
    c.update(|r| r.paused = false)
}

/// Every process in the container's pid namespace.
pub fn ns_pids(c: &Container) -> Result<Vec<i32>> {
    let pid = c.pid.context("container has no pid")?;
    let ns = fs::read_link(format!("/proc/{pid}/ns/pid"))
        .with_context(|| format!("pid namespace of {pid}"))?;
    let mut out = Vec::new();
    for entry in fs::read_dir("/proc")?.flatten() {
        let Some(p) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<i32>().ok())
        else {
            continue;
        };
        if fs::read_link(format!("/proc/{p}/ns/pid")).ok().as_ref() == Some(&ns) {
            out.push(p);
        }
    }
    Ok(out)
}

/// Sends `sig` to every process in the container's pid namespace.
fn signal_all(c: &Container, sig: libc::c_int) -> Result<()> {
    for p in ns_pids(c)? {
        let _ = linux::kill(p, sig);
    }
    Ok(())
}
