//! `insights gdpr find|access|erase|verify-certificate`: data-subject
//! requests (GDPR Art. 15–17, 20) from the command line, one module per
//! verb; the subject flags they share are here.
//!
//! Identifiers are given as flags (never logged); phone numbers without a
//! country code are read in `--default-region` (or
//! `INSIGHTS_GDPR_DEFAULT_REGION`). Every command acts as the actor `cli`
//! in the tenant's audit trail.

use clap::Args;
use gdpr_tools::subject::{FindOptions, SubjectIdentifiers};

mod access;
mod erase;
mod find;
mod verify;

pub use access::{AccessArgs, access};
pub use erase::{EraseArgs, erase};
pub use find::{FindArgs, find};
pub use verify::{VerifyArgs, verify_certificate};

/// The actor of every data-subject command in the audit trail.
const ACTOR: &str = "cli";

/// Who the subject is (any mix, at least one).
#[derive(Debug, Args)]
pub struct SubjectArgs {
    /// Tenant name or id.
    #[arg(long)]
    pub tenant: String,
    #[arg(long)]
    pub phone: Option<String>,
    #[arg(long)]
    pub email: Option<String>,
    #[arg(long)]
    pub upn: Option<String>,
    /// A `sip:` or `tel:` URI.
    #[arg(long)]
    pub uri: Option<String>,
    /// Entra object id or directory user id.
    #[arg(long)]
    pub directory_id: Option<String>,
    /// Full name (matched whole, case-insensitively).
    #[arg(long)]
    pub name: Option<String>,
    /// Region (ISO 3166, e.g. DE) for phone numbers without country code.
    #[arg(long, env = "INSIGHTS_GDPR_DEFAULT_REGION")]
    pub default_region: Option<String>,
}

impl SubjectArgs {
    pub(super) fn identifiers(&self) -> SubjectIdentifiers {
        SubjectIdentifiers {
            phone: self.phone.clone(),
            email: self.email.clone(),
            upn: self.upn.clone(),
            uri: self.uri.clone(),
            directory_id: self.directory_id.clone(),
            name: self.name.clone(),
        }
    }
    pub(super) fn options(&self) -> FindOptions {
        FindOptions {
            default_region: self.default_region.clone(),
        }
    }
}
