//! The channel-neutral conversation core.
//!
//! Each role has an explicit state machine (`BuyerState`, ...) whose variants name what the bot
//! waits for. A step takes the state and one [`Inbound`](crate::channel::Inbound) and returns the next state, writing
//! replies into the [`Turn`]. Everything a step reads or changes goes through the repository
//! traits below, which the store implements inside the event's one transaction: the step itself
//! does no I/O, takes its clock from the turn, and is deterministic for a given database content.
//! The [`engine`] wires inbox -> step -> one transaction -> outbox.

pub mod admin;
pub mod buyer;
pub mod courier;
pub mod delivery;
pub mod engine;
pub mod flood;
pub mod lifecycle;
pub mod payload;
pub mod payment;
pub mod report;
pub mod review;
pub mod trader;
pub mod typed_order;

use crate::channel::{Button, Envelope, Outbound, UserKey};
use crate::config::Policy;
use crate::domain::cart::CartLine;
use crate::domain::catalog::{Catalog, Market};
use crate::domain::contact::PhoneNumber;
use crate::domain::delivery::{Candidate, Courier, CourierProfile, Delivery, DeliveryEvent, RatingTarget};
use crate::domain::money::Rupiah;
use crate::domain::order::{
    AuditEntry, CancelRefusal, NewOrder, Order, OrderLine, OrderNumber, OrderStatus, OrderSummary, SubOrderStatus,
};
use crate::domain::payment::{LedgerEntry, NewPayment, Payment, PaymentStatus};
use crate::domain::quantity::Quantity;
use crate::text::{Key, Lang, Texts};
use chrono::{DateTime, NaiveDate, Utc};
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
    fn save_contact(&mut self, name: &str, phone: &PhoneNumber, address: Option<&str>) -> RepoResult<()>;
    fn cart(&mut self) -> RepoResult<Vec<CartLine>>;
    /// Sets the quantity of an offer in the cart, adding the line if it is new.
    /// Puts a line in the cart (replacing the offer's line there), with how it was asked for.
    fn set_cart_line(
        &mut self,
        offer_id: i64,
        quantity: Quantity,
        ordered_by: Option<crate::domain::amount::OrderedBy>,
        now: DateTime<Utc>,
    ) -> RepoResult<()>;
    fn remove_cart_line(&mut self, offer_id: i64) -> RepoResult<bool>;
    fn clear_cart(&mut self) -> RepoResult<()>;
    /// Stores the order with one sub-order per stall and reserves its stock, or says why not:
    /// nothing is written when it is refused.
    fn place_order(&mut self, order: &NewOrder) -> RepoResult<Result<PlacedOrder, PlaceRefusal>>;
    /// The shopper's orders in this market, newest first.
    fn orders(&mut self, limit: usize) -> RepoResult<Vec<OrderSummary>>;
    /// How many of this market's orders (anyone's, not cancelled or rejected) are to be
    /// delivered in each of these slots, in their order (one query for them all).
    fn slot_orders(&mut self, slots: &[crate::domain::slot::SlotChoice]) -> RepoResult<Vec<u32>>;
    /// Cancels the shopper's own order if no trader has confirmed any of it; returns its id.
    fn cancel_order(&mut self, number: &OrderNumber, now: DateTime<Utc>) -> RepoResult<Result<i64, CancelRefusal>>;
    /// Whether the shopper agreed to this market's news (`None`: they never said).
    fn subscription(&mut self) -> RepoResult<Option<bool>>;
    /// The shopper opts in to this market's news (`/langganan`) or out (`/berhenti`).
    fn set_subscription(&mut self, on: bool) -> RepoResult<()>;
}

/// A stored order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlacedOrder {
    pub id: i64,
    pub number: OrderNumber,
}

/// Why an order could not be placed as shown.
#[derive(Debug, Clone, PartialEq)]
pub enum PlaceRefusal {
    /// A stall has less left than the line wants.
    OutOfStock { offer_id: i64, available: u64 },
    /// A price changed since the summary was shown.
    PriceChanged,
}

/// A market's couriers and deliveries, inside the current transaction. Implemented by the
/// store, scoped to one market.
pub trait DeliveryRepo {
    /// Stores a courier invite by its code's key ([`crate::domain::invite::code_key`]) and the
    /// seed the code is made from (to find and redact it in stored messages later).
    fn create_courier_invite(
        &mut self,
        code: &str,
        seed: &str,
        profile: &CourierProfile,
        by: &UserKey,
        expires_at: DateTime<Utc>,
    ) -> RepoResult<()>;
    /// Uses an unused, unexpired courier code of this market: registers the user as a courier
    /// with the invited profile (or updates it). `None` for any code that does not qualify.
    fn redeem_courier_invite(&mut self, code: &str, user: &UserKey) -> RepoResult<Option<Courier>>;
    /// The courier record of a chat in this market.
    fn courier_of(&mut self, user: &UserKey) -> RepoResult<Option<Courier>>;
    fn courier(&mut self, id: i64) -> RepoResult<Option<Courier>>;
    /// Every courier of the market, with how many open deliveries each has.
    fn couriers(&mut self) -> RepoResult<Vec<(Courier, u32)>>;
    /// Starts (and makes idle from now) or ends a courier's shift.
    fn set_on_shift(&mut self, courier_id: i64, on: bool) -> RepoResult<()>;
    /// A courier finished a delivery: idle from now.
    fn set_idle(&mut self, courier_id: i64) -> RepoResult<()>;
    fn set_courier_position(&mut self, courier_id: i64, lat: f64, lon: f64) -> RepoResult<()>;
    /// On-shift couriers as automatic assignment weighs them.
    fn candidates(&mut self) -> RepoResult<Vec<Candidate>>;
    /// A new delivery of an order, in the given status (audited); returns it.
    fn create_delivery(&mut self, order_id: i64, actor: &str) -> RepoResult<Delivery>;
    fn delivery(&mut self, id: i64) -> RepoResult<Option<Delivery>>;
    /// The order's newest delivery.
    fn latest_delivery(&mut self, order_id: i64) -> RepoResult<Option<Delivery>>;
    /// Stores a delivery as it is now; a change of status or courier is audited with the actor.
    fn save_delivery(&mut self, delivery: &Delivery, actor: &str, note: Option<&str>) -> RepoResult<()>;
    /// Open deliveries offered to or held by a courier, oldest first.
    fn deliveries_of(&mut self, courier_id: i64) -> RepoResult<Vec<Delivery>>;
    /// Offers whose time to be taken has passed.
    fn due_offers(&mut self, now: DateTime<Utc>) -> RepoResult<Vec<i64>>;
    /// Deliveries nobody has, oldest first.
    fn unassigned_deliveries(&mut self) -> RepoResult<Vec<i64>>;
    /// Orders still to be collected whose slot starts at or before `local` (Malang time) and
    /// which have no delivery yet.
    fn orders_due_for_courier(&mut self, local: chrono::NaiveDateTime) -> RepoResult<Vec<i64>>;
    /// Open deliveries whose slot ended by `local` (Malang time) and that nobody was told of.
    fn late_deliveries(&mut self, local: chrono::NaiveDateTime) -> RepoResult<Vec<i64>>;
    fn mark_late_alerted(&mut self, delivery_id: i64) -> RepoResult<()>;
    /// Every step of an order's deliveries, oldest first.
    fn delivery_events(&mut self, order_id: i64) -> RepoResult<Vec<DeliveryEvent>>;
    /// The order's audit trail (the order's and its parts' moves), oldest first.
    fn order_history(&mut self, order_id: i64) -> RepoResult<Vec<AuditEntry>>;
    /// Queues a job request for the outside vendor (posted by the runtime after commit).
    fn request_vendor_job(&mut self, delivery_id: i64, job: &crate::integration::vendor::VendorJob) -> RepoResult<()>;
    /// Stores the shopper's stars for the order's courier or a stall; false (and nothing
    /// changed) when that one was rated already.
    fn rate(&mut self, order_id: i64, target: RatingTarget, target_id: i64, stars: u8) -> RepoResult<bool>;
    /// Who of the order has been rated.
    fn rated(&mut self, order_id: i64) -> RepoResult<Vec<(RatingTarget, i64)>>;
    /// The shopper's comment on the order, kept with its ratings.
    fn comment_ratings(&mut self, order_id: i64, comment: &str) -> RepoResult<()>;
    /// Each courier's average stars and number of ratings.
    fn courier_ratings(&mut self) -> RepoResult<Vec<(i64, f64, u32)>>;
}

/// A market's payment requests and money ledger, inside the current transaction. Implemented by
/// the store, scoped to one market.
pub trait PaymentRepo {
    /// Stores a pending request.
    fn create_payment(&mut self, payment: &NewPayment) -> RepoResult<Payment>;
    fn payment(&mut self, id: i64) -> RepoResult<Option<Payment>>;
    /// The order's newest request.
    fn current_payment(&mut self, order_id: i64) -> RepoResult<Option<Payment>>;
    fn set_payment_status(&mut self, payment_id: i64, status: PaymentStatus) -> RepoResult<()>;
    /// The reminder went: the request is next due at its expiry.
    fn payment_reminded(&mut self, payment_id: i64) -> RepoResult<()>;
    /// Pending requests whose reminder or expiry is due.
    fn due_payments(&mut self, now: DateTime<Utc>) -> RepoResult<Vec<i64>>;
    /// Amounts of every market's pending transfers (a new unique code must not repeat one).
    fn pending_transfer_amounts(&mut self) -> RepoResult<Vec<Rupiah>>;
    /// Appends to the ledger; false (nothing written) when an entry with the same reference exists.
    fn record_ledger(&mut self, entry: &LedgerEntry) -> RepoResult<bool>;
    fn ledger(&mut self, order_id: i64) -> RepoResult<Vec<LedgerEntry>>;
    /// The market's ledger entries from `from` to before `to`, each with its order's number.
    fn ledger_between(&mut self, from: DateTime<Utc>, to: DateTime<Utc>)
    -> RepoResult<Vec<(OrderNumber, LedgerEntry)>>;
    /// Orders with money owed back and not yet paid back: number and amount.
    fn refunds_outstanding(&mut self) -> RepoResult<Vec<(OrderNumber, Rupiah)>>;
    /// Queues a virtual-account request for the bank partner (posted by the runtime after commit).
    fn request_virtual_account(&mut self, charge: &crate::integration::bank::VaCharge) -> RepoResult<()>;
    /// The virtual account the bank made for a request.
    fn set_payment_reference(&mut self, payment_id: i64, reference: &str) -> RepoResult<()>;
}

/// An admin command as the audit keeps it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdminAction {
    pub actor: UserKey,
    pub command: String,
    pub object: Option<String>,
    pub detail: Option<String>,
    pub at: DateTime<Utc>,
}

/// A market's administration, inside the current transaction.
pub trait AdminRepo {
    fn create_admin_invite(
        &mut self,
        code: &str,
        seed: &str,
        by: &UserKey,
        expires_at: DateTime<Utc>,
    ) -> RepoResult<()>;
    /// Takes a used invite code out of the user's message being handled (the stored inbox
    /// row), so that no stored message keeps it in clear.
    fn forget_code(&mut self, user: &UserKey, code: &str) -> RepoResult<()>;
    /// Uses an unused, unexpired admin code of this market: the user becomes one of its admins.
    fn redeem_admin_invite(&mut self, code: &str, user: &UserKey) -> RepoResult<bool>;
    /// Takes a market admin's role away; false when they were not one.
    fn remove_admin(&mut self, user: &UserKey) -> RepoResult<bool>;
    fn record_admin_action(&mut self, action: &AdminAction) -> RepoResult<()>;
    /// The market's latest admin actions, newest first.
    fn admin_actions(&mut self, limit: usize) -> RepoResult<Vec<AdminAction>>;
    /// Asks for a backup of the database, made after this transaction commits; `by` is told.
    fn request_backup(&mut self, by: &UserKey) -> RepoResult<()>;
}

/// The admins' reports (`/statistik`, `/ekspor`), inside the current transaction: figures of the
/// orders placed in a range, of this market or of every market.
pub trait ReportRepo {
    /// The figures of orders placed from `from` to before `to`: this market's, or one per
    /// market that has orders then.
    fn order_figures(
        &mut self,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        every_market: bool,
    ) -> RepoResult<Vec<crate::domain::report::MarketFigures>>;
    /// This market's best-selling commodities of the range by value, at most `limit`.
    fn top_commodities(
        &mut self,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        limit: usize,
    ) -> RepoResult<Vec<crate::domain::report::CommodityFigures>>;
    /// Orders placed per market and local (Malang) hour, for the chart.
    fn orders_by_hour(
        &mut self,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        every_market: bool,
    ) -> RepoResult<Vec<crate::domain::report::HourCount>>;
    /// The orders placed in the range as the CSV of `pasar export` (one market, or every market
    /// for `None`), and how many there are.
    fn orders_csv(
        &mut self,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        market: Option<&str>,
    ) -> RepoResult<(String, usize)>;
}

/// A market's broadcasts (`/siaran`) and the shoppers who agreed to get them, inside the current
/// transaction.
pub trait BroadcastRepo {
    /// The market's shoppers who opted in, each with their language.
    fn subscribers(&mut self) -> RepoResult<Vec<(UserKey, Option<Lang>)>>;
    fn subscriber_count(&mut self) -> RepoResult<usize>;
    /// Stores a draft by this admin; returns its id.
    fn create_broadcast(&mut self, by: &UserKey, text: &crate::domain::broadcast::BroadcastText) -> RepoResult<i64>;
    /// A broadcast of this market.
    fn broadcast(&mut self, id: i64) -> RepoResult<Option<crate::domain::broadcast::Broadcast>>;
    /// A draft is cancelled; false (nothing changed) for anything else.
    fn cancel_broadcast(&mut self, id: i64) -> RepoResult<bool>;
    /// A draft starts sending: its messages (one per subscriber, sent after ordinary messages)
    /// and the admin's progress message are queued. False (nothing queued) unless it was a draft.
    fn start_broadcast(&mut self, id: i64, messages: &[Envelope], progress: &Envelope) -> RepoResult<bool>;
}

/// Market-wide data the order lifecycle, traders and admins work on, inside the current
/// transaction. Implemented by the store, scoped to one market.
pub trait MarketRepo: DeliveryRepo + PaymentRepo + AdminRepo + ReportRepo + BroadcastRepo {
    /// The language a user chose, if any.
    fn language_of(&mut self, user: &UserKey) -> RepoResult<Option<Lang>>;
    /// Admins of this market granted at run time (config admins come from the [`Policy`]).
    fn staff_admins(&mut self) -> RepoResult<Vec<UserKey>>;
    /// Stalls of this market the user trades at.
    fn stalls_of(&mut self, user: &UserKey) -> RepoResult<Vec<i64>>;
    /// Chats registered as a stall's trader.
    fn traders_of(&mut self, stall_id: i64) -> RepoResult<Vec<UserKey>>;
    fn create_invite(
        &mut self,
        code: &str,
        seed: &str,
        stall_id: i64,
        by: &UserKey,
        expires_at: DateTime<Utc>,
    ) -> RepoResult<()>;
    /// Uses an unused, unexpired code of this market: registers the user as the stall's trader and
    /// returns the stall. `None` for any code that does not qualify.
    fn redeem_invite(&mut self, code: &str, user: &UserKey) -> RepoResult<Option<i64>>;
    fn order(&mut self, order_id: i64) -> RepoResult<Option<Order>>;
    fn order_id_by_number(&mut self, number: &OrderNumber) -> RepoResult<Option<i64>>;
    fn order_id_of_sub(&mut self, sub_id: i64) -> RepoResult<Option<i64>>;
    fn order_id_of_line(&mut self, line_id: i64) -> RepoResult<Option<i64>>;
    /// Moves an order; the caller has checked the move is legal. Audited.
    fn set_order_status(
        &mut self,
        order_id: i64,
        from: OrderStatus,
        to: OrderStatus,
        actor: &str,
        note: Option<&str>,
    ) -> RepoResult<()>;
    /// Moves a sub-order; the caller has checked the move is legal. Audited.
    fn set_sub_status(
        &mut self,
        order_id: i64,
        sub_id: i64,
        from: SubOrderStatus,
        to: SubOrderStatus,
        actor: &str,
        reason: Option<&str>,
    ) -> RepoResult<()>;
    fn set_sub_deadline(&mut self, sub_id: i64, at: Option<DateTime<Utc>>, escalation: i64) -> RepoResult<()>;
    fn acknowledge_sub(&mut self, sub_id: i64) -> RepoResult<()>;
    /// Stores a line's weighed quantity, price and out-of-stock mark, and the sub-order's total.
    /// Stores a trader's change to a line after weighing, audited with who made it.
    fn update_line(&mut self, sub_id: i64, line: &OrderLine, actor: &str) -> RepoResult<()>;
    /// Puts stock back (a counted offer only).
    fn release_stock(&mut self, offer_id: i64, base: u64) -> RepoResult<()>;
    /// Takes more stock after weighing. False (and nothing taken) when a counted offer has less
    /// than that left: stock is never created or lost by clamping.
    fn take_stock(&mut self, offer_id: i64, base: u64) -> RepoResult<bool>;
    /// Stock left of counted offers (`None`: not counted).
    fn stock_of(&mut self, offer_id: i64) -> RepoResult<Option<u64>>;
    /// Sub-orders waiting for a trader whose deadline has passed.
    fn due_sub_orders(&mut self, now: DateTime<Utc>) -> RepoResult<Vec<i64>>;
    /// Sub-orders of these stalls still needing the trader (awaiting, adjusted, accepted).
    fn open_sub_orders(&mut self, stalls: &[i64]) -> RepoResult<Vec<i64>>;
    /// Confirmed sub-orders of these stalls placed on `date` (local): count and total.
    fn sales_on(&mut self, stalls: &[i64], date: NaiveDate) -> RepoResult<(usize, Rupiah)>;
    /// Sets a stall's price, adding the commodity to its list if new.
    fn set_price(&mut self, stall_id: i64, commodity_id: &str, price: Rupiah) -> RepoResult<()>;
    /// Sets a stall's stock of a commodity it sells; false if it does not sell it.
    fn set_stock(&mut self, stall_id: i64, commodity_id: &str, stock: Option<u64>) -> RepoResult<bool>;
    /// The market's orders in these statuses, newest first: `limit` of them from `offset`, and
    /// how many there are in all.
    fn market_orders(
        &mut self,
        statuses: &[OrderStatus],
        offset: usize,
        limit: usize,
    ) -> RepoResult<(Vec<crate::domain::order::MarketOrderRow>, usize)>;
    /// The office's reference price of a commodity (every market).
    fn set_reference_price(&mut self, commodity_id: &str, price: Rupiah) -> RepoResult<()>;
    /// Takes a stall out of service (its offers hidden) or back in.
    fn set_stall_active(&mut self, stall_id: i64, active: bool) -> RepoResult<()>;
    /// Takes a courier out of service (off shift, no offers) or back in.
    fn set_courier_active(&mut self, courier_id: i64, active: bool) -> RepoResult<()>;
    /// Per stall of the market: how many new orders its traders answered since `since`, and
    /// their average time to answer in minutes.
    fn response_times(&mut self, since: DateTime<Utc>) -> RepoResult<Vec<(i64, u32, f64)>>;
    /// Closes the market with the reason shoppers see (`None` opens it again).
    fn set_market_closed(&mut self, reason: Option<&str>) -> RepoResult<()>;
    /// Closes a stall for a day (`None` reopens it).
    fn set_closed(&mut self, stall_id: i64, on: Option<NaiveDate>) -> RepoResult<()>;
    /// The market's opening hours and its daily delivery slots.
    fn set_market_hours(
        &mut self,
        opens: chrono::NaiveTime,
        closes: chrono::NaiveTime,
        slots: &[crate::domain::slot::DeliverySlot],
    ) -> RepoResult<()>;
    /// Orders the market's couriers can take in one delivery slot.
    fn set_slot_capacity(&mut self, capacity: u32) -> RepoResult<()>;
    /// A new commodity in the city's catalogue (every market's traders may price it).
    fn add_commodity(&mut self, commodity: &crate::domain::catalog::Commodity) -> RepoResult<()>;
    /// A commodity's names, category and market words (its id and unit stay).
    fn update_commodity(&mut self, commodity: &crate::domain::catalog::Commodity) -> RepoResult<()>;
    /// The commodity's picture in this market on the admin's channel (`None` removes it).
    fn set_commodity_photo(&mut self, commodity_id: &str, reference: Option<&str>, by: &UserKey) -> RepoResult<()>;
}

/// Both repositories: what the store hands a step.
pub trait Repo: ShopperRepo + MarketRepo {}

impl<T: ShopperRepo + MarketRepo> Repo for T {}

/// Everything one step may look at and the messages it produces.
pub struct Turn<'a> {
    pub now: DateTime<Utc>,
    pub market: &'a Market,
    pub catalog: &'a Catalog,
    pub texts: &'a Texts,
    pub policy: &'a Policy,
    /// Who acted: the sender of the message, or the system for timers.
    pub user: &'a UserKey,
    pub lang: Lang,
    /// The message whose button was pressed, if this turn is a press (see
    /// [`crate::channel::InboundEvent::pressed_on`]).
    pub pressed_on: Option<&'a str>,
    /// The language of people who never chose one (messages to other people fall back to it).
    pub default_lang: Lang,
    /// The inbox id of the event, unique and stable across redelivery: seeds invite codes.
    pub event_key: &'a str,
    /// Keys invite codes.
    pub secret: &'a str,
    pub out: Vec<Envelope>,
    /// The step changed prices, stock lists or open stalls: the engine reloads the catalogue.
    pub catalog_changed: bool,
}

impl Turn<'_> {
    /// The sentence for `key` in the user's language, as this market says it.
    pub fn t(&self, key: Key) -> String {
        self.texts.get(&self.market.slug, self.lang, key).to_string()
    }

    /// The sentence in another language, without placeholders.
    pub fn t_in(&self, lang: Lang, key: Key) -> String {
        self.texts.get(&self.market.slug, lang, key).to_string()
    }

    /// The sentence with `{name}` placeholders filled.
    pub fn tf(&self, key: Key, args: &[(&str, &dyn std::fmt::Display)]) -> String {
        self.texts.render(&self.market.slug, self.lang, key, args)
    }

    /// The sentence in another language (for messages to other people).
    pub fn tf_in(&self, lang: Lang, key: Key, args: &[(&str, &dyn std::fmt::Display)]) -> String {
        self.texts.render(&self.market.slug, lang, key, args)
    }

    pub fn button(&self, key: Key, payload: impl Into<String>) -> Button {
        Button { label: self.t(key), payload: payload.into() }
    }

    pub fn button_in(&self, lang: Lang, key: Key, payload: impl Into<String>) -> Button {
        Button { label: self.texts.get(&self.market.slug, lang, key).to_string(), payload: payload.into() }
    }

    /// Sends a message to the user of this turn.
    pub fn reply(&mut self, message: Outbound) {
        self.out.push(Envelope { market: self.market.slug.clone(), to: self.user.clone(), message });
    }

    /// Sends a message to someone else in this market.
    pub fn send(&mut self, to: &UserKey, message: Outbound) {
        self.out.push(Envelope { market: self.market.slug.clone(), to: to.clone(), message });
    }

    pub fn say(&mut self, key: Key) {
        let text = self.t(key);
        self.reply(Outbound::text(text));
    }

    /// The actor label written to the audit table.
    pub fn actor(&self, role: Role) -> String {
        format!("{}:{}", role.code(), self.user)
    }
}

/// What the user is in this market, for routing.
#[derive(Debug, Clone, Default)]
pub struct Roles {
    pub admin: bool,
    /// An admin of every market, from the config (the city trade office).
    pub city_admin: bool,
    pub stalls: Vec<i64>,
    /// A registered courier of this market.
    pub courier: bool,
    /// A courier with a delivery in hand (taken, not finished): a shared location is theirs.
    pub courier_on_job: bool,
}

/// Roles in the middle of something that waits for typed text or a photo.
#[derive(Debug, Clone, Copy, Default)]
pub struct Busy {
    pub trader: bool,
    pub courier: bool,
}

/// Which conversation handles an input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    Buyer,
    Trader,
    Courier,
    Admin,
    /// News from the outside delivery vendor.
    Vendor,
    /// News from the bank partner.
    Bank,
}

/// Commands only traders have.
pub const TRADER_COMMANDS: &[&str] = &["harga", "stok", "tutup", "buka", "rekap", "pesanan"];
/// Commands only admins have.
pub const ADMIN_COMMANDS: &[&str] = &[
    "undang",
    "undang_kurir",
    "tugaskan",
    "kurir",
    "lunas",
    "refund",
    "pembayaran",
    "batalkan",
    "audit",
    "pasar_tutup",
    "pasar_buka",
    "pesanan",
    "pedagang",
    "nonaktif",
    "aktif",
    "jam",
    "kapasitas",
    "foto",
    "statistik",
    "ekspor",
    "siaran",
];
/// Commands only city admins (admins of every market, from the config) have.
pub const CITY_ADMIN_COMMANDS: &[&str] =
    &["admin_tambah", "admin_hapus", "cadangan", "harga_acuan", "komoditas_tambah", "komoditas_ubah"];

/// English names of the role commands, each for its Indonesian command (the shopper's English
/// names are read by the buyer conversation itself). Every name is unique across roles.
pub const COMMAND_ALIASES: &[(&str, &str)] = &[
    ("price", "harga"),
    ("stock", "stok"),
    ("close", "tutup"),
    ("open", "buka"),
    ("summary", "rekap"),
    ("orders", "pesanan"),
    ("on_duty", "mulai"),
    ("off_duty", "selesai"),
    ("jobs", "tugas"),
    ("invite", "undang"),
    ("invite_courier", "undang_kurir"),
    ("couriers", "kurir"),
    ("assign", "tugaskan"),
    ("paid", "lunas"),
    ("payments", "pembayaran"),
    ("cancel_order", "batalkan"),
    ("close_market", "pasar_tutup"),
    ("open_market", "pasar_buka"),
    ("traders", "pedagang"),
    ("disable", "nonaktif"),
    ("enable", "aktif"),
    ("hours", "jam"),
    ("capacity", "kapasitas"),
    ("add_commodity", "komoditas_tambah"),
    ("edit_commodity", "komoditas_ubah"),
    ("photo", "foto"),
    ("stats", "statistik"),
    ("export", "ekspor"),
    ("broadcast", "siaran"),
    ("add_admin", "admin_tambah"),
    ("remove_admin", "admin_hapus"),
    ("backup", "cadangan"),
    ("reference_price", "harga_acuan"),
    ("register", "daftar"),
];

/// The input with an English command name replaced by its Indonesian one, so that every role
/// reads one name per command; a photo captioned with a command (`/foto bawang merah`) is that
/// command with the photo's reference after its arguments.
pub fn canonical(inbound: &crate::channel::Inbound) -> std::borrow::Cow<'_, crate::channel::Inbound> {
    use crate::channel::Inbound;
    use std::borrow::Cow;
    match inbound {
        Inbound::Command { name, args } => match COMMAND_ALIASES.iter().find(|(en, _)| en == name) {
            Some((_, id)) => Cow::Owned(Inbound::Command { name: (*id).to_string(), args: args.clone() }),
            None => Cow::Borrowed(inbound),
        },
        _ => Cow::Borrowed(inbound),
    }
}

/// Whether routing needs the user's roles for this input (looked up only then, to keep the
/// common case of text and buttons cheap).
pub fn needs_roles(inbound: &crate::channel::Inbound) -> bool {
    use crate::channel::Inbound;
    matches!(inbound, Inbound::Command { .. } | Inbound::Image { .. } | Inbound::Location { .. })
        || matches!(inbound, Inbound::Button(p) if p.starts_with("a:"))
}

/// Picks the conversation: trader, courier and admin buttons and commands go to those roles (a
/// command of a role the user does not have goes to the buyer, who answers "unknown command", so
/// the role set is not revealed); free text goes to a trader or courier who is in the middle of
/// something;
/// photos go to couriers, and so do shared locations of a courier on a job or sharing live.
pub fn route(inbound: &crate::channel::Inbound, roles: &Roles, busy: Busy) -> Route {
    use crate::channel::Inbound;
    match inbound {
        Inbound::VendorStatus(_) => Route::Vendor,
        Inbound::BankNews(_) => Route::Bank,
        Inbound::Button(p) => match payload::Action::parse(p) {
            Some(a) if a.is_admin() && roles.admin => Route::Admin,
            Some(a) if a.is_trader() => Route::Trader,
            Some(a) if a.is_courier() => Route::Courier,
            _ => Route::Buyer,
        },
        Inbound::Command { name, args } => {
            let name = name.as_str();
            let help = matches!(name, "bantuan" | "help");
            // An admin who also trades: `/pesanan` alone is their stall's, `/pesanan <nomor|status>`
            // the market's.
            let admin_orders = name == "pesanan" && roles.admin && !args.trim().is_empty();
            if name == "daftar" || (TRADER_COMMANDS.contains(&name) && !roles.stalls.is_empty() && !admin_orders) {
                Route::Trader
            } else if (CITY_ADMIN_COMMANDS.contains(&name) && roles.city_admin)
                || ((ADMIN_COMMANDS.contains(&name) || help) && roles.admin)
            {
                Route::Admin
            } else if help && !roles.stalls.is_empty() {
                Route::Trader
            } else if (courier::COURIER_COMMANDS.contains(&name) || help) && roles.courier {
                Route::Courier
            } else {
                Route::Buyer
            }
        }
        Inbound::Text(_) if busy.trader => Route::Trader,
        Inbound::Text(_) if busy.courier => Route::Courier,
        // The photo at the door; an admin's catalogue photo (captioned `/foto <komoditas>`); any
        // other photo (a shopping note with a caption) is shopping.
        Inbound::Image { .. } if busy.courier => Route::Courier,
        Inbound::Image { caption: Some(c), .. } if roles.admin && is_photo_command(c) => Route::Admin,
        Inbound::Location { live, .. } if roles.courier && (*live || roles.courier_on_job) => Route::Courier,
        _ => Route::Buyer,
    }
}

/// A caption that asks for a commodity's picture: `/foto ...` or `/photo ...`.
pub fn is_photo_command(caption: &str) -> bool {
    matches!(
        crate::channel::Inbound::from_typed(caption),
        crate::channel::Inbound::Command { ref name, .. } if name == "foto" || name == "photo"
    )
}

/// The command menu a user's roles in this market give them (after a role changed).
pub fn menu_for(repo: &mut dyn Repo, turn: &Turn<'_>, user: &UserKey) -> RepoResult<crate::channel::CommandMenu> {
    Ok(crate::channel::CommandMenu {
        trader: !repo.stalls_of(user)?.is_empty(),
        admin: turn.policy.is_config_admin(&turn.market.slug, user) || repo.staff_admins()?.contains(user),
        courier: repo.courier_of(user)?.is_some(),
        city: turn.policy.is_city_admin(user),
    })
}

/// Examples of amounts in the commodity's own unit.
pub fn quantity_examples(turn: &Turn<'_>, unit: crate::domain::quantity::SaleUnit) -> String {
    match unit {
        crate::domain::quantity::SaleUnit::Kilogram => turn.t(Key::QtyExamplesKg),
        crate::domain::quantity::SaleUnit::Liter => turn.t(Key::QtyExamplesLiter),
        crate::domain::quantity::SaleUnit::Piece(p) => turn.tf(Key::QtyExamplesPiece, &[("unit", &p.name())]),
    }
}
