//! Reading our own processes' `/metrics` (the Prometheus text format), for the few series
//! the overview draws. Only what our exporter writes is understood: one sample per line,
//! `name{label="value",…} number`, comments skipped.

use std::collections::BTreeMap;

/// One line of the exposition.
#[derive(Clone, Debug, PartialEq)]
pub struct Line {
    pub name: String,
    pub labels: Vec<(String, String)>,
    pub value: f64,
}

impl Line {
    pub fn label(&self, name: &str) -> Option<&str> {
        self.labels
            .iter()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.as_str())
    }
}

/// Every sample line of `text`; lines that do not parse are skipped.
pub fn parse(text: &str) -> Vec<Line> {
    text.lines()
        .map(str::trim)
        .filter(|line| !line.is_empty() && !line.starts_with('#'))
        .filter_map(parse_line)
        .collect()
}

fn parse_line(line: &str) -> Option<Line> {
    let name_end = line.find(['{', ' '])?;
    let name = line[..name_end].to_owned();
    let (labels, rest) = if line[name_end..].starts_with('{') {
        parse_labels(&line[name_end + 1..])?
    } else {
        (Vec::new(), &line[name_end..])
    };
    // A timestamp may follow the value; we do not need it.
    let value = rest.split_whitespace().next()?;
    let value = match value {
        "+Inf" => f64::INFINITY,
        "-Inf" => f64::NEG_INFINITY,
        other => other.parse().ok()?,
    };
    Some(Line {
        name,
        labels,
        value,
    })
}

/// `key="value",…}` → the pairs and what follows the closing brace.
fn parse_labels(mut text: &str) -> Option<(Vec<(String, String)>, &str)> {
    let mut labels = Vec::new();
    loop {
        text = text.trim_start_matches([',', ' ']);
        if let Some(rest) = text.strip_prefix('}') {
            return Some((labels, rest));
        }
        let (key, rest) = text.split_once("=\"")?;
        let mut value = String::new();
        let mut chars = rest.char_indices();
        let end = loop {
            match chars.next()? {
                (index, '"') => break index,
                (_, '\\') => match chars.next()?.1 {
                    'n' => value.push('\n'),
                    other => value.push(other),
                },
                (_, other) => value.push(other),
            }
        };
        labels.push((key.trim().to_owned(), value));
        text = &rest[end + 1..];
    }
}

/// The sum of a family's samples whose labels include every pair of `filter`.
pub fn sum(lines: &[Line], name: &str, filter: &[(&str, &str)]) -> f64 {
    lines
        .iter()
        .filter(|line| line.name == name)
        .filter(|line| filter.iter().all(|(k, v)| line.label(k) == Some(v)))
        .map(|line| line.value)
        .sum()
}

/// A family's samples summed per value of one label.
pub fn sum_by(lines: &[Line], name: &str, label: &str) -> BTreeMap<String, f64> {
    let mut sums = BTreeMap::new();
    for line in lines.iter().filter(|line| line.name == name) {
        if let Some(key) = line.label(label) {
            *sums.entry(key.to_owned()).or_insert(0.0) += line.value;
        }
    }
    sums
}

/// A histogram's cumulative buckets (`le` → count) summed over its series, leaving out the
/// series whose `skip_label` takes one of `skip_values`.
pub fn buckets(
    lines: &[Line],
    histogram: &str,
    skip_label: &str,
    skip_values: &[&str],
) -> Vec<(f64, f64)> {
    let name = format!("{histogram}_bucket");
    let mut by_bound: BTreeMap<u64, (f64, f64)> = BTreeMap::new();
    for line in lines.iter().filter(|line| line.name == name) {
        if line
            .label(skip_label)
            .is_some_and(|value| skip_values.contains(&value))
        {
            continue;
        }
        let Some(bound) = line.label("le").and_then(|le| match le {
            "+Inf" => Some(f64::INFINITY),
            other => other.parse::<f64>().ok(),
        }) else {
            continue;
        };
        // Bounds are finite or +Inf and never negative, so their bits sort as they do.
        let entry = by_bound.entry(bound.to_bits()).or_insert((bound, 0.0));
        entry.1 += line.value;
    }
    by_bound.into_values().collect()
}

/// The `q` quantile of cumulative buckets, interpolated inside its bucket as Prometheus'
/// `histogram_quantile` does; `None` without observations.
pub fn quantile(buckets: &[(f64, f64)], q: f64) -> Option<f64> {
    let total = buckets.last()?.1;
    if total <= 0.0 {
        return None;
    }
    let rank = q * total;
    let mut lower = (0.0, 0.0);
    for &(bound, count) in buckets {
        if count >= rank {
            if bound.is_infinite() {
                // Past the last finite bound: the best we can say is that bound.
                return Some(lower.0);
            }
            let inside = count - lower.1;
            let share = if inside > 0.0 {
                (rank - lower.1) / inside
            } else {
                1.0
            };
            return Some(lower.0 + (bound - lower.0) * share);
        }
        lower = (bound, count);
    }
    Some(lower.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str = r#"# HELP namaskah_jobs_total Messages handled by workers.
# TYPE namaskah_jobs_total counter
namaskah_jobs_total{queue="ordering",outcome="ok"} 12
namaskah_jobs_total{queue="ordering",outcome="retry"} 3
namaskah_jobs_total{queue="polling",outcome="ok"} 7
namaskah_refunds_total 4
weird{note="a \"quoted\", comma} brace"} 1 1700000000000
namaskah_http_request_duration_seconds_bucket{route="/v1/verifications",method="POST",le="0.005"} 80
namaskah_http_request_duration_seconds_bucket{route="/v1/verifications",method="POST",le="0.01"} 90
namaskah_http_request_duration_seconds_bucket{route="/v1/verifications",method="POST",le="+Inf"} 100
namaskah_http_request_duration_seconds_bucket{route="/metrics",method="GET",le="0.005"} 0
namaskah_http_request_duration_seconds_bucket{route="/metrics",method="GET",le="0.01"} 0
namaskah_http_request_duration_seconds_bucket{route="/metrics",method="GET",le="+Inf"} 50
not a sample line
"#;

    #[test]
    fn counters_are_read_summed_and_split_by_label() {
        let lines = parse(TEXT);
        assert_eq!(sum(&lines, "namaskah_jobs_total", &[]), 22.0);
        assert_eq!(
            sum(&lines, "namaskah_jobs_total", &[("outcome", "ok")]),
            19.0
        );
        assert_eq!(sum(&lines, "namaskah_refunds_total", &[]), 4.0);
        let by_queue = sum_by(&lines, "namaskah_jobs_total", "queue");
        assert_eq!(by_queue.get("ordering"), Some(&15.0));
        assert_eq!(by_queue.get("polling"), Some(&7.0));
        let weird = lines.iter().find(|l| l.name == "weird");
        assert_eq!(
            weird.and_then(|l| l.label("note")),
            Some("a \"quoted\", comma} brace")
        );
    }

    #[test]
    fn quantiles_come_from_the_buckets_without_the_skipped_routes() {
        let lines = parse(TEXT);
        let api = buckets(
            &lines,
            "namaskah_http_request_duration_seconds",
            "route",
            &["/metrics"],
        );
        assert_eq!(
            api,
            vec![(0.005, 80.0), (0.01, 90.0), (f64::INFINITY, 100.0)]
        );
        let p50 = quantile(&api, 0.5).unwrap_or_default();
        assert!((p50 - 0.003_125).abs() < 1e-9, "{p50}");
        let p85 = quantile(&api, 0.85).unwrap_or_default();
        assert!((p85 - 0.0075).abs() < 1e-9, "{p85}");
        // Beyond the last finite bound: that bound.
        assert_eq!(quantile(&api, 0.99), Some(0.01));
        assert_eq!(quantile(&[(0.005, 0.0), (f64::INFINITY, 0.0)], 0.5), None);
    }
}
