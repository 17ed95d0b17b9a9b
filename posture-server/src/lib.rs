//! posture-server: the verifier service an organisation runs for its fleet.
//!
//! It enrols devices (single-use enrollment tokens bound to an owner; the TPM ceremony —
//! EK certificate against the configured CAs, credential activation, certification of the
//! device key — or, where allowed, a software key), issues single-use nonces, verifies
//! evidence against each device's enrolled key with posture-core's [`Verifier`], decides
//! with posture-core's [`Policy`], stores state and history, and answers consumers
//! (`GET /v1/devices/{id}/decision`), admins (API, `posture-server` subcommands) and people
//! (the `/ui` dashboard).
//!
//! ## Shape
//! - [`app`] builds the router; [`v1`] holds thin JSON handlers; [`views`] renders the
//!   dashboard; [`error`] maps domain errors to HTTP once.
//! - [`domain`] is what the server does, as plain async functions over a [`Server`].
//! - [`store`] is the one storage interface with its SQLite and PostgreSQL backends.
//! - [`serve`] is the listener (rustls, connection limit).
//! - [`cache`] holds this replica's caches of device verifiers and API tokens.
//! - [`devcerts`] issues device certificates from the device CA and answers forward auth
//!   (`GET /v1/authz`) for proxies.
//! - [`cloudflare`] is the Cloudflare Zero Trust custom device posture endpoint.
//! - [`ssf`] is the Shared Signals (CAEP) transmitter and the Tailscale adapter.
//!
//! ## Threading
//! A multi-threaded tokio runtime; [`Server`] is shared read-only (`Arc`) by every
//! request, its rate limiters behind mutexes. Every piece of state replicas must share
//! (spent nonces and the key that makes them, pending enrollments, tokens, sessions) is
//! in the database, so PostgreSQL replicas are stateless.
//!
//! ## Example
//! ```no_run
//! # async fn example() -> anyhow::Result<()> {
//! use std::sync::Arc;
//! let store = posture_server::store::open("sqlite:///tmp/posture.db").await?;
//! let server = posture_server::Server::new(Arc::from(store), Default::default()).await?;
//! let router = posture_server::app::router(Arc::new(server));
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:8470").await?;
//! axum::serve(listener, router).await?;
//! # Ok(()) }
//! ```
//!
//! [`Verifier`]: posture_core::verify::Verifier
//! [`Policy`]: posture_core::policy::Policy

pub mod app;
pub mod cache;
pub mod cloudflare;
pub mod config;
pub mod devcerts;
pub mod domain;
pub mod error;
pub mod limits;
pub mod nonce;
pub mod secret;
pub mod serve;
pub mod ssf;
pub mod store;
pub mod v1;
pub mod views;

pub use domain::Server;

/// Seconds since the Unix epoch, now.
pub fn now() -> i64 {
    domain::unix(std::time::SystemTime::now())
}
