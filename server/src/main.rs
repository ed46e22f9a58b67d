//! The `warroom` command: parses the command line and hands over to the library.

// glibc's allocator contends between the runtime's threads under load;
// mimalloc keeps per-thread heaps.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    warroom::cli::main()
}
