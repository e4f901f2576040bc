//! `commit`: a container's upper layer becomes the top layer of a new image.
//! Only the upper dir is read (plus lower data for metacopy files), so the cost
//! follows the size of the changes, not of the image.
use super::container::ContainerRecord;
use super::layer::{LayerWriter, PackOptions};
use super::progress::{Item, Outcome, Progress};
use super::store::{self, Store};
use crate::error::Context;
use crate::error::Result;
use oci_spec::image::{Config, HistoryBuilder, ImageConfiguration};
use std::io::Write;
use std::path::Path;

/// What `commit` records besides the container's changes.
#[derive(Debug, Clone, Default)]
pub struct CommitOptions {
    pub author: Option<String>,
    pub message: Option<String>,
    /// Dockerfile-like changes: CMD, ENTRYPOINT, ENV, WORKDIR, USER, EXPOSE, LABEL.
    pub changes: Vec<String>,
    /// NAME[:TAG] for the new image.
    pub reference: Option<String>,
}

/// Keeps the container still while its upper layer is read; what it returns resumes the
/// container when dropped (the runner knows how: the image store does not).
pub type Freeze<'a> = &'a dyn Fn() -> Box<dyn std::any::Any>;

/// Makes a new image of container C's image (or rootfs) plus its changes; returns the
/// image id. `freeze`, if given, holds the container during the read of its changes.
pub fn commit(
    root: &Path,
    c: &ContainerRecord,
    a: &CommitOptions,
    freeze: Option<Freeze>,
    progress: &mut dyn Progress,
) -> Result<String> {
    let upper = c.upper();
    if !upper.is_dir() {
        bail!(
            "container {}: upper layer {} missing",
            c.display_name(),
            upper.display()
        );
    }
    let tags = match &a.reference {
        Some(r) => vec![store::check_ref(r)?],
        None => Vec::new(),
    };
    // Validate every change before doing any work.
    let mut run_cfg = Config::default();
    for ch in &a.changes {
        apply_change(&mut run_cfg, ch)?;
    }
    let store = Store::open(root)?;
    let _w = store.writer_lock()?;
    let parent = match &c.image {
        Some(id) => {
            let r = store.resolve(store::strip_sha(id)).with_context(|| {
                format!(
                    "container {}: its image {id} is no longer in the store",
                    c.display_name()
                )
            })?;
            Some(store.load(&r)?)
        }
        None => None,
    };
    let (mut config, mut layers) = base_of(&store, c, parent.as_ref(), progress)?;
    progress.begin(Item::Layer, &c.display_name(), None);
    let (hex, size) = {
        let _frozen = freeze.map(|f| f());
        let mut blob = store.new_blob()?;
        let opts = PackOptions {
            lowers: c.lower_dirs(),
            skip_runtime_mountpoints: true,
            index: Some(c.work().join("index")),
        };
        let mut w = LayerWriter::new(&mut blob, opts);
        w.pack_tree(&upper, &mut |n| progress.advance(n))?;
        w.finish()?.flush()?;
        blob.commit()?
    };
    store.ensure_unpacked(&hex, &hex)?;
    progress.end(Outcome::Done);
    layers.push((hex.clone(), size));
    config
        .rootfs_mut()
        .diff_ids_mut()
        .push(format!("sha256:{hex}"));
    describe(&mut config, c, a)?;
    let raw = serde_json::to_vec(&config)?;
    let (id, _) = store.record_image(&raw, &layers, &tags)?;
    Ok(id)
}

/// The new image's config and layers before the container's changes: its image's, or
/// for a container on a plain --rootfs, its lowers packed as one base layer.
fn base_of(
    store: &Store,
    c: &ContainerRecord,
    parent: Option<&store::Image>,
    progress: &mut dyn Progress,
) -> Result<(ImageConfiguration, Vec<(String, u64)>)> {
    if let Some(p) = parent {
        let layers = p
            .layer_blobs()
            .iter()
            .zip(p.manifest.layers())
            .map(|(hex, d)| (hex.clone(), d.size()))
            .collect();
        return Ok((p.config.clone(), layers));
    }
    let mut config = ImageConfiguration::default();
    config.rootfs_mut().set_diff_ids(Vec::new());
    if c.lower_dirs().is_empty() {
        return Ok((config, Vec::new()));
    }
    let (hex, size) = pack_layers(store, &c.lower_dirs(), progress)?;
    config
        .rootfs_mut()
        .diff_ids_mut()
        .push(format!("sha256:{hex}"));
    let mut history = config.history().clone().unwrap_or_default();
    history.push(
        HistoryBuilder::default()
            .created(crate::timestamp::now())
            .created_by("unionctl commit (base layer from rootfs)")
            .build()?,
    );
    config.set_history(Some(history));
    Ok((config, vec![(hex, size)]))
}

/// Run settings (the container's own, as docker does, then the -c changes), the
/// author, the creation time and the history line of the new layer.
fn describe(config: &mut ImageConfiguration, c: &ContainerRecord, a: &CommitOptions) -> Result<()> {
    let mut cfg = config.config().clone().unwrap_or_default();
    inherit_run_config(&mut cfg, c);
    for ch in &a.changes {
        apply_change(&mut cfg, ch)?;
    }
    config.set_config(Some(cfg));
    let now = crate::timestamp::now();
    config.set_created(Some(now.clone()));
    if let Some(author) = &a.author {
        config.set_author(Some(author.clone()));
    }
    let mut h = HistoryBuilder::default()
        .created(now)
        .created_by(created_by(c));
    if let Some(au) = &a.author {
        h = h.author(au.clone());
    }
    if let Some(m) = &a.message {
        h = h.comment(m.clone());
    }
    let mut history = config.history().clone().unwrap_or_default();
    history.push(h.build()?);
    config.set_history(Some(history));
    Ok(())
}

/// Flattens a stack of dirs into one stored, unpacked layer.
fn pack_layers(
    store: &Store,
    lowers: &[std::path::PathBuf],
    progress: &mut dyn Progress,
) -> Result<(String, u64)> {
    progress.begin(Item::Layer, "base layer", None);
    let mut blob = store.new_blob()?;
    let opts = PackOptions {
        lowers: lowers.to_vec(),
        skip_runtime_mountpoints: false,
        index: None,
    };
    let view = super::views::of_lowers(lowers).context("reading the lower layers")?;
    let mut w = LayerWriter::new(&mut blob, opts);
    w.pack_view(&view, &mut |n| progress.advance(n))?;
    w.finish()?.flush()?;
    let (hex, size) = blob.commit()?;
    store.ensure_unpacked(&hex, &hex)?;
    progress.end(Outcome::Done);
    Ok((hex, size))
}

fn created_by(c: &ContainerRecord) -> String {
    let mut parts = c.config_list("entrypoint").unwrap_or_default();
    parts.extend(c.config_list("cmd").unwrap_or_default());
    if parts.is_empty() {
        "unionctl commit".into()
    } else {
        parts.join(" ")
    }
}

/// The container's command, env, workdir and user become the image's defaults.
fn inherit_run_config(cfg: &mut Config, c: &ContainerRecord) {
    if let Some(cmd) = c.config_list("cmd").filter(|v| !v.is_empty()) {
        cfg.set_cmd(Some(cmd));
    }
    if let Some(ep) = c.config_list("entrypoint").filter(|v| !v.is_empty()) {
        cfg.set_entrypoint(Some(ep));
    }
    if let Some(env) = c.config_list("env").filter(|v| !v.is_empty()) {
        let mut all = cfg.env().clone().unwrap_or_default();
        for e in env {
            set_env(&mut all, &e);
        }
        cfg.set_env(Some(all));
    }
    if let Some(w) = c.config_str("workdir") {
        cfg.set_working_dir(Some(w));
    }
    if let Some(u) = c.config_str("user") {
        cfg.set_user(Some(u));
    }
}

fn set_env(all: &mut Vec<String>, kv: &str) {
    let key = kv.split('=').next().unwrap_or(kv);
    all.retain(|e| e.split('=').next() != Some(key));
    all.push(kv.to_string());
}

/// Parses `CMD ["a","b"]` (JSON) or `CMD a b` (shell form, run by /bin/sh -c).
fn command_form(rest: &str) -> Result<Vec<String>> {
    let t = rest.trim();
    if t.starts_with('[') {
        return serde_json::from_str(t).map_err(|e| invalid!("{t:?}: invalid JSON array: {e}"));
    }
    if t.is_empty() {
        bail!("empty command");
    }
    Ok(vec!["/bin/sh".into(), "-c".into(), t.to_string()])
}

fn unquote(s: &str) -> String {
    let s = s.trim();
    if s.len() >= 2
        && (s.starts_with('"') && s.ends_with('"') || s.starts_with('\'') && s.ends_with('\''))
    {
        s[1..s.len() - 1].to_string()
    } else {
        s.to_string()
    }
}

/// Applies one Dockerfile-like `-c` change to a run config.
pub fn apply_change(cfg: &mut Config, change: &str) -> Result<()> {
    let t = change.trim();
    let (word, rest) = t.split_once(char::is_whitespace).unwrap_or((t, ""));
    let rest = rest.trim();
    let bad = |why: &str| invalid!("-c {change:?}: {why}");
    match word.to_ascii_uppercase().as_str() {
        "CMD" => {
            cfg.set_cmd(Some(command_form(rest).map_err(|e| bad(&e.to_string()))?));
        }
        "ENTRYPOINT" => {
            cfg.set_entrypoint(Some(command_form(rest).map_err(|e| bad(&e.to_string()))?));
        }
        "ENV" => {
            let kv = if let Some((k, v)) = rest.split_once('=') {
                format!("{}={}", k.trim(), unquote(v))
            } else if let Some((k, v)) = rest.split_once(char::is_whitespace) {
                format!("{}={}", k.trim(), unquote(v))
            } else {
                return Err(bad("want ENV KEY=VALUE"));
            };
            if kv.starts_with('=') {
                return Err(bad("empty variable name"));
            }
            let mut all = cfg.env().clone().unwrap_or_default();
            set_env(&mut all, &kv);
            cfg.set_env(Some(all));
        }
        "WORKDIR" => {
            if !rest.starts_with('/') {
                return Err(bad("WORKDIR needs an absolute path"));
            }
            cfg.set_working_dir(Some(rest.to_string()));
        }
        "USER" => {
            if rest.is_empty() {
                return Err(bad("USER needs a user"));
            }
            cfg.set_user(Some(rest.to_string()));
        }
        "EXPOSE" => {
            let mut ports = cfg.exposed_ports().clone().unwrap_or_default();
            for p in rest.split_whitespace() {
                let (num, proto) = p.split_once('/').unwrap_or((p, "tcp"));
                if num.parse::<u16>().is_err() || !["tcp", "udp", "sctp"].contains(&proto) {
                    return Err(bad(&format!("invalid port {p:?}")));
                }
                let p = format!("{num}/{proto}");
                if !ports.contains(&p) {
                    ports.push(p);
                }
            }
            if ports.is_empty() {
                return Err(bad("EXPOSE needs a port"));
            }
            cfg.set_exposed_ports(Some(ports));
        }
        "LABEL" => {
            let (k, v) = rest
                .split_once('=')
                .ok_or_else(|| bad("want LABEL KEY=VALUE"))?;
            let mut labels = cfg.labels().clone().unwrap_or_default();
            labels.insert(unquote(k), unquote(v));
            cfg.set_labels(Some(labels));
        }
        _ => {
            return Err(bad(
                "unknown instruction (CMD, ENTRYPOINT, ENV, WORKDIR, USER, EXPOSE, LABEL)",
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn changes() {
        let mut c = Config::default();
        apply_change(&mut c, r#"CMD ["echo","hi"]"#).unwrap();
        assert_eq!(c.cmd().clone().unwrap(), vec!["echo", "hi"]);
        apply_change(&mut c, "CMD echo hi").unwrap();
        assert_eq!(c.cmd().clone().unwrap(), vec!["/bin/sh", "-c", "echo hi"]);
        apply_change(&mut c, "ENV A=1").unwrap();
        apply_change(&mut c, "ENV A 2").unwrap();
        assert_eq!(c.env().clone().unwrap(), vec!["A=2"]);
        apply_change(&mut c, "EXPOSE 80 53/udp").unwrap();
        assert_eq!(c.exposed_ports().clone().unwrap(), vec!["80/tcp", "53/udp"]);
        apply_change(&mut c, r#"LABEL a="b c""#).unwrap();
        assert_eq!(c.labels().clone().unwrap()["a"], "b c");
        assert!(apply_change(&mut c, "WORKDIR rel").is_err());
        assert!(apply_change(&mut c, "FROM x").is_err());
        assert!(apply_change(&mut c, "CMD [oops").is_err());
    }
}
