//! The privacy operations of the command line, as JSON in and JSON out, so
//! that `lrs erase` and `lrs privacy ...` run the same code whether they
//! open a stopped data directory themselves or ask a running server through
//! its control socket (`lrs-cli/src/control.rs`), like `lrs backup` does.
//!
//! Each operation answers its result and the audit record it makes (the
//! action and what it acted on); whoever runs it writes that record into
//! the audit trail (the server's trail while it runs, else the command
//! line's own record).

use super::{erase, kinds, report, retention};
use crate::error::{AppError, AppResult};
use lrs_store::Store;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

/// One privacy operation with its arguments.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum PrivacyOp {
    /// Erase a person on request (GDPR art. 17).
    Erase { agent: Value, request_id: String },
    /// Everything held about a person (GDPR art. 15/20).
    Access { agent: Value },
    /// The retention periods in force.
    PolicyShow,
    /// Set (`days`) or remove (`None`) a period.
    PolicySet {
        tenant: String,
        class: String,
        days: Option<u32>,
    },
    /// A retention run as of a time (µs), or a dry run listing what is due.
    RetentionRun { as_of_micros: i64, dry_run: bool },
    /// The anonymisation reports: all, one month's (`YYYY-MM`, Dutch time)
    /// or one by id.
    Reports {
        month: Option<String>,
        id: Option<String>,
        /// Also each report as the readable document (`"document"`: Dutch
        /// first, then English).
        #[serde(default)]
        document: bool,
    },
}

/// What an operation did: its answer, and the audit record to write.
#[derive(Debug, Clone)]
pub struct Done {
    pub answer: Value,
    /// `None` for reads that need no record of their own.
    pub audit: Option<(String, String)>,
}

/// Runs `op` on `store` as `who` (`cli:<user>`, a credential key, ...); a
/// long operation (a retention run) tells `progress` how far it is.
pub async fn run(
    store: &Store,
    op: PrivacyOp,
    who: &str,
    progress: Option<retention::ProgressSender>,
) -> AppResult<Done> {
    match op {
        PrivacyOp::Erase { agent, request_id } => {
            let ifi = super::ifi_of_agent(&agent)?;
            super::reconcile(store)?;
            let erased = erase::erase_on_request(store, &ifi, &request_id, who).await?;
            let (_, answer) = report::load(store, &erased.report_id)?
                .ok_or_else(|| AppError::internal("the erasure report is not in the log"))?;
            Ok(Done {
                audit: Some((
                    "privacy.erase".into(),
                    format!(
                        "request {request_id}, report {}",
                        erased.report_id.hyphenated()
                    ),
                )),
                answer,
            })
        }
        PrivacyOp::Access { agent } => {
            let ifi = super::ifi_of_agent(&agent)?;
            super::reconcile(store)?;
            let found = super::access::access(store, &ifi, &agent)?.ok_or_else(|| {
                AppError::bad_request(
                    "$.agent",
                    "privacy.unknown-agent",
                    "no person with this identifier is known here (never seen, or erased)",
                )
            })?;
            Ok(Done {
                answer: found,
                audit: Some(("privacy.access".into(), "one person".into())),
            })
        }
        PrivacyOp::PolicyShow => Ok(Done {
            answer: retention::policies_json(store)?,
            audit: None,
        }),
        PrivacyOp::PolicySet {
            tenant,
            class,
            days,
        } => {
            let kind = kinds::parse_kind(&class).ok_or_else(|| {
                AppError::bad_request(
                    "$.class",
                    "retention.class",
                    "the class is one of people, documents, audit_trail, credential_use, operations_journal, backups",
                )
            })?;
            retention::set_policy(store, &tenant, kind, days, who).await?;
            Ok(Done {
                answer: retention::policies_json(store)?,
                audit: Some((
                    "privacy.retention.policy".into(),
                    format!("{tenant} {} {days:?}", kinds::kind_name(kind)),
                )),
            })
        }
        PrivacyOp::RetentionRun {
            as_of_micros,
            dry_run,
        } => {
            super::reconcile(store)?;
            let outcome =
                retention::run_watched(store, as_of_micros, dry_run, who, progress).await?;
            Ok(Done {
                audit: (!dry_run).then(|| ("privacy.retention.run".into(), outcome.summary())),
                answer: serde_json::to_value(&outcome).map_err(AppError::internal)?,
            })
        }
        PrivacyOp::Reports {
            month,
            id,
            document,
        } => {
            let ids = match id {
                Some(id) => vec![uuid::Uuid::parse_str(&id).map_err(|_| {
                    AppError::bad_request("$.id", "privacy.report-id", "a report id is a UUID")
                })?],
                None => report::ids_of_month(store, month.as_deref())?,
            };
            let mut reports = Vec::new();
            for id in ids {
                let (event, mut value) =
                    report::load(store, &id)?.ok_or(AppError::NotFound("report"))?;
                if document {
                    value["document"] = Value::String(report::markdown(
                        &event,
                        value["log"]["position"].as_u64().unwrap_or_default(),
                        value["log"]["hash"].as_str().unwrap_or_default(),
                    ));
                }
                reports.push(value);
            }
            let answer = json!({ "reports": reports });
            Ok(Done {
                answer,
                audit: None,
            })
        }
    }
}
