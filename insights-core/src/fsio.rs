//! Crash-safe file writing: the one implementation every crate uses.
//!
//! The protocol (as in garage's block manager): write a temporary file in
//! the target's own directory (so the rename is atomic), fsync it, rename
//! it into place (or hard-link it, for "first writer wins"), then fsync the
//! directory so the new name itself is durable. A reader or a crash sees
//! the old content or the new one, never a mix, and never a name that
//! points at unsynced data.
//!
//! Files are created with mode 0600 whatever the umask, directories with
//! 0700: everything these helpers write (keys, journals, certificates,
//! bundles) is private to the service account.
//!
//! The functions are blocking; async callers wrap them in
//! `tokio::task::spawn_blocking`.

use std::fs::{self, File, OpenOptions, Permissions};
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// Fsyncs a directory, making renames, creations and removals in it
/// durable.
pub fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// Creates a directory (and its missing parents) with mode 0700.
pub fn create_dir_private(dir: &Path) -> io::Result<()> {
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
}

/// The directory of `path` (`.` for a bare file name).
fn parent_of(path: &Path) -> PathBuf {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

/// Writes `data` to a new temporary file (0600) beside `path` and fsyncs
/// it; returns the temporary path. The caller renames or links it.
fn write_temp(path: &Path, data: &[u8]) -> io::Result<PathBuf> {
    let dir = parent_of(path);
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "file".into());
    let tmp = dir.join(format!(".{name}.tmp-{}", uuid::Uuid::new_v4().simple()));
    let written = (|| -> io::Result<()> {
        let mut f = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)?;
        // Exactly 0600, whatever the umask.
        f.set_permissions(Permissions::from_mode(0o600))?;
        f.write_all(data)?;
        f.sync_all()
    })();
    match written {
        Ok(()) => Ok(tmp),
        Err(e) => {
            let _ = fs::remove_file(&tmp);
            Err(e)
        }
    }
}

/// Replaces `path` with `data` crash-safely (temporary file, fsync,
/// rename, fsync of the directory). The directory must exist.
pub fn write_atomic(path: &Path, data: &[u8]) -> io::Result<()> {
    let tmp = write_temp(path, data)?;
    if let Err(e) = fs::rename(&tmp, path) {
        let _ = fs::remove_file(&tmp);
        return Err(e);
    }
    sync_dir(&parent_of(path))
}

/// Like [`write_atomic`], and overwrites the previous version's bytes with
/// zeros once the new one is durable (for secrets: key files). A failure to
/// scrub is returned as `Ok(Some(error))` because the write itself stood.
pub fn write_atomic_scrubbing(path: &Path, data: &[u8]) -> io::Result<Option<io::Error>> {
    let tmp = write_temp(path, data)?;
    // The previous version, opened before the rename unlinks its name.
    let previous = OpenOptions::new().write(true).open(path).ok();
    if let Err(e) = fs::rename(&tmp, path) {
        let _ = fs::remove_file(&tmp);
        return Err(e);
    }
    sync_dir(&parent_of(path))?;
    Ok(previous.and_then(|f| scrub(f).err()))
}

/// Creates `path` with `data` only if nothing exists there yet, crash-safely
/// (temporary file, fsync, hard link, fsync of the directory). Returns
/// `false`, leaving the existing file alone, when another writer got there
/// first: its content wins.
pub fn create_new_atomic(path: &Path, data: &[u8]) -> io::Result<bool> {
    let tmp = write_temp(path, data)?;
    let linked = fs::hard_link(&tmp, path);
    let _ = fs::remove_file(&tmp);
    match linked {
        Ok(()) => {
            sync_dir(&parent_of(path))?;
            Ok(true)
        }
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(false),
        Err(e) => Err(e),
    }
}

/// Overwrites an open file's bytes with zeros and syncs it.
pub fn scrub(mut file: File) -> io::Result<()> {
    let len = file.metadata()?.len();
    let zeros = [0u8; 4096];
    let mut left = len;
    while left > 0 {
        let n = left.min(zeros.len() as u64) as usize;
        file.write_all(&zeros[..n])?;
        left -= n as u64;
    }
    file.sync_all()
}

/// Total size of the regular files below `dir` (`DirEntry::metadata` does not follow links; 0
/// when it cannot be read).
pub fn tree_size(dir: &Path) -> u64 {
    let Ok(rd) = fs::read_dir(dir) else {
        return 0;
    };
    rd.flatten()
        .map(|e| match e.metadata() {
            Ok(m) if m.is_dir() => tree_size(&e.path()),
            Ok(m) if m.is_file() => m.len(),
            _ => 0,
        })
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mode(p: &Path) -> u32 {
        fs::metadata(p)
            .map(|m| m.permissions().mode() & 0o777)
            .unwrap_or(0)
    }

    fn leftovers(dir: &Path) -> Vec<String> {
        fs::read_dir(dir)
            .map(|rd| {
                rd.flatten()
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .filter(|n| n.contains(".tmp-"))
                    .collect()
            })
            .unwrap_or_default()
    }

    #[test]
    fn write_atomic_replaces_with_mode_0600_and_no_temp_left() -> io::Result<()> {
        let dir = tempfile::tempdir()?;
        let p = dir.path().join("f.json");
        write_atomic(&p, b"one")?;
        write_atomic(&p, b"two")?;
        assert_eq!(fs::read(&p)?, b"two");
        assert_eq!(mode(&p), 0o600);
        assert!(leftovers(dir.path()).is_empty());
        Ok(())
    }

    #[test]
    fn write_atomic_fails_without_the_directory() {
        let dir = tempfile::tempdir().ok();
        let p = dir
            .as_ref()
            .map(|d| d.path().join("missing/f"))
            .unwrap_or_default();
        assert!(write_atomic(&p, b"x").is_err());
    }

    #[test]
    fn create_new_atomic_keeps_the_first_writer() -> io::Result<()> {
        let dir = tempfile::tempdir()?;
        let p = dir.path().join("key");
        assert!(create_new_atomic(&p, b"first")?);
        assert!(!create_new_atomic(&p, b"second")?);
        assert_eq!(fs::read(&p)?, b"first");
        assert_eq!(mode(&p), 0o600);
        assert!(leftovers(dir.path()).is_empty());
        Ok(())
    }

    #[test]
    fn scrubbing_write_zeroes_the_previous_version() -> io::Result<()> {
        let dir = tempfile::tempdir()?;
        let p = dir.path().join("keys.json");
        write_atomic(&p, b"old secret")?;
        // A second name for the old inode shows what happened to its bytes.
        let old = dir.path().join("old-link");
        fs::hard_link(&p, &old)?;
        assert!(write_atomic_scrubbing(&p, b"new")?.is_none());
        assert_eq!(fs::read(&p)?, b"new");
        assert_eq!(fs::read(&old)?, vec![0u8; 10]);
        Ok(())
    }

    #[test]
    fn private_dirs_and_tree_size() -> io::Result<()> {
        let dir = tempfile::tempdir()?;
        let d = dir.path().join("a/b");
        create_dir_private(&d)?;
        assert_eq!(mode(&d), 0o700);
        write_atomic(&d.join("x"), &[1; 10])?;
        write_atomic(&dir.path().join("a/y"), &[1; 5])?;
        assert_eq!(tree_size(dir.path()), 15);
        assert_eq!(tree_size(&dir.path().join("nope")), 0);
        Ok(())
    }
}
