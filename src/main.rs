/// Import and evaluation allocate on one thread and free on another; glibc's
/// malloc spends more time on its arena locks there than on the work.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    herald::cli::main()
}
