//! `lrs staff add|list|close|reset`: local accounts for the staff web pages
//! (`lrs_app::staff`), on a stopped data directory like `lrs credentials`.
//!
//! `add` and `reset` print the password (generated unless one is read from
//! standard input) and the TOTP secret with its `otpauth://` URI, once: the
//! store keeps only the password's argon2id hash and the secret sealed
//! under the staff member's own key.

use crate::data::{open_store, DataArgs};
use anyhow::Context;
use clap::Subcommand;
use lrs_app::staff::{self as accounts, AccountSpec, PasswordPolicy};
use lrs_core::events::RoleGrantV1;

#[derive(clap::Args, Debug, Clone)]
pub struct PasswordArgs {
    /// Read the password from standard input (one line) instead of
    /// generating one.
    #[arg(long)]
    password_stdin: bool,
    /// The shortest password accepted (req. 7.28).
    #[arg(long, env = "LRS_PASSWORD_MIN_LENGTH", default_value_t = 12)]
    min_password_length: usize,
    /// The issuer an authenticator app shows next to the code.
    #[arg(long, env = "LRS_TOTP_ISSUER", default_value = "KB leerregistraties")]
    totp_issuer: String,
}

#[derive(Subcommand)]
pub enum StaffCommand {
    /// Create a staff account; prints its password and TOTP enrolment once.
    Add {
        #[command(flatten)]
        data: DataArgs,
        /// The tenant the staff member works for (the KB or a library).
        #[arg(long)]
        tenant: String,
        /// The user name to log in with (letters, digits, . _ - @).
        #[arg(long)]
        username: String,
        /// The name the pages show.
        #[arg(long)]
        display_name: String,
        /// A role to grant, optionally until a time: `ROLE` or
        /// `ROLE@2027-06-30T00:00:00Z`. Repeat for several.
        #[arg(long = "role", required = true)]
        roles: Vec<String>,
        #[command(flatten)]
        password: PasswordArgs,
    },
    /// List the staff accounts as JSON lines (never a password or secret).
    List {
        #[command(flatten)]
        data: DataArgs,
    },
    /// Close an account: it can no longer log in.
    Close {
        #[command(flatten)]
        data: DataArgs,
        #[arg(long)]
        username: String,
    },
    /// A new password (and with --new-totp a new TOTP secret) for an
    /// account; opens a closed one again. --role replaces its roles.
    Reset {
        #[command(flatten)]
        data: DataArgs,
        #[arg(long)]
        username: String,
        /// Also a new TOTP secret (a lost phone).
        #[arg(long)]
        new_totp: bool,
        /// Replace the roles (repeat); default: keep them.
        #[arg(long = "role")]
        roles: Vec<String>,
        #[command(flatten)]
        password: PasswordArgs,
    },
}

fn grants(roles: &[String]) -> anyhow::Result<Vec<RoleGrantV1>> {
    let now = lrs_core::clock::now_micros();
    roles
        .iter()
        .map(|text| {
            let (role, until) = match text.split_once('@') {
                Some((role, until)) => (role, Some(until)),
                None => (text.as_str(), None),
            };
            let until_micros = until
                .map(|until| {
                    let micros = chrono::DateTime::parse_from_rfc3339(until)
                        .with_context(|| {
                            format!("--role {text}: {until:?} is not an RFC 3339 time")
                        })?
                        .timestamp_micros();
                    anyhow::ensure!(
                        micros > now,
                        "--role {text}: the grant's end lies in the past"
                    );
                    Ok(micros)
                })
                .transpose()?;
            Ok(RoleGrantV1 {
                role: role.to_owned(),
                until_micros,
            })
        })
        .collect()
}

fn password_of(args: &PasswordArgs) -> anyhow::Result<(String, bool)> {
    if args.password_stdin {
        let mut line = String::new();
        std::io::stdin()
            .read_line(&mut line)
            .context("reading the password from standard input")?;
        let password = line.trim_end_matches(['\r', '\n']).to_owned();
        Ok((password, false))
    } else {
        Ok((accounts::generate_password(), true))
    }
}

fn who() -> String {
    let user = std::env::var("USER")
        .or_else(|_| std::env::var("LOGNAME"))
        .unwrap_or_else(|_| "unknown".into());
    format!("cli:{user}")
}

fn print_enrolment(
    username: &str,
    token: &lrs_core::Token,
    password: Option<&str>,
    totp_secret: Option<&str>,
    issuer: &str,
) -> anyhow::Result<()> {
    println!("username: {username}");
    println!("account: staff:{}", token.to_hex());
    if let Some(password) = password {
        println!("password: {password}");
    }
    if let Some(secret) = totp_secret {
        println!("totp secret: {secret}");
        let uri = accounts::otpauth_uri(issuer, username, secret).map_err(anyhow::Error::msg)?;
        println!("otpauth uri: {uri}");
    }
    Ok(())
}

pub async fn staff(command: StaffCommand) -> anyhow::Result<()> {
    match command {
        StaffCommand::Add {
            data,
            tenant,
            username,
            display_name,
            roles,
            password,
        } => {
            let roles = grants(&roles)?;
            let (secret, generated) = password_of(&password)?;
            let username = accounts::normalise_username(&username).map_err(anyhow::Error::msg)?;
            let store = open_store(&data)?;
            let outcome = async {
                if let Some(token) = accounts::token_of(&store, &username) {
                    if store.staff_account(&token)?.is_some() {
                        anyhow::bail!("a staff account '{username}' exists: use `lrs staff reset`");
                    }
                }
                accounts::define(
                    &store,
                    AccountSpec {
                        tenant: tenant.clone(),
                        username: username.clone(),
                        display_name,
                        roles,
                        password: secret.clone(),
                        totp_secret: None,
                        by: who(),
                    },
                    PasswordPolicy {
                        min_length: password.min_password_length,
                    },
                )
                .await
                .map_err(anyhow::Error::from)
            }
            .await;
            store.close().await?;
            let (token, totp_secret) = outcome?;
            crate::audit::record_cli(
                &data.data_dir,
                Some(&tenant),
                "staff.add",
                &format!("staff:{}", token.to_hex()),
            )?;
            print_enrolment(
                &username,
                &token,
                generated.then_some(secret.as_str()),
                Some(&totp_secret),
                &password.totp_issuer,
            )?;
        }
        StaffCommand::List { data } => {
            let store = open_store(&data)?;
            let listed = (|| -> anyhow::Result<Vec<serde_json::Value>> {
                let mut lines = Vec::new();
                for record in store.staff_accounts()? {
                    let opened = accounts::open(&store, &record.token)?;
                    let time = |micros: i64| {
                        chrono::DateTime::from_timestamp_micros(micros)
                            .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
                    };
                    lines.push(serde_json::json!({
                        "account": format!("staff:{}", record.token.to_hex()),
                        "username": opened.as_ref().map(|a| a.secrets.username.clone()),
                        "display_name": opened.as_ref().map(|a| a.secrets.display_name.clone()),
                        "erased": opened.is_none(),
                        "tenant": record.tenant,
                        "roles": record.roles.iter().map(|g| serde_json::json!({
                            "role": g.role, "until": g.until_micros.and_then(time)
                        })).collect::<Vec<_>>(),
                        "created": time(record.created_micros),
                        "defined": time(record.defined_micros),
                        "closed": record.closed.as_ref().and_then(|c| time(c.closed_micros)),
                    }));
                }
                Ok(lines)
            })();
            store.close().await?;
            for line in listed? {
                println!("{line}");
            }
        }
        StaffCommand::Close { data, username } => {
            let store = open_store(&data)?;
            let outcome = async {
                let token = accounts::token_of(&store, &username)
                    .filter(|t| store.staff_account(t).ok().flatten().is_some())
                    .with_context(|| format!("no staff account '{username}'"))?;
                accounts::close(&store, token, &who()).await?;
                Ok::<_, anyhow::Error>(token)
            }
            .await;
            store.close().await?;
            let token = outcome?;
            crate::audit::record_cli(
                &data.data_dir,
                None,
                "staff.close",
                &format!("staff:{}", token.to_hex()),
            )?;
            println!("closed staff:{}", token.to_hex());
        }
        StaffCommand::Reset {
            data,
            username,
            new_totp,
            roles,
            password,
        } => {
            let roles = if roles.is_empty() {
                None
            } else {
                Some(grants(&roles)?)
            };
            let (secret, generated) = password_of(&password)?;
            let store = open_store(&data)?;
            let outcome = async {
                let token = accounts::token_of(&store, &username)
                    .with_context(|| format!("no staff account '{username}'"))?;
                let account = accounts::open(&store, &token)?
                    .with_context(|| format!("no staff account '{username}' (or it was erased)"))?;
                let (token, totp_secret) = accounts::define(
                    &store,
                    AccountSpec {
                        tenant: account.record.tenant.clone(),
                        username: account.secrets.username.clone(),
                        display_name: account.secrets.display_name.clone(),
                        roles: roles.unwrap_or(account.record.roles.clone()),
                        password: secret.clone(),
                        totp_secret: (!new_totp).then(|| account.secrets.totp_secret.clone()),
                        by: who(),
                    },
                    PasswordPolicy {
                        min_length: password.min_password_length,
                    },
                )
                .await?;
                Ok::<_, anyhow::Error>((
                    token,
                    totp_secret,
                    account.secrets.username,
                    account.record.tenant,
                ))
            }
            .await;
            store.close().await?;
            let (token, totp_secret, username, tenant) = outcome?;
            crate::audit::record_cli(
                &data.data_dir,
                Some(&tenant),
                "staff.reset",
                &format!("staff:{}", token.to_hex()),
            )?;
            print_enrolment(
                &username,
                &token,
                generated.then_some(secret.as_str()),
                new_totp.then_some(totp_secret.as_str()),
                &password.totp_issuer,
            )?;
        }
    }
    Ok(())
}
