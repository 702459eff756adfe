//! Times one greedy answer with and without a JSON constraint and prints
//! both (a probe for tuning constrained decoding, not a benchmark).

use backend_api::{
    Backend, ChatTurn, GenerationEvent, OutputConstraint, Prompt, Role, SamplingParams, StopParams, ValidatedRequest,
};
use engine::{EngineConfig, LocalModel, WeightFormat};
use futures::StreamExt;
use std::time::Instant;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let e = LocalModel::load(&engine::testing::default_model()?, WeightFormat::Fast, Some(2048))?
        .spawn("m", EngineConfig::default())?;
    let question = std::env::args().nth(1).unwrap_or_else(|| "Give me a JSON object about cats.".into());
    for output in [None, Some(OutputConstraint::JsonObject)] {
        let req = ValidatedRequest {
            request_id: "p".into(),
            model: "m".into(),
            prompt: Prompt::Chat(vec![ChatTurn::new(Role::User, question.clone())]),
            sampling: SamplingParams::greedy(),
            stop: StopParams { max_tokens: Some(100), ..Default::default() },
            logprobs: None,
            cache_salt: None,
            tools: None,
            demands: backend_api::Demands { output: output.clone(), ..Default::default() },
        };
        let t = Instant::now();
        let mut s = e.generate(req).await?;
        let mut text = String::new();
        let mut n = 0;
        while let Some(ev) = s.next().await {
            match ev? {
                GenerationEvent::Delta { text: t, .. } => text.push_str(&t),
                GenerationEvent::Finished { completion_tokens, .. } => n = completion_tokens,
                _ => {}
            }
        }
        let el = t.elapsed();
        println!("{:?}: {n} tokens in {el:?} ({:.1} tok/s)\n{text}\n", output.is_some(), n as f64 / el.as_secs_f64());
    }
    Ok(())
}
