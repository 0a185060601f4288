//! Storing what a feed finalizes: the report goes to the database and then to the transmitter;
//! when the database refuses it, it goes to the transmitter from memory at once, is kept in
//! [`Writes`](crate::node::feed::writes::Writes) and is offered to the database again until it
//! is stored ([`retry_unstored`]).

use std::sync::Arc;

use tokio_util::sync::CancellationToken;

use crate::node::feed::shared::Shared;
use crate::node::feed::writes::{Pending, Write, RETRY_INTERVAL};

/// Stores a finalized report and queues it for transmission. When the database refuses it,
/// the report goes to the transmitter from memory and is kept for [`retry_unstored`].
pub async fn store_finalized(shared: &Shared, pending: Pending) {
    match shared.store.save_finalized(&pending.report).await {
        // Queued once stored: the pending row is what a restart re-sends.
        Ok(inserted) => {
            shared.writes.succeeded(Write::FinalizedReport);
            if inserted {
                transmit(shared, &pending).await;
            }
        }
        Err(e) => {
            tracing::error!(
                feed = %pending.report.feed,
                epoch = pending.report.epoch,
                round = pending.report.round,
                error = %e,
                "cannot store a finalized report; it is transmitted from memory and its write retried"
            );
            shared
                .metrics
                .store_errors
                .with_label_values(&[Write::FinalizedReport.label()])
                .inc();
            shared.writes.failed(Write::FinalizedReport, &e);
            transmit(shared, &pending).await;
            shared.writes.keep(pending);
        }
    }
}

async fn transmit(shared: &Shared, pending: &Pending) {
    if let Some(queue) = &shared.transmissions {
        let _ = queue.send(pending.to_transmit()).await;
    }
}

/// Offers the kept reports to the database again, oldest first, every [`RETRY_INTERVAL`],
/// until `stop` is cancelled. A report stored late is queued for transmission again (its pending
/// row must be cleared; the transmitter skips what it handled already).
pub async fn retry_unstored(shared: Arc<Shared>, stop: CancellationToken) {
    loop {
        tokio::select! {
            _ = tokio::time::sleep(RETRY_INTERVAL) => {}
            _ = stop.cancelled() => return,
        }
        let before = shared.writes.unstored();
        while let Some(pending) = shared.writes.oldest() {
            match shared.store.save_finalized(&pending.report).await {
                Ok(inserted) => {
                    let done = shared.writes.stored_oldest();
                    if inserted {
                        transmit(&shared, &pending).await;
                    }
                    if done {
                        shared.writes.succeeded(Write::FinalizedReport);
                        tracing::info!(
                            reports = before,
                            "finalized reports the database refused are stored now"
                        );
                    }
                }
                Err(e) => {
                    shared.writes.failed(Write::FinalizedReport, &e);
                    break;
                }
            }
        }
    }
}
