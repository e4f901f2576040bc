//! The mount daemon's log (`log` facade): a file beside the work dir (`WORK.log`, e.g.
//! `/x/work` logs to `/x/work.log`) or syslog for a union without an upper layer. Warnings
//! (an unexpected error turned into an errno) always; `-o debug` adds every request and
//! its error result.
use log::{LevelFilter, Log, Metadata, Record};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

enum Sink {
    File(Mutex<std::fs::File>),
    Syslog,
}

struct DaemonLog {
    sink: Sink,
}

impl Log for DaemonLog {
    fn enabled(&self, m: &Metadata) -> bool {
        m.level() <= log::max_level()
    }

    fn log(&self, r: &Record) {
        if !self.enabled(r.metadata()) {
            return;
        }
        match &self.sink {
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
        if let Sink::File(f) = &self.sink {
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

/// Installs the daemon's logger (once per process; later calls keep the first).
pub fn init(work: Option<&Path>, debug: bool) {
    let sink = match work.map(log_path) {
        Some(p) => match std::fs::OpenOptions::new()
            .create(true)
            .append(true)
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
    if log::set_logger(Box::leak(Box::new(DaemonLog { sink }))).is_ok() {
        log::set_max_level(if debug {
            LevelFilter::Debug
        } else {
            LevelFilter::Warn
        });
    }
}
