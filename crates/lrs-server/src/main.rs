//! The `lrs` binary; the command line lives in `lrs_server::cli`.

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    lrs_server::cli::main().await
}
