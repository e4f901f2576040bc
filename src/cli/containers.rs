//! `run`, `ps`, `start`, `stop`, `restart`, `attach`, `logs`, `rm`.
use super::args::{AttachArgs, LogsArgs, PsArgs, RmArgs, RunArgs, StartArgs, StopArgs};
use super::filter::{self, Filters};
use super::format::Format;
use super::table;
use std::path::Path;
use std::time::Duration;
use unionctl::image::util::human_duration;
use unionctl::runner::{self, Container, ContainerSummary, RunOutcome, Status, inspect};

pub fn run(root: &Path, a: RunArgs) -> anyhow::Result<i32> {
    a.refuse_unsupported()?;
    super::registry::pull_for_run(root, &a)?;
    match runner::run(root, a.into())? {
        RunOutcome::Detached(id) => {
            println!("{id}");
            Ok(0)
        }
        RunOutcome::Exited(code) => Ok(code),
        RunOutcome::NotStarted(e) => {
            super::report("run", &e);
            Ok(super::exit::OWN_ERROR)
        }
        RunOutcome::NotRun(code, e) => {
            super::report("run", &e);
            Ok(code)
        }
    }
}

/// Runs `f` on each named container; prints each name done, each failure on its own line
/// (`unionctl: VERB: ...`).
fn each(
    verb: &str,
    names: &[String],
    mut f: impl FnMut(&str) -> runner::Result<()>,
) -> anyhow::Result<i32> {
    let mut failed = false;
    for n in names {
        match f(n) {
            Ok(()) => println!("{n}"),
            Err(e) => {
                super::report(verb, &e);
                failed = true;
            }
        }
    }
    Ok(if failed { super::exit::OWN_ERROR } else { 0 })
}

pub fn start(root: &Path, a: StartArgs) -> anyhow::Result<i32> {
    if !a.attach {
        return each("start", &a.containers, |n| runner::start(root, n));
    }
    let [name] = a.containers.as_slice() else {
        return Err(
            super::exit::Usage("-a attaches to one container: name only one".into()).into(),
        );
    };
    Ok(runner::start_attached(root, name, &a.detach_keys)?)
}

pub fn stop(root: &Path, a: StopArgs) -> anyhow::Result<i32> {
    let t = a.time.map(Duration::from_secs);
    each("stop", &a.containers, |n| runner::stop(root, n, t))
}

pub fn restart(root: &Path, a: StopArgs) -> anyhow::Result<i32> {
    let t = a.time.map(Duration::from_secs);
    each("restart", &a.containers, |n| runner::restart(root, n, t))
}

pub fn rm(root: &Path, a: RmArgs) -> anyhow::Result<i32> {
    each("rm", &a.containers, |n| {
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

pub fn ps(root: &Path, a: PsArgs) -> anyhow::Result<i32> {
    let format = Format::parse(a.format.format.as_deref(), a.format.json)?;
    let filters = Filters::parse(&a.filters, &["status", "name", "id", "ancestor", "label"])?;
    // docker's states; a typo must not read as "none match".
    const STATES: [&str; 7] = [
        "created",
        "restarting",
        "running",
        "removing",
        "paused",
        "exited",
        "dead",
    ];
    if let Some(bad) = filters
        .values("status")
        .iter()
        .find(|v| !STATES.contains(&v.as_str()))
    {
        anyhow::bail!(
            "invalid filter 'status={bad}': the status is one of {}",
            STATES.join(", ")
        );
    }
    // As in docker, a status filter looks at stopped containers too.
    let all = a.all || !filters.values("status").is_empty();
    // Newest first, as docker lists them.
    let images = inspect::StoreImages::read(root);
    let listed: Vec<(Container, ContainerSummary)> = runner::list(root, all)?
        .into_iter()
        .rev()
        .map(|c| {
            let s = inspect::summary(&images, &c);
            (c, s)
        })
        .filter(|(_, s)| ps_filter(&filters, s))
        .collect();
    if a.quiet {
        for (c, _) in &listed {
            println!("{}", c.short_id());
        }
        return Ok(0);
    }
    let rows: Vec<serde_json::Value> = listed.iter().map(|(c, s)| ps_value(c, s)).collect();
    let header = |field: &str| match field {
        "ID" => Some("CONTAINER ID"),
        "RunningFor" => Some("CREATED"),
        _ => None,
    };
    format.print_rows(&rows, &header, || {
        let head = [
            "CONTAINER ID",
            "IMAGE",
            "COMMAND",
            "CREATED",
            "STATUS",
            "NAMES",
        ];
        table::print(&table::with_head(
            &head,
            listed.iter().map(|(c, s)| ps_row(c, s)),
        ));
    })?;
    Ok(0)
}

fn ps_filter(f: &Filters, c: &ContainerSummary) -> bool {
    f.any("status", |v| v == c.state)
        && f.any("name", |v| c.names.contains(v))
        && f.any("id", |v| c.id.starts_with(v))
        && f.any("label", |v| filter::label_matches(&c.labels, v))
        && f.any("ancestor", |v| {
            let id = c.image_id.trim_start_matches("sha256:");
            let want = v.trim_start_matches("sha256:");
            c.image == v
                || unionctl::image::store::tag_matches(&c.image, v)
                || (!id.is_empty() && id.starts_with(want))
        })
}

/// A `ps` row for --format: the summary's fields, the short ID and docker's
/// human-readable `RunningFor` and `Status`.
fn ps_value(c: &Container, summary: &ContainerSummary) -> serde_json::Value {
    let mut v = serde_json::to_value(summary).unwrap_or_default();
    if let Some(o) = v.as_object_mut() {
        o.insert("ID".into(), c.short_id().into());
        o.insert(
            "RunningFor".into(),
            format!("{} ago", ago(&c.created)).into(),
        );
        o.insert("Status".into(), status_text(c).into());
    }
    v
}

fn ps_row(c: &Container, summary: &ContainerSummary) -> Vec<String> {
    let image = match summary.image.as_str() {
        "" => "-".to_string(),
        shown => shown.to_string(),
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
    match unionctl::timestamp::parse(ts) {
        Some(t) => human_duration(unionctl::timestamp::unix_now() - t),
        None => ts.to_string(),
    }
}

fn status_text(c: &Container) -> String {
    let since = |t: &Option<String>| ago(t.as_deref().unwrap_or(&c.created));
    match c.status {
        Status::Created => "Created".into(),
        Status::Running if c.paused => format!("Up {} (Paused)", since(&c.started_at)),
        // Between two runs of its restart policy.
        Status::Running if c.pid.is_none() => format!(
            "Restarting ({}) {} ago",
            c.exit_code.unwrap_or(-1),
            since(&c.finished_at)
        ),
        Status::Running => format!("Up {}", since(&c.started_at)),
        Status::Exited => format!(
            "Exited ({}) {} ago",
            c.exit_code.unwrap_or(-1),
            since(&c.finished_at)
        ),
    }
}
