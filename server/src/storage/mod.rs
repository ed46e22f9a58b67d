//! Relational storage: connecting (SQLite by default, PostgreSQL by URL),
//! durability settings, migrations, and the sea-orm entities.

pub mod entities;
pub mod sequence;
pub mod sql;

use std::time::Duration;

use sea_orm::sqlx::sqlite::{SqliteJournalMode, SqliteSynchronous};
use sea_orm::{ConnectOptions, ConnectionTrait, Database, DatabaseConnection, DbBackend, DbErr};
use warroom_migrations::{Migrator, MigratorTrait};

use crate::config::Settings;

/// Open the configured database, creating the data directory and (for
/// PostgreSQL) the configured schema, then run pending migrations.
pub async fn connect(settings: &Settings) -> Result<DatabaseConnection, DbErr> {
    let url = settings.database_url();
    if url.starts_with("sqlite:") {
        std::fs::create_dir_all(&settings.storage.data_dir).map_err(|e| {
            DbErr::Custom(format!(
                "cannot create data directory {}: {e}",
                settings.storage.data_dir.display()
            ))
        })?;
    } else if !url.starts_with("postgres") {
        return Err(DbErr::Custom(format!(
            "unsupported database URL {url:?}: use sqlite://PATH or postgres://..."
        )));
    }
    let schema = settings.storage.postgres_schema.clone();
    if let Some(schema) = &schema {
        if !schema
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_')
        {
            return Err(DbErr::Custom(format!("invalid schema name {schema:?}")));
        }
        let plain = Database::connect(url.as_str()).await?;
        plain
            .execute_unprepared(&format!("CREATE SCHEMA IF NOT EXISTS \"{schema}\""))
            .await?;
        plain.close().await?;
    }
    let mut opts = ConnectOptions::new(url);
    opts.max_connections(settings.storage.max_connections)
        .min_connections(1)
        .acquire_timeout(Duration::from_secs(10))
        .sqlx_logging(false)
        // Every connection in the pool gets the same durability settings:
        // WAL so readers do not block the writer, FULL sync so an acknowledged
        // commit survives power loss, and foreign keys enforced.
        .map_sqlx_sqlite_opts(|o| {
            o.journal_mode(SqliteJournalMode::Wal)
                .synchronous(SqliteSynchronous::Full)
                .foreign_keys(true)
                .busy_timeout(Duration::from_secs(10))
                // A larger page cache keeps indexes in memory as the log grows.
                .pragma("cache_size", "-65536")
                .pragma("temp_store", "memory")
        });
    if let Some(schema) = schema {
        opts.set_schema_search_path(schema);
    }
    let db = Database::connect(opts).await?;
    Migrator::up(&db, None).await?;
    Ok(db)
}

/// Drop a PostgreSQL schema and everything in it (test clean-up).
pub async fn drop_postgres_schema(url: &str, schema: &str) -> Result<(), DbErr> {
    let db = Database::connect(url).await?;
    if db.get_database_backend() == DbBackend::Postgres {
        db.execute_unprepared(&format!("DROP SCHEMA IF EXISTS \"{schema}\" CASCADE"))
            .await?;
    }
    db.close().await
}

/// Serializes this process's busy writers (the chat writer, the audit log,
/// agent memory) on SQLite, which allows one writer at a time: waiting on an
/// async lock hands the database over at once, where SQLite's own busy
/// handler would sleep and retry. `None` on PostgreSQL, which needs none.
#[derive(Clone, Default)]
pub struct WriteGate(Option<std::sync::Arc<tokio::sync::Mutex<()>>>);

impl WriteGate {
    /// A gate for this database.
    pub fn for_db(db: &sea_orm::DatabaseConnection) -> Self {
        match db.get_database_backend() {
            sea_orm::DbBackend::Sqlite => Self(Some(Default::default())),
            _ => Self(None),
        }
    }

    /// Hold the gate (a no-op on PostgreSQL) for the length of a transaction.
    pub async fn enter(&self) -> Option<tokio::sync::MutexGuard<'_, ()>> {
        match &self.0 {
            Some(m) => Some(m.lock().await),
            None => None,
        }
    }
}

/// Begin a write transaction. On SQLite it takes the write lock at once
/// (`BEGIN IMMEDIATE`), so concurrent writers (the chat writer, the audit log,
/// agent memory) wait for each other within the busy timeout instead of
/// failing when a read inside a transaction would need upgrading to a write.
pub async fn begin_write(
    db: &sea_orm::DatabaseConnection,
) -> Result<sea_orm::DatabaseTransaction, sea_orm::DbErr> {
    use sea_orm::{SqliteTransactionMode, TransactionOptions, TransactionTrait};
    db.begin_with_options(TransactionOptions {
        sqlite_transaction_mode: Some(SqliteTransactionMode::Immediate),
        ..Default::default()
    })
    .await
}

/// Write a secret to a file that is owner-only (0600) from the moment it
/// exists: no window in which others may read it. An existing file is
/// replaced and its mode tightened before anything is written.
pub fn write_private(path: &std::path::Path, contents: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
        opts.mode(0o600);
        let mut f = opts.open(path)?;
        f.set_permissions(std::fs::Permissions::from_mode(0o600))?;
        f.write_all(contents)?;
        f.sync_all()
    }
    #[cfg(not(unix))]
    {
        let mut f = opts.open(path)?;
        f.write_all(contents)?;
        f.sync_all()
    }
}
