//! `Ivr`: one IVR menu running on one call. It owns the sans-IO [`IvrMachine`] and does
//! its I/O: prompts (files, tone files, TTS) played by the media engine into the
//! caller's endpoint, timers, the HTTP query of interface 13, voicemail recordings. The
//! `Call` (which answered the caller and owns the endpoint) feeds it keys, playback ends
//! and the caller's hang-up, and hears back a transfer, a hang-up, and the running
//! call-log record after every step.

use std::path::PathBuf;
use std::sync::Arc;

use actix::prelude::*;

use crate::event_hub::now_ms;
use crate::ivr::{
    HttpReply, IvrCommand, IvrDefinition, IvrEvent, IvrFacts, IvrMachine, IvrRecord, PromptRef,
    TransferTarget,
};
use crate::media::engine::{EndpointId, MediaEvent, Recording};
use crate::media::playback::{Playback, Source, StopOnDtmf};
use crate::media::tone::BEEP;
use crate::media::wav::{load_prompt_shared, WavWriter};
use crate::services::Services;

/// Largest HTTP answer read from an IVR query (interface 13): text to be spoken.
const MAX_HTTP_ANSWER: usize = 64 * 1024;

/// What the IVR tells its call.
#[derive(Message, Debug, Clone)]
#[rtype(result = "()")]
pub enum IvrOutput {
    /// The record so far (`dtmfkey`, `ivrpoint`, times, outcome), after every step.
    Progress(IvrRecord),
    /// Leave the menu for `target`.
    Transfer(TransferTarget),
    /// The menu is over: hang up.
    Hangup,
}

pub struct Ivr {
    machine: IvrMachine,
    call: Recipient<IvrOutput>,
    endpoint: EndpointId,
    services: Services,
    voicemail: Option<(Recording, String)>,
}

impl Ivr {
    pub fn new(
        definition: Arc<IvrDefinition>,
        facts: IvrFacts,
        call: Recipient<IvrOutput>,
        endpoint: EndpointId,
        services: Services,
    ) -> Self {
        Self {
            machine: IvrMachine::new(definition, facts),
            call,
            endpoint,
            services,
            voicemail: None,
        }
    }

    fn feed(&mut self, ctx: &mut Context<Self>, event: IvrEvent) {
        let commands = self.machine.on_event(event, now_ms());
        self.run(ctx, commands);
    }

    fn run(&mut self, ctx: &mut Context<Self>, commands: Vec<IvrCommand>) {
        // The record first: a hang-up or transfer below must find it up to date.
        self.call
            .do_send(IvrOutput::Progress(self.machine.record().clone()));
        for command in commands {
            self.execute(ctx, command);
        }
        if self.machine.is_finished() && self.voicemail.is_none() {
            ctx.stop();
        }
    }

    fn storage(&self) -> PathBuf {
        self.services.settings.storage_dir.clone()
    }

    fn execute(&mut self, ctx: &mut Context<Self>, command: IvrCommand) {
        match command {
            IvrCommand::Play {
                id,
                source,
                barge_in,
            } => self.play(ctx, id, source, barge_in),
            IvrCommand::StopPlayback { .. } => {
                let _ = self.services.media.stop_playback_of(self.endpoint);
            }
            IvrCommand::StartTimer { token, after } => {
                ctx.run_later(after, move |act, ctx| {
                    act.feed(ctx, IvrEvent::TimerFired(token))
                });
            }
            IvrCommand::HttpGet { id, url, timeout } => {
                let http = self.services.http.clone();
                async move { http_get(&http, &url, timeout).await }
                    .into_actor(self)
                    .map(move |result, act, ctx| {
                        act.feed(ctx, IvrEvent::HttpAnswered { id, result })
                    })
                    .spawn(ctx);
            }
            IvrCommand::Transfer(target) => self.call.do_send(IvrOutput::Transfer(target)),
            IvrCommand::RecordVoicemail { max: _ } => self.start_voicemail(ctx),
            IvrCommand::StopVoicemail => {
                // Finishing the file reports `RecordingFinished`, then `VoicemailDone`.
                if let Some((recording, _)) = &self.voicemail {
                    let _ = self.services.media.stop_recording(recording.id());
                }
            }
            IvrCommand::Hangup => self.call.do_send(IvrOutput::Hangup),
            IvrCommand::Warn { node, problem } => {
                tracing::warn!(%node, %problem, "IVR fell back");
            }
        }
    }

    /// Resolves the prompt (file read or TTS off the actor's thread), then plays it; a
    /// prompt that cannot be had is reported to the machine, which goes on without it.
    fn play(&mut self, ctx: &mut Context<Self>, id: u64, prompt: PromptRef, barge_in: bool) {
        let storage = self.storage();
        let tts = self.services.tts.clone();
        async move {
            match prompt {
                PromptRef::Tts(text) => match tts {
                    Some(tts) => tts
                        .speak(&text)
                        .await
                        .map(Source::prompt)
                        .map_err(|e| e.to_string()),
                    None => Ok(Source::tone(&BEEP)),
                },
                other => {
                    let path = storage.join(other.relative_path().unwrap_or_default());
                    tokio::task::spawn_blocking(move || load_prompt_shared(&path))
                        .await
                        .map_err(|e| e.to_string())
                        .and_then(|r| r.map_err(|e| e.to_string()))
                        .map(Source::prompt)
                }
            }
        }
        .into_actor(self)
        .map(move |source, act, ctx| match source {
            Ok(source) => {
                let stop = if barge_in {
                    StopOnDtmf::Any
                } else {
                    StopOnDtmf::Never
                };
                let playback = Playback::new(id, source).with_stop_on_dtmf(stop);
                if let Err(e) = act.services.media.play_to(act.endpoint, playback) {
                    act.feed(
                        ctx,
                        IvrEvent::PlaybackFailed {
                            id,
                            error: e.to_string(),
                        },
                    );
                }
            }
            Err(error) => act.feed(ctx, IvrEvent::PlaybackFailed { id, error }),
        })
        .wait(ctx);
    }

    fn start_voicemail(&mut self, ctx: &mut Context<Self>) {
        let settings = &self.services.settings;
        let day = chrono::Local::now().format("%Y-%m-%d").to_string();
        let dir = settings.records_dir.join("voicemail").join(day);
        let name = self
            .machine
            .lookup("callid")
            .unwrap_or("call")
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || "-_.@".contains(c) {
                    c
                } else {
                    '_'
                }
            })
            .collect::<String>();
        let path = dir.join(format!("{name}.wav"));
        let writer = std::fs::create_dir_all(&dir)
            .map_err(|e| e.to_string())
            .and_then(|()| WavWriter::create_stereo(&path).map_err(|e| e.to_string()));
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        let started = writer.and_then(|w| {
            self.services
                .media
                .record_endpoints(w, Some(self.endpoint), None, tx)
                .map_err(|e| e.to_string())
        });
        match started {
            Ok(recording) => {
                self.voicemail = Some((recording, path.display().to_string()));
                let me = ctx.address();
                tokio::spawn(async move {
                    if let Some(event) = rx.recv().await {
                        me.do_send(IvrMedia(event));
                    }
                });
            }
            Err(e) => {
                tracing::warn!("voicemail not recorded: {e}");
                ctx.run_later(std::time::Duration::ZERO, move |act, ctx| {
                    act.feed(ctx, IvrEvent::VoicemailDone(Err(e)))
                });
            }
        }
    }
}

impl Actor for Ivr {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        let commands = self.machine.start(now_ms());
        self.run(ctx, commands);
    }
}

/// Input from the call: what happened on the caller's side.
#[derive(Message)]
#[rtype(result = "()")]
pub struct IvrInput(pub IvrEvent);

impl Handler<IvrInput> for Ivr {
    type Result = ();
    fn handle(&mut self, msg: IvrInput, ctx: &mut Self::Context) {
        if matches!(msg.0, IvrEvent::CallerHungUp) {
            if let Some((recording, _)) = &self.voicemail {
                let _ = self.services.media.stop_recording(recording.id());
            }
        }
        self.feed(ctx, msg.0);
    }
}

/// The end of the voicemail recording.
#[derive(Message)]
#[rtype(result = "()")]
struct IvrMedia(MediaEvent);

impl Handler<IvrMedia> for Ivr {
    type Result = ();
    fn handle(&mut self, msg: IvrMedia, ctx: &mut Self::Context) {
        if let MediaEvent::RecordingFinished { result, .. } = msg.0 {
            let path = self.voicemail.take().map(|(_, p)| p).unwrap_or_default();
            let done = result.map(|_| path).map_err(|e| e.to_string());
            self.feed(ctx, IvrEvent::VoicemailDone(done));
            if self.machine.is_finished() {
                ctx.stop();
            }
        }
    }
}

/// Interface 13's GET: status, content type and body (bounded), or the transport error.
async fn http_get(
    http: &reqwest::Client,
    url: &str,
    timeout: std::time::Duration,
) -> Result<HttpReply, String> {
    let resp = http
        .get(url)
        .timeout(timeout)
        .send()
        .await
        .map_err(|e| e.without_url().to_string())?;
    let status = resp.status().as_u16();
    let content_type = resp
        .headers()
        .get(reqwest::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let body = resp
        .bytes()
        .await
        .map_err(|e| e.without_url().to_string())?;
    if body.len() > MAX_HTTP_ANSWER {
        return Err(format!("answer of {} bytes is too long", body.len()));
    }
    Ok(HttpReply {
        status,
        content_type,
        body: body.to_vec(),
    })
}
