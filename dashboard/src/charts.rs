//! Charts drawn on the server as SVG: no script, nothing to download, nothing the strict CSP
//! has to allow (colours come from classes in `app.css`, so they follow dark mode), and a
//! text alternative in each chart's `<title>` and `<desc>`. The tables under them keep the
//! exact figures.

use handlebars::html_escape;
use std::fmt::Write;

const WIDTH: f64 = 640.0;
const HEIGHT: f64 = 180.0;
/// Room for the y labels on the left and the x labels below.
const LEFT: f64 = 58.0;
const BOTTOM: f64 = 22.0;
const TOP: f64 = 10.0;
const RIGHT: f64 = 8.0;

/// How a chart's values read.
#[derive(Clone, Copy, Debug)]
pub enum Unit {
    Count,
    /// 0 to 1, shown as a percentage.
    Share,
    /// Cents, shown in units of the currency.
    Cents,
    Seconds,
    /// Seconds, shown in milliseconds (latencies).
    Milliseconds,
    PerSecond,
}

impl Unit {
    fn format(self, value: f64) -> String {
        match self {
            Unit::Count if value.fract() != 0.0 => format!("{value:.1}"),
            Unit::Count => format!("{value:.0}"),
            Unit::Share => format!("{:.0} %", value * 100.0),
            Unit::Cents => format!("{:.2}", value / 100.0),
            Unit::Seconds => format!("{value:.0} s"),
            Unit::Milliseconds if value < 0.01 => format!("{:.1} ms", value * 1000.0),
            Unit::Milliseconds => format!("{:.0} ms", value * 1000.0),
            Unit::PerSecond if value < 10.0 => format!("{value:.1}/s"),
            Unit::PerSecond => format!("{value:.0}/s"),
        }
    }
}

/// One line: a value per x label, `None` where there is none.
pub struct Series {
    pub name: String,
    pub values: Vec<Option<f64>>,
}

pub struct LineChart {
    /// Unique on the page: the ids of the title and description derive from it.
    pub id: String,
    pub title: String,
    pub unit: Unit,
    pub x_labels: Vec<String>,
    pub series: Vec<Series>,
}

impl LineChart {
    /// The chart as a figure: its title shown above it, the SVG, every text escaped.
    pub fn to_figure(&self) -> String {
        // A key when lines need telling apart; its colours are the lines' classes.
        let key: String = if self.series.len() > 1 {
            self.series
                .iter()
                .enumerate()
                .map(|(number, series)| {
                    format!(
                        " <span class=\"key series-{}\">{}</span>",
                        number % 4,
                        html_escape(&series.name)
                    )
                })
                .collect()
        } else {
            String::new()
        };
        format!(
            "<figure class=\"card chart-card\"><figcaption>{}{key}</figcaption>{}</figure>",
            html_escape(&self.title),
            self.to_svg()
        )
    }

    /// The chart as an `<svg>` element, every text escaped.
    pub fn to_svg(&self) -> String {
        let top = self.top_of_scale();
        let points = self.x_labels.len().max(1);
        let x = |index: usize| {
            if points == 1 {
                LEFT + (WIDTH - LEFT - RIGHT) / 2.0
            } else {
                LEFT + (WIDTH - LEFT - RIGHT) * index as f64 / (points - 1) as f64
            }
        };
        let y = |value: f64| TOP + (HEIGHT - TOP - BOTTOM) * (1.0 - value / top);
        let id = html_escape(&self.id);
        let mut svg = format!(
            "<svg class=\"chart\" viewBox=\"0 0 {WIDTH} {HEIGHT}\" role=\"img\" \
             aria-labelledby=\"{id}-title {id}-desc\">\
             <title id=\"{id}-title\">{}</title><desc id=\"{id}-desc\">{}</desc>",
            html_escape(&self.title),
            html_escape(&self.description()),
        );
        for step in 0..=2 {
            let value = top * f64::from(step) / 2.0;
            let _ = write!(
                svg,
                "<line class=\"grid\" x1=\"{LEFT}\" x2=\"{}\" y1=\"{y:.1}\" y2=\"{y:.1}\"/>\
                 <text class=\"axis\" x=\"{}\" y=\"{:.1}\" text-anchor=\"end\">{}</text>",
                WIDTH - RIGHT,
                LEFT - 6.0,
                y(value) + 4.0,
                html_escape(&self.unit.format(value)),
                y = y(value),
            );
        }
        for index in label_positions(self.x_labels.len()) {
            let anchor = match index {
                0 => "start",
                i if i + 1 == self.x_labels.len() => "end",
                _ => "middle",
            };
            let _ = write!(
                svg,
                "<text class=\"axis\" x=\"{:.1}\" y=\"{}\" text-anchor=\"{anchor}\">{}</text>",
                x(index),
                HEIGHT - 6.0,
                html_escape(&self.x_labels[index]),
            );
        }
        for (number, series) in self.series.iter().enumerate() {
            let class = format!("line series-{}", number % 4);
            // A gap where a value is missing: each run of values is its own path.
            let mut path = String::new();
            let mut pen_down = false;
            // A value with none beside it draws no line: it gets a dot instead.
            let mut dots = String::new();
            let known = |index: usize| series.values.get(index).is_some_and(Option::is_some);
            for (index, value) in series.values.iter().enumerate() {
                match value {
                    Some(value) => {
                        let command = if pen_down { 'L' } else { 'M' };
                        let _ = write!(path, "{command}{:.1} {:.1} ", x(index), y(*value));
                        pen_down = true;
                        if !known(index.wrapping_sub(1)) && !known(index + 1) {
                            let _ = write!(
                                dots,
                                "<circle class=\"dot series-{}\" cx=\"{:.1}\" cy=\"{:.1}\" r=\"3\"/>",
                                number % 4,
                                x(index),
                                y(*value)
                            );
                        }
                    }
                    None => pen_down = false,
                }
            }
            svg.push_str(&dots);
            let _ = write!(
                svg,
                "<path class=\"{class}\" d=\"{}\"><title>{}</title></path>",
                path.trim_end(),
                html_escape(&series.name),
            );
        }
        svg.push_str("</svg>");
        svg
    }

    /// The highest value rounded up to a round number, so the grid reads well (1 when all
    /// are 0 or missing).
    fn top_of_scale(&self) -> f64 {
        if let Unit::Share = self.unit {
            return 1.0;
        }
        let highest = self
            .series
            .iter()
            .flat_map(|series| series.values.iter().flatten())
            .fold(0.0_f64, |a, &b| a.max(b));
        if highest <= 0.0 {
            return match self.unit {
                Unit::Cents => 100.0,
                Unit::Seconds => 10.0,
                Unit::Milliseconds => 0.01,
                Unit::Count | Unit::Share | Unit::PerSecond => 1.0,
            };
        }
        let magnitude = 10_f64.powf(highest.log10().floor());
        let steps = [1.0, 2.0, 2.5, 5.0, 10.0];
        let step = steps
            .iter()
            .find(|&&s| s * magnitude >= highest)
            .unwrap_or(&10.0);
        step * magnitude
    }

    /// What the chart shows, in words: each series' range and its last value.
    fn description(&self) -> String {
        let (first, last) = match (self.x_labels.first(), self.x_labels.last()) {
            (Some(first), Some(last)) => (first.as_str(), last.as_str()),
            _ => return format!("{}: no data.", self.title),
        };
        let mut text = format!("{} from {first} to {last}.", self.title);
        for series in &self.series {
            let known: Vec<f64> = series.values.iter().flatten().copied().collect();
            if known.is_empty() {
                let _ = write!(text, " {}: no data.", series.name);
                continue;
            }
            let lowest = known.iter().copied().fold(f64::INFINITY, f64::min);
            let highest = known.iter().copied().fold(f64::NEG_INFINITY, f64::max);
            let latest = known.last().copied().unwrap_or(0.0);
            let _ = write!(
                text,
                " {}: from {} to {}, last {}.",
                series.name,
                self.unit.format(lowest),
                self.unit.format(highest),
                self.unit.format(latest),
            );
        }
        text
    }
}

/// Which x labels to print: the first, the last and two between, so they never overlap.
fn label_positions(count: usize) -> Vec<usize> {
    match count {
        0 => Vec::new(),
        1..=4 => (0..count).collect(),
        _ => {
            let mut positions = vec![0, count / 3, 2 * count / 3, count - 1];
            positions.dedup();
            positions
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chart(values: Vec<Option<f64>>) -> LineChart {
        LineChart {
            id: "spend".to_owned(),
            title: "Spend <per day>".to_owned(),
            unit: Unit::Cents,
            x_labels: (1..=values.len())
                .map(|d| format!("2026-12-{d:02}"))
                .collect(),
            series: vec![Series {
                name: "all \"services\"".to_owned(),
                values,
            }],
        }
    }

    #[test]
    fn a_chart_is_an_accessible_svg_with_its_text_escaped() {
        let svg = chart(vec![Some(150.0), Some(420.0), None, Some(90.0)]).to_svg();
        assert!(svg.starts_with("<svg class=\"chart\""), "{svg}");
        assert!(svg.contains("role=\"img\""));
        assert!(svg.contains("<title id=\"spend-title\">Spend &lt;per day&gt;</title>"));
        assert!(
            svg.contains("all &quot;services&quot;: from 0.90 to 4.20, last 0.90."),
            "{svg}"
        );
        assert!(!svg.contains("<per day>") && !svg.contains("\"services\""));
        // The missing day splits the line in two.
        let path = svg.split(" d=\"").nth(1).and_then(|d| d.split('"').next());
        assert_eq!(path.map(|d| d.matches('M').count()), Some(2), "{svg}");
    }

    #[test]
    fn a_lone_value_is_drawn_as_a_dot() {
        let svg = chart(vec![None, Some(120.0), None, Some(80.0), Some(90.0)]).to_svg();
        assert_eq!(
            svg.matches("<circle class=\"dot series-0\"").count(),
            1,
            "{svg}"
        );
    }

    #[test]
    fn the_scale_ends_on_a_round_number_above_the_highest_value() {
        assert_eq!(chart(vec![Some(420.0)]).top_of_scale(), 500.0);
        assert_eq!(chart(vec![Some(0.93)]).top_of_scale(), 1.0);
        assert_eq!(chart(vec![Some(1_700.0)]).top_of_scale(), 2_000.0);
        // Nothing spent: the scale still reads as money, 0.00 to 1.00.
        assert_eq!(chart(vec![None, Some(0.0)]).top_of_scale(), 100.0);
        assert_eq!(Unit::Count.format(0.5), "0.5");
        assert_eq!(Unit::Count.format(25.0), "25");
    }

    #[test]
    fn a_figure_names_its_lines_when_there_are_several() {
        let mut two = chart(vec![Some(1.0)]);
        assert!(!two.to_figure().contains("class=\"key"));
        two.series.push(Series {
            name: "refunds".to_owned(),
            values: vec![Some(0.0)],
        });
        let figure = two.to_figure();
        assert!(
            figure.contains("<span class=\"key series-1\">refunds</span>"),
            "{figure}"
        );
        assert!(figure.starts_with("<figure") && figure.ends_with("</figure>"));
    }

    #[test]
    fn an_empty_chart_says_so() {
        let svg = chart(Vec::new()).to_svg();
        assert!(svg.contains("no data"), "{svg}");
        assert!(svg.ends_with("</svg>"));
    }

    #[test]
    fn at_most_four_x_labels_are_printed() {
        assert_eq!(label_positions(30), vec![0, 10, 20, 29]);
        assert_eq!(label_positions(3), vec![0, 1, 2]);
        assert!(label_positions(0).is_empty());
    }
}
