//! Agent presence (interface 14, `SET_EXT_PRESENCE_STATE`) and the live queues
//! (interface 40, `QUEUE_INFO`).

use actix_web::HttpResponse;
use actors::extension::SetPresence;
use actors::queue::GetQueue;
use actors::router::{GetExtension, ListQueues};
use entities::extension::Presence;
use entities::repo::extensions;

use super::{code, repo_error, Params};
use crate::AppState;

/// Interface 14: `extnum`, `state` = `online` | `reducing` | `busy` (and `offline`, which
/// the agent pages use to log off), `reason` optional. 200 done, 400 bad state,
/// 404 no such extension. The presence is stored (it survives a restart) and takes
/// effect at once for the queues.
pub async fn set_presence(state: &AppState, params: &Params) -> HttpResponse {
    let (Some(extnum), Some(wanted)) = (params.required("extnum"), params.required("state")) else {
        return code(400);
    };
    let presence = match wanted.trim().to_ascii_lowercase().as_str() {
        "online" | "idle" => Presence::Online,
        "reducing" => Presence::Reducing,
        "busy" => Presence::Busy,
        "offline" => Presence::Offline,
        _ => return code(400),
    };
    let reason = params.optional("reason").unwrap_or_default().to_string();
    let patch = extensions::ExtensionPatch {
        presence: Some(presence),
        presence_reason: Some(reason.clone()),
        ..Default::default()
    };
    if let Err(e) = extensions::patch_by_number(&state.db, extnum, patch).await {
        return repo_error("SET_EXT_PRESENCE_STATE", e);
    }
    if let Some(router) = &state.router {
        if let Ok(Some(ext)) = router.send(GetExtension(extnum.to_string())).await {
            ext.do_send(SetPresence { presence, reason });
        }
    }
    code(200)
}

/// Interface 40: `[{"group","count","queue":[{"caller","viplevel","waitingtime","target"}]}]`
/// for every group with callers waiting; `[]` when nobody waits.
pub async fn queue_info(state: &AppState) -> HttpResponse {
    let mut out = Vec::new();
    if let Some(router) = &state.router {
        let queues = router.send(ListQueues).await.unwrap_or_default();
        for (_, queue) in queues {
            if let Ok(snapshot) = queue.send(GetQueue).await {
                if snapshot.count > 0 {
                    out.push(snapshot);
                }
            }
        }
    }
    HttpResponse::Ok()
        .content_type("application/json;charset=UTF-8")
        .json(out)
}
