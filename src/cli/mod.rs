//! Command line: parse, call the library, print, pick the exit status.
mod args;
mod containers;
mod exit;
mod filter;
mod format;
mod help;
mod images;
mod mount;
mod progress;
mod registry;
mod table;
mod verbs;

use args::{Cli, Command, ContainerCmd, ImageCmd, SystemCmd};
use clap::{CommandFactory, FromArgMatches};
use std::path::PathBuf;

/// The names (of a symlink to unionctl) that take fuse-overlayfs' command line: ours, and
/// fuse-overlayfs' own, for a symlink put where podman and buildah look for it.
const OVERLAY_NAMES: [&str; 2] = ["unionctl-overlay", "fuse-overlayfs"];

/// Parses the command line, runs the command and returns the process exit status.
pub fn main() -> i32 {
    unionctl::logging::to_stderr();
    // Called as `unionctl-overlay` or `fuse-overlayfs` (a symlink): fuse-overlayfs'
    // command line.
    let mut argv = std::env::args_os();
    let arg0 = argv.next().unwrap_or_default();
    let prog = unionctl::fuse::dropin::program_name(&arg0);
    if OVERLAY_NAMES.contains(&prog.as_str()) {
        let args: Vec<_> = argv.collect();
        return unionctl::fuse::dropin::main(&prog, &args);
    }
    let matches = match Cli::command().try_get_matches() {
        Ok(m) => m,
        Err(e) => usage_error(e),
    };
    let verb = verb_of(&matches);
    let cli = match Cli::from_arg_matches(&matches) {
        Ok(cli) => cli,
        Err(e) => e.exit(),
    };
    let root = unionctl::image::store_root(cli.root.clone());
    if only_prints(&cli.command) {
        // A reader that goes away (`unionctl images | head -1`) ends us quietly, as it
        // ends coreutils: the default action of SIGPIPE, which Rust sets to ignore (then
        // println! panics on EPIPE). Not for commands that leave processes behind (mount
        // daemons, container supervisors): they must see EPIPE, not die of it.
        // SAFETY: restoring a signal's default action.
        unsafe { libc::signal(libc::SIGPIPE, libc::SIG_DFL) };
    }
    let checked = match std::fs::metadata(&root) {
        // Missing is fine: the store is made at its first write.
        Ok(m) if !m.is_dir() => Err(anyhow::anyhow!(
            "--root {}: not a directory",
            root.display()
        )),
        _ => Ok(()),
    };
    match checked.and_then(|()| dispatch(cli.command, root)) {
        Ok(code) => code,
        Err(e) => {
            report(&verb, e.as_ref());
            exit::status_of(&e)
        }
    }
}

/// Prints an error of `unionctl VERB` on one line: `unionctl: VERB: what: cause`.
pub fn report(verb: &str, e: &(dyn std::error::Error + 'static)) {
    eprintln!("unionctl: {verb}: {}", unionctl::errors::chain(e));
}

/// Ends the process on a command line clap refused: help and version as clap prints
/// them; a usage error (an unknown flag, a missing argument) on one line, status 2.
fn usage_error(e: clap::Error) -> ! {
    use clap::error::ErrorKind;
    if matches!(
        e.kind(),
        ErrorKind::DisplayHelp
            | ErrorKind::DisplayVersion
            | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand
    ) {
        e.exit()
    }
    // clap's first paragraph is the error ("unexpected argument '-x' found", or "the
    // following required arguments were not provided:" and their names); tips and usage
    // follow it.
    let text = e.render().to_string();
    let first = text.split("\n\n").next().unwrap_or(&text);
    let words: Vec<&str> = first.split_whitespace().collect();
    let what = words.join(" ");
    let what = what.strip_prefix("error: ").unwrap_or(&what);
    let verb = typed_verb();
    let (verb, help) = match &verb {
        Some(v) => (format!("{v}: "), format!("unionctl {v} --help")),
        None => (String::new(), "unionctl --help".to_string()),
    };
    eprintln!("unionctl: {verb}{what} (see '{help}')");
    std::process::exit(exit::USAGE)
}

/// The subcommand in the arguments, when parsing failed: the first word that is not an
/// option (nor `--root`'s value) and names a subcommand.
fn typed_verb() -> Option<String> {
    let cmd = Cli::command();
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        if a == "--root" {
            args.next();
        } else if !a.starts_with('-') {
            return cmd.find_subcommand(&a).map(|_| a);
        }
    }
    None
}

/// The subcommand path the user typed (`images`, `volume ls`), for error messages.
fn verb_of(m: &clap::ArgMatches) -> String {
    let mut words = Vec::new();
    let mut at = m;
    while let Some((name, sub)) = at.subcommand() {
        words.push(name.to_string());
        at = sub;
    }
    words.join(" ")
}

fn dispatch(cmd: Command, root: PathBuf) -> anyhow::Result<i32> {
    match cmd {
        Command::Mount(a) => mount::mount(a),
        Command::Umount(a) => mount::umount(a),
        Command::Layers(a) => mount::layers(a),
        Command::Which(a) => mount::which(a),
        Command::Run(a) => containers::run(&root, *a),
        Command::Ps(a) => containers::ps(&root, a),
        Command::Start(a) => containers::start(&root, a),
        Command::Stop(a) => containers::stop(&root, a),
        Command::Restart(a) => containers::restart(&root, a),
        Command::Attach(a) => containers::attach(&root, a),
        Command::Exec(a) => Ok(unionctl::runner::exec(&root, a.into())?),
        Command::Logs(a) => containers::logs(&root, a),
        Command::Rm(a) => containers::rm(&root, a),
        Command::Images(a) => images::images(&root, a),
        Command::Tag(a) => images::tag(&root, a),
        Command::Rmi(a) => images::rmi(&root, a),
        Command::History(a) => images::history(&root, a),
        Command::Inspect(a) => images::inspect(&root, a, images::Inspected::Any),
        Command::Commit(a) => images::commit(&root, a),
        Command::Diff(a) => images::diff(&root, a),
        Command::Save(a) => images::save(&root, a),
        Command::Load(a) => images::load(&root, a),
        Command::Export(a) => images::export(&root, a),
        Command::Import(a) => images::import(&root, a),
        Command::Pull(a) => registry::pull(&root, a),
        Command::Push(a) => registry::push(&root, a),
        Command::Search(a) => registry::search(&root, a),
        Command::Login(a) => registry::login(&root, a),
        Command::Logout(a) => registry::logout(&root, a),
        Command::Completion(a) => help::completion(a),
        Command::Man(a) => help::man(a),
        Command::Create(a) => verbs::create(&root, *a),
        Command::Kill(a) => verbs::kill(&root, a),
        Command::Wait(a) => verbs::wait(&root, a),
        Command::Pause(a) => verbs::pause(&root, a, true),
        Command::Unpause(a) => verbs::pause(&root, a, false),
        Command::Top(a) => verbs::top(&root, a),
        Command::Stats(a) => verbs::stats(&root, a),
        Command::Cp(a) => verbs::cp(&root, a),
        Command::Rename(a) => verbs::rename(&root, a),
        Command::Container(c) => verbs::container(&root, c),
        Command::Image(c) => verbs::image(&root, c),
        Command::Volume(c) => verbs::volume(&root, c),
        Command::System(c) => verbs::system(&root, c),
        Command::Info => verbs::info(&root),
        Command::Version => verbs::version(),
    }
}

/// Commands whose work ends with their output and that start no long-lived process.
fn only_prints(cmd: &Command) -> bool {
    matches!(
        cmd,
        Command::Layers(_)
            | Command::Which(_)
            | Command::Ps(_)
            | Command::Logs(_)
            | Command::Images(_)
            | Command::History(_)
            | Command::Inspect(_)
            | Command::Diff(_)
            | Command::Save(_)
            | Command::Export(_)
            | Command::Search(_)
            | Command::Completion(_)
            | Command::Top(_)
            | Command::Stats(_)
            | Command::Info
            | Command::Version
            | Command::System(SystemCmd::Df)
            | Command::Image(
                ImageCmd::Ls(_) | ImageCmd::Inspect(_) | ImageCmd::History(_) | ImageCmd::Save(_)
            )
            | Command::Container(ContainerCmd::Ls(_) | ContainerCmd::Inspect(_))
    )
}
