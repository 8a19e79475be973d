//! Pure domain types and rules: money, quantities, the catalogue, carts, orders, slots,
//! contacts. Nothing here does I/O (besides reading seed files) or knows about chat platforms.

pub mod amount;
pub mod broadcast;
pub mod cart;
pub mod catalog;
pub mod contact;
pub mod delivery;
pub mod free_text;
pub mod invite;
pub mod money;
pub mod near;
pub mod order;
pub mod payment;
pub mod qris;
pub mod quantity;
pub mod report;
pub mod slot;
