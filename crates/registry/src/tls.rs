//! Whom to trust over https: the system's CA bundle plus the registry's certificate
//! dir, as docker and podman read it: `--cert-dir DIR`, else
//! `/etc/containers/certs.d/HOST[:PORT]/`, else `/etc/docker/certs.d/HOST[:PORT]/`;
//! `*.crt` files are CAs, a `NAME.cert` with its `NAME.key` is the client certificate.
use crate::error::{Context, Result};
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use ureq::tls::{Certificate, ClientCert, PemItem, PrivateKey, RootCerts, TlsConfig};

const SYSTEM_BUNDLES: &[&str] = &[
    "/etc/ssl/certs/ca-certificates.crt",
    "/etc/pki/tls/certs/ca-bundle.crt",
    "/etc/ssl/cert.pem",
];

/// The cert dir of a registry: the one given, else the first system one that exists.
pub fn cert_dir(registry: &str, explicit: Option<&Path>) -> Option<PathBuf> {
    if let Some(d) = explicit {
        return Some(d.to_path_buf());
    }
    ["/etc/containers/certs.d", "/etc/docker/certs.d"]
        .iter()
        .map(|base| Path::new(base).join(registry))
        .find(|d| d.is_dir())
}

fn certificates(path: &Path) -> Result<Vec<Certificate<'static>>> {
    let pem = fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    let mut out = Vec::new();
    for item in ureq::tls::parse_pem(&pem) {
        if let PemItem::Certificate(c) = item.map_err(|e| invalid!("{}: {e}", path.display()))? {
            out.push(c);
        }
    }
    Ok(out)
}

fn private_key(path: &Path) -> Result<PrivateKey<'static>> {
    let pem = fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    for item in ureq::tls::parse_pem(&pem) {
        if let PemItem::PrivateKey(k) = item.map_err(|e| invalid!("{}: {e}", path.display()))? {
            return Ok(k);
        }
    }
    bail!("{}: no private key in it", path.display())
}

fn files_with(dir: &Path, ext: &str) -> Result<Vec<PathBuf>> {
    let mut out: Vec<PathBuf> = fs::read_dir(dir)
        .with_context(|| format!("reading cert dir {}", dir.display()))?
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == ext))
        .collect();
    out.sort();
    Ok(out)
}

/// The TLS settings for one registry. Without `verify` nothing is checked.
pub fn config(registry: &str, explicit_dir: Option<&Path>, verify: bool) -> Result<TlsConfig> {
    let mut b = TlsConfig::builder().disable_verification(!verify);
    let dir = cert_dir(registry, explicit_dir);
    let mut roots = Vec::new();
    let mut extra = 0;
    if verify {
        let system = std::env::var_os("SSL_CERT_FILE")
            .map(PathBuf::from)
            .into_iter()
            .chain(SYSTEM_BUNDLES.iter().map(PathBuf::from))
            .find(|p| p.is_file());
        if let Some(bundle) = system {
            roots.extend(certificates(&bundle)?);
        }
        if let Some(d) = &dir {
            for f in files_with(d, "crt")? {
                let certs = certificates(&f)?;
                if certs.is_empty() {
                    bail!("{}: no certificate in it", f.display());
                }
                extra += certs.len();
                roots.extend(certs);
            }
        }
    }
    if !roots.is_empty() {
        b = b.root_certs(RootCerts::Specific(Arc::new(roots)));
    }
    if let Some(d) = &dir {
        if let Some(cert) = files_with(d, "cert")?.into_iter().next() {
            let key = cert.with_extension("key");
            if !key.is_file() {
                bail!(
                    "client certificate {} has no key {}",
                    cert.display(),
                    key.display()
                );
            }
            let chain = certificates(&cert)?;
            if chain.is_empty() {
                bail!("{}: no certificate in it", cert.display());
            }
            b = b.client_cert(Some(ClientCert::new_with_certs(&chain, private_key(&key)?)));
        } else if explicit_dir.is_some() && extra == 0 && verify {
            bail!(
                "--cert-dir {}: no *.crt (CA) or *.cert/*.key (client) files in it",
                d.display()
            );
        }
    }
    Ok(b.build())
}
