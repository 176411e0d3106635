//! The xAPI resources, a file each.

pub mod about;
pub mod activities;
pub mod agents;
pub mod analytics;
pub mod documents;
pub mod insight;
pub mod statements;
