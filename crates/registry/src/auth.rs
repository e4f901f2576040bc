//! Registry credentials: `--creds USER:PASS`, the auth file `login` writes (the
//! `{"auths": {"HOST": {"auth": base64("USER:PASS")}}}` format of docker's config.json
//! and containers' auth.json, so `skopeo --authfile` and `podman --authfile` read it),
//! the `WWW-Authenticate` challenge, and Bearer tokens from the registry's token server.
use crate::error::{Context, Result};
use crate::image::util;
use base64::Engine as _;
use serde_json::{Value, json};
use std::fs;
use std::path::{Path, PathBuf};

#[derive(Clone)]
pub struct Credentials {
    pub user: String,
    pub password: String,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Credentials({}, ***)", self.user) // never print the password
    }
}

impl Credentials {
    /// `USER:PASS` (the password may hold ':').
    pub fn parse(s: &str) -> Result<Credentials> {
        match s.split_once(':') {
            Some((u, p)) if !u.is_empty() => Ok(Credentials {
                user: u.into(),
                password: p.into(),
            }),
            _ => bail!("--creds: want USER:PASS (got a value without a user name and ':')"),
        }
    }

    pub fn basic_header(&self) -> String {
        format!("Basic {}", self.encoded())
    }

    fn encoded(&self) -> String {
        base64::engine::general_purpose::STANDARD.encode(format!("{}:{}", self.user, self.password))
    }

    fn decode(auth: &str) -> Option<Credentials> {
        let raw = base64::engine::general_purpose::STANDARD
            .decode(auth.trim())
            .ok()?;
        let s = String::from_utf8(raw).ok()?;
        Credentials::parse(&s).ok()
    }
}

/// The auth file `login` writes and `pull`/`push`/`search` read: `--authfile`, else
/// `$REGISTRY_AUTH_FILE` (as podman and skopeo), else `auth.json` under the store root.
pub fn auth_file(root: &Path, explicit: Option<&Path>) -> PathBuf {
    if let Some(p) = explicit {
        return p.to_path_buf();
    }
    if let Some(p) = std::env::var_os("REGISTRY_AUTH_FILE").filter(|v| !v.is_empty()) {
        return PathBuf::from(p);
    }
    root.join("auth.json")
}

/// Other tools' auth files, read (never written) when ours has no entry.
fn peer_auth_files() -> Vec<PathBuf> {
    let mut out = Vec::new();
    if let Some(x) = std::env::var_os("XDG_RUNTIME_DIR").filter(|v| !v.is_empty()) {
        out.push(PathBuf::from(x).join("containers/auth.json"));
    }
    if let Some(h) = std::env::var_os("HOME").filter(|v| !v.is_empty()) {
        out.push(PathBuf::from(h).join(".docker/config.json"));
    }
    out
}

fn read_json(path: &Path) -> Result<Option<Value>> {
    match fs::read(path) {
        Ok(b) if b.iter().all(|c| c.is_ascii_whitespace()) => Ok(Some(json!({}))),
        Ok(b) => serde_json::from_slice(&b)
            .map(Some)
            .with_context(|| format!("parsing auth file {}", path.display())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e).with_context(|| format!("reading auth file {}", path.display())),
    }
}

/// Keys an entry for `registry` may have: `HOST`, docker's `https://HOST/v1/` spellings.
fn keys_for(registry: &str) -> Vec<String> {
    let mut keys = vec![
        registry.to_string(),
        format!("https://{registry}"),
        format!("http://{registry}"),
        format!("https://{registry}/v1/"),
        format!("https://{registry}/v2/"),
    ];
    if registry == super::reference::DOCKER_HUB {
        keys.push("https://index.docker.io/v1/".into());
    }
    keys
}

fn lookup(doc: &Value, registry: &str) -> Option<Credentials> {
    let auths = doc.get("auths")?.as_object()?;
    keys_for(registry)
        .iter()
        .find_map(|k| auths.get(k)?.get("auth")?.as_str())
        .and_then(Credentials::decode)
}

/// Saved credentials for a registry: our auth file first, then podman's and docker's.
pub fn saved(file: &Path, registry: &str) -> Result<Option<Credentials>> {
    if let Some(doc) = read_json(file)?
        && let Some(c) = lookup(&doc, registry)
    {
        return Ok(Some(c));
    }
    for p in peer_auth_files() {
        if let Ok(Some(doc)) = read_json(&p)
            && let Some(c) = lookup(&doc, registry)
        {
            return Ok(Some(c));
        }
    }
    Ok(None)
}

/// Records credentials for `registry` (other entries and keys kept); mode 0600.
pub fn store(file: &Path, registry: &str, creds: &Credentials) -> Result<()> {
    let mut doc = read_json(file)?.unwrap_or_else(|| json!({}));
    let obj = doc
        .as_object_mut()
        .ok_or_else(|| invalid!("auth file {}: not a JSON object", file.display()))?;
    let auths = obj.entry("auths").or_insert_with(|| json!({}));
    let auths = auths
        .as_object_mut()
        .ok_or_else(|| invalid!("auth file {}: \"auths\" is not an object", file.display()))?;
    auths.insert(registry.to_string(), json!({ "auth": creds.encoded() }));
    write(file, &doc)
}

/// Forgets `registry` (every spelling); returns whether an entry was there.
pub fn remove(file: &Path, registry: Option<&str>) -> Result<bool> {
    let Some(mut doc) = read_json(file)? else {
        return Ok(false);
    };
    let Some(auths) = doc.get_mut("auths").and_then(Value::as_object_mut) else {
        return Ok(false);
    };
    let before = auths.len();
    match registry {
        Some(r) => {
            for k in keys_for(r) {
                auths.remove(&k);
            }
        }
        None => auths.clear(),
    }
    let removed = auths.len() != before;
    if removed {
        write(file, &doc)?;
    }
    Ok(removed)
}

fn write(file: &Path, doc: &Value) -> Result<()> {
    if let Some(dir) = file.parent().filter(|d| !d.as_os_str().is_empty()) {
        fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    // atomic_write's temp file is created 0600, and the rename keeps that mode.
    Ok(util::atomic_write(file, &serde_json::to_vec_pretty(doc)?)?)
}

/// A parsed `WWW-Authenticate` header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Challenge {
    Basic,
    Bearer {
        realm: String,
        service: Option<String>,
        scope: Option<String>,
    },
}

impl Challenge {
    pub fn parse(header: &str) -> Option<Challenge> {
        let header = header.trim();
        let (scheme, params) = header.split_once(' ').unwrap_or((header, ""));
        if scheme.eq_ignore_ascii_case("basic") {
            return Some(Challenge::Basic);
        }
        if !scheme.eq_ignore_ascii_case("bearer") {
            return None;
        }
        let params = parse_params(params);
        let get = |k: &str| {
            params
                .iter()
                .find(|(n, _)| n.eq_ignore_ascii_case(k))
                .map(|(_, v)| v.clone())
        };
        Some(Challenge::Bearer {
            realm: get("realm")?,
            service: get("service"),
            scope: get("scope"),
        })
    }
}

/// `k="v", k2=v2`: quoted values may hold commas (`scope="repository:a:pull,push"`).
fn parse_params(s: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut rest = s.trim();
    while !rest.is_empty() {
        let Some((key, after)) = rest.split_once('=') else {
            break;
        };
        let key = key.trim().trim_start_matches(',').trim().to_string();
        let after = after.trim_start();
        let (value, tail) = if let Some(q) = after.strip_prefix('"') {
            let mut v = String::new();
            let mut chars = q.char_indices();
            let mut end = q.len();
            while let Some((i, c)) = chars.next() {
                match c {
                    '\\' => {
                        if let Some((_, n)) = chars.next() {
                            v.push(n);
                        }
                    }
                    '"' => {
                        end = i + 1;
                        break;
                    }
                    c => v.push(c),
                }
            }
            (v, &q[end.min(q.len())..])
        } else {
            let end = after.find(',').unwrap_or(after.len());
            (after[..end].trim().to_string(), &after[end..])
        };
        out.push((key, value));
        rest = tail.trim_start().trim_start_matches(',').trim_start();
    }
    out
}

/// The token a Bearer challenge asks for: GET realm?service=..&scope=.. (with Basic
/// credentials when we have them); the answer holds `token` or `access_token`.
pub fn fetch_token(
    agent: &ureq::Agent,
    realm: &str,
    service: Option<&str>,
    scope: Option<&str>,
    creds: Option<&Credentials>,
) -> Result<String> {
    let mut req = agent.get(realm);
    if let Some(s) = service {
        req = req.query("service", s);
    }
    // Several scopes (a cross-repository mount) go as repeated parameters.
    for s in scope.unwrap_or("").split_whitespace() {
        req = req.query("scope", s);
    }
    if let Some(c) = creds {
        req = req.header("Authorization", c.basic_header());
        req = req.query("account", &c.user);
    }
    let mut resp = req
        .call()
        .map_err(|e| invalid!("token server {realm}: {e}"))?;
    let status = resp.status().as_u16();
    let body = resp.body_mut().read_to_string().unwrap_or_default();
    if status == 401 || status == 403 {
        match creds {
            Some(c) => bail!(
                "token server {realm}: credentials of {:?} refused ({status})",
                c.user
            ),
            None => bail!("token server {realm}: authentication required ({status})"),
        }
    }
    if !(200..300).contains(&status) {
        bail!("token server {realm}: HTTP {status}: {}", one_line(&body));
    }
    let v: Value = serde_json::from_str(&body)
        .with_context(|| format!("token server {realm}: answer is not JSON"))?;
    v.get("token")
        .or_else(|| v.get("access_token"))
        .and_then(Value::as_str)
        .filter(|t| !t.is_empty())
        .map(str::to_string)
        .ok_or_else(|| invalid!("token server {realm}: answer holds no token"))
}

pub fn one_line(s: &str) -> String {
    let s: String = s.split_whitespace().collect::<Vec<_>>().join(" ");
    if s.len() > 200 {
        let mut end = 200;
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        format!("{}...", &s[..end])
    } else {
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn challenges() {
        assert_eq!(
            Challenge::parse("Basic realm=\"r\""),
            Some(Challenge::Basic)
        );
        let c = Challenge::parse(
            r#"Bearer realm="https://auth.example/token",service="registry.example",scope="repository:a/b:pull,push""#,
        )
        .unwrap();
        assert_eq!(
            c,
            Challenge::Bearer {
                realm: "https://auth.example/token".into(),
                service: Some("registry.example".into()),
                scope: Some("repository:a/b:pull,push".into()),
            }
        );
        let c = Challenge::parse("bearer realm=http://x/t, service=s").unwrap();
        assert_eq!(
            c,
            Challenge::Bearer {
                realm: "http://x/t".into(),
                service: Some("s".into()),
                scope: None
            }
        );
        assert_eq!(Challenge::parse("Negotiate abc"), None);
        assert_eq!(Challenge::parse("Bearer service=x"), None);
    }

    #[test]
    fn auth_file_round_trip_keeps_other_entries() {
        use std::os::unix::fs::PermissionsExt;
        let d = tempfile::tempdir().unwrap();
        let f = d.path().join("sub/auth.json");
        fs::create_dir_all(f.parent().unwrap()).unwrap();
        fs::write(
            &f,
            r#"{"auths":{"other:1":{"auth":"dTpw"}},"credHelpers":{}}"#,
        )
        .unwrap();
        let c = Credentials::parse("me:pa:ss").unwrap();
        store(&f, "127.0.0.1:5000", &c).unwrap();
        assert_eq!(
            fs::metadata(&f).unwrap().permissions().mode() & 0o777,
            0o600
        );
        let got = saved(&f, "127.0.0.1:5000").unwrap().unwrap();
        assert_eq!((got.user.as_str(), got.password.as_str()), ("me", "pa:ss"));
        assert_eq!(saved(&f, "other:1").unwrap().unwrap().user, "u");
        let doc: Value = serde_json::from_slice(&fs::read(&f).unwrap()).unwrap();
        assert!(doc.get("credHelpers").is_some());
        assert!(remove(&f, Some("127.0.0.1:5000")).unwrap());
        assert!(!remove(&f, Some("127.0.0.1:5000")).unwrap());
        assert!(
            lookup(
                &serde_json::from_slice(&fs::read(&f).unwrap()).unwrap(),
                "127.0.0.1:5000"
            )
            .is_none()
        );
        assert!(Credentials::parse("nouser").is_err());
        assert!(Credentials::parse(":p").is_err());
    }
}
