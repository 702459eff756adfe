//! Passive health: a circuit breaker per model, fed by the outcome of every
//! attempt a route makes. Over the last `WINDOW` attempts, a failure ratio
//! of at least one half (with `MIN_ATTEMPTS` seen) opens the circuit: the
//! model is skipped while any other model of the route is not open. After
//! the cooldown one trial request is let through (half-open): success
//! closes the circuit, failure opens it again. Active probes (a backend's
//! `health_check_interval_ms`) open a model's circuit when its server stops
//! answering, and close what they opened once it answers again.
//!
//! Beside the breaker, each model's live load as routing strategies read
//! it: requests in flight and a moving average of time to first token.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
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
    /// The cooldown of the route that looked last (for the snapshot).
    cooldown: Duration,
    /// Opened by a failed probe (a good probe closes it again).
    probe_down: bool,
    in_flight: u64,
    /// Exponentially weighted time to first token, in seconds.
    latency_ewma: Option<f64>,
}

impl Breaker {
    /// Open within its cooldown or while a trial is out; half-open after.
    fn circuit(&self) -> Circuit {
        match self.opened_at {
            None => Circuit::Closed,
            Some(at) if at.elapsed() < self.cooldown || self.trial => Circuit::Open,
            Some(_) => Circuit::HalfOpen,
        }
    }
}

/// Weight of the newest sample in the latency average.
pub const LATENCY_ALPHA: f64 = 0.3;

/// One model's state as `/admin/backends` and `/metrics` show it.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelHealth {
    pub model: String,
    pub circuit: Circuit,
    pub failures: usize,
    pub attempts: usize,
    pub in_flight: u64,
    pub latency_ewma_s: Option<f64>,
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
        b.cooldown = cooldown;
        let circuit = b.circuit();
        if circuit == Circuit::HalfOpen && claim_trial {
            b.trial = true;
        }
        circuit
    }

    /// Every model seen: its circuit (without claiming a trial), failures
    /// and attempts in the window, load and latency.
    pub fn snapshot(&self) -> Vec<ModelHealth> {
        let Ok(all) = self.breakers.lock() else { return Vec::new() };
        let mut out: Vec<_> = all
            .iter()
            .map(|(m, b)| ModelHealth {
                model: m.clone(),
                circuit: b.circuit(),
                failures: b.outcomes.iter().filter(|o| !**o).count(),
                attempts: b.outcomes.len(),
                in_flight: b.in_flight,
                latency_ewma_s: b.latency_ewma,
            })
            .collect();
        out.sort_by(|a, b| a.model.cmp(&b.model));
        out
    }

    /// Requests in flight and the latency average of `model`.
    pub fn load(&self, model: &str) -> (u64, Option<f64>) {
        let Ok(all) = self.breakers.lock() else { return (0, None) };
        all.get(model).map_or((0, None), |b| (b.in_flight, b.latency_ewma))
    }

    /// Counts a request in flight until the guard drops.
    pub fn begin(self: &Arc<Self>, model: &str) -> InFlight {
        if let Ok(mut all) = self.breakers.lock() {
            all.entry(model.to_string()).or_default().in_flight += 1;
        }
        InFlight { health: self.clone(), model: model.to_string() }
    }

    /// A time to first token, into the model's moving average.
    pub fn latency(&self, model: &str, sample: Duration) {
        let Ok(mut all) = self.breakers.lock() else { return };
        let b = all.entry(model.to_string()).or_default();
        let s = sample.as_secs_f64();
        b.latency_ewma = Some(b.latency_ewma.map_or(s, |avg| avg + LATENCY_ALPHA * (s - avg)));
    }

    /// The outcome of an active probe of the server behind `model`.
    pub fn probe(&self, model: &str, ok: bool) {
        let Ok(mut all) = self.breakers.lock() else { return };
        let b = all.entry(model.to_string()).or_default();
        match (ok, b.opened_at.is_some()) {
            (false, _) => {
                if b.opened_at.is_none() {
                    tracing::warn!(model, "health probe failed: circuit opened");
                }
                b.opened_at = Some(Instant::now());
                b.probe_down = true;
                b.trial = false;
            }
            (true, true) if b.probe_down => {
                tracing::info!(model, "health probe answered: circuit closed");
                b.outcomes.clear();
                b.opened_at = None;
                b.probe_down = false;
                b.trial = false;
            }
            (true, _) => {}
        }
    }

    /// The outcome of one attempt: `ok` unless the model was unreachable,
    /// timed out, failed with 5xx or rate limited.
    pub fn record(&self, model: &str, ok: bool) {
        let Ok(mut all) = self.breakers.lock() else { return };
        let b = all.entry(model.to_string()).or_default();
        if b.opened_at.is_some() {
            // The outcome of a trial (or of a request that started before opening).
            b.trial = false;
            if ok {
                b.outcomes.clear();
                b.opened_at = None;
                b.probe_down = false;
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

/// A request counted in flight.
pub struct InFlight {
    health: Arc<Health>,
    model: String,
}

impl Drop for InFlight {
    fn drop(&mut self) {
        if let Ok(mut all) = self.health.breakers.lock() {
            if let Some(b) = all.get_mut(&self.model) {
                b.in_flight = b.in_flight.saturating_sub(1);
            }
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
            h.record("m", false);
        }
        assert_eq!(h.circuit("m", cool, false), Circuit::Closed, "too few attempts to judge");
        h.record("m", false);
        assert_eq!(h.circuit("m", cool, false), Circuit::Open);
        std::thread::sleep(cool);
        assert_eq!(h.circuit("m", cool, true), Circuit::HalfOpen);
        assert_eq!(h.circuit("m", cool, true), Circuit::Open, "one trial at a time");
        h.record("m", false);
        assert_eq!(h.circuit("m", cool, false), Circuit::Open, "a failed trial re-opens");
        std::thread::sleep(cool);
        assert_eq!(h.circuit("m", cool, true), Circuit::HalfOpen);
        h.record("m", true);
        assert_eq!(h.circuit("m", cool, false), Circuit::Closed);
        // Mostly healthy traffic never opens it.
        for i in 0..40 {
            h.record("n", i % 3 != 0);
        }
        assert_eq!(h.circuit("n", cool, false), Circuit::Closed);
    }

    #[test]
    fn probes_open_and_close_what_they_opened_and_load_is_tracked() {
        let h = Arc::new(Health::default());
        let cool = Duration::from_secs(60);
        h.probe("m", false);
        assert_eq!(h.circuit("m", cool, true), Circuit::Open);
        h.probe("m", true);
        assert_eq!(h.circuit("m", cool, true), Circuit::Closed);
        // A circuit that traffic opened stays open through good probes.
        for _ in 0..5 {
            h.record("t", false);
        }
        h.probe("t", true);
        assert_eq!(h.circuit("t", cool, false), Circuit::Open);

        let (a, b) = (h.begin("m"), h.begin("m"));
        assert_eq!(h.load("m").0, 2);
        drop(a);
        assert_eq!(h.load("m").0, 1);
        drop(b);
        h.latency("m", Duration::from_millis(100));
        h.latency("m", Duration::from_millis(200));
        let avg = h.load("m").1.unwrap_or_default();
        assert!((avg - 0.13).abs() < 1e-9, "{avg}");
        let snap = h.snapshot();
        assert_eq!(snap.iter().map(|s| s.model.as_str()).collect::<Vec<_>>(), ["m", "t"]);
        assert_eq!(snap[0].in_flight, 0);
    }
}
