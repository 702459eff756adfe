//! The LLM judge (`switchyard eval run`, live evaluation): a configured model grades an
//! answer against a rubric with a strict JSON verdict (retried, up to
//! `ATTEMPTS`, when the verdict does not parse), or compares it with the
//! expected answer in both orders (`pairwise`, which cancels the judge's
//! preference for a position: an answer that wins only where it stands
//! first scores a tie).

use super::scorers::{Scorer, Verdict};
use backend_api::{ChatTurn, Demands, Prompt, Role, SamplingParams, StopParams, ValidatedRequest};
use serde_json::Value;
use std::future::Future;

/// What a judge reads of one answer.
pub struct Asked<'a> {
    pub question: &'a str,
    pub answer: &'a str,
    pub expected: Option<&'a str>,
}

/// Grades a `judge` scorer. `ask(messages, attempt)` makes one judge call
/// (system, user) and returns its reply; the caller decides how (through
/// a cache, a backend). Retries an unparsable reply up to `ATTEMPTS`.
pub async fn grade<F, Fut>(scorer: &Scorer, asked: &Asked<'_>, ask: F) -> Verdict
where
    F: Fn((String, String), u32) -> Fut,
    Fut: Future<Output = Result<String, String>>,
{
    let Scorer::Judge { rubric, pairwise, threshold, .. } = scorer else { return Verdict::of(false, None) };
    if *pairwise {
        let expected = asked.expected.unwrap_or_default();
        let first = verdict(&ask, pair_prompt(rubric, asked.question, asked.answer, expected), parse_winner);
        let second = verdict(&ask, pair_prompt(rubric, asked.question, expected, asked.answer), parse_winner);
        return match (first.await, second.await) {
            (Ok(a), Ok(b)) => {
                let score = pairwise_score(&a, &b);
                let pass = score >= threshold.unwrap_or(0.5);
                Verdict { pass, score, detail: Some(format!("as A: {a}, as B: {b}")) }
            }
            (Err(e), _) | (_, Err(e)) => no_verdict(&e),
        };
    }
    match verdict(&ask, grade_prompt(rubric, asked.question, asked.answer, asked.expected), parse_grade).await {
        Ok((score, reason)) => Verdict { pass: score >= threshold.unwrap_or(0.7), score, detail: Some(reason) },
        Err(e) => no_verdict(&e),
    }
}

/// One judge call's request: the first try greedy, retries sampled (so
/// they can differ), a verdict's worth of tokens.
pub fn request(model: &str, (system, user): (String, String), attempt: u32) -> ValidatedRequest {
    ValidatedRequest {
        request_id: format!("eval-judge-{attempt}"),
        model: model.to_string(),
        prompt: Prompt::Chat(vec![ChatTurn::new(Role::System, system), ChatTurn::new(Role::User, user)]),
        sampling: SamplingParams {
            temperature: if attempt == 0 { 0.0 } else { 0.7 },
            seed: Some(u64::from(attempt)),
            ..SamplingParams::default()
        },
        stop: StopParams { max_tokens: Some(200), ..Default::default() },
        logprobs: None,
        cache_salt: None,
        tools: None,
        demands: Demands::default(),
    }
}

/// The first parsable reply of up to `ATTEMPTS`, or the last reply.
async fn verdict<T, F, Fut>(ask: &F, prompt: (String, String), parse: fn(&str) -> Option<T>) -> Result<T, String>
where
    F: Fn((String, String), u32) -> Fut,
    Fut: Future<Output = Result<String, String>>,
{
    let mut last = String::new();
    for attempt in 0..ATTEMPTS {
        match ask(prompt.clone(), attempt).await {
            Ok(reply) => match parse(&reply) {
                Some(v) => return Ok(v),
                None => last = reply,
            },
            Err(e) => last = format!("the judge's call failed: {e}"),
        }
    }
    Err(last)
}

/// Judge calls per verdict before it counts as none.
pub const ATTEMPTS: u32 = 3;

const GRADE_SYSTEM: &str = "You grade answers. Reply with one JSON object and nothing else: \
{\"score\": <integer 0 to 10>, \"reason\": \"<one sentence>\"}.";
const PAIR_SYSTEM: &str = "You compare two answers. Reply with one JSON object and nothing else: \
{\"winner\": \"A\" or \"B\" or \"tie\", \"reason\": \"<one sentence>\"}.";

/// The messages of one grading call.
fn grade_prompt(rubric: &str, question: &str, answer: &str, expected: Option<&str>) -> (String, String) {
    let reference = expected.map(|e| format!("Reference answer:\n{e}\n\n")).unwrap_or_default();
    (GRADE_SYSTEM.into(), format!("Rubric: {rubric}\n\nQuestion:\n{question}\n\n{reference}Answer to grade:\n{answer}"))
}

/// The messages of one pairwise call, `first` shown as answer A.
fn pair_prompt(rubric: &str, question: &str, first: &str, second: &str) -> (String, String) {
    (
        PAIR_SYSTEM.into(),
        format!("Rubric: {rubric}\n\nQuestion:\n{question}\n\nAnswer A:\n{first}\n\nAnswer B:\n{second}"),
    )
}

/// The JSON object in a judge's reply (the outermost braces).
fn object(reply: &str) -> Option<serde_json::Map<String, Value>> {
    let (start, end) = (reply.find('{')?, reply.rfind('}')?);
    serde_json::from_str::<Value>(reply.get(start..=end)?).ok()?.as_object().cloned()
}

/// A grade of 0–10 as a fraction, if the reply holds one.
fn parse_grade(reply: &str) -> Option<(f64, String)> {
    let o = object(reply)?;
    let score = o.get("score")?.as_f64().filter(|s| (0.0..=10.0).contains(s))?;
    Some((score / 10.0, o.get("reason").and_then(Value::as_str).unwrap_or_default().to_string()))
}

/// The pairwise winner ("A", "B" or "tie"), if the reply holds one.
fn parse_winner(reply: &str) -> Option<String> {
    let w = object(reply)?.get("winner")?.as_str()?.trim().to_ascii_uppercase();
    match w.as_str() {
        "A" | "B" => Some(w),
        "TIE" => Some("tie".into()),
        _ => None,
    }
}

/// The answer's points from the two orders: it was A in the first, B in
/// the second. Win 1, tie 0.5, loss 0, averaged.
fn pairwise_score(as_a: &str, as_b: &str) -> f64 {
    let points = |w: &str, me: &str| match w {
        "tie" => 0.5,
        w if w == me => 1.0,
        _ => 0.0,
    };
    (points(as_a, "A") + points(as_b, "B")) / 2.0
}

/// The verdict when the judge never gave a usable reply.
fn no_verdict(last: &str) -> Verdict {
    let shown: String = last.chars().take(120).collect();
    Verdict {
        pass: false,
        score: 0.0,
        detail: Some(format!("the judge gave no verdict in {ATTEMPTS} tries: {shown:?}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verdicts_parse_strictly() {
        assert_eq!(parse_grade(r#"{"score": 9, "reason": "right"}"#), Some((0.9, "right".into())));
        assert_eq!(parse_grade("Sure! ```json\n{\"score\": 3}\n```").map(|g| g.0), Some(0.3));
        assert_eq!(parse_grade("Sure! I would give it 9/10."), None);
        assert_eq!(parse_grade(r#"{"score": 42}"#), None);
        assert_eq!(parse_winner(r#"{"winner": "b"}"#).as_deref(), Some("B"));
        assert_eq!(parse_winner(r#"{"winner": "both"}"#), None);
    }

    #[test]
    fn pairwise_cancels_position_bias() {
        // Always "A": the answer won first and lost second: a tie.
        assert_eq!(pairwise_score("A", "A"), 0.5);
        assert_eq!(pairwise_score("A", "B"), 1.0);
        assert_eq!(pairwise_score("B", "A"), 0.0);
        assert_eq!(pairwise_score("tie", "B"), 0.75);
    }
}
