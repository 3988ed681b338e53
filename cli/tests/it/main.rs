//! plat's integration tests: the real `plat` binary against temporary workspaces whose services
//! are real git repositories (bare repositories on file:// URLs, made here with the git CLI).

mod build_up;
mod checkouts;
mod cli;
mod context;
mod contract;
mod deploy;
mod docker;
mod graph;
mod migrate;
mod migrate_apply;
mod migrate_branches;
mod migrate_commands;
mod migrate_concurrency;
mod migrate_container;
mod migrate_formats;
mod migrate_import;
mod migrate_limits;
mod migrate_recovery;
mod migrate_safety;
mod migrate_stop;
mod migrate_tls;
mod proto_checks;
mod proto_corpus;
mod proto_gen;
mod ready_image;
mod status;
mod sync;
mod test_services;
mod validate;
