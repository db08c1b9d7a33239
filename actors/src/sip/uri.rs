//! SIP URIs, parameters and name-addr values (RFC 3261 §19.1, §20.10, §25.1).
//!
//! Parsed by hand rather than with rsip: rsip 0.4 cannot represent URI headers (`?Route=…`),
//! prints unknown schemes as `scheme://…` and mis-splits user parts that contain `;`, `?` or
//! `:` (all legal, see RFC 4475 §3.1.1.2 and §3.1.1.9). Everything here works on `&str`
//! slices cut only at ASCII delimiters, so multi-byte UTF-8 never splits and nothing read from
//! the network can make these functions panic.

use std::fmt;
use std::net::Ipv6Addr;

use compact_str::CompactString;

/// A value that does not follow the RFC 3261 grammar. The text names what was wrong; the
/// message parser turns it into a `400 Bad Request - <what>` reason.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("malformed {0}")]
pub struct SyntaxError(pub &'static str);

type Result<T> = std::result::Result<T, SyntaxError>;

/// RFC 3261 §25.1 `token` characters.
pub(crate) fn is_token_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"-.!%*_+`'~".contains(&b)
}

/// True when `s` is a non-empty RFC 3261 `token`.
pub fn is_token(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(is_token_byte)
}

fn is_ws(b: u8) -> bool {
    b == b' ' || b == b'\t'
}

/// RFC 3261 `unreserved` = alphanum / mark.
fn is_unreserved(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"-_.!~*'()".contains(&b)
}

/// Checks that every byte of `s` is allowed by `ok` or starts a valid `%HH` escape.
fn check_escaped(s: &str, ok: impl Fn(u8) -> bool, what: &'static str) -> Result<()> {
    let b = s.as_bytes();
    let mut i = 0;
    while let Some(&c) = b.get(i) {
        if c == b'%' {
            let hex = |j: usize| b.get(j).is_some_and(|h| h.is_ascii_hexdigit());
            if !(hex(i + 1) && hex(i + 2)) {
                return Err(SyntaxError(what));
            }
            i += 3;
        } else if ok(c) {
            i += 1;
        } else {
            return Err(SyntaxError(what));
        }
    }
    Ok(())
}

/// Decodes `%HH` escapes exactly once (RFC 4475 §3.1.1.3: never recursively). Invalid escapes
/// are kept as they are.
pub fn unescape(s: &str) -> Vec<u8> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while let Some(&c) = b.get(i) {
        let hex = |j: usize| b.get(j).and_then(|h| (*h as char).to_digit(16));
        match (c, hex(i + 1), hex(i + 2)) {
            (b'%', Some(h), Some(l)) => {
                // h, l < 16, so the value fits a byte.
                out.push((h * 16 + l) as u8);
                i += 3;
            }
            _ => {
                out.push(c);
                i += 1;
            }
        }
    }
    out
}

/// URI scheme. `sip`/`sips` are parsed into parts; anything else is kept opaque so that the
/// switch can answer 416 (RFC 4475 §3.3.2) instead of failing the whole message.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Scheme {
    Sip,
    Sips,
    Tel,
    Other(String),
}

impl Scheme {
    fn parse(s: &str) -> Result<Scheme> {
        let mut bytes = s.bytes();
        let first_ok = bytes.next().is_some_and(|b| b.is_ascii_alphabetic());
        if !first_ok || !bytes.all(|b| b.is_ascii_alphanumeric() || b"+-.".contains(&b)) {
            return Err(SyntaxError("URI scheme"));
        }
        Ok(if s.eq_ignore_ascii_case("sip") {
            Scheme::Sip
        } else if s.eq_ignore_ascii_case("sips") {
            Scheme::Sips
        } else if s.eq_ignore_ascii_case("tel") {
            Scheme::Tel
        } else {
            Scheme::Other(s.to_string())
        })
    }

    pub fn as_str(&self) -> &str {
        match self {
            Scheme::Sip => "sip",
            Scheme::Sips => "sips",
            Scheme::Tel => "tel",
            Scheme::Other(s) => s,
        }
    }
}

impl fmt::Display for Scheme {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An ordered list of `;name[=value]` parameters. Names compare case-insensitively; values
/// are kept exactly as received (quoted values keep their quotes) so that re-serialising a
/// parameter list reproduces it.
///
/// Names and values are short (`tag`, `branch`, `lr`, an address): they are kept inline, so
/// parsing a parameter list costs one allocation for the list instead of two per parameter.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct Params(Vec<(CompactString, Option<CompactString>)>);

impl Params {
    pub fn new() -> Self {
        Params(Vec::new())
    }

    /// True when the parameter is present, with or without a value.
    pub fn contains(&self, name: &str) -> bool {
        self.0.iter().any(|(n, _)| n.eq_ignore_ascii_case(name))
    }

    /// The value of `name`, `None` when absent or value-less.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.get_raw(name).flatten()
    }

    /// `Some(None)` for a value-less parameter, `Some(Some(v))` with a value, `None` if absent.
    pub fn get_raw(&self, name: &str) -> Option<Option<&str>> {
        self.0
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_deref())
    }

    /// The value with surrounding quotes and `\` escapes removed.
    pub fn get_unquoted(&self, name: &str) -> Option<String> {
        self.get(name).map(unquote)
    }

    /// Replaces the first `name` parameter (keeping its position) or appends it.
    pub fn set(&mut self, name: &str, value: Option<&str>) {
        let value = value.map(CompactString::from);
        match self
            .0
            .iter_mut()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
        {
            Some(slot) => slot.1 = value,
            None => self.0.push((CompactString::from(name), value)),
        }
    }

    pub fn remove(&mut self, name: &str) {
        self.0.retain(|(n, _)| !n.eq_ignore_ascii_case(name));
    }

    pub fn iter(&self) -> impl Iterator<Item = (&str, Option<&str>)> {
        self.0.iter().map(|(n, v)| (n.as_str(), v.as_deref()))
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    fn push(&mut self, name: &str, value: Option<&str>) {
        self.0
            .push((CompactString::from(name), value.map(CompactString::from)));
    }

    /// Parses `*( SWS ";" SWS name [ SWS "=" SWS value ] )` as found after a name-addr or a
    /// Via sent-by (LWS around `;` and `=` is legal, RFC 4475 §3.1.1.1). Values are tokens,
    /// hosts, IPv6 references or quoted strings.
    pub(crate) fn parse_header_params(s: &str) -> Result<Params> {
        let mut c = Cursor::new(s);
        let mut params = Params::new();
        loop {
            c.skip_ws();
            if c.at_end() {
                return Ok(params);
            }
            if !c.eat(b';') {
                return Err(SyntaxError("parameter list"));
            }
            c.skip_ws();
            let name = c.take_while(is_token_byte);
            if name.is_empty() {
                return Err(SyntaxError("parameter name"));
            }
            c.skip_ws();
            if c.eat(b'=') {
                c.skip_ws();
                let value = match c.peek() {
                    Some(b'"') => c.quoted()?,
                    Some(b'[') => {
                        let v = c.take_while(|b| b != b']' && !is_ws(b) && b != b';');
                        if !c.eat(b']') {
                            return Err(SyntaxError("IPv6 reference"));
                        }
                        c.slice_back(v.len() + 1)
                    }
                    // token / host / IPv6 without brackets, plus the odd characters that
                    // deployed UAs put in unquoted values: everything but delimiters.
                    _ => c.take_while(|b| b > b' ' && b != 0x7f && !b";,\"<>\\".contains(&b)),
                };
                if value.is_empty() {
                    return Err(SyntaxError("parameter value"));
                }
                params.push(name, Some(value));
            } else {
                params.push(name, None);
            }
        }
    }
}

impl fmt::Display for Params {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (n, v) in &self.0 {
            match v {
                Some(v) => write!(f, ";{n}={v}")?,
                None => write!(f, ";{n}")?,
            }
        }
        Ok(())
    }
}

/// Removes the quotes and `\` escapes of a quoted-string; returns other text unchanged.
pub fn unquote(s: &str) -> String {
    let Some(inner) = s.strip_prefix('"').and_then(|s| s.strip_suffix('"')) else {
        return s.to_string();
    };
    let mut out = String::with_capacity(inner.len());
    let mut chars = inner.chars();
    while let Some(ch) = chars.next() {
        if ch == '\\' {
            if let Some(next) = chars.next() {
                out.push(next);
            }
        } else {
            out.push(ch);
        }
    }
    out
}

/// Quotes `s` as a quoted-string. `"`, `\` and control characters become quoted-pairs; CR and
/// LF cannot be represented and are dropped so a value can never inject a header line.
pub fn quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for ch in s.chars() {
        match ch {
            '\r' | '\n' => {}
            '"' | '\\' => {
                out.push('\\');
                out.push(ch);
            }
            c if c.is_ascii_control() && c != '\t' => {
                out.push('\\');
                out.push(c);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// A byte cursor over a `&str`. Predicates given to `take_while` treat every byte ≥ 0x80 the
/// same way, so a cut never lands inside a UTF-8 sequence; slicing still goes through `get`
/// so that a mistake would give an error, never a panic.
pub(crate) struct Cursor<'a> {
    s: &'a str,
    pos: usize,
}

impl<'a> Cursor<'a> {
    pub(crate) fn new(s: &'a str) -> Self {
        Cursor { s, pos: 0 }
    }

    pub(crate) fn peek(&self) -> Option<u8> {
        self.s.as_bytes().get(self.pos).copied()
    }

    pub(crate) fn at_end(&self) -> bool {
        self.pos >= self.s.len()
    }

    pub(crate) fn eat(&mut self, b: u8) -> bool {
        if self.peek() == Some(b) {
            self.pos += 1;
            true
        } else {
            false
        }
    }

    pub(crate) fn skip_ws(&mut self) {
        while self.peek().is_some_and(is_ws) {
            self.pos += 1;
        }
    }

    pub(crate) fn take_while(&mut self, f: impl Fn(u8) -> bool) -> &'a str {
        let start = self.pos;
        while self.peek().is_some_and(&f) {
            self.pos += 1;
        }
        self.s.get(start..self.pos).unwrap_or("")
    }

    /// The `n` bytes just consumed.
    fn slice_back(&self, n: usize) -> &'a str {
        self.s
            .get(self.pos.saturating_sub(n)..self.pos)
            .unwrap_or("")
    }

    pub(crate) fn rest(&self) -> &'a str {
        self.s.get(self.pos..).unwrap_or("")
    }

    /// Consumes a quoted-string and returns it with its quotes. An unterminated string is the
    /// RFC 4475 §3.1.2.6 error.
    pub(crate) fn quoted(&mut self) -> Result<&'a str> {
        let start = self.pos;
        if !self.eat(b'"') {
            return Err(SyntaxError("quoted string"));
        }
        loop {
            match self.peek() {
                None => return Err(SyntaxError("quoted string (unbalanced quotes)")),
                Some(b'"') => {
                    self.pos += 1;
                    return self
                        .s
                        .get(start..self.pos)
                        .ok_or(SyntaxError("quoted string"));
                }
                Some(b'\\') => {
                    // quoted-pair = "\" %x00-09 / %x0B-0C / %x0E-7F: ASCII only, so skipping
                    // two bytes stays on a character boundary.
                    match self.s.as_bytes().get(self.pos + 1) {
                        Some(&n) if n < 0x80 && n != b'\r' && n != b'\n' => self.pos += 2,
                        _ => return Err(SyntaxError("quoted-pair")),
                    }
                }
                Some(_) => self.pos += 1,
            }
        }
    }
}

/// A URI as found in a Request-URI or inside a name-addr.
///
/// For `sip:`/`sips:` the parts are split out and kept in their escaped form (`user` of
/// `sip:%75ser@h` is `%75ser`, see [`SipUri::user_unescaped`]). For other schemes the text
/// after `scheme:` is kept verbatim in `opaque` and `host` is empty.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct SipUri {
    pub scheme: Scheme,
    // Inline strings: a user part and a host fit in 24 bytes, so parsing the URIs of every
    // message allocates nothing for them.
    pub user: Option<CompactString>,
    pub password: Option<String>,
    pub host: CompactString,
    pub port: Option<u16>,
    pub params: Params,
    /// `?name=value&…` URI headers, raw. Never allowed in a Request-URI.
    pub headers: Vec<(String, String)>,
    /// Everything after `scheme:` for non-SIP schemes.
    pub opaque: Option<String>,
}

impl SipUri {
    /// A `sip:` URI for `user@host[:port]`.
    pub fn sip(user: Option<&str>, host: &str, port: Option<u16>) -> SipUri {
        SipUri {
            scheme: Scheme::Sip,
            user: user.map(CompactString::from),
            password: None,
            host: CompactString::from(host),
            port,
            params: Params::new(),
            headers: Vec::new(),
            opaque: None,
        }
    }

    pub fn is_sip(&self) -> bool {
        matches!(self.scheme, Scheme::Sip | Scheme::Sips)
    }

    /// The user part with `%HH` decoded once; may contain any byte, NUL included
    /// (RFC 4475 §3.1.1.4).
    pub fn user_unescaped(&self) -> Option<Vec<u8>> {
        self.user.as_deref().map(unescape)
    }

    /// The host as used to address a packet: IPv6 brackets removed.
    pub fn host_unbracketed(&self) -> &str {
        strip_brackets(&self.host)
    }

    /// `host[:port]`.
    pub fn host_port(&self) -> String {
        match self.port {
            Some(p) => format!("{}:{}", self.host, p),
            None => self.host.to_string(),
        }
    }

    /// Parses a URI. Whitespace, `<`, `>`, `"` and non-ASCII bytes are never part of a URI
    /// (RFC 4475 §3.1.2.7, §3.1.2.8, §3.1.2.14).
    pub fn parse(s: &str) -> Result<SipUri> {
        if s.is_empty()
            || s.bytes()
                .any(|b| b <= b' ' || b >= 0x7f || b"<>\"".contains(&b))
        {
            return Err(SyntaxError("URI"));
        }
        let (scheme, rest) = s.split_once(':').ok_or(SyntaxError("URI"))?;
        let scheme = Scheme::parse(scheme)?;
        if !matches!(scheme, Scheme::Sip | Scheme::Sips) {
            if rest.is_empty() {
                return Err(SyntaxError("URI"));
            }
            return Ok(SipUri {
                scheme,
                user: None,
                password: None,
                host: CompactString::default(),
                port: None,
                params: Params::new(),
                headers: Vec::new(),
                opaque: Some(rest.to_string()),
            });
        }
        // '@' is excluded from every component but userinfo (it must be escaped elsewhere),
        // so the first '@' ends the userinfo even when the user part holds ';' '?' or ':'.
        let (userinfo, hostpart) = match rest.split_once('@') {
            Some((u, h)) => (Some(u), h),
            None => (None, rest),
        };
        let (user, password) = match userinfo {
            None => (None, None),
            Some(u) => {
                let (user, pw) = match u.split_once(':') {
                    Some((user, pw)) => (user, Some(pw)),
                    None => (u, None),
                };
                if user.is_empty() {
                    return Err(SyntaxError("URI user part"));
                }
                check_escaped(
                    user,
                    |b| is_unreserved(b) || b"&=+$,;?/".contains(&b),
                    "URI user part",
                )?;
                if let Some(pw) = pw {
                    check_escaped(
                        pw,
                        |b| is_unreserved(b) || b"&=+$,".contains(&b),
                        "URI password",
                    )?;
                }
                (Some(CompactString::from(user)), pw.map(str::to_string))
            }
        };
        let (hostpart, headers) = match hostpart.split_once('?') {
            Some((h, hdrs)) => (h, Some(hdrs)),
            None => (hostpart, None),
        };
        let mut c = Cursor::new(hostpart);
        let host = parse_host(&mut c)?;
        let port = if c.eat(b':') {
            Some(parse_port(c.take_while(|b| b.is_ascii_digit()))?)
        } else {
            None
        };
        let mut params = Params::new();
        let rest = c.rest();
        if !rest.is_empty() {
            let Some(plist) = rest.strip_prefix(';') else {
                return Err(SyntaxError("URI host"));
            };
            for p in plist.split(';') {
                let (n, v) = match p.split_once('=') {
                    Some((n, v)) => (n, Some(v)),
                    None => (p, None),
                };
                let pchar = |b: u8| is_unreserved(b) || b"[]/:&+$".contains(&b);
                if n.is_empty() || v.is_some_and(str::is_empty) {
                    return Err(SyntaxError("URI parameter"));
                }
                check_escaped(n, pchar, "URI parameter")?;
                if let Some(v) = v {
                    check_escaped(v, pchar, "URI parameter")?;
                }
                params.push(n, v);
            }
        }
        let mut hdrs = Vec::new();
        if let Some(h) = headers {
            for kv in h.split('&') {
                let (n, v) = kv.split_once('=').ok_or(SyntaxError("URI header"))?;
                let hchar = |b: u8| is_unreserved(b) || b"[]/?:+$".contains(&b);
                if n.is_empty() {
                    return Err(SyntaxError("URI header"));
                }
                check_escaped(n, hchar, "URI header")?;
                check_escaped(v, hchar, "URI header")?;
                hdrs.push((n.to_string(), v.to_string()));
            }
        }
        Ok(SipUri {
            scheme,
            user,
            password,
            host: CompactString::from(host),
            port,
            params,
            headers: hdrs,
            opaque: None,
        })
    }
}

impl std::str::FromStr for SipUri {
    type Err = SyntaxError;
    fn from_str(s: &str) -> Result<SipUri> {
        SipUri::parse(s)
    }
}

pub(crate) fn strip_brackets(h: &str) -> &str {
    h.strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(h)
}

/// host = hostname / IPv4address / IPv6reference. `_` is tolerated in host names because
/// deployed equipment uses it.
pub(crate) fn parse_host<'a>(c: &mut Cursor<'a>) -> Result<&'a str> {
    if c.peek() == Some(b'[') {
        let start = c.rest();
        c.eat(b'[');
        let inner = c.take_while(|b| b.is_ascii_hexdigit() || b == b':' || b == b'.');
        if !c.eat(b']') || inner.parse::<Ipv6Addr>().is_err() {
            return Err(SyntaxError("IPv6 reference"));
        }
        return start.get(..inner.len() + 2).ok_or(SyntaxError("host"));
    }
    let host = c.take_while(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.' || b == b'_');
    if host.is_empty() || host.starts_with('.') || host.starts_with('-') {
        return Err(SyntaxError("host"));
    }
    Ok(host)
}

pub(crate) fn parse_port(digits: &str) -> Result<u16> {
    if digits.is_empty() || digits.len() > 5 {
        return Err(SyntaxError("port"));
    }
    digits.parse().map_err(|_| SyntaxError("port"))
}

impl fmt::Display for SipUri {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:", self.scheme)?;
        if let Some(opaque) = &self.opaque {
            return f.write_str(opaque);
        }
        if let Some(user) = &self.user {
            f.write_str(user)?;
            if let Some(pw) = &self.password {
                write!(f, ":{pw}")?;
            }
            f.write_str("@")?;
        }
        f.write_str(&self.host)?;
        if let Some(p) = self.port {
            write!(f, ":{p}")?;
        }
        write!(f, "{}", self.params)?;
        for (i, (n, v)) in self.headers.iter().enumerate() {
            write!(f, "{}{n}={v}", if i == 0 { '?' } else { '&' })?;
        }
        Ok(())
    }
}

/// `[display-name] <URI> *(;param)` or `addr-spec *(;param)`: the value of From, To, Contact,
/// Route, Record-Route and friends. `display` is unquoted/unescaped; it is re-quoted on output.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct NameAddr {
    pub display: Option<String>,
    pub uri: SipUri,
    pub params: Params,
}

impl NameAddr {
    pub fn new(uri: SipUri) -> Self {
        NameAddr {
            display: None,
            uri,
            params: Params::new(),
        }
    }

    pub fn tag(&self) -> Option<&str> {
        self.params.get("tag")
    }

    pub fn set_tag(&mut self, tag: &str) {
        self.params.set("tag", Some(tag));
    }

    /// Parses one name-addr / addr-spec value (lists must already be split at commas).
    ///
    /// Rejects what RFC 4475 asks to reject: unbalanced quotes (§3.1.2.6), whitespace inside
    /// `<>` (§3.1.2.14), unquoted non-token display names (§3.1.2.15), and a bare addr-spec
    /// carrying `?headers` or `,` (§3.1.2.13 — those need `<>`).
    pub fn parse(s: &str) -> Result<NameAddr> {
        let s = s.trim_matches(|c| c == ' ' || c == '\t');
        let mut c = Cursor::new(s);
        let display = if c.peek() == Some(b'"') {
            let q = c.quoted()?;
            c.skip_ws();
            if c.peek() != Some(b'<') {
                return Err(SyntaxError("name-addr"));
            }
            Some(unquote(q))
        } else {
            let first_lt = s.find('<');
            let first_semi = s.find(';');
            match (first_lt, first_semi) {
                (Some(lt), semi) if semi.is_none_or(|sc| lt < sc) => {
                    let dn = c.take_while(|b| b != b'<');
                    let words: Vec<&str> =
                        dn.split([' ', '\t']).filter(|w| !w.is_empty()).collect();
                    // Tokens per RFC 3261, plus raw UTF-8: softphones send unquoted
                    // non-ASCII names, which are harmless (non-token ASCII such as the ','
                    // of RFC 4475 §3.1.2.15 is still refused).
                    let word_ok = |w: &&str| w.bytes().all(|b| is_token_byte(b) || b >= 0x80);
                    if !words.iter().all(word_ok) {
                        return Err(SyntaxError("display name"));
                    }
                    (!words.is_empty()).then(|| words.join(" "))
                }
                _ => {
                    // addr-spec form: the URI ends at the first ';' (later ';' are header
                    // parameters, RFC 3261 §20.10).
                    let end = first_semi.unwrap_or(s.len());
                    let spec = s.get(..end).ok_or(SyntaxError("addr-spec"))?.trim_end();
                    if spec.contains(['?', ',']) {
                        return Err(SyntaxError("addr-spec (needs <>)"));
                    }
                    let uri = SipUri::parse(spec)?;
                    let params = Params::parse_header_params(s.get(end..).unwrap_or(""))?;
                    return Ok(NameAddr {
                        display: None,
                        uri,
                        params,
                    });
                }
            }
        };
        if !c.eat(b'<') {
            return Err(SyntaxError("name-addr"));
        }
        let inner = c.take_while(|b| b != b'>');
        if !c.eat(b'>') {
            return Err(SyntaxError("name-addr (missing >)"));
        }
        let uri = SipUri::parse(inner)?;
        let params = Params::parse_header_params(c.rest())?;
        Ok(NameAddr {
            display,
            uri,
            params,
        })
    }
}

impl std::str::FromStr for NameAddr {
    type Err = SyntaxError;
    fn from_str(s: &str) -> Result<NameAddr> {
        NameAddr::parse(s)
    }
}

impl fmt::Display for NameAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(d) = &self.display {
            write!(f, "{} ", quote(d))?;
        }
        write!(f, "<{}>{}", self.uri, self.params)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sip_uri_parts() {
        let u = SipUri::parse("sip:alice:secret@Example.COM:5070;transport=tcp;lr?Subject=hi&X=1")
            .unwrap();
        assert_eq!(u.scheme, Scheme::Sip);
        assert_eq!(u.user.as_deref(), Some("alice"));
        assert_eq!(u.password.as_deref(), Some("secret"));
        assert_eq!(u.host, "Example.COM");
        assert_eq!(u.port, Some(5070));
        assert_eq!(u.params.get("TRANSPORT"), Some("tcp"));
        assert!(u.params.contains("lr"));
        assert_eq!(u.headers.len(), 2);
        assert_eq!(
            u.to_string(),
            "sip:alice:secret@Example.COM:5070;transport=tcp;lr?Subject=hi&X=1"
        );
    }

    #[test]
    fn user_part_with_semicolon_and_escapes() {
        let u = SipUri::parse("sip:user;par=u%40example.net@example.com").unwrap();
        assert_eq!(u.user.as_deref(), Some("user;par=u%40example.net"));
        assert_eq!(u.host, "example.com");
        let u = SipUri::parse("sip:null-%00-null@example.com").unwrap();
        assert_eq!(u.user_unescaped().unwrap(), b"null-\0-null");
        // Decoded once only: %25%34%31 is "%41", not "A".
        assert_eq!(unescape("v%61lue%25%34%31"), b"value%41");
    }

    #[test]
    fn ipv6_and_opaque() {
        let u = SipUri::parse("sip:[2001:db8::1]:5060").unwrap();
        assert_eq!(u.host, "[2001:db8::1]");
        assert_eq!(u.host_unbracketed(), "2001:db8::1");
        assert_eq!(u.port, Some(5060));
        let u = SipUri::parse("soap.beep://192.0.2.103:3002").unwrap();
        assert_eq!(u.scheme, Scheme::Other("soap.beep".into()));
        assert_eq!(u.to_string(), "soap.beep://192.0.2.103:3002");
        assert!(SipUri::parse("sip:user@example.com; lr").is_err());
        assert!(SipUri::parse("<sip:user@example.com>").is_err());
        assert!(SipUri::parse("sip:").is_err());
        assert!(SipUri::parse("sip:u@h:99999").is_err());
        assert!(SipUri::parse("sip:u@h;;").is_err());
    }

    #[test]
    fn name_addr_forms() {
        let n = NameAddr::parse(r#""J Rosenberg \\\""  <sip:jdrosen@example.com> ; tag = 98asjd8"#)
            .unwrap();
        assert_eq!(n.display.as_deref(), Some(r#"J Rosenberg \""#));
        assert_eq!(n.tag(), Some("98asjd8"));
        assert_eq!(
            n.to_string(),
            r#""J Rosenberg \\\"" <sip:jdrosen@example.com>;tag=98asjd8"#
        );
        let n = NameAddr::parse("caller<sip:caller@example.com>;tag=323").unwrap();
        assert_eq!(n.display.as_deref(), Some("caller"));
        let n = NameAddr::parse("sip:+1972@gw1.example.net;unknownparam").unwrap();
        assert!(n.params.contains("unknownparam"));
        assert!(n.uri.params.is_empty());
        let n = NameAddr::parse("<sip:+1972@gw1.example.net;unknownparam>").unwrap();
        assert!(n.params.is_empty());
        assert!(n.uri.params.contains("unknownparam"));
        let n = NameAddr::parse("张三 <sip:8001@example.com>").unwrap();
        assert_eq!(n.display.as_deref(), Some("张三"));
        let n = NameAddr::parse("isbn:2983792873").unwrap();
        assert_eq!(n.uri.opaque.as_deref(), Some("2983792873"));
    }

    #[test]
    fn name_addr_rejects() {
        assert!(NameAddr::parse(r#""Mr. J. User <sip:j.user@example.com>"#).is_err());
        assert!(NameAddr::parse(r#""Watson, Thomas" < sip:t.watson@example.org >"#).is_err());
        assert!(NameAddr::parse("Bell, Alexander <sip:a.g.bell@example.com>;tag=43").is_err());
        assert!(NameAddr::parse("sip:user@example.com?Route=%3Csip:sip.example.com%3E").is_err());
        assert!(NameAddr::parse(r#""Joe" <sip:joe@example.org>;;;;"#).is_err());
        assert!(NameAddr::parse("").is_err());
    }

    #[test]
    fn quote_never_emits_newlines() {
        assert_eq!(quote("a\"b\\c\r\nd"), r#""a\"b\\cd""#);
        assert_eq!(unquote(&quote("x\"y")), "x\"y");
    }

    /// rsip 0.4 is kept only as an oracle for the plain URIs it handles well.
    #[test]
    fn agrees_with_rsip_on_plain_uris() {
        for s in [
            "sip:alice@example.com",
            "sip:bob@192.0.2.4:5070",
            "sips:carol@example.org;transport=tcp",
        ] {
            let ours = SipUri::parse(s).unwrap();
            let theirs = rsip::Uri::try_from(s).unwrap();
            assert_eq!(ours.user.as_deref(), theirs.user());
            assert_eq!(ours.host, theirs.host().to_string());
            assert_eq!(ours.port, theirs.port().map(|p| *p.value()));
        }
    }
}
