//! What the image commands need of a container: its record (containers/<id>/state.json,
//! written by the runner; extra fields ignored), its upper layer and its lowers.
use crate::error::Result;
use serde::Deserialize;
use std::fs;
use std::path::{Path, PathBuf};

#[derive(Debug, Clone, Deserialize)]
pub struct ContainerRecord {
    pub id: String,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub image: Option<String>,
    #[serde(default)]
    pub rootfs: Option<PathBuf>,
    /// Lower layer dirs, top first.
    #[serde(default)]
    pub lowers: Vec<PathBuf>,
    #[serde(default)]
    pub status: Option<String>,
    #[serde(default)]
    pub pid: Option<i32>,
    #[serde(default)]
    pub config: serde_json::Value,
    #[serde(skip)]
    pub dir: PathBuf,
}

impl ContainerRecord {
    pub fn upper(&self) -> PathBuf {
        self.dir.join("upper")
    }
    /// The union's work dir (its `index/` holds the hard-link index).
    pub fn work(&self) -> PathBuf {
        self.dir.join("work")
    }
    pub fn display_name(&self) -> String {
        match &self.name {
            Some(n) if !n.is_empty() => n.clone(),
            _ => self.id.chars().take(12).collect(),
        }
    }
    /// The lowers, top first: the record's list, else its --rootfs dir.
    pub fn lower_dirs(&self) -> Vec<PathBuf> {
        if !self.lowers.is_empty() {
            return self.lowers.clone();
        }
        self.rootfs.iter().cloned().collect()
    }
    pub fn is_running(&self) -> bool {
        self.status.as_deref() == Some("running") && self.pid.is_some_and(|p| p > 0)
    }
    /// A string list from the run config (`cmd`, `env`, `entrypoint`), if present.
    pub fn config_list(&self, key: &str) -> Option<Vec<String>> {
        let v = self.config.get(key)?.as_array()?;
        Some(
            v.iter()
                .filter_map(|s| s.as_str().map(String::from))
                .collect(),
        )
    }
    pub fn config_str(&self, key: &str) -> Option<String> {
        self.config
            .get(key)?
            .as_str()
            .map(String::from)
            .filter(|s| !s.is_empty())
    }
}

fn read_record(dir: &Path) -> Option<ContainerRecord> {
    let bytes = fs::read(dir.join("state.json")).ok()?;
    let mut r: ContainerRecord = serde_json::from_slice(&bytes).ok()?;
    r.dir = dir.to_path_buf();
    Some(r)
}

/// Every readable container record under the store root.
pub fn all(root: &Path) -> Vec<ContainerRecord> {
    let Ok(rd) = fs::read_dir(root.join("containers")) else {
        return Vec::new();
    };
    rd.flatten()
        // `.trash-*`: a removed container whose files are still being deleted.
        .filter(|e| !e.file_name().as_encoded_bytes().starts_with(b"."))
        .filter_map(|e| read_record(&e.path()))
        .collect()
}

/// Finds a container by full id, name, or unique id prefix.
pub fn find(root: &Path, reference: &str) -> Result<ContainerRecord> {
    let list = all(root);
    if let Some(c) = list
        .iter()
        .find(|c| c.id == reference || c.name.as_deref() == Some(reference))
    {
        return Ok(c.clone());
    }
    let hits: Vec<&ContainerRecord> = list
        .iter()
        .filter(|c| c.id.starts_with(reference))
        .collect();
    match hits.len() {
        1 if !reference.is_empty() => Ok(hits[0].clone()),
        0 | 1 => Err(crate::error::Error::no_such("container", reference)),
        _ => bail!("container {reference:?}: ambiguous id prefix"),
    }
}
