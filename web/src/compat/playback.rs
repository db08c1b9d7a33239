//! Interface 34, `PLAY_CALL_LOG_RECORD`: the switch calls extension `extnum` and plays
//! the recording of call `callid` to it, from `skipseconds` on; called again while it
//! plays, the same call switches to the new recording.
//!
//! Codes (the manual leaves them open, D-35): 200 the call to the extension is placed;
//! 400 a parameter is missing or not a number; 404 no such call log, no recording for it,
//! or no such extension; 503 the switching core is not running.

use std::path::Path;
use std::sync::Arc;

use actix_web::HttpResponse;
use actors::media::playback::Source;
use actors::media::wav::read_wav;
use actors::router::PlayToExtension;
use entities::repo;

use super::{code, Params};
use crate::recordings::confined;
use crate::AppState;

/// The recording as one 8 kHz channel: both parties summed (they rarely talk at once,
/// and averaging would halve each voice).
fn mono_recording(path: &Path) -> Option<Vec<i16>> {
    let bytes = std::fs::read(path).ok()?;
    let wav = read_wav(&path.display().to_string(), &bytes).ok()?;
    if wav.sample_rate != actors::media::frame::SAMPLE_RATE_HZ {
        return actors::media::wav::decode_prompt(&path.display().to_string(), &bytes).ok();
    }
    let channels = usize::from(wav.channels.max(1));
    Some(
        wav.samples
            .chunks_exact(channels)
            .map(|f| f.iter().fold(0i16, |acc, s| acc.saturating_add(*s)))
            .collect(),
    )
}

pub async fn play_call_log_record(state: &AppState, params: &Params) -> HttpResponse {
    let (Some(callid), Some(extnum)) = (params.required("callid"), params.required("extnum"))
    else {
        return code(400);
    };
    let skip = match params.optional("skipseconds").map(str::parse::<u32>) {
        None => 0,
        Some(Ok(s)) => s,
        Some(Err(_)) => return code(400),
    };
    let Some(router) = &state.router else {
        return code(503);
    };
    let row = match repo::calllog::by_callid(&state.db, callid).await {
        Ok(Some(row)) => row,
        Ok(None) => return code(404),
        Err(e) => return super::repo_error("PLAY_CALL_LOG_RECORD", e),
    };
    let Some(file) = state
        .records_dir
        .as_deref()
        .filter(|_| !row.record_voice.is_empty())
        .and_then(|root| confined(root, Path::new(&row.record_voice)))
    else {
        return code(404);
    };
    let samples = match tokio::task::spawn_blocking(move || mono_recording(&file)).await {
        Ok(Some(s)) => s,
        _ => return code(404),
    };
    let from = (skip as usize * actors::media::frame::SAMPLE_RATE_HZ as usize).min(samples.len());
    let source = Source::prompt(Arc::from(&samples[from..]));
    match router
        .send(PlayToExtension {
            extension: extnum.to_string(),
            source,
        })
        .await
    {
        Ok(Ok(_)) => code(200),
        Ok(Err(_)) => code(404),
        Err(_) => code(503),
    }
}
