//! Insights as a cluster (issue 15): several real `insights` processes on
//! one PostgreSQL database and one Azurite, behind HAProxy
//! (`insights_tests::cluster`), and the deployment files of
//! docs/deployment.md (HAProxy configuration, systemd units).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod api;
mod deployment;
mod failover;
mod pause;
mod proof;
mod segments;

/// Two API nodes behind HAProxy: calls recorded through either node are
/// found and played through HAProxy and through each node alike; one
/// node is killed (SIGKILL) while requests run through HAProxy and none
/// of them fails; restarted, it rejoins the rotation and serves again.
#[test]
fn two_api_nodes_behind_haproxy_survive_a_kill() {
    failover::two_api_nodes_survive_a_kill();
}

/// The systemd units of deploy/systemd/ are valid (`systemd-analyze
/// verify` and our own parser), hardened, and start the command of their
/// role.
#[test]
fn systemd_units_are_valid_and_hardened() {
    deployment::systemd_units();
}

/// docs/deployment.md shows the HAProxy configuration the tests render
/// and the unit files as they are.
#[test]
fn deployment_doc_shows_the_tested_files() {
    deployment::doc_shows_the_tested_files();
}

/// Each node's configuration in docs/deployment.md loads.
#[test]
fn deployment_doc_node_configs_load() {
    deployment::doc_node_configs_load();
}

/// The proof of issue 15: PostgreSQL, Azurite, HAProxy, two
/// application nodes (api, worker, scheduler) and two gateway nodes; 40
/// calls and a meeting across the gateway nodes; a worker killed
/// mid-transcription, the scheduler leader killed during an export and an
/// OIDC sign-in, the gateway node of the meeting's primary leg killed
/// mid-meeting. Every call stored once, every recording verifies on
/// every node, each retention interval runs once, the audit chain is
/// intact with no event twice, and both API nodes search alike.
#[test]
fn cluster_proof_nodes_die_and_nothing_is_lost() {
    proof::cluster_proof();
}

/// A gateway node killed (SIGKILL) mid-call with its disk deleted: the
/// other node recovers the call from the segments staged in Azurite
/// (`[uploader] segment_seconds = 2`), stores it once as partial
/// (`gateway-node-lost`) at most one segment short, and it verifies.
#[test]
fn lost_gateway_node_call_is_recovered_from_segments() {
    segments::lost_gateway_node_call_is_recovered_from_segments();
}

/// Pause and resume (issue 17 §1) with the API and the gateway in two
/// processes: the request reaches the gateway node through PostgreSQL,
/// which applies it (200 once applied), and the stored call is shorter
/// by the pause.
#[test]
fn pause_reaches_the_gateway_node_through_the_database() {
    pause::pause_reaches_the_gateway_node_through_the_database();
}
