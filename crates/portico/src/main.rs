//! The `portico` binary: parses the command line and hands over to [`portico::run`].
#![forbid(unsafe_code)]

fn main() -> std::process::ExitCode {
    portico::run()
}
