//! The weekly schedule: which period is due and the task that runs it.

use super::*;

impl Insights {
    /// The scheduled run: once per period, on the configured weekday and hour.
    pub fn spawn_schedule(&self) {
        if !self.settings.schedule {
            return;
        }
        let this = self.clone();
        tokio::spawn(async move {
            loop {
                let now = Utc::now();
                if let Some(period) = this.due_period(now) {
                    let exists = this
                        .latest_before(period)
                        .await
                        .ok()
                        .flatten()
                        .is_some_and(|d| d.period == period);
                    if !exists {
                        match this
                            .run(
                                period,
                                Trigger::Schedule,
                                crate::authz::Actor::Server,
                                &|_| {},
                            )
                            .await
                        {
                            Ok(d) => {
                                tracing::info!(digest = %d.id, insights = d.insights.len(), "scheduled digest written")
                            }
                            Err(e) => {
                                tracing::warn!(error = %e, "scheduled insights run failed")
                            }
                        }
                    }
                }
                tokio::time::sleep(std::time::Duration::from_secs(300)).await;
            }
        });
    }

    /// The period the schedule owes a digest for at `now`: the `period_days`
    /// ending at the most recent configured weekday and hour.
    pub fn due_period(&self, now: DateTime<Utc>) -> Option<Period> {
        let s = &self.settings;
        let weekday = s.weekday;
        let mut day = now.date_naive();
        for _ in 0..8 {
            if day.weekday() == weekday {
                let at = Utc.from_utc_datetime(&day.and_hms_opt(s.hour, 0, 0)?);
                if at <= now {
                    return Some(Period::ending(at, s.period_days));
                }
            }
            day = day.pred_opt()?;
        }
        None
    }
}
