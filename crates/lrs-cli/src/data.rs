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
    /// sled's page cache in MiB: the log's and read models' pages kept
    /// decoded in memory, on top of the operating system's page cache.
    #[arg(long, env = "LRS_CACHE_MIB", default_value_t = DEFAULT_CACHE_MIB,
          value_parser = clap::value_parser!(u64).range(16..=1_048_576))]
    pub cache_mib: u64,
}

/// sled's page cache unless `--cache-mib` says otherwise: the store's own.
pub const DEFAULT_CACHE_MIB: u64 = lrs_store::DEFAULT_CACHE_CAPACITY / MIB;

const MIB: u64 = 1024 * 1024;

impl DataArgs {
    /// The store's configuration these flags give, with its master key.
    pub fn store_config(&self, master_key: lrs_store::MasterKey) -> StoreConfig {
        let mut config = StoreConfig::new(&self.data_dir, master_key);
        config.cache_capacity = self.cache_mib * MIB;
        config
    }
}

pub fn open_store(data: &DataArgs) -> anyhow::Result<std::sync::Arc<Store>> {
    let master_key = keys::resolve(&data.data_dir, data.master_key_file.as_ref())?;
    Store::open(data.store_config(master_key)).with_context(|| {
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

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Command {
        #[command(flatten)]
        data: DataArgs,
    }

    #[test]
    fn the_cache_flag_sizes_sleds_cache() {
        let key = || lrs_store::MasterKey([1; 32]);
        let defaults = Command::try_parse_from(["lrs"]).unwrap().data;
        assert_eq!(
            defaults.store_config(key()).cache_capacity,
            StoreConfig::new("x", key()).cache_capacity,
            "the default is the store's own"
        );
        assert_eq!(
            DEFAULT_CACHE_MIB * 1024 * 1024,
            defaults.store_config(key()).cache_capacity
        );
        let set = Command::try_parse_from(["lrs", "--cache-mib", "2048"])
            .unwrap()
            .data;
        assert_eq!(set.store_config(key()).cache_capacity, 2048 * 1024 * 1024);
        for bad in ["0", "8", "lots"] {
            assert!(
                Command::try_parse_from(["lrs", "--cache-mib", bad]).is_err(),
                "--cache-mib {bad}"
            );
        }
    }
}
