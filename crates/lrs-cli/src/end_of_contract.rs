//! End of contract (requirement 2.38): destroys the master key (when the
//! embedded default in the data directory is used), the vault, the log with
//! every projection, the audit and operations files, everything else in the
//! data directory and the named backups, and prints a certificate of what
//! was destroyed (Dutch first, English second, then JSON with its own SHA-256).
//!
//! A dry run (no `--confirm`) lists the same inventory and prints the word
//! to confirm with; the word is derived from the log head and the vault, so
//! a confirmation given for another state of the data is refused. The
//! server must be stopped. The audit trail is destroyed with everything
//! else, so the certificate is the record of this action.

use crate::data::DataArgs;
use anyhow::{bail, Context};
use lrs_store::backup::{BackupSource, OfflineSource};
use serde::Serialize;
use sha2::{Digest, Sha256};
use std::io::Write;
use std::path::{Path, PathBuf};

/// `lrs end-of-contract` arguments.
#[derive(clap::Args)]
pub struct EndOfContractArgs {
    #[command(flatten)]
    pub data: DataArgs,
    /// The word a dry run printed; without it nothing is destroyed.
    #[arg(long)]
    pub confirm: Option<String>,
    /// A backup directory to destroy as well (repeat for each).
    #[arg(long)]
    pub backup: Vec<PathBuf>,
    /// Another file or directory to destroy (e.g. analytics output kept
    /// outside the data directory; repeat for each).
    #[arg(long)]
    pub also: Vec<PathBuf>,
    /// Also write certificate.txt and certificate.json into this directory
    /// (outside everything destroyed).
    #[arg(long)]
    pub certificate_dir: Option<PathBuf>,
}

/// One destroyed (or to-be-destroyed) path.
#[derive(Debug, Clone, Serialize)]
pub struct Destroyed {
    pub path: String,
    /// What it was: master key, vault, log and projections, audit trail, ...
    pub kind: String,
    pub files: u64,
    pub bytes: u64,
    /// Overwritten with random bytes and then zeros before it was unlinked.
    pub overwritten: bool,
}

/// The certificate's content; `sha256` is over the JSON of everything else.
#[derive(Debug, Serialize)]
pub struct Certificate {
    pub certificate: &'static str,
    pub destroyed_at: String,
    pub data_dir: String,
    pub log_head_position: u64,
    pub log_head_hash: String,
    pub statements: u64,
    pub people: u64,
    pub master_key: MasterKeyFate,
    pub paths: Vec<Destroyed>,
    pub total_files: u64,
    pub total_bytes: u64,
    /// Paths that still existed after destruction (empty when it succeeded).
    pub remaining: Vec<String>,
    pub destroyed_by: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct MasterKeyFate {
    /// The embedded default (`<data dir>/master.key`) was used.
    pub embedded: bool,
    pub destroyed: bool,
    pub note: String,
}

/// What is there now.
struct Inventory {
    head_position: u64,
    head_hash: [u8; 32],
    statements: u64,
    people: u64,
    embedded_key: bool,
    paths: Vec<(PathBuf, String)>,
}

const VAULT_MAGIC_LEN: usize = 16;
const VAULT_SLOT: usize = 128;

/// Live people in a vault file: slots whose state byte is 1 (layout in
/// `lrs_store::vault`, docs/adr/0002); counted without the master key.
fn live_slots(vault: &[u8]) -> u64 {
    vault
        .get(VAULT_MAGIC_LEN..)
        .unwrap_or_default()
        .chunks_exact(VAULT_SLOT)
        .filter(|slot| slot[0] == 1)
        .count() as u64
}

fn inventory(args: &EndOfContractArgs) -> anyhow::Result<Inventory> {
    let data_dir = &args.data.data_dir;
    let source = OfflineSource::open(data_dir).with_context(|| {
        format!(
            "opening {} (is it a data directory, and is the server stopped?)",
            data_dir.display()
        )
    })?;
    let head = source.head()?;
    let mut statements = 0;
    for entry in source.log().read_from(1) {
        let entry = entry?;
        if entry.position > head.position {
            break;
        }
        if entry.event.stored_statement().is_some() {
            statements += 1;
        }
    }
    let people = live_slots(&source.vault_bytes()?);
    drop(source);
    let embedded_key = data_dir.join("master.key").exists();
    let mut paths = Vec::new();
    let known = [
        ("master.key", "master key (embedded default)"),
        ("vault", "identity vault"),
        ("log", "event log and every projection"),
        ("audit", "audit trail"),
        ("ops", "operations journal"),
    ];
    for (name, kind) in known {
        if data_dir.join(name).exists() {
            paths.push((data_dir.join(name), kind.to_owned()));
        }
    }
    let mut others: Vec<PathBuf> = std::fs::read_dir(data_dir)?
        .map(|entry| entry.map(|e| e.path()))
        .collect::<Result<_, _>>()?;
    others.sort();
    for path in others {
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default();
        if !known.iter().any(|(k, _)| *k == name) {
            let kind = if name == "analytics" {
                "analytics files"
            } else {
                "other data directory content"
            };
            paths.push((path, kind.to_owned()));
        }
    }
    for backup in &args.backup {
        if !backup.join("manifest.json").exists() {
            bail!(
                "{} is not a backup directory (no manifest.json)",
                backup.display()
            );
        }
        paths.push((backup.clone(), "backup".to_owned()));
    }
    for also in &args.also {
        if !also.exists() {
            bail!("{} does not exist", also.display());
        }
        paths.push((also.clone(), "named by --also".to_owned()));
    }
    Ok(Inventory {
        head_position: head.position,
        head_hash: head.hash,
        statements,
        people,
        embedded_key,
        paths,
    })
}

/// The word that confirms destroying exactly this state.
fn confirmation_word(inventory: &Inventory, data_dir: &Path) -> String {
    let mut hasher = Sha256::new();
    hasher.update(data_dir.to_string_lossy().as_bytes());
    hasher.update(inventory.head_position.to_be_bytes());
    hasher.update(inventory.head_hash);
    hasher.update(inventory.people.to_be_bytes());
    for (path, _) in &inventory.paths {
        hasher.update(path.to_string_lossy().as_bytes());
    }
    format!("vernietig-{}", &hex::encode(hasher.finalize())[..8])
}

/// Files and bytes under a path (itself if a file).
fn measure(path: &Path) -> std::io::Result<(u64, u64)> {
    let metadata = std::fs::symlink_metadata(path)?;
    if !metadata.is_dir() {
        return Ok((1, metadata.len()));
    }
    let (mut files, mut bytes) = (0, 0);
    for entry in std::fs::read_dir(path)? {
        let (f, b) = measure(&entry?.path())?;
        files += f;
        bytes += b;
    }
    Ok((files, bytes))
}

/// Overwrites a file with random bytes, then zeros, syncing each pass.
fn overwrite(path: &Path) -> std::io::Result<()> {
    use rand::RngCore;
    let length = std::fs::metadata(path)?.len() as usize;
    let mut file = std::fs::OpenOptions::new().write(true).open(path)?;
    let mut random = vec![0u8; length];
    rand::rngs::OsRng.fill_bytes(&mut random);
    for pass in [random, vec![0u8; length]] {
        use std::io::Seek;
        file.seek(std::io::SeekFrom::Start(0))?;
        file.write_all(&pass)?;
        file.sync_all()?;
    }
    Ok(())
}

/// Files holding key material under a path: the master key and vault copies.
fn key_material(path: &Path) -> Vec<PathBuf> {
    let name = path
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or_default();
    if path.is_file() {
        return if matches!(name, "master.key" | "vault") {
            vec![path.to_path_buf()]
        } else {
            Vec::new()
        };
    }
    ["master.key", "vault"]
        .iter()
        .map(|n| path.join(n))
        .filter(|p| p.is_file())
        .collect()
}

fn remove(path: &Path) -> std::io::Result<()> {
    if std::fs::symlink_metadata(path)?.is_dir() {
        std::fs::remove_dir_all(path)
    } else {
        std::fs::remove_file(path)
    }
}

fn human(bytes: u64) -> String {
    format!(
        "{bytes} bytes ({:.1} MiB)",
        bytes as f64 / (1024.0 * 1024.0)
    )
}

/// Runs `lrs end-of-contract`.
pub async fn run(args: EndOfContractArgs) -> anyhow::Result<()> {
    let data_dir = std::path::absolute(&args.data.data_dir)?;
    if crate::control::connect(&data_dir).await.is_some() {
        bail!(
            "a server is running on {}: stop it first",
            data_dir.display()
        );
    }
    let inventory = inventory(&args)?;
    let word = confirmation_word(&inventory, &data_dir);
    let mut measured = Vec::new();
    for (path, kind) in &inventory.paths {
        let (files, bytes) = measure(path)?;
        measured.push(Destroyed {
            path: std::path::absolute(path)?.display().to_string(),
            kind: kind.clone(),
            files,
            bytes,
            overwritten: false,
        });
    }
    let Some(confirm) = &args.confirm else {
        println!("DRY RUN / PROEFDRAAI: nothing was destroyed / er is niets vernietigd.");
        println!(
            "log head {} ({}), {} statements, {} people",
            inventory.head_position,
            hex::encode(inventory.head_hash),
            inventory.statements,
            inventory.people
        );
        for path in &measured {
            println!(
                "  would destroy {} ({}): {} files, {}",
                path.path,
                path.kind,
                path.files,
                human(path.bytes)
            );
        }
        if !inventory.embedded_key {
            println!(
                "  the master key is not in the data directory: the customer must destroy it themselves"
            );
        }
        println!("to destroy all of this, run again with --confirm {word}");
        return Ok(());
    };
    if confirm != &word {
        bail!(
            "--confirm {confirm:?} does not match this data (it changed, or the word is of another run): run a dry run again"
        );
    }

    // Key material first: once the master key and the vault are gone, every
    // other copy is noise even if the rest were interrupted.
    let mut overwritten = Vec::new();
    for (path, _) in &inventory.paths {
        for file in key_material(path) {
            overwrite(&file).with_context(|| format!("overwriting {}", file.display()))?;
            overwritten.push(std::path::absolute(&file)?);
        }
    }
    for (path, _) in &inventory.paths {
        remove(path).with_context(|| format!("removing {}", path.display()))?;
    }
    // The data directory itself, if nothing else (a config file) is in it.
    let _ = std::fs::remove_dir(&data_dir);
    for destroyed in &mut measured {
        let path = PathBuf::from(&destroyed.path);
        destroyed.overwritten = overwritten.iter().any(|o| o.starts_with(&path));
    }
    let remaining: Vec<String> = measured
        .iter()
        .filter(|d| Path::new(&d.path).exists())
        .map(|d| d.path.clone())
        .collect();
    let master_key = if inventory.embedded_key {
        MasterKeyFate {
            embedded: true,
            destroyed: true,
            note: "the embedded master key file was overwritten and removed".into(),
        }
    } else {
        MasterKeyFate {
            embedded: false,
            destroyed: false,
            note: "the master key is held by the customer (LRS_MASTER_KEY or --master-key-file): \
                   the customer must destroy it; this LRS holds no copy"
                .into(),
        }
    };
    let certificate = Certificate {
        certificate: "lrs end of contract",
        destroyed_at: lrs_core::statement::format_micros(lrs_core::clock::now_micros()),
        data_dir: data_dir.display().to_string(),
        log_head_position: inventory.head_position,
        log_head_hash: hex::encode(inventory.head_hash),
        statements: inventory.statements,
        people: inventory.people,
        master_key,
        total_files: measured.iter().map(|d| d.files).sum(),
        total_bytes: measured.iter().map(|d| d.bytes).sum(),
        paths: measured,
        remaining,
        destroyed_by: format!(
            "cli:{}",
            std::env::var("USER").unwrap_or_else(|_| "unknown".into())
        ),
    };
    let body = serde_json::to_value(&certificate)?;
    let sha256 = hex::encode(Sha256::digest(serde_json::to_vec(&body)?));
    let mut json = body;
    json["sha256"] = serde_json::Value::String(sha256.clone());
    let text = certificate_text(&certificate, &sha256);
    print!("{text}");
    println!("{}", serde_json::to_string_pretty(&json)?);
    if let Some(dir) = &args.certificate_dir {
        std::fs::create_dir_all(dir)?;
        std::fs::write(dir.join("certificate.txt"), &text)?;
        std::fs::write(
            dir.join("certificate.json"),
            serde_json::to_vec_pretty(&json)?,
        )?;
    }
    if !certificate.remaining.is_empty() {
        bail!(
            "not everything could be destroyed: {:?}",
            certificate.remaining
        );
    }
    Ok(())
}

fn certificate_text(c: &Certificate, sha256: &str) -> String {
    let mut nl = String::new();
    let mut en = String::new();
    use std::fmt::Write as _;
    let _ = writeln!(nl, "VERKLARING VAN VERNIETIGING (einde contract)");
    let _ = writeln!(nl, "Tijdstip: {}", c.destroyed_at);
    let _ = writeln!(nl, "Datamap: {}", c.data_dir);
    let _ = writeln!(
        nl,
        "Log: {} posities, laatste hash {}",
        c.log_head_position, c.log_head_hash
    );
    let _ = writeln!(
        nl,
        "Vernietigd: {} statements, {} personen in de kluis, {} bestanden, {}",
        c.statements,
        c.people,
        c.total_files,
        human(c.total_bytes)
    );
    let _ = writeln!(
        nl,
        "Hoofdsleutel: {}",
        if c.master_key.destroyed {
            "het sleutelbestand in de datamap is overschreven en verwijderd"
        } else {
            "ligt bij de klant (niet in de datamap): de klant moet die zelf vernietigen"
        }
    );
    let _ = writeln!(en, "CERTIFICATE OF DESTRUCTION (end of contract)");
    let _ = writeln!(en, "Time: {}", c.destroyed_at);
    let _ = writeln!(en, "Data directory: {}", c.data_dir);
    let _ = writeln!(
        en,
        "Log: {} positions, last hash {}",
        c.log_head_position, c.log_head_hash
    );
    let _ = writeln!(
        en,
        "Destroyed: {} statements, {} people in the vault, {} files, {}",
        c.statements,
        c.people,
        c.total_files,
        human(c.total_bytes)
    );
    let _ = writeln!(en, "Master key: {}", c.master_key.note);
    let mut paths = String::new();
    for d in &c.paths {
        let _ = writeln!(
            paths,
            "  {} ({}): {} files / bestanden, {}{}",
            d.path,
            d.kind,
            d.files,
            human(d.bytes),
            if d.overwritten {
                "; key material overwritten / sleutelmateriaal overschreven"
            } else {
                ""
            }
        );
    }
    let remaining = if c.remaining.is_empty() {
        "Niets is achtergebleven. / Nothing remains.\n".to_owned()
    } else {
        format!("ACHTERGEBLEVEN / REMAINING: {:?}\n", c.remaining)
    };
    format!(
        "{nl}\n{en}\nPaden / paths:\n{paths}{remaining}SHA-256 van deze verklaring (JSON hieronder zonder dit veld) / of this certificate (the JSON below without this field): {sha256}\n\n"
    )
}
