//! Outbound endpoints must use HTTPS: signing keys (OpenID configuration,
//! JWKS), token endpoints and providers (Microsoft Graph, the AI
//! providers) are trusted for what they answer and are sent secrets, so a
//! plain-HTTP URL is a configuration error naming its key. The top-level
//! `allow_insecure_http = true` lifts this for tests with local stand-ins
//! only. `ai.openai.base_url` may also be plain HTTP on a loopback address
//! (a local model server such as Ollama or vLLM: nothing leaves the host).

use super::{ConfigError, Settings};

/// Every endpoint key and its URL.
fn endpoints(s: &Settings) -> Vec<(&'static str, &str, bool)> {
    let mut v: Vec<(&'static str, &str, bool)> = vec![
        (
            "gateway.openid_configuration_url",
            &s.gateway.openid_configuration_url,
            false,
        ),
        ("gateway.token_endpoint", &s.gateway.token_endpoint, false),
        ("gateway.graph_base_url", &s.gateway.graph_base_url, false),
        (
            "directory.graph_base_url",
            &s.directory.graph_base_url,
            false,
        ),
        ("directory.token_url", &s.directory.token_url, false),
    ];
    if let Some(u) = &s.auth.oidc.discovery_url {
        v.push(("auth.oidc.discovery_url", u, false));
    }
    if let Some(o) = &s.ai.openai {
        v.push(("ai.openai.base_url", &o.base_url, true));
    }
    if let Some(o) = &s.ai.azure_openai {
        v.push(("ai.azure_openai.endpoint", &o.endpoint, false));
    }
    if let Some(o) = &s.ai.anthropic {
        v.push(("ai.anthropic.base_url", &o.base_url, false));
    }
    if let Some(o) = &s.ai.azure_speech {
        v.push(("ai.azure_speech.endpoint", &o.endpoint, false));
    }
    v
}

/// Whether `url` names a loopback host over plain HTTP.
fn loopback_http(url: &str) -> bool {
    let Some(rest) = url.strip_prefix("http://") else {
        return false;
    };
    let host = rest.split(['/', '?', '#']).next().unwrap_or_default();
    let host = host.rsplit_once('@').map_or(host, |(_, h)| h);
    let name = if let Some(v6) = host.strip_prefix('[') {
        v6.split(']').next().unwrap_or_default()
    } else {
        host.split(':').next().unwrap_or_default()
    };
    name.eq_ignore_ascii_case("localhost")
        || name
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// Checks that every configured endpoint is HTTPS (see the module docs).
pub(super) fn validate(s: &Settings) -> Result<(), ConfigError> {
    if s.allow_insecure_http {
        return Ok(());
    }
    for (key, url, loopback_ok) in endpoints(s) {
        if url.starts_with("https://") || (loopback_ok && loopback_http(url)) {
            continue;
        }
        if url.starts_with("http://") {
            return Err(ConfigError::Invalid {
                key,
                problem: "must be an https:// URL (allow_insecure_http = true is for tests with local stand-ins only)".into(),
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_http_endpoints_need_the_test_switch() {
        let mut s = Settings::default();
        validate(&s).unwrap_or_else(|e| panic!("defaults are https: {e}"));
        s.gateway.openid_configuration_url = "http://127.0.0.1:9/openid".into();
        let e = validate(&s)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(e.contains("gateway.openid_configuration_url"), "{e}");
        s.allow_insecure_http = true;
        validate(&s).unwrap_or_else(|e| panic!("{e}"));
    }

    #[test]
    fn only_a_local_model_server_may_be_plain_http() {
        assert!(loopback_http("http://127.0.0.1:11434/v1"));
        assert!(loopback_http("http://localhost:8000/v1"));
        assert!(loopback_http("http://[::1]:8000/v1"));
        assert!(!loopback_http("http://models.example.com/v1"));
        assert!(!loopback_http("http://127.0.0.1.example.com/v1"));
        assert!(!loopback_http("https://127.0.0.1/v1"));
    }
}
