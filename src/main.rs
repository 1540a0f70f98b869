//! The `sysroot-mk` binary: parses arguments, runs the library, renders errors and exit codes.

mod cli;

fn main() {
    std::process::exit(cli::main());
}
