use serde::{Deserialize, Serialize};

use super::{SecurityProfileId, TenantId, UserId, string_enum};

string_enum!(
    /// Who someone is to the platform. Roles pick a default security profile.
    Role {
        TenantAdmin => "tenant-admin",
        ComplianceOfficer => "compliance-officer",
        Supervisor => "supervisor",
        /// Sees only recordings they took part in.
        User => "user",
        Dpo => "dpo",
        /// Operates the service; can never read customer content.
        PlatformOperator => "platform-operator",
    }
);

string_enum!(
    /// An action a security profile may allow.
    Permission {
        Search => "search",
        Play => "play",
        DownloadMedia => "download-media",
        ViewTranscript => "view-transcript",
        Export => "export",
        /// Include personal data (participant names, numbers, URIs,
        /// emails) in exports; without it those columns are left out
        /// (GDPR data minimisation, seed "configure export file columns").
        ExportPersonalData => "export-personal-data",
        ManageRetention => "manage-retention",
        ManageLegalHolds => "manage-legal-holds",
        GdprActions => "gdpr-actions",
        ManageUsers => "manage-users",
        ViewAudit => "view-audit",
        ManageSettings => "manage-settings",
        /// Approve or deny other people's requests to play a recording
        /// (four-eyes playback).
        ApproveAccess => "approve-access",
        /// Pause and resume a live recording in the caller's scope (a
        /// `user`: only calls they are recorded in).
        PauseRecording => "pause-recording",
        OperatePlatform => "operate-platform",
        /// Read the completeness reconciliation (which calls Microsoft's
        /// call records say were made, and which were recorded) and run
        /// it for a period.
        ViewCompleteness => "view-completeness",
    }
);

impl Permission {
    /// Permissions that reveal recording content or metadata about calls.
    pub fn reveals_content(&self) -> bool {
        matches!(
            self,
            Permission::Search
                | Permission::Play
                | Permission::DownloadMedia
                | Permission::ViewTranscript
                | Permission::Export
                | Permission::ExportPersonalData
                | Permission::GdprActions
                | Permission::ViewCompleteness
        )
    }
}

impl Role {
    /// The permissions a role has when no custom profile narrows them.
    pub fn default_permissions(&self) -> Vec<Permission> {
        use Permission::*;
        match self {
            Role::TenantAdmin => vec![
                Search,
                Play,
                DownloadMedia,
                ViewTranscript,
                Export,
                ExportPersonalData,
                ManageRetention,
                ManageLegalHolds,
                ManageUsers,
                ViewAudit,
                ManageSettings,
                ApproveAccess,
                ViewCompleteness,
                PauseRecording,
            ],
            Role::ComplianceOfficer => vec![
                Search,
                Play,
                ViewTranscript,
                ViewAudit,
                ApproveAccess,
                ViewCompleteness,
            ],
            Role::Supervisor => vec![Search, Play, ViewTranscript, PauseRecording],
            Role::User => vec![Search, Play, ViewTranscript, PauseRecording],
            Role::Dpo => vec![
                Search,
                ViewTranscript,
                GdprActions,
                ManageLegalHolds,
                ViewAudit,
                Export,
                ExportPersonalData,
            ],
            Role::PlatformOperator => vec![OperatePlatform],
        }
    }

    /// The recordings a role sees when no custom profile narrows them.
    pub fn default_scope(&self) -> VisibilityScope {
        match self {
            Role::User => VisibilityScope::OwnRecordings,
            Role::PlatformOperator => VisibilityScope::Nothing,
            _ => VisibilityScope::All,
        }
    }
}

/// Whose recordings a profile may see.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", content = "value", rename_all = "kebab-case")]
pub enum VisibilityScope {
    All,
    /// Recordings in which any of these directory users took part.
    Users(Vec<UserId>),
    /// Recordings in which a member of any of these groups took part.
    Groups(Vec<String>),
    /// Recordings the signed-in user took part in.
    OwnRecordings,
    Nothing,
}

/// A named set of permissions and a visibility scope, assigned to roles
/// or accounts (the seed's "security profile").
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SecurityProfile {
    pub id: SecurityProfileId,
    pub tenant_id: TenantId,
    pub name: String,
    pub role: Role,
    pub permissions: Vec<Permission>,
    pub scope: VisibilityScope,
}

impl SecurityProfile {
    /// Checks the profile's invariants: a platform operator profile can
    /// never reveal content or see recordings (seed §4.8.3).
    pub fn validate(&self) -> Result<(), String> {
        if self.role == Role::PlatformOperator {
            if let Some(p) = self.permissions.iter().find(|p| p.reveals_content()) {
                return Err(format!("a platform-operator profile cannot grant `{p}`"));
            }
            if self.scope != VisibilityScope::Nothing {
                return Err("a platform-operator profile must have scope `nothing`".to_owned());
            }
        }
        if self.name.trim().is_empty() {
            return Err("a security profile needs a name".to_owned());
        }
        Ok(())
    }

    /// Does the profile allow `p`?
    pub fn allows(&self, p: Permission) -> bool {
        self.permissions.contains(&p)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn operator_profiles_cannot_reveal_content() {
        let mut p = SecurityProfile {
            id: SecurityProfileId::new(),
            tenant_id: TenantId::new(),
            name: "ops".into(),
            role: Role::PlatformOperator,
            permissions: Role::PlatformOperator.default_permissions(),
            scope: Role::PlatformOperator.default_scope(),
        };
        assert!(p.validate().is_ok());
        p.permissions.push(Permission::Play);
        assert!(p.validate().is_err());
        p.permissions.pop();
        p.scope = VisibilityScope::All;
        assert!(p.validate().is_err());
    }

    #[test]
    fn default_operator_permissions_reveal_nothing() {
        assert!(
            Role::PlatformOperator
                .default_permissions()
                .iter()
                .all(|p| !p.reveals_content())
        );
    }
}
