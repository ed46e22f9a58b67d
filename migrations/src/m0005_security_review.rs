//! Fixes from the security review (issue 15):
//! - channel names stop being globally unique: a unique index answered
//!   "exists" to someone creating a channel named like a private one they
//!   cannot see, an oracle for hidden names (SECURITY-CASES 24). Uniqueness
//!   among the channels a creator can see is checked by the server; a plain
//!   index stays for look-ups;
//! - vectors of direct messages, embedded by earlier versions, are deleted:
//!   the insights job never reads DMs.

use sea_orm_migration::prelude::*;

pub struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m0005_security_review"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let db = manager.get_connection();
        db.execute_unprepared("DROP INDEX IF EXISTS channels_name_uniq;")
            .await?;
        db.execute_unprepared("CREATE INDEX channels_name ON channels(name);")
            .await?;
        db.execute_unprepared(
            "DELETE FROM message_vectors WHERE message_id IN \
             (SELECT m.id FROM messages m JOIN channels c ON c.id = m.channel_id \
              WHERE c.visibility = 'direct');",
        )
        .await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let db = manager.get_connection();
        db.execute_unprepared("DROP INDEX IF EXISTS channels_name;")
            .await?;
        db.execute_unprepared(
            "CREATE UNIQUE INDEX channels_name_uniq ON channels(name) WHERE visibility <> 'direct';",
        )
        .await?;
        Ok(())
    }
}
