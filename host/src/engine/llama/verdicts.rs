//! The load probe's verdicts, remembered across runs: one small file per (probe build, model
//! file) under the host's cache folder, so that a file checked once is not loaded twice by
//! every later run.
//!
//! A model file is known by its identity (device, inode, size, modification time) and by its
//! content: the Hugging Face cache's SHA-256 when the file is a blob of that cache (its name),
//! else a SHA-256 of its header and tensor-info region (what llama.cpp's parser reads before
//! the weights). A change to any of them is another file, probed again. The probe itself is
//! known by its program (path, size, modification time) and arguments, so a new build of the
//! host, or another CPU variant, probes again too.

use sha2::{Digest, Sha256};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::UNIX_EPOCH;

/// Bytes of a file hashed when its GGUF header cannot be read (the probe is still asked).
const UNPARSED_REGION: u64 = 16 << 20;

/// Most bytes of a header and tensor-info region hashed; a larger region is hashed to here
/// (its size and the file's identity still count).
const MAX_REGION: u64 = 256 << 20;

/// The probe's verdict on a file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// llama.cpp loaded it in the child.
    Loads,
    /// The child crashed or refused it; why, without the file's path.
    Refused(String),
}

/// The host's cache folder: `TABAGENT_CACHE_DIR`, else `$XDG_CACHE_HOME/tabagent`, else
/// `~/.cache/tabagent`.
pub fn host_cache_dir() -> Option<PathBuf> {
    let from = |k: &str| std::env::var_os(k).filter(|v| !v.is_empty()).map(PathBuf::from);
    from("TABAGENT_CACHE_DIR")
        .or_else(|| from("XDG_CACHE_HOME").map(|d| d.join("tabagent")))
        .or_else(|| from("HOME").map(|d| d.join(".cache").join("tabagent")))
}

/// Verdicts kept in a folder.
#[derive(Debug)]
pub(crate) struct VerdictStore {
    dir: PathBuf,
    /// What identifies the probe program and its arguments.
    probe_id: String,
}

impl VerdictStore {
    /// The store for a probe that runs `program args…`, in `dir`.
    pub(crate) fn new(dir: PathBuf, program: &Path, args: &[String]) -> Self {
        let meta = std::fs::metadata(program).ok();
        let probe_id = format!(
            "{}\0{}\0{}\0{}",
            program.display(),
            meta.as_ref().map_or(0, std::fs::Metadata::len),
            meta.as_ref().and_then(|m| m.modified().ok()).map_or(0, nanos),
            args.join("\0")
        );
        Self { dir, probe_id }
    }

    /// The key of a file as it is now; `None` when it cannot be read.
    pub(crate) fn key(&self, path: &Path) -> Option<String> {
        let meta = std::fs::metadata(path).ok()?;
        let mut h = Sha256::new();
        h.update(self.probe_id.as_bytes());
        h.update(identity(&meta).as_bytes());
        h.update(content_id(path, meta.len())?.as_bytes());
        Some(hex(&h.finalize()))
    }

    /// The verdict kept under `key`, if any.
    pub(crate) fn get(&self, key: &str) -> Option<Verdict> {
        let text = std::fs::read_to_string(self.file(key)).ok()?;
        match text.split_once('\n') {
            Some(("loads", _)) => Some(Verdict::Loads),
            Some(("refused", why)) => Some(Verdict::Refused(why.to_string())),
            // A torn or foreign file is no verdict: the probe runs again and rewrites it.
            _ => None,
        }
    }

    /// Keep a verdict under `key` (written whole or not at all). A store that cannot be
    /// written only costs later runs a probe.
    pub(crate) fn put(&self, key: &str, verdict: &Verdict) {
        let text = match verdict {
            Verdict::Loads => "loads\n".to_string(),
            Verdict::Refused(why) => format!("refused\n{why}"),
        };
        let write = || -> std::io::Result<()> {
            std::fs::create_dir_all(&self.dir)?;
            let tmp = self.dir.join(format!(".{key}.{}", std::process::id()));
            std::fs::write(&tmp, text)?;
            std::fs::rename(&tmp, self.file(key))
        };
        if let Err(e) = write() {
            tracing::debug!("cannot keep the load probe's verdict in {}: {e}", self.dir.display());
        }
    }

    fn file(&self, key: &str) -> PathBuf {
        self.dir.join(format!("{key}.verdict"))
    }
}

fn nanos(t: std::time::SystemTime) -> u128 {
    t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_nanos())
}

#[cfg(unix)]
fn identity(meta: &std::fs::Metadata) -> String {
    use std::os::unix::fs::MetadataExt;
    format!("{}:{}:{}:{}", meta.dev(), meta.ino(), meta.len(), meta.modified().map_or(0, nanos))
}

#[cfg(not(unix))]
fn identity(meta: &std::fs::Metadata) -> String {
    format!("{}:{}", meta.len(), meta.modified().map_or(0, nanos))
}

/// The Hugging Face cache's SHA-256 of a blob (its file name), or a SHA-256 of the file's
/// header and tensor-info region.
fn content_id(path: &Path, size: u64) -> Option<String> {
    let real = std::fs::canonicalize(path).ok()?;
    let name = real.file_name().and_then(|n| n.to_str()).unwrap_or("");
    let in_blobs = real.parent().and_then(Path::file_name).is_some_and(|p| p == "blobs");
    if in_blobs && name.len() == 64 && name.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Some(format!("hub-sha256:{name}"));
    }
    let region = tabagent_gguf::GgufFile::open(&real)
        .map_or(UNPARSED_REGION, |g| g.data_offset)
        .min(size)
        .min(MAX_REGION);
    let mut h = Sha256::new();
    let mut file = std::fs::File::open(&real).ok()?.take(region);
    let mut buf = vec![0u8; 1 << 16];
    loop {
        let n = file.read(&mut buf).ok()?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Some(format!("header-sha256:{region}:{}", hex(&h.finalize())))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scratch(name: &str) -> PathBuf {
        let d =
            std::env::temp_dir().join(format!("tabagent-verdicts-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn a_verdict_is_kept_and_read_back() {
        let dir = scratch("keep");
        let file = dir.join("m.gguf");
        std::fs::write(&file, b"not a gguf, still a file").unwrap();
        let store = VerdictStore::new(dir.join("store"), Path::new("/bin/sh"), &["x".into()]);
        let key = store.key(&file).unwrap();
        assert_eq!(store.get(&key), None);
        store.put(&key, &Verdict::Refused("llama.cpp crashed (signal 6)\nlast".into()));
        assert_eq!(
            store.get(&key),
            Some(Verdict::Refused("llama.cpp crashed (signal 6)\nlast".into()))
        );
        store.put(&key, &Verdict::Loads);
        assert_eq!(store.get(&key), Some(Verdict::Loads));
        std::fs::write(store.file(&key), "torn").unwrap();
        assert_eq!(store.get(&key), None);
    }

    #[test]
    fn a_changed_header_or_time_or_probe_is_another_key() {
        let dir = scratch("change");
        let file = dir.join("m.gguf");
        std::fs::write(&file, b"GGUF header bytes").unwrap();
        let store = VerdictStore::new(dir.join("store"), Path::new("/bin/sh"), &[]);
        let key = store.key(&file).unwrap();
        assert_eq!(store.key(&file).unwrap(), key);
        // One byte changed, the modification time put back: the content hash tells.
        let modified = std::fs::metadata(&file).unwrap().modified().unwrap();
        std::fs::write(&file, b"GGUF header bytez").unwrap();
        std::fs::File::options().write(true).open(&file).unwrap().set_modified(modified).unwrap();
        assert_ne!(store.key(&file).unwrap(), key);
        // Touched: the time tells.
        let again = store.key(&file).unwrap();
        let later = modified + std::time::Duration::from_secs(5);
        std::fs::File::options().write(true).open(&file).unwrap().set_modified(later).unwrap();
        assert_ne!(store.key(&file).unwrap(), again);
        // Another probe (arguments) on the same file.
        let other =
            VerdictStore::new(dir.join("store"), Path::new("/bin/sh"), &["--cpu-variant".into()]);
        assert_ne!(other.key(&file), store.key(&file));
    }

    #[test]
    fn a_hub_blob_is_known_by_its_name() {
        let dir = scratch("hub");
        let blobs = dir.join("blobs");
        std::fs::create_dir_all(&blobs).unwrap();
        let sha = "a".repeat(64);
        std::fs::write(blobs.join(&sha), b"weights").unwrap();
        assert_eq!(content_id(&blobs.join(&sha), 7).unwrap(), format!("hub-sha256:{sha}"));
        assert!(content_id(&dir.join("missing"), 0).is_none());
    }
}
