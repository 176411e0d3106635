//! The store's own commands: `lrs verify` (the chain, the clean-shutdown
//! witness and every projection), `lrs backup` (online through the control
//! socket, else offline) and `lrs restore`.

use crate::data::{open_existing_store, print_progress, progress_line, DataArgs};
use crate::keys;
use anyhow::Context;
use lrs_store::backup::Progress;
use lrs_store::Store;
use std::path::Path;

/// Chain, clean-shutdown witness and projections of a stopped store; or a
/// whole backup. Exit code 2 and the first bad position when broken.
pub async fn verify(
    data: &DataArgs,
    backup: Option<&Path>,
    chain_only: bool,
) -> anyhow::Result<()> {
    if let Some(dir) = backup {
        eprintln!("verifying the backup in {}", dir.display());
        return match lrs_store::backup::verify_backup(dir, print_progress) {
            Ok(head) => {
                println!(
                    "ok: backup of {} entries, checksums and hash chain intact, vault copy intact",
                    head.position
                );
                Ok(())
            }
            Err(error) => {
                println!("BROKEN: {error}");
                std::process::exit(2)
            }
        };
    }
    if crate::control::connect(&data.data_dir).await.is_some() {
        anyhow::bail!(
            "a server is running on {}: stop it first, or check a fresh backup: \
             lrs backup --to DIR && lrs verify --backup DIR",
            data.data_dir.display()
        );
    }
    let store = open_existing_store(data)?;
    let head = store.head();
    eprintln!("verifying the hash chain of {head} log entries");
    let chain = store.verify_chain(|position| progress_line("chain", position, head, ""))?;
    let mut broken = Vec::new();
    match chain {
        Ok(count) => println!("ok: {count} entries, hash chain intact"),
        Err(chain_break) => broken.push(format!(
            "BROKEN at position {}: {}",
            chain_break.position, chain_break.reason
        )),
    }
    if let Some(witness) = store.clean_shutdown_witness() {
        match store.entry_hash(witness.position)? {
            Some(hash) if hash == witness.hash => println!(
                "ok: the log still holds entry {} as at its last clean shutdown",
                witness.position
            ),
            Some(_) => broken.push(format!(
                "BROKEN at position {}: the entry differs from the one at the last clean shutdown",
                witness.position
            )),
            None => broken.push(format!(
                "BROKEN at position {}: the log ends at {head} but held {} entries at its last clean shutdown",
                head + 1,
                witness.position
            )),
        }
    }
    if broken.is_empty() {
        let (reports, wrong) = lrs_app::privacy::report::verify_all(&store)?;
        if wrong.is_empty() {
            println!(
                "ok: {reports} anonymisation reports are the log entries at the positions they name"
            );
        }
        broken.extend(wrong.into_iter().map(|w| format!("BROKEN: {w}")));
        // The audit trail's trim anchor file says what the log's last
        // AuditTrailTrimmedV1 says (lrs audit verify trusts the file).
        let audit_dir = data.data_dir.join(lrs_store::audit::AUDIT_DIR);
        let file = lrs_store::audit::read_anchor(&audit_dir)?;
        match (store.audit_anchor()?, file) {
            (None, None) => {}
            (Some(logged), Some((first, hash)))
                if logged.first_kept_seq == first && logged.anchor_hash == hash =>
            {
                println!("ok: the audit trail's trim anchor (record {first}) is the one in the log")
            }
            (logged, file) => {
                broken.push(format!(
                "BROKEN: the audit trail's trim anchor file ({}) is not the one in the log ({})",
                file.map_or("none".to_owned(), |(first, _)| format!("record {first}")),
                logged.map_or("none".to_owned(), |a| format!("record {}", a.first_kept_seq))
            ))
            }
        }
    }
    print_sizes(&store, &data.data_dir)?;
    if !chain_only && broken.is_empty() {
        eprintln!("rebuilding every projection from the log into a scratch copy");
        let differences =
            store.check_projections(|position| progress_line("projections", position, head, ""))?;
        if differences.is_empty() {
            println!(
                "ok: every projection rebuilt from the log equals the stored one (projections digest {})",
                hex::encode(store.projections_digest()?)
            );
        } else {
            for difference in differences {
                broken.push(format!("PROJECTION DIFFERS: {difference}"));
            }
        }
    }
    store.close().await?;
    if broken.is_empty() {
        return Ok(());
    }
    for line in &broken {
        println!("{line}");
    }
    std::process::exit(2)
}

/// The data directory by part, on disk, and every sled tree's raw key and
/// value bytes, each also per statement: what a statement costs, and how
/// much of the `log/` directory is sled's own overhead (amplification).
fn print_sizes(store: &Store, data_dir: &Path) -> anyhow::Result<()> {
    let trees = store.tree_sizes()?;
    let statements = trees
        .iter()
        .find(|tree| tree.name == lrs_store::STATEMENT_IDS_TREE)
        .map_or(0, |tree| tree.entries);
    let per = |bytes: u64| {
        if statements == 0 {
            "-".to_owned()
        } else {
            format!("{:.0}", bytes as f64 / statements as f64)
        }
    };
    println!("sizes: {statements} statements; bytes on disk, and per statement");
    let mut total = 0;
    let mut parts: Vec<(String, u64)> = Vec::new();
    for entry in std::fs::read_dir(data_dir)? {
        let entry = entry?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if name == "log" {
            // sled's files apart from the posting-list snapshot beside them
            for inner in std::fs::read_dir(entry.path())? {
                let inner = inner?;
                let inner_name = inner.file_name().to_string_lossy().into_owned();
                let part =
                    if inner_name.starts_with("postings.") || inner_name.starts_with("resident.") {
                        format!("log/{inner_name}")
                    } else {
                        "log/ (sled)".to_owned()
                    };
                let bytes = disk_bytes(&inner.path());
                match parts.iter_mut().find(|(name, _)| *name == part) {
                    Some((_, sum)) => *sum += bytes,
                    None => parts.push((part, bytes)),
                }
            }
        } else if !name.starts_with(".verify-rebuild") {
            parts.push((name, disk_bytes(&entry.path())));
        }
    }
    parts.sort();
    for (name, bytes) in &parts {
        total += bytes;
        println!("  {name:<40} {bytes:>15} {:>8}", per(*bytes));
    }
    println!("  {:<40} {total:>15} {:>8}", "data directory", per(total));
    println!("sizes: sled trees, raw (keys + values, before sled's overhead)");
    let mut raw = 0;
    for tree in trees.iter().filter(|tree| !tree.in_memory) {
        let bytes = tree.key_bytes + tree.value_bytes;
        raw += bytes;
        println!(
            "  {:<40} {:>15} {:>8}  ({} sled keys: {} B, values {} B)",
            tree.name,
            bytes,
            per(bytes),
            tree.entries,
            tree.key_bytes,
            tree.value_bytes
        );
    }
    println!("  {:<40} {raw:>15} {:>8}", "all trees, raw", per(raw));
    println!("sizes: trees kept in memory (saved in log/resident.snapshot on close)");
    for tree in trees.iter().filter(|tree| tree.in_memory) {
        let bytes = tree.key_bytes + tree.value_bytes;
        println!(
            "  {:<40} {:>15} {:>8}  ({} records)",
            tree.name,
            bytes,
            per(bytes),
            tree.entries
        );
    }
    Ok(())
}

/// Bytes a file or directory takes on disk (allocated blocks), recursively.
fn disk_bytes(path: &Path) -> u64 {
    use std::os::unix::fs::MetadataExt;
    let Ok(metadata) = std::fs::symlink_metadata(path) else {
        return 0;
    };
    let own = metadata.blocks() * 512;
    if !metadata.is_dir() {
        return own;
    }
    std::fs::read_dir(path)
        .map(|entries| {
            entries
                .filter_map(Result::ok)
                .map(|entry| disk_bytes(&entry.path()))
                .sum::<u64>()
        })
        .unwrap_or(0)
        + own
}

pub async fn run_backup(data: &DataArgs, to: &Path) -> anyhow::Result<()> {
    let to = std::path::absolute(to).with_context(|| format!("resolving {}", to.display()))?;
    let report: lrs_store::backup::BackupReport =
        match crate::control::connect(&data.data_dir).await {
            Some(stream) => {
                eprintln!(
                    "online backup through the running server into {}",
                    to.display()
                );
                let done = crate::control::call(
                    stream,
                    &serde_json::json!({"command": "backup", "to": to}),
                    |progress| {
                        print_progress(Progress {
                            phase: "copying",
                            done: progress["done"].as_u64().unwrap_or_default(),
                            total: progress["total"].as_u64().unwrap_or_default(),
                        })
                    },
                )
                .await?;
                serde_json::from_value(done).context("backup report")?
            }
            None => {
                eprintln!(
                    "offline backup of {} into {}",
                    data.data_dir.display(),
                    to.display()
                );
                let source =
                    lrs_store::backup::OfflineSource::open(&data.data_dir).with_context(|| {
                        format!(
                    "opening {} (a server is running but its control socket does not answer?)",
                    data.data_dir.display()
                )
                    })?;
                let report = lrs_store::backup::backup(&source, &to, print_progress)?;
                lrs_store::backup::record_last_backup(&data.data_dir, &report)?;
                report
            }
        };
    println!(
        "ok: backup in {} now holds entries 1..={} ({} new, {} bytes, vault {} bytes) in {:.1} s; verified",
        to.display(),
        report.to,
        report.entries_copied,
        report.bytes_copied,
        report.vault_bytes,
        report.seconds
    );
    Ok(())
}

pub async fn restore(data: &DataArgs, from: &Path) -> anyhow::Result<()> {
    if data.master_key_file.is_none() && std::env::var(keys::ENV_MASTER_KEY).is_err() {
        anyhow::bail!(
            "restore needs the master key the backup was made under: \
             --master-key-file FILE or {} (backups never contain it)",
            keys::ENV_MASTER_KEY
        );
    }
    let master_key = keys::resolve(&data.data_dir, data.master_key_file.as_ref())?;
    eprintln!(
        "restoring {} into {}: checking every entry against the hash chain",
        from.display(),
        data.data_dir.display()
    );
    let report = lrs_store::backup::restore(from, &data.data_dir, print_progress)?;
    eprintln!(
        "log restored ({} entries in {:.1} s); rebuilding the projections",
        report.head, report.seconds
    );
    let started = std::time::Instant::now();
    let store = match Store::open(data.store_config(master_key)) {
        Ok(store) => store,
        Err(error) => {
            // Leave no restored directory that cannot be opened behind.
            let _ = std::fs::remove_dir_all(&data.data_dir);
            anyhow::bail!(
                "the restored store does not open ({error}); is the master key the one the backup was made under? \
                 {} was removed",
                data.data_dir.display()
            );
        }
    };
    let people = store.vault().len();
    store.close().await?;
    println!(
        "ok: restored {} entries and {people} people into {}; log {:.1} s, projections {:.1} s",
        report.head,
        data.data_dir.display(),
        report.seconds,
        started.elapsed().as_secs_f64()
    );
    Ok(())
}
