//! [`super::RunStore`] for both backends, written once. The macro is
//! expanded in each backend's module, which supplies what differs:
//! `begin_write` (SQLite takes the write lock at the start), `begin_queue`
//! (PostgreSQL walks the queue's indexes in order), `CLAIM_LOCK`
//! (PostgreSQL skips rows another dispatcher has locked), `SENT_EVENTS`
//! (SQLite is told which index counts sends),
//! `lock_archive` (one writer at a time extends the hash chain) and how a
//! run's deliveries and suppressions and a group of outcomes are written
//! (`push_deliveries`, `push_suppressions`, `push_outcomes`, `push_archive`,
//! `push_id_in`: PostgreSQL binds one array per column).

macro_rules! run_queries {
    ($db:ty, $store:ty) => {
        #[async_trait::async_trait]
        impl super::RunStore for $store {
            async fn plan_run(
                &self,
                run: &super::runs::NewRun,
                deliveries: &[super::runs::NewDelivery],
                suppressions: &[super::runs::NewSuppression],
                audit: &super::runs::AuditEntry,
                commit: bool,
            ) -> Result<super::runs::Planned, super::StoreError> {
                use super::runs::{Planned, RunColumns, RUN_COLUMNS};
                let mut tx = begin_write(self.writer()).await?;
                // The unique key decides: never check-then-insert.
                let inserted: Option<(i64,)> = sqlx::query_as(
                    "INSERT INTO runs (campaign, run_key, kind, purpose, state, launched_by, launched_at, \
                     content, content_hash, files, fingerprint, not_before, send_by, audience, stop_reason) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15) \
                     ON CONFLICT (campaign, run_key) DO NOTHING RETURNING id",
                )
                .bind(&run.campaign)
                .bind(&run.run_key)
                .bind(&run.kind)
                .bind(run.purpose.as_str())
                .bind(run.state.as_str())
                .bind(&run.launched_by)
                .bind(run.launched_at)
                .bind(&run.content)
                .bind(&run.content_hash)
                .bind(&run.files)
                .bind(&run.fingerprint)
                .bind(run.not_before)
                .bind(run.send_by)
                .bind(run.audience)
                .bind(&run.stop_reason)
                .fetch_optional(&mut *tx)
                .await?;
                let select = format!("SELECT {RUN_COLUMNS} FROM runs WHERE campaign = $1 AND run_key = $2");
                let Some((run_id,)) = inserted else {
                    let row: RunColumns = sqlx::query_as(&select)
                        .bind(&run.campaign)
                        .bind(&run.run_key)
                        .fetch_one(&mut *tx)
                        .await?;
                    return Ok(Planned::Existing(row.into_run()?));
                };
                let now = run.launched_at;
                for chunk in deliveries.chunks(DELIVERIES_PER_INSERT) {
                    let mut qb: sqlx::QueryBuilder<$db> =
                        sqlx::QueryBuilder::new(super::runs::DELIVERY_INSERT);
                    push_deliveries(&mut qb, run_id, chunk, now);
                    qb.build().execute(&mut *tx).await?;
                }
                for chunk in suppressions.chunks(SUPPRESSIONS_PER_INSERT) {
                    let mut qb: sqlx::QueryBuilder<$db> =
                        sqlx::QueryBuilder::new(super::runs::SUPPRESSION_INSERT);
                    push_suppressions(&mut qb, run_id, chunk);
                    qb.build().execute(&mut *tx).await?;
                }
                insert_audit(&mut tx, audit).await?;
                let row: RunColumns = sqlx::query_as(&select)
                    .bind(&run.campaign)
                    .bind(&run.run_key)
                    .fetch_one(&mut *tx)
                    .await?;
                if commit {
                    tx.commit().await?;
                } else {
                    tx.rollback().await?;
                }
                Ok(Planned::New(row.into_run()?))
            }

            async fn run(&self, id: i64) -> Result<Option<super::runs::Run>, super::StoreError> {
                use super::runs::{RunColumns, RUN_COLUMNS};
                let row: Option<RunColumns> =
                    sqlx::query_as(&format!("SELECT {RUN_COLUMNS} FROM runs WHERE id = $1"))
                        .bind(id)
                        .fetch_optional(&self.pool)
                        .await?;
                row.map(RunColumns::into_run).transpose()
            }

            async fn run_by_key(
                &self,
                campaign: &str,
                key: &str,
            ) -> Result<Option<super::runs::Run>, super::StoreError> {
                use super::runs::{RunColumns, RUN_COLUMNS};
                let row: Option<RunColumns> = sqlx::query_as(&format!(
                    "SELECT {RUN_COLUMNS} FROM runs WHERE campaign = $1 AND run_key = $2"
                ))
                .bind(campaign)
                .bind(key)
                .fetch_optional(&self.pool)
                .await?;
                row.map(RunColumns::into_run).transpose()
            }

            async fn runs(&self, limit: u32) -> Result<Vec<super::runs::Run>, super::StoreError> {
                use super::runs::{RunColumns, RUN_COLUMNS};
                let rows: Vec<RunColumns> =
                    sqlx::query_as(&format!("SELECT {RUN_COLUMNS} FROM runs ORDER BY id DESC LIMIT $1"))
                        .bind(i64::from(limit))
                        .fetch_all(&self.pool)
                        .await?;
                rows.into_iter().map(RunColumns::into_run).collect()
            }

            async fn set_run_state(
                &self,
                id: i64,
                from: &[super::runs::RunState],
                to: super::runs::RunState,
                audit: Option<&super::runs::AuditEntry>,
            ) -> Result<bool, super::StoreError> {
                let mut tx = begin_write(self.writer()).await?;
                let mut qb: sqlx::QueryBuilder<$db> = sqlx::QueryBuilder::new("UPDATE runs SET state = ");
                qb.push_bind(to.as_str()).push(" WHERE id = ").push_bind(id).push(" AND state IN (");
                let mut list = qb.separated(", ");
                for s in from {
                    list.push_bind(s.as_str());
                }
                qb.push(")");
                let changed = qb.build().execute(&mut *tx).await?.rows_affected() == 1;
                if let (true, Some(a)) = (changed, audit) {
                    insert_audit(&mut tx, a).await?;
                }
                tx.commit().await?;
                Ok(changed)
            }

            async fn approve_run(
                &self,
                id: i64,
                fingerprint: &str,
                audit: &super::runs::AuditEntry,
            ) -> Result<bool, super::StoreError> {
                let mut tx = begin_write(self.writer()).await?;
                let changed = sqlx::query(
                    "UPDATE runs SET approved_by = $1, approved_at = $2, fingerprint = $3, state = 'sending' \
                     WHERE id = $4 AND state = 'awaiting_approval'",
                )
                .bind(&audit.actor)
                .bind(audit.at)
                .bind(fingerprint)
                .bind(id)
                .execute(&mut *tx)
                .await?
                .rows_affected()
                    == 1;
                if changed {
                    insert_audit(&mut tx, audit).await?;
                }
                tx.commit().await?;
                Ok(changed)
            }

            async fn run_counts(&self, id: i64) -> Result<super::runs::RunCounts, super::StoreError> {
                let mut counts = super::runs::RunCounts::default();
                let rows: Vec<(String, String, i64)> = sqlx::query_as(
                    "SELECT state, channel, COUNT(*) FROM deliveries WHERE run_id = $1 GROUP BY state, channel",
                )
                .bind(id)
                .fetch_all(&self.pool)
                .await?;
                for (state, channel, n) in rows {
                    *counts.deliveries.entry(state).or_default() += n;
                    *counts.by_channel.entry(channel).or_default() += n;
                }
                let rows: Vec<(String, i64)> = sqlx::query_as(
                    "SELECT reason, COUNT(*) FROM suppressions WHERE run_id = $1 GROUP BY reason",
                )
                .bind(id)
                .fetch_all(&self.pool)
                .await?;
                counts.suppressions = rows.into_iter().collect();
                Ok(counts)
            }

            async fn deliveries_in(
                &self,
                run: i64,
                state: super::runs::DeliveryState,
                limit: u32,
            ) -> Result<Vec<super::runs::DeliveryBrief>, super::StoreError> {
                Ok(sqlx::query_as(
                    "SELECT id, client_id, channel, state, attempts, error, provider_id, sent_at \
                     FROM deliveries WHERE run_id = $1 AND state = $2 ORDER BY id LIMIT $3",
                )
                .bind(run)
                .bind(state.as_str())
                .bind(i64::from(limit))
                .fetch_all(&self.pool)
                .await?)
            }

            async fn delivery_context(
                &self,
                id: i64,
            ) -> Result<Option<super::runs::DeliveryContext>, super::StoreError> {
                Ok(sqlx::query_as(
                    "SELECT d.id, d.run_id, d.client_id, d.channel, d.address, d.state, d.sent_at, \
                     r.campaign, r.kind, r.purpose \
                     FROM deliveries d JOIN runs r ON r.id = d.run_id WHERE d.id = $1",
                )
                .bind(id)
                .fetch_optional(&self.pool)
                .await?)
            }

            async fn gate_facts(
                &self,
                once_per_campaign: Option<&str>,
                since: chrono::DateTime<chrono::Utc>,
            ) -> Result<crate::campaign::gates::Known, super::StoreError> {
                use super::runs::DncKind;
                let mut known = crate::campaign::gates::Known::default();
                for entry in self.do_not_contact().await? {
                    let set = match entry.kind {
                        DncKind::Client => &mut known.do_not_contact.clients,
                        DncKind::Email => &mut known.do_not_contact.emails,
                        DncKind::Phone => &mut known.do_not_contact.phones,
                    };
                    set.insert(entry.kind.listed_form(&entry.value).into_owned());
                }
                let bad: Vec<(String, String)> = sqlx::query_as("SELECT channel, address FROM bad_addresses")
                    .fetch_all(&self.pool)
                    .await?;
                for (channel, address) in bad {
                    if channel == "email" {
                        known.bad_emails.insert(address);
                    } else {
                        known.bad_phones.insert(address);
                    }
                }
                let recent: Vec<(String, i64)> = sqlx::query_as(&format!(
                    "SELECT client_id, COUNT(*) FROM {SENT_EVENTS} WHERE kind = 'sent' AND occurred_at >= $1 \
                     AND (purpose IS NULL OR purpose = 'marketing') GROUP BY client_id"
                ))
                .bind(since)
                .fetch_all(&self.pool)
                .await?;
                known.recent_marketing = recent.into_iter().map(|(c, n)| (c, n as u32)).collect();
                // What other runs will send counts as sent: runs planned one
                // after another must not together pass the cap. One query
                // per state that a partial index holds, so none reads the
                // whole table.
                let pending: Vec<(String, i64)> = sqlx::query_as(
                    "SELECT d.client_id, COUNT(*) FROM ( \
                       SELECT client_id, run_id FROM deliveries WHERE state = 'queued' \
                       UNION ALL SELECT client_id, run_id FROM deliveries WHERE state IN ('claimed', 'sending') \
                       UNION ALL SELECT client_id, run_id FROM deliveries WHERE state = 'uncertain' \
                     ) d JOIN runs r ON r.id = d.run_id WHERE r.purpose = 'marketing' GROUP BY d.client_id",
                )
                .fetch_all(&self.pool)
                .await?;
                for (client, n) in pending {
                    *known.recent_marketing.entry(client).or_default() += n as u32;
                }
                let Some(campaign) = once_per_campaign else {
                    return Ok(known);
                };
                let sent: Vec<(String,)> = sqlx::query_as(
                    "SELECT DISTINCT d.client_id FROM deliveries d JOIN runs r ON r.id = d.run_id \
                     WHERE r.campaign = $1 AND d.state IN ('queued', 'claimed', 'sending', 'sent', 'uncertain')",
                )
                .bind(campaign)
                .fetch_all(&self.pool)
                .await?;
                known.already_sent = sent.into_iter().map(|(c,)| c).collect();
                Ok(known)
            }

            async fn claim(
                &self,
                owner: &str,
                now: chrono::DateTime<chrono::Utc>,
                lease_until: chrono::DateTime<chrono::Utc>,
                limit: u32,
                run: Option<i64>,
            ) -> Result<Vec<super::runs::Claimed>, super::StoreError> {
                use super::runs::{ClaimedColumns, CLAIMED_COLUMNS};
                // One run's queue is read from its own index: other runs'
                // queues (one awaiting approval, say) are never walked.
                let of_run = if run.is_some() { " AND d.run_id = $5" } else { "" };
                let sql = format!(
                    "UPDATE deliveries SET state = 'claimed', lease_owner = $1, lease_until = $2, updated_at = $3 \
                     WHERE id IN (SELECT d.id FROM deliveries d JOIN runs r ON r.id = d.run_id \
                       WHERE d.state = 'queued' AND d.not_before <= $3 AND r.state = 'sending'{of_run} \
                       ORDER BY d.id LIMIT $4{CLAIM_LOCK}) \
                     RETURNING {CLAIMED_COLUMNS}"
                );
                let mut tx = begin_queue(self.writer()).await?;
                let mut query = sqlx::query_as(&sql)
                    .bind(owner)
                    .bind(lease_until)
                    .bind(now)
                    .bind(i64::from(limit));
                if let Some(run) = run {
                    query = query.bind(run);
                }
                let rows: Vec<ClaimedColumns> = query.fetch_all(&mut *tx).await?;
                tx.commit().await?;
                let mut claimed: Vec<super::runs::Claimed> =
                    rows.into_iter().map(ClaimedColumns::into_claimed).collect::<Result<_, _>>()?;
                claimed.sort_by_key(|c| c.id);
                Ok(claimed)
            }

            async fn mark_sending(
                &self,
                owner: &str,
                ids: &[i64],
                lease_until: chrono::DateTime<chrono::Utc>,
            ) -> Result<Vec<i64>, super::StoreError> {
                if ids.is_empty() {
                    return Ok(Vec::new());
                }
                // The only statement that writes a `sending` delivery's
                // lease: nothing else touches rows the writer records.
                let mut qb = sqlx::QueryBuilder::new(
                    "UPDATE deliveries SET state = 'sending', attempts = attempts + 1, lease_until = ",
                );
                qb.push_bind(lease_until)
                    .push(" WHERE state = 'claimed' AND lease_owner = ")
                    .push_bind(owner.to_owned())
                    .push(" AND id");
                push_id_in(&mut qb, ids);
                qb.push(" RETURNING id");
                let mut tx = begin_queue(self.writer()).await?;
                let rows: Vec<(i64,)> = qb.build_query_as().fetch_all(&mut *tx).await?;
                tx.commit().await?;
                Ok(rows.into_iter().map(|(id,)| id).collect())
            }

            async fn record_deliveries(
                &self,
                updates: &[super::runs::DeliveryUpdate],
            ) -> Result<(), super::StoreError> {
                if updates.is_empty() {
                    return Ok(());
                }
                let now = chrono::Utc::now();
                // Optimistic: each retry means another writer extended the
                // archive, so the fleet as a whole always progresses.
                for _ in 0..ONE_CALL_TRIES {
                    match record_in_one_call(self, updates, now).await? {
                        super::runs::OneCall::Written => return Ok(()),
                        super::runs::OneCall::TailMoved => {}
                        super::runs::OneCall::Refused => break,
                    }
                }
                // Another writer's one-statement group may take the
                // archive's next seq between our reading the tail and
                // writing after it (PostgreSQL), or deadlock with ours on
                // it: ours is rolled back whole, and we try again.
                let mut tries = 0;
                loop {
                    match record_in_tx(self.writer(), updates, now).await {
                        Err(e) if tries < 5 && worth_retrying(&e) => tries += 1,
                        written => return written,
                    }
                }
            }

            async fn release_claims(&self, owner: &str) -> Result<u64, super::StoreError> {
                let mut tx = begin_write(self.writer()).await?;
                // A `sending` delivery still ours was marked but never
                // started: the attempt it counted did not happen.
                let n = sqlx::query(
                    "UPDATE deliveries SET state = 'queued', lease_owner = NULL, lease_until = NULL, \
                     attempts = CASE WHEN state = 'sending' THEN attempts - 1 ELSE attempts END \
                     WHERE state IN ('claimed', 'sending') AND lease_owner = $1",
                )
                .bind(owner)
                .execute(&mut *tx)
                .await?
                .rows_affected();
                tx.commit().await?;
                Ok(n)
            }

            async fn settle_journal(
                &self,
                owner: &str,
                replay: &super::runs::JournalReplay,
            ) -> Result<super::runs::Settled, super::StoreError> {
                let now = chrono::Utc::now();
                let mut tries = 0;
                loop {
                    match settle_in_tx(self.writer(), owner, replay, now).await {
                        Err(e) if tries < 5 && worth_retrying(&e) => tries += 1,
                        settled => return settled,
                    }
                }
            }

            async fn reclaim_lapsed(
                &self,
                now: chrono::DateTime<chrono::Utc>,
                all: bool,
            ) -> Result<(u64, u64), super::StoreError> {
                // `all`: the caller knows no other dispatcher lives, so
                // every claim is a dead one's, lapsed or not.
                let lapsed = if all { "" } else { " AND lease_until < $1" };
                let mut tx = begin_write(self.writer()).await?;
                let requeued = sqlx::query(&format!(
                    "UPDATE deliveries SET state = 'queued', lease_owner = NULL, lease_until = NULL, updated_at = $1 \
                     WHERE state = 'claimed'{lapsed}"
                ))
                .bind(now)
                .execute(&mut *tx)
                .await?
                .rows_affected();
                // The owner stays: its journal, if another dispatcher
                // settles it after this, knows better than "uncertain".
                let uncertain = sqlx::query(&format!(
                    "UPDATE deliveries SET state = 'uncertain', lease_until = NULL, updated_at = $1, \
                     error = '{IN_FLIGHT}' WHERE state = 'sending'{lapsed}"
                ))
                .bind(now)
                .execute(&mut *tx)
                .await?
                .rows_affected();
                tx.commit().await?;
                Ok((requeued, uncertain))
            }

            async fn finish_runs(&self, now: chrono::DateTime<chrono::Utc>) -> Result<u64, super::StoreError> {
                let mut tx = begin_write(self.writer()).await?;
                let expired = sqlx::query(
                    "UPDATE deliveries SET state = 'expired', error = 'send_by passed', updated_at = $1 \
                     WHERE state = 'queued' AND run_id IN \
                       (SELECT id FROM runs WHERE send_by IS NOT NULL AND send_by < $1 AND state IN ('sending', 'paused'))",
                )
                .bind(now)
                .execute(&mut *tx)
                .await?
                .rows_affected();
                sqlx::query(
                    "UPDATE runs SET state = 'done' WHERE state = 'sending' AND NOT EXISTS \
                     (SELECT 1 FROM deliveries d WHERE d.run_id = runs.id AND d.state IN ('queued', 'claimed', 'sending'))",
                )
                .execute(&mut *tx)
                .await?;
                tx.commit().await?;
                Ok(expired)
            }

            async fn retry_uncertain(
                &self,
                run: i64,
                audit: &super::runs::AuditEntry,
            ) -> Result<u64, super::StoreError> {
                let mut tx = begin_write(self.writer()).await?;
                let n = sqlx::query(
                    "UPDATE deliveries SET state = 'queued', error = NULL, lease_owner = NULL, updated_at = $1 \
                     WHERE run_id = $2 AND state = 'uncertain'",
                )
                .bind(audit.at)
                .bind(run)
                .execute(&mut *tx)
                .await?
                .rows_affected();
                if n > 0 {
                    sqlx::query("UPDATE runs SET state = 'sending' WHERE id = $1 AND state = 'done'")
                        .bind(run)
                        .execute(&mut *tx)
                        .await?;
                    insert_audit(&mut tx, audit).await?;
                }
                tx.commit().await?;
                Ok(n)
            }

            async fn clients_by_ids(
                &self,
                ids: &[String],
            ) -> Result<Vec<crate::client::StoredClient>, super::StoreError> {
                use super::columns::{ClientColumns, CLIENT_COLUMNS};
                let mut out = Vec::with_capacity(ids.len());
                for chunk in ids.chunks(500) {
                    let mut qb: sqlx::QueryBuilder<$db> =
                        sqlx::QueryBuilder::new(format!("SELECT {} FROM clients WHERE id IN (", CLIENT_COLUMNS.join(", ")));
                    let mut list = qb.separated(", ");
                    for id in chunk {
                        list.push_bind(id);
                    }
                    qb.push(")");
                    let rows: Vec<ClientColumns> = qb.build_query_as().fetch_all(&self.pool).await?;
                    for row in rows {
                        out.push(row.into_client()?);
                    }
                }
                Ok(out)
            }

            async fn do_not_contact(&self) -> Result<Vec<super::runs::DncEntry>, super::StoreError> {
                let rows: Vec<super::runs::DncColumns> = sqlx::query_as(
                    "SELECT kind, value, reason, added_by, added_at FROM do_not_contact ORDER BY kind, value",
                )
                .fetch_all(&self.pool)
                .await?;
                rows.into_iter().map(super::runs::DncColumns::into_entry).collect()
            }

            async fn do_not_contact_among(
                &self,
                values: &[String],
            ) -> Result<std::collections::HashSet<(super::runs::DncKind, String)>, super::StoreError> {
                // Every kind named: the list's key is (kind, value).
                let rows: Vec<(String, String)> = rows_among(
                    &self.pool,
                    "SELECT kind, value FROM do_not_contact WHERE kind IN ('client', 'email', 'phone') AND value",
                    values,
                )
                .await?;
                rows.into_iter()
                    .map(|(kind, value)| {
                        let kind = super::runs::DncKind::parse(&kind).map_err(|e| super::StoreError::Corrupt(e.0))?;
                        Ok((kind, value))
                    })
                    .collect()
            }

            async fn dnc_add(&self, entry: &super::runs::DncEntry) -> Result<bool, super::StoreError> {
                let mut tx = begin_write(self.writer()).await?;
                let added = sqlx::query(
                    "INSERT INTO do_not_contact (kind, value, reason, added_by, added_at) VALUES ($1, $2, $3, $4, $5) \
                     ON CONFLICT (kind, value) DO NOTHING",
                )
                .bind(entry.kind.as_str())
                .bind(&entry.value)
                .bind(&entry.reason)
                .bind(&entry.added_by)
                .bind(entry.added_at)
                .execute(&mut *tx)
                .await?
                .rows_affected()
                    == 1;
                if added {
                    insert_audit(
                        &mut tx,
                        &super::runs::AuditEntry {
                            at: entry.added_at,
                            actor: entry.added_by.clone(),
                            action: "suppress_add".into(),
                            subject: format!("{}:{}", entry.kind.as_str(), entry.value),
                            details: serde_json::json!({ "reason": entry.reason }),
                        },
                    )
                    .await?;
                }
                tx.commit().await?;
                Ok(added)
            }

            async fn dnc_remove(
                &self,
                kind: super::runs::DncKind,
                value: &str,
                audit: &super::runs::AuditEntry,
            ) -> Result<bool, super::StoreError> {
                let mut tx = begin_write(self.writer()).await?;
                let removed = sqlx::query("DELETE FROM do_not_contact WHERE kind = $1 AND value = $2")
                    .bind(kind.as_str())
                    .bind(value)
                    .execute(&mut *tx)
                    .await?
                    .rows_affected()
                    == 1;
                if removed {
                    insert_audit(&mut tx, audit).await?;
                }
                tx.commit().await?;
                Ok(removed)
            }

            async fn report_rows(
                &self,
                run: &super::runs::Run,
            ) -> Result<(Vec<super::runs::ReportDelivery>, Vec<super::runs::ReportResponse>), super::StoreError> {
                let deliveries = sqlx::query_as(
                    "SELECT d.id, d.client_id, d.channel, d.state, c.branch, c.advisor \
                     FROM deliveries d LEFT JOIN clients c ON c.id = d.client_id WHERE d.run_id = $1",
                )
                .bind(run.id)
                .fetch_all(&self.pool)
                .await?;
                // Replies carry no delivery: a reply from one of the run's
                // clients after its launch counts for the run. (`kind <>
                // 'sent'` names the indexes of responses.)
                let responses = sqlx::query_as(
                    "SELECT e.delivery_id, e.client_id, e.kind, e.details FROM events e \
                     WHERE e.run_id = $1 AND e.kind IN ('delivered', 'bounced', 'opened', 'clicked', 'unsubscribed') \
                       AND e.kind <> 'sent' \
                     UNION ALL \
                     SELECT e.delivery_id, e.client_id, e.kind, e.details FROM events e \
                     WHERE e.kind IN ('replied', 'unsubscribed') AND e.kind <> 'sent' AND e.run_id IS NULL \
                       AND e.occurred_at >= $2 \
                       AND e.client_id IN (SELECT client_id FROM deliveries WHERE run_id = $1 AND state = 'sent')",
                )
                .bind(run.id)
                .bind(run.launched_at)
                .fetch_all(&self.pool)
                .await?;
                Ok((deliveries, responses))
            }

            async fn clients_with_phone(&self, phone: &str) -> Result<Vec<String>, super::StoreError> {
                let rows: Vec<(String,)> = sqlx::query_as("SELECT id FROM clients WHERE phone = $1 ORDER BY id")
                    .bind(phone)
                    .fetch_all(&self.pool)
                    .await?;
                Ok(rows.into_iter().map(|(id,)| id).collect())
            }

            async fn mark_bad_address(
                &self,
                channel: crate::channel::Channel,
                address: &str,
                reason: &str,
                at: chrono::DateTime<chrono::Utc>,
            ) -> Result<(), super::StoreError> {
                let mut tx = begin_write(self.writer()).await?;
                sqlx::query(
                    "INSERT INTO bad_addresses (channel, address, reason, marked_at) VALUES ($1, $2, $3, $4) \
                     ON CONFLICT (channel, address) DO NOTHING",
                )
                .bind(channel.as_str())
                .bind(address)
                .bind(reason)
                .bind(at)
                .execute(&mut *tx)
                .await?;
                tx.commit().await?;
                Ok(())
            }

            async fn bad_addresses_among(
                &self,
                addresses: &[String],
            ) -> Result<std::collections::HashSet<String>, super::StoreError> {
                let rows: Vec<(String,)> =
                    rows_among(&self.pool, "SELECT address FROM bad_addresses WHERE address", addresses).await?;
                Ok(rows.into_iter().map(|(a,)| a).collect())
            }

            async fn audit(&self, entry: &super::runs::AuditEntry) -> Result<(), super::StoreError> {
                let mut tx = begin_write(self.writer()).await?;
                insert_audit(&mut tx, entry).await?;
                tx.commit().await?;
                Ok(())
            }

            async fn audit_log(&self, limit: u32) -> Result<Vec<super::runs::AuditEntry>, super::StoreError> {
                let rows: Vec<super::runs::AuditColumns> = sqlx::query_as(
                    "SELECT at, actor, action, subject, details FROM audit_log ORDER BY id DESC LIMIT $1",
                )
                .bind(i64::from(limit))
                .fetch_all(&self.pool)
                .await?;
                Ok(rows.into_iter().map(super::runs::AuditColumns::into_entry).collect())
            }

            async fn insert_reference_rows(
                &self,
                rows: &[super::runs::NewDelivery],
            ) -> Result<(), super::StoreError> {
                use super::runs::channel_list;
                let mut tx = begin_write(self.writer()).await?;
                sqlx::query(CREATE_REFERENCE_TABLE).execute(&mut *tx).await?;
                let now = chrono::Utc::now();
                for d in rows {
                    sqlx::query(
                        "INSERT INTO bench_deliveries (run_id, client_id, channel, address, fallback, state, \
                         not_before, decision, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
                    )
                    .bind(0_i64)
                    .bind(&d.client_id)
                    .bind(d.channel.as_str())
                    .bind(&d.address)
                    .bind(channel_list(&d.fallback))
                    .bind("queued")
                    .bind(d.not_before)
                    .bind(&d.decision)
                    .bind(now)
                    .execute(&mut *tx)
                    .await?;
                }
                tx.commit().await?;
                sqlx::query("DROP TABLE bench_deliveries").execute(self.writer()).await?;
                Ok(())
            }

            async fn save_archive_dictionary(
                &self,
                dictionary: &super::runs::ArchiveDictionary,
            ) -> Result<(), super::StoreError> {
                sqlx::query(
                    "INSERT INTO archive_dictionaries (hash, body, created_at) VALUES ($1, $2, $3) \
                     ON CONFLICT (hash) DO NOTHING",
                )
                .bind(&dictionary.hash)
                .bind(&dictionary.bytes)
                .bind(chrono::Utc::now())
                .execute(self.writer())
                .await?;
                Ok(())
            }

            async fn archive_dictionaries(
                &self,
                names: &[String],
            ) -> Result<std::collections::HashMap<String, Vec<u8>>, super::StoreError> {
                let mut found = std::collections::HashMap::new();
                for name in names {
                    if found.contains_key(name) {
                        continue;
                    }
                    let row: Option<(Vec<u8>,)> =
                        sqlx::query_as("SELECT body FROM archive_dictionaries WHERE hash = $1")
                            .bind(name)
                            .fetch_optional(&self.pool)
                            .await?;
                    if let Some((body,)) = row {
                        found.insert(name.clone(), body);
                    }
                }
                Ok(found)
            }

            async fn archive_get(
                &self,
                delivery: i64,
            ) -> Result<Option<super::runs::ArchiveRecord>, super::StoreError> {
                use super::runs::{ArchiveColumns, ARCHIVE_COLUMNS};
                let row: Option<ArchiveColumns> = sqlx::query_as(&format!(
                    "SELECT {ARCHIVE_COLUMNS} FROM archive WHERE delivery_id = $1"
                ))
                .bind(delivery)
                .fetch_optional(&self.pool)
                .await?;
                let rows: Vec<ArchiveColumns> = row.into_iter().collect();
                let mut records = restore_archive(self, rows).await?;
                Ok(records.pop())
            }

            async fn sent_unarchived(&self, sample: u32) -> Result<(u64, Vec<i64>), super::StoreError> {
                const UNARCHIVED: &str = "FROM deliveries d WHERE d.state = 'sent' \
                     AND NOT EXISTS (SELECT 1 FROM archive a WHERE a.delivery_id = d.id)";
                let (count,): (i64,) = sqlx::query_as(&format!("SELECT COUNT(*) {UNARCHIVED}"))
                    .fetch_one(&self.pool)
                    .await?;
                let ids: Vec<(i64,)> = sqlx::query_as(&format!("SELECT d.id {UNARCHIVED} ORDER BY d.id LIMIT $1"))
                    .bind(i64::from(sample))
                    .fetch_all(&self.pool)
                    .await?;
                Ok((count as u64, ids.into_iter().map(|(id,)| id).collect()))
            }

            async fn archive_page(
                &self,
                after_seq: i64,
                limit: u32,
            ) -> Result<Vec<super::runs::ArchiveRecord>, super::StoreError> {
                use super::runs::{ArchiveColumns, ARCHIVE_COLUMNS};
                let rows: Vec<ArchiveColumns> = sqlx::query_as(&format!(
                    "SELECT {ARCHIVE_COLUMNS} FROM archive WHERE seq > $1 ORDER BY seq LIMIT $2"
                ))
                .bind(after_seq)
                .bind(i64::from(limit))
                .fetch_all(&self.pool)
                .await?;
                restore_archive(self, rows).await
            }
        }

        /// Archive rows to records, each restored with the dictionary it
        /// names (read once for all of them).
        async fn restore_archive(
            store: &dyn super::Store,
            rows: Vec<super::runs::ArchiveColumns>,
        ) -> Result<Vec<super::runs::ArchiveRecord>, super::StoreError> {
            let names: Vec<String> = rows.iter().filter_map(|r| r.dictionary.clone()).collect();
            let dictionaries =
                super::runs::checked_dictionaries(store.archive_dictionaries(&names).await?);
            Ok(rows.into_iter().map(|r| r.into_record(&dictionaries)).collect())
        }

        /// The rows of `select` (which ends with the column to match)
        /// whose column is one of `values`, 500 values to a statement.
        async fn rows_among<T>(
            pool: &sqlx::Pool<$db>,
            select: &str,
            values: &[String],
        ) -> Result<Vec<T>, super::StoreError>
        where
            T: for<'r> sqlx::FromRow<'r, <$db as sqlx::Database>::Row> + Send + Unpin,
        {
            let mut out = Vec::new();
            for chunk in values.chunks(500) {
                let mut qb: sqlx::QueryBuilder<$db> = sqlx::QueryBuilder::new(select);
                qb.push(" IN (");
                let mut list = qb.separated(", ");
                for v in chunk {
                    list.push_bind(v);
                }
                qb.push(")");
                out.extend(qb.build_query_as::<T>().fetch_all(pool).await?);
            }
            Ok(out)
        }

        /// Records the outcomes in one transaction, statement by statement.
        async fn record_in_tx(
            pool: &sqlx::Pool<$db>,
            updates: &[super::runs::DeliveryUpdate],
            now: chrono::DateTime<chrono::Utc>,
        ) -> Result<(), super::StoreError> {
            let mut tx = begin_write(pool).await?;
            record_in(&mut tx, updates, now).await?;
            tx.commit().await?;
            Ok(())
        }

        /// `settle_journal` in one transaction: only what `owner` still
        /// holds is touched, so settling twice changes nothing.
        async fn settle_in_tx(
            pool: &sqlx::Pool<$db>,
            owner: &str,
            replay: &super::runs::JournalReplay,
            now: chrono::DateTime<chrono::Utc>,
        ) -> Result<super::runs::Settled, super::StoreError> {
            let mut tx = begin_write(pool).await?;
            // `uncertain` too: another dispatcher may have found the
            // lease lapsed while this journal was being settled.
            let held: Vec<(i64,)> = sqlx::query_as(
                "SELECT id FROM deliveries WHERE state IN ('sending', 'uncertain') AND lease_owner = $1",
            )
            .bind(owner)
            .fetch_all(&mut *tx)
            .await?;
            let mut held: std::collections::HashSet<i64> = held.into_iter().map(|(id,)| id).collect();
            let done: Vec<super::runs::DeliveryUpdate> = replay
                .done
                .iter()
                .filter(|u| held.remove(&u.id))
                .cloned()
                .collect();
            if !done.is_empty() {
                record_in(&mut tx, &done, now).await?;
            }
            let (started, unstarted): (Vec<i64>, Vec<i64>) =
                held.into_iter().partition(|id| replay.started.contains(id));
            let uncertain = format!("state = 'uncertain', error = '{IN_FLIGHT}'");
            for (ids, set) in [
                (&started, uncertain.as_str()),
                (&unstarted, "state = 'queued', attempts = attempts - 1"),
            ] {
                for chunk in ids.chunks(1000) {
                    let mut qb = sqlx::QueryBuilder::new(format!(
                        "UPDATE deliveries SET {set}, lease_owner = NULL, lease_until = NULL, updated_at = "
                    ));
                    qb.push_bind(now).push(" WHERE id");
                    push_id_in(&mut qb, chunk);
                    qb.build().execute(&mut *tx).await?;
                }
            }
            tx.commit().await?;
            Ok(super::runs::Settled {
                recorded: done.len() as u64,
                uncertain: started.len() as u64,
                requeued: unstarted.len() as u64,
            })
        }

        /// Why a delivery is uncertain (a literal: it holds no quote).
        const IN_FLIGHT: &str =
            "the sender stopped while this message was in flight: it may have been sent";

        /// The archive's next seq taken by another writer, or a deadlock
        /// (PostgreSQL's 40P01) over it.
        fn worth_retrying(e: &super::StoreError) -> bool {
            matches!(e, super::StoreError::Database(sqlx::Error::Database(d))
                if d.constraint() == Some("archive_pkey") || d.code().as_deref() == Some("40P01"))
        }

        /// Records outcomes, their events, bad addresses and archive records
        /// within `tx`.
        async fn record_in(
            tx: &mut sqlx::Transaction<'_, $db>,
            updates: &[super::runs::DeliveryUpdate],
            now: chrono::DateTime<chrono::Utc>,
        ) -> Result<(), super::StoreError> {
            use super::runs::ARCHIVE_GENESIS;
            // One statement for the whole group: each statement is a
            // round trip to the driver's thread.
            for chunk in updates.chunks(OUTCOMES_PER_UPDATE) {
                let mut qb = sqlx::QueryBuilder::new("");
                push_outcomes(&mut qb, chunk, now);
                qb.build().execute(&mut **tx).await?;
            }
            for u in updates {
                if let Some(bad) = &u.bad_address {
                    let mut qb = sqlx::QueryBuilder::new("");
                    push_bad_address(&mut qb, bad, now);
                    qb.build().execute(&mut **tx).await?;
                }
            }
            let events: Vec<crate::event::NewEvent> =
                updates.iter().filter_map(|u| u.event.clone()).collect();
            if !events.is_empty() {
                // The dispatcher read these clients moments ago.
                insert_events_in(tx, &events, true).await?;
            }
            if updates.iter().any(|u| u.archive.is_some()) {
                lock_archive(tx).await?;
                let tail: Option<(i64, String)> =
                    sqlx::query_as("SELECT seq, hash FROM archive ORDER BY seq DESC LIMIT 1")
                        .fetch_optional(&mut **tx)
                        .await?;
                let tail = tail.unwrap_or((0, ARCHIVE_GENESIS.to_owned()));
                let chained = super::runs::chain_archive(tail, updates);
                for chunk in chained.rows.chunks(ARCHIVE_ROWS_PER_INSERT) {
                    let mut qb = sqlx::QueryBuilder::new("");
                    push_archive(&mut qb, chunk);
                    qb.build().execute(&mut **tx).await?;
                }
            }
            Ok(())
        }

        /// Group commits tried in one call before the ordinary way.
        const ONE_CALL_TRIES: usize = 8;

        /// Outcomes per UPDATE: nine values each.
        const OUTCOMES_PER_UPDATE: usize = 400;
        /// Archive records per INSERT: nine values each.
        const ARCHIVE_ROWS_PER_INSERT: usize = 200;

        fn push_bad_address(
            qb: &mut sqlx::QueryBuilder<'_, $db>,
            (channel, address, reason): &(crate::channel::Channel, String, String),
            now: chrono::DateTime<chrono::Utc>,
        ) {
            qb.push("INSERT INTO bad_addresses (channel, address, reason, marked_at) VALUES (")
                .push_bind(channel.as_str())
                .push(", ")
                .push_bind(address.clone())
                .push(", ")
                .push_bind(reason.clone())
                .push(", ")
                .push_bind(now)
                .push(") ON CONFLICT (channel, address) DO NOTHING");
        }

        async fn insert_audit(
            tx: &mut sqlx::Transaction<'_, $db>,
            entry: &super::runs::AuditEntry,
        ) -> Result<(), super::StoreError> {
            sqlx::query(
                "INSERT INTO audit_log (at, actor, action, subject, details) VALUES ($1, $2, $3, $4, $5)",
            )
            .bind(entry.at)
            .bind(&entry.actor)
            .bind(&entry.action)
            .bind(&entry.subject)
            .bind(entry.details.to_string())
            .execute(&mut **tx)
            .await?;
            Ok(())
        }
    };
}

pub(crate) use run_queries;
