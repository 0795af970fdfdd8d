//! Where the cache is, which hub to ask, and with what token: the environment variables the
//! Python `huggingface_hub` reads, with the same precedence.

use std::path::PathBuf;

/// When a granted hub model is downloaded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Hash)]
pub enum PullPolicy {
    /// Only when the cache does not hold it.
    #[default]
    Missing,
    /// Never: the cache must hold it.
    Never,
    /// Always ask the hub for the revision's newest commit (downloading only what changed).
    Always,
}

impl std::str::FromStr for PullPolicy {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "missing" => Ok(Self::Missing),
            "never" => Ok(Self::Never),
            "always" => Ok(Self::Always),
            _ => Err(format!("pull policy '{s}': expected missing, never or always")),
        }
    }
}

/// How to reach the hub and where its cache lives.
#[derive(Clone, PartialEq, Eq)]
pub struct HubConfig {
    /// The hub, without a trailing `/` (`https://huggingface.co`).
    pub endpoint: String,
    /// The cache folder holding `models--org--name` folders.
    pub cache_dir: PathBuf,
    /// A token for gated and private repositories.
    pub token: Option<String>,
    /// Use the cache only; never touch the network.
    pub offline: bool,
    /// How many times a transfer that broke off is resumed within one pull.
    pub retries: u32,
}

impl std::fmt::Debug for HubConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HubConfig")
            .field("endpoint", &self.endpoint)
            .field("cache_dir", &self.cache_dir)
            .field("token", &self.token.as_ref().map(|_| "<set>"))
            .field("offline", &self.offline)
            .field("retries", &self.retries)
            .finish()
    }
}

/// The default hub.
pub const DEFAULT_ENDPOINT: &str = "https://huggingface.co";

impl HubConfig {
    /// From the environment, as `huggingface_hub` reads it:
    /// - cache: `HF_HUB_CACHE`, else `$HF_HOME/hub`, else `$XDG_CACHE_HOME/huggingface/hub`,
    ///   else `~/.cache/huggingface/hub`;
    /// - `HF_ENDPOINT` (default `https://huggingface.co`);
    /// - token: `HF_TOKEN`, else the file `HF_TOKEN_PATH`, else `$HF_HOME/token`;
    /// - `HF_HUB_OFFLINE` (`1`, `true`, `yes`, `on`).
    pub fn from_env() -> Self {
        Self::from_vars(|k| std::env::var(k).ok().filter(|v| !v.is_empty()))
    }

    /// The same, from any source of variables (for tests).
    pub fn from_vars(var: impl Fn(&str) -> Option<String>) -> Self {
        let home = var("HOME").map(PathBuf::from).unwrap_or_else(std::env::temp_dir);
        let hf_home = var("HF_HOME").map(PathBuf::from).unwrap_or_else(|| {
            var("XDG_CACHE_HOME")
                .map(PathBuf::from)
                .unwrap_or_else(|| home.join(".cache"))
                .join("huggingface")
        });
        let cache_dir = var("HF_HUB_CACHE")
            .or_else(|| var("HUGGINGFACE_HUB_CACHE"))
            .map(PathBuf::from)
            .unwrap_or_else(|| hf_home.join("hub"));
        let endpoint = var("HF_ENDPOINT")
            .unwrap_or_else(|| DEFAULT_ENDPOINT.to_string())
            .trim_end_matches('/')
            .to_string();
        let token = var("HF_TOKEN").or_else(|| var("HUGGING_FACE_HUB_TOKEN")).or_else(|| {
            let path = var("HF_TOKEN_PATH").map(PathBuf::from).unwrap_or(hf_home.join("token"));
            std::fs::read_to_string(path)
                .ok()
                .map(|t| t.trim().to_string())
                .filter(|t| !t.is_empty())
        });
        let offline = var("HF_HUB_OFFLINE").is_some_and(|v| {
            matches!(v.to_ascii_lowercase().as_str(), "1" | "true" | "yes" | "on")
        });
        Self { endpoint, cache_dir, token, offline, retries: 3 }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn config(vars: &[(&str, &str)]) -> HubConfig {
        let vars: HashMap<String, String> =
            vars.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        HubConfig::from_vars(|k| vars.get(k).cloned())
    }

    #[test]
    fn the_environment_is_read_as_huggingface_hub_reads_it() {
        let c = config(&[("HOME", "/home/u")]);
        assert_eq!(c.cache_dir, PathBuf::from("/home/u/.cache/huggingface/hub"));
        assert_eq!(c.endpoint, DEFAULT_ENDPOINT);
        assert!(!c.offline);
        assert_eq!(c.token, None);
        let c = config(&[("HOME", "/home/u"), ("HF_HOME", "/hf"), ("HF_ENDPOINT", "http://x:1/")]);
        assert_eq!(c.cache_dir, PathBuf::from("/hf/hub"));
        assert_eq!(c.endpoint, "http://x:1");
        let c = config(&[("HF_HOME", "/hf"), ("HF_HUB_CACHE", "/c"), ("HF_HUB_OFFLINE", "1")]);
        assert_eq!(c.cache_dir, PathBuf::from("/c"));
        assert!(c.offline);
        let c = config(&[("HF_TOKEN", "hf_secret"), ("HOME", "/h")]);
        assert_eq!(c.token.as_deref(), Some("hf_secret"));
        assert!(!format!("{c:?}").contains("hf_secret"), "tokens never reach logs");
    }

    #[test]
    fn the_token_file_is_read_when_no_variable_names_a_token() {
        let dir = std::env::temp_dir().join(format!("tabagent-hf-token-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("token"), "hf_from_file\n").unwrap();
        let c = config(&[("HF_HOME", dir.to_str().unwrap())]);
        assert_eq!(c.token.as_deref(), Some("hf_from_file"));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn pull_policies_parse() {
        assert_eq!("never".parse::<PullPolicy>(), Ok(PullPolicy::Never));
        assert!("sometimes".parse::<PullPolicy>().unwrap_err().contains("missing, never"));
    }
}
