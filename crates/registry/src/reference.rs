//! Image references as docker reads them: `[HOST[:PORT]/]REPO/PATH[:TAG][@sha256:HEX]`.
//! The first path component is a registry host when it holds a `.` or a `:` or is
//! `localhost`; otherwise the registry is docker.io (and a one-component name gets
//! docker's `library/` prefix), as `docker pull busybox` means.
use crate::error::Result;
use std::fmt;
use unionctl_image::reference;

pub const DOCKER_HUB: &str = "docker.io";

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reference {
    /// The registry as users write it: `docker.io`, `127.0.0.1:5000`, `quay.io`.
    pub registry: String,
    /// The repository path inside the registry: `library/busybox`, `team/app`.
    pub repository: String,
    pub tag: Option<String>,
    /// `sha256:<hex>` when the reference names a manifest by digest.
    pub digest: Option<String>,
}

impl Reference {
    /// Parses with the store's grammar ([`unionctl_image::reference`]) and applies
    /// docker's defaults: docker.io, and `library/` for a one-component name there.
    pub fn parse(input: &str) -> Result<Reference> {
        let p = reference::parse(input)?;
        let (registry, repository) = match p.domain {
            Some(d) => (d, p.path),
            None if p.path.contains('/') => (DOCKER_HUB.to_string(), p.path),
            None => (DOCKER_HUB.to_string(), format!("library/{}", p.path)),
        };
        Ok(Reference {
            registry,
            repository,
            tag: p.tag,
            digest: p.digest,
        })
    }

    /// The tag or digest to ask the registry for (`latest` when neither is given).
    pub fn manifest_ref(&self) -> String {
        match (&self.digest, &self.tag) {
            (Some(d), _) => d.clone(),
            (None, Some(t)) => t.clone(),
            (None, None) => "latest".into(),
        }
    }

    /// `registry/repository`.
    pub fn name(&self) -> String {
        format!("{}/{}", self.registry, self.repository)
    }

    /// The store name for a pulled image: `name:tag` (`latest` by default), or
    /// `name@digest` when it was named by digest only (docker's `REPO <none>`).
    pub fn store_name(&self) -> String {
        match (&self.tag, &self.digest) {
            (Some(t), _) => format!("{}:{t}", self.name()),
            (None, Some(d)) => format!("{}@{d}", self.name()),
            (None, None) => format!("{}:latest", self.name()),
        }
    }

    /// Registries on this machine are spoken to without TLS checks, as docker does.
    pub fn is_local(&self) -> bool {
        is_local_registry(&self.registry)
    }
}

impl fmt::Display for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.name())?;
        match (&self.tag, &self.digest) {
            (Some(t), Some(d)) => write!(f, ":{t}@{d}"),
            (Some(t), None) => write!(f, ":{t}"),
            (None, Some(d)) => write!(f, "@{d}"),
            (None, None) => write!(f, ":latest"),
        }
    }
}

/// `localhost`, `127.x.x.x` or `[::1]`, with or without a port.
pub fn is_local_registry(registry: &str) -> bool {
    let host = if let Some(rest) = registry.strip_prefix('[') {
        rest.split(']').next().unwrap_or("")
    } else {
        registry.split(':').next().unwrap_or("")
    };
    host == "localhost" || host == "::1" || host.starts_with("127.")
}

/// The host that serves a registry's API (docker.io's is registry-1.docker.io).
pub fn api_host(registry: &str) -> &str {
    if registry == DOCKER_HUB || registry == "index.docker.io" {
        "registry-1.docker.io"
    } else {
        registry
    }
}

pub use reference::{is_digest, is_host};

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> Reference {
        Reference::parse(s).unwrap()
    }

    #[test]
    fn hosts_paths_tags_digests() {
        let r = p("127.0.0.1:5000/team/app:v1");
        assert_eq!(r.registry, "127.0.0.1:5000");
        assert_eq!(r.repository, "team/app");
        assert_eq!(r.tag.as_deref(), Some("v1"));
        assert!(r.is_local());
        assert_eq!(r.store_name(), "127.0.0.1:5000/team/app:v1");

        let r = p("localhost/app");
        assert_eq!(
            (r.registry.as_str(), r.repository.as_str()),
            ("localhost", "app")
        );
        assert_eq!(r.manifest_ref(), "latest");

        let r = p("busybox");
        assert_eq!(r.name(), "docker.io/library/busybox");
        assert!(!r.is_local());
        let r = p("team/app:1.0");
        assert_eq!(r.name(), "docker.io/team/app");
        let r = p("quay.io/a/b/c");
        assert_eq!(
            (r.registry.as_str(), r.repository.as_str()),
            ("quay.io", "a/b/c")
        );

        let d = format!("sha256:{}", "a".repeat(64));
        let r = p(&format!("localhost:5000/app@{d}"));
        assert_eq!(r.digest.as_deref(), Some(d.as_str()));
        assert_eq!(r.manifest_ref(), d);
        assert_eq!(r.store_name(), format!("localhost:5000/app@{d}"));
        let r = p(&format!("localhost:5000/app:t@{d}"));
        assert_eq!(r.tag.as_deref(), Some("t"));
        assert_eq!(r.to_string(), format!("localhost:5000/app:t@{d}"));
    }

    #[test]
    fn refusals_name_the_reference() {
        for bad in [
            "",
            "Upper/app",
            "localhost:5000/App",
            "localhost:5000/a//b",
            "app:",
            "app:-x",
            "app@sha256:abc",
            "a b",
            "localhost:5000/a-/b",
            ":5000/a",
        ] {
            let e = Reference::parse(bad).unwrap_err().to_string();
            assert!(e.contains(&format!("{bad:?}")), "{bad}: {e}");
        }
        assert!(Reference::parse("a__b/c.d-e--f").is_ok());
        assert!(Reference::parse("a___b").is_err());
    }

    #[test]
    fn local_registries() {
        assert!(is_local_registry("localhost:5000"));
        assert!(is_local_registry("127.0.0.1"));
        assert!(is_local_registry("[::1]:5000"));
        assert!(!is_local_registry("registry.example.com:5000"));
        assert_eq!(api_host("docker.io"), "registry-1.docker.io");
    }
}
