//! What a remote model grant says: the endpoints, the model id on them, where the API key comes
//! from, and the client's policy (timeouts, retries, concurrency, health checks, breaker).
//!
//! On the command line: `remote:URL[,URL…][#MODEL-ID]`, for example
//! `remote:http://10.0.0.1:8080/v1,http://10.0.0.2:8080/v1#qwen2.5-7b`. In a config file, a table
//! under `[models]` with the same facts and the policy fields ([`RemoteEntry`]).

use crate::error::{LlmError, LlmResult};
use serde::Deserialize;
use std::time::Duration;

/// One OpenAI-compatible endpoint: a base URL such as `http://127.0.0.1:8080/v1`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct EndpointUrl {
    /// `http` or `https`.
    pub tls: bool,
    /// Host name or address (without brackets for IPv6).
    pub host: String,
    /// Port (the scheme's default when the URL has none).
    pub port: u16,
    /// Path prefix without a trailing `/` (`/v1`, or empty).
    pub base_path: String,
}

impl EndpointUrl {
    /// Read a base URL. Credentials, queries and fragments are refused: an API key belongs in an
    /// environment variable, never in a URL that logs and messages show.
    pub fn parse(text: &str) -> LlmResult<Self> {
        let shown = without_userinfo(text);
        let bad = |why: &str| LlmError::invalid(format!("remote endpoint '{shown}': {why}"));
        let (tls, rest) = if let Some(r) = text.strip_prefix("https://") {
            (true, r)
        } else if let Some(r) = text.strip_prefix("http://") {
            (false, r)
        } else {
            return Err(bad("expected an http:// or https:// URL"));
        };
        if text.chars().any(|c| c.is_control() || c.is_whitespace()) {
            return Err(bad("spaces and control characters are not allowed"));
        }
        let (authority, path) = rest.find('/').map_or((rest, ""), |i| rest.split_at(i));
        if authority.contains('@') {
            return Err(bad("credentials do not belong in the URL; name an api-key-env instead"));
        }
        if path.contains(['?', '#']) || authority.contains(['?', '#']) {
            return Err(bad("a base URL has no query or fragment"));
        }
        let (host, port) = split_host_port(authority).ok_or_else(|| bad("no valid host"))?;
        let port = match port {
            Some(p) => p.parse::<u16>().ok().filter(|p| *p > 0).ok_or_else(|| bad("bad port"))?,
            None if tls => 443,
            None => 80,
        };
        let base_path = path.trim_end_matches('/').to_string();
        Ok(Self { tls, host, port, base_path })
    }

    /// `host:port`, as logs and messages name the endpoint.
    pub fn label(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }

    /// The request path of `route` (`/chat/completions`) under the base path.
    pub fn path(&self, route: &str) -> String {
        format!("{}{route}", self.base_path)
    }

    /// A path at the server's root rather than under the base (llama-server's `/props`,
    /// `/tokenize`), for a base path of `/v1` or empty.
    pub fn root_path(&self, route: &str) -> String {
        match self.base_path.strip_suffix("/v1") {
            Some(prefix) => format!("{prefix}{route}"),
            None => format!("{}{route}", self.base_path),
        }
    }
}

impl std::fmt::Display for EndpointUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let scheme = if self.tls { "https" } else { "http" };
        write!(f, "{scheme}://{}{}", self.label(), self.base_path)
    }
}

/// A URL as messages may show it: credentials before an `@` replaced by `***`.
fn without_userinfo(text: &str) -> String {
    let Some((scheme, rest)) = text.split_once("://") else { return text.to_string() };
    let end = rest.find('/').unwrap_or(rest.len());
    match rest[..end].rfind('@') {
        Some(at) => format!("{scheme}://***{}", &rest[at..]),
        None => text.to_string(),
    }
}

fn split_host_port(authority: &str) -> Option<(String, Option<&str>)> {
    if let Some(rest) = authority.strip_prefix('[') {
        let (host, after) = rest.split_once(']')?;
        let port = match after {
            "" => None,
            p => Some(p.strip_prefix(':')?),
        };
        return (!host.is_empty()).then(|| (host.to_string(), port));
    }
    let (host, port) = match authority.rsplit_once(':') {
        Some((h, p)) => (h, Some(p)),
        None => (authority, None),
    };
    let ok = !host.is_empty()
        && host.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_'));
    ok.then(|| (host.to_ascii_lowercase(), port))
}

/// A remote model: where it is served and how the host talks to it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RemoteSpec {
    /// The endpoints serving the model (replicas), at least one.
    pub endpoints: Vec<EndpointUrl>,
    /// The model id on the endpoints; `None` takes the one each server lists first.
    pub model: Option<String>,
    /// The environment variable holding the API key, sent as a bearer token; `None` sends none.
    pub api_key_env: Option<String>,
    /// Most time to open a connection.
    pub connect_timeout: Duration,
    /// Most time from sending a request to its response head (prompt processing included).
    pub response_timeout: Duration,
    /// Most time between two parts of a streamed response.
    pub idle_timeout: Duration,
    /// Further attempts after a failed one, on other endpoints where there are any, before any
    /// output.
    pub retries: u32,
    /// First retry delay; doubled each time, with jitter.
    pub retry_backoff: Duration,
    /// Requests in flight per endpoint; more wait in a queue.
    pub max_concurrent: u32,
    /// Most time a request waits for a free endpoint.
    pub queue_timeout: Duration,
    /// Time between two health checks of each endpoint.
    pub health_interval: Duration,
    /// Consecutive failures that open an endpoint's circuit breaker.
    pub breaker_failures: u32,
    /// How long an open breaker keeps requests away before one is tried again (doubled each
    /// time it opens again, up to a minute).
    pub breaker_cooldown: Duration,
}

impl RemoteSpec {
    /// A spec over `endpoints` with the default policy.
    pub fn new(endpoints: Vec<EndpointUrl>, model: Option<String>) -> Self {
        Self {
            endpoints,
            model,
            api_key_env: None,
            connect_timeout: Duration::from_secs(5),
            response_timeout: Duration::from_secs(300),
            idle_timeout: Duration::from_secs(60),
            retries: 2,
            retry_backoff: Duration::from_millis(100),
            max_concurrent: 4,
            queue_timeout: Duration::from_secs(60),
            health_interval: Duration::from_secs(5),
            breaker_failures: 3,
            breaker_cooldown: Duration::from_secs(5),
        }
    }

    /// Read the command-line form, `remote:URL[,URL…][#MODEL-ID]`.
    pub fn parse(text: &str) -> LlmResult<Self> {
        let rest = text
            .strip_prefix("remote:")
            .ok_or_else(|| LlmError::invalid(format!("'{text}' is not a remote: grant")))?;
        let (urls, model) = match rest.split_once('#') {
            Some((u, m)) => (u, Some(m.to_string())),
            None => (rest, None),
        };
        let endpoints = urls.split(',').map(EndpointUrl::parse).collect::<LlmResult<Vec<_>>>()?;
        Self::new(endpoints, model).checked()
    }

    /// The spec, or `invalid-input` saying which field is wrong.
    pub fn checked(self) -> LlmResult<Self> {
        let bad = |why: String| Err(LlmError::invalid(format!("remote model: {why}")));
        if self.endpoints.is_empty() {
            return bad("no endpoint".into());
        }
        if let Some(m) = &self.model
            && (m.is_empty() || m.len() > 256 || m.chars().any(char::is_control))
        {
            return bad(format!("bad model id '{}'", m.escape_debug()));
        }
        if let Some(v) = &self.api_key_env
            && (v.is_empty() || !v.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'))
        {
            // The value is not echoed: it may be the key itself, put in the wrong field.
            return bad(
                "api-key-env must name an environment variable (letters, digits and '_')".into()
            );
        }
        if self.max_concurrent == 0 || self.breaker_failures == 0 {
            return bad("max-concurrent and breaker-failures must be at least 1".into());
        }
        if self.retries > 10 {
            return bad(format!("retries {} is more than 10", self.retries));
        }
        let day = Duration::from_secs(86_400);
        let long = [
            ("connect-timeout", self.connect_timeout),
            ("timeout", self.response_timeout),
            ("idle-timeout", self.idle_timeout),
            ("queue-timeout", self.queue_timeout),
            ("health-interval", self.health_interval),
            ("retry-backoff", self.retry_backoff),
            ("breaker-cooldown", self.breaker_cooldown),
        ];
        if let Some((name, _)) = long.iter().find(|(_, d)| *d > day) {
            return bad(format!("{name} must be at most a day"));
        }
        if self.breaker_cooldown.is_zero() {
            return bad("breaker-cooldown must be more than 0".into());
        }
        let zero = [
            ("connect-timeout", self.connect_timeout),
            ("timeout", self.response_timeout),
            ("idle-timeout", self.idle_timeout),
            ("queue-timeout", self.queue_timeout),
            ("health-interval", self.health_interval),
        ];
        if let Some((name, _)) = zero.iter().find(|(_, d)| d.is_zero()) {
            return bad(format!("{name} must be more than 0"));
        }
        let mut seen = self.endpoints.clone();
        seen.sort();
        seen.dedup();
        if seen.len() != self.endpoints.len() {
            return bad("an endpoint is listed twice".into());
        }
        Ok(self)
    }
}

impl std::fmt::Display for RemoteSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let urls: Vec<String> = self.endpoints.iter().map(ToString::to_string).collect();
        write!(f, "remote:{}", urls.join(","))?;
        if let Some(m) = &self.model {
            write!(f, "#{m}")?;
        }
        Ok(())
    }
}

/// A remote model as a config file writes it:
///
/// ```toml
/// [models.big]
/// remote = ["http://10.0.0.1:8080/v1", "http://10.0.0.2:8080/v1"]   # or one string
/// model = "qwen2.5-7b"            # the id on the servers (default: the first they list)
/// api-key-env = "BIG_API_KEY"     # sent as a bearer token; never shown to guests or logs
/// connect-timeout-ms = 5000
/// timeout-secs = 300              # to the response head (prompt processing included)
/// idle-timeout-secs = 60          # between two streamed parts
/// retries = 2                     # further attempts before any output, on other endpoints
/// retry-backoff-ms = 100
/// max-concurrent = 4              # per endpoint; more requests wait
/// queue-timeout-secs = 60
/// health-interval-ms = 5000
/// breaker-failures = 3            # consecutive failures that take an endpoint out
/// breaker-cooldown-ms = 5000
/// ```
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct RemoteEntry {
    remote: OneOrMany,
    model: Option<String>,
    api_key_env: Option<String>,
    connect_timeout_ms: Option<u64>,
    timeout_secs: Option<u64>,
    idle_timeout_secs: Option<u64>,
    retries: Option<u32>,
    retry_backoff_ms: Option<u64>,
    max_concurrent: Option<u32>,
    queue_timeout_secs: Option<u64>,
    health_interval_ms: Option<u64>,
    breaker_failures: Option<u32>,
    breaker_cooldown_ms: Option<u64>,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum OneOrMany {
    One(String),
    Many(Vec<String>),
}

impl RemoteEntry {
    /// The spec this entry describes, checked.
    pub fn into_spec(self) -> LlmResult<RemoteSpec> {
        let urls = match self.remote {
            OneOrMany::One(u) => vec![u],
            OneOrMany::Many(u) => u,
        };
        let endpoints = urls.iter().map(|u| EndpointUrl::parse(u)).collect::<LlmResult<_>>()?;
        let mut s = RemoteSpec::new(endpoints, self.model);
        s.api_key_env = self.api_key_env;
        let ms = Duration::from_millis;
        let secs = Duration::from_secs;
        let set = |slot: &mut Duration, v: Option<u64>, unit: fn(u64) -> Duration| {
            if let Some(v) = v {
                *slot = unit(v);
            }
        };
        set(&mut s.connect_timeout, self.connect_timeout_ms, ms);
        set(&mut s.response_timeout, self.timeout_secs, secs);
        set(&mut s.idle_timeout, self.idle_timeout_secs, secs);
        set(&mut s.retry_backoff, self.retry_backoff_ms, ms);
        set(&mut s.queue_timeout, self.queue_timeout_secs, secs);
        set(&mut s.health_interval, self.health_interval_ms, ms);
        set(&mut s.breaker_cooldown, self.breaker_cooldown_ms, ms);
        s.retries = self.retries.unwrap_or(s.retries);
        s.max_concurrent = self.max_concurrent.unwrap_or(s.max_concurrent);
        s.breaker_failures = self.breaker_failures.unwrap_or(s.breaker_failures);
        s.checked()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn command_line_form() {
        let s =
            RemoteSpec::parse("remote:https://Api.Example.com/v1/,http://10.0.0.2:8081/v1#m-7b")
                .unwrap();
        assert_eq!(s.endpoints.len(), 2);
        assert_eq!(s.endpoints[0].label(), "api.example.com:443");
        assert!(s.endpoints[0].tls);
        assert_eq!(s.endpoints[0].path("/chat/completions"), "/v1/chat/completions");
        assert_eq!(s.endpoints[1].root_path("/props"), "/props");
        assert_eq!(s.model.as_deref(), Some("m-7b"));
        assert_eq!(
            s.to_string(),
            "remote:https://api.example.com:443/v1,http://10.0.0.2:8081/v1#m-7b"
        );
        let v6 = EndpointUrl::parse("http://[::1]:9000").unwrap();
        assert_eq!((v6.host.as_str(), v6.port, v6.base_path.as_str()), ("::1", 9000, ""));
        assert_eq!(v6.label(), "[::1]:9000");
        assert_eq!(v6.root_path("/tokenize"), "/tokenize");
        assert_eq!(RemoteSpec::parse("remote:http://h/v1").unwrap().model, None);
    }

    #[test]
    fn bad_specs_say_why() {
        for (text, why) in [
            ("remote:ftp://h/v1", "http:// or https://"),
            ("remote:http://user:secret@h/v1", "credentials"),
            ("remote:http://h/v1?key=1", "query"),
            ("remote:http://h:0/v1", "bad port"),
            ("remote:http://h:99999/v1", "bad port"),
            ("remote:http:///v1", "no valid host"),
            ("remote:http://h/v1,http://h/v1", "twice"),
            ("remote:http://h/v1#", "bad model id"),
        ] {
            let e = RemoteSpec::parse(text).unwrap_err();
            assert_eq!(e.kind(), "invalid-input", "{text}");
            assert!(e.message().contains(why), "{text}: {e}");
            assert!(!e.message().contains("secret"), "{e}");
        }
    }

    #[test]
    fn config_entries() {
        let entry: RemoteEntry = toml::from_str(
            "remote = [\"http://a:1/v1\", \"http://b:2/v1\"]\nmodel = \"m\"\napi-key-env = \"K_1\"\nretries = 1\nmax-concurrent = 2\nhealth-interval-ms = 250\n",
        )
        .unwrap();
        let s = entry.into_spec().unwrap();
        assert_eq!(s.endpoints.len(), 2);
        assert_eq!(s.api_key_env.as_deref(), Some("K_1"));
        assert_eq!((s.retries, s.max_concurrent), (1, 2));
        assert_eq!(s.health_interval, Duration::from_millis(250));
        let one: RemoteEntry = toml::from_str("remote = \"http://a/v1\"").unwrap();
        assert_eq!(one.into_spec().unwrap().endpoints[0].port, 80);
        let bad: RemoteEntry =
            toml::from_str("remote = \"http://a/v1\"\napi-key-env = \"sk-123 456\"").unwrap();
        let e = bad.into_spec().unwrap_err();
        assert!(e.message().contains("api-key-env") && !e.message().contains("sk-123"), "{e}");
        for bad in ["breaker-cooldown-ms = 0", "queue-timeout-secs = 99999999999"] {
            let e: RemoteEntry =
                toml::from_str(&format!("remote = \"http://a/v1\"\n{bad}")).unwrap();
            assert_eq!(e.into_spec().unwrap_err().kind(), "invalid-input", "{bad}");
        }
        let unknown = toml::from_str::<RemoteEntry>("remote = \"http://a/v1\"\napi-key = \"x\"");
        assert!(unknown.unwrap_err().to_string().contains("unknown field"));
    }
}
