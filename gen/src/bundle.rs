//! The bundle in memory (path → bytes and file mode), and the one place it is
//! written: into a fresh sibling directory, which then replaces `-o DIR` by rename,
//! so a failed run never leaves half a bundle. What an earlier run left in `pki/` and
//! `secrets/` is read back first, so certificates and passwords survive a re-run.

use anyhow::{Context, Result};
use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

/// Private keys, passwords, and configs that carry a secret.
pub const PRIVATE: u32 = 0o600;
pub const PUBLIC: u32 = 0o644;

#[derive(Debug, Default, Clone)]
pub struct Bundle {
    pub files: BTreeMap<PathBuf, (Vec<u8>, u32)>,
}

impl Bundle {
    pub fn add(&mut self, path: impl Into<PathBuf>, bytes: impl Into<Vec<u8>>, mode: u32) {
        self.files.insert(path.into(), (bytes.into(), mode));
    }

    pub fn get(&self, path: &str) -> Option<&[u8]> {
        self.files.get(Path::new(path)).map(|(b, _)| b.as_slice())
    }

    /// Write the bundle to `out`, replacing what was there.
    pub fn write(&self, out: &Path) -> Result<()> {
        let parent = out
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        fs::create_dir_all(parent).with_context(|| format!("creating {}", parent.display()))?;
        let base = out
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "bundle".into());
        let staging = parent.join(format!(".{base}.canopy-new-{}", std::process::id()));
        let _ = fs::remove_dir_all(&staging);
        let written = self.write_into(&staging);
        if let Err(e) = written {
            let _ = fs::remove_dir_all(&staging);
            return Err(e);
        }
        let old = parent.join(format!(".{base}.canopy-old-{}", std::process::id()));
        if out.exists() {
            fs::rename(out, &old).with_context(|| format!("moving aside {}", out.display()))?;
        }
        if let Err(e) = fs::rename(&staging, out) {
            // Put the previous bundle back.
            let _ = fs::rename(&old, out);
            let _ = fs::remove_dir_all(&staging);
            return Err(e).with_context(|| format!("replacing {}", out.display()));
        }
        let _ = fs::remove_dir_all(&old);
        Ok(())
    }

    fn write_into(&self, dir: &Path) -> Result<()> {
        use std::io::Write;
        use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o755)
            .create(dir)
            .with_context(|| format!("creating {}", dir.display()))?;
        for (path, (bytes, mode)) in &self.files {
            let full = dir.join(path);
            if let Some(p) = full.parent() {
                let private_dir = p.ends_with("secrets");
                fs::DirBuilder::new()
                    .recursive(true)
                    .mode(if private_dir { 0o700 } else { 0o755 })
                    .create(p)
                    .with_context(|| format!("creating {}", p.display()))?;
            }
            // The mode is set at creation: a key is never readable by others, not even briefly.
            let mut f = fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(*mode)
                .open(&full)
                .with_context(|| format!("writing {}", full.display()))?;
            f.write_all(bytes)
                .with_context(|| format!("writing {}", full.display()))?;
        }
        Ok(())
    }
}

/// A password and its bcrypt hash.
#[derive(Debug, Clone)]
pub struct Secret {
    pub password: String,
    pub bcrypt: String,
}

/// The passwords of a bundle, by user (or leaf-link identity): what
/// `render::secrets` decides and the configs carry.
#[derive(Debug, Default, Clone)]
pub struct Secrets {
    pub by_name: BTreeMap<String, Secret>,
}

impl Secrets {
    pub fn get(&self, name: &str) -> Option<&Secret> {
        self.by_name.get(name)
    }
}

/// Files an earlier run left in `pki/` and `secrets/`, which a re-run keeps.
#[derive(Debug, Default, Clone)]
pub struct Existing {
    pub files: BTreeMap<String, Vec<u8>>,
}

impl Existing {
    pub fn read(out: &Path) -> Result<Existing> {
        let mut e = Existing::default();
        for sub in ["pki", "secrets"] {
            let dir = out.join(sub);
            let Ok(entries) = fs::read_dir(&dir) else {
                continue;
            };
            for entry in entries {
                let entry = entry?;
                if !entry.file_type()?.is_file() {
                    continue;
                }
                let name = format!("{sub}/{}", entry.file_name().to_string_lossy());
                let bytes = fs::read(entry.path())
                    .with_context(|| format!("reading {}", entry.path().display()))?;
                e.files.insert(name, bytes);
            }
        }
        Ok(e)
    }

    pub fn get(&self, path: &str) -> Option<&[u8]> {
        self.files.get(path).map(Vec::as_slice)
    }

    pub fn text(&self, path: &str) -> Option<String> {
        self.get(path)
            .and_then(|b| String::from_utf8(b.to_vec()).ok())
    }
}
