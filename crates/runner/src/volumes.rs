//! Named volumes: `ROOT/volumes/NAME/_data` (docker's layout), made by `volume create`
//! or on first use by `run -v NAME:/path`, filled from the image at that path when empty,
//! kept until `volume rm` / `volume prune`; one in use by any container is not removed.
use crate::error::{Context, Result, io};
use crate::state;
use crate::sys::FileLock;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// What `volume ls` and `volume inspect` show.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct VolumeInfo {
    pub name: String,
    pub driver: String,
    /// The directory containers see (`.../NAME/_data`).
    pub mountpoint: PathBuf,
    pub created_at: String,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    pub scope: String,
}

/// Stored beside `_data`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct Meta {
    created_at: String,
    #[serde(default)]
    labels: BTreeMap<String, String>,
}

pub fn volumes_dir(root: &Path) -> PathBuf {
    root.join("volumes")
}

pub fn data_dir(root: &Path, name: &str) -> PathBuf {
    volumes_dir(root).join(name).join("_data")
}

/// docker's rule for volume names: a container name's characters
/// (`spec::is_docker_name`), at least two of them: `[a-zA-Z0-9][a-zA-Z0-9_.-]+`.
pub fn validate_volume_name(name: &str) -> Result<()> {
    if name.len() < 2 || !crate::spec::is_docker_name(name) {
        bail!(
            "invalid volume name {name:?}: use [a-zA-Z0-9][a-zA-Z0-9_.-]+ (2 characters or more)"
        );
    }
    Ok(())
}

/// The store-wide volumes lock: creation, removal and a container's claim of a volume
/// exclude each other, so `rm` never removes a volume a new container is taking.
pub fn lock(root: &Path) -> Result<FileLock> {
    let dir = volumes_dir(root);
    fs::create_dir_all(&dir).map_err(io("mkdir", &dir))?;
    Ok(FileLock::exclusive(&dir.join(".lock"))?)
}

/// Creates volume NAME (a random name when None); an existing one is returned as it is.
pub fn create(root: &Path, name: Option<&str>, labels: &[(String, String)]) -> Result<VolumeInfo> {
    let _l = lock(root)?;
    create_locked(root, name, labels)
}

/// `create` for a caller holding `lock`.
pub fn create_locked(
    root: &Path,
    name: Option<&str>,
    labels: &[(String, String)],
) -> Result<VolumeInfo> {
    let name = match name {
        Some(n) => {
            validate_volume_name(n)?;
            n.to_string()
        }
        None => state::new_id()?,
    };
    let dir = volumes_dir(root).join(&name);
    if !dir.join("_data").is_dir() {
        let meta = Meta {
            created_at: crate::timestamp::now_nanos(),
            labels: labels.iter().cloned().collect(),
        };
        let data = dir.join("_data");
        fs::create_dir_all(&data).map_err(io("mkdir", &data))?;
        fs::set_permissions(&data, fs::Permissions::from_mode(0o755))
            .map_err(io("chmod", &data))?;
        crate::sys::durable::write_file(&dir.join("meta.json"), &serde_json::to_vec(&meta)?, 0o644)
            .with_context(|| format!("creating volume {name}"))?;
    }
    inspect_dir(&name, &dir)
}

fn inspect_dir(name: &str, dir: &Path) -> Result<VolumeInfo> {
    let meta: Meta = fs::read(dir.join("meta.json"))
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or_default();
    Ok(VolumeInfo {
        name: name.to_string(),
        driver: "local".into(),
        mountpoint: dir.join("_data"),
        created_at: meta.created_at,
        labels: meta.labels,
        scope: "local".into(),
    })
}

/// Every named volume, by name.
pub fn list(root: &Path) -> Result<Vec<VolumeInfo>> {
    let dir = volumes_dir(root);
    let rd = match fs::read_dir(&dir) {
        Ok(rd) => rd,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(vec![]),
        Err(e) => return Err(io("listing", &dir)(e)),
    };
    let mut out = Vec::new();
    for e in rd.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        // Anonymous volumes of `-v /path` (no _data) and temps are not named volumes.
        if !name.starts_with('.') && e.path().join("_data").is_dir() {
            out.push(inspect_dir(&name, &e.path())?);
        }
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(out)
}

pub fn inspect(root: &Path, name: &str) -> Result<VolumeInfo> {
    let dir = volumes_dir(root).join(name);
    if validate_volume_name(name).is_err() || !dir.join("_data").is_dir() {
        return Err(crate::Error::no_such("volume", name));
    }
    inspect_dir(name, &dir)
}

/// Names of the containers (any state) whose config mounts volume NAME.
pub fn users(root: &Path, name: &str) -> Result<Vec<String>> {
    Ok(state::list(root)?
        .into_iter()
        .filter(|c| {
            c.config
                .volumes
                .iter()
                .any(|v| v.name.as_deref() == Some(name))
        })
        .map(|c| c.name)
        .collect())
}

/// Removes volume NAME; refused while a container (running or not) uses it.
pub fn remove(root: &Path, name: &str) -> Result<()> {
    let _c = containers_lock(root)?;
    let _l = lock(root)?;
    inspect(root, name)?;
    let users = users(root, name)?;
    if !users.is_empty() {
        bail!(
            "volume {name} is in use by container(s) {}: remove them first",
            users.join(", ")
        );
    }
    remove_dir(root, name)
}

fn remove_dir(root: &Path, name: &str) -> Result<()> {
    let dir = volumes_dir(root).join(name);
    crate::supervisor::remove_trees(&[dir])
}

/// Removes every volume no container uses; returns their names and the bytes freed.
pub fn prune(root: &Path) -> Result<(Vec<String>, u64)> {
    let _c = containers_lock(root)?;
    let _l = lock(root)?;
    let mut removed = Vec::new();
    let mut bytes = 0;
    for v in list(root)? {
        if users(root, &v.name)?.is_empty() {
            bytes += du(&v.mountpoint);
            remove_dir(root, &v.name)?;
            removed.push(v.name);
        }
    }
    Ok((removed, bytes))
}

fn containers_lock(root: &Path) -> Result<FileLock> {
    let dir = state::containers_dir(root);
    fs::create_dir_all(&dir).map_err(io("mkdir", &dir))?;
    Ok(FileLock::exclusive(&dir.join(".lock"))?)
}

/// Bytes used by the files of a tree (as `du`).
pub fn du(path: &Path) -> u64 {
    crate::image::util::disk_usage(path)
}

/// Fills an empty volume dir from the image's content at `ctr_path` (docker copies the
/// image's files into a new volume); nothing when the image has nothing there.
pub fn init_from_image(data: &Path, lowers: &[PathBuf], ctr_path: &str) -> Result<()> {
    let empty = fs::read_dir(data)
        .map(|mut d| d.next().is_none())
        .unwrap_or(false);
    if !empty || lowers.is_empty() {
        return Ok(());
    }
    let view = crate::image::views::of_lowers(lowers).context("reading the image's layers")?;
    let rel = Path::new(ctr_path.trim_start_matches('/'));
    let Some(top) = view.lookup(rel)? else {
        return Ok(());
    };
    if !top.is_dir() {
        return Ok(());
    }
    copy_attrs(&top.meta, data)?;
    view.walk(rel, &mut |e| -> Result<bool> {
        let sub = e.rel.strip_prefix(rel).unwrap_or(&e.rel);
        let dst = data.join(sub);
        crate::copy::copy_node(&e.real, &e.meta, &dst)?;
        Ok(true)
    })
    .with_context(|| {
        format!(
            "filling volume {} from the image's {ctr_path}",
            data.display()
        )
    })
}

fn copy_attrs(meta: &fs::Metadata, dst: &Path) -> Result<()> {
    std::os::unix::fs::lchown(dst, Some(meta.uid()), Some(meta.gid())).map_err(io("chown", dst))?;
    fs::set_permissions(dst, fs::Permissions::from_mode(meta.mode() & 0o7777))
        .map_err(io("chmod", dst))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert!(validate_volume_name("data-1.x_y").is_ok());
        for bad in ["", "a", "-x", "a/b", ".x"] {
            assert!(validate_volume_name(bad).is_err(), "{bad}");
        }
    }
}
