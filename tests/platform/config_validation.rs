//! Validation: every rule names the JSON path to fix, all problems are reported together, the
//! reference's own configuration is accepted, and no secret leaks through formatting.

use crate::common;

use common::*;
use enclave::config::{validate_document, ConfigError};
use serde_json::{json, Value};

fn problems_of(document: &Value) -> Vec<(String, String)> {
    match validate_document(document) {
        Ok(_) => Vec::new(),
        Err(ConfigError::Invalid(report)) => report
            .problems
            .into_iter()
            .map(|p| (p.path, p.message))
            .collect(),
        Err(other) => panic!("unexpected error: {other}"),
    }
}

type Mutation = fn(&mut Value);

/// A valid `don` section for the example's five nodes: members a (1-3) and b (4, 5).
fn don_of_two() -> Value {
    let key = |seed: u8| {
        hex::encode(
            enclave::attestation::member_key::OperatorKey::from_seed([seed; 32])
                .public()
                .as_bytes(),
        )
    };
    json!({"members": [
        {"name": "a", "nodes": [1, 2, 3], "operatorKey": key(1),
         "p2pAddresses": ["a:9901", "a:9902", "a:9903"], "identityUrl": "http://a:3002/v1/identity"},
        {"name": "b", "nodes": [4, 5], "operatorKey": key(2), "p2pAddresses": ["b:9904", "b:9905"],
         "identityUrl": "http://b:3002/v1/identity"},
    ]})
}

/// An allowed TD record (all-zero registers).
fn a_measurement() -> Value {
    let zero = json!({"expected_any": ["00".repeat(48)]});
    json!([{"measurement_id": "t", "attestation_type": "dcap-tdx",
            "measurements": {"mrtd": zero, "rtmr0": zero, "rtmr1": zero, "rtmr2": zero}}])
}

/// (what is broken, how, the one path every resulting problem must name, a phrase of the message)
const RULES: &[(&str, Mutation, &str, &str)] = &[
    (
        "too few nodes",
        |s| s["totalNodes"] = json!("4"),
        "solution.totalNodes",
        "at least 5",
    ),
    (
        "too many nodes",
        |s| s["totalNodes"] = json!(33),
        "solution.totalNodes",
        "at most 32",
    ),
    (
        "bootstrap not node 1",
        |s| s["bootstrapNodes"] = json!("2"),
        "solution.bootstrapNodes",
        "node 1 is the bootstrap",
    ),
    (
        "nodesList misses a node",
        |s| s["nodesList"] = json!("1 2 3 4"),
        "solution.nodesList",
        "missing 5",
    ),
    (
        "nodesList beyond totalNodes",
        |s| s["nodesList"] = json!("1 2 3 4 5 6"),
        "solution.nodesList",
        "beyond totalNodes",
    ),
    (
        "nodesList repeats",
        |s| s["nodesList"] = json!("1 2 2 3 4 5"),
        "solution.nodesList",
        "listed twice",
    ),
    (
        "primaryNodes outside nodesList",
        |s| s["primaryNodes"] = json!("1 7"),
        "solution.primaryNodes",
        "not in nodesList",
    ),
    (
        "port clash",
        |s| s["pgPort"] = json!(3000),
        "solution.priceAggregatorConfig.port",
        "already used by PostgreSQL",
    ),
    (
        "node ports beyond 65535",
        |s| s["ports"]["nodeP2pBase"] = json!(65533),
        "solution.ports.nodeP2pBase",
        "outside 1..65535",
    ),
    (
        "node ports overlapping",
        |s| s["ports"]["nodeP2pBase"] = json!(6602),
        "solution.ports.nodeP2pBase",
        "already used by node",
    ),
    (
        "faucet key outside the secp256k1 range",
        |s| s["faucetPrivateKey"] = json!("0".repeat(64)),
        "solution.faucetPrivateKey",
        "not a valid secp256k1 private key",
    ),
    (
        "listen host not an IP address",
        |s| s["ports"]["listenHost"] = json!("localhost"),
        "solution.ports.listenHost",
        "IP address",
    ),
    (
        "malformed RPC URL",
        |s| s["chainlinkRpcHttpUrl"] = json!("opbnb-rpc"),
        "solution.chainlinkRpcHttpUrl",
        "URL",
    ),
    (
        "malformed address",
        |s| s["feeds"][0]["contractAddress"] = json!("0x12"),
        "solution.feeds[0].contractAddress",
        "40 hex",
    ),
    (
        "payee of a node that is not an oracle",
        |s| s["chain"]["payees"] = json!({"1": "0x1111111111111111111111111111111111111111"}),
        "solution.chain.payees",
        "not an oracle's node number",
    ),
    (
        "zero payee",
        |s| s["chain"]["payee"] = json!("0x0000000000000000000000000000000000000000"),
        "solution.chain.payee",
        "zero address",
    ),
    (
        "billing missing a value",
        |s| {
            s["chain"]["billing"] = json!({"maximumGasPrice": 10, "reasonableGasPrice": 5,
                "linkGweiPerObservation": 1, "linkGweiPerTransmission": 1})
        },
        "solution.chain.billing.microLinkPerEth",
        "is required",
    ),
    (
        "bad checksum",
        |s| s["feeds"][0]["contractAddress"] = json!("0x00000000000000000000000000000000000B7c01"),
        "solution.feeds[0].contractAddress",
        "EIP-55",
    ),
    (
        "API key missing",
        |s| {
            s["priceAggregatorConfig"]["sources"]["cryptocompare"]
                .as_object_mut()
                .map(|o| o.shift_remove("apiKey"));
        },
        "solution.priceAggregatorConfig.sources.cryptocompare.apiKey",
        "needs an API key",
    ),
    (
        "leg on an unconfigured source",
        |s| s["feeds"][0]["legs"][0]["source"] = json!("bybit"),
        "solution.feeds[0].legs[0].source",
        "not enabled",
    ),
    (
        "leg on a disabled source",
        |s| s["feeds"][0]["legs"][0]["source"] = json!("finnhub"),
        "solution.feeds[0].legs[0].source",
        "not enabled",
    ),
    (
        "duplicate feed name",
        |s| s["feeds"][1]["name"] = json!("BTC-USD"),
        "solution.feeds[1].name",
        "repeats",
    ),
    (
        "duplicate contract",
        |s| s["feeds"][2]["contractAddress"] = s["feeds"][0]["contractAddress"].clone(),
        "solution.feeds[2].contractAddress",
        "own aggregator contract",
    ),
    (
        "f too large",
        |s| s["consensus"]["f"] = json!(2),
        "solution.consensus.f",
        "3f < n",
    ),
    (
        "grace not below round",
        |s| s["consensus"]["deltaGraceMs"] = json!(30000),
        "solution.consensus.deltaGraceMs",
        "less than deltaRoundMs",
    ),
    (
        "round not below progress",
        |s| s["consensus"]["deltaProgressMs"] = json!(30000),
        "solution.consensus.deltaRoundMs",
        "less than deltaProgressMs",
    ),
    (
        "rMax out of range",
        |s| s["consensus"]["rMax"] = json!(255),
        "solution.consensus.rMax",
        "between 1 and 254",
    ),
    (
        "schedule stage larger than n",
        |s| s["consensus"]["transmissionSchedule"] = json!([5]),
        "solution.consensus.transmissionSchedule[0]",
        "at most n = 4",
    ),
    (
        "schedule without transmitters",
        |s| s["consensus"]["transmissionSchedule"] = json!([0, 0]),
        "solution.consensus.transmissionSchedule",
        "at least one",
    ),
    (
        "below the chain's minimum",
        |s| s["consensus"]["deltaStageMs"] = json!(1000),
        "solution.consensus.deltaStageMs",
        "on chain 5611",
    ),
    (
        "heartbeat below the chain's minimum",
        |s| s["feeds"][0]["heartbeatMs"] = json!(60000),
        "solution.feeds[0].heartbeatMs",
        "on chain 5611",
    ),
    (
        "a DON across enclaves without allowed measurements",
        |s| {
            s["don"] = don_of_two();
            s["chain"]["enabled"] = json!(true);
            s["chain"]["configureContracts"] = json!(true);
        },
        "solution.attestation.allowedMeasurements",
        "required with `don`",
    ),
    (
        "a DON across enclaves without evidence",
        |s| {
            s["don"] = don_of_two();
            s["chain"]["enabled"] = json!(true);
            s["chain"]["configureContracts"] = json!(true);
            s["attestation"] = json!({"provider": "none", "allowedMeasurements": a_measurement()});
        },
        "solution.attestation.provider",
        "admit each other by their evidence",
    ),
    (
        "a DON across enclaves without the chain",
        |s| {
            s["don"] = don_of_two();
            s["attestation"]["allowedMeasurements"] = a_measurement();
        },
        "solution.chain.enabled",
        "needs the chain",
    ),
    (
        "a DON across enclaves whose contracts node 1 does not configure",
        |s| {
            s["don"] = don_of_two();
            s["chain"]["enabled"] = json!(true);
            s["attestation"]["allowedMeasurements"] = a_measurement();
        },
        "solution.chain.configureContracts",
        "only node 1 can configure",
    ),
    (
        "a DON member with another's node",
        |s| {
            s["don"] = don_of_two();
            s["chain"]["enabled"] = json!(true);
            s["chain"]["configureContracts"] = json!(true);
            s["don"]["members"][1]["nodes"] = json!([3, 5]);
        },
        "solution.don.members[1].nodes[0]",
        "node 3 is member \"a\"'s already",
    ),
    (
        "proxy flag without a proxy",
        |s| s["priceAggregatorConfig"]["sources"]["okx"]["useProxy"] = json!(true),
        "solution.priceAggregatorConfig.sources.okx.useProxy",
        "proxy is not set",
    ),
    (
        "metrics push without URL",
        |s| {
            let push = &mut s["priceAggregatorConfig"]["metricsPush"];
            push["enabled"] = json!(true);
            push.as_object_mut().map(|o| o.shift_remove("url"));
        },
        "solution.priceAggregatorConfig.metricsPush.url",
        "required when the target is enabled",
    ),
    (
        "a feed that can never meet minSources",
        |s| s["priceAggregatorConfig"]["aggregation"] = json!({"minSources": 4}),
        "solution.feeds[2].legs",
        "could never be priced",
    ),
    (
        "aggregator bound to a non-address",
        |s| s["priceAggregatorConfig"]["host"] = json!("localhost"),
        "solution.priceAggregatorConfig.host",
        "IP address",
    ),
    (
        "unknown field",
        |s| s["pgPrt"] = json!(5432),
        "solution.pgPrt",
        "did you mean `pgPort`",
    ),
    (
        "unknown nested field",
        |s| s["priceAggregatorConfig"]["sources"]["okx"]["rpss"] = json!(1),
        "solution.priceAggregatorConfig.sources.okx.rpss",
        "unknown field",
    ),
    (
        "unknown source",
        |s| s["priceAggregatorConfig"]["sources"]["nasdaq"] = json!({}),
        "solution.priceAggregatorConfig.sources.nasdaq",
        "unknown field",
    ),
    (
        "wrong type",
        |s| s["maxRestarts"] = json!(true),
        "solution.maxRestarts",
        "non-negative integer",
    ),
    (
        "chain id missing",
        |s| {
            s.as_object_mut()
                .map(|o| o.shift_remove("chainlinkChainId"));
        },
        "solution.chainlinkChainId",
        "is required",
    ),
    (
        "alerter port clash",
        |s| s["ports"]["alerts"] = json!(3003),
        "solution.ports.alerts",
        "already used by the process-metrics exporter",
    ),
    (
        "pegged feed not configured",
        |s| {
            s["alerts"] = json!({"pegged": [{"feed": "USDC-USD", "peg": "1.0"}],
            "channels": [{"type": "webhook", "url": "http://127.0.0.1:9/alerts"}]})
        },
        "solution.alerts.pegged[0].feed",
        "not the name of a configured feed",
    ),
    (
        "unknown alert channel type",
        |s| s["alerts"] = json!({"channels": [{"type": "email", "to": "ops@example.com"}]}),
        "solution.alerts.channels[0].type",
        "slack, discord, telegram, webhook",
    ),
];

#[test]
fn the_example_is_valid_and_warns_only_that_its_push_targets_are_off() {
    let validated = validate_document(&read_json(&example_path())).expect("example is valid");
    // Its targets are complete but `"enabled": false`: nothing listens on them locally, and one
    // warning per process at startup beats a failed push every interval.
    let warnings: Vec<String> = validated
        .report
        .warnings
        .iter()
        .map(|w| format!("{}: {}", w.path, w.message))
        .collect();
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    assert!(
        warnings[0].starts_with("solution.telemetry.targets: no push target"),
        "{warnings:?}"
    );
    assert!(
        validated.report.ignored.is_empty(),
        "{:?}",
        validated.report.ignored
    );
    let c = &validated.config;
    assert_eq!(c.nodes.oracles(), [2, 3, 4, 5]);
    assert_eq!(c.consensus.f, 1);
    assert_eq!(c.feeds.len(), 3);
}

#[test]
fn each_rule_reports_its_own_message_at_its_path() {
    let example = read_json(&example_path());
    for (name, mutate, path, phrase) in RULES {
        let mut document = example.clone();
        mutate(&mut document["solution"]);
        let problems = problems_of(&document);
        assert!(!problems.is_empty(), "{name}: not rejected");
        for (p, message) in &problems {
            assert_eq!(
                p, path,
                "{name}: unexpected problem {p}: {message} (all: {problems:?})"
            );
        }
        assert!(
            problems.iter().any(|(_, m)| m.contains(phrase)),
            "{name}: no message with {phrase:?} in {problems:?}"
        );
    }
}

#[test]
fn several_violations_are_all_reported() {
    let mut document = read_json(&example_path());
    let s = &mut document["solution"];
    s["totalNodes"] = json!("4");
    s["pgPort"] = json!(3000);
    s["feeds"][0]["contractAddress"] = json!("0x12");
    s["consensus"]["deltaGraceMs"] = json!(30000);
    s["priceAggregatorConfig"]["sources"]["okx"]["rps"] = json!(-1);
    s["bogus"] = json!(1);
    let paths: Vec<String> = problems_of(&document).into_iter().map(|(p, _)| p).collect();
    for expected in [
        "solution.totalNodes",
        "solution.priceAggregatorConfig.port",
        "solution.feeds[0].contractAddress",
        "solution.consensus.deltaGraceMs",
        "solution.priceAggregatorConfig.sources.okx.rps",
        "solution.bogus",
    ] {
        assert!(
            paths.iter().any(|p| p == expected),
            "{expected} not reported in {paths:?}"
        );
    }
}

#[test]
fn the_reference_solution_configuration_is_accepted_with_its_unused_fields_noted() {
    let reference = read_json(&repo().join("tests/fixtures/reference-solution.json"));
    let validated = validate_document(&reference).expect("reference configuration is valid");
    let ignored = &validated.report.ignored;
    for field in [
        "chainlinkEmail",
        "chainlinkPassword",
        "chainlinkKeystorePassword",
        "setConfigBatchSize",
        "chainlinkGasPrice",
    ] {
        assert!(
            ignored.contains(&format!("solution.{field}")),
            "{field} not noted: {ignored:?}"
        );
    }
    // The reference's faucet amounts would need several top-ups: a warning, not an error.
    assert!(validated
        .report
        .warnings
        .iter()
        .any(|w| w.path == "solution.faucetTopupWei"));
    assert_eq!(validated.config.nodes.total, 5);
}

#[test]
fn numbers_written_as_strings_are_accepted() {
    let mut document = read_json(&example_path());
    let s = &mut document["solution"];
    s["pgPort"] = json!("5433");
    s["maxRestarts"] = json!("4");
    s["consensus"]["rMax"] = json!("7");
    s["priceAggregatorConfig"]["port"] = json!("3001");
    s["priceAggregatorConfig"]["sources"]["okx"]["rps"] = json!("2.5");
    let c = validate_document(&document).expect("valid").config;
    assert_eq!(c.postgres.port, 5433);
    assert_eq!(c.restart.max_restarts, 4);
    assert_eq!(c.consensus.r_max, 7);
    assert_eq!(c.aggregator.port, 3001);
}

#[test]
fn the_local_endpoints_bind_loopback_unless_configured() {
    let mut document = read_json(&example_path());
    let c = validate_document(&document).expect("valid").config;
    assert_eq!(c.ports.listen_host.to_string(), "127.0.0.1");
    document["solution"]["ports"]["listenHost"] = json!("0.0.0.0");
    let c = validate_document(&document).expect("valid").config;
    assert_eq!(c.ports.listen_host.to_string(), "0.0.0.0");
}

#[test]
fn no_secret_value_appears_in_the_formatted_configuration() {
    let reference = read_json(&repo().join("tests/fixtures/reference-solution.json"));
    let mut document = read_json(&example_path());
    let s = &mut document["solution"];
    s["faucetPrivateKey"] = reference["faucetPrivateKey"].clone();
    s["httpsProxy"] = json!("https://proxyuser:proxy-secret-pw@proxy.example.com:3128");
    s["priceAggregatorConfig"]["proxy"] = json!("http://pauser:pa-proxy-secret@p.example.com:8080");
    s["priceAggregatorConfig"]["sources"]["okx"]["useProxy"] =
        json!("http://u:own-proxy-secret@q.example.com:1");
    s["priceAggregatorConfig"]["metricsPush"]["enabled"] = json!(true);
    s["priceAggregatorConfig"]["metricsPush"]["headers"] =
        json!({"Authorization": "Bearer header-token-secret"});
    s["telemetry"]["targets"][0]["enabled"] = json!(true);
    s["telemetry"]["targets"][0]["basicAuth"] =
        json!({"username": "tele", "password": "telemetry-secret-pw"});
    s["priceAggregatorConfig"]["sources"]["coingecko"] = json!({"apiKey": "coingecko-secret-key"});
    s["alerts"] = json!({"channels": [
        {"type": "slack", "webhookUrl": "https://hooks.slack.com/services/T0/B0/slack-hook-secret"},
        {"type": "discord", "webhookUrl": "https://discord.com/api/webhooks/1/discord-hook-secret"},
        {"type": "telegram", "botToken": "123456:telegram-bot-secret", "chatId": "-100123"},
        {"type": "webhook", "url": "https://hook.example/x?token=webhook-url-secret",
         "headers": {"Authorization": "Bearer webhook-header-secret"}},
    ]});
    let validated = validate_document(&document).expect("valid");
    // The verified configuration too, which keeps the document itself (secrets in clear).
    let solution = document["solution"].as_object_mut().expect("object");
    solution.shift_remove("signature");
    let payload = Value::Object(solution.clone());
    let key = enclave::config::signature::PrivateKey::from_pkcs8_text(
        &std::fs::read_to_string(dev_private_key_path()).expect("dev key"),
    )
    .expect("dev key parses");
    let signed = enclave::config::signature::sign(&payload, &key).expect("sign");
    document["solution"]["signature"] = json!(signed.signature_b64);
    let public = enclave::config::read_key_file(&dev_public_key_path()).expect("public key");
    let verified = enclave::config::VerifiedConfig {
        verified: enclave::config::verify_document(&document, &public).expect("verified"),
        document,
        config: validated.config,
        report: validated.report,
    };
    let config = &verified.config;
    let formatted = format!("{config:?}\n{config:#?}\n{verified:?}\n{verified:#?}");
    for secret in [
        "4c0883a69102937d6231471b5dbb6204fe5129617082792ae468d01a3f362318",
        "proxy-secret-pw",
        "pa-proxy-secret",
        "own-proxy-secret",
        "header-token-secret",
        "telemetry-secret-pw",
        "coingecko-secret-key",
        "dev-only-metrics-password",
        "dev-only-cryptocompare-key",
        "slack-hook-secret",
        "discord-hook-secret",
        "telegram-bot-secret",
        "webhook-url-secret",
        "webhook-header-secret",
    ] {
        assert!(
            !formatted.contains(secret),
            "{secret} leaked into Debug output"
        );
    }
    assert!(formatted.contains("***"));
}

#[test]
fn problems_never_echo_secret_values() {
    let mut document = read_json(&example_path());
    let s = &mut document["solution"];
    s["faucetPrivateKey"] = json!("zz-not-hex-secret-zz");
    s["priceAggregatorConfig"]["proxy"] = json!("ftp://u:proxy-secret@h");
    s["priceAggregatorConfig"]["sources"]["finnhub"] = json!({"apiKey": "k"});
    let all = format!("{:?}", problems_of(&document));
    assert_contains(&all, "solution.faucetPrivateKey");
    assert_contains(
        &all,
        "solution.priceAggregatorConfig.sources.finnhub.apiKey",
    );
    for secret in ["zz-not-hex-secret-zz", "proxy-secret"] {
        assert!(!all.contains(secret), "{secret} echoed: {all}");
    }
}
