//! Delivery of alerts to their channels: signed webhooks, e-mail over
//! SMTP with STARTTLS, Microsoft Teams incoming webhooks.
//!
//! # The signed webhook
//!
//! `POST <url>` with `Content-Type: application/json`, the body
//! [`Alert::payload`] (ids, counts, codes, times) and three headers:
//!
//! * `X-Insights-Alert-Id`: the alert's id (the same on a retry);
//! * `X-Insights-Timestamp`: Unix seconds when this attempt was signed;
//! * `X-Insights-Signature`: `sha256=` and the lower-case hex
//!   HMAC-SHA256, keyed with the channel's secret, of
//!   `<timestamp>.<raw body>`.
//!
//! A receiver recomputes the HMAC over the timestamp header, a dot and
//! the raw body bytes as received, compares it in constant time, and
//! refuses a timestamp more than five minutes old (replays). Any 2xx is
//! success; anything else is retried at the next evaluation, up to
//! `[alerts] max_attempts`.
//!
//! # Teams
//!
//! A message with one Adaptive Card attachment (the shape Teams
//! incoming webhooks and Workflows accept): title, severity and a fact
//! set of the alert's kind, ids and counts.
//!
//! # E-mail
//!
//! One plain-text message to the channel's recipients through
//! `[alerts.smtp]`, STARTTLS required (a server that does not offer it
//! is an error), the server's certificate checked against the system's
//! roots and `ca_file`.
//!
//! Errors are recorded per channel as a code (an HTTP status, `timeout`,
//! `connect`, `smtp-…`), never with a URL or an address.

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use hmac::{KeyInit, Mac};
use insights_core::config::SmtpSettings;
use insights_core::crypto::{KeyProvider, PLATFORM_KEY_OWNER, open_secret};
use insights_core::domain::{Alert, AlertChannel, ChannelKind};
use lettre::message::header::ContentType;
use lettre::transport::smtp::AsyncSmtpTransport;
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Certificate, Tls, TlsParameters};
use lettre::{AsyncTransport, Message, Tokio1Executor};
use serde_json::{Value, json};

/// The signature header of webhooks.
pub const SIGNATURE_HEADER: &str = "X-Insights-Signature";
/// The timestamp header of webhooks (Unix seconds).
pub const TIMESTAMP_HEADER: &str = "X-Insights-Timestamp";
/// The alert id header of webhooks.
pub const ALERT_ID_HEADER: &str = "X-Insights-Alert-Id";

/// Why a channel could not be set up or reached.
#[derive(Debug, thiserror::Error)]
pub enum DeliveryError {
    #[error("the alert channel is not usable: {0}")]
    Config(String),
    #[error("delivery failed: {0}")]
    Failed(String),
}

/// `sha256=<hex>`: the signature of `body` sent at `timestamp`.
pub fn sign(secret: &[u8], timestamp: i64, body: &[u8]) -> String {
    let mut mac = match hmac::Hmac::<sha2::Sha256>::new_from_slice(secret) {
        Ok(m) => m,
        // HMAC takes keys of any length.
        Err(_) => return String::new(),
    };
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

/// The Adaptive Card message of an alert.
pub fn teams_card(alert: &Alert) -> Value {
    let mut facts = vec![
        json!({"title": "Kind", "value": alert.kind.as_str()}),
        json!({"title": "Severity", "value": alert.kind.severity()}),
        json!({"title": "Alert id", "value": alert.id.to_string()}),
        json!({"title": "Occurrences", "value": alert.occurrences.to_string()}),
        json!({"title": "First raised", "value": alert.first_at.to_rfc3339()}),
    ];
    if let Some(t) = alert.tenant_id {
        facts.push(json!({"title": "Tenant id", "value": t.to_string()}));
    }
    for (k, v) in &alert.details {
        let v = match v {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        };
        facts.push(json!({"title": k, "value": v}));
    }
    json!({
        "type": "message",
        "attachments": [{
            "contentType": "application/vnd.microsoft.card.adaptive",
            "contentUrl": null,
            "content": {
                "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
                "type": "AdaptiveCard",
                "version": "1.4",
                "body": [
                    {
                        "type": "TextBlock",
                        "size": "Medium",
                        "weight": "Bolder",
                        "text": format!("Insights alert: {}", alert.kind.as_str()),
                        "wrap": true,
                    },
                    {"type": "FactSet", "facts": facts},
                ],
            },
        }],
    })
}

/// The e-mail text of an alert.
pub fn mail_text(alert: &Alert) -> String {
    let mut s = format!(
        "Insights raised an alert.\n\nKind: {}\nSeverity: {}\nAlert id: {}\nOccurrences: {}\nFirst raised: {}\n",
        alert.kind.as_str(),
        alert.kind.severity(),
        alert.id,
        alert.occurrences,
        alert.first_at.to_rfc3339(),
    );
    if let Some(t) = alert.tenant_id {
        s.push_str(&format!("Tenant id: {t}\n"));
    }
    for (k, v) in &alert.details {
        let v = match v {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        };
        s.push_str(&format!("{k}: {v}\n"));
    }
    s.push_str("\nAcknowledge it on the Alerts page.\n");
    s
}

/// Sends alerts: one HTTP client, one SMTP transport, the key provider
/// that opens channel secrets.
pub struct Deliverer {
    http: reqwest::Client,
    smtp: Option<(AsyncSmtpTransport<Tokio1Executor>, lettre::message::Mailbox)>,
    keys: Arc<dyn KeyProvider>,
}

impl Deliverer {
    /// From `[alerts.smtp]` (no SMTP when its host is empty).
    /// Webhook and Teams URLs must be `https` unless
    /// `allow_insecure_http` (local stand-ins in tests).
    pub fn new(
        smtp: &SmtpSettings,
        keys: Arc<dyn KeyProvider>,
        allow_insecure_http: bool,
    ) -> Result<Self, DeliveryError> {
        let http = insights_http::ClientOptions::new(Duration::from_secs(5))
            .timeout(Duration::from_secs(15))
            .https_only(!allow_insecure_http)
            .build()
            .map_err(|e| DeliveryError::Config(format!("HTTP client: {e}")))?;
        let smtp = match smtp.host.is_empty() {
            true => None,
            false => Some(smtp_transport(smtp)?),
        };
        Ok(Deliverer { http, smtp, keys })
    }

    /// Sends `alert` on `channel`; `Err` carries a short code.
    pub async fn send(&self, alert: &Alert, channel: &AlertChannel) -> Result<(), String> {
        match channel.kind {
            ChannelKind::Webhook => {
                let secret = self.secret(channel).await?;
                let body = serde_json::to_vec(&alert.payload()).map_err(|_| "encode")?;
                let ts = Utc::now().timestamp();
                let sig = sign(&secret, ts, &body);
                let resp = self
                    .http
                    .post(&channel.target)
                    .header("content-type", "application/json")
                    .header(ALERT_ID_HEADER, alert.id.to_string())
                    .header(TIMESTAMP_HEADER, ts.to_string())
                    .header(SIGNATURE_HEADER, sig)
                    .body(body)
                    .send()
                    .await
                    .map_err(transport_code)?;
                status_ok(resp.status())
            }
            ChannelKind::Teams => {
                let url = self.secret(channel).await?;
                let url = std::str::from_utf8(&url).map_err(|_| "secret")?.to_owned();
                let resp = self
                    .http
                    .post(url)
                    .json(&teams_card(alert))
                    .send()
                    .await
                    .map_err(transport_code)?;
                status_ok(resp.status())
            }
            ChannelKind::Email => {
                let Some((transport, from)) = &self.smtp else {
                    return Err("smtp-not-configured".into());
                };
                let mut b = Message::builder()
                    .from(from.clone())
                    .subject(format!(
                        "[Insights] {} alert: {}",
                        alert.kind.severity(),
                        alert.kind.as_str()
                    ))
                    .header(ContentType::TEXT_PLAIN);
                for to in channel
                    .target
                    .split(',')
                    .map(str::trim)
                    .filter(|s| !s.is_empty())
                {
                    b = b.to(to.parse().map_err(|_| "smtp-recipient")?);
                }
                let msg = b.body(mail_text(alert)).map_err(|_| "smtp-message")?;
                transport
                    .send(msg)
                    .await
                    .map(|_| ())
                    .map_err(|e| match e.status() {
                        Some(code) => format!("smtp-{code}"),
                        None if e.is_timeout() => "smtp-timeout".into(),
                        None if e.is_tls() => "smtp-tls".into(),
                        None => "smtp-connect".into(),
                    })
            }
        }
    }

    async fn secret(&self, channel: &AlertChannel) -> Result<zeroize::Zeroizing<Vec<u8>>, String> {
        let sealed = channel.secret.as_ref().ok_or("no-secret")?;
        let owner = channel.tenant_id.unwrap_or(PLATFORM_KEY_OWNER);
        open_secret(
            self.keys.as_ref(),
            owner,
            &AlertChannel::secret_context(channel.id),
            sealed,
        )
        .await
        .map_err(|_| "secret-unreadable".into())
    }
}

fn status_ok(s: reqwest::StatusCode) -> Result<(), String> {
    match s.is_success() {
        true => Ok(()),
        false => Err(format!("http-{}", s.as_u16())),
    }
}

fn transport_code(e: reqwest::Error) -> String {
    match () {
        _ if e.is_timeout() => "timeout".into(),
        _ if e.is_connect() => "connect".into(),
        _ => "transport".into(),
    }
}

fn smtp_transport(
    s: &SmtpSettings,
) -> Result<(AsyncSmtpTransport<Tokio1Executor>, lettre::message::Mailbox), DeliveryError> {
    let cfg = |m: &str| DeliveryError::Config(m.to_owned());
    let mut tls = TlsParameters::builder(s.host.clone());
    if let Some(ca) = &s.ca_file {
        let pem = std::fs::read(ca).map_err(|_| cfg("alerts.smtp.ca_file cannot be read"))?;
        let cert = Certificate::from_pem(&pem)
            .map_err(|_| cfg("alerts.smtp.ca_file holds no PEM certificate"))?;
        tls = tls.add_root_certificate(cert);
    }
    let tls = tls
        .build_rustls()
        .map_err(|_| cfg("alerts.smtp: TLS set-up failed"))?;
    let mut b = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(s.host.as_str())
        .port(s.port)
        .tls(Tls::Required(tls))
        .timeout(Some(Duration::from_secs(s.timeout_secs)));
    if let Some(user) = &s.username {
        let password = match (&s.password, &s.password_file) {
            (Some(p), _) => p.expose().to_owned(),
            (None, Some(f)) => std::fs::read_to_string(f)
                .map_err(|_| cfg("alerts.smtp.password_file cannot be read"))?
                .trim_end()
                .to_owned(),
            (None, None) => return Err(cfg("alerts.smtp.username needs a password")),
        };
        b = b.credentials(Credentials::new(user.clone(), password));
    }
    let from = s
        .from
        .parse()
        .map_err(|_| cfg("alerts.smtp.from is not an e-mail address"))?;
    Ok((b.build(), from))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The documented recipe: HMAC-SHA256 over `<timestamp>.<body>`
    /// (RFC 4231 test case 2's key and a fixed message).
    #[test]
    fn the_signature_is_hmac_sha256_of_timestamp_dot_body() {
        let sig = sign(b"Jefe", 1_700_000_000, b"{\"a\":1}");
        let mut mac =
            hmac::Hmac::<sha2::Sha256>::new_from_slice(b"Jefe").unwrap_or_else(|_| panic!());
        mac.update(b"1700000000.{\"a\":1}");
        assert_eq!(
            sig,
            format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
        );
        assert_ne!(sig, sign(b"Jefe", 1_700_000_001, b"{\"a\":1}"));
    }
}
