//! The `openai` brain: any OpenAI-compatible chat-completions endpoint
//! (OpenAI, vLLM, llama.cpp's server, Ollama...). It sends the same prompt as
//! the local brain ([`chat_prompt`]) and owns the call discipline: a timeout
//! per attempt, retries with exponential backoff and jitter on rate limits,
//! server errors, timeouts and connection failures (never on other 4xx), and
//! a semaphore capping calls in flight.

use std::sync::Arc;
use std::time::Duration;

use async_openai::config::OpenAIConfig;
use async_openai::error::OpenAIError;
use async_openai::types::chat::{
    ChatCompletionRequestMessage, ChatCompletionRequestSystemMessage,
    ChatCompletionRequestUserMessage, CreateChatCompletionRequest, CreateChatCompletionRequestArgs,
    CreateChatCompletionResponse, ResponseFormat,
};
use rand::Rng;
use tokio::sync::Semaphore;

use super::extractive::approx_tokens;
use super::local::chat_prompt;
use super::{Brain, BrainError, Compose, Composed};

/// Longest wait between two attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(20);

/// How to reach the endpoint and how hard to try.
#[derive(Debug, Clone)]
pub struct OpenAiBrainSettings {
    /// API base including the version, e.g. `https://api.openai.com/v1`.
    pub base_url: String,
    /// Model name sent with each request.
    pub model: String,
    /// Bearer token; `None` sends none (local servers rarely need one).
    pub api_key: Option<String>,
    /// Limit for one attempt (connect, wait and read).
    pub timeout: Duration,
    /// Attempts after the first on transient failures.
    pub max_retries: u32,
    /// Calls in flight at most, across all agents using this brain.
    pub max_concurrency: usize,
    /// Sampling temperature.
    pub temperature: f32,
    /// Wait before the first retry; doubles each time (with jitter).
    pub initial_backoff: Duration,
}

impl OpenAiBrainSettings {
    /// Settings with the usual defaults: 60 s timeout, 3 retries, 4 calls in
    /// flight, temperature 0.7, 500 ms first backoff.
    pub fn new(base_url: impl Into<String>, model: impl Into<String>) -> Self {
        Self {
            base_url: base_url.into(),
            model: model.into(),
            api_key: None,
            timeout: Duration::from_secs(60),
            max_retries: 3,
            max_concurrency: 4,
            temperature: 0.7,
            initial_backoff: Duration::from_millis(500),
        }
    }
}

/// A brain backed by a remote chat model.
#[derive(Debug)]
pub struct OpenAiBrain {
    client: async_openai::Client<OpenAIConfig>,
    settings: OpenAiBrainSettings,
    in_flight: Arc<Semaphore>,
}

/// One failed attempt: worth retrying or not.
#[derive(Debug)]
enum Attempt {
    Transient(String),
    Permanent(BrainError),
}

impl OpenAiBrain {
    /// A brain for `settings`; makes no request yet.
    pub fn new(settings: OpenAiBrainSettings) -> Result<Self, BrainError> {
        warroom_knowledge::embed::install_crypto_provider();
        // Our own timeout governs; this one only stops a stuck socket.
        let http = reqwest::Client::builder()
            .timeout(settings.timeout + Duration::from_secs(5))
            .build()
            .map_err(|e| BrainError::Unavailable(format!("http client: {e}")))?;
        // Explicit key, organization and project so nothing is picked up from
        // OPENAI_* variables and sent to an unrelated endpoint.
        let config = OpenAIConfig::new()
            .with_api_base(settings.base_url.trim_end_matches('/'))
            .with_api_key(settings.api_key.clone().unwrap_or_default())
            .with_org_id("")
            .with_project_id("");
        Ok(Self {
            client: async_openai::Client::with_config(config).with_http_client(http),
            in_flight: Arc::new(Semaphore::new(settings.max_concurrency.max(1))),
            settings,
        })
    }

    /// The settings this brain was built with.
    pub fn settings(&self) -> &OpenAiBrainSettings {
        &self.settings
    }

    /// The request for one completion. The length cap is sent both as
    /// `max_completion_tokens` (OpenAI's current field) and as `max_tokens`:
    /// llama.cpp's Python server and other compatible servers read only the
    /// older field and otherwise write until the context is full.
    fn request(
        &self,
        system: String,
        user: String,
        max_tokens: u32,
        json: bool,
    ) -> Result<CreateChatCompletionRequest, BrainError> {
        let messages: Vec<ChatCompletionRequestMessage> = vec![
            ChatCompletionRequestSystemMessage::from(system).into(),
            ChatCompletionRequestUserMessage::from(user).into(),
        ];
        let mut request = CreateChatCompletionRequestArgs::default()
            .model(self.settings.model.clone())
            .messages(messages)
            .temperature(self.settings.temperature)
            .max_completion_tokens(max_tokens.max(1))
            .build()
            .map_err(|e| BrainError::Failed(format!("building the request: {e}")))?;
        #[allow(deprecated)]
        {
            request.max_tokens = Some(max_tokens.max(1));
        }
        if json {
            request.response_format = Some(ResponseFormat::JsonObject);
        }
        Ok(request)
    }

    /// One call, bounded by the timeout and the concurrency cap.
    async fn attempt(
        &self,
        request: &CreateChatCompletionRequest,
    ) -> Result<CreateChatCompletionResponse, Attempt> {
        let _permit = self.in_flight.acquire().await.map_err(|_| {
            Attempt::Permanent(BrainError::Unavailable("brain is shutting down".into()))
        })?;
        let chat = self.client.chat();
        let call = chat.create(request.clone());
        match tokio::time::timeout(self.settings.timeout, call).await {
            Err(_) => Err(Attempt::Transient(format!(
                "no answer within {:?}",
                self.settings.timeout
            ))),
            Ok(Ok(response)) => Ok(response),
            Ok(Err(e)) => Err(classify(e)),
        }
    }

    /// How long to wait before retry number `retry` (0-based): exponential,
    /// capped, with ±50% jitter so many agents do not retry in step.
    fn backoff(&self, retry: u32) -> Duration {
        let base = self
            .settings
            .initial_backoff
            .saturating_mul(2u32.saturating_pow(retry))
            .min(MAX_BACKOFF);
        base.mul_f64(rand::thread_rng().gen_range(0.5..1.5))
    }
}

/// Rate limits, server errors and transport failures are worth retrying;
/// everything else (bad request, auth, unknown model, bad JSON) is not.
fn classify(e: OpenAIError) -> Attempt {
    match e {
        OpenAIError::ApiError(api) => {
            let status = api.status_code;
            if status.as_u16() == 429 || status.is_server_error() || status.as_u16() == 408 {
                Attempt::Transient(format!("endpoint answered {api}"))
            } else {
                Attempt::Permanent(BrainError::Failed(format!(
                    "endpoint refused the request: {api}"
                )))
            }
        }
        OpenAIError::Reqwest(e) => match e.status() {
            Some(s) if s.is_client_error() && s.as_u16() != 429 && s.as_u16() != 408 => {
                Attempt::Permanent(BrainError::Failed(format!(
                    "endpoint refused the request: {e}"
                )))
            }
            _ => Attempt::Transient(format!("transport: {e}")),
        },
        other => Attempt::Permanent(BrainError::Failed(other.to_string())),
    }
}

#[async_trait::async_trait]
impl Brain for OpenAiBrain {
    fn kind(&self) -> &'static str {
        "openai"
    }

    async fn compose(&self, req: &Compose) -> Result<Composed, BrainError> {
        let (system, user, used_evidence) = chat_prompt(req);
        let estimate = approx_tokens(&system) + approx_tokens(&user);
        let (text, usage) = self.complete(system, user, req.max_tokens).await?;
        let (prompt_tokens, completion_tokens) = usage.unwrap_or((estimate, approx_tokens(&text)));
        Ok(Composed {
            text,
            used_evidence,
            prompt_tokens,
            completion_tokens,
        })
    }
}

impl OpenAiBrain {
    /// One chat completion for a system and a user message, with the call
    /// discipline of the brain: the reply's text, and the token usage when
    /// the server reports it. Used for agents' messages and by the insights
    /// job's judge.
    pub async fn complete(
        &self,
        system: String,
        user: String,
        max_tokens: u32,
    ) -> Result<(String, Option<(u32, u32)>), BrainError> {
        self.call(self.request(system, user, max_tokens, false)?)
            .await
    }

    /// As [`Self::complete`], asking the server for one JSON object
    /// (`response_format: json_object`, which OpenAI, llama.cpp, vLLM and
    /// Ollama all honour; a server that constrains its sampling to JSON then
    /// cannot answer in prose). The caller still validates what comes back.
    pub async fn complete_json(
        &self,
        system: String,
        user: String,
        max_tokens: u32,
    ) -> Result<(String, Option<(u32, u32)>), BrainError> {
        self.call(self.request(system, user, max_tokens, true)?)
            .await
    }

    async fn call(
        &self,
        request: CreateChatCompletionRequest,
    ) -> Result<(String, Option<(u32, u32)>), BrainError> {
        let attempts = self.settings.max_retries + 1;
        let mut retry = 0;
        let response = loop {
            match self.attempt(&request).await {
                Ok(response) => break response,
                Err(Attempt::Permanent(e)) => return Err(e),
                Err(Attempt::Transient(why)) if retry + 1 >= attempts => {
                    return Err(BrainError::Failed(format!(
                        "{} at {}: {why} (gave up after {attempts} attempts)",
                        self.settings.model, self.settings.base_url
                    )));
                }
                Err(Attempt::Transient(why)) => {
                    let wait = self.backoff(retry);
                    tracing::warn!(attempt = retry + 1, ?wait, %why, "chat completion failed; retrying");
                    tokio::time::sleep(wait).await;
                    retry += 1;
                }
            }
        };
        let text = response
            .choices
            .into_iter()
            .next()
            .and_then(|c| c.message.content)
            .map(|t| t.trim().to_string())
            .unwrap_or_default();
        if text.is_empty() {
            return Err(BrainError::NothingToSay);
        }
        let usage = response
            .usage
            .map(|u| (u.prompt_tokens, u.completion_tokens));
        Ok((text, usage))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_and_is_capped() {
        let mut s = OpenAiBrainSettings::new("http://127.0.0.1:9/v1", "m");
        s.initial_backoff = Duration::from_millis(100);
        let brain = OpenAiBrain::new(s).expect("client builds");
        let first = brain.backoff(0);
        assert!(first >= Duration::from_millis(50) && first <= Duration::from_millis(150));
        let late = brain.backoff(30);
        assert!(late <= MAX_BACKOFF.mul_f64(1.5));
        assert!(late >= MAX_BACKOFF / 2);
    }
}
