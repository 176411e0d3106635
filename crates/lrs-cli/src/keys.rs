//! Where the master key comes from: `LRS_MASTER_KEY` (64 hex digits), a key
//! file, or, for the embedded default only, a file generated on first start
//! in the data directory (with a loud warning: whoever copies the directory
//! then has the key too).

use anyhow::{bail, Context};
use lrs_store::MasterKey;
use rand::RngCore;
use std::io::Write;
use std::path::{Path, PathBuf};

pub const ENV_MASTER_KEY: &str = "LRS_MASTER_KEY";

pub fn parse_hex_key(text: &str) -> anyhow::Result<MasterKey> {
    let bytes = hex::decode(text.trim()).context("master key is not hex")?;
    let key: [u8; 32] = bytes
        .try_into()
        .map_err(|_| anyhow::anyhow!("master key must be 32 bytes (64 hex digits)"))?;
    Ok(MasterKey(key))
}

/// Resolves the master key: explicit file, then environment, then the
/// generated default in `data_dir/master.key`.
pub fn resolve(data_dir: &Path, key_file: Option<&PathBuf>) -> anyhow::Result<MasterKey> {
    if let Some(path) = key_file {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("reading master key {}", path.display()))?;
        return parse_hex_key(&text);
    }
    if let Ok(text) = std::env::var(ENV_MASTER_KEY) {
        return parse_hex_key(&text);
    }
    let default = data_dir.join("master.key");
    if default.exists() {
        return parse_hex_key(&std::fs::read_to_string(&default)?);
    }
    if data_dir.join("vault").exists() {
        bail!(
            "{} holds a vault but no master key was given: set {ENV_MASTER_KEY} or --master-key-file",
            data_dir.display()
        );
    }
    std::fs::create_dir_all(data_dir)?;
    let mut key = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut key);
    let mut file = open_private(&default)?;
    writeln!(file, "{}", hex::encode(key))?;
    file.sync_all()?;
    tracing::warn!(
        path = %default.display(),
        "GENERATED A MASTER KEY INSIDE THE DATA DIRECTORY. Fine for a trial; in production keep the key elsewhere \
         (--master-key-file or {ENV_MASTER_KEY}) so that a copy of the data directory alone reveals no personal data"
    );
    eprintln!(
        "WARNING: generated master key at {} -- move it out of the data directory for production",
        default.display()
    );
    Ok(MasterKey(key))
}

fn open_private(path: &Path) -> std::io::Result<std::fs::File> {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
}
