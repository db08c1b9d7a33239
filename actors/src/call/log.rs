//! The call's call-log row, written when the call ends.

use entities::calllog;

use super::{Call, Caller, EndedBy};

impl Call {
    pub(super) fn log_row(&self, end: i64) -> calllog::Model {
        let caller = self.caller.number().to_string();
        let secs = |from: i64, to: i64| {
            i32::try_from(((to - from).max(0) + 500) / 1000).unwrap_or(i32::MAX)
        };
        let ivr_business = self
            .ivr_record
            .as_ref()
            .and_then(|r| r.business())
            .map(|b| b.as_str());
        let queue_outcome = self.queue.as_ref().and_then(|q| q.outcome).or(ivr_business);
        let (business, call_type) = match (&self.caller, &self.trunk_out) {
            (Caller::Trunk { .. }, _) if queue_outcome.is_some() => {
                (queue_outcome.unwrap_or_default(), call_type_of(&caller))
            }
            (Caller::Extension { .. }, _) if queue_outcome.is_some() => {
                (queue_outcome.unwrap_or_default(), "CENTREX_CALL")
            }
            (Caller::Trunk { .. }, _) if self.to_conference => {
                ("CONFERENCE", call_type_of(&caller))
            }
            (Caller::Extension { .. }, _) if self.to_conference => ("CONFERENCE", "CENTREX_CALL"),
            (Caller::Trunk { .. }, _) => ("INCOMING", call_type_of(&caller)),
            (Caller::Extension { .. }, Some(_)) => ("OUTGOING", call_type_of(&self.callee)),
            (Caller::Extension { .. }, None) => ("CENTREX_CALL", "CENTREX_CALL"),
        };
        let fxonum = match (&self.caller, &self.trunk_out) {
            (Caller::Trunk { name, .. }, _) => name.clone(),
            (_, Some(name)) => name.clone(),
            _ => String::new(),
        };
        calllog::Model {
            caller,
            callee: self.callee.clone(),
            channel: self.channel.clone(),
            begin_time: self.begin_ms,
            duration: self.pickup_ms.map(|p| secs(p, end)).unwrap_or(0),
            state: if self.pickup_ms.is_some() {
                "STATE_RECEIVED".into()
            } else {
                "STATE_FAILED".into()
            },
            call_type: call_type.into(),
            callid: self.id.clone(),
            business: business.into(),
            fxonum,
            ring_time: self.ring_ms.unwrap_or(0),
            ring_duration: self
                .ring_ms
                .map(|r| secs(r, self.pickup_ms.unwrap_or(end)))
                .unwrap_or(0),
            pickup_time: self.pickup_ms.unwrap_or(0),
            hungupside: self.hungup.unwrap_or(EndedBy::System).as_str().into(),
            peercallid: self.peer_call_id.clone(),
            record_voice: self.record_path.clone().unwrap_or_default(),
            accessnum: self.access_number.clone().unwrap_or_default(),
            standby: self.queue.as_ref().map_or(0, |q| q.standby_secs),
            // The after-call work that follows: the group's wrap-up, for an agent who
            // answered.
            writetime: self
                .queue
                .as_ref()
                .filter(|q| q.agent.is_some())
                .map_or(0, |q| i32::try_from(q.wrap_up_seconds).unwrap_or(i32::MAX)),
            ivr_anwer_time: self.ivr_record.as_ref().map_or(0, |r| r.answered_at_ms),
            ivr_anwer_duration: self.ivr_record.as_ref().map_or(0, |r| {
                i32::try_from(r.duration_secs(end)).unwrap_or(i32::MAX)
            }),
            dtmfkey: self
                .ivr_record
                .as_ref()
                .map(|r| r.dtmfkey.clone())
                .unwrap_or_default(),
            ivrpoint: self
                .ivr_record
                .as_ref()
                .map(|r| r.ivrpoint.clone())
                .unwrap_or_default(),
            ivrvoicemail: self
                .ivr_record
                .as_ref()
                .and_then(|r| r.voicemail.clone())
                .unwrap_or_default(),
            queue_time: self.queue.as_ref().map_or(0, |q| q.enqueued_ms),
            queue_duration: self
                .queue
                .as_ref()
                .map_or(0, |q| secs(q.enqueued_ms, q.left_ms.unwrap_or(end))),
            ..calllog::Model::default()
        }
    }
}

/// The manual's call types by the outside number's shape.
fn call_type_of(number: &str) -> &'static str {
    if number.starts_with("00") || number.starts_with('+') {
        "OVERSEAS_CALL"
    } else if number.starts_with('0') {
        "NATIONAL_CALL"
    } else if number.is_empty() {
        "UNKNOW_CALL"
    } else {
        "LOCAL_CALL"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn call_types() {
        assert_eq!(call_type_of("0123456789"), "NATIONAL_CALL");
        assert_eq!(call_type_of("0044123"), "OVERSEAS_CALL");
        assert_eq!(call_type_of("88889999"), "LOCAL_CALL");
    }
}
