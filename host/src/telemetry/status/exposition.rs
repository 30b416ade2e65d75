//! Reads the host's own Prometheus text (what `/metrics` serves) back into samples, so the status
//! page shows exactly what Prometheus would scrape.

use std::collections::BTreeMap;

/// One sample line: name, labels, value.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    /// Series name (`ponte_apply_lag_seconds_bucket`, ...).
    pub name: String,
    /// Its labels.
    pub labels: BTreeMap<String, String>,
    /// Its value.
    pub value: f64,
}

/// Parses the text exposition format as the prometheus crate writes it (comments skipped).
pub fn parse(text: &str) -> Vec<Sample> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .filter_map(parse_line)
        .collect()
}

fn parse_line(line: &str) -> Option<Sample> {
    let (series, value) = line.rsplit_once(' ')?;
    let value = match value {
        "+Inf" => f64::INFINITY,
        "-Inf" => f64::NEG_INFINITY,
        v => v.parse().ok()?,
    };
    let (name, labels) = match series.split_once('{') {
        Some((name, rest)) => (name, parse_labels(rest.strip_suffix('}')?)?),
        None => (series, BTreeMap::new()),
    };
    Some(Sample {
        name: name.to_string(),
        labels,
        value,
    })
}

/// `a="x",b="y \"q\""` into a map (escapes `\\`, `\"`, `\n` undone).
fn parse_labels(text: &str) -> Option<BTreeMap<String, String>> {
    let mut labels = BTreeMap::new();
    let mut chars = text.chars().peekable();
    loop {
        let key: String = chars.by_ref().take_while(|&c| c != '=').collect();
        if key.is_empty() {
            return Some(labels);
        }
        if chars.next() != Some('"') {
            return None;
        }
        let mut value = String::new();
        loop {
            match chars.next()? {
                '\\' => match chars.next()? {
                    'n' => value.push('\n'),
                    c => value.push(c),
                },
                '"' => break,
                c => value.push(c),
            }
        }
        labels.insert(key.trim_start_matches(',').to_string(), value);
        if chars.peek() == Some(&',') {
            chars.next();
        }
    }
}

/// The `q` quantile of a histogram from its cumulative buckets `(upper bound, count)`: the upper
/// bound of the first bucket holding it (None without observations, or above the last bound).
pub fn quantile(buckets: &[(f64, f64)], q: f64) -> Option<f64> {
    let total = buckets.iter().map(|(_, c)| *c).fold(0.0, f64::max);
    if total <= 0.0 {
        return None;
    }
    let mut sorted = buckets.to_vec();
    sorted.sort_by(|a, b| a.0.total_cmp(&b.0));
    sorted
        .iter()
        .find(|(_, count)| *count >= q * total)
        .map(|(le, _)| *le)
        .filter(|le| le.is_finite())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn samples_and_quantiles() {
        let text = "# HELP x y\n# TYPE x counter\nponte_a_total{unit=\"1\",outcome=\"ok\"} 3\n\
                    ponte_b 2.5\nponte_c{reason=\"say \\\"hi\\\"\"} 1\n\
                    h_bucket{unit=\"1\",le=\"0.1\"} 5\nh_bucket{unit=\"1\",le=\"1\"} 9\n\
                    h_bucket{unit=\"1\",le=\"+Inf\"} 10\n";
        let samples = parse(text);
        assert_eq!(samples.len(), 6);
        assert_eq!(samples[0].labels["outcome"], "ok");
        assert_eq!(samples[1].value, 2.5);
        assert_eq!(samples[2].labels["reason"], "say \"hi\"");
        let buckets: Vec<(f64, f64)> = samples[3..]
            .iter()
            .map(|s| (s.labels["le"].parse().unwrap_or(f64::INFINITY), s.value))
            .collect();
        assert_eq!(quantile(&buckets, 0.5), Some(0.1));
        assert_eq!(quantile(&buckets, 0.9), Some(1.0));
        assert_eq!(quantile(&buckets, 0.99), None, "above the last bound");
        assert_eq!(quantile(&[], 0.5), None);
    }
}
