//! ClinicMeet relay: QUIC signaling, meetings and chat, with SQLite storage.
//!
//! Layers, from pure to I/O:
//! * [`room`]: one meeting's state machine (participants, roles, waiting room,
//!   host handover, chat sequencing), sans-IO with explicit `now`.
//! * [`limits`]: token buckets, the per-bucket access-code guard and the
//!   enrollment limiter, sans-IO.
//! * [`audit_batch`]: failures coalesced into one audit row per source and window, sans-IO.
//! * [`hub`]: the signaling service over all meetings: sessions, requests,
//!   replies and events, backed by [`store`].
//! * [`tracks`]: published tracks and subscriptions, owned by the hub, sans-IO.
//! * [`store`]: SQLite (WAL, migrations): the directory, chat and audit logs.
//! * [`server`], [`http`]: quinn endpoint and the operators' HTTP port.
//! * [`admission`]: connections per source (IPv4 address, IPv6 /64), sans-IO;
//!   [`proxy`]: whose `X-Forwarded-For` is believed, sans-IO;
//!   [`accept_backoff`]: TCP accept loops pause on `EMFILE` instead of spinning.
//! * [`hub_queue`], [`outbox`]: the bounded queues into the hub thread and out
//!   to each connection.
//! * [`run`]: the whole relay, embeddable: [`Relay::new`] → [`Relay::start`] → [`RelayHandle`].
//! * [`cert`], [`keys`], [`config`]: identity, secrets and configuration.

pub mod accept_backoff;
pub mod admission;
pub mod attachments;
pub mod audit_batch;
pub mod cc;
pub mod cert;
pub mod config;
pub mod error;
pub mod forward;
pub mod http;
pub mod http1;
pub mod hub;
pub mod hub_queue;
pub mod keys;
pub mod limits;
pub mod metrics;
pub mod outbox;
pub mod proxy;
pub mod room;
pub mod run;
pub mod server;
pub mod sfu;
pub mod store;
pub mod tracks;
pub mod transfer;
#[cfg(feature = "browser-guests")]
pub mod web;

pub use clinicmeet_protocol::TrackId;
pub use error::RelayError;
pub use run::{identity, Relay, RelayHandle};
