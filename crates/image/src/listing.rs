//! `images`, `tag`, `rmi`, `history`, `inspect`.
use super::container;
use super::store::{self, Image, Store, split_tag, strip_sha};
use crate::error::Result;
use serde_json::{Value, json};
use std::path::Path;

/// One line of `images`: a name of an image ("" for an image without one).
#[derive(Debug, Clone)]
pub struct ImageRow {
    pub tag: String,
    /// Image id: sha256 hex of the config.
    pub id: String,
    pub created: Option<String>,
    pub size: u64,
}

/// Every name of every image in the store (an unnamed image once, with tag "").
pub fn images(root: &Path) -> Result<Vec<ImageRow>> {
    let store = Store::open_existing(root);
    let mut rows = Vec::new();
    for r in store.list()? {
        let img = store.load(&r)?;
        let tags = if img.tags.is_empty() {
            vec![String::new()]
        } else {
            img.tags.clone()
        };
        for tag in tags {
            rows.push(ImageRow {
                tag,
                id: img.id.clone(),
                created: img.config.created().clone(),
                size: img.size(),
            });
        }
    }
    Ok(rows)
}

/// REPOSITORY and TAG columns ("" is an image without a name).
pub fn repo_and_tag(t: &str) -> (String, String) {
    if t.is_empty() {
        ("<none>".into(), "<none>".into())
    } else {
        split_tag(t)
    }
}

pub fn tag(root: &Path, source: &str, target: &str) -> Result<()> {
    let store = Store::open(root)?;
    let r = store.resolve(source)?;
    let t = store::check_ref(target)?;
    store.add_image(&r.manifest, r.manifest_size, &[t])
}

/// Removes each name or image of REFS; returns, per reference, the `Untagged:` and
/// `Deleted:` lines or why it stayed. Layers no image uses any more go at the end.
pub fn rmi(root: &Path, refs: &[String], force: bool) -> Result<Vec<Result<Vec<String>>>> {
    let store = Store::open(root)?;
    let results = refs
        .iter()
        .map(|reference| rmi_one(&store, reference, force))
        .collect();
    store.sweep()?;
    Ok(results)
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

/// One step of an image's history, newest first.
#[derive(Debug, Clone)]
pub struct HistoryRow {
    pub created: Option<String>,
    pub created_by: String,
    /// Size of the layer the step made (0 for a step without a layer).
    pub size: u64,
    pub comment: String,
}

/// The image's id and its history, newest step first.
pub fn history(root: &Path, reference: &str) -> Result<(String, Vec<HistoryRow>)> {
    let store = Store::open_existing(root);
    let img = store.load(&store.resolve(reference)?)?;
    let sizes: Vec<u64> = img.manifest.layers().iter().map(|d| d.size()).collect();
    let mut layer_i = 0;
    let mut rows = Vec::new();
    for h in img.config.history().clone().unwrap_or_default() {
        let size = if h.empty_layer().unwrap_or(false) {
            0
        } else {
            layer_i += 1;
            sizes.get(layer_i - 1).copied().unwrap_or(0)
        };
        rows.push(HistoryRow {
            created: h.created().clone(),
            created_by: h.created_by().clone().unwrap_or_default(),
            size,
            comment: h.comment().clone().unwrap_or_default(),
        });
    }
    rows.reverse();
    Ok((img.id.clone(), rows))
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

/// An image or, failing that, a container, as JSON; None if TARGET names neither.
pub fn inspect(root: &Path, target: &str) -> Result<Option<Value>> {
    let store = Store::open_existing(root);
    if let Ok(r) = store.resolve(target) {
        return Ok(Some(image_json(&store, &store.load(&r)?)));
    }
    let Ok(c) = container::find(root, target) else {
        return Ok(None);
    };
    let mut v = container::read_state_json(&c)?;
    if let Some(o) = v.as_object_mut() {
        o.insert("UpperDir".into(), json!(c.upper()));
        if let Some(img) = &c.image {
            o.entry("ImageId")
                .or_insert(json!(format!("sha256:{}", strip_sha(img))));
        }
    }
    Ok(Some(v))
}
