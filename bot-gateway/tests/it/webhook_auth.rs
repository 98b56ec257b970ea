//! Security of the callback: every bad token is refused with 401 and
//! changes nothing; malformed bodies get 400; signing keys rotate; the
//! simulator key is trusted only where configured.

use crate::support;

use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use bot_gateway::auth::mint_simulator_token;
use bot_gateway::graph::SimulatedOperation;
use serde_json::{Value, json};
use support::notify::{Invite, Person};
use support::tokens::{TestKey, b64, claims, now};
use support::{APP_ID, Harness, ISSUER};

fn invite_body(h: &Harness, call_id: &str) -> Vec<u8> {
    let p = Person::new("Vera Victim", "vera@contoso.example");
    support::notify::batch(vec![
        Invite::new(call_id, &h.tid, &p, "callee").notification(),
    ])
    .to_string()
    .into_bytes()
}

async fn expect_refused(h: &Harness, what: &str, authorization: Option<String>, code: &str) {
    let before = h.snapshot().await;
    let res = h
        .post_raw(authorization.as_deref(), invite_body(h, "call-bad"))
        .await;
    assert_eq!(res.status().as_u16(), 401, "{what}");
    assert!(
        res.headers().get("www-authenticate").is_some(),
        "{what}: no WWW-Authenticate"
    );
    let body: Value = res.json().await.unwrap_or(Value::Null);
    assert_eq!(body["code"], code, "{what}: {body}");
    assert_eq!(h.snapshot().await, before, "{what} changed the store");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_tokens_are_refused_and_change_nothing() {
    let h = Harness::start().await;
    let good = claims(APP_ID, ISSUER, &h.tid);
    let with = |f: &dyn Fn(&mut Value)| {
        let mut c = good.clone();
        f(&mut c);
        format!("Bearer {}", h.key.sign(&h.key.header(), &c))
    };
    expect_refused(&h, "missing", None, "token-missing").await;
    expect_refused(
        &h,
        "basic scheme",
        Some("Basic dXNlcjpwYXNz".into()),
        "token-missing",
    )
    .await;
    expect_refused(&h, "empty bearer", Some("Bearer ".into()), "token-missing").await;
    expect_refused(
        &h,
        "not a JWT",
        Some("Bearer abc.def".into()),
        "token-malformed",
    )
    .await;
    let unsigned = format!(
        "Bearer {}.{}.",
        b64(&json!({"alg": "none", "typ": "JWT"})),
        b64(&good)
    );
    expect_refused(&h, "alg none", Some(unsigned), "token-malformed").await;
    // HS256 "signed" with the public key material: algorithm confusion.
    let hs = format!(
        "Bearer {}.{}.{}",
        b64(&json!({"alg": "HS256", "typ": "JWT", "kid": h.key.kid})),
        b64(&good),
        URL_SAFE_NO_PAD.encode([0u8; 32])
    );
    expect_refused(&h, "HS256", Some(hs), "token-algorithm").await;
    expect_refused(
        &h,
        "expired",
        Some(with(&|c| {
            c["exp"] = json!(now() - 3600);
            c["nbf"] = json!(now() - 7200);
        })),
        "token-expired",
    )
    .await;
    expect_refused(
        &h,
        "not yet valid",
        Some(with(&|c| c["nbf"] = json!(now() + 3600))),
        "token-not-yet-valid",
    )
    .await;
    expect_refused(
        &h,
        "wrong audience",
        Some(with(&|c| {
            c["aud"] = json!("11111111-2222-3333-4444-555555555555")
        })),
        "token-audience",
    )
    .await;
    expect_refused(
        &h,
        "no audience",
        Some(with(&|c| {
            if let Some(o) = c.as_object_mut() {
                o.remove("aud");
            }
        })),
        "token-claim-missing",
    )
    .await;
    expect_refused(
        &h,
        "wrong issuer",
        Some(with(&|c| c["iss"] = json!("https://login.evil.example"))),
        "token-issuer",
    )
    .await;
    let stranger = TestKey::generate("key-unknown");
    expect_refused(
        &h,
        "unknown kid",
        Some(format!("Bearer {}", stranger.token(APP_ID, ISSUER, &h.tid))),
        "token-unknown-key",
    )
    .await;
    // Known kid, signed by another key.
    let forged = stranger.sign(&h.key.header(), &good);
    expect_refused(
        &h,
        "wrong key for kid",
        Some(format!("Bearer {forged}")),
        "token-signature",
    )
    .await;
    // A valid token whose claims were edited after signing.
    let valid = h.token();
    let mut parts: Vec<String> = valid.split('.').map(str::to_owned).collect();
    let mut c = good.clone();
    c["tid"] = json!(uuid::Uuid::new_v4().to_string());
    parts[1] = b64(&c);
    expect_refused(
        &h,
        "tampered claims",
        Some(format!("Bearer {}", parts.join("."))),
        "token-signature",
    )
    .await;
    // A flipped signature byte.
    let mut sig = URL_SAFE_NO_PAD.decode(&parts[2]).unwrap_or_default();
    sig[10] ^= 1;
    let tampered = format!(
        "Bearer {}.{}.{}",
        valid.split('.').next().unwrap_or_default(),
        valid.split('.').nth(1).unwrap_or_default(),
        URL_SAFE_NO_PAD.encode(sig)
    );
    expect_refused(&h, "tampered signature", Some(tampered), "token-signature").await;

    // None of it reached Graph; the good token still works.
    assert!(h.ms.graph_calls().is_empty());
    let res = h
        .post_raw(Some(&format!("Bearer {valid}")), invite_body(&h, "call-ok"))
        .await;
    assert_eq!(res.status().as_u16(), 202);
    assert_eq!(h.recordings().await.len(), 1);
    h.ms.assert_no_problems();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_bodies_get_400_and_change_nothing() {
    let h = Harness::start().await;
    let auth = format!("Bearer {}", h.token());
    let before = h.snapshot().await;
    for body in [
        b"not json".to_vec(),
        b"{}".to_vec(),
        br#"{"value": [{"changeType": "exploded", "resourceUrl": "/communications/calls/x"}]}"#
            .to_vec(),
        br#"{"value": [{"changeType": "created"}]}"#.to_vec(),
    ] {
        let res = h.post_raw(Some(&auth), body.clone()).await;
        assert_eq!(
            res.status().as_u16(),
            400,
            "{}",
            String::from_utf8_lossy(&body)
        );
        let problem: Value = res.json().await.unwrap_or(Value::Null);
        assert_eq!(problem["code"], "malformed-notification");
    }
    // A good invite followed by a malformed notification: the batch is
    // refused whole, the invite is not applied.
    let p = Person::new("Mia Malformed", "mia@contoso.example");
    let mut bad_state = support::notify::state("call-m", "established");
    bad_state["resourceData"]["state"] = json!(42);
    let body = support::notify::batch(vec![
        Invite::new("call-m", &h.tid, &p, "callee").notification(),
        bad_state,
    ]);
    let res = h.post_raw(Some(&auth), body.to_string().into_bytes()).await;
    assert_eq!(res.status().as_u16(), 400);
    let problem: Value = res.json().await.unwrap_or(Value::Null);
    assert!(
        !problem.to_string().contains("42"),
        "the problem quotes input: {problem}"
    );
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(h.snapshot().await, before);
    assert!(h.ms.graph_calls().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rotated_signing_keys_are_picked_up() {
    let h = Harness::start_with(|g| {
        g.jwks_min_refresh_secs = 0;
        g.jwks_refresh_secs = 1;
    })
    .await;
    let body = || invite_body(&h, "call-r");
    let ok = h
        .post_raw(Some(&format!("Bearer {}", h.token())), body())
        .await;
    assert_eq!(ok.status().as_u16(), 202);
    assert_eq!(h.ms.jwks_fetches(), 1);

    // Microsoft rolls over to a new key: the unknown kid triggers a refetch.
    let new = TestKey::generate("key-2");
    h.ms.publish(vec![h.key.jwk(), new.jwk()]);
    let res = h
        .post_raw(
            Some(&format!("Bearer {}", new.token(APP_ID, ISSUER, &h.tid))),
            body(),
        )
        .await;
    assert_eq!(res.status().as_u16(), 202);
    assert_eq!(h.ms.jwks_fetches(), 2);

    // The old key is withdrawn: after the refresh interval the periodic
    // (background) refetch drops it.
    h.ms.publish(vec![new.jwk()]);
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let old = format!("Bearer {}", h.token());
    let res = h.post_raw(Some(&old), body()).await;
    assert_eq!(res.status().as_u16(), 202, "stale keys still serve");
    let until = std::time::Instant::now() + Duration::from_secs(5);
    while h.ms.jwks_fetches() < 3 && std::time::Instant::now() < until {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(h.ms.jwks_fetches(), 3);
    tokio::time::sleep(Duration::from_millis(50)).await;
    let res = h.post_raw(Some(&old), body()).await;
    assert_eq!(res.status().as_u16(), 401);
    h.ms.assert_no_problems();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_key_ids_refetch_at_most_once_per_interval() {
    let h = Harness::start().await; // default minimum interval: 30 s
    assert_eq!(
        h.post_raw(
            Some(&format!("Bearer {}", h.token())),
            invite_body(&h, "c1")
        )
        .await
        .status()
        .as_u16(),
        202
    );
    for i in 0..5 {
        let k = TestKey::generate(&format!("forged-{i}"));
        let res = h
            .post_raw(
                Some(&format!("Bearer {}", k.token(APP_ID, ISSUER, &h.tid))),
                invite_body(&h, "c2"),
            )
            .await;
        assert_eq!(res.status().as_u16(), 401);
    }
    assert_eq!(
        h.ms.jwks_fetches(),
        1,
        "a forged-kid flood refetched the keys"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn simulator_tokens_are_trusted_only_when_configured() {
    // Trusted when configured (a local gateway with no Microsoft app id),
    // and the call is controlled in-process.
    let h = Harness::start_with(|g| {
        g.app_id = None;
        g.trust_simulator_key = true;
    })
    .await;
    let audience = h.settings.audience().to_owned();
    let tid: uuid::Uuid = h.tid.parse().unwrap_or_else(|e| panic!("{e}"));
    let sim =
        mint_simulator_token(h.data_dir.path(), &audience, tid).unwrap_or_else(|e| panic!("{e}"));
    let res = h
        .post_raw(Some(&format!("Bearer {sim}")), invite_body(&h, "sim-call"))
        .await;
    assert_eq!(res.status().as_u16(), 202);
    h.wait_answered("sim-call").await;
    assert!(matches!(
        h.state.simulated.operations().first(),
        Some(SimulatedOperation::Answer { call_id, .. }) if call_id == "sim-call"
    ));
    assert!(
        h.ms.graph_calls().is_empty(),
        "a simulated call must not reach Graph"
    );
    assert_eq!(h.recordings().await.len(), 1);
    // A simulator token for another audience is still refused.
    let wrong = mint_simulator_token(h.data_dir.path(), "someone-else", tid)
        .unwrap_or_else(|e| panic!("{e}"));
    let res = h
        .post_raw(Some(&format!("Bearer {wrong}")), invite_body(&h, "sim-2"))
        .await;
    assert_eq!(res.status().as_u16(), 401);

    // Production: trust off, the same kind of token is refused.
    let p = Harness::start_with(|g| g.trust_simulator_key = false).await;
    let key_file = p.data_dir.path().join("keys").join("simulator-signing.pem");
    assert!(
        !key_file.exists(),
        "no simulator key is created when it is not trusted"
    );
    let tid: uuid::Uuid = p.tid.parse().unwrap_or_else(|e| panic!("{e}"));
    let sim = mint_simulator_token(p.data_dir.path(), p.settings.audience(), tid)
        .unwrap_or_else(|e| panic!("{e}"));
    let before = p.snapshot().await;
    let res = p
        .post_raw(Some(&format!("Bearer {sim}")), invite_body(&p, "sim-3"))
        .await;
    assert_eq!(res.status().as_u16(), 401);
    let body: Value = res.json().await.unwrap_or(Value::Null);
    assert_eq!(body["code"], "token-untrusted-simulator");
    assert_eq!(p.snapshot().await, before);
    assert!(p.state.simulated.operations().is_empty());
}

/// A live call takes notifications only from the route (Microsoft or the
/// simulator) and the tenant (`tid`) that created it: the simulator's or
/// another tenant's valid token naming it changes nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_live_call_ignores_notifications_from_another_route_or_tenant() {
    let h = Harness::start_with(|g| {
        g.app_id = None;
        g.client_id = Some(APP_ID.into());
        g.trust_simulator_key = true;
    })
    .await;
    let audience = h.settings.audience().to_owned();
    let microsoft = |tid: &str| format!("Bearer {}", h.key.token(&audience, ISSUER, tid));
    let (status, _) = h
        .notify_with(
            &microsoft(&h.tid),
            vec![
                Invite::new(
                    "ms-call",
                    &h.tid,
                    &Person::new("Vera Victim", "vera@contoso.example"),
                    "callee",
                )
                .notification(),
            ],
        )
        .await;
    assert_eq!(status, 202);
    h.wait_answered("ms-call").await;

    let tid: uuid::Uuid = h.tid.parse().unwrap_or_else(|e| panic!("{e}"));
    let sim =
        mint_simulator_token(h.data_dir.path(), &audience, tid).unwrap_or_else(|e| panic!("{e}"));
    let other_tenant = uuid::Uuid::new_v4().to_string();
    for auth in [format!("Bearer {sim}"), microsoft(&other_tenant)] {
        let (status, _) = h
            .notify_with(&auth, vec![support::notify::deleted("ms-call", 487, 0, "")])
            .await;
        assert_eq!(status, 202);
    }
    assert!(
        h.recording("ms-call").await.ended_at.is_none(),
        "a foreign notification ended the call"
    );
    assert!(
        h.state.registry.call_info("ms-call").await.is_some(),
        "the call left the registry"
    );
    let (status, _) = h
        .notify_with(
            &microsoft(&h.tid),
            vec![support::notify::deleted("ms-call", 200, 0, "")],
        )
        .await;
    assert_eq!(status, 202);
    assert!(h.recording("ms-call").await.ended_at.is_some());
}
