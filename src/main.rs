//! The `reseal` binary: parse arguments, hand over to the library.

fn main() -> std::process::ExitCode {
    reseal::cli::main()
}
