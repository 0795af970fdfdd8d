//! Where a granted model comes from, and the one step that turns it into something an engine
//! can open.
//!
//! A grant names a [`ModelSource`]: a local file, or a file of a Hugging Face repository (pulled
//! into the local cache, see [`crate::hub`]). A [`Resolver`] turns a source into a
//! [`ResolvedModel`] — a local file: that it exists, its size and modification time, and its
//! [format](crate::format), checked before any engine reads it.

use crate::error::{LlmError, LlmResult};
use crate::format::{self, ModelFormat};
use crate::hub::HubRef;
use crate::remote::RemoteSpec;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

/// Where a granted model comes from.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ModelSource {
    /// A model file on this machine.
    File(PathBuf),
    /// A GGUF file (or split set) of a Hugging Face repository, from the local cache.
    Hub(HubRef),
    /// A model served by OpenAI-compatible endpoints ([`crate::remote`]).
    Remote(RemoteSpec),
}

impl ModelSource {
    /// The local file, for sources that are one.
    pub fn path(&self) -> Option<&Path> {
        match self {
            Self::File(p) => Some(p),
            Self::Hub(_) | Self::Remote(_) => None,
        }
    }

    /// Read a grant's source as a user writes it: `remote:URL[,URL…][#MODEL-ID]` is a remote
    /// model; `hf:REPO[:FILE|:QUANT][@REV]` (also
    /// `hf.co/…`, `huggingface.co/…`) is a hub model; so is `ORG/NAME[:…]` when no such local
    /// path exists and it does not end in `.gguf`; anything else is a local path, taken
    /// relative to `base`.
    pub fn parse(spec: &str, base: &Path) -> LlmResult<Self> {
        if spec.starts_with("remote:") {
            return Ok(Self::Remote(RemoteSpec::parse(spec)?));
        }
        let explicit = ["hf:", "hf.co/", "huggingface.co/", "https://huggingface.co/"]
            .iter()
            .any(|p| spec.starts_with(p));
        let local = base.join(spec);
        let repo_part = spec.split([':', '@']).next().unwrap_or(spec);
        let looks_like_repo = repo_part.matches('/').count() == 1
            && !spec.starts_with(['.', '/', '~'])
            && !repo_part.ends_with(".gguf")
            && !local.exists();
        if explicit || looks_like_repo {
            return Ok(Self::Hub(HubRef::parse(spec)?));
        }
        Ok(Self::File(local))
    }
}

impl std::fmt::Display for ModelSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::File(p) => write!(f, "{}", p.display()),
            Self::Hub(r) => write!(f, "hf:{r}"),
            Self::Remote(r) => write!(f, "{r}"),
        }
    }
}

impl From<HubRef> for ModelSource {
    fn from(r: HubRef) -> Self {
        Self::Hub(r)
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
        match source {
            ModelSource::File(path) => resolve_file(path),
            ModelSource::Hub(r) => Err(LlmError::Unsupported(format!(
                "hf:{r}: this host resolves local files only (no Hugging Face cache configured)"
            ))),
            ModelSource::Remote(r) => Err(not_a_file(r)),
        }
    }
}

/// The error of a resolver asked for a remote model, which has no file (the registry connects
/// to it instead).
pub fn not_a_file(spec: &RemoteSpec) -> LlmError {
    LlmError::Unsupported(format!("{spec} is served remotely; it has no file to open"))
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
        match source {
            ModelSource::File(path) => Ok(ResolvedModel::unchecked(path.clone())),
            ModelSource::Hub(r) => Ok(ResolvedModel::unchecked(format!("/hub/{}", r.repo))),
            ModelSource::Remote(r) => Err(not_a_file(r)),
        }
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

    #[test]
    fn grants_name_local_files_or_hub_repositories() {
        let base = Path::new("/nonexistent-base");
        let hub = |s: &str| match ModelSource::parse(s, base).unwrap() {
            ModelSource::Hub(r) => r,
            other => panic!("{s}: {other:?}"),
        };
        assert_eq!(
            hub("HuggingFaceTB/SmolLM2-135M-Instruct-GGUF:Q4_K_M").repo,
            "HuggingFaceTB/SmolLM2-135M-Instruct-GGUF"
        );
        assert_eq!(hub("hf:org/m").repo, "org/m");
        assert_eq!(hub("hf.co/org/m:a.gguf@v2").revision, "v2");
        for file in ["models/a.gguf", "./org/m", "/abs/m.gguf", "m.gguf", "a/b/c.gguf"] {
            assert_eq!(
                ModelSource::parse(file, base).unwrap(),
                ModelSource::File(base.join(file)),
                "{file}"
            );
        }
        let e = ModelSource::parse("hf:../x", base).unwrap_err();
        assert_eq!(e.kind(), "invalid-input", "{e}");
    }
}
