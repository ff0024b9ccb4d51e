//! The overview's four charts of the last hour, drawn from the samples.

use crate::charts::{LineChart, Series, Unit};

use super::history::Sample;

/// The charts as HTML, in one element that says how many samples it draws and when the
/// latest was taken (the page's script swaps the whole element when a new sample arrives).
pub fn render<'a>(samples: impl ExactSizeIterator<Item = &'a Sample> + Clone) -> String {
    let count = samples.len();
    let last = samples
        .clone()
        .last()
        .map(|s| s.at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
        .unwrap_or_default();
    let x_labels: Vec<String> = samples
        .clone()
        .map(|s| s.at.format("%H:%M:%S").to_string())
        .collect();
    let series = |name: &str, pick: fn(&Sample) -> Option<f64>| Series {
        name: name.to_owned(),
        values: samples.clone().map(pick).collect(),
    };
    let mut queue_names: Vec<&str> = Vec::new();
    for sample in samples.clone() {
        for queue in &sample.queues {
            if !queue_names.contains(&queue.name.as_str()) {
                queue_names.push(&queue.name);
            }
        }
    }
    let chart = |id: &str, title: &str, unit: Unit, series: Vec<Series>| LineChart {
        id: id.to_owned(),
        title: title.to_owned(),
        unit,
        x_labels: x_labels.clone(),
        series,
    };
    let queue_depths = queue_names
        .iter()
        .map(|name| Series {
            name: (*name).to_owned(),
            values: samples
                .clone()
                .map(|s| s.queues.iter().find(|q| q.name == *name)?.depth)
                .collect(),
        })
        .collect();
    let charts = [
        // In this order the theme draws refunds red and completions green.
        chart(
            "live-verifications",
            "Verifications per second",
            Unit::PerSecond,
            vec![
                series("accepted", |s| s.accepted_per_second),
                series("refunded", |s| s.refunded_per_second),
                series("completed", |s| s.completed_per_second),
            ],
        ),
        chart(
            "live-queues",
            "Queue depth (messages)",
            Unit::Count,
            queue_depths,
        ),
        chart(
            "live-latency",
            "API latency",
            Unit::Milliseconds,
            vec![
                series("p50", |s| s.api_p50_seconds),
                series("p99", |s| s.api_p99_seconds),
            ],
        ),
        chart(
            "live-webhooks",
            "Webhook attempts delivered",
            Unit::Share,
            vec![series("delivered", |s| s.webhook_success)],
        ),
    ];
    let figures: String = charts.iter().map(LineChart::to_figure).collect();
    format!("<div class=\"charts\" data-samples=\"{count}\" data-last=\"{last}\">{figures}</div>")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::live::history::QueueSample;
    use chrono::Utc;

    #[test]
    fn four_charts_with_a_line_per_queue_and_the_sample_count() {
        let samples: Vec<Sample> = (0..3)
            .map(|n| Sample {
                at: Utc::now(),
                accepted_per_second: Some(f64::from(n)),
                queues: vec![
                    QueueSample {
                        name: "ordering".to_owned(),
                        depth: Some(2.0),
                        ..QueueSample::default()
                    },
                    QueueSample {
                        name: "refund".to_owned(),
                        depth: Some(3.0),
                        ..QueueSample::default()
                    },
                ],
                ..Sample::default()
            })
            .collect();
        let html = render(samples.iter());
        assert!(
            html.starts_with("<div class=\"charts\" data-samples=\"3\" data-last=\"20"),
            "{html}"
        );
        assert_eq!(html.matches("<svg class=\"chart\"").count(), 4);
        assert!(
            html.contains("<span class=\"key series-1\">refund</span>"),
            "{html}"
        );
        assert!(html.contains("refund: from 3 to 3, last 3."), "{html}");
        assert!(html.contains("API latency"));
    }
}
