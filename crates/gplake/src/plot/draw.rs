//! Drawing: trend and pyramid charts from figures already read, as SVG or PNG by the file's
//! extension, with the embedded font. No I/O but the output file.

use std::path::Path;

use chrono::NaiveDate;
use plotters::prelude::*;
use plotters::style::{FontStyle, register_font};

use super::{PlotError, PyramidBar, Scope, TrendPoint};
use crate::month::Month;

const FONT: &[u8] = include_bytes!("../../assets/DejaVuSans.ttf");
const SOURCE: &str =
    "Source: NHS England, Patients Registered at a GP Practice (Open Government Licence v3.0)";
const SIZE: (u32, u32) = (1100, 650);
const MALE: RGBColor = RGBColor(31, 119, 180);
const FEMALE: RGBColor = RGBColor(214, 39, 40);

fn font() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        // The font is compiled in, so registration cannot fail for want of a file.
        let _ = register_font("sans-serif", FontStyle::Normal, FONT);
        let _ = register_font("sans-serif", FontStyle::Bold, FONT);
    });
}

/// Draws `$chart(&root)` on an SVG or PNG backend, chosen by the file's extension.
macro_rules! render {
    ($path:expr, $chart:expr) => {{
        let path: &Path = $path;
        let err = |reason: String| PlotError::Draw {
            file: path.display().to_string(),
            reason,
        };
        match path
            .extension()
            .and_then(|e| e.to_str())
            .map(str::to_ascii_lowercase)
            .as_deref()
        {
            Some("svg") => {
                let root = SVGBackend::new(path, SIZE).into_drawing_area();
                $chart(&root).map_err(|e| err(e.to_string()))?;
                root.present().map_err(|e| err(e.to_string()))
            }
            Some("png") => {
                let root = BitMapBackend::new(path, SIZE).into_drawing_area();
                $chart(&root).map_err(|e| err(e.to_string()))?;
                root.present().map_err(|e| err(e.to_string()))
            }
            _ => Err(err("use a .svg or .png file name".into())),
        }
    }};
}

/// Draws the trend of `scope` into `path` (`.svg` or `.png`).
pub fn draw_trend(path: &Path, scope: &Scope, points: &[TrendPoint]) -> Result<(), PlotError> {
    font();
    let (first, last) = (points[0].date, points[points.len() - 1].date);
    let title = format!(
        "Registered patients, {} — {} to {}",
        scope.label(),
        month_label(first),
        month_label(last)
    );
    render!(path, |root| trend_chart(root, &title, points))
}

/// Draws the pyramid into `path` (`.svg` or `.png`).
pub fn draw_pyramid(
    path: &Path,
    scope: &Scope,
    month: Month,
    bars: &[PyramidBar],
) -> Result<(), PlotError> {
    font();
    let title = format!(
        "Registered patients by age and sex, {} — {}",
        scope.label(),
        month_label(month.first_day())
    );
    render!(path, |root| pyramid_chart(root, &title, bars))
}

fn month_label(d: NaiveDate) -> String {
    d.format("%b %Y").to_string()
}

type Area<DB> = DrawingArea<DB, plotters::coord::Shift>;
type DrawResult = Result<(), Box<dyn std::error::Error>>;

/// A white page with the source attribution at the foot; returns the area above it.
fn page<DB: DrawingBackend>(root: &Area<DB>) -> Result<Area<DB>, Box<dyn std::error::Error>>
where
    DB::ErrorType: 'static,
{
    root.fill(&WHITE)?;
    let (chart_area, footer) = root.split_vertically(SIZE.1 - 30);
    let style = ("sans-serif", 14).into_font().color(&BLACK.mix(0.7));
    footer.draw(&Text::new(SOURCE, (20, 8), style))?;
    Ok(chart_area)
}

fn trend_chart<DB: DrawingBackend>(
    root: &Area<DB>,
    title: &str,
    points: &[TrendPoint],
) -> DrawResult
where
    DB::ErrorType: 'static,
{
    let chart_area = page(root)?;
    let first = points[0].date;
    let last = points[points.len() - 1]
        .date
        .max(first + chrono::Duration::days(28));
    let top = points.iter().map(|p| p.total).max().unwrap_or(1).max(1) as f64 * 1.08;
    let mut chart = ChartBuilder::on(&chart_area)
        .caption(title, ("sans-serif", 24))
        .margin(20)
        .x_label_area_size(45)
        .y_label_area_size(90)
        .build_cartesian_2d(first..last, 0f64..top)?;
    chart
        .configure_mesh()
        .x_desc("Month")
        .y_desc("Registered patients")
        .x_label_formatter(&|d| month_label(*d))
        .y_label_formatter(&|v| thousands(*v as i64))
        .x_labels(8)
        .draw()?;
    let series = [
        ("All patients", BLACK, 0usize),
        ("Female", FEMALE, 1),
        ("Male", MALE, 2),
    ];
    for (name, color, which) in series {
        let value = |p: &TrendPoint| [p.total, p.female, p.male][which] as f64;
        chart
            .draw_series(LineSeries::new(
                points.iter().map(|p| (p.date, value(p))),
                color.stroke_width(3),
            ))?
            .label(name)
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(3))
            });
        chart.draw_series(
            points
                .iter()
                .map(|p| Circle::new((p.date, value(p)), 4, color.filled())),
        )?;
    }
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.9))
        .border_style(BLACK)
        .position(SeriesLabelPosition::LowerRight)
        .draw()?;
    Ok(())
}

fn pyramid_chart<DB: DrawingBackend>(
    root: &Area<DB>,
    title: &str,
    bars: &[PyramidBar],
) -> DrawResult
where
    DB::ErrorType: 'static,
{
    let chart_area = page(root)?;
    let widest = bars
        .iter()
        .map(|b| b.male.max(b.female))
        .max()
        .unwrap_or(1)
        .max(1) as f64
        * 1.1;
    let n = bars.len() as i32;
    let mut chart = ChartBuilder::on(&chart_area)
        .caption(title, ("sans-serif", 24))
        .margin(20)
        .x_label_area_size(45)
        .y_label_area_size(70)
        .build_cartesian_2d(-widest..widest, (0..n).into_segmented())?;
    let labels: Vec<String> = bars.iter().map(|b| b.band.clone()).collect();
    let label = |v: &SegmentValue<i32>| match v {
        SegmentValue::CenterOf(i) | SegmentValue::Exact(i) => {
            labels.get(*i as usize).cloned().unwrap_or_default()
        }
        SegmentValue::Last => String::new(),
    };
    chart
        .configure_mesh()
        .x_desc("Registered patients (males left, females right)")
        .y_desc("Age band")
        .x_label_formatter(&|v| thousands(v.abs() as i64))
        .y_labels(bars.len())
        .y_label_formatter(&label)
        .disable_y_mesh()
        .draw()?;
    chart
        .draw_series(bars.iter().enumerate().map(|(i, b)| {
            Rectangle::new(
                [
                    (-(b.male as f64), SegmentValue::Exact(i as i32)),
                    (0.0, SegmentValue::Exact(i as i32 + 1)),
                ],
                MALE.mix(0.8).filled(),
            )
        }))?
        .label("Male")
        .legend(|(x, y)| Rectangle::new([(x, y - 6), (x + 16, y + 6)], MALE.filled()));
    chart
        .draw_series(bars.iter().enumerate().map(|(i, b)| {
            Rectangle::new(
                [
                    (0.0, SegmentValue::Exact(i as i32)),
                    (b.female as f64, SegmentValue::Exact(i as i32 + 1)),
                ],
                FEMALE.mix(0.8).filled(),
            )
        }))?
        .label("Female")
        .legend(|(x, y)| Rectangle::new([(x, y - 6), (x + 16, y + 6)], FEMALE.filled()));
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.9))
        .border_style(BLACK)
        .position(SeriesLabelPosition::UpperRight)
        .draw()?;
    Ok(())
}

/// `63,237,908`.
fn thousands(n: i64) -> String {
    let digits = n.abs().to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    if n < 0 { format!("-{out}") } else { out }
}

#[cfg(test)]
mod tests {
    #[test]
    fn thousands() {
        assert_eq!(super::thousands(63237908), "63,237,908");
        assert_eq!(super::thousands(950), "950");
        assert_eq!(super::thousands(-1000), "-1,000");
    }
}
