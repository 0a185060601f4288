//! The metric push client against real receivers on loopback (Debian packages
//! `prometheus-pushgateway`, `victoria-metrics` (with `vmauth`) and `prometheus` (`promtool`)).
//! A test whose receiver is not installed prints `SKIPPED <test>: <reason>` and passes.
//!
//! The "service" under test runs in its own thread with its own tokio runtime, as a real service
//! would: it starts the `Pusher` and then keeps doing its own work (a loop that updates a gauge
//! every 50 ms). The test thread only observes, with blocking HTTP and deadlines.

use crate::common;
use crate::receiver_or_skip;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{mpsc, Arc, Once};
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use common::receivers::{
    free_port, group_samples, promtool_check_metrics, wait_for, Pushgateway, VictoriaMetrics,
    VmAuth,
};
use enclave::config::reader::{Fields, Report};
use enclave::config::schema::telemetry::{read_push_target, PushTarget};
use enclave::telemetry::{encode, Identity, Pusher};
use prometheus::{GaugeVec, IntCounterVec, IntGauge, Opts, Registry};
use serde_json::{json, Value};

const PUSHES: &str = "enclave_telemetry_pushes_total";
const BACKLOG: &str = "enclave_telemetry_backlog_samples";
const DROPPED: &str = "enclave_telemetry_dropped_samples_total";
const LOOP_GAUGE: &str = "telemetry_test_loop_iterations";
/// The pause of the service's own work loop.
const WORK_STEP: Duration = Duration::from_millis(50);
/// A generous bound for anything that should take one or two push intervals.
const WAIT: Duration = Duration::from_secs(15);

// ---------------------------------------------------------------------------------------------
// Helpers

fn init_logs() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(
                tracing_subscriber::EnvFilter::try_from_default_env()
                    .unwrap_or_else(|_| "enclave=info".into()),
            )
            .with_test_writer()
            .try_init();
    });
}

/// A target read from configuration JSON, as the service reads it.
fn target(config: Value) -> PushTarget {
    let mut report = Report::default();
    let fields = Fields::of(&mut report, "telemetry.targets[0]", &config).expect("an object");
    let target = read_push_target(&mut report, fields, false).expect("a target");
    assert!(report.is_ok(), "{:?}", report.problems);
    target
}

fn identity(job: &str) -> Identity {
    Identity {
        job: job.to_owned(),
        instance: "itest-1".to_owned(),
    }
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970")
        .as_millis() as i64
}

/// A registry with an application counter and a gauge whose label value has a `/`.
fn app_registry() -> Registry {
    let registry = Registry::new();
    let updates = IntCounterVec::new(
        Opts::new("demo_updates_total", "Price updates processed."),
        &["pair"],
    )
    .expect("counter");
    let price =
        GaugeVec::new(Opts::new("demo_price", "Last price in USD."), &["pair"]).expect("gauge");
    registry
        .register(Box::new(updates.clone()))
        .expect("register");
    registry
        .register(Box::new(price.clone()))
        .expect("register");
    updates.with_label_values(&["BTC/USD"]).inc_by(3);
    price.with_label_values(&["BTC/USD"]).set(67000.5);
    registry
}

/// The value of one series in the registry (0 when absent, as for a counter never touched).
fn sample(registry: &Registry, name: &str, labels: &[(&str, &str)]) -> f64 {
    registry
        .gather()
        .iter()
        .filter(|family| family.name() == name)
        .flat_map(|family| family.get_metric().iter())
        .filter(|metric| {
            labels.iter().all(|(k, v)| {
                metric
                    .get_label()
                    .iter()
                    .any(|pair| pair.name() == *k && pair.value() == *v)
            })
        })
        .map(|metric| metric.get_counter().get_value() + metric.get_gauge().get_value())
        .fold(0.0, |total, value| total + value)
}

fn pushes(registry: &Registry, target: &str, result: &str) -> f64 {
    sample(registry, PUSHES, &[("target", target), ("result", result)])
}

/// Sample lines (not comments) in the registry's exposition right now.
fn sample_lines(registry: &Registry) -> usize {
    encode::text(registry)
        .lines()
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .count()
}

/// A service: its own thread and tokio runtime, the `Pusher`, and a work loop that must never
/// stall (it records the longest pause between two of its iterations).
struct Service {
    iterations: Arc<AtomicU64>,
    longest_pause_us: Arc<AtomicU64>,
    /// How long `Pusher::start` took.
    start_took: Duration,
    started: Instant,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<thread::JoinHandle<Duration>>,
}

const SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(3);

impl Service {
    fn start(registry: Registry, targets: Vec<PushTarget>, identity: Identity) -> Self {
        init_logs();
        let gauge = IntGauge::new(
            LOOP_GAUGE,
            "Iterations of the test service's own work loop.",
        )
        .expect("gauge");
        registry
            .register(Box::new(gauge.clone()))
            .expect("register");
        let iterations = Arc::new(AtomicU64::new(0));
        let longest_pause_us = Arc::new(AtomicU64::new(0));
        let (ready_tx, ready_rx) = mpsc::channel();
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let (reg, iters, pause) = (
            registry.clone(),
            iterations.clone(),
            longest_pause_us.clone(),
        );
        let thread = thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("tokio runtime");
            runtime.block_on(async move {
                let began = Instant::now();
                let pusher = Pusher::start(&reg, &targets, &identity).expect("Pusher::start");
                let _ = ready_tx.send(began.elapsed());
                let work = tokio::spawn(async move {
                    let mut last = Instant::now();
                    loop {
                        let n = iters.fetch_add(1, Ordering::SeqCst) + 1;
                        gauge.set(n as i64);
                        let gap = last.elapsed().as_micros() as u64;
                        pause.fetch_max(gap, Ordering::SeqCst);
                        last = Instant::now();
                        tokio::time::sleep(WORK_STEP).await;
                    }
                });
                let _ = stop_rx.await;
                let shutdown = Instant::now();
                pusher.shutdown(SHUTDOWN_TIMEOUT).await;
                work.abort();
                shutdown.elapsed()
            })
        });
        let start_took = ready_rx
            .recv_timeout(Duration::from_secs(10))
            .expect("Pusher::start returned (the service thread died or hung)");
        Self {
            iterations,
            longest_pause_us,
            start_took,
            started: Instant::now(),
            stop: Some(stop_tx),
            thread: Some(thread),
        }
    }

    /// `Pusher::shutdown` and the end of the runtime; returns how long the shutdown took.
    fn stop(mut self) -> Duration {
        self.stop_inner().expect("service thread ends cleanly")
    }

    fn stop_inner(&mut self) -> Option<Duration> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        self.thread.take().and_then(|t| t.join().ok())
    }

    /// Asserts the service's own work kept going: its loop ran at least half as often as it
    /// would unhindered, and never paused for long.
    fn assert_kept_working(&self) {
        let elapsed = self.started.elapsed();
        let expected = (elapsed.as_millis() / WORK_STEP.as_millis()) as u64;
        let done = self.iterations.load(Ordering::SeqCst);
        assert!(
            done * 2 >= expected,
            "the service's work loop ran {done} times in {elapsed:?} (expected about {expected})"
        );
        let pause = Duration::from_micros(self.longest_pause_us.load(Ordering::SeqCst));
        assert!(
            pause < Duration::from_millis(500),
            "the service's work loop stalled for {pause:?}"
        );
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        let _ = self.stop_inner();
    }
}

fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

// ---------------------------------------------------------------------------------------------
// 1. Pushgateway round trip

#[test]
fn pushgateway_receives_the_group_with_base64_labels_and_loses_it_at_shutdown() {
    let test = "pushgateway_receives_the_group_with_base64_labels_and_loses_it_at_shutdown";
    let pg = receiver_or_skip!(test, Pushgateway::start());
    let registry = app_registry();
    let job = "telemetry_pg_test";
    let service = Service::start(
        registry.clone(),
        vec![target(json!({
            "url": pg.url(),
            "intervalMs": 1000,
            "timeoutMs": 500,
            "groupingLabels": {"empty": "", "path": "/var/tmp", "env": "local"},
            "ttlSeconds": 3600
        }))],
        identity(job),
    );
    let key = [
        ("job", job),
        ("instance", "itest-1"),
        ("empty", ""),
        ("path", "/var/tmp"),
        ("env", "local"),
        ("ttl", "3600"),
    ];
    let group = wait_for(WAIT, "the group on the Pushgateway", || pg.group(&key));
    assert_eq!(group["last_push_successful"], true, "{group:#}");

    // Exactly the expected series: grouping key plus the metric's own label (with its `/`).
    let mut series = labels(&key);
    series.insert("pair".into(), "BTC/USD".into());
    assert_eq!(
        group_samples(&group, "demo_updates_total"),
        [(series.clone(), 3.0)]
    );
    assert_eq!(group_samples(&group, "demo_price"), [(series, 67000.5)]);
    // Classic text format: the types survive (OpenMetrics-style counters would turn untyped).
    assert_eq!(group["demo_updates_total"]["type"], "COUNTER");
    assert_eq!(
        group["demo_updates_total"]["help"],
        "Price updates processed."
    );
    assert_eq!(group["demo_price"]["type"], "GAUGE");
    // No push was ever rejected (a timestamp would have been: "pushed metrics must not have
    // timestamps").
    let failure_time = group_samples(&group, "push_failure_time_seconds");
    assert_eq!(failure_time.len(), 1);
    assert_eq!(failure_time[0].1, 0.0, "a push was rejected: {group:#}");
    let text = pg.metrics_text();
    assert!(
        text.lines().any(|l| l.starts_with("demo_price{")
            && l.contains(r#"pair="BTC/USD""#)
            && l.contains(r#"path="/var/tmp""#)),
        "{text}"
    );

    // The success counter increments, with every push; no failures.
    wait_for(WAIT, "a second successful push", || {
        (pushes(&registry, "0:pushgateway", "success") >= 2.0).then_some(())
    });
    assert_eq!(pushes(&registry, "0:pushgateway", "failure"), 0.0);
    // …and is itself pushed.
    let pushed = wait_for(WAIT, "the pusher's own counter on the gateway", || {
        let group = pg.group(&key)?;
        let successes: Vec<f64> = group_samples(&group, PUSHES)
            .into_iter()
            .filter(|(l, _)| l.get("result").map(String::as_str) == Some("success"))
            .map(|(_, v)| v)
            .collect();
        (successes.first().copied().unwrap_or(0.0) >= 1.0).then_some(successes)
    });
    assert_eq!(pushed.len(), 1);
    service.assert_kept_working();

    // Shutdown deletes the group.
    let took = service.stop();
    assert!(took < SHUTDOWN_TIMEOUT, "shutdown took {took:?}");
    wait_for(Duration::from_secs(5), "the group to be deleted", || {
        pg.group(&key).is_none().then_some(())
    });
}

// ---------------------------------------------------------------------------------------------
// 2. VictoriaMetrics import round trip

#[test]
fn victoria_metrics_stores_series_with_extra_labels_at_push_time() {
    let test = "victoria_metrics_stores_series_with_extra_labels_at_push_time";
    let vm = receiver_or_skip!(test, VictoriaMetrics::start());
    let registry = app_registry();
    let job = "telemetry_vm_test";
    let before_start = now_ms();
    let service = Service::start(
        registry.clone(),
        vec![target(json!({
            "url": vm.import_url(),
            "intervalMs": 1000,
            "timeoutMs": 500,
            "groupingLabels": {"env": "local", "path": "/var/tmp"}
        }))],
        identity(job),
    );
    let selector = format!(r#"demo_price{{job="{job}"}}"#);
    let found = vm.wait_for(WAIT, "demo_price in VictoriaMetrics", |vm| {
        let result = vm.query(&selector);
        (!result.is_empty()).then_some(result)
    });
    let expected = labels(&[
        ("__name__", "demo_price"),
        ("job", job),
        ("instance", "itest-1"),
        ("env", "local"),
        ("path", "/var/tmp"),
        ("pair", "BTC/USD"),
    ]);
    assert_eq!(found, [(expected.clone(), 67000.5)]);
    let counter = vm.query(&format!(r#"demo_updates_total{{job="{job}"}}"#));
    assert_eq!(counter.len(), 1, "{counter:?}");
    assert_eq!(counter[0].1, 3.0);
    wait_for(WAIT, "a few successful pushes", || {
        (pushes(&registry, "0:victoriametrics", "success") >= 3.0).then_some(())
    });
    assert_eq!(pushes(&registry, "0:victoriametrics", "failure"), 0.0);
    assert_eq!(
        sample(&registry, BACKLOG, &[("target", "0:victoriametrics")]),
        0.0
    );
    service.assert_kept_working();
    let took = service.stop();
    assert!(took < SHUTDOWN_TIMEOUT, "shutdown took {took:?}");
    let after_stop = now_ms();

    // Every sample carries the time it was taken: the first push is immediate, then one per
    // interval, all between start and stop, none twice. One sample per successful push
    // (including the last one at shutdown); the newest become visible after a moment.
    let delivered = pushes(&registry, "0:victoriametrics", "success") as usize;
    let exported = vm.wait_for(WAIT, "one sample per successful push", |vm| {
        let exported = vm.export(&selector);
        (exported.len() == 1 && exported[0].timestamps.len() >= delivered).then_some(exported)
    });
    let series = &exported[0];
    assert_eq!(series.timestamps.len(), delivered, "{series:?}");
    assert_eq!(series.labels, expected);
    let ts = &series.timestamps;
    assert!(ts.len() >= 3, "{series:?}");
    assert!(
        ts.windows(2).all(|w| w[0] < w[1]),
        "timestamps not distinct: {ts:?}"
    );
    assert!(
        ts[0] >= before_start && ts[0] - before_start < 1000,
        "first sample at {} ms, service started at {before_start} ms",
        ts[0]
    );
    assert!(
        *ts.last().expect("one") <= after_stop,
        "{ts:?} vs stop at {after_stop}"
    );
    // Spaced by the interval (the last one may be the shutdown push, sooner).
    for w in ts[..ts.len() - 1].windows(2) {
        let gap = w[1] - w[0];
        assert!(
            (800..=1500).contains(&gap),
            "samples {gap} ms apart: {ts:?}"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// 3. Basic auth through vmauth

#[test]
fn vmauth_accepts_the_right_password_and_rejects_a_wrong_one() {
    let test = "vmauth_accepts_the_right_password_and_rejects_a_wrong_one";
    let vm = receiver_or_skip!(test, VictoriaMetrics::start());
    let auth = receiver_or_skip!(test, VmAuth::start(&vm.url(), "tee-pusher", "s3cret-Pw"));
    let registry = app_registry();
    let job = "telemetry_auth_test";
    let target_with = |password: &str, tag: &str| {
        target(json!({
            "url": auth.import_url(),
            "intervalMs": 1000,
            "timeoutMs": 500,
            "basicAuth": {"username": "tee-pusher", "password": password},
            "groupingLabels": {"auth": tag}
        }))
    };
    let service = Service::start(
        registry.clone(),
        vec![
            target_with("s3cret-Pw", "right"),
            target_with("wrong-Pw", "wrong"),
        ],
        identity(job),
    );
    let found = vm.wait_for(WAIT, "data pushed with the right password", |vm| {
        let result = vm.query(&format!(r#"demo_price{{job="{job}",auth="right"}}"#));
        (!result.is_empty()).then_some(result)
    });
    assert_eq!(found[0].1, 67000.5);
    wait_for(WAIT, "several rejected pushes", || {
        (pushes(&registry, "1:victoriametrics", "failure") >= 3.0).then_some(())
    });
    assert_eq!(pushes(&registry, "1:victoriametrics", "success"), 0.0);
    assert!(pushes(&registry, "0:victoriametrics", "success") >= 2.0);
    assert_eq!(pushes(&registry, "0:victoriametrics", "failure"), 0.0);
    // The rejected target keeps its samples for later (it cannot tell a bad password from an
    // outage), and nothing it sent arrived.
    assert!(sample(&registry, BACKLOG, &[("target", "1:victoriametrics")]) > 0.0);
    let leaked = vm.export(r#"{__name__=~".+",auth="wrong"}"#);
    assert!(leaked.is_empty(), "rejected pushes arrived: {leaked:?}");
    // The right target's copy of the failure counter did arrive (it is in the same registry).
    let failures = vm.wait_for(WAIT, "the failure counter in VictoriaMetrics", |vm| {
        let result = vm.query(&format!(
            r#"{PUSHES}{{job="{job}",auth="right",target="1:victoriametrics",result="failure"}}"#
        ));
        result.first().filter(|(_, v)| *v >= 1.0).map(|(_, v)| *v)
    });
    assert!(failures >= 1.0);
    service.assert_kept_working();
    service.stop();
}

// ---------------------------------------------------------------------------------------------
// 4. VictoriaMetrics outage: keep working, bounded backlog, late delivery at original times

#[test]
fn victoria_metrics_outage_is_buffered_bounded_and_delivered_with_original_timestamps() {
    let test = "victoria_metrics_outage_is_buffered_bounded_and_delivered_with_original_timestamps";
    if let Err(reason) = common::receivers::binary("victoria-metrics") {
        eprintln!("SKIPPED {test}: {reason}");
        return;
    }
    // Nothing listens there yet; VictoriaMetrics will come up on this very port.
    let port = free_port();
    let url = format!("http://127.0.0.1:{port}/api/v1/import/prometheus");
    let registry = app_registry();
    let job = "telemetry_outage_test";
    let outage_began = now_ms();
    let service = Service::start(
        registry.clone(),
        vec![
            target(json!({"url": url, "intervalMs": 1000, "timeoutMs": 500,
                          "groupingLabels": {"buffer": "default"}})),
            // A tiny buffer: at most the snapshots of the last 1.5 s are kept.
            target(
                json!({"url": url, "intervalMs": 1000, "timeoutMs": 500, "bufferMs": 1500,
                          "groupingLabels": {"buffer": "tiny"}}),
            ),
        ],
        identity(job),
    );
    assert!(
        service.start_took < Duration::from_millis(200),
        "Pusher::start took {:?} with the receiver down",
        service.start_took
    );
    let (full, tiny) = ("0:victoriametrics", "1:victoriametrics");

    wait_for(WAIT, "two failed pushes", || {
        (pushes(&registry, full, "failure") >= 2.0).then_some(())
    });
    let backlog_early = sample(&registry, BACKLOG, &[("target", full)]);
    wait_for(WAIT, "four failed pushes", || {
        (pushes(&registry, full, "failure") >= 4.0 && pushes(&registry, tiny, "failure") >= 4.0)
            .then_some(())
    });
    let backlog_full = sample(&registry, BACKLOG, &[("target", full)]);
    let backlog_tiny = sample(&registry, BACKLOG, &[("target", tiny)]);
    let per_snapshot = sample_lines(&registry) as f64;
    assert!(
        backlog_full > backlog_early && backlog_early > 0.0,
        "backlog did not grow: {backlog_early} then {backlog_full}"
    );
    assert!(
        backlog_full > backlog_tiny,
        "backlog {backlog_full}, tiny backlog {backlog_tiny}"
    );
    // Memory bounded: the tiny buffer holds at most two snapshots. (That what it evicts is
    // counted is checked by `evicted_backlog_samples_are_counted_as_dropped`.)
    assert!(
        backlog_tiny > 0.0 && backlog_tiny <= 2.0 * per_snapshot,
        "tiny backlog {backlog_tiny} samples, a snapshot has ≤ {per_snapshot}"
    );
    assert_eq!(sample(&registry, DROPPED, &[("target", full)]), 0.0);
    assert_eq!(pushes(&registry, full, "success"), 0.0);
    service.assert_kept_working();

    // VictoriaMetrics comes up where the pusher points.
    let recovered_at = now_ms();
    let vm = VictoriaMetrics::start_on(port).expect("victoria-metrics is installed");
    wait_for(WAIT, "the backlog to drain", || {
        (pushes(&registry, full, "success") >= 1.0
            && sample(&registry, BACKLOG, &[("target", full)]) == 0.0
            && sample(&registry, BACKLOG, &[("target", tiny)]) == 0.0)
            .then_some(())
    });

    // The buffered samples are there, at the times they were taken during the outage; the
    // work-loop gauge rises with time, so each value sits at its own original timestamp.
    let selector = format!(r#"{LOOP_GAUGE}{{job="{job}",buffer="default"}}"#);
    let series = vm.wait_for(WAIT, "the outage samples in VictoriaMetrics", |vm| {
        let exported = vm.export(&selector);
        let series = exported.into_iter().next()?;
        let during = series
            .timestamps
            .iter()
            .filter(|t| **t < recovered_at)
            .count();
        (during >= 4).then_some(series)
    });
    let ts = &series.timestamps;
    let during: Vec<i64> = ts.iter().copied().filter(|t| *t < recovered_at).collect();
    assert!(
        during[0] >= outage_began && during[0] - outage_began < 1000,
        "{ts:?} from {outage_began}"
    );
    assert!(
        ts.windows(2).all(|w| w[0] < w[1]),
        "timestamps not distinct and ordered: {ts:?}"
    );
    assert!(
        series.values.windows(2).all(|w| w[0] < w[1]),
        "values do not rise with their timestamps: {series:?}"
    );
    for (t, v) in ts.iter().zip(&series.values) {
        // The gauge counts 50 ms iterations since the service started (± scheduling).
        let expected = (t - outage_began) as f64 / WORK_STEP.as_millis() as f64;
        assert!(
            *v <= expected + 2.0 && *v >= expected * 0.5 - 2.0,
            "value {v} at {t}: expected about {expected} — not the time it was taken?"
        );
    }
    // The tiny buffer delivered at most its last two snapshots from the outage.
    let tiny_series = vm.export(&format!(r#"{LOOP_GAUGE}{{job="{job}",buffer="tiny"}}"#));
    assert_eq!(tiny_series.len(), 1, "{tiny_series:?}");
    let tiny_during = tiny_series[0]
        .timestamps
        .iter()
        .filter(|t| **t < recovered_at)
        .count();
    assert!(
        tiny_during <= 2,
        "tiny buffer delivered {tiny_during} outage snapshots: {tiny_series:?}"
    );
    assert!(during.len() > tiny_during);
    service.assert_kept_working();

    // Nothing lost: after the last push (at shutdown), every snapshot ever taken for the
    // default-buffer target — one per push, failed or not — is stored exactly once.
    service.stop();
    let taken = (pushes(&registry, full, "success") + pushes(&registry, full, "failure")) as usize;
    let stored = vm.wait_for(WAIT, "every snapshot in VictoriaMetrics", |vm| {
        let n = vm.export(&selector).first()?.timestamps.len();
        (n >= taken).then_some(n)
    });
    assert_eq!(stored, taken, "snapshots stored vs taken");
}

/// The bounded backlog evicts the oldest snapshots of an unreachable VictoriaMetrics; what it
/// evicts must show in `enclave_telemetry_dropped_samples_total` (data loss has to be visible).
#[test]
fn evicted_backlog_samples_are_counted_as_dropped() {
    let closed = free_port();
    let registry = app_registry();
    let service = Service::start(
        registry.clone(),
        vec![target(
            json!({"url": format!("http://127.0.0.1:{closed}/api/v1/import/prometheus"),
                           "intervalMs": 1000, "timeoutMs": 500, "bufferMs": 0}),
        )],
        identity("telemetry_dropped_test"),
    );
    let t = "0:victoriametrics";
    wait_for(WAIT, "three failed pushes", || {
        (pushes(&registry, t, "failure") >= 3.0).then_some(())
    });
    // bufferMs 0: only the newest snapshot is kept, every older one was evicted.
    let backlog = sample(&registry, BACKLOG, &[("target", t)]);
    assert!(
        backlog > 0.0 && backlog <= sample_lines(&registry) as f64,
        "backlog {backlog} samples is more than one snapshot"
    );
    let dropped = sample(&registry, DROPPED, &[("target", t)]);
    assert!(
        dropped > 0.0,
        "two snapshots were evicted, but {DROPPED} is {dropped}"
    );
    service.stop();
}

// ---------------------------------------------------------------------------------------------
// 5. Pushgateway outage

#[test]
fn pushgateway_outage_fails_pushes_then_they_succeed_again() {
    let test = "pushgateway_outage_fails_pushes_then_they_succeed_again";
    if let Err(reason) = common::receivers::binary("prometheus-pushgateway") {
        eprintln!("SKIPPED {test}: {reason}");
        return;
    }
    let port = free_port();
    let registry = app_registry();
    let job = "telemetry_pg_outage_test";
    let service = Service::start(
        registry.clone(),
        vec![target(json!({"url": format!("http://127.0.0.1:{port}"),
                           "intervalMs": 1000, "timeoutMs": 500}))],
        identity(job),
    );
    assert!(
        service.start_took < Duration::from_millis(200),
        "Pusher::start took {:?} with the receiver down",
        service.start_took
    );
    let target = "0:pushgateway";
    wait_for(WAIT, "two failed pushes", || {
        (pushes(&registry, target, "failure") >= 2.0).then_some(())
    });
    assert_eq!(pushes(&registry, target, "success"), 0.0);
    // Pushgateway keeps nothing for later.
    assert_eq!(sample(&registry, BACKLOG, &[("target", target)]), 0.0);
    service.assert_kept_working();

    let pg = Pushgateway::start_on(port).expect("prometheus-pushgateway is installed");
    let key = [("job", job), ("instance", "itest-1")];
    let group = wait_for(WAIT, "the group after the gateway is back", || {
        pg.group(&key)
    });
    assert_eq!(group["last_push_successful"], true, "{group:#}");
    let mut series = labels(&key);
    series.insert("pair".into(), "BTC/USD".into());
    assert_eq!(group_samples(&group, "demo_price"), [(series, 67000.5)]);
    assert_eq!(
        group_samples(&group, "push_failure_time_seconds")[0].1,
        0.0,
        "{group:#}"
    );
    let failures = pushes(&registry, target, "failure");
    wait_for(WAIT, "two successful pushes", || {
        (pushes(&registry, target, "success") >= 2.0).then_some(())
    });
    assert_eq!(
        pushes(&registry, target, "failure"),
        failures,
        "pushes failed after recovery"
    );
    // The gateway now shows the failures counted during the outage.
    let pushed_failures = wait_for(WAIT, "the failure count on the gateway", || {
        let group = pg.group(&key)?;
        group_samples(&group, PUSHES)
            .into_iter()
            .find(|(l, _)| l.get("result").map(String::as_str) == Some("failure"))
            .map(|(_, v)| v)
    });
    assert!(pushed_failures >= 2.0);
    service.assert_kept_working();
    service.stop();
    wait_for(Duration::from_secs(5), "the group to be deleted", || {
        pg.group(&key).is_none().then_some(())
    });
}

// ---------------------------------------------------------------------------------------------
// 6. promtool lints what is pushed

#[test]
fn promtool_accepts_the_pushed_exposition() {
    let test = "promtool_accepts_the_pushed_exposition";
    if let Err(reason) = common::receivers::binary("promtool") {
        eprintln!("SKIPPED {test}: {reason}");
        return;
    }
    // Unreachable targets of both kinds, one with no buffer, so that the pusher's own metrics
    // have series (pushes, backlog; dropped samples too, once they are counted — see
    // `evicted_backlog_samples_are_counted_as_dropped`).
    let closed = free_port();
    let registry = app_registry();
    let service = Service::start(
        registry.clone(),
        vec![
            target(json!({"url": format!("http://127.0.0.1:{closed}"),
                          "intervalMs": 1000, "timeoutMs": 500})),
            target(
                json!({"url": format!("http://127.0.0.1:{closed}/api/v1/import/prometheus"),
                          "intervalMs": 1000, "timeoutMs": 500, "bufferMs": 0}),
            ),
        ],
        identity("telemetry_promtool_test"),
    );
    wait_for(
        WAIT,
        "failed pushes to both targets, past the first eviction",
        || {
            (pushes(&registry, "1:victoriametrics", "failure") >= 2.0
                && pushes(&registry, "0:pushgateway", "failure") >= 2.0)
                .then_some(())
        },
    );
    let text = encode::text(&registry);
    for family in [
        PUSHES,
        BACKLOG,
        LOOP_GAUGE,
        "demo_updates_total",
        "demo_price",
    ] {
        assert!(
            text.contains(&format!("# TYPE {family} ")),
            "{family} missing:\n{text}"
        );
    }
    match promtool_check_metrics(&text) {
        Err(reason) => eprintln!("SKIPPED {test}: {reason}"),
        Ok(Ok(_)) => {}
        Ok(Err(output)) => panic!("promtool check metrics failed:\n{output}\non:\n{text}"),
    }
    service.stop();
}

#[tokio::test(flavor = "current_thread")]
async fn a_push_hanging_at_shutdown_is_aborted_so_no_push_task_outlives_the_shutdown() {
    init_logs();
    // Connections complete in the backlog, and no answer ever comes.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let url = format!("http://{}", silent.local_addr().expect("addr"));
    let pusher = Pusher::start(
        &app_registry(),
        &[target(
            json!({"url": url, "intervalMs": 60_000, "timeoutMs": 60_000}),
        )],
        &identity("telemetry_hanging_test"),
    )
    .expect("Pusher::start");
    let shutdown = Instant::now();
    pusher.shutdown(Duration::from_millis(300)).await;
    assert!(shutdown.elapsed() < WAIT, "{:?}", shutdown.elapsed());
    // The HTTP client's connection tasks end once their requests are gone.
    let deadline = Instant::now() + WAIT;
    loop {
        let alive = tokio::runtime::Handle::current()
            .metrics()
            .num_alive_tasks();
        if alive == 0 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{alive} tasks still alive after the shutdown"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    drop(silent);
}
