//! The Flagstaff server: LaunchDarkly's REST API v2 over the domain services.
//!
//! ```text
//! request ─► router (routes::*) ─► Caller (auth) ─► handler ─► Services (domain) ─► Store::commit
//!                                                                   entity + audit entry + outbox, one transaction
//! ```

use std::future::Future;
use std::sync::Arc;

use axum::extract::{DefaultBodyLimit, Request};
use axum::http::{HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use flagstaff_store::Store;
use tokio::net::TcpListener;
use tower_http::cors::{AllowOrigin, CorsLayer};
use utoipa::openapi::security::{ApiKey, ApiKeyValue, SecurityScheme};
use utoipa::{Modify, OpenApi};
use utoipa_axum::router::OpenApiRouter;

pub mod auth;
pub mod error;
pub mod extract;
pub mod integrations;
pub mod ratelimit;
pub mod render;
pub mod routes;
pub mod sdk;
pub mod services;
pub mod state;

pub use error::{ApiError, ApiResult};
pub use services::bootstrap::{Bootstrapped, bootstrap};
pub use state::AppState;

#[derive(OpenApi)]
#[openapi(
    info(title = "Flagstaff REST API", version = "2.0",
        description = "LaunchDarkly-compatible REST API v2 served by Flagstaff. Authenticate with `Authorization: <api token>`."),
    modifiers(&ApiKeyScheme)
)]
struct ApiDoc;

struct ApiKeyScheme;

impl Modify for ApiKeyScheme {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "ApiKey",
            SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::new("Authorization"))),
        );
    }
}

fn api_router() -> OpenApiRouter<AppState> {
    OpenApiRouter::with_openapi(ApiDoc::openapi())
        .merge(routes::root::router())
        .merge(routes::projects::router())
        .merge(routes::environments::router())
        .merge(routes::flags::router())
        .merge(routes::segments::router())
        .merge(routes::approvals::router())
        .merge(routes::segment_targets::router())
        .merge(routes::auditlog::router())
        .merge(routes::roles::router())
        .merge(routes::members::router())
        .merge(routes::teams::router())
        .merge(routes::tokens::router())
        .merge(routes::integrations::router())
        .merge(routes::integration_oauth::router())
        .merge(routes::oauth::router())
        .merge(routes::triggers::router())
        .merge(routes::store_configs::router())
        .merge(routes::flag_links::router())
        .merge(routes::reserved_properties::router())
}

/// The OpenAPI document generated from the handlers.
pub fn openapi() -> utoipa::openapi::OpenApi {
    api_router().split_for_parts().1
}

/// The whole HTTP application over `state`. Starts the delivery workers (once per
/// integrations runtime) on the current tokio runtime.
pub fn app(state: AppState) -> Router {
    state.start_delivery();
    let (router, openapi) = api_router().split_for_parts();
    let openapi = Arc::new(serde_json::to_value(&openapi).unwrap_or_default());
    router
        .route(
            "/api/v2/openapi.json",
            get(move || async move { Json(openapi.as_ref().clone()) }),
        )
        .merge(sdk::router())
        .merge(routes::integration_oauth::callback_router())
        .merge(routes::signin::router())
        .merge(routes::trust::router())
        .merge(routes::triggers::webhook_router())
        .fallback(|| async {
            ApiError::NotFound("Invalid resource identifier: no such route".into())
        })
        .method_not_allowed_fallback(|| async { ApiError::MethodNotAllowed })
        .with_state(state)
        .layer(DefaultBodyLimit::max(extract::MAX_BODY_BYTES))
        .layer(middleware::from_fn(ratelimit::rate_limit_headers))
        .layer(middleware::from_fn(api_version))
        .layer(
            CorsLayer::new()
                .allow_origin(AllowOrigin::mirror_request())
                .allow_methods(tower_http::cors::Any)
                .allow_headers(tower_http::cors::Any),
        )
}

/// `LD-API-Version`: `beta` or a yyyymmdd version LaunchDarkly has published. Only the
/// current semantics (20240415) are implemented, so any valid value gets them.
async fn api_version(request: Request, next: Next) -> Response {
    if let Some(value) = request.headers().get("LD-API-Version") {
        let text = value.to_str().unwrap_or("");
        let valid =
            text == "beta" || (text.len() == 8 && text.parse::<u32>().is_ok_and(|v| v >= 20160426));
        if !valid {
            return ApiError::invalid(format!(
                "LD-API-Version \"{text}\" is invalid: use beta or a version such as 20240415"
            ))
            .into_response();
        }
    }
    let mut response = next.run(request).await;
    response
        .headers_mut()
        .insert("LD-API-Version", HeaderValue::from_static("20240415"));
    if response.status() == StatusCode::METHOD_NOT_ALLOWED {
        response.headers_mut().remove(axum::http::header::ALLOW);
    }
    response
}

/// Prepares a store for serving: bootstraps the account and builds the state.
pub async fn prepare(
    store: Arc<dyn Store>,
    bootstrap_token: Option<&str>,
) -> ApiResult<(AppState, Bootstrapped)> {
    let boot = bootstrap(store.clone(), bootstrap_token).await?;
    let state = AppState::new(store, boot.account_id.clone());
    Ok((state, boot))
}

/// Serves `app` on `listener` until `shutdown` resolves, then finishes in-flight requests.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    // `into_make_service` hands each connection a cheap clone of the router. Serving the
    // `Router` itself rebuilds its route table (`with_state(())`) for every connection, which
    // cost ~130 KiB per open SDK stream.
    axum::serve(listener, app.into_make_service())
        .with_graceful_shutdown(shutdown)
        .await
}
