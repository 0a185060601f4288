//! The DON across enclaves under the scenarios, in one DON (forming it takes minutes):
//! formed and reporting; an oracle cut off and reconnected; one killed and restarted with its
//! volumes; impostors of one member — another binary, another configuration — refused by every
//! peer while the others report on; the member itself readmitted; a second enclave with the
//! member's operator key beside it: the member refused while both answer, readmitted after.

use std::path::Path;

use crate::docker::{docker, docker_ok};
use crate::don::{disconnect, reconnect, Don, FORMED, MEMBERS, ORACLES, T};

macro_rules! skip_unless_possible {
    ($test:expr) => {
        match crate::docker::image_or_skip_reason() {
            Ok(image) => {
                if let Some(reason) = crate::common::devchain::skip_reason().or_else(tools_missing)
                {
                    eprintln!("SKIPPED {}: {reason}", $test);
                    return;
                }
                image
            }
            Err(reason) => {
                eprintln!("SKIPPED {}: {reason}", $test);
                return;
            }
        }
    };
}

/// What scripts/don/don.py needs besides Docker and the dev chain, if something is missing.
fn tools_missing() -> Option<String> {
    for tool in ["docker-compose", "openssl"] {
        let ran = std::process::Command::new(tool)
            .arg("version")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status();
        if !ran.is_ok_and(|s| s.success()) {
            return Some(format!(
                "{tool} is not installed (scripts/don/don.py needs it)"
            ));
        }
    }
    None
}

/// Node number of a member (boot runs node 1, oracle-i node i).
fn node_of(member: &str) -> u16 {
    member
        .strip_prefix("oracle-")
        .and_then(|n| n.parse().ok())
        .unwrap_or(1)
}

fn peers_connected(don: &Don, member: &str) -> Option<f64> {
    don.node_metric(member, node_of(member), "enclave_node_peers_connected")
}

fn refusals(don: &Don, by: &str, member: &str, reason: &str) -> f64 {
    don.supervisor_metric(
        by,
        &format!("enclave_don_member_refusals_total{{member=\"{member}\",reason=\"{reason}\"}}"),
    )
    .unwrap_or(0.0)
}

/// Every other member refuses `member` for `reason` (and has stopped admitting it).
fn wait_refused_by_all(don: &Don, member: &str, reason: &str) {
    don.wait(
        T,
        &format!("every member refusing {member}: {reason}"),
        |d| {
            MEMBERS
                .iter()
                .filter(|by| **by != member)
                .all(|by| !d.admits(by, member) && refusals(d, by, member, reason) > 0.0)
        },
    );
}

/// Runs an impostor of `member` on the DON's network under the member's name, with its
/// operator key, the DON's configuration (or `configuration`), and `binary` in place of the
/// image's; fresh volumes. Returns the container id.
fn impostor(
    don: &Don,
    image: &str,
    member: &str,
    configuration: &Path,
    binary: Option<&Path>,
) -> String {
    let dir = don.dir();
    let mount = |host: &Path, inside: &str| format!("{}:{inside}:ro", host.display());
    let mut args = vec![
        "run".to_owned(),
        "-d".into(),
        "--network".into(),
        don.network(),
        "--network-alias".into(),
        member.into(),
        "--hostname".into(),
        member.into(),
        "-e".into(),
        "ENCLAVE_OPERATOR_KEY_FILE=/sp/operator/operator.key".into(),
        "-v".into(),
        mount(configuration, "/sp/configurations/configuration.json"),
        "-v".into(),
        mount(&dir.join("dev-ca"), "/sp/dev-ca"),
        "-v".into(),
        mount(&dir.join(member), "/sp/operator"),
    ];
    if let Some(binary) = binary {
        args.extend(["-v".into(), mount(binary, "/usr/local/bin/enclave")]);
    }
    args.push(image.to_owned());
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    docker_ok(&refs)
}

/// Every member's identity document as its supervisor serves it, in a file each.
fn fetch_identities(don: &Don) -> Vec<std::path::PathBuf> {
    MEMBERS
        .iter()
        .map(|m| {
            let ip = don.ip(m).expect("address");
            let text = crate::common::receivers::get_ok(&format!("http://{ip}:3002/v1/identity"));
            let path = don.dir().join(format!("identity-{m}.json"));
            std::fs::write(&path, text).expect("write");
            path
        })
        .collect()
}

/// `enclave don-config --identity …` as an outsider runs it (the development CA and simulated
/// evidence allowed): its exit code and its JSON.
fn don_config(
    don: &Don,
    identities: &[std::path::PathBuf],
    check_chain: bool,
) -> (i32, serde_json::Value) {
    let dir = don.dir();
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_enclave"));
    command
        .env(
            "CONFIGURATION_PUBLIC_KEY_FILE",
            crate::common::repo().join("scripts/dev-keys/configuration.pub"),
        )
        .arg("--config")
        .arg(dir.join("configuration.json"))
        .arg("don-config")
        .arg("--trusted-ca")
        .arg(dir.join("dev-ca/ca.pem"))
        .arg("--allow-simulated");
    for identity in identities {
        command.arg("--identity").arg(identity);
    }
    if check_chain {
        command.arg("--check-chain");
    }
    let output = command.output().expect("don-config runs");
    let report = serde_json::from_slice(&output.stdout).unwrap_or_else(|_| {
        panic!(
            "don-config printed no JSON: {}",
            String::from_utf8_lossy(&output.stderr)
        )
    });
    (output.status.code().unwrap_or(-1), report)
}

fn remove(container: &str) {
    let _ = docker(&["rm", "-f", "-v", container]);
}

#[test]
fn a_don_of_five_enclaves_forms_by_attestation_reports_and_rides_out_cut_offs_restarts_and_impostors(
) {
    let test = "a_don_of_five_enclaves_forms_by_attestation…";
    let image = skip_unless_possible!(test);
    let don = Don::start(&image);

    // Formed: every member admitted by every other; every oracle connected to the other three;
    // reports of every feed on the chain.
    don.wait_all_admitted(FORMED);
    don.wait(FORMED, "every oracle connected to the other three", |d| {
        ORACLES.iter().all(|m| peers_connected(d, m) == Some(3.0))
    });
    let zero = don.rounds().into_keys().map(|f| (f, 0)).collect();
    don.wait_rounds_past(&zero, 1, FORMED);

    // An outsider's check: every member's identity judged as the members judge each other, and
    // every contract lists exactly the attested members' keys; without one member's identity
    // the set is incomplete.
    let identities = fetch_identities(&don);
    let (code, report) = don_config(&don, &identities, true);
    assert_eq!(code, 0, "{report}");
    let members: Vec<&str> = report["oracles"]
        .as_array()
        .expect("oracles")
        .iter()
        .map(|o| o["member"].as_str().expect("member"))
        .collect();
    assert_eq!(members, ORACLES);
    for feed in report["feeds"].as_array().expect("feeds") {
        assert_eq!(feed["onChain"]["matchesAttestedMembers"], true, "{feed}");
    }
    let (code, report) = don_config(&don, &identities[..4], false);
    assert_eq!(code, 1, "{report}");
    assert_eq!(report["missing"], serde_json::json!(["oracle-5"]));

    // Cut off: the others report on; reconnected, it is back with the three others.
    disconnect(&don, "oracle-5");
    don.wait_rounds_past(&don.rounds(), 2, T);
    reconnect(&don, "oracle-5");
    don.wait(T, "oracle-5 reconnected to the other oracles", |d| {
        peers_connected(d, "oracle-5") == Some(3.0)
    });
    don.wait_rounds_past(&don.rounds(), 2, T);

    // Killed and restarted with its volumes (the same keys and signing guard): admitted again
    // and back in the rounds, never signing a second report for a round it signed.
    docker_ok(&["kill", &don.container("oracle-3")]);
    don.wait_rounds_past(&don.rounds(), 2, T);
    docker_ok(&["start", &don.container("oracle-3")]);
    don.wait(T, "oracle-3 back and connected", |d| {
        d.admits("boot", "oracle-3") && peers_connected(d, "oracle-3") == Some(3.0)
    });
    don.wait(T, "oracle-3 finalizing reports again", |d| {
        d.node_metric("oracle-3", 3, "enclave_node_reports_finalized_total")
            .is_some_and(|n| n > 0.0)
    });
    assert_eq!(
        don.node_metric(
            "oracle-3",
            3,
            "enclave_node_signing_refused_total{reason=\"conflict\"}"
        )
        .unwrap_or(0.0),
        0.0,
        "a restarted oracle is asked to sign only rounds it has not signed"
    );

    // Impostors of oracle-5 (the member stopped, its name, operator key and address taken):
    // another binary, then another configuration. Each is refused by every peer, with the
    // reason; the four others report on.
    docker_ok(&["stop", "--time", "30", &don.container("oracle-5")]);
    let other_binary = don.dir().join("enclave-other");
    let mut bytes = std::fs::read(don.dir().join("enclave")).expect("the image's binary");
    bytes.extend_from_slice(b"\0another build");
    std::fs::write(&other_binary, bytes).expect("write");
    std::fs::set_permissions(
        &other_binary,
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .expect("chmod");
    let configuration = don.dir().join("configuration.json");
    let fake = impostor(
        &don,
        &image,
        "oracle-5",
        &configuration,
        Some(&other_binary),
    );
    wait_refused_by_all(&don, "oracle-5", "measurement_not_allowed");
    don.wait_rounds_past(&don.rounds(), 2, T);
    remove(&fake);

    let other_configuration = don.dir().join("configuration-other.json");
    let mut document: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&configuration).expect("configuration"))
            .expect("JSON");
    document["solution"]["don"]["recheckMs"] = serde_json::json!(4000);
    std::fs::write(&other_configuration, document.to_string()).expect("write");
    let signed = std::process::Command::new(don.dir().join("enclave"))
        .args(["config", "sign", "--key"])
        .arg(crate::common::dev_private_key_path())
        .arg(&other_configuration)
        .output()
        .expect("sign");
    assert!(signed.status.success(), "{signed:?}");
    std::fs::set_permissions(
        &other_configuration,
        std::os::unix::fs::PermissionsExt::from_mode(0o644),
    )
    .expect("chmod");
    let fake = impostor(&don, &image, "oracle-5", &other_configuration, None);
    wait_refused_by_all(&don, "oracle-5", "other_configuration");
    don.wait_rounds_past(&don.rounds(), 2, T);
    remove(&fake);

    // The member itself again: admitted by every peer.
    docker_ok(&["start", &don.container("oracle-5")]);
    don.wait_all_admitted(T);
    don.wait(T, "oracle-5 connected to the other oracles", |d| {
        peers_connected(d, "oracle-5") == Some(3.0)
    });

    // Its operator key in a second enclave beside it (the same binary and configuration, at the
    // same name): the others see two enclaves answer in turn and refuse the member, while the
    // other oracles report on. The second one gone, the member is admitted again.
    let twin = impostor(&don, &image, "oracle-5", &configuration, None);
    wait_refused_by_all(&don, "oracle-5", "duplicate_claim");
    don.wait_rounds_past(&don.rounds(), 2, T);
    remove(&twin);
    don.wait_all_admitted(T);
    don.wait(T, "oracle-5 connected to the other oracles again", |d| {
        peers_connected(d, "oracle-5") == Some(3.0)
    });

    // A rolling restart of every member, one after the other (each admitted and connected
    // again before the next): reports never stop for longer than two rounds. A round is due
    // every heartbeat (10 s here); a restarted leader costs an epoch change (ΔProgress, 6 s).
    let gaps = don.watch_gaps();
    for member in MEMBERS {
        docker_ok(&["restart", "--time", "30", &don.container(member)]);
        don.wait_all_admitted(T);
        if member != "boot" {
            don.wait(T, &format!("{member} connected again"), |d| {
                peers_connected(d, member) == Some(3.0)
            });
        }
    }
    let gaps = gaps.stop();
    eprintln!("longest time without a new round during the rolling restart: {gaps:?}");
    let allowed = 2 * HEARTBEAT + DELTA_PROGRESS;
    for (feed, gap) in gaps {
        assert!(
            gap <= allowed,
            "{feed}: {gap:?} without a report during the rolling restart (allowed {allowed:?})"
        );
    }
}

/// The feeds' heartbeat and ΔProgress in the DON the tests run (`don.py --heartbeat-ms`, the
/// demo's consensus timings).
const HEARTBEAT: std::time::Duration = std::time::Duration::from_secs(10);
const DELTA_PROGRESS: std::time::Duration = std::time::Duration::from_secs(6);
