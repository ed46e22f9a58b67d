//! Agents: the persona, template, brain, activity level, budgets and status of
//! each agent user; their persisted memory; and which brain wrote a message.

use sea_orm_migration::prelude::*;

pub struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m0003_agents"
    }
}

const TABLES: &str = r#"
CREATE TABLE agents (
    user_id TEXT PRIMARY KEY REFERENCES users(id),
    template TEXT NOT NULL,
    persona TEXT NOT NULL,
    activity TEXT NOT NULL,
    brain TEXT NOT NULL,
    status TEXT NOT NULL,
    tokens_per_hour BIGINT NOT NULL,
    turns_per_hour BIGINT NOT NULL,
    created_by TEXT NOT NULL,
    created_at TIMESTAMP WITH TIME ZONE NOT NULL,
    updated_at TIMESTAMP WITH TIME ZONE NOT NULL
);
CREATE INDEX agents_status ON agents(status);
CREATE INDEX agents_template ON agents(template);
CREATE TABLE agent_memory (
    agent_id TEXT PRIMARY KEY REFERENCES users(id),
    data TEXT NOT NULL,
    updated_at TIMESTAMP WITH TIME ZONE NOT NULL
);
ALTER TABLE messages ADD COLUMN brain TEXT;
"#;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager.get_connection().execute_unprepared(TABLES).await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let db = manager.get_connection();
        db.execute_unprepared("ALTER TABLE messages DROP COLUMN brain;")
            .await?;
        for t in ["agent_memory", "agents"] {
            db.execute_unprepared(&format!("DROP TABLE IF EXISTS {t};"))
                .await?;
        }
        Ok(())
    }
}
