//! From Graph identities to our participants.
//!
//! A [`Party`] is what we know about one person in a call. It carries
//! identity keys (`aad:<object id>`, `tel:<E.164>`, `guest:<id>`,
//! `dir:<directory user id>`) by which the same person is recognised when
//! they show up again (in the roster, in a second invite for the same
//! meeting), so that a person is stored once.

use insights_core::domain::{
    Participant, ParticipantId, ParticipantRole, RecordingId, TenantId, UserId, normalize_phone,
};
use insights_core::store::{MetadataStore, StoreError, StoreResult};

use crate::graph::model::{BotDataUser, Identity, IdentitySet};

/// What we know about one party. Holds personal data: no `Debug`.
#[derive(Clone, Default)]
pub(crate) struct Party {
    pub keys: Vec<String>,
    pub display_name: Option<String>,
    pub phone: Option<String>,
    pub uri: Option<String>,
    pub email: Option<String>,
    pub directory_user: Option<UserId>,
    /// Entra object id and its tenant, for the directory lookup.
    pub object_id: Option<String>,
    pub object_tenant: Option<String>,
}

fn nonempty(s: &Option<String>) -> Option<String> {
    s.as_deref()
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
}

impl Party {
    /// A party from an identity set; `None` for bots (application
    /// identities, including other recorders).
    pub fn from_identity(set: &IdentitySet) -> Option<Party> {
        if set.is_application_only() {
            return None;
        }
        let mut p = Party::default();
        let person: Option<&Identity> = set.user.as_ref().or(set.on_premises.as_ref());
        if let Some(u) = person {
            p.display_name = nonempty(&u.display_name);
            if let Some(oid) = nonempty(&u.id) {
                p.keys.push(format!("aad:{}", oid.to_ascii_lowercase()));
                p.object_id = Some(oid);
                p.object_tenant = nonempty(&u.tenant_id);
            }
        }
        let phone = set
            .phone
            .as_ref()
            .or(set.asserted_identity.as_ref().filter(|a| {
                a.id.as_deref().is_some_and(|id| {
                    let id = id.trim_start();
                    id.starts_with(|c: char| c == '+' || c.is_ascii_digit())
                        || id.starts_with("tel:")
                })
            }));
        if let Some(ph) = phone {
            if p.display_name.is_none() {
                p.display_name = nonempty(&ph.display_name);
            }
            p.set_phone(ph.id.as_deref());
        }
        if let Some(g) = &set.guest {
            if p.display_name.is_none() {
                p.display_name = nonempty(&g.display_name);
            }
            if let Some(id) = nonempty(&g.id) {
                p.keys.push(format!("guest:{id}"));
            }
        }
        if p.keys.is_empty() && p.display_name.is_none() {
            // Encrypted or empty identity: nothing to store or match.
            return None;
        }
        Some(p)
    }

    /// A party from `botData` (the recorded user or the other side).
    pub fn from_bot_data(u: &BotDataUser) -> Party {
        let mut p = Party {
            display_name: nonempty(&u.display_name),
            ..Party::default()
        };
        if let Some(oid) = nonempty(&u.id) {
            p.keys.push(format!("aad:{}", oid.to_ascii_lowercase()));
            p.object_id = Some(oid);
            p.object_tenant = nonempty(&u.tenant_id);
        }
        p.set_phone(u.phone.as_deref());
        p
    }

    fn set_phone(&mut self, raw: Option<&str>) {
        if let Some(n) = raw.and_then(normalize_phone) {
            self.keys.push(format!("tel:{n}"));
            self.uri.get_or_insert_with(|| format!("tel:{n}"));
            self.phone = Some(n);
        }
    }

    /// Whether we know who this is (an id or a number), beyond a name.
    pub fn is_identified(&self) -> bool {
        !self.keys.is_empty()
    }

    /// Whether two parties are the same person.
    pub fn same_as(&self, keys: &[String]) -> bool {
        self.keys.iter().any(|k| keys.contains(k))
    }

    /// Adds what `other` knows and we do not.
    pub fn merge(&mut self, other: &Party) {
        for k in &other.keys {
            if !self.keys.contains(k) {
                self.keys.push(k.clone());
            }
        }
        macro_rules! fill {
            ($($f:ident),*) => { $( if self.$f.is_none() { self.$f = other.$f.clone(); } )* };
        }
        fill!(
            display_name,
            phone,
            uri,
            email,
            directory_user,
            object_id,
            object_tenant
        );
    }

    /// Links the party to the tenant's directory when it is one of the
    /// tenant's users: copies e-mail/UPN and SIP URI for search and adds
    /// the `dir:` key.
    pub async fn resolve(
        &mut self,
        store: &dyn MetadataStore,
        tenant: TenantId,
        directory_tenant: &str,
    ) -> StoreResult<()> {
        if self.directory_user.is_some() {
            return Ok(());
        }
        let Some(oid) = self.object_id.clone() else {
            return Ok(());
        };
        if self
            .object_tenant
            .as_deref()
            .is_some_and(|t| !t.eq_ignore_ascii_case(directory_tenant))
        {
            return Ok(()); // a user of another organisation
        }
        match store.directory_user_by_object_id(tenant, &oid).await {
            Ok(u) => {
                self.directory_user = Some(u.id);
                self.keys.push(format!("dir:{}", u.id));
                if self.display_name.is_none() {
                    self.display_name = u.display_name.clone();
                }
                if self.email.is_none() {
                    self.email = u.email.clone().or(u.upn.clone());
                }
                if self.uri.is_none() {
                    self.uri = u.sip_uri.clone();
                }
                Ok(())
            }
            Err(StoreError::NotFound) => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// The Entra object id to store with the participant: a user of the
    /// tenant's own directory (or of an unnamed one), never another
    /// organisation's. A directory sync later links the participant by
    /// it when their directory user was not synchronised at capture.
    pub fn directory_object_id(&self, directory_tenant: &str) -> Option<&str> {
        let ours = self
            .object_tenant
            .as_deref()
            .is_none_or(|t| t.eq_ignore_ascii_case(directory_tenant));
        self.object_id.as_deref().filter(|_| ours)
    }

    /// Stores this party's Entra object id with its stored participant
    /// row (see [`directory_object_id`](Self::directory_object_id)).
    pub async fn store_object_id(
        &self,
        store: &dyn MetadataStore,
        tenant: TenantId,
        directory_tenant: &str,
        recording: RecordingId,
        participant: ParticipantId,
    ) -> StoreResult<()> {
        match self.directory_object_id(directory_tenant) {
            Some(oid) => {
                store
                    .set_participant_object_id(tenant, recording, participant, oid)
                    .await
            }
            None => Ok(()),
        }
    }

    /// The participant row for this party.
    pub fn participant(
        &self,
        role: ParticipantRole,
        recorded: bool,
        joined_ms: i64,
    ) -> Participant {
        Participant {
            id: ParticipantId::new(),
            role,
            display_name: self.display_name.clone(),
            phone_number: self.phone.clone(),
            uri: self.uri.clone(),
            email: self.email.clone(),
            directory_user_id: self.directory_user,
            recorded_user: recorded,
            joined_ms: Some(joined_ms),
            left_ms: None,
        }
    }

    /// Keys by which a stored participant is recognised after a restart.
    pub fn keys_of_stored(p: &Participant) -> Vec<String> {
        let mut keys = Vec::new();
        if let Some(u) = p.directory_user_id {
            keys.push(format!("dir:{u}"));
        }
        if let Some(n) = p.phone_number.as_deref().and_then(normalize_phone) {
            keys.push(format!("tel:{n}"));
        }
        keys
    }
}

/// The role of the policy-recorded user of a 1:1 call, from
/// `botData.user.participationMethod`.
pub(crate) fn call_role(method: Option<&str>, on_behalf_of: bool) -> Option<ParticipantRole> {
    match method.map(str::to_ascii_lowercase).as_deref() {
        Some("caller") => Some(ParticipantRole::Caller),
        Some("callee") if on_behalf_of => Some(ParticipantRole::AnsweredBy),
        Some("callee") => Some(ParticipantRole::Callee),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(v: serde_json::Value) -> IdentitySet {
        serde_json::from_value(v).unwrap_or_default()
    }

    #[test]
    fn users_phones_and_guests_get_keys() {
        let p = Party::from_identity(&set(serde_json::json!({
            "user": {"id": "ABC", "displayName": "Ann", "tenantId": "t"}
        })));
        let p = p.unwrap_or_default();
        assert_eq!(p.keys, vec!["aad:abc".to_owned()]);
        assert_eq!(p.display_name.as_deref(), Some("Ann"));

        let p = Party::from_identity(&set(serde_json::json!({
            "phone": {"id": "+1 (425) 555-0100"}
        })))
        .unwrap_or_default();
        assert_eq!(p.phone.as_deref(), Some("+14255550100"));
        assert_eq!(p.uri.as_deref(), Some("tel:+14255550100"));
        assert_eq!(p.keys, vec!["tel:+14255550100".to_owned()]);
    }

    #[test]
    fn bots_and_encrypted_identities_are_not_parties() {
        assert!(
            Party::from_identity(&set(serde_json::json!({"application": {"id": "x"}}))).is_none()
        );
        assert!(
            Party::from_identity(&set(
                serde_json::json!({"applicationInstance": {"id": "x"}})
            ))
            .is_none()
        );
        assert!(
            Party::from_identity(&set(serde_json::json!({"encrypted": {"id": "x"}}))).is_none()
        );
    }

    #[test]
    fn roles_follow_the_participation_method() {
        assert_eq!(
            call_role(Some("Caller"), false),
            Some(ParticipantRole::Caller)
        );
        assert_eq!(
            call_role(Some("callee"), false),
            Some(ParticipantRole::Callee)
        );
        assert_eq!(
            call_role(Some("callee"), true),
            Some(ParticipantRole::AnsweredBy)
        );
        assert_eq!(call_role(None, false), None);
    }
}
