//! Where a granted model comes from, and the one step that turns it into something an engine
//! can open.
//!
//! A grant names a [`ModelSource`]: a local file today; a file of a Hugging Face repository
//! (pulled into the local cache) and a remote endpoint are the next kinds. A [`Resolver`] turns a
//! source into a [`ResolvedModel`] — for a file: that it exists, its size and modification time,
//! and its [format](crate::format), checked before any engine reads it.

use crate::error::{LlmError, LlmResult};
use crate::format::{self, ModelFormat};
use std::path::{Path, PathBuf};
use std::time::SystemTime;

/// Where a granted model comes from.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ModelSource {
    /// A model file on this machine.
    File(PathBuf),
}

impl ModelSource {
    /// The local file, for sources that are one.
    pub fn path(&self) -> Option<&Path> {
        match self {
            Self::File(p) => Some(p),
        }
    }
}

impl std::fmt::Display for ModelSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::File(p) => write!(f, "{}", p.display()),
        }
    }
}

impl From<PathBuf> for ModelSource {
    fn from(p: PathBuf) -> Self {
        Self::File(p)
    }
}

impl From<&Path> for ModelSource {
    fn from(p: &Path) -> Self {
        Self::File(p.to_path_buf())
    }
}

impl From<&str> for ModelSource {
    fn from(p: &str) -> Self {
        Self::File(p.into())
    }
}

/// A source ready for an engine: a checked local file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolvedModel {
    /// The file the engine opens.
    pub path: PathBuf,
    /// Its size in bytes.
    pub file_size: u64,
    /// Its modification time, where the file system keeps one.
    pub modified: Option<SystemTime>,
    /// Its format.
    pub format: ModelFormat,
}

impl ResolvedModel {
    /// A file taken as it is, without looking at it (for engines and tests that check
    /// nothing themselves).
    pub fn unchecked(path: impl Into<PathBuf>) -> Self {
        Self { path: path.into(), file_size: 0, modified: None, format: ModelFormat::Gguf }
    }
}

/// Turns sources into models an engine can open. Blocks (reads files).
pub trait Resolver: Send + Sync + 'static {
    /// Resolve and check one source.
    fn resolve(&self, source: &ModelSource) -> LlmResult<ResolvedModel>;
}

/// The resolver for local files: the file must exist and pass [`format::check`].
#[derive(Debug, Default, Clone, Copy)]
pub struct FileResolver;

impl Resolver for FileResolver {
    fn resolve(&self, source: &ModelSource) -> LlmResult<ResolvedModel> {
        let ModelSource::File(path) = source;
        resolve_file(path)
    }
}

/// Check a local model file: it exists, is a file, and is a GGUF file that passes the checks.
pub fn resolve_file(path: &Path) -> LlmResult<ResolvedModel> {
    let meta = std::fs::metadata(path)
        .map_err(|e| LlmError::NotFound(format!("model file {}: {e}", path.display())))?;
    if !meta.is_file() {
        return Err(LlmError::NotFound(format!("{} is not a file", path.display())));
    }
    format::check(path)?;
    Ok(ResolvedModel {
        path: path.to_path_buf(),
        file_size: meta.len(),
        modified: meta.modified().ok(),
        format: ModelFormat::Gguf,
    })
}

/// A resolver that trusts every source as it is named, reading nothing: for engines that do
/// not open files (the fake engine in tests).
#[derive(Debug, Default, Clone, Copy)]
pub struct UncheckedResolver;

impl Resolver for UncheckedResolver {
    fn resolve(&self, source: &ModelSource) -> LlmResult<ResolvedModel> {
        let ModelSource::File(path) = source;
        Ok(ResolvedModel::unchecked(path.clone()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_and_non_gguf_files_are_refused_before_any_engine() {
        let e = FileResolver.resolve(&"/nonexistent/model.gguf".into()).unwrap_err();
        assert!(matches!(e, LlmError::NotFound(_)), "{e}");
        let e = FileResolver.resolve(&ModelSource::File(std::env::temp_dir())).unwrap_err();
        assert!(matches!(&e, LlmError::NotFound(m) if m.contains("not a file")), "{e}");
        let file = std::env::temp_dir().join(format!("tabagent-source-{}", std::process::id()));
        std::fs::write(&file, b"not a model at all").unwrap();
        let e = FileResolver.resolve(&file.as_path().into()).unwrap_err();
        std::fs::remove_file(&file).unwrap();
        assert!(matches!(&e, LlmError::InvalidInput(m) if m.contains("not a GGUF")), "{e}");
    }
}
