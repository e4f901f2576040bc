fn main() {
    std::process::exit(unionctl::cli::main());
}
