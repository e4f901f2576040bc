//! Blobs on the wire: HEAD to see whether the registry has one, download with the
//! digest (and size) checked while the bytes stream in, upload by POST + PUT.
use super::client::{self, Client, Payload};
use super::manifests::{Descriptor, scope_pull, scope_push};
use crate::error::Result;
use crate::image::progress::{Progress, ProgressReader};
use crate::image::util::HashingWriter;
use std::io::{BufWriter, Read, Write};
use std::path::Path;

/// Configs are read into memory: refuse absurd ones.
const MAX_CONFIG: u64 = 64 << 20;

fn blob_url(client: &Client, repo: &str, digest: &str) -> String {
    client.url(&format!("/v2/{repo}/blobs/{digest}"))
}

/// Whether the registry holds the blob in `repo` (HEAD answers 200).
pub fn exists(client: &mut Client, repo: &str, digest: &str) -> Result<bool> {
    let url = blob_url(client, repo, digest);
    let resp = client.send("HEAD", &url, &[], Payload::Empty, &scope_push(repo))?;
    match resp.status().as_u16() {
        200..=299 => Ok(true),
        404 => Ok(false),
        _ => client
            .ok(resp, &format!("checking blob {digest} in {repo}"))
            .map(|_| false),
    }
}

fn get(client: &mut Client, repo: &str, d: &Descriptor) -> Result<Box<dyn Read + Send>> {
    let url = blob_url(client, repo, &d.digest);
    let resp = client.send("GET", &url, &[], Payload::Empty, &scope_pull(repo))?;
    if resp.status().as_u16() == 404 {
        bail!("blob unknown: {}/{repo}@{}", client.registry, d.digest);
    }
    let resp = client.ok(resp, "download")?;
    // Read one byte past the announced size, so an oversized blob is noticed.
    Ok(Box::new(
        resp.into_body()
            .into_with_config()
            .limit(d.size.saturating_add(1))
            .reader(),
    ))
}

/// The caller's error context names the blob.
fn check(d: &Descriptor, hex: &str, size: u64) -> Result<()> {
    let got = format!("sha256:{hex}");
    if got != d.digest {
        bail!("digest mismatch: content is {got} ({size} bytes); refused, nothing stored");
    }
    if size != d.size {
        bail!(
            "size mismatch: the manifest says {} bytes, {size} arrived; refused, nothing stored",
            d.size
        );
    }
    Ok(())
}

/// Downloads a blob into a temp file in `tmp_dir`; it is returned only when its
/// sha256 and size are the descriptor's.
pub fn download(
    client: &mut Client,
    repo: &str,
    d: &Descriptor,
    tmp_dir: &Path,
    progress: &mut dyn Progress,
) -> Result<tempfile::NamedTempFile> {
    if !d.digest.starts_with("sha256:") {
        bail!("only sha256 digests are supported");
    }
    let body = get(client, repo, d)?;
    let tmp = crate::sys::owned_temp::file_in(tmp_dir)?;
    let mut w = HashingWriter::new(BufWriter::with_capacity(1 << 20, tmp));
    let mut r = ProgressReader {
        inner: body,
        progress,
    };
    std::io::copy(&mut r, &mut w).map_err(|e| invalid!("download: {e}"))?;
    w.flush()?;
    let (buf, hex, size) = w.finish();
    check(d, &hex, size)?;
    buf.into_inner()
        .map_err(|e| invalid!("writing: {}", e.error()))
}

/// A small blob (an image config) read into memory and checked.
pub fn fetch_small(client: &mut Client, repo: &str, d: &Descriptor) -> Result<Vec<u8>> {
    if d.size > MAX_CONFIG {
        bail!("{} bytes is too big for an image config", d.size);
    }
    let mut body = get(client, repo, d)?;
    let mut bytes = Vec::with_capacity(d.size as usize);
    body.read_to_end(&mut bytes)
        .map_err(|e| invalid!("download: {e}"))?;
    check(
        d,
        &crate::image::util::sha256_hex(&bytes),
        bytes.len() as u64,
    )?;
    Ok(bytes)
}

/// Uploads a blob in one piece: POST opens an upload session, PUT with `?digest=`
/// sends the content and closes it (the registry checks the digest). With
/// `mount_from`, a repository of the same registry that has the blob, the POST first
/// asks the registry to link it from there (201: nothing to send).
/// Returns whether the blob was mounted.
pub fn upload(
    client: &mut Client,
    repo: &str,
    digest: &str,
    content: Payload,
    mount_from: Option<&str>,
) -> Result<bool> {
    let what = format!("uploading blob {digest} to {}/{repo}", client.registry);
    let mut url = client.url(&format!("/v2/{repo}/blobs/uploads/"));
    let mut scope = scope_push(repo);
    if let Some(from) = mount_from {
        url.push_str(&format!(
            "?mount={}&from={from}",
            digest.replace(':', "%3A")
        ));
        scope.push(' ');
        scope.push_str(&scope_pull(from));
    }
    let resp = client.send("POST", &url, &[], Payload::Empty, &scope)?;
    let resp = client.ok(resp, &what)?;
    if mount_from.is_some() && resp.status().as_u16() == 201 {
        return Ok(true);
    }
    let location = client::header(&resp, "location");
    if location.is_empty() {
        bail!("{what}: the registry gave no upload location");
    }
    let mut put = client.resolve(&location);
    put.push(if put.contains('?') { '&' } else { '?' });
    put.push_str("digest=");
    put.push_str(&digest.replace(':', "%3A"));
    let resp = client.send(
        "PUT",
        &put,
        &[("Content-Type", "application/octet-stream")],
        content,
        &scope,
    )?;
    client.ok(resp, &what)?;
    Ok(false)
}
