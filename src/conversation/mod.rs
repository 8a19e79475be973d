//! The channel-neutral conversation core.
//!
//! Each role has an explicit state machine (`BuyerState`, ...) whose variants name what the bot
//! waits for. A step takes the state and one [`Inbound`] and returns the next state, writing
//! replies into the [`Turn`]. Everything a step reads or changes goes through the repository
//! traits below, which the store implements inside the event's one transaction: the step itself
//! does no I/O, takes its clock from the turn, and is deterministic for a given database content.
//! The [`engine`] wires inbox -> step -> one transaction -> outbox.

pub mod buyer;
pub mod engine;
pub mod payload;

use crate::channel::{Button, Envelope, Outbound, UserKey};
use crate::domain::cart::CartLine;
use crate::domain::catalog::{Catalog, Market};
use crate::domain::contact::PhoneNumber;
use crate::domain::order::{CancelRefusal, NewOrder, OrderNumber, OrderSummary};
use crate::domain::quantity::Quantity;
use crate::text::{Key, Lang, Texts};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// Who a conversation is with. Each role has its own state per (market, channel, user).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Role {
    Buyer,
    Trader,
    Courier,
    Admin,
}

impl Role {
    pub fn code(self) -> &'static str {
        match self {
            Role::Buyer => "buyer",
            Role::Trader => "trader",
            Role::Courier => "courier",
            Role::Admin => "admin",
        }
    }
}

/// A failure of the store under a step. The step is rolled back and the user gets an apology.
#[derive(Debug, thiserror::Error)]
#[error("store: {0}")]
pub struct RepoError(#[from] pub Box<dyn std::error::Error + Send + Sync>);

pub type RepoResult<T> = Result<T, RepoError>;

/// What a user keeps between conversations.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Profile {
    pub lang: Option<Lang>,
    pub name: Option<String>,
    pub phone: Option<PhoneNumber>,
    pub address: Option<String>,
}

/// The shopper's data in one market, as the buyer conversation needs it. Implemented by the store
/// inside the current transaction, scoped to one (market, user).
pub trait ShopperRepo {
    fn profile(&mut self) -> RepoResult<Profile>;
    fn set_language(&mut self, lang: Lang) -> RepoResult<()>;
    fn save_contact(
        &mut self,
        name: &str,
        phone: &PhoneNumber,
        address: Option<&str>,
    ) -> RepoResult<()>;
    fn cart(&mut self) -> RepoResult<Vec<CartLine>>;
    /// Sets the quantity of an offer in the cart, adding the line if it is new.
    fn set_cart_line(
        &mut self,
        offer_id: i64,
        quantity: Quantity,
        now: DateTime<Utc>,
    ) -> RepoResult<()>;
    fn remove_cart_line(&mut self, offer_id: i64) -> RepoResult<bool>;
    fn clear_cart(&mut self) -> RepoResult<()>;
    /// Stores the order with one sub-order per stall, returns its number.
    fn place_order(&mut self, order: &NewOrder) -> RepoResult<OrderNumber>;
    /// The shopper's orders in this market, newest first.
    fn orders(&mut self, limit: usize) -> RepoResult<Vec<OrderSummary>>;
    fn cancel_order(
        &mut self,
        number: &OrderNumber,
        now: DateTime<Utc>,
    ) -> RepoResult<Result<(), CancelRefusal>>;
}

/// Everything one step may look at and the replies it produces.
pub struct Turn<'a> {
    pub now: DateTime<Utc>,
    pub market: &'a Market,
    pub catalog: &'a Catalog,
    pub texts: &'a Texts,
    pub user: &'a UserKey,
    pub lang: Lang,
    pub out: Vec<Envelope>,
}

impl Turn<'_> {
    /// The sentence for `key` in the user's language, as this market says it.
    pub fn t(&self, key: Key) -> String {
        self.texts
            .get(&self.market.slug, self.lang, key)
            .to_string()
    }

    /// The sentence with `{name}` placeholders filled.
    pub fn tf(&self, key: Key, args: &[(&str, &dyn std::fmt::Display)]) -> String {
        self.texts.render(&self.market.slug, self.lang, key, args)
    }

    pub fn button(&self, key: Key, payload: impl Into<String>) -> Button {
        Button {
            label: self.t(key),
            payload: payload.into(),
        }
    }

    /// Sends a message to the user of this turn.
    pub fn reply(&mut self, message: Outbound) {
        self.out.push(Envelope {
            market: self.market.slug.clone(),
            to: self.user.clone(),
            message,
        });
    }

    pub fn say(&mut self, key: Key) {
        let text = self.t(key);
        self.reply(Outbound::text(text));
    }
}
