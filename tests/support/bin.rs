//! The `lrs` command line, built inside the test package so that tests can
//! run it as a real process (`env!("CARGO_BIN_EXE_lrs-under-test")`).

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    lrs_cli::cli::main().await
}
