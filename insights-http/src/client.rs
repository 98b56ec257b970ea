//! One builder for every outbound `reqwest` client, so that timeouts and
//! the redirect policy are chosen in one place and visibly per caller.

use std::time::Duration;

/// How an outbound client is built. [`ClientOptions::new`] starts from
/// the safe defaults: no overall timeout (set one with
/// [`timeout`](Self::timeout) or per request), redirects **not** followed
/// (a key or token is only sent where it was configured to go), plain
/// HTTP allowed (stand-in servers in tests).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[must_use]
pub struct ClientOptions {
    connect_timeout: Duration,
    timeout: Option<Duration>,
    follow_redirects: bool,
    https_only: bool,
}

impl ClientOptions {
    /// Connects within `connect_timeout`; no overall timeout, no
    /// redirects followed, HTTP allowed.
    pub fn new(connect_timeout: Duration) -> Self {
        Self {
            connect_timeout,
            timeout: None,
            follow_redirects: false,
            https_only: false,
        }
    }

    /// Every request (connect to end of body) ends within `timeout`,
    /// unless the request sets its own.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }

    /// Follows redirects with `reqwest`'s default policy (up to 10 hops;
    /// `Authorization` dropped when the host changes). For the clients
    /// that have always done so (OpenID discovery and JWKS, Graph call
    /// control); new clients should not.
    pub fn follow_redirects(mut self) -> Self {
        self.follow_redirects = true;
        self
    }

    /// Refuses plain-HTTP URLs when `on`.
    pub fn https_only(mut self, on: bool) -> Self {
        self.https_only = on;
        self
    }

    /// The client. Fails only if the TLS backend cannot be initialised.
    pub fn build(self) -> Result<reqwest::Client, reqwest::Error> {
        let mut b = reqwest::Client::builder()
            .connect_timeout(self.connect_timeout)
            .https_only(self.https_only);
        if let Some(t) = self.timeout {
            b = b.timeout(t);
        }
        if !self.follow_redirects {
            b = b.redirect(reqwest::redirect::Policy::none());
        }
        b.build()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_the_safe_ones() {
        let o = ClientOptions::new(Duration::from_secs(5));
        assert_eq!(
            o,
            ClientOptions {
                connect_timeout: Duration::from_secs(5),
                timeout: None,
                follow_redirects: false,
                https_only: false,
            }
        );
        assert!(o.build().is_ok());
        let o = o
            .timeout(Duration::from_secs(1))
            .follow_redirects()
            .https_only(true);
        assert!(o.follow_redirects && o.https_only);
        assert_eq!(o.timeout, Some(Duration::from_secs(1)));
        assert!(o.build().is_ok());
    }
}
