//! A container's log: what its stdout and stderr wrote, kept apart, line by line with the
//! time each arrived, in a file of bounded size.
//!
//! The format is the CRI one that podman's k8s-file driver writes, one record a line:
//! `2026-12-03T18:51:57.123456789Z stdout F hello`. `F` ends a line of the program's
//! output, `P` is a piece of a line that goes on in the next record of that stream (a
//! read that ended mid-line, or a line longer than [`MAX_RECORD`]). The bytes are kept as
//! written (no escaping; the newline is the format's). When `ctr.log` would pass
//! `max_size` it is renamed to `ctr.log.N`, N one more than the last rotated file's, and
//! the oldest rotated files go until `max_files` are left, as docker's `max-size` /
//! `max-file`. Rotated files keep their names (docker shifts `.1` to `.2`, ...), so a
//! reader that follows the log always finds the file after the one it finished.
use crate::error::{Result, io};
use std::collections::VecDeque;
use std::fs;
use std::io::{Read, Write};
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

/// Default cap of one log file (docker's `local` driver uses 20 MB in 5 files).
pub const DEFAULT_MAX_SIZE: u64 = 10 << 20;
/// Default number of files: `ctr.log` and one rotated `ctr.log.N`.
pub const DEFAULT_MAX_FILES: u32 = 2;
/// Longest record payload: longer lines are split into `P` records (docker splits at 16K).
pub const MAX_RECORD: usize = 16 << 10;

/// Which of the container's output streams a record came from. With a tty there is one
/// stream, stdout, as in docker.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stream {
    Stdout,
    Stderr,
}

impl Stream {
    pub fn as_str(self) -> &'static str {
        match self {
            Stream::Stdout => "stdout",
            Stream::Stderr => "stderr",
        }
    }
}

/// One record of the log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LogRecord {
    /// When it was read from the container: RFC 3339 with nanoseconds, UTC (`...Z`);
    /// empty for a line of a log not in the record format.
    pub time: String,
    pub stream: Stream,
    /// The bytes, without the line's newline.
    pub data: Vec<u8>,
    /// The line goes on in the next record of this stream (no newline after `data`).
    pub partial: bool,
}

/// How large a container's log may grow: `max_size` per file, `max_files` files.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LogLimits {
    pub max_size: u64,
    pub max_files: u32,
}

impl Default for LogLimits {
    fn default() -> Self {
        LogLimits {
            max_size: DEFAULT_MAX_SIZE,
            max_files: DEFAULT_MAX_FILES,
        }
    }
}

impl LogLimits {
    /// Docker's `--log-opt max-size=10m` and `--log-opt max-file=3`, over the defaults.
    pub fn from_opts(opts: &[String]) -> Result<LogLimits> {
        let mut l = LogLimits::default();
        for o in opts {
            let Some((k, v)) = o.split_once('=') else {
                bail!("--log-opt {o:?}: expected KEY=VALUE (max-size=10m, max-file=2)");
            };
            match k {
                "max-size" => {
                    l.max_size = super::spec::parse_bytes(v)
                        .map_err(|e| invalid!("--log-opt max-size: {e}"))?;
                }
                "max-file" => {
                    l.max_files = v.parse().ok().filter(|n| *n >= 1).ok_or_else(|| {
                        invalid!("--log-opt max-file={v:?}: expected a whole number of at least 1")
                    })?;
                }
                _ => bail!("--log-opt {k:?}: supported are max-size and max-file"),
            }
        }
        Ok(l)
    }
}

/// Rotated file number `n` beside `path` (higher is newer).
fn rotated(path: &Path, n: u64) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(format!(".{n}"));
    PathBuf::from(s)
}

/// Appends records to a container's log. Each chunk read from the container becomes one
/// write(2) (no buffering across chunks, no fsync): nothing waits in memory when the
/// container exits, and `logs -f` sees output as it comes.
pub struct LogWriter {
    path: PathBuf,
    file: fs::File,
    size: u64,
    limits: LogLimits,
    buf: Vec<u8>,
    /// The numbers of the rotated files, oldest first.
    rotated: VecDeque<u64>,
}

impl LogWriter {
    /// Opens (or creates) the log at `path` to append to it: a restarted container's
    /// output follows its earlier output.
    pub fn open(path: &Path, limits: LogLimits) -> Result<LogWriter> {
        let file = open_append(path)?;
        let size = file.metadata().map_err(io("stat", path))?.len();
        let dir = path.parent().unwrap_or(Path::new("."));
        Ok(LogWriter {
            path: path.to_path_buf(),
            file,
            size,
            limits,
            buf: Vec::with_capacity(64 << 10),
            rotated: rotated_files(dir)?.into_iter().map(|(n, _)| n).collect(),
        })
    }

    /// Logs `data`, read from `stream` now.
    pub fn write(&mut self, stream: Stream, data: &[u8]) -> Result<()> {
        let prefix = format!("{} {} ", crate::timestamp::now_nanos(), stream.as_str());
        self.buf.clear();
        let mut rest = data;
        while !rest.is_empty() {
            let (piece, full) = match memchr::memchr(b'\n', rest) {
                Some(i) if i <= MAX_RECORD => (&rest[..i], true),
                _ if rest.len() > MAX_RECORD => (&rest[..MAX_RECORD], false),
                _ => (rest, false),
            };
            rest = &rest[piece.len() + usize::from(full)..];
            let len = (prefix.len() + 2 + piece.len() + 1) as u64;
            let in_file = self.size + self.buf.len() as u64;
            if in_file > 0 && in_file + len > self.limits.max_size {
                self.flush()?;
                self.rotate()?;
            }
            self.buf.extend_from_slice(prefix.as_bytes());
            self.buf.extend_from_slice(if full { b"F " } else { b"P " });
            self.buf.extend_from_slice(piece);
            self.buf.push(b'\n');
        }
        self.flush()
    }

    fn flush(&mut self) -> Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        self.file
            .write_all(&self.buf)
            .map_err(io("writing", &self.path))?;
        self.size += self.buf.len() as u64;
        self.buf.clear();
        Ok(())
    }

    /// `ctr.log` becomes the newest `ctr.log.N`, the oldest ones go; a new one starts.
    /// No rename replaces a file: ext4 writes out the data of a file renamed over another
    /// (auto_da_alloc), a disk write per rotation.
    fn rotate(&mut self) -> Result<()> {
        let keep = self.limits.max_files.max(1) as usize - 1;
        if keep == 0 {
            fs::remove_file(&self.path).map_err(io("removing", &self.path))?;
        } else {
            let n = self.rotated.back().map_or(1, |n| n + 1);
            fs::rename(&self.path, rotated(&self.path, n)).map_err(io("rotating", &self.path))?;
            self.rotated.push_back(n);
        }
        while self.rotated.len() > keep {
            let Some(oldest) = self.rotated.pop_front() else {
                break;
            };
            let p = rotated(&self.path, oldest);
            match fs::remove_file(&p) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                    return Err(io("removing", &p)(e));
                }
                _ => {}
            }
        }
        self.file = open_append(&self.path)?;
        self.size = 0;
        Ok(())
    }
}

fn open_append(path: &Path) -> Result<fs::File> {
    fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map_err(io("opening", path))
}

/// Reads one line of the log (without its newline). A line not in the record format (a
/// log written before records were) is a whole stdout line without a time.
pub fn parse_record(line: &[u8]) -> LogRecord {
    let mut parts = line.splitn(4, |b| *b == b' ');
    let (time, stream, tag, data) = (parts.next(), parts.next(), parts.next(), parts.next());
    let stream = match stream {
        Some(b"stdout") => Some(Stream::Stdout),
        Some(b"stderr") => Some(Stream::Stderr),
        _ => None,
    };
    let partial = match tag {
        Some(b"F") => Some(false),
        Some(b"P") => Some(true),
        _ => None,
    };
    match (time, stream, partial) {
        (Some(t), Some(stream), Some(partial)) if t.ends_with(b"Z") && t.len() >= 20 => LogRecord {
            time: String::from_utf8_lossy(t).into_owned(),
            stream,
            data: data.unwrap_or_default().to_vec(),
            partial,
        },
        _ => LogRecord {
            time: String::new(),
            stream: Stream::Stdout,
            data: line.to_vec(),
            partial: false,
        },
    }
}

/// What `logs` asks for.
#[derive(Clone, Debug, Default)]
pub struct LogOptions {
    /// Keep reading while the container runs; end when it has exited.
    pub follow: bool,
    /// Only the last N lines of what is there already (None: all).
    pub tail: Option<usize>,
    /// Only records at or after this time (RFC 3339 nanoseconds UTC, see [`parse_time`]).
    pub since: Option<String>,
    /// Only records before this time.
    pub until: Option<String>,
}

/// Docker's `--since` / `--until`: an RFC 3339 time (`2026-01-02T15:04:05Z`,
/// `2026-01-02T15:04:05.5+01:00`, `2026-01-02`), Unix seconds (`1700000000[.5]`), or a
/// duration before `now` (`10m`, `2h`, `1h30m`, `90s`). Returns the time as records
/// write it (nanoseconds, UTC), so that it compares with theirs as text.
pub fn parse_time(s: &str, now: std::time::SystemTime) -> Result<String> {
    let bad = || {
        invalid!(
            "time {s:?}: expected RFC 3339 (2026-01-02T15:04:05Z), Unix seconds or a duration such as 10m"
        )
    };
    let t = s.trim();
    if let Some(d) = parse_duration(t) {
        let then = now.checked_sub(d).ok_or_else(bad)?;
        let since = then
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        return Ok(crate::timestamp::format_nanos(
            since.as_secs() as i64,
            since.subsec_nanos(),
        ));
    }
    if !t.is_empty() && t.bytes().all(|b| b.is_ascii_digit() || b == b'.') {
        let (secs, frac) = t.split_once('.').unwrap_or((t, ""));
        let secs: i64 = secs.parse().map_err(|_| bad())?;
        return Ok(crate::timestamp::format_nanos(
            secs,
            frac_nanos(frac).ok_or_else(bad)?,
        ));
    }
    let full = match t.len() {
        10 => format!("{t}T00:00:00Z"),
        _ => t.to_string(),
    };
    let secs = crate::timestamp::parse(&full).ok_or_else(bad)?;
    let nanos = match full.get(19..).and_then(|r| r.strip_prefix('.')) {
        Some(r) => frac_nanos(r.split(|c: char| !c.is_ascii_digit()).next().unwrap_or(""))
            .ok_or_else(bad)?,
        None => 0,
    };
    Ok(crate::timestamp::format_nanos(secs, nanos))
}

/// `5` -> 500000000: the digits after a decimal point as nanoseconds.
fn frac_nanos(digits: &str) -> Option<u32> {
    if digits.len() > 9 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    format!("{digits:0<9}").parse().ok()
}

/// Go's durations as docker takes them: `1h30m`, `10m`, `90s`, `1.5h`, `250ms`.
fn parse_duration(s: &str) -> Option<std::time::Duration> {
    if s.is_empty() || !s.starts_with(|c: char| c.is_ascii_digit() || c == '.') {
        return None;
    }
    let mut total = 0f64;
    let mut rest = s;
    while !rest.is_empty() {
        let num_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let value: f64 = rest[..num_len].parse().ok()?;
        rest = &rest[num_len..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let scale = match &rest[..unit_len] {
            "ns" => 1e-9,
            "us" | "µs" => 1e-6,
            "ms" => 1e-3,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            _ => return None,
        };
        rest = &rest[unit_len..];
        total += value * scale;
    }
    std::time::Duration::try_from_secs_f64(total).ok()
}

/// Reads a container's log in order, oldest record first; with `follow`, waits for more
/// while the container runs (woken by inotify on its directory and by its supervisor's
/// exit, never by a timer).
pub struct LogReader {
    dir: PathBuf,
    path: PathBuf,
    opts: LogOptions,
    /// The file being read (`ctr.log`, or None before it exists) and its inode.
    current: Option<(fs::File, u64)>,
    /// Bytes after the last newline read: a record still being written.
    pending: Vec<u8>,
    /// What was in the files at the first call has been returned.
    backlog_read: bool,
    follow: Option<Follow>,
    done: bool,
}

/// What a follow waits on.
struct Follow {
    watch: OwnedFd,
    supervisor: Option<OwnedFd>,
}

impl LogReader {
    /// A reader of the log of the container whose directory is `dir` (the log is `ctr.log`
    /// and its rotations there).
    pub fn open(dir: &Path, opts: LogOptions) -> Result<LogReader> {
        let path = dir.join("ctr.log");
        let follow = match opts.follow {
            true => {
                // Set up before the first read, so that no write can slip between.
                let c = super::state::Container::load(dir)?;
                Some(Follow {
                    watch: watch_log_dir(dir)?,
                    supervisor: c.supervisor_pid.and_then(super::linux::pidfd_open),
                })
            }
            false => None,
        };
        Ok(LogReader {
            dir: dir.to_path_buf(),
            path,
            opts,
            current: None,
            pending: Vec::new(),
            backlog_read: false,
            follow,
            done: false,
        })
    }

    /// The next records, oldest first; None once the log (with `follow`: the container)
    /// has ended. With `follow` this blocks until there is more.
    pub fn next_batch(&mut self) -> Result<Option<Vec<LogRecord>>> {
        if !self.backlog_read {
            self.backlog_read = true;
            let batch = Vec::from(self.read_backlog()?);
            if !batch.is_empty() {
                return Ok(Some(batch));
            }
        }
        loop {
            if self.done || self.follow.is_none() {
                return Ok(None);
            }
            let mut batch = self.read_new()?;
            let mut ended = !self.container_runs();
            if ended {
                // Everything the supervisor wrote is in the file before it records the exit.
                batch.extend(self.read_new()?);
            }
            if let Some(until) = &self.opts.until
                && let Some(pos) = batch.iter().position(|r| r.time.as_str() >= until.as_str())
            {
                batch.truncate(pos);
                ended = true;
            }
            self.done = ended;
            if !batch.is_empty() {
                return Ok(Some(batch));
            }
            if !ended {
                self.wait();
            }
        }
    }

    /// Everything in the log files now, filtered by since/until and cut to the tail.
    fn read_backlog(&mut self) -> Result<VecDeque<LogRecord>> {
        // ctr.log first: its fd is where a follow goes on from. Between a rotation's
        // rename and the new ctr.log, the newest rotated file is the current one.
        self.current = match open_with_ino(&self.path)? {
            Some(f) => Some(f),
            None => match rotated_files(&self.dir)?.last() {
                Some((_, p)) => open_with_ino(p)?,
                None => None,
            },
        };
        self.backlog_from_current()
    }

    /// The backlog once the current file is open: the rotated files older than it, then
    /// it and whatever was rotated after it, in order (read_new follows those).
    fn backlog_from_current(&mut self) -> Result<VecDeque<LogRecord>> {
        let ours = self.current.as_ref().map(|(_, ino)| *ino);
        let mut records = VecDeque::new();
        for (_, p) in rotated_files(&self.dir)? {
            let Some((mut f, ino)) = open_with_ino(&p)? else {
                continue;
            };
            // Rotated since the current file was opened: it and the files after it are
            // newer, read in turn by read_new.
            if Some(ino) == ours {
                break;
            }
            let mut data = Vec::new();
            f.read_to_end(&mut data).map_err(io("reading", &p))?;
            records.extend(complete_lines(&data).0.map(parse_record));
        }
        records.extend(self.read_new()?);
        let (since, until) = (&self.opts.since, &self.opts.until);
        records.retain(|r| {
            since.as_ref().is_none_or(|s| r.time >= *s)
                && until.as_ref().is_none_or(|u| r.time < *u)
        });
        if let Some(n) = self.opts.tail {
            cut_to_tail(&mut records, n);
        }
        Ok(records)
    }

    /// The records appended to the current file since the last read.
    fn read_current(&mut self) -> Result<Vec<LogRecord>> {
        let Some((f, _)) = &mut self.current else {
            return Ok(Vec::new());
        };
        f.read_to_end(&mut self.pending)
            .map_err(io("reading", &self.path))?;
        let (lines, used) = complete_lines(&self.pending);
        let records = lines.map(parse_record).collect();
        self.pending.drain(..used);
        Ok(records)
    }

    /// New records, following rotations: a file that was rotated is read to its end (the
    /// writer wrote it whole before renaming it), then the file after it (the next
    /// `ctr.log.N`, at last `ctr.log`), so that no record is skipped while the rotated
    /// files are kept.
    fn read_new(&mut self) -> Result<Vec<LogRecord>> {
        let mut out = self.read_current()?;
        loop {
            let on_disk = fs::metadata(&self.path).ok().map(|m| m.ino());
            let ours = self.current.as_ref().map(|(_, ino)| *ino);
            if on_disk.is_none() || on_disk == ours {
                break;
            }
            out.extend(self.read_current()?);
            self.pending.clear();
            self.current = match ours {
                Some(ino) => self.file_after(ino)?,
                None => open_with_ino(&self.path)?,
            };
            out.extend(self.read_current()?);
        }
        if let Some(since) = &self.opts.since {
            out.retain(|r| r.time >= *since);
        }
        Ok(out)
    }

    /// The file written after the rotated file with inode `ino`, opened: the next
    /// `ctr.log.N`, else `ctr.log`. ctr.log is opened before the rotated files are listed,
    /// so a rotation in between shows up in the list and its file is not skipped. When
    /// `ino` is gone (pruned: the oldest go first, so every rotated file left is newer),
    /// the oldest rotated file left.
    fn file_after(&self, ino: u64) -> Result<Option<(fs::File, u64)>> {
        let live = open_with_ino(&self.path)?;
        let files = rotated_files(&self.dir)?;
        let next = match files
            .iter()
            .position(|(_, p)| fs::metadata(p).is_ok_and(|m| m.ino() == ino))
        {
            Some(i) => files.get(i + 1),
            None => files.first(),
        };
        match next {
            Some((_, p)) => Ok(open_with_ino(p)?.or(live)),
            None => Ok(live),
        }
    }

    fn container_runs(&self) -> bool {
        super::state::Container::load(&self.dir)
            .is_ok_and(|c| c.live_status() == super::state::Status::Running)
    }

    /// Until the log's directory changes or the supervisor exits.
    fn wait(&self) {
        let Some(f) = &self.follow else { return };
        let mut fds = vec![f.watch.as_raw_fd()];
        fds.extend(f.supervisor.as_ref().map(|p| p.as_raw_fd()));
        super::linux::wait_readable(&fds, None);
        super::linux::drain(f.watch.as_raw_fd());
    }
}

/// inotify on a container's directory for appends to the log, its rotation, and
/// state.json being replaced.
fn watch_log_dir(dir: &Path) -> Result<OwnedFd> {
    super::linux::watch_dir_for(
        dir,
        libc::IN_MODIFY
            | libc::IN_CREATE
            | libc::IN_MOVED_TO
            | libc::IN_CLOSE_WRITE
            | libc::IN_DELETE_SELF
            | libc::IN_MOVE_SELF,
    )
}

fn open_with_ino(path: &Path) -> Result<Option<(fs::File, u64)>> {
    match fs::File::open(path) {
        Ok(f) => {
            let ino = f.metadata().map_err(io("stat", path))?.ino();
            Ok(Some((f, ino)))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(io("opening", path)(e)),
    }
}

/// `ctr.log.N` files in `dir`, with their N, oldest (lowest N) first.
fn rotated_files(dir: &Path) -> Result<Vec<(u64, PathBuf)>> {
    let mut out = Vec::new();
    let entries = match fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
        Err(e) => return Err(io("listing", dir)(e)),
    };
    for e in entries.flatten() {
        let name = e.file_name();
        if let Some(n) = name
            .to_str()
            .and_then(|s| s.strip_prefix("ctr.log."))
            .and_then(|n| n.parse().ok())
        {
            out.push((n, e.path()));
        }
    }
    out.sort();
    Ok(out)
}

/// The newline-terminated lines of `data` and how many bytes they take.
fn complete_lines(data: &[u8]) -> (impl Iterator<Item = &[u8]>, usize) {
    let used = memchr::memrchr(b'\n', data).map_or(0, |i| i + 1);
    let lines = data[..used]
        .split(|b| *b == b'\n')
        .take(data[..used].iter().filter(|b| **b == b'\n').count());
    (lines, used)
}

/// Keeps the records of the last `n` lines (a line: a full record and the partial ones
/// of its stream before it).
fn cut_to_tail(records: &mut VecDeque<LogRecord>, n: usize) {
    let mut lines = 0;
    let mut start = records.len();
    for (i, r) in records.iter().enumerate().rev() {
        if !r.partial {
            if lines == n {
                break;
            }
            lines += 1;
        }
        start = i;
    }
    if n == 0 {
        start = records.len();
    }
    records.drain(..start);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn records_of(dir: &Path) -> Vec<LogRecord> {
        let mut r = LogReader::open(dir, LogOptions::default()).unwrap();
        let mut out = Vec::new();
        while let Some(b) = r.next_batch().unwrap() {
            out.extend(b);
        }
        out
    }

    #[test]
    fn lines_partials_and_streams_round_trip() {
        let d = tempfile::tempdir().unwrap();
        let mut w = LogWriter::open(&d.path().join("ctr.log"), LogLimits::default()).unwrap();
        w.write(Stream::Stdout, b"one\ntwo\nhalf").unwrap();
        w.write(Stream::Stderr, b"err line\n").unwrap();
        w.write(Stream::Stdout, b" done\n").unwrap();
        let got: Vec<(Stream, &str, bool)> = records_of(d.path())
            .iter()
            .map(|r| {
                (
                    r.stream,
                    std::str::from_utf8(&r.data).unwrap().to_owned(),
                    r.partial,
                )
            })
            .map(|(s, d, p)| (s, &*d.leak(), p))
            .collect();
        assert_eq!(
            got,
            vec![
                (Stream::Stdout, "one", false),
                (Stream::Stdout, "two", false),
                (Stream::Stdout, "half", true),
                (Stream::Stderr, "err line", false),
                (Stream::Stdout, " done", false),
            ]
        );
    }

    #[test]
    fn rotation_keeps_each_file_under_the_cap() {
        let d = tempfile::tempdir().unwrap();
        let limits = LogLimits {
            max_size: 4096,
            max_files: 3,
        };
        let mut w = LogWriter::open(&d.path().join("ctr.log"), limits).unwrap();
        for i in 0..2000 {
            w.write(Stream::Stdout, format!("line {i}\n").as_bytes())
                .unwrap();
        }
        let mut names: Vec<String> = fs::read_dir(d.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort();
        assert_eq!(names.len(), 3, "{names:?}");
        assert!(names[0] == "ctr.log" && names.iter().all(|n| n.starts_with("ctr.log")));
        for n in &names {
            assert!(fs::metadata(d.path().join(n)).unwrap().len() <= 4096, "{n}");
        }
        let got = records_of(d.path());
        assert_eq!(got.last().unwrap().data, b"line 1999");
        // What is kept is contiguous.
        let first: usize = std::str::from_utf8(&got[0].data).unwrap()[5..]
            .parse()
            .unwrap();
        assert_eq!(got.len(), 2000 - first);
    }

    #[test]
    fn rotations_while_the_backlog_is_read_neither_lose_nor_repeat() {
        let d = tempfile::tempdir().unwrap();
        let limits = LogLimits {
            max_size: 4096,
            max_files: 100,
        };
        let mut w = LogWriter::open(&d.path().join("ctr.log"), limits).unwrap();
        let mut n = 0;
        let mut write = |w: &mut LogWriter, lines| {
            for _ in 0..lines {
                w.write(Stream::Stdout, format!("line {n}\n").as_bytes())
                    .unwrap();
                n += 1;
            }
        };
        write(&mut w, 500);
        let mut r = LogReader::open(d.path(), LogOptions::default()).unwrap();
        r.current = open_with_ino(&d.path().join("ctr.log")).unwrap();
        // Several rotations between opening ctr.log and listing the rotated files.
        write(&mut w, 1000);
        let got: Vec<String> = r
            .backlog_from_current()
            .unwrap()
            .iter()
            .map(|r| String::from_utf8(r.data.clone()).unwrap())
            .collect();
        let want: Vec<String> = (0..1500).map(|i| format!("line {i}")).collect();
        assert_eq!(got, want);
    }

    #[test]
    fn a_follower_whose_file_was_pruned_goes_on_with_the_oldest_file_left() {
        let d = tempfile::tempdir().unwrap();
        let limits = LogLimits {
            max_size: 4096,
            max_files: 4,
        };
        let mut w = LogWriter::open(&d.path().join("ctr.log"), limits).unwrap();
        let line = |i: usize| format!("line {i:05}");
        w.write(Stream::Stdout, format!("{}\n", line(0)).as_bytes())
            .unwrap();
        let mut r = LogReader::open(d.path(), LogOptions::default()).unwrap();
        let first: Vec<_> = Vec::from(r.read_backlog().unwrap());
        assert_eq!(first.len(), 1);
        // Enough for ctr.log (the reader's file) to be rotated and pruned.
        for i in 1..600 {
            w.write(Stream::Stdout, format!("{}\n", line(i)).as_bytes())
                .unwrap();
        }
        let got: Vec<String> = r
            .read_new()
            .unwrap()
            .iter()
            .map(|r| String::from_utf8(r.data.clone()).unwrap())
            .collect();
        // What is still on disk, oldest first: the oldest rotated file left, then on.
        let kept: Vec<String> = records_of(d.path())
            .iter()
            .map(|r| String::from_utf8(r.data.clone()).unwrap())
            .collect();
        // The rest of its own file (its fd still reads it), then the oldest file left
        // and on: nothing read twice, nothing left on disk skipped.
        let own = got.len() - kept.len();
        assert_eq!(got[own..], kept[..]);
        assert_eq!(got[..own], (1..=own).map(line).collect::<Vec<_>>()[..]);
        assert!(own < 300, "its file was not pruned: the test shows nothing");
    }

    #[test]
    fn long_lines_are_split_into_partials() {
        let d = tempfile::tempdir().unwrap();
        let mut w = LogWriter::open(&d.path().join("ctr.log"), LogLimits::default()).unwrap();
        let long = vec![b'x'; MAX_RECORD * 2 + 5];
        w.write(Stream::Stdout, &long).unwrap();
        w.write(Stream::Stdout, b"\n").unwrap();
        let got = records_of(d.path());
        let joined: Vec<u8> = got.iter().flat_map(|r| r.data.clone()).collect();
        assert_eq!(joined, long);
        assert!(got.iter().all(|r| r.data.len() <= MAX_RECORD));
        assert!(!got.last().unwrap().partial);
    }

    #[test]
    fn tail_counts_lines_not_records() {
        let rec = |d: &str, partial| LogRecord {
            time: "2026-01-01T00:00:00.000000000Z".into(),
            stream: Stream::Stdout,
            data: d.into(),
            partial,
        };
        let all: VecDeque<LogRecord> = [
            rec("a", false),
            rec("b1", true),
            rec("b2", false),
            rec("c", false),
        ]
        .into();
        let mut t = all.clone();
        cut_to_tail(&mut t, 2);
        assert_eq!(t.len(), 3);
        assert_eq!(t[0].data, b"b1");
        let mut t = all.clone();
        cut_to_tail(&mut t, 0);
        assert!(t.is_empty());
        let mut t = all.clone();
        cut_to_tail(&mut t, 10);
        assert_eq!(t.len(), 4);
    }

    #[test]
    fn times_as_docker_takes_them() {
        let now = std::time::UNIX_EPOCH + std::time::Duration::from_secs(1_700_000_000);
        assert_eq!(
            parse_time("10m", now).unwrap(),
            "2023-11-14T22:03:20.000000000Z"
        );
        assert_eq!(
            parse_time("1h30m", now).unwrap(),
            "2023-11-14T20:43:20.000000000Z"
        );
        assert_eq!(
            parse_time("1700000000.5", now).unwrap(),
            "2023-11-14T22:13:20.500000000Z"
        );
        assert_eq!(
            parse_time("2023-11-14T23:13:20.25+01:00", now).unwrap(),
            "2023-11-14T22:13:20.250000000Z"
        );
        assert_eq!(
            parse_time("2023-11-14", now).unwrap(),
            "2023-11-14T00:00:00.000000000Z"
        );
        assert!(parse_time("yesterday", now).is_err());
        assert!(parse_time("10x", now).is_err());
    }

    #[test]
    fn foreign_lines_read_as_stdout() {
        let r = parse_record(b"unionctl: something broke");
        assert_eq!(r.stream, Stream::Stdout);
        assert_eq!(r.data, b"unionctl: something broke");
        assert_eq!(r.time, "");
    }
}
