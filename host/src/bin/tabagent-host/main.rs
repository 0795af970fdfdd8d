//! `tabagent-host`: run sandboxed WebAssembly apps against local GGUF models. One module per
//! subcommand; JSON output comes from the library types' serde derives.

mod grants;
mod hw;
mod inspect;
mod loading;
mod models;
mod native_messaging;
mod out;
mod progress;
mod pull;
mod run;
mod serve;

use clap::{Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;
use tabagent_host::engine::llama::{self, LlamaEngine, cpu_variants::BackendConfig};
use tabagent_host::hub::{Hub, HubConfig};

/// Exit code when the host itself could not run the guest (bad arguments, a component that
/// does not compile or traps).
const HOST_FAILURE: u8 = 126;

#[derive(Parser)]
#[command(
    name = "tabagent-host",
    version,
    about = "Run sandboxed WebAssembly apps against local GGUF models (llama.cpp)",
    long_about = "Run sandboxed WebAssembly apps against local GGUF models (llama.cpp).\n\n\
        Apps are WASI components that import the tabagent:llm interfaces. They get nothing they \
        were not granted: no network, no environment, no host files, and only the models named \
        with --model."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
    /// Use this llama.cpp CPU kernel variant (for example x64, sse42, haswell, zen4) instead of
    /// the best one for this CPU; `hw` lists them [env: TABAGENT_CPU_VARIANT]
    #[arg(long, global = true, value_name = "NAME")]
    cpu_variant: Option<String>,
    /// Folder holding llama.cpp's backend modules (libggml-cpu-*.so); default: backends/ beside
    /// this executable, then the build tree [env: TABAGENT_BACKENDS_DIR]
    #[arg(long, global = true, value_name = "DIR")]
    backends_dir: Option<PathBuf>,
    /// Use the Hugging Face cache only, never the network [env: HF_HUB_OFFLINE=1]
    #[arg(long, global = true)]
    offline: bool,
    /// Load each new model file first in a child process, so that a file that crashes
    /// llama.cpp crashes only the child: `auto` remembers verdicts across runs (in
    /// TABAGENT_CACHE_DIR, else ~/.cache/tabagent) and probes a file again once it changes,
    /// `always` probes each file in every run, `never` loads files in this process only (a
    /// crashing file then takes the host down)
    #[arg(long, global = true, value_enum, default_value_t = Probe::Auto)]
    probe: Probe,
}

/// The `--probe` choices.
#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Probe {
    Auto,
    Always,
    Never,
}

#[derive(Subcommand)]
enum Command {
    /// Run an app component (its wasi:cli/run export); exits with the app's exit code
    #[command(after_help = "Examples:\n  \
        tabagent-host run chat.wasm --model smollm2=models/SmolLM2-135M-Instruct.Q4_1.gguf -- \"Hello!\"\n  \
        echo 'Hi' | tabagent-host run chat.wasm --model smollm2=model.gguf\n\n\
        Exit codes: the app's own, or 126 when the host could not run it.")]
    Run(Box<run::RunArgs>),
    /// Download a GGUF model from Hugging Face into the local cache, verified
    #[command(after_help = "Examples:\n  \
        tabagent-host pull HuggingFaceTB/SmolLM2-135M-Instruct-GGUF:Q4_K_M\n  \
        tabagent-host pull org/repo:model-Q8_0.gguf --revision 1a2b3c...\n\n\
        The cache is Hugging Face's own (HF_HUB_CACHE, HF_HOME, ~/.cache/huggingface/hub); \
        HF_ENDPOINT, HF_TOKEN and HF_HUB_OFFLINE are honoured. Prints the cached file's path.")]
    Pull(pull::PullArgs),
    /// Serve HTTP (an OpenAI-compatible API, say) with a wasi:http server component, one
    /// instance per request, the granted models loaded once and shared
    #[command(after_help = "Examples:\n  \
        tabagent-host serve openai-server.wasm --listen 127.0.0.1:8080 --model smollm2=model.gguf\n  \
        curl http://127.0.0.1:8080/v1/chat/completions -H 'content-type: application/json' \\\n      \
        -d '{\"model\":\"smollm2\",\"messages\":[{\"role\":\"user\",\"content\":\"Hi\"}]}'\n\n\
        GET /health is answered by the host itself. Stops on Ctrl-C or SIGTERM.")]
    Serve(Box<serve::ServeArgs>),
    /// List, show and remove the models in the Hugging Face cache
    Models {
        #[command(subcommand)]
        command: models::ModelsCommand,
    },
    /// Serve a browser extension over native messaging with a router component, or install
    /// the browser's manifest for it
    #[command(after_help = "Examples:\n  \
        tabagent-host native-messaging install --extension-id abcdefghijklmnopabcdefghijklmnop \\\n      \
        --browser chromium --router router.wasm --model smol=HuggingFaceTB/SmolLM2-135M-Instruct-GGUF:Q4_K_M\n  \
        tabagent-host native-messaging router.wasm --model smol=model.gguf   # as the browser starts it\n  \
        tabagent-host native-messaging uninstall --browser chromium")]
    NativeMessaging(Box<native_messaging::NativeMessagingArgs>),
    /// Show the CPU, GPUs and memory of this machine
    Hw {
        /// Print JSON instead of a table
        #[arg(long)]
        json: bool,
    },
    /// Internal: load a model file with llama.cpp in this process and exit 0 (used as the load
    /// probe, so that a file that crashes llama.cpp crashes only this process)
    #[command(hide = true)]
    ProbeModel {
        /// The GGUF file
        model: PathBuf,
    },
    /// Say what a model file, folder or cached Hugging Face model is (format, architecture,
    /// tensor types, BitNet, task) and which engine runs it, from its header alone
    Inspect {
        /// A file, a folder, or ORG/REPO[:FILE|:QUANT][@REV] in the Hugging Face cache
        model: String,
        /// Print JSON instead of a table
        #[arg(long)]
        json: bool,
        /// Also load it with llama.cpp and say where its layers went
        #[arg(long)]
        load: bool,
    },
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("TABAGENT_LOG").unwrap_or_else(|_| {
                tracing_subscriber::EnvFilter::new("warn,llama.cpp=off,wasmtime_wasi_nn=off")
            }),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return ExitCode::from(if e.use_stderr() { 2 } else { 0 });
        }
    };
    match dispatch(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(HOST_FAILURE)
        }
    }
}

fn dispatch(cli: Cli) -> anyhow::Result<ExitCode> {
    let mut backends = BackendConfig::from_env();
    if cli.cpu_variant.is_some() {
        backends.cpu_variant = cli.cpu_variant;
    }
    if cli.backends_dir.is_some() {
        backends.backends_dir = cli.backends_dir;
    }
    let probe = (cli.probe, probe_args(&backends));
    llama::configure(backends)?;
    let mut hub_config = HubConfig::from_env();
    hub_config.offline |= cli.offline;
    if matches!(cli.command, Command::Run(_) | Command::Inspect { load: true, .. }) {
        // (native-messaging checks when it serves: `install` needs no kernels.)
        // Fail before any guest runs if llama.cpp cannot start (no CPU kernels, bad variant).
        llama::cpu_kernels()?;
    }
    match cli.command {
        Command::Run(args) => run::run(*args, probing_engine(&probe), Hub::new(hub_config)?),
        Command::NativeMessaging(args) => {
            native_messaging::native_messaging(*args, probing_engine(&probe), Hub::new(hub_config)?)
        }
        Command::Serve(args) => serve::serve(*args, probing_engine(&probe), Hub::new(hub_config)?),
        Command::Pull(args) => pull::pull(args, &Hub::new(hub_config)?).map(|()| ExitCode::SUCCESS),
        Command::Models { command } => {
            models::models(command, &Hub::new(hub_config)?, probing_engine(&probe))
                .map(|()| ExitCode::SUCCESS)
        }
        Command::Hw { json } => hw::hw(json).map(|()| ExitCode::SUCCESS),
        Command::ProbeModel { model } => {
            llama::probe_model_file(&model)?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Inspect { model, json, load } => {
            // A header-only inspect needs neither llama.cpp nor a usable hub cache.
            let kernels = llama::cpu_kernels().map(|k| k.variant.clone()).ok();
            let hub = Hub::new(hub_config).ok();
            let engine = probing_engine(&probe);
            inspect::inspect(&model, json, load, engine, hub.as_ref(), kernels.as_deref())
                .map(|()| ExitCode::SUCCESS)
        }
    }
}

/// The arguments of a `tabagent-host probe-model` child: the same backend choice as ours.
fn probe_args(backends: &BackendConfig) -> Vec<String> {
    let mut args = vec!["probe-model".to_string()];
    if let Some(v) = &backends.cpu_variant {
        args.extend(["--cpu-variant".into(), v.clone()]);
    }
    if let Some(d) = &backends.backends_dir {
        args.extend(["--backends-dir".into(), d.to_string_lossy().into_owned()]);
    }
    args
}

/// The llama.cpp engine, probing each new model file in a child `tabagent-host probe-model`
/// (unless `--probe never`), showing long loads on a terminal.
fn probing_engine(probe: &(Probe, Vec<String>)) -> LlamaEngine {
    let engine = probe_engine(probe);
    match loading::load_progress() {
        Some(progress) => engine.with_load_progress(progress),
        None => engine,
    }
}

/// The engine `--probe` asks for.
fn probe_engine((mode, args): &(Probe, Vec<String>)) -> LlamaEngine {
    let mode = match mode {
        Probe::Never => return LlamaEngine::new(),
        Probe::Auto => llama::ProbeMode::Auto,
        Probe::Always => llama::ProbeMode::Always,
    };
    match std::env::current_exe() {
        Ok(exe) => {
            let mut config = llama::ProbeConfig::new(exe, args.clone());
            config.mode = mode;
            LlamaEngine::with_probe_config(config)
        }
        Err(e) => {
            tracing::warn!("cannot find this executable ({e}); loading models without a probe");
            LlamaEngine::new()
        }
    }
}
