//! `wasi:http` I/O: the request body in, a response (whole, or streamed as server-sent events)
//! out. A write that fails means the client went away: callers stop generating.

use crate::api::ApiError;
use crate::bindings::wasi::http::types::{
    Fields, IncomingRequest, OutgoingBody, OutgoingResponse, ResponseOutparam,
};
use crate::bindings::wasi::io::streams::{OutputStream, StreamError};

/// Largest body read (the host has its own, usually lower, limit).
const MAX_BODY: usize = 64 << 20;

/// Most bytes one `blocking-write-and-flush` takes.
const MAX_WRITE: usize = 4096;

/// The whole request body.
pub fn read_body(request: &IncomingRequest) -> Result<Vec<u8>, ApiError> {
    let broken =
        |why: String| ApiError::invalid(format!("the request body could not be read: {why}"));
    let body = request.consume().map_err(|()| broken("consumed twice".into()))?;
    let mut bytes = Vec::new();
    {
        let stream = body.stream().map_err(|()| broken("no stream".into()))?;
        loop {
            match stream.blocking_read(64 << 10) {
                Ok(chunk) => {
                    bytes.extend_from_slice(&chunk);
                    if bytes.len() > MAX_BODY {
                        return Err(ApiError::too_large(MAX_BODY));
                    }
                }
                Err(StreamError::Closed) => break,
                Err(StreamError::LastOperationFailed(e)) => {
                    return Err(broken(e.to_debug_string()));
                }
            }
        }
    }
    drop(body);
    Ok(bytes)
}

/// The client stopped reading.
#[derive(Debug)]
pub struct Gone;

/// A response whose head is sent; its body is written in pieces.
pub struct Response {
    stream: Option<OutputStream>,
    body: Option<OutgoingBody>,
}

impl Response {
    /// Send the head: `status` and `content_type` (plus no-cache for event streams).
    pub fn start(out: ResponseOutparam, status: u16, content_type: &str) -> Self {
        Self::start_with(out, status, content_type, None)
    }

    /// Send the head, with the body's length when it is known.
    fn start_with(
        out: ResponseOutparam,
        status: u16,
        content_type: &str,
        length: Option<usize>,
    ) -> Self {
        let mut headers = vec![("content-type".to_string(), content_type.as_bytes().to_vec())];
        if let Some(n) = length {
            headers.push(("content-length".into(), n.to_string().into_bytes()));
        }
        if content_type == "text/event-stream" {
            headers.push(("cache-control".into(), b"no-cache".to_vec()));
        }
        let fields = Fields::from_list(&headers).expect("valid header names");
        let response = OutgoingResponse::new(fields);
        response.set_status_code(status).expect("a valid status");
        let body = response.body().expect("the body is taken once");
        ResponseOutparam::set(out, Ok(response));
        let stream = body.write().expect("the stream is taken once");
        Self { stream: Some(stream), body: Some(body) }
    }

    /// Write bytes of the body.
    pub fn write(&mut self, bytes: &[u8]) -> Result<(), Gone> {
        let stream = self.stream.as_ref().ok_or(Gone)?;
        for chunk in bytes.chunks(MAX_WRITE) {
            if stream.blocking_write_and_flush(chunk).is_err() {
                self.stream = None;
                return Err(Gone);
            }
        }
        Ok(())
    }

    /// One server-sent event carrying `data`.
    pub fn event(&mut self, data: &str) -> Result<(), Gone> {
        self.write(format!("data: {data}\n\n").as_bytes())
    }

    /// End the body.
    pub fn finish(mut self) {
        self.end();
    }

    fn end(&mut self) {
        drop(self.stream.take());
        if let Some(body) = self.body.take() {
            let _ = OutgoingBody::finish(body, None);
        }
    }
}

impl Drop for Response {
    fn drop(&mut self) {
        self.end();
    }
}

/// A whole JSON response.
pub fn send_json(out: ResponseOutparam, status: u16, value: &serde_json::Value) {
    let text = value.to_string();
    let mut r = Response::start_with(out, status, "application/json", Some(text.len()));
    let _ = r.write(text.as_bytes());
    r.finish();
}

/// An error response in OpenAI's shape.
pub fn send_error(out: ResponseOutparam, e: &ApiError) {
    send_json(out, e.status, &e.to_json());
}
