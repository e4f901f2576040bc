//! `images`, `tag`, `rmi`, `history`, `inspect`, `commit`, `diff`, `save`, `load`,
//! `export`, `import`.
use super::args::{
    CommitArgs, CtrArgs, ExportArgs, ImgArgs, ImportArgs, InspectArgs, ListArgs, LoadArgs, RmiArgs,
    SaveArgs, TagArgs,
};
use super::progress::Shown;
use super::table;
use anyhow::{Context, bail};
use serde_json::{Value, json};
use std::io::IsTerminal;
use std::path::Path;
use unionctl::image::util::{human_ago, human_size};
use unionctl::image::{self, container, listing, transfer};

pub fn images(root: &Path, a: ListArgs) -> anyhow::Result<i32> {
    let rows = listing::images(root)?;
    if a.json {
        let v: Vec<Value> = rows
            .iter()
            .map(|r| {
                let (repo, tag) = listing::repo_and_tag(&r.tag);
                json!({"Repository": repo, "Tag": tag, "Id": format!("sha256:{}", r.id),
                       "Created": r.created, "Size": r.size})
            })
            .collect();
        println!("{}", serde_json::to_string_pretty(&v)?);
    } else if a.quiet {
        let mut seen = std::collections::HashSet::new();
        for r in &rows {
            if seen.insert(r.id.clone()) {
                println!("{}", &r.id[..12]);
            }
        }
    } else {
        let head = ["REPOSITORY", "TAG", "IMAGE ID", "CREATED", "SIZE"];
        let body = rows.iter().map(|r| {
            let (repo, tag) = listing::repo_and_tag(&r.tag);
            vec![
                repo,
                tag,
                r.id[..12].to_string(),
                human_ago(r.created.as_deref()),
                human_size(r.size),
            ]
        });
        table::print(&table::with_head(&head, body));
    }
    Ok(0)
}

pub fn tag(root: &Path, a: TagArgs) -> anyhow::Result<i32> {
    listing::tag(root, &a.source, &a.target)?;
    Ok(0)
}

pub fn rmi(root: &Path, a: RmiArgs) -> anyhow::Result<i32> {
    let mut failed = false;
    for (reference, result) in a.images.iter().zip(listing::rmi(root, &a.images, a.force)?) {
        match result {
            Ok(lines) => lines.iter().for_each(|l| println!("{l}")),
            Err(e) => {
                eprintln!("unionctl: rmi {reference}: {}", e.chain());
                failed = true;
            }
        }
    }
    Ok(failed as i32)
}

pub fn history(root: &Path, a: ImgArgs) -> anyhow::Result<i32> {
    let (id, rows) = listing::history(root, &a.image)?;
    if a.json {
        let v: Vec<Value> = rows
            .iter()
            .map(|h| {
                json!({"Created": h.created, "CreatedBy": h.created_by, "Size": h.size,
                       "Comment": h.comment})
            })
            .collect();
        println!("{}", serde_json::to_string_pretty(&v)?);
        return Ok(0);
    }
    let body = rows.iter().enumerate().map(|(i, h)| {
        let idcol = if i == 0 {
            id[..12].to_string()
        } else {
            "<missing>".into()
        };
        let by: String = if h.created_by.chars().count() > 45 {
            h.created_by.chars().take(44).collect::<String>() + "…"
        } else {
            h.created_by.clone()
        };
        vec![
            idcol,
            human_ago(h.created.as_deref()),
            by,
            human_size(h.size),
            h.comment.clone(),
        ]
    });
    let head = ["IMAGE", "CREATED", "CREATED BY", "SIZE", "COMMENT"];
    table::print(&table::with_head(&head, body));
    Ok(0)
}

pub fn inspect(root: &Path, a: InspectArgs) -> anyhow::Result<i32> {
    let mut out = Vec::new();
    let mut failed = false;
    for t in &a.targets {
        match listing::inspect(root, t)? {
            Some(v) => out.push(v),
            None => {
                eprintln!("unionctl: inspect: {t:?}: no such image or container");
                failed = true;
            }
        }
    }
    println!("{}", serde_json::to_string_pretty(&out)?);
    Ok(failed as i32)
}

pub fn commit(root: &Path, a: CommitArgs) -> anyhow::Result<i32> {
    let c = container::find(root, &a.container)?;
    let opts = image::CommitOptions {
        author: a.author,
        message: a.message,
        changes: a.changes,
        reference: a.reference,
    };
    let freeze = || -> Box<dyn std::any::Any> { Box::new(unionctl::runner::freeze::freeze(&c)) };
    let id = image::commit(
        root,
        &c,
        &opts,
        a.pause.then_some(&freeze as _),
        &mut Shown::new(a.quiet),
    )?;
    println!("sha256:{id}");
    Ok(0)
}

pub fn diff(root: &Path, a: CtrArgs) -> anyhow::Result<i32> {
    for (p, k) in image::diff::changes(root, &a.container)? {
        println!("{k} {p}");
    }
    Ok(0)
}

pub fn save(root: &Path, a: SaveArgs) -> anyhow::Result<i32> {
    let mut out = transfer::Output::open(a.output.as_deref())?;
    let mut progress = Shown::new(a.quiet);
    image::save(root, &a.images, &a.format, &mut out.writer(), &mut progress)?;
    out.finish()?;
    Ok(0)
}

pub fn load(root: &Path, a: LoadArgs) -> anyhow::Result<i32> {
    let input = image::archive::open_input(a.input.as_deref())?;
    let what = a
        .input
        .as_ref()
        .map(|p| p.display().to_string())
        .unwrap_or_else(|| "stdin".into());
    for l in image::load(root, input, &what, &mut Shown::new(a.quiet))? {
        if l.starts_with("sha256:") {
            println!("Loaded image ID: {l}");
        } else {
            println!("Loaded image: {l}");
        }
    }
    Ok(0)
}

pub fn export(root: &Path, a: ExportArgs) -> anyhow::Result<i32> {
    transfer::export(
        root,
        &a.container,
        a.output.as_deref(),
        &mut Shown::new(a.quiet),
    )?;
    Ok(0)
}

pub fn import(root: &Path, a: ImportArgs) -> anyhow::Result<i32> {
    let input: Box<dyn std::io::Read + Send> = if a.file == "-" {
        if std::io::stdin().is_terminal() {
            bail!("import -: refusing to read a tar from a terminal");
        }
        Box::new(std::io::stdin())
    } else {
        Box::new(std::fs::File::open(&a.file).with_context(|| a.file.clone())?)
    };
    let id = transfer::import(
        root,
        input,
        &a.file,
        a.reference.as_deref(),
        &mut Shown::new(a.quiet),
    )?;
    println!("sha256:{id}");
    Ok(0)
}
