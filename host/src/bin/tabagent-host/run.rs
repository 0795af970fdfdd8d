//! `tabagent-host run`: run an app component's `wasi:cli/run` with the grants and limits given.

use super::grants::GrantArgs;
use anyhow::Context as _;
use clap::Args;
use std::path::PathBuf;
use std::process::ExitCode;
use tabagent_host::engine::llama::LlamaEngine;
use tabagent_host::hub::Hub;
use tabagent_host::runtime::Stdio;

#[derive(Args)]
pub struct RunArgs {
    /// The app component (.wasm)
    app: PathBuf,
    #[command(flatten)]
    grants: GrantArgs,
    /// Arguments for the app (after --)
    #[arg(last = true, value_name = "ARGS")]
    args: Vec<String>,
}

pub fn run(args: RunArgs, engine: LlamaEngine, hub: Hub) -> anyhow::Result<ExitCode> {
    let program =
        args.app.file_stem().map_or_else(|| "app".into(), |s| s.to_string_lossy().into_owned());
    let guest = args.grants.guest(program, args.args, Stdio::Inherit)?;
    // One app, most often one conversation: one sequence unless asked for more, since each
    // costs its share of KV cache, allocated and cleared before the first token.
    let engine = if args.grants.parallel.is_none() { engine.with_parallel(1) } else { engine };
    let runtime = tokio::runtime::Runtime::new().context("cannot start the async runtime")?;
    let outcome = runtime.block_on(async {
        let host = args.grants.host(engine, hub)?;
        let app = host.load_command(&args.app)?;
        anyhow::Ok(host.run(&app, guest).await?)
    })?;
    Ok(ExitCode::from(u8::try_from(outcome.exit_code).unwrap_or(1)))
}
