//! `run`, `ps`, `start`, `stop`, `restart`, `attach`, `logs`, `rm`.
use super::args::{AttachArgs, CtrArgs, CtrListArgs, ListArgs, RmArgs, RunArgs, StopArgs};
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
    let t = a.time.map(Duration::from_secs);
    each(&a.containers, |n| runner::stop(root, n, t))
}

pub fn restart(root: &Path, a: StopArgs) -> anyhow::Result<i32> {
    let t = a.time.map(Duration::from_secs);
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

pub fn logs(root: &Path, a: CtrArgs) -> anyhow::Result<i32> {
    runner::logs(root, &a.container, &mut std::io::stdout().lock())?;
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
