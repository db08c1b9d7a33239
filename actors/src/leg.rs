//! `Leg`: one side of a call — one SIP dialog, as UAS (the caller's INVITE we received) or
//! UAC (an INVITE we sent). It owns the dialog state machine and speaks SIP through the
//! endpoint; its `Call` commands it (`Ring`, `Answer`, `Reject`, `Hangup`, `Reoffer`) and
//! hears of what happens (`LegEvent`). Media is not here: the call's relay carries it.

use std::net::SocketAddr;
use std::time::Duration;

use actix::prelude::*;
use bytes::Bytes;

use crate::media::dtmf::{parse_sip_info, DtmfReceived};
use crate::router::{TrackDialog, TrackTransaction, UntrackDialog};
use crate::services::Services;
use crate::sip::dialog::Dialog;
use crate::sip::endpoint::Inbound;
use crate::sip::message::{
    new_call_id, new_tag, Method, NameAddr, Request, Response, SipUri, Transport,
};
use crate::sip::transaction::TransactionKey;

/// Methods the switch accepts inside a dialog (the `Allow` header).
pub const ALLOW: &str = "INVITE, ACK, CANCEL, BYE, OPTIONS, INFO";
/// A leg that has sent BYE waits at most this long for the answer before it ends anyway.
pub const BYE_GUARD: Duration = Duration::from_secs(33);
pub const SDP: &str = "application/sdp";

/// Which call leg this is, as numbered by its call (the caller's is 0).
pub type LegId = u32;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// We received the INVITE.
    Uas,
    /// We sent the INVITE.
    Uac,
}

/// The dialog's life (RFC 3261 §12/§13), one state machine for both roles.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LegState {
    /// INVITE sent or received; nothing but 100 yet.
    Proceeding,
    /// A provisional response with a tag (early dialog).
    Early,
    /// Answered (2xx).
    Confirmed,
    /// We sent BYE and wait for its answer.
    Terminating,
    Terminated,
}

/// What moves a leg between states.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LegInput {
    Provisional,
    Answered,
    /// A final non-2xx answer (sent or received), or a CANCEL.
    Failed,
    ByeSent,
    /// BYE received, BYE answered, or the dialog timed out.
    Ended,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("leg cannot go from {from:?} on {input:?}")]
pub struct InvalidTransition {
    pub from: LegState,
    pub input: LegInput,
}

/// The one place leg states change.
pub fn transition(from: LegState, input: LegInput) -> Result<LegState, InvalidTransition> {
    use LegInput as I;
    use LegState as S;
    let to = match (from, input) {
        (S::Proceeding | S::Early, I::Provisional) => S::Early,
        (S::Proceeding | S::Early | S::Confirmed, I::Answered) => S::Confirmed,
        (S::Proceeding | S::Early, I::Failed) => S::Terminated,
        (S::Confirmed, I::ByeSent) => S::Terminating,
        (S::Confirmed | S::Terminating, I::Ended) => S::Terminated,
        (S::Proceeding | S::Early, I::Ended) => S::Terminated,
        (S::Terminated, _) => return Err(InvalidTransition { from, input }),
        _ => return Err(InvalidTransition { from, input }),
    };
    Ok(to)
}

/// Why a leg ended, for the call log's `hungupside` and cause.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EndCause {
    /// The peer sent BYE.
    Bye,
    /// No ACK for our 2xx, or no answer to a request.
    Timeout,
}

/// What a leg tells its call.
#[derive(Debug, Clone)]
pub enum LegEventKind {
    /// 180/183 (with the peer's SDP for early media).
    Ringing {
        status: u16,
        sdp: Option<Bytes>,
    },
    Answered {
        sdp: Option<Bytes>,
    },
    /// A final failure of our INVITE.
    Failed {
        status: u16,
        reason: String,
    },
    /// The caller cancelled (UAS).
    Canceled,
    /// The dialog ended after being confirmed.
    HungUp {
        cause: EndCause,
    },
    /// The peer sent a re-INVITE with this offer; answer with `AnswerReoffer`.
    Reoffer {
        sdp: Bytes,
    },
    /// The answer to our re-INVITE.
    ReofferAnswered {
        result: Result<Bytes, u16>,
    },
    /// The peer sent a re-INVITE without SDP: make it an offer (`last`: our last SDP to
    /// it) and answer with `AnswerReoffer`.
    OfferWanted {
        last: Option<Bytes>,
    },
    /// The ACK of an INVITE that had no offer brought the answer to the offer our 2xx
    /// carried (RFC 3261 §13.2.1; `None`: the ACK had no body). For the caller's offer-less
    /// INVITE and for offer-less re-INVITEs alike.
    OfferAnswered {
        sdp: Option<Bytes>,
    },
    /// A key pressed, sent as SIP INFO (keys in RTP are the media engine's to report).
    Dtmf {
        dtmf: DtmfReceived,
    },
    /// The leg actor stopped; the call may forget it.
    Gone,
}

/// Whether an INFO carries a key press (RFC 2976 usage by phones and gateways).
fn is_dtmf_info(content_type: Option<&str>) -> bool {
    let Some(ct) = content_type else {
        return false;
    };
    let mime = ct.split(';').next().unwrap_or_default().trim();
    mime.eq_ignore_ascii_case("application/dtmf-relay")
        || mime.eq_ignore_ascii_case("application/dtmf")
}

#[derive(Message, Debug, Clone)]
#[rtype(result = "()")]
pub struct LegEvent {
    pub leg: LegId,
    pub kind: LegEventKind,
}

/// What a UAC leg is asked to call.
#[derive(Debug, Clone)]
pub struct Outgoing {
    pub request_uri: SipUri,
    pub dest: SocketAddr,
    pub transport: Transport,
    pub from: NameAddr,
    pub to: NameAddr,
    pub max_forwards: u8,
    pub sdp: Bytes,
}

pub struct Leg {
    id: LegId,
    role: Role,
    call: Recipient<LegEvent>,
    services: Services,
    state: LegState,
    dialog: Dialog,
    /// The initial INVITE (received for UAS, sent for UAC) and its transaction.
    invite: Request,
    invite_key: TransactionKey,
    /// UAC: hang up as soon as a provisional response allows a CANCEL (RFC 3261 §9.1).
    cancel_wanted: bool,
    /// UAS of a re-INVITE waiting for the call's answer.
    pending_reoffer: Option<(TransactionKey, Request)>,
    /// Our own re-INVITE in flight (its key and CSeq).
    our_reinvite: Option<(TransactionKey, u32)>,
    /// Our last SDP, re-sent on an offer-less re-INVITE.
    local_sdp: Option<Bytes>,
    /// CSeq of an offer-less INVITE (initial or re-INVITE) whose 2xx carries our offer:
    /// its ACK brings the answer.
    answer_in_ack: Option<u32>,
}

impl Leg {
    /// The caller's side, from the INVITE received on server transaction `key`.
    pub fn uas(
        id: LegId,
        call: Recipient<LegEvent>,
        services: Services,
        invite: Request,
        key: TransactionKey,
        src: SocketAddr,
        transport: Transport,
    ) -> Result<Leg, Box<(crate::Error, Request)>> {
        // The INVITE is handed back on failure: the caller still has to answer it.
        let dialog = match Dialog::uas(&invite, &new_tag(), src, transport) {
            Ok(dialog) => dialog,
            Err(e) => return Err(Box::new((crate::Error::Sip(e.to_string()), invite))),
        };
        Ok(Leg {
            id,
            role: Role::Uas,
            call,
            services,
            state: LegState::Proceeding,
            dialog,
            answer_in_ack: invite
                .body
                .is_empty()
                .then(|| invite.cseq().map(|(seq, _)| seq))
                .flatten(),
            invite,
            invite_key: key,
            cancel_wanted: false,
            pending_reoffer: None,
            our_reinvite: None,
            local_sdp: None,
        })
    }

    /// A side we call: builds our INVITE; it is sent when the actor starts.
    pub fn uac(
        id: LegId,
        call: Recipient<LegEvent>,
        services: Services,
        outgoing: Outgoing,
    ) -> Result<Leg, crate::Error> {
        let endpoint = &services.endpoint;
        let mut from = outgoing.from.clone();
        from.set_tag(&new_tag());
        let via = endpoint.via(&outgoing.transport);
        let branch = via.branch.clone().unwrap_or_default();
        let mut invite = Request::new(Method::Invite, outgoing.request_uri.clone());
        invite.push_via(&via);
        invite.set_max_forwards(outgoing.max_forwards);
        invite.set_from(&from);
        invite.set_to(&outgoing.to);
        invite.set_call_id(&new_call_id(endpoint.advertise()));
        invite.set_cseq(1, &Method::Invite);
        invite.add_header(
            "Contact",
            format!("<{}>", endpoint.contact_uri("", &outgoing.transport)),
        );
        invite.add_header("Allow", ALLOW);
        invite.add_header("User-Agent", services.settings.user_agent.clone());
        invite.set_body(SDP, outgoing.sdp.clone());
        let dialog = Dialog::uac(&invite, outgoing.dest, outgoing.transport.clone())
            .map_err(|e| crate::Error::Sip(e.to_string()))?;
        Ok(Leg {
            id,
            role: Role::Uac,
            call,
            services,
            state: LegState::Proceeding,
            dialog,
            invite,
            invite_key: TransactionKey::Client {
                branch,
                method: Method::Invite,
            },
            cancel_wanted: false,
            pending_reoffer: None,
            our_reinvite: None,
            local_sdp: Some(outgoing.sdp),
            answer_in_ack: None,
        })
    }

    /// The SIP Call-ID of this leg's dialog.
    pub fn call_id(&self) -> &str {
        &self.dialog.call_id
    }

    fn emit(&self, kind: LegEventKind) {
        self.call.do_send(LegEvent { leg: self.id, kind });
    }

    fn step(&mut self, input: LegInput) -> bool {
        match transition(self.state, input) {
            Ok(next) => {
                self.state = next;
                true
            }
            Err(e) => {
                tracing::debug!(call_id = %self.dialog.call_id, "{e}");
                false
            }
        }
    }

    fn track(&self, ctx: &mut Context<Self>, key: TransactionKey) {
        self.services.router.do_send(TrackTransaction {
            key,
            leg: ctx.address().recipient(),
        });
    }

    /// A response to the INVITE we received, with our tag, Contact and `body`.
    fn invite_response(&self, status: u16, reason: &str, body: Option<Bytes>) -> Response {
        let mut resp = Response::for_request(&self.invite, status, reason);
        resp.set_to_tag(&self.dialog.local_tag);
        if (101..300).contains(&status) {
            resp.add_header(
                "Contact",
                format!(
                    "<{}>",
                    self.services
                        .endpoint
                        .contact_uri("", &self.dialog.transport)
                ),
            );
            resp.add_header("Allow", ALLOW);
        }
        resp.set_header("Server", self.services.settings.user_agent.clone());
        if let Some(body) = body {
            resp.set_body(SDP, body);
        }
        resp
    }

    fn send_in_dialog(
        &mut self,
        ctx: &mut Context<Self>,
        method: Method,
        body: Option<Bytes>,
    ) -> (TransactionKey, u32) {
        let endpoint = &self.services.endpoint;
        let via = endpoint.via(&self.dialog.transport);
        let branch = via.branch.clone().unwrap_or_default();
        let contact = endpoint.contact_uri("", &self.dialog.transport);
        let mut req = self.dialog.request(method.clone(), via, &contact);
        if let Some(body) = body {
            req.set_body(SDP, body);
        }
        let key = TransactionKey::Client {
            branch,
            method: method.clone(),
        };
        self.track(ctx, key.clone());
        self.services
            .endpoint
            .send_request(req, self.dialog.dest, self.dialog.transport.clone());
        (key, self.dialog.local_cseq)
    }

    fn send_bye(&mut self, ctx: &mut Context<Self>) {
        if self.step(LegInput::ByeSent) {
            self.send_in_dialog(ctx, Method::Bye, None);
            ctx.run_later(BYE_GUARD, |act, ctx| {
                if act.state == LegState::Terminating {
                    act.state = LegState::Terminated;
                    ctx.stop();
                }
            });
        }
    }

    fn send_cancel(&mut self) {
        let cancel = crate::sip::transaction::make_cancel(&self.invite);
        self.services.endpoint.send_request(
            cancel,
            self.dialog.dest,
            self.dialog.transport.clone(),
        );
    }

    fn ack_2xx(&self, cseq: u32) {
        let via = self.services.endpoint.via(&self.dialog.transport);
        let ack = self.dialog.ack(cseq, via);
        let key = match &self.our_reinvite {
            Some((key, seq)) if *seq == cseq => key.clone(),
            _ => self.invite_key.clone(),
        };
        self.services.endpoint.ack_2xx(&key, ack, self.dialog.dest);
    }

    fn on_request(&mut self, ctx: &mut Context<Self>, key: TransactionKey, req: Request) {
        let local_tag = self.dialog.local_tag.clone();
        let reply = |status: u16, reason: &str| {
            let mut resp = Response::for_request(&req, status, reason);
            resp.set_to_tag(&local_tag);
            resp
        };
        if req.method != Method::Ack {
            if let Err(e) = self.dialog.accept_remote_cseq(&req) {
                tracing::debug!("{e}");
                self.services
                    .endpoint
                    .respond(&key, reply(500, "Server Internal Error"));
                return;
            }
        }
        match req.method {
            Method::Bye => {
                self.services.endpoint.respond(&key, reply(200, "OK"));
                if self.step(LegInput::Ended) {
                    self.emit(LegEventKind::HungUp {
                        cause: EndCause::Bye,
                    });
                }
                ctx.stop();
            }
            Method::Invite if self.state == LegState::Confirmed => {
                if self.pending_reoffer.is_some()
                    || self.our_reinvite.is_some()
                    || self.answer_in_ack.is_some()
                {
                    // Glare (RFC 3261 §14.2), or our offer in a 2xx still unanswered.
                    let mut resp = reply(491, "Request Pending");
                    resp.set_header("Retry-After", "1");
                    self.services.endpoint.respond(&key, resp);
                    return;
                }
                if req.body.is_empty() {
                    // No offer (a session refresh): the call makes one, answered with
                    // `AnswerReoffer`; the ACK brings the peer's answer.
                    let last = self.local_sdp.clone();
                    self.pending_reoffer = Some((key, req));
                    self.emit(LegEventKind::OfferWanted { last });
                    return;
                }
                let sdp = req.body.clone();
                self.pending_reoffer = Some((key, req));
                self.emit(LegEventKind::Reoffer { sdp });
            }
            Method::Info if is_dtmf_info(req.content_type()) => {
                // RFC 2976 INFO with a key press (application/dtmf-relay or /dtmf).
                match parse_sip_info(req.content_type().unwrap_or_default(), &req.body) {
                    Ok(dtmf) => {
                        self.services.endpoint.respond(&key, reply(200, "OK"));
                        self.emit(LegEventKind::Dtmf { dtmf });
                    }
                    Err(e) => {
                        tracing::debug!("bad DTMF INFO: {e}");
                        self.services
                            .endpoint
                            .respond(&key, reply(400, "Bad DTMF Body"));
                    }
                }
            }
            Method::Options | Method::Info => {
                let mut resp = reply(200, "OK");
                resp.add_header("Allow", ALLOW);
                self.services.endpoint.respond(&key, resp);
            }
            Method::Unknown(_) => {
                let mut resp = reply(501, "Not Implemented");
                resp.add_header("Allow", ALLOW);
                self.services.endpoint.respond(&key, resp);
            }
            _ => {
                let mut resp = reply(405, "Method Not Allowed");
                resp.add_header("Allow", ALLOW);
                self.services.endpoint.respond(&key, resp);
            }
        }
    }

    fn on_response(&mut self, ctx: &mut Context<Self>, key: TransactionKey, resp: Response) {
        let Some((cseq, method)) = resp.cseq() else {
            return;
        };
        match method {
            Method::Invite if key == self.invite_key => self.on_invite_response(ctx, resp),
            Method::Invite => {
                if let Some((_, seq)) = &self.our_reinvite {
                    if *seq != cseq || resp.is_provisional() {
                        return;
                    }
                    if resp.is_success() {
                        self.ack_2xx(cseq);
                        self.our_reinvite = None;
                        self.emit(LegEventKind::ReofferAnswered {
                            result: Ok(resp.body.clone()),
                        });
                    } else {
                        self.our_reinvite = None;
                        self.emit(LegEventKind::ReofferAnswered {
                            result: Err(resp.status),
                        });
                    }
                }
            }
            Method::Bye if resp.is_final() => {
                self.step(LegInput::Ended);
                ctx.stop();
            }
            _ => {}
        }
    }

    fn on_invite_response(&mut self, ctx: &mut Context<Self>, resp: Response) {
        // Responses carry no source here; the dialog keeps the flow it already uses.
        let dest = self.dialog.dest;
        if resp.status == 100 {
            return;
        }
        if resp.is_provisional() {
            if resp.to_tag().is_some() {
                self.dialog.on_response(&resp, dest);
            }
            if self.step(LegInput::Provisional) {
                if self.cancel_wanted {
                    self.send_cancel();
                    return;
                }
                let sdp = (!resp.body.is_empty()).then(|| resp.body.clone());
                self.emit(LegEventKind::Ringing {
                    status: resp.status,
                    sdp,
                });
            } else if self.cancel_wanted {
                self.send_cancel();
            }
            return;
        }
        if resp.is_success() {
            let first = self.state != LegState::Confirmed;
            if first {
                self.dialog.on_response(&resp, dest);
            }
            self.ack_2xx(1);
            if !first {
                return; // a retransmission: the ACK was re-sent
            }
            self.step(LegInput::Answered);
            if self.cancel_wanted {
                // Answered while we were cancelling: take it and hang up.
                self.send_bye(ctx);
                self.emit(LegEventKind::Failed {
                    status: 487,
                    reason: "Request Terminated".into(),
                });
                return;
            }
            let sdp = (!resp.body.is_empty()).then(|| resp.body.clone());
            self.emit(LegEventKind::Answered { sdp });
            return;
        }
        if self.step(LegInput::Failed) {
            self.emit(LegEventKind::Failed {
                status: resp.status,
                reason: resp.reason.clone(),
            });
        }
        ctx.stop();
    }
}

impl Actor for Leg {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        ctx.set_mailbox_capacity(64);
        let me = ctx.address().recipient();
        self.services.router.do_send(TrackDialog {
            key: self.dialog.key(),
            leg: me,
        });
        self.track(ctx, self.invite_key.clone());
        if self.role == Role::Uac {
            self.services.endpoint.send_request(
                self.invite.clone(),
                self.dialog.dest,
                self.dialog.transport.clone(),
            );
        }
    }

    fn stopped(&mut self, _: &mut Self::Context) {
        self.services.router.do_send(UntrackDialog {
            key: self.dialog.key(),
        });
        self.emit(LegEventKind::Gone);
    }
}

/// Delivery of a SIP event that concerns this leg (routed by dialog or transaction).
#[derive(Message, Debug, Clone)]
#[rtype(result = "()")]
pub struct SipEvent(pub Inbound);

impl Handler<SipEvent> for Leg {
    type Result = ();
    fn handle(&mut self, msg: SipEvent, ctx: &mut Self::Context) {
        match msg.0 {
            Inbound::Request { key, request, .. } => self.on_request(ctx, key, request),
            Inbound::Ack { request, .. } => {
                // Only the first ACK of that INVITE: later ones are retransmissions.
                let seq = request.cseq().map(|(seq, _)| seq);
                if self.answer_in_ack.is_some() && self.answer_in_ack == seq {
                    self.answer_in_ack = None;
                    let sdp = (!request.body.is_empty()).then(|| request.body.clone());
                    self.emit(LegEventKind::OfferAnswered { sdp });
                }
            }
            Inbound::Cancel { .. } => {
                // The layer already answered the CANCEL; end the INVITE with 487.
                if self.role == Role::Uas && self.step(LegInput::Failed) {
                    let resp = self.invite_response(487, "Request Terminated", None);
                    self.services.endpoint.respond(&self.invite_key, resp);
                    self.emit(LegEventKind::Canceled);
                    ctx.stop();
                }
            }
            Inbound::Response { key, response } => self.on_response(ctx, key, response),
            Inbound::StrayResponse { response, .. } => {
                // A 2xx retransmitted after our INVITE transaction ended: ACK it again.
                if response.is_success() {
                    if let Some((cseq, Method::Invite)) = response.cseq() {
                        self.ack_2xx(cseq);
                    }
                }
            }
            Inbound::Timeout { key } | Inbound::TransportError { key } => {
                if key == self.invite_key {
                    match (self.role, self.state) {
                        (Role::Uac, LegState::Proceeding | LegState::Early) => {
                            self.step(LegInput::Failed);
                            self.emit(LegEventKind::Failed {
                                status: 408,
                                reason: "Request Timeout".into(),
                            });
                            ctx.stop();
                        }
                        (Role::Uas, LegState::Confirmed) => {
                            // No ACK for our 2xx (Timer L): the dialog is dead.
                            self.emit(LegEventKind::HungUp {
                                cause: EndCause::Timeout,
                            });
                            self.send_bye(ctx);
                        }
                        _ => {}
                    }
                } else if self.state == LegState::Terminating {
                    self.step(LegInput::Ended);
                    ctx.stop();
                } else if matches!(&self.our_reinvite, Some((k, _)) if *k == key) {
                    self.our_reinvite = None;
                    self.emit(LegEventKind::ReofferAnswered { result: Err(408) });
                }
            }
            Inbound::Terminated { .. } => {}
        }
    }
}

/// Command (UAS): send a provisional response (180, or 183 with our SDP for early media).
#[derive(Message)]
#[rtype(result = "()")]
pub struct Ring {
    pub status: u16,
    pub sdp: Option<Bytes>,
}

impl Handler<Ring> for Leg {
    type Result = ();
    fn handle(&mut self, msg: Ring, _: &mut Self::Context) {
        if self.role != Role::Uas || !self.step(LegInput::Provisional) {
            return;
        }
        let reason = if msg.status == 183 {
            "Session Progress"
        } else {
            "Ringing"
        };
        if msg.sdp.is_some() {
            self.local_sdp = msg.sdp.clone();
        }
        let resp = self.invite_response(msg.status, reason, msg.sdp);
        self.services.endpoint.respond(&self.invite_key, resp);
    }
}

/// Command (UAS): answer with 200 and our SDP.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Answer {
    pub sdp: Bytes,
}

impl Handler<Answer> for Leg {
    type Result = ();
    fn handle(&mut self, msg: Answer, _: &mut Self::Context) {
        if self.role != Role::Uas || !self.step(LegInput::Answered) {
            return;
        }
        self.local_sdp = Some(msg.sdp.clone());
        let resp = self.invite_response(200, "OK", Some(msg.sdp));
        self.services.endpoint.respond(&self.invite_key, resp);
    }
}

/// Command (UAS): refuse the INVITE with a final failure.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Reject {
    pub status: u16,
    pub reason: String,
}

impl Handler<Reject> for Leg {
    type Result = ();
    fn handle(&mut self, msg: Reject, ctx: &mut Self::Context) {
        if self.role != Role::Uas || !self.step(LegInput::Failed) {
            return;
        }
        let resp = self.invite_response(msg.status, &msg.reason, None);
        self.services.endpoint.respond(&self.invite_key, resp);
        ctx.stop();
    }
}

/// Command: end this leg however its state allows (BYE, CANCEL or a final response).
#[derive(Message)]
#[rtype(result = "()")]
pub struct Hangup;

impl Handler<Hangup> for Leg {
    type Result = ();
    fn handle(&mut self, _: Hangup, ctx: &mut Self::Context) {
        match (self.role, self.state) {
            (_, LegState::Confirmed) => self.send_bye(ctx),
            (Role::Uac, LegState::Early) => {
                self.cancel_wanted = true;
                self.send_cancel();
            }
            (Role::Uac, LegState::Proceeding) => self.cancel_wanted = true,
            (Role::Uas, LegState::Proceeding | LegState::Early) => {
                if self.step(LegInput::Failed) {
                    let resp = self.invite_response(480, "Temporarily Unavailable", None);
                    self.services.endpoint.respond(&self.invite_key, resp);
                }
                ctx.stop();
            }
            _ => {}
        }
    }
}

/// Command: send a re-INVITE with this offer (pass-through of the other side's re-INVITE).
#[derive(Message)]
#[rtype(result = "()")]
pub struct Reoffer {
    pub sdp: Bytes,
}

impl Handler<Reoffer> for Leg {
    type Result = ();
    fn handle(&mut self, msg: Reoffer, ctx: &mut Self::Context) {
        // Our offer in a 2xx whose ACK has not come yet is still open: no new one before
        // it is answered (RFC 3264 §4).
        if self.state != LegState::Confirmed
            || self.our_reinvite.is_some()
            || self.answer_in_ack.is_some()
        {
            self.emit(LegEventKind::ReofferAnswered { result: Err(491) });
            return;
        }
        self.local_sdp = Some(msg.sdp.clone());
        let sent = self.send_in_dialog(ctx, Method::Invite, Some(msg.sdp));
        self.our_reinvite = Some(sent);
    }
}

/// Command: answer the peer's pending re-INVITE (our SDP, or a failure status).
#[derive(Message)]
#[rtype(result = "()")]
pub struct AnswerReoffer {
    pub result: Result<Bytes, u16>,
}

impl Handler<AnswerReoffer> for Leg {
    type Result = ();
    fn handle(&mut self, msg: AnswerReoffer, _: &mut Self::Context) {
        let Some((key, req)) = self.pending_reoffer.take() else {
            return;
        };
        let mut resp = match msg.result {
            Ok(sdp) => {
                self.local_sdp = Some(sdp.clone());
                if req.body.is_empty() {
                    // Our 200 carries the offer: the answer comes in the ACK.
                    self.answer_in_ack = req.cseq().map(|(seq, _)| seq);
                }
                let mut resp = Response::for_request(&req, 200, "OK");
                resp.add_header(
                    "Contact",
                    format!(
                        "<{}>",
                        self.services
                            .endpoint
                            .contact_uri("", &self.dialog.transport)
                    ),
                );
                resp.set_body(SDP, sdp);
                resp
            }
            Err(status) => {
                Response::for_request(&req, status, crate::sip::message::default_reason(status))
            }
        };
        resp.set_to_tag(&self.dialog.local_tag);
        self.services.endpoint.respond(&key, resp);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uac_happy_path() {
        let s = transition(LegState::Proceeding, LegInput::Provisional).unwrap();
        let s = transition(s, LegInput::Answered).unwrap();
        let s = transition(s, LegInput::ByeSent).unwrap();
        assert_eq!(
            transition(s, LegInput::Ended).unwrap(),
            LegState::Terminated
        );
    }

    #[test]
    fn no_bye_before_answer_and_nothing_after_the_end() {
        assert!(transition(LegState::Early, LegInput::ByeSent).is_err());
        assert!(transition(LegState::Terminated, LegInput::Answered).is_err());
        assert!(transition(LegState::Confirmed, LegInput::Failed).is_err());
        assert_eq!(
            transition(LegState::Early, LegInput::Failed).unwrap(),
            LegState::Terminated
        );
    }
}
