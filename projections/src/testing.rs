//! Test helpers shared by the projections' unit tests.

use crate::{ReadModel, TreeName};
use std::collections::BTreeMap;

/// A read model in memory: what a fold reads in a unit test.
#[derive(Default)]
pub(crate) struct Memory(pub(crate) BTreeMap<(TreeName, Vec<u8>), Vec<u8>>);

impl ReadModel for Memory {
    fn get(&self, tree: TreeName, key: &[u8]) -> Option<Vec<u8>> {
        self.0.get(&(tree, key.to_vec())).cloned()
    }

    fn scan_prefix(&self, tree: TreeName, prefix: &[u8]) -> Vec<(Vec<u8>, Vec<u8>)> {
        self.0
            .iter()
            .filter(|((t, k), _)| *t == tree && k.starts_with(prefix))
            .map(|((_, k), v)| (k.clone(), v.clone()))
            .collect()
    }
}
