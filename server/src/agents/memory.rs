//! Agent memory: saved in the background, many agents per transaction, and
//! shown to readers other than the agent at the labels of what went into it.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use sea_orm::{ColumnTrait, DatabaseConnection, EntityTrait, QueryFilter, QuerySelect, Set};
use tokio::sync::{mpsc, oneshot};
use warroom_agent_runtime::memory::Memory;

use super::{Agents, AgentsError, AgentsResult};
use crate::ids::AgentId;
use crate::label::Label;
use crate::storage::entities::agent_memory;

/// Saves memories in the background, many per transaction.
#[derive(Clone)]
pub(super) struct MemoryWriter {
    tx: mpsc::Sender<MemoryOp>,
    pending: Arc<Mutex<HashMap<String, String>>>,
}

enum MemoryOp {
    Save(String),
    Flush(oneshot::Sender<()>),
}

impl MemoryWriter {
    pub(super) fn start(db: DatabaseConnection, gate: crate::storage::WriteGate) -> Self {
        let (tx, mut rx) = mpsc::channel::<MemoryOp>(65_536);
        let pending: Arc<Mutex<HashMap<String, String>>> = Arc::default();
        let p2 = pending.clone();
        // Weak, so the writer still ends when the last sender goes.
        let requeue = tx.downgrade();
        tokio::spawn(async move {
            while let Some(first) = rx.recv().await {
                let mut waiters = Vec::new();
                let mut ops = vec![first];
                while let Ok(op) = rx.try_recv() {
                    ops.push(op);
                    if ops.len() >= 4096 {
                        break;
                    }
                }
                let mut ids = Vec::new();
                for op in ops {
                    match op {
                        MemoryOp::Save(id) => ids.push(id),
                        MemoryOp::Flush(w) => waiters.push(w),
                    }
                }
                // Pending memories stay readable until they are stored: a
                // read between taking and committing them would see nothing.
                let batch: Vec<(String, String)> = {
                    let p = p2.lock().expect("memory lock");
                    ids.iter()
                        .filter_map(|id| p.get(id).map(|d| (id.clone(), d.clone())))
                        .collect()
                };
                if !batch.is_empty() {
                    let _gate = gate.enter().await;
                    match write_memories(&db, &batch).await {
                        Ok(()) => {
                            let mut p = p2.lock().expect("memory lock");
                            for (id, data) in &batch {
                                if p.get(id) == Some(data) {
                                    p.remove(id);
                                } else {
                                    // Saved again meanwhile: write the newer one next.
                                    if let Some(tx) = requeue.upgrade() {
                                        let _ = tx.try_send(MemoryOp::Save(id.clone()));
                                    }
                                }
                            }
                        }
                        Err(e) => {
                            let mut p = p2.lock().expect("memory lock");
                            for (id, data) in &batch {
                                if p.get(id) == Some(data) {
                                    p.remove(id);
                                }
                            }
                            tracing::error!(error = %e, n = batch.len(), "agent memories not saved");
                        }
                    }
                }
                for w in waiters {
                    let _ = w.send(());
                }
            }
        });
        Self { tx, pending }
    }
}

async fn write_memories(
    db: &DatabaseConnection,
    batch: &[(String, String)],
) -> Result<(), sea_orm::DbErr> {
    use sea_orm::sea_query::OnConflict;
    let txn = crate::storage::begin_write(db).await?;
    let now = chrono::Utc::now();
    for chunk in batch.chunks(200) {
        let rows = chunk.iter().map(|(id, data)| agent_memory::ActiveModel {
            agent_id: Set(id.clone()),
            data: Set(data.clone()),
            updated_at: Set(now),
        });
        agent_memory::Entity::insert_many(rows)
            .on_conflict(
                OnConflict::column(agent_memory::Column::AgentId)
                    .update_columns([agent_memory::Column::Data, agent_memory::Column::UpdatedAt])
                    .to_owned(),
            )
            .exec(&txn)
            .await?;
    }
    txn.commit().await
}

impl Agents {
    /// An agent's saved memory.
    pub async fn memory(&self, id: &AgentId) -> AgentsResult<Option<Memory>> {
        if let Some(d) = self
            .memory
            .pending
            .lock()
            .expect("memory lock")
            .get(id.as_str())
        {
            return Ok(serde_json::from_str(d).ok());
        }
        Ok(agent_memory::Entity::find_by_id(id.to_string())
            .one(&self.db)
            .await?
            .and_then(|m| serde_json::from_str(&m.data).ok()))
    }

    /// Memory as the server labels it for readers other than the agent: each
    /// note at least the current label of the message it came from (the
    /// agent's clearance when that message is unknown), the summary at least
    /// the agent's clearance, since the server cannot see what went into it.
    /// An agent cannot lower the label its memory is shown at.
    pub async fn labelled_memory(
        &self,
        mut m: Memory,
        agent_clearance: &Label,
    ) -> AgentsResult<Memory> {
        use crate::storage::entities::message;
        let ids: Vec<String> = m.recent.iter().map(|n| n.message_id.clone()).collect();
        let mut current: HashMap<String, Label> = HashMap::new();
        for chunk in ids.chunks(500) {
            let rows: Vec<(String, String)> = message::Entity::find()
                .select_only()
                .column(message::Column::Id)
                .column(message::Column::Label)
                .filter(message::Column::Id.is_in(chunk.to_vec()))
                .into_tuple()
                .all(&self.db)
                .await?;
            for (id, label) in rows {
                let label = Label::from_stored(&label, agent_clearance);
                current.insert(id, label);
            }
        }
        for n in &mut m.recent {
            let source = current.get(&n.message_id).unwrap_or(agent_clearance);
            n.label = n.label.join(source);
        }
        if !m.summary.is_empty() {
            m.summary_label = Some(match &m.summary_label {
                Some(l) => l.join(agent_clearance),
                None => agent_clearance.clone(),
            });
        }
        Ok(m)
    }

    /// Save an agent's memory (written in the background, batched).
    pub async fn save_memory(&self, id: &AgentId, memory: &Memory) -> AgentsResult<()> {
        let data = serde_json::to_string(memory).map_err(AgentsError::internal)?;
        if data.len() > 64 * 1024 {
            return Err(AgentsError::invalid("agent memory is limited to 64 KiB"));
        }
        let fresh = self
            .memory
            .pending
            .lock()
            .expect("memory lock")
            .insert(id.to_string(), data)
            .is_none();
        if fresh {
            self.memory
                .tx
                .send(MemoryOp::Save(id.to_string()))
                .await
                .map_err(|_| AgentsError::internal("memory writer stopped"))?;
        }
        Ok(())
    }

    /// Wait until every memory saved so far is written.
    pub async fn flush_memory(&self) {
        let (tx, rx) = oneshot::channel();
        if self.memory.tx.send(MemoryOp::Flush(tx)).await.is_ok() {
            let _ = rx.await;
        }
    }
}
