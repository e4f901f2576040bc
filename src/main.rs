//! The `unionctl` binary: parses the command line, calls the library, prints and picks
//! the exit status. No union, container or image logic lives here.
mod cli;

fn main() {
    std::process::exit(cli::main());
}
