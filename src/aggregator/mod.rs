//! The price aggregator: one shared, rate-limited gateway between the oracles and the outside
//! price sources. (Built in steps: prices, pairs and the source layer so far.)

pub mod aggregate;
pub mod api;
pub mod cache;
pub mod market_data;
pub mod metrics;
pub mod pair;
pub mod price;
pub mod refresh;
pub mod registry;
pub mod service;
pub mod sources;
pub mod streaming;
pub mod streams;
