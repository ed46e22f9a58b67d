//! Company knowledge: documents and their chunks (the text and labels; vectors live in the
//! vector store), named retrieval scopes, which scope each principal retrieves through, and
//! the chunks a message cites.

use sea_orm_migration::prelude::*;

pub struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m0002_knowledge"
    }
}

const TABLES: &str = r#"
CREATE TABLE documents (
    id TEXT PRIMARY KEY,
    collection TEXT NOT NULL,
    path TEXT NOT NULL,
    title TEXT NOT NULL,
    format TEXT NOT NULL,
    department TEXT NOT NULL,
    label TEXT NOT NULL,
    level BIGINT NOT NULL,
    tags TEXT NOT NULL,
    doc_date TEXT,
    content_hash TEXT NOT NULL,
    bytes BIGINT NOT NULL,
    chunk_count BIGINT NOT NULL,
    body TEXT NOT NULL,
    created_by TEXT,
    created_at TIMESTAMP WITH TIME ZONE NOT NULL,
    updated_at TIMESTAMP WITH TIME ZONE NOT NULL
);
CREATE UNIQUE INDEX documents_collection_path ON documents(collection, path);
CREATE INDEX documents_department ON documents(department);
CREATE TABLE chunks (
    id TEXT PRIMARY KEY,
    document_id TEXT NOT NULL REFERENCES documents(id) ON DELETE CASCADE,
    ord BIGINT NOT NULL,
    heading_path TEXT NOT NULL,
    text TEXT NOT NULL,
    tokens BIGINT NOT NULL
);
CREATE UNIQUE INDEX chunks_document_ord ON chunks(document_id, ord);
CREATE TABLE scopes (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    description TEXT NOT NULL,
    collections TEXT,
    departments TEXT,
    tags TEXT,
    exclude_collections TEXT NOT NULL,
    exclude_departments TEXT NOT NULL,
    exclude_tags TEXT NOT NULL,
    max_label TEXT NOT NULL,
    created_at TIMESTAMP WITH TIME ZONE NOT NULL,
    updated_at TIMESTAMP WITH TIME ZONE NOT NULL
);
CREATE TABLE principal_scopes (
    user_id TEXT PRIMARY KEY REFERENCES users(id),
    scope_id TEXT NOT NULL REFERENCES scopes(id),
    assigned_at TIMESTAMP WITH TIME ZONE NOT NULL
);
CREATE INDEX principal_scopes_scope ON principal_scopes(scope_id);
CREATE TABLE message_citations (
    message_id TEXT NOT NULL REFERENCES messages(id),
    chunk_id TEXT NOT NULL,
    document_id TEXT NOT NULL,
    PRIMARY KEY (message_id, chunk_id)
);
CREATE INDEX message_citations_document ON message_citations(document_id);
"#;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager.get_connection().execute_unprepared(TABLES).await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let db = manager.get_connection();
        for t in [
            "message_citations",
            "principal_scopes",
            "scopes",
            "chunks",
            "documents",
        ] {
            db.execute_unprepared(&format!("DROP TABLE IF EXISTS {t};"))
                .await?;
        }
        Ok(())
    }
}
