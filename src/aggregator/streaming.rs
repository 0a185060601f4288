//! The running WebSocket streams of the aggregator: one per streaming source, subscribed to the
//! tracked pairs, feeding the cache, and reporting their state as metrics.

use std::collections::BTreeMap;
use std::sync::Arc;

use prometheus::core::{Collector, Desc};
use prometheus::proto::{MetricFamily, MetricType};

use super::cache::{Cache, Key, Watcher};
use super::pair::Pair;
use super::price::Price;
use super::sources::{Quote, Source};
use super::streams::{self, manager::StreamHandle};
use crate::config::schema::aggregator::AggregatorConfig;
use crate::config::schema::sources::SourceId;
use crate::telemetry::sample;

/// The running streams, one per streaming source: tracked pairs are subscribed, dropped pairs
/// unsubscribed, and every streamed price refreshes the cache.
#[derive(Clone, Default)]
pub struct StreamSet {
    handles: Arc<std::sync::Mutex<BTreeMap<SourceId, StreamHandle>>>,
}

impl StreamSet {
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<SourceId, StreamHandle>> {
        self.handles
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    pub fn watcher(&self) -> Watcher {
        let set = self.clone();
        Arc::new(move |(id, pair): &Key, tracked: bool| {
            if let Some(handle) = set.lock().get(id) {
                if tracked {
                    handle.subscribe(pair.clone());
                } else {
                    handle.unsubscribe(pair.clone());
                }
            }
        })
    }

    pub fn start(
        &self,
        config: &AggregatorConfig,
        sources: &BTreeMap<SourceId, Arc<dyn Source>>,
        cache: &Cache,
    ) {
        for (id, source) in sources {
            let Some(source_config) = config.sources.get(id) else {
                continue;
            };
            let (cache, source, id) = (cache.clone(), source.clone(), *id);
            let on_update: Arc<dyn Fn(Pair, Price) + Send + Sync> = Arc::new(move |pair, price| {
                let quote = Quote {
                    price,
                    symbol: source.symbol(&pair),
                    received_at: std::time::SystemTime::now(),
                };
                cache.update_from_stream(&(id, pair), quote);
            });
            if let Some(handle) = streams::start(id, source_config, on_update) {
                tracing::info!(source = %id, "streaming");
                self.lock().insert(id, handle);
            }
        }
    }

    pub async fn shutdown(&self) {
        let handles: Vec<StreamHandle> = std::mem::take(&mut *self.lock()).into_values().collect();
        for handle in handles {
            handle.shutdown().await;
        }
    }
}

/// (name, help, type) of the stream families, rendered from each manager's status at gather time.
const FAMILIES: [(&str, &str, MetricType); 5] = [
    (
        "enclave_aggregator_stream_connected",
        "1 while the source's WebSocket is connected.",
        MetricType::GAUGE,
    ),
    (
        "enclave_aggregator_stream_reconnects_total",
        "Reconnection attempts of the source's WebSocket.",
        MetricType::COUNTER,
    ),
    (
        "enclave_aggregator_stream_messages_total",
        "Messages received on the source's WebSocket.",
        MetricType::COUNTER,
    ),
    (
        "enclave_aggregator_stream_subscriptions",
        "Topics the source's WebSocket is subscribed to.",
        MetricType::GAUGE,
    ),
    (
        "enclave_aggregator_stream_gave_up",
        "1 once the stream stopped reconnecting (REST carries on).",
        MetricType::GAUGE,
    ),
];

impl Collector for StreamSet {
    fn desc(&self) -> Vec<&Desc> {
        Vec::new()
    }

    fn collect(&self) -> Vec<MetricFamily> {
        let statuses: Vec<(SourceId, streams::manager::StreamStatus)> = self
            .lock()
            .iter()
            .map(|(id, h)| (*id, h.status()))
            .collect();
        FAMILIES
            .iter()
            .enumerate()
            .map(|(i, (name, help, kind))| {
                let mut family = MetricFamily::default();
                family.set_name((*name).to_owned());
                family.set_help((*help).to_owned());
                family.set_field_type(*kind);
                for (id, s) in &statuses {
                    let value = match i {
                        0 => f64::from(u8::from(s.connected)),
                        1 => s.reconnects as f64,
                        2 => s.messages as f64,
                        3 => s.subscribed as f64,
                        _ => f64::from(u8::from(s.gave_up)),
                    };
                    family.mut_metric().push(sample::metric(
                        *kind,
                        vec![sample::label("source", id.name())],
                        value,
                    ));
                }
                family
            })
            .filter(|f| !f.get_metric().is_empty())
            .collect()
    }
}
