//! Docker Registry HTTP API v2 client: `pull`, `push`, `search`, `login`, `logout`.
//!
//! - `reference`: `[HOST[:PORT]/]REPO[:TAG][@DIGEST]` as docker reads it
//! - `auth`: credentials, the auth file, challenges and Bearer tokens
//! - `client`: one registry endpoint: ping, scheme, authenticated requests, errors
//! - `manifests`, `blobs`: the two kinds of content, checked against their digests
//! - `pull`, `push`, `search`: the commands' work against the image store

// The crates below this one, under the names the modules use.
pub(crate) use unionctl_image as image;
pub(crate) use unionctl_union::sys;
#[macro_use]
mod error;
pub mod auth;
pub mod blobs;
pub mod client;
pub mod manifests;
pub mod pull;
pub mod push;
pub mod reference;
pub mod search;
pub mod tls;

use crate::image::progress::Progress;
use crate::image::store::Store;
use crate::image::util;
use auth::Credentials;
use client::Client;
use error::Context;
pub use error::{Error, Result};
use reference::Reference;
use std::path::{Path, PathBuf};

/// How to reach a registry and who to be there.
#[derive(Debug, Clone)]
pub struct Access {
    /// Check TLS certificates; false also allows plain http (always for localhost).
    pub tls_verify: bool,
    /// Credentials file (default $REGISTRY_AUTH_FILE, else ROOT/auth.json).
    pub authfile: Option<PathBuf>,
    /// CA certificates and client certificate for the registry.
    pub cert_dir: Option<PathBuf>,
    /// `USER:PASS`, else the credentials `login` saved.
    pub creds: Option<String>,
}

impl Default for Access {
    fn default() -> Access {
        Access {
            tls_verify: true,
            authfile: None,
            cert_dir: None,
            creds: None,
        }
    }
}

fn connect(root: &Path, a: &Access, registry: &str) -> Result<Client> {
    let creds = match &a.creds {
        Some(c) => Some(Credentials::parse(c)?),
        None => auth::saved(&auth::auth_file(root, a.authfile.as_deref()), registry)?,
    };
    Client::connect(registry, a.tls_verify, a.cert_dir.as_deref(), creds)
}

/// Pulls REFERENCE (`HOST[:PORT]/REPO[:TAG|@DIGEST]`) into the store under ROOT;
/// `platform` is `OS/ARCH[/VARIANT]` (default: this machine's).
pub fn pull(
    root: &Path,
    access: &Access,
    reference: &str,
    platform: Option<&str>,
    progress: &mut dyn Progress,
) -> Result<pull::Pulled> {
    let r = Reference::parse(reference)?;
    let platform = match platform {
        Some(p) => manifests::Wanted::parse(p)?,
        None => manifests::Wanted::host(),
    };
    let ctx = || reference.to_string();
    let mut client = connect(root, access, &r.registry).with_context(ctx)?;
    let store = Store::open(root)?;
    pull::pull(&store, &mut client, &r, &platform, progress).with_context(ctx)
}

/// Pushes the local IMAGE to `destination` (default: the image's name); layers as
/// stored or compressed (`none`, `gzip`, `zstd`). Returns the pushed manifest digest.
pub fn push(
    root: &Path,
    access: &Access,
    image: &str,
    destination: Option<&str>,
    compression: &str,
    progress: &mut dyn Progress,
) -> Result<String> {
    let dest = destination.unwrap_or(image);
    let ctx = || dest.to_string();
    let r = Reference::parse(dest)
        .with_context(|| format!("{image}: name the destination as HOST[:PORT]/REPO[:TAG]"))?;
    let store = Store::open_existing(root);
    let img = store.load(&store.resolve(image)?)?;
    let _w = store.writer_lock()?; // so `rmi` does not sweep blobs being sent
    let mut client = connect(root, access, &r.registry).with_context(ctx)?;
    let how = util::Compression::parse(compression)?;
    push::push(&store, &img, &mut client, &r, how, progress).with_context(ctx)
}

/// The tags of REPO (`REGISTRY/REPO`): the repository's name and its tags.
pub fn list_tags(root: &Path, access: &Access, repo: &str) -> Result<(String, Vec<String>)> {
    let r = Reference::parse(repo)?;
    if r.tag.is_some() || r.digest.is_some() {
        bail!("--list-tags {repo}: name a repository without tag or digest");
    }
    let mut client = connect(root, access, &r.registry)?;
    let tags = search::tags(&mut client, &r.repository)?;
    Ok((r.name(), tags))
}

/// The repositories of a registry whose names contain a term; TERM is
/// `REGISTRY[/TERM]` (or a bare term on Docker Hub). Returns the registry and the names.
pub fn search(root: &Path, access: &Access, term: &str) -> Result<(String, Vec<String>)> {
    let (registry, term) = match term.split_once('/') {
        Some((first, rest)) if reference::is_host(first) => (first.to_string(), rest.to_string()),
        _ if reference::is_host(term) => (term.to_string(), String::new()),
        _ => (reference::DOCKER_HUB.to_string(), term.to_string()),
    };
    let mut client = connect(root, access, &registry)?;
    let repos = search::catalog(&mut client, &term)?;
    Ok((registry, repos))
}

/// Whether REFERENCE names its registry (`HOST[:PORT]/REPO...`) rather than leaving it
/// to Docker Hub.
pub fn names_registry(reference: &str) -> bool {
    reference
        .split_once('/')
        .is_some_and(|(first, _)| reference::is_host(first))
}

/// `https://host:5000/v2/` -> `host:5000`.
pub fn registry_of(arg: &str) -> Result<String> {
    let s = arg
        .trim()
        .trim_start_matches("https://")
        .trim_start_matches("http://");
    let host = s.split('/').next().unwrap_or("");
    if host.is_empty() || host.contains(char::is_whitespace) {
        bail!("{arg:?}: not a registry (want HOST[:PORT])");
    }
    Ok(host.to_string())
}

/// Checks CREDS against REGISTRY (`HOST[:PORT]`), then saves them in the auth file.
pub fn login(root: &Path, access: &Access, registry: &str, creds: Credentials) -> Result<()> {
    if creds.user.is_empty() || creds.user.contains(':') {
        bail!("{registry}: {:?} is not a user name", creds.user);
    }
    let mut client = Client::connect(
        registry,
        access.tls_verify,
        access.cert_dir.as_deref(),
        Some(creds.clone()),
    )
    .with_context(|| registry.to_string())?;
    client.verify_login()?;
    let file = auth::auth_file(root, access.authfile.as_deref());
    auth::store(&file, registry, &creds)
}

/// Forgets the saved credentials of REGISTRY (every registry's when None).
pub fn logout(root: &Path, authfile: Option<&Path>, registry: Option<&str>) -> Result<()> {
    let file = auth::auth_file(root, authfile);
    let Some(registry) = registry else {
        auth::remove(&file, None)?;
        return Ok(());
    };
    if !auth::remove(&file, Some(registry))? {
        bail!(
            "logout {registry}: not logged in (no entry in {})",
            file.display()
        );
    }
    Ok(())
}
