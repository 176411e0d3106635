//! What most commands share: the data directory and master key flags,
//! opening the store, and the one progress line of long work.

use crate::keys;
use anyhow::Context;
use lrs_store::backup::Progress;
use lrs_store::{Store, StoreConfig};
use std::path::PathBuf;

#[derive(clap::Args, Clone)]
pub struct DataArgs {
    /// Data directory (log, vault).
    #[arg(long, env = "LRS_DATA_DIR", default_value = "./lrs-data")]
    pub data_dir: PathBuf,
    /// File holding the 32-byte master key as hex (else LRS_MASTER_KEY, else a generated one in the data dir).
    #[arg(long, env = "LRS_MASTER_KEY_FILE")]
    pub master_key_file: Option<PathBuf>,
}

pub fn open_store(data: &DataArgs) -> anyhow::Result<std::sync::Arc<Store>> {
    let master_key = keys::resolve(&data.data_dir, data.master_key_file.as_ref())?;
    Store::open(StoreConfig::new(&data.data_dir, master_key)).with_context(|| {
        format!(
            "opening data directory {} (is a server running on it?)",
            data.data_dir.display()
        )
    })
}

/// Opens the store of a data directory that must already hold one: the
/// commands that read, erase or export refuse a mistyped or missing
/// `--data-dir` instead of making an empty store there and answering
/// about it.
pub fn open_existing_store(data: &DataArgs) -> anyhow::Result<std::sync::Arc<Store>> {
    if !data.data_dir.join("log").is_dir() {
        anyhow::bail!(
            "no data directory at {} (pass --data-dir DIR or set LRS_DATA_DIR)",
            data.data_dir.display()
        );
    }
    open_store(data)
}

/// One line of progress on stderr (`phase: done / total (percent)`), for
/// every long command: backup, restore, verify, analytics, exports.
pub fn print_progress(progress: Progress) {
    progress_line(progress.phase, progress.done, progress.total, "");
}

/// `  phase: done / total (percent)` and what else the phase counts.
pub fn progress_line(phase: &str, done: u64, total: u64, also: &str) {
    let percent = if total == 0 {
        100.0
    } else {
        done as f64 * 100.0 / total as f64
    };
    eprintln!("  {phase}: {done} / {total} ({percent:.0} %){also}");
}
