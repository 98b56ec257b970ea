//! Where a request came from, for audit events and login throttling.
//!
//! The peer's address, unless the peer is a configured trusted proxy
//! (`auth.trusted_proxies`); then the right-most `X-Forwarded-For` entry
//! that is not a trusted proxy (entries to its left were written by the
//! client and prove nothing). With no trusted proxy configured no header
//! is believed, so a client cannot forge the address the audit trail
//! keeps.

use std::net::IpAddr;

use actix_web::HttpRequest;
use insights_core::config::Cidr;

/// The client address of `req` given the trusted proxy ranges.
pub fn client_ip(req: &HttpRequest, trusted: &[Cidr]) -> Option<IpAddr> {
    let peer = req.peer_addr()?.ip();
    let is_trusted = |ip: IpAddr| trusted.iter().any(|c| c.contains(ip));
    let entries: Vec<&str> = req
        .headers()
        .get_all("x-forwarded-for")
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .collect();
    // Right to left, each trusted hop vouches for the entry it appended;
    // stop at the first hop no trusted proxy stands behind (or at an
    // entry that is no address: the last known hop is kept).
    let mut current = peer;
    for raw in entries.iter().rev() {
        if !is_trusted(current) {
            break;
        }
        match raw.parse::<IpAddr>() {
            Ok(ip) => current = ip,
            Err(_) => break,
        }
    }
    Some(current)
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::test::TestRequest;

    fn ranges(v: &[&str]) -> Vec<Cidr> {
        v.iter()
            .map(|s| Cidr::parse(s).unwrap_or_else(|e| panic!("{e}")))
            .collect()
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn headers_count_only_behind_a_trusted_proxy() {
        let req = TestRequest::default()
            .peer_addr("203.0.113.7:5000".parse().unwrap_or_else(|e| panic!("{e}")))
            .insert_header(("x-forwarded-for", "198.51.100.1"))
            .to_http_request();
        assert_eq!(
            client_ip(&req, &[]),
            Some(ip("203.0.113.7")),
            "nothing trusted"
        );
        assert_eq!(
            client_ip(&req, &ranges(&["10.0.0.0/8"])),
            Some(ip("203.0.113.7")),
            "the peer is no proxy of ours"
        );

        let via_proxy = TestRequest::default()
            .peer_addr("10.0.0.5:443".parse().unwrap_or_else(|e| panic!("{e}")))
            // The client forged the first entry; our second proxy added
            // the real client, the last proxy added the second proxy.
            .insert_header(("x-forwarded-for", "1.2.3.4, 198.51.100.9, 10.0.0.6"))
            .to_http_request();
        assert_eq!(
            client_ip(&via_proxy, &ranges(&["10.0.0.0/8"])),
            Some(ip("198.51.100.9"))
        );
        assert_eq!(client_ip(&via_proxy, &[]), Some(ip("10.0.0.5")));

        let garbage = TestRequest::default()
            .peer_addr("10.0.0.5:443".parse().unwrap_or_else(|e| panic!("{e}")))
            .insert_header(("x-forwarded-for", "not-an-ip"))
            .to_http_request();
        assert_eq!(
            client_ip(&garbage, &ranges(&["10.0.0.0/8"])),
            Some(ip("10.0.0.5")),
            "an unusable header leaves the proxy's own address"
        );
    }
}
