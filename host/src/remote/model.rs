//! A remote model: its metadata, its endpoints, and the one loop every request goes through —
//! take the least busy endpoint, try, and on an endpoint's failure (before any output) try
//! another, with backoff and jitter, a bounded number of times.

use super::client::{self, ApiKey, CallError, Timeouts};
use super::pool::{AcquireError, Permit, Pool};
use super::spec::{EndpointUrl, RemoteSpec};
use super::{block_on, wire};
use crate::engine::{ChatMessage, Model, ModelInfo, Session, SessionOptions, TokenId};
use crate::error::{LlmError, LlmResult};
use hyper::Method;
use serde_json::{Value, json};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// The training context taken for a model whose server does not give one.
const UNKNOWN_CONTEXT: u32 = 32_768;

/// Largest model list or `/props` answer.
const MAX_LIST: usize = 4 << 20;

/// Largest non-streamed answer (embeddings of many texts are the big ones).
const MAX_ANSWER: usize = 64 << 20;

/// What every request of one remote model shares.
pub(super) struct Shared {
    pub spec: RemoteSpec,
    pub key: Option<ApiKey>,
    pub pool: Arc<Pool>,
    /// The model id sent with each request.
    pub model_id: String,
    /// One clone per live session.
    pub sessions: Arc<()>,
}

/// How one attempt on one endpoint failed.
pub(super) enum Failure {
    /// The call failed; another endpoint may be tried if nothing was shown yet.
    Call(CallError),
    /// The attempt is over with this error, whatever the endpoints could do (the request
    /// itself is at fault, or its deadline passed).
    Final(LlmError),
    /// The endpoint failed (for the reason given) after output was shown: the attempt is over
    /// with this error, and the failure counts against the endpoint.
    Broken(LlmError, String),
}

impl From<CallError> for Failure {
    fn from(e: CallError) -> Self {
        Self::Call(e)
    }
}

impl Shared {
    /// The timeouts of a request, none past `deadline`.
    pub fn timeouts(&self, deadline: Option<std::time::Instant>) -> Timeouts {
        let left = deadline.map(|d| d.saturating_duration_since(std::time::Instant::now()));
        let cap = |t: Duration| left.map_or(t, |l| t.min(l.max(Duration::from_millis(1))));
        Timeouts {
            connect: cap(self.spec.connect_timeout),
            response: cap(self.spec.response_timeout),
            idle: cap(self.spec.idle_timeout),
        }
    }

    /// Run `attempt` on endpoints until one succeeds: the least busy first, another after an
    /// endpoint's failure, up to `retries` more times, waiting `retry-backoff` (doubled each
    /// time, with jitter) in between. `request_shaped`: the route's answer depends on the
    /// request alone (not a generation).
    pub async fn with_failover<T, F, Fut>(
        self: &Arc<Self>,
        what: &str,
        request_shaped: bool,
        mut attempt: F,
    ) -> LlmResult<T>
    where
        F: FnMut(Arc<Permit>) -> Fut,
        Fut: std::future::Future<Output = Result<T, Failure>>,
    {
        let mut avoid = Vec::new();
        let mut tries = 0;
        loop {
            let permit =
                self.pool.acquire(&avoid, self.spec.queue_timeout).await.map_err(|e| match e {
                    AcquireError::Busy(_) => LlmError::ResourceExhausted(format!(
                        "remote model '{}': {what}: {e}",
                        self.model_id
                    )),
                    AcquireError::AllDown(_) => {
                        LlmError::runtime(format!("remote model '{}': {what}: {e}", self.model_id))
                    }
                })?;
            let permit = Arc::new(permit);
            let index = permit.index();
            let label = permit.url().label();
            match attempt(Arc::clone(&permit)).await {
                Ok(v) => {
                    self.pool.succeeded(index);
                    return Ok(v);
                }
                Err(Failure::Final(e)) => return Err(e),
                Err(Failure::Broken(e, why)) => {
                    self.pool.failed(index, &why, false);
                    return Err(e);
                }
                Err(Failure::Call(e)) => {
                    let e = e.redacted(self.key.as_ref());
                    // On a route whose answer depends on the request alone (tokenize, embed…),
                    // a 500 is the request's doing (llama-server answers a bad token id so):
                    // it is not retried and does not count against the endpoint.
                    if request_shaped && matches!(e, CallError::Status { code: 500, .. }) {
                        return Err(self.call_error(what, &label, e, tries));
                    }
                    if e.endpoint_fault() {
                        self.pool.failed(index, &e.to_string(), matches!(e, CallError::Connect(_)));
                    }
                    if !e.retryable() || tries >= self.spec.retries {
                        return Err(self.call_error(what, &label, e, tries));
                    }
                    tries += 1;
                    avoid.push(index);
                    drop(permit);
                    let delay = backoff(self.spec.retry_backoff, tries);
                    tracing::warn!(
                        "remote model '{}': {what} failed on {label} ({e}); attempt {} of {} in {delay:?}",
                        self.model_id,
                        tries + 1,
                        self.spec.retries + 1
                    );
                    tokio::time::sleep(delay).await;
                }
            }
        }
    }

    /// The error a caller sees for a call that failed for good.
    pub fn call_error(&self, what: &str, label: &str, e: CallError, retries: u32) -> LlmError {
        let m = format!("remote model '{}': {what} on {label}: {e}", self.model_id);
        let m = if retries > 0 { format!("{m} (after {} attempts)", retries + 1) } else { m };
        match e {
            CallError::Status { code: 400 | 422, .. } => LlmError::InvalidInput(m),
            CallError::Status { code: 404, .. } => LlmError::NotFound(m),
            CallError::Status { code: 413 | 429, .. } => LlmError::ResourceExhausted(m),
            CallError::Status { code: 501, .. } => LlmError::Unsupported(m),
            _ => LlmError::Runtime(m),
        }
    }

    /// One JSON call, with failover. A 404 or 501 (the server lacks the route) is `unsupported`.
    pub async fn call(
        self: &Arc<Self>,
        what: &str,
        route: impl Fn(&EndpointUrl) -> String,
        body: Option<Value>,
    ) -> LlmResult<Value> {
        let shared = Arc::clone(self);
        let result = self
            .with_failover(what, true, |permit| {
                let shared = Arc::clone(&shared);
                let path = route(permit.url());
                let body = body.clone();
                async move {
                    let method = if body.is_some() { Method::POST } else { Method::GET };
                    let t = shared.timeouts(None);
                    let url = permit.url();
                    Ok(client::json(
                        url,
                        method,
                        &path,
                        body.as_ref(),
                        shared.key.as_ref(),
                        t,
                        MAX_ANSWER,
                    )
                    .await?)
                }
            })
            .await;
        result.map_err(|e| match e {
            LlmError::NotFound(m) => LlmError::Unsupported(format!(
                "{m}; this server does not offer it (llama.cpp's llama-server does)"
            )),
            other => other,
        })
    }
}

/// `base × 2^(n-1)`, at most 5 s, times a random factor in [0.5, 1.5).
fn backoff(base: Duration, n: u32) -> Duration {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u32(n);
    let jitter = 0.5 + (h.finish() % 1000) as f64 / 1000.0;
    let d = base.saturating_mul(1 << n.saturating_sub(1).min(16)).min(Duration::from_secs(5));
    d.mul_f64(jitter)
}

/// A model served by OpenAI-compatible endpoints.
pub struct RemoteModel {
    shared: Arc<Shared>,
    info: ModelInfo,
    /// A llama-server slot's context, where the server says.
    server_context: Option<u32>,
    /// Whether the server is llama.cpp's (it answered `/props`), which has the tokenizer and
    /// template routes.
    llama_routes: bool,
}

impl RemoteModel {
    /// Ask the endpoints (all at once) what they serve; the first to answer gives the
    /// metadata, those that do not are marked down. Starts the health checks.
    pub fn connect(spec: RemoteSpec) -> LlmResult<Self> {
        let key = match &spec.api_key_env {
            Some(var) => {
                Some(ApiKey::from_env(var).map_err(|m| LlmError::invalid(format!("{spec}: {m}")))?)
            }
            None => None,
        };
        let pool = Pool::new(&spec);
        let probe = Timeouts {
            connect: spec.connect_timeout,
            response: spec.response_timeout.min(Duration::from_secs(30)),
            idle: spec.idle_timeout.min(Duration::from_secs(30)),
        };
        let (urls, k) = (spec.endpoints.clone(), key.clone());
        let answers = block_on(async move {
            let calls = urls.into_iter().map(|u| {
                let k = k.clone();
                tokio::spawn(async move {
                    let list = client::json(
                        &u,
                        Method::GET,
                        &u.path("/models"),
                        None,
                        k.as_ref(),
                        probe,
                        MAX_LIST,
                    )
                    .await;
                    let props = match &list {
                        Ok(_) => client::json(
                            &u,
                            Method::GET,
                            &u.root_path("/props"),
                            None,
                            k.as_ref(),
                            probe,
                            MAX_LIST,
                        )
                        .await
                        .ok(),
                        Err(_) => None,
                    };
                    (list, props)
                })
            });
            let mut out = Vec::new();
            for c in calls.collect::<Vec<_>>() {
                out.push(
                    c.await.unwrap_or_else(|e| (Err(CallError::Protocol(e.to_string())), None)),
                );
            }
            out
        })?;
        let mut first = None;
        let mut errors = Vec::new();
        for (i, (list, props)) in answers.into_iter().enumerate() {
            match list {
                Ok(list) => {
                    if first.is_none() {
                        first = Some((list, props));
                    }
                }
                Err(e) => {
                    let e = e.redacted(key.as_ref());
                    tracing::warn!(
                        "remote endpoint {} did not answer: {e}",
                        spec.endpoints[i].label()
                    );
                    pool.failed(i, &e.to_string(), true);
                    errors.push(format!("{}: {e}", spec.endpoints[i].label()));
                }
            }
        }
        let Some((list, props)) = first else {
            return Err(LlmError::runtime(format!(
                "{spec}: no endpoint answered ({})",
                errors.join("; ")
            )));
        };
        let listed = wire::model_ids(&list);
        let model_id = match &spec.model {
            Some(m) => {
                if !listed.contains(m) {
                    // Some servers (llama.cpp's) serve one model under any name.
                    tracing::warn!(
                        "remote model '{m}' is not in the list its server gives ({listed:?})"
                    );
                }
                m.clone()
            }
            None => listed.first().cloned().ok_or_else(|| {
                LlmError::NotFound(format!(
                    "{spec}: the server lists no model; name one with #MODEL-ID"
                ))
            })?,
        };
        let mut info = wire::model_info(&model_id, &list, props.as_ref());
        let server_context = props.as_ref().and_then(wire::server_context);
        if info.context_length == 0 {
            // The server does not say: the slot's context where it is known, else a bound
            // that leaves the choice (and the refusal) to the server.
            info.context_length = server_context.unwrap_or(UNKNOWN_CONTEXT);
        }
        let shared = Arc::new(Shared { spec, key, pool, model_id, sessions: Arc::new(()) });
        let (k, interval) = (shared.key.clone(), shared.spec.health_interval);
        let five = Duration::from_secs(5);
        let check = Timeouts { connect: probe.connect.min(five), response: five, idle: five };
        shared.pool.watch(interval, move |u: EndpointUrl| {
            let k = k.clone();
            async move {
                client::json(&u, Method::GET, &u.path("/models"), None, k.as_ref(), check, MAX_LIST)
                    .await
                    .map(|_| ())
                    .map_err(|e| e.redacted(k.as_ref()).to_string())
            }
        });
        tracing::info!(
            "remote model '{}' on {} endpoint(s), context {:?}",
            shared.model_id,
            shared.spec.endpoints.len(),
            server_context
        );
        let llama_routes = props.is_some();
        Ok(Self { shared, info, server_context, llama_routes })
    }

    /// The state of each endpoint.
    pub fn endpoints(&self) -> Vec<super::pool::EndpointStatus> {
        self.shared.pool.status()
    }

    fn call(
        &self,
        what: &'static str,
        route: &'static str,
        root: bool,
        body: Value,
    ) -> LlmResult<Value> {
        if root && !self.llama_routes {
            return Err(LlmError::Unsupported(format!(
                "remote model '{}': {what}: this server does not offer it (llama.cpp's llama-server does)",
                self.shared.model_id
            )));
        }
        let shared = Arc::clone(&self.shared);
        block_on(async move {
            shared
                .call(
                    what,
                    move |u| if root { u.root_path(route) } else { u.path(route) },
                    Some(body),
                )
                .await
        })?
    }
}

impl Model for RemoteModel {
    fn info(&self) -> &ModelInfo {
        &self.info
    }

    fn tokenize(
        &self,
        text: &str,
        add_special: bool,
        parse_special: bool,
    ) -> LlmResult<Vec<TokenId>> {
        let v = self.call(
            "tokenize",
            "/tokenize",
            true,
            json!({"content": text, "add_special": add_special, "parse_special": parse_special}),
        )?;
        let tokens =
            v.get("tokens").and_then(Value::as_array).ok_or_else(|| bad_answer("tokenize"))?;
        tokens
            .iter()
            .map(|t| {
                t.as_u64().and_then(|t| u32::try_from(t).ok()).ok_or_else(|| bad_answer("tokenize"))
            })
            .collect()
    }

    fn detokenize(&self, tokens: &[TokenId], render_special: bool) -> LlmResult<String> {
        let _ = render_special;
        let vocab = self.info.vocab_size;
        if let Some(t) = tokens.iter().find(|t| vocab > 0 && **t >= vocab) {
            return Err(LlmError::invalid(format!(
                "token {t} is not in the vocabulary of {vocab}"
            )));
        }
        let v = self.call("detokenize", "/detokenize", true, json!({ "tokens": tokens }))?;
        v.get("content")
            .and_then(Value::as_str)
            .map(str::to_string)
            .ok_or_else(|| bad_answer("detokenize"))
    }

    fn apply_chat_template(
        &self,
        messages: &[ChatMessage],
        add_assistant: bool,
    ) -> LlmResult<String> {
        let m: Vec<Value> =
            messages.iter().map(|m| json!({"role": m.role, "content": m.content})).collect();
        let v = self.call(
            "apply-chat-template",
            "/apply-template",
            true,
            json!({"messages": m, "add_generation_prompt": add_assistant}),
        )?;
        v.get("prompt")
            .and_then(Value::as_str)
            .map(str::to_string)
            .ok_or_else(|| bad_answer("apply-template"))
    }

    fn new_session(&self, options: &SessionOptions) -> LlmResult<Box<dyn Session>> {
        if options.chat_template.is_some() {
            return Err(LlmError::Unsupported(
                "a remote model's chats are formatted by its server's template; a session's \
                 chat template needs a local model"
                    .into(),
            ));
        }
        let context =
            self.server_context.map_or(options.context_size, |n| options.context_size.min(n));
        Ok(Box::new(super::session::RemoteSession::new(Arc::clone(&self.shared), context)))
    }

    fn embed(&self, texts: &[String]) -> LlmResult<Vec<Vec<f32>>> {
        self.embed_cancellable(texts, &Arc::new(AtomicBool::new(false)))
    }

    fn embed_cancellable(
        &self,
        texts: &[String],
        cancel: &Arc<AtomicBool>,
    ) -> LlmResult<Vec<Vec<f32>>> {
        if texts.is_empty() {
            return Ok(Vec::new());
        }
        if let Some(i) = texts.iter().position(String::is_empty) {
            return Err(LlmError::invalid(format!("text {i} is empty")));
        }
        let shared = Arc::clone(&self.shared);
        let body = json!({"input": texts, "model": shared.model_id, "encoding_format": "float"});
        let (count, cancel) = (texts.len(), Arc::clone(cancel));
        let answer = block_on(async move {
            let call = shared.call("embeddings", |u| u.path("/embeddings"), Some(body));
            let cancelled = async {
                while !cancel.load(Ordering::Relaxed) {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            };
            tokio::select! {
                r = call => r,
                () = cancelled => Err(LlmError::runtime("the embedding was cancelled")),
            }
        })??;
        let dims = self.info.embedding_size as usize;
        let mut vectors = wire::embeddings(&answer, count, dims).map_err(|m| {
            LlmError::runtime(format!("remote model '{}': embeddings: {m}", self.shared.model_id))
        })?;
        for v in &mut vectors {
            crate::engine::normalize(v);
        }
        Ok(vectors)
    }

    fn sessions(&self) -> usize {
        Arc::strong_count(&self.shared.sessions) - 1
    }
}

fn bad_answer(what: &str) -> LlmError {
    LlmError::runtime(format!(
        "the remote server's {what} answer is not what OpenAI-compatible servers send"
    ))
}
