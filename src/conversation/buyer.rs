//! The shopper's conversation: browse, search, cart, checkout, orders, language.
//!
//! [`BuyerState`] names what the bot is waiting for and carries what checkout collected so far.
//! [`step`] answers one input. It never does I/O itself: it reads and writes through
//! [`Repo`] (the store, inside the event's transaction) and replies through the [`Turn`].
//! Every input, good or bad, gets an answer; a bad one leaves the state and data as they were.

use super::lifecycle;
use super::payload::Action;
use super::{PlaceRefusal, Repo, RepoResult, Turn};
use crate::channel::{Button, Inbound, Outbound, Request};
use crate::domain::amount::{AmountError, OrderedBy, describe, describe_price, line_price, parse_amount};
use crate::domain::cart::{CartLine, MAX_CART_LINES};
use crate::domain::catalog::{Category, Commodity, Offer, SearchResult};
use crate::domain::contact::{Address, AddressError, PhoneNumber, distance_km, kelurahan_in};
use crate::domain::money::Rupiah;
use crate::domain::order::{CancelRefusal, NewOrder, NewOrderLine, OrderNumber, OrderStatus, PaymentMethod};
use crate::domain::quantity::{Quantity, QuantityError, SaleUnit};
use crate::domain::slot::{SlotChoice, available_slots, local};
use crate::text::{Key, Lang};
use serde::{Deserialize, Serialize};

/// Longest text message we read; anything longer is refused politely.
pub const MAX_TEXT_CHARS: usize = 1000;
/// Commodities per page when browsing a category.
pub const PAGE_SIZE: usize = 8;
/// Orders shown by "Pesanan saya".
pub const ORDERS_SHOWN: usize = 10;
const MAX_NOTE_CHARS: usize = 300;
const MAX_NAME_CHARS: usize = 60;

/// Name, phone and address, collected at checkout.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Contact {
    pub name: String,
    pub phone: PhoneNumber,
    pub address: Address,
}

/// Everything checkout collected before the summary.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Checkout {
    pub contact: Contact,
    pub slot: SlotChoice,
    pub payment: PaymentMethod,
    pub note: Option<String>,
}

/// What the bot is waiting for from a shopper.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub enum BuyerState {
    #[default]
    MainMenu,
    /// Looking at a page of a category; typed text searches.
    Browsing {
        category: Category,
        page: usize,
    },
    /// Waiting for words to search for.
    ReceiveSearch,
    /// Looking at a commodity's stalls and prices.
    ViewingCommodity {
        commodity: String,
    },
    ReceiveQuantity {
        offer: i64,
    },
    ViewingCart,
    ViewingCartLine {
        offer: i64,
    },
    ReceiveNewQuantity {
        offer: i64,
    },
    ConfirmEmptyCart,
    ReceiveName,
    ReceivePhone {
        name: String,
    },
    ReceiveAddress {
        name: String,
        phone: PhoneNumber,
    },
    ReceiveSlot {
        contact: Contact,
    },
    ReceivePayment {
        contact: Contact,
        slot: SlotChoice,
    },
    ReceiveNote {
        contact: Contact,
        slot: SlotChoice,
        payment: PaymentMethod,
    },
    /// The summary is shown; `total` is what it said, so a price change is noticed.
    ConfirmOrder {
        checkout: Checkout,
        total: Rupiah,
    },
    ConfirmCancelOrder {
        number: OrderNumber,
    },
    /// Choosing a language; what the bot was asking before is asked again in the new language.
    ChoosingLanguage {
        previous: Box<BuyerState>,
    },
    /// Every part of a delivered order is rated: an optional comment.
    ReceiveReviewComment {
        order: i64,
    },
    /// A typed order is shown line by line; nothing is in the cart until "add all".
    ReviewingTypedOrder {
        /// This showing of the review (its buttons carry it).
        #[serde(default)]
        review: u32,
        lines: Vec<super::typed_order::TypedLine>,
    },
}

/// Answers one input of a shopper and returns the next state.
pub fn step(state: BuyerState, input: &Inbound, repo: &mut dyn Repo, turn: &mut Turn<'_>) -> RepoResult<BuyerState> {
    match input {
        Inbound::Text(text) | Inbound::Command { args: text, .. } | Inbound::Contact { phone: text, .. }
            if text.chars().count() > MAX_TEXT_CHARS =>
        {
            turn.say(Key::TooLong);
            Ok(state)
        }
        Inbound::Command { name, args } => command(state, name, args, repo, turn),
        Inbound::Button(payload) => match Action::parse(payload) {
            Some(action) => act(state, action, repo, turn),
            None => {
                turn.say(Key::StaleButton);
                Ok(state)
            }
        },
        Inbound::Text(text) => typed(state, text, repo, turn),
        // A picture: its caption is read like typed text ("bawang merah 1 kg" under a photo of a
        // shopping note); without one, the shopper is shown what the bot understands.
        Inbound::Image { caption, .. } => {
            let caption = caption.as_deref().unwrap_or_default();
            if caption.chars().count() > MAX_TEXT_CHARS {
                turn.say(Key::TooLong);
                return Ok(state);
            }
            typed(state, caption, repo, turn)
        }
        // Vendor news is routed to the delivery, never here.
        Inbound::VendorStatus(_) | Inbound::BankNews(_) => Ok(state),
        // The next points of a live location a shopper shares come every few seconds: the
        // first one (a plain location) was answered; these are not questions.
        Inbound::Location { live: true, .. } => Ok(state),
        Inbound::Location { lat, lon, .. } => match state {
            BuyerState::ReceiveAddress { name, phone } => match Address::location(*lat, *lon) {
                Some(_)
                    if distance_km(turn.market.lat, turn.market.lon, *lat, *lon) > turn.market.delivery_radius_km =>
                {
                    let distance = distance_km(turn.market.lat, turn.market.lon, *lat, *lon);
                    let text = turn.tf(
                        Key::AddressOutsideZone,
                        &[
                            ("distance", &format!("{distance:.1}")),
                            ("market", &turn.market.name),
                            ("radius", &turn.market.delivery_radius_km),
                        ],
                    );
                    turn.reply(Outbound::text(text));
                    Ok(BuyerState::ReceiveAddress { name, phone })
                }
                Some(address) => {
                    let contact = Contact { name, phone, address };
                    ask_slot(contact, repo, turn)
                }
                None => {
                    turn.say(Key::BadLocation);
                    Ok(BuyerState::ReceiveAddress { name, phone })
                }
            },
            other => not_understood(other, repo, turn),
        },
        Inbound::Contact { phone, .. } => match state {
            BuyerState::ReceivePhone { name } => receive_phone(name, phone, repo, turn),
            other => not_understood(other, repo, turn),
        },
    }
}

/// Whether the market delivers there: a shared location by its distance, a typed address by
/// the kelurahan it names (a market without a kelurahan list takes any typed address).
fn in_zone(address: &Address, turn: &Turn<'_>) -> bool {
    match address {
        Address::Location { lat, lon } => {
            distance_km(turn.market.lat, turn.market.lon, *lat, *lon) <= turn.market.delivery_radius_km
        }
        Address::Text(text) => turn.market.kelurahan.is_empty() || kelurahan_in(text, &turn.market.kelurahan).is_some(),
    }
}

/// A typed address that names none of the market's kelurahan: which ones it serves, before any
/// payment.
fn outside_zone_by_kelurahan(turn: &mut Turn<'_>) {
    let list = turn.market.kelurahan.join(", ");
    let text = turn.tf(Key::AddressKelurahanOutside, &[("market", &turn.market.name), ("kelurahan", &list)]);
    turn.reply(Outbound::text(text));
}

fn command(
    state: BuyerState,
    name: &str,
    args: &str,
    repo: &mut dyn Repo,
    turn: &mut Turn<'_>,
) -> RepoResult<BuyerState> {
    match name {
        "start" => {
            let welcome = welcome_text(turn);
            turn.reply(Outbound::text(welcome));
            show_menu(repo, turn)
        }
        "menu" => show_menu(repo, turn),
        "bantuan" | "help" => act(state, Action::Help, repo, turn),
        "langganan" | "subscribe" => act(state, Action::Subscribe, repo, turn),
        "berhenti" | "unsubscribe" | "stop" => act(state, Action::Unsubscribe, repo, turn),
        "belanja" | "shop" => act(state, Action::Shop, repo, turn),
        "keranjang" | "cart" => act(state, Action::Cart, repo, turn),
        "pesanan" | "orders" => act(state, Action::Orders, repo, turn),
        "checkout" => act(state, Action::Checkout, repo, turn),
        "pesan" | "order" => super::typed_order::order_command(args, repo, turn),
        "cari" | "search" => {
            if args.is_empty() {
                act(state, Action::Search, repo, turn)
            } else {
                search(args, repo, turn)
            }
        }
        "bahasa" | "language" => {
            if args.is_empty() {
                act(state, Action::LanguageMenu, repo, turn)
            } else {
                match Lang::from_code(args) {
                    Some(lang) => act(state, Action::Language(lang), repo, turn),
                    None => act(state, Action::LanguageMenu, repo, turn),
                }
            }
        }
        "status" | "lacak" | "track" => {
            if args.is_empty() {
                // The newest order, the one a shopper asking "where is it?" means.
                return match repo.orders(1)?.into_iter().next() {
                    Some(latest) => track(&latest.number, repo, turn),
                    None => act(state, Action::Orders, repo, turn),
                };
            }
            match OrderNumber::parse(args) {
                Some(number) => track(&number, repo, turn),
                None => {
                    turn.say(Key::StatusUsage);
                    Ok(state)
                }
            }
        }
        "batal" | "cancel" => {
            if args.is_empty() {
                return abort(repo, turn);
            }
            match OrderNumber::parse(args) {
                Some(number) => cancel_order(number, repo, turn),
                None => {
                    turn.say(Key::CancelUsage);
                    Ok(state)
                }
            }
        }
        _ => {
            turn.say(Key::UnknownCommand);
            Ok(state)
        }
    }
}

/// Menu words a shopper may type instead of pressing a button (WhatsApp users often do).
fn typed_action(text: &str) -> Option<Action> {
    Some(match text.trim().to_lowercase().as_str() {
        "menu" | "menu utama" | "main menu" | "start" | "mulai" => Action::Menu,
        "belanja" | "shop" | "kategori" => Action::Shop,
        "cari" | "search" => Action::Search,
        "keranjang" | "cart" | "basket" => Action::Cart,
        "pesanan" | "pesanan saya" | "my orders" | "orders" => Action::Orders,
        "bantuan" | "help" | "tolong" => Action::Help,
        "bahasa" | "language" => Action::LanguageMenu,
        "batal" | "cancel" | "gak jadi" | "nggak jadi" | "ora sido" => Action::Abort,
        "checkout" | "bayar" => Action::Checkout,
        "langganan" | "subscribe" => Action::Subscribe,
        "berhenti" | "stop" | "unsubscribe" => Action::Unsubscribe,
        _ => return None,
    })
}

/// Free text, read according to what the bot is waiting for.
fn typed(state: BuyerState, text: &str, repo: &mut dyn Repo, turn: &mut Turn<'_>) -> RepoResult<BuyerState> {
    let text = text.trim();
    if text.is_empty() {
        return not_understood(state, repo, turn);
    }
    if let Some(action) = typed_action(text) {
        return act(state, action, repo, turn);
    }
    match state {
        BuyerState::ReceiveReviewComment { order } => super::review::comment(repo, turn, order, text),
        BuyerState::ReceiveQuantity { offer } => add_typed_quantity(offer, text, repo, turn),
        BuyerState::ReceiveNewQuantity { offer } => change_quantity(offer, text, repo, turn),
        BuyerState::ReceiveName => receive_name(text, repo, turn),
        BuyerState::ReceivePhone { name } => receive_phone(name, text, repo, turn),
        BuyerState::ReceiveAddress { name, phone } => match Address::parse_text(text) {
            Ok(address) if !in_zone(&address, turn) => {
                outside_zone_by_kelurahan(turn);
                Ok(BuyerState::ReceiveAddress { name, phone })
            }
            Ok(address) => ask_slot(Contact { name, phone, address }, repo, turn),
            Err(e) => {
                turn.say(match e {
                    AddressError::TooShort => Key::AddressTooShort,
                    AddressError::TooLong => Key::AddressTooLong,
                });
                Ok(BuyerState::ReceiveAddress { name, phone })
            }
        },
        BuyerState::ReceiveSlot { contact } => {
            // "09:00" or "besok 07:00" typed instead of a button.
            let choices = available_slots(&turn.market.slots, turn.now);
            let wanted = text.to_lowercase().replace('.', ":");
            let tomorrow = wanted.contains("besok") || wanted.contains("tomorrow");
            let today = local(turn.now).date_naive();
            let found = choices.iter().find(|c| {
                let starts = wanted.contains(&c.slot.start.format("%H:%M").to_string());
                starts && (c.date == today) != tomorrow
            });
            match found {
                Some(choice) if slot_open(choice, repo, turn)? => ask_payment(contact, *choice, turn),
                Some(_) => {
                    turn.say(Key::SlotGone);
                    ask_slot(contact, repo, turn)
                }
                None => {
                    turn.say(Key::NotUnderstood);
                    ask_slot(contact, repo, turn)
                }
            }
        }
        BuyerState::ReceivePayment { contact, slot } => {
            let method = match text.to_lowercase().as_str() {
                "transfer" | "transfer bank" | "tf" | "bank" => Some(PaymentMethod::Transfer),
                "qris" | "qr" => Some(PaymentMethod::Qris),
                "va" | "virtual account" => Some(PaymentMethod::VirtualAccount),
                "cod" | "bayar di tempat" | "tunai" | "cash" => Some(PaymentMethod::CashOnDelivery),
                _ => None,
            };
            match method {
                Some(m) if offered(m, turn) => ask_note(contact, slot, m, turn),
                _ => {
                    turn.say(Key::NotUnderstood);
                    ask_payment(contact, slot, turn)
                }
            }
        }
        BuyerState::ReceiveNote { contact, slot, payment } => {
            let lowered = text.to_lowercase();
            if ["tidak", "tidak ada", "ga ada", "gak ada", "-", "no", "none", "lewati", "skip"]
                .contains(&lowered.as_str())
            {
                return summary(Checkout { contact, slot, payment, note: None }, repo, turn);
            }
            if text.chars().count() > MAX_NOTE_CHARS {
                turn.say(Key::NoteTooLong);
                return Ok(BuyerState::ReceiveNote { contact, slot, payment });
            }
            summary(Checkout { contact, slot, payment, note: Some(text.to_string()) }, repo, turn)
        }
        BuyerState::ConfirmOrder { checkout, total } => {
            let lowered = text.to_lowercase();
            if ["ya", "iya", "yes", "ok", "oke", "pesan", "nggih", "inggih"].contains(&lowered.as_str()) {
                place_order(checkout, total, repo, turn)
            } else {
                turn.say(Key::NotUnderstood);
                Ok(BuyerState::ConfirmOrder { checkout, total })
            }
        }
        BuyerState::ConfirmEmptyCart | BuyerState::ConfirmCancelOrder { .. } | BuyerState::ChoosingLanguage { .. } => {
            let lowered = text.to_lowercase();
            if let BuyerState::ChoosingLanguage { .. } = state
                && let Some(lang) = Lang::from_code(&lowered)
            {
                return act(state, Action::Language(lang), repo, turn);
            }
            if ["ya", "iya", "yes"].contains(&lowered.as_str()) {
                return match state {
                    BuyerState::ConfirmEmptyCart => act(state, Action::EmptyCartConfirmed, repo, turn),
                    BuyerState::ConfirmCancelOrder { number } => cancel_order(number, repo, turn),
                    other => not_understood(other, repo, turn),
                };
            }
            if ["tidak", "no", "ndak", "gak", "nggak"].contains(&lowered.as_str()) {
                return show_menu(repo, turn);
            }
            not_understood(state, repo, turn)
        }
        BuyerState::ReviewingTypedOrder { review, .. }
            if ["ya", "iya", "yes", "ok", "oke", "masukkan", "masukkan semua", "masukkan keranjang", "nggih"]
                .contains(&text.to_lowercase().as_str()) =>
        {
            super::typed_order::act(state, Action::TypedAddAll(review), repo, turn)
        }
        // Asked for words to search: a search, unless it is plainly an order.
        BuyerState::ReceiveSearch => super::typed_order::typed_after_search(text, repo, turn),
        // Anywhere else, typed words are an order ("brambang sekilo, tempe 2"), a question
        // ("harga cabe berapa?") or a search.
        BuyerState::MainMenu
        | BuyerState::Browsing { .. }
        | BuyerState::ViewingCommodity { .. }
        | BuyerState::ViewingCart
        | BuyerState::ViewingCartLine { .. }
        | BuyerState::ReviewingTypedOrder { .. } => super::typed_order::typed(text, repo, turn),
    }
}

/// A button press (or a typed menu word), re-checked against the current data.
fn act(state: BuyerState, action: Action, repo: &mut dyn Repo, turn: &mut Turn<'_>) -> RepoResult<BuyerState> {
    match action {
        Action::Menu => show_menu(repo, turn),
        Action::Help => {
            turn.say(Key::Help);
            Ok(state)
        }
        Action::Shop => show_categories(turn),
        Action::Search => {
            let text = turn.t(Key::SearchPrompt);
            let back = turn.button(Key::BtnMenu, Action::Menu.encode());
            turn.reply(Outbound::question(text, vec![back]));
            Ok(BuyerState::ReceiveSearch)
        }
        Action::Category { category, page } => show_category(state, category, page, turn),
        Action::Commodity(id) => show_commodity(state, &id, repo, turn),
        Action::Offer(id) => match market_offer(turn, id) {
            Some((_, commodity)) if repo.stock_of(id)? == Some(0) => {
                let text = turn.tf(Key::OfferSoldOutNow, &[("commodity", &commodity.display_name(turn.lang))]);
                turn.reply(Outbound::text(text));
                Ok(state)
            }
            Some(_) => ask_quantity(id, turn),
            None => stale(state, turn),
        },
        Action::QuickQuantity { offer, base } => {
            // Only as the answer to the amount question: an old or double-tapped button must not
            // add the amount again.
            if state != (BuyerState::ReceiveQuantity { offer }) {
                return stale(state, turn);
            }
            let Some((_, commodity)) = market_offer(turn, offer) else {
                return stale(state, turn);
            };
            match Quantity::new(base, commodity.unit) {
                Ok(q) => add_to_cart(offer, q, None, repo, turn),
                Err(_) => stale(state, turn),
            }
        }
        Action::Cart => show_cart(repo, turn),
        Action::CartLine(offer) => {
            if !repo.cart()?.iter().any(|l| l.offer_id == offer) {
                return stale(state, turn);
            }
            show_cart_line(offer, repo, turn)
        }
        Action::EditLine(offer) => {
            if !repo.cart()?.iter().any(|l| l.offer_id == offer) {
                return stale(state, turn);
            }
            let Some((_, commodity)) = market_offer(turn, offer) else {
                return stale(state, turn);
            };
            let text = turn.tf(
                Key::AskNewQuantity,
                &[
                    ("commodity", &commodity.display_name(turn.lang)),
                    ("examples", &super::quantity_examples(turn, commodity.unit)),
                ],
            );
            let cancel = turn.button(Key::BtnCancel, Action::Cart.encode());
            turn.reply(Outbound::question(text, vec![cancel]));
            Ok(BuyerState::ReceiveNewQuantity { offer })
        }
        Action::RemoveLine(offer) => {
            if !repo.remove_cart_line(offer)? {
                return stale(state, turn);
            }
            turn.say(Key::LineRemoved);
            show_cart(repo, turn)
        }
        Action::EmptyCart => {
            if repo.cart()?.is_empty() {
                return show_cart(repo, turn);
            }
            let text = turn.t(Key::ConfirmEmptyCart);
            let buttons = vec![
                turn.button(Key::BtnYes, Action::EmptyCartConfirmed.encode()),
                turn.button(Key::BtnNo, Action::Cart.encode()),
            ];
            turn.reply(Outbound::with_buttons(text, buttons));
            Ok(BuyerState::ConfirmEmptyCart)
        }
        Action::EmptyCartConfirmed => {
            if state != BuyerState::ConfirmEmptyCart {
                return stale(state, turn);
            }
            repo.clear_cart()?;
            turn.say(Key::CartEmptied);
            show_menu(repo, turn)
        }
        Action::Checkout => start_checkout(repo, turn),
        Action::UseSavedName => match (state, repo.profile()?.name) {
            (BuyerState::ReceiveName, Some(name)) => ask_phone(name, repo, turn),
            (other, _) => stale(other, turn),
        },
        Action::UseSavedPhone => match (state, repo.profile()?.phone) {
            (BuyerState::ReceivePhone { name }, Some(phone)) => ask_address(name, phone, repo, turn),
            (other, _) => stale(other, turn),
        },
        Action::UseSavedAddress => match (state, repo.profile()?.address) {
            (BuyerState::ReceiveAddress { name, phone }, Some(address)) => match Address::parse_text(&address) {
                Ok(address) if in_zone(&address, turn) => ask_slot(Contact { name, phone, address }, repo, turn),
                Ok(_) => {
                    // Saved for another market, or before the zone was checked: a new one.
                    outside_zone_by_kelurahan(turn);
                    Ok(BuyerState::ReceiveAddress { name, phone })
                }
                Err(_) => ask_address(name, phone, repo, turn),
            },
            (other, _) => stale(other, turn),
        },
        Action::Slot(code) => match state {
            BuyerState::ReceiveSlot { contact } => {
                let choice = available_slots(&turn.market.slots, turn.now).into_iter().find(|c| c.code() == code);
                let choice = match choice {
                    Some(c) if slot_open(&c, repo, turn)? => Some(c),
                    _ => None,
                };
                match choice {
                    Some(slot) => ask_payment(contact, slot, turn),
                    None => {
                        turn.say(Key::SlotGone);
                        ask_slot(contact, repo, turn)
                    }
                }
            }
            other => stale(other, turn),
        },
        Action::Payment(method) => match state {
            BuyerState::ReceivePayment { contact, slot } if offered(method, turn) => {
                ask_note(contact, slot, method, turn)
            }
            BuyerState::ReceivePayment { contact, slot } => {
                turn.say(Key::NotUnderstood);
                ask_payment(contact, slot, turn)
            }
            other => stale(other, turn),
        },
        Action::NoNote => match state {
            BuyerState::ReceiveNote { contact, slot, payment } => {
                summary(Checkout { contact, slot, payment, note: None }, repo, turn)
            }
            other => stale(other, turn),
        },
        Action::PlaceOrder => match state {
            BuyerState::ConfirmOrder { checkout, total } => place_order(checkout, total, repo, turn),
            other => stale(other, turn),
        },
        Action::Abort => abort(repo, turn),
        Action::Orders => show_orders(repo, turn),
        Action::Track(number) => track(&number, repo, turn),
        Action::Rate { order, sub, stars } => super::review::rate(repo, turn, state, order, sub, stars),
        Action::SkipReviewComment(order) => match state {
            BuyerState::ReceiveReviewComment { order: waiting } if waiting == order => {
                turn.say(Key::ReviewThanks);
                Ok(BuyerState::MainMenu)
            }
            other => stale(other, turn),
        },
        Action::CancelOrder(number) => {
            let mine = repo.orders(usize::MAX)?.into_iter().find(|o| o.number == number);
            match mine {
                Some(order) if order.cancellable => {
                    let text = turn.tf(Key::ConfirmCancelOrder, &[("number", &number), ("total", &order.total)]);
                    let buttons = vec![
                        turn.button(Key::BtnYes, Action::CancelOrderConfirmed(number.clone()).encode()),
                        turn.button(Key::BtnNo, Action::Orders.encode()),
                    ];
                    turn.reply(Outbound::with_buttons(text, buttons));
                    Ok(BuyerState::ConfirmCancelOrder { number })
                }
                Some(_) => cancel_order(number, repo, turn),
                None => stale(state, turn),
            }
        }
        Action::CancelOrderConfirmed(number) => match state {
            BuyerState::ConfirmCancelOrder { number: asked } if asked == number => cancel_order(number, repo, turn),
            other => stale(other, turn),
        },
        Action::LanguageMenu => {
            let text = turn.t(Key::ChooseLanguage);
            let buttons = vec![
                turn.button(Key::LangNameId, Action::Language(Lang::Id).encode()),
                turn.button(Key::LangNameEn, Action::Language(Lang::En).encode()),
            ];
            turn.reply(Outbound::with_buttons(text, buttons));
            let previous = match state {
                BuyerState::ChoosingLanguage { previous } => previous,
                other => Box::new(other),
            };
            Ok(BuyerState::ChoosingLanguage { previous })
        }
        Action::AgreeChanges(sub) => lifecycle_answer(state, lifecycle::agree(repo, turn, sub)?, turn),
        Action::DropStall(sub) => lifecycle_answer(state, lifecycle::drop_stall(repo, turn, sub)?, turn),
        Action::AcknowledgeDrop(sub) => lifecycle_answer(state, lifecycle::acknowledge_drop(repo, turn, sub)?, turn),
        // Trader and courier buttons are routed to those conversations; here only if forged.
        Action::CourierTake(_)
        | Action::CourierSkip(_)
        | Action::CourierPicked { .. }
        | Action::CourierDepart(_)
        | Action::CourierDelivered(_)
        | Action::CourierCash { .. }
        | Action::CourierFail(_)
        | Action::CourierFailReason { .. }
        | Action::TraderAccept(_)
        | Action::TraderChange(_)
        | Action::TraderReject(_)
        | Action::TraderReason { .. }
        | Action::TraderLine(_)
        | Action::TraderOutOfStock(_)
        | Action::TraderDone(_)
        | Action::TraderPack(_)
        | Action::TraderShortage(_)
        | Action::TraderDropLine(_)
        | Action::AdminOrders { .. }
        | Action::AdminOrder(_)
        | Action::BroadcastSend(_)
        | Action::BroadcastCancel(_) => stale(state, turn),
        Action::TypedAddAll(_)
        | Action::TypedChange(_)
        | Action::TypedLine { .. }
        | Action::TypedStall { .. }
        | Action::TypedDrop { .. }
        | Action::TypedReview(_) => super::typed_order::act(state, action, repo, turn),
        Action::Subscribe => {
            repo.set_subscription(true)?;
            let text = turn.tf(Key::SubscribeDone, &[("market", &turn.market.name)]);
            turn.reply(Outbound::text(text));
            Ok(state)
        }
        Action::Unsubscribe => {
            repo.set_subscription(false)?;
            let text = turn.tf(Key::UnsubscribeDone, &[("market", &turn.market.name)]);
            turn.reply(Outbound::text(text));
            Ok(state)
        }
        Action::Language(lang) => {
            repo.set_language(lang)?;
            turn.lang = lang;
            turn.say(Key::LanguageSet);
            let previous = match state {
                BuyerState::ChoosingLanguage { previous } => *previous,
                other => other,
            };
            reprompt(previous, repo, turn)
        }
    }
}

/// Asks again what the bot was waiting for (after a language change), so nothing collected is
/// lost; outside a question, the main menu.
fn reprompt(state: BuyerState, repo: &mut dyn Repo, turn: &mut Turn<'_>) -> RepoResult<BuyerState> {
    match state {
        BuyerState::ReceiveQuantity { offer } => ask_quantity(offer, turn),
        BuyerState::ReceiveName => start_checkout(repo, turn),
        BuyerState::ReceivePhone { name } => ask_phone(name, repo, turn),
        BuyerState::ReceiveAddress { name, phone } => ask_address(name, phone, repo, turn),
        BuyerState::ReceiveSlot { contact } => ask_slot(contact, repo, turn),
        BuyerState::ReceivePayment { contact, slot } => ask_payment(contact, slot, turn),
        BuyerState::ReceiveNote { contact, slot, payment } => ask_note(contact, slot, payment, turn),
        BuyerState::ConfirmOrder { checkout, .. } => summary(checkout, repo, turn),
        BuyerState::ViewingCart | BuyerState::ViewingCartLine { .. } | BuyerState::ReceiveNewQuantity { .. } => {
            show_cart(repo, turn)
        }
        _ => show_menu(repo, turn),
    }
}

/// After a lifecycle answer: a refusal is said, and the conversation stays where it was.
fn lifecycle_answer(state: BuyerState, outcome: lifecycle::Outcome, turn: &mut Turn<'_>) -> RepoResult<BuyerState> {
    if let Err(r) = outcome {
        turn.say(r.key());
    }
    Ok(state)
}

/// A press that no longer applies: said, nothing changed.
pub(super) fn stale_press(state: BuyerState, turn: &mut Turn<'_>) -> RepoResult<BuyerState> {
    stale(state, turn)
}

fn stale(state: BuyerState, turn: &mut Turn<'_>) -> RepoResult<BuyerState> {
    turn.say(Key::StaleButton);
    Ok(state)
}

fn not_understood(state: BuyerState, repo: &mut dyn Repo, turn: &mut Turn<'_>) -> RepoResult<BuyerState> {
    turn.say(Key::NotUnderstood);
    match state {
        // Outside a question, show where to go next.
        BuyerState::MainMenu => show_menu(repo, turn),
        other => Ok(other),
    }
}

fn abort(repo: &mut dyn Repo, turn: &mut Turn<'_>) -> RepoResult<BuyerState> {
    turn.say(Key::CheckoutCancelled);
    show_menu(repo, turn)
}

// ---------------------------------------------------------------------------------------------
// Screens

pub fn welcome_text(turn: &Turn<'_>) -> String {
    let m = turn.market;
    let welcome = turn.tf(Key::Welcome, &[("market", &m.name), ("hours", &m.hours()), ("address", &m.address)]);
    match &m.closed {
        Some(reason) => format!("{}\n\n{welcome}", closed_text(turn, reason)),
        None => welcome,
    }
}

/// "The market is closed: <reason>", for a market its admins closed.
fn closed_text(turn: &Turn<'_>, reason: &str) -> String {
    turn.tf(Key::MarketClosedNotice, &[("market", &turn.market.name), ("reason", &reason)])
}

/// A closed market takes no orders: the shopper is told why (the cart stays).
fn refused_while_closed(repo: &mut dyn Repo, turn: &mut Turn<'_>) -> RepoResult<Option<BuyerState>> {
    let Some(reason) = turn.market.closed.clone() else {
        return Ok(None);
    };
    let text = closed_text(turn, &reason);
    turn.reply(Outbound::text(text));
    show_menu(repo, turn).map(Some)
}

fn show_menu(repo: &mut dyn Repo, turn: &mut Turn<'_>) -> RepoResult<BuyerState> {
    let count = repo.cart()?.len();
    let cart = if count == 0 {
        turn.button(Key::BtnCart, Action::Cart.encode())
    } else {
        Button { label: turn.tf(Key::BtnCartCount, &[("count", &count)]), payload: Action::Cart.encode() }
    };
    let buttons = vec![
        turn.button(Key::BtnShop, Action::Shop.encode()),
        turn.button(Key::BtnSearch, Action::Search.encode()),
        cart,
        turn.button(Key::BtnOrders, Action::Orders.encode()),
        turn.button(Key::BtnHelp, Action::Help.encode()),
        turn.button(Key::BtnLanguage, Action::LanguageMenu.encode()),
    ];
    let text = turn.tf(Key::MenuPrompt, &[("market", &turn.market.name)]);
    turn.reply(Outbound::with_buttons(text, buttons));
    Ok(BuyerState::MainMenu)
}

pub fn category_key(category: Category) -> Key {
    match category {
        Category::Sayur => Key::CatSayur,
        Category::Buah => Key::CatBuah,
        Category::Bumbu => Key::CatBumbu,
        Category::DagingAyam => Key::CatDagingAyam,
        Category::Ikan => Key::CatIkan,
        Category::Telur => Key::CatTelur,
        Category::Sembako => Key::CatSembako,
        Category::TahuTempe => Key::CatTahuTempe,
        Category::Jajanan => Key::CatJajanan,
    }
}

pub fn status_key(status: OrderStatus) -> Key {
    match status {
        OrderStatus::AwaitingTraders => Key::StatusAwaitingTraders,
        OrderStatus::AwaitingBuyer => Key::StatusAwaitingBuyer,
        OrderStatus::Confirmed => Key::StatusConfirmed,
        OrderStatus::AwaitingPayment => Key::StatusAwaitingPayment,
        OrderStatus::Preparing => Key::StatusPreparing,
        OrderStatus::ReadyForPickup => Key::StatusReadyForPickup,
        OrderStatus::OnDelivery => Key::StatusOnDelivery,
        OrderStatus::Delivered => Key::StatusDelivered,
        OrderStatus::Cancelled => Key::StatusCancelled,
        OrderStatus::Rejected => Key::StatusRejected,
    }
}

pub(super) fn payment_key(method: PaymentMethod) -> Key {
    match method {
        PaymentMethod::Transfer => Key::PayTransfer,
        PaymentMethod::Qris => Key::PayQris,
        PaymentMethod::CashOnDelivery => Key::PayCod,
        PaymentMethod::VirtualAccount => Key::PayVa,
    }
}

fn show_categories(turn: &mut Turn<'_>) -> RepoResult<BuyerState> {
    let mut buttons: Vec<Button> = turn
        .catalog
        .categories_in(&turn.market.slug)
        .into_iter()
        .map(|c| turn.button(category_key(c), Action::Category { category: c, page: 0 }.encode()))
        .collect();
    buttons.push(turn.button(Key::BtnMenu, Action::Menu.encode()));
    let text = turn.t(Key::ChooseCategory);
    turn.reply(Outbound::with_buttons(text, buttons));
    Ok(BuyerState::MainMenu)
}

fn show_category(state: BuyerState, category: Category, page: usize, turn: &mut Turn<'_>) -> RepoResult<BuyerState> {
    let items = turn.catalog.commodities_in(&turn.market.slug, category);
    let pages = items.len().div_ceil(PAGE_SIZE);
    if page >= pages {
        return stale(state, turn);
    }
    let lang = turn.lang;
    let mut buttons: Vec<Button> = items
        .iter()
        .skip(page * PAGE_SIZE)
        .take(PAGE_SIZE)
        .map(|c| {
            let cheapest =
                turn.catalog.offers_for(&turn.market.slug, &c.id).first().map(|o| o.price).unwrap_or_default();
            Button {
                label: format!("{} · {}/{}", c.display_name(lang), cheapest, c.unit.label()),
                payload: Action::Commodity(c.id.clone()).encode(),
            }
        })
        .collect();
    if page > 0 {
        buttons.push(turn.button(Key::BtnPrev, Action::Category { category, page: page - 1 }.encode()));
    }
    if page + 1 < pages {
        buttons.push(turn.button(Key::BtnNext, Action::Category { category, page: page + 1 }.encode()));
    }
    buttons.push(turn.button(Key::BtnBack, Action::Shop.encode()));
    let name = turn.t(category_key(category));
    let text = turn.tf(Key::CategoryPage, &[("category", &name), ("page", &(page + 1)), ("pages", &pages)]);
    // A page turn shows the new page in place of the one it was turned on, where the channel
    // can edit messages, instead of stacking pages up the chat.
    let turned = matches!(state, BuyerState::Browsing { category: c, page: p } if c == category && p != page);
    let replaces = if turned { turn.pressed_on.map(str::to_string) } else { None };
    turn.reply(Outbound { replaces, ..Outbound::with_buttons(text, buttons) });
    Ok(BuyerState::Browsing { category, page })
}

/// An offer of this market, with its commodity. `None` for offers of other markets or unknown ids.
fn market_offer<'c>(turn: &Turn<'c>, offer_id: i64) -> Option<(&'c Offer, &'c Commodity)> {
    let catalog = turn.catalog;
    let offer = catalog.offer(offer_id)?;
    let stall = catalog.stall(offer.stall_id)?;
    if stall.market != turn.market.slug {
        return None;
    }
    Some((offer, catalog.commodity(&offer.commodity)?))
}

fn show_commodity(state: BuyerState, id: &str, repo: &mut dyn Repo, turn: &mut Turn<'_>) -> RepoResult<BuyerState> {
    let catalog = turn.catalog;
    let Some(commodity) = catalog.commodity(id) else {
        return stale(state, turn);
    };
    let offers = catalog.offers_for(&turn.market.slug, id);
    if offers.is_empty() {
        let text = turn.tf(Key::NoOffers, &[("commodity", &commodity.display_name(turn.lang))]);
        turn.reply(Outbound::text(text));
        return Ok(state);
    }
    let unit = commodity.unit.label();
    let mut lines = Vec::new();
    let mut buttons = Vec::new();
    for (i, offer) in offers.iter().enumerate() {
        let Some(stall) = catalog.stall(offer.stall_id) else {
            continue;
        };
        let mut line = turn.tf(
            Key::OfferLine,
            &[
                ("n", &(i + 1)),
                ("stall", &stall.name),
                ("number", &stall.number),
                ("price", &offer.price),
                ("unit", &unit),
            ],
        );
        match repo.stock_of(offer.id)? {
            Some(0) => line.push_str(&turn.t(Key::OfferSoldOut)),
            Some(left) => {
                let left = Quantity::new(left, commodity.unit).map(|q| q.display(turn.lang)).unwrap_or_default();
                line.push_str(&turn.tf(Key::OfferStockLeft, &[("left", &left)]));
            }
            None => {}
        }
        lines.push(line);
        buttons.push(Button {
            label: format!("{} · {}", stall.name, offer.price),
            payload: Action::Offer(offer.id).encode(),
        });
    }
    buttons.push(turn.button(Key::BtnBack, Action::Category { category: commodity.category, page: 0 }.encode()));
    let text = turn.tf(
        Key::CommodityOffers,
        &[("commodity", &commodity.display_name(turn.lang)), ("unit", &unit), ("offers", &lines.join("\n"))],
    );
    // The market's picture of it (an admin's `/foto`), on the channel it was sent on.
    let photo = catalog.photo(&turn.market.slug, id, turn.user.channel.code()).map(str::to_string);
    turn.reply(Outbound { photo, ..Outbound::with_buttons(text, buttons) });
    Ok(BuyerState::ViewingCommodity { commodity: id.to_string() })
}

pub(super) fn search(query: &str, repo: &mut dyn Repo, turn: &mut Turn<'_>) -> RepoResult<BuyerState> {
    let catalog = turn.catalog;
    match catalog.search(&turn.market.slug, query) {
        SearchResult::Found(found) if found.len() == 1 => {
            show_commodity(BuyerState::MainMenu, &found[0].id.clone(), repo, turn)
        }
        SearchResult::Found(found) => {
            let lang = turn.lang;
            let mut buttons: Vec<Button> = found
                .iter()
                .map(|c| Button {
                    label: c.display_name(lang).to_string(),
                    payload: Action::Commodity(c.id.clone()).encode(),
                })
                .collect();
            buttons.push(turn.button(Key::BtnMenu, Action::Menu.encode()));
            let text = turn.tf(Key::SearchFound, &[("query", &query), ("count", &found.len())]);
            turn.reply(Outbound::with_buttons(text, buttons));
            Ok(BuyerState::MainMenu)
        }
        SearchResult::NotSoldHere(known) => {
            let lang = turn.lang;
            let lines: Vec<String> = known
                .iter()
                .map(|(c, markets)| {
                    let names: Vec<&str> = markets.iter().map(|m| m.name.as_str()).collect();
                    let elsewhere = if names.is_empty() {
                        String::new()
                    } else {
                        turn.tf(Key::SearchSoldElsewhere, &[("markets", &names.join(", "))])
                    };
                    turn.tf(
                        Key::SearchNotSoldHere,
                        &[
                            ("commodity", &c.display_name(lang)),
                            ("market", &turn.market.name),
                            ("elsewhere", &elsewhere),
                        ],
                    )
                })
                .collect();
            let buttons = vec![
                turn.button(Key::BtnShop, Action::Shop.encode()),
                turn.button(Key::BtnMenu, Action::Menu.encode()),
            ];
            turn.reply(Outbound::with_buttons(lines.join("\n"), buttons));
            Ok(BuyerState::ReceiveSearch)
        }
        SearchResult::NotFound { suggestions } if suggestions.is_empty() => {
            let text = turn.tf(Key::SearchNotFound, &[("query", &query)]);
            let buttons = vec![
                turn.button(Key::BtnShop, Action::Shop.encode()),
                turn.button(Key::BtnMenu, Action::Menu.encode()),
            ];
            turn.reply(Outbound::with_buttons(text, buttons));
            let _ = repo;
            Ok(BuyerState::ReceiveSearch)
        }
        SearchResult::NotFound { suggestions } => {
            let lang = turn.lang;
            let names: Vec<&str> = suggestions.iter().map(|c| c.display_name(lang)).collect();
            let text = turn.tf(Key::SearchDidYouMean, &[("query", &query), ("suggestions", &names.join(", "))]);
            let mut buttons: Vec<Button> = suggestions
                .iter()
                .map(|c| Button {
                    label: c.display_name(lang).to_string(),
                    payload: Action::Commodity(c.id.clone()).encode(),
                })
                .collect();
            buttons.push(turn.button(Key::BtnMenu, Action::Menu.encode()));
            turn.reply(Outbound::with_buttons(text, buttons));
            Ok(BuyerState::ReceiveSearch)
        }
    }
}

fn quick_label(q: Quantity, lang: Lang) -> String {
    match (q.unit(), q.base()) {
        (SaleUnit::Kilogram, 500) => "1/2 kg".to_string(),
        _ => q.display(lang),
    }
}

fn ask_quantity(offer_id: i64, turn: &mut Turn<'_>) -> RepoResult<BuyerState> {
    let Some((offer, commodity)) = market_offer(turn, offer_id) else {
        return stale(BuyerState::MainMenu, turn);
    };
    let stall = turn.catalog.stall(offer.stall_id).map(|s| s.name.clone()).unwrap_or_default();
    let lang = turn.lang;
    let mut buttons: Vec<Button> = commodity
        .unit
        .quick_amounts()
        .into_iter()
        .filter_map(|base| Quantity::new(base, commodity.unit).ok())
        .map(|q| Button {
            label: quick_label(q, lang),
            payload: Action::QuickQuantity { offer: offer_id, base: q.base() }.encode(),
        })
        .collect();
    buttons.push(turn.button(Key::BtnBack, Action::Commodity(commodity.id.clone()).encode()));
    let text = turn.tf(
        Key::AskQuantity,
        &[
            ("commodity", &commodity.display_name(lang)),
            ("stall", &stall),
            ("price", &offer.price),
            ("unit", &commodity.unit.label()),
            ("examples", &super::quantity_examples(turn, commodity.unit)),
        ],
    );
    turn.reply(Outbound::question(text, buttons));
    Ok(BuyerState::ReceiveQuantity { offer: offer_id })
}

/// What a shopper typed at an amount prompt for an offer: a quantity, money's worth or pieces,
/// with the quantity to pack at this stall's price.
fn asked_at(
    text: &str,
    offer: &Offer,
    commodity: &Commodity,
) -> Result<(Quantity, Option<crate::domain::amount::OrderedBy>), AmountError> {
    let amount = parse_amount(text, commodity.unit, commodity.piece)?;
    let quantity = amount.quantity(commodity.unit, commodity.step, offer.price)?;
    Ok((quantity, amount.ordered_by_at(commodity.unit)))
}

/// Says why an amount was refused.
pub(super) fn amount_error(e: &AmountError, commodity: &Commodity, turn: &mut Turn<'_>, typed: &str) {
    match e {
        AmountError::Quantity(q) => quantity_error(q, commodity, turn),
        AmountError::BelowStep { min } => {
            let lang = turn.lang;
            let step = Quantity::amount(commodity.step, commodity.unit).display(lang);
            let amount = Rupiah::parse(typed).map(|r| r.to_string()).unwrap_or_else(|| typed.trim().to_string());
            let text = turn.tf(
                Key::QtyBelowStep,
                &[("amount", &amount), ("commodity", &commodity.display_name(lang)), ("step", &step), ("min", min)],
            );
            turn.reply(Outbound::text(text));
        }
        AmountError::MoneyTooLarge { max } => {
            let text = turn.tf(Key::QtyMoneyTooLarge, &[("max", max)]);
            turn.reply(Outbound::text(text));
        }
    }
}

fn quantity_error(e: &QuantityError, commodity: &Commodity, turn: &mut Turn<'_>) {
    let lang = turn.lang;
    let unit = commodity.unit.label();
    let text = match e {
        QuantityError::NotANumber => {
            turn.tf(Key::QtyNotNumber, &[("examples", &super::quantity_examples(turn, commodity.unit))])
        }
        QuantityError::NotPositive => turn.t(Key::QtyNotPositive),
        QuantityError::TooSmall { min } => turn.tf(Key::QtyTooSmall, &[("min", &min.display(lang))]),
        QuantityError::TooLarge { max } => turn.tf(Key::QtyTooLarge, &[("max", &max.display(lang))]),
        QuantityError::WrongUnit { given, .. } => turn
            .tf(Key::QtyWrongUnit, &[("commodity", &commodity.display_name(lang)), ("unit", &unit), ("given", given)]),
        QuantityError::NotWhole { .. } => turn.tf(Key::QtyNotWhole, &[("unit", &unit)]),
        // Only where money cannot be meant (the reader of amounts takes it as money).
        QuantityError::LooksLikeMoney(_) => {
            turn.tf(Key::QtyNotNumber, &[("examples", &super::quantity_examples(turn, commodity.unit))])
        }
    };
    turn.reply(Outbound::text(text));
}

fn add_typed_quantity(offer_id: i64, text: &str, repo: &mut dyn Repo, turn: &mut Turn<'_>) -> RepoResult<BuyerState> {
    let Some((offer, commodity)) = market_offer(turn, offer_id) else {
        return stale(BuyerState::MainMenu, turn);
    };
    match asked_at(text, offer, commodity) {
        Ok((q, by)) => add_to_cart(offer_id, q, by, repo, turn),
        // Not an amount at all but the name of something sold here: the shopper moved on.
        Err(AmountError::Quantity(QuantityError::NotANumber))
            if !text.chars().any(|c| c.is_ascii_digit()) && is_commodity_name(turn, text) =>
        {
            search(text, repo, turn)
        }
        // A whole typed order instead of an amount ("tempe 2, tahu 5"): read as one.
        Err(AmountError::Quantity(QuantityError::NotANumber)) if super::typed_order::is_order(turn, text) => {
            super::typed_order::typed(text, repo, turn)
        }
        Err(e) => {
            amount_error(&e, commodity, turn, text);
            Ok(BuyerState::ReceiveQuantity { offer: offer_id })
        }
    }
}

fn is_commodity_name(turn: &Turn<'_>, text: &str) -> bool {
    matches!(turn.catalog.search(&turn.market.slug, text), SearchResult::Found(_))
}

fn add_to_cart(
    offer_id: i64,
    quantity: Quantity,
    by: Option<OrderedBy>,
    repo: &mut dyn Repo,
    turn: &mut Turn<'_>,
) -> RepoResult<BuyerState> {
    let Some((offer, commodity)) = market_offer(turn, offer_id) else {
        return stale(BuyerState::MainMenu, turn);
    };
    let cart = repo.cart()?;
    let existing = cart.iter().find(|l| l.offer_id == offer_id);
    let lang = turn.lang;
    // More of the same kind adds up as asked ("5rb" and "3rb" are "8rb"); a quantity added to
    // money or pieces makes the line a plain quantity.
    let new_by = match existing {
        None => by,
        Some(old) => match (old.ordered_by, by) {
            (Some(a), Some(b)) => a.plus(b),
            _ => None,
        },
    };
    let (new_qty, key) = match existing.map(|l| l.quantity) {
        Some(old) => match Quantity::new(old.base() + quantity.base(), quantity.unit()) {
            Ok(q) => (q, Key::AddedMore),
            Err(e) => {
                quantity_error(&e, commodity, turn);
                return Ok(BuyerState::ReceiveQuantity { offer: offer_id });
            }
        },
        None => {
            if cart.len() >= MAX_CART_LINES {
                turn.say(Key::CartFull);
                return show_cart(repo, turn);
            }
            (quantity, Key::AddedToCart)
        }
    };
    // Told early: the stall has less than that (placing the order checks again).
    if let Some(left) = repo.stock_of(offer_id)?
        && left < new_qty.base()
    {
        let lang = turn.lang;
        let shown = Quantity::new(left, commodity.unit).map(|q| q.display(lang)).unwrap_or_else(|_| "0".into());
        let key = if left == 0 { Key::SoldOutAtCheckout } else { Key::NotEnoughStock };
        let text = turn.tf(key, &[("commodity", &commodity.display_name(lang)), ("left", &shown)]);
        turn.reply(Outbound::text(text));
        return Ok(BuyerState::ReceiveQuantity { offer: offer_id });
    }
    repo.set_cart_line(offer_id, new_qty, new_by, turn.now)?;
    let stall = turn.catalog.stall(offer.stall_id).map(|s| s.name.clone()).unwrap_or_default();
    let text = turn.tf(
        key,
        &[
            ("qty", &describe(quantity, by, false, lang)),
            ("total_qty", &describe(new_qty, new_by, false, lang)),
            ("commodity", &commodity.display_name(lang)),
            ("stall", &stall),
            ("amount", &describe_price(line_price(offer.price, new_qty, new_by), new_by, false)),
        ],
    );
    turn.reply(Outbound::with_buttons(text, after_adding(turn)));
    Ok(BuyerState::MainMenu)
}

/// What a shopper may do after something went into the cart.
pub(super) fn after_adding(turn: &Turn<'_>) -> Vec<Button> {
    vec![
        turn.button(Key::BtnContinueShopping, Action::Shop.encode()),
        turn.button(Key::BtnCart, Action::Cart.encode()),
        turn.button(Key::BtnCheckout, Action::Checkout.encode()),
    ]
}

/// A cart line with its current price, or `None` when the offer is gone.
struct PricedLine<'c> {
    line: CartLine,
    offer: &'c Offer,
    commodity: &'c Commodity,
    stall_name: String,
    stall_number: String,
    total: Rupiah,
}

/// The cart at today's prices. Lines that can no longer be priced (the stall stopped selling it,
/// or it changed unit) are removed, and the shopper is told once.
fn current_cart<'c>(repo: &mut dyn Repo, turn: &mut Turn<'c>) -> RepoResult<Vec<PricedLine<'c>>> {
    let (lines, gone) = priced_cart(turn, repo.cart()?);
    if !gone.is_empty() {
        for offer_id in gone {
            repo.remove_cart_line(offer_id)?;
        }
        turn.say(Key::OfferGone);
    }
    Ok(lines)
}

fn priced_cart<'c>(turn: &Turn<'c>, cart: Vec<CartLine>) -> (Vec<PricedLine<'c>>, Vec<i64>) {
    let mut gone = Vec::new();
    let mut out = Vec::new();
    for line in cart {
        let Some((offer, commodity)) = market_offer(turn, line.offer_id) else {
            gone.push(line.offer_id);
            continue;
        };
        let Some(stall) = turn.catalog.stall(offer.stall_id) else {
            gone.push(line.offer_id);
            continue;
        };
        // A quantity stored for another unit (the commodity changed unit) cannot be priced.
        if line.quantity.unit() != commodity.unit {
            gone.push(line.offer_id);
            continue;
        }
        // Money buys what today's price gives (the estimate was made at the price of the day
        // it went into the cart).
        let mut line = line;
        if let Some(OrderedBy::Money(sum)) = line.ordered_by
            && let Ok(q) =
                crate::domain::amount::Amount::Money(sum).quantity(commodity.unit, commodity.step, offer.price)
        {
            line.quantity = q;
        }
        let total = line_price(offer.price, line.quantity, line.ordered_by);
        out.push(PricedLine {
            line,
            offer,
            commodity,
            stall_name: stall.name.clone(),
            stall_number: stall.number.clone(),
            total,
        });
    }
    (out, gone)
}

fn show_cart(repo: &mut dyn Repo, turn: &mut Turn<'_>) -> RepoResult<BuyerState> {
    let lines = current_cart(repo, turn)?;
    if lines.is_empty() {
        let text = turn.t(Key::CartEmpty);
        let buttons =
            vec![turn.button(Key::BtnShop, Action::Shop.encode()), turn.button(Key::BtnMenu, Action::Menu.encode())];
        turn.reply(Outbound::with_buttons(text, buttons));
        return Ok(BuyerState::MainMenu);
    }
    let lang = turn.lang;
    let mut text = turn.t(Key::CartHeader);
    let mut buttons = Vec::new();
    for (i, l) in lines.iter().enumerate() {
        text.push('\n');
        text.push_str(&turn.tf(
            Key::CartLine,
            &[
                ("n", &(i + 1)),
                ("commodity", &l.commodity.display_name(lang)),
                ("qty", &describe(l.line.quantity, l.line.ordered_by, false, lang)),
                ("price", &l.offer.price),
                ("unit", &l.commodity.unit.label()),
                ("stall", &l.stall_name),
                ("number", &l.stall_number),
                ("total", &describe_price(l.total, l.line.ordered_by, false)),
            ],
        ));
        buttons.push(Button {
            label: format!(
                "{}. {} {}",
                i + 1,
                l.commodity.display_name(lang),
                describe(l.line.quantity, l.line.ordered_by, false, lang)
            ),
            payload: Action::CartLine(l.line.offer_id).encode(),
        });
    }
    let total: Rupiah = lines.iter().map(|l| l.total).sum();
    text.push_str("\n\n");
    text.push_str(&turn.tf(Key::CartTotal, &[("total", &total)]));
    buttons.push(turn.button(Key::BtnCheckout, Action::Checkout.encode()));
    buttons.push(turn.button(Key::BtnContinueShopping, Action::Shop.encode()));
    buttons.push(turn.button(Key::BtnEmptyCart, Action::EmptyCart.encode()));
    turn.reply(Outbound::with_buttons(text, buttons));
    Ok(BuyerState::ViewingCart)
}

fn show_cart_line(offer_id: i64, repo: &mut dyn Repo, turn: &mut Turn<'_>) -> RepoResult<BuyerState> {
    let lines = current_cart(repo, turn)?;
    let Some(l) = lines.iter().find(|l| l.line.offer_id == offer_id) else {
        return stale(BuyerState::ViewingCart, turn);
    };
    let lang = turn.lang;
    let text = turn.tf(
        Key::CartLineMenu,
        &[
            ("commodity", &l.commodity.display_name(lang)),
            ("qty", &describe(l.line.quantity, l.line.ordered_by, false, lang)),
            ("stall", &l.stall_name),
            ("total", &describe_price(l.total, l.line.ordered_by, false)),
        ],
    );
    let buttons = vec![
        turn.button(Key::BtnChangeQty, Action::EditLine(offer_id).encode()),
        turn.button(Key::BtnRemove, Action::RemoveLine(offer_id).encode()),
        turn.button(Key::BtnBack, Action::Cart.encode()),
    ];
    turn.reply(Outbound::with_buttons(text, buttons));
    Ok(BuyerState::ViewingCartLine { offer: offer_id })
}

fn change_quantity(offer_id: i64, text: &str, repo: &mut dyn Repo, turn: &mut Turn<'_>) -> RepoResult<BuyerState> {
    let Some((_, commodity)) = market_offer(turn, offer_id) else {
        return stale(BuyerState::ViewingCart, turn);
    };
    if !repo.cart()?.iter().any(|l| l.offer_id == offer_id) {
        return stale(BuyerState::ViewingCart, turn);
    }
    let Some((offer, _)) = market_offer(turn, offer_id) else {
        return stale(BuyerState::ViewingCart, turn);
    };
    match asked_at(text, offer, commodity) {
        Ok((q, by)) => {
            repo.set_cart_line(offer_id, q, by, turn.now)?;
            let lang = turn.lang;
            let msg = turn.tf(
                Key::QtyChanged,
                &[("commodity", &commodity.display_name(lang)), ("qty", &describe(q, by, false, lang))],
            );
            turn.reply(Outbound::text(msg));
            show_cart(repo, turn)
        }
        Err(e) => {
            amount_error(&e, commodity, turn, text);
            Ok(BuyerState::ReceiveNewQuantity { offer: offer_id })
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Checkout

fn cancel_button(turn: &Turn<'_>) -> Button {
    turn.button(Key::BtnCancel, Action::Abort.encode())
}

fn start_checkout(repo: &mut dyn Repo, turn: &mut Turn<'_>) -> RepoResult<BuyerState> {
    if let Some(state) = refused_while_closed(repo, turn)? {
        return Ok(state);
    }
    let lines = current_cart(repo, turn)?;
    if lines.is_empty() {
        return show_cart(repo, turn);
    }
    let profile = repo.profile()?;
    let mut buttons = Vec::new();
    if let Some(name) = &profile.name {
        buttons.push(Button {
            label: turn.tf(Key::BtnUseSaved, &[("value", name)]),
            payload: Action::UseSavedName.encode(),
        });
    }
    buttons.push(cancel_button(turn));
    let text = turn.t(Key::AskName);
    turn.reply(Outbound::question(text, buttons));
    Ok(BuyerState::ReceiveName)
}

fn receive_name(text: &str, repo: &mut dyn Repo, turn: &mut Turn<'_>) -> RepoResult<BuyerState> {
    let name = text.split_whitespace().collect::<Vec<_>>().join(" ");
    let letters = name.chars().filter(|c| c.is_alphabetic()).count();
    let sensible = name.chars().all(|c| c.is_alphabetic() || c == ' ' || c == '.' || c == '\'' || c == '-');
    if letters < 2 || name.chars().count() > MAX_NAME_CHARS || !sensible {
        turn.say(Key::BadName);
        return Ok(BuyerState::ReceiveName);
    }
    ask_phone(name, repo, turn)
}

fn ask_phone(name: String, repo: &mut dyn Repo, turn: &mut Turn<'_>) -> RepoResult<BuyerState> {
    let profile = repo.profile()?;
    let mut buttons = Vec::new();
    if let Some(phone) = &profile.phone {
        buttons.push(Button {
            label: turn.tf(Key::BtnUseSaved, &[("value", phone)]),
            payload: Action::UseSavedPhone.encode(),
        });
    }
    buttons.push(cancel_button(turn));
    let text = turn.tf(Key::AskPhone, &[("name", &name)]);
    turn.reply(Outbound { request: Some(Request::Contact), ..Outbound::question(text, buttons) });
    Ok(BuyerState::ReceivePhone { name })
}

fn receive_phone(name: String, text: &str, repo: &mut dyn Repo, turn: &mut Turn<'_>) -> RepoResult<BuyerState> {
    match PhoneNumber::parse(text) {
        Ok(phone) => ask_address(name, phone, repo, turn),
        Err(_) => {
            turn.say(Key::BadPhone);
            Ok(BuyerState::ReceivePhone { name })
        }
    }
}

fn ask_address(name: String, phone: PhoneNumber, repo: &mut dyn Repo, turn: &mut Turn<'_>) -> RepoResult<BuyerState> {
    let profile = repo.profile()?;
    let mut buttons = Vec::new();
    // The saved address is offered only where this market delivers to it.
    let saved = profile.address.filter(|a| Address::parse_text(a).is_ok_and(|a| in_zone(&a, turn)));
    if let Some(address) = &saved {
        let short: String = address.chars().take(40).collect();
        buttons.push(Button {
            label: turn.tf(Key::BtnUseSaved, &[("value", &short)]),
            payload: Action::UseSavedAddress.encode(),
        });
    }
    buttons.push(cancel_button(turn));
    let text = turn.tf(Key::AskAddress, &[("market", &turn.market.name)]);
    turn.reply(Outbound { request: Some(Request::Location), ..Outbound::question(text, buttons) });
    Ok(BuyerState::ReceiveAddress { name, phone })
}

fn slot_label(turn: &Turn<'_>, choice: &SlotChoice) -> String {
    let today = local(turn.now).date_naive();
    let key = if choice.date == today { Key::SlotToday } else { Key::SlotTomorrow };
    turn.tf(key, &[("slot", &choice.slot), ("date", &choice.date.format("%d/%m"))])
}

/// The slots still to come that have room for another order.
fn open_slots(repo: &mut dyn Repo, turn: &Turn<'_>) -> RepoResult<Vec<SlotChoice>> {
    let choices = available_slots(&turn.market.slots, turn.now);
    let taken = repo.slot_orders(&choices)?;
    Ok(choices.into_iter().zip(taken).filter(|(_, n)| *n < turn.market.slot_capacity).map(|(c, _)| c).collect())
}

/// Whether this slot is still to come and has room for another order.
fn slot_open(choice: &SlotChoice, repo: &mut dyn Repo, turn: &Turn<'_>) -> RepoResult<bool> {
    if !available_slots(&turn.market.slots, turn.now).contains(choice) {
        return Ok(false);
    }
    Ok(repo.slot_orders(std::slice::from_ref(choice))?.first().is_none_or(|n| *n < turn.market.slot_capacity))
}

fn ask_slot(contact: Contact, repo: &mut dyn Repo, turn: &mut Turn<'_>) -> RepoResult<BuyerState> {
    let choices = open_slots(repo, turn)?;
    if choices.is_empty() {
        turn.say(Key::NoSlots);
        return show_menu(repo, turn);
    }
    let mut buttons: Vec<Button> = choices
        .iter()
        .map(|c| Button { label: slot_label(turn, c), payload: Action::Slot(c.code()).encode() })
        .collect();
    buttons.push(cancel_button(turn));
    let text = turn.t(Key::AskSlot);
    turn.reply(Outbound::with_buttons(text, buttons));
    Ok(BuyerState::ReceiveSlot { contact })
}

/// Whether this market takes the method (a QRIS or an account for transfers is configured).
fn offered(method: PaymentMethod, turn: &Turn<'_>) -> bool {
    turn.policy.payment.methods(&turn.market.slug).contains(&method)
}

fn ask_payment(contact: Contact, slot: SlotChoice, turn: &mut Turn<'_>) -> RepoResult<BuyerState> {
    let mut buttons: Vec<Button> = turn
        .policy
        .payment
        .methods(&turn.market.slug)
        .into_iter()
        .map(|m| turn.button(payment_key(m), Action::Payment(m).encode()))
        .collect();
    buttons.push(cancel_button(turn));
    let text = turn.t(Key::AskPayment);
    turn.reply(Outbound::with_buttons(text, buttons));
    Ok(BuyerState::ReceivePayment { contact, slot })
}

fn ask_note(contact: Contact, slot: SlotChoice, payment: PaymentMethod, turn: &mut Turn<'_>) -> RepoResult<BuyerState> {
    let text = turn.t(Key::AskNote);
    let buttons = vec![turn.button(Key::BtnNoNote, Action::NoNote.encode()), cancel_button(turn)];
    turn.reply(Outbound::question(text, buttons));
    Ok(BuyerState::ReceiveNote { contact, slot, payment })
}

/// The order summary; returns the total it showed, or `None` if the cart is empty.
fn summary_text(checkout: &Checkout, lines: &[PricedLine<'_>], turn: &Turn<'_>) -> (String, Rupiah) {
    let lang = turn.lang;
    let mut stalls: Vec<(&str, &str)> = Vec::new();
    for l in lines {
        if !stalls.iter().any(|(n, _)| *n == l.stall_number) {
            stalls.push((&l.stall_number, &l.stall_name));
        }
    }
    let mut body = String::new();
    for (number, name) in &stalls {
        let mine: Vec<&PricedLine<'_>> = lines.iter().filter(|l| l.stall_number == *number).collect();
        let subtotal: Rupiah = mine.iter().map(|l| l.total).sum();
        body.push_str(&turn.tf(Key::SummaryStall, &[("stall", name), ("number", number), ("subtotal", &subtotal)]));
        for l in mine {
            body.push('\n');
            body.push_str(&turn.tf(
                Key::SummaryLine,
                &[
                    ("commodity", &l.commodity.display_name(lang)),
                    ("qty", &describe(l.line.quantity, l.line.ordered_by, false, lang)),
                    ("price", &l.offer.price),
                    ("unit", &l.commodity.unit.label()),
                    ("total", &describe_price(l.total, l.line.ordered_by, false)),
                ],
            ));
        }
        body.push('\n');
    }
    let total: Rupiah = lines.iter().map(|l| l.total).sum();
    let c = &checkout.contact;
    let mut text = turn.tf(
        Key::Summary,
        &[
            ("lines", &body.trim_end()),
            ("total", &total),
            ("name", &c.name),
            ("phone", &c.phone),
            ("address", &c.address),
            ("slot", &slot_label(turn, &checkout.slot)),
            ("payment", &turn.t(payment_key(checkout.payment))),
        ],
    );
    if let Some(note) = &checkout.note {
        text.push('\n');
        text.push_str(&turn.tf(Key::SummaryNote, &[("note", note)]));
    }
    (text, total)
}

fn summary(checkout: Checkout, repo: &mut dyn Repo, turn: &mut Turn<'_>) -> RepoResult<BuyerState> {
    let lines = current_cart(repo, turn)?;
    if lines.is_empty() {
        return show_cart(repo, turn);
    }
    let (text, total) = summary_text(&checkout, &lines, turn);
    let buttons = vec![turn.button(Key::BtnPlaceOrder, Action::PlaceOrder.encode()), cancel_button(turn)];
    turn.reply(Outbound::with_buttons(text, buttons));
    Ok(BuyerState::ConfirmOrder { checkout, total })
}

fn place_order(
    checkout: Checkout,
    shown_total: Rupiah,
    repo: &mut dyn Repo,
    turn: &mut Turn<'_>,
) -> RepoResult<BuyerState> {
    // Closed while the shopper was checking out.
    if let Some(state) = refused_while_closed(repo, turn)? {
        return Ok(state);
    }
    let lines = current_cart(repo, turn)?;
    if lines.is_empty() {
        return show_cart(repo, turn);
    }
    // The slot may have passed, or filled up, while the shopper was deciding.
    if !slot_open(&checkout.slot, repo, turn)? {
        turn.say(Key::SlotGone);
        return ask_slot(checkout.contact, repo, turn);
    }
    let total: Rupiah = lines.iter().map(|l| l.total).sum();
    if total != shown_total {
        turn.say(Key::PricesChanged);
        return summary(checkout, repo, turn);
    }
    let order = NewOrder {
        buyer_name: checkout.contact.name.clone(),
        phone: checkout.contact.phone.clone(),
        address: checkout.contact.address.clone(),
        slot: checkout.slot,
        payment: checkout.payment,
        note: checkout.note.clone(),
        lines: lines
            .iter()
            .map(|l| NewOrderLine {
                offer_id: l.offer.id,
                stall_id: l.offer.stall_id,
                commodity_id: l.commodity.id.clone(),
                commodity_name: l.commodity.name.clone(),
                quantity: l.line.quantity,
                unit_price: l.offer.price,
                total: l.total,
                ordered_by: l.line.ordered_by,
            })
            .collect(),
        placed_at: turn.now,
        trader_deadline: turn.now + turn.policy.trader_deadline(&turn.market.slug),
    };
    let placed = match repo.place_order(&order)? {
        Ok(placed) => placed,
        Err(PlaceRefusal::PriceChanged) => {
            turn.say(Key::PricesChanged);
            return summary(checkout, repo, turn);
        }
        Err(PlaceRefusal::OutOfStock { offer_id, available }) => {
            let lang = turn.lang;
            let (name, left) = market_offer(turn, offer_id)
                .map(|(_, c)| {
                    let left = Quantity::new(available, c.unit).map(|q| q.display(lang)).unwrap_or_else(|_| "0".into());
                    (c.display_name(lang).to_string(), left)
                })
                .unwrap_or_default();
            let key = if available == 0 { Key::SoldOutAtCheckout } else { Key::NotEnoughStock };
            let text = turn.tf(key, &[("commodity", &name), ("left", &left)]);
            turn.reply(Outbound::text(text));
            return show_cart(repo, turn);
        }
    };
    let number = placed.number.clone();
    repo.clear_cart()?;
    let address = match &checkout.contact.address {
        Address::Text(t) => Some(t.as_str()),
        Address::Location { .. } => None,
    };
    repo.save_contact(&checkout.contact.name, &checkout.contact.phone, address)?;
    lifecycle::announce_new_order(repo, turn, placed.id)?;
    let mut stalls: Vec<i64> = order.lines.iter().map(|l| l.stall_id).collect();
    stalls.sort_unstable();
    stalls.dedup();
    let text = turn.tf(
        Key::OrderPlaced,
        &[
            ("number", &number),
            ("total", &total),
            ("stalls", &stalls.len()),
            ("slot", &slot_label(turn, &checkout.slot)),
        ],
    );
    let mut buttons =
        vec![turn.button(Key::BtnOrders, Action::Orders.encode()), turn.button(Key::BtnMenu, Action::Menu.encode())];
    // Consent to the market's news is asked once, under the first order, and never assumed.
    if repo.subscription()?.is_none() && repo.orders(2)?.len() == 1 {
        buttons.push(turn.button(Key::BtnSubscribe, Action::Subscribe.encode()));
    }
    turn.reply(Outbound::with_buttons(text, buttons));
    Ok(BuyerState::MainMenu)
}

// ---------------------------------------------------------------------------------------------
// Orders

fn show_orders(repo: &mut dyn Repo, turn: &mut Turn<'_>) -> RepoResult<BuyerState> {
    let orders = repo.orders(ORDERS_SHOWN)?;
    if orders.is_empty() {
        let text = turn.t(Key::OrdersNone);
        let buttons =
            vec![turn.button(Key::BtnShop, Action::Shop.encode()), turn.button(Key::BtnMenu, Action::Menu.encode())];
        turn.reply(Outbound::with_buttons(text, buttons));
        return Ok(BuyerState::MainMenu);
    }
    let mut text = turn.t(Key::OrdersHeader);
    let mut buttons = Vec::new();
    for o in &orders {
        let placed = local(o.placed_at).format("%d/%m %H:%M").to_string();
        let status = turn.t(status_key(o.status));
        text.push('\n');
        text.push_str(&turn.tf(
            Key::OrderLine,
            &[
                ("number", &o.number),
                ("placed", &placed),
                ("total", &o.total),
                ("status", &status),
                ("slot", &slot_label(turn, &o.slot)),
            ],
        ));
        if o.status.is_open() {
            buttons.push(Button {
                label: turn.tf(Key::BtnTrackOrder, &[("number", &o.number)]),
                payload: Action::Track(o.number.clone()).encode(),
            });
        }
        if o.cancellable {
            buttons.push(Button {
                label: turn.tf(Key::BtnCancelOrder, &[("number", &o.number)]),
                payload: Action::CancelOrder(o.number.clone()).encode(),
            });
        }
    }
    buttons.push(turn.button(Key::BtnMenu, Action::Menu.encode()));
    turn.reply(Outbound::with_buttons(text, buttons));
    Ok(BuyerState::MainMenu)
}

/// `/status <order>` and "Lacak pesanan": the order's timeline, for its own shopper only.
fn track(number: &OrderNumber, repo: &mut dyn Repo, turn: &mut Turn<'_>) -> RepoResult<BuyerState> {
    let order = match repo.order_id_by_number(number)? {
        Some(id) => repo.order(id)?,
        None => None,
    };
    match order {
        Some(order) if &order.buyer == turn.user => {
            let msg = super::delivery::track_message(repo, turn, &order)?;
            turn.reply(msg);
        }
        _ => {
            let text = turn.tf(Key::StatusNotFound, &[("number", number)]);
            turn.reply(Outbound::text(text));
        }
    }
    Ok(BuyerState::MainMenu)
}

fn cancel_order(number: OrderNumber, repo: &mut dyn Repo, turn: &mut Turn<'_>) -> RepoResult<BuyerState> {
    let before = match repo.order_id_by_number(&number)? {
        Some(id) => repo.order(id)?,
        None => None,
    };
    let key = match repo.cancel_order(&number, turn.now)? {
        Ok(_) => {
            if let Some(before) = &before {
                lifecycle::after_buyer_cancel(repo, turn, before)?;
            }
            Key::OrderCancelled
        }
        Err(CancelRefusal::NotFound) => Key::CancelNotFound,
        Err(CancelRefusal::AlreadyCancelled) => Key::CancelAlready,
        Err(CancelRefusal::ConfirmedByTrader) => Key::CancelConfirmed,
        Err(CancelRefusal::TooLate) => Key::CancelTooLate,
    };
    let text = turn.tf(key, &[("number", &number)]);
    turn.reply(Outbound::text(text));
    show_menu(repo, turn)
}
