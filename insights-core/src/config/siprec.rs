//! Settings of the SIPREC Session Recording Server (`[siprec]`).

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::{Cidr, ConfigError};

/// `[siprec]`: the Session Recording Server in the gateway (RFC 7866).
/// Off while `listen` is empty (the default); with addresses, a gateway
/// node opens them at start-up and fails if it cannot.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SiprecSettings {
    /// SIP listeners, `udp:ADDR:PORT` or `tcp:ADDR:PORT` (IPv6 as
    /// `udp:[::1]:5060`); an address without a transport opens both.
    pub listen: Vec<String>,
    /// Seconds without RTP on any stream after which a session is closed
    /// as partial (reason `rtp-timeout`). Default 30.
    pub rtp_timeout: u64,
    /// The range RTP ports are taken from, `LOW-HIGH`. Each session takes
    /// one even port per m-line, consecutive (`p`, `p+2`, …).
    pub rtp_ports: String,
    /// The address put into the SDP answer (`c=`); default: the address
    /// of the SIP listener the INVITE arrived on (an unspecified address
    /// there needs this set).
    pub media_address: Option<IpAddr>,
    /// Sessions this node records at once; more get 503. Default 500.
    pub max_sessions: usize,
    /// Session timers (RFC 4028): the smallest `Session-Expires` accepted
    /// (seconds); a shorter one gets `422` with `Min-SE`. Default 90 (the
    /// RFC's floor); lower values only for labs and tests.
    pub min_se: u64,
    /// SIP over TLS (`tls:` listeners): the server certificate chain
    /// (PEM, leaf first) and its private key.
    pub tls_cert_file: Option<PathBuf>,
    pub tls_key_file: Option<PathBuf>,
    /// Mutual TLS: client certificates must chain to these CA
    /// certificates (PEM). Without it any client certificate is accepted
    /// for the handshake and only trunks' `cert_fingerprints` decide.
    pub tls_client_ca_file: Option<PathBuf>,
    /// `[[siprec.trunks]]`: which SBC may record for which tenant.
    pub trunks: Vec<SiprecTrunk>,
}

/// One SBC trunk: requests from `sources` (and, when set, to the
/// Request-URI user `request_user`) record for `tenant`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SiprecTrunk {
    /// The tenant's name (`insights admin tenant add NAME`).
    pub tenant: String,
    /// Source addresses or CIDR ranges of the SBC's signalling (may be
    /// empty when `cert_fingerprints` identify the SBC).
    #[serde(default)]
    pub sources: Vec<String>,
    /// Only INVITEs whose Request-URI has this user part.
    #[serde(default)]
    pub request_user: Option<String>,
    /// Only INVITEs over TLS whose client certificate has one of these
    /// SHA-256 fingerprints (hex, colons allowed, any case).
    #[serde(default)]
    pub cert_fingerprints: Vec<String>,
}

/// A listener of `[siprec] listen`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SipListen {
    /// A stream transport (TCP, or TLS over TCP).
    pub tcp: bool,
    pub tls: bool,
    pub addr: SocketAddr,
}

impl Default for SiprecSettings {
    fn default() -> Self {
        Self {
            listen: Vec::new(),
            rtp_timeout: 30,
            rtp_ports: "20000-39999".to_owned(),
            media_address: None,
            max_sessions: 500,
            min_se: 90,
            tls_cert_file: None,
            tls_key_file: None,
            tls_client_ca_file: None,
            trunks: Vec::new(),
        }
    }
}

fn invalid(key: &'static str, problem: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        key,
        problem: problem.into(),
    }
}

impl SiprecSettings {
    /// Whether the recording server is on.
    pub fn enabled(&self) -> bool {
        !self.listen.is_empty()
    }

    /// The listeners, parsed.
    pub fn listeners(&self) -> Result<Vec<SipListen>, ConfigError> {
        let mut out = Vec::new();
        for l in &self.listen {
            let l = l.trim();
            // (stream, tls) per transport.
            let (kinds, addr): (&[(bool, bool)], &str) = if let Some(a) = l.strip_prefix("udp:") {
                (&[(false, false)], a)
            } else if let Some(a) = l.strip_prefix("tcp:") {
                (&[(true, false)], a)
            } else if let Some(a) = l.strip_prefix("tls:") {
                (&[(true, true)], a)
            } else {
                (&[(false, false), (true, false)], l)
            };
            let addr: SocketAddr = addr.parse().map_err(|_| {
                invalid(
                    "siprec.listen",
                    format!(
                        "`{l}` is not `udp:ADDR:PORT`, `tcp:ADDR:PORT`, `tls:ADDR:PORT` or `ADDR:PORT`"
                    ),
                )
            })?;
            for &(tcp, tls) in kinds {
                out.push(SipListen { tcp, tls, addr });
            }
        }
        Ok(out)
    }

    /// The RTP port range, both ends included.
    pub fn rtp_port_range(&self) -> Result<(u16, u16), ConfigError> {
        let bad = || invalid("siprec.rtp_ports", "must be `LOW-HIGH`, 1024 ≤ LOW < HIGH");
        let (lo, hi) = self.rtp_ports.split_once('-').ok_or_else(bad)?;
        let lo: u16 = lo.trim().parse().map_err(|_| bad())?;
        let hi: u16 = hi.trim().parse().map_err(|_| bad())?;
        if lo < 1024 || hi <= lo {
            return Err(bad());
        }
        Ok((lo, hi))
    }

    /// `rtp_timeout` as a duration.
    pub fn rtp_timeout(&self) -> Duration {
        Duration::from_secs(self.rtp_timeout)
    }

    /// Checks values that parse but make no sense.
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.listeners()?;
        self.rtp_port_range()?;
        if !(1..=3600).contains(&self.rtp_timeout) {
            return Err(invalid("siprec.rtp_timeout", "must be 1-3600 seconds"));
        }
        if !(1..=86_400).contains(&self.min_se) {
            return Err(invalid("siprec.min_se", "must be 1-86400 seconds"));
        }
        if self.max_sessions == 0 {
            return Err(invalid("siprec.max_sessions", "must be at least 1"));
        }
        let tls = self.listeners()?.iter().any(|l| l.tls);
        if tls && (self.tls_cert_file.is_none() || self.tls_key_file.is_none()) {
            return Err(invalid(
                "siprec.tls_cert_file",
                "a tls: listener needs siprec.tls_cert_file and siprec.tls_key_file",
            ));
        }
        for t in &self.trunks {
            if t.tenant.trim().is_empty() {
                return Err(invalid("siprec.trunks.tenant", "must not be empty"));
            }
            if t.sources.is_empty() && t.cert_fingerprints.is_empty() {
                return Err(invalid(
                    "siprec.trunks.sources",
                    "each trunk needs at least one source address or range (or cert_fingerprints)",
                ));
            }
            for f in &t.cert_fingerprints {
                if normalize_fingerprint(f).is_none() {
                    return Err(invalid(
                        "siprec.trunks.cert_fingerprints",
                        format!("`{f}` is not a SHA-256 fingerprint (64 hex digits)"),
                    ));
                }
            }
            if !t.cert_fingerprints.is_empty() && !tls {
                return Err(invalid(
                    "siprec.trunks.cert_fingerprints",
                    "certificate fingerprints need a tls: listener",
                ));
            }
            for s in &t.sources {
                Cidr::parse(s).map_err(|p| invalid("siprec.trunks.sources", p))?;
            }
        }
        if self.enabled() && self.trunks.is_empty() {
            return Err(invalid(
                "siprec.trunks",
                "the recording server listens but no trunk may record: add [[siprec.trunks]]",
            ));
        }
        Ok(())
    }
}

/// A SHA-256 fingerprint as 64 lower-case hex digits (colons and spaces
/// dropped), or `None` if it is not one.
pub fn normalize_fingerprint(f: &str) -> Option<String> {
    let hex: String = f
        .chars()
        .filter(|c| *c != ':' && !c.is_whitespace())
        .map(|c| c.to_ascii_lowercase())
        .collect();
    (hex.len() == 64 && hex.chars().all(|c| c.is_ascii_hexdigit())).then_some(hex)
}

impl SiprecTrunk {
    /// The certificate fingerprints, normalised (validated by
    /// [`SiprecSettings::validate`]).
    pub fn fingerprints(&self) -> Vec<String> {
        self.cert_fingerprints
            .iter()
            .filter_map(|f| normalize_fingerprint(f))
            .collect()
    }

    /// The source ranges (validated by [`SiprecSettings::validate`]).
    pub fn source_ranges(&self) -> Vec<Cidr> {
        self.sources
            .iter()
            .filter_map(|s| Cidr::parse(s).ok())
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn off_by_default_and_listeners_parse() {
        let d = SiprecSettings::default();
        assert!(!d.enabled());
        assert!(d.validate().is_ok());
        assert_eq!(d.rtp_timeout(), Duration::from_secs(30));
        let s = SiprecSettings {
            listen: vec![
                "udp:127.0.0.1:5060".into(),
                "tcp:[::1]:5061".into(),
                "0.0.0.0:5062".into(),
            ],
            trunks: vec![SiprecTrunk {
                tenant: "contoso".into(),
                sources: vec!["10.0.0.0/8".into()],
                request_user: None,
                cert_fingerprints: Vec::new(),
            }],
            ..SiprecSettings::default()
        };
        assert!(s.validate().is_ok());
        let l = s.listeners().unwrap_or_default();
        assert_eq!(l.len(), 4);
        assert!(!l[0].tcp && l[1].tcp && !l[2].tcp && l[3].tcp);
    }

    #[test]
    fn bad_values_are_named() {
        let key = |s: SiprecSettings| match s.validate() {
            Err(ConfigError::Invalid { key, .. }) => key,
            other => panic!("{other:?}"),
        };
        let trunk = SiprecTrunk {
            tenant: "t".into(),
            sources: vec!["10.0.0.1".into()],
            request_user: None,
            cert_fingerprints: Vec::new(),
        };
        let on = SiprecSettings {
            listen: vec!["udp:127.0.0.1:5060".into()],
            trunks: vec![trunk.clone()],
            ..SiprecSettings::default()
        };
        for bad in ["udp:nowhere:5060", "tls:nowhere:5061", "127.0.0.1"] {
            let s = SiprecSettings {
                listen: vec![bad.into()],
                ..on.clone()
            };
            assert_eq!(key(s), "siprec.listen", "{bad}");
        }
        for bad in ["", "30000", "100-200", "5000-4000"] {
            let s = SiprecSettings {
                rtp_ports: bad.into(),
                ..on.clone()
            };
            assert_eq!(key(s), "siprec.rtp_ports", "{bad}");
        }
        let s = SiprecSettings {
            rtp_timeout: 0,
            ..on.clone()
        };
        assert_eq!(key(s), "siprec.rtp_timeout");
        let s = SiprecSettings {
            trunks: vec![],
            ..on.clone()
        };
        assert_eq!(key(s), "siprec.trunks");
        let s = SiprecSettings {
            trunks: vec![SiprecTrunk {
                sources: vec!["sbc.example".into()],
                ..trunk.clone()
            }],
            ..on.clone()
        };
        assert_eq!(key(s), "siprec.trunks.sources");
        // TLS: a listener without a certificate; fingerprints that are
        // not SHA-256 or without a TLS listener.
        let s = SiprecSettings {
            listen: vec!["tls:127.0.0.1:5061".into()],
            ..on.clone()
        };
        assert_eq!(key(s), "siprec.tls_cert_file");
        let fp = "AB:".repeat(31) + "AB";
        let with_fp = |f: &str| SiprecTrunk {
            cert_fingerprints: vec![f.into()],
            sources: Vec::new(),
            ..trunk.clone()
        };
        let tls_on = SiprecSettings {
            listen: vec!["tls:127.0.0.1:5061".into()],
            tls_cert_file: Some("c.pem".into()),
            tls_key_file: Some("k.pem".into()),
            trunks: vec![with_fp(&fp)],
            ..on.clone()
        };
        assert!(tls_on.validate().is_ok());
        assert_eq!(tls_on.trunks[0].fingerprints(), vec!["ab".repeat(32)]);
        let s = SiprecSettings {
            trunks: vec![with_fp("abcd")],
            ..tls_on.clone()
        };
        assert_eq!(key(s), "siprec.trunks.cert_fingerprints");
        let s = SiprecSettings {
            listen: vec!["tcp:127.0.0.1:5061".into()],
            ..tls_on
        };
        assert_eq!(key(s), "siprec.trunks.cert_fingerprints");
    }
}
