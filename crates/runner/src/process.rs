//! The container's side after clone: wait for the supervisor, set host name, network,
//! file system, tty, user, capabilities, then exec the command as pid 1 (or under a tiny
//! init that reaps zombies and forwards signals).
use super::linux;
use super::rootfs::{self, RootfsPlan};
use super::seccomp;
use super::security::ProcessSecurity;
use super::spec::{self, DEFAULT_PATH};
use crate::error::{Context, Result};
use std::ffi::CString;
use std::fs;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

pub struct ProcessPlan {
    pub argv: Vec<String>,
    pub env: Vec<String>,
    pub workdir: String,
    pub user: Option<String>,
    pub tty: bool,
    pub init: bool,
    pub security: ProcessSecurity,
    /// `--ulimit`s, set before the user switch (raising a hard limit needs root).
    pub ulimits: Vec<crate::flags::Ulimit>,
}

pub struct ContainerPlan<'a> {
    pub hostname: String,
    pub network_none: bool,
    pub rootfs: RootfsPlan<'a>,
    pub process: ProcessPlan,
}

/// Channels between the supervisor and the cloned container process.
pub struct ChildPipes {
    /// Supervisor writes one byte once the cgroups are set; EOF means give up.
    pub go: OwnedFd,
    /// Setup errors go here; it closes on exec (close-on-exec), which means success.
    pub errors: OwnedFd,
    /// With a tty: the pty master is sent over this socket.
    pub pty: Option<OwnedFd>,
}

/// Exit status of a setup failure (Docker uses 125 for its own errors).
pub const SETUP_FAILED: i32 = 125;

/// First byte on the error pipe when the command itself cannot run (not found, not
/// executable): the exit status follows, a newline, the message. The process exits with
/// that status; its reader tells this from a failed setup (see `not_run`).
const NOT_RUN_MARK: char = '\u{1}';

/// A message from the error pipe that says the command could not run: its exit status
/// (127 or 126, as docker's) and what happened.
pub fn not_run(msg: &[u8]) -> Option<(i32, String)> {
    let text = std::str::from_utf8(msg).ok()?.strip_prefix(NOT_RUN_MARK)?;
    let (code, what) = text.split_once('\n')?;
    Some((code.parse().ok()?, what.to_string()))
}

/// The message `not_run` reads.
pub fn not_run_message(code: i32, what: &str) -> String {
    format!("{NOT_RUN_MARK}{code}\n{what}")
}

/// Says on the error pipe and on stderr that the command cannot run, and exits CODE.
fn cannot_run(err: &OwnedFd, argv0: &str, code: i32, msg: &str) -> ! {
    let what = format!("exec {argv0:?}: {msg}");
    eprintln!("unionctl: {what}");
    let _ = linux::write_all_fd(err.as_raw_fd(), not_run_message(code, &what).as_bytes());
    linux::exit_now(code)
}

/// Body of the cloned container process; never returns.
pub fn container_main(plan: &ContainerPlan, pipes: ChildPipes) -> ! {
    let mut b = [0u8; 1];
    // SAFETY: read into a one-byte buffer.
    if unsafe { libc::read(pipes.go.as_raw_fd(), b.as_mut_ptr().cast(), 1) } != 1 {
        linux::exit_now(SETUP_FAILED);
    }
    drop(pipes.go);
    crate::trace::phase("child: go");
    let err = pipes.errors;
    match setup_and_exec(plan, &err, pipes.pty) {
        Ok(never) => match never {},
        Err(e) => {
            let _ = linux::write_all_fd(err.as_raw_fd(), e.chain().as_bytes());
            linux::exit_now(SETUP_FAILED)
        }
    }
}

pub enum Never {}

fn setup_and_exec(plan: &ContainerPlan, err: &OwnedFd, pty: Option<OwnedFd>) -> Result<Never> {
    // Our own mount namespace, copied now that the union is mounted.
    nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNS).context("new mount namespace")?;
    // After the supervisor placed us in our cgroups, so that they become our cgroup root.
    let _ = nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWCGROUP);
    nix::unistd::sethostname(&plan.hostname).context("sethostname")?;
    if plan.network_none {
        linux::loopback_up()?;
    }
    crate::trace::phase("child: lo up");
    rootfs::prepare(&plan.rootfs)?;
    crate::trace::phase("child: rootfs ready");
    if plan.process.tty {
        let (master, slave) = linux::open_pty()?;
        let sock = pty.ok_or_else(|| invalid!("no pty channel"))?;
        linux::send_fd(sock.as_raw_fd(), master.as_raw_fd()).context("send pty master")?;
        drop(master);
        linux::become_tty_session(slave.as_raw_fd())?;
    } else {
        // SAFETY: setsid on ourselves.
        unsafe { libc::setsid() };
    }
    exec_process(&plan.process, err, false)
}

/// Switches user, drops privileges and execs `p` in the current root. Shared with `exec`.
/// With `p.init`, forks first and stays behind as a reaping init.
pub fn exec_process(p: &ProcessPlan, err: &OwnedFd, joined: bool) -> Result<Never> {
    let passwd = fs::read_to_string("/etc/passwd").unwrap_or_default();
    // Groups only matter for a named user (each file read is a round trip through FUSE).
    let group = match &p.user {
        Some(_) => fs::read_to_string("/etc/group").unwrap_or_default(),
        None => String::new(),
    };
    crate::trace::phase("child: passwd read");
    let user = spec::resolve_user(p.user.as_deref().unwrap_or("0"), &passwd, &group)?;
    let env = process_env(&p.env, &user);
    let workdir = if p.workdir.is_empty() {
        "/"
    } else {
        &p.workdir
    };
    if !joined {
        // Docker makes a missing working directory.
        let _ = fs::create_dir_all(workdir);
    }
    if p.init && !joined {
        run_under_init(p.tty, &p.security, err)?;
    }
    for u in &p.ulimits {
        let lim = libc::rlimit {
            rlim_cur: u.soft,
            rlim_max: u.hard,
        };
        // SAFETY: setrlimit with a filled struct.
        if unsafe { libc::setrlimit(u.resource as _, &lim) } != 0 {
            let e = std::io::Error::last_os_error();
            bail!("--ulimit {}={}:{}: {e}", u.name(), u.soft, u.hard);
        }
    }
    become_user(&user, &p.security)?;
    nix::unistd::chdir(workdir).with_context(|| format!("working directory {workdir:?}"))?;
    exec_argv(&p.argv, &env, &p.security, err)
}

/// The environment: the plan's, with PATH and HOME filled in when missing.
fn process_env(plan_env: &[String], user: &spec::User) -> Vec<String> {
    let mut env = plan_env.to_vec();
    if spec::env_get(&env, "PATH").is_none() {
        spec::env_set(&mut env, &format!("PATH={DEFAULT_PATH}"));
    }
    if spec::env_get(&env, "HOME").is_none() {
        let home = if user.home.is_empty() {
            "/"
        } else {
            &user.home
        };
        spec::env_set(&mut env, &format!("HOME={home}"));
    }
    env
}

/// No new privileges, the container's capability bounding set, the user's groups and ids,
/// and (root only) the container's capabilities. Without no_new_privs the filter must be
/// loaded here, while CAP_SYS_ADMIN is still held; with it, as late as possible (exec_argv).
fn become_user(user: &spec::User, sec: &ProcessSecurity) -> Result<()> {
    if sec.no_new_privs {
        linux::set_no_new_privs()?;
    } else if let Some((flags, program)) = &sec.filter {
        seccomp::install(*flags, program)?;
    }
    linux::drop_bounding_set(&sec.caps)?;
    let groups_allowed = fs::read_to_string("/proc/self/setgroups")
        .map(|s| s.trim() != "deny")
        .unwrap_or(true);
    if groups_allowed {
        let gids: Vec<nix::unistd::Gid> = user
            .groups
            .iter()
            .map(|g| nix::unistd::Gid::from_raw(*g))
            .collect();
        nix::unistd::setgroups(&gids).context("setgroups")?;
    }
    let unmapped = |what: &str, id: u32| {
        invalid!(
            "{what} {id} is not mapped in this container's user namespace (rootless without an /etc/subuid range maps only 0)"
        )
    };
    nix::unistd::setresgid(user.gid.into(), user.gid.into(), user.gid.into())
        .map_err(|_| unmapped("group", user.gid))?;
    nix::unistd::setresuid(user.uid.into(), user.uid.into(), user.uid.into())
        .map_err(|_| unmapped("user", user.uid))?;
    linux::clear_ambient();
    if user.uid == 0 {
        linux::set_caps(&sec.caps, &sec.caps, &[])?;
    } else {
        linux::set_caps(&[], &[], &[])?;
    }
    Ok(())
}

/// Finds `argv[0]` on PATH and execs it; a command that cannot run exits 127 or 126 with
/// the shell's message, as docker does. The seccomp filter (under no_new_privs) is loaded
/// last: only execve runs under it here.
fn exec_argv(
    argv: &[String],
    env: &[String],
    sec: &ProcessSecurity,
    err: &OwnedFd,
) -> Result<Never> {
    if argv.is_empty() {
        bail!("no command given and the image has none");
    }
    let path_env = spec::env_get(env, "PATH")
        .unwrap_or(DEFAULT_PATH)
        .to_string();
    let program = match find_executable(&argv[0], &path_env) {
        Ok(p) => p,
        Err((code, msg)) => cannot_run(err, &argv[0], code, &msg),
    };
    let c_prog = linux::cstr(&program)?;
    let c_argv: Vec<CString> = argv
        .iter()
        .map(|a| CString::new(a.as_bytes()))
        .collect::<Result<_, _>>()
        .map_err(|_| invalid!("command contains a NUL byte"))?;
    let c_env: Vec<CString> = env
        .iter()
        .map(|a| CString::new(a.as_bytes()))
        .collect::<Result<_, _>>()
        .map_err(|_| invalid!("environment contains a NUL byte"))?;
    linux::reset_signals();
    if sec.no_new_privs
        && let Some((flags, program)) = &sec.filter
    {
        seccomp::install(*flags, program)?;
    }
    crate::trace::phase("child: exec");
    let e = nix::unistd::execve(&c_prog, &c_argv, &c_env).unwrap_err();
    let (code, msg) = match e {
        nix::errno::Errno::ENOENT => (127, "no such file or directory".to_string()),
        nix::errno::Errno::EACCES | nix::errno::Errno::ENOEXEC => {
            (126, format!("permission denied or not executable ({e})"))
        }
        other => (126, other.to_string()),
    };
    cannot_run(err, &argv[0], code, &msg)
}

/// Finds `cmd` as execvp would; on failure the exit code (127 missing, 126 not runnable).
pub fn find_executable(cmd: &str, path_env: &str) -> Result<PathBuf, (i32, String)> {
    let runnable = |p: &Path| {
        fs::metadata(p)
            .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
            .unwrap_or(false)
    };
    if cmd.contains('/') {
        let p = PathBuf::from(cmd);
        return match fs::metadata(&p) {
            Err(_) => Err((127, "no such file or directory".into())),
            Ok(m) if m.is_dir() => Err((126, "is a directory".into())),
            Ok(_) if !runnable(&p) => Err((126, "permission denied".into())),
            Ok(_) => Ok(p),
        };
    }
    if cmd.is_empty() {
        return Err((127, "empty command".into()));
    }
    let mut denied = false;
    for dir in path_env.split(':') {
        let dir = if dir.is_empty() { "." } else { dir };
        let candidate = Path::new(dir).join(cmd);
        if runnable(&candidate) {
            return Ok(candidate);
        }
        if candidate.is_file() {
            denied = true;
        }
    }
    if denied {
        Err((126, "permission denied".into()))
    } else {
        Err((127, "executable file not found in $PATH".into()))
    }
}

/// Forks: the child returns and goes on to exec the command; this process stays as
/// pid 1, forwarding signals to the child and reaping every zombie, and exits with the
/// child's status. It runs under the container's filter too (it needs only
/// rt_sigtimedwait, wait4, kill and exit_group, which every profile worth running allows).
fn run_under_init(tty: bool, sec: &ProcessSecurity, err: &OwnedFd) -> Result<()> {
    // SAFETY: blocking signals for ourselves, so sigwaitinfo can take them.
    let all = unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigfillset(&mut set);
        libc::sigprocmask(libc::SIG_SETMASK, &set, std::ptr::null_mut());
        set
    };
    let child = linux::clone_fork(0).context("fork the command under init")?;
    let Some(child) = child else {
        // The command gets its own process group, in the terminal's foreground.
        // SAFETY: process group calls on ourselves (SIGTTOU is blocked).
        unsafe {
            libc::setpgid(0, 0);
            if tty {
                libc::tcsetpgrp(0, libc::getpid());
            }
        }
        return Ok(());
    };
    // Still root with every capability here: the filter loads without no_new_privs.
    if let Some((flags, program)) = &sec.filter
        && let Err(e) = seccomp::install(*flags, program)
    {
        let _ = linux::write_all_fd(err.as_raw_fd(), e.chain().as_bytes());
        let _ = linux::kill(child, libc::SIGKILL);
        linux::exit_now(SETUP_FAILED);
    }
    // Every inherited fd (error pipe, the `run -d` ready pipe, ...) would keep the
    // supervisor waiting for an EOF: init needs none of them.
    // SAFETY: close_range on our own fd table; the child keeps its copies.
    unsafe { libc::syscall(libc::SYS_close_range, 3u32, u32::MAX, 0u32) };
    // Init only waits and forwards signals: it keeps CAP_KILL (the command may run as
    // another user) and nothing else, whatever the container's own set.
    let _ = linux::drop_bounding_set(&[linux::cap::KILL]);
    let _ = linux::set_caps(&[linux::cap::KILL], &[linux::cap::KILL], &[]);
    let mut main_status: Option<i32> = None;
    loop {
        // SAFETY: sigwaitinfo on a full set we blocked.
        let sig = unsafe { libc::sigwaitinfo(&all, std::ptr::null_mut()) };
        if sig < 0 {
            if std::io::Error::last_os_error().raw_os_error() != Some(libc::EINTR) {
                // A profile that refuses sigwaitinfo: wait for the command alone.
                linux::exit_now(linux::wait_pid(child).unwrap_or(255));
            }
            continue;
        }
        if sig == libc::SIGCHLD {
            loop {
                let mut status = 0;
                // SAFETY: reaping any child.
                let pid = unsafe { libc::waitpid(-1, &mut status, libc::WNOHANG) };
                if pid <= 0 {
                    break;
                }
                if pid == child {
                    main_status = Some(linux::wait_status_code(status));
                }
            }
            if let Some(code) = main_status {
                linux::exit_now(code);
            }
        } else {
            let _ = linux::kill(child, sig);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn executable_lookup() {
        let t = tempfile::tempdir().unwrap();
        let d = t.path();
        fs::write(d.join("run"), "#!/bin/sh\n").unwrap();
        fs::set_permissions(d.join("run"), fs::Permissions::from_mode(0o755)).unwrap();
        fs::write(d.join("data"), "x").unwrap();
        fs::set_permissions(d.join("data"), fs::Permissions::from_mode(0o644)).unwrap();
        let path = format!("/nonexistent:{}", d.display());
        assert_eq!(find_executable("run", &path).unwrap(), d.join("run"));
        assert_eq!(find_executable("data", &path).unwrap_err().0, 126);
        assert_eq!(find_executable("nope", &path).unwrap_err().0, 127);
        let abs = d.join("data");
        assert_eq!(
            find_executable(abs.to_str().unwrap(), "").unwrap_err().0,
            126
        );
        assert_eq!(find_executable("/no/such", "").unwrap_err().0, 127);
        assert_eq!(find_executable(d.to_str().unwrap(), "").unwrap_err().0, 126);
    }
}
