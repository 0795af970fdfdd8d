//! Outgoing HTTP from guests (`wasi:http/outgoing-handler`): refused unless the user granted
//! the destination. A grant is `HOST` (any port) or `HOST:PORT`; `*` matches any run of
//! characters, so `*` alone grants every destination.

use crate::hub::pattern_matches;
use wasmtime_wasi_http::{Error, RequestOptions, WasiBody, WasiHttpHooks};

/// The destinations one guest may send HTTP requests to.
#[derive(Debug, Clone, Default)]
pub(super) struct OutgoingHttp {
    allowed: Vec<String>,
}

impl OutgoingHttp {
    pub(super) fn new(allowed: Vec<String>) -> Self {
        Self { allowed }
    }

    /// Whether a request to `authority` (`host[:port]`) is granted.
    fn allows(&self, authority: &str) -> bool {
        let host = match authority.rsplit_once(':') {
            Some((h, port)) if port.bytes().all(|b| b.is_ascii_digit()) => h,
            _ => authority,
        };
        self.allowed.iter().any(|grant| {
            let with_port = grant
                .rsplit_once(':')
                .is_some_and(|(_, p)| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()));
            if with_port { pattern_matches(grant, authority) } else { pattern_matches(grant, host) }
        })
    }
}

type Sent = Box<dyn Future<Output = Result<(), Error>> + Send>;

impl WasiHttpHooks for OutgoingHttp {
    fn send_request(
        &mut self,
        request: http::Request<WasiBody>,
        options: Option<RequestOptions>,
        fut: Sent,
    ) -> Box<dyn Future<Output = Result<(http::Response<WasiBody>, Sent), Error>> + Send> {
        drop(fut);
        let authority = request.uri().authority().map(|a| a.as_str().to_string());
        if !authority.as_deref().is_some_and(|a| self.allows(a)) {
            tracing::warn!(
                "refused a guest's HTTP request to {}: not granted (--allow-http)",
                authority.as_deref().unwrap_or("(no host)")
            );
            return Box::new(async { Err(Error::HttpRequestDenied) });
        }
        Box::new(async move {
            use http_body_util::BodyExt;
            let (res, io) = wasmtime_wasi_http::default_send_request(request, options).await?;
            Ok((res.map(BodyExt::boxed_unsync), Box::new(io) as Sent))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_granted_destinations_are_allowed() {
        let none = OutgoingHttp::default();
        assert!(!none.allows("example.com"));
        let g = OutgoingHttp::new(vec!["api.example.com".into(), "127.0.0.1:9000".into()]);
        assert!(g.allows("api.example.com"));
        assert!(g.allows("API.example.com:443"));
        assert!(g.allows("127.0.0.1:9000"));
        assert!(!g.allows("127.0.0.1:9001"));
        assert!(!g.allows("127.0.0.1"));
        assert!(!g.allows("evil.example.com"));
        assert!(!g.allows("api.example.com.evil.net"));
        let wild = OutgoingHttp::new(vec!["*.example.com".into()]);
        assert!(wild.allows("a.example.com:8080"));
        assert!(!wild.allows("example.org"));
        assert!(OutgoingHttp::new(vec!["*".into()]).allows("anything:1"));
    }
}
