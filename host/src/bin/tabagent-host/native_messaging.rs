//! `tabagent-host native-messaging`: serve a browser extension over native messaging with a
//! message-handler component (the router), and install or remove the browser's host manifest.
//!
//! The wire: each message is a 32-bit length in native byte order, then that many bytes of
//! UTF-8 JSON. Stdout carries nothing but such frames (logs and the guest's own output go to
//! stderr). Messages from the browser may be up to 64 MiB; one to the browser at most 1 MiB
//! (Chromium closes the port on a larger one), so the host refuses larger ones with an error
//! message of its own. The host reads frames on a thread of its own, so it keeps answering
//! while a generation streams, and exits as soon as the browser closes stdin.

use super::grants::GrantArgs;
use anyhow::{Context as _, bail};
use clap::{Args, Subcommand};
use serde_json::json;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use tabagent_host::engine::llama::LlamaEngine;
use tabagent_host::hub::Hub;
use tabagent_host::runtime::{Reply, Stdio};
use tokio::sync::mpsc;

/// Largest message from the browser.
pub const MAX_IN: u32 = 64 << 20;
/// Largest message to the browser.
pub const MAX_OUT: usize = 1 << 20;
/// The host's name in the browser's manifest.
pub const HOST_NAME: &str = "com.tabagent.host";

#[derive(Args)]
#[command(args_conflicts_with_subcommands = true, subcommand_negates_reqs = true)]
pub struct NativeMessagingArgs {
    #[command(subcommand)]
    command: Option<NmCommand>,
    /// The router component (exports tabagent:llm/messages)
    #[arg(required = true)]
    router: Option<PathBuf>,
    #[command(flatten)]
    grants: GrantArgs,
    /// What the browser passes: Chromium the caller's origin (chrome-extension://ID/), Firefox
    /// the manifest's path and the add-on's id
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    caller: Vec<String>,
    /// Passed by Chrome on Windows; ignored
    #[arg(long, hide = true)]
    parent_window: Option<String>,
}

#[derive(Subcommand)]
enum NmCommand {
    /// Write the browser's native-messaging manifest and a launcher for this host
    Install(Box<InstallArgs>),
    /// Remove what `install` wrote
    Uninstall {
        #[arg(long, value_enum, default_value = "chrome")]
        browser: Browser,
        /// Folder of the manifest, instead of the browser's per-user folder
        #[arg(long, value_name = "DIR")]
        manifest_dir: Option<PathBuf>,
    },
}

#[derive(Args)]
struct InstallArgs {
    /// The extension allowed to connect (Chromium: its 32-letter id; Firefox: its add-on id)
    #[arg(long, value_name = "ID")]
    extension_id: String,
    /// Which browser's folder to write to
    #[arg(long, value_enum, default_value = "chrome")]
    browser: Browser,
    /// The router component [default: router.wasm beside this executable]
    #[arg(long, value_name = "PATH")]
    router: Option<PathBuf>,
    /// Folder of the manifest, instead of the browser's per-user folder (for a browser started
    /// with its own --user-data-dir: DIR/NativeMessagingHosts)
    #[arg(long, value_name = "DIR")]
    manifest_dir: Option<PathBuf>,
    /// Print what would be written, and write nothing
    #[arg(long)]
    print: bool,
    #[command(flatten)]
    grants: GrantArgs,
}

#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Browser {
    Chrome,
    Chromium,
    Edge,
    Firefox,
}

/// One frame from the browser, or why it is not one.
enum Incoming {
    Message(String),
    /// A frame the host answers with an error and then goes on.
    Bad(&'static str, String),
    /// A frame after which the stream cannot be trusted: answer, then exit.
    Fatal(&'static str, String),
}

/// Read frames from `input` until it ends; each goes to `tx`.
fn read_frames(mut input: impl Read, tx: mpsc::Sender<Incoming>) {
    loop {
        let mut len = [0u8; 4];
        match input.read_exact(&mut len) {
            Ok(()) => {}
            Err(_) => return, // closed, or closed inside the length: the browser is gone
        }
        let len = u32::from_ne_bytes(len);
        if len > MAX_IN {
            let _ = tx.blocking_send(Incoming::Fatal(
                "frame-too-large",
                format!("a message of {len} bytes is over the limit of {MAX_IN}"),
            ));
            return;
        }
        let mut body = vec![0u8; len as usize];
        if input.read_exact(&mut body).is_err() {
            tracing::warn!("the browser closed the pipe inside a message of {len} bytes");
            return;
        }
        let msg = match String::from_utf8(body) {
            Ok(s) if s.is_empty() => Incoming::Bad("empty-message", "an empty message".into()),
            Ok(s) => Incoming::Message(s),
            Err(e) => Incoming::Bad("invalid-utf8", format!("the message is not UTF-8: {e}")),
        };
        if tx.blocking_send(msg).is_err() {
            return;
        }
    }
}

/// The host's own error message (framing problems, a failed router).
fn host_error(code: &str, message: &str, id: Option<serde_json::Value>) -> String {
    let mut v = json!({"status": "error", "error": {"code": code, "message": message}});
    if let Some(id) = id {
        v["id"] = id;
    }
    v.to_string()
}

/// Write one frame; a message over the limit is replaced by an error naming its id.
fn write_frame(out: &mut impl Write, message: &str) -> std::io::Result<()> {
    let text = if message.len() > MAX_OUT {
        let id = serde_json::from_str::<serde_json::Value>(message)
            .ok()
            .and_then(|v| v.get("id").cloned());
        tracing::warn!("the router sent a message of {} bytes; refused", message.len());
        let why = format!(
            "the router's message of {} bytes is over the browser's limit of {MAX_OUT}",
            message.len()
        );
        // An id so long that the error would be too large itself is left out.
        let id = id.filter(|id| id.to_string().len() < 4096);
        host_error("message-too-large", &why, id)
    } else {
        message.to_string()
    };
    out.write_all(&(text.len() as u32).to_ne_bytes())?;
    out.write_all(text.as_bytes())?;
    out.flush()
}

fn send(reply: &Reply) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    for m in &reply.messages {
        write_frame(&mut out, m).context("cannot write to the browser")?;
    }
    Ok(())
}

pub fn native_messaging(
    args: NativeMessagingArgs,
    engine: LlamaEngine,
    hub: Hub,
) -> anyhow::Result<ExitCode> {
    match args.command {
        Some(NmCommand::Install(i)) => return install(*i).map(|()| ExitCode::SUCCESS),
        Some(NmCommand::Uninstall { browser, manifest_dir }) => {
            return uninstall(browser, manifest_dir).map(|()| ExitCode::SUCCESS);
        }
        None => {}
    }
    let router = args.router.expect("clap requires the router");
    if !args.caller.is_empty() {
        tracing::info!("native messaging for {}", args.caller.join(" "));
    }
    // A call into the router has 600 s by default; generation is bounded by the same deadline.
    let guest = args.grants.guest("router".into(), Vec::new(), Stdio::Stderr)?;
    let runtime = tokio::runtime::Runtime::new().context("cannot start the async runtime")?;
    let result = runtime.block_on(async {
        let host = args.grants.host(engine, hub)?;
        let app = host.load_router(&router)?;
        // A few frames read ahead at most: a busy router is not flooded with 64 MiB messages.
        let (tx, mut rx) = mpsc::channel(4);
        std::thread::Builder::new()
            .name("native-messaging-reader".into())
            .spawn(move || read_frames(std::io::stdin().lock(), tx))
            .context("cannot start the reader thread")?;
        let mut session = host.start_router(&app, guest.clone()).await?;
        let mut busy = false;
        let mut restarts = 0;
        // While work is in flight, incoming messages and steps of that work take turns, so
        // neither a stream of requests nor a long generation starves the other.
        let mut step_due = false;
        // When the browser closes the pipe the host ends at once (`exit_now`), without unwinding
        // the models and sessions in flight: the browser kills it 2 s later anyway, and every
        // frame is already flushed.
        loop {
            let incoming = if busy && step_due {
                None
            } else if busy {
                match rx.try_recv() {
                    Ok(m) => Some(m),
                    Err(mpsc::error::TryRecvError::Empty) => None,
                    Err(mpsc::error::TryRecvError::Disconnected) => exit_now(),
                }
            } else {
                match rx.recv().await {
                    Some(m) => Some(m),
                    None => exit_now(),
                }
            };
            step_due = incoming.is_some();
            let mut handled_id = None;
            let result = match incoming {
                Some(Incoming::Message(m)) => {
                    handled_id = serde_json::from_str::<serde_json::Value>(&m)
                        .ok()
                        .and_then(|v| v.get("id").cloned())
                        .filter(|id| id.to_string().len() < 4096);
                    session.handle(&m).await
                }
                Some(Incoming::Bad(code, why)) => {
                    send(&Reply { messages: vec![host_error(code, &why, None)], busy })?;
                    continue;
                }
                Some(Incoming::Fatal(code, why)) => {
                    send(&Reply { messages: vec![host_error(code, &why, None)], busy: false })?;
                    return Ok(ExitCode::from(1));
                }
                None => session.poll().await,
            };
            match result {
                Ok(reply) => {
                    busy = reply.busy;
                    send(&reply)?;
                }
                Err(e) => {
                    // The instance is unusable after a trap: say so, and start a fresh one.
                    tracing::error!("the router failed: {e}");
                    send(&Reply {
                        messages: vec![host_error(
                            "router-failed",
                            &format!(
                                "the router failed and was restarted (its loaded models and running requests are gone): {e}"
                            ),
                            handled_id,
                        )],
                        busy: false,
                    })?;
                    restarts += 1;
                    if restarts > 5 {
                        bail!("the router failed {restarts} times; giving up");
                    }
                    session = host.start_router(&app, guest.clone()).await?;
                    busy = false;
                }
            }
        }
    });
    // Do not wait for a generation that a timed-out call left running on a blocking thread.
    runtime.shutdown_background();
    result
}

/// Where a browser looks for a user's native-messaging manifests (Linux).
fn manifest_dir(browser: Browser) -> anyhow::Result<PathBuf> {
    let home = std::env::var_os("HOME").map(PathBuf::from).context("HOME is not set")?;
    let config =
        std::env::var_os("XDG_CONFIG_HOME").map(PathBuf::from).unwrap_or(home.join(".config"));
    Ok(match browser {
        Browser::Chrome => config.join("google-chrome/NativeMessagingHosts"),
        Browser::Chromium => config.join("chromium/NativeMessagingHosts"),
        Browser::Edge => config.join("microsoft-edge/NativeMessagingHosts"),
        Browser::Firefox => home.join(".mozilla/native-messaging-hosts"),
    })
}

/// Where the launcher script goes.
fn launcher_path(browser: Browser, manifest_dir: &Path) -> PathBuf {
    let name = match browser {
        Browser::Firefox => "tabagent-host-firefox.sh",
        _ => "tabagent-host-launcher.sh",
    };
    manifest_dir.join(name)
}

/// Quote for a POSIX shell.
fn sh_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', "'\\''"))
}

fn install(args: InstallArgs) -> anyhow::Result<()> {
    let id = &args.extension_id;
    let valid_chromium = id.len() == 32 && id.bytes().all(|b| (b'a'..=b'p').contains(&b));
    if args.browser != Browser::Firefox && !valid_chromium {
        bail!("--extension-id '{id}': a Chromium extension id is 32 letters a-p");
    }
    if args.browser == Browser::Firefox
        && (id.is_empty() || id.chars().any(|c| c.is_control() || c == '"'))
    {
        bail!("--extension-id '{}': not a Firefox add-on id", id.escape_debug());
    }
    let exe = std::env::current_exe().context("cannot find this executable")?;
    let router = match args.router {
        Some(r) => r,
        None => {
            exe.parent().map(|d| d.join("router.wasm")).context("no folder for this executable")?
        }
    };
    let router = router.canonicalize().with_context(|| format!("router {}", router.display()))?;
    // The browser starts the launcher from a folder of its own: every path in it is absolute.
    let mut grants = args.grants;
    grants.absolutize()?;
    // Check the grants now, not when the browser starts the host.
    grants.guest("router".into(), Vec::new(), Stdio::Stderr)?;
    let dir = match args.manifest_dir {
        Some(d) => std::path::absolute(&d).with_context(|| d.display().to_string())?,
        None => manifest_dir(args.browser)?,
    };
    let launcher = launcher_path(args.browser, &dir);
    let mut command =
        vec![exe.display().to_string(), "native-messaging".into(), router.display().to_string()];
    command.extend(grants.to_args());
    let script = format!(
        "#!/bin/sh\n# Written by `tabagent-host native-messaging install`; the browser starts it with the\n# caller (its origin, or for Firefox the manifest and add-on id) as arguments.\numask 077\nlog=\"${{XDG_STATE_HOME:-$HOME/.local/state}}/tabagent\"\nmkdir -p \"$log\"\nexec {} \"$@\" 2>>\"$log/native-messaging.log\"\n",
        command.iter().map(|a| sh_quote(a)).collect::<Vec<_>>().join(" ")
    );
    let mut manifest = json!({
        "name": HOST_NAME,
        "description": "TabAgent Host: local LLMs for the TabAgent extension",
        "path": launcher.display().to_string(),
        "type": "stdio",
    });
    if args.browser == Browser::Firefox {
        manifest["allowed_extensions"] = json!([id]);
    } else {
        manifest["allowed_origins"] = json!([format!("chrome-extension://{id}/")]);
    }
    let manifest_path = dir.join(format!("{HOST_NAME}.json"));
    let manifest_text = serde_json::to_string_pretty(&manifest)? + "\n";
    if args.print {
        println!(
            "{}:\n{manifest_text}\n{}:\n{script}",
            manifest_path.display(),
            launcher.display()
        );
        return Ok(());
    }
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    std::fs::write(&launcher, script)
        .with_context(|| format!("cannot write {}", launcher.display()))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        std::fs::set_permissions(&launcher, std::fs::Permissions::from_mode(0o755))?;
    }
    std::fs::write(&manifest_path, manifest_text)
        .with_context(|| format!("cannot write {}", manifest_path.display()))?;
    eprintln!("installed {} and {}", manifest_path.display(), launcher.display());
    Ok(())
}

fn uninstall(browser: Browser, dir: Option<PathBuf>) -> anyhow::Result<()> {
    let dir = match dir {
        Some(d) => d,
        None => manifest_dir(browser)?,
    };
    for p in [dir.join(format!("{HOST_NAME}.json")), launcher_path(browser, &dir)] {
        match std::fs::remove_file(&p) {
            Ok(()) => eprintln!("removed {}", p.display()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e).with_context(|| format!("cannot remove {}", p.display())),
        }
    }
    Ok(())
}

/// End the process with status 0 at once. Not `std::process::exit`: that runs llama.cpp's C++
/// static destructors while a model's scheduler thread may still be inside `llama_decode`,
/// which crashes (SIGSEGV) one time in a few. Every frame was flushed when it was written.
fn exit_now() -> ! {
    // SAFETY: `_exit` ends the process without running any handler; nothing after it runs.
    unsafe { libc::_exit(0) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_are_read_and_bad_ones_named() {
        let mut bytes = Vec::new();
        for m in ["{\"a\":1}", ""] {
            bytes.extend((m.len() as u32).to_ne_bytes());
            bytes.extend(m.as_bytes());
        }
        bytes.extend(2u32.to_ne_bytes());
        bytes.extend([0xff, 0xfe]);
        bytes.extend((MAX_IN + 1).to_ne_bytes());
        let (tx, mut rx) = mpsc::channel(16);
        read_frames(&bytes[..], tx);
        assert!(matches!(rx.try_recv(), Ok(Incoming::Message(m)) if m == "{\"a\":1}"));
        assert!(matches!(rx.try_recv(), Ok(Incoming::Bad("empty-message", _))));
        assert!(matches!(rx.try_recv(), Ok(Incoming::Bad("invalid-utf8", _))));
        assert!(matches!(rx.try_recv(), Ok(Incoming::Fatal("frame-too-large", _))));
        assert!(rx.try_recv().is_err());
    }

    #[test]
    fn messages_over_the_browser_limit_become_errors() {
        let mut out = Vec::new();
        let big = format!("{{\"id\":7,\"text\":\"{}\"}}", "x".repeat(MAX_OUT));
        write_frame(&mut out, &big).unwrap();
        let len = u32::from_ne_bytes(out[..4].try_into().unwrap()) as usize;
        let v: serde_json::Value = serde_json::from_slice(&out[4..4 + len]).unwrap();
        assert_eq!(v["error"]["code"], "message-too-large");
        assert_eq!(v["id"], 7);
        assert_eq!(sh_quote("a'b"), "'a'\\''b'");
    }
}
