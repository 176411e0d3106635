//! The xAPI resources, a file each.

pub mod about;
pub mod statements;
