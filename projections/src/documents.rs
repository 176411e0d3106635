//! Current documents (State, Activity Profile, Agent Profile): for each
//! document, the log position of its latest write, its ETag and time.
//!
//! Layout: `documents.by_key`: `context(8+1+16+16+17) document_id` ->
//! postcard [`DocumentRef`]. The context prefix is fixed-size, so every
//! document of a context is one prefix scan.
//!
//! `documents.by_agent`: `agent token(16) document key` -> (): the documents
//! of a person, so that erasing them (`PersonErasedV1`) drops their
//! documents from the read model (the content in the log is sealed under
//! their destroyed key).

use crate::{Op, Projection, ReadModel, TreeName};
use lrs_core::events::{DocumentContextV1, DocumentResourceV1};
use lrs_core::Event;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

pub const BY_KEY: TreeName = "documents.by_key";
pub const BY_AGENT: TreeName = "documents.by_agent";

/// What the read model keeps of a document; the content stays in the log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DocumentRef {
    pub position: u64,
    pub etag: String,
    pub updated_micros: i64,
    pub content_type: String,
}

/// The fixed-size key prefix of a document context.
pub fn context_prefix(context: &DocumentContextV1) -> Vec<u8> {
    let mut key = Vec::with_capacity(58);
    key.extend_from_slice(&Sha256::digest(context.tenant.as_bytes())[..8]);
    key.push(match context.resource {
        DocumentResourceV1::State => b's',
        DocumentResourceV1::ActivityProfile => b'p',
        DocumentResourceV1::AgentProfile => b'g',
    });
    match &context.activity_id {
        Some(id) => key.extend_from_slice(&Sha256::digest(id.as_bytes())[..16]),
        None => key.extend_from_slice(&[0; 16]),
    }
    key.extend_from_slice(&context.agent.map(|t| t.0).unwrap_or([0; 16]));
    match context.registration {
        Some(registration) => {
            key.push(1);
            key.extend_from_slice(registration.as_bytes());
        }
        None => key.extend_from_slice(&[0; 17]),
    }
    key
}

pub fn document_key(context: &DocumentContextV1, document_id: &str) -> Vec<u8> {
    let mut key = context_prefix(context);
    key.extend_from_slice(document_id.as_bytes());
    key
}

/// The document id of a `by_key` key.
pub fn document_id_of(key: &[u8]) -> String {
    String::from_utf8_lossy(&key[58.min(key.len())..]).into_owned()
}

pub struct Documents;

impl Projection for Documents {
    fn name(&self) -> &'static str {
        "documents"
    }

    fn version(&self) -> u32 {
        2
    }

    fn trees(&self) -> &'static [TreeName] {
        &[BY_KEY, BY_AGENT]
    }

    fn apply(&self, position: u64, event: &Event, state: &dyn ReadModel, out: &mut Vec<Op>) {
        match event {
            Event::DocumentWrittenV1(written) => {
                let key = document_key(&written.context, &written.document_id);
                if let Some(agent) = &written.context.agent {
                    out.push(Op::Put {
                        tree: BY_AGENT,
                        key: [&agent.0[..], &key].concat(),
                        value: Vec::new(),
                    });
                }
                out.push(Op::Put {
                    tree: BY_KEY,
                    key,
                    value: postcard::to_stdvec(&DocumentRef {
                        position,
                        etag: written.etag.clone(),
                        updated_micros: written.written_micros,
                        content_type: written.content_type.clone(),
                    })
                    .expect("document refs encode"),
                });
            }
            Event::DocumentsDeletedV1(deleted) => {
                for id in &deleted.document_ids {
                    let key = document_key(&deleted.context, id);
                    if let Some(agent) = &deleted.context.agent {
                        out.push(Op::Delete {
                            tree: BY_AGENT,
                            key: [&agent.0[..], &key].concat(),
                        });
                    }
                    out.push(Op::Delete { tree: BY_KEY, key });
                }
            }
            // The person is gone: so are their documents.
            Event::PersonErasedV1(erased) => {
                for (key, _) in state.scan_prefix(BY_AGENT, &erased.token.0) {
                    out.push(Op::Delete {
                        tree: BY_KEY,
                        key: key[16..].to_vec(),
                    });
                    out.push(Op::Delete {
                        tree: BY_AGENT,
                        key,
                    });
                }
            }
            _ => {}
        }
    }
}
