//! Dialogs (RFC 3261 §12): the identifiers, sequence numbers, route set and remote target
//! that one side of a call keeps, and the in-dialog requests built from them. Sans-IO.

use std::net::{IpAddr, SocketAddr};

use super::message::{Method, NameAddr, Request, Response, SipUri, Transport, Via};

/// Router key of a dialog: Call-ID and *our* tag. An in-dialog request from the peer carries
/// our tag as its To-tag; a response to our request carries it as its From-tag.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct DialogKey {
    pub call_id: String,
    pub local_tag: String,
}

impl DialogKey {
    /// The key an incoming in-dialog request is routed by.
    pub fn of_request(req: &Request) -> Option<DialogKey> {
        Some(DialogKey {
            call_id: req.call_id()?.to_string(),
            local_tag: req.to()?.tag()?.to_string(),
        })
    }

    /// The key a response to one of our requests is routed by.
    pub fn of_response(resp: &Response) -> Option<DialogKey> {
        Some(DialogKey {
            call_id: resp.call_id()?.to_string(),
            local_tag: resp.from()?.tag()?.to_string(),
        })
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DialogError {
    #[error("request lacks {0}")]
    Missing(&'static str),
    #[error("CSeq {got} is not above {last}")]
    CSeqOutOfOrder { got: u32, last: u32 },
}

/// Where to send requests for a URI: its host and port, unless it names a private address
/// that is not where the peer's messages come from (a phone behind NAT) — then the source
/// the peer uses (symmetric signalling, RFC 3581).
pub fn reach(uri: &SipUri, transport: &Transport, src: Option<SocketAddr>) -> Option<SocketAddr> {
    let host = uri.host_unbracketed();
    let port = uri.port.unwrap_or_else(|| transport.default_port());
    let target = host
        .parse::<IpAddr>()
        .ok()
        .map(|ip| SocketAddr::new(ip, port));
    match (target, src) {
        (Some(t), Some(s)) if t.ip() != s.ip() => Some(s),
        (Some(t), _) => Some(t),
        // A host name: the switch does not resolve names for phones; use the flow.
        (None, s) => s,
    }
}

/// One side of a dialog, as the switch holds it.
#[derive(Debug, Clone)]
pub struct Dialog {
    pub call_id: String,
    pub local_tag: String,
    pub remote_tag: Option<String>,
    /// Our address-of-record (From of our requests).
    pub local: NameAddr,
    /// The peer's (To of our requests).
    pub remote: NameAddr,
    pub local_cseq: u32,
    pub remote_cseq: Option<u32>,
    pub remote_target: SipUri,
    pub route_set: Vec<NameAddr>,
    pub transport: Transport,
    /// Where in-dialog requests are sent.
    pub dest: SocketAddr,
}

impl Dialog {
    /// The UAS side, from the INVITE we received and the tag we chose.
    pub fn uas(
        invite: &Request,
        local_tag: &str,
        src: SocketAddr,
        transport: Transport,
    ) -> Result<Dialog, DialogError> {
        let call_id = invite.call_id().ok_or(DialogError::Missing("Call-ID"))?;
        let from = invite.from().ok_or(DialogError::Missing("From"))?.clone();
        let mut to = invite.to().ok_or(DialogError::Missing("To"))?.clone();
        let (cseq, _) = invite.cseq().ok_or(DialogError::Missing("CSeq"))?;
        to.set_tag(local_tag);
        let remote_target = invite
            .contacts()
            .into_iter()
            .find_map(|c| c.addr().map(|a| a.uri.clone()))
            .unwrap_or_else(|| from.uri.clone());
        let route_set = invite.record_routes();
        let dest = match route_set.first() {
            Some(route) => reach(&route.uri, &transport, Some(src)).unwrap_or(src),
            None => reach(&remote_target, &transport, Some(src)).unwrap_or(src),
        };
        Ok(Dialog {
            call_id: call_id.to_string(),
            local_tag: local_tag.to_string(),
            remote_tag: from.tag().map(str::to_string),
            local: to,
            remote: from,
            local_cseq: 0,
            remote_cseq: Some(cseq),
            remote_target,
            route_set,
            transport,
            dest,
        })
    }

    /// The UAC side before any answer: our INVITE's identifiers; completed by
    /// [`Dialog::on_response`].
    pub fn uac(
        invite: &Request,
        dest: SocketAddr,
        transport: Transport,
    ) -> Result<Dialog, DialogError> {
        let call_id = invite.call_id().ok_or(DialogError::Missing("Call-ID"))?;
        let from = invite.from().ok_or(DialogError::Missing("From"))?.clone();
        let to = invite.to().ok_or(DialogError::Missing("To"))?.clone();
        let (cseq, _) = invite.cseq().ok_or(DialogError::Missing("CSeq"))?;
        let local_tag = from
            .tag()
            .ok_or(DialogError::Missing("From tag"))?
            .to_string();
        Ok(Dialog {
            call_id: call_id.to_string(),
            local_tag,
            remote_tag: None,
            local: from,
            remote: to,
            local_cseq: cseq,
            remote_cseq: None,
            remote_target: invite.uri.clone(),
            route_set: Vec::new(),
            transport,
            dest,
        })
    }

    pub fn key(&self) -> DialogKey {
        DialogKey {
            call_id: self.call_id.clone(),
            local_tag: self.local_tag.clone(),
        }
    }

    /// Learns the remote tag, target and route set from a 1xx/2xx to our INVITE (§12.1.2:
    /// the route set is the Record-Route in reverse).
    pub fn on_response(&mut self, resp: &Response, src: SocketAddr) {
        if let Some(tag) = resp.to_tag() {
            self.remote_tag = Some(tag.clone());
            self.remote.set_tag(&tag);
        }
        if let Some(target) = resp
            .contacts()
            .into_iter()
            .find_map(|c| c.addr().map(|a| a.uri.clone()))
        {
            self.remote_target = target;
        }
        let mut routes = resp.record_routes();
        if !routes.is_empty() {
            routes.reverse();
            self.route_set = routes;
        }
        let next = match self.route_set.first() {
            Some(route) => reach(&route.uri, &self.transport, Some(src)),
            None => reach(&self.remote_target, &self.transport, Some(src)),
        };
        if let Some(dest) = next {
            self.dest = dest;
        }
    }

    /// Checks an in-dialog request's CSeq (§12.2.2): lower than the last one → 500.
    pub fn accept_remote_cseq(&mut self, req: &Request) -> Result<(), DialogError> {
        let (cseq, method) = req.cseq().ok_or(DialogError::Missing("CSeq"))?;
        if method == Method::Ack || method == Method::Cancel {
            return Ok(());
        }
        if let Some(last) = self.remote_cseq {
            if cseq <= last {
                return Err(DialogError::CSeqOutOfOrder { got: cseq, last });
            }
        }
        self.remote_cseq = Some(cseq);
        Ok(())
    }

    /// A new in-dialog request (BYE, re-INVITE, INFO…) with the next CSeq.
    pub fn request(&mut self, method: Method, via: Via, contact: &str) -> Request {
        self.local_cseq += 1;
        let cseq = self.local_cseq;
        self.build(method, cseq, via, contact)
    }

    /// The ACK for a 2xx to the INVITE with CSeq `cseq` (§13.2.2.4: same CSeq number).
    pub fn ack(&self, cseq: u32, via: Via) -> Request {
        let mut ack = self.build(Method::Ack, cseq, via, "");
        ack.remove_header("Contact");
        ack
    }

    fn build(&self, method: Method, cseq: u32, via: Via, contact: &str) -> Request {
        let mut req = Request::new(method.clone(), self.remote_target.clone());
        req.push_via(&via);
        req.set_max_forwards(70);
        req.set_from(&self.local);
        req.set_to(&self.remote);
        req.set_call_id(&self.call_id);
        req.set_cseq(cseq, &method);
        for route in &self.route_set {
            req.add_header("Route", route.to_string());
        }
        if !contact.is_empty() {
            req.add_header("Contact", format!("<{contact}>"));
        }
        req
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sip::message::{parse, SipMessage};

    fn request(text: &str) -> Request {
        match parse(text.replace('\n', "\r\n").as_bytes()) {
            Ok(SipMessage::Request(r)) => r,
            other => panic!("not a request: {other:?}"),
        }
    }

    const INVITE: &str = "INVITE sip:802@127.0.0.1:5060 SIP/2.0
Via: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bK-1;rport
From: \"Alice\" <sip:801@127.0.0.1>;tag=a1
To: <sip:802@127.0.0.1>
Call-ID: c1@host
CSeq: 7 INVITE
Contact: <sip:801@10.0.0.5:5070>
Max-Forwards: 70
Content-Length: 0

";

    #[test]
    fn uas_dialog_uses_the_flow_for_a_natted_contact() {
        let invite = request(INVITE);
        let src: SocketAddr = "127.0.0.1:5070".parse().unwrap();
        let mut d = Dialog::uas(&invite, "b2", src, Transport::Udp).unwrap();
        assert_eq!(d.dest, src, "contact 10.0.0.5 differs from the source: NAT");
        assert_eq!(d.remote_tag.as_deref(), Some("a1"));
        assert_eq!(d.key().local_tag, "b2");
        let via = Via::new(Transport::Udp, "127.0.0.1", Some(5060), "z9hG4bK-x");
        let bye = d.request(Method::Bye, via, "sip:127.0.0.1:5060");
        assert_eq!(bye.uri.host, "10.0.0.5");
        assert_eq!(bye.to().unwrap().tag(), Some("a1"));
        assert_eq!(bye.from().unwrap().tag(), Some("b2"));
        assert_eq!(bye.cseq().unwrap().0, 1);
        assert_eq!(
            DialogKey::of_response(&Response::for_request(&bye, 200, "OK")),
            Some(d.key())
        );
    }

    #[test]
    fn remote_cseq_must_increase() {
        let invite = request(INVITE);
        let src: SocketAddr = "127.0.0.1:5070".parse().unwrap();
        let mut d = Dialog::uas(&invite, "b2", src, Transport::Udp).unwrap();
        let bye = request(
            &INVITE
                .replace("CSeq: 7 INVITE", "CSeq: 7 BYE")
                .replace("INVITE sip", "BYE sip"),
        );
        assert!(d.accept_remote_cseq(&bye).is_err());
        let bye = request(
            &INVITE
                .replace("CSeq: 7 INVITE", "CSeq: 8 BYE")
                .replace("INVITE sip", "BYE sip"),
        );
        assert!(d.accept_remote_cseq(&bye).is_ok());
    }

    #[test]
    fn reach_prefers_contact_when_it_matches_the_source_ip() {
        let uri = SipUri::parse("sip:802@127.0.0.1:5099").unwrap();
        let src: SocketAddr = "127.0.0.1:40000".parse().unwrap();
        assert_eq!(
            reach(&uri, &Transport::Udp, Some(src)),
            Some("127.0.0.1:5099".parse().unwrap())
        );
    }
}
