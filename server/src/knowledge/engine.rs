//! The embedder, token counter and vector store, loaded on first use.

use super::*;
use warroom_types::{EmbedderKind, VectorStoreKind};

impl Knowledge {
    pub(super) fn forget_scopes(&self) {
        self.scope_cache.lock().expect("scope cache lock").clear();
    }

    /// Use these parts instead of loading the configured ones (benchmarks, tests).
    pub fn with_engine(self, engine: Engine) -> Self {
        let _ = self.engine.set(engine);
        self
    }

    /// The embedder and vector store, loading them on first use.
    pub async fn engine(&self) -> KnowledgeResult<&Engine> {
        self.engine
            .get_or_try_init(|| async { self.load_engine().await })
            .await
    }

    /// The embedder: the engine's, or (when the vector store cannot be
    /// opened, e.g. a server holds it) the embedder alone.
    pub async fn embedder(&self) -> KnowledgeResult<Arc<dyn Embedder>> {
        match self.engine().await {
            Ok(e) => Ok(e.embedder.clone()),
            Err(_) => Ok(self.load_embedder().await?.0),
        }
    }

    /// The engine if something has loaded it already.
    pub fn engine_if_loaded(&self) -> Option<&Engine> {
        self.engine.get()
    }

    pub(super) async fn load_embedder(
        &self,
    ) -> KnowledgeResult<(Arc<dyn Embedder>, Arc<dyn TokenCounter>)> {
        let unavailable =
            |what: &str, e: String| KnowledgeError::Unavailable(format!("{what}: {e}"));
        let s = &self.settings;
        let pair: (Arc<dyn Embedder>, Arc<dyn TokenCounter>) = match s.embedder {
            EmbedderKind::Openai => {
                let e = OpenAiEmbedder::new(OpenAiSettings {
                    base_url: s.openai_base_url.clone(),
                    model: s.openai_model.clone(),
                    api_key: s.openai_api_key.clone(),
                    dim: s.openai_dim,
                    batch: 64,
                    timeout: Duration::from_secs(s.openai_timeout_secs),
                })
                .map_err(|e| unavailable("embedder", e.to_string()))?;
                (Arc::new(e), Arc::new(ApproxTokens))
            }
            EmbedderKind::Local => {
                let models_dir = s.models_dir();
                let fetch = s.fetch_models;
                let model = tokio::task::spawn_blocking(move || {
                    let dir = if fetch {
                        models::ensure(&models_dir, &models::MINILM).map_err(|e| e.to_string())?
                    } else {
                        models::model_dir(&models_dir, &models::MINILM)
                    };
                    MiniLm::load(&dir).map_err(|e| e.to_string())
                })
                .await
                .map_err(internal)?
                .map_err(|e| unavailable("embedding model", e))?;
                let model = Arc::new(model);
                (model.clone(), model)
            }
        };
        Ok(pair)
    }

    pub(super) async fn load_engine(&self) -> KnowledgeResult<Engine> {
        let unavailable =
            |what: &str, e: String| KnowledgeError::Unavailable(format!("{what}: {e}"));
        let s = &self.settings;
        let (embedder, counter) = self.load_embedder().await?;
        let dim = embedder.dim();
        let store: Arc<dyn VectorStore> = match s.vector_store {
            VectorStoreKind::Qdrant => Arc::new(
                warroom_knowledge::store::QdrantStore::connect(
                    &s.qdrant_url,
                    &s.qdrant_collection,
                    dim,
                    s.qdrant_api_key.clone(),
                )
                .await
                .map_err(|e| unavailable("vector store", e.to_string()))?,
            ),
            VectorStoreKind::Edge => {
                let dir = self.data_dir.join("vectors");
                let store = tokio::task::spawn_blocking(move || {
                    EdgeStore::open(&dir, dim, Default::default())
                })
                .await
                .map_err(internal)?
                .map_err(|e| unavailable("vector store", e.to_string()))?;
                Arc::new(store)
            }
        };
        tracing::info!(
            embedder = embedder.model_id(),
            dim,
            store = store.backend(),
            "knowledge engine ready"
        );
        Ok(Engine {
            embedder,
            counter,
            store,
        })
    }
}
