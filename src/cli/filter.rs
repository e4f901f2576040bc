//! `--filter KEY=VALUE` on `ps` and `images`, as docker reads it: values of one key are
//! alternatives (any may match), different keys must all match.
use anyhow::bail;
use std::collections::BTreeMap;

#[derive(Debug, Default)]
pub struct Filters {
    by_key: BTreeMap<String, Vec<String>>,
}

impl Filters {
    /// Parses the `--filter` values; `known` are the keys the listing takes.
    pub fn parse(args: &[String], known: &[&str]) -> anyhow::Result<Filters> {
        let mut f = Filters::default();
        for a in args {
            let Some((k, v)) = a.split_once('=') else {
                bail!("--filter {a:?}: want KEY=VALUE");
            };
            if !known.contains(&k) {
                bail!(
                    "--filter {a:?}: unknown key {k:?} (known: {})",
                    known.join(", ")
                );
            }
            f.by_key
                .entry(k.to_string())
                .or_default()
                .push(v.to_string());
        }
        Ok(f)
    }

    /// The values given for KEY (none: the key does not filter).
    pub fn values(&self, key: &str) -> &[String] {
        self.by_key.get(key).map(Vec::as_slice).unwrap_or(&[])
    }

    /// True when KEY was not given or one of its values satisfies `ok`.
    pub fn any(&self, key: &str, ok: impl Fn(&str) -> bool) -> bool {
        let vals = self.values(key);
        vals.is_empty() || vals.iter().any(|v| ok(v))
    }
}

/// `label=KEY` (present) or `label=KEY=VALUE` (equal), against a row's labels.
pub fn label_matches(labels: &BTreeMap<String, String>, want: &str) -> bool {
    match want.split_once('=') {
        Some((k, v)) => labels.get(k).is_some_and(|have| have == v),
        None => labels.contains_key(want),
    }
}

/// A shell-like pattern as docker's `reference=` uses it: `*` any run of characters but
/// `/`, `?` one character but `/`.
pub fn glob_matches(pattern: &str, text: &str) -> bool {
    fn go(p: &[char], t: &[char]) -> bool {
        match p.first() {
            None => t.is_empty(),
            Some('*') => (0..=t.len())
                .take_while(|&i| i == 0 || t[i - 1] != '/')
                .any(|i| go(&p[1..], &t[i..])),
            Some('?') => t.first().is_some_and(|&c| c != '/') && go(&p[1..], &t[1..]),
            Some(&c) => t.first() == Some(&c) && go(&p[1..], &t[1..]),
        }
    }
    let p: Vec<char> = pattern.chars().collect();
    let t: Vec<char> = text.chars().collect();
    go(&p, &t)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_values_and_alternatives() {
        let args = [
            "status=running".to_string(),
            "status=exited".into(),
            "name=web".into(),
        ];
        let f = Filters::parse(&args, &["status", "name"]).unwrap();
        assert!(f.any("status", |v| v == "exited"));
        assert!(!f.any("name", |v| v == "db"));
        assert!(f.any("label", |_| false), "a key not given does not filter");
        assert!(Filters::parse(&["nope=1".into()], &["status"]).is_err());
        assert!(Filters::parse(&["status".into()], &["status"]).is_err());
    }

    #[test]
    fn labels_and_globs() {
        let labels = BTreeMap::from([("tier".to_string(), "web".to_string())]);
        assert!(label_matches(&labels, "tier"));
        assert!(label_matches(&labels, "tier=web"));
        assert!(!label_matches(&labels, "tier=db"));
        assert!(glob_matches("bb*", "bb:1"));
        assert!(glob_matches("*:1", "bb:1"));
        assert!(!glob_matches("*", "team/app"));
        assert!(glob_matches("team/*", "team/app"));
        assert!(glob_matches("b?:1", "bb:1"));
    }
}
