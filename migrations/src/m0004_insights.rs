//! Insights: a vector per message (embedded when it is posted, so the insights
//! job never re-embeds a transcript) and the stored, versioned digests.

use sea_orm_migration::prelude::*;

pub struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m0004_insights"
    }
}

// `vector` is the message's embedding quantised to signed bytes (one scale per
// vector), base64: a tenth of the f32 JSON size, and cosine survives it.
const TABLES: &str = r#"
CREATE TABLE message_vectors (
    message_id TEXT PRIMARY KEY REFERENCES messages(id),
    model TEXT NOT NULL,
    vector TEXT NOT NULL,
    created_at TIMESTAMP WITH TIME ZONE NOT NULL
);
CREATE TABLE digests (
    id TEXT PRIMARY KEY,
    period_from TIMESTAMP WITH TIME ZONE NOT NULL,
    period_to TIMESTAMP WITH TIME ZONE NOT NULL,
    version BIGINT NOT NULL,
    label TEXT NOT NULL,
    risks BIGINT NOT NULL,
    opportunities BIGINT NOT NULL,
    trigger_kind TEXT NOT NULL,
    created_by TEXT,
    created_at TIMESTAMP WITH TIME ZONE NOT NULL,
    data TEXT NOT NULL
);
CREATE UNIQUE INDEX digests_period_version ON digests(period_from, period_to, version);
CREATE INDEX digests_created ON digests(created_at);
CREATE INDEX messages_created ON messages(created_at);
"#;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager.get_connection().execute_unprepared(TABLES).await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let db = manager.get_connection();
        db.execute_unprepared("DROP INDEX IF EXISTS messages_created;")
            .await?;
        for t in ["digests", "message_vectors"] {
            db.execute_unprepared(&format!("DROP TABLE IF EXISTS {t};"))
                .await?;
        }
        Ok(())
    }
}
