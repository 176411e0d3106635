//! The xAPI resources under `/xapi` (a file per resource; their shape is the
//! xAPI standard's): statements with attachments and signatures, the
//! document resources, activities, agents and about, the alternate request
//! syntax, and the layers every xAPI answer passes through.
//!
//! Never imports another surface (`api/`, `web/`) or the composition root:
//! its handlers take [`XapiState`] and the caller from `security::extract`.

pub mod about;
pub mod activities;
pub mod agents;
pub mod alternate;
pub mod attachments;
pub mod documents;
pub mod middleware;
pub mod state;
pub mod statements;

pub use state::{XapiConfig, XapiState};

use crate::request::routes::{Operation, RouteTable};
use crate::security::extract::AuthState;
use axum::extract::FromRef;
use axum::handler::Handler;

/// The routes below `/xapi`, for a router whose state yields [`XapiState`]
/// and [`AuthState`]; their shape is the xAPI standard's (1.0.3, Part
/// Three), which the OpenAPI document describes as far as it can. Every GET
/// also answers HEAD.
pub fn routes<S>(state: &XapiState) -> RouteTable<S>
where
    XapiState: FromRef<S>,
    AuthState: FromRef<S>,
    S: Clone + Send + Sync + 'static,
{
    let consistent = || {
        axum::middleware::from_fn_with_state(state.store.clone(), middleware::consistent_through)
    };
    const STATEMENTS: &str = "xAPI statements";
    const DOCUMENTS: &str = "xAPI documents";
    const OTHER: &str = "xAPI";
    let statement_query = Operation::new(STATEMENTS, "One statement, or a page of statements matching the query")
        .describe("xAPI 1.0.3 Communication 2.1.3. With statementId or voidedStatementId: that statement; else a StatementResult with `more`. attachments=true answers multipart/mixed.");
    let statement_query = statements::GET_PARAMS
        .iter()
        .fold(statement_query, |op, name| {
            op.query(name, "xAPI 1.0.3 Communication 2.1.3")
        })
        .answers(200, "A statement or a StatementResult")
        .answers_as(
            200,
            "multipart/mixed",
            "With attachments=true: the statements and their attachments",
        )
        .answers_as(404, "", "No such statement");
    let document =
        |kind: &'static str, id: &'static str, activity: bool, agent: bool, registration: bool| {
            let mut op = Operation::new(DOCUMENTS, kind);
            if activity {
                op = op.query_required("activityId", "The activity's IRI");
            }
            if agent {
                op = op.query_required("agent", "The agent, JSON");
            }
            if registration {
                op = op.query("registration", "The registration (UUID)");
            }
            op.query(
                id,
                "The document's id; without it (GET, DELETE of state) every id",
            )
            .query(
                "since",
                "Only ids of documents stored since (GET without the id)",
            )
        };
    let get_document = |op: Operation| {
        op.answers_as(
            200,
            "*/*",
            "The document (its own content type), or the ids as a JSON array",
        )
        .answers_as(404, "", "No such document")
    };
    let put_document = |op: Operation| {
        op.body("*/*", "The document; a JSON object merges on POST")
            .answers_as(204, "", "Stored")
            .answers_as(
                409,
                "",
                "An ETag precondition is needed (If-Match or If-None-Match)",
            )
            .answers_as(412, "", "The ETag precondition failed")
    };
    let delete_document = |op: Operation| op.answers_as(204, "", "Deleted");
    let state_doc = || {
        document(
            "State documents (Communication 2.3)",
            "stateId",
            true,
            true,
            true,
        )
    };
    let activity_profile = || {
        document(
            "Activity Profile documents (Communication 2.7)",
            "profileId",
            true,
            false,
            false,
        )
    };
    let agent_profile = || {
        document(
            "Agent Profile documents (Communication 2.6)",
            "profileId",
            false,
            true,
            false,
        )
    };
    RouteTable::new()
        .get(
            "/statements",
            statements::get_statements.layer(consistent()),
            statement_query,
        )
        .put(
            "/statements",
            statements::put_statement.layer(consistent()),
            Operation::new(STATEMENTS, "Store one statement with the given id")
                .query_required("statementId", "The statement's id (UUID)")
                .json_body("A statement; or multipart/mixed with attachments")
                .answers_as(204, "", "Stored")
                .answers_as(409, "", "A different statement with this id is stored"),
        )
        .post(
            "/statements",
            statements::post_statements.layer(consistent()),
            Operation::new(STATEMENTS, "Store statements")
                .json_body(
                    "A statement or an array of statements; or multipart/mixed with attachments",
                )
                .answers(200, "The ids of the stored statements, in order")
                .answers_as(409, "", "A statement's id is stored with different content"),
        )
        .get(
            "/activities",
            activities::get_activity,
            Operation::new(OTHER, "The Activity object (Communication 2.5)")
                .query_required("activityId", "The activity's IRI")
                .answers(200, "The Activity"),
        )
        .get(
            "/agents",
            agents::get_person,
            Operation::new(OTHER, "The Person object of an agent (Communication 2.6)")
                .query_required("agent", "The agent, JSON")
                .answers(200, "The Person"),
        )
        .get(
            "/activities/state",
            documents::get_state,
            get_document(state_doc()),
        )
        .put(
            "/activities/state",
            documents::put_state,
            put_document(state_doc()),
        )
        .post(
            "/activities/state",
            documents::post_state,
            put_document(state_doc()),
        )
        .delete(
            "/activities/state",
            documents::delete_state,
            delete_document(state_doc()),
        )
        .get(
            "/activities/profile",
            documents::get_activity_profile,
            get_document(activity_profile()),
        )
        .put(
            "/activities/profile",
            documents::put_activity_profile,
            put_document(activity_profile()),
        )
        .post(
            "/activities/profile",
            documents::post_activity_profile,
            put_document(activity_profile()),
        )
        .delete(
            "/activities/profile",
            documents::delete_activity_profile,
            delete_document(activity_profile()),
        )
        .get(
            "/agents/profile",
            documents::get_agent_profile,
            get_document(agent_profile()),
        )
        .put(
            "/agents/profile",
            documents::put_agent_profile,
            put_document(agent_profile()),
        )
        .post(
            "/agents/profile",
            documents::post_agent_profile,
            put_document(agent_profile()),
        )
        .delete(
            "/agents/profile",
            documents::delete_agent_profile,
            delete_document(agent_profile()),
        )
        .get(
            "/about",
            about::get_about,
            Operation::new(
                OTHER,
                "The xAPI versions this LRS speaks (Communication 2.8)",
            )
            .public()
            .answers(200, "`{\"version\": [...]}`"),
        )
}
