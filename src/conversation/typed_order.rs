//! A shopper's order typed the way it is said ("bu, brambang sekilo, tempe 2 papan"): what the
//! bot understood, line by line with the stall it would take each from (the market's cheapest
//! open one, changeable) and the price, plus what it did not understand; nothing enters the cart
//! until the shopper taps "add all". A question ("harga cabe berapa?") is answered with prices.
//!
//! The lines under review live in the shopper's state, so a button refers to a line by its
//! position and every press is checked against that state and the catalogue of the moment.

use super::buyer::BuyerState;
use super::payload::Action;
use super::{Repo, RepoResult, Turn};
use crate::channel::{Button, Outbound};
use crate::domain::amount::{Amount, AmountError, OrderedBy, describe, describe_price, line_price};
use crate::domain::cart::MAX_CART_LINES;
use crate::domain::catalog::{Commodity, Offer};
use crate::domain::free_text::ReadOrder;
use crate::domain::money::Rupiah;
use crate::domain::quantity::{Quantity, QuantityError};
use crate::text::Key;
use serde::{Deserialize, Serialize};

/// One line of a typed order under review.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TypedLine {
    /// The commodity (the line stays the same thing whatever stall it is taken from).
    pub commodity: String,
    /// The stall's offer it would be taken from.
    pub offer: i64,
    /// The quantity in the commodity's base unit.
    pub base: u64,
    /// No amount was written: one of the commodity's unit is assumed.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub assumed: bool,
    /// Ordered by money (the quantity is estimated again at whichever stall is chosen) or by
    /// pieces.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ordered_by: Option<OrderedBy>,
}

/// Commodities one question is answered about, at most.
const MAX_ASKED: usize = 5;

/// Free text where the shopper may be shopping: a typed order goes to review, a question is
/// answered, and a bare name is a search as before.
pub fn typed(text: &str, repo: &mut dyn Repo, turn: &mut Turn<'_>) -> RepoResult<BuyerState> {
    let read = turn.catalog.read_order(text);
    if let Some(asked) = &read.question {
        return answer(asked, repo, turn);
    }
    let written = read.items.iter().filter(|i| !i.written.is_empty()).count();
    let refused = read.not_understood.iter().any(|n| n.error.is_some());
    if read.items.len() >= 2 || written >= 1 || refused {
        return review_new(&read, turn);
    }
    super::buyer::search(text, repo, turn)
}

/// Whether typed words read plainly as an order: several items, or one with its amount.
pub fn is_order(turn: &Turn<'_>, text: &str) -> bool {
    let read = turn.catalog.read_order(text);
    read.question.is_none() && (read.items.len() >= 2 || read.items.iter().any(|i| !i.written.is_empty()))
}

/// After "Cari": words to search, unless the reader finds an order in them (several items or a
/// written amount).
pub fn typed_after_search(text: &str, repo: &mut dyn Repo, turn: &mut Turn<'_>) -> RepoResult<BuyerState> {
    let read = turn.catalog.read_order(text);
    let written = read.items.iter().any(|i| !i.written.is_empty());
    if read.question.is_none() && (read.items.len() >= 2 || written) {
        return review_new(&read, turn);
    }
    super::buyer::search(text, repo, turn)
}

/// `/pesan <text>`: always read as an order (a question mark in it changes nothing).
pub fn order_command(args: &str, _repo: &mut dyn Repo, turn: &mut Turn<'_>) -> RepoResult<BuyerState> {
    if args.trim().is_empty() {
        turn.say(Key::TypedUsage);
        return Ok(BuyerState::MainMenu);
    }
    let read = turn.catalog.read_order_only(args);
    review_new(&read, turn)
}

/// The review of a message just read: each item from the market's cheapest open stall.
fn review_new(read: &ReadOrder, turn: &mut Turn<'_>) -> RepoResult<BuyerState> {
    let catalog = turn.catalog;
    let lang = turn.lang;
    let mut lines = Vec::new();
    let mut notes = Vec::new();
    let mut not_sold = Vec::new();
    let mut refused = Vec::new();
    for item in &read.items {
        match catalog.offers_for(&turn.market.slug, &item.commodity).first() {
            Some(offer) => {
                let Some(c) = catalog.commodity(&item.commodity) else { continue };
                match item.amount.quantity(c.unit, c.step, offer.price) {
                    Ok(q) => lines.push(TypedLine {
                        commodity: item.commodity.clone(),
                        offer: offer.id,
                        base: q.base(),
                        assumed: item.written.is_empty(),
                        ordered_by: item.amount.ordered_by_at(c.unit),
                    }),
                    // Less money than the smallest amount costs here.
                    Err(e) => refused.push((format!("{} {}", item.named, item.written), e)),
                }
            }
            None => {
                if let Some(c) = catalog.commodity(&item.commodity) {
                    not_sold.push(format!("{}{}", c.display_name(lang), sold_elsewhere(turn, &c.id)));
                }
            }
        }
    }
    let not_understood = read.not_understood.iter().map(|n| (n.text.clone(), n.error.clone(), n.problem.is_some()));
    let refused = refused.into_iter().map(|(text, e)| (text, Some(e), true));
    for (text, error, problem) in not_understood.chain(refused) {
        let why = match &error {
            Some(e) => why(e, turn),
            None if problem => turn.t(Key::TypedWhyAmbiguous),
            None => String::new(),
        };
        let text: String = text.chars().take(60).collect();
        notes.push(if why.is_empty() {
            turn.tf(Key::TypedPart, &[("text", &text)])
        } else {
            turn.tf(Key::TypedPartWhy, &[("text", &text), ("why", &why)])
        });
    }
    let mut extra = String::new();
    if !not_sold.is_empty() {
        extra.push_str(&turn.tf(Key::TypedNotSold, &[("market", &turn.market.name), ("items", &not_sold.join(", "))]));
    }
    if !notes.is_empty() {
        extra.push_str(&turn.tf(Key::TypedNotUnderstood, &[("parts", &notes.join("; "))]));
    }
    if read.cut {
        extra.push_str(&turn.t(Key::TypedCut));
    }
    if lines.is_empty() {
        let text = format!("{}{extra}", turn.t(Key::TypedNothing));
        let buttons = vec![
            turn.button(Key::BtnSearch, Action::Search.encode()),
            turn.button(Key::BtnMenu, Action::Menu.encode()),
        ];
        turn.reply(Outbound::with_buttons(text, buttons));
        return Ok(BuyerState::MainMenu);
    }
    show(lines, &extra, None, turn)
}

/// The review message: the lines, the total, what else there was to say, and the buttons. Each
/// showing gets a new number, so the buttons of an older one are stale.
fn show(lines: Vec<TypedLine>, extra: &str, replaces: Option<String>, turn: &mut Turn<'_>) -> RepoResult<BuyerState> {
    let lang = turn.lang;
    let review = review_number(turn);
    let mut text = turn.t(Key::TypedHeader);
    let mut total = Rupiah(0);
    for (i, line) in lines.iter().enumerate() {
        text.push('\n');
        match resolve(turn, line) {
            Some((offer, commodity, quantity)) => {
                let (stall, number) = stall_of(turn, offer);
                let amount = line_price(offer.price, quantity, line.ordered_by);
                total = Rupiah(total.value() + amount.value());
                text.push_str(&turn.tf(
                    Key::TypedLine,
                    &[
                        ("n", &(i + 1)),
                        ("commodity", &commodity.display_name(lang)),
                        ("qty", &describe(quantity, line.ordered_by, false, lang)),
                        ("stall", &stall),
                        ("number", &number),
                        ("amount", &describe_price(amount, line.ordered_by, false)),
                    ],
                ));
                if line.assumed {
                    text.push_str(&turn.t(Key::TypedAssumed));
                }
            }
            // Its stall stopped selling it meanwhile: another stall can be chosen.
            None => {
                let name = line_name(turn, line);
                text.push_str(&turn.tf(Key::TypedLineClosed, &[("n", &(i + 1)), ("commodity", &name)]));
            }
        }
    }
    text.push_str(&turn.tf(Key::TypedTotal, &[("total", &total)]));
    text.push_str(extra);
    let buttons = vec![
        turn.button(Key::BtnTypedAddAll, Action::TypedAddAll(review).encode()),
        turn.button(Key::BtnTypedChange, Action::TypedChange(review).encode()),
        turn.button(Key::BtnCancel, Action::Menu.encode()),
    ];
    turn.reply(Outbound { replaces, ..Outbound::with_buttons(text, buttons) });
    Ok(BuyerState::ReviewingTypedOrder { review, lines })
}

/// A number for one showing of a review, from the event that showed it (stable if the event
/// is handled again).
fn review_number(turn: &Turn<'_>) -> u32 {
    const CRC: crc::Crc<u32> = crc::Crc::<u32>::new(&crc::CRC_32_ISO_HDLC);
    CRC.checksum(turn.event_key.as_bytes())
}

/// The commodity's name of a line, whatever its stall.
fn line_name(turn: &Turn<'_>, line: &TypedLine) -> String {
    turn.catalog.commodity(&line.commodity).map(|c| c.display_name(turn.lang).to_string()).unwrap_or_default()
}

/// A line's offer, commodity and quantity as the catalogue stands: `None` when its stall no
/// longer sells it here.
fn resolve<'c>(turn: &Turn<'c>, line: &TypedLine) -> Option<(&'c Offer, &'c Commodity, Quantity)> {
    let catalog = turn.catalog;
    let offer = catalog.offers_for(&turn.market.slug, &line.commodity).into_iter().find(|o| o.id == line.offer)?;
    let commodity = catalog.commodity(&line.commodity)?;
    let quantity = match line.ordered_by {
        // Money buys more or less at another stall's price.
        Some(OrderedBy::Money(sum)) => Amount::Money(sum).quantity(commodity.unit, commodity.step, offer.price).ok()?,
        _ => Quantity::new(line.base, commodity.unit).ok()?,
    };
    Some((offer, commodity, quantity))
}

fn stall_of(turn: &Turn<'_>, offer: &Offer) -> (String, String) {
    turn.catalog.stall(offer.stall_id).map(|s| (s.name.clone(), s.number.clone())).unwrap_or_default()
}

/// Why an amount was refused, in a few words.
fn why(e: &AmountError, turn: &Turn<'_>) -> String {
    let lang = turn.lang;
    let e = match e {
        AmountError::Quantity(q) => q,
        AmountError::BelowStep { min } => return turn.tf(Key::TypedWhyBelowStep, &[("min", min)]),
        AmountError::MoneyTooLarge { max } => return turn.tf(Key::TypedWhyMoneyTooLarge, &[("max", max)]),
    };
    match e {
        QuantityError::TooLarge { max } => turn.tf(Key::TypedWhyTooLarge, &[("max", &max.display(lang))]),
        QuantityError::TooSmall { min } => turn.tf(Key::TypedWhyTooSmall, &[("min", &min.display(lang))]),
        QuantityError::WrongUnit { expected, .. } | QuantityError::NotWhole { unit: expected } => {
            turn.tf(Key::TypedWhyUnit, &[("unit", &expected.label())])
        }
        QuantityError::NotANumber | QuantityError::NotPositive | QuantityError::LooksLikeMoney(_) => {
            turn.t(Key::TypedWhyAmount)
        }
    }
}

/// A press on a typed order's buttons, checked against the review on show now.
pub fn act(state: BuyerState, action: Action, repo: &mut dyn Repo, turn: &mut Turn<'_>) -> RepoResult<BuyerState> {
    let pressed = match action {
        Action::TypedAddAll(r)
        | Action::TypedChange(r)
        | Action::TypedReview(r)
        | Action::TypedLine { review: r, .. }
        | Action::TypedStall { review: r, .. }
        | Action::TypedDrop { review: r, .. } => r,
        _ => return super::buyer::stale_press(state, turn),
    };
    let (review, mut lines) = match state {
        BuyerState::ReviewingTypedOrder { review, lines } if review == pressed => (review, lines),
        other => return super::buyer::stale_press(other, turn),
    };
    let replaces = turn.pressed_on.map(str::to_string);
    let same = |lines: Vec<TypedLine>| Ok(BuyerState::ReviewingTypedOrder { review, lines });
    let lang = turn.lang;
    match action {
        Action::TypedAddAll(_) => add_all(&lines, repo, turn),
        Action::TypedReview(_) => show(lines, "", replaces, turn),
        Action::TypedChange(_) => {
            let mut buttons = Vec::new();
            for (i, line) in lines.iter().enumerate() {
                let label = match resolve(turn, line) {
                    Some((_, commodity, quantity)) => turn.tf(
                        Key::TypedLineButton,
                        &[
                            ("n", &(i + 1)),
                            ("commodity", &commodity.display_name(lang)),
                            ("qty", &describe(quantity, line.ordered_by, false, lang)),
                        ],
                    ),
                    None => turn.tf(
                        Key::TypedLineButton,
                        &[("n", &(i + 1)), ("commodity", &line_name(turn, line)), ("qty", &"")],
                    ),
                };
                buttons.push(Button { label, payload: Action::TypedLine { review, line: i }.encode() });
            }
            buttons.push(turn.button(Key::BtnBack, Action::TypedReview(review).encode()));
            let text = turn.t(Key::TypedChooseLine);
            turn.reply(Outbound { replaces, ..Outbound::with_buttons(text, buttons) });
            same(lines)
        }
        Action::TypedLine { line: i, .. } => {
            let Some(line) = lines.get(i) else {
                return super::buyer::stale_press(BuyerState::ReviewingTypedOrder { review, lines }, turn);
            };
            let Some(commodity) = turn.catalog.commodity(&line.commodity) else {
                return super::buyer::stale_press(BuyerState::ReviewingTypedOrder { review, lines }, turn);
            };
            let unit = commodity.unit.label();
            let qty = match line.ordered_by {
                Some(OrderedBy::Money(sum)) => sum.to_string(),
                by => {
                    Quantity::new(line.base, commodity.unit).map(|q| describe(q, by, false, lang)).unwrap_or_default()
                }
            };
            let mut buttons = Vec::new();
            for offer in turn.catalog.offers_for(&turn.market.slug, &commodity.id) {
                let (stall, _) = stall_of(turn, offer);
                buttons.push(Button {
                    label: turn
                        .tf(Key::TypedStallButton, &[("stall", &stall), ("price", &offer.price), ("unit", &unit)]),
                    payload: Action::TypedStall { review, line: i, offer: offer.id }.encode(),
                });
            }
            buttons.push(turn.button(Key::BtnTypedDrop, Action::TypedDrop { review, line: i }.encode()));
            buttons.push(turn.button(Key::BtnBack, Action::TypedReview(review).encode()));
            let text = turn.tf(Key::TypedChooseStall, &[("commodity", &commodity.display_name(lang)), ("qty", &qty)]);
            turn.reply(Outbound { replaces, ..Outbound::with_buttons(text, buttons) });
            same(lines)
        }
        Action::TypedStall { line, offer, .. } => {
            // The new stall must sell the line's commodity here, now.
            let open = lines.get(line).is_some_and(|l| {
                turn.catalog.offers_for(&turn.market.slug, &l.commodity).iter().any(|o| o.id == offer)
            });
            if !open {
                return super::buyer::stale_press(BuyerState::ReviewingTypedOrder { review, lines }, turn);
            }
            lines[line].offer = offer;
            show(lines, "", replaces, turn)
        }
        Action::TypedDrop { line, .. } if line < lines.len() => {
            lines.remove(line);
            if lines.is_empty() {
                turn.say(Key::TypedAllDropped);
                return Ok(BuyerState::MainMenu);
            }
            show(lines, "", replaces, turn)
        }
        _ => super::buyer::stale_press(BuyerState::ReviewingTypedOrder { review, lines }, turn),
    }
}

/// Every line into the cart (added to what is there), each checked like a typed amount: the
/// cart's size, the line's bounds and the stall's stock. What cannot go in is said.
fn add_all(lines: &[TypedLine], repo: &mut dyn Repo, turn: &mut Turn<'_>) -> RepoResult<BuyerState> {
    let lang = turn.lang;
    let mut added = Vec::new();
    let mut problems = Vec::new();
    // The cart read once: what each offer has in it so far, kept up to date as lines go in.
    let mut in_cart: std::collections::HashMap<i64, (u64, Option<OrderedBy>)> =
        repo.cart()?.iter().map(|l| (l.offer_id, (l.quantity.base(), l.ordered_by))).collect();
    for line in lines {
        let Some((offer, commodity, quantity)) = resolve(turn, line) else {
            let why = turn.t(Key::TypedWhyClosed);
            problems.push(turn.tf(Key::TypedProblem, &[("commodity", &line_name(turn, line)), ("why", &why)]));
            continue;
        };
        let name = commodity.display_name(lang).to_string();
        let existing = in_cart.get(&offer.id).copied();
        if existing.is_none() && in_cart.len() >= MAX_CART_LINES {
            problems.push(turn.tf(Key::TypedProblem, &[("commodity", &name), ("why", &turn.t(Key::CartFull))]));
            continue;
        }
        // More of the same kind adds up as asked; mixed kinds make a plain quantity.
        let by = match existing {
            None => line.ordered_by,
            Some((_, old)) => old.zip(line.ordered_by).and_then(|(a, b)| a.plus(b)),
        };
        let wanted = match Quantity::new(existing.map_or(0, |e| e.0) + quantity.base(), commodity.unit) {
            Ok(q) => q,
            Err(e) => {
                let why = why(&e.into(), turn);
                problems.push(turn.tf(Key::TypedProblem, &[("commodity", &name), ("why", &why)]));
                continue;
            }
        };
        if let Some(left) = repo.stock_of(offer.id)?
            && left < wanted.base()
        {
            let shown = Quantity::new(left, commodity.unit).map(|q| q.display(lang)).unwrap_or_else(|_| "0".into());
            let why = turn.tf(Key::TypedWhyStock, &[("left", &shown)]);
            problems.push(turn.tf(Key::TypedProblem, &[("commodity", &name), ("why", &why)]));
            continue;
        }
        repo.set_cart_line(offer.id, wanted, by, turn.now)?;
        in_cart.insert(offer.id, (wanted.base(), by));
        let (stall, _) = stall_of(turn, offer);
        added.push(turn.tf(
            Key::TypedAddedLine,
            &[
                ("commodity", &name),
                ("qty", &describe(quantity, line.ordered_by, false, lang)),
                ("stall", &stall),
                ("amount", &describe_price(line_price(offer.price, quantity, line.ordered_by), line.ordered_by, false)),
            ],
        ));
    }
    let mut text = if added.is_empty() {
        turn.t(Key::TypedNoneAdded)
    } else {
        turn.tf(Key::TypedAdded, &[("count", &added.len()), ("lines", &added.join("\n"))])
    };
    if !problems.is_empty() {
        text.push_str(&turn.tf(Key::TypedNotAdded, &[("lines", &problems.join("\n"))]));
    }
    turn.reply(Outbound::with_buttons(text, super::buyer::after_adding(turn)));
    Ok(BuyerState::MainMenu)
}

/// " (ada di Pasar Dinoyo, Pasar Sukun)": the other markets that sell a commodity, if any.
fn sold_elsewhere(turn: &Turn<'_>, commodity: &str) -> String {
    let markets: Vec<&str> = turn
        .catalog
        .markets()
        .iter()
        .filter(|m| m.slug != turn.market.slug && turn.catalog.sold_in(&m.slug, commodity))
        .map(|m| m.name.as_str())
        .collect();
    if markets.is_empty() {
        return String::new();
    }
    format!(" ({})", turn.tf(Key::TypedSoldAt, &[("markets", &markets.join(", "))]))
}

/// "harga cabe berapa?", "ada daging sapi?": each commodity's prices here and where.
fn answer(asked: &[String], _repo: &mut dyn Repo, turn: &mut Turn<'_>) -> RepoResult<BuyerState> {
    let catalog = turn.catalog;
    let lang = turn.lang;
    if asked.is_empty() {
        turn.say(Key::QuestionWhich);
        return Ok(BuyerState::MainMenu);
    }
    let mut parts = Vec::new();
    let mut buttons = Vec::new();
    for id in asked.iter().take(MAX_ASKED) {
        let Some(commodity) = catalog.commodity(id) else {
            continue;
        };
        let name = commodity.display_name(lang);
        let offers = catalog.offers_for(&turn.market.slug, id);
        let (Some(cheapest), Some(dearest)) = (offers.first(), offers.iter().max_by_key(|o| o.price)) else {
            let name = format!("{name}{}", sold_elsewhere(turn, id));
            parts.push(turn.tf(Key::AnswerNotSold, &[("commodity", &name), ("market", &turn.market.name)]));
            continue;
        };
        let (stall, number) = stall_of(turn, cheapest);
        let price = if dearest.price > cheapest.price {
            turn.tf(Key::AnswerRange, &[("low", &cheapest.price), ("high", &dearest.price)])
        } else {
            cheapest.price.to_string()
        };
        parts.push(turn.tf(
            Key::AnswerPrice,
            &[
                ("commodity", &name),
                ("price", &price),
                ("unit", &commodity.unit.label()),
                ("count", &offers.len()),
                ("stall", &stall),
                ("number", &number),
            ],
        ));
        buttons.push(Button { label: name.to_string(), payload: Action::Commodity(id.clone()).encode() });
    }
    let mut text = parts.join("\n");
    if !buttons.is_empty() {
        text.push_str(&turn.t(Key::AnswerHint));
    }
    buttons.push(turn.button(Key::BtnMenu, Action::Menu.encode()));
    turn.reply(Outbound::with_buttons(text, buttons));
    Ok(BuyerState::MainMenu)
}
