//! The `lrs` binary; the command line lives in `lrs_cli::cli`.

/// mimalloc: glibc's allocator was ~25-40% of the server's CPU under load
/// (docs/performance.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    lrs_cli::cli::main().await
}
