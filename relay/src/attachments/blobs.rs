//! The blob directory, `DATA/blobs`: one file per distinct content, named by its
//! SHA-256 (a file sent to two meetings is stored once), and `partial/` with the
//! uploads in progress, named by upload id. Blocking file I/O: callers run it
//! off the hub thread (`spawn_blocking`, or the hub thread's hourly purge for deletes).

use std::fs::{self, File};
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};
use uuid::Uuid;

use super::sniff::{self, Refused};

/// Why a complete upload was not stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SealError {
    /// Size or SHA-256 differ from what was declared.
    Mismatch,
    Refused(Refused),
}

#[derive(Debug, Clone)]
pub struct BlobDir {
    root: PathBuf,
}

impl BlobDir {
    /// Opens `data_dir/blobs` (owner-only), creating it; partial uploads of an
    /// earlier run are dropped (their tokens died with it).
    pub fn open(data_dir: &Path) -> std::io::Result<BlobDir> {
        let root = data_dir.join("blobs");
        clinicmeet_sqlite::private_dir(&root)?;
        let partial = root.join("partial");
        if partial.exists() {
            fs::remove_dir_all(&partial)?;
        }
        clinicmeet_sqlite::private_dir(&partial)?;
        Ok(BlobDir { root })
    }

    pub fn partial_path(&self, upload: Uuid) -> PathBuf {
        self.root.join("partial").join(upload.to_string())
    }

    /// The stored content with this SHA-256 (hex, checked by the caller).
    pub fn blob_path(&self, sha256: &str) -> PathBuf {
        self.root.join(sha256)
    }

    /// Checks the complete partial file (size, SHA-256, type from content), then
    /// makes it the blob: synced, renamed to its hash, the directory synced. A
    /// refused or mismatching file is deleted. Returns the MIME type.
    pub fn seal(
        &self,
        upload: Uuid,
        size: u64,
        sha256: &str,
    ) -> std::io::Result<Result<&'static str, SealError>> {
        let path = self.partial_path(upload);
        let blob = self.blob_path(sha256);
        if !path.exists() && blob.exists() {
            // Sealed before (checked then); only its record is missing.
            let mut f = File::open(&blob)?;
            let len = f.metadata()?.len();
            return Ok(sniff::sniff(&mut f, len)?.map_err(SealError::Refused));
        }
        let mut f = File::open(&path)?;
        let len = f.metadata()?.len();
        let mut hasher = Sha256::new();
        let mut buf = vec![0u8; 256 * 1024];
        loop {
            let n = f.read(&mut buf)?;
            if n == 0 {
                break;
            }
            hasher.update(&buf[..n]);
        }
        let hex: String = hasher.finalize().iter().map(|b| format!("{b:02x}")).collect();
        if len != size || hex != sha256 {
            let _ = fs::remove_file(&path);
            return Ok(Err(SealError::Mismatch));
        }
        f.seek(SeekFrom::Start(0))?;
        let mime = match sniff::sniff(&mut f, len)? {
            Ok(m) => m,
            Err(r) => {
                let _ = fs::remove_file(&path);
                return Ok(Err(SealError::Refused(r)));
            }
        };
        File::options().write(true).open(&path)?.sync_all()?;
        fs::rename(&path, &blob)?;
        File::open(&self.root)?.sync_all()?;
        Ok(Ok(mime))
    }

    pub fn remove_partial(&self, upload: Uuid) {
        let _ = fs::remove_file(self.partial_path(upload));
    }

    /// The hashes of the stored blobs.
    pub fn list(&self) -> std::io::Result<Vec<String>> {
        let mut out = Vec::new();
        for e in fs::read_dir(&self.root)? {
            let name = e?.file_name();
            if let Some(n) = name.to_str().filter(|n| clinicmeet_protocol::transfer::is_sha256_hex(n)) {
                out.push(n.to_string());
            }
        }
        Ok(out)
    }

    /// Deletes the blobs `keep` says no to; returns how many went.
    pub fn sweep(&self, mut keep: impl FnMut(&str) -> bool) -> std::io::Result<usize> {
        let mut n = 0;
        for sha in self.list()? {
            if !keep(&sha) {
                fs::remove_file(self.blob_path(&sha))?;
                n += 1;
            }
        }
        if n > 0 {
            File::open(&self.root)?.sync_all()?;
        }
        Ok(n)
    }
}

/// Lower-case hex SHA-256 of `bytes`.
pub fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes).iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seal_checks_hash_and_type_and_keeps_one_copy_per_content() {
        let dir = tempfile::tempdir().unwrap();
        let blobs = BlobDir::open(dir.path()).unwrap();
        let pdf = b"%PDF-1.4\nlab results\n%%EOF\n".to_vec();
        let sha = sha256_hex(&pdf);
        let up = Uuid::now_v7();
        fs::write(blobs.partial_path(up), &pdf).unwrap();
        assert_eq!(blobs.seal(up, pdf.len() as u64, &sha).unwrap(), Ok("application/pdf"));
        assert_eq!(fs::read(blobs.blob_path(&sha)).unwrap(), pdf);
        assert!(!blobs.partial_path(up).exists());

        // Wrong declared hash: refused and the partial file is gone.
        let up = Uuid::now_v7();
        fs::write(blobs.partial_path(up), &pdf).unwrap();
        assert_eq!(blobs.seal(up, pdf.len() as u64, &"0".repeat(64)).unwrap(), Err(SealError::Mismatch));
        assert!(!blobs.partial_path(up).exists());

        // An ELF is refused even with the right hash.
        let elf = b"\x7fELF\x02\x01\x01\0\0\0".to_vec();
        let up = Uuid::now_v7();
        fs::write(blobs.partial_path(up), &elf).unwrap();
        assert_eq!(
            blobs.seal(up, elf.len() as u64, &sha256_hex(&elf)).unwrap(),
            Err(SealError::Refused(Refused::Executable))
        );
        assert_eq!(blobs.list().unwrap(), vec![sha.clone()]);
        assert_eq!(blobs.sweep(|s| s != sha).unwrap(), 1);
        assert!(blobs.list().unwrap().is_empty());
    }
}
