//! The admin REST API under `/api/v1/`: JSON CRUD for extensions, groups, trunks and access
//! numbers. Validation errors are `400 {"error":"invalid","field":…,"message":…}`, unknown
//! ids `404`, duplicates `409`. Secrets (passwords) are write-only: never returned.

use actix_web::http::StatusCode;
use actix_web::{web, HttpResponse};
use entities::repo;
use sea_orm::DatabaseConnection;
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::{json, Value};

use crate::AppState;

/// Largest accepted JSON body.
const MAX_JSON_BODY: usize = 256 * 1024;

pub fn json_config() -> web::JsonConfig {
    web::JsonConfig::default().limit(MAX_JSON_BODY)
}

pub fn routes(cfg: &mut web::ServiceConfig) {
    resource::<Extensions>(cfg);
    resource::<Groups>(cfg);
    resource::<Trunks>(cfg);
    resource::<AccessNumbers>(cfg);
    resource::<RoutingRules>(cfg);
}

fn resource<R: Resource>(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::resource(format!("/api/v1/{}", R::PATH))
            .route(web::get().to(list::<R>))
            .route(web::post().to(create::<R>)),
    )
    .service(
        web::resource(format!("/api/v1/{}/{{id}}", R::PATH))
            .route(web::get().to(get::<R>))
            .route(web::put().to(update::<R>))
            .route(web::delete().to(delete::<R>)),
    );
}

/// One admin collection backed by a repository module.
pub(crate) trait Resource: 'static {
    /// Path segment under `/api/v1/`.
    const PATH: &'static str;
    type Input: DeserializeOwned;
    type Model: Serialize;
    /// Fields never sent back to clients.
    const SECRET_FIELDS: &'static [&'static str] = &[];

    async fn list(db: &DatabaseConnection) -> Result<Vec<Self::Model>, entities::Error>;
    async fn get(db: &DatabaseConnection, id: i32) -> Result<Option<Self::Model>, entities::Error>;
    async fn create(
        db: &DatabaseConnection,
        input: Self::Input,
    ) -> Result<Self::Model, entities::Error>;
    async fn update(
        db: &DatabaseConnection,
        id: i32,
        input: Self::Input,
    ) -> Result<Self::Model, entities::Error>;
    async fn delete(db: &DatabaseConnection, id: i32) -> Result<(), entities::Error>;
}

macro_rules! repo_resource {
    ($name:ident, $path:literal, $module:ident, $input:ty, $model:ty, [$($secret:literal),*]) => {
        pub(crate) struct $name;
        impl Resource for $name {
            const PATH: &'static str = $path;
            type Input = $input;
            type Model = $model;
            const SECRET_FIELDS: &'static [&'static str] = &[$($secret),*];
            async fn list(db: &DatabaseConnection) -> Result<Vec<Self::Model>, entities::Error> {
                repo::$module::list(db).await
            }
            async fn get(db: &DatabaseConnection, id: i32) -> Result<Option<Self::Model>, entities::Error> {
                repo::$module::get(db, id).await
            }
            async fn create(db: &DatabaseConnection, input: Self::Input) -> Result<Self::Model, entities::Error> {
                repo::$module::create(db, input).await
            }
            async fn update(db: &DatabaseConnection, id: i32, input: Self::Input) -> Result<Self::Model, entities::Error> {
                repo::$module::update(db, id, input).await
            }
            async fn delete(db: &DatabaseConnection, id: i32) -> Result<(), entities::Error> {
                repo::$module::delete(db, id).await
            }
        }
    };
}

repo_resource!(
    Extensions,
    "extensions",
    extensions,
    entities::provision::ExtensionInput,
    entities::extension::Model,
    ["password"]
);
repo_resource!(
    Groups,
    "groups",
    groups,
    entities::provision::GroupInput,
    entities::call_group::Model,
    []
);
repo_resource!(
    Trunks,
    "trunks",
    trunks,
    entities::provision::TrunkInput,
    entities::trunk::Model,
    ["password"]
);
repo_resource!(
    AccessNumbers,
    "access_numbers",
    access_numbers,
    entities::provision::AccessNumberInput,
    entities::access_number::Model,
    []
);
repo_resource!(
    RoutingRules,
    "routing_rules",
    routing_rules,
    entities::repo::routing_rules::RoutingRuleInput,
    entities::routing_rule::Model,
    []
);

fn present<R: Resource>(model: &R::Model) -> Value {
    let mut value = serde_json::to_value(model).unwrap_or(Value::Null);
    if let Value::Object(map) = &mut value {
        for field in R::SECRET_FIELDS {
            if let Some(secret) = map.remove(*field) {
                map.insert(
                    format!("has_{field}"),
                    Value::Bool(
                        !matches!(&secret, Value::Null) && secret != Value::String(String::new()),
                    ),
                );
            }
        }
    }
    value
}

fn error_response(e: entities::Error) -> HttpResponse {
    match e {
        entities::Error::Invalid { field, message } => HttpResponse::BadRequest()
            .json(json!({"error": "invalid", "field": field, "message": message})),
        entities::Error::Conflict { field, message } => HttpResponse::Conflict()
            .json(json!({"error": "conflict", "field": field, "message": message})),
        entities::Error::NotFound => not_found(),
        other => {
            tracing::error!("admin API database error: {other}");
            HttpResponse::InternalServerError().json(json!({"error": "internal error"}))
        }
    }
}

fn not_found() -> HttpResponse {
    HttpResponse::NotFound().json(json!({"error": "not found"}))
}

/// A rejected request before it reaches the repository: status and JSON body.
struct Rejection(StatusCode, Value);

impl From<Rejection> for HttpResponse {
    fn from(Rejection(status, body): Rejection) -> Self {
        HttpResponse::build(status).json(body)
    }
}

/// Parses a JSON body, naming the offending field in the 400 on failure.
fn parse_input<T: DeserializeOwned>(body: &[u8]) -> Result<T, Rejection> {
    let mut de = serde_json::Deserializer::from_slice(body);
    serde_path_to_error::deserialize(&mut de).map_err(|e| {
        let field = e.path().to_string();
        let inner = e.into_inner();
        // serde names a missing field in its message, not in the path.
        let field = if field == "." {
            missing_field(&inner.to_string()).unwrap_or_default()
        } else {
            field
        };
        Rejection(
            StatusCode::BAD_REQUEST,
            json!({"error": "invalid", "field": field, "message": inner.to_string()}),
        )
    })
}

fn missing_field(message: &str) -> Option<String> {
    let rest = message.split_once("missing field `")?.1;
    Some(rest.split_once('`')?.0.to_string())
}

fn parse_id(raw: &str) -> Result<i32, Rejection> {
    raw.parse().map_err(|_| {
        Rejection(
            StatusCode::BAD_REQUEST,
            json!({"error": "invalid", "field": "id", "message": format!("`{raw}` is not an integer id")}),
        )
    })
}

async fn list<R: Resource>(state: web::Data<AppState>) -> HttpResponse {
    match R::list(&state.db).await {
        Ok(models) => HttpResponse::Ok().json(models.iter().map(present::<R>).collect::<Vec<_>>()),
        Err(e) => error_response(e),
    }
}

async fn get<R: Resource>(state: web::Data<AppState>, id: web::Path<String>) -> HttpResponse {
    let id = match parse_id(&id) {
        Ok(id) => id,
        Err(r) => return r.into(),
    };
    match R::get(&state.db, id).await {
        Ok(Some(model)) => HttpResponse::Ok().json(present::<R>(&model)),
        Ok(None) => not_found(),
        Err(e) => error_response(e),
    }
}

async fn create<R: Resource>(state: web::Data<AppState>, body: web::Bytes) -> HttpResponse {
    let input = match parse_input::<R::Input>(&body) {
        Ok(input) => input,
        Err(r) => return r.into(),
    };
    match R::create(&state.db, input).await {
        Ok(model) => {
            state.configuration_changed().await;
            HttpResponse::Created().json(present::<R>(&model))
        }
        Err(e) => error_response(e),
    }
}

async fn update<R: Resource>(
    state: web::Data<AppState>,
    id: web::Path<String>,
    body: web::Bytes,
) -> HttpResponse {
    let id = match parse_id(&id) {
        Ok(id) => id,
        Err(r) => return r.into(),
    };
    let input = match parse_input::<R::Input>(&body) {
        Ok(input) => input,
        Err(r) => return r.into(),
    };
    match R::update(&state.db, id, input).await {
        Ok(model) => {
            state.configuration_changed().await;
            HttpResponse::Ok().json(present::<R>(&model))
        }
        Err(e) => error_response(e),
    }
}

async fn delete<R: Resource>(state: web::Data<AppState>, id: web::Path<String>) -> HttpResponse {
    let id = match parse_id(&id) {
        Ok(id) => id,
        Err(r) => return r.into(),
    };
    match R::delete(&state.db, id).await {
        Ok(()) => {
            state.configuration_changed().await;
            HttpResponse::NoContent().finish()
        }
        Err(e) => error_response(e),
    }
}
