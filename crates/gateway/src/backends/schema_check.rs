//! A remote model's `json_schema` answer is checked against the schema
//! before any of it reaches the client (`validate = true`, the default): the
//! answer is read whole, validated with the `jsonschema` crate, and then
//! replayed event by event; an answer that is not valid is the model's
//! failure (`Unavailable`), so the model's health counts it and a route
//! falls back to its next model. A stream therefore starts only once the
//! answer is complete. Answers cut at `max_tokens` pass unchecked (the
//! client chose the cut), as do errors.

use backend_api::{BackendError, FinishReason, GenerationEvent, GenerationStream};
use futures::StreamExt;
use serde_json::Value;

/// The schema's first complaint about `text`, if any.
pub fn violation(schema: &Value, text: &str) -> Option<String> {
    let answer: Value = match serde_json::from_str(text) {
        Ok(v) => v,
        Err(e) => return Some(format!("the answer is not JSON ({e})")),
    };
    match jsonschema::validator_for(schema) {
        // A schema the validator cannot read is not the model's failure.
        Err(_) => None,
        Ok(v) => v.iter_errors(&answer).next().map(|e| {
            let at = e.instance_path.to_string();
            format!("{} at '{}'", e, if at.is_empty() { "/" } else { &at })
        }),
    }
}

/// Reads `stream` whole and replays it if its answer meets `schema`.
pub async fn checked(
    mut stream: GenerationStream,
    schema: &Value,
    model: &str,
) -> Result<GenerationStream, BackendError> {
    let mut events = Vec::new();
    let mut text = String::new();
    let mut finish = None;
    while let Some(event) = stream.next().await {
        let event = event?;
        match &event {
            GenerationEvent::Delta { text: t, .. } => text.push_str(t),
            GenerationEvent::Finished { reason, .. } => finish = Some(*reason),
            _ => {}
        }
        events.push(Ok(event));
    }
    if finish == Some(FinishReason::Stop) {
        if let Some(why) = violation(schema, &text) {
            return Err(BackendError::Unavailable(format!(
                "model '{model}' answered outside the response_format schema: {why}"
            )));
        }
    }
    Ok(futures::stream::iter(events).boxed())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn violations_name_what_is_wrong() {
        let s = json!({"type": "object", "properties": {"n": {"type": "integer", "maximum": 3}}, "required": ["n"]});
        assert_eq!(violation(&s, r#"{"n": 2}"#), None);
        assert!(violation(&s, r#"{"n": 9}"#).is_some_and(|w| w.contains("/n")), "{:?}", violation(&s, r#"{"n": 9}"#));
        assert!(violation(&s, "{}").is_some_and(|w| w.contains("n")));
        assert!(violation(&s, "{\"n\": ").is_some_and(|w| w.contains("not JSON")));
    }
}
