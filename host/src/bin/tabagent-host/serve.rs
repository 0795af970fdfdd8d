//! `tabagent-host serve`: serve HTTP with a `wasi:http` guest (one instance per request), the
//! granted models loaded once and shared, until interrupted.

use super::grants::GrantArgs;
use anyhow::Context as _;
use clap::Args;
use std::io::Write as _;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;
use tabagent_host::engine::llama::LlamaEngine;
use tabagent_host::hub::Hub;
use tabagent_host::runtime::Stdio;
use tabagent_host::server::{ServeOptions, Server};

#[derive(Args)]
pub struct ServeArgs {
    /// The server component (.wasm), exporting wasi:http/incoming-handler
    app: PathBuf,
    /// Address to listen on (port 0 picks a free port)
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:8080")]
    listen: SocketAddr,
    #[command(flatten)]
    grants: GrantArgs,
    /// Requests that run at once
    #[arg(long, value_name = "N", default_value_t = 16)]
    max_running: usize,
    /// Requests that may wait for a running slot; beyond them requests get 503 at once
    #[arg(long, value_name = "N", default_value_t = 64)]
    max_waiting: usize,
    /// Longest wait for a running slot, in seconds, before 503
    #[arg(long, value_name = "SECS", default_value_t = 30)]
    max_wait: u64,
    /// Largest request body, in MiB (413 beyond)
    #[arg(long, value_name = "MIB", default_value_t = 8)]
    max_body: usize,
    /// Seconds a client has to send a whole request body (408 beyond)
    #[arg(long, value_name = "SECS", default_value_t = 30)]
    body_timeout: u64,
    /// Seconds a client has to send a request's headers
    #[arg(long, value_name = "SECS", default_value_t = 10)]
    header_timeout: u64,
    /// Open connections at most
    #[arg(long, value_name = "N", default_value_t = 256)]
    max_connections: usize,
    /// Seconds a response waits for a client that reads nothing before the connection ends
    #[arg(long, value_name = "SECS", default_value_t = 60)]
    write_timeout: u64,
}

pub fn serve(args: ServeArgs, engine: LlamaEngine, hub: Hub) -> anyhow::Result<ExitCode> {
    let guest = args.grants.guest("server".into(), Vec::new(), Stdio::Stderr)?;
    let options = ServeOptions {
        max_running: args.max_running,
        max_waiting: args.max_waiting,
        max_wait: Duration::from_secs(args.max_wait),
        max_body_bytes: args.max_body.saturating_mul(1 << 20),
        body_timeout: Duration::from_secs(args.body_timeout),
        header_timeout: Duration::from_secs(args.header_timeout),
        max_connections: args.max_connections,
        write_timeout: Duration::from_secs(args.write_timeout),
        ..ServeOptions::default()
    };
    let runtime = tokio::runtime::Runtime::new().context("cannot start the async runtime")?;
    let result = runtime.block_on(async {
        let host = Arc::new(args.grants.host(engine, hub)?);
        let app = host.load_server(&args.app)?;
        let server = Server::bind(host, app, guest, args.listen, options).await?;
        let addr = server.local_addr()?;
        let mut out = std::io::stdout();
        writeln!(out, "listening on http://{addr}")?;
        out.flush()?;
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .context("cannot watch for SIGTERM")?;
        tokio::select! {
            () = server.run() => {}
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
        anyhow::Ok(())
    });
    // Requests in flight end with the process.
    runtime.shutdown_background();
    result.map(|()| ExitCode::SUCCESS)
}
