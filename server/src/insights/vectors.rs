//! Message vectors: embedded when a message is posted (off the writer, in
//! batches), stored quantised to one signed byte per dimension with one scale
//! per vector, and read back by the insights job without re-embedding.

use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use sea_orm::{ConnectionTrait, Value};
use tokio::sync::mpsc;

use super::Insights;
use crate::storage::sql::{placeholders, stmt};

/// A vector as stored: `q[i] ≈ v[i] / scale`, with `|q[i]| <= 127`.
#[derive(Debug, Clone, PartialEq)]
pub struct Quantized {
    pub scale: f32,
    pub q: Arc<[i8]>,
    norm: f32,
}

impl Quantized {
    /// Quantise `v` (any length > 0).
    pub fn from_f32(v: &[f32]) -> Self {
        let max = v.iter().fold(0.0f32, |m, x| m.max(x.abs()));
        let scale = if max > 0.0 { max / 127.0 } else { 1.0 };
        let q: Vec<i8> = v
            .iter()
            .map(|x| (x / scale).round().clamp(-127.0, 127.0) as i8)
            .collect();
        Self::new(scale, q.into())
    }

    fn new(scale: f32, q: Arc<[i8]>) -> Self {
        let norm = q
            .iter()
            .map(|x| (*x as f32) * (*x as f32))
            .sum::<f32>()
            .sqrt();
        Self { scale, q, norm }
    }

    /// Dimensions.
    pub fn dim(&self) -> usize {
        self.q.len()
    }

    /// Cosine similarity (0 when either is zero or the sizes differ).
    pub fn cosine(&self, other: &Quantized) -> f32 {
        if self.q.len() != other.q.len() || self.norm == 0.0 || other.norm == 0.0 {
            return 0.0;
        }
        let dot: i32 = self
            .q
            .iter()
            .zip(other.q.iter())
            .map(|(a, b)| *a as i32 * *b as i32)
            .sum();
        dot as f32 / (self.norm * other.norm)
    }

    /// Add the unit-length vector to `acc`.
    pub fn add_to(&self, acc: &mut [f32]) {
        if self.norm == 0.0 || acc.len() != self.q.len() {
            return;
        }
        for (a, x) in acc.iter_mut().zip(self.q.iter()) {
            *a += *x as f32 / self.norm;
        }
    }

    /// Stored form: base64 of the scale (f32 LE) then the bytes.
    pub fn encode(&self) -> String {
        let mut raw = Vec::with_capacity(4 + self.q.len());
        raw.extend_from_slice(&self.scale.to_le_bytes());
        raw.extend(self.q.iter().map(|x| *x as u8));
        base64::engine::general_purpose::STANDARD_NO_PAD.encode(raw)
    }

    /// Parse the stored form.
    pub fn decode(s: &str) -> Option<Self> {
        let raw = base64::engine::general_purpose::STANDARD_NO_PAD
            .decode(s)
            .ok()?;
        if raw.len() < 5 {
            return None;
        }
        let scale = f32::from_le_bytes(raw[..4].try_into().ok()?);
        let q: Vec<i8> = raw[4..].iter().map(|b| *b as i8).collect();
        Some(Self::new(scale, q.into()))
    }
}

/// A message to embed.
#[derive(Debug)]
pub struct ToEmbed {
    pub message_id: String,
    pub body: String,
}

/// Where the writer's publisher offers newly posted messages.
#[derive(Clone)]
pub struct EmbedQueue {
    tx: mpsc::Sender<ToEmbed>,
}

/// The receiving end, handed to [`spawn_embedder`] once the app exists.
pub struct EmbedInbox(mpsc::Receiver<ToEmbed>);

impl EmbedQueue {
    /// A queue and its inbox.
    pub fn new() -> (Self, EmbedInbox) {
        let (tx, rx) = mpsc::channel(65_536);
        (Self { tx }, EmbedInbox(rx))
    }

    /// Offer a posted message; when the queue is full it is left for the
    /// insights job, which embeds whatever has no vector yet.
    fn offer(&self, message_id: &str, body: &str) {
        let _ = self.tx.try_send(ToEmbed {
            message_id: message_id.to_string(),
            body: body.to_string(),
        });
    }
}

impl crate::chat::writer::CommitListener for EmbedQueue {
    fn committed(&self, e: &crate::chat::writer::Committed<'_>) {
        // Direct messages are private to their members: the insights job
        // neither embeds nor mines them.
        if !e.direct {
            self.offer(&e.message.id, &e.message.body);
        }
    }
}

impl Insights {
    /// Embed posted messages in batches, once the knowledge engine is loaded
    /// (retrieval loads it; a server nobody retrieves from leaves the work to the
    /// insights job's catch-up).
    pub fn spawn_embedder(&self, inbox: EmbedInbox) {
        if !self.settings.embed_on_post {
            return;
        }
        let mut rx = inbox.0;
        let this = self.clone();
        tokio::spawn(async move {
            let mut batch: Vec<ToEmbed> = Vec::new();
            loop {
                let first = match rx.recv().await {
                    Some(m) => m,
                    None => return,
                };
                batch.push(first);
                let deadline = tokio::time::sleep(Duration::from_millis(200));
                tokio::pin!(deadline);
                while batch.len() < 64 {
                    tokio::select! {
                        m = rx.recv() => match m { Some(m) => batch.push(m), None => break },
                        _ = &mut deadline => break,
                    }
                }
                let Some(engine) = this.knowledge.engine_if_loaded() else {
                    batch.clear();
                    continue;
                };
                if let Err(e) = this.embed_and_store(&engine.embedder, &batch).await {
                    tracing::warn!(error = %e, "message vectors not stored; the insights job will embed them");
                }
                batch.clear();
            }
        });
    }

    /// Embed `batch` and store the vectors (existing ones are kept).
    pub async fn embed_and_store(
        &self,
        embedder: &Arc<dyn warroom_knowledge::embed::Embedder>,
        batch: &[ToEmbed],
    ) -> anyhow::Result<usize> {
        if batch.is_empty() {
            return Ok(0);
        }
        let texts: Vec<String> = batch.iter().map(|m| m.body.clone()).collect();
        let vectors = embedder.embed(&texts).await?;
        let model = embedder.model_id().to_string();
        let now = chrono::Utc::now();
        let rows: Vec<(String, String)> = batch
            .iter()
            .zip(vectors)
            .map(|(m, v)| (m.message_id.clone(), Quantized::from_f32(&v).encode()))
            .collect();
        self.store_vectors(&model, now, &rows).await?;
        Ok(rows.len())
    }

    /// Insert vectors in one write transaction.
    pub async fn store_vectors(
        &self,
        model: &str,
        now: chrono::DateTime<chrono::Utc>,
        rows: &[(String, String)],
    ) -> anyhow::Result<()> {
        let backend = self.db.get_database_backend();
        let _gate = self.gate.enter().await;
        let txn = crate::storage::begin_write(&self.db).await?;
        for chunk in rows.chunks(200) {
            let mut sql = format!(
                "INSERT INTO message_vectors (message_id, model, vector, created_at) VALUES {}",
                placeholders(chunk.len(), 4)
            );
            let mut values: Vec<Value> = Vec::with_capacity(chunk.len() * 4);
            for (id, v) in chunk {
                values.push(id.clone().into());
                values.push(model.to_string().into());
                values.push(v.clone().into());
                values.push(now.into());
            }
            sql.push_str(" ON CONFLICT (message_id) DO NOTHING");
            txn.execute_raw(stmt(backend, &sql, values)).await?;
        }
        txn.commit().await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantised_cosine_tracks_the_real_one() {
        let a: Vec<f32> = (0..384)
            .map(|i| ((i * 7919) % 97) as f32 / 97.0 - 0.5)
            .collect();
        let b: Vec<f32> = (0..384)
            .map(|i| ((i * 104729) % 89) as f32 / 89.0 - 0.5)
            .collect();
        let real = {
            let d: f32 = a.iter().zip(&b).map(|(x, y)| x * y).sum();
            let na = a.iter().map(|x| x * x).sum::<f32>().sqrt();
            let nb = b.iter().map(|x| x * x).sum::<f32>().sqrt();
            d / (na * nb)
        };
        let qa = Quantized::from_f32(&a);
        let qb = Quantized::from_f32(&b);
        assert!((qa.cosine(&qb) - real).abs() < 0.01);
        assert!((qa.cosine(&qa) - 1.0).abs() < 1e-4);
        let back = Quantized::decode(&qa.encode()).expect("decodes");
        assert_eq!(back, qa);
        assert!(Quantized::decode("!!").is_none());
    }
}
