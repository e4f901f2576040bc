//! Where this process's `log` lines go. One logger per process, its sink switchable, so
//! that a command (lines on stderr) can fork a mount daemon that logs elsewhere:
//! - a command: `unionctl: warning: ...` on stderr;
//! - the mount daemon: a file beside the work dir (`WORK.log`, e.g. `/x/work` logs to
//!   `/x/work.log`), or syslog for a union without an upper layer. Warnings (an unexpected
//!   error turned into an errno) always; `-o debug` adds every request and its result.
use log::{LevelFilter, Log, Metadata, Record};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, RwLock};

enum Sink {
    Stderr,
    File(Mutex<std::fs::File>),
    Syslog,
}

struct ProcessLog {
    sink: RwLock<Sink>,
}

static LOGGER: ProcessLog = ProcessLog {
    sink: RwLock::new(Sink::Stderr),
};

impl Log for ProcessLog {
    fn enabled(&self, m: &Metadata) -> bool {
        m.level() <= log::max_level()
    }

    fn log(&self, r: &Record) {
        if !self.enabled(r.metadata()) {
            return;
        }
        let sink = self.sink.read().unwrap_or_else(|p| p.into_inner());
        match &*sink {
            Sink::Stderr => {
                let level = match r.level() {
                    log::Level::Error => "error",
                    log::Level::Warn => "warning",
                    log::Level::Info => "info",
                    _ => "debug",
                };
                eprintln!("unionctl: {level}: {}", r.args());
            }
            Sink::File(f) => {
                let now = crate::timestamp::now_nanos();
                let mut f = f.lock().unwrap_or_else(|p| p.into_inner());
                let _ = writeln!(f, "{now} {} {}", r.level(), r.args());
            }
            Sink::Syslog => {
                let prio = match r.level() {
                    log::Level::Error => libc::LOG_ERR,
                    log::Level::Warn => libc::LOG_WARNING,
                    log::Level::Info => libc::LOG_INFO,
                    _ => libc::LOG_DEBUG,
                };
                let msg = format!("{}", r.args()).replace('\0', "\\0");
                let c = std::ffi::CString::new(msg).unwrap_or_default();
                // SAFETY: a constant format string and a valid C string.
                unsafe { libc::syslog(prio, c"%s".as_ptr(), c.as_ptr()) };
            }
        }
    }

    fn flush(&self) {
        if let Sink::File(f) = &*self.sink.read().unwrap_or_else(|p| p.into_inner()) {
            let _ = f.lock().unwrap_or_else(|p| p.into_inner()).flush();
        }
    }
}

/// Where the daemon of a union with work dir WORK logs.
pub fn log_path(work: &Path) -> PathBuf {
    let mut p = work.as_os_str().to_owned();
    p.push(".log");
    PathBuf::from(p)
}

/// Sends this process's warnings to stderr (a command run by a user).
pub fn to_stderr() {
    switch(Sink::Stderr, LevelFilter::Warn);
}

/// Sends this process's log to the daemon log of a union with work dir WORK (syslog
/// without one); `debug` adds every request.
pub fn to_daemon_log(work: Option<&Path>, debug: bool) {
    use std::os::unix::fs::OpenOptionsExt;
    let sink = match work.map(log_path) {
        // The daemon runs with umask 0: the mode is given, or any user could write it.
        Some(p) => match std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .mode(0o600)
            .open(&p)
        {
            Ok(f) => Sink::File(Mutex::new(f)),
            Err(_) => Sink::Syslog,
        },
        None => Sink::Syslog,
    };
    if let Sink::Syslog = sink {
        // SAFETY: a static identity string.
        unsafe { libc::openlog(c"unionctl".as_ptr(), libc::LOG_PID, libc::LOG_DAEMON) };
    }
    let level = if debug {
        LevelFilter::Debug
    } else {
        LevelFilter::Warn
    };
    switch(sink, level);
}

fn switch(sink: Sink, level: LevelFilter) {
    // Fails only when installed already, which is what we want then.
    let _ = log::set_logger(&LOGGER);
    *LOGGER.sink.write().unwrap_or_else(|p| p.into_inner()) = sink;
    log::set_max_level(level);
}
