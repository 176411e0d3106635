//! Files the store keeps beside sled's own in the log directory (the
//! posting lists' and resident trees' snapshots, the resident journal),
//! each replaced whole.

use std::path::Path;

/// Replaces the file at `path` with what `write` writes: a temporary file
/// beside it (`<name>.tmp`), synced, then renamed over it, so that a crash
/// leaves the old file or the new one, never a part.
pub(crate) fn replace(
    path: &Path,
    write: impl FnOnce(&mut std::fs::File) -> std::io::Result<()>,
) -> std::io::Result<()> {
    let mut name = path.file_name().expect("a file's path").to_os_string();
    name.push(".tmp");
    let temporary = path.with_file_name(name);
    let mut file = std::fs::File::create(&temporary)?;
    write(&mut file)?;
    file.sync_all()?;
    std::fs::rename(&temporary, path)
}
