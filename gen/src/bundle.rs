//! The bundle in memory (path → bytes and file mode), and the one place it is
//! written: in place, owning only the files its manifest lists (see
//! [`Bundle::write`]). What an earlier run left in `pki/` and `secrets/` is read back
//! first, so certificates and passwords survive a re-run.

use anyhow::{Context, Result};
use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};

/// Private keys, passwords, and configs that carry a secret.
pub const PRIVATE: u32 = 0o600;
/// The list of files a bundle's generator wrote, at the bundle's root.
pub const MANIFEST: &str = ".canopy-manifest";
/// What a Terraform root keeps beside its code and must not commit.
const TERRAFORM_IGNORES: &[&str] = &[
    "*.tfstate",
    "*.tfstate.*",
    ".terraform/",
    ".terraform.tfstate.lock.info",
    "crash.log",
    "terraform.tfvars",
];
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

    /// Write the bundle into `out`, in place, owning only what it writes.
    ///
    /// `out/.canopy-manifest` lists every file an earlier run wrote. Those are replaced
    /// (or removed when this bundle no longer has them); anything else in `out` — a
    /// `.git`, tfvars and Terraform state, `bin/`, notes — is never touched. Into a
    /// directory that holds files but no manifest, or over a file gen did not write,
    /// gen refuses unless `force`, and even then deletes nothing it did not write.
    /// Every file is written to a staging directory inside `out` first and then moved
    /// into place, so a run that fails while writing leaves the old bundle as it was.
    pub fn write(&self, out: &Path, force: bool) -> Result<()> {
        fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
        let owned = read_manifest(out)?;
        if owned.is_none() && !force && has_entries(out)? {
            anyhow::bail!(
                "{} is not empty and holds no canopy bundle (no {MANIFEST}): refusing to write \
                 into it. Choose an empty or new directory, or pass --force to write the bundle \
                 beside what is there (gen never deletes a file it did not write; a bundle from \
                 a canopy without manifests needs --force once)",
                out.display()
            );
        }
        let owned = owned.unwrap_or_default();
        // A file gen did not write is a clash unless it already holds exactly what gen
        // would write (a pki/ or secrets/ brought along: gen reuses those).
        let clashes: Vec<String> = self
            .files
            .iter()
            .filter(|(p, (bytes, _))| {
                let full = out.join(p);
                !owned.contains(*p)
                    && full.symlink_metadata().is_ok()
                    && fs::read(&full).ok().as_ref() != Some(bytes)
            })
            .map(|(p, _)| p.display().to_string())
            .collect();
        if !clashes.is_empty() && !force {
            anyhow::bail!(
                "gen would overwrite {} in {}, which it did not write: move {} away, or pass \
                 --force to overwrite",
                clashes.join(", "),
                out.display(),
                if clashes.len() == 1 { "it" } else { "them" }
            );
        }
        let staging = out.join(format!(".canopy-staging-{}", std::process::id()));
        let _ = fs::remove_dir_all(&staging);
        if let Err(e) = self.write_into(&staging) {
            let _ = fs::remove_dir_all(&staging);
            return Err(e);
        }
        let moved = self.move_into_place(&staging, out);
        let _ = fs::remove_dir_all(&staging);
        moved?;
        for gone in owned.iter().filter(|p| !self.files.contains_key(*p)) {
            remove_owned(out, gone);
        }
        write_manifest(out, self.files.keys())
    }

    /// Rename every staged file over its place in `out`.
    fn move_into_place(&self, staging: &Path, out: &Path) -> Result<()> {
        use std::os::unix::fs::DirBuilderExt;
        for path in self.files.keys() {
            let to = out.join(path);
            if let Some(p) = to.parent() {
                fs::DirBuilder::new()
                    .recursive(true)
                    .mode(if p.ends_with("secrets") { 0o700 } else { 0o755 })
                    .create(p)
                    .with_context(|| format!("creating {}", p.display()))?;
            }
            fs::rename(staging.join(path), &to)
                .with_context(|| format!("writing {}", to.display()))?;
        }
        Ok(())
    }

    /// A `.gitignore` in every directory that holds a private file (mode 0600: keys,
    /// passwords, configs that carry one), naming those files; and in every Terraform
    /// root, its state, plugins and variables. A team can commit the rest of the
    /// bundle; the ignore files sit beside what they cover, so they never clash with
    /// a repository's own `.gitignore`.
    pub fn add_gitignores(&mut self) {
        let mut by_dir: BTreeMap<PathBuf, Vec<String>> = BTreeMap::new();
        for (path, (_, mode)) in &self.files {
            let dir = path.parent().unwrap_or(Path::new("")).to_path_buf();
            if *mode == PRIVATE {
                let name = path.file_name().map(|n| n.to_string_lossy().into_owned());
                by_dir
                    .entry(dir)
                    .or_default()
                    .extend(name.map(|n| format!("/{n}")));
            } else if path.extension().is_some_and(|e| e == "tf")
                && path.starts_with("terraform")
                && !path.starts_with("terraform/modules")
            {
                let entry = by_dir.entry(dir).or_default();
                for rule in TERRAFORM_IGNORES {
                    if !entry.iter().any(|r| r == rule) {
                        entry.push(rule.to_string());
                    }
                }
            }
        }
        for (dir, mut rules) in by_dir {
            rules.sort();
            rules.dedup();
            let mut text = String::from(
                "# Written by canopy gen: what must not be committed (secrets, keys, state).\n",
            );
            for r in rules {
                text.push_str(&r);
                text.push('\n');
            }
            // In secrets/ every file is private, this one too (git reads it all the same).
            let mode = if dir.ends_with("secrets") {
                PRIVATE
            } else {
                PUBLIC
            };
            self.add(dir.join(".gitignore"), text, mode);
        }
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

const MANIFEST_HEADER: &str = "# canopy bundle manifest: the files canopy gen wrote here. A re-run replaces\n# or removes these and never touches anything else in this directory.\n";

/// The files an earlier run wrote, or `None` when `out` holds no manifest.
fn read_manifest(out: &Path) -> Result<Option<BTreeSet<PathBuf>>> {
    let path = out.join(MANIFEST);
    let text = match fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
    };
    let mut owned = BTreeSet::new();
    for line in text.lines().map(str::trim) {
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        // Only plain relative paths inside the bundle: a hand-edited manifest cannot
        // make gen remove anything outside it.
        let p = Path::new(line);
        let plain = p
            .components()
            .all(|c| matches!(c, std::path::Component::Normal(_)));
        if plain {
            owned.insert(p.to_path_buf());
        }
    }
    Ok(Some(owned))
}

fn write_manifest<'a>(out: &Path, files: impl Iterator<Item = &'a PathBuf>) -> Result<()> {
    let mut text = String::from(MANIFEST_HEADER);
    for f in files {
        text.push_str(&f.to_string_lossy());
        text.push('\n');
    }
    let tmp = out.join(format!("{MANIFEST}.new"));
    fs::write(&tmp, text).with_context(|| format!("writing {}", tmp.display()))?;
    fs::rename(&tmp, out.join(MANIFEST)).with_context(|| format!("writing {MANIFEST}"))
}

/// Whether `dir` holds anything besides `pki/` and `secrets/` (what gen reads back
/// and reuses: a directory seeded with them is a bundle to be).
fn has_entries(dir: &Path) -> Result<bool> {
    for e in fs::read_dir(dir).with_context(|| format!("reading {}", dir.display()))? {
        let e = e?;
        let name = e.file_name();
        let reused = (name == "pki" || name == "secrets") && e.file_type()?.is_dir();
        if !reused {
            return Ok(true);
        }
    }
    Ok(false)
}

/// Remove a file an earlier run wrote and this one does not, then the directories it
/// leaves empty (up to the bundle's root).
fn remove_owned(out: &Path, path: &Path) {
    let full = out.join(path);
    if fs::symlink_metadata(&full).is_ok_and(|m| m.is_file()) {
        let _ = fs::remove_file(&full);
    }
    let mut dir = full.parent();
    while let Some(d) = dir.filter(|d| *d != out && d.starts_with(out)) {
        if fs::remove_dir(d).is_err() {
            break;
        }
        dir = d.parent();
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
