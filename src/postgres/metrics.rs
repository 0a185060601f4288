//! PostgreSQL metrics for telemetry, read as the superuser from `pg_stat_database`.
//!
//! The server's statistics are already cumulative counters, so rather than mirroring them into
//! prometheus counters (which can only be incremented), a collector caches the last reading and
//! renders it with the right types on each scrape. A counter that goes down after a statistics
//! reset or a server restart is what Prometheus' `rate()` already treats as a counter reset.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use prometheus::core::{Collector, Desc};
use prometheus::proto::{LabelPair, Metric, MetricFamily, MetricType};
use prometheus::Registry;
use sqlx::postgres::{PgPool, PgPoolOptions};

use super::db::{self, DbError};
use super::layout::Credentials;

/// A scrape must finish well within a telemetry interval, even against a hung server.
const TIMEOUT: Duration = Duration::from_secs(5);

const DATABASE_LABEL: &str = "database";

/// One server reading of one database; fields named as the query's columns.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
struct DatabaseStats {
    name: String,
    #[sqlx(try_from = "i32")]
    connections: i64,
    /// None when the database was dropped between listing it and measuring it.
    size_bytes: Option<i64>,
    committed: i64,
    rolled_back: i64,
    deadlocks: i64,
    checksum_failures: i64,
}

/// The last reading. `Default` is "down": nothing but `up 0`.
#[derive(Debug, Default)]
struct Snapshot {
    up: bool,
    max_connections: Option<i64>,
    databases: Vec<DatabaseStats>,
}

/// Where a family's samples come from.
#[derive(Clone, Copy)]
enum Source {
    Up,
    MaxConnections,
    PerDatabase(fn(&DatabaseStats) -> Option<i64>),
}

struct Family {
    name: &'static str,
    help: &'static str,
    kind: MetricType,
    source: Source,
}

const FAMILIES: [Family; 8] = [
    Family {
        name: "enclave_postgres_up",
        help: "Whether the last query of the PostgreSQL server succeeded (1) or not (0).",
        kind: MetricType::GAUGE,
        source: Source::Up,
    },
    Family {
        name: "enclave_postgres_max_connections",
        help: "The server's max_connections setting.",
        kind: MetricType::GAUGE,
        source: Source::MaxConnections,
    },
    Family {
        name: "enclave_postgres_connections",
        help: "Backends connected to the database (pg_stat_database.numbackends).",
        kind: MetricType::GAUGE,
        source: Source::PerDatabase(|d| Some(d.connections)),
    },
    Family {
        name: "enclave_postgres_database_size_bytes",
        help: "Disk space used by the database (pg_database_size).",
        kind: MetricType::GAUGE,
        source: Source::PerDatabase(|d| d.size_bytes),
    },
    Family {
        name: "enclave_postgres_transactions_committed_total",
        help: "Transactions committed in the database since the last statistics reset.",
        kind: MetricType::COUNTER,
        source: Source::PerDatabase(|d| Some(d.committed)),
    },
    Family {
        name: "enclave_postgres_transactions_rolled_back_total",
        help: "Transactions rolled back in the database since the last statistics reset.",
        kind: MetricType::COUNTER,
        source: Source::PerDatabase(|d| Some(d.rolled_back)),
    },
    Family {
        name: "enclave_postgres_deadlocks_total",
        help: "Deadlocks detected in the database since the last statistics reset.",
        kind: MetricType::COUNTER,
        source: Source::PerDatabase(|d| Some(d.deadlocks)),
    },
    Family {
        name: "enclave_postgres_checksum_failures_total",
        help: "Data page checksum failures in the database (0 when checksums are off).",
        kind: MetricType::COUNTER,
        source: Source::PerDatabase(|d| Some(d.checksum_failures)),
    },
];

/// PostgreSQL's metric families, registered once; [`PostgresMetrics::refresh`] updates them.
#[derive(Clone)]
pub struct PostgresMetrics {
    inner: Arc<Inner>,
}

struct Inner {
    /// In the order of `FAMILIES`.
    descs: Vec<Desc>,
    snapshot: Mutex<Snapshot>,
}

/// A lazily connecting superuser pool for [`PostgresMetrics::refresh`]: it connects on the first
/// refresh, so telemetry can start before the server and report it down until it is up.
pub fn pool(superuser: &Credentials) -> PgPool {
    let options = db::connect_options(superuser)
        .application_name("enclave-metrics")
        .options([("statement_timeout", format!("{}ms", TIMEOUT.as_millis()))]);
    PgPoolOptions::new()
        .max_connections(1)
        .acquire_timeout(TIMEOUT)
        .connect_lazy_with(options)
}

impl PostgresMetrics {
    /// Registers the families in `registry`.
    pub fn register(registry: &Registry) -> Result<Self, prometheus::Error> {
        let descs = FAMILIES
            .iter()
            .map(|family| {
                let labels = match family.source {
                    Source::PerDatabase(_) => vec![DATABASE_LABEL.to_owned()],
                    Source::Up | Source::MaxConnections => Vec::new(),
                };
                Desc::new(
                    family.name.to_owned(),
                    family.help.to_owned(),
                    labels,
                    HashMap::new(),
                )
            })
            .collect::<Result<Vec<_>, _>>()?;
        let metrics = Self {
            inner: Arc::new(Inner {
                descs,
                snapshot: Mutex::new(Snapshot::default()),
            }),
        };
        registry.register(Box::new(metrics.clone()))?;
        Ok(metrics)
    }

    /// Queries the server and updates every family. On failure `enclave_postgres_up` becomes 0
    /// and every other series disappears, so a stale reading never looks current.
    pub async fn refresh(&self, pool: &PgPool) -> Result<(), DbError> {
        let reading = read(pool).await;
        let mut snapshot = self.lock();
        match reading {
            Ok((max_connections, databases)) => {
                *snapshot = Snapshot {
                    up: true,
                    max_connections: Some(max_connections),
                    databases,
                };
                Ok(())
            }
            Err(e) => {
                *snapshot = Snapshot::default();
                Err(e)
            }
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Snapshot> {
        // The snapshot is replaced whole, so a panic elsewhere cannot leave it half-written.
        self.inner
            .snapshot
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }
}

impl std::fmt::Debug for PostgresMetrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PostgresMetrics")
            .field("snapshot", &*self.lock())
            .finish()
    }
}

async fn read(pool: &PgPool) -> Result<(i64, Vec<DatabaseStats>), DbError> {
    let query_error = |what| {
        move |source| {
            let (database, user) = db::target(pool);
            DbError::Query {
                what,
                database,
                user,
                source,
            }
        }
    };
    let mut connection = pool
        .acquire()
        .await
        .map_err(query_error("connecting for metrics"))?;
    let max_connections: i64 =
        sqlx::query_scalar("SELECT current_setting('max_connections')::bigint")
            .fetch_one(&mut *connection)
            .await
            .map_err(query_error("reading max_connections"))?;
    // pg_database_size by oid, not by name: as the superuser it yields NULL for a database
    // dropped since the view was read, where the name form would fail the whole reading.
    // The row with a NULL datname holds shared catalogs, not a database.
    let databases: Vec<DatabaseStats> = sqlx::query_as(
        "SELECT datname::text AS name, numbackends AS connections, \
                pg_database_size(datid) AS size_bytes, xact_commit AS committed, \
                xact_rollback AS rolled_back, deadlocks, \
                COALESCE(checksum_failures, 0) AS checksum_failures \
         FROM pg_stat_database WHERE datname IS NOT NULL ORDER BY datname",
    )
    .fetch_all(&mut *connection)
    .await
    .map_err(query_error("reading pg_stat_database"))?;
    Ok((max_connections, databases))
}

fn sample(kind: MetricType, labels: Vec<LabelPair>, value: i64) -> Metric {
    // Counts far below 2^53, so exact as f64.
    crate::telemetry::sample::metric(kind, labels, value as f64)
}

fn database_label(name: &str) -> Vec<LabelPair> {
    vec![crate::telemetry::sample::label(DATABASE_LABEL, name)]
}

impl Collector for PostgresMetrics {
    fn desc(&self) -> Vec<&Desc> {
        self.inner.descs.iter().collect()
    }

    fn collect(&self) -> Vec<MetricFamily> {
        let snapshot = self.lock();
        FAMILIES
            .iter()
            .zip(&self.inner.descs)
            .map(|(family, desc)| {
                let metrics = match family.source {
                    Source::Up => vec![sample(family.kind, Vec::new(), i64::from(snapshot.up))],
                    Source::MaxConnections => snapshot
                        .max_connections
                        .map(|value| sample(family.kind, Vec::new(), value))
                        .into_iter()
                        .collect(),
                    Source::PerDatabase(value_of) => snapshot
                        .databases
                        .iter()
                        .filter_map(|database| {
                            let value = value_of(database)?;
                            Some(sample(family.kind, database_label(&database.name), value))
                        })
                        .collect(),
                };
                let mut out = MetricFamily::default();
                out.set_name(desc.fq_name.clone());
                out.set_help(desc.help.clone());
                out.set_field_type(family.kind);
                out.set_metric(metrics);
                out
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use super::*;
    use crate::postgres::db::test_server::TestServer;
    use crate::telemetry::testing::{encode, promtool_check, value};

    #[test]
    fn before_any_refresh_only_up_0_is_exposed() {
        let registry = Registry::new();
        let _metrics = PostgresMetrics::register(&registry).expect("register");
        let text = encode(&registry);
        assert_eq!(value(&text, "enclave_postgres_up"), Some(0.0), "{text}");
        assert!(!text.contains("database="), "{text}");
        assert!(!text.contains("enclave_postgres_max_connections"), "{text}");
        assert!(
            PostgresMetrics::register(&registry).is_err(),
            "registered twice"
        );
    }

    #[tokio::test]
    async fn refresh_exposes_every_family_per_database() {
        let server = TestServer::start().await;
        let node = server.create_node(1).await;
        let registry = Registry::new();
        let metrics = PostgresMetrics::register(&registry).expect("register");
        let pool = pool(&server.superuser());

        metrics.refresh(&pool).await.expect("refresh");
        let text = encode(&registry);
        promtool_check(&text);

        assert_eq!(value(&text, "enclave_postgres_up"), Some(1.0), "{text}");
        let max: i64 = sqlx::query_scalar(
            "SELECT setting::bigint FROM pg_settings WHERE name = 'max_connections'",
        )
        .fetch_one(&pool)
        .await
        .expect("max_connections");
        assert_eq!(
            value(&text, "enclave_postgres_max_connections"),
            Some(max as f64),
            "{text}"
        );
        for (name, kind) in [
            ("enclave_postgres_connections", "gauge"),
            ("enclave_postgres_database_size_bytes", "gauge"),
            ("enclave_postgres_transactions_committed_total", "counter"),
            ("enclave_postgres_transactions_rolled_back_total", "counter"),
            ("enclave_postgres_deadlocks_total", "counter"),
            ("enclave_postgres_checksum_failures_total", "counter"),
        ] {
            assert!(
                text.contains(&format!("# TYPE {name} {kind}\n")),
                "{name}: {text}"
            );
            assert!(text.contains(&format!("# HELP {name} ")), "{name}: {text}");
            for database in ["postgres", node.database.as_str()] {
                let series = format!("{name}{{database=\"{database}\"}}");
                assert!(value(&text, &series).is_some(), "{series}: {text}");
            }
        }
        // The metrics connection itself is a backend of `postgres`.
        let connections = value(&text, "enclave_postgres_connections{database=\"postgres\"}");
        assert!(connections >= Some(1.0), "{text}");
        let size = value(
            &text,
            "enclave_postgres_database_size_bytes{database=\"postgres\"}",
        );
        assert!(size > Some(0.0), "{text}");
        // The test cluster runs without data checksums: NULL in the view, 0 here.
        let failures = "enclave_postgres_checksum_failures_total{database=\"postgres\"}";
        assert_eq!(value(&text, failures), Some(0.0), "{text}");

        // Counters follow the server: commit on the node's database, then watch its counter.
        let committed = format!(
            "enclave_postgres_transactions_committed_total{{database=\"{}\"}}",
            node.database
        );
        let before = value(&text, &committed).expect("committed");
        let node_pool = crate::postgres::db::connect(&node, 1).await.expect("node");
        for _ in 0..3 {
            sqlx::query("SELECT 1")
                .execute(&node_pool)
                .await
                .expect("query");
        }
        // Backends publish their statistics lazily (up to seconds later) unless asked to.
        sqlx::query("SELECT pg_stat_force_next_flush()")
            .execute(&node_pool)
            .await
            .expect("flush statistics");
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            metrics.refresh(&pool).await.expect("later refresh");
            let after = value(&encode(&registry), &committed).expect("committed");
            if after > before {
                break;
            }
            assert!(Instant::now() < deadline, "{committed} stuck at {after}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    #[tokio::test]
    async fn a_stopped_server_is_down_and_its_series_are_gone() {
        let mut server = TestServer::start().await;
        let registry = Registry::new();
        let metrics = PostgresMetrics::register(&registry).expect("register");
        let pool = pool(&server.superuser());
        metrics.refresh(&pool).await.expect("refresh");
        assert!(encode(&registry).contains("database=\"postgres\""));

        server.stop();
        let err = metrics.refresh(&pool).await.expect_err("server stopped");
        assert!(!err
            .to_string()
            .contains(super::super::db::test_server::SUPERUSER_PASSWORD));
        let text = encode(&registry);
        promtool_check(&text);
        assert_eq!(value(&text, "enclave_postgres_up"), Some(0.0), "{text}");
        assert!(!text.contains("database="), "{text}");
        assert!(!text.contains("enclave_postgres_max_connections"), "{text}");
    }
}
