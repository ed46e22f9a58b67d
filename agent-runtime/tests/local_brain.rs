//! The `local` brain with the real SmolLM2 model, when it is installed in the
//! models directory (`WARROOM_MODELS_DIR` or the default cache). CI fetches it
//! first; elsewhere the test says it is skipping.

use std::time::Instant;

use warroom_agent_runtime::brain::local::{LocalBrain, END_OF_TEXT, IM_END, IM_START, SMOLLM2};
use warroom_agent_runtime::brain::{Brain, Compose, Intent};
use warroom_agent_runtime::label::Label;
use warroom_agent_runtime::persona::Persona;
use warroom_agent_runtime::platform::{Evidence, Observed};
use warroom_knowledge::models::{default_models_dir, is_present, model_dir};

fn installed_model() -> Option<std::path::PathBuf> {
    let models = default_models_dir();
    if is_present(&models, &SMOLLM2) {
        Some(model_dir(&models, &SMOLLM2))
    } else {
        eprintln!(
            "skipping: {} is not installed in {} (run `warroom models fetch` or set WARROOM_MODELS_DIR)",
            SMOLLM2.name,
            models.display()
        );
        None
    }
}

fn compose() -> Compose {
    let label: Label = "internal".parse().expect("valid label");
    Compose {
        persona: Persona {
            name: "Hiro Costa".into(),
            department: "engineering".into(),
            role: "lead".into(),
            seniority: "senior".into(),
            interests: vec!["firmware".into(), "release".into()],
            voice: "brief and direct; flags risks early".into(),
        },
        intent: Intent::Reply,
        topic: "firmware release date".into(),
        thread: vec![Observed {
            message_id: "m1".into(),
            channel_id: "c1".into(),
            seq: 3,
            author_id: "u1".into(),
            author_handle: "maria".into(),
            author_is_agent: false,
            body: "Is the 2.4 firmware release still on track for Friday?".into(),
            label: label.clone(),
            thread_root: None,
        }],
        evidence: vec![Evidence {
            chunk_id: "k1".into(),
            document_title: "Release plan".into(),
            document_path: "eng/release.md".into(),
            heading: "Firmware 2.4".into(),
            text: "Firmware 2.4 moves from Friday 7 March to Tuesday 11 March because the \
                   sensor calibration tests failed on two of five boards."
                .into(),
            label,
            score: 0.8,
        }],
        memory: String::new(),
        max_tokens: 48,
        heard: Default::default(),
        said: Default::default(),
    }
}

#[test]
fn tokenizer_keeps_chat_markers_as_single_tokens() {
    let Some(dir) = installed_model() else { return };
    let brain = LocalBrain::load(&dir, 7).expect("model loads");
    for marker in [IM_START, IM_END, END_OF_TEXT] {
        let ids = brain.encode(marker).expect("encode");
        assert_eq!(ids.len(), 1, "{marker} -> {ids:?}");
        assert_eq!(
            brain.tokenizer().id_to_token(ids[0]).as_deref(),
            Some(marker)
        );
    }
    let text = format!("{IM_START}user\nHello, world 2025!{IM_END}\n");
    let ids = brain.encode(&text).expect("encode");
    assert_eq!(ids[0], brain.encode(IM_START).expect("encode")[0]);
    assert_eq!(
        brain.tokenizer().decode(&ids, false).expect("decode"),
        text,
        "byte-level BPE round-trips"
    );
}

#[tokio::test]
async fn composes_a_reply_with_the_real_model() {
    if installed_model().is_none() {
        return;
    }
    let started = Instant::now();
    let brain = tokio::task::spawn_blocking(|| LocalBrain::load_default(&default_models_dir()))
        .await
        .expect("load task")
        .expect("model loads");
    eprintln!("loaded in {:?}", started.elapsed());
    assert_eq!(brain.kind(), "local");

    let started = Instant::now();
    let out = brain.compose(&compose()).await.expect("compose");
    eprintln!(
        "composed in {:?}: {:?} {out:?}",
        started.elapsed(),
        out.text
    );

    assert!(!out.text.trim().is_empty());
    assert!(out.completion_tokens > 0 && out.completion_tokens <= 48);
    assert!(out.prompt_tokens > 50);
    assert_eq!(out.used_evidence, vec![0]);

    let again = brain.compose(&compose()).await.expect("compose again");
    assert_eq!(again.text, out.text, "same seed and request, same answer");
}

/// Prints prefill and decode speed; run with `--ignored --nocapture`.
#[test]
#[ignore = "benchmark: slow and only informative"]
fn prints_prefill_and_decode_rates() {
    let Some(dir) = installed_model() else { return };
    let brain = LocalBrain::load(&dir, 7).expect("model loads");
    for (prompt, decode) in [(128, 64), (512, 128)] {
        let rates = brain.measure(prompt, decode).expect("measure");
        eprintln!("prompt {prompt} decode {decode}: {rates:?}");
    }
}
