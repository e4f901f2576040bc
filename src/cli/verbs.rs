//! `create`, `kill`, `wait`, `pause`, `unpause`, `top`, `stats`, `cp`, `rename`,
//! `container prune`, `image prune`, `volume ...`, `system df|prune`, `info`, `version`.
use super::args::{
    ContainerCmd, CpArgs, CtrNames, ImageCmd, KillArgs, RenameArgs, RunArgs, StatsArgs, SystemCmd,
    TopArgs, VolumeCmd,
};
use super::format::Format;
use super::images::Inspected;
use super::table;
use std::io::Write;
use std::path::Path;
use std::time::Duration;
use unionctl::image::util::human_size;
use unionctl::runner::{self, stats, system, volumes};

pub fn create(root: &Path, a: RunArgs) -> anyhow::Result<i32> {
    a.refuse_unsupported()?;
    super::registry::pull_for_run(root, &a)?;
    println!("{}", runner::create_container(root, a.into())?);
    Ok(0)
}

/// Runs `f` on each name; prints each name done (or what `f` returns), each failure on
/// its own line; unionctl's own error status if any failed.
fn each<T: std::fmt::Display>(
    verb: &str,
    names: &[String],
    mut f: impl FnMut(&str) -> runner::Result<Option<T>>,
) -> anyhow::Result<i32> {
    let mut failed = false;
    for n in names {
        match f(n) {
            Ok(Some(v)) => println!("{v}"),
            Ok(None) => println!("{n}"),
            Err(e) => {
                super::report(verb, &e);
                failed = true;
            }
        }
    }
    Ok(if failed { super::exit::OWN_ERROR } else { 0 })
}

pub fn kill(root: &Path, a: KillArgs) -> anyhow::Result<i32> {
    each::<String>("kill", &a.containers, |n| {
        runner::kill(root, n, a.signal).map(|_| None)
    })
}

pub fn wait(root: &Path, a: CtrNames) -> anyhow::Result<i32> {
    each("wait", &a.containers, |n| runner::wait(root, n).map(Some))
}

pub fn pause(root: &Path, a: CtrNames, frozen: bool) -> anyhow::Result<i32> {
    let verb = if frozen { "pause" } else { "unpause" };
    each::<String>(verb, &a.containers, |n| {
        let c = runner::find_container(root, n)?;
        match frozen {
            true => runner::pause(&c),
            false => runner::unpause(&c),
        }
        .map(|_| None)
    })
}

pub fn top(root: &Path, a: TopArgs) -> anyhow::Result<i32> {
    let rows = stats::top(root, &a.container)?;
    let hz = stats::clock_ticks();
    let head = ["UID", "PID", "PPID", "TIME", "CMD"];
    table::print(&table::with_head(
        &head,
        rows.iter().map(|r| {
            let s = r.cpu_ticks / hz;
            vec![
                r.uid.to_string(),
                r.pid.to_string(),
                r.ppid.to_string(),
                format!("{:02}:{:02}:{:02}", s / 3600, s / 60 % 60, s % 60),
                r.cmd.clone(),
            ]
        }),
    ));
    Ok(0)
}

pub fn stats(root: &Path, a: StatsArgs) -> anyhow::Result<i32> {
    let tty = std::io::IsTerminal::is_terminal(&std::io::stdout());
    loop {
        let names = if a.all && a.containers.is_empty() {
            runner::list(root, true)?
                .into_iter()
                .map(|c| c.id)
                .collect()
        } else {
            a.containers.clone()
        };
        let rows = stats::stats(root, &names, Duration::from_secs(1))?;
        if tty && !a.no_stream {
            print!("\x1b[2J\x1b[H");
        }
        let head = [
            "CONTAINER ID",
            "NAME",
            "CPU %",
            "MEM USAGE / LIMIT",
            "MEM %",
            "PIDS",
        ];
        table::print(&table::with_head(
            &head,
            rows.iter().map(|s| {
                let mem_pct = match s.mem_limit {
                    0 => 0.0,
                    l => s.mem_usage as f64 / l as f64 * 100.0,
                };
                vec![
                    s.id.chars().take(12).collect(),
                    s.name.clone(),
                    format!("{:.2}%", s.cpu_percent),
                    format!(
                        "{} / {}",
                        binary_size(s.mem_usage),
                        binary_size(s.mem_limit)
                    ),
                    format!("{mem_pct:.2}%"),
                    s.pids.to_string(),
                ]
            }),
        ));
        let _ = std::io::stdout().flush();
        if a.no_stream {
            return Ok(0);
        }
    }
}

/// Memory sizes in binary units, as docker stats prints them (`1.5MiB`).
fn binary_size(b: u64) -> String {
    let units = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = b as f64;
    let mut i = 0;
    while v >= 1024.0 && i + 1 < units.len() {
        v /= 1024.0;
        i += 1;
    }
    if i == 0 {
        format!("{b}B")
    } else {
        format!("{v:.2}{}", units[i])
    }
}

/// `CONTAINER:PATH` (a name with no `/` before the colon), else a host path.
fn container_path(s: &str) -> Option<(&str, &str)> {
    let (c, p) = s.split_once(':')?;
    (!c.is_empty() && !c.contains('/')).then_some((c, p))
}

pub fn cp(root: &Path, a: CpArgs) -> anyhow::Result<i32> {
    if a.source == "-" || a.destination == "-" {
        // Not a file named "-": docker's tar stream, which unionctl does not speak.
        anyhow::bail!("'-' (a tar stream on stdin or stdout) is not supported: give a host path");
    }
    match (container_path(&a.source), container_path(&a.destination)) {
        (Some((c, p)), None) => runner::cp::copy_out(root, c, p, Path::new(&a.destination))?,
        (None, Some((c, p))) => runner::cp::copy_in(root, Path::new(&a.source), c, p)?,
        (Some(_), Some(_)) => anyhow::bail!("copying between containers is not supported"),
        (None, None) => anyhow::bail!("one of SOURCE and DESTINATION must be CONTAINER:PATH"),
    }
    Ok(0)
}

pub fn rename(root: &Path, a: RenameArgs) -> anyhow::Result<i32> {
    runner::rename(root, &a.container, &a.new_name)?;
    Ok(0)
}

fn reclaimed(bytes: u64) {
    println!("Total reclaimed space: {}", human_size(bytes));
}

pub fn container(root: &Path, cmd: ContainerCmd) -> anyhow::Result<i32> {
    match cmd {
        ContainerCmd::Prune(_) => {
            let (ids, bytes) = runner::prune(root)?;
            if !ids.is_empty() {
                println!("Deleted Containers:");
                ids.iter().for_each(|i| println!("{i}"));
                println!();
            }
            reclaimed(bytes);
        }
        ContainerCmd::Ls(a) => return super::containers::ps(root, a),
        ContainerCmd::Rm(a) => return super::containers::rm(root, a),
        ContainerCmd::Inspect(a) => {
            return super::images::inspect(root, a, Inspected::Containers);
        }
    }
    Ok(0)
}

pub fn image(root: &Path, cmd: ImageCmd) -> anyhow::Result<i32> {
    match cmd {
        ImageCmd::Prune(a) => {
            let p = unionctl::image::prune::prune(root, a.all)?;
            if !p.lines.is_empty() {
                println!("Deleted Images:");
                p.lines.iter().for_each(|l| println!("{l}"));
                println!();
            }
            reclaimed(p.reclaimed);
        }
        ImageCmd::Ls(a) => return super::images::images(root, a),
        ImageCmd::Rm(a) => return super::images::rmi(root, a),
        ImageCmd::Inspect(a) => return super::images::inspect(root, a, Inspected::Images),
        ImageCmd::History(a) => return super::images::history(root, a),
        ImageCmd::Tag(a) => return super::images::tag(root, a),
        ImageCmd::Save(a) => return super::images::save(root, a),
        ImageCmd::Load(a) => return super::images::load(root, a),
        ImageCmd::Import(a) => return super::images::import(root, a),
        ImageCmd::Pull(a) => return super::registry::pull(root, a),
        ImageCmd::Push(a) => return super::registry::push(root, a),
    }
    Ok(0)
}

pub fn volume(root: &Path, cmd: VolumeCmd) -> anyhow::Result<i32> {
    match cmd {
        VolumeCmd::Create(a) => {
            let v = volumes::create(root, a.name.as_deref(), &a.labels)?;
            println!("{}", v.name);
        }
        VolumeCmd::Ls(a) => {
            let all = volumes::list(root)?;
            let format = Format::parse(a.format.format.as_deref(), a.format.json)?;
            if a.quiet {
                all.iter().for_each(|v| println!("{}", v.name));
            } else {
                let rows = all
                    .iter()
                    .map(serde_json::to_value)
                    .collect::<Result<Vec<_>, _>>()?;
                let header = |field: &str| match field {
                    "Name" => Some("VOLUME NAME"),
                    _ => None,
                };
                format.print_rows(&rows, &header, || {
                    let rows = all.iter().map(|v| vec![v.driver.clone(), v.name.clone()]);
                    table::print(&table::with_head(&["DRIVER", "VOLUME NAME"], rows));
                })?;
            }
        }
        VolumeCmd::Inspect(a) => {
            let mut out = Vec::new();
            let mut failed = false;
            for n in &a.names {
                match volumes::inspect(root, n) {
                    Ok(v) => out.push(v),
                    Err(e) => {
                        super::report("volume inspect", &e);
                        failed = true;
                    }
                }
            }
            println!("{}", serde_json::to_string_pretty(&out)?);
            return Ok(if failed { super::exit::OWN_ERROR } else { 0 });
        }
        VolumeCmd::Rm(a) => {
            return each::<String>("volume rm", &a.names, |n| {
                volumes::remove(root, n).map(|_| None)
            });
        }
        VolumeCmd::Prune(_) => {
            let (names, bytes) = volumes::prune(root)?;
            if !names.is_empty() {
                println!("Deleted Volumes:");
                names.iter().for_each(|n| println!("{n}"));
                println!();
            }
            reclaimed(bytes);
        }
    }
    Ok(0)
}

pub fn system(root: &Path, cmd: SystemCmd) -> anyhow::Result<i32> {
    match cmd {
        SystemCmd::Df => {
            let rows = system::df(root)?.into_iter().map(|r| {
                let pct = match r.size {
                    0 => 0,
                    s => r.reclaimable * 100 / s,
                };
                vec![
                    r.kind,
                    r.total.to_string(),
                    r.active.to_string(),
                    human_size(r.size),
                    format!("{} ({pct}%)", human_size(r.reclaimable)),
                ]
            });
            let head = ["TYPE", "TOTAL", "ACTIVE", "SIZE", "RECLAIMABLE"];
            table::print(&table::with_head(&head, rows));
        }
        SystemCmd::Prune(a) => {
            let p = system::prune(root, a.all, a.volumes)?;
            for (title, list) in [
                ("Deleted Containers:", &p.containers),
                ("Deleted Volumes:", &p.volumes),
                ("Deleted Images:", &p.images),
            ] {
                if !list.is_empty() {
                    println!("{title}");
                    list.iter().for_each(|l| println!("{l}"));
                    println!();
                }
            }
            reclaimed(p.reclaimed);
        }
    }
    Ok(0)
}

pub fn info(root: &Path) -> anyhow::Result<i32> {
    let i = system::info(root)?;
    println!("Containers: {}", i.containers);
    println!(" Running: {}", i.containers_running);
    println!(" Paused: {}", i.containers_paused);
    println!(" Stopped: {}", i.containers_stopped);
    println!("Images: {}", i.images);
    println!("Volumes: {}", i.volumes);
    println!("Server Version: {}", i.server_version);
    println!("Storage Driver: {}", i.storage_driver);
    println!("Cgroup Version: {}", i.cgroup_version);
    println!("Rootless: {}", i.rootless);
    println!("Kernel Version: {}", i.kernel_version);
    println!("Operating System: {}", i.operating_system);
    println!("Architecture: {}", i.architecture);
    println!("CPUs: {}", i.ncpu);
    println!("Total Memory: {}", binary_size(i.mem_total));
    println!("Root Dir: {}", i.root_dir.display());
    for w in &i.warnings {
        eprintln!("WARNING: {w}");
    }
    Ok(0)
}

pub fn version() -> anyhow::Result<i32> {
    let v = system::version();
    println!("Version:        {}", v.version);
    println!("OS/Arch:        {}/{}", v.os, v.arch);
    println!("Kernel Version: {}", v.kernel_version);
    Ok(0)
}
