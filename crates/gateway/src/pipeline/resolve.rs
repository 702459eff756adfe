//! Step 2 (after validation): the model asked for. Aliases resolve to the
//! model's own name, on every request of the call; an unknown name is 404;
//! a key may only use the models it lists; a model asked for directly
//! refuses what it cannot do (a route filters its models itself).

use super::{Call, Ctx, Flow, Step};
use crate::error::ApiError;

pub struct Resolve;

#[async_trait::async_trait]
impl Step for Resolve {
    async fn before(&self, ctx: &mut Ctx, call: &mut Call) -> Result<Flow, ApiError> {
        let (model, backend) = ctx.state.lookup(&mut call.requests)?;
        if let Some(t) = &ctx.timing {
            t.set_model(&model);
        }
        if !ctx.principal.allows_model(&model) {
            return Err(ApiError::ModelNotAllowed(model));
        }
        if let Some(card) = ctx.state.card(&model) {
            if let Some(why) = call.requests.iter().find_map(|r| card.unfit(r, None)) {
                return Err(ApiError::invalid(why, None));
            }
        }
        call.is_route = ctx.state.is_route(&model);
        call.model = model;
        call.backend = Some(backend);
        Ok(Flow::Continue)
    }
}
