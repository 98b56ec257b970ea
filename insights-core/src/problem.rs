//! RFC 9457 problem details: the one error body every HTTP surface sends.
//!
//! ```json
//! {"type": "about:blank", "title": "Unauthorized", "status": 401,
//!  "detail": "the credentials are not valid", "code": "invalid-credentials"}
//! ```
//!
//! `type` is always `about:blank` (the status says what happened), `title`
//! is the status's reason phrase, `detail` a safe human-readable sentence
//! and `code` our stable kebab-case string clients may branch on. The body
//! never carries causes or anything a client sent; those go to the logs.
//!
//! This crate knows no HTTP framework: each service maps its error enum
//! to a [`Problem`] (one explicit `match`) and turns it into a response in
//! a few lines of its own glue (status, [`CONTENT_TYPE`], [`Problem::to_json`]).

use serde::{Deserialize, Serialize};

/// The media type of a problem document.
pub const CONTENT_TYPE: &str = "application/problem+json";

/// The `type` of every problem we send: no type URI beyond the status.
pub const ABOUT_BLANK: &str = "about:blank";

/// A problem document (RFC 9457) plus our `code`. Fields serialize in
/// declaration order.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Problem {
    /// Always [`ABOUT_BLANK`].
    #[serde(rename = "type")]
    pub kind: String,
    /// The status's reason phrase (`Unauthorized`).
    pub title: String,
    /// The HTTP status code.
    pub status: u16,
    /// A safe, human-readable sentence; never echoes input.
    pub detail: String,
    /// The stable kebab-case code.
    pub code: String,
}

impl Problem {
    /// A problem of type [`ABOUT_BLANK`].
    pub fn new(
        status: u16,
        title: impl Into<String>,
        code: impl Into<String>,
        detail: impl Into<String>,
    ) -> Self {
        Self {
            kind: ABOUT_BLANK.to_owned(),
            title: title.into(),
            status,
            detail: detail.into(),
            code: code.into(),
        }
    }

    /// The response body: compact JSON, fields in declaration order.
    pub fn to_json(&self) -> String {
        // Strings and a number: serializing cannot fail.
        serde_json::to_string(self).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn body_is_compact_and_in_declaration_order() -> Result<(), serde_json::Error> {
        let p = Problem::new(
            401,
            "Unauthorized",
            "invalid-credentials",
            "the credentials are not valid",
        );
        assert_eq!(
            p.to_json(),
            r#"{"type":"about:blank","title":"Unauthorized","status":401,"detail":"the credentials are not valid","code":"invalid-credentials"}"#
        );
        let back: Problem = serde_json::from_str(&p.to_json())?;
        assert_eq!(back, p);
        Ok(())
    }
}
