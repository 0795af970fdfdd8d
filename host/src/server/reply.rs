//! What the server itself answers (health, refusals, guest failures) and how it reads request
//! bodies: whole, within a size and a time limit, before any guest is started.
//!
//! The server's own errors have the shape of OpenAI's error JSON
//! (`{"error": {"message", "type", "param", "code"}}`), so clients of an OpenAI-compatible guest
//! read them the same way as the guest's.

use bytes::Bytes;
use http::{HeaderValue, Response, StatusCode, header};
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Full, Limited};
use std::time::Duration;

/// A response body from the server or from a guest.
pub type ServerBody = UnsyncBoxBody<Bytes, wasmtime_wasi_http::Error>;

/// A JSON response.
pub fn json(status: StatusCode, value: &serde_json::Value) -> Response<ServerBody> {
    let body =
        Full::new(Bytes::from(value.to_string())).map_err(|never| match never {}).boxed_unsync();
    let mut r = Response::new(body);
    *r.status_mut() = status;
    r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    r
}

/// An error in OpenAI's shape.
pub fn error(status: StatusCode, kind: &str, code: &str, message: &str) -> Response<ServerBody> {
    json(
        status,
        &serde_json::json!({"error": {"message": message, "type": kind, "param": null, "code": code}}),
    )
}

/// Why a body could not be read.
#[derive(Debug)]
pub enum BodyError {
    /// Larger than the limit (413).
    TooLarge(usize),
    /// Not complete within the time limit (408).
    Timeout(Duration),
    /// The connection failed mid-body (400).
    Broken(String),
}

impl BodyError {
    /// The answer to give.
    pub fn response(&self) -> Response<ServerBody> {
        match self {
            Self::TooLarge(limit) => error(
                StatusCode::PAYLOAD_TOO_LARGE,
                "invalid_request_error",
                "request_too_large",
                &format!("the request body is larger than the limit of {limit} bytes"),
            ),
            Self::Timeout(d) => {
                let mut r = error(
                    StatusCode::REQUEST_TIMEOUT,
                    "invalid_request_error",
                    "request_timeout",
                    &format!("the request body did not arrive within {} s", d.as_secs_f64()),
                );
                r.headers_mut().insert(header::CONNECTION, HeaderValue::from_static("close"));
                r
            }
            Self::Broken(why) => error(
                StatusCode::BAD_REQUEST,
                "invalid_request_error",
                "bad_body",
                &format!("the request body could not be read: {why}"),
            ),
        }
    }
}

/// Read a whole body of at most `limit` bytes within `within`. A `Content-Length` over the limit
/// is refused before a byte is read.
pub async fn read_body(
    request: http::Request<hyper::body::Incoming>,
    limit: usize,
    within: Duration,
) -> Result<http::Request<Full<Bytes>>, BodyError> {
    let declared = request
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit as u64) {
        return Err(BodyError::TooLarge(limit));
    }
    let (parts, body) = request.into_parts();
    let collected = tokio::time::timeout(within, Limited::new(body, limit).collect())
        .await
        .map_err(|_| BodyError::Timeout(within))?;
    let bytes = match collected {
        Ok(c) => c.to_bytes(),
        Err(e) if e.is::<http_body_util::LengthLimitError>() => {
            return Err(BodyError::TooLarge(limit));
        }
        Err(e) => return Err(BodyError::Broken(e.to_string())),
    };
    Ok(http::Request::from_parts(parts, Full::new(bytes)))
}
