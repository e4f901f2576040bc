//! Manifests on the wire: Docker schema2 manifests and manifest lists, OCI manifests
//! and indexes; fetching one by tag or digest (its digest checked), choosing the
//! platform of a list, and uploading one.
use super::client::{self, Client, Payload};
use super::reference::Reference;
use crate::error::Result;
use crate::image::util;
use serde::Deserialize;

pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
pub const DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
const DOCKER_SCHEMA1: &str = "application/vnd.docker.distribution.manifest.v1";

/// Manifests are small; anything larger is refused rather than read into memory.
const MAX_MANIFEST: u64 = 8 << 20;

#[derive(Debug, Clone, Deserialize)]
pub struct Descriptor {
    #[serde(rename = "mediaType", default)]
    pub media_type: String,
    pub digest: String,
    pub size: u64,
    #[serde(default)]
    pub platform: Option<Platform>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Platform {
    #[serde(default)]
    pub architecture: String,
    #[serde(default)]
    pub os: String,
    #[serde(default)]
    pub variant: Option<String>,
}

/// An image manifest (OCI or Docker schema2: the same shape).
#[derive(Debug, Clone, Deserialize)]
pub struct Manifest {
    #[serde(rename = "schemaVersion")]
    pub schema_version: u32,
    #[serde(rename = "mediaType", default)]
    pub media_type: Option<String>,
    pub config: Descriptor,
    #[serde(default)]
    pub layers: Vec<Descriptor>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Index {
    pub manifests: Vec<Descriptor>,
}

/// A fetched manifest: its bytes, media type and (checked) digest.
pub struct Fetched {
    pub bytes: Vec<u8>,
    pub media_type: String,
    pub digest: String,
}

impl Fetched {
    pub fn is_index(&self) -> bool {
        self.media_type == OCI_INDEX || self.media_type == DOCKER_LIST
    }
}

pub fn scope_pull(repo: &str) -> String {
    format!("repository:{repo}:pull")
}

pub fn scope_push(repo: &str) -> String {
    format!("repository:{repo}:pull,push")
}

/// GET /v2/REPO/manifests/REF accepting every format we read.
pub fn fetch(client: &mut Client, r: &Reference, reference: &str) -> Result<Fetched> {
    let url = client.url(&format!("/v2/{}/manifests/{reference}", r.repository));
    let accept = [OCI_MANIFEST, DOCKER_MANIFEST, OCI_INDEX, DOCKER_LIST].join(", ");
    let resp = client.send(
        "GET",
        &url,
        &[("Accept", &accept)],
        Payload::Empty,
        &scope_pull(&r.repository),
    )?;
    if resp.status().as_u16() == 404 {
        let mut resp = resp;
        let body = resp.body_mut().read_to_string().unwrap_or_default();
        let code = Client::error_code(&body).unwrap_or_default();
        if code == "NAME_UNKNOWN" {
            bail!(
                "manifest unknown: {r}: no repository {} in {}",
                r.repository,
                r.registry
            );
        }
        bail!("manifest unknown: {r}");
    }
    let mut resp = client.ok(resp, &format!("manifest {r}"))?;
    let header_digest = client::header(&resp, "docker-content-digest");
    let content_type = client::header(&resp, "content-type");
    let bytes = resp
        .body_mut()
        .with_config()
        .limit(MAX_MANIFEST)
        .read_to_vec()
        .map_err(|e| invalid!("manifest {r}: reading: {e}"))?;
    let digest = format!("sha256:{}", util::sha256_hex(&bytes));
    // A digest we asked for, or the one the registry announced, must be the content's.
    let expected = if reference.starts_with("sha256:") {
        reference.to_string()
    } else {
        header_digest.clone()
    };
    if expected.starts_with("sha256:") && expected != digest {
        bail!(
            "manifest {r}: digest mismatch: expected {expected}, content is {digest}; nothing stored"
        );
    }
    let media_type = media_type_of(&bytes, &content_type);
    if media_type.starts_with(DOCKER_SCHEMA1) {
        bail!("manifest {r}: Docker schema 1 manifests are not supported (deprecated format)");
    }
    if ![OCI_MANIFEST, OCI_INDEX, DOCKER_MANIFEST, DOCKER_LIST].contains(&media_type.as_str()) {
        bail!("manifest {r}: unsupported media type {media_type:?}");
    }
    Ok(Fetched {
        bytes,
        media_type,
        digest,
    })
}

/// The manifest's own `mediaType`, else the Content-Type (without parameters), else
/// told by shape (an OCI manifest may omit `mediaType`).
fn media_type_of(bytes: &[u8], content_type: &str) -> String {
    #[derive(Deserialize)]
    struct Probe {
        #[serde(rename = "mediaType", default)]
        media_type: Option<String>,
        #[serde(default)]
        manifests: Option<serde_json::Value>,
        #[serde(rename = "schemaVersion", default)]
        schema_version: Option<u32>,
    }
    let probe: Option<Probe> = serde_json::from_slice(bytes).ok();
    if let Some(m) = probe.as_ref().and_then(|p| p.media_type.clone()) {
        return m;
    }
    let ct = content_type.split(';').next().unwrap_or("").trim();
    if !ct.is_empty() && ct != "application/json" && ct != "text/plain" {
        return ct.to_string();
    }
    match probe {
        Some(p) if p.schema_version == Some(1) => DOCKER_SCHEMA1.to_string(),
        Some(p) if p.manifests.is_some() => OCI_INDEX.to_string(),
        _ => OCI_MANIFEST.to_string(),
    }
}

/// The platform an image is wanted for: OS/ARCH[/VARIANT].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Wanted {
    pub os: String,
    pub arch: String,
    pub variant: Option<String>,
    /// Asked for with `--platform` (not the host's by default): an image of another
    /// platform is then an error, as docker's.
    pub explicit: bool,
}

impl Wanted {
    /// linux and the host's architecture, in Docker's names.
    pub fn host() -> Wanted {
        let (arch, variant) = docker_arch(std::env::consts::ARCH, None);
        Wanted {
            os: "linux".into(),
            arch,
            variant,
            explicit: false,
        }
    }

    /// `--platform OS/ARCH[/VARIANT]`.
    pub fn parse(s: &str) -> Result<Wanted> {
        let parts: Vec<&str> = s.split('/').collect();
        if !(2..=3).contains(&parts.len()) || parts.iter().any(|p| p.is_empty()) {
            bail!("--platform {s:?}: want OS/ARCH[/VARIANT], e.g. linux/arm64/v8");
        }
        let (arch, variant) = docker_arch(parts[1], parts.get(2).copied());
        Ok(Wanted {
            os: parts[0].to_ascii_lowercase(),
            arch,
            variant,
            explicit: true,
        })
    }
}

/// An architecture and variant in the names images use (GOARCH), whatever name the
/// user or the system gave: x86_64 is amd64, aarch64 arm64, armhf arm/v7.
fn docker_arch(arch: &str, variant: Option<&str>) -> (String, Option<String>) {
    let arch = arch.to_ascii_lowercase();
    let variant = variant.map(|v| v.to_ascii_lowercase());
    let (arch, variant) = match arch.as_str() {
        "x86_64" | "x86-64" | "amd64" => ("amd64", variant.filter(|v| v != "v1")),
        "aarch64" | "arm64" => (
            "arm64",
            variant.map(|v| if v == "8" { "v8".into() } else { v }),
        ),
        "armhf" => ("arm", Some("v7".into())),
        "armel" => ("arm", Some("v6".into())),
        "arm" => (
            "arm",
            variant.map(|v| {
                if v.starts_with('v') {
                    v
                } else {
                    format!("v{v}")
                }
            }),
        ),
        "i386" | "i486" | "i586" | "i686" | "x86" => ("386", variant),
        "powerpc64le" | "ppc64el" | "powerpc64" => ("ppc64le", variant),
        _ => (arch.as_str(), variant),
    };
    (arch.to_string(), variant)
}

impl std::fmt::Display for Wanted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.os, self.arch)?;
        if let Some(v) = &self.variant {
            write!(f, "/{v}")?;
        }
        Ok(())
    }
}

/// The entry of a manifest list / index for the wanted platform.
pub fn pick_platform(index_bytes: &[u8], what: &str, want: &Wanted) -> Result<Descriptor> {
    let idx: Index =
        serde_json::from_slice(index_bytes).map_err(|e| invalid!("manifest list {what}: {e}"))?;
    let fits = |d: &&Descriptor| {
        d.platform.as_ref().is_some_and(|p| {
            p.os == want.os
                && p.architecture == want.arch
                && (want.variant.is_none() || p.variant == want.variant)
        })
    };
    if let Some(d) = idx.manifests.iter().find(fits) {
        return Ok(d.clone());
    }
    let offered: Vec<String> = idx
        .manifests
        .iter()
        .map(|d| match &d.platform {
            Some(p) => format!(
                "{}/{}{}",
                p.os,
                p.architecture,
                p.variant
                    .as_ref()
                    .map(|v| format!("/{v}"))
                    .unwrap_or_default()
            ),
            None => "(no platform)".into(),
        })
        .collect();
    // A list of one entry without platform data is taken, as skopeo does.
    if idx.manifests.len() == 1 && idx.manifests[0].platform.is_none() {
        return Ok(idx.manifests[0].clone());
    }
    bail!(
        "manifest list {what}: no image for {want} (offered: {})",
        if offered.is_empty() {
            "nothing".to_string()
        } else {
            offered.join(", ")
        }
    )
}

/// PUT /v2/REPO/manifests/REF; returns the digest the registry reports.
pub fn put(
    client: &mut Client,
    repo: &str,
    reference: &str,
    media_type: &str,
    bytes: &[u8],
) -> Result<String> {
    let url = client.url(&format!("/v2/{repo}/manifests/{reference}"));
    let resp = client.send(
        "PUT",
        &url,
        &[("Content-Type", media_type)],
        Payload::Bytes(bytes),
        &scope_push(repo),
    )?;
    let resp = client.ok(
        resp,
        &format!("uploading manifest {}/{repo}:{reference}", client.registry),
    )?;
    Ok(client::header(&resp, "docker-content-digest"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn platforms_in_the_names_images_use() {
        let w = |s: &str| {
            let w = Wanted::parse(s).unwrap();
            (w.os, w.arch, w.variant)
        };
        let v = |o: &str, a: &str, v: Option<&str>| (o.into(), a.into(), v.map(String::from));
        assert_eq!(w("linux/x86_64"), v("linux", "amd64", None));
        assert_eq!(w("Linux/AMD64"), v("linux", "amd64", None));
        assert_eq!(w("linux/aarch64"), v("linux", "arm64", None));
        assert_eq!(w("linux/arm64/8"), v("linux", "arm64", Some("v8")));
        assert_eq!(w("linux/armhf"), v("linux", "arm", Some("v7")));
        assert_eq!(w("linux/arm/7"), v("linux", "arm", Some("v7")));
        assert_eq!(w("linux/i686"), v("linux", "386", None));
        assert_eq!(w("linux/riscv64"), v("linux", "riscv64", None));
        assert_eq!(
            Wanted::host().arch,
            w(&format!("linux/{}", std::env::consts::ARCH)).1
        );
    }

    #[test]
    fn media_types_by_field_header_or_shape() {
        assert_eq!(media_type_of(br#"{"mediaType":"x"}"#, OCI_INDEX), "x");
        assert_eq!(
            media_type_of(b"{}", &format!("{DOCKER_MANIFEST}; charset=utf-8")),
            DOCKER_MANIFEST
        );
        assert_eq!(
            media_type_of(br#"{"manifests":[]}"#, "application/json"),
            OCI_INDEX
        );
        assert_eq!(media_type_of(br#"{"schemaVersion":1}"#, ""), DOCKER_SCHEMA1);
        assert_eq!(
            media_type_of(br#"{"schemaVersion":2,"config":{}}"#, ""),
            OCI_MANIFEST
        );
    }

    #[test]
    fn platform_choice() {
        let host = Wanted::host();
        let arch = &host.arch;
        let list = format!(
            r#"{{"manifests":[
              {{"mediaType":"{OCI_MANIFEST}","digest":"sha256:aa","size":1,"platform":{{"architecture":"s390x","os":"linux"}}}},
              {{"mediaType":"{OCI_MANIFEST}","digest":"sha256:bb","size":1,"platform":{{"architecture":"{arch}","os":"linux"}}}},
              {{"mediaType":"{OCI_MANIFEST}","digest":"sha256:cc","size":1,"platform":{{"architecture":"unknown","os":"unknown"}}}}]}}"#
        );
        assert_eq!(
            pick_platform(list.as_bytes(), "x", &host).unwrap().digest,
            "sha256:bb"
        );
        let other = r#"{"manifests":[{"digest":"sha256:aa","size":1,"platform":{"architecture":"s390x","os":"linux"}}]}"#;
        let e = pick_platform(other.as_bytes(), "x", &host)
            .unwrap_err()
            .to_string();
        assert!(e.contains("linux/s390x"), "{e}");
        let s390 = Wanted::parse("linux/s390x").unwrap();
        assert_eq!(
            pick_platform(list.as_bytes(), "x", &s390).unwrap().digest,
            "sha256:aa"
        );
        assert_eq!(
            Wanted::parse("linux/arm64/v8").unwrap().to_string(),
            "linux/arm64/v8"
        );
        assert!(Wanted::parse("linux").is_err());
        assert!(Wanted::parse("linux//v8").is_err());
    }
}
