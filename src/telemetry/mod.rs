//! Telemetry: every component pushes its Prometheus metrics outward (nothing can scrape inside a
//! TEE) and serves them locally.

mod backlog;
pub mod encode;
pub mod push;
pub mod sample;
pub mod server;
pub mod target;
#[cfg(test)]
pub mod testing;

pub use push::Pusher;
pub use target::Identity;

use crate::config::schema::telemetry::PushTarget;
use crate::config::Config;

/// Registers `metric` with `registry` and returns it, so a metrics struct registers each field
/// where it is made rather than in a second list that must be kept in step with the first.
pub fn register<M>(registry: &prometheus::Registry, metric: M) -> Result<M, prometheus::Error>
where
    M: prometheus::core::Collector + Clone + 'static,
{
    registry.register(Box::new(metric.clone()))?;
    Ok(metric)
}

/// The targets a service pushes to: the `telemetry` section's, plus, for the price aggregator,
/// the reference's `priceAggregatorConfig.metricsPush`.
pub fn targets_for(config: &Config, include_aggregator_push: bool) -> Vec<PushTarget> {
    let mut targets = config.telemetry.targets.clone();
    if include_aggregator_push {
        targets.extend(config.aggregator.metrics_push.clone());
    }
    targets
}

/// The identity a service pushes under: job = its name, instance = `telemetry.instance`, else
/// `chainlinkNodeName`.
pub fn identity(config: &Config, job: &str) -> Identity {
    Identity {
        job: job.to_owned(),
        instance: config
            .telemetry
            .instance
            .clone()
            .unwrap_or_else(|| config.chain.node_name.clone()),
    }
}
