//! The `don` section: one DON whose nodes run in several enclaves, each its own member, usually
//! under its own operator (docs/design/don-across-tees.md). Absent, every node runs in this one
//! enclave, as before.
//!
//! Every member's enclave gets the same signed configuration. A member is named, owns some of
//! the node numbers (each node belongs to exactly one member), is reachable at one P2P address
//! per node, and is identified by its operator's Ed25519 key: an enclave is the member whose
//! operator key it is given (a secret of the deployment, never in this file), so nobody can make
//! an enclave stand for a member whose operator's private key they do not hold.

use std::time::Duration;

use ed25519_dalek::VerifyingKey;
use serde_json::Value;

use super::nodes::NodesConfig;
use crate::config::defaults::don as defaults;
use crate::config::reader::{element_path, Fields, Report};
use crate::config::values::{url, RedactedUrl};

/// More members than oracles plus the bootstrap cannot each own a node.
pub const MAX_MEMBERS: usize = 32;
/// Member names appear in logs, metric labels and file names: short, lowercase, no spaces.
pub const MAX_NAME: usize = 40;
/// A DNS name is at most 253 characters; with `:65535` and brackets, this bounds any address.
const MAX_ADDRESS: usize = 261;
/// An identity URL: an address and a short path.
const MAX_URL: usize = 512;

#[derive(Clone, PartialEq, Eq)]
pub struct Member {
    pub name: String,
    /// The node numbers this member's enclave runs, in the configuration's order (which
    /// `p2p_addresses` follows).
    pub nodes: Vec<u32>,
    /// The operator's key: an enclave given its private half is this member.
    pub operator_key: VerifyingKey,
    /// Where the other members dial each of `nodes` (`host:port`), in the same order.
    pub p2p_addresses: Vec<String>,
    /// Where the other members fetch this member's identity document (its supervisor's
    /// `GET /v1/identity`, as reachable from them).
    pub identity_url: RedactedUrl,
}

impl std::fmt::Debug for Member {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Member")
            .field("name", &self.name)
            .field("nodes", &self.nodes)
            .field("operator_key", &hex::encode(self.operator_key.as_bytes()))
            .field("p2p_addresses", &self.p2p_addresses)
            .field("identity_url", &self.identity_url)
            .finish()
    }
}

impl Member {
    /// Where the other members dial `node`, if this member runs it.
    pub fn address_of(&self, node: u32) -> Option<&str> {
        let i = self.nodes.iter().position(|n| *n == node)?;
        self.p2p_addresses.get(i).map(String::as_str)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DonConfig {
    pub members: Vec<Member>,
    /// How often an admitted member's evidence is verified again (and at every reconnection).
    pub recheck: Duration,
}

impl DonConfig {
    /// The member that runs `node`.
    pub fn member_of(&self, node: u32) -> Option<&Member> {
        self.members.iter().find(|m| m.nodes.contains(&node))
    }

    /// The member with this operator key.
    pub fn member_with_key(&self, key: &VerifyingKey) -> Option<&Member> {
        self.members.iter().find(|m| &m.operator_key == key)
    }

    /// The member named `name`.
    pub fn member(&self, name: &str) -> Option<&Member> {
        self.members.iter().find(|m| m.name == name)
    }
}

/// Reads the section: `None` when it is absent (every node in this enclave) or unusable (the
/// report then has the errors, each naming its field).
pub fn read_don(
    r: &mut Report,
    section: Option<Fields<'_>>,
    nodes: &NodesConfig,
) -> Option<DonConfig> {
    let mut f = section?;
    let recheck = f.millis(r, "recheckMs", 1_000, 86_400_000, defaults::RECHECK_MS);
    let members_path = f.path_of("members");
    if !f.has("members") {
        r.error(&members_path, "is required: the enclaves that form the DON");
    }
    let members = f
        .array(r, "members")
        .and_then(|items| read_members(r, &members_path, &items, nodes));
    f.finish(r, &[]);
    Some(DonConfig {
        members: members?,
        recheck,
    })
}

fn read_members(
    r: &mut Report,
    path: &str,
    items: &[(String, &Value)],
    nodes: &NodesConfig,
) -> Option<Vec<Member>> {
    if items.len() < 2 || items.len() > MAX_MEMBERS {
        r.error(
            path,
            format!(
                "must list 2 to {MAX_MEMBERS} members (has {}): with one enclave, leave out the `don` section",
                items.len()
            ),
        );
        return None;
    }
    let errors_before = r.problems.len();
    let mut members: Vec<Member> = Vec::new();
    let mut owner: Vec<Option<String>> = vec![None; nodes.total as usize + 1];
    for (member_path, value) in items {
        let Some(member) = read_member(r, member_path, value, nodes.total) else {
            continue;
        };
        if members.iter().any(|m| m.name == member.name) {
            r.error(
                format!("{member_path}.name"),
                format!(
                    "{:?} names another member too: names must be distinct",
                    member.name
                ),
            );
        }
        if let Some(other) = members
            .iter()
            .find(|m| m.operator_key == member.operator_key)
        {
            r.error(
                format!("{member_path}.operatorKey"),
                format!(
                    "is member {:?}'s key too: each member has its own operator, or one operator holds both",
                    other.name
                ),
            );
        }
        for (j, node) in member.nodes.iter().enumerate() {
            let slot = &mut owner[*node as usize];
            match slot {
                Some(other) => r.error(
                    element_path(&format!("{member_path}.nodes"), j),
                    format!("node {node} is member {other:?}'s already: each node belongs to one member"),
                ),
                None => *slot = Some(member.name.clone()),
            }
        }
        members.push(member);
    }
    if r.problems.len() > errors_before {
        return None;
    }
    let unowned: Vec<String> = (1..=nodes.total)
        .filter(|n| owner[*n as usize].is_none())
        .map(|n| n.to_string())
        .collect();
    if !unowned.is_empty() {
        r.error(
            path,
            format!(
                "node(s) {} belong to no member: every node 1..{} must run in some member's enclave",
                unowned.join(", "),
                nodes.total
            ),
        );
        return None;
    }
    Some(members)
}

fn read_member(r: &mut Report, path: &str, value: &Value, total: u32) -> Option<Member> {
    let mut f = Fields::of(r, path, value)?;
    let name = f.required_string(r, "name").and_then(|name| {
        let valid = !name.is_empty()
            && name.len() <= MAX_NAME
            && name.starts_with(|c: char| c.is_ascii_lowercase() || c.is_ascii_digit())
            && name
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
        if !valid {
            r.error(
                f.path_of("name"),
                format!("must be 1 to {MAX_NAME} characters of a-z, 0-9 and '-', starting with a letter or digit (it names the member in logs and metrics)"),
            );
        }
        valid.then(|| name.to_owned())
    });
    let nodes = read_nodes(r, &mut f, total);
    let operator_key = f.required_string(r, "operatorKey").and_then(|text| {
        let key = parse_key(text);
        if key.is_none() {
            r.error(
                f.path_of("operatorKey"),
                "must be an Ed25519 public key: 64 hex digits (`enclave operator-key` makes a pair)",
            );
        }
        key
    });
    let addresses = read_addresses(r, &mut f, nodes.as_ref().map(Vec::len));
    let identity_path = f.path_of("identityUrl");
    let identity_url = f.required_string(r, "identityUrl").and_then(|text| {
        if text.len() > MAX_URL {
            r.error(
                &identity_path,
                format!("must be at most {MAX_URL} characters"),
            );
            return None;
        }
        url(r, &identity_path, text, &["http", "https"])
    });
    f.finish(r, &[]);
    Some(Member {
        name: name?,
        nodes: nodes?,
        operator_key: operator_key?,
        p2p_addresses: addresses?,
        identity_url: identity_url?,
    })
}

fn read_nodes(r: &mut Report, f: &mut Fields<'_>, total: u32) -> Option<Vec<u32>> {
    let path = f.path_of("nodes");
    let Some(items) = f.array(r, "nodes") else {
        if !f.has("nodes") {
            r.error(&path, "is required: the node numbers this member runs");
        }
        return None;
    };
    if items.is_empty() {
        r.error(&path, "must name at least one node");
        return None;
    }
    let mut nodes = Vec::new();
    let mut ok = true;
    for (item_path, value) in &items {
        match value.as_u64().and_then(|n| u32::try_from(n).ok()) {
            Some(n) if (1..=total).contains(&n) => {
                if nodes.contains(&n) {
                    r.error(item_path, format!("node {n} is listed twice"));
                    ok = false;
                }
                nodes.push(n);
            }
            _ => {
                r.error(item_path, format!("must be a node number 1..{total}"));
                ok = false;
            }
        }
    }
    ok.then_some(nodes)
}

fn read_addresses(r: &mut Report, f: &mut Fields<'_>, nodes: Option<usize>) -> Option<Vec<String>> {
    let path = f.path_of("p2pAddresses");
    let Some(items) = f.array(r, "p2pAddresses") else {
        if !f.has("p2pAddresses") {
            r.error(
                &path,
                "is required: where the other members dial each of this member's nodes (host:port)",
            );
        }
        return None;
    };
    let mut out = Vec::new();
    for (item_path, value) in &items {
        match value.as_str().filter(|s| is_host_port(s)) {
            Some(address) => out.push(address.to_owned()),
            None => r.error(
                item_path,
                format!("must be host:port, such as oracle-b.example:9902 (at most {MAX_ADDRESS} characters)"),
            ),
        }
    }
    if let Some(count) = nodes {
        if items.len() != count {
            r.error(
                &path,
                format!(
                    "has {} address(es) for {count} node(s): one per node, in the order of `nodes`",
                    items.len()
                ),
            );
            return None;
        }
    }
    (out.len() == items.len()).then_some(out)
}

/// An Ed25519 public key as 64 hex digits (a valid curve point).
pub fn parse_key(text: &str) -> Option<VerifyingKey> {
    let bytes: [u8; 32] = hex::decode(text.trim_start_matches("0x"))
        .ok()?
        .try_into()
        .ok()?;
    VerifyingKey::from_bytes(&bytes).ok()
}

/// `host:port`: a DNS name, an IPv4 address or a bracketed IPv6 address, and a port 1..65535.
fn is_host_port(text: &str) -> bool {
    if text.len() > MAX_ADDRESS {
        return false;
    }
    let Some((host, port)) = text.rsplit_once(':') else {
        return false;
    };
    let host_ok = match host.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
        Some(v6) => v6.parse::<std::net::Ipv6Addr>().is_ok(),
        None => {
            !host.is_empty()
                && host
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '-')
        }
    };
    host_ok && port.parse::<u16>().is_ok_and(|p| p > 0)
}

#[cfg(test)]
mod tests;
