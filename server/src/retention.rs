//! Pruning of old channel events. Resume replays from storage; a client
//! behind the kept history gets an explicit resync instead of a silent gap.

use std::time::Duration;

use sea_orm::{ConnectionTrait, DatabaseConnection, EntityTrait};

use crate::storage::entities::channel;
use crate::storage::sql::stmt;

/// Prune every channel's events beyond the newest `keep` sequence positions,
/// once a minute.
pub fn spawn(db: DatabaseConnection, keep: i64) {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(60));
        loop {
            tick.tick().await;
            if let Err(e) = prune(&db, keep).await {
                tracing::warn!(error = %e, "event pruning failed");
            }
        }
    });
}

/// Keep the newest `keep` sequence positions of events per channel
/// (`limits.events_kept_per_channel`); raise the channel's history floor to
/// what was dropped.
pub async fn prune(db: &DatabaseConnection, keep: i64) -> Result<(), sea_orm::DbErr> {
    let backend = db.get_database_backend();
    for c in channel::Entity::find().all(db).await? {
        let floor = c.last_seq - keep;
        if floor <= c.history_floor {
            continue;
        }
        db.execute_raw(stmt(
            backend,
            "DELETE FROM channel_events WHERE channel_id = $1 AND seq <= $2",
            vec![c.id.clone().into(), floor.into()],
        ))
        .await?;
        db.execute_raw(stmt(
            backend,
            "UPDATE channels SET history_floor = $1 WHERE id = $2 AND history_floor < $1",
            vec![floor.into(), c.id.clone().into()],
        ))
        .await?;
    }
    Ok(())
}
