//! Grants from the command line (`--model NAME=PATH|REPO[:QUANT]`, `--dir HOST::GUEST`, `--env K=V`) and
//! from a TOML file (`--config tabagent.toml`):
//!
//! ```toml
//! [models]
//! smollm2 = "models/SmolLM2-135M-Instruct.Q4_1.gguf"   # relative to this file
//! smol-hub = "HuggingFaceTB/SmolLM2-135M-Instruct-GGUF:Q4_K_M"   # from the Hugging Face cache
//! big = "remote:http://10.0.0.1:8080/v1#qwen2.5-7b"   # served by an OpenAI-compatible server
//!
//! [models.replicated]                # several endpoints, a key and a client policy
//! remote = ["http://10.0.0.1:8080/v1", "http://10.0.0.2:8080/v1"]
//! model = "qwen2.5-7b"
//! api-key-env = "QWEN_API_KEY"       # see `remote::RemoteEntry` for every field
//! max-concurrent = 4
//!
//! [[dirs]]
//! host = "data"
//! guest = "/data"
//! read-only = true
//!
//! [env]
//! LANG = "C"
//!
//! [limits]
//! max-context-size = 8192
//! timeout-secs = 600          # 0 for none
//! max-memory-mib = 1024
//! ```
//!
//! A limit given on the command line wins over the file's.

use crate::remote::RemoteEntry;
use crate::runtime::DirGrant;
use crate::source::ModelSource;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// A problem with a grant or the config file.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ConfigError {
    /// `--model` without `NAME=PATH`.
    #[error("--model expects NAME=PATH, got '{0}'")]
    BadModel(String),
    /// `--dir` without `HOST::GUEST`.
    #[error("--dir expects HOST::GUEST or HOST::GUEST:ro, got '{0}'")]
    BadDir(String),
    /// `--env` without `KEY=VALUE`.
    #[error("--env expects KEY=VALUE, got '{0}'")]
    BadEnv(String),
    /// A model name outside `[A-Za-z0-9._-]`.
    #[error("model name '{0}' may only use letters, digits, '.', '_' and '-'")]
    BadName(String),
    /// A model source that is neither a usable path nor a valid hub reference.
    #[error("--model {0}: {1}")]
    BadSource(String, String),
    /// The config file could not be read or parsed.
    #[error("config file {path}: {message}")]
    File {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        message: String,
    },
}

/// Everything a guest is granted.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Grants {
    /// Model name to where the model comes from.
    pub models: BTreeMap<String, ModelSource>,
    /// Directories.
    pub dirs: Vec<DirGrant>,
    /// Environment variables.
    pub env: Vec<(String, String)>,
    /// Largest session context, if set.
    pub max_context_size: Option<u32>,
    /// Wall-clock limit in seconds (0: none), if set.
    pub timeout_secs: Option<u64>,
    /// Largest linear memory in MiB, if set.
    pub max_memory_mib: Option<usize>,
}

fn check_name(name: &str) -> Result<(), ConfigError> {
    let ok = !name.is_empty()
        && name.len() <= 128
        && name.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
    if ok { Ok(()) } else { Err(ConfigError::BadName(name.to_string())) }
}

impl Grants {
    /// Add `NAME=PATH`.
    pub fn add_model(&mut self, spec: &str) -> Result<(), ConfigError> {
        let (name, path) = spec
            .split_once('=')
            .filter(|(n, p)| !n.is_empty() && !p.is_empty())
            .ok_or_else(|| ConfigError::BadModel(spec.to_string()))?;
        check_name(name)?;
        let source = ModelSource::parse(path, Path::new(""))
            .map_err(|e| ConfigError::BadSource(name.to_string(), e.message().to_string()))?;
        self.models.insert(name.to_string(), source);
        Ok(())
    }

    /// Add `HOST::GUEST` or `HOST::GUEST:ro`.
    pub fn add_dir(&mut self, spec: &str) -> Result<(), ConfigError> {
        let (host, guest) = spec
            .split_once("::")
            .filter(|(h, g)| !h.is_empty() && !g.is_empty())
            .ok_or_else(|| ConfigError::BadDir(spec.to_string()))?;
        let (guest, read_only) = match guest.strip_suffix(":ro") {
            Some(g) if !g.is_empty() => (g, true),
            _ => (guest, false),
        };
        self.dirs.push(DirGrant { host: host.into(), guest: guest.into(), read_only });
        Ok(())
    }

    /// Add `KEY=VALUE`.
    pub fn add_env(&mut self, spec: &str) -> Result<(), ConfigError> {
        let (k, v) = spec
            .split_once('=')
            .filter(|(k, _)| !k.is_empty())
            .ok_or_else(|| ConfigError::BadEnv(spec.to_string()))?;
        self.env.push((k.to_string(), v.to_string()));
        Ok(())
    }

    /// Read a TOML config file; relative paths are taken from the file's folder.
    pub fn from_file(path: &Path) -> Result<Self, ConfigError> {
        let err = |message: String| ConfigError::File { path: path.to_path_buf(), message };
        let text = std::fs::read_to_string(path).map_err(|e| err(e.to_string()))?;
        let file: FileConfig = toml::from_str(&text).map_err(|e| err(e.to_string()))?;
        let base = path.parent().unwrap_or(Path::new("."));
        let mut g = Grants::default();
        for (name, entry) in file.models {
            check_name(&name)?;
            let in_entry = |m: String| err(format!("models.{name}: {m}"));
            let source = match entry {
                toml::Value::String(p) => ModelSource::parse(&p, base),
                table @ toml::Value::Table(_) => {
                    let entry =
                        RemoteEntry::deserialize(table).map_err(|e| in_entry(e.to_string()))?;
                    entry.into_spec().map(ModelSource::Remote)
                }
                _ => return Err(in_entry("expected a path, a reference or a remote table".into())),
            }
            .map_err(|e| in_entry(e.message().to_string()))?;
            g.models.insert(name, source);
        }
        for d in file.dirs {
            g.dirs.push(DirGrant {
                host: base.join(d.host),
                guest: d.guest,
                read_only: d.read_only,
            });
        }
        g.env = file.env.into_iter().collect();
        g.max_context_size = file.limits.max_context_size;
        g.timeout_secs = file.limits.timeout_secs;
        g.max_memory_mib = file.limits.max_memory_mib;
        Ok(g)
    }

    /// Add everything in `other`; its entries win over ours.
    pub fn merge(&mut self, other: Grants) {
        self.models.extend(other.models);
        self.dirs.extend(other.dirs);
        self.env.extend(other.env);
        self.max_context_size = other.max_context_size.or(self.max_context_size);
        self.timeout_secs = other.timeout_secs.or(self.timeout_secs);
        self.max_memory_mib = other.max_memory_mib.or(self.max_memory_mib);
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct FileConfig {
    #[serde(default)]
    models: BTreeMap<String, toml::Value>,
    #[serde(default)]
    dirs: Vec<FileDir>,
    #[serde(default)]
    env: BTreeMap<String, String>,
    #[serde(default)]
    limits: FileLimits,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct FileDir {
    host: PathBuf,
    guest: String,
    #[serde(default)]
    read_only: bool,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct FileLimits {
    max_context_size: Option<u32>,
    timeout_secs: Option<u64>,
    max_memory_mib: Option<usize>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn command_line_grants() {
        let mut g = Grants::default();
        g.add_model("smollm2=models/a.gguf").unwrap();
        g.add_dir("/tmp/x::/data:ro").unwrap();
        g.add_dir("/tmp/y::/out").unwrap();
        g.add_env("A=b=c").unwrap();
        assert_eq!(g.models["smollm2"], ModelSource::from("models/a.gguf"));
        assert_eq!(
            g.dirs[0],
            DirGrant { host: "/tmp/x".into(), guest: "/data".into(), read_only: true }
        );
        assert!(!g.dirs[1].read_only);
        assert_eq!(g.env, vec![("A".to_string(), "b=c".to_string())]);
    }

    #[test]
    fn bad_grants_say_what_is_wrong() {
        let mut g = Grants::default();
        assert_eq!(g.add_model("nopath"), Err(ConfigError::BadModel("nopath".into())));
        assert_eq!(g.add_model("=x"), Err(ConfigError::BadModel("=x".into())));
        assert_eq!(g.add_model("a b=x"), Err(ConfigError::BadName("a b".into())));
        assert_eq!(g.add_dir("/tmp"), Err(ConfigError::BadDir("/tmp".into())));
        assert_eq!(g.add_env("=v"), Err(ConfigError::BadEnv("=v".into())));
    }

    #[test]
    fn config_file() {
        let dir = std::env::temp_dir().join(format!("tabagent-config-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("tabagent.toml");
        std::fs::write(
            &file,
            "[models]\nsmol = \"m/s.gguf\"\n[[dirs]]\nhost = \"d\"\nguest = \"/d\"\nread-only = true\n[env]\nK = \"v\"\n[limits]\nmax-context-size = 2048\ntimeout-secs = 5\n",
        )
        .unwrap();
        let g = Grants::from_file(&file).unwrap();
        assert_eq!(g.models["smol"], ModelSource::File(dir.join("m/s.gguf")));
        assert_eq!(g.dirs[0].host, dir.join("d"));
        assert!(g.dirs[0].read_only);
        assert_eq!(g.env, vec![("K".into(), "v".into())]);
        assert_eq!(g.max_context_size, Some(2048));
        assert_eq!(g.timeout_secs, Some(5));
        assert_eq!(g.max_memory_mib, None);
        std::fs::write(&file, "[modles]\n").unwrap();
        let err = Grants::from_file(&file).unwrap_err().to_string();
        assert!(err.contains("unknown field"), "{err}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
