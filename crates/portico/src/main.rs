//! The `portico` binary: parses the command line and hands over to [`portico::run`].
#![forbid(unsafe_code)]

/// mimalloc rather than the system allocator: a proxied request allocates and frees many
/// small objects (headers, boxed futures, buffers) across threads, where glibc's malloc spent
/// about 16 % of the gateway's CPU time (docs/BENCHMARKS.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    portico::run()
}
