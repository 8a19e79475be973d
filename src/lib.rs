//! Pasar Online: chatbot ordering for the traditional markets (pasar rakyat) of Kota Malang.
//!
//! Every chat platform is only a pipe. A channel-neutral conversation core decides everything:
//!
//! ```text
//!  terminal chat        ─┐                                      ┌─> terminal
//!  Telegram (teloxide)  ─┼─> inbox ─> engine: step(state, in) ──┼─> Telegram sender (rate limited)
//!  WhatsApp (webhook)   ─┘   (SQLite)  one transaction          └─> WhatsApp sender (rate limited)
//!                                      = state + orders + outbox
//! ```
//!
//! - [`channel`]: platform-neutral `Inbound`/`Outbound` types and the channels: terminal,
//!   Telegram (updates in, Bot API calls out), WhatsApp (signed webhooks in, Graph API out).
//! - [`conversation`]: per-role state machines and the engine (inbox -> step -> one transaction).
//! - [`domain`]: money, quantities, catalogue, cart, orders, slots: pure types and rules.
//! - [`store`]: the only place with SQL (rusqlite): migrations, inbox, outbox, repositories.
//! - [`integration`]: outside services (the delivery vendor's jobs and signed callbacks).
//! - [`text`]: dialogue catalogs (`dialogues/*.toml`), looked up by typed keys.
//! - [`config`], [`runtime`]: configuration and wiring; `pasar run` serves every market's
//!   Telegram bot and WhatsApp number from one process (pollers, one HTTP server, senders,
//!   timers, graceful shutdown, `/healthz` and `/metrics`).
//! - [`loadtest`]: load and faults on `pasar run` through fake platform APIs (`pasar loadtest`:
//!   the morning rush of whole orders with shoppers on both channels, traders and couriers, and
//!   the same killed and restarted or with Telegram down; idle, replayed updates, the last unit
//!   raced for, abuse; the Telegram benchmark).
//! - [`fakes`]: fake Telegram Bot API and WhatsApp Graph API on 127.0.0.1, for `pasar loadtest`
//!   and the tests.
//! - [`logging`]: `tracing` output (text or JSON) with tokens and phone numbers redacted.

pub mod bench;
pub mod channel;
pub mod config;
pub mod conversation;
pub mod domain;
pub mod fakes;
pub mod integration;
pub mod loadtest;
pub mod logging;
pub mod runtime;
pub mod secret;
pub mod store;
pub mod text;
