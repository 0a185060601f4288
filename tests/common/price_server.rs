//! A Binance-format spot ticker server (`GET /api/v3/ticker/price?symbol=…` or `symbols=[…]`,
//! ocr-and-sources.md B.1) whose prices the test sets while it runs.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use axum::extract::Query;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{json, Value};

#[derive(Clone)]
pub struct PriceServer {
    pub base: String,
    prices: Arc<Mutex<HashMap<String, String>>>,
    /// While set, every request gets a 503, as from an exchange that is down.
    down: Arc<AtomicBool>,
}

impl PriceServer {
    pub fn start() -> Self {
        Self::start_listening("127.0.0.1")
    }

    /// On a free port of `host` (e.g. the Docker bridge's address, for containers).
    pub fn start_listening(host: &str) -> Self {
        let prices: Arc<Mutex<HashMap<String, String>>> = Arc::default();
        let down: Arc<AtomicBool> = Arc::default();
        let served = prices.clone();
        let is_down = down.clone();
        let app = axum::Router::new().route(
            "/api/v3/ticker/price",
            axum::routing::get(move |Query(q): Query<HashMap<String, String>>| {
                let prices = served.clone();
                let down = is_down.load(Ordering::SeqCst);
                async move {
                    if down {
                        return (StatusCode::SERVICE_UNAVAILABLE, "down for maintenance")
                            .into_response();
                    }
                    ticker(&prices, &q)
                }
            }),
        );
        let base = crate::common::receivers::serve_on(host, app);
        Self { base, prices, down }
    }

    /// Takes the exchange down (every request 503) or brings it back.
    pub fn set_down(&self, down: bool) {
        self.down.store(down, Ordering::SeqCst);
    }

    /// Sets the price of a Binance symbol such as `BTCUSDT`.
    pub fn set(&self, symbol: &str, price: &str) {
        self.prices
            .lock()
            .expect("lock")
            .insert(symbol.to_owned(), price.to_owned());
    }
}

fn ticker(prices: &Mutex<HashMap<String, String>>, q: &HashMap<String, String>) -> Response {
    let prices = prices.lock().expect("lock");
    let entry = |symbol: &str| {
        prices
            .get(symbol)
            .map(|p| json!({"symbol": symbol, "price": p}))
    };
    if let Some(symbol) = q.get("symbol") {
        return match entry(symbol) {
            Some(v) => axum::Json(v).into_response(),
            None => invalid_symbol(),
        };
    }
    let wanted: Vec<String> = match q.get("symbols") {
        Some(list) => serde_json::from_str(list).unwrap_or_default(),
        None => prices.keys().cloned().collect(),
    };
    let mut out = Vec::new();
    for symbol in &wanted {
        match entry(symbol) {
            Some(v) => out.push(v),
            None => return invalid_symbol(),
        }
    }
    axum::Json(Value::from(out)).into_response()
}

fn invalid_symbol() -> Response {
    (
        StatusCode::BAD_REQUEST,
        axum::Json(json!({"code": -1121, "msg": "Invalid symbol."})),
    )
        .into_response()
}
