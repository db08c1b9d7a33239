//! The project's SIP message types and their parser/serialiser.
//!
//! One [`parse`] per UDP datagram, one [`frame_stream`] per message on a stream transport.
//! The parser normalises at the edge what rsip 0.4 gets wrong — compact header names,
//! comma-separated Via/Contact/Route/Record-Route values, folded (LWS-continued) lines,
//! odd header-name casing — and validates requests the way RFC 3261 §8.2 and RFC 4475 ask,
//! so the rest of the switch only ever sees well-formed messages. Anything the parser cannot
//! accept comes back as a [`ParseError`] that says whether a `400`/`505`/`513` can be sent
//! back and gives what is needed to address it.
//!
//! The public API uses only the types of this module (and of [`super::uri`] and
//! [`super::headers`], re-exported here); rsip does not appear in it.

use std::borrow::Cow;
use std::fmt;
use std::io::Write as _;
use std::net::SocketAddr;

use bytes::Bytes;
use rand::distributions::Alphanumeric;
use rand::Rng;

pub use super::headers::{
    canonical_name, parse_cseq, response_target, stamp_via, Contact, Headers, Method, Transport,
    Via, MAGIC_COOKIE,
};
use super::headers::{parse_decimal, parse_delta_seconds, split_list, splits_on_comma};
use super::uri::is_token;
pub use super::uri::{quote, unescape, unquote, NameAddr, Params, Scheme, SipUri, SyntaxError};

/// Largest header section accepted on a stream before giving up on the connection; a UDP
/// datagram is bounded by its own size.
pub const MAX_STREAM_HEAD_BYTES: usize = 64 * 1024;
/// Largest body accepted on a stream (the Content-Length is never used to allocate).
pub const MAX_STREAM_BODY_BYTES: usize = 1024 * 1024;

/// The only SIP version spoken.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub enum Version {
    #[default]
    Sip20,
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SIP/2.0")
    }
}

/// A SIP request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    pub method: Method,
    pub uri: SipUri,
    pub version: Version,
    pub headers: Headers,
    pub body: Bytes,
}

/// A SIP response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    pub status: u16,
    pub reason: String,
    pub version: Version,
    pub headers: Headers,
    pub body: Bytes,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SipMessage {
    Request(Request),
    Response(Response),
}

/// Typed header accessors and setters shared by [`Request`] and [`Response`].
macro_rules! header_methods {
    () => {
        /// The generic accessor: first value of `name` (compact or long, any case).
        pub fn header(&self, name: &str) -> Option<&str> {
            self.headers.get(name)
        }
        pub fn call_id(&self) -> Option<&str> {
            self.headers.call_id()
        }
        pub fn from(&self) -> Option<&NameAddr> {
            self.headers.from()
        }
        pub fn to(&self) -> Option<&NameAddr> {
            self.headers.to()
        }
        pub fn cseq(&self) -> Option<(u32, Method)> {
            self.headers.cseq()
        }
        pub fn vias(&self) -> Vec<Via> {
            self.headers.vias()
        }
        pub fn top_via(&self) -> Option<&Via> {
            self.headers.top_via()
        }
        pub fn contacts(&self) -> Vec<Contact> {
            self.headers.contacts()
        }
        pub fn routes(&self) -> Vec<NameAddr> {
            self.headers.routes()
        }
        pub fn record_routes(&self) -> Vec<NameAddr> {
            self.headers.record_routes()
        }
        pub fn max_forwards(&self) -> Option<u8> {
            self.headers.max_forwards()
        }
        pub fn expires(&self) -> Option<u32> {
            self.headers.expires()
        }
        pub fn content_type(&self) -> Option<&str> {
            self.headers.content_type()
        }
        pub fn authorization(&self) -> Option<&str> {
            self.headers.authorization()
        }
        pub fn proxy_authorization(&self) -> Option<&str> {
            self.headers.proxy_authorization()
        }
        pub fn www_authenticate(&self) -> Vec<&str> {
            self.headers.www_authenticate()
        }
        pub fn proxy_authenticate(&self) -> Vec<&str> {
            self.headers.proxy_authenticate()
        }

        pub fn add_header(
            &mut self,
            name: &str,
            value: impl Into<compact_str::CompactString>,
        ) -> &mut Self {
            self.headers.add(name, value);
            self
        }
        pub fn set_header(
            &mut self,
            name: &str,
            value: impl Into<compact_str::CompactString>,
        ) -> &mut Self {
            self.headers.set(name, value);
            self
        }
        pub fn remove_header(&mut self, name: &str) -> &mut Self {
            self.headers.remove(name);
            self
        }
        pub fn set_from(&mut self, from: &NameAddr) -> &mut Self {
            self.set_header("From", header_text(from))
        }
        pub fn set_to(&mut self, to: &NameAddr) -> &mut Self {
            self.set_header("To", header_text(to))
        }
        pub fn set_call_id(&mut self, call_id: &str) -> &mut Self {
            self.set_header("Call-ID", call_id)
        }
        pub fn set_cseq(&mut self, seq: u32, method: &Method) -> &mut Self {
            self.set_header("CSeq", format!("{seq} {method}"))
        }
        /// Adds a Via above the existing ones.
        pub fn push_via(&mut self, via: &Via) -> &mut Self {
            self.headers.add_first("Via", header_text(via));
            self
        }
        pub fn set_max_forwards(&mut self, hops: u8) -> &mut Self {
            self.set_header("Max-Forwards", hops.to_string())
        }
        pub fn add_contact(&mut self, contact: &NameAddr) -> &mut Self {
            self.add_header("Contact", header_text(contact))
        }
        /// Sets the body and its Content-Type (Content-Length is computed on output).
        pub fn set_body(&mut self, content_type: &str, body: impl Into<Bytes>) -> &mut Self {
            self.body = body.into();
            self.set_header("Content-Type", content_type)
        }
    };
}

impl Request {
    /// A request with no headers; add them with the setters.
    pub fn new(method: Method, uri: SipUri) -> Request {
        Request {
            method,
            uri,
            version: Version::Sip20,
            headers: Headers::new(),
            body: Bytes::new(),
        }
    }

    header_methods!();

    /// The wire form, with a Content-Length that matches the body.
    pub fn to_bytes(&self) -> Vec<u8> {
        serialize(
            format_args!("{} {} {}", self.method, self.uri, self.version),
            &self.headers,
            &self.body,
        )
    }
}

impl Response {
    pub fn new(status: u16, reason: &str) -> Response {
        Response {
            status,
            reason: reason.to_string(),
            version: Version::Sip20,
            headers: Headers::new(),
            body: Bytes::new(),
        }
    }

    /// A response to `req` (RFC 3261 §8.2.6): Via (all, in order), From, To, Call-ID and CSeq
    /// copied, and Timestamp for a 100 (§8.2.6.1). The To-tag is left to the caller
    /// ([`Response::set_to_tag`]) because it belongs to the dialog.
    pub fn for_request(req: &Request, status: u16, reason: &str) -> Response {
        let mut resp = Response::new(status, reason);
        for via in req.headers.get_all("Via") {
            resp.headers.add("Via", via);
        }
        for name in ["From", "To", "Call-ID", "CSeq"] {
            if let Some(v) = req.headers.get(name) {
                resp.headers.add(name, v);
            }
        }
        if status == 100 {
            if let Some(ts) = req.headers.get("Timestamp") {
                resp.headers.add("Timestamp", ts);
            }
        }
        resp
    }

    header_methods!();

    /// The To-tag, if any.
    pub fn to_tag(&self) -> Option<String> {
        self.to().and_then(|t| t.tag().map(str::to_string))
    }

    /// Adds `tag` to the To header unless it already has one; returns the tag in force.
    pub fn set_to_tag(&mut self, tag: &str) -> String {
        let Some(raw) = self.headers.get("To").map(str::to_string) else {
            return tag.to_string();
        };
        match NameAddr::parse(&raw) {
            Ok(mut to) => {
                if let Some(existing) = to.tag() {
                    return existing.to_string();
                }
                to.set_tag(tag);
                self.headers.set("To", header_text(&to));
            }
            // A To that does not parse is echoed as it came, with the tag appended.
            Err(_) => self.headers.set("To", format!("{raw};tag={tag}")),
        }
        tag.to_string()
    }

    pub fn is_provisional(&self) -> bool {
        self.status < 200
    }

    pub fn is_success(&self) -> bool {
        (200..300).contains(&self.status)
    }

    pub fn is_final(&self) -> bool {
        self.status >= 200
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        serialize(
            format_args!("{} {} {}", self.version, self.status, self.reason),
            &self.headers,
            &self.body,
        )
    }
}

impl SipMessage {
    pub fn headers(&self) -> &Headers {
        match self {
            SipMessage::Request(r) => &r.headers,
            SipMessage::Response(r) => &r.headers,
        }
    }

    pub fn headers_mut(&mut self) -> &mut Headers {
        match self {
            SipMessage::Request(r) => &mut r.headers,
            SipMessage::Response(r) => &mut r.headers,
        }
    }

    pub fn body(&self) -> &Bytes {
        match self {
            SipMessage::Request(r) => &r.body,
            SipMessage::Response(r) => &r.body,
        }
    }

    pub fn is_request(&self) -> bool {
        matches!(self, SipMessage::Request(_))
    }

    pub fn call_id(&self) -> Option<&str> {
        self.headers().call_id()
    }

    pub fn cseq(&self) -> Option<(u32, Method)> {
        self.headers().cseq()
    }

    pub fn top_via(&self) -> Option<&Via> {
        self.headers().top_via()
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        match self {
            SipMessage::Request(r) => r.to_bytes(),
            SipMessage::Response(r) => r.to_bytes(),
        }
    }
}

impl From<Request> for SipMessage {
    fn from(r: Request) -> Self {
        SipMessage::Request(r)
    }
}

impl From<Response> for SipMessage {
    fn from(r: Response) -> Self {
        SipMessage::Response(r)
    }
}

/// Room for a start line (`INVITE sip:…@host:port SIP/2.0`) in [`serialize`]'s estimate.
const START_LINE_ESTIMATE: usize = 96;

/// Writes a message. Content-Length is always recomputed from the body (and written last);
/// CR/LF inside the start line or a header value become spaces so that nothing can inject a
/// header line.
fn serialize(start_line: fmt::Arguments<'_>, headers: &Headers, body: &[u8]) -> Vec<u8> {
    // A value never holds a line break (the parser reads bare CRs as spaces), but one set by
    // the TU might: it is written as a space rather than let it start a new header.
    fn put(out: &mut Vec<u8>, s: &str) {
        if s.bytes().any(|b| b == b'\r' || b == b'\n') {
            out.extend(
                s.bytes()
                    .map(|b| if b == b'\r' || b == b'\n' { b' ' } else { b }),
            );
        } else {
            out.extend_from_slice(s.as_bytes());
        }
    }
    // Sized to the message (the start line estimated): a transaction keeps the wire form of
    // its last response or ACK for up to 32 s, so slack would be held that long.
    let head: usize = headers.iter().map(|(n, v)| n.len() + v.len() + 4).sum();
    let mut out = Vec::with_capacity(START_LINE_ESTIMATE + head + 24 + body.len());
    // Writing into a Vec cannot fail. A reason phrase set by the TU could hold a line break.
    let _ = out.write_fmt(start_line);
    for b in out.iter_mut() {
        if *b == b'\r' || *b == b'\n' {
            *b = b' ';
        }
    }
    out.extend_from_slice(b"\r\n");
    for (name, value) in headers.iter() {
        if name == "Content-Length" {
            continue;
        }
        put(&mut out, name);
        out.extend_from_slice(b": ");
        put(&mut out, value);
        out.extend_from_slice(b"\r\n");
    }
    // Writing into a Vec cannot fail.
    let _ = write!(out, "Content-Length: {}\r\n\r\n", body.len());
    out.extend_from_slice(body);
    out
}

/// A header value rendered in one allocation (`to_string` grows the string a few times
/// for a typical 60–100 byte Via or name-addr).
fn header_text(value: &impl fmt::Display) -> String {
    let mut text = String::with_capacity(128);
    // Writing into a String cannot fail.
    let _ = fmt::Write::write_fmt(&mut text, format_args!("{value}"));
    text
}

/// A fresh From/To tag.
pub fn new_tag() -> String {
    random_token(12)
}

/// A fresh RFC 3261 branch: the magic cookie and 16 random characters (23 bytes: inline).
pub fn new_branch() -> compact_str::CompactString {
    let mut branch = compact_str::CompactString::const_new(MAGIC_COOKIE);
    branch.extend(
        rand::thread_rng()
            .sample_iter(&Alphanumeric)
            .take(16)
            .map(char::from),
    );
    branch
}

/// A fresh Call-ID, `random@host`.
pub fn new_call_id(host: &str) -> String {
    format!("{}@{host}", random_token(20))
}

fn random_token(len: usize) -> String {
    rand::thread_rng()
        .sample_iter(&Alphanumeric)
        .take(len)
        .map(char::from)
        .collect()
}

/// RFC 3261 §18.2.1 + RFC 3581 §4 on the top Via of a received request: adds `received=`
/// when the sent-by is not the packet's source address, fills an empty `rport`.
pub fn stamp_received(req: &mut Request, src: SocketAddr) {
    let Some(via) = req.headers.top_via() else {
        return;
    };
    let mut stamped = via.clone();
    stamp_via(&mut stamped, src);
    if stamped != *via {
        req.headers.replace_first("Via", header_text(&stamped));
    }
}

// ---------------------------------------------------------------------------------------
// Errors
// ---------------------------------------------------------------------------------------

/// What was wrong with a message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseErrorKind {
    #[error("empty message")]
    Empty,
    #[error("not a SIP message")]
    NotSip,
    #[error("malformed start line")]
    BadStartLine,
    #[error("SIP version {0} not supported")]
    VersionNotSupported(String),
    #[error("malformed Request-URI")]
    BadRequestUri,
    #[error("malformed header line")]
    BadHeaderLine,
    #[error("missing {0} header")]
    MissingHeader(&'static str),
    #[error("more than one {0} header")]
    DuplicateHeader(&'static str),
    #[error("invalid {0} header")]
    InvalidHeader(&'static str),
    #[error("CSeq method does not match the request method")]
    CSeqMethodMismatch,
    #[error("invalid Content-Length")]
    BadContentLength,
    #[error("conflicting Content-Length values")]
    ConflictingContentLength,
    #[error("Content-Length larger than the body")]
    BodyTruncated,
    #[error("invalid status code")]
    BadStatusCode,
    #[error("message too large")]
    TooLarge,
}

/// What a transport needs to answer a malformed request statelessly: the request's Via
/// values (raw), its top Via (parsed leniently, for [`response_target`]), and the raw From,
/// To, Call-ID and CSeq to echo.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplyContext {
    pub method: Method,
    pub vias: Vec<String>,
    pub top_via: Via,
    pub from: String,
    pub to: String,
    pub call_id: String,
    pub cseq: String,
}

impl ReplyContext {
    /// A response echoing the request's headers, with a To-tag added when the To had none.
    pub fn response(&self, status: u16, reason: &str) -> Response {
        let mut r = Response::new(status, reason);
        for v in &self.vias {
            r.headers.add("Via", v.as_str());
        }
        r.headers.add("From", self.from.as_str());
        r.headers.add("To", self.to.as_str());
        r.headers.add("Call-ID", self.call_id.as_str());
        r.headers.add("CSeq", self.cseq.as_str());
        r.set_to_tag(&new_tag());
        r
    }
}

/// A message that could not be accepted.
///
/// [`ParseError::status`] is `Some(400 | 505 | 513)` when the message was recognisably a
/// request (whatever its faults), `None` for responses (which are discarded, RFC 4475
/// §3.1.2.5/§3.1.2.19) and for garbage. [`ParseError::error_response`] builds the answer
/// when, in addition, the Via, From, To, Call-ID and CSeq could be read; otherwise the
/// message is dropped.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{kind}")]
pub struct ParseError {
    pub kind: ParseErrorKind,
    status: Option<u16>,
    reply: Option<Box<ReplyContext>>,
    frame_len: Option<usize>,
}

impl ParseError {
    fn bare(kind: ParseErrorKind) -> ParseError {
        ParseError {
            kind,
            status: None,
            reply: None,
            frame_len: None,
        }
    }

    pub fn kind(&self) -> &ParseErrorKind {
        &self.kind
    }

    /// The status to answer with, if the message was a request.
    pub fn status(&self) -> Option<u16> {
        self.status
    }

    /// The reason phrase naming the problem, e.g. `Bad Request - Invalid CSeq`.
    pub fn reason(&self) -> String {
        use ParseErrorKind::*;
        let detail = match &self.kind {
            VersionNotSupported(_) => return "Version Not Supported".into(),
            TooLarge => return "Message Too Large".into(),
            Empty | NotSip | BadStartLine | BadStatusCode => "Malformed Request-Line".into(),
            BadRequestUri => "Invalid Request-URI".into(),
            BadHeaderLine => "Malformed Header".into(),
            MissingHeader(h) => format!("Missing {h}"),
            DuplicateHeader(h) => format!("Multiple {h}"),
            InvalidHeader(h) => format!("Invalid {h}"),
            CSeqMethodMismatch => "CSeq Method Mismatch".into(),
            BadContentLength | ConflictingContentLength => "Invalid Content-Length".into(),
            BodyTruncated => "Content-Length Exceeds Body".into(),
        };
        format!("Bad Request - {detail}")
    }

    /// The headers needed to address an answer, when they could be read.
    pub fn reply(&self) -> Option<&ReplyContext> {
        self.reply.as_deref()
    }

    /// On a stream: the length of the offending message when its framing was sound, so the
    /// transport can answer it and carry on with the next one. `None` means the framing is
    /// lost and the connection should be closed (RFC 4475 §3.1.2.2, §3.1.2.3, §3.3.9).
    pub fn frame_len(&self) -> Option<usize> {
        self.frame_len
    }

    /// The stateless answer (`400`/`505`/`513`), when the message can be answered. Send it
    /// to [`response_target`] of `reply().top_via` (or back on the connection).
    pub fn error_response(&self) -> Option<Response> {
        let status = self.status?;
        let reply = self.reply.as_ref()?;
        Some(reply.response(status, &self.reason()))
    }
}

// ---------------------------------------------------------------------------------------
// Parsing
// ---------------------------------------------------------------------------------------

/// Parses one UDP datagram (RFC 3261 §18.3): the body is framed by Content-Length, octets
/// after it are ignored (RFC 4475 §3.1.1.8); without Content-Length the body runs to the end
/// of the datagram; a Content-Length beyond the datagram is an error.
pub fn parse(datagram: &[u8]) -> Result<SipMessage, ParseError> {
    match parse_framed(datagram, Framing::Datagram) {
        Ok(Some((_, msg))) => Ok(msg),
        // A datagram is always complete, so "need more" cannot happen; answer as truncated.
        Ok(None) => Err(ParseError::bare(ParseErrorKind::BodyTruncated)),
        Err(e) => Err(e),
    }
}

/// Frames and parses the first message of a stream buffer (TCP/TLS). `Ok(None)` asks for more
/// bytes; `Ok(Some((consumed, msg)))` says how many bytes to drop from the buffer (CRLF
/// keep-alives before the message included, RFC 3261 §7.5, RFC 5626 §3.5.1). Content-Length
/// is mandatory on streams; a missing one counts as 0.
pub fn frame_stream(buf: &[u8]) -> Result<Option<(usize, SipMessage)>, ParseError> {
    parse_framed(buf, Framing::Stream)
}

/// The number of CRLF keep-alive bytes at the start of a stream buffer; a transport can drop
/// them while it waits for a message (a `\r\n\r\n` ping is answered with `\r\n`,
/// RFC 5626 §4.4.1).
pub fn keepalive_prefix_len(buf: &[u8]) -> usize {
    buf.iter()
        .take_while(|&&b| b == b'\r' || b == b'\n')
        .count()
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Framing {
    Datagram,
    Stream,
}

/// Where the header section ends: `(end of the last header line, start of the body)`.
/// Accepts CRLF and bare LF line ends.
fn find_head_end(data: &[u8]) -> Option<(usize, usize)> {
    let mut i = 0;
    loop {
        let off = data.get(i..)?.iter().position(|&b| b == b'\n')?;
        let nl = i + off;
        match (data.get(nl + 1), data.get(nl + 2)) {
            (Some(b'\n'), _) => return Some((nl, nl + 2)),
            (Some(b'\r'), Some(b'\n')) => return Some((nl, nl + 3)),
            _ => i = nl + 1,
        }
    }
}

/// The header section split into lines, unfolded, with canonical names. Borrows the
/// message text: a value is copied only when folding or a bare CR changes it.
struct RawHead<'a> {
    start_line: &'a str,
    headers: Vec<(&'a str, Cow<'a, str>)>,
    /// A line that is not `name: value`, or a continuation line before any header.
    bad_line: bool,
}

impl<'a> RawHead<'a> {
    fn parse(text: &'a str) -> RawHead<'a> {
        // A bare CR counts as white space (see `no_bare_cr`).
        let ws = [' ', '\t', '\r'];
        let mut lines = text.split('\n').map(|l| l.strip_suffix('\r').unwrap_or(l));
        let start_line = lines.next().unwrap_or("");
        let mut headers: Vec<(&'a str, Cow<'a, str>)> = Vec::with_capacity(16);
        let mut bad_line = false;
        for line in lines {
            if line.is_empty() {
                continue;
            }
            if line.starts_with(ws) {
                // Folding: CRLF + LWS is equivalent to one SP (RFC 3261 §7.3.1).
                match headers.last_mut() {
                    Some((_, v)) => {
                        let more = line.trim_matches(ws);
                        if !more.is_empty() {
                            let v = v.to_mut();
                            if !v.is_empty() {
                                v.push(' ');
                            }
                            v.push_str(&no_bare_cr(more));
                        }
                    }
                    None => bad_line = true,
                }
                continue;
            }
            match line.split_once(':') {
                Some((name, value)) => {
                    let name = name.trim_end_matches(ws);
                    if is_token(name) {
                        headers.push((canonical_name(name), no_bare_cr(value.trim_matches(ws))));
                    } else {
                        bad_line = true;
                    }
                }
                None => bad_line = true,
            }
        }
        RawHead {
            start_line,
            headers,
            bad_line,
        }
    }

    fn all<'s>(&'s self, name: &'s str) -> impl Iterator<Item = &'s str> + 's {
        self.headers
            .iter()
            .filter(move |(n, _)| *n == name)
            .map(|(_, v)| v.as_ref())
    }

    fn first<'s>(&'s self, name: &'s str) -> Option<&'s str> {
        self.all(name).next()
    }
}

/// A bare CR inside a header line is not legal; it is read as a space so that a value never
/// holds a line-break character.
fn no_bare_cr(s: &str) -> Cow<'_, str> {
    if s.contains('\r') {
        Cow::Owned(s.replace('\r', " "))
    } else {
        Cow::Borrowed(s)
    }
}

enum StartLine {
    Request {
        method: Method,
        uri: String,
        /// Exactly `Method SP Request-URI SP SIP/2.0` (RFC 4475 §3.1.2.9, §3.1.2.10).
        strict: bool,
    },
    Response {
        status: u16,
        reason: String,
    },
}

/// Classifies the start line. Errors here carry no status for responses and garbage; for a
/// recognisable request line with another version, 505.
fn parse_start_line(line: &str) -> Result<StartLine, ParseErrorKind> {
    if line
        .get(..4)
        .is_some_and(|p| p.eq_ignore_ascii_case("SIP/"))
    {
        let mut it = line.splitn(3, ' ');
        let version = it.next().unwrap_or("");
        let code = it.next().unwrap_or("");
        let reason = it.next().unwrap_or("");
        if !version.eq_ignore_ascii_case("SIP/2.0") {
            return Err(ParseErrorKind::VersionNotSupported(version.to_string()));
        }
        if code.len() != 3 || !code.bytes().all(|b| b.is_ascii_digit()) {
            return Err(ParseErrorKind::BadStatusCode);
        }
        let status: u16 = code.parse().map_err(|_| ParseErrorKind::BadStatusCode)?;
        if !(100..=699).contains(&status) {
            return Err(ParseErrorKind::BadStatusCode);
        }
        return Ok(StartLine::Response {
            status,
            reason: reason.to_string(),
        });
    }
    let parts: Vec<&str> = line.split([' ', '\t']).filter(|p| !p.is_empty()).collect();
    let (Some(method), Some(version)) = (parts.first(), parts.last()) else {
        return Err(ParseErrorKind::NotSip);
    };
    if parts.len() < 3 {
        return Err(ParseErrorKind::NotSip);
    }
    if !version.eq_ignore_ascii_case("SIP/2.0") {
        return Err(if is_sip_version(version) {
            ParseErrorKind::VersionNotSupported(version.to_string())
        } else {
            ParseErrorKind::NotSip
        });
    }
    let uri = parts
        .get(1..parts.len() - 1)
        .map(|p| p.join(" "))
        .unwrap_or_default();
    let strict = is_token(method) && line.split(' ').count() == 3 && !line.contains('\t');
    Ok(StartLine::Request {
        // A non-token method makes `strict` false, so it never gets past validation.
        method: Method::from_token(method),
        uri,
        strict,
    })
}

/// `SIP/1*DIGIT.1*DIGIT`.
fn is_sip_version(v: &str) -> bool {
    let Some(num) = v
        .get(..4)
        .filter(|p| p.eq_ignore_ascii_case("SIP/"))
        .and(v.get(4..))
    else {
        return false;
    };
    let Some((major, minor)) = num.split_once('.') else {
        return false;
    };
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    digits(major) && digits(minor)
}

/// Content-Length from the raw headers: `Ok(None)` if absent. Negative, non-numeric or
/// conflicting values are errors (RFC 4475 §3.1.2.3, §3.3.9); identical repeats are tolerated.
fn content_length(raw: &RawHead) -> Result<Option<usize>, ParseErrorKind> {
    let mut found: Option<usize> = None;
    for v in raw.all("Content-Length") {
        let n = parse_decimal(v, u64::from(u32::MAX))
            .ok()
            .and_then(|n| usize::try_from(n).ok())
            .ok_or(ParseErrorKind::BadContentLength)?;
        match found {
            Some(prev) if prev != n => return Err(ParseErrorKind::ConflictingContentLength),
            _ => found = Some(n),
        }
    }
    Ok(found)
}

fn parse_framed(data: &[u8], framing: Framing) -> Result<Option<(usize, SipMessage)>, ParseError> {
    // CRLFs before the start line are keep-alives (RFC 3261 §7.5).
    let start = keepalive_prefix_len(data);
    let msg = data.get(start..).unwrap_or(&[]);
    if msg.is_empty() {
        return match framing {
            Framing::Datagram => Err(ParseError::bare(ParseErrorKind::Empty)),
            Framing::Stream => Ok(None),
        };
    }
    let (head, body_start) = match find_head_end(msg) {
        Some((head_end, body_start)) => (msg.get(..head_end).unwrap_or(msg), Some(body_start)),
        None => match framing {
            Framing::Stream if msg.len() > MAX_STREAM_HEAD_BYTES => {
                return Err(endless_head());
            }
            Framing::Stream => return Ok(None),
            // A datagram without the blank line: all headers, no body.
            Framing::Datagram => (msg, None),
        },
    };
    if framing == Framing::Stream && head.len() > MAX_STREAM_HEAD_BYTES {
        return Err(endless_head());
    }
    // Header text is UTF-8 by RFC 3261; stray bytes become U+FFFD rather than failing the
    // message (they then fail the grammar wherever the grammar matters).
    let text = String::from_utf8_lossy(head);
    let raw = RawHead::parse(&text);
    let start_line = parse_start_line(raw.start_line);
    if let Err(ParseErrorKind::NotSip) = start_line {
        return Err(ParseError::bare(ParseErrorKind::NotSip));
    }
    // Only requests are ever answered; a broken response is discarded.
    let is_request = !raw
        .start_line
        .get(..4)
        .is_some_and(|p| p.eq_ignore_ascii_case("SIP/"));
    let fail = |kind: ParseErrorKind, frame_len: Option<usize>| -> ParseError {
        make_error(kind, is_request, &raw, frame_len)
    };

    // Framing.
    let available = body_start.map_or(0, |b| msg.len().saturating_sub(b));
    let body_start = body_start.unwrap_or(msg.len());
    let body_len = match (content_length(&raw), framing) {
        (Err(kind), _) => return Err(fail(kind, None)),
        (Ok(Some(n)), Framing::Stream) if n > MAX_STREAM_BODY_BYTES => {
            return Err(fail(ParseErrorKind::TooLarge, None));
        }
        (Ok(Some(n)), Framing::Stream) if n > available => return Ok(None),
        (Ok(Some(n)), Framing::Datagram) if n > available => {
            return Err(fail(ParseErrorKind::BodyTruncated, None));
        }
        (Ok(Some(n)), _) => n,
        (Ok(None), Framing::Stream) => 0,
        (Ok(None), Framing::Datagram) => available,
    };
    let body = msg
        .get(body_start..body_start + body_len)
        .ok_or_else(|| fail(ParseErrorKind::BodyTruncated, None))?;
    let consumed = start + body_start + body_len;
    let frame_len = Some(consumed);

    let start_line = start_line.map_err(|k| fail(k, frame_len))?;
    let built = match start_line {
        StartLine::Request {
            method,
            uri,
            strict,
        } => build_request(&raw, method, &uri, strict).map(SipMessage::Request),
        StartLine::Response { status, reason } => {
            build_response(&raw, status, reason).map(SipMessage::Response)
        }
    };
    let mut msg = built.map_err(|k| fail(k, frame_len))?;
    match &mut msg {
        SipMessage::Request(r) => r.body = Bytes::copy_from_slice(body),
        SipMessage::Response(r) => r.body = Bytes::copy_from_slice(body),
    }
    Ok(Some((consumed, msg)))
}

/// A header section that never ends: whatever it is, the stream cannot be resynchronised,
/// so no status and no frame length — the connection is closed.
fn endless_head() -> ParseError {
    ParseError::bare(ParseErrorKind::TooLarge)
}

fn make_error(
    kind: ParseErrorKind,
    is_request: bool,
    raw: &RawHead,
    frame_len: Option<usize>,
) -> ParseError {
    let status = is_request.then_some(match kind {
        ParseErrorKind::VersionNotSupported(_) => 505,
        ParseErrorKind::TooLarge => 513,
        _ => 400,
    });
    let reply = if is_request {
        reply_context(raw).map(Box::new)
    } else {
        None
    };
    ParseError {
        kind,
        status,
        reply,
        frame_len,
    }
}

/// Collects what a stateless 4xx/5xx needs from a request that failed validation.
fn reply_context(raw: &RawHead) -> Option<ReplyContext> {
    let method = raw
        .start_line
        .split([' ', '\t'])
        .find(|p| !p.is_empty())
        .map(Method::from_token)?;
    let vias: Vec<String> = raw.all("Via").map(str::to_string).collect();
    let top_via = Via::parse_lenient(vias.first()?)?;
    Some(ReplyContext {
        method,
        top_via,
        vias,
        from: raw.first("From")?.to_string(),
        to: raw.first("To")?.to_string(),
        call_id: raw.first("Call-ID")?.to_string(),
        cseq: raw.first("CSeq")?.to_string(),
    })
}

/// The canonical `'static` spelling of a header name for error messages.
fn static_name(name: &str) -> &'static str {
    [
        "Via",
        "Contact",
        "Route",
        "Record-Route",
        "Path",
        "Service-Route",
        "From",
        "To",
        "Call-ID",
        "CSeq",
        "Max-Forwards",
        "Expires",
    ]
    .into_iter()
    .find(|n| *n == name)
    .unwrap_or("header")
}

/// Builds [`Headers`] from the raw lines, splitting comma lists into one entry per value.
fn build_headers(raw: &RawHead) -> Result<Headers, ParseErrorKind> {
    if raw.bad_line {
        return Err(ParseErrorKind::BadHeaderLine);
    }
    let mut headers = Headers::new();
    for (name, value) in &raw.headers {
        if splits_on_comma(name) {
            let parts =
                split_list(value).ok_or(ParseErrorKind::InvalidHeader(static_name(name)))?;
            for p in parts {
                headers.add(name, p);
            }
        } else {
            headers.add(name, value.as_ref());
        }
    }
    Ok(headers)
}

/// Checks the headers every message needs (RFC 3261 §8.1.1): at least one Via, exactly one
/// From, To, Call-ID and CSeq, all well-formed, and well-formed address lists.
fn check_common(h: &Headers) -> Result<(u32, Method), ParseErrorKind> {
    use ParseErrorKind::*;
    for name in ["Call-ID", "From", "To", "CSeq"] {
        match h.count(name) {
            0 => return Err(MissingHeader(static_name(name))),
            1 => {}
            _ => return Err(DuplicateHeader(static_name(name))),
        }
    }
    if h.count("Via") == 0 {
        return Err(MissingHeader("Via"));
    }
    let cseq = h
        .get("CSeq")
        .and_then(|v| parse_cseq(v).ok())
        .ok_or(InvalidHeader("CSeq"))?;
    // The top Via, From and To are parsed into the headers' cache, for every layer after.
    if h.top_via().is_none() || h.get_all("Via").skip(1).any(|v| Via::parse(v).is_err()) {
        return Err(InvalidHeader("Via"));
    }
    if h.from().is_none() {
        return Err(InvalidHeader("From"));
    }
    if h.to().is_none() {
        return Err(InvalidHeader("To"));
    }
    let call_id = h.get("Call-ID").unwrap_or("");
    if call_id.is_empty() || call_id.bytes().any(|b| b <= b' ') {
        return Err(InvalidHeader("Call-ID"));
    }
    let (mut contacts, mut wildcard) = (0, false);
    for value in h.get_all("Contact") {
        contacts += 1;
        match Contact::parse(value) {
            Ok(Contact::Wildcard) => wildcard = true,
            Ok(_) => {}
            Err(_) => return Err(InvalidHeader("Contact")),
        }
    }
    if contacts > 1 && wildcard {
        return Err(InvalidHeader("Contact"));
    }
    for name in ["Route", "Record-Route"] {
        if h.get_all(name).any(|v| NameAddr::parse(v).is_err()) {
            return Err(InvalidHeader(static_name(name)));
        }
    }
    Ok(cseq)
}

fn build_request(
    raw: &RawHead,
    method: Method,
    uri: &str,
    strict: bool,
) -> Result<Request, ParseErrorKind> {
    use ParseErrorKind::*;
    if !strict {
        return Err(BadStartLine);
    }
    let uri = SipUri::parse(uri).map_err(|_| BadRequestUri)?;
    // URI headers are not allowed in a Request-URI (RFC 3261 §19.1.1 table; RFC 4475
    // §3.1.2.11: reject rather than risk turning them into real headers).
    if !uri.headers.is_empty() {
        return Err(BadRequestUri);
    }
    let headers = build_headers(raw)?;
    let (_, cseq_method) = check_common(&headers)?;
    // ACK and CANCEL carry their own method in CSeq like every other request.
    if cseq_method != method {
        return Err(CSeqMethodMismatch);
    }
    match headers.count("Max-Forwards") {
        0 => {} // RFC 2543 requests may lack it (RFC 4475 §3.4.1).
        1 => {
            if headers.max_forwards().is_none() {
                return Err(InvalidHeader("Max-Forwards"));
            }
        }
        _ => return Err(DuplicateHeader("Max-Forwards")),
    }
    if headers
        .get_all("Expires")
        .any(|v| parse_delta_seconds(v).is_err())
    {
        return Err(InvalidHeader("Expires"));
    }
    Ok(Request {
        method,
        uri,
        version: Version::Sip20,
        headers,
        body: Bytes::new(),
    })
}

fn build_response(raw: &RawHead, status: u16, reason: String) -> Result<Response, ParseErrorKind> {
    let headers = build_headers(raw)?;
    check_common(&headers)?;
    Ok(Response {
        status,
        reason,
        version: Version::Sip20,
        headers,
        body: Bytes::new(),
    })
}

/// The usual reason phrase for a status code.
pub fn default_reason(status: u16) -> &'static str {
    match status {
        100 => "Trying",
        180 => "Ringing",
        181 => "Call Is Being Forwarded",
        182 => "Queued",
        183 => "Session Progress",
        200 => "OK",
        202 => "Accepted",
        300 => "Multiple Choices",
        301 => "Moved Permanently",
        302 => "Moved Temporarily",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        406 => "Not Acceptable",
        407 => "Proxy Authentication Required",
        408 => "Request Timeout",
        410 => "Gone",
        413 => "Request Entity Too Large",
        415 => "Unsupported Media Type",
        416 => "Unsupported URI Scheme",
        420 => "Bad Extension",
        421 => "Extension Required",
        423 => "Interval Too Brief",
        480 => "Temporarily Unavailable",
        481 => "Call/Transaction Does Not Exist",
        482 => "Loop Detected",
        483 => "Too Many Hops",
        484 => "Address Incomplete",
        486 => "Busy Here",
        487 => "Request Terminated",
        488 => "Not Acceptable Here",
        491 => "Request Pending",
        500 => "Server Internal Error",
        501 => "Not Implemented",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Server Time-out",
        505 => "Version Not Supported",
        513 => "Message Too Large",
        600 => "Busy Everywhere",
        603 => "Decline",
        604 => "Does Not Exist Anywhere",
        606 => "Not Acceptable",
        _ => "Unknown",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const INVITE: &str = "INVITE sip:bob@example.com SIP/2.0\r\n\
        Via: SIP/2.0/UDP pc33.example.com;branch=z9hG4bK776asdhds\r\n\
        Max-Forwards: 70\r\n\
        To: Bob <sip:bob@example.com>\r\n\
        From: Alice <sip:alice@example.com>;tag=1928301774\r\n\
        Call-ID: a84b4c76e66710@pc33.example.com\r\n\
        CSeq: 314159 INVITE\r\n\
        Contact: <sip:alice@pc33.example.com>\r\n\
        Content-Type: application/sdp\r\n\
        Content-Length: 4\r\n\
        \r\n\
        v=0\r";

    fn req(s: &str) -> Request {
        match parse(s.as_bytes()) {
            Ok(SipMessage::Request(r)) => r,
            other => panic!("expected request, got {other:?}"),
        }
    }

    #[test]
    fn basic_request() {
        let r = req(INVITE);
        assert_eq!(r.method, Method::Invite);
        assert_eq!(r.uri.to_string(), "sip:bob@example.com");
        assert_eq!(r.call_id(), Some("a84b4c76e66710@pc33.example.com"));
        assert_eq!(r.cseq(), Some((314159, Method::Invite)));
        assert_eq!(r.from().unwrap().tag(), Some("1928301774"));
        assert_eq!(r.to().unwrap().display.as_deref(), Some("Bob"));
        assert_eq!(r.max_forwards(), Some(70));
        assert_eq!(&r.body[..], b"v=0\r");
        assert_eq!(r.vias()[0].branch.as_deref(), Some("z9hG4bK776asdhds"));
    }

    #[test]
    fn compact_forms_are_canonicalised() {
        let m = "OPTIONS sip:a@b SIP/2.0\r\nv: SIP/2.0/UDP h;branch=z9hG4bK1\r\n\
            f: <sip:x@y>;tag=1\r\nt: sip:a@b\r\ni: cid1\r\nCSeq: 1 OPTIONS\r\n\
            m: <sip:x@h>\r\nk: timer\r\ns: hi\r\ne: gzip\r\no: presence\r\n\
            r: <sip:c@d>\r\nx: 1800\r\nc: text/plain\r\nl: 2\r\n\r\nhi";
        let r = req(m);
        let names: Vec<&str> = r.headers.iter().map(|(n, _)| n).collect();
        assert_eq!(
            names,
            [
                "Via",
                "From",
                "To",
                "Call-ID",
                "CSeq",
                "Contact",
                "Supported",
                "Subject",
                "Content-Encoding",
                "Event",
                "Refer-To",
                "Session-Expires",
                "Content-Type",
                "Content-Length"
            ]
        );
        assert_eq!(r.call_id(), Some("cid1"));
        assert_eq!(r.content_type(), Some("text/plain"));
        assert_eq!(r.header("Refer-To"), Some("<sip:c@d>"));
        assert_eq!(r.header("r"), Some("<sip:c@d>"));
    }

    #[test]
    fn comma_separated_values_are_split() {
        let m = "INVITE sip:a@b SIP/2.0\r\n\
            Via: SIP/2.0/UDP p1;branch=z9hG4bK1, SIP/2.0/TCP p2:5070;branch=z9hG4bK2\r\n\
            Via: SIP/2.0/UDP p3;branch=z9hG4bK3\r\n\
            Route: <sip:r1;lr>, <sip:r2;lr>\r\nRecord-Route: <sip:rr1;lr>,<sip:rr2;lr>\r\n\
            Contact: \"A, B\" <sip:a@h1>;expires=60, <sip:a@h2>;q=0.5\r\n\
            From: <sip:x@y>;tag=1\r\nTo: sip:a@b\r\nCall-ID: c\r\nCSeq: 1 INVITE\r\nl: 0\r\n\r\n";
        let r = req(m);
        let vias = r.vias();
        assert_eq!(vias.len(), 3);
        assert_eq!(vias[1].transport, Transport::Tcp);
        assert_eq!(vias[1].port, Some(5070));
        assert_eq!(r.routes().len(), 2);
        assert_eq!(r.record_routes()[1].uri.host, "rr2");
        let c = r.contacts();
        assert_eq!(c.len(), 2);
        assert_eq!(c[0].addr().unwrap().display.as_deref(), Some("A, B"));
        assert_eq!(c[0].expires(), Some(60));
        assert_eq!(c[1].q(), Some(0.5));
    }

    #[test]
    fn folded_lines_are_unfolded() {
        let m = "OPTIONS sip:a@b SIP/2.0\r\nVia: SIP/2.0/UDP h\r\n ;branch=z9hG4bK1\r\n\
            From: <sip:x@y>\r\n\t;tag=1\r\nTo: sip:a@b\r\nCall-ID: c\r\n\
            CSeq: 1\r\n   OPTIONS\r\nSubject: one\r\n  two\r\n\r\n";
        let r = req(m);
        assert_eq!(r.header("Subject"), Some("one two"));
        assert_eq!(r.from().unwrap().tag(), Some("1"));
        assert_eq!(r.cseq(), Some((1, Method::Options)));
        assert_eq!(r.top_via().unwrap().branch.as_deref(), Some("z9hG4bK1"));
    }

    #[test]
    fn hex_nc_and_unknown_headers_kept_verbatim() {
        let auth = r#"Digest username="1001", realm="ctiswitch", nonce="abc", uri="sip:a@b", response="0123", qop=auth, nc=0000000a, cnonce="xyz""#;
        let m = format!(
            "REGISTER sip:b SIP/2.0\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\r\n\
            From: <sip:a@b>;tag=1\r\nTo: <sip:a@b>\r\nCall-ID: c\r\nCSeq: 2 REGISTER\r\n\
            Authorization: {auth}\r\nX-Weird_Header.!: ;;,,;;,;\r\nl: 0\r\n\r\n"
        );
        let r = req(&m);
        assert_eq!(r.authorization(), Some(auth));
        assert!(r.authorization().unwrap().contains("nc=0000000a"));
        assert_eq!(r.header("x-weird_header.!"), Some(";;,,;;,;"));
        let again = req(std::str::from_utf8(&r.to_bytes()).unwrap());
        assert_eq!(again.header("X-Weird_Header.!"), Some(";;,,;;,;"));
        assert_eq!(again.authorization(), Some(auth));
    }

    #[test]
    fn round_trip() {
        let r = req(INVITE);
        let bytes = r.to_bytes();
        let again = req(std::str::from_utf8(&bytes).unwrap());
        assert_eq!(r, again);
        assert!(std::str::from_utf8(&bytes)
            .unwrap()
            .contains("Content-Length: 4\r\n\r\nv=0\r"));
    }

    #[test]
    fn content_length_rules() {
        let base = "OPTIONS sip:a@b SIP/2.0\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\r\n\
            From: <sip:x@y>;tag=1\r\nTo: sip:a@b\r\nCall-ID: c\r\nCSeq: 1 OPTIONS\r\n";
        // Excess octets ignored.
        let r = req(&format!("{base}Content-Length: 2\r\n\r\nhiEXTRA"));
        assert_eq!(&r.body[..], b"hi");
        // No Content-Length on UDP: to the end of the datagram.
        let r = req(&format!("{base}\r\nhello"));
        assert_eq!(&r.body[..], b"hello");
        // Too large, negative, conflicting.
        let e = parse(format!("{base}Content-Length: 20\r\n\r\nhi").as_bytes()).unwrap_err();
        assert_eq!(e.kind, ParseErrorKind::BodyTruncated);
        assert_eq!(e.status(), Some(400));
        assert!(e.error_response().is_some());
        let e = parse(format!("{base}Content-Length: -2\r\n\r\nhi").as_bytes()).unwrap_err();
        assert_eq!(e.kind, ParseErrorKind::BadContentLength);
        let e =
            parse(format!("{base}l: 2\r\nContent-Length: 3\r\n\r\nhi!").as_bytes()).unwrap_err();
        assert_eq!(e.kind, ParseErrorKind::ConflictingContentLength);
        // Binary body with NULs.
        let mut bin = format!("{base}Content-Length: 4\r\n\r\n").into_bytes();
        bin.extend_from_slice(&[0, 1, 0, 0xff]);
        match parse(&bin).unwrap() {
            SipMessage::Request(r) => assert_eq!(&r.body[..], &[0, 1, 0, 0xff]),
            _ => panic!(),
        }
    }

    #[test]
    fn stream_framing() {
        let one = INVITE.as_bytes();
        let mut buf = b"\r\n\r\n".to_vec();
        buf.extend_from_slice(one);
        buf.extend_from_slice(one);
        // Partial head, partial body.
        assert_eq!(frame_stream(&buf[..20]).unwrap(), None);
        assert_eq!(frame_stream(&buf[..4 + one.len() - 2]).unwrap(), None);
        let (n, m) = frame_stream(&buf).unwrap().unwrap();
        assert_eq!(n, 4 + one.len());
        assert!(m.is_request());
        let (n2, _) = frame_stream(&buf[n..]).unwrap().unwrap();
        assert_eq!(n2, one.len());
        assert_eq!(frame_stream(b"\r\n\r\n").unwrap(), None);
        assert_eq!(keepalive_prefix_len(b"\r\n\r\nINVITE"), 4);
        // A bad message with sound framing can be skipped.
        let bad = INVITE.replace("CSeq: 314159 INVITE", "CSeq: x INVITE");
        let e = frame_stream(bad.as_bytes()).unwrap_err();
        assert_eq!(e.frame_len(), Some(bad.len()));
        // Endless header section.
        let junk = vec![b'a'; MAX_STREAM_HEAD_BYTES + 10];
        assert_eq!(frame_stream(&junk).unwrap_err().frame_len(), None);
    }

    #[test]
    fn validation_errors_name_the_problem() {
        let cases = [
            (
                INVITE.replace("CSeq: 314159 INVITE", "CSeq: 99999999999 INVITE"),
                "Bad Request - Invalid CSeq",
            ),
            (
                INVITE.replace("CSeq: 314159 INVITE", "CSeq: 1 BYE"),
                "Bad Request - CSeq Method Mismatch",
            ),
            (
                INVITE.replace("Max-Forwards: 70", "Max-Forwards: 256"),
                "Bad Request - Invalid Max-Forwards",
            ),
            (
                INVITE.replace("Call-ID: a84b4c76e66710@pc33.example.com\r\n", ""),
                "Bad Request - Missing Call-ID",
            ),
            (
                INVITE.replace("To: Bob", "To: Bob <sip:b@c>\r\nTo: Bob"),
                "Bad Request - Multiple To",
            ),
            (
                INVITE.replace("sip:bob@example.com SIP", "<sip:bob@example.com> SIP"),
                "Bad Request - Invalid Request-URI",
            ),
        ];
        for (m, reason) in cases {
            let e = parse(m.as_bytes()).unwrap_err();
            assert_eq!(e.status(), Some(400), "{reason}");
            assert_eq!(e.reason(), reason);
        }
        let e = parse(
            INVITE
                .replace("SIP/2.0\r\nVia", "SIP/3.0\r\nVia")
                .as_bytes(),
        )
        .unwrap_err();
        assert_eq!(e.status(), Some(505));
        let resp = e.error_response().unwrap();
        assert_eq!(resp.status, 505);
        assert_eq!(resp.call_id(), Some("a84b4c76e66710@pc33.example.com"));
        assert!(resp.to_tag().is_some());
        assert_eq!(
            resp.top_via().unwrap().branch.as_deref(),
            Some("z9hG4bK776asdhds")
        );
    }

    #[test]
    fn bad_responses_are_discarded() {
        let ok = "SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\r\n\
            From: <sip:x@y>;tag=1\r\nTo: <sip:a@b>;tag=2\r\nCall-ID: c\r\nCSeq: 1 INVITE\r\n\r\n";
        assert!(matches!(parse(ok.as_bytes()), Ok(SipMessage::Response(_))));
        for bad in [
            ok.replace("200 OK", "099 Low"),
            ok.replace("200 OK", "700 High"),
            ok.replace("200 OK", "2000 OK"),
            ok.replace("CSeq: 1", "CSeq: 4294967296"),
            ok.replace("Call-ID: c\r\n", ""),
        ] {
            let e = parse(bad.as_bytes()).unwrap_err();
            assert_eq!(e.status(), None, "{bad}");
            assert!(e.error_response().is_none());
        }
    }

    #[test]
    fn garbage_is_dropped_quietly() {
        for g in [
            &b""[..],
            b"\r\n\r\n",
            b"GET / HTTP/1.1\r\n\r\n",
            b"\xff\xfe\x00",
            b"INVITE\r\n\r\n",
        ] {
            let e = parse(g).unwrap_err();
            assert_eq!(e.status(), None);
        }
    }

    #[test]
    fn builders() {
        let r = req(INVITE);
        let mut resp = Response::for_request(&r, 180, "Ringing");
        assert_eq!(resp.vias(), r.vias());
        assert_eq!(resp.cseq(), r.cseq());
        let tag = resp.set_to_tag("abc");
        assert_eq!(tag, "abc");
        assert_eq!(resp.set_to_tag("zzz"), "abc");
        let parsed = match parse(&resp.to_bytes()).unwrap() {
            SipMessage::Response(p) => p,
            _ => panic!(),
        };
        assert_eq!(parsed.to_tag().as_deref(), Some("abc"));
        assert_eq!(parsed.reason, "Ringing");

        let mut out = Request::new(
            Method::Bye,
            SipUri::parse("sip:bob@192.0.2.4:5060").unwrap(),
        );
        let mut from = NameAddr::new(SipUri::sip(Some("alice"), "example.com", None));
        from.set_tag(&new_tag());
        out.push_via(&Via::new(
            Transport::Udp,
            "192.0.2.1",
            Some(5060),
            &new_branch(),
        ))
        .set_max_forwards(70)
        .set_from(&from)
        .set_to(&NameAddr::new(SipUri::sip(
            Some("bob"),
            "example.com",
            None,
        )))
        .set_call_id(&new_call_id("192.0.2.1"))
        .set_cseq(2, &Method::Bye)
        .set_body("text/plain", &b"bye"[..]);
        let mut again = req(std::str::from_utf8(&out.to_bytes()).unwrap());
        // The parsed copy also holds the Content-Length that serialisation added.
        assert_eq!(again.headers.remove("Content-Length"), 1);
        assert_eq!(again, out);
        assert!(again.top_via().unwrap().has_rfc3261_branch());
    }

    #[test]
    fn header_injection_is_neutralised() {
        let mut r = req(INVITE);
        r.set_header("Subject", "x\r\nVia: evil");
        let s = String::from_utf8(r.to_bytes()).unwrap();
        assert!(s.contains("Subject: x  Via: evil\r\n"));
        assert_eq!(req(&s).vias().len(), 1);
        // The start line too: a reason phrase from the TU cannot start a header.
        let resp = Response::new(486, "Busy\r\nVia: evil");
        let wire = String::from_utf8(resp.to_bytes()).unwrap();
        assert!(
            wire.starts_with("SIP/2.0 486 Busy  Via: evil\r\n"),
            "{wire}"
        );
    }

    #[test]
    fn real_world_messages() {
        // pjsua 2.x REGISTER with outbound/instance parameters and a digest answer.
        let reg = "REGISTER sip:127.0.0.1 SIP/2.0\r\n\
            Via: SIP/2.0/UDP 127.0.0.1:5071;rport;branch=z9hG4bKPj3d2a1f\r\n\
            Max-Forwards: 70\r\n\
            From: <sip:1001@127.0.0.1>;tag=Qx7-kz\r\n\
            To: <sip:1001@127.0.0.1>\r\n\
            Call-ID: 7c1f0e6a-55d3\r\n\
            CSeq: 7 REGISTER\r\n\
            User-Agent: PJSUA v2.15.1 Linux\r\n\
            Contact: <sip:1001@127.0.0.1:5071;ob>;reg-id=1;+sip.instance=\"<urn:uuid:00000000-0000-0000-0000-0000b0bd52cf>\"\r\n\
            Expires: 300\r\n\
            Allow: PRACK, INVITE, ACK, BYE, CANCEL, UPDATE, INFO, SUBSCRIBE, NOTIFY, REFER, MESSAGE, OPTIONS\r\n\
            Authorization: Digest username=\"1001\", realm=\"ctiswitch\", nonce=\"n1\", uri=\"sip:127.0.0.1\", response=\"abc\", algorithm=MD5, cnonce=\"c\", qop=auth, nc=00000001\r\n\
            Content-Length:  0\r\n\r\n";
        let r = req(reg);
        assert_eq!(r.top_via().unwrap().rport, Some(None));
        let c = r.contacts();
        let a = c[0].addr().unwrap();
        assert!(a.uri.params.contains("ob"));
        assert_eq!(
            a.params.get_unquoted("+sip.instance").as_deref(),
            Some("<urn:uuid:00000000-0000-0000-0000-0000b0bd52cf>")
        );
        assert_eq!(r.expires(), Some(300));
        assert_eq!(r.header("Allow").map(|v| v.split(',').count()), Some(12));
        // SIPp's default UAC INVITE.
        let inv = "INVITE sip:service@127.0.0.1:5060 SIP/2.0\r\n\
            Via: SIP/2.0/UDP 127.0.1.1:5061;branch=z9hG4bK-4242-1-0\r\n\
            From: sipp <sip:sipp@127.0.1.1:5061>;tag=4242SIPpTag001\r\n\
            To: sut <sip:service@127.0.0.1:5060>\r\n\
            Call-ID: 1-4242@127.0.1.1\r\n\
            CSeq: 1 INVITE\r\n\
            Contact: sip:sipp@127.0.1.1:5061\r\n\
            Max-Forwards: 70\r\n\
            Subject: Performance Test\r\n\
            Content-Type: application/sdp\r\n\
            Content-Length:   3\r\n\r\nv=0";
        let r = req(inv);
        assert_eq!(r.from().unwrap().display.as_deref(), Some("sipp"));
        assert_eq!(r.contacts()[0].addr().unwrap().uri.port, Some(5061));
        assert_eq!(&r.body[..], b"v=0");
    }

    #[test]
    fn stamp_received_on_top_via() {
        let mut r =
            req(&INVITE.replace("branch=z9hG4bK776asdhds", "branch=z9hG4bK776asdhds;rport"));
        let src: SocketAddr = "203.0.113.9:6000".parse().unwrap();
        stamp_received(&mut r, src);
        let v = r.top_via().unwrap();
        assert_eq!(v.received.as_deref(), Some("203.0.113.9"));
        assert_eq!(v.rport, Some(Some(6000)));
        assert_eq!(response_target(v, src), src);
    }
}
