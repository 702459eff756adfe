//! Counts what a request's backend streams really used and settles its
//! admission once: inline when the last choice finishes (so the spend is
//! recorded before the client sees the end of the response), or, when the
//! client went away or the backend failed, from what was generated so far.

use super::admission::{Admission, SpentUsage};
use crate::timing::RequestTiming;
use backend_api::{GenerationEvent, GenerationStream};
use futures::StreamExt;
use std::sync::{Arc, Mutex};

pub struct Meter {
    state: Mutex<MeterState>,
    timing: Option<Arc<RequestTiming>>,
}

struct MeterState {
    admission: Option<Admission>,
    open: usize,
    input: u64,
    output: u64,
    cost_nanos: Option<u64>,
    /// The model a route chose.
    served_by: Option<String>,
    /// Attempts whose answers were not used (a cascade's), billed too.
    spent: Vec<SpentUsage>,
    /// Answered from the response cache without charge.
    free: bool,
}

/// One choice's counts; reports to the meter when the choice ends, however it ends.
struct Tap {
    meter: Arc<Meter>,
    prompt: u64,
    generated: u64,
    done: bool,
}

impl Drop for Tap {
    fn drop(&mut self) {
        if self.done {
            return;
        }
        // Cut short: charge the prompt and the tokens generated so far.
        if let Some((admission, input, output, spent)) = self.meter.close_one(self.prompt, self.generated) {
            match tokio::runtime::Handle::try_current() {
                Ok(rt) => {
                    rt.spawn(async move {
                        admission.settle(input, output, &spent).await;
                    });
                }
                Err(_) => tracing::error!("no runtime to settle an interrupted request on"),
            }
        }
    }
}

impl Meter {
    pub fn new(admission: Admission, choices: usize, timing: Option<Arc<RequestTiming>>) -> Arc<Self> {
        let state = MeterState {
            admission: Some(admission),
            open: choices,
            input: 0,
            output: 0,
            cost_nanos: None,
            served_by: None,
            spent: Vec::new(),
            free: false,
        };
        Arc::new(Meter { state: Mutex::new(state), timing })
    }

    /// Adds one choice's usage; the admission and the totals come back when
    /// it was the last one open.
    fn close_one(&self, input: u64, output: u64) -> Option<(Admission, u64, u64, Vec<SpentUsage>)> {
        let mut s = self.state.lock().ok()?;
        if !s.free {
            s.input += input;
            s.output += output;
        }
        s.open = s.open.saturating_sub(1);
        if s.open == 0 {
            if let Some(t) = &self.timing {
                t.backend_finished();
            }
            let (input, output, spent) = (s.input, s.output, std::mem::take(&mut s.spent));
            s.admission.take().map(|a| (a, input, output, spent))
        } else {
            None
        }
    }

    /// The answer comes from the response cache: charged its tokens as if
    /// generated (`charge`), or nothing. The request itself still counts
    /// against request-rate limits (its reservation's request slot).
    pub fn cached(&self, charge: bool) {
        if let Ok(mut s) = self.state.lock() {
            s.free = !charge;
        }
    }

    /// A route chose this model: it prices the request (and labels its usage).
    pub fn served_by(&self, model: &str) {
        if let Ok(mut s) = self.state.lock() {
            if let Some(a) = s.admission.as_mut() {
                a.model = model.to_string();
            }
            s.served_by = Some(model.to_string());
        }
        if let Some(t) = &self.timing {
            t.set_model(model);
        }
    }

    /// The model a route chose, once the backend started.
    pub fn served_by_model(&self) -> Option<String> {
        self.state.lock().ok().and_then(|s| s.served_by.clone())
    }

    /// The cost recorded at settlement, once settled.
    pub fn cost_nanos(&self) -> Option<u64> {
        self.state.lock().ok().and_then(|s| s.cost_nanos)
    }

    async fn settle(&self, admission: Admission, input: u64, output: u64, spent: Vec<SpentUsage>) {
        let cost = admission.settle(input, output, &spent).await;
        if let Ok(mut s) = self.state.lock() {
            s.cost_nanos = Some(cost);
        }
    }

    /// Wraps one choice's backend stream.
    pub fn wrap(self: &Arc<Self>, stream: GenerationStream) -> GenerationStream {
        let tap = Tap { meter: self.clone(), prompt: 0, generated: 0, done: false };
        futures::stream::unfold((stream, tap), |(mut stream, mut tap)| async move {
            let event = stream.next().await?;
            match &event {
                Ok(GenerationEvent::Started { prompt_tokens, model, .. }) => {
                    tap.prompt = u64::from(*prompt_tokens);
                    if let Some(m) = model {
                        tap.meter.served_by(m);
                    }
                }
                Ok(GenerationEvent::Delta { tokens, .. }) => tap.generated += tokens.len() as u64,
                // A piece of a tool call: about a token (remote streams carry no token ids).
                Ok(GenerationEvent::ToolCall(_)) => tap.generated += 1,
                Ok(GenerationEvent::Finished { prompt_tokens, completion_tokens, .. }) => {
                    tap.done = true;
                    let meter = tap.meter.clone();
                    if let Some((admission, input, output, spent)) =
                        meter.close_one(u64::from(*prompt_tokens), u64::from(*completion_tokens))
                    {
                        meter.settle(admission, input, output, spent).await;
                    }
                }
                Ok(GenerationEvent::Spent { model, prompt_tokens, completion_tokens }) => {
                    if let Ok(mut s) = tap.meter.state.lock() {
                        s.spent.push(SpentUsage {
                            model: model.clone(),
                            input: u64::from(*prompt_tokens),
                            output: u64::from(*completion_tokens),
                        });
                    }
                }
                Ok(GenerationEvent::Upstream { .. }) | Err(_) => {}
            }
            Some((event, (stream, tap)))
        })
        .boxed()
    }
}

impl Meter {
    /// Choices that never started (the backend refused them): they close
    /// with no usage, so the reservation is still settled.
    pub fn abandon(self: &Arc<Self>, choices: usize) {
        for _ in 0..choices {
            drop(Tap { meter: self.clone(), prompt: 0, generated: 0, done: false });
        }
    }
}
