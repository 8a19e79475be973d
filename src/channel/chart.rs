//! Drawing a [`Chart`] for the channels that show pictures (Telegram, WhatsApp), and a small text
//! table of it for the terminal. The conversation core only puts a chart's data into a message;
//! the channel draws it here when it sends, as it draws a QR code.
//!
//! Drawing is `plotters` on its in-memory bitmap backend, encoded by the `png` crate. Text uses
//! DejaVu Sans compiled into the binary (`data/fonts/`, Bitstream Vera licence beside it), so no
//! system font or fontconfig is needed.

use super::Chart;
use plotters::coord::ranged1d::SegmentValue;
use plotters::prelude::*;
use std::sync::OnceLock;

/// The picture's size in pixels.
pub const WIDTH: u32 = 1000;
pub const HEIGHT: u32 = 600;

/// DejaVu Sans (Bitstream Vera licence with DejaVu's public-domain changes).
static FONT: &[u8] = include_bytes!("../../data/fonts/DejaVuSans.ttf");
const FAMILY: &str = "sans-serif";

/// Why a chart could not be drawn (the message then goes as text).
#[derive(Debug, thiserror::Error)]
pub enum ChartError {
    #[error("the embedded font does not load")]
    Font,
    #[error("drawing: {0}")]
    Draw(String),
    #[error("encoding the PNG: {0}")]
    Png(#[from] png::EncodingError),
}

fn draw_error(e: impl std::fmt::Display) -> ChartError {
    ChartError::Draw(e.to_string())
}

/// Registers the embedded font with plotters once per process.
fn font() -> Result<(), ChartError> {
    static REGISTERED: OnceLock<bool> = OnceLock::new();
    let ok = *REGISTERED.get_or_init(|| plotters::style::register_font(FAMILY, FontStyle::Normal, FONT).is_ok());
    if ok { Ok(()) } else { Err(ChartError::Font) }
}

/// The chart as a PNG of [`WIDTH`] × [`HEIGHT`]: one line with dots per series, a legend when
/// there are several.
pub fn png(chart: &Chart) -> Result<Vec<u8>, ChartError> {
    font()?;
    let mut rgb = vec![255u8; (WIDTH * HEIGHT * 3) as usize];
    {
        let root = BitMapBackend::with_buffer(&mut rgb, (WIDTH, HEIGHT)).into_drawing_area();
        root.fill(&WHITE).map_err(draw_error)?;
        let n = chart.x_labels.len().max(1) as u32;
        let max = chart.series.iter().flat_map(|s| s.values.iter()).copied().max().unwrap_or(0);
        // Headroom above the highest point, and room for the legend.
        let y_max = (max + max / 4 + 1).max(4);
        let mut c = ChartBuilder::on(&root)
            .caption(&chart.title, (FAMILY, 26))
            .margin(16)
            .x_label_area_size(44)
            .y_label_area_size(64)
            // A segmented range of `0..k` has k + 1 segments: the last label is `n - 1`.
            .build_cartesian_2d((0..n - 1).into_segmented(), 0u32..y_max)
            .map_err(draw_error)?;
        let labels = &chart.x_labels;
        let label = |v: &SegmentValue<u32>| match v {
            SegmentValue::CenterOf(i) | SegmentValue::Exact(i) => labels.get(*i as usize).cloned().unwrap_or_default(),
            SegmentValue::Last => String::new(),
        };
        c.configure_mesh()
            .disable_x_mesh()
            .x_labels((n as usize).min(16))
            .x_label_formatter(&label)
            .y_desc(chart.y_label.as_str())
            .label_style((FAMILY, 14))
            .axis_desc_style((FAMILY, 16))
            .draw()
            .map_err(draw_error)?;
        for (i, s) in chart.series.iter().enumerate() {
            let color = Palette99::pick(i).to_rgba();
            let points: Vec<(SegmentValue<u32>, u32)> =
                s.values.iter().enumerate().map(|(x, v)| (SegmentValue::CenterOf(x as u32), *v)).collect();
            c.draw_series(LineSeries::new(points.clone(), color.stroke_width(2)))
                .map_err(draw_error)?
                .label(s.name.as_str())
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(3)));
            c.draw_series(points.into_iter().map(|p| Circle::new(p, 3, color.filled()))).map_err(draw_error)?;
        }
        if chart.series.len() > 1 {
            c.configure_series_labels()
                .position(SeriesLabelPosition::UpperRight)
                .background_style(WHITE.mix(0.85))
                .border_style(BLACK)
                .label_font((FAMILY, 13))
                .draw()
                .map_err(draw_error)?;
        }
        root.present().map_err(draw_error)?;
    }
    let mut out = Vec::new();
    {
        let mut encoder = png::Encoder::new(&mut out, WIDTH, HEIGHT);
        encoder.set_color(png::ColorType::Rgb);
        encoder.set_depth(png::BitDepth::Eight);
        let mut writer = encoder.write_header()?;
        writer.write_image_data(&rgb)?;
        writer.finish()?;
    }
    Ok(out)
}

/// The chart as text lines for a terminal: its title, then one row per series with its values
/// under the x labels (a series with nothing in it is left out).
pub fn text_table(chart: &Chart) -> Vec<String> {
    let name_width = chart.series.iter().map(|s| s.name.chars().count()).max().unwrap_or(0);
    let widths: Vec<usize> = chart
        .x_labels
        .iter()
        .enumerate()
        .map(|(i, l)| {
            let value = chart.series.iter().filter_map(|s| s.values.get(i)).map(|v| v.to_string().len()).max();
            l.chars().count().max(value.unwrap_or(1))
        })
        .collect();
    let row = |head: &str, cells: Vec<String>| {
        let mut line = format!("{head:<name_width$}");
        for (cell, w) in cells.iter().zip(&widths) {
            line.push_str(&format!(" {cell:>w$}"));
        }
        line.trim_end().to_string()
    };
    let mut lines = vec![chart.title.clone(), row("", chart.x_labels.clone())];
    for s in chart.series.iter().filter(|s| s.values.iter().any(|v| *v > 0)) {
        lines.push(row(&s.name, s.values.iter().map(u32::to_string).collect()));
    }
    lines
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::channel::Series;

    fn chart(series: usize) -> Chart {
        Chart {
            title: "Pesanan per hari — semua pasar".into(),
            x_labels: (1..=7).map(|d| format!("{d:02}/11")).collect(),
            y_label: "pesanan".into(),
            series: (0..series)
                .map(|i| Series { name: format!("Pasar {i}"), values: (0..7).map(|d| (d * i as u32) % 5).collect() })
                .collect(),
        }
    }

    #[test]
    fn a_chart_is_a_png_of_the_fixed_size() {
        for n in [0, 1, 10] {
            let png = png(&chart(n)).expect("drawn");
            assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
            let decoder = png::Decoder::new(std::io::Cursor::new(png));
            let reader = decoder.read_info().expect("a PNG");
            assert_eq!((reader.info().width, reader.info().height), (WIDTH, HEIGHT));
        }
        // One x label, or none: still a picture.
        let mut one = chart(1);
        one.x_labels.truncate(1);
        assert!(png(&one).is_ok());
        one.x_labels.clear();
        assert!(png(&one).is_ok());
    }

    #[test]
    fn the_terminal_gets_a_table_without_empty_rows() {
        let lines = text_table(&chart(3));
        assert_eq!(lines[0], "Pesanan per hari — semua pasar");
        assert_eq!(lines[1], "        01/11 02/11 03/11 04/11 05/11 06/11 07/11");
        assert_eq!(lines[2], "Pasar 1     0     1     2     3     4     0     1");
        assert_eq!(lines.len(), 4, "Pasar 0 sold nothing: {lines:?}");
    }
}
