//! Passive health: a circuit breaker per model, fed by the outcome of every
//! attempt a route makes. Over the last `WINDOW` attempts, a failure ratio
//! of at least one half (with `MIN_ATTEMPTS` seen) opens the circuit: the
//! model is skipped while any other model of the route is not open. After
//! the cooldown one trial request is let through (half-open): success
//! closes the circuit, failure opens it again.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::{Duration, Instant};

pub const WINDOW: usize = 20;
pub const MIN_ATTEMPTS: usize = 5;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Circuit {
    Closed,
    Open,
    /// The cooldown is over: one trial may go.
    HalfOpen,
}

#[derive(Debug, Default)]
struct Breaker {
    outcomes: VecDeque<bool>,
    opened_at: Option<Instant>,
    /// A half-open trial is in flight.
    trial: bool,
    /// The cooldown of the route that recorded last (for the snapshot).
    cooldown: Duration,
}

#[derive(Debug, Default)]
pub struct Health {
    breakers: Mutex<HashMap<String, Breaker>>,
}

impl Circuit {
    pub fn as_str(self) -> &'static str {
        match self {
            Circuit::Closed => "closed",
            Circuit::Open => "open",
            Circuit::HalfOpen => "half_open",
        }
    }
}

impl Health {
    /// The circuit of `model`; a half-open one is handed to one caller at a
    /// time (`claim_trial`), the others see it open.
    pub fn circuit(&self, model: &str, cooldown: Duration, claim_trial: bool) -> Circuit {
        let Ok(mut all) = self.breakers.lock() else { return Circuit::Closed };
        let Some(b) = all.get_mut(model) else { return Circuit::Closed };
        match b.opened_at {
            None => Circuit::Closed,
            Some(at) if at.elapsed() < cooldown || b.trial => Circuit::Open,
            Some(_) => {
                if claim_trial {
                    b.trial = true;
                }
                Circuit::HalfOpen
            }
        }
    }

    /// Every model seen: its circuit (without claiming a trial), failures
    /// and attempts in the window.
    pub fn snapshot(&self) -> Vec<(String, Circuit, usize, usize)> {
        let Ok(all) = self.breakers.lock() else { return Vec::new() };
        let mut out: Vec<_> = all
            .iter()
            .map(|(m, b)| {
                let circuit = match b.opened_at {
                    None => Circuit::Closed,
                    Some(at) if at.elapsed() < b.cooldown || b.trial => Circuit::Open,
                    Some(_) => Circuit::HalfOpen,
                };
                (m.clone(), circuit, b.outcomes.iter().filter(|o| !**o).count(), b.outcomes.len())
            })
            .collect();
        out.sort();
        out
    }

    pub fn record(&self, model: &str, ok: bool, cooldown: Duration) {
        let Ok(mut all) = self.breakers.lock() else { return };
        let b = all.entry(model.to_string()).or_default();
        b.cooldown = cooldown;
        if b.opened_at.is_some() {
            // The outcome of a trial (or of a request that started before opening).
            b.trial = false;
            if ok {
                *b = Breaker::default();
            } else {
                b.opened_at = Some(Instant::now());
            }
            if !ok {
                tracing::warn!(model, "circuit stays open");
            }
            return;
        }
        b.outcomes.push_back(ok);
        if b.outcomes.len() > WINDOW {
            b.outcomes.pop_front();
        }
        let failures = b.outcomes.iter().filter(|o| !**o).count();
        if b.outcomes.len() >= MIN_ATTEMPTS && failures * 2 >= b.outcomes.len() {
            tracing::warn!(model, failures, attempts = b.outcomes.len(), "circuit opened");
            b.opened_at = Some(Instant::now());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn opens_on_failures_and_closes_after_a_good_trial() {
        let h = Health::default();
        let cool = Duration::from_millis(30);
        for _ in 0..4 {
            h.record("m", false, cool);
        }
        assert_eq!(h.circuit("m", cool, false), Circuit::Closed, "too few attempts to judge");
        h.record("m", false, cool);
        assert_eq!(h.circuit("m", cool, false), Circuit::Open);
        std::thread::sleep(cool);
        assert_eq!(h.circuit("m", cool, true), Circuit::HalfOpen);
        assert_eq!(h.circuit("m", cool, true), Circuit::Open, "one trial at a time");
        h.record("m", false, cool);
        assert_eq!(h.circuit("m", cool, false), Circuit::Open, "a failed trial re-opens");
        std::thread::sleep(cool);
        assert_eq!(h.circuit("m", cool, true), Circuit::HalfOpen);
        h.record("m", true, cool);
        assert_eq!(h.circuit("m", cool, false), Circuit::Closed);
        // Mostly healthy traffic never opens it.
        for i in 0..40 {
            h.record("n", i % 3 != 0, cool);
        }
        assert_eq!(h.circuit("n", cool, false), Circuit::Closed);
    }
}
