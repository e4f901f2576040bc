//! `completion` and `man`: the command line's own documentation, generated from the clap
//! definitions (so it never drifts from them); and the check that every option and
//! subcommand is described and every subcommand has examples.
use super::args::{Cli, CompletionArgs, ManArgs};
use anyhow::Context;
use clap::CommandFactory;

pub fn completion(a: CompletionArgs) -> anyhow::Result<i32> {
    let mut cmd = Cli::command();
    clap_complete::generate(a.shell, &mut cmd, "unionctl", &mut std::io::stdout());
    Ok(0)
}

pub fn man(a: ManArgs) -> anyhow::Result<i32> {
    std::fs::create_dir_all(&a.dir).with_context(|| format!("making {}", a.dir.display()))?;
    clap_mangen::generate_to(Cli::command(), &a.dir)
        .with_context(|| format!("writing man pages into {}", a.dir.display()))?;
    Ok(0)
}

/// What the help of CMD and its subcommands lacks: options or positionals without a
/// description, subcommands without one or without an `Examples:` after-help.
#[cfg(test)]
fn missing_help(cmd: &clap::Command) -> Vec<String> {
    let mut missing = Vec::new();
    walk(cmd, cmd.get_name(), true, &mut missing);
    missing
}

#[cfg(test)]
fn walk(cmd: &clap::Command, path: &str, top: bool, missing: &mut Vec<String>) {
    if !top {
        if cmd.get_about().is_none() {
            missing.push(format!("{path}: no description"));
        }
        let examples = cmd
            .get_after_help()
            .map(|h| h.to_string())
            .unwrap_or_default();
        let mut lines = examples.lines();
        let indented = lines.clone().skip(1).any(|l| l.starts_with("  unionctl "));
        if lines.next() != Some("Examples:") || !indented {
            missing.push(format!(
                "{path}: no 'Examples:' with indented example lines"
            ));
        }
    }
    for arg in cmd.get_arguments() {
        let builtin =
            matches!(arg.get_id().as_str(), "help" | "version") && arg.get_help().is_some();
        if arg.get_help().is_none() && !builtin {
            missing.push(format!("{path} {}: no description", arg.get_id()));
        }
    }
    for sub in cmd.get_subcommands() {
        if sub.get_name() == "help" {
            continue;
        }
        walk(sub, &format!("{path} {}", sub.get_name()), false, missing);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every option, argument and subcommand has a description and every subcommand
    /// has examples: a new one without fails here.
    #[test]
    fn every_option_and_subcommand_is_described_with_examples() {
        let mut cmd = Cli::command();
        cmd.build();
        let missing = missing_help(&cmd);
        assert!(
            missing.is_empty(),
            "help is missing:\n{}",
            missing.join("\n")
        );
    }

    #[test]
    fn the_check_finds_what_is_missing() {
        let cmd = clap::Command::new("unionctl").subcommand(
            clap::Command::new("bare")
                .arg(clap::Arg::new("flag").long("flag"))
                .about("has no examples"),
        );
        let missing = missing_help(&cmd);
        assert!(
            missing.contains(&"unionctl bare flag: no description".to_string()),
            "{missing:?}"
        );
        assert!(
            missing
                .iter()
                .any(|m| m.starts_with("unionctl bare: no 'Examples:'")),
            "{missing:?}"
        );
    }

    #[test]
    fn clap_accepts_the_definitions() {
        Cli::command().debug_assert();
    }
}
