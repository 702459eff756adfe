//! Stop strings over streamed text. A stop string may straddle token
//! boundaries, so text that could be the start of one is held back until
//! it is known not to be; the stop string itself is never returned.

pub struct StopMatcher {
    /// Each stop string with its index in the request's list.
    stops: Vec<(usize, String)>,
    held: String,
}

pub enum StopOutcome {
    /// Text safe to release now (may be empty).
    Continue(String),
    /// A stop string matched (its index in the request's list): release
    /// this text, then finish.
    Stopped(String, usize),
}

impl StopMatcher {
    pub fn new(stops: Vec<String>) -> Self {
        let stops = stops.into_iter().enumerate().filter(|(_, s)| !s.is_empty()).collect();
        StopMatcher { stops, held: String::new() }
    }

    /// Feeds new text. With `active == false` (before `min_tokens`) stop
    /// strings are not matched and nothing is held.
    pub fn push(&mut self, text: &str, active: bool) -> StopOutcome {
        self.held.push_str(text);
        if self.stops.is_empty() || !active {
            return StopOutcome::Continue(std::mem::take(&mut self.held));
        }
        // The earliest match wins; at one position, the first listed.
        let earliest = self.stops.iter().filter_map(|(i, s)| Some((self.held.find(s.as_str())?, *i))).min();
        if let Some((pos, index)) = earliest {
            let out = self.held[..pos].to_string();
            self.held.clear();
            return StopOutcome::Stopped(out, index);
        }
        // Hold the longest suffix that is a proper prefix of some stop string.
        let keep = self.stops.iter().map(|(_, s)| longest_suffix_prefix(&self.held, s)).max().unwrap_or(0);
        let cut = self.held.len() - keep;
        let out = self.held[..cut].to_string();
        self.held.drain(..cut);
        StopOutcome::Continue(out)
    }

    /// Releases held text at the end of generation (no stop string came).
    pub fn finish(&mut self) -> String {
        std::mem::take(&mut self.held)
    }
}

/// Length in bytes of the longest suffix of `text` that is a proper prefix of `stop`.
fn longest_suffix_prefix(text: &str, stop: &str) -> usize {
    let max = (stop.len() - 1).min(text.len());
    (1..=max)
        .rev()
        .find(|&n| text.is_char_boundary(text.len() - n) && stop.starts_with(&text[text.len() - n..]))
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(stops: &[&str], pieces: &[&str]) -> (String, bool) {
        let (out, index) = run_index(stops, pieces);
        (out, index.is_some())
    }

    fn run_index(stops: &[&str], pieces: &[&str]) -> (String, Option<usize>) {
        let mut m = StopMatcher::new(stops.iter().map(|s| s.to_string()).collect());
        let mut out = String::new();
        for p in pieces {
            match m.push(p, true) {
                StopOutcome::Continue(t) => out.push_str(&t),
                StopOutcome::Stopped(t, i) => {
                    out.push_str(&t);
                    return (out, Some(i));
                }
            }
        }
        out.push_str(&m.finish());
        (out, None)
    }

    #[test]
    fn the_matched_stop_is_named_by_its_index_in_the_request() {
        assert_eq!(run_index(&["", "zz", "b", "a"], &["xxab"]), ("xx".to_string(), Some(3)));
        assert_eq!(run_index(&["ab", "a"], &["xab"]).1, Some(0), "same position: the first listed");
    }

    #[test]
    fn stop_straddling_tokens_is_cut() {
        assert_eq!(run(&["END"], &["hello E", "N", "D more"]), ("hello ".to_string(), true));
    }

    #[test]
    fn near_miss_is_released() {
        assert_eq!(run(&["END"], &["hello E", "N", "d"]), ("hello ENd".to_string(), false));
    }

    #[test]
    fn earliest_of_several_stops_wins() {
        assert_eq!(run(&["b", "a"], &["xxab"]), ("xx".to_string(), true));
    }

    #[test]
    fn multibyte_text_is_safe() {
        assert_eq!(run(&["é!"], &["café", "é", "!"]), ("café".to_string(), true));
        assert_eq!(run(&["🦀"], &["a🦀b"]), ("a".to_string(), true));
    }

    #[test]
    fn inactive_matches_nothing() {
        let mut m = StopMatcher::new(vec!["x".into()]);
        assert!(matches!(m.push("axb", false), StopOutcome::Continue(t) if t == "axb"));
    }
}
