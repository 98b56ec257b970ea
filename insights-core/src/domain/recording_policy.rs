//! A tenant's recording policy (issue 17 §1 and §2): which calls are
//! recorded, and what the gateway does when recording cannot proceed.
//!
//! # Precedence
//!
//! [`decide_recording`] is the one function that decides; the Teams gateway calls it
//! for every policy invite and a SIPREC session can call it the same way.
//! A rule *matches a call* when it matches any party the invite names (the
//! recorded user, the other side of a 1:1 call, the meeting organizer, a
//! transferor or forwarder). Then, in this order:
//!
//! 1. **never record** wins: the first do-not-record rule (in stored order)
//!    that matches makes the call not recorded, whatever else holds;
//! 2. **include only** (mode `include-only`): the first include rule that
//!    matches makes the call recorded; when none matches it is not
//!    recorded (`include-only:no-match`);
//! 3. **record all** (mode `record-all`, the default and what a tenant
//!    without a stored policy has): the call is recorded.
//!
//! The decision names the rule that made it ([`DecidedBy`]): its id, list
//! and kind, never its value, so it can be audited and logged without
//! personal data.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::{TenantId, normalize_phone, string_enum};

string_enum!(
    /// Which calls a tenant records when no do-not-record rule matches.
    PolicyMode {
        /// Every call of a policy-recorded user (the default).
        RecordAll => "record-all",
        /// Only calls an include rule matches.
        IncludeOnly => "include-only",
    }
);

string_enum!(
    /// The list a rule belongs to.
    PolicyList {
        /// Include-only: calls it matches are recorded (mode `include-only`).
        Include => "include",
        /// Do-not-record: calls it matches are never recorded.
        NeverRecord => "never-record",
    }
);

string_enum!(
    /// What a rule's value names.
    RuleKind {
        /// A person: directory user id, Entra object id, e-mail or UPN.
        User => "user",
        /// A directory group (name or id, as the synced directory has it).
        Group => "group",
        /// A phone number (compared in E.164 form).
        Number => "number",
        /// The start of phone numbers (e.g. `+4930123`), never-record only.
        NumberPrefix => "number-prefix",
        /// An e-mail domain and its subdomains, never-record only.
        Domain => "domain",
    }
);

string_enum!(
    /// What the gateway does when recording cannot proceed (spool full,
    /// key service or blob store unreachable beyond the buffer, node
    /// shutting down): the mirror of Teams' compliance-recording policy.
    FailureMode {
        /// Fail closed: report `failed`, so Teams blocks or ends the call.
        Required => "required",
        /// Fail open: the call goes on unrecorded (`notRecording`) and an
        /// alert is raised.
        BestEffort => "best-effort",
    }
);

/// One rule of a policy.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PolicyRule {
    /// Stable id: what audit events and logs name instead of the value.
    pub id: Uuid,
    pub list: PolicyList,
    pub kind: RuleKind,
    /// Normalised by [`PolicyRule::new`]: numbers in E.164 form, user and
    /// domain lower-case.
    pub value: String,
    /// Why the rule exists ("works council", "doctor's line"); shown to
    /// admins only.
    #[serde(default)]
    pub label: Option<String>,
}

impl PolicyRule {
    /// A new rule with its value checked and normalised; `Err` says why
    /// the value is not acceptable (without repeating it).
    pub fn new(
        list: PolicyList,
        kind: RuleKind,
        value: &str,
        label: Option<String>,
    ) -> Result<Self, String> {
        if list == PolicyList::Include && matches!(kind, RuleKind::NumberPrefix | RuleKind::Domain)
        {
            return Err(format!(
                "include-only rules name users, groups or numbers, not a {kind}"
            ));
        }
        let value = normalize_value(kind, value)?;
        let label = label.map(|l| l.trim().to_owned()).filter(|l| !l.is_empty());
        if label.as_ref().is_some_and(|l| l.chars().count() > 200) {
            return Err("a label has at most 200 characters".into());
        }
        Ok(Self {
            id: Uuid::new_v4(),
            list,
            kind,
            value,
            label,
        })
    }

    /// Whether this rule matches `party`.
    pub fn matches(&self, party: &PolicyParty) -> bool {
        let v = self.value.as_str();
        match self.kind {
            RuleKind::User => party.user_ids.iter().any(|u| u.eq_ignore_ascii_case(v)),
            RuleKind::Group => party
                .groups
                .iter()
                .any(|g| g.trim().eq_ignore_ascii_case(v)),
            RuleKind::Number => party
                .numbers
                .iter()
                .filter_map(|n| normalize_phone(n))
                .any(|n| n == v),
            RuleKind::NumberPrefix => party
                .numbers
                .iter()
                .filter_map(|n| normalize_phone(n))
                .any(|n| n.starts_with(v)),
            RuleKind::Domain => party.addresses.iter().any(|a| {
                let a = a.trim().to_ascii_lowercase();
                let a = a.strip_prefix("sip:").unwrap_or(&a);
                a.rsplit_once('@').is_some_and(|(_, d)| {
                    d == v || d.strip_suffix(v).is_some_and(|s| s.ends_with('.'))
                })
            }),
        }
    }
}

/// Checks and normalises a rule value of `kind`.
fn normalize_value(kind: RuleKind, value: &str) -> Result<String, String> {
    let v = value.trim();
    if v.is_empty() {
        return Err("a rule needs a value".into());
    }
    if v.chars().count() > 320 {
        return Err("a rule value has at most 320 characters".into());
    }
    match kind {
        RuleKind::User => Ok(v.to_ascii_lowercase()),
        RuleKind::Group => Ok(v.to_owned()),
        RuleKind::Number => match normalize_phone(v) {
            Some(n) if n.starts_with('+') && n.len() >= 4 => Ok(n),
            _ => Err("a number must be in international form (+ and digits)".into()),
        },
        RuleKind::NumberPrefix => {
            let ok = v.starts_with('+')
                && v.len() > 1
                && v[1..]
                    .chars()
                    .all(|c| c.is_ascii_digit() || c == ' ' || c == '-');
            match normalize_phone(v) {
                Some(n) if ok => Ok(n),
                _ => Err("a number prefix is + and digits".into()),
            }
        }
        RuleKind::Domain => {
            let d = v.trim_start_matches('@').to_ascii_lowercase();
            let ok = d.contains('.')
                && !d.starts_with('.')
                && !d.ends_with('.')
                && d.chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '-');
            if ok {
                Ok(d)
            } else {
                Err("a domain is like example.com".into())
            }
        }
    }
}

/// A tenant's recording policy. A tenant without a stored one has
/// [`RecordingPolicy::default_for`]: record all, fail closed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecordingPolicy {
    pub tenant_id: TenantId,
    pub mode: PolicyMode,
    pub failure_mode: FailureMode,
    /// In the order they are evaluated within their list.
    pub rules: Vec<PolicyRule>,
    pub updated_at: DateTime<Utc>,
    /// Who changed it last: an account id, `oidc:<subject>` or `cli`.
    pub updated_by: String,
}

impl RecordingPolicy {
    /// What a tenant without a stored policy has: record all calls, fail
    /// closed (`required`).
    pub fn default_for(tenant_id: TenantId) -> Self {
        Self {
            tenant_id,
            mode: PolicyMode::RecordAll,
            failure_mode: FailureMode::Required,
            rules: Vec::new(),
            updated_at: DateTime::<Utc>::UNIX_EPOCH,
            updated_by: String::new(),
        }
    }

    /// At most this many rules per tenant.
    pub const MAX_RULES: usize = 10_000;

    /// Checks the whole policy (rule ids unique, values normalised,
    /// include rules of allowed kinds, bounded size).
    pub fn validate(&self) -> Result<(), String> {
        if self.rules.len() > Self::MAX_RULES {
            return Err(format!("at most {} rules", Self::MAX_RULES));
        }
        let mut ids = std::collections::HashSet::new();
        for r in &self.rules {
            if !ids.insert(r.id) {
                return Err(format!("rule id {} appears twice", r.id));
            }
            let checked = PolicyRule::new(r.list, r.kind, &r.value, r.label.clone())
                .map_err(|e| format!("rule {}: {e}", r.id))?;
            if checked.value != r.value {
                return Err(format!("rule {}: value not in normal form", r.id));
            }
        }
        Ok(())
    }
}

/// What the policy knows of one party of a call (from the invite and the
/// synced directory).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PolicyParty {
    /// The policy-recorded user of this leg.
    pub recorded_user: bool,
    /// Every id the person is known by: directory user id, Entra object
    /// id, e-mail, UPN (compared case-insensitively).
    pub user_ids: Vec<String>,
    /// Directory groups (from the synced directory user).
    pub groups: Vec<String>,
    /// Phone numbers (normalised before comparing).
    pub numbers: Vec<String>,
    /// E-mail, UPN and SIP addresses (their domains are compared).
    pub addresses: Vec<String>,
}

/// What decided: the rule, or the mode when no rule did.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "by", rename_all = "kebab-case")]
pub enum DecidedBy {
    /// A rule matched (a never-record rule, or an include rule).
    Rule {
        id: Uuid,
        list: PolicyList,
        kind: RuleKind,
    },
    /// Mode `include-only` and no include rule matched.
    NotIncluded,
    /// Mode `record-all` and no never-record rule matched.
    RecordAll,
}

impl DecidedBy {
    /// A short stable name: `never-record:<kind>`, `include:<kind>`,
    /// `include-only:no-match` or `record-all`.
    pub fn name(&self) -> String {
        match self {
            DecidedBy::Rule { list, kind, .. } => format!("{list}:{kind}"),
            DecidedBy::NotIncluded => "include-only:no-match".into(),
            DecidedBy::RecordAll => "record-all".into(),
        }
    }

    /// The deciding rule's id, if a rule decided.
    pub fn rule_id(&self) -> Option<Uuid> {
        match self {
            DecidedBy::Rule { id, .. } => Some(*id),
            _ => None,
        }
    }
}

/// The outcome of [`decide_recording`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PolicyDecision {
    /// Record the call.
    pub record: bool,
    pub by: DecidedBy,
}

/// Decides whether a call with `parties` is recorded under `policy` (see
/// the module docs for the precedence). No I/O: callers gather the
/// parties (invite and directory) first.
pub fn decide_recording(policy: &RecordingPolicy, parties: &[PolicyParty]) -> PolicyDecision {
    let first_match = |list: PolicyList| {
        policy
            .rules
            .iter()
            .filter(|r| r.list == list)
            .find(|r| parties.iter().any(|p| r.matches(p)))
            .map(|r| DecidedBy::Rule {
                id: r.id,
                list: r.list,
                kind: r.kind,
            })
    };
    if let Some(by) = first_match(PolicyList::NeverRecord) {
        return PolicyDecision { record: false, by };
    }
    match policy.mode {
        PolicyMode::IncludeOnly => match first_match(PolicyList::Include) {
            Some(by) => PolicyDecision { record: true, by },
            None => PolicyDecision {
                record: false,
                by: DecidedBy::NotIncluded,
            },
        },
        PolicyMode::RecordAll => PolicyDecision {
            record: true,
            by: DecidedBy::RecordAll,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(list: PolicyList, kind: RuleKind, value: &str) -> PolicyRule {
        PolicyRule::new(list, kind, value, None).unwrap_or_else(|e| panic!("{e}"))
    }

    fn policy(mode: PolicyMode, rules: Vec<PolicyRule>) -> RecordingPolicy {
        RecordingPolicy {
            mode,
            rules,
            ..RecordingPolicy::default_for(TenantId::new())
        }
    }

    fn alice() -> PolicyParty {
        PolicyParty {
            recorded_user: true,
            user_ids: vec![
                "5f0c7a0e-aaaa-4bbb-8ccc-000000000001".into(),
                "Alice@Contoso.com".into(),
            ],
            groups: vec!["Trading".into(), "works-council".into()],
            numbers: vec!["+44 20 7946 0001".into()],
            addresses: vec!["alice@contoso.com".into()],
        }
    }

    fn doctor() -> PolicyParty {
        PolicyParty {
            numbers: vec!["tel:+49301234567;ext=1".into()],
            ..PolicyParty::default()
        }
    }

    fn partner() -> PolicyParty {
        PolicyParty {
            user_ids: vec!["bob@mail.partner.example".into()],
            addresses: vec!["sip:bob@mail.partner.example".into()],
            ..PolicyParty::default()
        }
    }

    #[test]
    fn one_function_decides_with_documented_precedence() {
        use PolicyList::*;
        use RuleKind::*;
        let never_group = rule(NeverRecord, Group, "works-council");
        let never_prefix = rule(NeverRecord, NumberPrefix, "+4930");
        let never_number = rule(NeverRecord, Number, "0049 30 1234567");
        let never_domain = rule(NeverRecord, Domain, "@partner.example");
        let never_user = rule(NeverRecord, User, "ALICE@contoso.com");
        let incl_group = rule(Include, Group, "trading");
        let incl_user = rule(Include, User, "5f0c7a0e-aaaa-4bbb-8ccc-000000000001");
        let incl_number = rule(Include, Number, "+442079460001");
        let incl_other = rule(Include, Group, "sales");
        let by = |r: &PolicyRule| DecidedBy::Rule {
            id: r.id,
            list: r.list,
            kind: r.kind,
        };
        #[allow(clippy::type_complexity)]
        let table: Vec<(&str, RecordingPolicy, Vec<PolicyParty>, bool, DecidedBy)> = vec![
            (
                "no policy: record all",
                RecordingPolicy::default_for(TenantId::new()),
                vec![alice()],
                true,
                DecidedBy::RecordAll,
            ),
            (
                "never-record group of the recorded user",
                policy(PolicyMode::RecordAll, vec![never_group.clone()]),
                vec![alice()],
                false,
                by(&never_group),
            ),
            (
                "never-record prefix of the other side",
                policy(PolicyMode::RecordAll, vec![never_prefix.clone()]),
                vec![alice(), doctor()],
                false,
                by(&never_prefix),
            ),
            (
                "never-record number (00 form normalised)",
                policy(PolicyMode::RecordAll, vec![never_number.clone()]),
                vec![alice(), doctor()],
                false,
                by(&never_number),
            ),
            (
                "never-record domain covers subdomains",
                policy(PolicyMode::RecordAll, vec![never_domain.clone()]),
                vec![alice(), partner()],
                false,
                by(&never_domain),
            ),
            (
                "never-record user by e-mail, any case",
                policy(PolicyMode::RecordAll, vec![never_user.clone()]),
                vec![alice()],
                false,
                by(&never_user),
            ),
            (
                "never-record wins over include",
                policy(
                    PolicyMode::IncludeOnly,
                    vec![incl_group.clone(), never_prefix.clone()],
                ),
                vec![alice(), doctor()],
                false,
                by(&never_prefix),
            ),
            (
                "include-only: group matches (any case)",
                policy(
                    PolicyMode::IncludeOnly,
                    vec![incl_other.clone(), incl_group.clone()],
                ),
                vec![alice()],
                true,
                by(&incl_group),
            ),
            (
                "include-only: user by object id",
                policy(PolicyMode::IncludeOnly, vec![incl_user.clone()]),
                vec![alice()],
                true,
                by(&incl_user),
            ),
            (
                "include-only: number",
                policy(PolicyMode::IncludeOnly, vec![incl_number.clone()]),
                vec![alice()],
                true,
                by(&incl_number),
            ),
            (
                "include-only: nobody included",
                policy(PolicyMode::IncludeOnly, vec![incl_other.clone()]),
                vec![alice(), doctor()],
                false,
                DecidedBy::NotIncluded,
            ),
            (
                "include-only without include rules records nothing",
                policy(PolicyMode::IncludeOnly, vec![]),
                vec![alice()],
                false,
                DecidedBy::NotIncluded,
            ),
            (
                "record-all ignores include rules",
                policy(PolicyMode::RecordAll, vec![incl_other.clone()]),
                vec![alice()],
                true,
                DecidedBy::RecordAll,
            ),
            (
                "a prefix that does not match",
                policy(PolicyMode::RecordAll, vec![never_prefix.clone()]),
                vec![alice(), partner()],
                true,
                DecidedBy::RecordAll,
            ),
            (
                "a domain is not a suffix of another (xpartner.example)",
                policy(PolicyMode::RecordAll, vec![never_domain.clone()]),
                vec![PolicyParty {
                    addresses: vec!["eve@xpartner.example".into()],
                    ..PolicyParty::default()
                }],
                true,
                DecidedBy::RecordAll,
            ),
            (
                "first never-record rule in stored order decides",
                policy(
                    PolicyMode::RecordAll,
                    vec![never_user.clone(), never_group.clone()],
                ),
                vec![alice()],
                false,
                by(&never_user),
            ),
        ];
        for (name, policy, parties, record, decided_by) in table {
            let d = decide_recording(&policy, &parties);
            assert_eq!(
                d,
                PolicyDecision {
                    record,
                    by: decided_by
                },
                "{name}"
            );
        }
    }

    #[test]
    fn rule_values_are_checked_and_normalised() {
        use PolicyList::*;
        use RuleKind::*;
        assert_eq!(rule(NeverRecord, Number, "0049 30 123").value, "+4930123");
        assert_eq!(rule(NeverRecord, NumberPrefix, "+49 30").value, "+4930");
        assert_eq!(
            rule(NeverRecord, Domain, "@Doctor.Example").value,
            "doctor.example"
        );
        assert_eq!(rule(Include, User, " Bob@X.com ").value, "bob@x.com");
        for (list, kind, value) in [
            (Include, NumberPrefix, "+49"),
            (Include, Domain, "x.com"),
            (NeverRecord, Number, "12"),
            (NeverRecord, NumberPrefix, "4930"),
            (NeverRecord, Domain, "localhost"),
            (NeverRecord, User, "  "),
        ] {
            assert!(
                PolicyRule::new(list, kind, value, None).is_err(),
                "{kind} {value}"
            );
        }
        let mut p = policy(
            PolicyMode::RecordAll,
            vec![rule(NeverRecord, Domain, "x.com")],
        );
        assert!(p.validate().is_ok());
        p.rules.push(p.rules[0].clone());
        assert!(p.validate().is_err(), "duplicate id");
        p.rules.pop();
        p.rules[0].value = "X.com".into();
        assert!(p.validate().is_err(), "not normalised");
    }

    #[test]
    fn decision_names_the_rule_without_its_value() {
        let r = rule(PolicyList::NeverRecord, RuleKind::Number, "+49301234567");
        let d = decide_recording(&policy(PolicyMode::RecordAll, vec![r.clone()]), &[doctor()]);
        assert_eq!(d.by.name(), "never-record:number");
        assert_eq!(d.by.rule_id(), Some(r.id));
        let json = serde_json::to_string(&d).unwrap_or_default();
        assert!(!json.contains("4930123"), "{json}");
    }
}
