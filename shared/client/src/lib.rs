//! The ClinicMeet client engine, used by the desktop app, the headless
//! `clinicmeet-cli` (crate `shared/cli`) and tests.
//!
//! * [`state`]: the sans-IO session state machine (requests in flight, meeting
//!   state, chat resync, outbox), driven with explicit `now`.
//! * [`session`]: the tokio driver over quinn and the [`Session`] handle.
//! * [`media_link`]: the media engine's datagram link over the session's connection.
//! * [`media`]: the media engine (publish, subscribe, decode, playout).
//! * [`store`]: the local SQLite store (credentials, meetings, chat, outbox, consultations).
//! * [`tls`]: certificate pinning (`sha256/…` of the relay's public key) or web PKI roots.
//! * [`backoff`]: reconnect delays with jitter.
//! * [`ics`]: a scheduled meeting as an iCalendar invitation (`.ics`).
//! * [`event`]: the typed events handed to the application (JSON with an `"event"` field).
//! * [`attachments`]: attachment uploads and downloads on QUIC streams, kept in the local store.

pub mod attachments;
pub mod backoff;
pub mod error;
pub mod event;
pub mod ics;
pub mod media;
pub mod media_link;
pub mod session;
pub mod state;
pub mod store;
pub mod tls;

pub use error::{ClientError, Result};
pub use event::{ClientEvent, ConnectionState, Entered, PendingChat};
pub use session::{Session, SessionConfig};
pub use store::Store;
