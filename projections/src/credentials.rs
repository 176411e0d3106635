//! Credentials by key: the current record of each issued credential.

use crate::{Op, Projection, ReadModel, TreeName};
use lrs_core::Event;

pub const CREDENTIALS: TreeName = "credentials.by_key";

pub struct Credentials;

impl Projection for Credentials {
    fn name(&self) -> &'static str {
        "credentials"
    }

    fn version(&self) -> u32 {
        1
    }

    fn trees(&self) -> &'static [TreeName] {
        &[CREDENTIALS]
    }

    fn apply(&self, _position: u64, event: &Event, _state: &dyn ReadModel, out: &mut Vec<Op>) {
        if let Event::CredentialIssuedV1(issued) = event {
            out.push(Op::Put {
                tree: CREDENTIALS,
                key: issued.key.as_bytes().to_vec(),
                value: postcard::to_stdvec(issued).expect("credentials encode"),
            });
        }
    }
}
