//! Chat attachments on the relay: what is allowed ([`sniff`]: the type from the
//! content), where the bytes live ([`blobs`]: content-addressed files in the data
//! directory) and who may move them ([`grants`]: transfer tokens the hub issues
//! and the transfer drivers redeem). The hub decides rights, limits and quota
//! and records attachments in SQLite; the bytes never pass through the hub
//! thread (`crate::transfer` for QUIC streams, `crate::web::routes` for HTTPS).

pub mod blobs;
pub mod grants;
pub mod sniff;

pub use blobs::{BlobDir, SealError};
pub use grants::{Grant, Grants, NewUpload, Upload};
