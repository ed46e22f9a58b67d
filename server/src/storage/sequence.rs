//! Channel sequence numbers: the writer reserves them inside its
//! transaction, one statement for a whole group commit.

use std::collections::HashMap;

use sea_orm::{ConnectionTrait, DatabaseTransaction};

/// Advance several open channels' sequences at once (one statement for the
/// whole group commit); returns each channel's new last sequence. Archived or
/// missing channels are absent from the result.
pub async fn reserve_many(
    txn: &DatabaseTransaction,
    wanted: &[(&str, i64)],
) -> Result<HashMap<String, i64>, sea_orm::DbErr> {
    if wanted.is_empty() {
        return Ok(HashMap::new());
    }
    let mut cases = String::new();
    let mut ids = Vec::new();
    let mut values: Vec<sea_orm::Value> = Vec::new();
    for (i, (channel, n)) in wanted.iter().enumerate() {
        cases.push_str(&format!(" WHEN ${} THEN ${}", 2 * i + 1, 2 * i + 2));
        ids.push(format!("${}", 2 * i + 1));
        values.push((*channel).into());
        values.push((*n).into());
    }
    let sql = format!(
        "UPDATE channels SET last_seq = last_seq + CASE id{cases} END \
         WHERE id IN ({}) AND archived = false RETURNING id, last_seq",
        ids.join(", ")
    );
    let rows = txn
        .query_all_raw(crate::storage::sql::stmt(
            txn.get_database_backend(),
            &sql,
            values,
        ))
        .await?;
    let mut out = HashMap::new();
    for r in rows {
        out.insert(
            r.try_get::<String>("", "id")?,
            r.try_get::<i64>("", "last_seq")?,
        );
    }
    Ok(out)
}

/// Advance a channel's sequence by one (archived channels too: archiving is
/// itself an event); `None` if the channel is gone.
pub async fn next_seq(
    txn: &DatabaseTransaction,
    channel_id: &str,
) -> Result<Option<i64>, sea_orm::DbErr> {
    let sql = "UPDATE channels SET last_seq = last_seq + 1 WHERE id = $1 RETURNING last_seq";
    let row = txn
        .query_one_raw(crate::storage::sql::stmt(
            txn.get_database_backend(),
            sql,
            vec![channel_id.into()],
        ))
        .await?;
    row.map(|r| r.try_get::<i64>("", "last_seq")).transpose()
}
