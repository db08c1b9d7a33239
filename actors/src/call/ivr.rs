//! The IVR hand-off: the caller answered and given to an `Ivr` actor (a menu, or the
//! built-in voicemail), and the IVR's transfers onwards.

use actix::prelude::*;

use crate::ivr::TransferTarget;
use crate::ivr_actor::Ivr;
use crate::router::{Resolve, Route};

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

    /// The IVR sent the caller on: a group's queue, an extension, an outside number.
    pub(super) fn ivr_transfer(&mut self, ctx: &mut Context<Self>, target: TransferTarget) {
        self.ivr = None;
        let number = match &target {
            TransferTarget::Ext(n) | TransferTarget::Group(n) | TransferTarget::Number(n) => {
                n.clone()
            }
        };
        self.services
            .router
            .send(Resolve {
                number,
                from_trunk: false,
                allow_transit: false,
            })
            .into_actor(self)
            .map(|route, act, ctx| match route {
                Ok(route @ Route::Group { .. }) => act.route(ctx, route),
                Ok(route @ (Route::Extension { .. } | Route::Trunk { .. } | Route::Gateway { .. })) => {
                    // Ringing an extension or a line: the caller gets the ring timeout.
                    act.arm_ring_timeout(ctx);
                    act.route(ctx, route)
                }
                _ => {
                    tracing::warn!(call_id = %act.id, "IVR transfer target not reachable: hanging up");
                    act.refuse(ctx, 404, "Not Found")
                }
            })
            .wait(ctx);
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
