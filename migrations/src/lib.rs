//! Database schema for Warroom, as sea-orm migrations.
//!
//! The DDL is written once and adjusted per backend where SQLite and PostgreSQL
//! differ (auto-increment keys and full-text search). Migrations run at start-up
//! and by `warroom migrate`.

pub use sea_orm_migration::prelude::*;

mod m0001_chat;
mod m0002_knowledge;
mod m0003_agents;
mod m0004_insights;
mod m0005_security_review;

/// All migrations, in order.
pub struct Migrator;

#[async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![
            Box::new(m0001_chat::Migration),
            Box::new(m0002_knowledge::Migration),
            Box::new(m0003_agents::Migration),
            Box::new(m0004_insights::Migration),
            Box::new(m0005_security_review::Migration),
        ]
    }
}
