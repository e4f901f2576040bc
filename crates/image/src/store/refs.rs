//! Image references and index descriptors: `name:tag` rules and the ref-name annotation.
use super::ImageRef;
use crate::error::Result;
use oci_spec::image::{Descriptor, MediaType};
use std::collections::HashMap;

pub const REF_NAME: &str = "org.opencontainers.image.ref.name";

pub fn strip_sha(d: &str) -> &str {
    d.strip_prefix("sha256:").unwrap_or(d)
}

/// Index descriptors grouped by image, in index order.
pub fn group_refs(descs: &[Descriptor]) -> Vec<ImageRef> {
    {
        let mut order: Vec<String> = Vec::new();
        let mut by: HashMap<String, ImageRef> = HashMap::new();
        for d in descs {
            let hex = d.digest().digest().to_string();
            let e = by.entry(hex.clone()).or_insert_with(|| {
                order.push(hex.clone());
                ImageRef {
                    manifest: hex.clone(),
                    manifest_size: d.size(),
                    tags: Vec::new(),
                }
            });
            if let Some(t) = d.annotations().as_ref().and_then(|a| a.get(REF_NAME)) {
                e.tags.push(t.clone());
            }
        }
        order.into_iter().filter_map(|h| by.remove(&h)).collect()
    }
}

pub fn ref_name(d: &Descriptor) -> Option<String> {
    d.annotations()
        .as_ref()
        .and_then(|a| a.get(REF_NAME))
        .cloned()
}

pub fn descriptor(manifest_hex: &str, size: u64, tag: Option<&str>) -> Result<Descriptor> {
    let digest: oci_spec::image::Digest = format!("sha256:{manifest_hex}").parse()?;
    let mut d = Descriptor::new(MediaType::ImageManifest, size, digest);
    if let Some(t) = tag {
        let mut a = HashMap::new();
        a.insert(REF_NAME.to_string(), t.to_string());
        d.set_annotations(Some(a));
    }
    Ok(d)
}

/// `name` -> `name:latest`; names with a tag or digest stay as they are.
pub fn normalize_ref(r: &str) -> String {
    if r.contains('@') {
        return r.to_string();
    }
    let last = r.rsplit('/').next().unwrap_or(r);
    if last.contains(':') {
        r.to_string()
    } else {
        format!("{r}:latest")
    }
}

/// A stored name without the registry prefixes users leave out.
pub fn short_name(t: &str) -> String {
    for p in ["docker.io/library/", "docker.io/", "localhost/"] {
        if let Some(s) = t.strip_prefix(p) {
            return s.to_string();
        }
    }
    t.to_string()
}

/// Whether a stored `name:tag` is what a user's reference names (`busybox` names
/// `docker.io/library/busybox:latest`).
pub fn tag_matches(stored: &str, reference: &str) -> bool {
    let want = normalize_ref(reference);
    stored == want || short_name(stored) == want
}

/// Checks a name given to an image (tag, commit, import) against the one reference
/// grammar ([`crate::reference`]); returns it as stored, `name:tag` (`latest` by default).
pub fn check_ref(r: &str) -> Result<String> {
    if crate::reference::parse(r)?.digest.is_some() {
        bail!("invalid reference {r:?}: a name to give an image has no digest");
    }
    Ok(normalize_ref(r))
}

/// Whether a stored name is `name@sha256:...`: the digest an image was pulled by
/// (docker's RepoDigests), not a tag.
pub fn is_digest_name(t: &str) -> bool {
    t.contains('@')
}

/// Splits `name:tag` for display; `name@digest` has no tag.
pub fn split_tag(t: &str) -> (String, String) {
    if let Some((name, _)) = t.split_once('@') {
        return (name.to_string(), "<none>".into());
    }
    match t.rsplit_once(':') {
        Some((n, tag)) if !tag.contains('/') => (n.to_string(), tag.to_string()),
        _ => (t.to_string(), "<none>".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references() {
        assert_eq!(normalize_ref("busybox"), "busybox:latest");
        assert_eq!(
            normalize_ref("localhost:5000/a/b"),
            "localhost:5000/a/b:latest"
        );
        assert_eq!(normalize_ref("a:1"), "a:1");
        assert_eq!(
            short_name("docker.io/library/busybox:latest"),
            "busybox:latest"
        );
        assert!(tag_matches("docker.io/library/busybox:latest", "busybox"));
        assert!(tag_matches("localhost/a:1", "localhost/a:1"));
        assert!(!tag_matches("busybox:1", "busybox"));
        let d = format!("sha256:{}", "a".repeat(64));
        assert!(tag_matches(
            &format!("h:5000/x@{d}"),
            &format!("h:5000/x@{d}")
        ));
        assert!(is_digest_name(&format!("h:5000/x@{d}")));
        assert_eq!(
            split_tag(&format!("h:5000/x@{d}")),
            ("h:5000/x".to_string(), "<none>".to_string())
        );
        for bad in ["Upper", "a b", "bb::1", "bb:-x"] {
            assert!(check_ref(bad).is_err(), "{bad}");
        }
        assert_eq!(check_ref("my/img:v1").unwrap(), "my/img:v1");
        assert_eq!(
            split_tag("localhost:5000/x:1"),
            ("localhost:5000/x".into(), "1".into())
        );
    }
}
