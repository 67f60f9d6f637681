//! Seminar answers: a room of fixed capacity, filled in the order people
//! accept, never overfilled however many answer at once. Each acceptance
//! takes the next position while holding the seminar's row lock; positions
//! stay gapless, the first `capacity` are seats and the rest the wait list.
//! A decline closes its gap, which moves the first waiting client into the
//! room. [`super::SeminarStore`] is written once for both backends.

use serde::Serialize;

/// Where a client stands after answering.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum Standing {
    /// In the room: position 1..=capacity.
    Seated {
        position: i64,
    },
    /// Waiting: `place` 1 is next in.
    Waitlisted {
        place: i64,
    },
    Declined,
}

impl Standing {
    pub fn of(position: Option<i64>, capacity: i64) -> Standing {
        match position {
            None => Standing::Declined,
            Some(p) if p <= capacity => Standing::Seated { position: p },
            Some(p) => Standing::Waitlisted {
                place: p - capacity,
            },
        }
    }
}

/// What a decline did: the client it promoted into the room, if any, and
/// the channel that client answered by.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Declined {
    pub promoted: Option<String>,
    pub promoted_via: Option<String>,
}

/// One client's answer as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, sqlx::FromRow)]
pub struct Answer {
    pub client_id: String,
    /// `accepted` or `declined`.
    pub answer: String,
    pub position: Option<i64>,
    pub via: Option<String>,
}

/// The `source` of a check-in event: it names the seminar.
pub fn checkin_source(seminar: &str) -> String {
    format!("checkin:{seminar}")
}

/// The seminar as herald last recorded it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Version {
    /// Raised at each change of time, venue or cancellation.
    pub sequence: i64,
    /// True when this record changed the fingerprint stored before.
    pub changed: bool,
}

/// Seats taken and clients waiting.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Attendance {
    pub capacity: i64,
    pub seated: i64,
    pub waitlisted: i64,
}

macro_rules! seminar_queries {
    ($db:ty, $store:ty) => {
        #[async_trait::async_trait]
        impl super::SeminarStore for $store {
            async fn set_capacity(&self, seminar: &str, capacity: i64) -> Result<(), super::StoreError> {
                let mut tx = begin_write(self.writer()).await?;
                sqlx::query(
                    "INSERT INTO seminars (name, capacity) VALUES ($1, $2) \
                     ON CONFLICT (name) DO UPDATE SET capacity = excluded.capacity",
                )
                .bind(seminar)
                .bind(capacity)
                .execute(&mut *tx)
                .await?;
                tx.commit().await?;
                Ok(())
            }

            async fn sync_seminar(
                &self,
                seminar: &str,
                capacity: i64,
                content: &str,
                fingerprint: &str,
            ) -> Result<super::seminars::Version, super::StoreError> {
                let mut tx = begin_write(self.writer()).await?;
                let before: Option<(Option<String>, i64)> = sqlx::query_as(
                    "SELECT fingerprint, sequence FROM seminars WHERE name = $1",
                )
                .bind(seminar)
                .fetch_optional(&mut *tx)
                .await?;
                let (changed, sequence) = match before {
                    Some((Some(old), seq)) if old != fingerprint => (true, seq + 1),
                    Some((_, seq)) => (false, seq),
                    None => (false, 0),
                };
                sqlx::query(
                    "INSERT INTO seminars (name, capacity, content, fingerprint, sequence) VALUES ($1, $2, $3, $4, $5) \
                     ON CONFLICT (name) DO UPDATE SET capacity = excluded.capacity, content = excluded.content, \
                     fingerprint = excluded.fingerprint, sequence = excluded.sequence",
                )
                .bind(seminar)
                .bind(capacity)
                .bind(content)
                .bind(fingerprint)
                .bind(sequence)
                .execute(&mut *tx)
                .await?;
                tx.commit().await?;
                Ok(super::seminars::Version { sequence, changed })
            }

            async fn seminar_content(
                &self,
                seminar: &str,
            ) -> Result<Option<(String, i64)>, super::StoreError> {
                let row: Option<(Option<String>, i64)> =
                    sqlx::query_as("SELECT content, sequence FROM seminars WHERE name = $1")
                        .bind(seminar)
                        .fetch_optional(&self.pool)
                        .await?;
                Ok(row.and_then(|(c, s)| c.map(|c| (c, s))))
            }

            async fn accept(
                &self,
                seminar: &str,
                client: &str,
                at: chrono::DateTime<chrono::Utc>,
                via: Option<crate::channel::Channel>,
            ) -> Result<super::seminars::Standing, super::StoreError> {
                let mut tx = begin_write(self.writer()).await?;
                let capacity = lock_seminar(&mut tx, seminar).await?;
                let mine = own_position(&mut tx, seminar, client).await?;
                if let Some(p) = mine {
                    // Accepting twice keeps the place taken first.
                    tx.commit().await?;
                    return Ok(super::seminars::Standing::of(Some(p), capacity));
                }
                let (taken,): (i64,) = sqlx::query_as(
                    "SELECT COUNT(*) FROM rsvps WHERE seminar = $1 AND position IS NOT NULL",
                )
                .bind(seminar)
                .fetch_one(&mut *tx)
                .await?;
                let position = taken + 1;
                sqlx::query(
                    "INSERT INTO rsvps (seminar, client_id, answer, position, answered_at, via) \
                     VALUES ($1, $2, 'accepted', $3, $4, $5) \
                     ON CONFLICT (seminar, client_id) DO UPDATE SET answer = 'accepted', \
                     position = excluded.position, answered_at = excluded.answered_at, via = excluded.via",
                )
                .bind(seminar)
                .bind(client)
                .bind(position)
                .bind(at)
                .bind(via.map(|c| c.as_str()))
                .execute(&mut *tx)
                .await?;
                tx.commit().await?;
                Ok(super::seminars::Standing::of(Some(position), capacity))
            }

            async fn decline(
                &self,
                seminar: &str,
                client: &str,
                at: chrono::DateTime<chrono::Utc>,
            ) -> Result<super::seminars::Declined, super::StoreError> {
                let mut tx = begin_write(self.writer()).await?;
                let capacity = lock_seminar(&mut tx, seminar).await?;
                let mine = own_position(&mut tx, seminar, client).await?;
                sqlx::query(
                    "INSERT INTO rsvps (seminar, client_id, answer, position, answered_at) \
                     VALUES ($1, $2, 'declined', NULL, $3) \
                     ON CONFLICT (seminar, client_id) DO UPDATE SET answer = 'declined', position = NULL, \
                     answered_at = excluded.answered_at",
                )
                .bind(seminar)
                .bind(client)
                .bind(at)
                .execute(&mut *tx)
                .await?;
                let mut promoted: Option<(String, Option<String>)> = None;
                if let Some(p) = mine {
                    // Close the gap, one row at a time in position order so
                    // that the unique index holds at every step.
                    let after: Vec<(String, i64, Option<String>)> = sqlx::query_as(
                        "SELECT client_id, position, via FROM rsvps WHERE seminar = $1 AND position > $2 ORDER BY position",
                    )
                    .bind(seminar)
                    .bind(p)
                    .fetch_all(&mut *tx)
                    .await?;
                    for (other, q, via) in &after {
                        sqlx::query("UPDATE rsvps SET position = $3 WHERE seminar = $1 AND client_id = $2")
                            .bind(seminar)
                            .bind(other)
                            .bind(q - 1)
                            .execute(&mut *tx)
                            .await?;
                        if *q == capacity + 1 && p <= capacity {
                            promoted = Some((other.clone(), via.clone()));
                        }
                    }
                }
                tx.commit().await?;
                let (promoted, promoted_via) = promoted.map_or((None, None), |(c, v)| (Some(c), v));
                Ok(super::seminars::Declined { promoted, promoted_via })
            }

            async fn queue_notice(
                &self,
                run: &super::runs::NewRun,
                delivery: &super::runs::NewDelivery,
            ) -> Result<bool, super::StoreError> {
                let mut tx = begin_write(self.writer()).await?;
                sqlx::query(
                    "INSERT INTO runs (campaign, run_key, kind, purpose, state, launched_by, launched_at, \
                     content, content_hash, files, fingerprint, audience) \
                     VALUES ($1, $2, $3, $4, 'sending', $5, $6, $7, $8, $9, $10, 0) \
                     ON CONFLICT (campaign, run_key) DO NOTHING",
                )
                .bind(&run.campaign)
                .bind(&run.run_key)
                .bind(&run.kind)
                .bind(run.purpose.as_str())
                .bind(&run.launched_by)
                .bind(run.launched_at)
                .bind(&run.content)
                .bind(&run.content_hash)
                .bind(&run.files)
                .bind(&run.fingerprint)
                .execute(&mut *tx)
                .await?;
                // A notice run stays open for the notices to come.
                let (run_id,): (i64,) = sqlx::query_as(
                    "UPDATE runs SET state = 'sending', audience = audience + 1 \
                     WHERE campaign = $1 AND run_key = $2 RETURNING id",
                )
                .bind(&run.campaign)
                .bind(&run.run_key)
                .fetch_one(&mut *tx)
                .await?;
                let insert = format!(
                    "{}VALUES ($1, $2, $3, $4, $5, 'queued', $6, $7, $8) ON CONFLICT (run_id, client_id) DO NOTHING",
                    super::runs::DELIVERY_INSERT
                );
                let inserted = sqlx::query(&insert)
                .bind(run_id)
                .bind(&delivery.client_id)
                .bind(delivery.channel.as_str())
                .bind(&delivery.address)
                .bind(super::runs::channel_list(&delivery.fallback))
                .bind(delivery.not_before)
                .bind(&delivery.decision)
                .bind(run.launched_at)
                .execute(&mut *tx)
                .await?
                .rows_affected()
                    == 1;
                if inserted {
                    tx.commit().await?;
                }
                Ok(inserted)
            }

            async fn answers(&self, seminar: &str) -> Result<Vec<super::seminars::Answer>, super::StoreError> {
                Ok(sqlx::query_as(
                    "SELECT client_id, answer, position, via FROM rsvps WHERE seminar = $1 ORDER BY position, client_id",
                )
                .bind(seminar)
                .fetch_all(&self.pool)
                .await?)
            }

            async fn all_answers(
                &self,
            ) -> Result<Vec<(String, i64, super::seminars::Answer)>, super::StoreError> {
                let rows: Vec<(String, i64, String, String, Option<i64>, Option<String>)> = sqlx::query_as(
                    "SELECT r.seminar, s.capacity, r.client_id, r.answer, r.position, r.via \
                     FROM rsvps r JOIN seminars s ON s.name = r.seminar",
                )
                .fetch_all(&self.pool)
                .await?;
                Ok(rows
                    .into_iter()
                    .map(|(seminar, capacity, client_id, answer, position, via)| {
                        (seminar, capacity, super::seminars::Answer { client_id, answer, position, via })
                    })
                    .collect())
            }

            async fn attended(&self, seminar: &str) -> Result<Vec<String>, super::StoreError> {
                let rows: Vec<(String,)> = sqlx::query_as(
                    // `kind <> 'sent'` names the index of responses.
                    "SELECT DISTINCT client_id FROM events WHERE kind = 'attended' AND kind <> 'sent' AND source = $1 \
                     ORDER BY client_id",
                )
                .bind(super::seminars::checkin_source(seminar))
                .fetch_all(&self.pool)
                .await?;
                Ok(rows.into_iter().map(|(c,)| c).collect())
            }

            async fn latest_sms_invitation(
                &self,
                client: &str,
            ) -> Result<Option<(i64, chrono::DateTime<chrono::Utc>)>, super::StoreError> {
                Ok(sqlx::query_as(
                    "SELECT delivery_id, occurred_at FROM events WHERE client_id = $1 AND kind = 'sent' \
                     AND channel = 'sms' AND campaign_kind = 'seminar_invitation' AND delivery_id IS NOT NULL \
                     ORDER BY occurred_at DESC LIMIT 1",
                )
                .bind(client)
                .fetch_optional(&self.pool)
                .await?)
            }

            async fn standing(
                &self,
                seminar: &str,
                client: &str,
            ) -> Result<Option<super::seminars::Standing>, super::StoreError> {
                let row: Option<(Option<i64>, i64)> = sqlx::query_as(
                    "SELECT r.position, s.capacity FROM rsvps r JOIN seminars s ON s.name = r.seminar \
                     WHERE r.seminar = $1 AND r.client_id = $2",
                )
                .bind(seminar)
                .bind(client)
                .fetch_optional(&self.pool)
                .await?;
                Ok(row.map(|(p, c)| super::seminars::Standing::of(p, c)))
            }

            async fn attendance(&self, seminar: &str) -> Result<super::seminars::Attendance, super::StoreError> {
                let (capacity,): (i64,) = sqlx::query_as("SELECT capacity FROM seminars WHERE name = $1")
                    .bind(seminar)
                    .fetch_optional(&self.pool)
                    .await?
                    .ok_or_else(|| super::StoreError::Corrupt(format!("no seminar '{seminar}'")))?;
                let (accepted,): (i64,) = sqlx::query_as(
                    "SELECT COUNT(*) FROM rsvps WHERE seminar = $1 AND position IS NOT NULL",
                )
                .bind(seminar)
                .fetch_one(&self.pool)
                .await?;
                Ok(super::seminars::Attendance {
                    capacity,
                    seated: accepted.min(capacity),
                    waitlisted: (accepted - capacity).max(0),
                })
            }
        }

        /// The client's position while they have accepted.
        async fn own_position(
            tx: &mut sqlx::Transaction<'_, $db>,
            seminar: &str,
            client: &str,
        ) -> Result<Option<i64>, super::StoreError> {
            let row: Option<(Option<i64>,)> =
                sqlx::query_as("SELECT position FROM rsvps WHERE seminar = $1 AND client_id = $2")
                    .bind(seminar)
                    .bind(client)
                    .fetch_optional(&mut **tx)
                    .await?;
            Ok(row.and_then(|(p,)| p))
        }

        /// Takes the seminar's row lock until the transaction ends; its capacity.
        async fn lock_seminar(
            tx: &mut sqlx::Transaction<'_, $db>,
            seminar: &str,
        ) -> Result<i64, super::StoreError> {
            let row: Option<(i64,)> =
                sqlx::query_as("UPDATE seminars SET capacity = capacity WHERE name = $1 RETURNING capacity")
                    .bind(seminar)
                    .fetch_optional(&mut **tx)
                    .await?;
            row.map(|(c,)| c)
                .ok_or_else(|| super::StoreError::Corrupt(format!("no seminar '{seminar}'")))
        }
    };
}

pub(crate) use seminar_queries;
