//! Outside services: the delivery vendor (job requests out, signed status callbacks in), the
//! bank partner's virtual accounts (charges out, signed payment notifications in), and the HMAC
//! signatures that webhooks use. Only data shapes and checks live here; the HTTP calls are
//! made by [`crate::runtime`], and what the news means is decided by the conversation core.

pub mod bank;
pub mod signature;
pub mod vendor;
