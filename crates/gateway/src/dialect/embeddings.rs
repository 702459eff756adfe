//! `POST /v1/embeddings`: OpenAI's embeddings dialect. `input` as a string,
//! strings, token ids or arrays of token ids; `encoding_format` `float` or
//! `base64` (little-endian f32s); `dimensions` only as the model's own.

use super::extract::OpenAiJson;
use super::request_id;
use crate::error::ApiError;
use crate::pipeline::{embed, Ctx};
use crate::policy::Principal;
use crate::state::AppState;
use crate::timing::RequestTiming;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use backend_api::{EmbedInput, EmbedRequest};
use protocol::{EmbeddingData, EmbeddingInput, EmbeddingList, EmbeddingRequest, EmbeddingUsage};
use std::sync::Arc;

/// Most inputs one request may carry (OpenAI's limit).
pub const MAX_INPUTS: usize = 2048;

/// How the vectors are written back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    Float,
    Base64,
}

/// A validated embeddings body: the request, the encoding, the dimensions asked for.
pub fn validate_embeddings(
    req: EmbeddingRequest,
    request_id: &str,
) -> Result<(EmbedRequest, Encoding, Option<u32>), ApiError> {
    let bad = |m: String| ApiError::invalid(m, "input");
    let inputs: Vec<EmbedInput> = match req.input {
        EmbeddingInput::One(s) => vec![EmbedInput::Text(s)],
        EmbeddingInput::Many(v) => v.into_iter().map(EmbedInput::Text).collect(),
        EmbeddingInput::Tokens(t) => vec![EmbedInput::Tokens(token_ids(&t, 0)?)],
        EmbeddingInput::ManyTokens(v) => {
            v.iter().enumerate().map(|(i, t)| token_ids(t, i).map(EmbedInput::Tokens)).collect::<Result<_, _>>()?
        }
    };
    if inputs.is_empty() {
        return Err(bad("'input' must not be empty.".into()));
    }
    if inputs.len() > MAX_INPUTS {
        return Err(bad(format!("At most {MAX_INPUTS} inputs per request, got {}.", inputs.len())));
    }
    for (i, input) in inputs.iter().enumerate() {
        let empty = match input {
            EmbedInput::Text(t) => t.is_empty(),
            EmbedInput::Tokens(t) => t.is_empty(),
        };
        if empty {
            return Err(bad(format!("input[{i}] is empty.")));
        }
    }
    let encoding = match req.encoding_format.as_deref() {
        None | Some("float") => Encoding::Float,
        Some("base64") => Encoding::Base64,
        Some(other) => {
            return Err(ApiError::invalid(format!("'{other}' is not one of 'float', 'base64'."), "encoding_format"))
        }
    };
    let dimensions = match req.dimensions {
        None => None,
        Some(d) if d >= 1 && d <= i64::from(u32::MAX) => Some(d as u32),
        Some(d) => return Err(ApiError::invalid(format!("{d} is not valid for 'dimensions'."), "dimensions")),
    };
    let request = EmbedRequest { request_id: request_id.to_string(), model: req.model, inputs, dimensions };
    Ok((request, encoding, dimensions))
}

fn token_ids(tokens: &[i64], index: usize) -> Result<Vec<u32>, ApiError> {
    tokens
        .iter()
        .map(|t| u32::try_from(*t))
        .collect::<Result<_, _>>()
        .map_err(|_| ApiError::invalid(format!("input[{index}]: token ids must be between 0 and 2^32 - 1."), "input"))
}

/// A vector as OpenAI's base64: its f32s, little-endian.
fn base64_f32(v: &[f32]) -> String {
    const TABLE: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let bytes: Vec<u8> = v.iter().flat_map(|x| x.to_le_bytes()).collect();
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [chunk[0], chunk.get(1).copied().unwrap_or(0), chunk.get(2).copied().unwrap_or(0)];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for k in 0..4 {
            if k <= chunk.len() {
                out.push(char::from(TABLE[((n >> (18 - 6 * k)) & 63) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

pub async fn embeddings(
    State(state): State<AppState>,
    principal: Option<Extension<Principal>>,
    timing: Option<Extension<Arc<RequestTiming>>>,
    headers: HeaderMap,
    OpenAiJson(body): OpenAiJson<EmbeddingRequest>,
) -> Result<Response, ApiError> {
    let rid = request_id(&headers);
    let ctx = Ctx::new(state, principal, timing, rid.clone())?;
    let (request, encoding, dimensions) = validate_embeddings(body, &rid)?;
    let answer = embed::run(ctx, request, dimensions).await?;
    let data = answer
        .embedded
        .vectors
        .iter()
        .enumerate()
        .map(|(i, v)| EmbeddingData {
            object: "embedding".into(),
            index: i as u32,
            embedding: match encoding {
                Encoding::Float => serde_json::json!(v),
                Encoding::Base64 => serde_json::Value::String(base64_f32(v)),
            },
        })
        .collect();
    let tokens = answer.embedded.prompt_tokens;
    let list = EmbeddingList {
        object: "list".into(),
        data,
        model: answer.model,
        usage: EmbeddingUsage { prompt_tokens: tokens, total_tokens: tokens },
    };
    let mut resp = Json(list).into_response();
    resp.headers_mut().extend(answer.headers);
    Ok(resp)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dialect::extract::parse_body;

    #[test]
    fn base64_is_little_endian_f32() {
        // 1.0f32 = 00 00 80 3f; two floats = 8 bytes → 12 base64 characters.
        assert_eq!(base64_f32(&[1.0]), "AACAPw==");
        assert_eq!(base64_f32(&[1.0, -2.0]), "AACAPwAAAMA=");
    }

    #[test]
    fn inputs_take_every_shape_and_bad_ones_name_the_field() -> Result<(), ApiError> {
        let v = |body: &str| validate_embeddings(parse_body(body.as_bytes())?, "r");
        assert_eq!(v(r#"{"model":"m","input":"hi"}"#)?.0.inputs, [EmbedInput::Text("hi".into())]);
        assert_eq!(v(r#"{"model":"m","input":["a","b"]}"#)?.0.inputs.len(), 2);
        assert_eq!(v(r#"{"model":"m","input":[1,2,3]}"#)?.0.inputs, [EmbedInput::Tokens(vec![1, 2, 3])]);
        assert_eq!(v(r#"{"model":"m","input":[[1],[2,3]]}"#)?.0.inputs.len(), 2);
        assert_eq!(v(r#"{"model":"m","input":"x","encoding_format":"base64"}"#)?.1, Encoding::Base64);
        for (body, param) in [
            (r#"{"model":"m","input":[]}"#, "input"),
            (r#"{"model":"m","input":""}"#, "input"),
            (r#"{"model":"m","input":["a",""]}"#, "input"),
            (r#"{"model":"m","input":[-1]}"#, "input"),
            (r#"{"model":"m","input":"x","encoding_format":"hex"}"#, "encoding_format"),
            (r#"{"model":"m","input":"x","dimensions":0}"#, "dimensions"),
        ] {
            match v(body) {
                Err(ApiError::InvalidRequest { param: Some(p), .. }) => assert_eq!(p, param, "{body}"),
                other => panic!("{body}: {:?}", other.map(|_| ())),
            }
        }
        assert!(v(r#"{"model":"m","input":{"a":1}}"#).is_err());
        Ok(())
    }
}
