//! The grants and limits a guest is run with, as command-line options shared by `run` and
//! `native-messaging` and `serve` (and written back into a native-messaging launcher by
//! `install`).

use super::progress::Display;
use anyhow::bail;
use clap::Args;
use std::path::PathBuf;
use std::sync::Arc;
use tabagent_host::config::Grants;
use tabagent_host::engine::llama::LlamaEngine;
use tabagent_host::hub::{Hub, HubResolver, PullPolicy};
use tabagent_host::registry::Registry;
use tabagent_host::runtime::{GuestConfig, Host, HostOptions, Stdio};
use tabagent_host::source::ModelSource;
use tabagent_host::template::ChatTemplate;

#[derive(Args, Clone)]
pub struct GrantArgs {
    /// Grant a model to the app under a name: NAME=PATH, or NAME=ORG/REPO[:FILE|:QUANT][@REV]
    /// for a model of the Hugging Face cache (repeatable)
    #[arg(long = "model", short = 'm', value_name = "NAME=PATH|REPO")]
    pub models: Vec<String>,
    /// The chat template of a granted model, instead of its file's (or for a file without one):
    /// NAME=TEMPLATE, TEMPLATE a built-in name (chatml, gemma, llama2, llama3, mistral, phi3,
    /// zephyr), a .jinja file, or a Jinja string (repeatable)
    #[arg(long = "chat-template", value_name = "NAME=TEMPLATE")]
    pub chat_templates: Vec<String>,
    /// Grant a model as a standard wasi:nn graph (encoding ggml), loaded by name with
    /// graph.load-by-name: NAME=PATH or NAME=ORG/REPO[:FILE|:QUANT][@REV] (repeatable)
    #[arg(long = "nn-graph", value_name = "NAME=PATH|REPO")]
    pub nn_graphs: Vec<String>,
    /// When to download granted Hugging Face models: missing (not in the cache yet), never,
    /// or always (check the hub for a newer commit)
    #[arg(long, value_name = "WHEN", default_value = "missing")]
    pub pull: PullPolicy,
    /// Let the app pull (and load) models from Hugging Face repositories matching PATTERN
    /// (`*` matches any run of characters, e.g. 'HuggingFaceTB/*'); none by default (repeatable)
    #[arg(long = "allow-pull", value_name = "PATTERN")]
    pub allow_pull: Vec<String>,
    /// Let the app send HTTP requests to HOST (any port) or HOST:PORT (`*` matches any run of
    /// characters); none by default (repeatable)
    #[arg(long = "allow-http", value_name = "HOST[:PORT]")]
    pub allow_http: Vec<String>,
    /// Grant a host directory: HOST::GUEST, or HOST::GUEST:ro for read-only (repeatable)
    #[arg(long = "dir", value_name = "HOST::GUEST")]
    pub dirs: Vec<String>,
    /// Set an environment variable for the app: KEY=VALUE (repeatable)
    #[arg(long = "env", value_name = "KEY=VALUE")]
    pub env: Vec<String>,
    /// Read grants from a TOML file (models, dirs, env, limits)
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Largest context size a session may ask for
    #[arg(long, value_name = "TOKENS")]
    pub max_context: Option<u32>,
    /// Wall-clock limit in seconds (for `run`: the whole app; for `native-messaging`: each
    /// call into the router; for `serve`: each request, streaming included), generation
    /// included; 0 for none [default: 600]
    #[arg(long, value_name = "SECS")]
    pub timeout: Option<u64>,
    /// Largest linear memory of the app, in MiB [default: 1024]
    #[arg(long, value_name = "MIB")]
    pub max_memory: Option<usize>,
    /// Fuel (roughly, wasm instructions) the app may burn; off by default
    #[arg(long, value_name = "UNITS")]
    pub fuel: Option<u64>,
    /// Largest wasm stack of the app, in KiB
    #[arg(long, value_name = "KIB", default_value_t = 512)]
    pub max_stack: usize,
    /// KV cache of each local model, in tokens, split evenly between its --parallel sequences;
    /// a session's context must fit in one share [default: the model's training context up to
    /// 4096 per sequence, at most a quarter of the available memory]
    #[arg(long, value_name = "TOKENS", value_parser = clap::value_parser!(u32).range(256..=1 << 24))]
    pub kv_cache: Option<u32>,
    /// Generations of one local model decoded together in one batch; more wait [default: 1 for
    /// run, 4 for serve and native-messaging]
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=64))]
    pub parallel: Option<u32>,
}

impl GrantArgs {
    /// The grants from the config file and the command line (which wins), checked.
    fn grants(&self) -> anyhow::Result<Grants> {
        let mut grants = Grants::default();
        if let Some(file) = &self.config {
            grants.merge(Grants::from_file(file)?);
        }
        for m in &self.models {
            grants.add_model(m)?;
        }
        for d in &self.dirs {
            grants.add_dir(d)?;
        }
        for e in &self.env {
            grants.add_env(e)?;
        }
        for (name, source) in &grants.models {
            if let ModelSource::File(path) = source
                && !path.is_file()
            {
                bail!("model '{name}': {} is not a file", path.display());
            }
        }
        for d in &grants.dirs {
            if !d.host.is_dir() {
                bail!("--dir {}: not a directory", d.host.display());
            }
        }
        for p in &self.allow_pull {
            if p.is_empty() || p.chars().any(|c| c.is_control() || c.is_whitespace()) {
                bail!("--allow-pull '{}': not a repository pattern", p.escape_debug());
            }
        }
        for h in &self.allow_http {
            if h.is_empty() || h.chars().any(|c| c.is_control() || c.is_whitespace() || c == '/') {
                bail!("--allow-http '{}': not a HOST or HOST:PORT", h.escape_debug());
            }
        }
        Ok(grants)
    }

    /// The guest's configuration: grants, limits, stdio.
    pub fn guest(
        &self,
        program: String,
        args: Vec<String>,
        stdio: Stdio,
    ) -> anyhow::Result<GuestConfig> {
        let grants = self.grants()?;
        let mut nn_graphs = std::collections::BTreeMap::new();
        for g in &self.nn_graphs {
            let Some((name, spec)) = g.split_once('=') else {
                bail!("--nn-graph {g}: expected NAME=PATH or NAME=ORG/REPO");
            };
            if name.is_empty() || nn_graphs.contains_key(name) {
                bail!("--nn-graph {g}: each graph needs a name of its own");
            }
            let source = ModelSource::parse(spec, std::path::Path::new(""))?;
            if let ModelSource::File(path) = &source
                && !path.is_file()
            {
                bail!("wasi:nn graph '{name}': {} is not a file", path.display());
            }
            nn_graphs.insert(name.to_string(), source);
        }
        let mut guest = GuestConfig {
            program,
            nn_graphs,
            args,
            models: grants.models,
            dirs: grants.dirs,
            env: grants.env,
            allow_pull: self.allow_pull.clone(),
            allow_http: self.allow_http.clone(),
            stdio,
            ..GuestConfig::default()
        };
        if let Some(n) = self.max_context.or(grants.max_context_size) {
            guest.limits.max_context_size = n;
        }
        let timeout = self.timeout.or(grants.timeout_secs).unwrap_or(600);
        guest.sandbox.deadline = (timeout > 0).then(|| std::time::Duration::from_secs(timeout));
        let memory_mib = self.max_memory.or(grants.max_memory_mib).unwrap_or(1024);
        guest.sandbox.memory_bytes = memory_mib.saturating_mul(1 << 20);
        guest.sandbox.fuel = self.fuel;
        Ok(guest)
    }

    /// A host over llama.cpp whose hub models resolve with this pull policy.
    pub fn host(&self, engine: LlamaEngine, hub: Hub) -> anyhow::Result<Host> {
        let engine = match self.kv_cache {
            Some(cells) => engine.with_kv_cache(cells),
            None => engine,
        };
        let engine = match self.parallel {
            Some(n) => engine.with_parallel(n),
            None => engine,
        };
        let options = HostOptions {
            fuel: self.fuel.is_some(),
            max_wasm_stack: self.max_stack.saturating_mul(1 << 10),
            nn: !self.nn_graphs.is_empty(),
        };
        let resolver = HubResolver::new(Arc::new(hub), self.pull).with_trackers(Display::factory());
        let registry = Registry::with_hub(Arc::new(engine), resolver);
        for (source, template) in self.chat_templates()? {
            registry.set_chat_template(source, template);
        }
        Ok(Host::with_registry(registry, options)?)
    }

    /// `--chat-template NAME=TEMPLATE`: the granted model's source and the template's Jinja.
    fn chat_templates(&self) -> anyhow::Result<Vec<(ModelSource, String)>> {
        if self.chat_templates.is_empty() {
            return Ok(Vec::new());
        }
        let grants = self.grants()?;
        let mut out = Vec::new();
        for spec in &self.chat_templates {
            let Some((name, template)) = spec.split_once('=') else {
                bail!("--chat-template {spec}: expected NAME=TEMPLATE");
            };
            let Some(source) = grants.models.get(name) else {
                bail!("--chat-template {spec}: no model is granted as '{name}'");
            };
            let path = std::path::Path::new(template);
            let jinja = if template.ends_with(".jinja") || path.is_file() {
                std::fs::read_to_string(path)
                    .map_err(|e| anyhow::anyhow!("--chat-template {spec}: {e}"))?
            } else {
                ChatTemplate::named(template)
                    .map_err(|e| anyhow::anyhow!("--chat-template {spec}: {}", e.message()))?
                    .source()
                    .to_string()
            };
            out.push((source.clone(), jinja));
        }
        Ok(out)
    }

    /// Make every local path absolute (model files, directories, the config file), so that the
    /// options mean the same from any working folder.
    pub fn absolutize(&mut self) -> anyhow::Result<()> {
        let abs = |p: &str| -> anyhow::Result<String> {
            Ok(std::path::absolute(p)?.display().to_string())
        };
        for m in self.models.iter_mut().chain(self.nn_graphs.iter_mut()) {
            if let Some((name, spec)) = m.split_once('=')
                && let Ok(ModelSource::File(_)) = ModelSource::parse(spec, std::path::Path::new(""))
            {
                *m = format!("{name}={}", abs(spec)?);
            }
        }
        for t in &mut self.chat_templates {
            if let Some((name, file)) = t.split_once('=')
                && (file.ends_with(".jinja") || std::path::Path::new(file).is_file())
            {
                *t = format!("{name}={}", abs(file)?);
            }
        }
        for d in &mut self.dirs {
            if let Some((host, guest)) = d.split_once("::") {
                *d = format!("{}::{guest}", abs(host)?);
            }
        }
        if let Some(c) = &mut self.config {
            *c = std::path::absolute(&*c)?;
        }
        Ok(())
    }

    /// These options as command-line arguments again (for a launcher script).
    pub fn to_args(&self) -> Vec<String> {
        let mut a = Vec::new();
        let mut push = |flag: &str, v: String| {
            a.push(flag.to_string());
            a.push(v);
        };
        for m in &self.models {
            push("--model", m.clone());
        }
        for g in &self.nn_graphs {
            push("--nn-graph", g.clone());
        }
        push(
            "--pull",
            match self.pull {
                PullPolicy::Missing => "missing",
                PullPolicy::Never => "never",
                PullPolicy::Always => "always",
            }
            .into(),
        );
        for p in &self.allow_pull {
            push("--allow-pull", p.clone());
        }
        for h in &self.allow_http {
            push("--allow-http", h.clone());
        }
        for d in &self.dirs {
            push("--dir", d.clone());
        }
        for t in &self.chat_templates {
            push("--chat-template", t.clone());
        }
        for e in &self.env {
            push("--env", e.clone());
        }
        if let Some(c) = &self.config {
            push("--config", c.display().to_string());
        }
        if let Some(n) = self.max_context {
            push("--max-context", n.to_string());
        }
        if let Some(n) = self.timeout {
            push("--timeout", n.to_string());
        }
        if let Some(n) = self.max_memory {
            push("--max-memory", n.to_string());
        }
        if let Some(n) = self.fuel {
            push("--fuel", n.to_string());
        }
        push("--max-stack", self.max_stack.to_string());
        if let Some(n) = self.kv_cache {
            push("--kv-cache", n.to_string());
        }
        if let Some(n) = self.parallel {
            push("--parallel", n.to_string());
        }
        a
    }
}
