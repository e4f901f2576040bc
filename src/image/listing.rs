//! `images`, `tag`, `rmi`, `history`, `inspect`.
use super::container;
use super::store::{self, Image, Store, split_tag, strip_sha};
use super::util::{human_ago, human_size};
use anyhow::{Result, bail};
use serde_json::{Value, json};
use std::path::Path;

pub fn images(root: &Path, _all: bool, quiet: bool, as_json: bool) -> Result<()> {
    let store = Store::open_existing(root);
    let mut rows = Vec::new();
    for r in store.list()? {
        let img = store.load(&r)?;
        let tags = if img.tags.is_empty() {
            vec![String::new()]
        } else {
            img.tags.clone()
        };
        for t in tags {
            rows.push((t, img.id.clone(), img.config.created().clone(), img.size()));
        }
    }
    if as_json {
        let v: Vec<Value> = rows
            .iter()
            .map(|(t, id, created, size)| {
                let (repo, tag) = repo_and_tag(t);
                json!({"Repository": repo, "Tag": tag, "Id": format!("sha256:{id}"),
                       "Created": created, "Size": size})
            })
            .collect();
        println!("{}", serde_json::to_string_pretty(&v)?);
        return Ok(());
    }
    if quiet {
        let mut seen = std::collections::HashSet::new();
        for (_, id, _, _) in &rows {
            if seen.insert(id.clone()) {
                println!("{}", &id[..12]);
            }
        }
        return Ok(());
    }
    let table: Vec<[String; 5]> = rows
        .iter()
        .map(|(t, id, created, size)| {
            let (repo, tag) = repo_and_tag(t);
            [
                repo,
                tag,
                id[..12].to_string(),
                human_ago(created.as_deref()),
                human_size(*size),
            ]
        })
        .collect();
    print_table(
        &["REPOSITORY", "TAG", "IMAGE ID", "CREATED", "SIZE"],
        &table,
    );
    Ok(())
}

/// REPOSITORY and TAG columns ("" is an image without a name).
fn repo_and_tag(t: &str) -> (String, String) {
    if t.is_empty() {
        ("<none>".into(), "<none>".into())
    } else {
        split_tag(t)
    }
}

fn print_table<const N: usize>(head: &[&str; N], rows: &[[String; N]]) {
    let mut w: Vec<usize> = head.iter().map(|h| h.len()).collect();
    for r in rows {
        for (i, c) in r.iter().enumerate() {
            w[i] = w[i].max(c.chars().count());
        }
    }
    let line = |cells: Vec<&str>| {
        let mut s = String::new();
        for (i, c) in cells.iter().enumerate() {
            if i + 1 == cells.len() {
                s.push_str(c);
            } else {
                s.push_str(&format!("{:<width$}   ", c, width = w[i]));
            }
        }
        println!("{}", s.trim_end());
    };
    line(head.to_vec());
    for r in rows {
        line(r.iter().map(|s| s.as_str()).collect());
    }
}

pub fn tag(root: &Path, source: &str, target: &str) -> Result<()> {
    let store = Store::open(root)?;
    let r = store.resolve(source)?;
    let t = store::check_ref(target)?;
    store.add_image(&r.manifest, r.manifest_size, &[t])
}

pub fn rmi(root: &Path, refs: &[String], force: bool) -> Result<i32> {
    let store = Store::open(root)?;
    let mut failed = 0;
    for reference in refs {
        match rmi_one(&store, reference, force) {
            Ok(lines) => lines.iter().for_each(|l| println!("{l}")),
            Err(e) => {
                eprintln!("unionctl: rmi {reference}: {e:#}");
                failed += 1;
            }
        }
    }
    store.sweep()?;
    Ok(if failed > 0 { 1 } else { 0 })
}

/// Removes one name or image, deciding on the index as seen under its lock, so that
/// concurrent tags and loads are never lost.
fn rmi_one(store: &Store, reference: &str, force: bool) -> Result<Vec<String>> {
    let mut out = Vec::new();
    store.update_index(|descs| {
        let list = store::group_refs(descs);
        let r = store.resolve_in(&list, reference)?;
        let id = store.image_id(&r)?;
        let named = r
            .tags
            .iter()
            .find(|t| store::tag_matches(t, reference))
            .cloned();
        // By name while other names remain: only the name goes.
        if let Some(t) = &named
            && r.tags.len() > 1
        {
            descs.retain(|d| {
                !(d.digest().digest() == r.manifest && store::ref_name(d).as_ref() == Some(t))
            });
            out.push(format!("Untagged: {t}"));
            return Ok(());
        }
        if named.is_none() && r.tags.len() > 1 && !force {
            bail!(
                "image {} has several names ({}): remove them by name or use -f",
                &id[..12],
                r.tags.join(", ")
            );
        }
        let users = store.users_of(&id);
        if !users.is_empty() && !force {
            bail!(
                "image {} is used by container(s) {}: remove them first or use -f",
                &id[..12],
                users.join(", ")
            );
        }
        for t in &r.tags {
            out.push(format!("Untagged: {t}"));
        }
        descs.retain(|d| d.digest().digest() != r.manifest);
        out.push(format!("Deleted: sha256:{id}"));
        Ok(())
    })?;
    Ok(out)
}

pub fn history(root: &Path, reference: &str, as_json: bool) -> Result<()> {
    let store = Store::open_existing(root);
    let img = store.load(&store.resolve(reference)?)?;
    let sizes: Vec<u64> = img.manifest.layers().iter().map(|d| d.size()).collect();
    let mut layer_i = 0;
    let mut rows = Vec::new();
    let hist = img.config.history().clone().unwrap_or_default();
    for h in &hist {
        let empty = h.empty_layer().unwrap_or(false);
        let size = if empty {
            0
        } else {
            layer_i += 1;
            sizes.get(layer_i - 1).copied().unwrap_or(0)
        };
        rows.push((
            h.created().clone(),
            h.created_by().clone().unwrap_or_default(),
            size,
            h.comment().clone().unwrap_or_default(),
        ));
    }
    rows.reverse();
    if as_json {
        let v: Vec<Value> = rows
            .iter()
            .map(
                |(c, by, s, com)| json!({"Created": c, "CreatedBy": by, "Size": s, "Comment": com}),
            )
            .collect();
        println!("{}", serde_json::to_string_pretty(&v)?);
        return Ok(());
    }
    let table: Vec<[String; 5]> = rows
        .iter()
        .enumerate()
        .map(|(i, (c, by, s, com))| {
            let idcol = if i == 0 {
                img.id[..12].to_string()
            } else {
                "<missing>".into()
            };
            let by: String = if by.chars().count() > 45 {
                by.chars().take(44).collect::<String>() + "…"
            } else {
                by.clone()
            };
            [
                idcol,
                human_ago(c.as_deref()),
                by,
                human_size(*s),
                com.clone(),
            ]
        })
        .collect();
    print_table(
        &["IMAGE", "CREATED", "CREATED BY", "SIZE", "COMMENT"],
        &table,
    );
    Ok(())
}

pub fn image_json(store: &Store, img: &Image) -> Value {
    let cfg = serde_json::from_slice::<Value>(&img.config_raw).unwrap_or(Value::Null);
    let layers: Vec<String> = img
        .diff_ids()
        .iter()
        .rev()
        .map(|d| store.layer_dir(d).display().to_string())
        .collect();
    json!({
        "Id": format!("sha256:{}", img.id),
        "RepoTags": img.tags,
        "Digest": format!("sha256:{}", img.manifest_hex),
        "Created": cfg.get("created"),
        "Author": cfg.get("author"),
        "Architecture": cfg.get("architecture"),
        "Os": cfg.get("os"),
        "Config": cfg.get("config"),
        "Size": img.size(),
        "RootFS": {"Type": "layers", "Layers": img.config.rootfs().diff_ids()},
        "History": cfg.get("history"),
        "GraphDriver": {"Name": "unionctl", "Data": {"LowerDirs": layers}},
    })
}

pub fn inspect(root: &Path, targets: &[String]) -> Result<i32> {
    let store = Store::open_existing(root);
    let mut out = Vec::new();
    let mut failed = 0;
    for t in targets {
        if let Ok(r) = store.resolve(t) {
            out.push(image_json(&store, &store.load(&r)?));
            continue;
        }
        match container::find(root, t) {
            Ok(c) => {
                let mut v = container::read_state_json(&c)?;
                if let Some(o) = v.as_object_mut() {
                    o.insert("UpperDir".into(), json!(c.upper()));
                    if let Some(img) = &c.image {
                        o.entry("ImageId")
                            .or_insert(json!(format!("sha256:{}", strip_sha(img))));
                    }
                }
                out.push(v);
            }
            Err(_) => {
                eprintln!("unionctl: inspect: {t:?}: no such image or container");
                failed += 1;
            }
        }
    }
    println!("{}", serde_json::to_string_pretty(&out)?);
    Ok(if failed > 0 { 1 } else { 0 })
}
