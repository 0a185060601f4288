//! Starting an oracle (nodes 2..N): its database, observer, contract state, one protocol instance
//! per feed and, with a chain, the transmitter. With a chain a feed's instance starts once its
//! contract's configuration names this oracle set (the digest and shared secret come from it),
//! and when that configuration changes the feed's instance alone is stopped and started again
//! under the new one, inside the process; without a chain (`chain.enabled: false`) every feed
//! starts at once with a locally derived digest.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::config::schema::chain_options::{ChainOptions, GasType};
use crate::config::schema::feeds::FeedConfig;
use crate::config::Config;
use crate::keys::OracleKeys;
use crate::node::contract::config_tracker::{self, TrackError};
use crate::node::contract::contract_reader::ChainContractState;
use crate::node::contract::contract_state::{FinalizedContractState, LatestAnswer};
use crate::node::contract::oracle_set::OracleSet;
use crate::node::contract::OnchainMetrics;
use crate::node::evm::{AggregatorContract, ChainMetrics, GasKind, GasPolicy, RpcClient, TxSender};
use crate::node::feed::shared::Shared;
use crate::node::feed::status::NodeStatus;
use crate::node::feed::task::{FeedTask, Input, INBOX};
use crate::node::metrics::NodeMetrics;
use crate::node::ocr1::leader::leader_selection_key;
use crate::node::ocr1::types::{ConfigDigest, EpochRound};
use crate::node::protocol::config::InstanceConfig;
use crate::node::protocol::fence::{self, ChainPosition, Fence};
use crate::node::runtime::api::OracleApi;
use crate::node::runtime::error::NodeError;
use crate::node::store::Store;
use crate::node::tasks::NodeTasks;
use crate::node::transmission::schedule::Schedule;
use crate::node::transmission::transmitter::{ToTransmit, Transmitter};

pub type Routes = Arc<RwLock<HashMap<ConfigDigest, mpsc::Sender<Input>>>>;

/// What starting one feed's instance needs.
pub struct Starter {
    pub config: Arc<Config>,
    pub set: OracleSet,
    pub me: u8,
    pub own_offchain: ed25519_dalek::SigningKey,
    pub store: Store,
    pub shared: Arc<Shared>,
    pub routes: Routes,
    pub api: Arc<OracleApi>,
    pub local_contract: Option<Arc<FinalizedContractState>>,
    /// The transmitter's schedule (with a chain), which learns each configuration's secret here.
    pub schedule: Option<Schedule>,
}

/// One feed's running protocol instance, as [`Starter::start`] left it.
pub struct Running {
    feed: String,
    pub digest: ConfigDigest,
    scope: NodeTasks,
    task: JoinHandle<()>,
}

impl Starter {
    /// Starts `feed`'s instance under `digest`, with the leader key from `secret`, fenced by the
    /// contract's position `chain` (`None`: no chain). Its tasks run in `scope`, which stops it.
    pub async fn start(
        &self,
        feed: &FeedConfig,
        digest: ConfigDigest,
        secret: &[u8; 16],
        chain: Option<ChainPosition>,
        scope: NodeTasks,
    ) -> Result<Running, NodeError> {
        if let Some(latest) = self.store.latest_finalized(&feed.name, digest).await? {
            // The gauges an alert on feed freshness reads exist from the start, not only after
            // the next report.
            let m = &self.shared.metrics;
            m.latest_answer.with_label_values(&[&feed.name]).set(
                crate::node::feed::task::decimal_f64(latest.answer, feed.decimals),
            );
            let at = latest
                .finalized_at
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap_or_default();
            m.latest_report_time
                .with_label_values(&[&feed.name])
                .set(at.as_secs_f64());
            if let Some(local) = &self.local_contract {
                local.record(
                    &feed.name,
                    LatestAnswer {
                        digest,
                        epoch: latest.epoch,
                        round: latest.round,
                        answer: latest.answer,
                        timestamp: latest.finalized_at,
                        requested: None,
                    },
                );
            }
        }
        if let Some(schedule) = &self.schedule {
            schedule.learn(digest, secret);
        }
        let n = self.set.oracles.len();
        let stored = self.store.pacemaker(digest).await?;
        let remembered = self.store.highest_position(digest).await?;
        let fenced = fence::fence(digest, n, stored, remembered, chain);
        report_fence(&feed.name, digest, chain, &fenced, &self.shared.metrics);
        let c = &self.config.consensus;
        let cfg = Arc::new(InstanceConfig {
            feed: feed.name.clone(),
            digest,
            n,
            f: c.f,
            me: self.me,
            r_max: c.r_max,
            delta_progress: c.delta_progress,
            delta_resend: c.delta_resend,
            delta_round: c.delta_round,
            delta_grace: c.delta_grace,
            leader_key: leader_selection_key(secret),
            offchain_keys: self.set.offchain_keys()?,
            signers: self.set.signers(),
            offchain_key: self.own_offchain.clone(),
            signing_floor: fenced.floor,
        });
        let (tx, rx) = mpsc::channel(INBOX);
        self.routes
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .insert(digest, tx.clone());
        let task = FeedTask::new(
            feed.clone(),
            cfg,
            fenced.start,
            self.shared.clone(),
            tx,
            scope.clone(),
        );
        let task = scope.spawn(task.run(rx));
        self.api
            .feeds
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .push((feed.clone(), digest));
        tracing::info!(feed = %feed.name, digest = %digest, "protocol instance started");
        Ok(Running {
            feed: feed.name.clone(),
            digest,
            scope,
            task,
        })
    }

    /// Stops a running instance: cancels its tasks, waits for its loop to end and stops routing
    /// messages to it (its digest's messages are then counted as `unknown_digest`).
    pub async fn stop(&self, running: Running) {
        running.scope.cancel();
        if let Err(e) = running.task.await {
            tracing::error!(feed = %running.feed, error = %e, "the protocol instance's task failed");
        }
        self.routes
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&running.digest);
        self.api
            .feeds
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .retain(|(f, d)| !(f.name == running.feed && *d == running.digest));
        tracing::info!(feed = %running.feed, digest = %running.digest, "protocol instance stopped");
    }
}

/// Says what the rollback fence decided: one warn line when the database is behind the chain,
/// and the `enclave_node_database_behind_chain` gauge whenever there was a contract to compare.
fn report_fence(
    feed: &str,
    digest: ConfigDigest,
    chain: Option<ChainPosition>,
    fenced: &Fence,
    metrics: &NodeMetrics,
) {
    let Some(chain) = chain else { return };
    let behind_gauge = metrics.database_behind_chain.with_label_values(&[feed]);
    if chain.digest != digest {
        behind_gauge.set(0);
        tracing::info!(%feed, digest = %digest, contract_digest = %chain.digest, "the contract holds another configuration: nothing to fence against");
        return;
    }
    let announce = fenced.start.highest_sent;
    match fenced.behind {
        Some(behind) => {
            behind_gauge.set(1);
            let local = behind
                .local
                .map_or_else(|| "nothing".to_owned(), |l| l.to_string());
            tracing::warn!(
                %feed,
                digest = %digest,
                database = %local,
                chain = %behind.chain,
                announce_epoch = announce,
                "the database is behind the chain (restored or rolled back, or reports were made while this oracle was down): fenced, signing only above the contract's latest epoch/round"
            );
        }
        None => {
            behind_gauge.set(0);
            tracing::info!(%feed, digest = %digest, chain = %chain.latest, announce_epoch = announce, "rollback fence: signing only above the contract's latest report");
        }
    }
}

/// The chain side of an oracle.
pub struct ChainParts {
    pub contracts: HashMap<String, AggregatorContract>,
    pub contract_state: Arc<ChainContractState>,
    pub transmissions: mpsc::Sender<ToTransmit>,
    pub transmitter: Arc<Transmitter>,
    pub queue: mpsc::Receiver<ToTransmit>,
}

pub fn gas_policy(options: &ChainOptions) -> GasPolicy {
    GasPolicy {
        kind: match options.gas_type {
            GasType::Legacy => GasKind::Legacy {
                gas_price_wei: options.gas_price_wei,
            },
            GasType::Eip1559 => GasKind::Eip1559 {
                max_fee_per_gas_wei: options.max_fee_per_gas_wei,
                max_priority_fee_per_gas_wei: options.max_priority_fee_per_gas_wei,
            },
        },
        gas_limit: options.gas_limit,
        max_gas_price_wei: options.max_gas_price_wei,
        bump_percent: options.gas_bump_percent,
    }
}

/// An RPC client for the configured chain. It does not contact the node: an unreachable RPC at
/// start must not crash-loop the service (see [`watch_chain_id`]).
pub fn rpc_client(
    config: &Config,
    metrics: Option<Arc<ChainMetrics>>,
) -> Result<Arc<RpcClient>, NodeError> {
    let mut rpc = RpcClient::new(
        config.chain.rpc_http_url.expose().clone(),
        config.chain_options.rpc_timeout,
    )?;
    if let Some(m) = metrics {
        rpc = rpc.with_metrics(m);
    }
    Ok(Arc::new(rpc))
}

/// Asks the endpoint for its chain id until it answers or `stop` is cancelled. Another chain than
/// configured is returned as an error: the node stops on it (sending transactions signed for one
/// chain to another is never right), through its normal shutdown.
pub async fn watch_chain_id(
    rpc: Arc<RpcClient>,
    expected: u64,
    retry: Duration,
    stop: CancellationToken,
) -> Result<(), NodeError> {
    loop {
        let checked = tokio::select! {
            checked = rpc.check_chain_id(expected) => checked,
            _ = stop.cancelled() => return Ok(()),
        };
        match checked {
            Ok(()) => return Ok(()),
            Err(crate::node::evm::ChainError::WrongChain { expected, got }) => {
                return Err(NodeError::WrongChain { expected, got })
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot check the chain id yet; retrying");
                tokio::select! {
                    _ = tokio::time::sleep(retry) => {}
                    _ = stop.cancelled() => return Ok(()),
                }
            }
        }
    }
}

#[allow(clippy::too_many_arguments)]
pub async fn chain_parts(
    config: &Config,
    rpc: Arc<RpcClient>,
    own: &OracleKeys,
    me: u8,
    set: &OracleSet,
    store: Store,
    registry: &prometheus::Registry,
    chain_metrics: Arc<ChainMetrics>,
) -> Result<ChainParts, NodeError> {
    let options = &config.chain_options;
    let metrics = Arc::new(OnchainMetrics::register(registry)?);
    let contracts: HashMap<String, AggregatorContract> = config
        .feeds
        .iter()
        .map(|f| {
            let address = alloy_primitives::Address::from(f.contract_address.0);
            (
                f.name.clone(),
                AggregatorContract::new(rpc.clone(), address)
                    .with_max_log_range(options.max_log_range),
            )
        })
        .collect();
    let sender = TxSender::new(
        rpc.clone(),
        config.chain.chain_id,
        own.transmitter().clone(),
        gas_policy(options),
    )?
    .with_metrics(chain_metrics);
    let from = sender.address();
    // A round's followers decide within ΔGrace of each other: one read serves them all.
    let ttl = (config.consensus.delta_round / 2).min(Duration::from_secs(5));
    let contract_state = Arc::new(ChainContractState::new(
        contracts.clone(),
        from,
        ttl,
        Some(metrics.clone()),
    ));
    let schedule = Schedule::new(
        config.consensus.transmission_schedule.clone(),
        config.consensus.delta_stage,
        set.oracles.len(),
    );
    let transmitter = Arc::new(Transmitter {
        contracts: contracts.clone(),
        sender: Arc::new(sender),
        schedule,
        me,
        store,
        receipt_timeout: options.receipt_timeout,
        rebroadcast_after: options.rebroadcast_after,
        metrics,
        last: Mutex::new(HashMap::new()),
        bounds: Mutex::new(HashMap::new()),
        out_of_bounds_logged: Mutex::new(HashMap::new()),
    });
    let (transmissions, queue) = mpsc::channel(1024);
    Ok(ChainParts {
        contracts,
        contract_state,
        transmissions,
        transmitter,
        queue,
    })
}

/// Follows `feed`'s contract for as long as `scope` runs: joins its configuration (see
/// [`join_configuration`]), and when the contract's configuration changes stops the feed's
/// instance and joins the new one, counted in `enclave_node_feed_reconfigurations_total`.
pub async fn follow_contract(
    starter: Arc<Starter>,
    feed: FeedConfig,
    contract: AggregatorContract,
    reader: Arc<ChainContractState>,
    config_key: x25519_dalek::StaticSecret,
    scope: NodeTasks,
) {
    let poll = starter.config.chain_options.contract_poll_interval;
    let stop = scope.token();
    loop {
        let Some(running) =
            join_configuration(&starter, &feed, &contract, &reader, &config_key, &scope).await
        else {
            return;
        };
        match watch_configuration(&contract, running.digest, poll, &stop).await {
            Watched::Stopped => return,
            Watched::Changed { new } => {
                tracing::warn!(feed = %feed.name, old = %running.digest, %new, "the contract's configuration changed; restarting the feed's protocol instance to join it");
                starter
                    .shared
                    .metrics
                    .feed_reconfigurations
                    .with_label_values(&[&feed.name])
                    .inc();
                starter.stop(running).await;
            }
        }
    }
}

/// How watching a running instance's contract configuration ended.
#[derive(Debug, PartialEq, Eq)]
enum Watched {
    /// The node (or the feed) is stopping.
    Stopped,
    /// The contract now holds another configuration than the instance's.
    Changed { new: ConfigDigest },
}

/// Reads the contract's configuration digest every `poll` until it is no longer `digest`.
async fn watch_configuration(
    contract: &AggregatorContract,
    digest: ConfigDigest,
    poll: Duration,
    stop: &CancellationToken,
) -> Watched {
    loop {
        tokio::select! {
            _ = tokio::time::sleep(poll) => {}
            _ = stop.cancelled() => return Watched::Stopped,
        }
        let details = tokio::select! {
            details = contract.latest_config_details() => details,
            _ = stop.cancelled() => return Watched::Stopped,
        };
        if let Ok(details) = details {
            if details.digest != digest {
                return Watched::Changed {
                    new: details.digest,
                };
            }
        }
    }
}

/// Waits for `feed`'s contract configuration and its latest transmission (the rollback fence),
/// then starts the instance in a scope of its own (`None`: stopping, or it cannot start).
async fn join_configuration(
    starter: &Starter,
    feed: &FeedConfig,
    contract: &AggregatorContract,
    reader: &ChainContractState,
    config_key: &x25519_dalek::StaticSecret,
    scope: &NodeTasks,
) -> Option<Running> {
    let poll = starter.config.chain_options.contract_poll_interval;
    let stop = scope.token();
    let mut problems = ProblemLog::default();
    let onchain = loop {
        let read = config_tracker::read(
            contract,
            &starter.config,
            feed,
            &starter.set,
            usize::from(starter.me),
            config_key,
        );
        let read = tokio::select! {
            read = read => read,
            _ = stop.cancelled() => return None,
        };
        match read {
            Ok(onchain) => break onchain,
            Err(e) => {
                let text = e.to_string();
                if problems.should_log(&text, Instant::now()) {
                    match &e {
                        TrackError::Chain { .. } => {
                            tracing::warn!(error = %text, "cannot read the contract configuration; retrying")
                        }
                        // What the oracle waits for at a normal boot: node 1 is on it.
                        e if e.awaits_node_1(&starter.config) => {
                            tracing::info!(reason = %text, "feed not started yet")
                        }
                        TrackError::NotConfigured { .. } => {
                            tracing::info!(reason = %text, "feed not started yet")
                        }
                        _ => tracing::error!(error = %text, "feed not started"),
                    }
                }
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(poll) => {}
            _ = stop.cancelled() => return None,
        }
    };
    let position = read_chain_position(
        &feed.name,
        reader,
        &starter.shared.status,
        stop.clone(),
        FENCE_RETRY_MAX,
    )
    .await?;
    let running = match starter
        .start(
            feed,
            onchain.digest,
            &onchain.shared_secret,
            Some(position),
            scope.child(),
        )
        .await
    {
        Ok(running) => running,
        Err(e) => {
            tracing::error!(feed = %feed.name, error = %e, "cannot start the protocol instance");
            return None;
        }
    };
    if let Some(queue) = &starter.shared.transmissions {
        if let Err(e) = requeue_pending(&starter.store, feed, onchain.digest, queue).await {
            tracing::warn!(feed = %feed.name, error = %e, "cannot re-queue pending transmissions");
        }
    }
    Some(running)
}

/// How often a problem that stays the same is logged again while an oracle waits for its
/// contract's configuration.
const PROBLEM_REPEAT: Duration = Duration::from_secs(600);

/// Logs a waiting oracle's problem when it changes, and again every [`PROBLEM_REPEAT`].
#[derive(Default)]
struct ProblemLog {
    last: Option<(String, Instant)>,
}

impl ProblemLog {
    fn should_log(&mut self, text: &str, now: Instant) -> bool {
        let repeat = match &self.last {
            Some((last, at)) => last != text || now.duration_since(*at) >= PROBLEM_REPEAT,
            None => true,
        };
        if repeat {
            self.last = Some((text.to_owned(), now));
        }
        repeat
    }
}

/// Longest pause between attempts to read the contract's latest transmission at start.
const FENCE_RETRY_MAX: Duration = Duration::from_secs(30);
/// While the contract cannot be read, the log repeats at most this often.
const FENCE_LOG_EVERY: Duration = Duration::from_secs(60);

/// Reads `feed`'s contract position for the rollback fence, retrying with backoff for as long as
/// it takes (`None`: the node is stopping). The feed does not start, and so signs nothing, until
/// then: an oracle whose database may have been rolled back must not sign blind, and the DON
/// carries on without it (it tolerates f absent oracles). `/health` and the log say so meanwhile.
pub async fn read_chain_position(
    feed: &str,
    reader: &ChainContractState,
    status: &NodeStatus,
    stop: CancellationToken,
    retry_max: Duration,
) -> Option<ChainPosition> {
    let mut attempt: u32 = 0;
    let mut last_log: Option<(std::time::Instant, String)> = None;
    loop {
        let read = tokio::select! {
            read = reader.transmission_details(feed) => read,
            _ = stop.cancelled() => return None,
        };
        match read {
            Ok(details) => {
                status.not_waiting(feed);
                if attempt > 0 {
                    tracing::info!(%feed, attempts = attempt + 1, "read the contract's latest transmission; starting");
                }
                return Some(ChainPosition {
                    digest: details.digest,
                    latest: details.epoch_round(),
                });
            }
            Err(e) => {
                attempt = attempt.saturating_add(1);
                let error = bounded(&e.to_string());
                let delay = fence::retry_delay(attempt, retry_max);
                status.waiting(
                    feed,
                    format!("cannot read its contract's latest transmission, so signs nothing yet (rollback fence; attempt {attempt}, next in {} s): {error}", delay.as_secs()),
                );
                let due = last_log
                    .as_ref()
                    .is_none_or(|(at, text)| *text != error || at.elapsed() >= FENCE_LOG_EVERY);
                if due {
                    tracing::warn!(%feed, attempt, error = %error, "cannot read the contract's latest transmission; the feed does not start (and signs nothing) until it can: retrying");
                    last_log = Some((std::time::Instant::now(), error));
                }
                tokio::select! {
                    _ = tokio::time::sleep(delay) => {}
                    _ = stop.cancelled() => return None,
                }
            }
        }
    }
}

/// At most 300 characters of an error from the RPC endpoint (which the node does not control).
fn bounded(text: &str) -> String {
    const MAX: usize = 300;
    let mut out: String = text
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .take(MAX)
        .collect();
    if text.chars().count() > MAX {
        out.push('…');
    }
    out
}

/// Re-queues the pending transmissions a previous run left (younger than ΔC; older are dropped).
pub async fn requeue_pending(
    store: &Store,
    feed: &FeedConfig,
    digest: ConfigDigest,
    queue: &mpsc::Sender<ToTransmit>,
) -> Result<(), NodeError> {
    for r in store
        .take_pending(&feed.name, digest, feed.heartbeat)
        .await?
    {
        let _ = queue
            .send(ToTransmit {
                feed: feed.name.clone(),
                digest,
                er: EpochRound {
                    epoch: r.epoch,
                    round: r.round,
                },
                report: r.report,
                signatures: r.signatures,
                median: r.answer,
                alpha_ppb: feed.alpha_ppb,
                delta_c: feed.heartbeat,
                finalized_at: r.finalized_at,
            })
            .await;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_waiting_oracle_logs_a_problem_when_it_changes_and_then_every_ten_minutes() {
        let mut log = ProblemLog::default();
        let t0 = Instant::now();
        assert!(log.should_log("not configured", t0));
        assert!(!log.should_log("not configured", t0 + Duration::from_secs(1)));
        assert!(!log.should_log("not configured", t0 + Duration::from_secs(599)));
        assert!(log.should_log("not configured", t0 + PROBLEM_REPEAT));
        assert!(log.should_log("differs: signers", t0 + PROBLEM_REPEAT));
        assert!(log.should_log("not configured", t0 + PROBLEM_REPEAT));
    }

    use alloy_primitives::Address;

    #[tokio::test]
    async fn a_contract_that_cannot_be_read_holds_the_feed_back_and_says_why_until_stopped() {
        // A port nothing listens on: every read fails at once, as with a dead RPC.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("free port")
            .port();
        let url = format!("http://127.0.0.1:{port}/").parse().expect("url");
        let rpc = Arc::new(RpcClient::new(url, Duration::from_secs(1)).expect("client"));
        let contract = AggregatorContract::new(rpc, Address::repeat_byte(1));
        let reader = ChainContractState::new(
            HashMap::from([("BTC-USD".to_owned(), contract)]),
            Address::repeat_byte(2),
            Duration::from_secs(1),
            None,
        );
        let status = NodeStatus::default();
        let stop = CancellationToken::new();
        let read = read_chain_position(
            "BTC-USD",
            &reader,
            &status,
            stop.clone(),
            Duration::from_millis(20),
        );
        tokio::pin!(read);
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        loop {
            tokio::select! {
                outcome = &mut read => panic!("gave up reading: {outcome:?}"),
                _ = tokio::time::sleep(Duration::from_millis(10)) => {}
            }
            if status
                .waiting_for("BTC-USD")
                .is_some_and(|why| why.contains("attempt 3"))
            {
                break;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "no retries: {:?}",
                status.waiting_for("BTC-USD")
            );
        }
        let why = status.waiting_for("BTC-USD").expect("a reason");
        assert!(
            why.contains("cannot read its contract's latest transmission, so signs nothing yet"),
            "{why}"
        );
        stop.cancel();
        let outcome = tokio::time::timeout(Duration::from_secs(5), read)
            .await
            .expect("stops promptly");
        assert_eq!(outcome, None);
    }

    #[test]
    fn errors_from_the_rpc_are_bounded_and_flattened_before_they_are_shown() {
        let long = format!("line one\nline two\u{1b}[31m{}", "x".repeat(1000));
        let shown = bounded(&long);
        assert!(!shown.chars().any(char::is_control), "{shown:?}");
        assert_eq!(shown.chars().count(), 301);
        assert!(shown.ends_with('…'));
        assert_eq!(bounded("short"), "short");
    }
}
