//! The enabled sources, built from the configuration.

use std::collections::BTreeMap;
use std::sync::Arc;

use super::sources::{
    alphavantage, binance, bybit, coinbase, coingecko, cryptocompare, exchangerate_host, finnhub,
    frankfurter, kraken, kucoin, okx, yahoo_finance, Source, SourceError,
};
use crate::config::schema::aggregator::AggregatorConfig;
use crate::config::schema::sources::SourceId;

/// One adapter per enabled source, each with its own HTTP client, proxy and limits.
pub fn build(
    config: &AggregatorConfig,
) -> Result<BTreeMap<SourceId, Arc<dyn Source>>, SourceError> {
    let proxy = config.proxy.as_ref();
    let mut out: BTreeMap<SourceId, Arc<dyn Source>> = BTreeMap::new();
    for (id, source) in config.sources.iter().filter(|(_, s)| s.enabled) {
        let adapter: Arc<dyn Source> = match id {
            SourceId::AlphaVantage => Arc::new(alphavantage::AlphaVantage::new(source, proxy)?),
            SourceId::CoinGecko => Arc::new(coingecko::CoinGecko::new(source, proxy)?),
            SourceId::CryptoCompare => Arc::new(cryptocompare::CryptoCompare::new(source, proxy)?),
            SourceId::Finnhub => Arc::new(finnhub::Finnhub::new(source, proxy)?),
            SourceId::ExchangeRateHost => {
                Arc::new(exchangerate_host::ExchangeRateHost::new(source, proxy)?)
            }
            SourceId::Frankfurter => Arc::new(frankfurter::Frankfurter::new(source, proxy)?),
            SourceId::Kucoin => Arc::new(kucoin::Kucoin::new(source, proxy)?),
            SourceId::YahooFinance => Arc::new(yahoo_finance::YahooFinance::new(source, proxy)?),
            SourceId::Binance => Arc::new(binance::Binance::new(source, proxy)?),
            SourceId::Bybit => Arc::new(bybit::Bybit::new(source, proxy)?),
            SourceId::Coinbase => Arc::new(coinbase::Coinbase::new(source, proxy)?),
            SourceId::Kraken => Arc::new(kraken::Kraken::new(source, proxy)?),
            SourceId::Okx => Arc::new(okx::Okx::new(source, proxy)?),
        };
        out.insert(*id, adapter);
    }
    Ok(out)
}
