//! `lrs tenants`, `lrs roles` and `lrs credentials`: the administrative
//! operations of `lrs_app::admin` on a stopped data directory (the bootstrap:
//! the first administrator's credential is issued here).

use crate::data::{open_store, DataArgs};
use clap::Subcommand;
use lrs_app::admin::{self, IssueRequest, RoleGrantRequest};
use lrs_app::insight::course_model::{parse_model, set_model};
use serde_json::Value;

#[derive(Subcommand)]
pub enum TenantsCommand {
    /// Define a tenant (or rename one; its kind never changes).
    Define {
        #[command(flatten)]
        data: DataArgs,
        /// The tenant id credentials name (letters, digits, '-', '_', '.', ':').
        #[arg(long)]
        id: String,
        /// A readable name, e.g. "Bibliotheek Utrecht".
        #[arg(long)]
        name: String,
        /// kb (reads everything), library (reads its learners' statements,
        /// needs --isil) or app (reads what it wrote, needs --appid).
        #[arg(long)]
        kind: String,
        #[arg(long)]
        isil: Option<String>,
        #[arg(long)]
        appid: Option<String>,
    },
    /// List the tenants as JSON lines.
    List {
        #[command(flatten)]
        data: DataArgs,
    },
}

#[derive(Subcommand)]
pub enum RolesCommand {
    /// Define a role: its whole set of permissions (repeat --permission).
    Define {
        #[command(flatten)]
        data: DataArgs,
        #[arg(long)]
        name: String,
        /// admin.tenants, admin.roles, admin.credentials,
        /// admin.credentials.all, audit.read, audit.read.all, figures.read,
        /// progress.read, progress.assign, course_model.read, course_model.write
        #[arg(long = "permission", required = true)]
        permissions: Vec<String>,
    },
    /// Retire a role: credentials holding it lose its permissions.
    Retire {
        #[command(flatten)]
        data: DataArgs,
        #[arg(long)]
        name: String,
    },
    /// List the roles as JSON lines.
    List {
        #[command(flatten)]
        data: DataArgs,
    },
}

#[derive(Subcommand)]
pub enum CredentialsCommand {
    /// Create a Basic credential; prints `KEY SECRET` once. Only a hash of the secret is kept.
    Add {
        #[command(flatten)]
        data: DataArgs,
        /// A name for the credential (shown as the statements' authority).
        #[arg(long)]
        name: String,
        /// xAPI scopes; repeat for several. Default: all, unless roles are
        /// given (then none: an administrator's credential reads no data).
        #[arg(long = "scope")]
        scopes: Vec<String>,
        /// The tenant the credential belongs to.
        #[arg(long, default_value = "default")]
        tenant: String,
        /// Days until the credential expires (1 to 366).
        #[arg(long, default_value_t = 365)]
        expires_in_days: i64,
        /// An exact expiry instead (RFC 3339, within a year).
        #[arg(long)]
        expires_at: Option<String>,
        /// A role to grant, optionally until a time: `ROLE` or
        /// `ROLE@2027-06-30T00:00:00Z`. Repeat for several.
        #[arg(long = "role")]
        roles: Vec<String>,
        /// Only from these addresses or CIDR networks (repeat); default anywhere.
        #[arg(long = "allow-network")]
        allowed_networks: Vec<String>,
    },
    /// Give a credential a new secret; prints the new `KEY SECRET`. The old
    /// secret keeps working for the grace period.
    Rotate {
        #[command(flatten)]
        data: DataArgs,
        #[arg(long)]
        key: String,
        /// How long the old secret keeps working, seconds (default a day).
        #[arg(long, default_value_t = 86_400)]
        grace_secs: i64,
        #[arg(long, default_value_t = 365)]
        expires_in_days: i64,
    },
    /// Revoke a credential at once.
    Revoke {
        #[command(flatten)]
        data: DataArgs,
        #[arg(long)]
        key: String,
        #[arg(long, default_value = "")]
        reason: String,
    },
    /// List the credentials as JSON lines (never a secret or its hash).
    List {
        #[command(flatten)]
        data: DataArgs,
    },
}

#[derive(Subcommand)]
pub enum CourseModelCommand {
    /// Set a tenant's course model from a JSON file (schemas/course-model.json;
    /// docs/progress-and-figures.md). Applies to statements stored after it.
    Set {
        #[command(flatten)]
        data: DataArgs,
        #[arg(long)]
        tenant: String,
        /// The model, JSON.
        file: std::path::PathBuf,
    },
    /// Print a tenant's course model as set (nothing if it uses the defaults).
    Show {
        #[command(flatten)]
        data: DataArgs,
        #[arg(long)]
        tenant: String,
    },
}

pub async fn course_model(command: CourseModelCommand) -> anyhow::Result<()> {
    match command {
        CourseModelCommand::Set { data, tenant, file } => {
            let bytes =
                std::fs::read(&file).map_err(|e| anyhow::anyhow!("{}: {e}", file.display()))?;
            let doc = parse_model(&bytes)?;
            let store = open_store(&data)?;
            if store.tenant(&tenant)?.is_none() {
                store.close().await?;
                anyhow::bail!("no tenant '{tenant}': define it first (lrs tenants define)");
            }
            let by = format!("cli:{}", crate::audit::cli_user());
            let outcome = set_model(&store, &tenant, &doc, &by).await;
            store.close().await?;
            outcome?;
            crate::audit::record_cli(&data.data_dir, Some(&tenant), "course_model.set", &tenant)?;
            println!(
                "course model of {tenant} set ({} declared courses)",
                doc.courses.len()
            );
        }
        CourseModelCommand::Show { data, tenant } => {
            let store = open_store(&data)?;
            let model = store.course_model_json(&tenant);
            store.close().await?;
            if let Some(model) = model? {
                println!("{model}");
            }
        }
    }
    Ok(())
}

fn print_lines(values: impl IntoIterator<Item = Value>) {
    for value in values {
        println!("{value}");
    }
}

pub async fn tenants(command: TenantsCommand) -> anyhow::Result<()> {
    match command {
        TenantsCommand::Define {
            data,
            id,
            name,
            kind,
            isil,
            appid,
        } => {
            let kind = admin::tenant_kind(&kind, isil.as_deref(), appid.as_deref())?;
            let store = open_store(&data)?;
            let outcome = admin::define_tenant(&store, &id, &name, kind).await;
            store.close().await?;
            let tenant = outcome?;
            crate::audit::record_cli(&data.data_dir, Some(&id), "tenant.define", &id)?;
            println!("{}", admin::tenant_json(&tenant));
        }
        TenantsCommand::List { data } => {
            let store = open_store(&data)?;
            let tenants = store.tenants();
            store.close().await?;
            print_lines(tenants?.iter().map(admin::tenant_json));
        }
    }
    Ok(())
}

pub async fn roles(command: RolesCommand) -> anyhow::Result<()> {
    match command {
        RolesCommand::Define {
            data,
            name,
            permissions,
        } => {
            let store = open_store(&data)?;
            let outcome = admin::define_role(&store, &name, permissions).await;
            let role = store.role(&name);
            store.close().await?;
            outcome?;
            crate::audit::record_cli(&data.data_dir, None, "role.define", &name)?;
            if let Some(role) = role? {
                println!("{}", admin::role_json(&role));
            }
        }
        RolesCommand::Retire { data, name } => {
            let store = open_store(&data)?;
            let outcome = admin::define_role(&store, &name, Vec::new()).await;
            store.close().await?;
            outcome?;
            crate::audit::record_cli(&data.data_dir, None, "role.retire", &name)?;
        }
        RolesCommand::List { data } => {
            let store = open_store(&data)?;
            let roles = store.roles();
            store.close().await?;
            print_lines(roles?.iter().map(admin::role_json));
        }
    }
    Ok(())
}

pub async fn credentials(command: CredentialsCommand) -> anyhow::Result<()> {
    match command {
        CredentialsCommand::Add {
            data,
            name,
            scopes,
            tenant,
            expires_in_days,
            expires_at,
            roles,
            allowed_networks,
        } => {
            let scopes = if scopes.is_empty() && roles.is_empty() {
                vec!["all".to_owned()]
            } else {
                scopes
            };
            let roles = roles
                .into_iter()
                .map(|role| match role.split_once('@') {
                    Some((role, until)) => RoleGrantRequest {
                        role: role.to_owned(),
                        until: Some(until.to_owned()),
                    },
                    None => RoleGrantRequest { role, until: None },
                })
                .collect();
            let request = IssueRequest {
                name,
                tenant,
                scopes,
                roles,
                allowed_networks,
                expires_in_days,
                expires_at,
            };
            let store = open_store(&data)?;
            let outcome = admin::issue_credential(&store, request, None).await;
            store.close().await?;
            let (key, secret, record) = outcome?;
            crate::audit::record_cli(
                &data.data_dir,
                Some(&record.tenant),
                "credential.issue",
                &key,
            )?;
            println!("{key} {secret}");
        }
        CredentialsCommand::Rotate {
            data,
            key,
            grace_secs,
            expires_in_days,
        } => {
            let store = open_store(&data)?;
            let outcome = admin::rotate_credential(&store, &key, grace_secs, expires_in_days).await;
            store.close().await?;
            let (secret, record) = outcome?;
            crate::audit::record_cli(
                &data.data_dir,
                Some(&record.tenant),
                "credential.rotate",
                &key,
            )?;
            println!("{key} {secret}");
        }
        CredentialsCommand::Revoke { data, key, reason } => {
            let store = open_store(&data)?;
            let outcome = admin::revoke_credential(&store, &key, &reason).await;
            store.close().await?;
            let record = outcome?;
            crate::audit::record_cli(
                &data.data_dir,
                Some(&record.tenant),
                "credential.revoke",
                &key,
            )?;
            println!("{}", admin::credential_json(&record));
        }
        CredentialsCommand::List { data } => {
            let store = open_store(&data)?;
            let credentials = store.credentials();
            store.close().await?;
            print_lines(credentials?.iter().map(admin::credential_json));
        }
    }
    Ok(())
}
