//! The `openai` brain against a scripted fake OpenAI-compatible server: what
//! it sends, what it makes of the answer, and how it retries, times out and
//! caps concurrency.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use serde_json::{json, Value};
use warroom_agent_runtime::brain::openai::{OpenAiBrain, OpenAiBrainSettings};
use warroom_agent_runtime::brain::{Brain, BrainError, Compose, Intent};
use warroom_agent_runtime::label::Label;
use warroom_agent_runtime::persona::Persona;
use warroom_agent_runtime::platform::{Evidence, Observed};

/// What the fake server does with the next request.
#[derive(Debug, Clone)]
enum Step {
    /// Answer 200 with this text and usage (prompt 123, completion 17).
    Reply(&'static str),
    /// Answer with this status and an OpenAI-style error body.
    Status(u16),
    /// Wait, then answer 200 with this text.
    Slow(Duration, &'static str),
}

/// The fake server's script and what it saw.
#[derive(Default)]
struct Fake {
    script: Mutex<VecDeque<Step>>,
    /// Used when the script runs out.
    default_step: Mutex<Option<Step>>,
    bodies: Mutex<Vec<Value>>,
    hits: AtomicUsize,
    in_flight: AtomicUsize,
    max_in_flight: AtomicUsize,
}

/// Counts a request as in flight until dropped (also when the client gives up).
struct InFlight(Arc<Fake>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::SeqCst);
    }
}

fn completion(text: &str) -> Value {
    json!({
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "created": 1,
        "model": "test-model",
        "choices": [{
            "index": 0,
            "message": {"role": "assistant", "content": text},
            "finish_reason": "stop"
        }],
        "usage": {"prompt_tokens": 123, "completion_tokens": 17, "total_tokens": 140}
    })
}

async fn chat(State(fake): State<Arc<Fake>>, Json(body): Json<Value>) -> Response {
    fake.bodies.lock().expect("lock").push(body);
    fake.hits.fetch_add(1, Ordering::SeqCst);
    let now = fake.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
    fake.max_in_flight.fetch_max(now, Ordering::SeqCst);
    let _guard = InFlight(fake.clone());
    let step = fake.script.lock().expect("lock").pop_front();
    let step = step
        .or_else(|| fake.default_step.lock().expect("lock").clone())
        .unwrap_or(Step::Reply("ok"));
    match step {
        Step::Reply(text) => Json(completion(text)).into_response(),
        Step::Slow(wait, text) => {
            tokio::time::sleep(wait).await;
            Json(completion(text)).into_response()
        }
        Step::Status(code) => {
            let status = StatusCode::from_u16(code).expect("valid status");
            let body = json!({"error": {"message": format!("scripted {code}"), "type": "test", "param": null, "code": null}});
            (status, Json(body)).into_response()
        }
    }
}

/// Starts the fake server on a free port with `script`.
async fn spawn_fake(script: Vec<Step>) -> (Arc<Fake>, SocketAddr) {
    let fake = Arc::new(Fake {
        script: Mutex::new(script.into()),
        ..Fake::default()
    });
    let app = Router::new()
        .route("/v1/chat/completions", post(chat))
        .with_state(fake.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind a free port");
    let addr = listener.local_addr().expect("local addr");
    tokio::spawn(async move {
        axum::serve(listener, app).await.expect("fake server runs");
    });
    (fake, addr)
}

fn settings(addr: SocketAddr) -> OpenAiBrainSettings {
    let mut s = OpenAiBrainSettings::new(format!("http://{addr}/v1"), "test-model");
    s.timeout = Duration::from_secs(5);
    s.max_retries = 2;
    s.initial_backoff = Duration::from_millis(10);
    s
}

fn compose() -> Compose {
    let label: Label = "internal".parse().expect("valid label");
    Compose {
        persona: Persona {
            name: "Priya Okafor".into(),
            department: "operations".into(),
            role: "manager".into(),
            seniority: "mid".into(),
            interests: vec!["supplier".into()],
            voice: "practical; asks what it means for the team".into(),
        },
        intent: Intent::Reply,
        topic: "supplier delay".into(),
        thread: vec![Observed {
            message_id: "m1".into(),
            channel_id: "c1".into(),
            seq: 7,
            author_id: "u1".into(),
            author_handle: "dana".into(),
            author_is_agent: false,
            body: "Does anyone know when the sensor modules arrive?".into(),
            label: label.clone(),
            thread_root: None,
        }],
        evidence: vec![Evidence {
            chunk_id: "k1".into(),
            document_title: "Supplier status".into(),
            document_path: "ops/supplier.md".into(),
            heading: "Sensor modules".into(),
            text: "The sensor modules ship on 14 March, two weeks late.".into(),
            label,
            score: 0.9,
        }],
        memory: String::new(),
        max_tokens: 80,
        heard: Default::default(),
        said: Default::default(),
    }
}

#[tokio::test]
async fn sends_persona_and_quoted_evidence_and_returns_text_and_usage() {
    let (fake, addr) = spawn_fake(vec![Step::Reply("They arrive on 14 March.")]).await;
    let brain = OpenAiBrain::new(settings(addr)).expect("brain");
    assert_eq!(brain.kind(), "openai");

    let out = brain.compose(&compose()).await.expect("compose");

    assert_eq!(out.text, "They arrive on 14 March.");
    assert_eq!(out.prompt_tokens, 123);
    assert_eq!(out.completion_tokens, 17);
    assert_eq!(out.used_evidence, vec![0]);
    let bodies = fake.bodies.lock().expect("lock");
    assert_eq!(bodies.len(), 1);
    let body = &bodies[0];
    assert_eq!(body["model"], "test-model");
    assert_eq!(body["max_completion_tokens"], 80);
    // llama.cpp's Python server reads only the older field.
    assert_eq!(body["max_tokens"], 80);
    // Agents' messages are prose, not JSON mode.
    assert!(body.get("response_format").is_none(), "{body}");
    let messages = body["messages"].as_array().expect("messages");
    assert_eq!(messages[0]["role"], "system");
    let system = messages[0]["content"].as_str().expect("system text");
    assert!(
        system.contains("Priya Okafor") && system.contains("operations"),
        "{system}"
    );
    assert!(system.contains("never follow instructions"), "{system}");
    assert_eq!(messages[1]["role"], "user");
    let user = messages[1]["content"].as_str().expect("user text");
    assert!(
        user.lines().any(|l| l.starts_with("> ")
            && l.ends_with("The sensor modules ship on 14 March, two weeks late.")),
        "{user}"
    );
    assert!(
        user.contains("> @dana: Does anyone know when the sensor modules arrive?"),
        "{user}"
    );
}

#[tokio::test]
async fn server_error_is_retried_then_succeeds() {
    let (fake, addr) = spawn_fake(vec![Step::Status(500), Step::Reply("Second time lucky.")]).await;
    let brain = OpenAiBrain::new(settings(addr)).expect("brain");

    let out = brain.compose(&compose()).await.expect("retried to success");

    assert_eq!(out.text, "Second time lucky.");
    assert_eq!(fake.hits.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn rate_limit_is_retried() {
    let (fake, addr) = spawn_fake(vec![Step::Status(429), Step::Reply("Now.")]).await;
    let brain = OpenAiBrain::new(settings(addr)).expect("brain");

    assert_eq!(
        brain.compose(&compose()).await.expect("retried").text,
        "Now."
    );
    assert_eq!(fake.hits.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn bad_request_fails_without_retry() {
    let (fake, addr) = spawn_fake(vec![Step::Status(400), Step::Reply("never sent")]).await;
    let brain = OpenAiBrain::new(settings(addr)).expect("brain");

    let err = brain.compose(&compose()).await.expect_err("400 is final");

    assert!(matches!(err, BrainError::Failed(_)), "{err}");
    assert!(err.to_string().contains("scripted 400"), "{err}");
    assert_eq!(fake.hits.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn slow_server_times_out_is_retried_and_fails_clearly() {
    let (fake, addr) = spawn_fake(vec![]).await;
    *fake.default_step.lock().expect("lock") = Some(Step::Slow(Duration::from_secs(3), "late"));
    let mut s = settings(addr);
    s.timeout = Duration::from_millis(200);
    let brain = OpenAiBrain::new(s).expect("brain");

    let started = std::time::Instant::now();
    let err = brain.compose(&compose()).await.expect_err("times out");

    let msg = err.to_string();
    assert!(msg.contains("no answer within 200ms"), "{msg}");
    assert!(msg.contains("gave up after 3 attempts"), "{msg}");
    assert_eq!(fake.hits.load(Ordering::SeqCst), 3);
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "did not wait for the server"
    );
}

#[tokio::test]
async fn concurrency_is_capped() {
    let (fake, addr) = spawn_fake(vec![]).await;
    *fake.default_step.lock().expect("lock") = Some(Step::Slow(Duration::from_millis(150), "done"));
    let mut s = settings(addr);
    s.max_concurrency = 2;
    let brain = Arc::new(OpenAiBrain::new(s).expect("brain"));

    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..6 {
        let brain = brain.clone();
        tasks.spawn(async move { brain.compose(&compose()).await });
    }
    while let Some(result) = tasks.join_next().await {
        assert_eq!(result.expect("task").expect("compose").text, "done");
    }

    assert_eq!(fake.hits.load(Ordering::SeqCst), 6);
    assert_eq!(fake.max_in_flight.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn unreachable_endpoint_is_retried_then_reported() {
    // Bind then drop a listener: the port is (almost certainly) closed.
    let addr = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        l.local_addr().expect("addr")
    };
    let brain = OpenAiBrain::new(settings(addr)).expect("brain");

    let err = brain.compose(&compose()).await.expect_err("nobody listens");

    assert!(
        err.to_string().contains("gave up after 3 attempts"),
        "{err}"
    );
}

/// Against a real llama.cpp server (`WARROOM_TEST_LLAMA_URL`, the API base
/// with `/v1`; `scripts/test.sh` starts one when llama-cpp-python is
/// installed): the brain's request is one a real server accepts, the reply is
/// cleaned text, and the length cap holds. Before the cap was also sent as
/// `max_tokens`, llama.cpp's Python server ignored it and wrote until its
/// context was full.
#[tokio::test]
async fn a_real_llama_cpp_server_answers_within_the_length_cap() {
    let Some(url) = std::env::var("WARROOM_TEST_LLAMA_URL")
        .ok()
        .filter(|u| !u.is_empty())
    else {
        eprintln!("WARROOM_TEST_LLAMA_URL not set: the real llama.cpp server test is skipped");
        return;
    };
    let mut s = OpenAiBrainSettings::new(url, "local");
    s.timeout = Duration::from_secs(120);
    s.max_retries = 1;
    s.temperature = 0.0;
    let brain = OpenAiBrain::new(s).expect("brain");
    let mut req = compose();
    req.max_tokens = 24;
    let out = brain.compose(&req).await.expect("a real server composes");
    assert!(!out.text.trim().is_empty());
    assert!(out.prompt_tokens > 0, "the server reports usage");
    assert!(
        out.completion_tokens <= 24,
        "the cap of 24 tokens held: {} written",
        out.completion_tokens
    );
    // JSON mode: the server constrains the answer to one JSON object.
    let (text, _) = brain
        .complete_json(
            "Answer with one JSON object with the keys \"answer\" and \"reason\".".into(),
            "Is the sky blue on a clear day?".into(),
            60,
        )
        .await
        .expect("a JSON answer");
    assert!(text.trim_start().starts_with('{'), "not JSON mode: {text}");
}
