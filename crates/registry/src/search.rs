//! `search`: the registry's catalog (`GET /v2/_catalog`, followed through its `Link`
//! pages) filtered by a term, and `--list-tags` (`GET /v2/REPO/tags/list`).
use super::client::{self, Client, Payload};
use super::manifests::scope_pull;
use crate::error::Result;
use serde::Deserialize;

/// Pages followed at most, against a registry whose `Link` never ends.
const MAX_PAGES: usize = 10_000;

#[derive(Deserialize)]
struct Catalog {
    #[serde(default)]
    repositories: Option<Vec<String>>,
}

#[derive(Deserialize)]
struct TagList {
    #[serde(default)]
    tags: Option<Vec<String>>,
}

/// The `next` target of a `Link: <URL>; rel="next"` header.
pub fn next_link(link: &str) -> Option<String> {
    link.split(',').find_map(|part| {
        let (url, params) = part.split_once(';')?;
        let is_next = params.split(';').any(|p| {
            p.trim()
                .replace(' ', "")
                .eq_ignore_ascii_case("rel=\"next\"")
                || p.trim().eq_ignore_ascii_case("rel=next")
        });
        let url = url.trim().strip_prefix('<')?.strip_suffix('>')?;
        is_next.then(|| url.to_string())
    })
}

/// Follows the pages of a listing (the registry picks the page size: it refuses an
/// `n` above its `maxentries`), collecting what `items` takes from each.
fn paged(
    client: &mut Client,
    first: &str,
    scope: &str,
    what: &str,
    mut items: impl FnMut(&[u8]) -> Result<Vec<String>>,
) -> Result<Vec<String>> {
    let mut out = Vec::new();
    let mut url = client.url(first);
    for _ in 0..MAX_PAGES {
        let resp = client.send(
            "GET",
            &url,
            &[("Accept", "application/json")],
            Payload::Empty,
            scope,
        )?;
        let mut resp = client.ok(resp, what)?;
        let link = client::header(&resp, "link");
        let body = resp
            .body_mut()
            .with_config()
            .limit(64 << 20)
            .read_to_vec()
            .map_err(|e| invalid!("{what}: reading: {e}"))?;
        out.extend(items(&body)?);
        match next_link(&link) {
            Some(next) => url = client.resolve(&next),
            None => break,
        }
    }
    Ok(out)
}

/// Repositories of the registry whose name holds `term`.
pub fn catalog(client: &mut Client, term: &str) -> Result<Vec<String>> {
    let what = format!("search {}", client.registry);
    let w = what.clone();
    let mut repos = paged(client, "/v2/_catalog", "registry:catalog:*", &what, |b| {
        let c: Catalog =
            serde_json::from_slice(b).map_err(|e| invalid!("{w}: catalog answer: {e}"))?;
        Ok(c.repositories.unwrap_or_default())
    })?;
    repos.retain(|r| r.contains(term));
    repos.sort();
    repos.dedup();
    Ok(repos)
}

pub fn tags(client: &mut Client, repo: &str) -> Result<Vec<String>> {
    let what = format!("list tags of {}/{repo}", client.registry);
    let w = what.clone();
    let first = format!("/v2/{repo}/tags/list");
    let resp = paged(client, &first, &scope_pull(repo), &what, |b| {
        let t: TagList =
            serde_json::from_slice(b).map_err(|e| invalid!("{w}: tag list answer: {e}"))?;
        Ok(t.tags.unwrap_or_default())
    });
    let mut tags = match resp {
        Err(e) if unionctl_union::errors::chain(&e).contains("NAME_UNKNOWN") => {
            return Err(invalid!("{what}: no such repository"));
        }
        r => r?,
    };
    tags.sort();
    Ok(tags)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn link_headers() {
        assert_eq!(
            next_link(r#"</v2/_catalog?last=b&n=2>; rel="next""#).unwrap(),
            "/v2/_catalog?last=b&n=2"
        );
        assert_eq!(
            next_link(r#"<https://x/a>; rel="prev", <https://x/b>; rel=next"#).unwrap(),
            "https://x/b"
        );
        assert_eq!(next_link(""), None);
    }
}
