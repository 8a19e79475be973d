//! Free delivery: offering an order to a courier, the courier's steps from the stalls to the
//! shopper's door, and the shopper's view of it all.
//!
//! A delivery starts when every stall has packed (or the slot is near) and is offered to one
//! on-shift courier at a time ([`choose_courier`]: fewest open jobs, then idle longest). An offer
//! not taken in time passes to the next courier; when nobody is left the market's admins are
//! told and assign it with `/tugaskan`. Every press is checked against the delivery as stored
//! (whose it is, where it stands), so an old or forged button changes nothing. Every step is
//! pushed to the shopper, and `/status` shows the whole timeline.

use super::lifecycle::{lang_of, slot_text, stall_label, tell_buyer, tell_traders};
use super::payload::Action;
use super::payment::CashOutcome;
use super::{MarketRepo, RepoError, RepoResult, Role, Turn};
use crate::channel::{Button, NoticeKind, Outbound};
use crate::domain::contact::Address;
use crate::domain::delivery::{
    Courier, CourierProfile, Delivery, DeliveryStatus, FailReason, Position, choose_courier, eta_between, whatsapp_link,
};
use crate::domain::money::Rupiah;
use crate::domain::order::{Order, OrderNumber, OrderStatus, PaymentMethod, SubOrder, SubOrderStatus};
use crate::domain::payment::paid_in_advance;
use crate::domain::slot::local;
use crate::integration::vendor::{Dropoff, Pickup, PickupStall, VendorJob, VendorStep, VendorUpdate};
use crate::text::{Key, Lang};

/// Why a courier's press was refused. Each maps to a sentence.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JobRefusal {
    /// Not this courier's delivery (never was, or a forged button).
    NotYours,
    /// It was theirs to take, but the offer moved on or an admin gave it to someone else.
    Moved,
    /// That step was done already, or the delivery is past it.
    AlreadyDone,
    /// The stall has not packed its part yet.
    NotPacked(String),
    /// Some stall's part is not collected yet.
    NotAllPicked,
}

pub type JobOutcome = Result<(), JobRefusal>;

/// How a courier's step ended when it did not go through: refused with a sentence for the
/// courier (nothing changed), or the store failed (the event is rolled back).
#[derive(Debug)]
pub enum StepFail {
    Refused(JobRefusal),
    Repo(RepoError),
}

impl From<RepoError> for StepFail {
    fn from(e: RepoError) -> StepFail {
        StepFail::Repo(e)
    }
}

impl From<JobRefusal> for StepFail {
    fn from(r: JobRefusal) -> StepFail {
        StepFail::Refused(r)
    }
}

/// A courier's step on a delivery.
pub type Step = Result<(), StepFail>;

impl JobRefusal {
    pub fn tell(&self, turn: &mut Turn<'_>) {
        let text = match self {
            JobRefusal::NotYours => turn.t(Key::JobNotYours),
            JobRefusal::Moved => turn.t(Key::JobMoved),
            JobRefusal::AlreadyDone => turn.t(Key::JobAlreadyDone),
            JobRefusal::NotPacked(stall) => turn.tf(Key::JobStallNotPacked, &[("stall", stall)]),
            JobRefusal::NotAllPicked => turn.t(Key::JobNotAllPicked),
        };
        turn.reply(Outbound::text(text));
    }
}

/// Stalls in the order a courier walks the market: by block letter, then by number
/// (`A-7` before `A-12`, both before `B-3`).
fn walking_key(number: &str) -> (String, u64, String) {
    let letters: String = number.chars().take_while(|c| c.is_alphabetic()).collect::<String>().to_uppercase();
    let digits: String = number.chars().skip_while(|c| !c.is_ascii_digit()).take_while(char::is_ascii_digit).collect();
    (letters, digits.parse().unwrap_or(u64::MAX), number.to_string())
}

/// The parts a courier collects, in walking order.
fn pickup_order<'o>(turn: &Turn<'_>, order: &'o Order) -> Vec<&'o SubOrder> {
    let mut subs: Vec<&SubOrder> = order.subs.iter().filter(|s| !s.status.is_dropped()).collect();
    subs.sort_by_key(|s| walking_key(&stall_label(turn, s.stall_id).1));
    subs
}

/// The courier's job: the stalls with what to collect, the drop-off, and the buttons for the
/// step the delivery is at.
fn job_message(turn: &Turn<'_>, lang: Lang, order: &Order, d: &Delivery, header: String) -> Outbound {
    let mut text = header;
    text.push_str("\n\n");
    text.push_str(&turn.tf_in(
        lang,
        Key::JobSummary,
        &[("number", &order.number), ("slot", &slot_text(turn, lang, order))],
    ));
    text.push('\n');
    text.push_str(&turn.tf_in(lang, Key::JobStallsHeader, &[]));
    let mut buttons = Vec::new();
    for (i, sub) in pickup_order(turn, order).iter().enumerate() {
        let (stall, number) = stall_label(turn, sub.stall_id);
        let mark = match sub.status {
            SubOrderStatus::PickedUp => Key::JobMarkPicked,
            SubOrderStatus::Packed => Key::JobMarkReady,
            _ => Key::JobMarkPacking,
        };
        let mark = turn.tf_in(lang, mark, &[]);
        text.push('\n');
        text.push_str(&turn.tf_in(
            lang,
            Key::JobStall,
            &[("n", &(i + 1)), ("stall_number", &number), ("stall", &stall), ("mark", &mark)],
        ));
        for l in sub.lines.iter().filter(|l| !l.out_of_stock) {
            text.push('\n');
            text.push_str(&turn.tf_in(
                lang,
                Key::JobItem,
                &[("commodity", &l.commodity_name), ("qty", &l.describe(lang))],
            ));
        }
        if d.status == DeliveryStatus::Assigned && sub.status != SubOrderStatus::PickedUp {
            buttons.push(Button {
                label: turn.tf_in(lang, Key::BtnPickedUp, &[("stall_number", &number)]),
                payload: Action::CourierPicked { delivery: d.id, sub: sub.id }.encode(),
            });
        }
    }
    text.push_str("\n\n");
    // A courier only offered the job sees the area; the shopper's name, phone and address are
    // for the courier who takes it (UU PDP: only those who need them).
    if d.status == DeliveryStatus::Offered {
        match (&order.address, order.area()) {
            (crate::domain::contact::Address::Location { lat, lon }, _) => {
                let km = crate::domain::contact::distance_km(turn.market.lat, turn.market.lon, *lat, *lon);
                let km = format!("{km:.1}").replace('.', ",");
                text.push_str(&turn.tf_in(lang, Key::JobDropoffDistance, &[("km", &km)]));
            }
            (_, area) => {
                let area = area
                    .unwrap_or_else(|| turn.texts.get(&turn.market.slug, lang, Key::AreaSharedLocation).to_string());
                text.push_str(&turn.tf_in(lang, Key::JobDropoffArea, &[("area", &area)]));
            }
        }
    } else {
        text.push_str(&turn.tf_in(
            lang,
            Key::JobDropoff,
            &[("name", &order.buyer_name), ("phone", &order.phone), ("address", &order.address)],
        ));
    }
    if let Some(note) = &order.note {
        text.push_str(&turn.tf_in(lang, Key::TraderNote, &[("note", note)]));
    }
    if order.payment == PaymentMethod::CashOnDelivery {
        text.push('\n');
        text.push_str(&turn.tf_in(lang, Key::JobCollectCash, &[("total", &order.total())]));
    }
    match d.status {
        DeliveryStatus::Offered => {
            buttons.push(turn.button_in(lang, Key::BtnTakeJob, Action::CourierTake(d.id).encode()));
            buttons.push(turn.button_in(lang, Key::BtnSkipJob, Action::CourierSkip(d.id).encode()));
        }
        DeliveryStatus::Assigned if buttons.is_empty() => {
            buttons.push(turn.button_in(lang, Key::BtnDepart, Action::CourierDepart(d.id).encode()));
        }
        DeliveryStatus::OnTheWay => {
            buttons.push(turn.button_in(lang, Key::BtnDelivered, Action::CourierDelivered(d.id).encode()));
            buttons.push(turn.button_in(lang, Key::BtnDeliveryFailed, Action::CourierFail(d.id).encode()));
        }
        _ => {}
    }
    Outbound::with_buttons(text, buttons)
}

/// The reply to a courier's press: shown in place of the message pressed on, where the
/// platform can edit it.
fn job_reply(turn: &mut Turn<'_>, order: &Order, d: &Delivery, header: String) {
    let mut msg = job_message(turn, turn.lang, order, d, header);
    msg.replaces = turn.pressed_on.map(str::to_string);
    turn.reply(msg);
}

/// Sends a courier their job (an offer, or one assigned to them).
fn send_job(
    repo: &mut dyn MarketRepo,
    turn: &mut Turn<'_>,
    courier: &Courier,
    order: &Order,
    d: &Delivery,
    header: Key,
) -> RepoResult<()> {
    let lang = lang_of(repo, turn, &courier.user)?;
    let minutes = turn.policy.courier_offer_timeout.num_minutes();
    let header = turn.tf_in(lang, header, &[("market", &turn.market.name), ("minutes", &minutes)]);
    let msg = job_message(turn, lang, order, d, header);
    turn.send(&courier.user, Outbound { notice: Some(NoticeKind::NewOrder), ..msg });
    Ok(())
}

fn tell_courier(
    repo: &mut dyn MarketRepo,
    turn: &mut Turn<'_>,
    courier_id: i64,
    key: Key,
    number: &OrderNumber,
) -> RepoResult<()> {
    let Some(courier) = repo.courier(courier_id)? else {
        return Ok(());
    };
    let lang = lang_of(repo, turn, &courier.user)?;
    let text =
        turn.tf_in(lang, key, &[("number", number), ("minutes", &turn.policy.courier_offer_timeout.num_minutes())]);
    turn.send(&courier.user, Outbound { notice: Some(NoticeKind::TraderUpdate), ..Outbound::text(text) });
    Ok(())
}

/// `/tugas`: one of the courier's open jobs, with the buttons for its current step.
pub fn show_job(repo: &mut dyn MarketRepo, turn: &mut Turn<'_>, d: &Delivery) -> RepoResult<()> {
    let Some(order) = repo.order(d.order_id)? else {
        return Ok(());
    };
    let key = if d.status == DeliveryStatus::Offered { Key::JobOffer } else { Key::JobCurrent };
    // The time left on the offer, not the whole timeout.
    let minutes = d.offer_deadline.map(|at| (at - turn.now).num_minutes().max(1)).unwrap_or_default();
    let header = turn.tf(key, &[("market", &turn.market.name), ("minutes", &minutes)]);
    let msg = job_message(turn, turn.lang, &order, d, header);
    turn.reply(msg);
    Ok(())
}

/// Moves a delivery if the move is legal (a refused move is a bug in the caller's checks, so it
/// is answered as "already done" rather than applied).
fn move_delivery(
    repo: &mut dyn MarketRepo,
    d: &mut Delivery,
    to: DeliveryStatus,
    actor: &str,
    note: Option<&str>,
) -> RepoResult<JobOutcome> {
    if !d.status.can_move_to(to) {
        return Ok(Err(JobRefusal::AlreadyDone));
    }
    d.status = to;
    if to != DeliveryStatus::Offered {
        d.offer_deadline = None;
    }
    repo.save_delivery(d, actor, note)?;
    Ok(Ok(()))
}

/// The order is ready for pickup, or its slot is near: it gets a delivery, offered to a courier,
/// unless it has one. A courier already holding it hears that every stall has packed.
pub fn order_ready(repo: &mut dyn MarketRepo, turn: &mut Turn<'_>, order_id: i64, actor: &str) -> RepoResult<()> {
    let Some(order) = repo.order(order_id)? else {
        return Ok(());
    };
    if let Some(d) = repo.latest_delivery(order_id)? {
        if d.status == DeliveryStatus::Assigned
            && order.status == OrderStatus::ReadyForPickup
            && let Some(courier) = d.courier_id.map(|id| repo.courier(id)).transpose()?.flatten()
        {
            send_job(repo, turn, &courier, &order, &d, Key::JobAllReady)?;
        }
        return Ok(());
    }
    let mut d = repo.create_delivery(order_id, actor)?;
    dispatcher(turn).start(repo, turn, &order, &mut d, actor)
}

/// How far ahead of its slot a packed order is offered to a courier at once (a courier can plan
/// the morning); an order packed earlier than that waits for the timer's lead time.
pub fn offer_ahead() -> chrono::Duration {
    chrono::Duration::hours(2)
}

/// Whether the order's slot starts within `ahead` from now (or has started).
pub fn slot_within(turn: &Turn<'_>, order: &Order, ahead: chrono::Duration) -> bool {
    let starts = order.slot.date.and_time(order.slot.slot.start);
    starts <= (local(turn.now) + ahead).naive_local()
}

/// How a market's orders get to the shopper's door: its own couriers, or an outside vendor
/// (`delivery = "vendor"` in the market's config). `start` is called once for each new delivery,
/// inside the event's transaction.
pub trait Dispatcher {
    fn start(
        &self,
        repo: &mut dyn MarketRepo,
        turn: &mut Turn<'_>,
        order: &Order,
        d: &mut Delivery,
        actor: &str,
    ) -> RepoResult<()>;
}

/// The market's own couriers, offered the job one at a time.
pub struct OwnCouriers;

impl Dispatcher for OwnCouriers {
    fn start(
        &self,
        repo: &mut dyn MarketRepo,
        turn: &mut Turn<'_>,
        order: &Order,
        d: &mut Delivery,
        actor: &str,
    ) -> RepoResult<()> {
        offer_next(repo, turn, order, d, actor)
    }
}

/// An outside vendor: the job request is queued with the delivery and posted by the runtime;
/// the vendor's callbacks move it on ([`vendor_update`]).
pub struct OutsideVendor;

impl Dispatcher for OutsideVendor {
    fn start(
        &self,
        repo: &mut dyn MarketRepo,
        turn: &mut Turn<'_>,
        order: &Order,
        d: &mut Delivery,
        actor: &str,
    ) -> RepoResult<()> {
        d.by_vendor = true;
        d.courier_id = None;
        if move_delivery(repo, d, DeliveryStatus::Offered, actor, Some("vendor"))?.is_err() {
            return Ok(());
        }
        let job = vendor_job(turn, order, d);
        repo.request_vendor_job(d.id, &job)
    }
}

/// Which dispatcher a market uses.
pub fn dispatcher(turn: &Turn<'_>) -> &'static dyn Dispatcher {
    if turn.policy.uses_vendor(&turn.market.slug) { &OutsideVendor } else { &OwnCouriers }
}

/// The job request for the vendor: stalls in walking order with what to collect, the drop-off.
fn vendor_job(turn: &Turn<'_>, order: &Order, d: &Delivery) -> VendorJob {
    let lang = turn.default_lang;
    let stalls = pickup_order(turn, order)
        .into_iter()
        .map(|sub| {
            let (name, number) = stall_label(turn, sub.stall_id);
            let items = sub
                .lines
                .iter()
                .filter(|l| !l.out_of_stock)
                .map(|l| format!("{} {}", l.commodity_name, l.describe(lang)))
                .collect();
            PickupStall { number, name, items }
        })
        .collect();
    let (address, lat, lon) = match &order.address {
        Address::Text(t) => (Some(t.clone()), None, None),
        Address::Location { lat, lon } => (None, Some(*lat), Some(*lon)),
    };
    VendorJob {
        reference: crate::integration::vendor::reference(&turn.market.slug, d.id),
        order: order.number.to_string(),
        pickup: Pickup {
            market: turn.market.name.clone(),
            address: turn.market.address.clone(),
            lat: turn.market.lat,
            lon: turn.market.lon,
            stalls,
        },
        dropoff: Dropoff {
            name: order.buyer_name.clone(),
            phone: order.phone.e164().to_string(),
            address,
            lat,
            lon,
            note: order.note.clone(),
        },
        slot: format!("{} {}", order.slot.date.format("%Y-%m-%d"), order.slot.slot),
        cash_on_delivery: if order.payment == PaymentMethod::CashOnDelivery { order.total().value() } else { 0 },
    }
}

/// Collects every remaining part (a courier of the vendor's, or our own, has it all) and puts the
/// order on the road. False when the order cannot go on the road (closed meanwhile).
fn order_on_the_road(repo: &mut dyn MarketRepo, order: &Order, actor: &str) -> RepoResult<bool> {
    // Nothing is written unless the whole move can be made (an order still with its traders,
    // or waiting for payment, stays as it is).
    let reachable = order.status.can_move_to(OrderStatus::OnDelivery)
        || (order.status.can_move_to(OrderStatus::ReadyForPickup)
            && OrderStatus::ReadyForPickup.can_move_to(OrderStatus::OnDelivery));
    if !reachable {
        return Ok(false);
    }
    for sub in order.subs.iter().filter(|s| !s.status.is_dropped()) {
        let mut status = sub.status;
        for next in [SubOrderStatus::Packed, SubOrderStatus::PickedUp] {
            if status.can_move_to(next) {
                repo.set_sub_status(order.id, sub.id, status, next, actor, None)?;
                status = next;
            }
        }
    }
    let mut status = order.status;
    if status != OrderStatus::ReadyForPickup && status.can_move_to(OrderStatus::ReadyForPickup) {
        repo.set_order_status(order.id, status, OrderStatus::ReadyForPickup, actor, None)?;
        status = OrderStatus::ReadyForPickup;
    }
    if !status.can_move_to(OrderStatus::OnDelivery) {
        return Ok(false);
    }
    repo.set_order_status(order.id, status, OrderStatus::OnDelivery, actor, None)?;
    Ok(true)
}

/// The vendor's news about a job. Facts (its job id, its courier, a newer position) are kept
/// whatever the order of arrival; a step is taken only forward, so a duplicate or late callback
/// never moves a delivery back.
pub fn vendor_update(repo: &mut dyn MarketRepo, turn: &mut Turn<'_>, u: &VendorUpdate) -> RepoResult<()> {
    let actor = "vendor";
    let Some((market, id)) = u.target() else {
        return Ok(());
    };
    let found = if market == turn.market.slug { repo.delivery(id)? } else { None };
    let Some(mut d) = found.filter(|d| d.by_vendor) else {
        tracing::warn!(reference = %u.reference, "vendor news about a delivery the vendor does not have; ignored");
        return Ok(());
    };
    let Some(order) = repo.order(d.order_id)? else {
        return Ok(());
    };
    if d.vendor_job.is_none() {
        d.vendor_job = u.job_id.clone();
    }
    if let Some(profile) = u.courier_profile() {
        d.vendor_courier = Some(profile);
    }
    if let Some(p) = u.position
        && d.vendor_position.is_none_or(|old| old.at < u.at)
    {
        d.vendor_position = Some(Position { lat: p.lat, lon: p.lon, at: u.at });
    }
    let target = match u.status {
        VendorStep::Assigned => DeliveryStatus::Assigned,
        VendorStep::PickedUp => DeliveryStatus::OnTheWay,
        VendorStep::Delivered => DeliveryStatus::Delivered,
        VendorStep::Failed => DeliveryStatus::Failed,
        VendorStep::Rejected => DeliveryStatus::Unassigned,
    };
    let forward = match u.status {
        // Before the goods are collected the vendor may give the job back (its courier
        // cancelled, or it never could).
        VendorStep::Rejected => matches!(d.status, DeliveryStatus::Offered | DeliveryStatus::Assigned),
        // A job the vendor gave back is the admins' now: older news of it moves nothing.
        _ => d.status.is_open() && d.status != DeliveryStatus::Unassigned && target.progress() > d.status.progress(),
    };
    if !forward || !order.status.is_open() {
        // Old or repeated news: the facts are kept, nothing moves.
        repo.save_delivery(&d, actor, None)?;
        return Ok(());
    }
    let lang = lang_of(repo, turn, &order.buyer)?;
    let skipped_collection = d.status.progress() < DeliveryStatus::OnTheWay.progress();
    match u.status {
        VendorStep::Assigned => {
            d.status = DeliveryStatus::Assigned;
            repo.save_delivery(&d, actor, None)?;
            let card = d.vendor_courier.as_ref().map(|c| courier_card(turn, lang, c)).unwrap_or_default();
            tell_buyer_step(
                repo,
                turn,
                &order,
                Key::BuyerCourierAssigned,
                &[("number", &order.number), ("courier", &card)],
            )?;
        }
        VendorStep::PickedUp => {
            if !order_on_the_road(repo, &order, actor)? {
                tracing::warn!(order = %order.number, status = ?order.status, "vendor picked up an order that cannot go on the road; kept as news only");
                repo.save_delivery(&d, actor, None)?;
                return Ok(());
            }
            d.status = DeliveryStatus::OnTheWay;
            repo.save_delivery(&d, actor, None)?;
            let from = fresh_position(turn, d.vendor_position).unwrap_or((turn.market.lat, turn.market.lon));
            let eta = eta_text(turn, lang, &order, from);
            tell_buyer_step(repo, turn, &order, Key::BuyerOnTheWay, &[("number", &order.number), ("eta", &eta)])?;
        }
        VendorStep::Delivered | VendorStep::Failed => {
            // Out of order: the pickup's news may come later (or never); the order was on the road.
            if skipped_collection && !order_on_the_road(repo, &order, actor)? {
                tracing::warn!(order = %order.number, status = ?order.status, "vendor news for an order that cannot go on the road; kept as news only");
                repo.save_delivery(&d, actor, None)?;
                return Ok(());
            }
            let Some(order) = repo.order(order.id)? else {
                return Ok(());
            };
            if u.status == VendorStep::Delivered {
                // No cash is recorded for an order paid at the door: the vendor's courier has no
                // chat with us, and its callbacks do not say what was collected (the job only
                // told it how much to collect).
                d.status = DeliveryStatus::Delivered;
                d.proof = u.proof_url.clone();
                repo.save_delivery(&d, actor, None)?;
                repo.set_order_status(order.id, order.status, OrderStatus::Delivered, actor, None)?;
                let market_name = turn.market.name.clone();
                tell_buyer_step(
                    repo,
                    turn,
                    &order,
                    Key::BuyerDelivered,
                    &[("number", &order.number), ("market", &market_name)],
                )?;
                if let Some(question) = super::review::next_question(repo, turn, lang, &order)? {
                    turn.send(&order.buyer, Outbound { notice: Some(NoticeKind::OrderUpdate), ..question });
                }
            } else {
                let reason = u.fail_reason();
                d.status = DeliveryStatus::Failed;
                d.fail_reason = Some(reason);
                repo.save_delivery(&d, actor, Some(reason.code()))?;
                repo.set_order_status(order.id, order.status, OrderStatus::ReadyForPickup, actor, Some(reason.code()))?;
                let courier = d.vendor_courier.as_ref().map(|c| c.name.clone()).unwrap_or_default();
                delivery_failed_news(repo, turn, &order, &courier, reason)?;
            }
        }
        VendorStep::Rejected => {
            d.status = DeliveryStatus::Unassigned;
            repo.save_delivery(&d, actor, u.reason.as_deref())?;
            let why = u.reason.clone().unwrap_or_default();
            for admin in super::lifecycle::admins_of(repo, turn)? {
                let lang = lang_of(repo, turn, &admin)?;
                let text = turn.tf_in(lang, Key::AdminVendorRejected, &[("number", &order.number), ("why", &why)]);
                turn.send(&admin, Outbound { notice: Some(NoticeKind::AdminAlert), ..Outbound::text(text) });
            }
        }
    }
    Ok(())
}

/// Offers the delivery to the next courier, or tells the admins that nobody is left.
fn offer_next(
    repo: &mut dyn MarketRepo,
    turn: &mut Turn<'_>,
    order: &Order,
    d: &mut Delivery,
    actor: &str,
) -> RepoResult<()> {
    let candidates = repo.candidates()?;
    match choose_courier(&candidates, &d.passed) {
        Some(courier_id) => {
            let Some(courier) = repo.courier(courier_id)? else {
                return Ok(());
            };
            d.courier_id = Some(courier_id);
            d.offer_deadline = Some(turn.now + turn.policy.courier_offer_timeout);
            if move_delivery(repo, d, DeliveryStatus::Offered, actor, None)?.is_err() {
                return Ok(());
            }
            send_job(repo, turn, &courier, order, d, Key::JobOffer)
        }
        None => {
            let why = if candidates.is_empty() { Key::WhyNoneOnShift } else { Key::WhyNobodyTook };
            d.courier_id = None;
            if d.status == DeliveryStatus::Unassigned {
                repo.save_delivery(d, actor, None)?;
            } else if move_delivery(repo, d, DeliveryStatus::Unassigned, actor, None)?.is_err() {
                return Ok(());
            }
            let admins = super::lifecycle::admins_of(repo, turn)?;
            for admin in admins {
                let lang = lang_of(repo, turn, &admin)?;
                let why = turn.tf_in(lang, why, &[]);
                let text = turn.tf_in(lang, Key::AdminNoCourier, &[("number", &order.number), ("why", &why)]);
                turn.send(&admin, Outbound { notice: Some(NoticeKind::AdminAlert), ..Outbound::text(text) });
            }
            Ok(())
        }
    }
}

/// Timers: offers not taken in time pass to the next courier; orders whose slot is near get a
/// courier even if a stall is still packing. Returns how many were due.
pub fn run_timers(repo: &mut dyn MarketRepo, turn: &mut Turn<'_>) -> RepoResult<usize> {
    let actor = super::lifecycle::SYSTEM_ACTOR;
    let lapsed = repo.due_offers(turn.now)?;
    for id in &lapsed {
        let Some(mut d) = repo.delivery(*id)? else {
            continue;
        };
        let (Some(courier_id), DeliveryStatus::Offered) = (d.courier_id, d.status) else {
            continue;
        };
        let Some(order) = repo.order(d.order_id)? else {
            continue;
        };
        tell_courier(repo, turn, courier_id, Key::JobOfferLapsed, &order.number)?;
        d.passed.push(courier_id);
        offer_next(repo, turn, &order, &mut d, actor)?;
    }
    let due_by = (local(turn.now) + turn.policy.courier_lead).naive_local();
    let near = repo.orders_due_for_courier(due_by)?;
    for order_id in &near {
        order_ready(repo, turn, *order_id, actor)?;
    }
    // Past the end of the slot and not delivered: the shopper gets an apology and the admins
    // the name of whoever has it, once.
    let late = repo.late_deliveries(local(turn.now).naive_local())?;
    for id in &late {
        repo.mark_late_alerted(*id)?;
        let Some(d) = repo.delivery(*id)? else {
            continue;
        };
        let Some(order) = repo.order(d.order_id)?.filter(|o| o.status.is_open()) else {
            continue;
        };
        let holder = match (d.courier_id, &d.vendor_courier) {
            (Some(c), _) => repo.courier(c)?.map(|c| c.profile.name),
            (None, Some(v)) => Some(v.name.clone()),
            (None, None) => None,
        };
        tell_buyer_step(
            repo,
            turn,
            &order,
            Key::BuyerDeliveryLate,
            &[("number", &order.number), ("slot", &order.slot.slot)],
        )?;
        for admin in super::lifecycle::admins_of(repo, turn)? {
            let lang = lang_of(repo, turn, &admin)?;
            let who = holder.clone().unwrap_or_else(|| turn.tf_in(lang, Key::NoCourierYet, &[]));
            let text = turn.tf_in(
                lang,
                Key::AdminDeliveryLate,
                &[("number", &order.number), ("slot", &order.slot.slot), ("courier", &who)],
            );
            turn.send(&admin, Outbound { notice: Some(NoticeKind::AdminAlert), ..Outbound::text(text) });
        }
    }
    Ok(lapsed.len() + near.len() + late.len())
}

/// Deliveries nobody has (no courier was free, or every one let the offer lapse) are offered
/// again, oldest first, whenever a courier may have become free: a shift starts, a delivery
/// ends, an offer is passed. Only to couriers who have not passed on them; the admins were told
/// already, so nobody is told again when no courier can take one.
pub fn offer_waiting(repo: &mut dyn MarketRepo, turn: &mut Turn<'_>) -> RepoResult<()> {
    let actor = turn.actor(Role::Courier);
    for id in repo.unassigned_deliveries()? {
        let Some(mut d) = repo.delivery(id)? else {
            continue;
        };
        if d.by_vendor {
            continue;
        }
        let candidates = repo.candidates()?;
        if choose_courier(&candidates, &d.passed).is_none() {
            continue;
        }
        let Some(order) = repo.order(d.order_id)?.filter(|o| o.status.is_open()) else {
            continue;
        };
        offer_next(repo, turn, &order, &mut d, &actor)?;
    }
    Ok(())
}

/// A courier ended their shift still holding deliveries: the admins know who has what.
pub fn shift_ended_holding(
    repo: &mut dyn MarketRepo,
    turn: &mut Turn<'_>,
    courier: &Courier,
    held: usize,
) -> RepoResult<()> {
    for admin in super::lifecycle::admins_of(repo, turn)? {
        let lang = lang_of(repo, turn, &admin)?;
        let text =
            turn.tf_in(lang, Key::AdminShiftEndedHolding, &[("courier", &courier.profile.name), ("count", &held)]);
        turn.send(&admin, Outbound { notice: Some(NoticeKind::AdminAlert), ..Outbound::text(text) });
    }
    Ok(())
}

/// Loads a delivery pressed on by a courier and its order, checking it is theirs.
fn courier_delivery(
    repo: &mut dyn MarketRepo,
    courier: &Courier,
    delivery_id: i64,
) -> RepoResult<Result<(Delivery, Order), JobRefusal>> {
    let Some(d) = repo.delivery(delivery_id)? else {
        return Ok(Err(JobRefusal::NotYours));
    };
    if d.courier_id != Some(courier.id) {
        // Offered to them once and moved on, or never theirs.
        let was_theirs = d.passed.contains(&courier.id);
        return Ok(Err(if was_theirs { JobRefusal::Moved } else { JobRefusal::NotYours }));
    }
    let Some(order) = repo.order(d.order_id)? else {
        return Ok(Err(JobRefusal::NotYours));
    };
    Ok(Ok((d, order)))
}

/// A courier's own delivery, at the step the press is for.
fn at_step(
    repo: &mut dyn MarketRepo,
    courier: &Courier,
    delivery_id: i64,
    step: DeliveryStatus,
) -> Result<(Delivery, Order), StepFail> {
    let (d, order) = courier_delivery(repo, courier, delivery_id)??;
    if d.status != step {
        return Err(JobRefusal::AlreadyDone.into());
    }
    Ok((d, order))
}

/// The courier's name, vehicle, plate and phone as the shopper sees them.
fn courier_card(turn: &Turn<'_>, lang: Lang, courier: &CourierProfile) -> String {
    turn.tf_in(
        lang,
        Key::TrackCourier,
        &[
            ("name", &courier.name),
            ("vehicle", &courier.vehicle),
            ("plate", &courier.plate),
            ("phone", &courier.phone),
            ("wa", &whatsapp_link(&courier.phone)),
        ],
    )
}

/// Tells the shopper a step of their delivery, with the "Lacak pesanan" button.
fn tell_buyer_step(
    repo: &mut dyn MarketRepo,
    turn: &mut Turn<'_>,
    order: &Order,
    key: Key,
    args: &[(&str, &dyn std::fmt::Display)],
) -> RepoResult<()> {
    tell_buyer(repo, turn, order, key, args, &[(Key::BtnTrack, Action::Track(order.number.clone()))])
}

/// Ambil tugas: the courier takes an offered delivery.
pub fn take(repo: &mut dyn MarketRepo, turn: &mut Turn<'_>, courier: &Courier, delivery_id: i64) -> Step {
    let (mut d, order) = at_step(repo, courier, delivery_id, DeliveryStatus::Offered)?;
    let actor = turn.actor(Role::Courier);
    move_delivery(repo, &mut d, DeliveryStatus::Assigned, &actor, None)??;
    let header = turn.t(Key::JobTaken);
    job_reply(turn, &order, &d, header);
    let lang = lang_of(repo, turn, &order.buyer)?;
    let card = courier_card(turn, lang, &courier.profile);
    tell_buyer_step(repo, turn, &order, Key::BuyerCourierAssigned, &[("number", &order.number), ("courier", &card)])?;
    Ok(())
}

/// Lewati: the courier passes; the next one is asked at once.
pub fn skip(repo: &mut dyn MarketRepo, turn: &mut Turn<'_>, courier: &Courier, delivery_id: i64) -> Step {
    let (mut d, order) = at_step(repo, courier, delivery_id, DeliveryStatus::Offered)?;
    let text = turn.tf(Key::JobSkipped, &[("number", &order.number)]);
    turn.reply(Outbound { replaces: turn.pressed_on.map(str::to_string), ..Outbound::text(text) });
    d.passed.push(courier.id);
    let actor = turn.actor(Role::Courier);
    offer_next(repo, turn, &order, &mut d, &actor)?;
    offer_waiting(repo, turn)?;
    Ok(())
}

/// Sudah dijemput: the courier has a stall's packed part.
pub fn picked_up(
    repo: &mut dyn MarketRepo,
    turn: &mut Turn<'_>,
    courier: &Courier,
    delivery_id: i64,
    sub_id: i64,
) -> Step {
    let (d, order) = at_step(repo, courier, delivery_id, DeliveryStatus::Assigned)?;
    let Some(sub) = order.sub(sub_id).filter(|s| !s.status.is_dropped()).cloned() else {
        return Err(JobRefusal::NotYours.into());
    };
    match sub.status {
        SubOrderStatus::Packed => {}
        SubOrderStatus::PickedUp => return Err(JobRefusal::AlreadyDone.into()),
        _ => return Err(JobRefusal::NotPacked(stall_label(turn, sub.stall_id).0).into()),
    }
    let actor = turn.actor(Role::Courier);
    repo.set_sub_status(order.id, sub.id, sub.status, SubOrderStatus::PickedUp, &actor, None)?;
    let Some(order) = repo.order(order.id)? else {
        return Err(JobRefusal::NotYours.into());
    };
    let (stall, _) = stall_label(turn, sub.stall_id);
    let header = turn.tf(Key::JobPickedHeader, &[("stall", &stall)]);
    job_reply(turn, &order, &d, header);
    let number = order.number.clone();
    let name = courier.profile.name.clone();
    tell_traders(repo, turn, sub.stall_id, &|t, lang| {
        Outbound::text(t.tf_in(lang, Key::TraderPickedUp, &[("number", &number), ("courier", &name)]))
    })?;
    let active = order.subs.iter().filter(|s| !s.status.is_dropped()).count();
    let done = order.subs.iter().filter(|s| s.status == SubOrderStatus::PickedUp).count();
    tell_buyer_step(
        repo,
        turn,
        &order,
        Key::BuyerStallPickedUp,
        &[("number", &order.number), ("stall", &stall), ("done", &done), ("total", &active)],
    )?;
    Ok(())
}

/// Minutes to the shopper's door from a point, when the drop-off is a shared location.
fn eta_from(order: &Order, from: (f64, f64)) -> Option<i64> {
    match order.address {
        Address::Location { lat, lon } => Some(eta_between(from, (lat, lon))),
        Address::Text(_) => None,
    }
}

/// An arrival estimate in the shopper's words: minutes and clock time when the drop-off is a
/// point, else the slot.
fn eta_text(turn: &Turn<'_>, lang: Lang, order: &Order, from: (f64, f64)) -> String {
    match eta_from(order, from) {
        Some(minutes) => {
            let at = local(turn.now + chrono::Duration::minutes(minutes)).format("%H:%M");
            turn.tf_in(lang, Key::EtaMinutes, &[("minutes", &minutes), ("time", &at)])
        }
        None => turn.tf_in(lang, Key::EtaSlot, &[("slot", &order.slot.slot)]),
    }
}

/// Berangkat: everything is collected; the order is on its way.
pub fn depart(repo: &mut dyn MarketRepo, turn: &mut Turn<'_>, courier: &Courier, delivery_id: i64) -> Step {
    let (mut d, order) = at_step(repo, courier, delivery_id, DeliveryStatus::Assigned)?;
    if order.subs.iter().any(|s| !s.status.is_dropped() && s.status != SubOrderStatus::PickedUp) {
        return Err(JobRefusal::NotAllPicked.into());
    }
    let actor = turn.actor(Role::Courier);
    let mut status = order.status;
    if status != OrderStatus::ReadyForPickup && status.can_move_to(OrderStatus::ReadyForPickup) {
        repo.set_order_status(order.id, status, OrderStatus::ReadyForPickup, &actor, None)?;
        status = OrderStatus::ReadyForPickup;
    }
    if !status.can_move_to(OrderStatus::OnDelivery) {
        return Err(JobRefusal::AlreadyDone.into());
    }
    repo.set_order_status(order.id, status, OrderStatus::OnDelivery, &actor, None)?;
    move_delivery(repo, &mut d, DeliveryStatus::OnTheWay, &actor, None)??;
    let header = turn.t(Key::JobOnTheWay);
    job_reply(turn, &order, &d, header);
    let lang = lang_of(repo, turn, &order.buyer)?;
    // Leaving the market now: the estimate runs from the market unless the courier shared a
    // position in the last few minutes.
    let from = fresh_position(turn, courier.position).unwrap_or((turn.market.lat, turn.market.lon));
    let eta = eta_text(turn, lang, &order, from);
    tell_buyer_step(repo, turn, &order, Key::BuyerOnTheWay, &[("number", &order.number), ("eta", &eta)])?;
    Ok(())
}

/// A position the courier shared recently enough to estimate from.
fn fresh_position(turn: &Turn<'_>, position: Option<Position>) -> Option<(f64, f64)> {
    position.filter(|p| turn.now - p.at <= chrono::Duration::minutes(FRESH_POSITION_MINUTES)).map(|p| (p.lat, p.lon))
}

/// A shared position older than this is not used for estimates.
pub const FRESH_POSITION_MINUTES: i64 = 15;

/// What a courier is asked for next at the shopper's door.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AtTheDoor {
    /// The cash collected, for an order paid at the door (before the photo).
    Cash,
    /// The photo; with the cash the courier confirmed, for an order paid at the door.
    Proof { cash: Option<Rupiah> },
    /// Nothing more: the order is delivered.
    Delivered,
}

/// A courier's step at the door, and what is asked next.
pub type DoorStep = Result<AtTheDoor, StepFail>;

/// Whether the courier collects the order's money at the door ("bayar di tempat").
fn collects_cash(order: &Order) -> bool {
    !paid_in_advance(order.payment)
}

/// The courier's own delivery, on the road with its order: the steps at the door.
fn at_the_door(repo: &mut dyn MarketRepo, courier: &Courier, delivery_id: i64) -> Result<(Delivery, Order), StepFail> {
    let (d, order) = at_step(repo, courier, delivery_id, DeliveryStatus::OnTheWay)?;
    if order.status != OrderStatus::OnDelivery {
        return Err(JobRefusal::AlreadyDone.into());
    }
    Ok((d, order))
}

/// Terkirim: an order paid at the door first asks the cash collected; any other the photo.
pub fn delivered_pressed(
    repo: &mut dyn MarketRepo,
    turn: &mut Turn<'_>,
    courier: &Courier,
    delivery_id: i64,
) -> DoorStep {
    let (d, order) = at_the_door(repo, courier, delivery_id)?;
    if collects_cash(&order) {
        let text = turn.tf(Key::JobCashAsk, &[("number", &order.number), ("total", &order.total())]);
        let msg = cash_question(turn, &order, d.id, text, None);
        turn.reply(msg);
        return Ok(AtTheDoor::Cash);
    }
    let text = turn.tf(Key::JobProofAsk, &[("number", &order.number)]);
    turn.reply(Outbound::text(text));
    Ok(AtTheDoor::Proof { cash: None })
}

/// The cash question: typed amounts are answers; a button takes the exact bill, and another
/// one the amount the courier typed (`typed`), once they confirm it.
fn cash_question(turn: &Turn<'_>, order: &Order, delivery_id: i64, text: String, typed: Option<Rupiah>) -> Outbound {
    let due = order.total();
    let mut buttons = Vec::new();
    if let Some(amount) = typed {
        buttons.push(Button {
            label: turn.tf(Key::BtnCashConfirm, &[("amount", &amount)]),
            payload: Action::CourierCash { delivery: delivery_id, amount }.encode(),
        });
    }
    buttons.push(Button {
        label: turn.tf(Key::BtnCashExact, &[("amount", &due)]),
        payload: Action::CourierCash { delivery: delivery_id, amount: due }.encode(),
    });
    Outbound::question(text, buttons)
}

/// The cash still to be counted (the photo came first, or the typed line was no amount): asked
/// again, with the button.
pub fn cash_needed(repo: &mut dyn MarketRepo, turn: &mut Turn<'_>, courier: &Courier, delivery_id: i64) -> DoorStep {
    let (d, order) = at_the_door(repo, courier, delivery_id)?;
    let text = turn.tf(Key::JobCashNeedAmount, &[("number", &order.number), ("total", &order.total())]);
    let msg = cash_question(turn, &order, d.id, text, None);
    turn.reply(msg);
    Ok(AtTheDoor::Cash)
}

/// The courier confirmed the cash collected (the exact bill, or an amount they typed): the photo
/// is asked next. Nothing is written yet: the cash is recorded with the delivery itself, when
/// the photo comes, so a delivery that fails after the count records no money.
pub fn cash_confirmed(
    repo: &mut dyn MarketRepo,
    turn: &mut Turn<'_>,
    courier: &Courier,
    delivery_id: i64,
    amount: Rupiah,
) -> DoorStep {
    let (_, order) = at_the_door(repo, courier, delivery_id)?;
    if !collects_cash(&order) {
        return Err(JobRefusal::AlreadyDone.into());
    }
    let noted = turn.tf(Key::JobCashNoted, &[("amount", &amount)]);
    let ask = turn.tf(Key::JobProofAsk, &[("number", &order.number)]);
    turn.reply(Outbound::text(format!("{noted}\n{ask}")));
    Ok(AtTheDoor::Proof { cash: Some(amount) })
}

/// A line typed while the cash is asked: the exact bill is taken at once; another amount is
/// shown back with a button to confirm it (a slip of the thumb must not become a shortfall or a
/// refund); anything else asks again.
pub fn cash_typed(
    repo: &mut dyn MarketRepo,
    turn: &mut Turn<'_>,
    courier: &Courier,
    delivery_id: i64,
    typed: &str,
) -> DoorStep {
    let (d, order) = at_the_door(repo, courier, delivery_id)?;
    let due = order.total();
    match Rupiah::parse(typed) {
        Some(amount) if amount == due => cash_confirmed(repo, turn, courier, delivery_id, amount),
        Some(amount) => {
            let (key, diff) = if amount < due {
                (Key::JobCashCheckLess, Rupiah(due.0 - amount.0))
            } else {
                (Key::JobCashCheckMore, Rupiah(amount.0 - due.0))
            };
            let text = turn.tf(key, &[("amount", &amount), ("diff", &diff), ("total", &due)]);
            let msg = cash_question(turn, &order, d.id, text, Some(amount));
            turn.reply(msg);
            Ok(AtTheDoor::Cash)
        }
        None => cash_needed(repo, turn, courier, delivery_id),
    }
}

/// The photo at the door: the order is delivered, and the cash the courier confirmed (for an
/// order paid at the door) goes into the ledger in the same step.
pub fn proof_received(
    repo: &mut dyn MarketRepo,
    turn: &mut Turn<'_>,
    courier: &Courier,
    delivery_id: i64,
    photo: &str,
    cash: Option<Rupiah>,
) -> DoorStep {
    let (mut d, order) = at_the_door(repo, courier, delivery_id)?;
    let cash = match cash {
        Some(amount) if collects_cash(&order) => Some(amount),
        // Waiting for the photo without the cash counted (a state saved before cash was asked):
        // the cash first, then the photo again.
        None if collects_cash(&order) => return cash_needed(repo, turn, courier, delivery_id),
        _ => None,
    };
    let actor = turn.actor(Role::Courier);
    d.proof = Some(photo.to_string());
    move_delivery(repo, &mut d, DeliveryStatus::Delivered, &actor, None)??;
    repo.set_order_status(order.id, OrderStatus::OnDelivery, OrderStatus::Delivered, &actor, None)?;
    repo.set_idle(courier.id)?;
    offer_waiting(repo, turn)?;
    let text = match cash {
        Some(amount) => turn.tf(Key::JobDeliveredCash, &[("number", &order.number), ("amount", &amount)]),
        None => turn.tf(Key::JobDelivered, &[("number", &order.number)]),
    };
    turn.reply(Outbound::text(text));
    tell_buyer_step(
        repo,
        turn,
        &order,
        Key::BuyerDelivered,
        &[("number", &order.number), ("market", &turn.market.name)],
    )?;
    if let Some(amount) = cash {
        let reference = format!("cod:{}", d.id);
        let outcome =
            super::payment::cash_collected(repo, turn, &order, amount, &actor, &courier.profile.name, reference)?;
        if outcome == CashOutcome::Duplicate {
            tracing::warn!(order = %order.number, delivery = d.id, "cash of a delivery recorded twice; kept once");
        }
    }
    // Then the first of the ratings: the courier, then each stall.
    let lang = lang_of(repo, turn, &order.buyer)?;
    if let Some(order) = repo.order(order.id)?
        && let Some(question) = super::review::next_question(repo, turn, lang, &order)?
    {
        turn.send(&order.buyer, Outbound { notice: Some(NoticeKind::OrderUpdate), ..question });
    }
    Ok(AtTheDoor::Delivered)
}

/// Gagal kirim: the courier picks a reason.
pub fn fail_pressed(repo: &mut dyn MarketRepo, turn: &mut Turn<'_>, courier: &Courier, delivery_id: i64) -> Step {
    let (d, order) = at_step(repo, courier, delivery_id, DeliveryStatus::OnTheWay)?;
    let text = turn.tf(Key::JobFailAsk, &[("number", &order.number)]);
    let buttons = FailReason::ALL
        .into_iter()
        .map(|r| turn.button(fail_reason_button(r), Action::CourierFailReason { delivery: d.id, reason: r }.encode()))
        .collect();
    turn.reply(Outbound::with_buttons(text, buttons));
    Ok(())
}

fn fail_reason_button(r: FailReason) -> Key {
    match r {
        FailReason::NotHome => Key::BtnFailNotHome,
        FailReason::WrongAddress => Key::BtnFailWrongAddress,
        FailReason::Refused => Key::BtnFailRefused,
    }
}

pub fn fail_reason_text(turn: &Turn<'_>, lang: Lang, r: FailReason) -> String {
    let key = match r {
        FailReason::NotHome => Key::FailNotHome,
        FailReason::WrongAddress => Key::FailWrongAddress,
        FailReason::Refused => Key::FailRefused,
    };
    turn.tf_in(lang, key, &[])
}

/// The delivery failed: the goods go back to the market, the shopper and the admins are told.
pub fn failed(
    repo: &mut dyn MarketRepo,
    turn: &mut Turn<'_>,
    courier: &Courier,
    delivery_id: i64,
    reason: FailReason,
) -> Step {
    let (mut d, order) = at_step(repo, courier, delivery_id, DeliveryStatus::OnTheWay)?;
    if order.status != OrderStatus::OnDelivery {
        return Err(JobRefusal::AlreadyDone.into());
    }
    let actor = turn.actor(Role::Courier);
    d.fail_reason = Some(reason);
    move_delivery(repo, &mut d, DeliveryStatus::Failed, &actor, Some(reason.code()))??;
    repo.set_order_status(order.id, OrderStatus::OnDelivery, OrderStatus::ReadyForPickup, &actor, Some(reason.code()))?;
    repo.set_idle(courier.id)?;
    offer_waiting(repo, turn)?;
    let mine = fail_reason_text(turn, turn.lang, reason);
    let text = turn.tf(Key::JobFailed, &[("number", &order.number), ("reason", &mine)]);
    turn.reply(Outbound::text(text));
    delivery_failed_news(repo, turn, &order, &courier.profile.name, reason)?;
    Ok(())
}

/// A delivery failed: the shopper hears why and that the market will call; the admins get the
/// shopper's name and phone to arrange another try.
fn delivery_failed_news(
    repo: &mut dyn MarketRepo,
    turn: &mut Turn<'_>,
    order: &Order,
    courier: &str,
    reason: FailReason,
) -> RepoResult<()> {
    let lang = lang_of(repo, turn, &order.buyer)?;
    let theirs = fail_reason_text(turn, lang, reason);
    tell_buyer_step(repo, turn, order, Key::BuyerDeliveryFailed, &[("number", &order.number), ("reason", &theirs)])?;
    for admin in super::lifecycle::admins_of(repo, turn)? {
        let lang = lang_of(repo, turn, &admin)?;
        let reason = fail_reason_text(turn, lang, reason);
        let text = turn.tf_in(
            lang,
            Key::AdminDeliveryFailed,
            &[
                ("number", &order.number),
                ("courier", &courier),
                ("reason", &reason),
                ("buyer", &order.buyer_name),
                ("phone", &order.phone),
            ],
        );
        turn.send(&admin, Outbound { notice: Some(NoticeKind::AdminAlert), ..Outbound::text(text) });
    }
    Ok(())
}

/// Why an admin's `/tugaskan` was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AssignRefusal {
    /// The order is not at a stage a courier can take it (still with the traders, delivered,
    /// cancelled).
    NotReady,
    /// A courier already has it: their name.
    Busy(String),
    /// The outside vendor has it (` (its courier's name)`, or nothing when none is named yet).
    Vendor(String),
}

/// `/tugaskan`: an admin gives an order's delivery to a courier, who has it at once.
pub fn assign(
    repo: &mut dyn MarketRepo,
    turn: &mut Turn<'_>,
    order: &Order,
    courier: &Courier,
    take_from_vendor: bool,
) -> RepoResult<Result<(), AssignRefusal>> {
    // Not an unpaid order: goods leave the market only paid for (or to be paid at the door).
    let ready = matches!(order.status, OrderStatus::Confirmed | OrderStatus::Preparing | OrderStatus::ReadyForPickup);
    if !ready {
        return Ok(Err(AssignRefusal::NotReady));
    }
    let actor = turn.actor(Role::Admin);
    let latest = repo.latest_delivery(order.id)?;
    // After a failed delivery the goods are back at the market office, collected already.
    let after_failure = latest.as_ref().is_some_and(|d| d.status == DeliveryStatus::Failed);
    let mut d = match latest {
        // The vendor has it (asked, or its courier on it, not yet on the road): only the
        // vendor gives it back, or an admin takes it over on purpose.
        Some(d)
            if d.by_vendor
                && matches!(d.status, DeliveryStatus::Offered | DeliveryStatus::Assigned)
                && !take_from_vendor =>
        {
            let who = d.vendor_courier.as_ref().map(|c| format!(" ({})", c.name)).unwrap_or_default();
            return Ok(Err(AssignRefusal::Vendor(who)));
        }
        Some(d) if matches!(d.status, DeliveryStatus::Assigned | DeliveryStatus::OnTheWay) && !d.by_vendor => {
            let holder = match d.courier_id {
                Some(id) => repo.courier(id)?.map(|c| c.profile.name).unwrap_or_default(),
                None => String::new(),
            };
            return Ok(Err(AssignRefusal::Busy(holder)));
        }
        Some(d) if d.status == DeliveryStatus::OnTheWay => {
            let who = d.vendor_courier.as_ref().map(|c| c.name.clone()).unwrap_or_else(|| turn.t(Key::TheVendor));
            return Ok(Err(AssignRefusal::Busy(who)));
        }
        Some(mut d)
            if matches!(d.status, DeliveryStatus::Offered | DeliveryStatus::Unassigned | DeliveryStatus::Assigned) =>
        {
            if let Some(offered_to) = d.courier_id.filter(|id| *id != courier.id) {
                tell_courier(repo, turn, offered_to, Key::JobWithdrawn, &order.number)?;
                // Their old button then says it moved on.
                d.passed.push(offered_to);
            }
            // From now on the market's own: late vendor news is ignored.
            d.by_vendor = false;
            // Taken over from the vendor's courier: a fresh assignment.
            d.status = if d.status == DeliveryStatus::Assigned { DeliveryStatus::Unassigned } else { d.status };
            d
        }
        // None yet, or the last one failed or was cancelled: a new attempt.
        _ => repo.create_delivery(order.id, &actor)?,
    };
    d.courier_id = Some(courier.id);
    if let Err(_r) = move_delivery(repo, &mut d, DeliveryStatus::Assigned, &actor, None)? {
        return Ok(Err(AssignRefusal::NotReady));
    }
    let header = if after_failure { Key::JobAssignedAfterFailure } else { Key::JobAssigned };
    send_job(repo, turn, courier, order, &d, header)?;
    let lang = lang_of(repo, turn, &order.buyer)?;
    let card = courier_card(turn, lang, &courier.profile);
    tell_buyer_step(repo, turn, order, Key::BuyerCourierAssigned, &[("number", &order.number), ("courier", &card)])?;
    Ok(Ok(()))
}

/// The shopper's view of an order: every step with its time, the courier, where they were last
/// seen and when they should arrive.
pub fn track_message(repo: &mut dyn MarketRepo, turn: &Turn<'_>, order: &Order) -> RepoResult<Outbound> {
    let lang = turn.lang;
    let status = turn.tf_in(lang, super::buyer::status_key(order.status), &[]);
    let mut text = turn.tf_in(
        lang,
        Key::TrackHeader,
        &[("number", &order.number), ("status", &status), ("slot", &slot_text(turn, lang, order))],
    );
    // Steps from the order's audit trail and from its deliveries, in time order; steps of the
    // same moment in the order they happen in (a courier takes the job before collecting).
    let mut steps: Vec<(chrono::DateTime<chrono::Utc>, u8, String)> = Vec::new();
    for e in repo.order_history(order.id)? {
        let stall = e.sub_order_id.and_then(|id| order.sub(id)).map(|s| stall_label(turn, s.stall_id).0);
        // A trader's change to a line (the part's status stays) is not a step of its own.
        if stall.is_some() && e.from.as_deref() == Some(e.to.as_str()) {
            continue;
        }
        if stall.is_none() && e.from.as_deref() == Some("awaiting_payment") && e.to != "cancelled" {
            steps.push((e.at, 2, turn.tf_in(lang, Key::EvPaid, &[])));
        }
        let step = match (&stall, e.to.as_str()) {
            (None, "awaiting_traders") => Some((0, Key::EvPlaced)),
            (Some(_), "accepted") => Some((1, Key::EvStallAccepted)),
            (Some(_), "rejected" | "cancelled") => Some((1, Key::EvStallDropped)),
            (None, "confirmed") => Some((2, Key::EvConfirmed)),
            (None, "awaiting_payment") => Some((2, Key::EvAwaitingPayment)),
            (Some(_), "packed") => Some((3, Key::EvStallPacked)),
            // Back from a failed delivery: the delivery's own step says so.
            (None, "ready_for_pickup") if e.from.as_deref() == Some("on_delivery") => None,
            (None, "ready_for_pickup") => Some((4, Key::EvReady)),
            (Some(_), "picked_up") => Some((6, Key::EvStallPickedUp)),
            (None, "cancelled") => Some((9, Key::EvCancelled)),
            (None, "rejected") => Some((9, Key::EvRejected)),
            _ => None,
        };
        if let Some((rank, key)) = step {
            let stall = stall.unwrap_or_default();
            steps.push((e.at, rank, turn.tf_in(lang, key, &[("stall", &stall)])));
        }
    }
    let mut couriers: Vec<Courier> = Vec::new();
    let delivery = repo.latest_delivery(order.id)?;
    let vendor_name = delivery.as_ref().and_then(|d| d.vendor_courier.as_ref()).map(|c| c.name.clone());
    for e in repo.delivery_events(order.id)? {
        let (rank, key) = match e.status {
            DeliveryStatus::Assigned => (5, Key::EvCourierAssigned),
            DeliveryStatus::OnTheWay => (7, Key::EvOnTheWay),
            DeliveryStatus::Delivered => (8, Key::EvDelivered),
            DeliveryStatus::Failed => (8, Key::EvFailed),
            _ => continue,
        };
        let name = match e.courier_id {
            Some(id) => match couriers.iter().find(|c| c.id == id) {
                Some(c) => c.profile.name.clone(),
                None => match repo.courier(id)? {
                    Some(c) => {
                        let name = c.profile.name.clone();
                        couriers.push(c);
                        name
                    }
                    None => String::new(),
                },
            },
            // The vendor's courier.
            None => vendor_name.clone().unwrap_or_default(),
        };
        steps.push((e.at, rank, turn.tf_in(lang, key, &[("courier", &name)])));
    }
    steps.sort_by_key(|(at, rank, _)| (*at, *rank));
    for (at, _, what) in &steps {
        text.push('\n');
        text.push_str(&turn.tf_in(lang, Key::TrackStep, &[("time", &local(*at).format("%H:%M")), ("what", what)]));
    }
    if let Some(money) = super::payment::status_line(repo, turn, order)? {
        text.push('\n');
        text.push_str(&money);
    }
    // Who has it (one of the market's couriers, or the vendor's) and where they were last seen.
    let holder: Option<(CourierProfile, Option<Position>)> = match &delivery {
        Some(d)
            if matches!(d.status, DeliveryStatus::Assigned | DeliveryStatus::OnTheWay | DeliveryStatus::Delivered) =>
        {
            match (d.courier_id, &d.vendor_courier) {
                (Some(id), _) => repo.courier(id)?.map(|c| (c.profile, c.position)),
                (None, Some(profile)) => Some((profile.clone(), d.vendor_position)),
                (None, None) => None,
            }
        }
        _ => None,
    };
    if let Some((courier, _)) = &holder {
        text.push_str("\n\n");
        text.push_str(&courier_card(turn, lang, courier));
    }
    let on_the_way = delivery.as_ref().is_some_and(|d| d.status == DeliveryStatus::OnTheWay);
    let collecting = delivery.as_ref().is_some_and(|d| d.status == DeliveryStatus::Assigned);
    if let (Some((_, position)), true) = (&holder, on_the_way || collecting) {
        text.push('\n');
        match position {
            Some(p) => {
                let ago = (turn.now - p.at).num_minutes().max(0);
                let key = if ago == 0 { Key::TrackPositionNow } else { Key::TrackPosition };
                text.push_str(&turn.tf_in(lang, key, &[("minutes", &ago)]));
            }
            None => text.push_str(&turn.tf_in(lang, Key::TrackPositionNone, &[])),
        }
    }
    if order.status.is_open() {
        text.push('\n');
        let eta = if on_the_way {
            let from = holder
                .as_ref()
                .and_then(|(_, p)| fresh_position(turn, *p))
                .unwrap_or((turn.market.lat, turn.market.lon));
            eta_text(turn, lang, order, from)
        } else {
            turn.tf_in(lang, Key::EtaSlot, &[("slot", &order.slot.slot)])
        };
        text.push_str(&turn.tf_in(lang, Key::TrackEta, &[("eta", &eta)]));
    }
    let buttons = vec![
        turn.button_in(lang, Key::BtnRefreshTrack, Action::Track(order.number.clone()).encode()),
        turn.button_in(lang, Key::BtnMenu, Action::Menu.encode()),
    ];
    Ok(Outbound::with_buttons(text, buttons))
}

#[cfg(test)]
mod tests {
    use super::walking_key;

    #[test]
    fn stalls_are_walked_by_block_then_number() {
        let mut stalls = vec!["B-03", "A-12", "A-7", "A-07", "Los-2", "C-1"];
        stalls.sort_by_key(|s| walking_key(s));
        assert_eq!(stalls, vec!["A-07", "A-7", "A-12", "B-03", "C-1", "Los-2"]);
    }
}
