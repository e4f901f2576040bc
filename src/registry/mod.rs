//! Docker Registry HTTP API v2 client: `pull`, `push`, `search`, `login`, `logout`.
//!
//! - `reference`: `[HOST[:PORT]/]REPO[:TAG][@DIGEST]` as docker reads it
//! - `auth`: credentials, the auth file, challenges and Bearer tokens
//! - `client`: one registry endpoint: ping, scheme, authenticated requests, errors
//! - `manifests`, `blobs`: the two kinds of content, checked against their digests
//! - `pull`, `push`, `search`: the commands' work against the image store
pub mod auth;
pub mod blobs;
pub mod client;
pub mod manifests;
pub mod pull;
pub mod push;
pub mod reference;
pub mod search;
pub mod tls;

use crate::cli::{LoginArgs, LogoutArgs, PullArgs, PushArgs, RegistryOpts, SearchArgs};
use crate::image::store::Store;
use crate::image::util;
use anyhow::{Context, Result, bail};
use auth::Credentials;
use client::Client;
use reference::Reference;
use std::io::{BufRead, IsTerminal, Write};
use std::path::{Path, PathBuf};

fn connect(root: &Path, opts: &RegistryOpts, registry: &str) -> Result<Client> {
    let a = &opts.access;
    let creds = match &opts.creds {
        Some(c) => Some(Credentials::parse(c)?),
        None => auth::saved(&auth::auth_file(root, a.authfile.as_deref()), registry)?,
    };
    Client::connect(registry, a.tls_verify, a.cert_dir.as_deref(), creds)
}

pub fn cmd_pull(root: Option<PathBuf>, a: PullArgs) -> Result<i32> {
    let root = crate::runner::store_root(root);
    let r = Reference::parse(&a.reference)?;
    let platform = match &a.platform {
        Some(p) => manifests::Wanted::parse(p)?,
        None => manifests::Wanted::host(),
    };
    let ctx = || format!("pull {}", a.reference);
    let mut client = connect(&root, &a.registry, &r.registry).with_context(ctx)?;
    let store = Store::open(&root)?;
    let pulled = pull::pull(&store, &mut client, &r, &platform).with_context(ctx)?;
    if !a.quiet && util::stderr_is_terminal() {
        eprintln!(
            "{r}: {} of {} layers downloaded, stored as {}",
            pulled.downloaded,
            pulled.layers,
            pulled.tag.as_deref().unwrap_or("<none>")
        );
    }
    println!("sha256:{}", pulled.id);
    Ok(0)
}

pub fn cmd_push(root: Option<PathBuf>, a: PushArgs) -> Result<i32> {
    let root = crate::runner::store_root(root);
    let dest = a.destination.as_deref().unwrap_or(&a.image);
    let ctx = || format!("push {dest}");
    let r = Reference::parse(dest).with_context(|| {
        format!(
            "push {}: name the destination as HOST[:PORT]/REPO[:TAG]",
            a.image
        )
    })?;
    let store = Store::open_existing(&root);
    let img = store.load(&store.resolve(&a.image)?)?;
    let _w = store.writer_lock()?; // so `rmi` does not sweep blobs being sent
    let mut client = connect(&root, &a.registry, &r.registry).with_context(ctx)?;
    let how = util::Compression::parse(&a.compression_format)?;
    let digest = push::push(&store, &img, &mut client, &r, how).with_context(ctx)?;
    println!("{digest}");
    Ok(0)
}

pub fn cmd_search(root: Option<PathBuf>, a: SearchArgs) -> Result<i32> {
    let root = crate::runner::store_root(root);
    if a.list_tags {
        let r = Reference::parse(&a.term)?;
        if r.tag.is_some() || r.digest.is_some() {
            bail!(
                "search --list-tags {}: name a repository without tag or digest",
                a.term
            );
        }
        let mut client = connect(&root, &a.registry, &r.registry)?;
        let tags = search::tags(&mut client, &r.repository)?;
        if a.json {
            let v = serde_json::json!([{ "Name": r.name(), "Tags": tags }]);
            println!("{}", serde_json::to_string_pretty(&v)?);
        } else {
            println!("{:<40} TAG", "NAME");
            for t in tags {
                println!("{:<40} {t}", r.name());
            }
        }
        return Ok(0);
    }
    let (registry, term) = match a.term.split_once('/') {
        Some((first, rest)) if reference::is_host(first) => (first.to_string(), rest.to_string()),
        _ if reference::is_host(&a.term) => (a.term.clone(), String::new()),
        _ => (reference::DOCKER_HUB.to_string(), a.term.clone()),
    };
    let mut client = connect(&root, &a.registry, &registry)?;
    let repos = search::catalog(&mut client, &term)?;
    if a.json {
        let v: Vec<_> = repos
            .iter()
            .map(|r| serde_json::json!({ "Index": registry, "Name": format!("{registry}/{r}") }))
            .collect();
        println!("{}", serde_json::to_string_pretty(&v)?);
    } else {
        println!("NAME");
        for r in repos {
            println!("{registry}/{r}");
        }
    }
    Ok(0)
}

/// `https://host:5000/v2/` -> `host:5000`.
fn registry_of(arg: &str) -> Result<String> {
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

pub fn cmd_login(root: Option<PathBuf>, a: LoginArgs) -> Result<i32> {
    let root = crate::runner::store_root(root);
    let registry = registry_of(&a.registry)?;
    let interactive = std::io::stdin().is_terminal();
    if a.password.is_some() && a.password_stdin {
        bail!("login {registry}: give -p or --password-stdin, not both");
    }
    let user = match a.username {
        Some(u) => u,
        None if interactive && !a.password_stdin => prompt("Username: ", true)?,
        None => bail!("login {registry}: no user name: give -u USER"),
    };
    let password = if let Some(p) = a.password {
        p
    } else if a.password_stdin {
        let mut line = String::new();
        std::io::stdin().lock().read_line(&mut line)?;
        line.trim_end_matches(['\n', '\r']).to_string()
    } else if interactive {
        prompt("Password: ", false)?
    } else {
        bail!("login {registry}: no password: give -p PASS or --password-stdin");
    };
    if user.is_empty() || user.contains(':') {
        bail!("login {registry}: {user:?} is not a user name");
    }
    let creds = Credentials { user, password };
    let mut client = Client::connect(
        &registry,
        a.access.tls_verify,
        a.access.cert_dir.as_deref(),
        Some(creds.clone()),
    )
    .with_context(|| format!("login {registry}"))?;
    client.verify_login()?;
    let file = auth::auth_file(&root, a.access.authfile.as_deref());
    auth::store(&file, &registry, &creds)?;
    println!("Login Succeeded!");
    Ok(0)
}

pub fn cmd_logout(root: Option<PathBuf>, a: LogoutArgs) -> Result<i32> {
    let root = crate::runner::store_root(root);
    let file = auth::auth_file(&root, a.authfile.as_deref());
    if a.all {
        auth::remove(&file, None)?;
        println!("Removed login credentials for all registries");
        return Ok(0);
    }
    let Some(arg) = a.registry else {
        bail!("logout: name a registry (or --all)");
    };
    let registry = registry_of(&arg)?;
    if !auth::remove(&file, Some(&registry))? {
        bail!(
            "logout {registry}: not logged in (no entry in {})",
            file.display()
        );
    }
    println!("Removed login credentials for {registry}");
    Ok(0)
}

/// Reads a line from the terminal; the password without echo.
fn prompt(label: &str, echo: bool) -> Result<String> {
    use nix::sys::termios::{LocalFlags, SetArg, tcgetattr, tcsetattr};
    eprint!("{label}");
    std::io::stderr().flush()?;
    let stdin = std::io::stdin();
    let saved = if echo { None } else { tcgetattr(&stdin).ok() };
    if let Some(t) = &saved {
        let mut quiet = t.clone();
        quiet.local_flags.remove(LocalFlags::ECHO);
        let _ = tcsetattr(&stdin, SetArg::TCSANOW, &quiet);
    }
    let mut line = String::new();
    let read = stdin.lock().read_line(&mut line);
    if let Some(t) = &saved {
        let _ = tcsetattr(&stdin, SetArg::TCSANOW, t);
        eprintln!();
    }
    read?;
    Ok(line.trim_end_matches(['\n', '\r']).to_string())
}
