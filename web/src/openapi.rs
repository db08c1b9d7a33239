//! The OpenAPI 3.0 document of the admin REST API, served at `/api/v1/openapi.json`.
//! Written by hand next to `admin.rs`; the admin tests check it lists every collection.

use actix_web::{web, HttpResponse};
use serde_json::{json, Map, Value};

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/api/v1/openapi.json", web::get().to(openapi));
}

async fn openapi() -> HttpResponse {
    HttpResponse::Ok().json(document())
}

fn string() -> Value {
    json!({"type": "string"})
}
fn integer() -> Value {
    json!({"type": "integer"})
}
fn boolean() -> Value {
    json!({"type": "boolean"})
}
fn nullable(mut v: Value) -> Value {
    v["nullable"] = Value::Bool(true);
    v
}

/// A nullable boolean recording override (the input also accepts it as `record`).
fn recording(what: &str) -> Value {
    nullable(json!({
        "type": "boolean",
        "description": format!("Record {what}. Also accepted as `record` in requests."),
    }))
}

/// (collection path, schema name, input properties, required input fields)
fn collections() -> Vec<(&'static str, &'static str, Value, Vec<&'static str>)> {
    vec![
        (
            "extensions",
            "Extension",
            json!({
                "number": {"type": "string", "pattern": "^[0-9]{1,32}$"},
                "password": {"type": "string", "writeOnly": true},
                "name": string(),
                "groups": {"type": "array", "items": string()},
                "supervisor": boolean(),
                "worker_id": nullable(string()),
                "department": nullable(string()),
                "uname": nullable(string()),
                "office_hours": nullable(string()),
                "screen_pop_url": nullable(string()),
                "out_channel": nullable(string()),
                "out_display_number": nullable(string()),
                "direct_callback": boolean(),
                "recording": recording("this extension's answered calls; null follows its group's override, then `[recording] enabled`"),
            }),
            vec!["number"],
        ),
        (
            "groups",
            "Group",
            json!({
                "number": {"type": "string", "pattern": "^[0-9]{1,32}$"},
                "name": string(),
                "strategy": {"type": "string", "enum": ["ring-all", "round-robin", "longest-idle", "fewest-calls", "random"]},
                "ring_timeout": {"type": "integer", "minimum": 1, "maximum": 600},
                "max_wait": integer(),
                "wrap_up": integer(),
                "overflow": nullable(string()),
                "recording": recording("this group's answered calls; null follows `[recording] enabled` (an extension's own override wins)"),
                "screen_pop_url": nullable(string()),
                "members": {"type": "array", "items": {"type": "object", "properties": {"extension": string(), "priority": integer()}}},
            }),
            vec!["number"],
        ),
        (
            "trunks",
            "Trunk",
            json!({
                "name": string(),
                "host": nullable(json!({"type": "string", "description": "ip:port or host:port calls go to; calls from it are trunk calls"})),
                "password": nullable(json!({"type": "string", "writeOnly": true, "description": "set when the gateway registers to the switch as account `name`"})),
                "default": boolean(),
                "allow_transit": boolean(),
            }),
            vec!["name"],
        ),
        (
            "access_numbers",
            "AccessNumber",
            json!({
                "number": {"type": "string", "pattern": "^[0-9]{1,32}$"},
                "target": {"type": "string", "pattern": "^(ivr|group|ext|conference):[0-9]+$"},
            }),
            vec!["number", "target"],
        ),
        routing_rules(),
    ]
}

/// Interface 61's intelligent routing rules (formats in `entities::routing_rule`).
fn routing_rules() -> (&'static str, &'static str, Value, Vec<&'static str>) {
    use entities::routing_rule::{DateType, OperationType};
    let operations: Vec<_> = OperationType::ALL.iter().map(|o| o.as_str()).collect();
    let date_types: Vec<_> = DateType::ALL.iter().map(|d| d.as_str()).collect();
    (
        "routing_rules",
        "RoutingRule",
        json!({
            "telnum": {"type": "string", "pattern": "^[0-9]{1,32}$", "description": "called number or access number the rule applies to"},
            "offon": {"type": "boolean", "default": true, "description": "enabled"},
            "operationtype": {"type": "string", "enum": operations},
            "parameters": {"type": "string", "description": "per operationtype: IVR_SELECT `3`|`ivr:3`; PLAY_AND_HANGUP `tone:19`|`19`|`file:prompts/x.wav`|`tts:text`; TRANSFER_CALL a number; ONANSWER_TO_VM seconds (default 20); ONANSWER_TRANSFER `number[,seconds]`; DIAL_HTTP_DOCKING a URL; CALLER_AREA_TRANSFER `prefix:number,…,*:number`; INCOMING_CALL_DELAY seconds; otherwise empty"},
            "datetype": {"type": "string", "enum": date_types},
            "begintime": {"type": "string", "description": "DAY_TYPE HH:mm:ss; WEEK_TYPE weekday 0 (Sunday)-6; MONTH_TYPE day 1-31; SPECIFIED_DAY yyyy-MM-dd HH:mm:ss (inclusive)"},
            "endtime": {"type": "string", "description": "as begintime; times exclusive, days inclusive; DAY_TYPE/WEEK_TYPE/MONTH_TYPE wrap when earlier than begintime"},
            "subbegintime": {"type": "string", "description": "WEEK_TYPE only: daily window start HH:mm:ss; empty = whole day"},
            "subendtime": {"type": "string", "description": "WEEK_TYPE only: daily window end HH:mm:ss (exclusive; wraps past midnight)"},
        }),
        vec![
            "telnum",
            "operationtype",
            "datetype",
            "begintime",
            "endtime",
        ],
    )
}

pub fn document() -> Value {
    let mut paths = Map::new();
    let mut schemas = Map::new();
    schemas.insert(
        "Error".into(),
        json!({"type": "object", "properties": {"error": string(), "field": string(), "message": string()}}),
    );
    for (path, schema, properties, required) in collections() {
        let input = format!("{schema}Input");
        schemas.insert(
            input.clone(),
            json!({"type": "object", "properties": properties, "required": required, "additionalProperties": false}),
        );
        let mut output = properties.clone();
        if let Value::Object(map) = &mut output {
            map.insert("id".into(), integer());
            if map.remove("password").is_some() {
                map.insert("has_password".into(), boolean());
            }
        }
        schemas.insert(
            schema.into(),
            json!({"type": "object", "properties": output}),
        );
        let model_ref = json!({"$ref": format!("#/components/schemas/{schema}")});
        let input_ref = json!({"$ref": format!("#/components/schemas/{input}")});
        let error = |description: &str| json!({"description": description, "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}});
        let ok = |description: &str, schema: Value| json!({"description": description, "content": {"application/json": {"schema": schema}}});
        let body =
            json!({"required": true, "content": {"application/json": {"schema": input_ref}}});
        let id_param = json!([{"name": "id", "in": "path", "required": true, "schema": integer()}]);
        paths.insert(
            format!("/api/v1/{path}"),
            json!({
                "get": {"summary": format!("List {path}"), "responses": {"200": ok("all", json!({"type": "array", "items": model_ref}))}},
                "post": {"summary": format!("Create one of {path}"), "requestBody": body, "responses": {
                    "201": ok("created", model_ref.clone()), "400": error("validation error naming the field"), "409": error("duplicate")}},
            }),
        );
        paths.insert(
            format!("/api/v1/{path}/{{id}}"),
            json!({
                "parameters": id_param,
                "get": {"summary": "Get one", "responses": {"200": ok("found", model_ref.clone()), "404": error("unknown id")}},
                "put": {"summary": "Replace one", "requestBody": body, "responses": {
                    "200": ok("updated", model_ref.clone()), "400": error("validation error naming the field"), "404": error("unknown id"), "409": error("duplicate")}},
                "delete": {"summary": "Delete one", "responses": {"204": {"description": "deleted"}, "404": error("unknown id")}},
            }),
        );
    }
    json!({
        "openapi": "3.0.3",
        "info": {"title": "ctiswitch admin API", "version": env!("CARGO_PKG_VERSION")},
        "paths": paths,
        "components": {"schemas": schemas},
    })
}
