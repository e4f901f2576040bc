//! `--format`: the output of listings and `inspect` as JSON or through a template, a small
//! subset of Go's text/template as docker uses it:
//!
//! - `{{.Field}}`, `{{.Outer.Inner}}`, `{{.}}`: a value (strings bare, lists `[a b]`,
//!   maps `map[k:v]`, as Go prints them);
//! - `{{json .Field}}`, `{{json .}}`: the value as JSON;
//! - `\t` and `\n` in the template are a tab and a newline;
//! - a `table ` prefix prints a header row (the field names) and aligns tab-separated
//!   columns.
//!
//! Rows are serde values with docker's PascalCase keys; any listing can print itself
//! through [`Format::print_rows`] (and `inspect` through [`Format::print_objects`]).
use super::table;
use anyhow::{Context, bail};
use serde_json::Value;

/// How to print: the command's own table, JSON, or a template per row.
#[derive(Debug, Clone)]
pub enum Format {
    Table,
    Json,
    Template { table: bool, template: Template },
}

impl Format {
    /// The value of `--format` (None: the default table); `json_alias` is `--json`.
    pub fn parse(value: Option<&str>, json_alias: bool) -> anyhow::Result<Format> {
        let value = match (value, json_alias) {
            (Some(_), true) => bail!("--format and --json: give one of them"),
            (None, true) => return Ok(Format::Json),
            (None, false) => return Ok(Format::Table),
            (Some(v), false) => v,
        };
        let trimmed = value.trim();
        if trimmed == "json" {
            return Ok(Format::Json);
        }
        if trimmed == "table" {
            return Ok(Format::Table);
        }
        let (table, text) = match value.strip_prefix("table ") {
            Some(rest) => (true, rest),
            None => (false, value),
        };
        let template = Template::parse(text).with_context(|| format!("--format {value:?}"))?;
        Ok(Format::Template { table, template })
    }

    /// Prints listing rows: JSON as one array, a template once per row, or (for
    /// `Format::Table`) calls `own_table`. `header` names a field's column in a `table`
    /// template (`ID` -> `CONTAINER ID`); other fields are named by their upper case.
    pub fn print_rows(
        &self,
        rows: &[Value],
        header: &dyn Fn(&str) -> Option<&'static str>,
        own_table: impl FnOnce(),
    ) -> anyhow::Result<()> {
        match self {
            Format::Table => own_table(),
            Format::Json => println!("{}", serde_json::to_string_pretty(rows)?),
            Format::Template { table, template } => {
                let mut lines = Vec::new();
                if *table {
                    lines.push(template.header(header));
                }
                for r in rows {
                    lines.push(template.render(r)?);
                }
                if *table {
                    table::print(&lines.iter().map(|l| split_cells(l)).collect::<Vec<_>>());
                } else {
                    for l in lines {
                        println!("{l}");
                    }
                }
            }
        }
        Ok(())
    }

    /// Prints `inspect` objects: a JSON array (also the default), or a template per object.
    pub fn print_objects(&self, objects: &[Value]) -> anyhow::Result<()> {
        match self {
            Format::Table | Format::Json => {
                println!("{}", serde_json::to_string_pretty(objects)?)
            }
            Format::Template { template, .. } => {
                for o in objects {
                    println!("{}", template.render(o)?);
                }
            }
        }
        Ok(())
    }
}

fn split_cells(line: &str) -> Vec<String> {
    line.split('\t').map(str::to_string).collect()
}

/// A parsed template: text and actions.
#[derive(Debug, Clone, PartialEq)]
pub struct Template {
    pieces: Vec<Piece>,
}

#[derive(Debug, Clone, PartialEq)]
enum Piece {
    Text(String),
    /// A field path (empty: the whole value), printed as Go does or as JSON.
    Field {
        path: Vec<String>,
        json: bool,
    },
}

impl Template {
    pub fn parse(text: &str) -> anyhow::Result<Template> {
        let text = text.replace("\\t", "\t").replace("\\n", "\n");
        let mut pieces = Vec::new();
        let mut rest = text.as_str();
        while let Some(open) = rest.find("{{") {
            if open > 0 {
                pieces.push(Piece::Text(rest[..open].to_string()));
            }
            let Some(close) = rest[open..].find("}}") else {
                bail!("unclosed action: {:?}", &rest[open..]);
            };
            let action = rest[open + 2..open + close].trim();
            pieces.push(parse_action(action)?);
            rest = &rest[open + close + 2..];
        }
        if !rest.is_empty() {
            pieces.push(Piece::Text(rest.to_string()));
        }
        Ok(Template { pieces })
    }

    /// The template applied to one value.
    pub fn render(&self, v: &Value) -> anyhow::Result<String> {
        let mut out = String::new();
        for p in &self.pieces {
            match p {
                Piece::Text(t) => out.push_str(t),
                Piece::Field { path, json } => {
                    let field = lookup(v, path)?;
                    if *json {
                        out.push_str(&serde_json::to_string(field)?);
                    } else {
                        out.push_str(&go_text(field));
                    }
                }
            }
        }
        Ok(out)
    }

    /// The header line of a `table` template: each field's column name.
    fn header(&self, name: &dyn Fn(&str) -> Option<&'static str>) -> String {
        let mut out = String::new();
        for p in &self.pieces {
            match p {
                Piece::Text(t) => out.push_str(t),
                Piece::Field { path, .. } => {
                    let last = path.last().map(String::as_str).unwrap_or("");
                    out.push_str(
                        &name(last)
                            .map(str::to_string)
                            .unwrap_or_else(|| last.to_uppercase()),
                    );
                }
            }
        }
        out
    }
}

fn parse_action(action: &str) -> anyhow::Result<Piece> {
    let (json, field) = match action.split_once(char::is_whitespace) {
        Some(("json", f)) => (true, f.trim()),
        Some(_) => bail!(
            "unsupported action {{{{{action}}}}}: unionctl knows {{{{.Field}}}}, {{{{.A.B}}}} and {{{{json .Field}}}}"
        ),
        None => (false, action),
    };
    if field == "." {
        return Ok(Piece::Field {
            path: Vec::new(),
            json,
        });
    }
    let Some(path) = field.strip_prefix('.') else {
        bail!(
            "unsupported action {{{{{action}}}}}: unionctl knows {{{{.Field}}}}, {{{{.A.B}}}} and {{{{json .Field}}}}"
        );
    };
    let path: Vec<String> = path.split('.').map(str::to_string).collect();
    if path.iter().any(|p| p.is_empty()) {
        bail!("bad field {field:?} in {{{{{action}}}}}");
    }
    Ok(Piece::Field { path, json })
}

fn lookup<'a>(v: &'a Value, path: &[String]) -> anyhow::Result<&'a Value> {
    let mut at = v;
    for (i, key) in path.iter().enumerate() {
        at = match at.get(key) {
            Some(next) => next,
            None => {
                let within = if i == 0 {
                    String::new()
                } else {
                    format!(" in .{}", path[..i].join("."))
                };
                let known = at
                    .as_object()
                    .map(|o| o.keys().cloned().collect::<Vec<_>>().join(", "))
                    .unwrap_or_default();
                bail!("no field {key:?}{within} (fields: {known})");
            }
        };
    }
    Ok(at)
}

/// A value as Go's text/template prints it.
fn go_text(v: &Value) -> String {
    match v {
        Value::Null => String::new(),
        Value::String(s) => s.clone(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        Value::Array(a) => format!("[{}]", a.iter().map(go_text).collect::<Vec<_>>().join(" ")),
        Value::Object(o) => {
            let mut keys: Vec<&String> = o.keys().collect();
            keys.sort();
            let parts: Vec<String> = keys
                .into_iter()
                .map(|k| format!("{k}:{}", go_text(&o[k])))
                .collect();
            format!("map[{}]", parts.join(" "))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn render(t: &str, v: &Value) -> String {
        Template::parse(t).unwrap().render(v).unwrap()
    }

    #[test]
    fn fields_nested_fields_json_and_escapes() {
        let v = json!({"Id": "abc", "State": {"Status": "running", "Pid": 7},
                       "Args": ["-c", "true"], "Labels": {"b": "2", "a": "1"}, "Gone": null});
        assert_eq!(render("{{.Id}}", &v), "abc");
        assert_eq!(
            render("{{ .State.Status }}/{{.State.Pid}}", &v),
            "running/7"
        );
        assert_eq!(render("{{json .Args}}", &v), r#"["-c","true"]"#);
        assert_eq!(render("{{.Args}}", &v), "[-c true]");
        assert_eq!(render("{{.Labels}}", &v), "map[a:1 b:2]");
        assert_eq!(render(r"{{.Id}}\t{{.Gone}}|\n", &v), "abc\t|\n");
        assert_eq!(
            render("{{json .State}}", &v),
            r#"{"Pid":7,"Status":"running"}"#
        );
    }

    #[test]
    fn unknown_fields_and_actions_are_errors_that_say_so() {
        let v = json!({"Id": "abc"});
        let e = Template::parse("{{.Nope}}")
            .unwrap()
            .render(&v)
            .unwrap_err();
        assert_eq!(e.to_string(), r#"no field "Nope" (fields: Id)"#);
        let e = Template::parse("{{range .X}}").unwrap_err().to_string();
        assert!(e.contains("unsupported action {{range .X}}"), "{e}");
        assert!(Template::parse("{{.Id").is_err());
    }

    #[test]
    fn json_table_and_templates_are_told_apart() {
        assert!(matches!(
            Format::parse(Some("json"), false),
            Ok(Format::Json)
        ));
        assert!(matches!(Format::parse(None, true), Ok(Format::Json)));
        assert!(matches!(Format::parse(None, false), Ok(Format::Table)));
        assert!(matches!(
            Format::parse(Some("table {{.ID}}"), false),
            Ok(Format::Template { table: true, .. })
        ));
        assert!(Format::parse(Some("json"), true).is_err());
    }
}
