//! `ContractState` read from the feeds' aggregator contracts: `latestTransmissionDetails` (as an
//! eth_call from this oracle's transmitter, an EOA) and the newest `RoundRequested` log (scanned
//! incrementally in bounded ranges), cached briefly so that the followers of one round share one
//! read per feed instead of hammering the RPC.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use alloy_primitives::Address;

use crate::node::contract::contract_state::{ContractState, ContractStateError, LatestAnswer};
use crate::node::evm::aggregator_contract::TransmissionDetails;
use crate::node::evm::AggregatorContract;
use crate::node::ocr1::types::ConfigDigest;

type Cached = (Instant, Option<LatestAnswer>);

/// How far back the first `RoundRequested` scan of a feed looks, in blocks: about an hour on
/// opBNB (1-second blocks). Later scans continue from where the last one stopped.
const FIRST_SCAN_BLOCKS: u64 = 3_600;

#[derive(Default)]
struct RequestScan {
    next_block: Option<u64>,
    latest: Option<(ConfigDigest, u32, u8)>,
}

pub struct ChainContractState {
    contracts: HashMap<String, AggregatorContract>,
    from: Address,
    ttl: Duration,
    cache: Mutex<HashMap<String, Cached>>,
    requests: tokio::sync::Mutex<HashMap<String, RequestScan>>,
    metrics: Option<Arc<super::OnchainMetrics>>,
}

impl ChainContractState {
    pub fn new(
        contracts: HashMap<String, AggregatorContract>,
        from: Address,
        ttl: Duration,
        metrics: Option<Arc<super::OnchainMetrics>>,
    ) -> Self {
        Self {
            contracts,
            from,
            ttl,
            cache: Mutex::new(HashMap::new()),
            requests: tokio::sync::Mutex::new(HashMap::new()),
            metrics,
        }
    }

    fn cached(&self, feed: &str) -> Option<Option<LatestAnswer>> {
        let cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        cache
            .get(feed)
            .filter(|(at, _)| at.elapsed() < self.ttl)
            .map(|(_, v)| v.clone())
    }
}

impl ChainContractState {
    /// `latestTransmissionDetails()` of `feed`'s contract, read now rather than from the cache
    /// (the rollback fence needs the chain's position as the instance starts).
    pub async fn transmission_details(
        &self,
        feed: &str,
    ) -> Result<TransmissionDetails, ContractStateError> {
        let contract = self
            .contracts
            .get(feed)
            .ok_or_else(|| ContractStateError(format!("no contract for feed {feed}")))?;
        contract
            .latest_transmission_details(self.from)
            .await
            .map_err(|e| ContractStateError(e.to_string()))
    }

    /// The newest `RoundRequested` of `feed`'s contract, scanning only the blocks not seen yet.
    async fn latest_request(
        &self,
        feed: &str,
        contract: &AggregatorContract,
    ) -> Result<Option<(ConfigDigest, u32, u8)>, ContractStateError> {
        let mut requests = self.requests.lock().await;
        let scan = requests.entry(feed.to_owned()).or_default();
        let from = match scan.next_block {
            Some(block) => block,
            None => {
                let head = contract
                    .rpc()
                    .block_number()
                    .await
                    .map_err(|e| ContractStateError(e.to_string()))?;
                head.saturating_sub(FIRST_SCAN_BLOCKS)
            }
        };
        let found = contract
            .round_requested_since(from)
            .await
            .map_err(|e| ContractStateError(e.to_string()))?;
        if let Some(last) = found.events.last() {
            scan.latest = Some((last.digest, last.epoch, last.round));
        }
        scan.next_block = Some(found.to_block + 1);
        Ok(scan.latest)
    }
}

#[async_trait::async_trait]
impl ContractState for ChainContractState {
    async fn latest(&self, feed: &str) -> Result<Option<LatestAnswer>, ContractStateError> {
        if let Some(hit) = self.cached(feed) {
            return Ok(hit);
        }
        let contract = self
            .contracts
            .get(feed)
            .ok_or_else(|| ContractStateError(format!("no contract for feed {feed}")))?;
        let details = contract
            .latest_transmission_details(self.from)
            .await
            .map_err(|e| ContractStateError(e.to_string()))?;
        let requested = self.latest_request(feed, contract).await?;
        let latest = (details.epoch != 0 || details.round != 0).then(|| LatestAnswer {
            digest: details.digest,
            epoch: details.epoch,
            round: details.round,
            answer: details.latest_answer,
            timestamp: UNIX_EPOCH + Duration::from_secs(details.latest_timestamp),
            requested,
        });
        if let (Some(m), Some(l)) = (&self.metrics, &latest) {
            let age = SystemTime::now()
                .duration_since(l.timestamp)
                .unwrap_or_default();
            m.answer_age
                .with_label_values(&[feed])
                .set(age.as_secs_f64());
        }
        let mut cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        cache.insert(feed.to_owned(), (Instant::now(), latest.clone()));
        Ok(latest)
    }

    fn finalized(&self, feed: &str, _answer: LatestAnswer) {
        // The contract changes once the report lands: read it afresh next time.
        self.cache
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(feed);
    }
}
