//! Two-person governance (issue 13 §6): a destructive governance change
//! — deleting or shortening a retention policy, lifting a legal hold,
//! turning on the media-deletion waiver, resetting an administrator's
//! password or second factor — is stored as pending and takes
//! effect only when a second user holding the same permission approves.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::{GovernanceChangeId, Permission, TenantId, string_enum};

string_enum!(
    /// What a pending governance change does once approved.
    ChangeKind {
        /// Delete a retention policy (target: the policy id).
        RetentionPolicyDelete => "retention-policy-delete",
        /// Replace a retention policy by one that keeps recordings for
        /// less time (target: the policy id; payload: the new policy).
        RetentionPolicyShorten => "retention-policy-shorten",
        /// Lift a legal hold (target: the hold id; payload: the reason).
        LegalHoldLift => "legal-hold-lift",
        /// Turn on the tenant's media-deletion waiver (target: `tenant`).
        MediaDeletionWaiverOn => "media-deletion-waiver-on",
        /// Reset the password of an account that administers users
        /// (target: the account id; payload: the argon2id hash of the new
        /// initial password, never shown by the API).
        AccountPasswordReset => "account-password-reset",
        /// Reset the second factor (TOTP seed and recovery codes) of an
        /// account that administers users (target: the account id).
        AccountSecondFactorReset => "account-second-factor-reset",
        /// Create an account with permissions its requesting tenant
        /// administrator does not hold (a DPO, say): a second tenant
        /// administrator approves (target: `new-account`; payload: the
        /// account's e-mail, role, profile and the hash of its initial
        /// password, never shown).
        AccountCreate => "account-create",
    }
);

impl ChangeKind {
    /// The permission both the requester and the approver need.
    pub fn permission(self) -> Permission {
        match self {
            ChangeKind::RetentionPolicyDelete | ChangeKind::RetentionPolicyShorten => {
                Permission::ManageRetention
            }
            ChangeKind::LegalHoldLift => Permission::ManageLegalHolds,
            ChangeKind::MediaDeletionWaiverOn => Permission::ManageSettings,
            ChangeKind::AccountPasswordReset
            | ChangeKind::AccountSecondFactorReset
            | ChangeKind::AccountCreate => Permission::ManageUsers,
        }
    }
}

string_enum!(
    /// Where a [`GovernanceChange`] stands.
    ChangeStatus {
        Pending => "pending",
        /// A second user approved; the change was applied.
        Approved => "approved",
        Rejected => "rejected",
    }
);

/// A destructive governance change waiting for, or decided by, a second
/// user.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct GovernanceChange {
    pub id: GovernanceChangeId,
    pub tenant_id: TenantId,
    pub kind: ChangeKind,
    /// The object changed: a policy or hold id, or `tenant`.
    pub target: String,
    /// What the change needs to be applied (a policy, a reason).
    pub payload: serde_json::Value,
    /// Actor id of who asked. Never a name.
    pub requested_by: String,
    pub requested_at: DateTime<Utc>,
    pub status: ChangeStatus,
    /// Actor id of who decided; never the requester.
    pub decided_by: Option<String>,
    pub decided_at: Option<DateTime<Utc>>,
}

impl GovernanceChange {
    /// A new pending change.
    pub fn new(
        tenant_id: TenantId,
        kind: ChangeKind,
        target: String,
        payload: serde_json::Value,
        requested_by: String,
        now: DateTime<Utc>,
    ) -> Self {
        Self {
            id: GovernanceChangeId::new(),
            tenant_id,
            kind,
            target,
            payload,
            requested_by,
            requested_at: now,
            status: ChangeStatus::Pending,
            decided_by: None,
            decided_at: None,
        }
    }
}
