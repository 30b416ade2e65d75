//! # ponte
//!
//! Keeps one PostgreSQL database and many legacy Firebird 2.5 "unit" databases in sync through a
//! transactional outbox, RabbitMQ and per-table transforms compiled to WebAssembly.
//!
//! # Layout
//! - [`model`]: the shared vocabulary (change, statement, value, envelopes); depends on no role.
//! - [`config`]: the typed TOML configuration, validated at load.
//! - [`relay`]: PostgreSQL outbox -> broker (leases per unit, confirms, backoff, janitor).
//! - [`amqp`]: the supervised broker connection, topology, envelope and confirmed publisher.
//! - [`apply`]: broker -> a unit's Firebird (batched transactions, ledger, dead letters).
//! - [`firebird`]: connections, error classes, the host schema and the apply transaction.
//! - [`transform`]: the wasm engine, statement validation, hot reload, authoring CLI.
//! - [`pg`]: PostgreSQL pool and migrations.
//! - [`progress`]: bars on a terminal, JSON lines otherwise, for the long commands.
//! - [`telemetry`]: metrics, logs, probes.
//! - [`daemon`]: `start`/`run` — every role under one shutdown tree.
//! - [`ops`]: operator commands (migrate).
//! - [`capture`]: Firebird -> broker: SYNC_LOG triggers (install/remove) and per-unit publishers.
//! - [`outbox_capture`]: PostgreSQL triggers that write the outbox rows (`ponte outbox install`).
//! - [`periodic`]: periodic sync rounds that write the outbox rows of tables without capture.
//! - [`upstream`]: broker -> PostgreSQL: inbox, conflict policies, hub fan-out (docs/upstream.md).
//! - [`legacy`]: legacy unit schemas: doctor, trigger guard, key generators, table scaffold.
//! - [`lifecycle`]: unit load, verify and repair (docs/lifecycle.md).
//! - [`backoff`]: the shared retry delays.
//! - [`cli`]: the command line (the binary is `cli::main`).

pub mod amqp;
pub mod apply;
pub mod backoff;
pub mod capture;
pub mod cli;
pub mod config;
pub mod daemon;
pub mod demo;
pub mod firebird;
pub mod legacy;
pub mod lifecycle;
pub mod model;
pub mod ops;
pub mod outbox_capture;
pub mod periodic;
pub mod pg;
pub mod progress;
pub mod relay;
pub mod telemetry;
pub mod transform;
pub mod upstream;
