//! Archives as inputs: `.tar.gz`/`.tgz`/`.tar` (a sysdiagnose is a tarball) and `.zip`.
//!
//! Members are read in archive order, streamed (a log member is never held in memory);
//! each is reported as `archive.tar.gz:inner/path`. Directories, links, hidden files
//! (`._*` AppleDouble files included) and nested archives are skipped.

use std::fs::File;
use std::io::{BufReader, Read};
use std::path::{Path, PathBuf};

/// An archive that could not be read.
#[derive(Debug, thiserror::Error)]
#[error("{}: {message}", path.display())]
pub struct ArchiveError {
    /// The archive.
    pub path: PathBuf,
    /// What went wrong.
    pub message: String,
}

impl ArchiveError {
    /// A stable identifier.
    pub fn name(&self) -> &'static str {
        "archive"
    }
}

/// What kind of archive a path names (by extension).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ArchiveKind {
    /// `.tar.gz` / `.tgz`.
    TarGz,
    /// `.tar`.
    Tar,
    /// `.zip`.
    Zip,
}

/// The archive kind of a path, from its name.
pub fn archive_kind(path: &Path) -> Option<ArchiveKind> {
    let name = path.file_name()?.to_string_lossy().to_ascii_lowercase();
    if name.ends_with(".tar.gz") || name.ends_with(".tgz") {
        Some(ArchiveKind::TarGz)
    } else if name.ends_with(".tar") {
        Some(ArchiveKind::Tar)
    } else if name.ends_with(".zip") {
        Some(ArchiveKind::Zip)
    } else {
        None
    }
}

/// Whether a path is an archive triage opens.
pub fn is_archive(path: &Path) -> bool {
    archive_kind(path).is_some()
}

fn skip_member(inner: &str) -> bool {
    let base = inner.rsplit('/').next().unwrap_or(inner);
    base.is_empty() || base.starts_with('.') || is_archive(Path::new(base))
}

/// Call `f(inner_path, reader)` for every regular file in the archive.
pub fn for_each_member(
    path: &Path,
    f: &mut dyn FnMut(&str, &mut dyn Read),
) -> Result<(), ArchiveError> {
    let err = |message: String| ArchiveError {
        path: path.to_path_buf(),
        message,
    };
    let kind = archive_kind(path).ok_or_else(|| err("not an archive".into()))?;
    let file = File::open(path).map_err(|e| err(e.to_string()))?;
    match kind {
        ArchiveKind::TarGz => {
            tar_members(flate2::read::MultiGzDecoder::new(BufReader::new(file)), f).map_err(err)
        }
        ArchiveKind::Tar => tar_members(BufReader::new(file), f).map_err(err),
        ArchiveKind::Zip => zip_members(file, f).map_err(err),
    }
}

fn tar_members(r: impl Read, f: &mut dyn FnMut(&str, &mut dyn Read)) -> Result<(), String> {
    let mut ar = tar::Archive::new(r);
    let entries = ar.entries().map_err(|e| format!("tar: {e}"))?;
    for entry in entries {
        let mut entry = entry.map_err(|e| format!("tar: {e}"))?;
        if !entry.header().entry_type().is_file() {
            continue;
        }
        let inner = match entry.path() {
            Ok(p) => p.to_string_lossy().trim_start_matches("./").to_string(),
            Err(e) => return Err(format!("tar: bad member name: {e}")),
        };
        if skip_member(&inner) {
            continue;
        }
        f(&inner, &mut entry);
    }
    Ok(())
}

fn zip_members(file: File, f: &mut dyn FnMut(&str, &mut dyn Read)) -> Result<(), String> {
    let mut ar = zip::ZipArchive::new(BufReader::new(file)).map_err(|e| format!("zip: {e}"))?;
    for i in 0..ar.len() {
        let mut member = ar.by_index(i).map_err(|e| format!("zip: {e}"))?;
        if !member.is_file() {
            continue;
        }
        let inner = match member.name() {
            Ok(n) => n.to_string(),
            Err(e) => return Err(format!("zip: bad member name: {e}")),
        };
        if skip_member(&inner) || inner.starts_with("__MACOSX/") {
            continue;
        }
        f(&inner, &mut member);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_by_name() {
        assert_eq!(
            archive_kind(Path::new("sysdiagnose_2026.tar.gz")),
            Some(ArchiveKind::TarGz)
        );
        assert_eq!(archive_kind(Path::new("x.TGZ")), Some(ArchiveKind::TarGz));
        assert_eq!(archive_kind(Path::new("logs.zip")), Some(ArchiveKind::Zip));
        assert_eq!(archive_kind(Path::new("a.ips")), None);
        assert!(skip_member("dir/._panic.ips"));
        assert!(skip_member("dir/inner.zip"));
        assert!(!skip_member("dir/panic.ips"));
    }

    #[test]
    fn corrupt_archive_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("bad.tar.gz");
        std::fs::write(&p, b"not gzip at all").unwrap();
        let e = for_each_member(&p, &mut |_, _| {}).unwrap_err();
        assert!(e.to_string().contains("bad.tar.gz: tar:"), "{e}");
        let p = dir.path().join("bad.zip");
        std::fs::write(&p, b"PK nope").unwrap();
        assert!(for_each_member(&p, &mut |_, _| {}).is_err());
    }
}
