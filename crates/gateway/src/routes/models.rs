use crate::dialect::collect::unix_now;
use crate::state::AppState;
use axum::extract::State;
use axum::Json;
use protocol::{Model, ModelList};

pub async fn list_models(State(state): State<AppState>) -> Json<ModelList> {
    let created = unix_now();
    let data = state
        .models()
        .into_iter()
        .map(|m| Model {
            id: m.id,
            object: "model".into(),
            created,
            owned_by: m.owned_by,
            context_length: (m.context_length > 0).then_some(m.context_length),
            details: m.details,
        })
        .collect();
    Json(ModelList { object: "list".into(), data })
}
