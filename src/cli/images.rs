//! `images`, `tag`, `rmi`, `history`, `inspect`, `commit`, `diff`, `save`, `load`,
//! `export`, `import`.
use super::args::{
    CommitArgs, CtrArgs, ExportArgs, HistoryArgs, ImagesArgs, ImportArgs, InspectArgs, LoadArgs,
    RmiArgs, SaveArgs, TagArgs,
};
use super::filter::{self, Filters};
use super::format::Format;
use super::progress::Shown;
use super::table;
use anyhow::{Context, bail};
use serde_json::{Value, json};
use std::io::IsTerminal;
use std::path::Path;
use unionctl::image::util::{human_ago, human_size};
use unionctl::image::{self, container, listing, transfer};

pub fn images(root: &Path, a: ImagesArgs) -> anyhow::Result<i32> {
    let format = Format::parse(a.format.format.as_deref(), a.format.json)?;
    let mut given = a.filters.clone();
    given.extend(a.reference.iter().map(|r| format!("reference={r}")));
    let filters = Filters::parse(&given, &["dangling", "reference", "label"])?;
    for v in filters.values("dangling") {
        if v != "true" && v != "false" {
            bail!("--filter dangling={v}: want true or false");
        }
    }
    let mut rows: Vec<listing::ImageRow> = listing::images(root)?
        .into_iter()
        .filter(|r| images_filter(&filters, r))
        .collect();
    // Newest first, as docker lists them.
    let created = |r: &listing::ImageRow| r.created.as_deref().and_then(unionctl::timestamp::parse);
    rows.sort_by(|a, b| created(b).cmp(&created(a)).then(a.tag.cmp(&b.tag)));
    if a.quiet {
        let mut seen = std::collections::HashSet::new();
        for r in &rows {
            if seen.insert(r.id.clone()) {
                println!("{}", &r.id[..12]);
            }
        }
        return Ok(0);
    }
    let values: Vec<Value> = rows.iter().map(image_value).collect();
    let header = |field: &str| match field {
        "ID" => Some("IMAGE ID"),
        "CreatedSince" => Some("CREATED"),
        _ => None,
    };
    format.print_rows(&values, &header, || {
        let mut head = vec!["REPOSITORY", "TAG", "IMAGE ID", "CREATED", "SIZE"];
        if a.digests {
            head.insert(2, "DIGEST");
        }
        let body = rows.iter().map(|r| {
            let (repo, tag) = listing::repo_and_tag(&r.tag);
            let mut row = vec![
                repo,
                tag,
                r.id[..12].to_string(),
                human_ago(r.created.as_deref()),
                human_size(r.size),
            ];
            if a.digests {
                row.insert(2, r.digest.clone().unwrap_or_else(|| "<none>".into()));
            }
            row
        });
        table::print(&table::with_head(&head, body));
    })?;
    Ok(0)
}

fn images_filter(f: &Filters, r: &listing::ImageRow) -> bool {
    let name = image::store::short_name(&r.tag);
    let (repo, _) = listing::repo_and_tag(&name);
    f.any("dangling", |v| (v == "true") == r.tag.is_empty())
        && f.any("label", |v| filter::label_matches(&r.labels, v))
        && f.any("reference", |v| {
            !r.tag.is_empty() && (filter::glob_matches(v, &name) || filter::glob_matches(v, &repo))
        })
}

/// An `images` row for --format, with docker's fields.
fn image_value(r: &listing::ImageRow) -> Value {
    let (repo, tag) = listing::repo_and_tag(&r.tag);
    json!({
        "Repository": repo,
        "Tag": tag,
        "ID": &r.id[..12],
        "Digest": r.digest.as_deref().unwrap_or("<none>"),
        "CreatedAt": r.created.clone().unwrap_or_default(),
        "CreatedSince": human_ago(r.created.as_deref()),
        "Size": human_size(r.size),
        "Labels": r.labels,
    })
}

pub fn tag(root: &Path, a: TagArgs) -> anyhow::Result<i32> {
    listing::tag(root, &a.source, &a.target)?;
    Ok(0)
}

pub fn rmi(root: &Path, a: RmiArgs) -> anyhow::Result<i32> {
    let mut failed = false;
    for result in listing::rmi(root, &a.images, a.force)? {
        match result {
            Ok(lines) => lines.iter().for_each(|l| println!("{l}")),
            Err(e) => {
                super::report("rmi", &e);
                failed = true;
            }
        }
    }
    Ok(if failed { super::exit::OWN_ERROR } else { 0 })
}

pub fn history(root: &Path, a: HistoryArgs) -> anyhow::Result<i32> {
    let format = Format::parse(a.format.format.as_deref(), a.format.json)?;
    let (id, rows) = listing::history(root, &a.image)?;
    let size = |n: u64| {
        if a.human {
            human_size(n)
        } else {
            n.to_string()
        }
    };
    let idcol = |i: usize| {
        if i == 0 && a.no_trunc {
            format!("sha256:{id}")
        } else if i == 0 {
            id[..12].to_string()
        } else {
            "<missing>".to_string()
        }
    };
    let values: Vec<Value> = rows
        .iter()
        .enumerate()
        .map(|(i, h)| {
            json!({"ID": idcol(i), "CreatedAt": h.created.clone().unwrap_or_default(),
                   "CreatedSince": human_ago(h.created.as_deref()),
                   "CreatedBy": h.created_by, "Size": human_size(h.size), "Comment": h.comment})
        })
        .collect();
    let header = |field: &str| match field {
        "ID" => Some("IMAGE"),
        "CreatedSince" => Some("CREATED"),
        "CreatedBy" => Some("CREATED BY"),
        _ => None,
    };
    format.print_rows(&values, &header, || {
        let body = rows.iter().enumerate().map(|(i, h)| {
            let by: String = if h.created_by.chars().count() > 45 && !a.no_trunc {
                h.created_by.chars().take(44).collect::<String>() + "…"
            } else {
                h.created_by.clone()
            };
            vec![
                idcol(i),
                human_ago(h.created.as_deref()),
                by,
                size(h.size),
                h.comment.clone(),
            ]
        });
        let head = ["IMAGE", "CREATED", "CREATED BY", "SIZE", "COMMENT"];
        table::print(&table::with_head(&head, body));
    })?;
    Ok(0)
}

/// What `inspect` looks for: `inspect` both, `image inspect` and `container inspect` one.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Inspected {
    Any,
    Images,
    Containers,
}

pub fn inspect(root: &Path, a: InspectArgs, what: Inspected) -> anyhow::Result<i32> {
    let format = Format::parse(a.format.as_deref(), false)?;
    let mut out = Vec::new();
    let mut failed = false;
    let kind = match what {
        Inspected::Any => "image or container",
        Inspected::Images => "image",
        Inspected::Containers => "container",
    };
    // Containers first, as docker: a container's name is never taken for the prefix of
    // an image id.
    for t in &a.targets {
        if what != Inspected::Images {
            match unionctl::runner::inspect(root, t) {
                Ok(c) => {
                    out.push(serde_json::to_value(c)?);
                    continue;
                }
                Err(e) if e.is_not_found() => {}
                Err(e) => {
                    super::report("inspect", &e);
                    failed = true;
                    continue;
                }
            }
        }
        let found = match what {
            Inspected::Containers => Ok(None),
            _ => listing::inspect_image(root, t),
        };
        match found {
            Ok(Some(img)) => out.push(serde_json::to_value(img)?),
            Ok(None) => {
                let e = image::Error::no_such(kind, t);
                super::report("inspect", &e);
                failed = true;
            }
            Err(e) => {
                super::report("inspect", &e);
                failed = true;
            }
        }
    }
    format.print_objects(&out)?;
    Ok(if failed { super::exit::OWN_ERROR } else { 0 })
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
            bail!("reading the tar from stdin: stdin is a terminal");
        }
        Box::new(std::io::stdin())
    } else {
        Box::new(std::fs::File::open(&a.file).with_context(|| format!("opening {}", a.file))?)
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
