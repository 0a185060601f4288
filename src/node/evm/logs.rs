//! Event logs: one `eth_getLogs` call, and a paged scan over long block ranges.
//!
//! Public RPC endpoints cap eth_getLogs by block range (BSC/opBNB public nodes: 5000 blocks) or
//! by result count ("limit exceeded", ocr-and-sources.md A.4 item 2), and OCR1 looks back ΔC =
//! 24 h ≈ 86k–173k opBNB blocks for `RoundRequested`. So a range is read in chunks of at most
//! `max_range` blocks, and a chunk the node refuses is halved until it passes.

use std::future::Future;

use alloy_primitives::{Address, B256};
use serde_json::json;

use super::error::ChainError;
use super::rpc::RpcClient;
use super::types::{quantity, Log};

/// One eth_getLogs query: logs of `address` (optionally with this topic0) in
/// `from_block..=to_block`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LogFilter {
    pub address: Address,
    pub topic0: Option<B256>,
    pub from_block: u64,
    pub to_block: u64,
}

impl RpcClient {
    /// The logs matching `filter`, in chain order, without logs a reorganisation removed.
    pub async fn logs(&self, filter: &LogFilter) -> Result<Vec<Log>, ChainError> {
        let topics = match filter.topic0 {
            Some(topic) => json!([topic]),
            None => json!([]),
        };
        let params = json!([{
            "address": filter.address,
            "topics": topics,
            "fromBlock": quantity(filter.from_block),
            "toBlock": quantity(filter.to_block),
        }]);
        let logs: Vec<Log> = self.request("eth_getLogs", params).await?;
        Ok(logs.into_iter().filter(|l| !l.removed).collect())
    }

    /// Logs of `address` with `topic0` in `from..=to`, read in chunks of at most `max_range`
    /// blocks; a chunk the node refuses as too large is halved (down to one block).
    pub async fn get_logs_paged(
        &self,
        address: Address,
        topic0: B256,
        from: u64,
        to: u64,
        max_range: u64,
    ) -> Result<Vec<Log>, ChainError> {
        page(from, to, max_range, |from_block, to_block| async move {
            self.logs(&LogFilter {
                address,
                topic0: Some(topic0),
                from_block,
                to_block,
            })
            .await
        })
        .await
    }
}

/// The paging loop, over any fetch function (so it is testable without a node). The chunk
/// size stays halved once the node refused it: growing it again would re-trigger the refusal
/// and cost a wasted request per chunk.
pub async fn page<T, F, Fut>(
    from: u64,
    to: u64,
    max_range: u64,
    mut fetch: F,
) -> Result<Vec<T>, ChainError>
where
    F: FnMut(u64, u64) -> Fut,
    Fut: Future<Output = Result<Vec<T>, ChainError>>,
{
    let mut out = Vec::new();
    let mut chunk = max_range.max(1);
    let mut start = from;
    while start <= to {
        let end = chunk_end(start, to, chunk);
        match fetch(start, end).await {
            Ok(items) => {
                out.extend(items);
                match end.checked_add(1) {
                    Some(next) => start = next,
                    None => break,
                }
            }
            Err(ChainError::LogRangeTooLarge { message }) if end > start => {
                let refused_size = end - start + 1;
                chunk = refused_size / 2;
                tracing::debug!(from = start, to = end, chunk, %message, "eth_getLogs range refused; halving");
            }
            Err(e) => return Err(e),
        }
    }
    Ok(out)
}

/// Last block of the chunk of `size` blocks starting at `start`, not beyond `to`.
pub fn chunk_end(start: u64, to: u64, size: u64) -> u64 {
    start.saturating_add(size.max(1) - 1).min(to)
}

#[cfg(test)]
mod tests {
    use std::cell::RefCell;
    use std::time::Duration;

    use super::*;
    use crate::node::evm::test_support::MockNode;

    fn too_large() -> ChainError {
        ChainError::LogRangeTooLarge {
            message: "exceed maximum block range: 5000".into(),
        }
    }

    #[test]
    fn chunk_arithmetic_covers_the_range_exactly() {
        assert_eq!(chunk_end(0, 100, 10), 9);
        assert_eq!(chunk_end(95, 100, 10), 100);
        assert_eq!(chunk_end(5, 5, 10), 5);
        assert_eq!(chunk_end(u64::MAX - 1, u64::MAX, 10), u64::MAX);
        assert_eq!(chunk_end(7, 100, 0), 7);
    }

    #[tokio::test]
    async fn ranges_are_split_into_max_range_chunks() {
        let calls = RefCell::new(Vec::new());
        let items = page(100, 12_345, 5000, |a, b| {
            calls.borrow_mut().push((a, b));
            async move { Ok::<_, ChainError>(vec![(a, b)]) }
        })
        .await
        .expect("paged");
        let expected = vec![(100, 5099), (5100, 10_099), (10_100, 12_345)];
        assert_eq!(calls.into_inner(), expected);
        assert_eq!(items, expected);
        // An empty range (from > to) asks nothing.
        let none = page(10, 9, 5, |_, _| async { Ok::<Vec<u8>, _>(vec![1]) })
            .await
            .expect("empty");
        assert!(none.is_empty());
        // The very end of the u64 range terminates.
        let tail = page(
            u64::MAX - 2,
            u64::MAX,
            2,
            |a, b| async move { Ok(vec![(a, b)]) },
        )
        .await
        .expect("tail");
        assert_eq!(
            tail,
            vec![(u64::MAX - 2, u64::MAX - 1), (u64::MAX, u64::MAX)]
        );
    }

    #[tokio::test]
    async fn refused_chunks_are_halved_until_accepted() {
        // The node accepts at most 1000 blocks per query.
        let calls = RefCell::new(Vec::new());
        let items = page(0, 2999, 5000, |a, b| {
            calls.borrow_mut().push((a, b));
            async move {
                if b - a + 1 > 1000 {
                    Err(too_large())
                } else {
                    Ok(vec![(a, b)])
                }
            }
        })
        .await
        .expect("paged");
        assert_eq!(
            calls.into_inner(),
            vec![
                (0, 2999), // refused
                (0, 1499), // refused
                (0, 749),  // accepted; the chunk stays 750
                (750, 1499),
                (1500, 2249),
                (2250, 2999),
            ]
        );
        assert_eq!(items.len(), 4);
    }

    #[tokio::test]
    async fn a_single_refused_block_and_other_errors_are_returned() {
        let e = page(7, 7, 100, |_, _| async { Err::<Vec<u8>, _>(too_large()) })
            .await
            .expect_err("one block refused");
        assert_eq!(e.kind(), "range_too_large");
        let e = page(0, 99, 10, |_, _| async {
            Err::<Vec<u8>, _>(ChainError::Rpc {
                method: "eth_getLogs",
                code: -32000,
                message: "boom".into(),
            })
        })
        .await
        .expect_err("other errors stop the scan");
        assert_eq!(e.kind(), "rpc_error");
    }

    #[tokio::test]
    async fn paged_logs_against_a_node_that_limits_results() {
        let contract: Address = "0x2b5ad5c4795c026514f8317c7a215e218dccd6cf"
            .parse()
            .expect("addr");
        let topic = B256::repeat_byte(0x3e);
        let node = MockNode::start(move |method, params| {
            assert_eq!(method, "eth_getLogs");
            let from = u64::from_str_radix(
                params[0]["fromBlock"]
                    .as_str()
                    .unwrap_or("0x0")
                    .trim_start_matches("0x"),
                16,
            )
            .unwrap_or(0);
            let to = u64::from_str_radix(
                params[0]["toBlock"]
                    .as_str()
                    .unwrap_or("0x0")
                    .trim_start_matches("0x"),
                16,
            )
            .unwrap_or(0);
            if to - from >= 64 {
                return serde_json::json!({"error": {"code": -32005, "message": "limit exceeded"}});
            }
            // One log every 50 blocks, one of them removed by a reorg.
            let logs: Vec<_> = (from..=to)
                .filter(|b| b % 50 == 0)
                .map(|b| {
                    serde_json::json!({
                        "address": "0x2b5ad5c4795c026514f8317c7a215e218dccd6cf",
                        "topics": [format!("0x{}", "3e".repeat(32))],
                        "data": "0x",
                        "blockNumber": quantity(b),
                        "logIndex": "0x0",
                        "removed": b == 100,
                    })
                })
                .collect();
            serde_json::json!({"result": logs})
        })
        .await;
        let rpc = RpcClient::new(node.url(), Duration::from_secs(5)).expect("client");
        let logs = rpc
            .get_logs_paged(contract, topic, 1, 300, 200)
            .await
            .expect("logs");
        let blocks: Vec<u64> = logs.iter().filter_map(|l| l.block_number).collect();
        assert_eq!(blocks, vec![50, 150, 200, 250, 300]);
    }
}
