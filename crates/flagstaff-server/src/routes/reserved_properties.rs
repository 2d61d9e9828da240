//! The flag custom properties reserved by configured integrations (Flagstaff extension:
//! LaunchDarkly shows them in its UI's custom-property picker; Flagstaff has no UI).

use axum::Json;
use axum::extract::State;
use serde_json::{Value, json};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::auth::Caller;
use crate::error::ApiResult;
use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(get_reserved_custom_properties))
}

/// List the custom-property keys that integrations with an enabled configuration reserve.
/// A flag may use such a key only with the reserved `name`.
#[utoipa::path(get, path = "/api/v2/integration-capabilities/reserved-custom-properties", tag = "Integrations (beta)",
    operation_id = "getReservedCustomProperties",
    responses((status = 200, description = "Reserved custom properties: items of {integrationKey, key, name, description}")),
    security(("ApiKey" = [])))]
async fn get_reserved_custom_properties(
    State(state): State<AppState>,
    // Anyone who may call the API may edit some flag's custom properties, so anyone may read
    // which keys are reserved (names and descriptions only, from public manifests).
    _caller: Caller,
) -> ApiResult<Json<Value>> {
    let items = state.services.reserved_custom_properties().await?;
    Ok(Json(json!({"items": items, "totalCount": items.len()})))
}
