//! The chain id check done before anything is signed: a transaction signed for chain A is valid
//! only on A (EIP-155), so sending to a node of another chain fails at best, and reads from it
//! would be about the wrong contracts.

use super::error::ChainError;
use super::rpc::RpcClient;

impl RpcClient {
    /// `Ok(())` when the node serves `expected`, else [`ChainError::WrongChain`].
    pub async fn check_chain_id(&self, expected: u64) -> Result<(), ChainError> {
        let got = self.chain_id().await?;
        if got != expected {
            tracing::error!(endpoint = %self.endpoint(), expected, got, "the RPC endpoint serves another chain");
            return Err(ChainError::WrongChain { expected, got });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use serde_json::json;

    use super::*;
    use crate::node::evm::error::ErrorClass;
    use crate::node::evm::test_support::MockNode;

    #[tokio::test]
    async fn the_chain_id_must_match() {
        let node = MockNode::start(|_, _| json!({"result": "0x15eb"})).await;
        let rpc = RpcClient::new(node.url(), Duration::from_secs(5)).expect("client");
        rpc.check_chain_id(5611).await.expect("opBNB testnet");
        let e = rpc.check_chain_id(204).await.expect_err("mainnet expected");
        assert!(matches!(
            e,
            ChainError::WrongChain {
                expected: 204,
                got: 5611
            }
        ));
        assert_eq!(e.class(), ErrorClass::Fatal);
    }
}
