//! Dialogue catalogs: every user-facing sentence lives in `dialogues/<lang>.toml`, looked up by a
//! typed [`Key`] with `{named}` placeholders. A market may override any sentence in
//! `dialogues/markets/<slug>.<lang>.toml`, so each market's bot speaks as that market.
//!
//! The base catalogs are compiled into the binary; market overrides are read from the dialogues
//! folder at start. Tests check that both languages have exactly the keys of [`Key`].

use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::fmt::Display;
use std::path::Path;

/// The languages a user can choose.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
pub enum Lang {
    #[default]
    Id,
    En,
}

impl Lang {
    pub const ALL: [Lang; 2] = [Lang::Id, Lang::En];

    pub fn code(self) -> &'static str {
        match self {
            Lang::Id => "id",
            Lang::En => "en",
        }
    }

    pub fn from_code(code: &str) -> Option<Lang> {
        match code.trim().to_lowercase().as_str() {
            "id" | "indonesia" | "bahasa indonesia" | "indonesian" => Some(Lang::Id),
            "en" | "english" | "inggris" => Some(Lang::En),
            _ => None,
        }
    }
}

macro_rules! keys {
    ($($variant:ident => $name:literal,)*) => {
        /// Every sentence the bots can say. The names are the keys in `dialogues/*.toml`.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum Key { $($variant,)* }

        impl Key {
            pub const ALL: &'static [Key] = &[$(Key::$variant,)*];

            pub fn name(self) -> &'static str {
                match self { $(Key::$variant => $name,)* }
            }

            /// The variant's name as written in code, for the test that every key is used.
            pub fn variant(self) -> &'static str {
                match self { $(Key::$variant => stringify!($variant),)* }
            }
        }
    };
}

keys! {
    Welcome => "welcome",
    MenuPrompt => "menu_prompt",
    BtnShop => "btn_shop",
    BtnSearch => "btn_search",
    BtnCart => "btn_cart",
    BtnCartCount => "btn_cart_count",
    BtnOrders => "btn_orders",
    BtnHelp => "btn_help",
    BtnLanguage => "btn_language",
    BtnBack => "btn_back",
    BtnMenu => "btn_menu",
    BtnNext => "btn_next",
    BtnPrev => "btn_prev",
    BtnCancel => "btn_cancel",
    BtnYes => "btn_yes",
    BtnNo => "btn_no",
    Help => "help",
    UnknownCommand => "unknown_command",
    StaleButton => "stale_button",
    TooLong => "too_long",
    NotUnderstood => "not_understood",
    StateReset => "state_reset",
    InternalError => "internal_error",
    SlowDown => "slow_down",
    CatSayur => "cat_sayur",
    CatBuah => "cat_buah",
    CatBumbu => "cat_bumbu",
    CatDagingAyam => "cat_daging_ayam",
    CatIkan => "cat_ikan",
    CatTelur => "cat_telur",
    CatSembako => "cat_sembako",
    CatTahuTempe => "cat_tahu_tempe",
    CatJajanan => "cat_jajanan",
    ChooseCategory => "choose_category",
    CategoryPage => "category_page",
    CommodityOffers => "commodity_offers",
    OfferLine => "offer_line",
    NoOffers => "no_offers",
    SearchPrompt => "search_prompt",
    SearchFound => "search_found",
    SearchNotFound => "search_not_found",
    SearchDidYouMean => "search_did_you_mean",
    AskQuantity => "ask_quantity",
    QtyExamplesKg => "qty_examples_kg",
    QtyExamplesLiter => "qty_examples_liter",
    QtyExamplesPiece => "qty_examples_piece",
    QtyNotNumber => "qty_not_number",
    QtyNotPositive => "qty_not_positive",
    QtyTooSmall => "qty_too_small",
    QtyTooLarge => "qty_too_large",
    QtyWrongUnit => "qty_wrong_unit",
    QtyNotWhole => "qty_not_whole",
    QtyBelowStep => "qty_below_step",
    SearchNotSoldHere => "search_not_sold_here",
    SearchSoldElsewhere => "search_sold_elsewhere",
    QtyMoneyTooLarge => "qty_money_too_large",
    AddedToCart => "added_to_cart",
    AddedMore => "added_more",
    CartFull => "cart_full",
    BtnContinueShopping => "btn_continue_shopping",
    BtnCheckout => "btn_checkout",
    BtnEmptyCart => "btn_empty_cart",
    CartEmpty => "cart_empty",
    CartHeader => "cart_header",
    CartLine => "cart_line",
    CartTotal => "cart_total",
    CartLineMenu => "cart_line_menu",
    BtnChangeQty => "btn_change_qty",
    BtnRemove => "btn_remove",
    AskNewQuantity => "ask_new_quantity",
    QtyChanged => "qty_changed",
    LineRemoved => "line_removed",
    ConfirmEmptyCart => "confirm_empty_cart",
    CartEmptied => "cart_emptied",
    OfferGone => "offer_gone",
    AskName => "ask_name",
    BtnUseSaved => "btn_use_saved",
    BadName => "bad_name",
    AskPhone => "ask_phone",
    BadPhone => "bad_phone",
    AskAddress => "ask_address",
    AddressTooShort => "address_too_short",
    AddressTooLong => "address_too_long",
    BadLocation => "bad_location",
    AskSlot => "ask_slot",
    SlotToday => "slot_today",
    SlotTomorrow => "slot_tomorrow",
    NoSlots => "no_slots",
    SlotGone => "slot_gone",
    AskPayment => "ask_payment",
    PayTransfer => "pay_transfer",
    PayQris => "pay_qris",
    PayCod => "pay_cod",
    AskNote => "ask_note",
    BtnNoNote => "btn_no_note",
    NoteTooLong => "note_too_long",
    Summary => "summary",
    SummaryStall => "summary_stall",
    SummaryNote => "summary_note",
    BtnPlaceOrder => "btn_place_order",
    OrderPlaced => "order_placed",
    CheckoutCancelled => "checkout_cancelled",
    PricesChanged => "prices_changed",
    OrdersNone => "orders_none",
    OrdersHeader => "orders_header",
    OrderLine => "order_line",
    BtnCancelOrder => "btn_cancel_order",
    ConfirmCancelOrder => "confirm_cancel_order",
    OrderCancelled => "order_cancelled",
    CancelNotFound => "cancel_not_found",
    CancelAlready => "cancel_already",
    CancelConfirmed => "cancel_confirmed",
    CancelTooLate => "cancel_too_late",
    CancelUsage => "cancel_usage",
    StatusAwaitingTraders => "status_awaiting_traders",
    StatusAwaitingBuyer => "status_awaiting_buyer",
    StatusConfirmed => "status_confirmed",
    StatusAwaitingPayment => "status_awaiting_payment",
    StatusPreparing => "status_preparing",
    StatusReadyForPickup => "status_ready_for_pickup",
    StatusOnDelivery => "status_on_delivery",
    StatusDelivered => "status_delivered",
    StatusCancelled => "status_cancelled",
    StatusRejected => "status_rejected",
    ChooseLanguage => "choose_language",
    LanguageSet => "language_set",
    ResumeNotice => "resume_notice",
    CmdStart => "cmd_start",
    CmdCari => "cmd_cari",
    CmdKeranjang => "cmd_keranjang",
    CmdPesanan => "cmd_pesanan",
    CmdBatal => "cmd_batal",
    CmdBahasa => "cmd_bahasa",
    CmdBantuan => "cmd_bantuan",
    TgShareLocation => "tg_share_location",
    TgShareContact => "tg_share_contact",
    TgRequestHint => "tg_request_hint",
    WaOpenList => "wa_open_list",
    WaMoreChoices => "wa_more_choices",
    WaShareLocation => "wa_share_location",
    WaReplyWithNumber => "wa_reply_with_number",
    WaHeldAlert => "wa_held_alert",
    LangNameId => "lang_name_id",
    LangNameEn => "lang_name_en",
    SummaryLine => "summary_line",
    AddressOutsideZone => "address_outside_zone",
    AddressKelurahanOutside => "address_kelurahan_outside",
    OfferSoldOut => "offer_sold_out",
    OfferStockLeft => "offer_stock_left",
    OfferSoldOutNow => "offer_sold_out_now",
    AdminHelp => "admin_help",
    AdminStallWithoutTrader => "admin_stall_without_trader",
    AdminTraderSilent => "admin_trader_silent",
    AlreadyAnswered => "already_answered",
    AreaSharedLocation => "area_shared_location",
    AskRejectReasonText => "ask_reject_reason_text",
    AskRejectReason => "ask_reject_reason",
    AskWeighed => "ask_weighed",
    BtnAccept => "btn_accept",
    BtnAgree => "btn_agree",
    BtnCancelWholeOrder => "btn_cancel_whole_order",
    BtnChange => "btn_change",
    BtnChangesDone => "btn_changes_done",
    BtnContinueWithout => "btn_continue_without",
    BtnDropStall => "btn_drop_stall",
    BtnLineOutOfStock => "btn_line_out_of_stock",
    BtnOtherReason => "btn_other_reason",
    BtnOutOfStock => "btn_out_of_stock",
    BtnPacked => "btn_packed",
    BtnReject => "btn_reject",
    BuyerAgreed => "buyer_agreed",
    BuyerChangesProposed => "buyer_changes_proposed",
    BuyerWeighedFinal => "buyer_weighed_final",
    BuyerContinueWithout => "buyer_continue_without",
    BuyerContinues => "buyer_continues",
    BuyerDroppedStall => "buyer_dropped_stall",
    BuyerOrderCancelledAll => "buyer_order_cancelled_all",
    BuyerOrderConfirmed => "buyer_order_confirmed",
    BuyerOrderReady => "buyer_order_ready",
    BuyerOrderRejected => "buyer_order_rejected",
    BuyerStallAccepted => "buyer_stall_accepted",
    BuyerStallRejected => "buyer_stall_rejected",
    BuyerStallTimedOut => "buyer_stall_timed_out",
    ChangeOutOfLimits => "change_out_of_limits",
    CmdPesananTrader => "cmd_pesanan_trader",
    CmdHarga => "cmd_harga",
    CmdStok => "cmd_stok",
    CmdTutup => "cmd_tutup",
    CmdBuka => "cmd_buka",
    CmdRekap => "cmd_rekap",
    CmdUndang => "cmd_undang",
    WeighedAboveStock => "weighed_above_stock",
    ChooseLineToChange => "choose_line_to_change",
    InviteCreated => "invite_created",
    InviteInvalid => "invite_invalid",
    InviteUnknownStall => "invite_unknown_stall",
    LineChanged => "line_changed",
    LineItem => "line_item",
    LineOutOfStock => "line_out_of_stock",
    NotEnoughStock => "not_enough_stock",
    SoldOutAtCheckout => "sold_out_at_checkout",
    OrderClosed => "order_closed",
    OrderNotYours => "order_not_yours",
    PriceImplausible => "price_implausible",
    PriceSet => "price_set",
    PriceUsage => "price_usage",
    ReasonHabis => "reason_habis",
    ReasonNoAnswer => "reason_no_answer",
    ReasonTooLong => "reason_too_long",
    ReasonTutup => "reason_tutup",
    RegisterUsage => "register_usage",
    Registered => "registered",
    SalesToday => "sales_today",
    StallClosed => "stall_closed",
    StallOpened => "stall_opened",
    StockBadAmount => "stock_bad_amount",
    StockNotSold => "stock_not_sold",
    StockSet => "stock_set",
    StockSoldOut => "stock_sold_out",
    StockUncounted => "stock_uncounted",
    StockUsage => "stock_usage",
    TraderAcceptedSummary => "trader_accepted_summary",
    TraderAccepted => "trader_accepted",
    TraderBuyerAgreed => "trader_buyer_agreed",
    TraderBuyerDeclined => "trader_buyer_declined",
    TraderCancelled => "trader_cancelled",
    TraderChangesSent => "trader_changes_sent",
    TraderHelp => "trader_help",
    TraderNewOrder => "trader_new_order",
    TraderNoOpenOrders => "trader_no_open_orders",
    TraderNotUnderstood => "trader_not_understood",
    TraderNote => "trader_note",
    TraderOrderCancelled => "trader_order_cancelled",
    TraderPacked => "trader_packed",
    TraderRejected => "trader_rejected",
    TraderReminder => "trader_reminder",
    TraderTimedOut => "trader_timed_out",
    TraderUnknownCommodity => "trader_unknown_commodity",
    TraderWaitingForBuyer => "trader_waiting_for_buyer",
    WeighedNotUnderstood => "weighed_not_understood",
    AdminNoCourier => "admin_no_courier",
    WhyNoneOnShift => "why_none_on_shift",
    WhyNobodyTook => "why_nobody_took",
    AdminDeliveryFailed => "admin_delivery_failed",
    AssignUsage => "assign_usage",
    AssignUnknownOrder => "assign_unknown_order",
    AssignUnknownCourier => "assign_unknown_courier",
    AssignNotReady => "assign_not_ready",
    AssignBusy => "assign_busy",
    AssignDone => "assign_done",
    CourierInviteUsage => "courier_invite_usage",
    CourierInvitePhone => "courier_invite_phone",
    CourierInviteCreated => "courier_invite_created",
    CourierListNone => "courier_list_none",
    CourierListHeader => "courier_list_header",
    CourierListLine => "courier_list_line",
    CourierOnShift => "courier_on_shift",
    CourierOffShift => "courier_off_shift",
    CourierRating => "courier_rating",
    CourierNotRated => "courier_not_rated",
    CourierRegistered => "courier_registered",
    CourierHelp => "courier_help",
    ShiftStarted => "shift_started",
    ShiftAlreadyOn => "shift_already_on",
    ShiftNotOn => "shift_not_on",
    ShiftEnded => "shift_ended",
    ShiftEndedWithJobs => "shift_ended_with_jobs",
    JobsNone => "jobs_none",
    JobsNoneOffShift => "jobs_none_off_shift",
    CourierPhotoNotNeeded => "courier_photo_not_needed",
    CourierPositionSaved => "courier_position_saved",
    JobOffer => "job_offer",
    JobCurrent => "job_current",
    JobAssigned => "job_assigned",
    JobAllReady => "job_all_ready",
    JobTaken => "job_taken",
    JobPickedHeader => "job_picked_header",
    JobOnTheWay => "job_on_the_way",
    JobSummary => "job_summary",
    JobStallsHeader => "job_stalls_header",
    JobStall => "job_stall",
    JobMarkPicked => "job_mark_picked",
    JobMarkReady => "job_mark_ready",
    JobMarkPacking => "job_mark_packing",
    JobItem => "job_item",
    JobDropoff => "job_dropoff",
    JobCollectCash => "job_collect_cash",
    JobOfferLapsed => "job_offer_lapsed",
    JobSkipped => "job_skipped",
    JobWithdrawn => "job_withdrawn",
    JobNotYours => "job_not_yours",
    JobMoved => "job_moved",
    JobAlreadyDone => "job_already_done",
    JobStallNotPacked => "job_stall_not_packed",
    JobNotAllPicked => "job_not_all_picked",
    JobProofAsk => "job_proof_ask",
    JobProofNeedPhoto => "job_proof_need_photo",
    JobDelivered => "job_delivered",
    JobFailAsk => "job_fail_ask",
    JobFailed => "job_failed",
    FailNotHome => "fail_not_home",
    FailWrongAddress => "fail_wrong_address",
    FailRefused => "fail_refused",
    BtnTakeJob => "btn_take_job",
    BtnSkipJob => "btn_skip_job",
    BtnPickedUp => "btn_picked_up",
    BtnDepart => "btn_depart",
    BtnDelivered => "btn_delivered",
    BtnDeliveryFailed => "btn_delivery_failed",
    BtnFailNotHome => "btn_fail_not_home",
    BtnFailWrongAddress => "btn_fail_wrong_address",
    BtnFailRefused => "btn_fail_refused",
    TraderPickedUp => "trader_picked_up",
    BuyerCourierAssigned => "buyer_courier_assigned",
    BuyerStallPickedUp => "buyer_stall_picked_up",
    BuyerOnTheWay => "buyer_on_the_way",
    BuyerDelivered => "buyer_delivered",
    BuyerDeliveryFailed => "buyer_delivery_failed",
    BtnTrack => "btn_track",
    BtnTrackOrder => "btn_track_order",
    BtnRefreshTrack => "btn_refresh_track",
    StatusUsage => "status_usage",
    StatusNotFound => "status_not_found",
    TrackHeader => "track_header",
    TrackStep => "track_step",
    TrackCourier => "track_courier",
    TrackPosition => "track_position",
    TrackPositionNone => "track_position_none",
    TrackPositionNow => "track_position_now",
    TrackEta => "track_eta",
    EtaMinutes => "eta_minutes",
    EtaSlot => "eta_slot",
    EvPlaced => "ev_placed",
    EvConfirmed => "ev_confirmed",
    EvReady => "ev_ready",
    EvCancelled => "ev_cancelled",
    EvRejected => "ev_rejected",
    EvStallAccepted => "ev_stall_accepted",
    EvStallPacked => "ev_stall_packed",
    EvStallPickedUp => "ev_stall_picked_up",
    EvStallDropped => "ev_stall_dropped",
    EvCourierAssigned => "ev_courier_assigned",
    EvOnTheWay => "ev_on_the_way",
    EvDelivered => "ev_delivered",
    EvFailed => "ev_failed",
    CmdStatus => "cmd_status",
    CmdMulai => "cmd_mulai",
    CmdSelesai => "cmd_selesai",
    CmdTugas => "cmd_tugas",
    CmdUndangKurir => "cmd_undang_kurir",
    CmdKurir => "cmd_kurir",
    CmdTugaskan => "cmd_tugaskan",
    RateCourierAsk => "rate_courier_ask",
    RateStallAsk => "rate_stall_ask",
    RateThanks => "rate_thanks",
    RateAlready => "rate_already",
    RateNotYet => "rate_not_yet",
    ReviewCommentAsk => "review_comment_ask",
    BtnSkipComment => "btn_skip_comment",
    ReviewThanks => "review_thanks",
    AdminVendorRejected => "admin_vendor_rejected",
    TheVendor => "the_vendor",
    JobAssignedAfterFailure => "job_assigned_after_failure",
    JobProofCancelled => "job_proof_cancelled",
    AdminShiftEndedHolding => "admin_shift_ended_holding",
    AssignDoneOffShift => "assign_done_off_shift",
    BuyerDeliveryLate => "buyer_delivery_late",
    AdminDeliveryLate => "admin_delivery_late",
    NoCourierYet => "no_courier_yet",
    AssignBusyVendor => "assign_busy_vendor",
    PayTransferBody => "pay_transfer_body",
    PayQrisBody => "pay_qris_body",
    PayAskAdmin => "pay_ask_admin",
    BtnCancelUnpaid => "btn_cancel_unpaid",
    PayAmountChanged => "pay_amount_changed",
    PayReminder => "pay_reminder",
    BuyerPaid => "buyer_paid",
    TraderPaid => "trader_paid",
    TraderPaidPacked => "trader_paid_packed",
    TraderPaymentExpired => "trader_payment_expired",
    BuyerPaymentExpired => "buyer_payment_expired",
    RefundWhyWrongAmount => "refund_why_wrong_amount",
    RefundWhyNotAwaiting => "refund_why_not_awaiting",
    RefundWhyLess => "refund_why_less",
    RefundWhyCancelled => "refund_why_cancelled",
    BuyerRefundOwed => "buyer_refund_owed",
    AdminRefundOwed => "admin_refund_owed",
    PayStatusPaid => "pay_status_paid",
    PayStatusPending => "pay_status_pending",
    PayStatusOwed => "pay_status_owed",
    PayStatusRefunded => "pay_status_refunded",
    EvAwaitingPayment => "ev_awaiting_payment",
    EvPaid => "ev_paid",
    BuyerPaidReady => "buyer_paid_ready",
    PaidByBank => "paid_by_bank",
    StatsUsage => "stats_usage",
    StatsHeader => "stats_header",
    StatsPeriodDay => "stats_period_day",
    StatsPeriodDays => "stats_period_days",
    StatsOrders => "stats_orders",
    StatsAnswer => "stats_answer",
    StatsNoAnswer => "stats_no_answer",
    StatsRates => "stats_rates",
    StatsTopHeader => "stats_top_header",
    StatsTopLine => "stats_top_line",
    StatsTopNone => "stats_top_none",
    StatsCityHeader => "stats_city_header",
    StatsCityLine => "stats_city_line",
    StatsMinutes => "stats_minutes",
    StatsChartHours => "stats_chart_hours",
    StatsChartDays => "stats_chart_days",
    StatsChartAllMarkets => "stats_chart_all_markets",
    StatsChartY => "stats_chart_y",
    ExportUsage => "export_usage",
    ExportUsageCity => "export_usage_city",
    ExportReversed => "export_reversed",
    ExportTooLong => "export_too_long",
    ExportNone => "export_none",
    ExportCaption => "export_caption",
    CmdStatistik => "cmd_statistik",
    CmdEkspor => "cmd_ekspor",
    AdminPriceAbove => "admin_price_above",
    AdminPriceBelow => "admin_price_below",
    ReferenceUsage => "reference_usage",
    ReferenceSet => "reference_set",
    SubscribeDone => "subscribe_done",
    UnsubscribeDone => "unsubscribe_done",
    BtnSubscribe => "btn_subscribe",
    BroadcastMessage => "broadcast_message",
    BroadcastUsage => "broadcast_usage",
    BroadcastNoSubscribers => "broadcast_no_subscribers",
    BroadcastPreview => "broadcast_preview",
    BtnBroadcastSend => "btn_broadcast_send",
    BtnBroadcastCancel => "btn_broadcast_cancel",
    BroadcastCancelled => "broadcast_cancelled",
    BroadcastProgress => "broadcast_progress",
    BroadcastDone => "broadcast_done",
    CmdSiaran => "cmd_siaran",
    CmdLangganan => "cmd_langganan",
    CmdBerhenti => "cmd_berhenti",
    AuditBroadcastRecipients => "audit_broadcast_recipients",
    CourierInactive => "courier_inactive",
    TraderListHeader => "trader_list_header",
    TraderListLine => "trader_list_line",
    TraderListAnswers => "trader_list_answers",
    TraderListNoAnswers => "trader_list_no_answers",
    TraderListActive => "trader_list_active",
    TraderListInactive => "trader_list_inactive",
    ActiveUsage => "active_usage",
    ActiveUnknown => "active_unknown",
    InactiveDone => "inactive_done",
    ActiveDone => "active_done",
    StallDeactivated => "stall_deactivated",
    StallActivated => "stall_activated",
    CourierDeactivated => "courier_deactivated",
    CourierActivated => "courier_activated",
    CmdPedagang => "cmd_pedagang",
    CmdNonaktif => "cmd_nonaktif",
    CmdAktif => "cmd_aktif",
    AdminOrdersUsage => "admin_orders_usage",
    AdminOrdersNone => "admin_orders_none",
    AdminOrdersHeader => "admin_orders_header",
    AdminOrdersLine => "admin_orders_line",
    AdminOrderParty => "admin_order_party",
    AdminOrderStall => "admin_order_stall",
    FilterOpen => "filter_open",
    FilterNew => "filter_new",
    FilterPayment => "filter_payment",
    FilterReady => "filter_ready",
    FilterOnTheRoad => "filter_on_the_road",
    FilterDelivered => "filter_delivered",
    FilterCancelled => "filter_cancelled",
    SubAwaitingTrader => "sub_awaiting_trader",
    SubAdjusted => "sub_adjusted",
    SubAccepted => "sub_accepted",
    SubRejected => "sub_rejected",
    SubPacked => "sub_packed",
    SubPickedUp => "sub_picked_up",
    SubCancelled => "sub_cancelled",
    CmdPesananAdmin => "cmd_pesanan_admin",
    BackupDone => "backup_done",
    BackupFailed => "backup_failed",
    BackupQueued => "backup_queued",
    MarketClosedNotice => "market_closed_notice",
    MarketCloseUsage => "market_close_usage",
    MarketClosedDone => "market_closed_done",
    MarketOpenedDone => "market_opened_done",
    MarketAlreadyOpen => "market_already_open",
    CmdPasarTutup => "cmd_pasar_tutup",
    CmdPasarBuka => "cmd_pasar_buka",
    AdminHelpCity => "admin_help_city",
    AuditUsage => "audit_usage",
    AuditNone => "audit_none",
    AuditHeader => "audit_header",
    AuditLine => "audit_line",
    AdminInviteCreated => "admin_invite_created",
    AdminRegistered => "admin_registered",
    AdminListNone => "admin_list_none",
    AdminListHeader => "admin_list_header",
    AdminRemovedNotice => "admin_removed_notice",
    AdminRemoved => "admin_removed",
    CmdAudit => "cmd_audit",
    CmdLunas => "cmd_lunas",
    CmdRefund => "cmd_refund",
    CmdPembayaran => "cmd_pembayaran",
    CmdBatalkan => "cmd_batalkan",
    AdminCancelUsage => "admin_cancel_usage",
    AdminCancelRefused => "admin_cancel_refused",
    AdminCancelDone => "admin_cancel_done",
    BuyerOrderCancelledByMarket => "buyer_order_cancelled_by_market",
    TraderOrderCancelledByMarket => "trader_order_cancelled_by_market",
    JobCancelledByMarket => "job_cancelled_by_market",
    PayVa => "pay_va",
    PayVaBody => "pay_va_body",
    PayVaPreparing => "pay_va_preparing",
    AdminVaRefused => "admin_va_refused",
    PaymentsKindGoodwill => "payments_kind_goodwill",
    BtnRanOut => "btn_ran_out",
    BtnLineRanOut => "btn_line_ran_out",
    ChooseLineRanOut => "choose_line_ran_out",
    TraderLineDropped => "trader_line_dropped",
    BuyerLineDropped => "buyer_line_dropped",
    PaidUsage => "paid_usage",
    PaidAtDoor => "paid_at_door",
    PaidNotAwaiting => "paid_not_awaiting",
    PaidLateOwed => "paid_late_owed",
    PaidLateAlready => "paid_late_already",
    PaidDone => "paid_done",
    PaidWrongAmount => "paid_wrong_amount",
    RefundUsage => "refund_usage",
    RefundNotPaid => "refund_not_paid",
    RefundTooMuch => "refund_too_much",
    RefundDone => "refund_done",
    BuyerRefunded => "buyer_refunded",
    PaymentsUsage => "payments_usage",
    PaymentsHeader => "payments_header",
    PaymentsMethodLine => "payments_method_line",
    PaymentsTotals => "payments_totals",
    PaymentsNone => "payments_none",
    PaymentsEntry => "payments_entry",
    PaymentsKindOwed => "payments_kind_owed",
    PaymentsKindRefund => "payments_kind_refund",
    PaymentsOwedHeader => "payments_owed_header",
    PaymentsOwedLine => "payments_owed_line",
    // Cash at the door.
    JobCashAsk => "job_cash_ask",
    JobCashNeedAmount => "job_cash_need_amount",
    JobCashCheckLess => "job_cash_check_less",
    JobCashCheckMore => "job_cash_check_more",
    JobCashNoted => "job_cash_noted",
    JobCashCancelled => "job_cash_cancelled",
    JobDeliveredCash => "job_delivered_cash",
    BtnCashExact => "btn_cash_exact",
    BtnCashConfirm => "btn_cash_confirm",
    AdminCashShort => "admin_cash_short",
    RefundWhyCashOver => "refund_why_cash_over",
    PaymentsKindCash => "payments_kind_cash",
    // Catalogue, hours and capacity (admins).
    HoursShow => "hours_show",
    HoursUsage => "hours_usage",
    HoursSet => "hours_set",
    SlotsSet => "slots_set",
    CapacityShow => "capacity_show",
    CapacityLine => "capacity_line",
    CapacityLineFull => "capacity_line_full",
    CapacityUsage => "capacity_usage",
    CapacitySet => "capacity_set",
    CommodityAddUsage => "commodity_add_usage",
    CommodityExists => "commodity_exists",
    CommodityAdded => "commodity_added",
    CommodityEditUsage => "commodity_edit_usage",
    CommodityEdited => "commodity_edited",
    CommodityUnitFixed => "commodity_unit_fixed",
    PhotoUsage => "photo_usage",
    PhotoSet => "photo_set",
    PhotoRemoved => "photo_removed",
    CmdJam => "cmd_jam",
    CmdKapasitas => "cmd_kapasitas",
    CmdKomoditasTambah => "cmd_komoditas_tambah",
    CmdKomoditasUbah => "cmd_komoditas_ubah",
    CmdFoto => "cmd_foto",
    CmdAdminTambah => "cmd_admin_tambah",
    CmdAdminHapus => "cmd_admin_hapus",
    CmdCadangan => "cmd_cadangan",
    CmdHargaAcuan => "cmd_harga_acuan",
    JobDropoffArea => "job_dropoff_area",
    JobDropoffDistance => "job_dropoff_distance",
    // Typed orders and questions (issue 9).
    TypedUsage => "typed_usage",
    TypedHeader => "typed_header",
    TypedLine => "typed_line",
    TypedAssumed => "typed_assumed",
    TypedTotal => "typed_total",
    TypedNotSold => "typed_not_sold",
    TypedNotUnderstood => "typed_not_understood",
    TypedCut => "typed_cut",
    TypedNothing => "typed_nothing",
    TypedWhyAmbiguous => "typed_why_ambiguous",
    TypedWhyTooLarge => "typed_why_too_large",
    TypedWhyTooSmall => "typed_why_too_small",
    TypedWhyUnit => "typed_why_unit",
    TypedWhyAmount => "typed_why_amount",
    TypedWhyStock => "typed_why_stock",
    TypedChooseLine => "typed_choose_line",
    TypedChooseStall => "typed_choose_stall",
    TypedAllDropped => "typed_all_dropped",
    TypedProblem => "typed_problem",
    TypedAddedLine => "typed_added_line",
    TypedAdded => "typed_added",
    TypedNoneAdded => "typed_none_added",
    TypedNotAdded => "typed_not_added",
    BtnTypedAddAll => "btn_typed_add_all",
    BtnTypedChange => "btn_typed_change",
    BtnTypedDrop => "btn_typed_drop",
    QuestionWhich => "question_which",
    AnswerPrice => "answer_price",
    AnswerNotSold => "answer_not_sold",
    AnswerHint => "answer_hint",
    CmdPesan => "cmd_pesan",
    TypedPart => "typed_part",
    TypedPartWhy => "typed_part_why",
    TypedLineClosed => "typed_line_closed",
    TypedLineButton => "typed_line_button",
    TypedStallButton => "typed_stall_button",
    TypedWhyClosed => "typed_why_closed",
    TypedWhyBelowStep => "typed_why_below_step",
    TypedSoldAt => "typed_sold_at",
    TypedWhyMoneyTooLarge => "typed_why_money_too_large",
    AnswerRange => "answer_range",
    CommodityExactName => "commodity_exact_name",
    PhotoGone => "photo_gone",
}

/// Parsed catalog: key -> sentence.
type Catalog = HashMap<String, String>;

/// Why the dialogues could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum TextError {
    #[error("{file}: {reason}")]
    Invalid { file: String, reason: String },
}

const BASE_ID: &str = include_str!("../dialogues/id.toml");
const BASE_EN: &str = include_str!("../dialogues/en.toml");

/// All dialogue catalogs, with per-market overrides.
#[derive(Debug, Clone)]
pub struct Texts {
    base: HashMap<Lang, Catalog>,
    /// market slug -> language -> overriding sentences.
    overrides: HashMap<String, HashMap<Lang, Catalog>>,
}

fn parse_catalog(file: &str, text: &str) -> Result<Catalog, TextError> {
    let table: toml::Table =
        toml::from_str(text).map_err(|e| TextError::Invalid { file: file.to_string(), reason: e.to_string() })?;
    let mut out = Catalog::new();
    for (k, v) in table {
        match v {
            toml::Value::String(s) => {
                out.insert(k, s);
            }
            _ => {
                return Err(TextError::Invalid { file: file.to_string(), reason: format!("`{k}` is not a string") });
            }
        }
    }
    Ok(out)
}

impl Texts {
    /// The compiled-in base catalogs, no market overrides.
    pub fn builtin() -> Result<Texts, TextError> {
        let mut base = HashMap::new();
        base.insert(Lang::Id, parse_catalog("dialogues/id.toml", BASE_ID)?);
        base.insert(Lang::En, parse_catalog("dialogues/en.toml", BASE_EN)?);
        Ok(Texts { base, overrides: HashMap::new() })
    }

    /// Base catalogs plus every `markets/<slug>.<lang>.toml` under `dir` (a missing folder means
    /// no overrides). An override may only use keys that exist.
    pub fn load(dir: &Path) -> Result<Texts, TextError> {
        let mut texts = Texts::builtin()?;
        let markets_dir = dir.join("markets");
        let Ok(entries) = std::fs::read_dir(&markets_dir) else {
            return Ok(texts);
        };
        let mut files: Vec<_> = entries.filter_map(|e| e.ok()).map(|e| e.path()).collect();
        files.sort();
        for path in files {
            let Some(fname) = path.file_name().and_then(|f| f.to_str()) else {
                continue;
            };
            let Some(stem) = fname.strip_suffix(".toml") else {
                continue;
            };
            let file = path.display().to_string();
            let (slug, lang) = stem.rsplit_once('.').ok_or_else(|| TextError::Invalid {
                file: file.clone(),
                reason: "name must be <market>.<lang>.toml".into(),
            })?;
            let lang = Lang::from_code(lang).ok_or_else(|| TextError::Invalid {
                file: file.clone(),
                reason: format!("unknown language `{lang}`"),
            })?;
            let text = std::fs::read_to_string(&path)
                .map_err(|e| TextError::Invalid { file: file.clone(), reason: e.to_string() })?;
            let catalog = parse_catalog(&file, &text)?;
            for k in catalog.keys() {
                if !Key::ALL.iter().any(|key| key.name() == k) {
                    return Err(TextError::Invalid { file: file.clone(), reason: format!("unknown key `{k}`") });
                }
            }
            texts.overrides.entry(slug.to_string()).or_default().insert(lang, catalog);
        }
        Ok(texts)
    }

    /// Keys of a base catalog, for the catalog test.
    pub fn base_keys(&self, lang: Lang) -> Vec<&str> {
        self.base.get(&lang).map(|c| c.keys().map(String::as_str).collect()).unwrap_or_default()
    }

    /// The sentence for `key`: the market's override, else the base catalog, else the key name
    /// (never a panic over a missing sentence).
    pub fn get(&self, market: &str, lang: Lang, key: Key) -> &str {
        let name = key.name();
        if let Some(s) = self.overrides.get(market).and_then(|m| m.get(&lang)).and_then(|c| c.get(name)) {
            return s;
        }
        self.base.get(&lang).and_then(|c| c.get(name)).map(String::as_str).unwrap_or(name)
    }

    /// The sentence with `{name}` placeholders replaced.
    pub fn render(&self, market: &str, lang: Lang, key: Key, args: &[(&str, &dyn Display)]) -> String {
        fill(self.get(market, lang, key), args)
    }
}

/// Replaces each `{name}` in `template` by its argument.
/// In one pass, so a value that itself contains `{name}` (a shopper typed it) stays as typed.
pub fn fill(template: &str, args: &[(&str, &dyn Display)]) -> String {
    let mut out = String::with_capacity(template.len() + 32);
    let mut rest = template;
    while let Some(open) = rest.find('{') {
        out.push_str(&rest[..open]);
        let after = &rest[open + 1..];
        let name_end = after.find('}').filter(|&end| {
            let name = &after[..end];
            !name.is_empty() && name.chars().all(|c| c.is_ascii_lowercase() || c == '_')
        });
        match name_end.and_then(|end| args.iter().find(|(n, _)| *n == &after[..end]).map(|(_, v)| (end, v))) {
            Some((end, value)) => {
                out.push_str(&value.to_string());
                rest = &after[end + 1..];
            }
            None => {
                out.push('{');
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fills_placeholders() {
        assert_eq!(fill("Halo {name}, total {total}", &[("name", &"Sri"), ("total", &5)]), "Halo Sri, total 5");
        assert_eq!(fill("no args", &[]), "no args");
        // A value containing a placeholder is not filled again.
        assert_eq!(
            fill("{address} at {slot}", &[("address", &"Jl. {slot}"), ("slot", &"09:00")]),
            "Jl. {slot} at 09:00"
        );
        assert_eq!(fill("{unknown} {x", &[("y", &1)]), "{unknown} {x");
    }

    #[test]
    fn languages_by_code() {
        assert_eq!(Lang::from_code("EN"), Some(Lang::En));
        assert_eq!(Lang::from_code("indonesia"), Some(Lang::Id));
        assert_eq!(Lang::from_code("jv"), None);
    }
}
