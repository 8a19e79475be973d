//! After delivery: the shopper rates the courier and each stall of the order (1-5 stars), then
//! may leave one comment. Every press is checked: the presser's own order, delivered, a courier
//! or stall that is part of it, not rated before.

use super::buyer::BuyerState;
use super::lifecycle::stall_label;
use super::payload::Action;
use super::{MarketRepo, Repo, RepoResult, Turn};
use crate::channel::{Button, Outbound};
use crate::domain::delivery::{DeliveryStatus, RatingTarget};
use crate::domain::order::{Order, OrderStatus};
use crate::text::{Key, Lang};

/// The longest comment kept.
pub const MAX_COMMENT_CHARS: usize = 500;

fn star_buttons(order: i64, sub: Option<i64>) -> Vec<Button> {
    (1..=5u8)
        .map(|stars| Button {
            label: "⭐".repeat(usize::from(stars)),
            payload: Action::Rate { order, sub, stars }.encode(),
        })
        .collect()
}

/// Who brought a delivered order, as a rating target, and their name: one of the market's
/// couriers, or the vendor's courier of that delivery.
fn courier_to_rate(repo: &mut dyn MarketRepo, order: &Order) -> RepoResult<Option<((RatingTarget, i64), String)>> {
    let Some(d) = repo.latest_delivery(order.id)?.filter(|d| d.status == DeliveryStatus::Delivered) else {
        return Ok(None);
    };
    Ok(match (d.courier_id, &d.vendor_courier) {
        (Some(id), _) => repo.courier(id)?.map(|c| ((RatingTarget::Courier, id), c.profile.name)),
        (None, Some(vendor)) => Some(((RatingTarget::VendorCourier, d.id), vendor.name.clone())),
        (None, None) => None,
    })
}

/// The next rating to ask for, in `lang`: the courier first, then each stall; `None` when all
/// are rated.
pub fn next_question(
    repo: &mut dyn MarketRepo,
    turn: &Turn<'_>,
    lang: Lang,
    order: &Order,
) -> RepoResult<Option<Outbound>> {
    let rated = repo.rated(order.id)?;
    if let Some((target, name)) = courier_to_rate(repo, order)?
        && !rated.contains(&target)
    {
        let text = turn.tf_in(lang, Key::RateCourierAsk, &[("courier", &name)]);
        return Ok(Some(Outbound::with_buttons(text, star_buttons(order.id, None))));
    }
    for sub in order.subs.iter().filter(|s| !s.status.is_dropped()) {
        if !rated.contains(&(RatingTarget::Stall, sub.stall_id)) {
            let (stall, _) = stall_label(turn, sub.stall_id);
            let text = turn.tf_in(lang, Key::RateStallAsk, &[("stall", &stall)]);
            return Ok(Some(Outbound::with_buttons(text, star_buttons(order.id, Some(sub.id)))));
        }
    }
    Ok(None)
}

/// Stars pressed by the shopper.
pub fn rate(
    repo: &mut dyn Repo,
    turn: &mut Turn<'_>,
    state: BuyerState,
    order_id: i64,
    sub: Option<i64>,
    stars: u8,
) -> RepoResult<BuyerState> {
    let Some(order) = repo.order(order_id)?.filter(|o| &o.buyer == turn.user) else {
        turn.say(Key::StaleButton);
        return Ok(state);
    };
    if order.status != OrderStatus::Delivered {
        turn.say(Key::RateNotYet);
        return Ok(state);
    }
    let target = match sub {
        None => match courier_to_rate(repo, &order)? {
            Some((target, _)) => target,
            None => {
                turn.say(Key::StaleButton);
                return Ok(state);
            }
        },
        Some(sub) => match order.sub(sub).filter(|s| !s.status.is_dropped()) {
            Some(s) => (RatingTarget::Stall, s.stall_id),
            None => {
                turn.say(Key::StaleButton);
                return Ok(state);
            }
        },
    };
    if !repo.rate(order.id, target.0, target.1, stars)? {
        turn.say(Key::RateAlready);
        return Ok(state);
    }
    let who = match target.0 {
        RatingTarget::Courier | RatingTarget::VendorCourier => {
            courier_to_rate(repo, &order)?.map(|(_, name)| name).unwrap_or_default()
        }
        RatingTarget::Stall => turn.catalog.stall(target.1).map(|s| s.name.clone()).unwrap_or_default(),
    };
    let text = turn.tf(Key::RateThanks, &[("stars", &"⭐".repeat(usize::from(stars))), ("who", &who)]);
    turn.reply(Outbound::text(text));
    let lang = turn.lang;
    match next_question(repo, turn, lang, &order)? {
        Some(question) => {
            turn.reply(question);
            Ok(state)
        }
        // In the middle of something (a checkout, say): the comment is not asked, so the next
        // thing they type is still an answer to that.
        None if !at_rest(&state) => {
            turn.say(Key::ReviewThanks);
            Ok(state)
        }
        None => {
            let text = turn.tf(Key::ReviewCommentAsk, &[("number", &order.number)]);
            let skip = turn.button(Key::BtnSkipComment, Action::SkipReviewComment(order.id).encode());
            turn.reply(Outbound::question(text, vec![skip]));
            Ok(BuyerState::ReceiveReviewComment { order: order.id })
        }
    }
}

/// States where typed text is not an answer to a question the bot asked.
fn at_rest(state: &BuyerState) -> bool {
    matches!(
        state,
        BuyerState::MainMenu
            | BuyerState::Browsing { .. }
            | BuyerState::ReceiveSearch
            | BuyerState::ViewingCommodity { .. }
            | BuyerState::ViewingCart
            | BuyerState::ReceiveReviewComment { .. }
    )
}

/// The comment typed after rating.
pub fn comment(repo: &mut dyn Repo, turn: &mut Turn<'_>, order_id: i64, text: &str) -> RepoResult<BuyerState> {
    let text = text.trim();
    if text.chars().count() > MAX_COMMENT_CHARS {
        turn.say(Key::TooLong);
        return Ok(BuyerState::ReceiveReviewComment { order: order_id });
    }
    repo.comment_ratings(order_id, text)?;
    turn.say(Key::ReviewThanks);
    Ok(BuyerState::MainMenu)
}
