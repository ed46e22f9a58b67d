//! Stored digests: writing, listing and reading them, and redacting each
//! for the clearance of the reader.

use super::*;
use crate::ids::DigestId;

/// Which digest to read: the newest, or one by id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DigestRef {
    Latest,
    Id(DigestId),
}

impl std::str::FromStr for DigestRef {
    type Err = InsightsError;

    /// `latest`, or a digest id.
    fn from_str(s: &str) -> InsightsResult<Self> {
        if s == "latest" {
            return Ok(DigestRef::Latest);
        }
        DigestId::parse(s)
            .map(DigestRef::Id)
            .map_err(|_| InsightsError::invalid("digest id must be a UUID or `latest`"))
    }
}

/// What a reader cleared for `clearance` may see of `d`: insights above it
/// keep only their kind and rank; channels above it leave the activity chart.
pub fn redact(mut d: Digest, clearance: &Label) -> Digest {
    if parse_label(&d.label).within(clearance) {
        return d;
    }
    d.redacted = true;
    let mut label = Label::level(Level::Public);
    for i in d.insights.iter_mut() {
        let l = parse_label(&i.label);
        if l.within(clearance) {
            label = label.join(&l);
            continue;
        }
        *i = redacted_insight(i);
    }
    d.faded.retain(|f| parse_label(&f.label).within(clearance));
    d.activity
        .retain(|a| parse_label(&a.label).within(clearance));
    d.label = label.to_string();
    d
}

/// What is left of an insight a reader may not see: its kind, rank and trend.
pub(super) fn redacted_insight(i: &Insight) -> Insight {
    Insight {
        id: i.id.clone(),
        kind: i.kind,
        rank: i.rank,
        title: "Redacted: above your clearance".into(),
        summary: String::new(),
        why: String::new(),
        departments: vec![],
        confidence: 0.0,
        confidence_reason: String::new(),
        trend: i.trend.clone(),
        label: "redacted".into(),
        score: 0.0,
        signals: Signals::default(),
        redacted: true,
        evidence: vec![],
        fact_keys: vec![],
        mentions: 0,
    }
}

impl Insights {
    pub(super) async fn latest_before(&self, period: Period) -> InsightsResult<Option<Digest>> {
        let backend = self.db.get_database_backend();
        let row = self
            .db
            .query_one_raw(stmt(
                backend,
                "SELECT data FROM digests WHERE period_to <= $1 OR (period_from = $2 AND period_to = $3) \
                 ORDER BY created_at DESC LIMIT 1",
                vec![period.from.into(), period.from.into(), period.to.into()],
            ))
            .await
            .map_err(db_err)?;
        Ok(row
            .and_then(|r| r.try_get::<String>("", "data").ok())
            .and_then(|d| serde_json::from_str(&d).ok()))
    }

    pub(super) async fn week_rows(&self, n: u64) -> InsightsResult<Vec<WeekRow>> {
        let backend = self.db.get_database_backend();
        let rows = self
            .db
            .query_all_raw(stmt(
                backend,
                "SELECT period_to, risks, opportunities FROM digests ORDER BY created_at DESC LIMIT $1",
                vec![(n as i64 * 4).into()],
            ))
            .await
            .map_err(db_err)?;
        let mut out: Vec<WeekRow> = Vec::new();
        for r in rows {
            let (Ok(to), Ok(risks), Ok(opps)) = (
                r.try_get::<DateTime<Utc>>("", "period_to"),
                r.try_get::<i64>("", "risks"),
                r.try_get::<i64>("", "opportunities"),
            ) else {
                continue;
            };
            // The newest version of each period.
            if out.iter().any(|w| w.period_to == to) {
                continue;
            }
            out.push(WeekRow {
                period_to: to,
                risks: risks as usize,
                opportunities: opps as usize,
            });
            if out.len() as u64 >= n {
                break;
            }
        }
        Ok(out)
    }

    /// Store `digest` as the next version of its period.
    pub(super) async fn store(
        &self,
        mut digest: Digest,
        actor: Option<&str>,
    ) -> InsightsResult<Digest> {
        let backend = self.db.get_database_backend();
        let _gate = self.gate.enter().await;
        let txn = crate::storage::begin_write(&self.db)
            .await
            .map_err(db_err)?;
        let row = txn
            .query_one_raw(stmt(
                backend,
                "SELECT MAX(version) AS v FROM digests WHERE period_from = $1 AND period_to = $2",
                vec![digest.period.from.into(), digest.period.to.into()],
            ))
            .await
            .map_err(db_err)?;
        let last: i64 = row
            .and_then(|r| r.try_get::<Option<i64>>("", "v").ok().flatten())
            .unwrap_or(0);
        digest.version = last + 1;
        let data = serde_json::to_string(&digest).map_err(InsightsError::internal)?;
        txn.execute_raw(stmt(
            backend,
            "INSERT INTO digests (id, period_from, period_to, version, label, risks, opportunities, \
             trigger_kind, created_by, created_at, data) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
            vec![
                digest.id.clone().into(),
                digest.period.from.into(),
                digest.period.to.into(),
                digest.version.into(),
                digest.label.clone().into(),
                (digest.insights.iter().filter(|i| i.kind == InsightKind::Risk).count() as i64).into(),
                (digest.insights.iter().filter(|i| i.kind == InsightKind::Opportunity).count() as i64).into(),
                digest.trigger.clone().into(),
                actor.map(str::to_string).into(),
                digest.created_at.into(),
                data.into(),
            ],
        ))
        .await
        .map_err(db_err)?;
        txn.commit().await.map_err(db_err)?;
        Ok(digest)
    }

    /// How many digests and message vectors are stored.
    pub async fn stored_counts(&self) -> InsightsResult<(u64, u64)> {
        let backend = self.db.get_database_backend();
        let mut out = [0u64; 2];
        for (i, table) in ["digests", "message_vectors"].iter().enumerate() {
            let row = self
                .db
                .query_one_raw(stmt(
                    backend,
                    &format!("SELECT COUNT(*) AS n FROM {table}"),
                    vec![],
                ))
                .await
                .map_err(db_err)?;
            out[i] = row
                .and_then(|r| r.try_get::<i64>("", "n").ok())
                .unwrap_or(0) as u64;
        }
        Ok((out[0], out[1]))
    }

    /// Stored digests, newest first, as `reader` may see them.
    pub async fn list(&self, reader: &Principal, limit: u64) -> InsightsResult<Vec<DigestSummary>> {
        self.authz.permit(
            crate::authz::Actor::Principal(reader),
            crate::authz::SystemAction::InsightsRead,
        )?;
        if !(1..=500).contains(&limit) {
            return Err(InsightsError::invalid("limit must be 1-500"));
        }
        let backend = self.db.get_database_backend();
        let rows = self
            .db
            .query_all_raw(stmt(
                backend,
                "SELECT id, version, period_from, period_to, created_at, label, risks, opportunities \
                 FROM digests ORDER BY period_to DESC, version DESC LIMIT $1",
                vec![(limit as i64).into()],
            ))
            .await
            .map_err(db_err)?;
        let mut out = Vec::new();
        for r in rows {
            let label: String = r.try_get("", "label").map_err(db_err)?;
            let cleared = parse_label(&label).within(&reader.clearance);
            let mut counts = BTreeMap::new();
            counts.insert(
                "risk".to_string(),
                r.try_get::<i64>("", "risks").map_err(db_err)? as usize,
            );
            counts.insert(
                "opportunity".to_string(),
                r.try_get::<i64>("", "opportunities").map_err(db_err)? as usize,
            );
            out.push(DigestSummary {
                id: r.try_get("", "id").map_err(db_err)?,
                version: r.try_get("", "version").map_err(db_err)?,
                period: Period {
                    from: r.try_get("", "period_from").map_err(db_err)?,
                    to: r.try_get("", "period_to").map_err(db_err)?,
                },
                created_at: r.try_get("", "created_at").map_err(db_err)?,
                label: if cleared {
                    label
                } else {
                    reader.clearance.to_string()
                },
                redacted: !cleared,
                counts,
            });
        }
        Ok(out)
    }

    /// One digest (`latest` for the newest), redacted to `reader`'s clearance.
    pub async fn get(&self, reader: &Principal, which: &DigestRef) -> InsightsResult<Digest> {
        self.authz.permit(
            crate::authz::Actor::Principal(reader),
            crate::authz::SystemAction::InsightsRead,
        )?;
        let backend = self.db.get_database_backend();
        let row = match which {
            DigestRef::Latest => {
                self.db
                    .query_one_raw(stmt(
                        backend,
                        "SELECT data FROM digests ORDER BY period_to DESC, version DESC LIMIT 1",
                        vec![],
                    ))
                    .await
            }
            DigestRef::Id(id) => {
                self.db
                    .query_one_raw(stmt(
                        backend,
                        "SELECT data FROM digests WHERE id = $1",
                        vec![id.into()],
                    ))
                    .await
            }
        }
        .map_err(db_err)?
        .ok_or_else(|| InsightsError::not_found("digest"))?;
        let data: String = row.try_get("", "data").map_err(db_err)?;
        let digest: Digest = serde_json::from_str(&data).map_err(InsightsError::internal)?;
        self.redact_now(digest, reader).await
    }

    /// What `reader` may see of a stored digest *now*: labels frozen when it was
    /// written are raised to the current labels of its evidence (a message
    /// reclassified since is redacted at once), an insight resting on a message
    /// of a private channel the reader is not a member of, or on one deleted or
    /// gone, is redacted, and so are activity rows of channels they cannot read.
    /// Then [`redact`] applies the reader's clearance (SECURITY-CASES 10, 25).
    pub async fn redact_now(&self, mut d: Digest, reader: &Principal) -> InsightsResult<Digest> {
        use crate::storage::entities::{channel, membership, message};
        use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};
        let ids: BTreeSet<String> = d
            .insights
            .iter()
            .flat_map(|i| i.evidence.iter().map(|e| e.message_id.clone()))
            .collect();
        let mut current: HashMap<String, message::Model> = HashMap::new();
        let ids: Vec<String> = ids.into_iter().collect();
        for chunk in ids.chunks(500) {
            for m in message::Entity::find()
                .filter(message::Column::Id.is_in(chunk.to_vec()))
                .all(&self.db)
                .await?
            {
                current.insert(m.id.clone(), m);
            }
        }
        let channel_ids: BTreeSet<String> =
            current.values().map(|m| m.channel_id.clone()).collect();
        let names: BTreeSet<String> = d.activity.iter().map(|a| a.channel.clone()).collect();
        let mut channels: Vec<channel::Model> = Vec::new();
        let channel_ids: Vec<String> = channel_ids.into_iter().collect();
        for chunk in channel_ids.chunks(500) {
            channels.extend(
                channel::Entity::find()
                    .filter(channel::Column::Id.is_in(chunk.to_vec()))
                    .all(&self.db)
                    .await?,
            );
        }
        let names: Vec<String> = names.into_iter().collect();
        for chunk in names.chunks(500) {
            channels.extend(
                channel::Entity::find()
                    .filter(channel::Column::Name.is_in(chunk.to_vec()))
                    .all(&self.db)
                    .await?,
            );
        }
        let member_of: BTreeSet<String> = membership::Entity::find()
            .filter(membership::Column::UserId.eq(reader.id.as_str()))
            .filter(
                membership::Column::ChannelId
                    .is_in(channels.iter().map(|c| c.id.clone()).collect::<Vec<_>>()),
            )
            .all(&self.db)
            .await?
            .into_iter()
            .map(|m| m.channel_id)
            .collect();
        // A channel is readable when it is public, or private with the reader a
        // member; direct channels never are (the job does not mine them).
        let readable = |c: &channel::Model| match c.visibility.as_str() {
            "public" => true,
            "private" => member_of.contains(&c.id),
            _ => false,
        };
        let by_id: HashMap<&str, &channel::Model> =
            channels.iter().map(|c| (c.id.as_str(), c)).collect();
        for i in d.insights.iter_mut() {
            if i.redacted {
                continue;
            }
            let mut label = parse_label(&i.label);
            let mut ok = true;
            for e in i.evidence.iter_mut() {
                let Some(m) = current.get(&e.message_id).filter(|m| !m.deleted) else {
                    ok = false;
                    break;
                };
                if !by_id
                    .get(m.channel_id.as_str())
                    .is_some_and(|c| readable(c))
                {
                    ok = false;
                    break;
                }
                let now = parse_label(&m.label).join(&parse_label(&e.label));
                e.label = now.to_string();
                label = label.join(&now);
            }
            if ok {
                i.label = label.to_string();
            } else {
                *i = redacted_insight(i);
            }
        }
        d.activity
            .retain(|a| channels.iter().any(|c| c.name == a.channel && readable(c)));
        // The digest's label is the join of what it still shows.
        let mut label = Label::level(Level::Public);
        for i in d.insights.iter().filter(|i| !i.redacted) {
            label = label.join(&parse_label(&i.label));
        }
        for a in &d.activity {
            label = label.join(&parse_label(&a.label));
        }
        for f in &d.faded {
            label = label.join(&parse_label(&f.label));
        }
        let was_redacted = d.insights.iter().any(|i| i.redacted);
        d.label = label.to_string();
        let mut d = redact(d, &reader.clearance);
        d.redacted |= was_redacted;
        Ok(d)
    }
}
