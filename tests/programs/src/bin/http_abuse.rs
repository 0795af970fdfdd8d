//! A hostile `wasi:http` handler, for the server's tests: the request's path picks the abuse.
//! `/ok` answers 200; `/trap` panics; `/loop` spins forever; `/alloc` grows memory without end;
//! `/no-response` returns without answering; `/trap-mid-stream` traps after its first bytes;
//! `/flood` writes without end, ignoring failures; `/deaf-stream` streams a long generation and
//! ignores every failed write (the host must stop it when its client goes away);
//! `/fetch/PORT` makes an outgoing request to `http://127.0.0.1:PORT/` and answers 200 with its
//! body, or 502 with the error.

mod bindings {
    wit_bindgen::generate!({
        inline: "
            package tabagent:http-abuse;
            world http-abuse {
                include tabagent:llm/llm@0.2.0;
                import wasi:http/outgoing-handler@0.2.12;
                export wasi:http/incoming-handler@0.2.12;
            }
        ",
        path: "../../wit",
        world: "tabagent:http-abuse/http-abuse",
        with: {
            "tabagent:llm/types@0.2.0": tabagent_guest::bindings::tabagent::llm::types,
            "tabagent:llm/hardware@0.2.0": tabagent_guest::bindings::tabagent::llm::hardware,
            "tabagent:llm/models@0.2.0": tabagent_guest::bindings::tabagent::llm::models,
            "tabagent:llm/inference@0.2.0": tabagent_guest::bindings::tabagent::llm::inference,
            "tabagent:llm/pulls@0.2.0": tabagent_guest::bindings::tabagent::llm::pulls,
        },
        generate_all,
    });
}

use bindings::exports::wasi::http::incoming_handler::Guest;
use bindings::wasi::http::types::{
    Fields, IncomingRequest, OutgoingBody, OutgoingResponse, ResponseOutparam,
};
use std::hint::black_box;

struct Handler;

fn respond(
    out: ResponseOutparam,
    status: u16,
) -> (OutgoingBody, bindings::wasi::io::streams::OutputStream) {
    let response = OutgoingResponse::new(Fields::new());
    response.set_status_code(status).unwrap();
    let body = response.body().unwrap();
    ResponseOutparam::set(out, Ok(response));
    let stream = body.write().unwrap();
    (body, stream)
}

impl Guest for Handler {
    fn handle(request: IncomingRequest, out: ResponseOutparam) {
        match request.path_with_query().unwrap_or_default().as_str() {
            "/ok" => {
                let (body, stream) = respond(out, 200);
                stream.blocking_write_and_flush(b"ok").unwrap();
                drop(stream);
                OutgoingBody::finish(body, None).unwrap();
            }
            "/trap" => panic!("the handler traps"),
            "/loop" => {
                let mut n = 0u64;
                loop {
                    n = black_box(n.wrapping_add(1));
                }
            }
            "/alloc" => {
                let mut hoard = Vec::new();
                loop {
                    hoard.push(black_box(vec![1u8; 16 << 20]));
                }
            }
            "/no-response" => drop(out),
            "/trap-mid-stream" => {
                let (_body, stream) = respond(out, 200);
                stream.blocking_write_and_flush(b"the start of a reply").unwrap();
                panic!("the handler traps mid-stream");
            }
            "/flood" => {
                let (_body, stream) = respond(out, 200);
                let block = vec![b'x'; 4096];
                loop {
                    let _ = stream.blocking_write_and_flush(&block);
                }
            }
            "/deaf-stream" => {
                let (_body, stream) = respond(out, 200);
                let model = tabagent_guest::Model::load("smollm2").unwrap();
                let pieces =
                    model.complete("Once upon a time").greedy().max_tokens(4000).stream().unwrap();
                for piece in pieces {
                    let _ = stream.blocking_write_and_flush(piece.unwrap().as_bytes());
                }
            }
            p if p.starts_with("/fetch/") => {
                let (status, text) = match fetch(&p["/fetch/".len()..]) {
                    Ok(t) => (200, t),
                    Err(e) => (502, e),
                };
                let (body, stream) = respond(out, status);
                stream.blocking_write_and_flush(text.as_bytes()).unwrap();
                drop(stream);
                OutgoingBody::finish(body, None).unwrap();
            }
            _ => {
                let (body, stream) = respond(out, 404);
                drop(stream);
                OutgoingBody::finish(body, None).unwrap();
            }
        }
    }
}

/// GET `http://127.0.0.1:PORT/`: its body, or the error.
fn fetch(port: &str) -> Result<String, String> {
    use bindings::wasi::http::outgoing_handler;
    use bindings::wasi::http::types::{OutgoingRequest, Scheme};
    let request = OutgoingRequest::new(Fields::new());
    request.set_scheme(Some(&Scheme::Http)).unwrap();
    request.set_authority(Some(&format!("127.0.0.1:{port}"))).unwrap();
    request.set_path_with_query(Some("/")).unwrap();
    let pending = outgoing_handler::handle(request, None).map_err(|e| format!("{e:?}"))?;
    pending.subscribe().block();
    let response = match pending.get() {
        Some(Ok(Ok(r))) => r,
        Some(Ok(Err(e))) => return Err(format!("{e:?}")),
        other => return Err(format!("no response: {other:?}")),
    };
    let body = response.consume().unwrap();
    let stream = body.stream().unwrap();
    let mut bytes = Vec::new();
    while let Ok(chunk) = stream.blocking_read(4096) {
        bytes.extend(chunk);
    }
    Ok(String::from_utf8_lossy(&bytes).into_owned())
}

bindings::export!(Handler with_types_in bindings);

fn main() {}
