//! The node's persistent state in its own database (migrations/0002_consensus.sql): pacemaker
//! state, the signing guard, finalized reports and pending transmissions, with bounded retention.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use alloy_primitives::aliases::I192;
use sqlx::{PgPool, Row};

use crate::node::ocr1::types::{ConfigDigest, EpochRound};
use crate::node::protocol::messages::ReportObservation;
use crate::node::protocol::pacemaker::PacemakerState;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database error while {what}: {source}")]
    Query {
        what: &'static str,
        #[source]
        source: sqlx::Error,
    },
    #[error("stored {what} is corrupt: {detail}")]
    Corrupt { what: &'static str, detail: String },
}

fn query(what: &'static str) -> impl FnOnce(sqlx::Error) -> StoreError {
    move |source| StoreError::Query { what, source }
}

/// What the signing guard found for an (epoch, round).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SignGuard {
    /// Nothing signed yet for it: now recorded, go ahead.
    Fresh,
    /// The same report was signed before (a resend after a restart): signing again is harmless.
    SameReport,
    /// A different report was signed for it: signing now would be equivocation.
    Conflict,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FinalizedReport {
    pub feed: String,
    pub digest: ConfigDigest,
    pub epoch: u32,
    pub round: u8,
    pub report: Vec<u8>,
    pub signatures: Vec<[u8; 65]>,
    pub observations: Vec<ReportObservation>,
    pub answer: I192,
    pub finalized_at: SystemTime,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Pruned {
    pub reports: u64,
    pub signed_rounds: u64,
}

#[derive(Clone)]
pub struct Store {
    pool: PgPool,
}

impl Store {
    pub fn new(pool: PgPool) -> Self {
        Self { pool }
    }

    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    pub async fn pacemaker(
        &self,
        digest: ConfigDigest,
    ) -> Result<Option<PacemakerState>, StoreError> {
        let row = sqlx::query(
            "SELECT epoch, highest_sent_epoch, highest_received_epochs FROM ocr_pacemaker_state WHERE config_digest = $1",
        )
        .bind(digest.0.as_slice())
        .fetch_optional(&self.pool)
        .await
        .map_err(query("reading the pacemaker state"))?;
        let Some(row) = row else { return Ok(None) };
        let epoch: i64 = row.get(0);
        let sent: i64 = row.get(1);
        let received: Vec<i64> = row.get(2);
        let to_u32 = |v: i64| {
            u32::try_from(v).map_err(|_| StoreError::Corrupt {
                what: "pacemaker state",
                detail: format!("epoch {v} out of range"),
            })
        };
        Ok(Some(PacemakerState {
            epoch: to_u32(epoch)?,
            highest_sent: to_u32(sent)?,
            highest_received: received.into_iter().map(to_u32).collect::<Result<_, _>>()?,
        }))
    }

    pub async fn save_pacemaker(
        &self,
        digest: ConfigDigest,
        feed: &str,
        state: &PacemakerState,
    ) -> Result<(), StoreError> {
        let received: Vec<i64> = state
            .highest_received
            .iter()
            .map(|&e| i64::from(e))
            .collect();
        sqlx::query(
            "INSERT INTO ocr_pacemaker_state (config_digest, feed, epoch, highest_sent_epoch, highest_received_epochs, updated_at)
             VALUES ($1, $2, $3, $4, $5, now())
             ON CONFLICT (config_digest) DO UPDATE SET epoch = EXCLUDED.epoch,
               highest_sent_epoch = EXCLUDED.highest_sent_epoch,
               highest_received_epochs = EXCLUDED.highest_received_epochs, updated_at = now()",
        )
        .bind(digest.0.as_slice())
        .bind(feed)
        .bind(i64::from(state.epoch))
        .bind(i64::from(state.highest_sent))
        .bind(received)
        .execute(&self.pool)
        .await
        .map_err(query("saving the pacemaker state"))?;
        Ok(())
    }

    /// The furthest (epoch, round) under `digest` this database remembers taking part in: the
    /// highest signed round or finalized report (the rollback fence compares it with the chain).
    pub async fn highest_position(
        &self,
        digest: ConfigDigest,
    ) -> Result<Option<EpochRound>, StoreError> {
        let row = sqlx::query(
            "SELECT epoch, round FROM (
               (SELECT epoch, round FROM ocr_signed_rounds WHERE config_digest = $1
                ORDER BY epoch DESC, round DESC LIMIT 1)
               UNION ALL
               (SELECT epoch, round FROM ocr_finalized_reports WHERE config_digest = $1
                ORDER BY epoch DESC, round DESC LIMIT 1)
             ) p ORDER BY epoch DESC, round DESC LIMIT 1",
        )
        .bind(digest.0.as_slice())
        .fetch_optional(&self.pool)
        .await
        .map_err(query("reading the highest signed or finalized round"))?;
        let Some(row) = row else { return Ok(None) };
        let epoch: i64 = row.get(0);
        let round: i16 = row.get(1);
        let corrupt = |detail: String| StoreError::Corrupt {
            what: "signed or finalized round",
            detail,
        };
        Ok(Some(EpochRound::new(
            u32::try_from(epoch).map_err(|_| corrupt(format!("epoch {epoch}")))?,
            u8::try_from(round).map_err(|_| corrupt(format!("round {round}")))?,
        )))
    }

    /// Records that this oracle is about to sign `report_hash` for (epoch, round), atomically:
    /// two concurrent attempts cannot both see `Fresh`.
    pub async fn guard_signature(
        &self,
        digest: ConfigDigest,
        epoch: u32,
        round: u8,
        report_hash: [u8; 32],
    ) -> Result<SignGuard, StoreError> {
        let inserted = sqlx::query(
            "INSERT INTO ocr_signed_rounds (config_digest, epoch, round, report_hash) VALUES ($1, $2, $3, $4)
             ON CONFLICT (config_digest, epoch, round) DO NOTHING",
        )
        .bind(digest.0.as_slice())
        .bind(i64::from(epoch))
        .bind(i16::from(round))
        .bind(report_hash.as_slice())
        .execute(&self.pool)
        .await
        .map_err(query("recording a signature"))?;
        if inserted.rows_affected() == 1 {
            return Ok(SignGuard::Fresh);
        }
        let signed: Vec<u8> = sqlx::query_scalar(
            "SELECT report_hash FROM ocr_signed_rounds WHERE config_digest = $1 AND epoch = $2 AND round = $3",
        )
        .bind(digest.0.as_slice())
        .bind(i64::from(epoch))
        .bind(i16::from(round))
        .fetch_one(&self.pool)
        .await
        .map_err(query("reading a recorded signature"))?;
        Ok(if signed == report_hash {
            SignGuard::SameReport
        } else {
            SignGuard::Conflict
        })
    }

    /// Stores a finalized report and queues it for transmission; `false` when it was already stored.
    pub async fn save_finalized(&self, report: &FinalizedReport) -> Result<bool, StoreError> {
        let mut tx = self
            .pool
            .begin()
            .await
            .map_err(query("starting a transaction"))?;
        let signatures: Vec<Vec<u8>> = report.signatures.iter().map(|s| s.to_vec()).collect();
        let observers: Vec<i16> = report
            .observations
            .iter()
            .map(|o| i16::from(o.observer))
            .collect();
        let values: Vec<String> = report
            .observations
            .iter()
            .map(|o| o.value.to_string())
            .collect();
        let at_ms = report
            .finalized_at
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_millis() as i64;
        let inserted = sqlx::query(
            "INSERT INTO ocr_finalized_reports
               (config_digest, epoch, round, feed, report, signatures, observers, observations, answer, finalized_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8::numeric[], $9::numeric, to_timestamp($10::float8 / 1000))
             ON CONFLICT DO NOTHING",
        )
        .bind(report.digest.0.as_slice())
        .bind(i64::from(report.epoch))
        .bind(i16::from(report.round))
        .bind(&report.feed)
        .bind(&report.report)
        .bind(signatures)
        .bind(observers)
        .bind(values)
        .bind(report.answer.to_string())
        .bind(at_ms as f64)
        .execute(&mut *tx)
        .await
        .map_err(query("storing a finalized report"))?;
        if inserted.rows_affected() == 1 {
            sqlx::query(
                "INSERT INTO ocr_pending_transmissions (config_digest, epoch, round, feed) VALUES ($1, $2, $3, $4)",
            )
            .bind(report.digest.0.as_slice())
            .bind(i64::from(report.epoch))
            .bind(i16::from(report.round))
            .bind(&report.feed)
            .execute(&mut *tx)
            .await
            .map_err(query("queueing a transmission"))?;
        }
        tx.commit()
            .await
            .map_err(query("committing a finalized report"))?;
        Ok(inserted.rows_affected() == 1)
    }

    /// A pending transmission is done with (sent, skipped or given up).
    pub async fn forget_pending(
        &self,
        digest: ConfigDigest,
        epoch: u32,
        round: u8,
    ) -> Result<(), StoreError> {
        sqlx::query("DELETE FROM ocr_pending_transmissions WHERE config_digest = $1 AND epoch = $2 AND round = $3")
            .bind(digest.0.as_slice())
            .bind(i64::from(epoch))
            .bind(i16::from(round))
            .execute(&self.pool)
            .await
            .map_err(query("removing a pending transmission"))?;
        Ok(())
    }

    /// Pending transmissions of `feed` under `digest` (after a restart), oldest first; those
    /// created more than `max_age` ago are deleted instead (libocr PR #131: an old pending report
    /// must not hold the feed back).
    pub async fn take_pending(
        &self,
        feed: &str,
        digest: ConfigDigest,
        max_age: Duration,
    ) -> Result<Vec<FinalizedReport>, StoreError> {
        sqlx::query(
            "DELETE FROM ocr_pending_transmissions WHERE feed = $1 AND config_digest = $2
             AND created_at < now() - make_interval(secs => $3)",
        )
        .bind(feed)
        .bind(digest.0.as_slice())
        .bind(max_age.as_secs_f64())
        .execute(&self.pool)
        .await
        .map_err(query("dropping old pending transmissions"))?;
        let rows = sqlx::query(
            "SELECT r.epoch, r.round, r.report, r.signatures, r.observers, r.observations::text[], r.answer::text,
                    (extract(epoch FROM r.finalized_at) * 1000)::bigint
             FROM ocr_pending_transmissions p JOIN ocr_finalized_reports r USING (config_digest, epoch, round)
             WHERE p.feed = $1 AND p.config_digest = $2 ORDER BY r.epoch, r.round",
        )
        .bind(feed)
        .bind(digest.0.as_slice())
        .fetch_all(&self.pool)
        .await
        .map_err(query("reading pending transmissions"))?;
        rows.into_iter()
            .map(|row| finalized_from_row(feed, digest, &row))
            .collect()
    }

    /// The newest finalized report of `feed` under `digest`.
    pub async fn latest_finalized(
        &self,
        feed: &str,
        digest: ConfigDigest,
    ) -> Result<Option<FinalizedReport>, StoreError> {
        Ok(self
            .recent_finalized(feed, digest, 1)
            .await?
            .into_iter()
            .next())
    }

    /// The newest `limit` finalized reports of `feed`, newest first.
    pub async fn recent_finalized(
        &self,
        feed: &str,
        digest: ConfigDigest,
        limit: u32,
    ) -> Result<Vec<FinalizedReport>, StoreError> {
        let rows = sqlx::query(
            "SELECT epoch, round, report, signatures, observers, observations::text[], answer::text,
                    (extract(epoch FROM finalized_at) * 1000)::bigint
             FROM ocr_finalized_reports WHERE feed = $1 AND config_digest = $2
             ORDER BY epoch DESC, round DESC LIMIT $3",
        )
        .bind(feed)
        .bind(digest.0.as_slice())
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await
        .map_err(query("reading finalized reports"))?;
        rows.into_iter()
            .map(|row| finalized_from_row(feed, digest, &row))
            .collect()
    }

    /// Deletes history older than `retention`, keeping each instance's newest report and signed
    /// round (the first answers `shouldReport` after a restart, the second guards signing).
    pub async fn prune(&self, retention: Duration) -> Result<Pruned, StoreError> {
        let reports = self
            .prune_older(
                "ocr_finalized_reports",
                "finalized_at",
                retention,
                "pruning finalized reports",
            )
            .await?;
        let signed = self
            .prune_older(
                "ocr_signed_rounds",
                "signed_at",
                retention,
                "pruning signed rounds",
            )
            .await?;
        Ok(Pruned {
            reports,
            signed_rounds: signed,
        })
    }

    /// Deletes the rows of `table` whose `at` column is older than `retention`, except each
    /// configuration's newest (epoch, round). Both names are this module's constants, never input.
    async fn prune_older(
        &self,
        table: &'static str,
        at: &'static str,
        retention: Duration,
        what: &'static str,
    ) -> Result<u64, StoreError> {
        let statement = format!(
            "DELETE FROM {table} t
             WHERE {at} < now() - make_interval(secs => $1)
               AND (epoch, round) <> (SELECT epoch, round FROM {table} l
                                      WHERE l.config_digest = t.config_digest
                                      ORDER BY epoch DESC, round DESC LIMIT 1)"
        );
        let done = sqlx::query(&statement)
            .bind(retention.as_secs_f64())
            .execute(&self.pool)
            .await
            .map_err(query(what))?;
        Ok(done.rows_affected())
    }
}

fn finalized_from_row(
    feed: &str,
    digest: ConfigDigest,
    row: &sqlx::postgres::PgRow,
) -> Result<FinalizedReport, StoreError> {
    let corrupt = |detail: String| StoreError::Corrupt {
        what: "finalized report",
        detail,
    };
    let epoch: i64 = row.get(0);
    let round: i16 = row.get(1);
    let signatures: Vec<Vec<u8>> = row.get(3);
    let observers: Vec<i16> = row.get(4);
    let values: Vec<String> = row.get(5);
    let answer: String = row.get(6);
    let at_ms: i64 = row.get(7);
    let int192 = |text: &str| I192::from_dec_str(text).map_err(|e| corrupt(format!("{text}: {e}")));
    let observations = observers
        .iter()
        .zip(&values)
        .map(|(o, v)| {
            Ok(ReportObservation {
                value: int192(v)?,
                observer: u8::try_from(*o).map_err(|_| corrupt(format!("observer {o}")))?,
            })
        })
        .collect::<Result<Vec<_>, StoreError>>()?;
    let signatures = signatures
        .into_iter()
        .map(|s| <[u8; 65]>::try_from(s.as_slice()).map_err(|_| corrupt("signature length".into())))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(FinalizedReport {
        feed: feed.to_owned(),
        digest,
        epoch: u32::try_from(epoch).map_err(|_| corrupt(format!("epoch {epoch}")))?,
        round: u8::try_from(round).map_err(|_| corrupt(format!("round {round}")))?,
        report: row.get(2),
        signatures,
        observations,
        answer: int192(&answer)?,
        finalized_at: UNIX_EPOCH + Duration::from_millis(u64::try_from(at_ms).unwrap_or(0)),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::postgres::db::test_server::TestServer;

    fn digest() -> ConfigDigest {
        ConfigDigest([5; 16])
    }

    fn report(epoch: u32, round: u8, answer: i64, age: Duration) -> FinalizedReport {
        let value = I192::try_from(answer).unwrap();
        FinalizedReport {
            feed: "BTC-USD".into(),
            digest: digest(),
            epoch,
            round,
            report: vec![epoch as u8, round],
            signatures: vec![[1; 65], [2; 65]],
            observations: vec![
                ReportObservation { value, observer: 0 },
                ReportObservation {
                    value: I192::MAX,
                    observer: 3,
                },
            ],
            answer: value,
            finalized_at: SystemTime::now() - age,
        }
    }

    #[tokio::test]
    async fn the_store_keeps_pacemaker_state_signatures_reports_and_prunes_old_history() {
        let server = TestServer::start().await;
        let credentials = server.create_node(2).await;
        let pool = crate::postgres::db::connect(&credentials, 2).await.unwrap();
        let store = Store::new(pool);

        // Pacemaker state round-trips and is replaced.
        assert_eq!(store.pacemaker(digest()).await.unwrap(), None);
        let state = PacemakerState {
            epoch: 7,
            highest_sent: 8,
            highest_received: vec![7, 8, 0, u32::MAX],
        };
        store
            .save_pacemaker(digest(), "BTC-USD", &state)
            .await
            .unwrap();
        let newer = PacemakerState {
            epoch: 9,
            ..state.clone()
        };
        store
            .save_pacemaker(digest(), "BTC-USD", &newer)
            .await
            .unwrap();
        assert_eq!(store.pacemaker(digest()).await.unwrap(), Some(newer));

        // The furthest position remembered: nothing yet.
        assert_eq!(store.highest_position(digest()).await.unwrap(), None);

        // The signing guard: first write wins, the same report may be re-signed, another may not.
        let guards = [
            ((3, 1, [1; 32]), SignGuard::Fresh),
            ((3, 1, [1; 32]), SignGuard::SameReport),
            ((3, 1, [2; 32]), SignGuard::Conflict),
            ((3, 2, [2; 32]), SignGuard::Fresh),
        ];
        for ((epoch, round, hash), expected) in guards {
            let got = store.guard_signature(digest(), epoch, round, hash).await;
            assert_eq!(got.unwrap(), expected, "epoch {epoch} round {round}");
        }

        assert_eq!(
            store.highest_position(digest()).await.unwrap(),
            Some(EpochRound::new(3, 2)),
            "the highest signed round"
        );
        assert_eq!(
            store.highest_position(ConfigDigest([6; 16])).await.unwrap(),
            None,
            "another configuration's rounds do not count"
        );

        // Finalized reports: stored once, newest first, exact int192 values.
        let old = report(1, 1, 100, Duration::from_secs(10 * 86_400));
        assert!(store.save_finalized(&old).await.unwrap());
        assert!(
            !store.save_finalized(&old).await.unwrap(),
            "a second copy is not stored"
        );
        let new = report(2, 1, -5, Duration::ZERO);
        store.save_finalized(&new).await.unwrap();
        let latest = store
            .latest_finalized("BTC-USD", digest())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            (latest.epoch, latest.round, latest.answer),
            (2, 1, new.answer)
        );
        assert_eq!(latest.observations, new.observations);
        assert_eq!(latest.signatures, new.signatures);
        assert_eq!(
            store
                .recent_finalized("BTC-USD", digest(), 10)
                .await
                .unwrap()
                .len(),
            2
        );
        let later = report(4, 1, 7, Duration::ZERO);
        store.save_finalized(&later).await.unwrap();
        assert_eq!(
            store.highest_position(digest()).await.unwrap(),
            Some(EpochRound::new(4, 1)),
            "a finalized report beyond the signed rounds"
        );
        sqlx::query("DELETE FROM ocr_finalized_reports WHERE epoch = 4")
            .execute(store.pool())
            .await
            .unwrap();
        let pending: i64 = sqlx::query_scalar("SELECT count(*) FROM ocr_pending_transmissions")
            .fetch_one(store.pool())
            .await
            .unwrap();
        assert_eq!(pending, 2);

        // Retention: the 10-day-old report goes, the newest stays; the newest signed round stays.
        sqlx::query("UPDATE ocr_signed_rounds SET signed_at = now() - interval '30 days'")
            .execute(store.pool())
            .await
            .unwrap();
        let pruned = store.prune(Duration::from_secs(7 * 86_400)).await.unwrap();
        assert_eq!(
            pruned,
            Pruned {
                reports: 1,
                signed_rounds: 1
            }
        );
        assert_eq!(
            store
                .recent_finalized("BTC-USD", digest(), 10)
                .await
                .unwrap()
                .len(),
            1
        );
        assert_eq!(
            store
                .guard_signature(digest(), 3, 2, [9; 32])
                .await
                .unwrap(),
            SignGuard::Conflict
        );
    }
}
