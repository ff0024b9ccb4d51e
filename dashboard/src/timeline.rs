//! A verification's story on a time axis, drawn on the server as SVG like the charts
//! (`charts.rs`): each step a labelled mark at its time, the time each step took written
//! between them, webhook attempts as ticks (green delivered, red failed). The list beside
//! it keeps the exact timestamps.

use chrono::{DateTime, Utc};
use handlebars::html_escape;
use std::fmt::Write;

const WIDTH: f64 = 640.0;
const HEIGHT: f64 = 120.0;
const MARGIN: f64 = 16.0;
const AXIS_Y: f64 = 62.0;

/// What a mark on the timeline is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mark {
    /// A status the verification reached (labelled, with the time it took).
    Step,
    /// A webhook attempt, and whether it was delivered.
    Attempt { delivered: bool },
}

pub struct Moment {
    pub at: DateTime<Utc>,
    pub what: String,
    pub mark: Mark,
}

/// `moments` (in any order) as an `<svg>`, every text escaped.
pub fn to_svg(id: &str, moments: &[Moment]) -> String {
    let mut moments: Vec<&Moment> = moments.iter().collect();
    moments.sort_by_key(|moment| moment.at);
    let id = html_escape(id);
    let (Some(first), Some(last)) = (moments.first(), moments.last()) else {
        return format!(
            "<svg class=\"timeline-chart\" viewBox=\"0 0 {WIDTH} {HEIGHT}\" role=\"img\" \
             aria-labelledby=\"{id}-title\"><title id=\"{id}-title\">No steps recorded.</title></svg>"
        );
    };
    let span = (last.at - first.at).num_milliseconds().max(1) as f64;
    let x = |at: DateTime<Utc>| {
        MARGIN + (WIDTH - 2.0 * MARGIN) * (at - first.at).num_milliseconds() as f64 / span
    };
    let steps: Vec<&&Moment> = moments.iter().filter(|m| m.mark == Mark::Step).collect();
    let mut svg = format!(
        "<svg class=\"timeline-chart\" viewBox=\"0 0 {WIDTH} {HEIGHT}\" role=\"img\" \
         aria-labelledby=\"{id}-title {id}-desc\"><title id=\"{id}-title\">Timeline, {} in all</title>\
         <desc id=\"{id}-desc\">{}</desc>\
         <line class=\"axis-line\" x1=\"{MARGIN}\" x2=\"{}\" y1=\"{AXIS_Y}\" y2=\"{AXIS_Y}\"/>",
        duration(last.at - first.at),
        html_escape(&describe(&steps)),
        WIDTH - MARGIN,
    );
    for pair in steps.windows(2) {
        let (from, to) = (pair[0], pair[1]);
        let middle = (x(from.at) + x(to.at)) / 2.0;
        let _ = write!(
            svg,
            "<text class=\"took\" x=\"{middle:.1}\" y=\"{:.1}\" text-anchor=\"middle\">{}</text>",
            AXIS_Y + 16.0,
            duration(to.at - from.at),
        );
    }
    for (number, step) in steps.iter().enumerate() {
        let at = x(step.at);
        // Labels alternate above the axis at two heights so that close steps stay legible.
        let label_y = if number % 2 == 0 { 22.0 } else { 40.0 };
        let anchor = if at < WIDTH * 0.2 {
            "start"
        } else if at > WIDTH * 0.8 {
            "end"
        } else {
            "middle"
        };
        let _ = write!(
            svg,
            "<circle class=\"step\" cx=\"{at:.1}\" cy=\"{AXIS_Y}\" r=\"5\"><title>{}</title></circle>\
             <text class=\"label\" x=\"{at:.1}\" y=\"{label_y}\" text-anchor=\"{anchor}\">{}</text>",
            html_escape(&step.what),
            html_escape(short_label(&step.what)),
        );
    }
    for moment in &moments {
        if let Mark::Attempt { delivered } = moment.mark {
            let class = if delivered {
                "attempt ok"
            } else {
                "attempt failed"
            };
            let at = x(moment.at);
            let _ = write!(
                svg,
                "<line class=\"{class}\" x1=\"{at:.1}\" x2=\"{at:.1}\" y1=\"{:.1}\" y2=\"{:.1}\">\
                 <title>{}</title></line>",
                AXIS_Y + 24.0,
                AXIS_Y + 40.0,
                html_escape(&moment.what),
            );
        }
    }
    svg.push_str("</svg>");
    svg
}

/// `verification.completed` → `completed`: the axis has little room.
fn short_label(what: &str) -> &str {
    what.strip_prefix("verification.").unwrap_or(what)
}

/// The steps in words, with the time each took.
fn describe(steps: &[&&Moment]) -> String {
    let mut text = String::new();
    for (number, step) in steps.iter().enumerate() {
        if number == 0 {
            let _ = write!(text, "{}", step.what);
        } else {
            let took = duration(step.at - steps[number - 1].at);
            let _ = write!(text, ", then {} after {took}", step.what);
        }
    }
    text.push('.');
    text
}

/// `1.2 s`, `850 ms`, `3 min 5 s`.
fn duration(span: chrono::TimeDelta) -> String {
    let millis = span.num_milliseconds().max(0);
    match millis {
        0..1_000 => format!("{millis} ms"),
        1_000..60_000 => format!("{:.1} s", millis as f64 / 1_000.0),
        _ => format!("{} min {} s", millis / 60_000, (millis % 60_000) / 1_000),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeDelta;

    fn at(millis: i64) -> DateTime<Utc> {
        DateTime::<Utc>::UNIX_EPOCH + TimeDelta::milliseconds(millis)
    }

    fn step(millis: i64, what: &str) -> Moment {
        Moment {
            at: at(millis),
            what: what.to_owned(),
            mark: Mark::Step,
        }
    }

    #[test]
    fn steps_are_marked_with_the_time_each_took_and_attempts_as_ticks() {
        let moments = [
            step(2_350, "verification.completed"),
            step(0, "accepted and charged"),
            step(850, "verification.number_assigned"),
            Moment {
                at: at(2_400),
                what: "<endpoint> #1: 200".to_owned(),
                mark: Mark::Attempt { delivered: true },
            },
        ];
        let svg = to_svg("story", &moments);
        assert!(svg.contains("Timeline, 2.4 s in all"), "{svg}");
        assert!(
            svg.contains(">850 ms</text>") && svg.contains(">1.5 s</text>"),
            "{svg}"
        );
        assert!(svg.contains(">number_assigned</text>"));
        assert!(
            svg.contains("accepted and charged, then verification.number_assigned after 850 ms, then verification.completed after 1.5 s."),
            "{svg}"
        );
        assert!(svg.contains("class=\"attempt ok\""));
        assert!(svg.contains("&lt;endpoint&gt;") && !svg.contains("<endpoint>"));
    }

    #[test]
    fn nothing_recorded_or_one_moment_still_draws() {
        assert!(to_svg("none", &[]).contains("No steps recorded."));
        let one = to_svg("one", &[step(0, "accepted and charged")]);
        assert!(
            one.contains("Timeline, 0 ms in all") && one.ends_with("</svg>"),
            "{one}"
        );
    }

    #[test]
    fn durations_read_in_their_unit() {
        assert_eq!(duration(TimeDelta::milliseconds(999)), "999 ms");
        assert_eq!(duration(TimeDelta::milliseconds(1_250)), "1.2 s");
        assert_eq!(duration(TimeDelta::seconds(185)), "3 min 5 s");
        assert_eq!(duration(TimeDelta::milliseconds(-5)), "0 ms");
    }
}
