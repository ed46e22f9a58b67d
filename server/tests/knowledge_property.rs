//! SECURITY-CASES 2 as a property: for random scopes × principals × queries over a random
//! corpus, every chunk a retrieval returns is one the policy permits, computed here
//! independently of the product's filter code. Run twice: with the real qdrant-edge store
//! (its filter alone must hold), and with a store that ignores filters (the Cedar re-check
//! alone must hold, and every leak attempt is counted as a denial).

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use async_trait::async_trait;
use proptest::prelude::*;
use proptest::strategy::ValueTree;
use proptest::test_runner::{Config, TestRunner};
use warroom::audit::Audit;
use warroom::authz::{Actor, Authz};
use warroom::config::Settings;
use warroom::knowledge::scope::ScopeSpec;
use warroom::knowledge::{Engine, IngestMeta, Knowledge};
use warroom::label::Label;
use warroom::principal::{Principal, Role, UserKind};
use warroom_knowledge::chunker::ApproxTokens;
use warroom_knowledge::embed::{EmbedError, Embedder};
use warroom_knowledge::sparse::SparseVector;
use warroom_knowledge::store::{ChunkFilter, ChunkPoint, EdgeStore, Hit, StoreResult, VectorStore};

const DEPTS: [&str; 4] = ["sales", "hr", "finance", "legal"];
const TAGS: [&str; 4] = ["q1", "q2", "board", "pricing"];
const LEVELS: [&str; 4] = ["public", "internal", "confidential", "restricted"];
const WORDS: [&str; 12] = [
    "revenue", "salary", "contract", "lawsuit", "pricing", "churn", "budget", "hiring", "supplier",
    "renewal", "audit", "forecast",
];

/// A deterministic bag-of-words embedder: this test is about filtering, not semantics.
struct HashEmbedder;

#[async_trait]
impl Embedder for HashEmbedder {
    fn model_id(&self) -> &str {
        "test-hash"
    }
    fn dim(&self) -> usize {
        16
    }
    async fn embed(&self, texts: &[String]) -> Result<Vec<Vec<f32>>, EmbedError> {
        Ok(texts
            .iter()
            .map(|t| {
                let mut v = vec![0.01f32; 16];
                for w in t.split_whitespace() {
                    let h = w
                        .bytes()
                        .fold(7u32, |a, b| a.wrapping_mul(31).wrapping_add(b as u32));
                    v[(h % 16) as usize] += 1.0;
                }
                warroom_knowledge::embed::normalize(v)
            })
            .collect())
    }
}

/// A broken backend that ignores every filter.
struct LeakyStore(Arc<dyn VectorStore>);

#[async_trait]
impl VectorStore for LeakyStore {
    fn backend(&self) -> &'static str {
        "leaky"
    }
    async fn upsert(&self, points: Vec<ChunkPoint>) -> StoreResult<()> {
        self.0.upsert(points).await
    }
    async fn delete(&self, ids: &[uuid::Uuid]) -> StoreResult<()> {
        self.0.delete(ids).await
    }
    async fn set_label(&self, d: &str, l: i64, c: &[String]) -> StoreResult<()> {
        self.0.set_label(d, l, c).await
    }
    async fn search_dense(
        &self,
        v: &[f32],
        _: &ChunkFilter,
        limit: usize,
    ) -> StoreResult<Vec<Hit>> {
        self.0.search_dense(v, &everything(), limit).await
    }
    async fn search_sparse(
        &self,
        v: &SparseVector,
        _: &ChunkFilter,
        limit: usize,
    ) -> StoreResult<Vec<Hit>> {
        self.0.search_sparse(v, &everything(), limit).await
    }
    async fn count(&self, _: &ChunkFilter) -> StoreResult<usize> {
        self.0.count(&everything()).await
    }
    async fn optimize(&self) -> StoreResult<()> {
        Ok(())
    }
}

fn everything() -> ChunkFilter {
    ChunkFilter::clearance(3, DEPTS.iter().map(|d| d.to_string()).collect())
}

struct Doc {
    department: String,
    tags: Vec<String>,
    label: Label,
}

/// What the policy permits, written from the scope's definition, not the product's code.
fn permitted(spec: &ScopeSpec, clearance: &Label, d: &Doc) -> bool {
    let max: Label = spec.max_label.parse().unwrap();
    let in_list =
        |l: &Option<Vec<String>>, v: &str| l.as_ref().is_none_or(|l| l.iter().any(|x| x == v));
    in_list(&spec.departments, &d.department)
        && spec
            .tags
            .as_ref()
            .is_none_or(|t| d.tags.iter().any(|x| t.contains(x)))
        && !spec.exclude_departments.contains(&d.department)
        && !d.tags.iter().any(|t| spec.exclude_tags.contains(t))
        && d.label.within(&max)
        && d.label.within(clearance)
}

fn label_strategy() -> impl Strategy<Value = String> {
    (
        0..4usize,
        proptest::sample::subsequence(DEPTS.to_vec(), 0..=2),
    )
        .prop_map(|(l, c)| {
            if c.is_empty() {
                LEVELS[l].to_string()
            } else {
                format!("{}:{}", LEVELS[l], c.join(","))
            }
        })
}

fn opt_list(items: &'static [&'static str]) -> impl Strategy<Value = Option<Vec<String>>> {
    proptest::option::of(
        proptest::sample::subsequence(items.to_vec(), 0..=3)
            .prop_map(|v| v.into_iter().map(String::from).collect()),
    )
}

fn case_strategy() -> impl Strategy<Value = (ScopeSpec, String, String)> {
    (
        opt_list(&DEPTS),
        opt_list(&TAGS),
        proptest::sample::subsequence(DEPTS.to_vec(), 0..=1),
        proptest::sample::subsequence(TAGS.to_vec(), 0..=1),
        label_strategy(),
        label_strategy(),
        proptest::sample::subsequence(WORDS.to_vec(), 1..=3),
    )
        .prop_map(
            |(departments, tags, exd, ext, max_label, clearance, words)| {
                (
                    ScopeSpec {
                        name: "prop".into(),
                        description: String::new(),
                        collections: None,
                        departments,
                        tags,
                        exclude_collections: vec![],
                        exclude_departments: exd.into_iter().map(String::from).collect(),
                        exclude_tags: ext.into_iter().map(String::from).collect(),
                        max_label,
                    },
                    clearance,
                    words.join(" "),
                )
            },
        )
}

async fn corpus(knowledge: &Knowledge) -> HashMap<String, Doc> {
    let mut runner = TestRunner::deterministic();
    let doc = (
        0..4usize,
        proptest::sample::subsequence(TAGS.to_vec(), 0..=2),
        label_strategy(),
        proptest::sample::subsequence(WORDS.to_vec(), 3..=6),
    );
    let mut docs = HashMap::new();
    for i in 0..120 {
        let (d, tags, label, words) = doc.new_tree(&mut runner).unwrap().current();
        let text = format!(
            "---\ntitle: Doc {i}\ndepartment: {}\nlabel: {label}\ntags: [{}]\n---\n## Part\n\n{} report number {i}.\n",
            DEPTS[d],
            tags.join(", "),
            words.join(" ")
        );
        let o = knowledge
            .ingest(
                Actor::Server,
                &format!("d/{i}.md"),
                text.as_bytes(),
                &IngestMeta::default(),
            )
            .await
            .unwrap_or_else(|e| panic!("ingest {i}: {e:?}"));
        docs.insert(
            o.document_id,
            Doc {
                department: DEPTS[d].into(),
                tags: tags.into_iter().map(String::from).collect(),
                label: label.parse().unwrap(),
            },
        );
    }
    docs
}

fn run(leaky: bool) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut settings = Settings::default();
    settings.storage.data_dir = dir.path().to_path_buf();
    settings.log = Some("error".into());
    let (knowledge, docs) = rt.block_on(async {
        let db = warroom::storage::connect(&settings).await.unwrap();
        let authz = Arc::new(Authz::load(None, Arc::new(Default::default())).unwrap());
        let edge: Arc<dyn VectorStore> =
            Arc::new(EdgeStore::open(&dir.path().join("vectors"), 16, Default::default()).unwrap());
        let store: Arc<dyn VectorStore> = if leaky {
            Arc::new(LeakyStore(edge))
        } else {
            edge
        };
        let engine = Engine {
            embedder: Arc::new(HashEmbedder),
            counter: Arc::new(ApproxTokens),
            store,
        };
        let knowledge = Knowledge::new(
            db.clone(),
            settings.knowledge.clone(),
            dir.path().to_path_buf(),
            authz,
            Arc::new(Audit::open(db, dir.path()).unwrap()),
            Arc::default(),
        )
        .with_engine(engine);
        let docs = corpus(&knowledge).await;
        (knowledge, docs)
    });
    let denied_total = std::cell::Cell::new(0usize);
    let returned_total = std::cell::Cell::new(0usize);
    let mut runner = TestRunner::new(Config {
        cases: 64,
        ..Config::default()
    });
    runner
        .run(&case_strategy(), |(spec, clearance, query)| {
            let clearance: Label = clearance.parse().unwrap();
            let (validated, rule) = spec.clone().validate().unwrap();
            let scope = warroom::knowledge::scope::Scope {
                id: "s".into(),
                spec: validated,
                rule,
            };
            let p = Principal {
                id: warroom::ids::UserId::from_trusted("agent-1"),
                handle: "agent-1".into(),
                display_name: "agent".into(),
                role: Role::Agent,
                kind: UserKind::Agent,
                department: None,
                clearance: clearance.clone(),
                active: true,
            };
            let r = rt
                .block_on(knowledge.retrieve_in(&p, &scope, &query, 10))
                .unwrap();
            denied_total.set(denied_total.get() + r.denied);
            returned_total.set(returned_total.get() + r.chunks.len());
            let mut seen = BTreeSet::new();
            for c in &r.chunks {
                let d = &docs[&c.document_id];
                prop_assert!(
                    permitted(&spec, &clearance, d),
                    "returned {} ({} {:?} {}) outside {:?} / {}",
                    c.document_path,
                    d.department,
                    d.tags,
                    d.label,
                    spec,
                    clearance
                );
                seen.insert(c.chunk_id.clone());
            }
            prop_assert_eq!(seen.len(), r.chunks.len(), "no duplicates");
            if !leaky {
                // The filter runs inside the engine, so the top-k fills from permitted chunks.
                let any = docs.values().any(|d| permitted(&spec, &clearance, d));
                prop_assert_eq!(
                    any,
                    !r.chunks.is_empty(),
                    "permitted chunks exist iff some are returned"
                );
                prop_assert_eq!(r.denied, 0, "the store's filter already matches policy");
            }
            Ok(())
        })
        .unwrap();
    assert!(returned_total.get() > 0);
    if leaky {
        assert!(
            denied_total.get() > 0,
            "the leaky store must have tried to leak, and been stopped"
        );
    }
}

#[test]
fn security_case_2_returned_chunks_subset_of_permitted_with_qdrant_edge() {
    run(false);
}

#[test]
fn security_case_2_policy_recheck_stops_a_store_that_ignores_filters() {
    run(true);
}
