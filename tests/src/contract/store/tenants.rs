//! Backend health and tenants ([`TenantStore`]).
//!
//! [`TenantStore`]: insights_core::store::TenantStore

use super::fixtures::*;

pub async fn health_and_backend(s: &Store) {
    must(s.health().await, "health");
    assert!(!s.backend().is_empty(), "backend name is empty");
}

pub async fn tenants_create_get_list(s: &Store) {
    assert!(must(s.list_tenants().await, "list").is_empty());
    let dir_c = Uuid::new_v4();
    let before = now();
    let c = must(
        s.create_tenant(NewTenant {
            name: "contoso".into(),
            directory_tenant_id: Some(dir_c),
        })
        .await,
        "create contoso",
    );
    let a = must(
        s.create_tenant(NewTenant {
            name: "adatum".into(),
            directory_tenant_id: None,
        })
        .await,
        "create adatum",
    );
    let f = must(
        s.create_tenant(NewTenant {
            name: "fabrikam".into(),
            directory_tenant_id: Some(Uuid::new_v4()),
        })
        .await,
        "create fabrikam",
    );
    assert_eq!(c.name, "contoso");
    assert_eq!(c.directory_tenant_id, Some(dir_c));
    assert_eq!(c.settings, TenantSettings::default());
    assert!(c.created_at >= before && c.created_at <= now());
    assert_ne!(a.id, c.id);

    let listed = must(s.list_tenants().await, "list");
    assert_eq!(
        listed,
        vec![a.clone(), c.clone(), f.clone()],
        "ordered by name"
    );

    assert_eq!(must(s.get_tenant(c.id).await, "get"), c);
    assert_eq!(must(s.tenant_by_name("contoso").await, "by name"), c);
    assert_eq!(must(s.tenant_by_directory_id(dir_c).await, "by dir id"), c);
    assert_not_found(s.get_tenant(TenantId::new()).await, "get missing");
    assert_not_found(s.tenant_by_name("nobody").await, "missing name");
    assert_not_found(
        s.tenant_by_directory_id(Uuid::new_v4()).await,
        "missing dir id",
    );
}

pub async fn tenant_names_and_directory_ids_are_unique(s: &Store) {
    let dir = Uuid::new_v4();
    must(
        s.create_tenant(NewTenant {
            name: "contoso".into(),
            directory_tenant_id: Some(dir),
        })
        .await,
        "first",
    );
    assert_conflict(
        s.create_tenant(NewTenant {
            name: "contoso".into(),
            directory_tenant_id: None,
        })
        .await,
        "duplicate name",
    );
    assert_conflict(
        s.create_tenant(NewTenant {
            name: "other".into(),
            directory_tenant_id: Some(dir),
        })
        .await,
        "duplicate directory tenant id",
    );
    // Tenants without a directory id do not collide with each other.
    for name in ["no-dir-1", "no-dir-2"] {
        must(
            s.create_tenant(NewTenant {
                name: name.into(),
                directory_tenant_id: None,
            })
            .await,
            "tenant without directory id",
        );
    }
    let names: Vec<String> = must(s.list_tenants().await, "list")
        .into_iter()
        .map(|t| t.name)
        .collect();
    assert_eq!(names, ["contoso", "no-dir-1", "no-dir-2"]);
}

pub async fn tenant_settings_update(s: &Store) {
    let t = must(
        s.create_tenant(NewTenant {
            name: "contoso".into(),
            directory_tenant_id: None,
        })
        .await,
        "create",
    );
    let settings = TenantSettings {
        cloud_ai_enabled: true,
        media_deletion_waiver: true,
        require_access_reason: true,
        four_eyes_playback: true,
    };
    must(s.update_tenant_settings(t.id, &settings).await, "update");
    let got = must(s.get_tenant(t.id).await, "get");
    assert_eq!(
        got,
        Tenant {
            settings: settings.clone(),
            ..t.clone()
        }
    );
    let partial = TenantSettings {
        cloud_ai_enabled: false,
        ..settings
    };
    must(s.update_tenant_settings(t.id, &partial).await, "update 2");
    assert_eq!(must(s.get_tenant(t.id).await, "get").settings, partial);
    assert_not_found(
        s.update_tenant_settings(TenantId::new(), &partial).await,
        "missing tenant",
    );
}
