//! `pull`, `push`, `search`, `login`, `logout`.
use super::args::{LoginArgs, LogoutArgs, PullArgs, PushArgs, RunArgs, SearchArgs};
use super::exit::Usage;
use super::progress::Shown;
use std::io::{BufRead, IsTerminal, Write};
use std::path::Path;
use unionctl::registry::{self, auth::Credentials};

pub fn pull(root: &Path, a: PullArgs) -> anyhow::Result<i32> {
    let access = a.registry.access();
    let pulled = registry::pull(
        root,
        &access,
        &a.reference,
        a.platform.as_deref(),
        &mut Shown::new(a.quiet),
    )?;
    if !a.quiet && std::io::stderr().is_terminal() {
        eprintln!(
            "{}: {} of {} layers downloaded, stored as {}",
            a.reference, pulled.downloaded, pulled.layers, pulled.name
        );
    }
    println!("sha256:{}", pulled.id);
    Ok(0)
}

/// Before `run` and `create`, as docker's `--pull`: pulls the image when it is not in the
/// store (`missing`, the default) or in any case (`always`), from the registry its name
/// gives. A name without one (Docker Hub's) is not pulled: the store's error says so.
pub fn pull_for_run(root: &Path, a: &RunArgs) -> anyhow::Result<()> {
    let Some(image) = a.args.first().filter(|_| a.rootfs.is_none()) else {
        return Ok(());
    };
    let missing = || match unionctl::image::store::Store::open_existing(root).resolve(image) {
        Ok(_) => Ok(false),
        Err(e) if e.is_not_found() => Ok(true),
        Err(e) => Err(e),
    };
    match a.pull.as_str() {
        "always" if !registry::names_registry(image) => {
            anyhow::bail!("--pull always: {image} names no registry (HOST[:PORT]/REPO[:TAG])")
        }
        "always" => {}
        "missing" if registry::names_registry(image) && missing()? => {
            eprintln!("Unable to find image '{image}' locally");
        }
        _ => return Ok(()),
    }
    registry::pull(
        root,
        &registry::Access::default(),
        image,
        a.platform.as_deref(),
        &mut Shown::new(a.quiet),
    )?;
    Ok(())
}

pub fn push(root: &Path, a: PushArgs) -> anyhow::Result<i32> {
    let digest = registry::push(
        root,
        &a.registry.access(),
        &a.image,
        a.destination.as_deref(),
        &a.compression_format,
        &mut Shown::new(a.quiet),
    )?;
    println!("{digest}");
    Ok(0)
}

pub fn search(root: &Path, a: SearchArgs) -> anyhow::Result<i32> {
    let access = a.registry.access();
    if a.list_tags {
        let (name, tags) = registry::list_tags(root, &access, &a.term)?;
        if a.json {
            let v = serde_json::json!([{ "Name": name, "Tags": tags }]);
            println!("{}", serde_json::to_string_pretty(&v)?);
        } else {
            println!("{:<40} TAG", "NAME");
            for t in tags {
                println!("{name:<40} {t}");
            }
        }
        return Ok(0);
    }
    let (host, repos) = registry::search(root, &access, &a.term)?;
    if a.json {
        let v: Vec<_> = repos
            .iter()
            .map(|r| serde_json::json!({ "Index": host, "Name": format!("{host}/{r}") }))
            .collect();
        println!("{}", serde_json::to_string_pretty(&v)?);
    } else {
        println!("NAME");
        for r in repos {
            println!("{host}/{r}");
        }
    }
    Ok(0)
}

pub fn login(root: &Path, a: LoginArgs) -> anyhow::Result<i32> {
    let host = registry::registry_of(&a.registry)?;
    let interactive = std::io::stdin().is_terminal();
    let user = match a.username {
        Some(u) => u,
        None if interactive && !a.password_stdin => prompt("Username: ", true)?,
        None => return Err(Usage(format!("{host}: no user name: give -u USER")).into()),
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
        return Err(Usage(format!(
            "{host}: no password: give -p PASS or --password-stdin"
        ))
        .into());
    };
    let creds = Credentials { user, password };
    registry::login(root, &a.access.with_creds(None), &host, creds)?;
    println!("Login Succeeded!");
    Ok(0)
}

pub fn logout(root: &Path, a: LogoutArgs) -> anyhow::Result<i32> {
    if a.all {
        registry::logout(root, a.authfile.as_deref(), None)?;
        println!("Removed login credentials for all registries");
        return Ok(0);
    }
    let Some(arg) = a.registry else {
        return Err(Usage("name a registry (or --all)".into()).into());
    };
    let host = registry::registry_of(&arg)?;
    registry::logout(root, a.authfile.as_deref(), Some(&host))?;
    println!("Removed login credentials for {host}");
    Ok(0)
}

/// Reads a line from the terminal; the password without echo.
fn prompt(label: &str, echo: bool) -> anyhow::Result<String> {
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
