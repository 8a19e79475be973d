//! The admins' reports, sent as files: `/statistik` (the market's figures for today, the week or
//! the month, every market's for city admins, and a chart of orders over the period) and
//! `/ekspor` (the market's orders of a date range as the CSV of `pasar export`).
//!
//! Like every step, no I/O: the figures come through the [`ReportRepo`](super::ReportRepo)
//! queries, and the chart goes into the message as data ([`Chart`]) for the channel to draw when
//! it sends; the CSV is text and goes into the message whole.

use super::{Repo, RepoResult, Turn};
use crate::channel::{Chart, Document, Outbound, Series};
use crate::domain::catalog::Market;
use crate::domain::quantity::Quantity;
use crate::domain::report::{MarketFigures, Period, RangeError, export_range};
use crate::domain::slot::{local, malang_midnight};
use crate::text::{Key, Lang};
use chrono::Duration;

/// Commodities `/statistik` lists.
const TOP_COMMODITIES: usize = 5;

/// Minutes as admins read them: `7`, or `7,5` in Indonesian.
fn minutes(turn: &Turn<'_>, m: f64) -> String {
    let s = format!("{m:.1}");
    let s = s.strip_suffix(".0").unwrap_or(&s).to_string();
    if turn.lang == Lang::Id { s.replace('.', ",") } else { s }
}

/// `/statistik [hari|minggu|bulan]`: the figures as text, then the chart as a picture.
pub fn statistics(args: &str, repo: &mut dyn Repo, turn: &mut Turn<'_>) -> RepoResult<()> {
    let Some((period, (from, to))) = Period::parse(args).and_then(|p| Some((p, p.range(turn.now)?))) else {
        turn.say(Key::StatsUsage);
        return Ok(());
    };
    let city = turn.policy.is_city_admin(turn.user);
    let (first, last) = period.dates(turn.now);
    let period_text = match period {
        Period::Day => turn.tf(Key::StatsPeriodDay, &[("date", &last.format("%d/%m/%Y"))]),
        Period::Week | Period::Month => turn.tf(
            Key::StatsPeriodDays,
            &[("days", &period.days()), ("from", &first.format("%d/%m")), ("to", &last.format("%d/%m/%Y"))],
        ),
    };
    let figures = repo.order_figures(from, to, city)?;
    let mine = figures
        .iter()
        .find(|f| f.market == turn.market.slug)
        .cloned()
        .unwrap_or_else(|| MarketFigures { market: turn.market.slug.clone(), ..MarketFigures::default() });
    let mut text = turn.tf(Key::StatsHeader, &[("market", &turn.market.name), ("period", &period_text)]);
    text.push('\n');
    text.push_str(&turn.tf(Key::StatsOrders, &[("orders", &mine.orders), ("value", &mine.value)]));
    text.push('\n');
    text.push_str(&match mine.answer_minutes {
        Some(m) => turn.tf(Key::StatsAnswer, &[("minutes", &minutes(turn, m)), ("count", &mine.answered)]),
        None => turn.t(Key::StatsNoAnswer),
    });
    text.push('\n');
    text.push_str(&turn.tf(
        Key::StatsRates,
        &[
            ("rejected", &mine.rejected),
            ("rejected_pct", &mine.percent(mine.rejected)),
            ("cancelled", &mine.cancelled),
            ("cancelled_pct", &mine.percent(mine.cancelled)),
        ],
    ));
    let top = repo.top_commodities(from, to, TOP_COMMODITIES)?;
    text.push_str("\n\n");
    if top.is_empty() {
        text.push_str(&turn.t(Key::StatsTopNone));
    } else {
        text.push_str(&turn.t(Key::StatsTopHeader));
        for (i, c) in top.iter().enumerate() {
            let commodity = turn.catalog.commodity(&c.commodity_id);
            let name = commodity.map(|k| k.display_name(turn.lang).to_string()).unwrap_or_else(|| c.name.clone());
            let quantity = match commodity {
                Some(k) => Quantity::amount(c.base, k.unit).display(turn.lang),
                None => c.base.to_string(),
            };
            text.push('\n');
            text.push_str(&turn.tf(
                Key::StatsTopLine,
                &[("rank", &(i + 1)), ("commodity", &name), ("quantity", &quantity), ("value", &c.value)],
            ));
        }
    }
    let markets: Vec<Market> = if city {
        turn.catalog.markets().to_vec()
    } else {
        turn.catalog.market(&turn.market.slug).cloned().into_iter().collect()
    };
    if city {
        text.push_str("\n\n");
        text.push_str(&turn.t(Key::StatsCityHeader));
        for m in &markets {
            let f = figures.iter().find(|f| f.market == m.slug).cloned().unwrap_or_default();
            let answer = match f.answer_minutes {
                Some(a) => turn.tf(Key::StatsMinutes, &[("minutes", &minutes(turn, a))]),
                None => "–".to_string(),
            };
            text.push('\n');
            text.push_str(&turn.tf(
                Key::StatsCityLine,
                &[
                    ("market", &m.name),
                    ("orders", &f.orders),
                    ("value", &f.value),
                    ("answer", &answer),
                    ("rejected", &f.percent(f.rejected)),
                    ("cancelled", &f.percent(f.cancelled)),
                ],
            ));
        }
    }
    turn.reply(Outbound::text(text));

    // The chart: orders per hour of today, or per day of the week or month; a line per market.
    let buckets = period.buckets(turn.now);
    let counts = repo.orders_by_hour(from, to, city)?;
    let series = markets
        .iter()
        .map(|m| {
            let mut values = vec![0u32; buckets.len()];
            for c in counts.iter().filter(|c| c.market == m.slug) {
                if let Some(i) = buckets.iter().position(|b| *b == period.bucket_of(c.hour)) {
                    values[i] += c.orders;
                }
            }
            Series { name: m.name.clone(), values }
        })
        .collect();
    let who = if city { turn.t(Key::StatsChartAllMarkets) } else { turn.market.name.clone() };
    let title = match period {
        Period::Day => turn.tf(Key::StatsChartHours, &[("who", &who), ("date", &last.format("%d/%m/%Y"))]),
        Period::Week | Period::Month => turn.tf(
            Key::StatsChartDays,
            &[("who", &who), ("from", &first.format("%d/%m")), ("to", &last.format("%d/%m/%Y"))],
        ),
    };
    let chart = Chart {
        title: title.clone(),
        x_labels: buckets.iter().map(|b| period.label(*b)).collect(),
        y_label: turn.t(Key::StatsChartY),
        series,
    };
    turn.reply(Outbound { chart: Some(chart), ..Outbound::text(format!("📈 {title}")) });
    Ok(())
}

/// `/ekspor [dari] [sampai]` (city admins: and a market's slug, or `semua`): the orders placed
/// in those days as a CSV file, the same file as `pasar export`.
pub fn export(args: &str, repo: &mut dyn Repo, turn: &mut Turn<'_>) -> RepoResult<()> {
    let city = turn.policy.is_city_admin(turn.user);
    let mut words: Vec<&str> = args.split_whitespace().collect();
    // The scope: this market, unless a city admin names another one or all of them.
    let mut scope: Option<Option<String>> = Some(Some(turn.market.slug.clone()));
    if let Some(last) = words.last().map(|w| w.to_lowercase())
        && crate::domain::report::parse_date(&last).is_none()
    {
        let named = if matches!(last.as_str(), "semua" | "all") {
            Some(None)
        } else {
            turn.catalog.market(&last).map(|m| Some(m.slug.clone()))
        };
        if named.is_some() {
            words.pop();
            // A market admin may name their own market, nothing else.
            let own = named.as_ref().is_some_and(|n| n.as_deref() == Some(turn.market.slug.as_str()));
            scope = if city || own { named } else { None };
        }
    }
    let today = local(turn.now).date_naive();
    let usage = |turn: &Turn<'_>| {
        let mut text = turn.t(Key::ExportUsage);
        if city {
            text.push(' ');
            text.push_str(&turn.t(Key::ExportUsageCity));
        }
        text
    };
    let Some(market) = scope else {
        let text = usage(turn);
        turn.reply(Outbound::text(text));
        return Ok(());
    };
    let (first, last) = match export_range(&words, today) {
        Ok(range) => range,
        Err(e) => {
            let problem = match e {
                RangeError::NotADate => String::new(),
                RangeError::Reversed => format!("{}\n", turn.t(Key::ExportReversed)),
                RangeError::TooLong => {
                    format!("{}\n", turn.tf(Key::ExportTooLong, &[("days", &crate::domain::report::MAX_EXPORT_DAYS)]))
                }
            };
            let text = format!("{problem}{}", usage(turn));
            turn.reply(Outbound::text(text));
            return Ok(());
        }
    };
    let (Some(from), Some(to)) = (malang_midnight(first), malang_midnight(last + Duration::days(1))) else {
        let text = usage(turn);
        turn.reply(Outbound::text(text));
        return Ok(());
    };
    let (csv, count) = repo.orders_csv(from, to, market.as_deref())?;
    let who = match &market {
        Some(slug) => turn.catalog.market(slug).map(|m| m.name.clone()).unwrap_or_else(|| slug.clone()),
        None => turn.t(Key::StatsChartAllMarkets),
    };
    let (from_text, to_text) = (first.format("%d/%m/%Y").to_string(), last.format("%d/%m/%Y").to_string());
    if count == 0 {
        let text = turn.tf(Key::ExportNone, &[("who", &who), ("from", &from_text), ("to", &to_text)]);
        turn.reply(Outbound::text(text));
        return Ok(());
    }
    let file_name = format!(
        "pesanan-{}-{}-{}.csv",
        market.as_deref().unwrap_or("semua"),
        first.format("%Y%m%d"),
        last.format("%Y%m%d")
    );
    let caption =
        turn.tf(Key::ExportCaption, &[("count", &count), ("who", &who), ("from", &from_text), ("to", &to_text)]);
    let document = Document { file_name, mime: "text/csv".into(), content: csv };
    turn.reply(Outbound { document: Some(document), ..Outbound::text(caption) });
    Ok(())
}
