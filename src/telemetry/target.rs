//! Where and how one push goes: the URL for each receiver kind, with the identity labels.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use url::Url;

use crate::config::schema::telemetry::{PushTarget, TargetKind};

/// Who is pushing: the Pushgateway grouping key / VictoriaMetrics extra labels.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    pub job: String,
    pub instance: String,
}

/// The labels every pushed series carries: job, instance, the target's grouping labels and,
/// when configured, `ttl` (as the reference's exporter sends it).
pub fn labels(target: &PushTarget, identity: &Identity) -> Vec<(String, String)> {
    let mut out = vec![
        (
            "job".to_owned(),
            target
                .job_name
                .clone()
                .unwrap_or_else(|| identity.job.clone()),
        ),
        ("instance".to_owned(), identity.instance.clone()),
    ];
    for (k, v) in &target.grouping_labels {
        if k == "job" || k == "instance" {
            // A configured value wins over ours, as in the reference (later keys override).
            if let Some(slot) = out.iter_mut().find(|(name, _)| name == k) {
                slot.1 = v.clone();
            }
        } else {
            out.push((k.clone(), v.clone()));
        }
    }
    if let Some(ttl) = target.ttl {
        out.push(("ttl".to_owned(), ttl.as_secs().to_string()));
    }
    out
}

/// A grouping-key path segment pair; `@base64` where the value has a `/` or is empty, which
/// plain path segments cannot carry.
fn path_pair(name: &str, value: &str) -> (String, String) {
    if value.is_empty() {
        (format!("{name}@base64"), "=".to_owned())
    } else if value.contains('/') {
        (format!("{name}@base64"), URL_SAFE_NO_PAD.encode(value))
    } else {
        (name.to_owned(), value.to_owned())
    }
}

/// The URL of one push: Pushgateway `…/metrics/job/<job>/instance/<i>/<k>/<v>…`, or the
/// VictoriaMetrics import URL with `extra_label=k=v` query arguments.
pub fn push_url(target: &PushTarget, identity: &Identity) -> Url {
    let mut url = target.url.expose().clone();
    let labels = labels(target, identity);
    match target.kind {
        TargetKind::Pushgateway => {
            // A URL that already names its group is used as given, as the reference does.
            if !url.path().contains("/metrics/job/") {
                if let Ok(mut segments) = url.path_segments_mut() {
                    segments.pop_if_empty().push("metrics");
                    for (name, value) in &labels {
                        let (n, v) = path_pair(name, value);
                        segments.push(&n).push(&v);
                    }
                }
            }
        }
        TargetKind::VictoriaMetrics => {
            let mut query = url.query_pairs_mut();
            for (name, value) in &labels {
                query.append_pair("extra_label", &format!("{name}={value}"));
            }
        }
    }
    if let Some(ttl) = target.ttl {
        url.query_pairs_mut()
            .append_pair("ttl", &ttl.as_secs().to_string());
    }
    url
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::reader::{Fields, Report};
    use crate::config::schema::telemetry::read_push_target;

    fn target(json: serde_json::Value) -> PushTarget {
        let mut r = Report::default();
        let f = Fields::of(&mut r, "t", &json).expect("object");
        let t = read_push_target(&mut r, f, false).expect("target");
        assert!(r.is_ok(), "{:?}", r.problems);
        t
    }

    fn me() -> Identity {
        Identity {
            job: "supervisor".into(),
            instance: "enclave-1".into(),
        }
    }

    #[test]
    fn pushgateway_paths_carry_the_grouping_key_with_base64_where_needed() {
        let t = target(serde_json::json!({
            "url": "http://127.0.0.1:9091/prefix/",
            "groupingLabels": {"path": "/var/tmp", "empty": "", "env": "local"},
            "ttlSeconds": 3600
        }));
        let url = push_url(&t, &me());
        assert_eq!(
            url.as_str(),
            "http://127.0.0.1:9091/prefix/metrics/job/supervisor/instance/enclave-1/empty@base64/=/env/local/path@base64/L3Zhci90bXA/ttl/3600?ttl=3600"
        );
    }

    #[test]
    fn victoria_metrics_gets_extra_labels() {
        let t = target(serde_json::json!({
            "url": "http://127.0.0.1:8428/api/v1/import/prometheus",
            "jobName": "price-aggregator",
            "groupingLabels": {"instance": "from-config"}
        }));
        let url = push_url(&t, &me());
        assert_eq!(
            url.as_str(),
            "http://127.0.0.1:8428/api/v1/import/prometheus?extra_label=job%3Dprice-aggregator&extra_label=instance%3Dfrom-config"
        );
    }

    #[test]
    fn a_url_that_names_its_group_is_kept() {
        let t = target(serde_json::json!({"url": "http://h:9091/metrics/job/fixed"}));
        assert_eq!(
            push_url(&t, &me()).as_str(),
            "http://h:9091/metrics/job/fixed"
        );
    }
}
