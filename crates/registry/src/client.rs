//! One registry's HTTP API v2 endpoint: the `/v2/` ping that picks https or (for a
//! local registry or `--tls-verify=false`) plain http, authentication on demand
//! (Basic, or Bearer tokens per scope from the challenge's token server), and
//! registry error answers (`{"errors": [{"code", "message"}]}`) turned into one line.
use super::auth::{self, Challenge, Credentials};
use super::reference;
use super::tls;
use crate::error::{Context, Result};
use std::collections::HashMap;
use std::fs::File;
use std::path::Path;
use std::time::Duration;
use ureq::Body;
use ureq::http::Response;

/// What a request sends.
pub enum Payload<'a> {
    Empty,
    Bytes(&'a [u8]),
    /// A file, sent with its length; reopened if the request must be repeated. The
    /// function hears of each piece read for sending (progress).
    File(&'a Path, &'a dyn Fn(u64)),
}

/// A file that tells how much of it was read.
struct Counted<'a> {
    file: File,
    on_read: &'a dyn Fn(u64),
}

impl std::io::Read for Counted<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.file.read(buf)?;
        (self.on_read)(n as u64);
        Ok(n)
    }
}

#[derive(Debug, Clone)]
enum Auth {
    /// The registry answered the ping without asking for credentials.
    Open,
    Basic,
    Bearer {
        realm: String,
        service: Option<String>,
    },
}

pub struct Client {
    agent: ureq::Agent,
    /// The registry as the user named it (`127.0.0.1:5000`, `docker.io`).
    pub registry: String,
    /// `https://HOST` or `http://HOST`.
    base: String,
    creds: Option<Credentials>,
    auth: Auth,
    /// Bearer tokens by scope.
    tokens: HashMap<String, String>,
}

fn agent(tls: ureq::tls::TlsConfig) -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .tls_config(tls)
        .timeout_connect(Some(Duration::from_secs(15)))
        .timeout_recv_response(Some(Duration::from_secs(120)))
        .user_agent(concat!("unionctl/", env!("CARGO_PKG_VERSION")))
        .build()
        .new_agent()
}

impl Client {
    /// Pings `/v2/`: https first; plain http too when TLS is not checked (a local
    /// registry, as docker treats it, or `--tls-verify=false`).
    pub fn connect(
        registry: &str,
        tls_verify: bool,
        cert_dir: Option<&Path>,
        creds: Option<Credentials>,
    ) -> Result<Client> {
        let host = reference::api_host(registry);
        let insecure = !tls_verify || reference::is_local_registry(registry);
        let agent = agent(
            tls::config(registry, cert_dir, !insecure)
                .with_context(|| format!("{registry}: TLS settings"))?,
        );
        let mut failures = Vec::new();
        let schemes: &[&str] = if insecure {
            &["https", "http"]
        } else {
            &["https"]
        };
        for scheme in schemes {
            let base = format!("{scheme}://{host}");
            match agent.get(format!("{base}/v2/")).call() {
                Ok(resp) => {
                    let status = resp.status().as_u16();
                    let auth = match status {
                        200..=299 => Auth::Open,
                        401 => challenge_of(&resp)
                            .map(auth_of)
                            .ok_or_else(|| invalid!("{registry}: GET {base}/v2/ answered 401 without a usable WWW-Authenticate challenge"))?,
                        _ => bail!(
                            "{registry}: {base}/v2/ answered HTTP {status}: not a Docker registry (API v2)"
                        ),
                    };
                    return Ok(Client {
                        agent,
                        registry: registry.to_string(),
                        base,
                        creds,
                        auth,
                        tokens: HashMap::new(),
                    });
                }
                Err(ureq::Error::Io(e)) => failures.push(format!(
                    "{base}/v2/: {}",
                    unionctl_union::errors::io_cause(&e)
                )),
                Err(e) => failures.push(format!("{base}/v2/: {e}")),
            }
        }
        let tls_trouble = failures.iter().any(|f| {
            let f = f.to_ascii_lowercase();
            f.contains("tls")
                || f.contains("certificate")
                || f.contains("handshake")
                || f.contains("rustls")
        });
        let hint = if insecure || !tls_trouble {
            ""
        } else {
            " (a registry without TLS, or with a certificate not to be checked, needs --tls-verify=false; its CA goes in --cert-dir)"
        };
        bail!(
            "{registry}: registry unreachable: {}{hint}",
            failures.join("; ")
        )
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// A `Location` header may be absolute or relative to the registry.
    pub fn resolve(&self, location: &str) -> String {
        if location.starts_with("http://") || location.starts_with("https://") {
            location.to_string()
        } else if location.starts_with('/') {
            format!("{}{location}", self.base)
        } else {
            format!("{}/{location}", self.base)
        }
    }

    /// Checks the credentials now (as `login` does): Basic on `/v2/`, or a token.
    pub fn verify_login(&mut self) -> Result<()> {
        match self.auth.clone() {
            Auth::Open => Ok(()),
            Auth::Basic => {
                let url = self.url("/v2/");
                let resp = self.send("GET", &url, &[], Payload::Empty, "")?;
                self.ok(resp, "login").map(|_| ())
            }
            Auth::Bearer { realm, service } => auth::fetch_token(
                &self.agent,
                &realm,
                service.as_deref(),
                None,
                self.creds.as_ref(),
            )
            .with_context(|| format!("login {}", self.registry))
            .map(|_| ()),
        }
    }

    fn authorization(&mut self, scope: &str) -> Result<Option<String>> {
        match self.auth.clone() {
            Auth::Open => Ok(None),
            Auth::Basic => Ok(self.creds.as_ref().map(Credentials::basic_header)),
            Auth::Bearer { realm, service } => {
                if let Some(t) = self.tokens.get(scope) {
                    return Ok(Some(format!("Bearer {t}")));
                }
                let token = auth::fetch_token(
                    &self.agent,
                    &realm,
                    service.as_deref(),
                    Some(scope),
                    self.creds.as_ref(),
                )
                .with_context(|| format!("{}: authenticating", self.registry))?;
                self.tokens.insert(scope.to_string(), token.clone());
                Ok(Some(format!("Bearer {token}")))
            }
        }
    }

    /// Sends a request with the credentials `scope` needs; a 401 with a new challenge
    /// is answered once. Returns the response whatever its status (see `ok`).
    pub fn send(
        &mut self,
        method: &str,
        url: &str,
        headers: &[(&str, &str)],
        body: Payload,
        scope: &str,
    ) -> Result<Response<Body>> {
        let mut retried = false;
        loop {
            let authz = self.authorization(scope)?;
            let mut b = ureq::http::Request::builder().method(method).uri(url);
            for (k, v) in headers {
                b = b.header(*k, *v);
            }
            if let Some(a) = &authz {
                b = b.header("Authorization", a.as_str());
            }
            let sent = match &body {
                Payload::Empty => self.agent.run(b.body(())?),
                Payload::Bytes(bytes) => self.agent.run(b.body(*bytes)?),
                Payload::File(p, on_read) => {
                    let file = File::open(p).with_context(|| format!("reading {}", p.display()))?;
                    let len = file
                        .metadata()
                        .with_context(|| format!("reading {}", p.display()))?
                        .len();
                    // A length of our own: ureq sends a reader chunked without one.
                    let b = b.header("Content-Length", len);
                    let mut r = Counted { file, on_read };
                    self.agent.run(b.body(ureq::SendBody::from_reader(&mut r))?)
                }
            };
            let resp = sent.map_err(|e| invalid!("{}: {method} {url}: {e}", self.registry))?;
            if resp.status().as_u16() == 401 && !retried {
                retried = true;
                if let Some(c) = challenge_of(&resp) {
                    let fresh = auth_of(c);
                    let can_improve = match (&fresh, &self.auth) {
                        (Auth::Basic, Auth::Basic) => false,
                        (Auth::Basic, _) => self.creds.is_some(),
                        _ => true,
                    };
                    self.tokens.remove(scope);
                    self.auth = fresh;
                    if can_improve {
                        continue;
                    }
                }
            }
            return Ok(resp);
        }
    }

    /// Passes a 2xx response on; anything else becomes one error line naming `what`.
    pub fn ok(&self, mut resp: Response<Body>, what: &str) -> Result<Response<Body>> {
        let status = resp.status();
        if status.is_success() {
            return Ok(resp);
        }
        let body = resp
            .body_mut()
            .with_config()
            .limit(1 << 20)
            .read_to_string()
            .unwrap_or_default();
        let code = status.as_u16();
        if code == 401 {
            match &self.creds {
                None => bail!(
                    "{what}: {}: authentication required (401 Unauthorized): pass --creds USER:PASS or run `unionctl login {}`",
                    self.registry,
                    self.registry
                ),
                Some(c) => bail!(
                    "{what}: {}: credentials of {:?} refused (401 Unauthorized){}",
                    self.registry,
                    c.user,
                    registry_errors(&body)
                        .map(|e| format!(": {e}"))
                        .unwrap_or_default()
                ),
            }
        }
        let detail = registry_errors(&body).unwrap_or_else(|| auth::one_line(&body));
        let reason = status.canonical_reason().unwrap_or("");
        if detail.is_empty() {
            bail!("{what}: HTTP {code} {reason}")
        }
        bail!("{what}: {detail} (HTTP {code})")
    }

    /// The first error code of a registry's error answer (e.g. `MANIFEST_UNKNOWN`).
    pub fn error_code(body: &str) -> Option<String> {
        let v: serde_json::Value = serde_json::from_str(body).ok()?;
        Some(v.get("errors")?.get(0)?.get("code")?.as_str()?.to_string())
    }
}

/// `{"errors":[{"code":"X","message":"m"}]}` -> `X: m; ...`.
pub fn registry_errors(body: &str) -> Option<String> {
    let v: serde_json::Value = serde_json::from_str(body).ok()?;
    let errs = v.get("errors")?.as_array()?;
    let parts: Vec<String> = errs
        .iter()
        .map(|e| {
            let code = e.get("code").and_then(|c| c.as_str()).unwrap_or("");
            let msg = e.get("message").and_then(|c| c.as_str()).unwrap_or("");
            match (code.is_empty(), msg.is_empty()) {
                (false, false) => format!("{code}: {msg}"),
                (false, true) => code.to_string(),
                _ => msg.to_string(),
            }
        })
        .filter(|s| !s.is_empty())
        .collect();
    (!parts.is_empty()).then(|| auth::one_line(&parts.join("; ")))
}

fn challenge_of(resp: &Response<Body>) -> Option<Challenge> {
    resp.headers()
        .get_all("www-authenticate")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .filter_map(Challenge::parse)
        // prefer Bearer when a registry offers both
        .max_by_key(|c| matches!(c, Challenge::Bearer { .. }))
}

fn auth_of(c: Challenge) -> Auth {
    match c {
        Challenge::Basic => Auth::Basic,
        Challenge::Bearer { realm, service, .. } => Auth::Bearer { realm, service },
    }
}

/// A header's value as text (empty when absent).
pub fn header(resp: &Response<Body>, name: &str) -> String {
    resp.headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_answers_become_one_line() {
        let b = r#"{"errors":[{"code":"MANIFEST_UNKNOWN","message":"manifest unknown","detail":{"Tag":"x"}}]}"#;
        assert_eq!(
            registry_errors(b).unwrap(),
            "MANIFEST_UNKNOWN: manifest unknown"
        );
        assert_eq!(Client::error_code(b).unwrap(), "MANIFEST_UNKNOWN");
        let two = r#"{"errors":[{"code":"A","message":"a\nb"},{"code":"B"}]}"#;
        assert_eq!(registry_errors(two).unwrap(), "A: a b; B");
        assert_eq!(registry_errors("<html>"), None);
    }
}
