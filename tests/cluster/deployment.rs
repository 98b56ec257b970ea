//! The deployment files: the systemd units of deploy/systemd/ and
//! docs/deployment.md.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use insights_tests::cluster::{HAPROXY_TEMPLATE, Role, insights_bin};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_owned()
}

fn unit_path(role: Role) -> PathBuf {
    repo().join(format!("deploy/systemd/insights-{}.service", role.name()))
}

/// A unit file: section → key → values (a key may repeat).
type Unit = BTreeMap<String, BTreeMap<String, Vec<String>>>;

/// The keys a unit of ours may use, per section (anything else is a
/// typo systemd would ignore with a warning).
const KNOWN: &[(&str, &[&str])] = &[
    (
        "Unit",
        &["Description", "Documentation", "Wants", "After", "Requires"],
    ),
    (
        "Service",
        &[
            "Type",
            "ExecStart",
            "LoadCredential",
            "Environment",
            "KillSignal",
            "TimeoutStopSec",
            "Restart",
            "RestartSec",
            "User",
            "Group",
            "DynamicUser",
            "UMask",
            "StateDirectory",
            "StateDirectoryMode",
            "ConfigurationDirectory",
            "NoNewPrivileges",
            "ProtectSystem",
            "ProtectHome",
            "PrivateTmp",
            "PrivateDevices",
            "ProtectKernelTunables",
            "ProtectKernelModules",
            "ProtectKernelLogs",
            "ProtectControlGroups",
            "ProtectClock",
            "ProtectHostname",
            "ProtectProc",
            "ProcSubset",
            "RestrictAddressFamilies",
            "RestrictNamespaces",
            "RestrictRealtime",
            "RestrictSUIDSGID",
            "LockPersonality",
            "MemoryDenyWriteExecute",
            "RemoveIPC",
            "SystemCallArchitectures",
            "SystemCallFilter",
            "LimitNOFILE",
            "AmbientCapabilities",
            "CapabilityBoundingSet",
        ],
    ),
    ("Install", &["WantedBy"]),
];

/// Parses a unit file the way systemd reads it (sections, `Key=value`,
/// `#`/`;` comments); fails the test on anything else.
fn parse_unit(path: &Path) -> Unit {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut unit = Unit::new();
    let mut section: Option<String> = None;
    for (n, line) in text.lines().enumerate() {
        let at = format!("{}:{}", path.display(), n + 1);
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        assert!(!line.ends_with('\\'), "{at}: no continuation lines, please");
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            let known = KNOWN.iter().any(|(s, _)| *s == name);
            assert!(known, "{at}: unknown section [{name}]");
            assert!(!unit.contains_key(name), "{at}: [{name}] twice");
            unit.insert(name.to_owned(), BTreeMap::new());
            section = Some(name.to_owned());
            continue;
        }
        let sec = section
            .as_deref()
            .unwrap_or_else(|| panic!("{at}: a key before any section"));
        let (key, value) = line
            .split_once('=')
            .unwrap_or_else(|| panic!("{at}: not `Key=value`: {line}"));
        let key = key.trim();
        let keys = KNOWN.iter().find(|(s, _)| *s == sec).unwrap().1;
        assert!(keys.contains(&key), "{at}: unknown key {key} in [{sec}]");
        unit.get_mut(sec)
            .unwrap()
            .entry(key.to_owned())
            .or_default()
            .push(value.trim().to_owned());
    }
    unit
}

fn one<'a>(unit: &'a Unit, path: &Path, section: &str, key: &str) -> &'a str {
    let v = unit
        .get(section)
        .and_then(|s| s.get(key))
        .unwrap_or_else(|| panic!("{}: no {key}= in [{section}]", path.display()));
    assert_eq!(v.len(), 1, "{}: {key}= more than once", path.display());
    &v[0]
}

pub fn systemd_units() {
    let bin = insights_bin();
    let scratch = tempfile::tempdir().unwrap();
    for role in Role::ALL {
        let path = unit_path(role);
        let unit = parse_unit(&path);
        for section in ["Unit", "Service", "Install"] {
            assert!(
                unit.contains_key(section),
                "{}: no [{section}]",
                path.display()
            );
        }
        assert!(!one(&unit, &path, "Unit", "Description").is_empty());
        assert_eq!(
            one(&unit, &path, "Install", "WantedBy"),
            "multi-user.target"
        );
        assert_eq!(one(&unit, &path, "Service", "Type"), "exec");
        // Hardened: its own unprivileged user, a read-only system, no
        // way to gain privileges, no capability but what it needs.
        let user = unit["Service"].get("User").map(|v| v[0].as_str());
        let dynamic = unit["Service"].get("DynamicUser").map(|v| v[0].as_str());
        assert!(
            matches!(user, Some(u) if u != "root") || dynamic == Some("yes"),
            "{}: runs as root",
            path.display()
        );
        for (key, value) in [
            ("NoNewPrivileges", "yes"),
            ("ProtectSystem", "strict"),
            ("ProtectHome", "yes"),
            ("PrivateTmp", "yes"),
            ("PrivateDevices", "yes"),
            ("RestrictSUIDSGID", "yes"),
            ("SystemCallArchitectures", "native"),
            ("UMask", "0077"),
        ] {
            assert_eq!(
                one(&unit, &path, "Service", key),
                value,
                "{}: {key}",
                path.display()
            );
        }
        let caps = one(&unit, &path, "Service", "CapabilityBoundingSet");
        assert!(
            caps.is_empty() || caps == "CAP_NET_BIND_SERVICE",
            "{}: capabilities {caps}",
            path.display()
        );
        // The secrets come as credentials, not from the state folder.
        let creds = &unit["Service"]["LoadCredential"];
        assert!(
            creds.iter().any(|c| c.starts_with("root-key:")),
            "{}: no root key credential",
            path.display()
        );

        // ExecStart: the binary, `--config FILE`, then exactly the
        // command the harness starts this role with; and the binary
        // takes that command.
        let exec = one(&unit, &path, "Service", "ExecStart");
        let words: Vec<&str> = exec.split_whitespace().collect();
        assert!(
            words[0].starts_with('/') && words[0].ends_with("/insights"),
            "{}: ExecStart must name the insights binary by absolute path: {exec}",
            path.display()
        );
        assert_eq!(
            &words[1..3],
            ["--config", "/etc/insights/insights.toml"],
            "{}",
            path.display()
        );
        assert_eq!(
            &words[3..],
            role.unit_args(),
            "{}: ExecStart does not run the {} role's command (tests/src/cluster.rs, Role::unit_args)",
            path.display(),
            role.name()
        );
        let out = Command::new(&bin)
            .args(role.unit_args())
            .arg("--help")
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}: `insights {}` is no subcommand of the binary: {}",
            path.display(),
            role.unit_args().join(" "),
            String::from_utf8_lossy(&out.stderr)
        );

        // systemd's own check, with the binary where ExecStart points.
        let copy = scratch.path().join(path.file_name().unwrap());
        let text = std::fs::read_to_string(&path).unwrap();
        std::fs::write(&copy, text.replacen(words[0], bin.to_str().unwrap(), 1)).unwrap();
        match Command::new("systemd-analyze")
            .arg("verify")
            .arg(&copy)
            .output()
        {
            Ok(out) => {
                let said = format!(
                    "{}{}",
                    String::from_utf8_lossy(&out.stdout),
                    String::from_utf8_lossy(&out.stderr)
                );
                assert!(
                    out.status.success() && !said.contains(copy.to_str().unwrap()),
                    "systemd-analyze verify {}: {said}",
                    path.display()
                );
            }
            Err(e) => {
                // Without systemd (a container without the package) our
                // parser above is the check; CI has systemd-analyze.
                assert_ne!(
                    std::env::var("CI").as_deref(),
                    Ok("true"),
                    "systemd-analyze: {e}"
                );
                eprintln!("systemd-analyze not available ({e}): checked by our parser only");
            }
        }
    }
}

pub fn doc_shows_the_tested_files() {
    let doc_path = repo().join("docs/deployment.md");
    let doc = std::fs::read_to_string(&doc_path).unwrap();
    // The HAProxy configuration, exactly as the tests render it.
    assert!(
        doc.contains(HAPROXY_TEMPLATE.trim_end()),
        "docs/deployment.md does not show tests/cluster/haproxy.cfg.tmpl as it is"
    );
    // Every unit, by path.
    for role in Role::ALL {
        let name = format!("deploy/systemd/insights-{}.service", role.name());
        assert!(
            doc.contains(&name),
            "docs/deployment.md does not name {name}"
        );
    }
    // The per-node gateway keys it names exist in the example config.
    let example = std::fs::read_to_string(repo().join("insights.example.toml")).unwrap();
    for key in ["callback_url", "media_config_blob", "listen", "node_name"] {
        assert!(
            doc.contains(&format!("{key} =")),
            "the doc does not set {key}"
        );
        assert!(
            example.contains(&format!("{key} =")),
            "no {key} in the example config"
        );
    }
}

/// The `toml` blocks of docs/deployment.md: the shared part first, then
/// one per kind of node.
fn doc_toml_blocks(doc: &str) -> Vec<String> {
    let mut blocks = Vec::new();
    let mut current: Option<String> = None;
    for line in doc.lines() {
        match (&mut current, line.trim_end()) {
            (None, "```toml") => current = Some(String::new()),
            (Some(_), "```") => blocks.push(current.take().unwrap()),
            (Some(b), l) => {
                b.push_str(l);
                b.push('\n');
            }
            _ => {}
        }
    }
    blocks
}

/// Splits TOML text into its top-level keys and its tables.
fn split_top_level(toml: &str) -> (String, String) {
    match toml.lines().position(|l| l.trim_start().starts_with('[')) {
        Some(i) => {
            let lines: Vec<&str> = toml.lines().collect();
            (lines[..i].join("\n"), lines[i..].join("\n"))
        }
        None => (toml.to_owned(), String::new()),
    }
}

/// The `Environment=` settings of a unit, `%d` (the credentials folder)
/// replaced by `creds`.
fn unit_environment(role: Role, creds: &Path) -> Vec<(String, String)> {
    let unit = parse_unit(&unit_path(role));
    unit["Service"]
        .get("Environment")
        .into_iter()
        .flatten()
        .map(|e| {
            let (k, v) = e.split_once('=').unwrap();
            (k.to_owned(), v.replace("%d", creds.to_str().unwrap()))
        })
        .collect()
}

/// Each node's configuration in docs/deployment.md (the shared part plus
/// the node's own), with the environment its role's unit sets, is
/// accepted by `insights config` (unknown keys and bad values are errors
/// there).
pub fn doc_node_configs_load() {
    let doc = std::fs::read_to_string(repo().join("docs/deployment.md")).unwrap();
    let blocks = doc_toml_blocks(&doc);
    assert!(
        blocks.len() >= 3,
        "a shared part and two node parts: {blocks:?}"
    );
    let (shared_top, shared_tables) = split_top_level(&blocks[0]);
    let dir = tempfile::tempdir().unwrap();
    let bin = insights_bin();
    let mut roles = Vec::new();
    for (i, node) in blocks[1..].iter().enumerate() {
        let (top, tables) = split_top_level(node);
        let merged = format!("{shared_top}\n{top}\n{shared_tables}\n{tables}\n");
        let path = dir.path().join(format!("node-{i}.toml"));
        std::fs::write(&path, &merged).unwrap();
        let role = if merged.contains("[gateway]") {
            Role::Gateway
        } else {
            Role::Api
        };
        roles.push(role);
        let mut cmd = Command::new(&bin);
        cmd.arg("--config").arg(&path).arg("config");
        for (k, _) in std::env::vars_os() {
            if k.to_string_lossy().starts_with("INSIGHTS_") {
                cmd.env_remove(k);
            }
        }
        let out = cmd
            .envs(unit_environment(role, dir.path()))
            .output()
            .unwrap();
        let said = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            out.status.success() && said.contains("configuration OK"),
            "node part {} of docs/deployment.md with {}'s environment: {said}\n{merged}",
            i + 1,
            unit_path(role).display()
        );
        assert!(said.contains("data_dir      /var/lib/insights"), "{said}");
    }
    assert!(
        roles.contains(&Role::Api) && roles.contains(&Role::Gateway),
        "the doc configures an API node and a gateway node"
    );
}
