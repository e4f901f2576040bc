//! `run`, `ps`, `start`, `stop`, `restart`, `attach`, `logs`, `rm`.
use super::args::{AttachArgs, CtrListArgs, ListArgs, LogsArgs, RmArgs, RunArgs, StopArgs};
use super::table;
use std::path::Path;
use std::time::Duration;
use unionctl::runner::{self, Container, RunOutcome, Status};

pub fn run(root: &Path, a: RunArgs) -> anyhow::Result<i32> {
    match runner::run(root, a.into())? {
        RunOutcome::Detached(id) => {
            println!("{id}");
            Ok(0)
        }
        RunOutcome::Exited(code) => Ok(code),
        RunOutcome::NotStarted(e) => {
            eprintln!("unionctl: {}", e.chain());
            Ok(125)
        }
    }
}

/// Runs `f` on each named container; prints each name done, each failure on its own line.
fn each(names: &[String], mut f: impl FnMut(&str) -> runner::Result<()>) -> anyhow::Result<i32> {
    let mut failed = false;
    for n in names {
        match f(n) {
            Ok(()) => println!("{n}"),
            Err(e) => {
                eprintln!("unionctl: {}", e.chain());
                failed = true;
            }
        }
    }
    Ok(if failed { 1 } else { 0 })
}

pub fn start(root: &Path, a: CtrListArgs) -> anyhow::Result<i32> {
    each(&a.containers, |n| runner::start(root, n))
}

pub fn stop(root: &Path, a: StopArgs) -> anyhow::Result<i32> {
    let t = Duration::from_secs(a.time);
    each(&a.containers, |n| runner::stop(root, n, t))
}

pub fn restart(root: &Path, a: StopArgs) -> anyhow::Result<i32> {
    let t = Duration::from_secs(a.time);
    each(&a.containers, |n| runner::restart(root, n, t))
}

pub fn rm(root: &Path, a: RmArgs) -> anyhow::Result<i32> {
    each(&a.containers, |n| {
        runner::remove(root, n, a.force, a.volumes)
    })
}

pub fn attach(root: &Path, a: AttachArgs) -> anyhow::Result<i32> {
    Ok(runner::attach(root, &a.container, &a.detach_keys)?)
}

/// Prints a container's log: stdout records to stdout, stderr records to stderr.
pub fn logs(root: &Path, a: LogsArgs) -> anyhow::Result<i32> {
    use runner::logfile::{LogOptions, Stream, parse_time};
    use std::io::Write;
    let now = std::time::SystemTime::now();
    let tail =
        match a.tail.as_str() {
            "all" => None,
            n => Some(n.parse::<usize>().map_err(|_| {
                anyhow::anyhow!("--tail {n:?}: expected a number of lines or \"all\"")
            })?),
        };
    let opts = LogOptions {
        follow: a.follow,
        tail,
        since: a.since.as_deref().map(|s| parse_time(s, now)).transpose()?,
        until: a.until.as_deref().map(|s| parse_time(s, now)).transpose()?,
    };
    let mut reader = runner::logs(root, &a.container, opts)?;
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    let mut err = std::io::BufWriter::new(std::io::stderr().lock());
    // Per stream: whether the next record starts a line (where -t puts the time).
    let mut line_start = [true, true];
    while let Some(batch) = reader.next_batch()? {
        let mut last = None;
        for r in batch {
            // Output to one terminal keeps its order: flush when the stream changes.
            if last.is_some_and(|s| s != r.stream) {
                out.flush()?;
                err.flush()?;
            }
            last = Some(r.stream);
            let (w, at): (&mut dyn Write, _) = match r.stream {
                Stream::Stdout => (&mut out, &mut line_start[0]),
                Stream::Stderr => (&mut err, &mut line_start[1]),
            };
            if a.timestamps && *at {
                write!(w, "{} ", r.time)?;
            }
            w.write_all(&r.data)?;
            if !r.partial {
                w.write_all(b"\n")?;
            }
            *at = !r.partial;
        }
        out.flush()?;
        err.flush()?;
    }
    Ok(0)
}

pub fn ps(root: &Path, a: ListArgs) -> anyhow::Result<i32> {
    let all = runner::list(root, a.all)?;
    if a.json {
        println!("{}", serde_json::to_string_pretty(&all)?);
        return Ok(0);
    }
    if a.quiet {
        for c in &all {
            println!("{}", c.short_id());
        }
        return Ok(0);
    }
    let head = [
        "CONTAINER ID",
        "IMAGE",
        "COMMAND",
        "CREATED",
        "STATUS",
        "NAMES",
    ];
    table::print(&table::with_head(&head, all.iter().map(ps_row)));
    Ok(0)
}

fn ps_row(c: &Container) -> Vec<String> {
    let image = match (&c.image_ref, &c.image, &c.rootfs) {
        (Some(r), _, _) => r.clone(),
        (None, Some(i), _) => i.trim_start_matches("sha256:").chars().take(12).collect(),
        (None, None, Some(r)) => format!("rootfs:{}", r.display()),
        _ => "-".into(),
    };
    let mut cmd = c.config.argv().join(" ");
    if cmd.chars().count() > 20 {
        cmd = format!("{}…", cmd.chars().take(19).collect::<String>());
    }
    vec![
        c.short_id().to_string(),
        image,
        format!("\"{cmd}\""),
        format!("{} ago", ago(&c.created)),
        status_text(c),
        c.name.clone(),
    ]
}

fn ago(ts: &str) -> String {
    let Some(t) = unionctl::timestamp::parse(ts) else {
        return ts.to_string();
    };
    let s = (unionctl::timestamp::unix_now() - t).max(0);
    match s {
        0..=59 => format!("{s} seconds"),
        60..=3599 => format!("{} minutes", s / 60),
        3600..=86399 => format!("{} hours", s / 3600),
        _ => format!("{} days", s / 86400),
    }
}

fn status_text(c: &Container) -> String {
    let since = |t: &Option<String>| ago(t.as_deref().unwrap_or(&c.created));
    match c.status {
        Status::Created => "Created".into(),
        Status::Running if c.paused => format!("Up {} (Paused)", since(&c.started_at)),
        Status::Running => format!("Up {}", since(&c.started_at)),
        Status::Exited => format!(
            "Exited ({}) {} ago",
            c.exit_code.unwrap_or(-1),
            since(&c.finished_at)
        ),
    }
}
