//! Black-box tests of the `lrs` server: a real process on a real socket with a
//! temporary data directory, spoken to only over HTTP and the command line.

mod access;
mod analytics;
mod analytics_isolation;
mod analytics_s3;
mod api_design;
mod audit;
mod backup;
mod common;
mod data_out;
mod datatheek;
mod datatheek_schedule;
mod documents;
mod durability;
mod end_of_contract;
mod figures;
mod fuzz_run;
mod handover;
mod hostile_input;
mod insight;
mod limits;
mod monitoring;
mod oauth;
mod privacy;
mod privacy_erasure;
mod privacy_online;
mod privacy_retention;
mod protocol;
mod resources_activities_agents;
mod signatures;
mod statements_query;
mod statements_write;
mod tenancy;
mod transport;
mod voiding;
mod web;
