//! The insights job: embed what is missing, mine the period's talk, judge
//! the candidates, word them and store the digest.

use super::*;

pub(super) fn overlaps(a: &[String], b: &[String]) -> bool {
    let shared = a.iter().filter(|k| b.contains(k)).count();
    shared > 0 && shared * 3 >= a.len().min(b.len()).max(1)
}

pub(super) fn trend(ins: &Insight, previous: &[Insight]) -> String {
    match previous
        .iter()
        .find(|p| overlaps(&ins.fact_keys, &p.fact_keys))
    {
        None => "new".into(),
        Some(p) if ins.mentions as f32 > p.mentions as f32 * 1.25 => "growing".into(),
        Some(p) if (ins.mentions as f32) < p.mentions as f32 * 0.8 => "fading".into(),
        Some(_) => "steady".into(),
    }
}

/// Turn a topic into a worded insight with its evidence.
pub(super) fn word(
    miner: &Miner,
    t: &mine::Topic,
    rank: usize,
    doc_bodies: &HashMap<String, String>,
    vocab: &wording::Vocabulary,
) -> Insight {
    let mut facts: Vec<&mine::Fact> = t.facts.iter().map(|f| &miner.facts[*f as usize]).collect();
    facts.sort_by(|a, b| {
        miner
            .chunk(a)
            .department
            .cmp(&miner.chunk(b).department)
            .then(b.messages.cmp(&a.messages))
    });
    let departments: Vec<String> = facts
        .iter()
        .map(|f| miner.chunk(f).department.clone())
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    let mut label = Label::level(Level::Public);
    let mut evidence = Vec::new();
    let mut mentions = 0;
    for f in &facts {
        let c = miner.chunk(f);
        label = label.join(&c.label);
        mentions += f.messages;
        // A quote is kept only if it is the document's own words.
        let valid = doc_bodies
            .get(&c.document_path)
            .is_some_and(|body| body.contains(&f.quote));
        let citations = if valid {
            vec![Citation {
                document_path: c.document_path.clone(),
                document_title: c.document_title.clone(),
                department: c.department.clone(),
                chunk_id: c.id.clone(),
                quote: f.quote.clone(),
                label: c.label.to_string(),
            }]
        } else {
            vec![]
        };
        for r in f.refs.iter().take(2) {
            label = label.join(&parse_label(&r.label));
            evidence.push(evidence_of(r, citations.clone()));
        }
    }
    // Each department's lead fact, the one that says most for this kind.
    let mut leads: Vec<(String, String)> = Vec::new();
    for d in &departments {
        if let Some(f) = t
            .facts
            .iter()
            .filter(|f| &miner.chunk(&miner.facts[**f as usize]).department == d)
            .max_by(|a, b| {
                let (qa, qb) = (
                    &miner.facts[**a as usize].quote,
                    &miner.facts[**b as usize].quote,
                );
                lead_score(miner, **a, t.kind)
                    .total_cmp(&lead_score(miner, **b, t.kind))
                    .then(qb.len().cmp(&qa.len()))
            })
        {
            leads.push((d.clone(), miner.facts[*f as usize].quote.clone()));
        }
    }
    let quotes: Vec<&str> = facts.iter().map(|f| f.quote.as_str()).collect();
    let subject = wording::subject(&quotes, vocab);
    let title = wording::headline(t.kind, &subject, &departments);
    let summary = leads
        .iter()
        .map(|(d, q)| format!("{}: {}", capitalize(d), q))
        .collect::<Vec<_>>()
        .join(" ");
    let dates: Vec<String> = facts
        .iter()
        .flat_map(|f| figures(&f.quote))
        .filter(|w| mine::MONTHS.iter().any(|m| w.starts_with(m)))
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    let why = wording::why(t.kind, &leads, &dates);
    let s = &t.signals;
    let talk = if s.meetings > 0 {
        format!(
            "{} voices from {} departments put its facts side by side {} time{}",
            s.voices,
            s.voice_departments.max(1),
            s.meetings,
            if s.meetings == 1 { "" } else { "s" }
        )
    } else {
        format!(
            "{} voices stated its facts, never in one conversation; the link is shared names and close meaning",
            s.voices
        )
    };
    let confidence_reason = format!("{}; {talk}.", capitalize(&t.reason));
    let mut keys: Vec<String> = facts.iter().map(|f| f.key.clone()).collect();
    keys.sort();
    Insight {
        id: format!("{:016x}", hash64(&keys.join("|"))),
        kind: t.kind,
        rank,
        title,
        summary,
        why,
        departments,
        confidence: t.confidence,
        confidence_reason,
        trend: "new".into(),
        label: label.to_string(),
        score: (t.score * 1000.0).round() / 1000.0,
        signals: t.signals.clone(),
        redacted: false,
        evidence,
        fact_keys: keys,
        mentions,
    }
}

/// How well a fact speaks for its topic's kind: how far it leans to that
/// kind by meaning (the judge's facets, in standard deviations over the run),
/// or by the generic word cues when no sentence model judged, plus how
/// concrete it is.
pub(super) fn lead_score(miner: &Miner, fact: u32, kind: Kind) -> f32 {
    let f = &miner.facts[fact as usize];
    let lean = match miner.facets.get(fact as usize) {
        Some(x) => match kind {
            Kind::Risk => x.risk,
            Kind::Opportunity => x.opportunity,
        },
        None => {
            let (risk, opportunity, _) = mine::word_lean(&f.quote);
            match kind {
                Kind::Risk => risk,
                Kind::Opportunity => opportunity,
            }
        }
    };
    lean + mine::concreteness(&f.quote)
}

pub(super) fn evidence_of(r: &MsgRef, citations: Vec<Citation>) -> Evidence {
    Evidence {
        message_id: r.message_id.clone(),
        channel: r.channel.clone(),
        channel_id: r.channel_id.clone(),
        author: r.author_id.clone(),
        author_name: r.author.clone(),
        author_department: r.author_department.clone(),
        author_is_agent: r.is_agent,
        posted_at: r.posted_at,
        excerpt: r.excerpt.clone(),
        link: format!("#/c/{}/m/{}", r.channel_id, r.message_id),
        label: r.label.clone(),
        citations,
    }
}

/// Numbers, amounts, percentages and month names in a sentence.
pub(super) fn figures(s: &str) -> Vec<String> {
    s.split(|c: char| c.is_whitespace() || matches!(c, ',' | ';' | '(' | ')' | '"'))
        .map(|w| w.trim_end_matches(['.', ':']))
        .filter(|w| w.chars().any(|c| c.is_ascii_digit()) || mine::MONTHS.contains(w))
        .map(str::to_string)
        .collect()
}

/// Facts of other departments a model judge sees beside a candidate.
pub(super) const NEARBY_FACTS: usize = 3;

/// The facts of departments outside `facts` closest in meaning to any of
/// them: what could settle the matter, or show it is routine.
pub(super) fn nearest_elsewhere(miner: &Miner, facts: &[u32], k: usize) -> Vec<(String, String)> {
    let depts: BTreeSet<&str> = facts
        .iter()
        .map(|f| miner.chunk(&miner.facts[*f as usize]).department.as_str())
        .collect();
    let unit = |v: &[f32]| judge::unit(v.to_vec());
    let own: Vec<Vec<f32>> = facts
        .iter()
        .map(|f| &miner.facts[*f as usize].vector)
        .filter(|v| !v.is_empty())
        .map(|v| unit(v))
        .collect();
    let mut scored: Vec<(f32, usize)> = miner
        .facts
        .iter()
        .enumerate()
        .filter(|(_, g)| {
            !g.vector.is_empty() && !depts.contains(miner.chunk(g).department.as_str())
        })
        .map(|(i, g)| {
            let vg = unit(&g.vector);
            let best = own
                .iter()
                .map(|v| v.iter().zip(&vg).map(|(a, b)| a * b).sum::<f32>())
                .fold(f32::NEG_INFINITY, f32::max);
            (best, i)
        })
        .collect();
    scored.sort_by(|a, b| b.0.total_cmp(&a.0));
    scored
        .into_iter()
        .take(k)
        .map(|(_, i)| {
            let g = &miner.facts[i];
            (miner.chunk(g).department.clone(), g.quote.clone())
        })
        .collect()
}

impl Insights {
    /// Run the job for `period` and store the digest.
    pub async fn run(
        &self,
        period: Period,
        trigger: Trigger,
        actor: crate::authz::Actor<'_>,
        progress: &(dyn Fn(&str) + Sync),
    ) -> InsightsResult<Digest> {
        self.authz
            .permit(actor, crate::authz::SystemAction::InsightsRun)?;
        let actor = actor.principal().map(|p| p.id.as_str());
        period.validate()?;
        let started = std::time::Instant::now();
        progress("embedding messages without vectors");
        let embedded_now = self.catch_up(period).await?;
        progress("reading cited documents");
        let chunks = self.cited_chunks(period).await?;
        let doc_bodies = self.document_bodies(&chunks).await?;
        let previous = self.latest_before(period).await?;
        let mut seen: HashMap<String, u32> = HashMap::new();
        if let Some(p) = &previous {
            for i in &p.insights {
                for k in &i.fact_keys {
                    seen.insert(k.clone(), i.mentions);
                }
            }
        }
        let mut miner = Miner::new(
            MineConfig {
                max_per_kind: self.settings.max_per_kind,
                ..MineConfig::default()
            },
            chunks,
        );
        progress("reading the transcripts");
        self.stream_messages(period, &mut miner, progress).await?;
        // The stated sentences themselves (bounded by the documents, not the
        // talk): what links facts no one put side by side is their meaning.
        progress("embedding the stated facts");
        if !miner.facts.is_empty() {
            match self.knowledge.embedder().await {
                Ok(embedder) => {
                    let texts: Vec<String> = miner.facts.iter().map(|f| f.quote.clone()).collect();
                    let mut at = 0;
                    for part in texts.chunks(256) {
                        match embedder.embed(part).await {
                            Ok(vs) => {
                                for v in vs {
                                    miner.facts[at].vector = v;
                                    at += 1;
                                }
                            }
                            Err(e) => {
                                tracing::warn!(error = %e, "facts not embedded; linking them by the talk's vectors");
                                break;
                            }
                        }
                    }
                    // What each fact reads as: judged by meaning when every
                    // fact has its sentence's vector.
                    if at == miner.facts.len()
                        && self.settings.judge == warroom_types::JudgeKind::Meaning
                    {
                        progress("judging what the facts are about");
                        match judge::Hypotheses::embed(embedder.as_ref()).await {
                            Ok(Some(h)) => {
                                miner.facets =
                                    miner.facts.iter().map(|f| h.facets(&f.vector)).collect();
                                judge::standardize(&mut miner.facets);
                            }
                            Ok(None) => {}
                            Err(e) => {
                                tracing::warn!(error = %e, "hypotheses not embedded; the word cues decide")
                            }
                        }
                    }
                }
                Err(e) => tracing::warn!(error = %e, "no embedder for facts"),
            }
        }
        progress("grouping and scoring topics");
        let (topics, mut dismissed) = miner.topics(&seen);
        let model = self.model_judge.clone();
        let vocab = wording::Vocabulary::new(miner.facts.iter().map(|f| f.quote.as_str()));
        let mut insights = Vec::new();
        let mut rank: HashMap<Kind, usize> = HashMap::new();
        let (mut model_judged, mut model_unusable) = (0, 0);
        for (i, topic) in topics.iter().enumerate() {
            let mut t = topic.clone();
            let mut proposed = None;
            if let Some(judge) = &model {
                progress(&format!(
                    "judging candidate {} of {} with the model",
                    i + 1,
                    topics.len()
                ));
                let facts: Vec<(String, String)> = t
                    .facts
                    .iter()
                    .map(|f| {
                        let fact = &miner.facts[*f as usize];
                        (miner.chunk(fact).department.clone(), fact.quote.clone())
                    })
                    .collect();
                let nearby = nearest_elsewhere(&miner, &t.facts, NEARBY_FACTS);
                match judge.judge(&facts, &nearby).await {
                    Ok(m) => {
                        model_judged += 1;
                        match m.verdict {
                            judge::Verdict::Risk => t.kind = Kind::Risk,
                            judge::Verdict::Opportunity => t.kind = Kind::Opportunity,
                            judge::Verdict::Settled(_) | judge::Verdict::Nothing => {
                                tracing::debug!(verdict = ?m.verdict, reason = %m.reason, "model dismissed a candidate");
                                dismissed += 1;
                                continue;
                            }
                        }
                        proposed = Some(m);
                    }
                    Err(e) => {
                        model_unusable += 1;
                        tracing::warn!(error = %e, "model judge failed; keeping the in-process judgement")
                    }
                }
            }
            let r = rank.entry(t.kind).or_default();
            *r += 1;
            let mut ins = word(&miner, &t, *r, &doc_bodies, &vocab);
            if let Some(m) = proposed {
                if !m.headline.is_empty() {
                    ins.title = m.headline;
                }
                if !m.why.is_empty() {
                    ins.why = m.why;
                }
                if !m.reason.is_empty() {
                    ins.confidence_reason = format!(
                        "{} (model); {}",
                        capitalize(m.reason.trim_end_matches('.')),
                        ins.confidence_reason
                    );
                }
            }
            insights.push(ins);
        }
        // Trends against the last digest.
        let mut faded = Vec::new();
        if let Some(p) = &previous {
            for ins in insights.iter_mut() {
                ins.trend = trend(ins, &p.insights);
            }
            for old in &p.insights {
                let still = insights
                    .iter()
                    .any(|n| overlaps(&n.fact_keys, &old.fact_keys));
                if !still && !old.redacted {
                    faded.push(Faded {
                        kind: old.kind,
                        title: old.title.clone(),
                        label: old.label.clone(),
                    });
                }
            }
        }
        let mut label = Label::level(Level::Public);
        for i in &insights {
            label = label.join(&parse_label(&i.label));
        }
        for f in &faded {
            label = label.join(&parse_label(&f.label));
        }
        let mut activity: Vec<ActivityRow> = miner
            .activity
            .iter()
            .map(|((channel, department, day), n)| ActivityRow {
                channel: channel.clone(),
                department: department.clone(),
                day: day.clone(),
                messages: *n,
                label: miner
                    .channel_labels
                    .get(channel)
                    .map(|l| l.to_string())
                    .unwrap_or_else(|| "public".into()),
            })
            .collect();
        activity.sort_by(|a, b| {
            (&a.channel, &a.department, &a.day).cmp(&(&b.channel, &b.department, &b.day))
        });
        let mut weeks = self.week_rows(7).await?;
        weeks.push(WeekRow {
            period_to: period.to,
            risks: insights
                .iter()
                .filter(|i| i.kind == InsightKind::Risk)
                .count(),
            opportunities: insights
                .iter()
                .filter(|i| i.kind == InsightKind::Opportunity)
                .count(),
        });
        weeks.sort_by_key(|w| w.period_to);
        weeks.dedup_by_key(|w| w.period_to);
        let digest = Digest {
            id: uuid::Uuid::now_v7().to_string(),
            version: 0,
            period,
            created_at: Utc::now(),
            trigger: trigger.as_str().into(),
            label: label.to_string(),
            redacted: false,
            insights,
            faded,
            activity,
            weeks,
            stats: RunStats {
                messages: miner.messages,
                messages_stating_facts: miner.stating,
                threads: miner.thread_count,
                facts: miner.facts.len(),
                embedded_now,
                dismissed_as_resolved: dismissed,
                model_judged,
                model_unusable,
                seconds: started.elapsed().as_secs_f64(),
            },
            summarizer: if model.is_some() {
                "openai".into()
            } else {
                "extractive".into()
            },
        };
        let digest = self.store(digest, actor).await?;
        self.audit
            .record(
                actor,
                "insights.run",
                &digest.id,
                "ok",
                serde_json::json!({
                    "period_from": digest.period.from, "period_to": digest.period.to,
                    "version": digest.version, "insights": digest.insights.len(),
                    "label": digest.label, "trigger": digest.trigger,
                }),
            )
            .await;
        Ok(digest)
    }

    /// Embed the period's messages that have no vector yet.
    pub(super) async fn catch_up(&self, period: Period) -> InsightsResult<usize> {
        let backend = self.db.get_database_backend();
        let mut done = 0;
        loop {
            let rows = self
                .db
                .query_all_raw(stmt(
                    backend,
                    "SELECT m.id, m.body FROM messages m JOIN channels c ON c.id = m.channel_id \
                     LEFT JOIN message_vectors v ON v.message_id = m.id \
                     WHERE v.message_id IS NULL AND m.deleted = $1 AND c.visibility <> 'direct' \
                     AND m.created_at >= $2 AND m.created_at < $3 LIMIT 512",
                    vec![false.into(), period.from.into(), period.to.into()],
                ))
                .await
                .map_err(db_err)?;
            if rows.is_empty() {
                return Ok(done);
            }
            let batch: Vec<ToEmbed> = rows
                .iter()
                .filter_map(|r| {
                    Some(ToEmbed {
                        message_id: r.try_get("", "id").ok()?,
                        body: r.try_get("", "body").ok()?,
                    })
                })
                .collect();
            let embedder = match self.knowledge.embedder().await {
                Ok(e) => e,
                Err(e) => {
                    tracing::warn!(error = %e, "no embedder: mining without message vectors");
                    return Ok(done);
                }
            };
            let n = self.embed_and_store(&embedder, &batch).await.map_err(|e| {
                InsightsError::EmbedderFailed(format!(
                    "embedding messages failed: {e}; check [knowledge] embedder settings"
                ))
            })?;
            done += n;
            if n < 512 {
                return Ok(done);
            }
        }
    }

    /// The chunks the period's messages cite, with their documents.
    pub(super) async fn cited_chunks(&self, period: Period) -> InsightsResult<Vec<ChunkInfo>> {
        let backend = self.db.get_database_backend();
        let rows = self
            .db
            .query_all_raw(stmt(
                backend,
                "SELECT k.id, k.text, d.path, d.title, d.department, d.label FROM chunks k \
                 JOIN documents d ON d.id = k.document_id WHERE k.id IN ( \
                 SELECT DISTINCT mc.chunk_id FROM message_citations mc \
                 JOIN messages m ON m.id = mc.message_id \
                 WHERE m.created_at >= $1 AND m.created_at < $2)",
                vec![period.from.into(), period.to.into()],
            ))
            .await
            .map_err(db_err)?;
        Ok(rows
            .iter()
            .filter_map(|r| {
                Some(ChunkInfo {
                    id: r.try_get("", "id").ok()?,
                    text: r.try_get("", "text").ok()?,
                    document_path: r.try_get("", "path").ok()?,
                    document_title: r.try_get("", "title").ok()?,
                    department: r.try_get("", "department").ok()?,
                    label: parse_label(&r.try_get::<String>("", "label").ok()?),
                })
            })
            .collect())
    }

    pub(super) async fn document_bodies(
        &self,
        chunks: &[ChunkInfo],
    ) -> InsightsResult<HashMap<String, String>> {
        let backend = self.db.get_database_backend();
        let paths: BTreeSet<&str> = chunks.iter().map(|c| c.document_path.as_str()).collect();
        let mut out = HashMap::new();
        let paths: Vec<&str> = paths.into_iter().collect();
        for part in paths.chunks(500) {
            let rows = self
                .db
                .query_all_raw(stmt(
                    backend,
                    &format!(
                        "SELECT path, body FROM documents WHERE path IN ({})",
                        placeholders(part.len(), 0)
                    ),
                    part.iter().map(|p| Value::from(p.to_string())).collect(),
                ))
                .await
                .map_err(db_err)?;
            for r in rows {
                if let (Ok(p), Ok(b)) = (
                    r.try_get::<String>("", "path"),
                    r.try_get::<String>("", "body"),
                ) {
                    out.insert(p, b);
                }
            }
        }
        Ok(out)
    }

    /// Feed the period's messages to the miner, channel by channel, in pages.
    pub(super) async fn stream_messages(
        &self,
        period: Period,
        miner: &mut Miner,
        progress: &(dyn Fn(&str) + Sync),
    ) -> InsightsResult<()> {
        const PAGE: usize = 5000;
        let backend = self.db.get_database_backend();
        let mut cursor = (String::new(), -1i64);
        let mut read = 0u64;
        loop {
            let rows = self
                .db
                .query_all_raw(stmt(
                    backend,
                    "SELECT m.id, m.channel_id, c.name AS channel, m.seq, m.author_id, \
                     u.display_name, u.department, u.kind, m.thread_root, m.created_at, m.body, \
                     m.label, v.vector FROM messages m \
                     JOIN channels c ON c.id = m.channel_id JOIN users u ON u.id = m.author_id \
                     LEFT JOIN message_vectors v ON v.message_id = m.id \
                     WHERE m.deleted = $1 AND c.visibility <> 'direct' \
                     AND m.created_at >= $2 AND m.created_at < $3 \
                     AND (m.channel_id > $4 OR (m.channel_id = $5 AND m.seq > $6)) \
                     ORDER BY m.channel_id, m.seq LIMIT 5000",
                    vec![
                        false.into(),
                        period.from.into(),
                        period.to.into(),
                        cursor.0.clone().into(),
                        cursor.0.clone().into(),
                        cursor.1.into(),
                    ],
                ))
                .await
                .map_err(db_err)?;
            if rows.is_empty() {
                return Ok(());
            }
            let mut page: Vec<Msg> = Vec::with_capacity(rows.len());
            for r in &rows {
                let get = |c: &str| r.try_get::<String>("", c);
                let (Ok(id), Ok(channel_id), Ok(seq)) =
                    (get("id"), get("channel_id"), r.try_get::<i64>("", "seq"))
                else {
                    continue;
                };
                cursor = (channel_id.clone(), seq);
                page.push(Msg {
                    id,
                    channel_id,
                    channel: get("channel").unwrap_or_default(),
                    seq,
                    author_id: get("author_id").unwrap_or_default(),
                    author: get("display_name").unwrap_or_default(),
                    author_department: r.try_get::<Option<String>>("", "department").ok().flatten(),
                    is_agent: get("kind").is_ok_and(|k| k == "agent"),
                    thread_root: r
                        .try_get::<Option<String>>("", "thread_root")
                        .ok()
                        .flatten(),
                    created_at: r
                        .try_get::<DateTime<Utc>>("", "created_at")
                        .unwrap_or_else(|_| Utc::now()),
                    body: get("body").unwrap_or_default(),
                    label: parse_label(&get("label").unwrap_or_default()),
                    vector: r
                        .try_get::<Option<String>>("", "vector")
                        .ok()
                        .flatten()
                        .and_then(|v| Quantized::decode(&v)),
                    citations: Vec::new(),
                });
            }
            // Citations of the page.
            let mut cites: HashMap<String, Vec<String>> = HashMap::new();
            for part in page.chunks(900) {
                let crow = self
                    .db
                    .query_all_raw(stmt(
                        backend,
                        &format!(
                            "SELECT message_id, chunk_id FROM message_citations WHERE message_id IN ({})",
                            placeholders(part.len(), 0)
                        ),
                        part.iter().map(|m| Value::from(m.id.clone())).collect(),
                    ))
                    .await
                    .map_err(db_err)?;
                for r in crow {
                    if let (Ok(m), Ok(c)) = (
                        r.try_get::<String>("", "message_id"),
                        r.try_get::<String>("", "chunk_id"),
                    ) {
                        cites.entry(m).or_default().push(c);
                    }
                }
            }
            let n = page.len();
            for mut m in page {
                if let Some(mut c) = cites.remove(&m.id) {
                    c.sort();
                    m.citations = c;
                }
                miner.push(m);
            }
            read += n as u64;
            progress(&format!("read {read} messages"));
            if n < PAGE {
                return Ok(());
            }
        }
    }
}
