//! Browser sessions: an opaque random token in an `HttpOnly; Secure;
//! SameSite=Strict; Path=/` cookie; the store keeps only its SHA-256.
//!
//! Token format: `v1.<realm>.<secret>` where realm is our tenant id in
//! simple hex form (or `platform` for operators) and secret is 32 random
//! bytes, base64url. The realm tells which tenant's table to look in
//! (it is not secret; the secret is).

use actix_web::cookie::{Cookie, SameSite, time::Duration as CookieDuration};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use insights_core::domain::{Realm, TenantId};
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

/// Name of the session cookie.
pub const SESSION_COOKIE: &str = "insights_session";

/// Name of the readable cookie carrying the CSRF token of the session.
pub const CSRF_COOKIE: &str = "insights_csrf";

/// Header in which a browser echoes [`CSRF_COOKIE`] on every unsafe
/// request (POST, PUT, PATCH, DELETE) authenticated by the session cookie.
pub const CSRF_HEADER: &str = "x-csrf-token";

/// The CSRF token of a session: SHA-256 over a domain label and the
/// session token itself, base64url. Bound to the session (a new login
/// gets a new one) and needing no server-side state; only someone who
/// knows the `HttpOnly` session token, or can read our origin's cookies,
/// can compute it, and it reveals nothing about the session token (nor
/// about the hash the store keeps, which uses no label).
pub fn csrf_token(session_token: &str) -> String {
    let mut h = Sha256::new();
    h.update(b"insights-csrf/v1\0");
    h.update(session_token.as_bytes());
    URL_SAFE_NO_PAD.encode(h.finalize())
}

/// Whether `presented` is the CSRF token of `session_token` (constant time).
pub fn csrf_matches(session_token: &str, presented: &str) -> bool {
    let expected = csrf_token(session_token);
    let (a, b) = (expected.as_bytes(), presented.as_bytes());
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The readable (not `HttpOnly`) cookie with the CSRF token of the
/// session `session_token`, for `max_age_secs`; set next to the session
/// cookie by every sign-in (password login, OIDC callback).
pub fn issue_csrf_cookie(session_token: &str, max_age_secs: u64) -> Cookie<'static> {
    Cookie::build(CSRF_COOKIE, csrf_token(session_token))
        .http_only(false)
        .secure(true)
        .same_site(SameSite::Strict)
        .path("/")
        .max_age(CookieDuration::seconds(
            i64::try_from(max_age_secs).unwrap_or(i64::MAX),
        ))
        .finish()
}

/// A cookie that makes the browser forget the CSRF token.
pub fn csrf_removal_cookie() -> Cookie<'static> {
    let mut c = issue_csrf_cookie("", 0);
    c.make_removal();
    c
}

/// A fresh session token for `realm` and its hash.
pub fn new_token(realm: Realm) -> (Zeroizing<String>, String) {
    let mut raw = Zeroizing::new([0u8; 32]);
    rand::fill(&mut raw[..]);
    let realm_part = match realm {
        Realm::Tenant(t) => t.0.simple().to_string(),
        Realm::Platform => "platform".to_owned(),
    };
    let token = Zeroizing::new(format!(
        "v1.{realm_part}.{}",
        URL_SAFE_NO_PAD.encode(&raw[..])
    ));
    let hash = hash_token(&token);
    (token, hash)
}

/// SHA-256 (hex) of a token: what the store keeps.
pub fn hash_token(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// The realm and hash of a presented token, if it is well-formed.
pub fn parse_token(token: &str) -> Option<(Realm, String)> {
    let mut parts = token.split('.');
    let (v, realm, secret) = (parts.next()?, parts.next()?, parts.next()?);
    if v != "v1" || parts.next().is_some() || secret.len() != 43 {
        return None;
    }
    let realm = match realm {
        "platform" => Realm::Platform,
        t => Realm::Tenant(TenantId(uuid::Uuid::try_parse(t).ok()?)),
    };
    Some((realm, hash_token(token)))
}

/// The cookie carrying `token` for `max_age_secs`.
pub fn cookie(token: &str, max_age_secs: u64) -> Cookie<'static> {
    Cookie::build(SESSION_COOKIE, token.to_owned())
        .http_only(true)
        .secure(true)
        .same_site(SameSite::Strict)
        .path("/")
        .max_age(CookieDuration::seconds(
            i64::try_from(max_age_secs).unwrap_or(i64::MAX),
        ))
        .finish()
}

/// A cookie that makes the browser forget the session.
pub fn removal_cookie() -> Cookie<'static> {
    let mut c = cookie("", 0);
    c.make_removal();
    c
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_round_trip_and_reject_garbage() {
        let t = TenantId::new();
        let (token, hash) = new_token(Realm::Tenant(t));
        assert_eq!(parse_token(&token), Some((Realm::Tenant(t), hash.clone())));
        assert_eq!(hash.len(), 64);
        let (op, _) = new_token(Realm::Platform);
        assert_eq!(parse_token(&op).map(|x| x.0), Some(Realm::Platform));
        for bad in [
            "",
            "v1",
            "v2.platform.x",
            "v1.nope.AAAA",
            "v1.platform.short",
            "a.b.c.d",
        ] {
            assert!(parse_token(bad).is_none(), "{bad}");
        }
        let c = cookie(&token, 60).to_string();
        for attr in [
            "HttpOnly",
            "Secure",
            "SameSite=Strict",
            "Path=/",
            "Max-Age=60",
        ] {
            assert!(c.contains(attr), "{c}");
        }
        assert!(removal_cookie().to_string().contains("Max-Age=0"));
    }

    #[test]
    fn csrf_tokens_are_bound_to_their_session() {
        let (a, hash) = new_token(Realm::Platform);
        let (b, _) = new_token(Realm::Platform);
        let ta = csrf_token(&a);
        assert_eq!(ta, csrf_token(&a), "deterministic per session");
        assert_ne!(ta, csrf_token(&b));
        assert_ne!(ta, hash, "not the stored hash");
        assert!(csrf_matches(&a, &ta));
        assert!(!csrf_matches(&b, &ta));
        assert!(!csrf_matches(&a, ""));
        assert!(!csrf_matches(&a, &ta[1..]));
        let c = issue_csrf_cookie(&a, 60).to_string();
        assert!(c.starts_with(&format!("insights_csrf={ta}")), "{c}");
        assert!(!c.contains("HttpOnly"), "the page must read it: {c}");
        for attr in ["Secure", "SameSite=Strict", "Path=/", "Max-Age=60"] {
            assert!(c.contains(attr), "{c}");
        }
        assert!(csrf_removal_cookie().to_string().contains("Max-Age=0"));
    }
}
