//! Users, channels, memberships, messages, reactions, channel events, refresh
//! tokens and the audit log, plus full-text search over message bodies.

use sea_orm_migration::prelude::*;
use sea_orm_migration::sea_orm::DbBackend;

pub struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m0001_chat"
    }
}

const TABLES: &str = r#"
CREATE TABLE users (
    id TEXT PRIMARY KEY,
    handle TEXT NOT NULL UNIQUE,
    display_name TEXT NOT NULL,
    kind TEXT NOT NULL,
    role TEXT NOT NULL,
    department TEXT,
    clearance TEXT NOT NULL,
    password_hash TEXT,
    active BOOLEAN NOT NULL,
    created_at TIMESTAMP WITH TIME ZONE NOT NULL
);
CREATE TABLE channels (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    visibility TEXT NOT NULL,
    label TEXT NOT NULL,
    topic TEXT NOT NULL,
    created_by TEXT NOT NULL REFERENCES users(id),
    archived BOOLEAN NOT NULL,
    last_seq BIGINT NOT NULL,
    history_floor BIGINT NOT NULL,
    dm_key TEXT UNIQUE,
    created_at TIMESTAMP WITH TIME ZONE NOT NULL
);
CREATE UNIQUE INDEX channels_name_uniq ON channels(name) WHERE visibility <> 'direct';
CREATE TABLE memberships (
    channel_id TEXT NOT NULL REFERENCES channels(id),
    user_id TEXT NOT NULL REFERENCES users(id),
    last_read_seq BIGINT NOT NULL,
    joined_at TIMESTAMP WITH TIME ZONE NOT NULL,
    PRIMARY KEY (channel_id, user_id)
);
CREATE INDEX memberships_user ON memberships(user_id);
CREATE TABLE messages (
    id TEXT PRIMARY KEY,
    channel_id TEXT NOT NULL REFERENCES channels(id),
    seq BIGINT NOT NULL,
    author_id TEXT NOT NULL REFERENCES users(id),
    thread_root TEXT REFERENCES messages(id),
    body TEXT NOT NULL,
    label TEXT NOT NULL,
    edited_at TIMESTAMP WITH TIME ZONE,
    deleted BOOLEAN NOT NULL,
    idempotency_key TEXT,
    created_at TIMESTAMP WITH TIME ZONE NOT NULL
);
CREATE UNIQUE INDEX messages_channel_seq ON messages(channel_id, seq);
CREATE UNIQUE INDEX messages_idempotency ON messages(author_id, idempotency_key);
CREATE INDEX messages_thread ON messages(thread_root);
CREATE TABLE mentions (
    message_id TEXT NOT NULL REFERENCES messages(id),
    user_id TEXT NOT NULL REFERENCES users(id),
    channel_id TEXT NOT NULL REFERENCES channels(id),
    seq BIGINT NOT NULL,
    PRIMARY KEY (message_id, user_id)
);
CREATE INDEX mentions_user ON mentions(user_id, channel_id, seq);
CREATE TABLE reactions (
    message_id TEXT NOT NULL REFERENCES messages(id),
    user_id TEXT NOT NULL REFERENCES users(id),
    emoji TEXT NOT NULL,
    created_at TIMESTAMP WITH TIME ZONE NOT NULL,
    PRIMARY KEY (message_id, user_id, emoji)
);
CREATE TABLE channel_events (
    channel_id TEXT NOT NULL REFERENCES channels(id),
    seq BIGINT NOT NULL,
    kind TEXT NOT NULL,
    message_id TEXT,
    payload TEXT NOT NULL,
    created_at TIMESTAMP WITH TIME ZONE NOT NULL,
    PRIMARY KEY (channel_id, seq)
);
CREATE TABLE refresh_tokens (
    id TEXT PRIMARY KEY,
    user_id TEXT NOT NULL REFERENCES users(id),
    family_id TEXT NOT NULL,
    token_hash TEXT NOT NULL UNIQUE,
    expires_at TIMESTAMP WITH TIME ZONE NOT NULL,
    used BOOLEAN NOT NULL,
    revoked BOOLEAN NOT NULL,
    created_at TIMESTAMP WITH TIME ZONE NOT NULL
);
CREATE INDEX refresh_tokens_family ON refresh_tokens(family_id);
CREATE INDEX refresh_tokens_user ON refresh_tokens(user_id);
"#;

const AUDIT_SQLITE: &str = r#"
CREATE TABLE audit_log (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    at TIMESTAMP WITH TIME ZONE NOT NULL,
    actor_id TEXT,
    action TEXT NOT NULL,
    target TEXT NOT NULL,
    outcome TEXT NOT NULL,
    detail TEXT NOT NULL,
    prev_hash TEXT NOT NULL,
    hash TEXT NOT NULL
);
"#;

const AUDIT_POSTGRES: &str = r#"
CREATE TABLE audit_log (
    id BIGSERIAL PRIMARY KEY,
    at TIMESTAMP WITH TIME ZONE NOT NULL,
    actor_id TEXT,
    action TEXT NOT NULL,
    target TEXT NOT NULL,
    outcome TEXT NOT NULL,
    detail TEXT NOT NULL,
    prev_hash TEXT NOT NULL,
    hash TEXT NOT NULL
);
"#;

// SQLite: an external-content FTS5 index kept in step by triggers, so search
// sees edits and deletions (bodies of deleted messages are blanked) at once.
const FTS_SQLITE: &str = r#"
CREATE VIRTUAL TABLE messages_fts USING fts5(body, content='messages', content_rowid='rowid', tokenize='unicode61');
CREATE TRIGGER messages_fts_ai AFTER INSERT ON messages BEGIN
    INSERT INTO messages_fts(rowid, body) VALUES (new.rowid, new.body);
END;
CREATE TRIGGER messages_fts_ad AFTER DELETE ON messages BEGIN
    INSERT INTO messages_fts(messages_fts, rowid, body) VALUES ('delete', old.rowid, old.body);
END;
CREATE TRIGGER messages_fts_au AFTER UPDATE OF body ON messages BEGIN
    INSERT INTO messages_fts(messages_fts, rowid, body) VALUES ('delete', old.rowid, old.body);
    INSERT INTO messages_fts(rowid, body) VALUES (new.rowid, new.body);
END;
"#;

const FTS_POSTGRES: &str = r#"
CREATE INDEX messages_body_fts ON messages USING GIN (to_tsvector('simple', body));
"#;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let db = manager.get_connection();
        let (audit, fts) = match manager.get_database_backend() {
            DbBackend::Postgres => (AUDIT_POSTGRES, FTS_POSTGRES),
            DbBackend::Sqlite => (AUDIT_SQLITE, FTS_SQLITE),
            other => {
                return Err(DbErr::Migration(format!(
                    "unsupported database backend {other:?}: use SQLite or PostgreSQL"
                )))
            }
        };
        db.execute_unprepared(TABLES).await?;
        db.execute_unprepared(audit).await?;
        db.execute_unprepared(fts).await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let db = manager.get_connection();
        if manager.get_database_backend() == DbBackend::Sqlite {
            db.execute_unprepared("DROP TABLE IF EXISTS messages_fts;")
                .await?;
        }
        for t in [
            "audit_log",
            "refresh_tokens",
            "channel_events",
            "reactions",
            "mentions",
            "messages",
            "memberships",
            "channels",
            "users",
        ] {
            db.execute_unprepared(&format!("DROP TABLE IF EXISTS {t};"))
                .await?;
        }
        Ok(())
    }
}
