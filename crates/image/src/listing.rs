//! `images`, `tag`, `rmi`, `history`, `inspect`.
use super::store::{self, Image, Store, split_tag};
use crate::error::Result;
use serde::Serialize;
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::path::Path;

/// One line of `images`: a name of an image ("" for an image without one).
#[derive(Debug, Clone)]
pub struct ImageRow {
    pub tag: String,
    /// The digest the image was pulled by from this name's repository, if it was.
    pub digest: Option<String>,
    /// Image id: sha256 hex of the config.
    pub id: String,
    pub created: Option<String>,
    pub size: u64,
    /// The image config's labels.
    pub labels: BTreeMap<String, String>,
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
            shown_names(&img.tags)
        };
        let labels: BTreeMap<String, String> = img
            .config
            .config()
            .as_ref()
            .and_then(|c| c.labels().clone())
            .unwrap_or_default()
            .into_iter()
            .collect();
        for tag in tags {
            let repo = split_tag(&tag).0;
            let digest = img.tags.iter().find_map(|n| {
                let (name, digest) = n.split_once('@')?;
                (name == repo).then(|| digest.to_string())
            });
            rows.push(ImageRow {
                tag,
                digest,
                id: img.id.clone(),
                created: img.config.created().clone(),
                size: img.size(),
                labels: labels.clone(),
            });
        }
    }
    Ok(rows)
}

/// The names `images` shows of an image: its tags, and a digest it was pulled by where no
/// tag names its repository (one `REPO <none>` line per repository, as docker shows).
fn shown_names(names: &[String]) -> Vec<String> {
    let mut shown: Vec<String> = names
        .iter()
        .filter(|n| !store::is_digest_name(n))
        .cloned()
        .collect();
    for d in names.iter().filter(|n| store::is_digest_name(n)) {
        let repo = split_tag(d).0;
        if !shown.iter().any(|s| split_tag(s).0 == repo) {
            shown.push(d.clone());
        }
    }
    shown
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
        // By name while other names remain: only the name goes. A digest an image was
        // pulled by does not keep it once its last tag goes (docker untags it too).
        let tags = r.tags.iter().filter(|t| !store::is_digest_name(t)).count();
        let others_keep_it = |t: &String| match store::is_digest_name(t) {
            true => r.tags.len() > 1,
            false => tags > 1,
        };
        if let Some(t) = &named
            && others_keep_it(t)
        {
            descs.retain(|d| {
                !(d.digest().digest() == r.manifest && store::ref_name(d).as_ref() == Some(t))
            });
            out.push(format!("Untagged: {t}"));
            return Ok(());
        }
        if named.is_none() && tags > 1 && !force {
            bail!(
                "image {} has several names ({}): remove them by name or use -f",
                &id[..12],
                r.tags.join(", ")
            );
        }
        let users_of = store.users_of(&id);
        let names = |running: bool| -> Vec<String> {
            let of = users_of.iter().filter(|c| !running || c.is_running());
            of.map(|c| c.display_name()).collect()
        };
        let (users, running) = (names(false), names(true));
        if !running.is_empty() {
            bail!(
                "image {} is used by running container(s) {}: stop them first (-f cannot force this)",
                &id[..12],
                running.join(", ")
            );
        }
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
        let size = descs
            .iter()
            .find(|d| d.digest().digest() == r.manifest)
            .map(|d| d.size());
        descs.retain(|d| d.digest().digest() != r.manifest);
        if !users.is_empty() {
            // Forced while containers use it: the names go, the image stays as <none>
            // until they do (docker), so that they can still be committed and restarted.
            descs.push(store::descriptor(&r.manifest, size.unwrap_or(0), None)?);
            return Ok(());
        }
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

/// An image as `docker image inspect` shows it (docker's keys, PascalCase).
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct ImageInspect {
    /// `sha256:` and the config digest.
    pub id: String,
    pub repo_tags: Vec<String>,
    /// `NAME@sha256:...` of the stored manifest, for each name.
    pub repo_digests: Vec<String>,
    pub created: Option<String>,
    pub author: Option<String>,
    pub architecture: Option<String>,
    pub os: Option<String>,
    /// The run configuration as the image config holds it (`Cmd`, `Env`, `Labels`, ...).
    pub config: Value,
    /// Bytes of the layers as stored.
    pub size: u64,
    #[serde(rename = "RootFS")]
    pub root_fs: RootFs,
    pub graph_driver: GraphDriver,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct RootFs {
    /// Always `layers`.
    pub r#type: String,
    /// Diff ids, bottom layer first.
    pub layers: Vec<String>,
}

/// Where the file system of an image or container lives, as docker's `GraphDriver`.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct GraphDriver {
    /// Always `unionctl`.
    pub name: String,
    pub data: GraphDriverData,
}

/// Directories as overlayfs options name them: `LowerDir` top layer first, `:`-separated.
#[derive(Debug, Clone, Default, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct GraphDriverData {
    pub lower_dir: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub upper_dir: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub work_dir: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub merged_dir: Option<String>,
}

impl GraphDriver {
    pub fn new(data: GraphDriverData) -> GraphDriver {
        GraphDriver {
            name: "unionctl".into(),
            data,
        }
    }
}

pub fn image_inspect(store: &Store, img: &Image) -> ImageInspect {
    let cfg = serde_json::from_slice::<Value>(&img.config_raw).unwrap_or(Value::Null);
    let text = |k: &str| cfg.get(k).and_then(Value::as_str).map(str::to_string);
    let lowers: Vec<String> = img
        .diff_ids()
        .iter()
        .rev()
        .map(|d| store.layer_dir(d).display().to_string())
        .collect();
    let (digests, tags): (Vec<String>, Vec<String>) = img
        .tags
        .iter()
        .cloned()
        .partition(|t| store::is_digest_name(t));
    // The digests it was pulled by; for a repository without one, the stored manifest's.
    let mut repo_digests = digests.clone();
    for t in &tags {
        let (name, _) = split_tag(t);
        let known = repo_digests.iter().any(|d| split_tag(d).0 == name);
        if !known {
            repo_digests.push(format!("{name}@sha256:{}", img.manifest_hex));
        }
    }
    ImageInspect {
        id: format!("sha256:{}", img.id),
        repo_tags: tags,
        repo_digests,
        created: text("created"),
        author: text("author"),
        architecture: text("architecture"),
        os: text("os"),
        config: cfg.get("config").cloned().unwrap_or_else(|| json!({})),
        size: img.size(),
        root_fs: RootFs {
            r#type: "layers".into(),
            layers: img.config.rootfs().diff_ids().clone(),
        },
        graph_driver: GraphDriver::new(GraphDriverData {
            lower_dir: lowers.join(":"),
            ..Default::default()
        }),
    }
}

/// The image REFERENCE names, for `inspect`; None when it names none (it may be a
/// container).
pub fn inspect_image(root: &Path, reference: &str) -> Result<Option<ImageInspect>> {
    let store = Store::open_existing(root);
    match store.resolve(reference) {
        Ok(r) => Ok(Some(image_inspect(&store, &store.load(&r)?))),
        Err(_) => Ok(None),
    }
}
