//! `insights admin user add|list`: local accounts of a tenant, or
//! platform operators (no `--tenant`).
//!
//! The initial password is read from standard input (its first line),
//! never from an argument (arguments are visible to other users in the
//! process list and end up in shell history). It works once: the first
//! sign-in replaces it with the user's own and enrols TOTP in the user's
//! authenticator app when the account's permissions reveal content (or
//! its role is in `auth.mfa_roles`), so whoever creates the account never
//! sees the seed; ten single-use recovery codes are shown then.

use std::io::BufRead;

use anyhow::Context;
use clap::Subcommand;
use insights_api::auth::accounts::{AddUserError, NewUser, add_user};
use insights_core::config::Settings;
use insights_core::domain::{Realm, Role, SecurityProfileId, UserId};
use zeroize::Zeroizing;

use crate::cli::lookup::find_tenant;
use crate::platform::Platform;

/// `insights admin user ...`.
#[derive(Debug, Subcommand)]
pub enum UserCommand {
    /// Create a local account; the password is read from standard input.
    Add {
        /// Tenant name or id. Omit it (only) for --role platform-operator.
        #[arg(long)]
        tenant: Option<String>,
        /// Sign-in email (unique per tenant, case-insensitive).
        #[arg(long)]
        email: String,
        /// tenant-admin, compliance-officer, supervisor, user, dpo or
        /// platform-operator.
        #[arg(long, value_parser = parse_role)]
        role: Role,
        /// A security profile of the tenant replacing the role's defaults.
        #[arg(long, value_name = "UUID")]
        security_profile: Option<SecurityProfileId>,
        /// The directory user this account is (role `user` sees only
        /// recordings this user took part in).
        #[arg(long, value_name = "UUID")]
        directory_user: Option<UserId>,
    },
    /// List the local accounts of a tenant (or the platform operators).
    List {
        /// Tenant name or id; omit it to list platform operators.
        #[arg(long)]
        tenant: Option<String>,
        /// One JSON object per line instead of a table.
        #[arg(long)]
        json: bool,
    },
}

fn parse_role(s: &str) -> Result<Role, String> {
    s.parse::<Role>().map_err(|_| {
        let all: Vec<&str> = Role::ALL.iter().map(Role::as_str).collect();
        format!("unknown role `{s}`; one of {}", all.join(", "))
    })
}

/// Runs `insights admin user ...`.
pub async fn run(command: UserCommand, settings: &Settings) -> anyhow::Result<()> {
    let platform = Platform::open(settings).await?;
    match command {
        UserCommand::Add {
            tenant,
            email,
            role,
            security_profile,
            directory_user,
        } => {
            let tenant = match &tenant {
                Some(t) => Some(find_tenant(platform.store.as_ref(), t).await?),
                None => None,
            };
            let password = read_password()?;
            let new = NewUser {
                tenant: tenant.as_ref().map(|t| t.id),
                email,
                role,
                security_profile_id: security_profile,
                directory_user_id: directory_user,
            };
            let created = match add_user(&platform.store, new, &password, "cli").await {
                Ok(c) => c,
                Err(AddUserError::Store(e)) => return Err(e).context("creating the account"),
                Err(e) => anyhow::bail!("{e}"),
            };
            let a = &created.account;
            match &tenant {
                Some(t) => println!("created account {} ({}) in tenant {}", a.id, a.role, t.name),
                None => println!("created platform operator account {}", a.id),
            }
            println!(
                "first sign-in: the user signs in with this password, chooses their own, \
                 enrols TOTP in their authenticator app and keeps ten recovery codes"
            );
        }
        UserCommand::List { tenant, json } => {
            let realm = match &tenant {
                Some(t) => Realm::Tenant(find_tenant(platform.store.as_ref(), t).await?.id),
                None => Realm::Platform,
            };
            let accounts = platform.store.list_accounts(realm).await?;
            if json {
                for a in &accounts {
                    println!(
                        "{}",
                        serde_json::json!({
                            "id": a.id,
                            "tenant_id": a.tenant_id,
                            "email": a.email,
                            "role": a.role,
                            "security_profile_id": a.security_profile_id,
                            "directory_user_id": a.directory_user_id,
                            "totp": a.totp.is_some(),
                            "first_sign_in_pending": a.must_change_password,
                            "active": a.active,
                            "locked_until": a.locked_until,
                            "created_at": a.created_at,
                            "last_login_at": a.last_login_at,
                        })
                    );
                }
            } else {
                println!(
                    "{:<32} {:<36} {:<18} {:<4} {:<6} LAST LOGIN",
                    "EMAIL", "ID", "ROLE", "MFA", "ACTIVE"
                );
                for a in &accounts {
                    println!(
                        "{:<32} {:<36} {:<18} {:<4} {:<6} {}",
                        a.email,
                        a.id,
                        a.role,
                        if a.totp.is_some() { "yes" } else { "no" },
                        if a.active { "yes" } else { "no" },
                        a.last_login_at
                            .map(|t| t.format("%Y-%m-%d %H:%M:%SZ").to_string())
                            .unwrap_or_else(|| "-".into())
                    );
                }
            }
        }
    }
    Ok(())
}

/// The first line of standard input, without its line ending.
fn read_password() -> anyhow::Result<Zeroizing<String>> {
    let mut line = Zeroizing::new(String::new());
    std::io::stdin()
        .lock()
        .read_line(&mut line)
        .context("reading the password from standard input")?;
    let trimmed = Zeroizing::new(line.trim_end_matches(['\r', '\n']).to_owned());
    if trimmed.is_empty() {
        anyhow::bail!("no password on standard input (pipe it in, e.g. from a password manager)");
    }
    Ok(trimmed)
}
