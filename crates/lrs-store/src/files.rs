//! Files the store keeps beside sled's own in the log directory (the
//! posting lists' and resident trees' snapshots, the resident journal), a
//! backup's manifest and the audit trail's anchor: each replaced whole.

use std::path::Path;

/// Replaces the file at `path` with what `write` writes: a temporary file
/// beside it (`<name>.tmp`), synced, renamed over it, then the directory
/// synced, so that a crash leaves the old file or the new one, never a
/// part, and a replacement that returned survives a power cut (the rename
/// is an entry in the directory, durable only once the directory is).
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
    drop(file);
    std::fs::rename(&temporary, path)?;
    sync_dir(path.parent().unwrap_or(Path::new(".")))
}

/// Makes the entries of `dir` (a file created, renamed or removed in it)
/// durable.
pub(crate) fn sync_dir(dir: &Path) -> std::io::Result<()> {
    let dir = if dir.as_os_str().is_empty() {
        Path::new(".")
    } else {
        dir
    };
    std::fs::File::open(dir)?.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn a_replacement_leaves_the_new_file_and_no_temporary() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("anchor");
        replace(&path, |file| file.write_all(b"one")).unwrap();
        replace(&path, |file| file.write_all(b"two")).unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"two");
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|entry| entry.unwrap().file_name())
            .collect();
        assert_eq!(names, ["anchor"]);
    }

    #[test]
    fn a_failed_write_keeps_the_old_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("manifest.json");
        replace(&path, |file| file.write_all(b"old")).unwrap();
        let failed = replace(&path, |file| {
            file.write_all(b"half")?;
            Err(std::io::Error::other("disk full"))
        });
        assert!(failed.is_err());
        assert_eq!(std::fs::read(&path).unwrap(), b"old");
    }
}
