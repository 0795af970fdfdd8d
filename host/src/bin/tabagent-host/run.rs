//! `tabagent-host run`: run an app component's `wasi:cli/run` with the grants and limits given.

use super::progress::Display;
use anyhow::{Context as _, bail};
use clap::Args;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use tabagent_host::config::Grants;
use tabagent_host::engine::llama::LlamaEngine;
use tabagent_host::hub::{Hub, HubResolver, PullPolicy};
use tabagent_host::registry::Registry;
use tabagent_host::runtime::{GuestConfig, Host, HostOptions, Stdio};
use tabagent_host::source::ModelSource;

#[derive(Args)]
pub struct RunArgs {
    /// The app component (.wasm)
    app: PathBuf,
    /// Grant a model to the app under a name: NAME=PATH, or NAME=ORG/REPO[:FILE|:QUANT][@REV]
    /// for a model of the Hugging Face cache (repeatable)
    #[arg(long = "model", short = 'm', value_name = "NAME=PATH|REPO")]
    models: Vec<String>,
    /// When to download granted Hugging Face models: missing (not in the cache yet), never,
    /// or always (check the hub for a newer commit)
    #[arg(long, value_name = "WHEN", default_value = "missing")]
    pull: PullPolicy,
    /// Let the app pull models from Hugging Face repositories matching PATTERN (`*` matches
    /// any run of characters, e.g. 'HuggingFaceTB/*'); none by default (repeatable)
    #[arg(long = "allow-pull", value_name = "PATTERN")]
    allow_pull: Vec<String>,
    /// Grant a host directory: HOST::GUEST, or HOST::GUEST:ro for read-only (repeatable)
    #[arg(long = "dir", value_name = "HOST::GUEST")]
    dirs: Vec<String>,
    /// Set an environment variable for the app: KEY=VALUE (repeatable)
    #[arg(long = "env", value_name = "KEY=VALUE")]
    env: Vec<String>,
    /// Read grants from a TOML file (models, dirs, env, limits)
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Largest context size a session may ask for
    #[arg(long, value_name = "TOKENS")]
    max_context: Option<u32>,
    /// Wall-clock limit for the app in seconds, generation included; 0 for none [default: 600]
    #[arg(long, value_name = "SECS")]
    timeout: Option<u64>,
    /// Largest linear memory of the app, in MiB [default: 1024]
    #[arg(long, value_name = "MIB")]
    max_memory: Option<usize>,
    /// Fuel (roughly, wasm instructions) the app may burn; off by default
    #[arg(long, value_name = "UNITS")]
    fuel: Option<u64>,
    /// Largest wasm stack of the app, in KiB
    #[arg(long, value_name = "KIB", default_value_t = 512)]
    max_stack: usize,
    /// Arguments for the app (after --)
    #[arg(last = true, value_name = "ARGS")]
    args: Vec<String>,
}

/// The grants from the config file and the command line (which wins), checked.
fn grants(args: &RunArgs) -> anyhow::Result<Grants> {
    let mut grants = Grants::default();
    if let Some(file) = &args.config {
        grants.merge(Grants::from_file(file)?);
    }
    for m in &args.models {
        grants.add_model(m)?;
    }
    for d in &args.dirs {
        grants.add_dir(d)?;
    }
    for e in &args.env {
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
    Ok(grants)
}

pub fn run(args: RunArgs, engine: LlamaEngine, hub: Hub) -> anyhow::Result<ExitCode> {
    let grants = grants(&args)?;
    for p in &args.allow_pull {
        if p.is_empty() || p.chars().any(|c| c.is_control() || c.is_whitespace()) {
            bail!("--allow-pull '{}': not a repository pattern", p.escape_debug());
        }
    }
    let mut guest = GuestConfig {
        program: args
            .app
            .file_stem()
            .map_or_else(|| "app".into(), |s| s.to_string_lossy().into_owned()),
        args: args.args,
        models: grants.models,
        dirs: grants.dirs,
        env: grants.env,
        allow_pull: args.allow_pull,
        stdio: Stdio::Inherit,
        ..GuestConfig::default()
    };
    if let Some(n) = args.max_context.or(grants.max_context_size) {
        guest.limits.max_context_size = n;
    }
    let timeout = args.timeout.or(grants.timeout_secs).unwrap_or(600);
    guest.sandbox.deadline = (timeout > 0).then(|| std::time::Duration::from_secs(timeout));
    let memory_mib = args.max_memory.or(grants.max_memory_mib).unwrap_or(1024);
    guest.sandbox.memory_bytes = memory_mib.saturating_mul(1 << 20);
    guest.sandbox.fuel = args.fuel;
    let options = HostOptions {
        fuel: args.fuel.is_some(),
        max_wasm_stack: args.max_stack.saturating_mul(1 << 10),
    };
    let runtime = tokio::runtime::Runtime::new().context("cannot start the async runtime")?;
    let outcome = runtime.block_on(async {
        let resolver = HubResolver::new(Arc::new(hub), args.pull).with_trackers(Display::factory());
        let registry = Registry::with_hub(Arc::new(engine), resolver);
        let host = Host::with_registry(registry, options)?;
        let app = host.load_command(&args.app)?;
        host.run(&app, guest).await
    })?;
    Ok(ExitCode::from(u8::try_from(outcome.exit_code).unwrap_or(1)))
}
