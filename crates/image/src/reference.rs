//! Image references in the distribution spec's grammar, the one parser behind every
//! command that takes an image name (`run`, `tag`, `commit`, `import`, `pull`, `push`,
//! ...): `[HOST[:PORT]/]PATH[:TAG][@sha256:HEX]`.
//!
//! - PATH: components of `[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*` separated by `/`;
//! - TAG: `[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}`;
//! - HOST: the first component when it holds a `.` or a `:` or is `localhost` (docker's
//!   rule), DNS labels or an IPv4 address or `[IPv6]`, with an optional numeric port.
//!
//! Defaults (docker.io, `library/`, `latest`) are not applied here: the store keeps
//! names as given, and the registry client adds docker's defaults.
use crate::error::Result;

/// A reference split into its parts, as written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Parsed {
    /// The registry host (and port) when the reference names one.
    pub domain: Option<String>,
    /// The repository path: `busybox`, `team/app`.
    pub path: String,
    pub tag: Option<String>,
    /// `sha256:<hex>`.
    pub digest: Option<String>,
}

/// Splits and checks a reference; the error names it and the part that is wrong.
pub fn parse(input: &str) -> Result<Parsed> {
    let bad = |why: String| -> Result<Parsed> { bail!("invalid reference {input:?}: {why}") };
    if input.is_empty() {
        return bad("empty".into());
    }
    let (rest, digest) = match input.split_once('@') {
        Some((r, d)) if is_digest(d) => (r, Some(d.to_string())),
        Some((_, d)) => {
            return bad(format!(
                "digest {d:?}: want sha256: and 64 lowercase hex digits"
            ));
        }
        None => (input, None),
    };
    let last_slash = rest.rfind('/').map(|i| i + 1).unwrap_or(0);
    let (name, tag) = match rest[last_slash..].rfind(':') {
        Some(i) => (&rest[..last_slash + i], Some(&rest[last_slash + i + 1..])),
        None => (rest, None),
    };
    if let Some(t) = tag
        && !is_tag(t)
    {
        return bad(format!(
            "tag {t:?}: want 1-128 letters, digits, '_', '.' or '-', not starting with '.' or '-'"
        ));
    }
    let (domain, path) = match name.split_once('/') {
        Some((first, path)) if is_host(first) => (Some(first), path),
        _ => (None, name),
    };
    if let Some(d) = domain
        && !is_domain(d)
    {
        return bad(format!(
            "registry {d:?}: want a host name or address and an optional numeric port"
        ));
    }
    if let Some(c) = path.split('/').find(|c| !is_path_component(c)) {
        return bad(format!(
            "name component {c:?}: want lowercase letters and digits, separated by '.', '_', '__' or '-'"
        ));
    }
    Ok(Parsed {
        domain: domain.map(str::to_string),
        path: path.to_string(),
        tag: tag.map(str::to_string),
        digest,
    })
}

/// Whether a reference's first component names a registry (docker's rule).
pub fn is_host(component: &str) -> bool {
    component.contains('.') || component.contains(':') || component == "localhost"
}

pub fn is_digest(d: &str) -> bool {
    d.strip_prefix("sha256:").is_some_and(|h| {
        h.len() == 64
            && h.bytes()
                .all(|c| c.is_ascii_digit() || (b'a'..=b'f').contains(&c))
    })
}

fn is_tag(t: &str) -> bool {
    let b = t.as_bytes();
    !b.is_empty()
        && b.len() <= 128
        && (b[0].is_ascii_alphanumeric() || b[0] == b'_')
        && b.iter()
            .all(|c| c.is_ascii_alphanumeric() || b"_.-".contains(c))
}

/// `host[:port]`: DNS labels (or an IPv4 address) or `[IPv6]`, and digits for the port.
fn is_domain(d: &str) -> bool {
    let (host, port) = if let Some(rest) = d.strip_prefix('[') {
        match rest.split_once(']') {
            Some((v6, after))
                if !v6.is_empty() && v6.bytes().all(|c| c.is_ascii_hexdigit() || c == b':') =>
            {
                match after {
                    "" => return true,
                    p => return p.strip_prefix(':').is_some_and(is_port),
                }
            }
            _ => return false,
        }
    } else {
        match d.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (d, None),
        }
    };
    let label_ok = |l: &str| {
        let b = l.as_bytes();
        !b.is_empty()
            && b[0].is_ascii_alphanumeric()
            && b[b.len() - 1].is_ascii_alphanumeric()
            && b.iter().all(|c| c.is_ascii_alphanumeric() || *c == b'-')
    };
    host.split('.').all(label_ok) && port.is_none_or(is_port)
}

fn is_port(p: &str) -> bool {
    !p.is_empty() && p.len() <= 5 && p.bytes().all(|c| c.is_ascii_digit())
}

/// `[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*`, the distribution spec's path component.
fn is_path_component(c: &str) -> bool {
    let b = c.as_bytes();
    let alnum = |c: u8| c.is_ascii_lowercase() || c.is_ascii_digit();
    if b.is_empty() || !alnum(b[0]) || !alnum(b[b.len() - 1]) {
        return false;
    }
    let mut i = 0;
    while i < b.len() {
        if alnum(b[i]) {
            i += 1;
            continue;
        }
        let start = i;
        while i < b.len() && !alnum(b[i]) {
            i += 1;
        }
        let sep = &c[start..i];
        let ok = sep == "." || sep == "_" || sep == "__" || sep.bytes().all(|x| x == b'-');
        if !ok {
            return false;
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_parts_of_good_references() {
        let p = parse("127.0.0.1:5000/team/app:v1").unwrap();
        assert_eq!(p.domain.as_deref(), Some("127.0.0.1:5000"));
        assert_eq!(
            (p.path.as_str(), p.tag.as_deref()),
            ("team/app", Some("v1"))
        );
        let p = parse("bb").unwrap();
        assert_eq!((p.domain, p.path.as_str(), p.tag), (None, "bb", None));
        let d = format!("sha256:{}", "a".repeat(64));
        let p = parse(&format!("localhost/a:_t@{d}")).unwrap();
        assert_eq!(p.digest.as_deref(), Some(d.as_str()));
        for good in [
            "a__b/c.d-e--f:1.0",
            "[::1]:5000/x",
            "Registry.Example.com/x",
            "x:A_b-1.",
        ] {
            assert!(parse(good).is_ok(), "{good}");
        }
    }

    #[test]
    fn refusals_name_the_reference_and_the_part() {
        for (bad, part) in [
            ("bb::1", "name component \"bb:\""),
            ("bb:-x", "tag \"-x\""),
            ("bb:", "tag \"\""),
            ("Upper", "name component \"Upper\""),
            ("a___b", "name component"),
            ("a//b", "name component \"\""),
            ("a b", "name component"),
            ("x:1@sha256:abc", "digest"),
            ("reg_x.io/a", "registry \"reg_x.io\""),
            ("localhost:50a0/a", "registry"),
            (":5000/a", "registry"),
            (&format!("x:{}", "t".repeat(129)), "tag"),
        ] {
            let e = parse(bad).unwrap_err().to_string();
            assert!(
                e.starts_with(&format!("invalid reference {bad:?}: {part}")),
                "{bad}: {e}"
            );
        }
    }
}
