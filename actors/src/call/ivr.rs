//! The IVR hand-off: the caller answered and given to an `Ivr` actor (a menu, or the
//! built-in voicemail), and the IVR's transfers onwards.

use actix::prelude::*;

use crate::ivr::TransferTarget;
use crate::ivr_actor::Ivr;
use crate::router::GetIvr;

use super::Call;

/// The voicemail of VOICE_MAIL / ONANSWER_TO_VM rules: a one-node menu.
const VOICEMAIL_MENU: &str = r##"<ivr name="voicemail" start="vm">
  <voicemail id="vm" max="120" terminator="#" next="bye"
             tts="Please leave a message after the tone, then press the hash key."/>
  <hangup id="bye"/>
</ivr>"##;

impl Call {
    /// Answers the caller and runs IVR menu `id` on it.
    pub(super) fn enter_ivr(
        &mut self,
        ctx: &mut Context<Self>,
        id: i32,
        definition: std::sync::Arc<crate::ivr::IvrDefinition>,
    ) {
        if let Some(handle) = self.ring_timer.take() {
            ctx.cancel_future(handle);
        }
        if !self.answered_locally && self.answer_locally(ctx).is_none() {
            return;
        }
        let Some(endpoint) = self.media.as_ref().map(|m| m.a.id()) else {
            return self.refuse(ctx, 503, "Service Unavailable");
        };
        tracing::debug!(call_id = %self.id, ivr = id, "IVR");
        let facts = crate::ivr::IvrFacts {
            caller: self.caller.number().to_string(),
            callee: self.callee.clone(),
            callid: self.id.clone(),
            vars: Default::default(),
        };
        let ivr = Ivr::new(
            definition,
            facts,
            ctx.address().recipient(),
            endpoint,
            self.services.clone(),
        )
        .start();
        self.ivr = Some(ivr);
    }

    /// Runs the IVR menu `id` (the router's copy) on the caller; `missing` when there is
    /// no such menu.
    pub(super) fn enter_ivr_by_id(
        &mut self,
        ctx: &mut Context<Self>,
        id: i32,
        missing: impl FnOnce(&mut Self, &mut Context<Self>) + 'static,
    ) {
        self.services
            .router
            .send(GetIvr(id))
            .into_actor(self)
            .map(move |found, act, ctx| match found {
                Ok(Some(definition)) => act.enter_ivr(ctx, id, definition),
                _ => missing(act, ctx),
            })
            .wait(ctx);
    }

    /// The IVR sent the caller on: a group's queue, an extension, an outside number (a
    /// phone or line rung there gets the ring timeout; a queue keeps its own).
    pub(super) fn ivr_transfer(&mut self, ctx: &mut Context<Self>, target: TransferTarget) {
        self.ivr = None;
        let (TransferTarget::Ext(number)
        | TransferTarget::Group(number)
        | TransferTarget::Number(number)) = target;
        self.route_number_then(ctx, number, true);
    }

    /// Voicemail: the built-in one-node menu records the caller.
    pub(super) fn enter_voicemail(&mut self, ctx: &mut Context<Self>) {
        match crate::ivr::IvrDefinition::parse(VOICEMAIL_MENU) {
            Ok(definition) => self.enter_ivr(ctx, 0, std::sync::Arc::new(definition)),
            Err(e) => {
                tracing::error!("built-in voicemail menu: {e}");
                self.refuse(ctx, 503, "Service Unavailable")
            }
        }
    }
}
