//! Reserve before the backend runs, settle after it finished.
//!
//! A request's estimate (prompt tokens + its completion cap; its cost at
//! the model's price) is reserved atomically against every counter of its
//! key and user: all pass or nothing is taken. When the response ends the
//! reservation is replaced by the real usage (a request that reserved 500
//! completion tokens and used 20 gives 480 back), spend is recorded
//! durably, and tokens and cost are counted in the metrics.

use super::limits::{counters, format_reset, tightest, Counter, Kind, Scope};
use super::{Policy, Principal};
use crate::error::{retry_after_secs, ApiError};
use crate::store::{unix_ms, CounterState, Reservation, StoreError, Ticket};
use axum::http::{HeaderMap, HeaderName, HeaderValue};
use std::sync::Arc;
use std::time::Duration;

/// An admitted request's reservation, to settle when it ends.
pub struct Admission {
    policy: Arc<Policy>,
    pub model: String,
    ticket: Option<Ticket>,
    kinds: Vec<Kind>,
    /// `x-ratelimit-*` headers for the response.
    pub headers: HeaderMap,
}

/// The estimate a request is admitted on.
#[derive(Debug, Clone, Copy)]
pub struct Estimate {
    pub prompt_tokens: u64,
    pub max_completion_tokens: u64,
}

impl Policy {
    /// Reserves the estimate against every counter of the caller. The cost
    /// is estimated at the priciest of the models that may serve it.
    /// `end_user`: the user the request names, whose limits apply when the
    /// key belongs to no user of its own.
    pub async fn admit(
        self: &Arc<Self>,
        principal: &Principal,
        end_user: Option<&str>,
        model: &str,
        candidates: &[String],
        estimate: Estimate,
    ) -> Result<Admission, ApiError> {
        let tokens = estimate.prompt_tokens + estimate.max_completion_tokens;
        let cost = candidates
            .iter()
            .map(|m| self.settings.prices.cost_nanos(m, estimate.prompt_tokens, estimate.max_completion_tokens))
            .max()
            .unwrap_or(0);
        let now = unix_ms();
        let mut list: Vec<Counter> = Vec::new();
        if let Principal::Key(k) = principal {
            list.extend(counters(Scope::Key, &k.id, &k.limits, tokens, cost, now));
            let user = k.user.as_deref().or(end_user);
            if let Some((user, limits)) = user.and_then(|u| Some((u, self.user_limits(u)?))) {
                list.extend(counters(Scope::User, user, limits, tokens, cost, now));
            }
        }
        let mut admission = Admission {
            policy: self.clone(),
            model: model.to_string(),
            ticket: None,
            kinds: list.iter().map(|c| c.kind).collect(),
            headers: HeaderMap::new(),
        };
        if list.is_empty() {
            return Ok(admission);
        }
        let specs: Vec<_> = list.iter().map(|c| c.spec.clone()).collect();
        match self.store.reserve(&specs).await {
            Ok(Reservation::Admitted { ticket, states }) => {
                admission.headers = rate_headers(&list, &states);
                admission.ticket = Some(ticket);
                Ok(admission)
            }
            Ok(Reservation::Denied { index, states }) => Err(self.refusal(&list, &states, index)),
            Err(e) => self.store_failed(e).map(|()| admission),
        }
    }

    fn store_failed(&self, e: StoreError) -> Result<(), ApiError> {
        if self.settings.fail_open {
            tracing::warn!(error = %e, "state store unreachable: serving without limits (fail_open)");
            self.metrics.store_error(true);
            Ok(())
        } else {
            tracing::error!(error = %e, "state store unreachable: refusing (fail_open is off)");
            self.metrics.store_error(false);
            Err(ApiError::Unavailable("Rate limits cannot be checked right now; try again shortly.".into()))
        }
    }

    fn refusal(&self, list: &[Counter], states: &[CounterState], index: usize) -> ApiError {
        let (Some(c), Some(s)) = (list.get(index), states.get(index)) else {
            return ApiError::Internal("rate limit refusal without a counter".into());
        };
        let headers = Box::new(rate_headers(list, states));
        // A budget that never resets has no retry time.
        let retry_after = s.reset_ms.map(|ms| retry_after_secs(Duration::from_millis(ms)));
        let who = match c.scope {
            Scope::Key => "this API key",
            Scope::User => "this user",
        };
        match c.kind {
            Kind::Budget => {
                self.metrics.budget_exceeded();
                ApiError::QuotaExceeded {
                    message: format!(
                        "The budget of {who} is spent (${:.6} of ${:.6} in this period).",
                        super::limits::nanos_to_usd(s.used),
                        super::limits::nanos_to_usd(s.limit)
                    ),
                    retry_after,
                    headers,
                }
            }
            Kind::Requests | Kind::Tokens => {
                let (reason, unit) =
                    if c.kind == Kind::Requests { ("requests", "requests") } else { ("tokens", "tokens") };
                self.metrics.rate_limited(reason);
                let window = match c.spec.period {
                    crate::store::Period::Seconds(60) => "minute",
                    _ => "day",
                };
                ApiError::RateLimited {
                    message: format!(
                        "Rate limit reached for {who}: {} {unit} per {window}, {} used. Please try again in {}.",
                        s.limit,
                        s.used,
                        format_reset(s.reset_ms.unwrap_or(0))
                    ),
                    kind: reason,
                    retry_after,
                    headers,
                }
            }
        }
    }
}

/// OpenAI's `x-ratelimit-{limit,remaining,reset}-{requests,tokens}`, from
/// the counter of each kind that binds hardest.
fn rate_headers(list: &[Counter], states: &[CounterState]) -> HeaderMap {
    let mut h = HeaderMap::new();
    for (kind, suffix) in [(Kind::Requests, "requests"), (Kind::Tokens, "tokens")] {
        let Some(s) = tightest(list, states, kind) else { continue };
        let values = [
            ("limit", s.limit.to_string()),
            ("remaining", s.remaining().to_string()),
            ("reset", format_reset(s.reset_ms.unwrap_or(0))),
        ];
        for (what, v) in values {
            if let (Ok(name), Ok(value)) =
                (HeaderName::try_from(format!("x-ratelimit-{what}-{suffix}")), HeaderValue::try_from(v))
            {
                h.insert(name, value);
            }
        }
    }
    h
}

impl Admission {
    /// Replaces the reservation by the real usage and records it: the
    /// answer's (`input`, `output`, priced as `self.model`) and the usage
    /// of attempts that were not used (`spent`, each priced as its own
    /// model). Returns the summed cost in nano-dollars.
    pub async fn settle(self, input_tokens: u64, output_tokens: u64, spent: &[SpentUsage]) -> u64 {
        let prices = &self.policy.settings.prices;
        let answer_cost = prices.cost_nanos(&self.model, input_tokens, output_tokens);
        let spent_cost: Vec<u64> = spent.iter().map(|s| prices.cost_nanos(&s.model, s.input, s.output)).collect();
        let cost = answer_cost + spent_cost.iter().sum::<u64>();
        let tokens = input_tokens + output_tokens + spent.iter().map(|s| s.input + s.output).sum::<u64>();
        if let Some(ticket) = &self.ticket {
            let actual: Vec<u64> = ticket
                .slots
                .iter()
                .zip(&self.kinds)
                .map(|((_, reserved, _), kind)| match kind {
                    Kind::Requests => *reserved,
                    Kind::Tokens => tokens,
                    Kind::Budget => cost,
                })
                .collect();
            if let Err(e) = self.policy.store.settle(ticket, &actual).await {
                // The reservation stays (the window then over-counts, never under-counts).
                tracing::error!(error = %e, model = %self.model, "could not record usage in the state store");
                self.policy.metrics.store_error(self.policy.settings.fail_open);
            }
        }
        // The metrics last: once they show the usage, the store has it too.
        for (s, c) in spent.iter().zip(spent_cost) {
            self.policy.metrics.usage(&s.model, s.input, s.output, c);
        }
        self.policy.metrics.usage(&self.model, input_tokens, output_tokens, answer_cost);
        cost
    }
}

/// Tokens an attempt used whose answer was not the one returned.
#[derive(Debug, Clone, PartialEq)]
pub struct SpentUsage {
    pub model: String,
    pub input: u64,
    pub output: u64,
}
