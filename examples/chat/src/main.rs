//! Chat with a granted model: streams the reply to stdout, usage and speed to stderr.
//!
//! Build and run:
//! ```sh
//! cargo build --release --target wasm32-wasip2 -p chat
//! tabagent-host run target/wasm32-wasip2/release/chat.wasm \
//!     --model smollm2=models/SmolLM2-135M-Instruct.Q4_1.gguf -- "What is WebAssembly?"
//! ```
//! The prompt comes from the arguments, or from stdin when there are none. Options:
//! `--model NAME` (default: the first granted model), `--system TEXT`, `--max-tokens N`,
//! `--temperature T`, `--seed N`.

use std::io::{Read, Write};
use std::process::ExitCode;
use tabagent_guest::{Error, Message, Model};

struct Options {
    model: Option<String>,
    system: Option<String>,
    max_tokens: u32,
    temperature: f32,
    seed: Option<u64>,
    prompt: String,
}

fn parse_args() -> Result<Options, String> {
    let mut o = Options {
        model: None,
        system: None,
        max_tokens: 256,
        temperature: 0.7,
        seed: None,
        prompt: String::new(),
    };
    let mut words = Vec::new();
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = |name: &str| args.next().ok_or(format!("{name} needs a value"));
        match arg.as_str() {
            "--model" => o.model = Some(value("--model")?),
            "--system" => o.system = Some(value("--system")?),
            "--max-tokens" => {
                o.max_tokens =
                    value("--max-tokens")?.parse().map_err(|e| format!("--max-tokens: {e}"))?
            }
            "--temperature" => {
                o.temperature =
                    value("--temperature")?.parse().map_err(|e| format!("--temperature: {e}"))?
            }
            "--seed" => {
                o.seed = Some(value("--seed")?.parse().map_err(|e| format!("--seed: {e}"))?)
            }
            _ => words.push(arg),
        }
    }
    o.prompt = words.join(" ");
    if o.prompt.trim().is_empty() {
        let mut input = String::new();
        std::io::stdin().read_to_string(&mut input).map_err(|e| format!("reading stdin: {e}"))?;
        o.prompt = input.trim().to_string();
    }
    if o.prompt.is_empty() {
        return Err("no prompt: pass it as arguments or on stdin".into());
    }
    Ok(o)
}

fn chat(o: Options) -> Result<(), Error> {
    let name = match o.model {
        Some(name) => name,
        None => tabagent_guest::granted_models().into_iter().next().ok_or_else(|| {
            Error::NotGranted("no model was granted; use --model NAME=PATH".into())
        })?,
    };
    let model = Model::load(&name)?;
    let mut messages = Vec::new();
    if let Some(system) = o.system {
        messages.push(Message::system(system));
    }
    messages.push(Message::user(o.prompt));
    let mut request = model.chat(&messages).max_tokens(o.max_tokens).temperature(o.temperature);
    if let Some(seed) = o.seed {
        request = request.seed(seed);
    }
    let mut stream = request.stream()?;
    let mut stdout = std::io::stdout();
    for piece in stream.by_ref() {
        let _ = stdout.write_all(piece?.as_bytes());
        let _ = stdout.flush();
    }
    let _ = writeln!(stdout);
    let _ = stdout.flush();
    if let Some(g) = stream.outcome() {
        let reason = tabagent_guest::finish_reason_name(g.finish_reason);
        eprintln!(
            "[{name}] prompt {} tokens ({:.1} tok/s), generated {} tokens ({:.1} tok/s), finish: {reason}",
            g.usage.prompt_tokens,
            g.usage.prompt_tokens_per_second,
            g.usage.generated_tokens,
            g.usage.tokens_per_second,
        );
    }
    Ok(())
}

fn main() -> ExitCode {
    let options = match parse_args() {
        Ok(o) => o,
        Err(e) => {
            eprintln!("chat: {e}");
            tabagent_guest::exit(2);
        }
    };
    match chat(options) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("chat: {e}");
            ExitCode::FAILURE
        }
    }
}
