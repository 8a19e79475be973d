//! The trader's conversation: registering with an invite code, answering orders (Terima / Ubah /
//! Tolak, packing), and keeping the stall's prices, stock and opening.
//!
//! [`TraderState`] is what the bot waits for from a trader who is in the middle of something
//! (a weighed amount, a reason). Every button is checked again here and in
//! [`super::lifecycle`]: a trader pressing on another stall's order, on a cancelled order, or
//! twice gets a clear answer and nothing changes.

use super::lifecycle::{self, Refusal};
use super::payload::{Action, ReasonCode};
use super::{Repo, RepoResult, Turn};
use crate::channel::{Button, Inbound, Outbound};
use crate::domain::catalog::Commodity;
use crate::domain::invite::{code_key, normalize_code};
use crate::domain::money::Rupiah;
use crate::domain::order::{
    Order, OrderLine, RejectReason, SubOrder, SubOrderStatus, adjustment_allowed, price_change_allowed,
};
use crate::domain::quantity::{Quantity, QuantityError, SaleUnit, parse_quantity};
use crate::domain::slot::local;
use crate::text::Key;
use serde::{Deserialize, Serialize};

const MAX_REASON_CHARS: usize = 200;

/// What the bot is waiting for from a trader.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub enum TraderState {
    #[default]
    Idle,
    /// Ubah: choosing which line of a sub-order to change.
    ChoosingLine { sub: i64 },
    /// The weighed amount (or `harga <price>`) for one line.
    ReceiveLineChange { sub: i64, line: i64 },
    /// A reason in the trader's own words, after "Lainnya".
    ReceiveRejectReason { sub: i64 },
}

impl TraderState {
    /// Waiting for typed text, so free text goes to this conversation. Choosing a line waits
    /// for a button only: a trader who walks away from it can still shop by typing.
    pub fn is_busy(&self) -> bool {
        matches!(self, TraderState::ReceiveLineChange { .. } | TraderState::ReceiveRejectReason { .. })
    }
}

/// Answers one input of a trader (or of anyone sending `/daftar`).
pub fn step(state: TraderState, input: &Inbound, repo: &mut dyn Repo, turn: &mut Turn<'_>) -> RepoResult<TraderState> {
    match input {
        Inbound::Command { name, args } => command(state, name, args, repo, turn),
        Inbound::Button(payload) => match Action::parse(payload) {
            Some(action) => act(state, action, repo, turn),
            None => {
                turn.say(Key::StaleButton);
                Ok(state)
            }
        },
        Inbound::Text(text) => typed(state, text, repo, turn),
        _ => {
            turn.say(Key::NotUnderstood);
            Ok(state)
        }
    }
}

fn refused(turn: &mut Turn<'_>, r: Refusal) {
    turn.say(r.key());
}

fn command(
    state: TraderState,
    name: &str,
    args: &str,
    repo: &mut dyn Repo,
    turn: &mut Turn<'_>,
) -> RepoResult<TraderState> {
    let stalls = repo.stalls_of(turn.user)?;
    match name {
        "daftar" => {
            let Some(code) = normalize_code(args) else {
                turn.say(if args.trim().is_empty() { Key::RegisterUsage } else { Key::InviteInvalid });
                return Ok(state);
            };
            // Codes are stored by their key only; a used one leaves no stored message in clear.
            let key = code_key(turn.secret, &code);
            // As typed ("abcd-efgh") and as read ("ABCDEFGH").
            let used = |repo: &mut dyn super::Repo| {
                repo.forget_code(turn.user, args.trim())?;
                repo.forget_code(turn.user, &code)
            };
            match repo.redeem_invite(&key, turn.user)? {
                Some(stall_id) => {
                    used(repo)?;
                    let (stall, number) = stall_names(turn, stall_id);
                    let text = turn
                        .tf(Key::Registered, &[("stall", &stall), ("number", &number), ("market", &turn.market.name)]);
                    let menu = Some(super::menu_for(repo, turn, turn.user)?);
                    turn.reply(Outbound { menu, ..Outbound::text(text) });
                    turn.say(Key::TraderHelp);
                }
                None => match repo.redeem_courier_invite(&key, turn.user)? {
                    Some(courier) => {
                        used(repo)?;
                        super::courier::registered(repo, turn, &courier)?
                    }
                    None if repo.redeem_admin_invite(&key, turn.user)? => {
                        used(repo)?;
                        let menu = Some(super::menu_for(repo, turn, turn.user)?);
                        let text = turn.tf(Key::AdminRegistered, &[("market", &turn.market.name)]);
                        turn.reply(Outbound { menu, ..Outbound::text(text) });
                        turn.say(Key::AdminHelp);
                    }
                    None => turn.say(Key::InviteInvalid),
                },
            }
            Ok(TraderState::Idle)
        }
        "bantuan" | "help" => {
            turn.say(Key::TraderHelp);
            Ok(state)
        }
        "harga" => {
            set_price(args, &stalls, repo, turn)?;
            Ok(TraderState::Idle)
        }
        "stok" => {
            set_stock(args, &stalls, repo, turn)?;
            Ok(TraderState::Idle)
        }
        "tutup" | "buka" => {
            let closing = name == "tutup";
            let today = local(turn.now).date_naive();
            for s in &stalls {
                repo.set_closed(*s, closing.then_some(today))?;
            }
            turn.catalog_changed = true;
            let names: Vec<String> = stalls.iter().map(|s| stall_names(turn, *s).0).collect();
            let key = if closing { Key::StallClosed } else { Key::StallOpened };
            let text = turn.tf(key, &[("stalls", &names.join(", "))]);
            turn.reply(Outbound::text(text));
            Ok(TraderState::Idle)
        }
        "pesanan" => {
            open_orders(&stalls, repo, turn)?;
            Ok(TraderState::Idle)
        }
        "rekap" => {
            let today = local(turn.now).date_naive();
            let (count, total) = repo.sales_on(&stalls, today)?;
            let text =
                turn.tf(Key::SalesToday, &[("count", &count), ("total", &total), ("date", &today.format("%d/%m/%Y"))]);
            turn.reply(Outbound::text(text));
            Ok(state)
        }
        _ => {
            turn.say(Key::UnknownCommand);
            Ok(state)
        }
    }
}

fn stall_names(turn: &Turn<'_>, stall_id: i64) -> (String, String) {
    turn.catalog.stall(stall_id).map(|s| (s.name.clone(), s.number.clone())).unwrap_or_default()
}

/// The commodity a trader names, searching the whole catalogue (a trader may start selling
/// something new). `None` after telling them.
fn named_commodity<'c>(turn: &mut Turn<'c>, query: &str) -> Option<&'c Commodity> {
    let catalog = turn.catalog;
    match catalog.find_any(query) {
        Some(c) => Some(c),
        None => {
            let text = turn.tf(Key::TraderUnknownCommodity, &[("query", &query)]);
            turn.reply(Outbound::text(text));
            None
        }
    }
}

/// `/harga bawang merah 36000`
fn set_price(args: &str, stalls: &[i64], repo: &mut dyn Repo, turn: &mut Turn<'_>) -> RepoResult<()> {
    let words: Vec<&str> = args.split_whitespace().collect();
    // The price is the last word, or the last two ("36 ribu", "Rp 36.000").
    let split = (1..words.len()).rev().find_map(|k| Rupiah::parse(&words[k..].join(" ")).map(|p| (k, p)));
    let Some((k, price)) = split else {
        turn.say(Key::PriceUsage);
        return Ok(());
    };
    let Some(commodity) = named_commodity(turn, &words[..k].join(" ")) else {
        return Ok(());
    };
    let reference = commodity.reference_price.value();
    if price.value() * 4 < reference || price.value() > reference * 4 {
        let text = turn.tf(
            Key::PriceImplausible,
            &[
                ("commodity", &commodity.name),
                ("price", &price),
                ("reference", &commodity.reference_price),
                ("unit", &commodity.unit.label()),
            ],
        );
        turn.reply(Outbound::text(text));
        return Ok(());
    }
    let selling: Vec<i64> = stalls
        .iter()
        .copied()
        .filter(|s| turn.catalog.offers_for(&turn.market.slug, &commodity.id).iter().any(|o| o.stall_id == *s))
        .collect();
    let targets = if selling.is_empty() { stalls.iter().copied().take(1).collect() } else { selling };
    for s in &targets {
        repo.set_price(*s, &commodity.id, price)?;
    }
    turn.catalog_changed = true;
    let names: Vec<String> = targets.iter().map(|s| stall_names(turn, *s).0).collect();
    let text = turn.tf(
        Key::PriceSet,
        &[
            ("commodity", &commodity.name),
            ("price", &price),
            ("unit", &commodity.unit.label()),
            ("stalls", &names.join(", ")),
        ],
    );
    turn.reply(Outbound::text(text));
    // Far from the office's reference price (but plausible): taken, and the admins look at it.
    if let Some(percent) = crate::domain::catalog::off_reference(price, commodity.reference_price) {
        let key = if price > commodity.reference_price { Key::AdminPriceAbove } else { Key::AdminPriceBelow };
        super::lifecycle::tell_admins(
            repo,
            turn,
            key,
            &[
                ("commodity", &commodity.name),
                ("stalls", &names.join(", ")),
                ("price", &price),
                ("percent", &percent),
                ("reference", &commodity.reference_price),
                ("unit", &commodity.unit.label()),
            ],
        )?;
    }
    Ok(())
}

/// `/stok bawang merah 10 kg`, `/stok cabai habis`, `/stok tempe ada` (not counted).
fn set_stock(args: &str, stalls: &[i64], repo: &mut dyn Repo, turn: &mut Turn<'_>) -> RepoResult<()> {
    let words: Vec<&str> = args.split_whitespace().collect();
    let catalog = turn.catalog;
    // The longest leading words that name a commodity; the rest is the amount.
    let found = (1..words.len()).rev().find_map(|k| catalog.find_any(&words[..k].join(" ")).map(|c| (k, c)));
    let Some((k, commodity)) = found else {
        if words.len() < 2 {
            turn.say(Key::StockUsage);
        } else {
            let query = words[..words.len() - 1].join(" ");
            let text = turn.tf(Key::TraderUnknownCommodity, &[("query", &query)]);
            turn.reply(Outbound::text(text));
        }
        return Ok(());
    };
    let amount = words[k..].join(" ").to_lowercase();
    let stock: Option<u64> = match amount.as_str() {
        "habis" | "kosong" | "0" => Some(0),
        "ada" | "banyak" | "bebas" => None,
        other => match parse_quantity(other, commodity.unit) {
            Ok(q) => Some(q.base()),
            Err(_) => {
                let text =
                    turn.tf(Key::StockBadAmount, &[("commodity", &commodity.name), ("unit", &commodity.unit.label())]);
                turn.reply(Outbound::text(text));
                return Ok(());
            }
        },
    };
    let mut changed = Vec::new();
    for s in stalls {
        if repo.set_stock(*s, &commodity.id, stock)? {
            changed.push(stall_names(turn, *s).0);
        }
    }
    if changed.is_empty() {
        let text = turn.tf(Key::StockNotSold, &[("commodity", &commodity.name)]);
        turn.reply(Outbound::text(text));
        return Ok(());
    }
    let shown = match stock {
        None => turn.t(Key::StockUncounted),
        Some(0) => turn.t(Key::StockSoldOut),
        Some(base) => crate::domain::quantity::Quantity::new(base, commodity.unit)
            .map(|q| q.display(turn.lang))
            .unwrap_or_else(|_| format!("{base}")),
    };
    let text =
        turn.tf(Key::StockSet, &[("commodity", &commodity.name), ("stock", &shown), ("stalls", &changed.join(", "))]);
    turn.reply(Outbound::text(text));
    Ok(())
}

/// `/pesanan`: every open sub-order of the trader's stalls, each with its buttons.
fn open_orders(stalls: &[i64], repo: &mut dyn Repo, turn: &mut Turn<'_>) -> RepoResult<()> {
    let subs = repo.open_sub_orders(stalls)?;
    if subs.is_empty() {
        turn.say(Key::TraderNoOpenOrders);
        return Ok(());
    }
    for sub_id in subs {
        let Some(order_id) = repo.order_id_of_sub(sub_id)? else {
            continue;
        };
        let Some(order) = repo.order(order_id)? else {
            continue;
        };
        let Some(sub) = order.sub(sub_id) else {
            continue;
        };
        let lang = turn.lang;
        let msg = match sub.status {
            SubOrderStatus::AwaitingTrader => {
                lifecycle::trader_order_message(turn, lang, &order, sub, Key::TraderNewOrder)
            }
            SubOrderStatus::Adjusted => Outbound::text(turn.tf(
                Key::TraderWaitingForBuyer,
                &[("number", &order.number), ("lines", &lifecycle::lines_text(turn, lang, sub))],
            )),
            _ => {
                let text = turn.tf(
                    Key::TraderAcceptedSummary,
                    &[("number", &order.number), ("lines", &lifecycle::lines_text(turn, lang, sub))],
                );
                Outbound::with_buttons(
                    text,
                    vec![
                        turn.button(Key::BtnPacked, Action::TraderPack(sub.id).encode()),
                        turn.button(Key::BtnRanOut, Action::TraderShortage(sub.id).encode()),
                    ],
                )
            }
        };
        turn.reply(msg);
    }
    Ok(())
}

/// The sub-order and order behind a trader's button, if it is theirs and still open.
fn own_sub(repo: &mut dyn Repo, turn: &Turn<'_>, sub_id: i64) -> RepoResult<Result<(Order, SubOrder), Refusal>> {
    let Some(order_id) = repo.order_id_of_sub(sub_id)? else {
        return Ok(Err(Refusal::NotYours));
    };
    let Some(order) = repo.order(order_id)? else {
        return Ok(Err(Refusal::NotYours));
    };
    let Some(sub) = order.sub(sub_id).cloned() else {
        return Ok(Err(Refusal::NotYours));
    };
    if !repo.stalls_of(turn.user)?.contains(&sub.stall_id) {
        return Ok(Err(Refusal::NotYours));
    }
    if !order.status.is_open() || sub.status.is_dropped() {
        return Ok(Err(Refusal::OrderClosed));
    }
    if sub.status != SubOrderStatus::AwaitingTrader {
        return Ok(Err(Refusal::AlreadyAnswered));
    }
    Ok(Ok((order, sub)))
}

/// The sub-order of a line, checked like [`own_sub`].
fn own_line(repo: &mut dyn Repo, turn: &Turn<'_>, line_id: i64) -> RepoResult<Result<(SubOrder, OrderLine), Refusal>> {
    let Some(order_id) = repo.order_id_of_line(line_id)? else {
        return Ok(Err(Refusal::NotYours));
    };
    let Some(order) = repo.order(order_id)? else {
        return Ok(Err(Refusal::NotYours));
    };
    let Some(sub) = order.subs.iter().find(|s| s.lines.iter().any(|l| l.id == line_id)).cloned() else {
        return Ok(Err(Refusal::NotYours));
    };
    match own_sub(repo, turn, sub.id)? {
        Ok(_) => {}
        Err(r) => return Ok(Err(r)),
    }
    let line = sub.lines.iter().find(|l| l.id == line_id).cloned();
    Ok(match line {
        Some(l) => Ok((sub, l)),
        None => Err(Refusal::NotYours),
    })
}

/// Ubah: the lines of the sub-order as buttons, and "done".
fn show_lines(repo: &mut dyn Repo, turn: &mut Turn<'_>, sub_id: i64) -> RepoResult<TraderState> {
    let (order, sub) = match own_sub(repo, turn, sub_id)? {
        Ok(x) => x,
        Err(r) => {
            refused(turn, r);
            return Ok(TraderState::Idle);
        }
    };
    let lang = turn.lang;
    let mut buttons: Vec<Button> = sub
        .lines
        .iter()
        .map(|l| Button {
            label: if l.out_of_stock {
                turn.tf(Key::BtnLineOutOfStock, &[("commodity", &l.commodity_name)])
            } else {
                format!("{} {}", l.commodity_name, l.describe(lang))
            },
            payload: Action::TraderLine(l.id).encode(),
        })
        .collect();
    buttons.push(turn.button(Key::BtnChangesDone, Action::TraderDone(sub.id).encode()));
    let text = turn.tf(
        Key::ChooseLineToChange,
        &[("number", &order.number), ("lines", &lifecycle::lines_text(turn, lang, &sub)), ("total", &sub.total())],
    );
    turn.reply(Outbound::with_buttons(text, buttons));
    Ok(TraderState::ChoosingLine { sub: sub.id })
}

/// "Ada yang habis" on a part already accepted (before it is packed): the lines still in it, to
/// choose the one that ran out.
fn shortage(repo: &mut dyn Repo, turn: &mut Turn<'_>, sub_id: i64) -> RepoResult<TraderState> {
    let (order, sub) = match lifecycle::accepted_sub(repo, turn, sub_id)? {
        Ok(x) => x,
        Err(r) => {
            refused(turn, r);
            return Ok(TraderState::Idle);
        }
    };
    let lang = turn.lang;
    let buttons: Vec<Button> = sub
        .lines
        .iter()
        .filter(|l| !l.out_of_stock)
        .map(|l| Button {
            label: turn.tf(Key::BtnLineRanOut, &[("commodity", &l.commodity_name), ("qty", &l.describe(lang))]),
            payload: Action::TraderDropLine(l.id).encode(),
        })
        .collect();
    let text = turn.tf(Key::ChooseLineRanOut, &[("number", &order.number)]);
    turn.reply(Outbound::with_buttons(text, buttons));
    Ok(TraderState::Idle)
}

fn act(state: TraderState, action: Action, repo: &mut dyn Repo, turn: &mut Turn<'_>) -> RepoResult<TraderState> {
    let outcome = match action {
        Action::TraderAccept(sub) => lifecycle::accept(repo, turn, sub)?,
        Action::TraderChange(sub) => return show_lines(repo, turn, sub),
        Action::TraderLine(line) => {
            let (sub, line) = match own_line(repo, turn, line)? {
                Ok(x) => x,
                Err(r) => {
                    refused(turn, r);
                    return Ok(state);
                }
            };
            let lang = turn.lang;
            let text = turn.tf(
                Key::AskWeighed,
                &[
                    ("commodity", &line.commodity_name),
                    ("ordered", &line.describe_ordered(lang)),
                    ("price", &line.unit_price),
                    ("unit", &line.quantity.unit().label()),
                    ("examples", &super::quantity_examples(turn, line.quantity.unit())),
                ],
            );
            let buttons = vec![
                turn.button(Key::BtnOutOfStock, Action::TraderOutOfStock(line.id).encode()),
                turn.button(Key::BtnBack, Action::TraderChange(sub.id).encode()),
            ];
            turn.reply(Outbound::question(text, buttons));
            return Ok(TraderState::ReceiveLineChange { sub: sub.id, line: line.id });
        }
        Action::TraderOutOfStock(line) => {
            let (sub, mut line) = match own_line(repo, turn, line)? {
                Ok(x) => x,
                Err(r) => {
                    refused(turn, r);
                    return Ok(state);
                }
            };
            if !line.out_of_stock {
                line.out_of_stock = true;
                line.total = Rupiah::ZERO;
                let actor = turn.actor(super::Role::Trader);
                repo.update_line(sub.id, &line, &actor)?;
                // The stall has none left: stop offering it.
                if let Some(stall) = turn.catalog.offer(line.offer_id).map(|o| o.stall_id) {
                    repo.set_stock(stall, &line.commodity_id, Some(0))?;
                }
            }
            return show_lines(repo, turn, sub.id);
        }
        Action::TraderDone(sub) => lifecycle::submit_changes(repo, turn, sub)?,
        Action::TraderReject(sub) => {
            if let Err(r) = own_sub(repo, turn, sub)? {
                refused(turn, r);
                return Ok(TraderState::Idle);
            }
            let text = turn.t(Key::AskRejectReason);
            let buttons = vec![
                turn.button(Key::ReasonHabis, Action::TraderReason { sub, reason: ReasonCode::Habis }.encode()),
                turn.button(Key::ReasonTutup, Action::TraderReason { sub, reason: ReasonCode::Tutup }.encode()),
                turn.button(Key::BtnOtherReason, Action::TraderReason { sub, reason: ReasonCode::Lainnya }.encode()),
            ];
            turn.reply(Outbound::with_buttons(text, buttons));
            return Ok(TraderState::ReceiveRejectReason { sub });
        }
        Action::TraderReason { sub, reason } => match reason {
            ReasonCode::Habis => lifecycle::reject(repo, turn, sub, RejectReason::Habis)?,
            ReasonCode::Tutup => lifecycle::reject(repo, turn, sub, RejectReason::Tutup)?,
            ReasonCode::Lainnya => {
                if let Err(r) = own_sub(repo, turn, sub)? {
                    refused(turn, r);
                    return Ok(TraderState::Idle);
                }
                let text = turn.t(Key::AskRejectReasonText);
                turn.reply(Outbound::question(text, Vec::new()));
                return Ok(TraderState::ReceiveRejectReason { sub });
            }
        },
        Action::TraderPack(sub) => lifecycle::pack(repo, turn, sub)?,
        Action::TraderShortage(sub) => return shortage(repo, turn, sub),
        Action::TraderDropLine(line) => lifecycle::drop_line(repo, turn, line)?,
        // Not a trader button: routed here by mistake.
        _ => Err(Refusal::NotYours),
    };
    if let Err(r) = outcome {
        refused(turn, r);
    }
    Ok(TraderState::Idle)
}

fn typed(state: TraderState, text: &str, repo: &mut dyn Repo, turn: &mut Turn<'_>) -> RepoResult<TraderState> {
    let text = text.trim();
    if matches!(text.to_lowercase().as_str(), "batal" | "cancel" | "menu") {
        turn.say(Key::TraderCancelled);
        return Ok(TraderState::Idle);
    }
    match state {
        TraderState::ReceiveRejectReason { sub } => {
            if text.is_empty() || text.chars().count() > MAX_REASON_CHARS {
                turn.say(Key::ReasonTooLong);
                return Ok(state);
            }
            if let Err(r) = lifecycle::reject(repo, turn, sub, RejectReason::Other(text.to_string()))? {
                refused(turn, r);
            }
            Ok(TraderState::Idle)
        }
        TraderState::ReceiveLineChange { sub, line } => change_line(sub, line, text, repo, turn),
        TraderState::ChoosingLine { .. } | TraderState::Idle => {
            turn.say(Key::TraderNotUnderstood);
            Ok(state)
        }
    }
}

/// A weighed amount (`1,1 kg`) or a new price (`harga 36000`) for one line.
fn change_line(
    sub_id: i64,
    line_id: i64,
    text: &str,
    repo: &mut dyn Repo,
    turn: &mut Turn<'_>,
) -> RepoResult<TraderState> {
    let state = TraderState::ReceiveLineChange { sub: sub_id, line: line_id };
    let (sub, mut line) = match own_line(repo, turn, line_id)? {
        Ok(x) => x,
        Err(r) => {
            refused(turn, r);
            return Ok(TraderState::Idle);
        }
    };
    let lowered = text.to_lowercase();
    if let Some(price_text) = lowered.strip_prefix("harga") {
        let Some(price) = Rupiah::parse(price_text) else {
            turn.say(Key::PriceUsage);
            return Ok(state);
        };
        if !price_change_allowed(line.ordered_unit_price.value(), price.value()) {
            turn.say(Key::ChangeOutOfLimits);
            return Ok(state);
        }
        line.unit_price = price;
    } else {
        let unit = line.quantity.unit();
        let q = match parse_quantity(text, unit) {
            Ok(q) => q,
            // A trader's bare "1300" on the scale is grams (shoppers' big numbers are rupiah).
            Err(QuantityError::LooksLikeMoney(n)) if matches!(unit, SaleUnit::Kilogram | SaleUnit::Liter) => {
                match Quantity::new(n, unit) {
                    Ok(q) => q,
                    Err(_) => {
                        turn.say(Key::ChangeOutOfLimits);
                        return Ok(state);
                    }
                }
            }
            Err(_) => {
                let text = turn.tf(Key::WeighedNotUnderstood, &[("examples", &super::quantity_examples(turn, unit))]);
                turn.reply(Outbound::text(text));
                return Ok(state);
            }
        };
        let by_piece = matches!(unit, SaleUnit::Piece(_));
        if !adjustment_allowed(line.ordered_quantity.base(), q.base(), by_piece) {
            turn.say(Key::ChangeOutOfLimits);
            return Ok(state);
        }
        // The line holds its quantity of the stall's stock (nothing once out of stock): take
        // the difference, or refuse when the recorded stock has less than that left.
        let old = if line.out_of_stock { 0 } else { line.quantity.base() };
        if q.base() > old {
            if !repo.take_stock(line.offer_id, q.base() - old)? {
                let available = repo.stock_of(line.offer_id)?.unwrap_or(0);
                let lang = turn.lang;
                let text = turn.tf(
                    Key::WeighedAboveStock,
                    &[
                        ("commodity", &line.commodity_name),
                        ("available", &Quantity::amount(available, unit).display(lang)),
                        ("qty", &q.display(lang)),
                    ],
                );
                turn.reply(Outbound::text(text));
                return Ok(state);
            }
        } else {
            repo.release_stock(line.offer_id, old - q.base())?;
        }
        line.quantity = q;
        line.out_of_stock = false;
    }
    // A line ordered by money costs the sum whatever the scale says ("Rp 5.000 of shallots").
    line.total = crate::domain::amount::line_price(line.unit_price, line.quantity, line.ordered_by);
    let actor = turn.actor(super::Role::Trader);
    repo.update_line(sub.id, &line, &actor)?;
    show_lines(repo, turn, sub.id)
}
