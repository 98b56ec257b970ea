//! Settings of the SIPREC Session Recording Server (`[siprec]`).

use std::net::{IpAddr, SocketAddr};
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
    /// Source addresses or CIDR ranges of the SBC's signalling.
    pub sources: Vec<String>,
    /// Only INVITEs whose Request-URI has this user part.
    #[serde(default)]
    pub request_user: Option<String>,
}

/// A listener of `[siprec] listen`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SipListen {
    pub tcp: bool,
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
            let (kinds, addr): (&[bool], &str) = if let Some(a) = l.strip_prefix("udp:") {
                (&[false], a)
            } else if let Some(a) = l.strip_prefix("tcp:") {
                (&[true], a)
            } else if l.starts_with("tls:") {
                return Err(invalid(
                    "siprec.listen",
                    format!("`{l}`: TLS is not supported yet (use udp: or tcp:)"),
                ));
            } else {
                (&[false, true], l)
            };
            let addr: SocketAddr = addr.parse().map_err(|_| {
                invalid(
                    "siprec.listen",
                    format!("`{l}` is not `udp:ADDR:PORT`, `tcp:ADDR:PORT` or `ADDR:PORT`"),
                )
            })?;
            for &tcp in kinds {
                out.push(SipListen { tcp, addr });
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
        if self.max_sessions == 0 {
            return Err(invalid("siprec.max_sessions", "must be at least 1"));
        }
        for t in &self.trunks {
            if t.tenant.trim().is_empty() {
                return Err(invalid("siprec.trunks.tenant", "must not be empty"));
            }
            if t.sources.is_empty() {
                return Err(invalid(
                    "siprec.trunks.sources",
                    "each trunk needs at least one source address or range",
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

impl SiprecTrunk {
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
        };
        let on = SiprecSettings {
            listen: vec!["udp:127.0.0.1:5060".into()],
            trunks: vec![trunk.clone()],
            ..SiprecSettings::default()
        };
        for bad in ["udp:nowhere:5060", "tls:127.0.0.1:5061", "127.0.0.1"] {
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
                ..trunk
            }],
            ..on
        };
        assert_eq!(key(s), "siprec.trunks.sources");
    }
}
