//! `warroom eval judge`: how well the insights judge reads planted matters,
//! without agents or talk, in seconds. Every prose sentence of the corpus is
//! a fact; each planted risk and opportunity is judged from its evidence
//! sentences, each decoy from its alarm and the sentences near it, and
//! pairs of ordinary sentences from two departments show how often routine
//! text would be reported. The meaning judge is scored beside the word
//! cues it replaces, on the same facts.

use std::collections::BTreeMap;
use std::path::PathBuf;

use anyhow::Context;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::json;
use warroom_agent_runtime::brain::extractive::sentences;

use crate::eval::planted::Answer;
use warroom::config::Settings;
use warroom::insights::judge::{self, Facets, Hypotheses, Verdict};
use warroom::insights::mine::word_lean;

/// Flags of `warroom eval judge`.
#[derive(clap::Args, Debug)]
pub struct JudgeArgs {
    /// Corpora (folders of department folders with ANSWERS.json); repeat the flag.
    #[arg(long = "corpus", required = true)]
    pub corpora: Vec<PathBuf>,
    /// Pairs of ordinary sentences judged per corpus.
    #[arg(long, default_value_t = 60)]
    pub background_pairs: usize,
    /// Also write the figures here as JSON.
    #[arg(long)]
    pub json: Option<PathBuf>,
    /// Print each planted matter's verdict and its facts' facets.
    #[arg(long)]
    pub explain: bool,
    /// Also score the chat-model judge at `[agents] openai_base_url`
    /// (one request per planted matter and per background pair).
    #[arg(long)]
    pub model: bool,
}

/// One corpus's facts: (department, sentence).
fn facts_of(dir: &std::path::Path) -> anyhow::Result<Vec<(String, String)>> {
    let mut out = Vec::new();
    let mut depts: Vec<_> = std::fs::read_dir(dir)
        .with_context(|| format!("reading {}", dir.display()))?
        .filter_map(Result::ok)
        .filter(|e| e.path().is_dir())
        .collect();
    depts.sort_by_key(|e| e.file_name());
    for d in depts {
        let dept = d.file_name().to_string_lossy().to_lowercase();
        let mut files: Vec<_> = std::fs::read_dir(d.path())?
            .filter_map(Result::ok)
            .map(|e| e.path())
            .filter(|p| p.extension().and_then(|e| e.to_str()) == Some("md"))
            .collect();
        files.sort();
        for f in files {
            let text = std::fs::read_to_string(&f)?;
            let body = strip_front_matter(&text);
            for s in sentences(body) {
                out.push((dept.clone(), s.to_string()));
            }
        }
    }
    Ok(out)
}

fn strip_front_matter(text: &str) -> &str {
    let Some(rest) = text.strip_prefix("---") else {
        return text;
    };
    match rest.find("\n---") {
        Some(end) => rest[end + 4..].trim_start_matches(['-', '\n', '\r']),
        None => text,
    }
}

/// Tallies of one judge on one corpus.
#[derive(Default, Debug, Clone, serde::Serialize)]
struct Tally {
    risks: usize,
    risks_right: usize,
    opportunities: usize,
    opportunities_right: usize,
    decoys: usize,
    decoys_settled: usize,
    planted_dismissed: usize,
    background: usize,
    background_reported: usize,
    /// Answers a model gave that were not the asked verdict (counted as wrong).
    unusable: usize,
}

impl Tally {
    /// Count one planted matter's verdict; `None` is an unusable answer.
    fn matter(&mut self, kind: &str, v: Option<Verdict>) {
        let dismissed = matches!(v, Some(Verdict::Settled(_) | Verdict::Nothing));
        self.unusable += usize::from(v.is_none());
        match kind {
            "risk" => {
                self.risks += 1;
                self.risks_right += usize::from(v == Some(Verdict::Risk));
                self.planted_dismissed += usize::from(dismissed);
            }
            "opportunity" => {
                self.opportunities += 1;
                self.opportunities_right += usize::from(v == Some(Verdict::Opportunity));
                self.planted_dismissed += usize::from(dismissed);
            }
            _ => {
                self.decoys += 1;
                self.decoys_settled += usize::from(matches!(v, Some(Verdict::Settled(_))));
            }
        }
    }

    /// Count one pair of ordinary sentences.
    fn background_pair(&mut self, v: Option<Verdict>) {
        self.unusable += usize::from(v.is_none());
        self.background += 1;
        self.background_reported +=
            usize::from(matches!(v, Some(Verdict::Risk | Verdict::Opportunity)));
    }

    fn print(&self, corpus: &std::path::Path, judge: &str) {
        println!(
            "  {:<28} {:<8} {:>7} {:>7} {:>7} {:>9} {:>10}{}",
            corpus.file_name().unwrap_or_default().to_string_lossy(),
            judge,
            format!("{}/{}", self.risks_right, self.risks),
            format!("{}/{}", self.opportunities_right, self.opportunities),
            format!("{}/{}", self.decoys_settled, self.decoys),
            format!(
                "{}/{}",
                self.planted_dismissed,
                self.risks + self.opportunities
            ),
            format!("{}/{}", self.background_reported, self.background),
            if self.unusable > 0 {
                format!("  ({} answers unusable)", self.unusable)
            } else {
                String::new()
            },
        );
    }
}

/// The chat model's verdict on the sentences `ids`; `None` when its answer
/// was not one of the asked verdicts.
async fn ask_model(
    model: &judge::ModelJudge,
    facts: &[(String, String)],
    ids: &[u32],
) -> Option<Verdict> {
    let shown: Vec<(String, String)> = ids.iter().map(|f| facts[*f as usize].clone()).collect();
    match model.judge(&shown, &[]).await {
        Ok(m) => Some(m.verdict),
        Err(e) => {
            tracing::debug!(error = %e, "unusable model answer");
            None
        }
    }
}

/// Run the judge evaluation.
pub async fn run(mut settings: Settings, args: JudgeArgs) -> anyhow::Result<()> {
    if !(1..=10_000).contains(&args.background_pairs) {
        anyhow::bail!("--background-pairs must be 1-10000");
    }
    // Before any model is loaded: a missing endpoint is a mistake in the
    // command, not something to find out after the embeddings.
    let model = if args.model {
        Some(
            warroom::agents::host::openai_brain(&settings)
                .map(judge::ModelJudge::new)
                .context("--model needs a chat endpoint: set [agents] openai_base_url (or WARROOM_AGENTS__OPENAI_BASE_URL) and openai_model")?,
        )
    } else {
        None
    };
    let tmp = tempfile::tempdir()?;
    settings.storage.data_dir = tmp.path().to_path_buf();
    settings.storage.database_url = None;
    settings.insights.schedule = false;
    let app = warroom::app::AppState::build(settings)
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let embedder = app
        .knowledge
        .embedder()
        .await
        .map_err(|e| anyhow::anyhow!("no sentence model: {e}"))?;
    let hyp = Hypotheses::embed(embedder.as_ref()).await?.context(
        "the sentence model does not read meaning (see the warning above): configure the default all-MiniLM-L6-v2 or a real embedding endpoint",
    )?;
    let mut report = BTreeMap::new();
    println!(
        "  {:<28} {:<8} {:>7} {:>7} {:>7} {:>9} {:>10}",
        "corpus", "judge", "risks", "opps", "decoys", "planted", "background"
    );
    println!(
        "  {:<28} {:<8} {:>7} {:>7} {:>7} {:>9} {:>10}",
        "", "", "right", "right", "settled", "dismissed", "reported"
    );
    for dir in &args.corpora {
        let answers_path = dir.join("ANSWERS.json");
        let answers: Vec<Answer> = serde_json::from_str(
            &std::fs::read_to_string(&answers_path)
                .with_context(|| format!("reading {}", answers_path.display()))?,
        )
        .with_context(|| format!("{}: not an answer key", answers_path.display()))?;
        let mut facts = facts_of(dir)?;
        // Every planted sentence is a fact, even one the splitter would skip.
        let mut index_of = |dept: &str, quote: &str| -> u32 {
            match facts.iter().position(|(d, s)| d == dept && s == quote) {
                Some(i) => i as u32,
                None => {
                    facts.push((dept.to_string(), quote.to_string()));
                    facts.len() as u32 - 1
                }
            }
        };
        let mut cases: Vec<(String, Vec<u32>)> = Vec::new();
        for a in &answers {
            if !["risk", "opportunity", "decoy"].contains(&a.kind.as_str()) {
                continue;
            }
            let ids = a
                .evidence
                .iter()
                .map(|q| index_of(q.path.split('/').next().unwrap_or(""), &q.quote))
                .collect();
            cases.push((a.kind.clone(), ids));
        }
        let texts: Vec<String> = facts.iter().map(|(_, s)| s.clone()).collect();
        let mut vectors: Vec<Option<Vec<f32>>> = Vec::with_capacity(texts.len());
        for part in texts.chunks(256) {
            for v in embedder.embed(part).await? {
                vectors.push(Some(judge::unit(v)));
            }
        }
        let mut facets: Vec<Facets> = vectors
            .iter()
            .map(|v| hyp.facets(v.as_deref().unwrap_or(&[])))
            .collect();
        judge::standardize(&mut facets);
        let departments: Vec<&str> = facts.iter().map(|(d, _)| d.as_str()).collect();
        let planted: std::collections::HashSet<u32> =
            cases.iter().flat_map(|(_, f)| f.iter().copied()).collect();
        let mut rng = StdRng::seed_from_u64(7);
        let ordinary: Vec<u32> = (0..facts.len() as u32)
            .filter(|f| !planted.contains(f))
            .collect();
        let mut background: Vec<Vec<u32>> = Vec::new();
        for _ in 0..args.background_pairs * 20 {
            if background.len() >= args.background_pairs || ordinary.len() < 2 {
                break;
            }
            let a = ordinary[rng.gen_range(0..ordinary.len())];
            let b = ordinary[rng.gen_range(0..ordinary.len())];
            if departments[a as usize] != departments[b as usize] {
                background.push(vec![a, b]);
            }
        }
        let mut by_judge = BTreeMap::new();
        for name in ["meaning", "words"] {
            let verdict = |ids: &[u32]| -> Verdict {
                if name == "meaning" {
                    let prior: f32 = ids
                        .iter()
                        .map(|f| {
                            let (r, o, _) = word_lean(&facts[*f as usize].1);
                            r - o
                        })
                        .sum();
                    judge::judge(ids, &facets, &vectors, &departments, prior).verdict
                } else {
                    let leans: Vec<(f32, f32, bool)> = ids
                        .iter()
                        .map(|f| word_lean(&facts[*f as usize].1))
                        .collect();
                    if let Some(i) = leans.iter().position(|l| l.2) {
                        Verdict::Settled(ids[i])
                    } else if leans.iter().map(|l| l.1 - l.0).sum::<f32>() > 0.0 {
                        Verdict::Opportunity
                    } else {
                        Verdict::Risk
                    }
                }
            };
            let mut t = Tally::default();
            for (kind, ids) in &cases {
                let v = verdict(ids);
                if args.explain && name == "meaning" {
                    println!("    {kind} -> {v:?}");
                    if let Verdict::Settled(g) = v {
                        let j = judge::judge(ids, &facets, &vectors, &departments, 0.0);
                        let x = facets[g as usize];
                        println!(
                            "      by: s {:5.2} r {:5.2} o {:5.2} ({}) [{}] {}",
                            x.settled,
                            x.risk,
                            x.opportunity,
                            j.reason,
                            departments[g as usize],
                            facts[g as usize].1.chars().take(80).collect::<String>()
                        );
                    }
                    for f in ids {
                        let x = facets[*f as usize];
                        println!(
                            "      r {:5.2} o {:5.2} s {:5.2} n {:5.2}  [{}] {}",
                            x.risk,
                            x.opportunity,
                            x.settled,
                            x.routine,
                            departments[*f as usize],
                            facts[*f as usize].1.chars().take(90).collect::<String>()
                        );
                    }
                }
                t.matter(kind, Some(v));
            }
            for ids in &background {
                t.background_pair(Some(verdict(ids)));
            }
            t.print(dir, name);
            by_judge.insert(name, t);
        }
        if let Some(model) = &model {
            // The model sees each matter's sentences as the job would show
            // them; a decoy's closing sentence is among its evidence.
            let mut t = Tally::default();
            for (kind, ids) in &cases {
                t.matter(kind, ask_model(model, &facts, ids).await);
            }
            for ids in &background {
                t.background_pair(ask_model(model, &facts, ids).await);
            }
            t.print(dir, "model");
            by_judge.insert("model", t);
        }
        report.insert(dir.display().to_string(), by_judge);
    }
    if let Some(path) = &args.json {
        std::fs::write(path, serde_json::to_string_pretty(&json!(report))?)
            .with_context(|| format!("writing {}", path.display()))?;
        println!("  written to {}", path.display());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn model_without_an_endpoint_is_refused_saying_what_to_set() {
        let mut settings = Settings::default();
        settings.agents.openai_base_url = None;
        let args = JudgeArgs {
            corpora: vec![PathBuf::from("/nonexistent")],
            background_pairs: 60,
            json: None,
            explain: false,
            model: true,
        };
        let e = run(settings, args).await.expect_err("refused").to_string();
        assert!(e.contains("--model needs a chat endpoint"), "{e}");
        assert!(e.contains("openai_base_url"), "{e}");
    }

    #[test]
    fn an_unusable_answer_counts_as_wrong_and_is_reported() {
        let mut t = Tally::default();
        t.matter("risk", Some(Verdict::Risk));
        t.matter("risk", None);
        t.matter("opportunity", Some(Verdict::Nothing));
        t.matter("decoy", Some(Verdict::Settled(0)));
        t.matter("decoy", None);
        t.background_pair(Some(Verdict::Opportunity));
        t.background_pair(None);
        assert_eq!((t.risks, t.risks_right), (2, 1));
        assert_eq!((t.opportunities, t.opportunities_right), (1, 0));
        assert_eq!(t.planted_dismissed, 1, "only a verdict dismisses");
        assert_eq!((t.decoys, t.decoys_settled), (2, 1));
        assert_eq!((t.background, t.background_reported), (2, 1));
        assert_eq!(t.unusable, 3);
    }
}
