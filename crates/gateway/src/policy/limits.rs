//! Rate limits and budgets, and the counters a request reserves against.

use crate::store::{CounterSpec, CounterState, Period};
use serde::{Deserialize, Serialize};

/// Limits of a key or of a user (across all of that user's keys).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Limits {
    /// Requests per minute / per day.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rpm: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rpd: Option<u64>,
    /// Tokens (prompt + completion) per minute / per day.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tpm: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tpd: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub budget: Option<Budget>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Budget {
    /// US dollars per period.
    pub usd: f64,
    pub period: BudgetPeriod,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BudgetPeriod {
    /// The UTC day.
    Daily,
    /// The UTC calendar month.
    Monthly,
    Total,
}

/// Dollars are counted in integer nano-dollars, so counters add exactly
/// (Redis and Lua add integers exactly up to 2^53 ≈ $9 million).
pub const NANOS_PER_USD: f64 = 1e9;
pub const MAX_BUDGET_USD: f64 = 1e6;

pub fn usd_to_nanos(usd: f64) -> u64 {
    (usd * NANOS_PER_USD).round().max(0.0) as u64
}

pub fn nanos_to_usd(nanos: u64) -> f64 {
    nanos as f64 / NANOS_PER_USD
}

impl Limits {
    pub fn validate(&self) -> Result<(), String> {
        for (name, v) in [("rpm", self.rpm), ("rpd", self.rpd), ("tpm", self.tpm), ("tpd", self.tpd)] {
            if v == Some(0) {
                return Err(format!("{name} must be at least 1 (leave it out for no limit)"));
            }
        }
        if let Some(b) = &self.budget {
            if !(b.usd.is_finite() && b.usd >= 0.0 && b.usd <= MAX_BUDGET_USD) {
                return Err(format!("budget.usd must be between 0 and {MAX_BUDGET_USD}"));
            }
        }
        Ok(())
    }
}

/// What a counter limits: the `reason` label of `llm_rate_limited_total`
/// and the header family it reports in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Requests,
    Tokens,
    Budget,
}

/// Whose counter it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    Key,
    User,
}

/// A counter together with what it means.
#[derive(Debug, Clone, PartialEq)]
pub struct Counter {
    pub spec: CounterSpec,
    pub kind: Kind,
    pub scope: Scope,
}

/// The counter name of a key's or user's spend in a budget period.
pub fn spend_counter(scope: Scope, id: &str) -> String {
    match scope {
        Scope::Key => format!("spend:key:{id}"),
        Scope::User => format!("spend:user:{id}"),
    }
}

pub fn budget_period(p: BudgetPeriod, now_ms: u64) -> Period {
    match p {
        BudgetPeriod::Daily => Period::Seconds(86_400),
        BudgetPeriod::Monthly => Period::Named(utc_month(now_ms)),
        BudgetPeriod::Total => Period::Total,
    }
}

/// The counters one request reserves against for one key or user.
pub fn counters(scope: Scope, id: &str, limits: &Limits, tokens: u64, cost_nanos: u64, now_ms: u64) -> Vec<Counter> {
    let who = match scope {
        Scope::Key => format!("key:{id}"),
        Scope::User => format!("user:{id}"),
    };
    let windows = [
        (limits.rpm, "req", 60, Kind::Requests, 1),
        (limits.rpd, "req", 86_400, Kind::Requests, 1),
        (limits.tpm, "tok", 60, Kind::Tokens, tokens),
        (limits.tpd, "tok", 86_400, Kind::Tokens, tokens),
    ];
    let mut out: Vec<Counter> = windows
        .into_iter()
        .filter_map(|(limit, what, secs, kind, amount)| {
            let limit = limit?;
            let spec = CounterSpec {
                name: format!("rl:{who}:{what}"),
                period: Period::Seconds(secs),
                limit,
                amount,
                durable: false,
            };
            Some(Counter { spec, kind, scope })
        })
        .collect();
    if let Some(b) = &limits.budget {
        let spec = CounterSpec {
            name: spend_counter(scope, id),
            period: budget_period(b.period, now_ms),
            limit: usd_to_nanos(b.usd),
            amount: cost_nanos,
            durable: true,
        };
        out.push(Counter { spec, kind: Kind::Budget, scope });
    }
    out
}

/// "YYYY-MM" of a Unix time in milliseconds (UTC), without a date library
/// (Howard Hinnant's civil-from-days).
pub fn utc_month(now_ms: u64) -> String {
    let days = (now_ms / 86_400_000) as i64;
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!("{year:04}-{month:02}")
}

/// OpenAI's duration format for `x-ratelimit-reset-*`: "45ms", "1s", "6m0s", "1h2m3s".
pub fn format_reset(ms: u64) -> String {
    if ms < 1000 {
        return format!("{ms}ms");
    }
    let s = ms.div_ceil(1000);
    let (h, m, s) = (s / 3600, (s % 3600) / 60, s % 60);
    match (h, m) {
        (0, 0) => format!("{s}s"),
        (0, _) => format!("{m}m{s}s"),
        _ => format!("{h}h{m}m{s}s"),
    }
}

/// The counter of a kind that binds hardest (least remaining), for headers.
pub fn tightest(counters: &[Counter], states: &[CounterState], kind: Kind) -> Option<CounterState> {
    counters
        .iter()
        .zip(states)
        .filter(|(c, _)| c.kind == kind)
        .map(|(_, s)| *s)
        .min_by_key(|s| (s.remaining(), std::cmp::Reverse(s.reset_ms)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn months_and_resets() {
        assert_eq!(utc_month(0), "1970-01");
        // 2026-11-27T22:04:14Z
        assert_eq!(utc_month(1_795_817_054_000), "2026-11");
        // 2024-02-29T12:00:00Z and 2024-03-01T00:00:00Z
        assert_eq!(utc_month(1_709_208_000_000), "2024-02");
        assert_eq!(utc_month(1_709_251_200_000), "2024-03");
        assert_eq!(format_reset(20), "20ms");
        assert_eq!(format_reset(1000), "1s");
        assert_eq!(format_reset(360_000), "6m0s");
        assert_eq!(format_reset(3_723_000), "1h2m3s");
    }

    #[test]
    fn counters_follow_the_limits() {
        let l = Limits {
            rpm: Some(10),
            tpd: Some(1000),
            budget: Some(Budget { usd: 1.5, period: BudgetPeriod::Total }),
            ..Default::default()
        };
        let c = counters(Scope::Key, "k", &l, 70, 123, 0);
        assert_eq!(c.len(), 3);
        assert_eq!((c[0].kind, c[0].spec.amount, c[0].spec.limit), (Kind::Requests, 1, 10));
        assert_eq!((c[1].kind, c[1].spec.amount, &c[1].spec.period), (Kind::Tokens, 70, &Period::Seconds(86_400)));
        assert_eq!((c[2].spec.limit, c[2].spec.amount, c[2].spec.durable), (1_500_000_000, 123, true));
        assert!(Limits { rpm: Some(0), ..Default::default() }.validate().is_err());
    }
}
