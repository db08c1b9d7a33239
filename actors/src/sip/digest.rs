//! HTTP Digest authentication for SIP (RFC 2617, RFC 7616 with MD5, `qop=auth`).
//!
//! Written by hand (no HTTP crate) because SIP clients differ from browsers in ways that
//! matter: SIPp hashes `uri="sip:host:port"` rather than the Request-URI, `nc` must be
//! hashed as the exact text the client sent, and many phones still answer without `qop`
//! (RFC 2069).
//!
//! Server side: [`DigestServer`] issues stateless nonces (issue time + random salt + a
//! keyed MD5 signature), so any node holding the secret can check them, and keeps a bounded
//! per-nonce record of the highest `nc` seen to refuse replays.
//!
//! Client side: [`respond`] answers a challenge (trunk registration, tests).
//!
//! Everything here is sans-IO and takes `&str`; callers extract header values themselves.

use std::collections::{HashMap, VecDeque};
use std::fmt::Write as _;
use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use md5::{Digest as _, Md5};

/// How long a nonce stays fresh. Past this an authentic nonce yields [`Verdict::Stale`]:
/// the client re-authenticates with a new nonce without asking its user for a password.
pub const NONCE_LIFETIME: Duration = Duration::from_secs(300);

/// Nonces this far in the future (by our own clock) are still accepted, so a node whose
/// clock stepped back a little does not reject nonces it issued a moment ago.
pub const NONCE_FUTURE_SKEW: Duration = Duration::from_secs(5);

/// Most nonces whose `nc` is tracked for replay protection. At ~100 bytes per entry this
/// bounds the table to about half a megabyte.
pub const NC_CACHE_CAPACITY: usize = 4096;

/// The only algorithm supported; RFC 3261 clients all speak it.
pub const ALGORITHM_MD5: &str = "MD5";

/// The only quality of protection supported (`auth-int` would need the body hash).
pub const QOP_AUTH: &str = "auth";

const SCHEME: &str = "Digest";
/// Hex digits of the issue time (seconds) at the start of a nonce.
const NONCE_TS_HEX: usize = 16;
/// Hex digits of the random salt that makes nonces issued in the same second distinct.
const NONCE_SALT_HEX: usize = 16;
/// Hex digits of an MD5 digest.
const MD5_HEX: usize = 32;
const NONCE_LEN: usize = NONCE_TS_HEX + NONCE_SALT_HEX + MD5_HEX;
/// `nc` is exactly 8 hex digits (RFC 2617 §3.2.2).
const NC_HEX_LEN: usize = 8;

/// Errors from parsing `Authorization` / `WWW-Authenticate` values.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DigestError {
    #[error("authentication scheme is not Digest: {0:?}")]
    NotDigest(String),
    #[error("malformed digest parameters: {0}")]
    Malformed(&'static str),
    #[error("missing digest parameter {0:?}")]
    Missing(&'static str),
    #[error("bad nonce-count {0:?}: want 8 hex digits")]
    BadNonceCount(String),
    #[error("unsupported digest algorithm {0:?}")]
    UnsupportedAlgorithm(String),
    #[error("unsupported qop {0:?}")]
    UnsupportedQop(String),
}

/// Parameters of an `Authorization` / `Proxy-Authorization` header.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Credentials {
    pub username: String,
    pub realm: String,
    pub nonce: String,
    /// The `uri` the client hashed; use it rather than the Request-URI.
    pub uri: String,
    pub response: String,
    pub algorithm: Option<String>,
    pub cnonce: Option<String>,
    pub qop: Option<String>,
    /// `nc` exactly as sent, because the hash covers the text.
    pub nc: Option<String>,
    /// `nc` parsed as hex, for replay checks.
    pub nc_value: Option<u32>,
    pub opaque: Option<String>,
}

/// Parameters of a `WWW-Authenticate` / `Proxy-Authenticate` challenge.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Challenge {
    pub realm: String,
    pub nonce: String,
    pub opaque: Option<String>,
    pub algorithm: Option<String>,
    /// The qop options offered (`auth`, `auth-int`), lower-cased.
    pub qop: Vec<String>,
    pub stale: bool,
}

/// Outcome of [`DigestServer::verify`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// The credentials are good.
    Ok,
    /// The password was right but the nonce is too old or its `nc` was already used:
    /// challenge again with `stale=true`.
    Stale,
    /// Wrong password, forged or foreign nonce, wrong realm, unsupported parameters.
    Invalid,
}

/// Issues challenges and checks answers for one realm.
pub struct DigestServer {
    realm: String,
    secret: String,
    nc_seen: Mutex<NcCache>,
}

impl DigestServer {
    pub fn new(realm: impl Into<String>, secret_key: impl Into<String>) -> Self {
        Self {
            realm: realm.into(),
            secret: secret_key.into(),
            nc_seen: Mutex::new(NcCache::new(NC_CACHE_CAPACITY)),
        }
    }

    pub fn realm(&self) -> &str {
        &self.realm
    }

    /// A challenge header value with a fresh nonce.
    pub fn challenge(&self, stale: bool) -> String {
        self.challenge_at(stale, SystemTime::now())
    }

    /// [`challenge`](Self::challenge) at a given time (tests, simulated clocks).
    pub fn challenge_at(&self, stale: bool, now: SystemTime) -> String {
        let nonce = self.make_nonce(unix_secs(now), rand::random::<u64>());
        let mut out = String::with_capacity(128);
        out.push_str(SCHEME);
        out.push_str(" realm=");
        push_quoted(&mut out, &self.realm);
        out.push_str(", nonce=\"");
        out.push_str(&nonce);
        out.push_str("\", algorithm=MD5, qop=\"auth\"");
        if stale {
            out.push_str(", stale=true");
        }
        out
    }

    /// Checks `creds` for a request with `method` against the user's plain password.
    pub fn verify(
        &self,
        creds: &Credentials,
        method: &str,
        password: &str,
        now: SystemTime,
    ) -> Verdict {
        let ha1 = ha1(&creds.username, &creds.realm, password);
        self.verify_ha1(creds, method, &ha1, now)
    }

    /// Checks `creds` against a stored HA1 = MD5(user:realm:password), lower-case hex.
    pub fn verify_ha1(
        &self,
        creds: &Credentials,
        method: &str,
        ha1_hex: &str,
        now: SystemTime,
    ) -> Verdict {
        if creds.realm != self.realm {
            return Verdict::Invalid;
        }
        if let Some(alg) = &creds.algorithm {
            if !alg.eq_ignore_ascii_case(ALGORITHM_MD5) {
                return Verdict::Invalid;
            }
        }
        let qop = match (&creds.qop, &creds.nc, &creds.cnonce) {
            (None, _, _) => None,
            (Some(q), Some(nc), Some(cnonce)) if q.eq_ignore_ascii_case(QOP_AUTH) => {
                Some(QopParams { nc, cnonce, qop: q })
            }
            _ => return Verdict::Invalid,
        };
        let Some(issued) = self.check_nonce(&creds.nonce) else {
            return Verdict::Invalid;
        };
        let ha1_lower = lowercase(ha1_hex);
        let expected = response_digest(&ha1_lower, &creds.nonce, method, &creds.uri, qop);
        if !constant_time_eq_folding_case(&expected.0, creds.response.as_bytes()) {
            return Verdict::Invalid;
        }
        // Only a correct digest earns `stale` (RFC 2617 §3.2.1), so a guesser learns nothing.
        let now_s = unix_secs(now);
        let future_limit = now_s.saturating_add(NONCE_FUTURE_SKEW.as_secs());
        if issued > future_limit || now_s.saturating_sub(issued) > NONCE_LIFETIME.as_secs() {
            return Verdict::Stale;
        }
        match creds.nc_value {
            // RFC 2069 answers carry no counter; the nonce lifetime is their only bound.
            None => Verdict::Ok,
            Some(nc) => {
                let mut cache = match self.nc_seen.lock() {
                    Ok(guard) => guard,
                    // A panic elsewhere cannot corrupt a map of integers; keep serving.
                    Err(poisoned) => poisoned.into_inner(),
                };
                if cache.accept(&creds.nonce, issued, nc, now_s) {
                    Verdict::Ok
                } else {
                    Verdict::Stale
                }
            }
        }
    }

    /// Returns the issue time of a nonce this server signed, or `None` if it did not.
    fn check_nonce(&self, nonce: &str) -> Option<u64> {
        if nonce.len() != NONCE_LEN || !nonce.bytes().all(|b| b.is_ascii_hexdigit()) {
            return None;
        }
        let ts = u64::from_str_radix(&nonce[..NONCE_TS_HEX], 16).ok()?;
        let salt =
            u64::from_str_radix(&nonce[NONCE_TS_HEX..NONCE_TS_HEX + NONCE_SALT_HEX], 16).ok()?;
        let expected = self.make_nonce(ts, salt);
        constant_time_eq_folding_case(expected.as_bytes(), nonce.as_bytes()).then_some(ts)
    }

    fn make_nonce(&self, ts: u64, salt: u64) -> String {
        let mut nonce = String::with_capacity(NONCE_LEN);
        let _ = write!(
            nonce,
            "{ts:0w1$x}{salt:0w2$x}",
            w1 = NONCE_TS_HEX,
            w2 = NONCE_SALT_HEX
        );
        // Keyed hash over realm too, so a nonce from one realm is no good in another.
        let sig = Md5Hex::of(&[
            self.secret.as_bytes(),
            b":",
            nonce.as_bytes(),
            b":",
            self.realm.as_bytes(),
        ]);
        nonce.push_str(sig.as_str());
        nonce
    }
}

/// Per-nonce highest `nc`, bounded, oldest-first eviction.
///
/// A nonce evicted while still fresh could otherwise be replayed with any `nc`; so the
/// cache remembers the newest issue time it ever evicted, and refuses (as stale) unknown
/// nonces issued at or before it. Their owners just fetch a new nonce.
struct NcCache {
    capacity: usize,
    highest: HashMap<String, (u32, u64)>,
    order: VecDeque<String>,
    evicted_up_to: Option<u64>,
}

impl NcCache {
    fn new(capacity: usize) -> Self {
        Self {
            capacity,
            highest: HashMap::new(),
            order: VecDeque::new(),
            evicted_up_to: None,
        }
    }

    /// Records `nc` for `nonce` if it is above every count seen for it; false on replay.
    fn accept(&mut self, nonce: &str, issued: u64, nc: u32, now: u64) -> bool {
        if let Some((seen, _)) = self.highest.get_mut(nonce) {
            if nc <= *seen {
                return false;
            }
            *seen = nc;
            return true;
        }
        if self.evicted_up_to.is_some_and(|floor| issued <= floor) {
            return false;
        }
        self.expire(now);
        while self.order.len() >= self.capacity {
            let Some(old) = self.order.pop_front() else {
                break;
            };
            if let Some((_, old_issued)) = self.highest.remove(&old) {
                if now.saturating_sub(old_issued) <= NONCE_LIFETIME.as_secs() {
                    self.evicted_up_to = Some(self.evicted_up_to.unwrap_or(0).max(old_issued));
                }
            }
        }
        self.highest.insert(nonce.to_owned(), (nc, issued));
        self.order.push_back(nonce.to_owned());
        true
    }

    /// Drops entries whose nonce has expired: the lifetime check already refuses them.
    fn expire(&mut self, now: u64) {
        while let Some(front) = self.order.front() {
            let issued = self.highest.get(front).map_or(0, |&(_, t)| t);
            if now.saturating_sub(issued) <= NONCE_LIFETIME.as_secs() {
                break;
            }
            if let Some(old) = self.order.pop_front() {
                self.highest.remove(&old);
            }
        }
    }
}

/// The qop-related inputs of a response: `nc`, `cnonce`, and the qop token.
#[derive(Debug, Clone, Copy)]
pub struct QopParams<'a> {
    pub nc: &'a str,
    pub cnonce: &'a str,
    pub qop: &'a str,
}

/// HA1 = MD5(username:realm:password), lower-case hex.
pub fn ha1(username: &str, realm: &str, password: &str) -> String {
    Md5Hex::of(&[
        username.as_bytes(),
        b":",
        realm.as_bytes(),
        b":",
        password.as_bytes(),
    ])
    .as_str()
    .to_owned()
}

/// The request-digest: with qop `MD5(HA1:nonce:nc:cnonce:qop:HA2)`, without it (RFC 2069)
/// `MD5(HA1:nonce:HA2)`, where HA2 = MD5(method:uri).
pub fn compute_response(
    ha1_hex: &str,
    nonce: &str,
    method: &str,
    uri: &str,
    qop: Option<QopParams<'_>>,
) -> String {
    response_digest(ha1_hex, nonce, method, uri, qop)
        .as_str()
        .to_owned()
}

/// `compute_response` on the stack: hashed piece by piece, nothing allocated.
fn response_digest(
    ha1_hex: &str,
    nonce: &str,
    method: &str,
    uri: &str,
    qop: Option<QopParams<'_>>,
) -> Md5Hex {
    let ha2 = Md5Hex::of(&[method.as_bytes(), b":", uri.as_bytes()]);
    let (ha1, nonce, ha2) = (
        ha1_hex.as_bytes(),
        nonce.as_bytes(),
        ha2.as_str().as_bytes(),
    );
    match qop {
        Some(q) => Md5Hex::of(&[
            ha1,
            b":",
            nonce,
            b":",
            q.nc.as_bytes(),
            b":",
            q.cnonce.as_bytes(),
            b":",
            q.qop.as_bytes(),
            b":",
            ha2,
        ]),
        None => Md5Hex::of(&[ha1, b":", nonce, b":", ha2]),
    }
}

/// `text` in lower case, copied only when it has an upper-case letter.
fn lowercase(text: &str) -> std::borrow::Cow<'_, str> {
    if text.bytes().any(|b| b.is_ascii_uppercase()) {
        std::borrow::Cow::Owned(text.to_ascii_lowercase())
    } else {
        std::borrow::Cow::Borrowed(text)
    }
}

/// `constant_time_eq` of a lower-case `expected` against `given` in any case: hex
/// digests may come back in upper case.
fn constant_time_eq_folding_case(expected: &[u8], given: &[u8]) -> bool {
    constant_time_eq_with(expected, given, |b| b.to_ascii_lowercase())
}

/// Byte-wise equality whose running time depends only on the lengths, not on where the
/// inputs differ, so a response cannot be guessed one character at a time.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    constant_time_eq_with(a, b, |b| b)
}

/// `a == b.map(fold)`, in a time that depends only on the lengths.
fn constant_time_eq_with(a: &[u8], b: &[u8], fold: impl Fn(u8) -> u8) -> bool {
    // Lengths are public (an MD5 hex is always 32), so folding them in is enough.
    let mut diff = u8::from(a.len() != b.len());
    for (i, &x) in a.iter().enumerate() {
        let y = b.get(i).copied().unwrap_or(0);
        diff |= x ^ fold(y);
    }
    std::hint::black_box(diff) == 0
}

/// Parses an `Authorization` / `Proxy-Authorization` value.
pub fn parse_credentials(header_value: &str) -> Result<Credentials, DigestError> {
    let params = parse_params(header_value)?;
    let mut creds = Credentials::default();
    const REQUIRED: [&str; 5] = ["username", "realm", "nonce", "uri", "response"];
    let mut have = [false; REQUIRED.len()];
    for (name, value) in params {
        if let Some(i) = REQUIRED.iter().position(|r| r.eq_ignore_ascii_case(name)) {
            // The first occurrence wins, so a later duplicate cannot override what was hashed.
            if !have[i] {
                have[i] = true;
                let field = match i {
                    0 => &mut creds.username,
                    1 => &mut creds.realm,
                    2 => &mut creds.nonce,
                    3 => &mut creds.uri,
                    _ => &mut creds.response,
                };
                *field = value;
            }
            continue;
        }
        let optional = [
            ("algorithm", &mut creds.algorithm),
            ("cnonce", &mut creds.cnonce),
            ("qop", &mut creds.qop),
            ("nc", &mut creds.nc),
            ("opaque", &mut creds.opaque),
        ];
        if let Some((_, field)) = optional
            .into_iter()
            .find(|(known, _)| known.eq_ignore_ascii_case(name))
        {
            set_once(field, value);
        }
    }
    if let Some(i) = have.iter().position(|h| !h) {
        return Err(DigestError::Missing(REQUIRED[i]));
    }
    if let Some(nc) = &creds.nc {
        creds.nc_value = Some(parse_nc(nc)?);
    }
    Ok(creds)
}

/// Parses a `WWW-Authenticate` / `Proxy-Authenticate` value.
pub fn parse_challenge(header_value: &str) -> Result<Challenge, DigestError> {
    let params = parse_params(header_value)?;
    let mut ch = Challenge::default();
    let (mut realm, mut nonce) = (None, None);
    for (name, value) in params {
        match name.to_ascii_lowercase().as_str() {
            "realm" => set_once(&mut realm, value),
            "nonce" => set_once(&mut nonce, value),
            "opaque" => set_once(&mut ch.opaque, value),
            "algorithm" => set_once(&mut ch.algorithm, value),
            "qop" => {
                ch.qop = value
                    .split(',')
                    .map(|q| q.trim().to_ascii_lowercase())
                    .filter(|q| !q.is_empty())
                    .collect();
            }
            "stale" => ch.stale = value.eq_ignore_ascii_case("true"),
            _ => {}
        }
    }
    ch.realm = realm.ok_or(DigestError::Missing("realm"))?;
    ch.nonce = nonce.ok_or(DigestError::Missing("nonce"))?;
    Ok(ch)
}

/// Answers a challenge: the value of an `Authorization` (or `Proxy-Authorization`) header.
///
/// Uses `qop=auth` when offered, RFC 2069 style otherwise. `nc` is this client's count of
/// requests made with this nonce, starting at 1.
pub fn respond(
    challenge_header: &str,
    method: &str,
    uri: &str,
    user: &str,
    password: &str,
    cnonce: &str,
    nc: u32,
) -> Result<String, DigestError> {
    let ch = parse_challenge(challenge_header)?;
    if let Some(alg) = &ch.algorithm {
        if !alg.eq_ignore_ascii_case(ALGORITHM_MD5) {
            return Err(DigestError::UnsupportedAlgorithm(alg.clone()));
        }
    }
    let use_qop = if ch.qop.is_empty() {
        false
    } else if ch.qop.iter().any(|q| q == QOP_AUTH) {
        true
    } else {
        return Err(DigestError::UnsupportedQop(ch.qop.join(",")));
    };
    let nc_text = format!("{nc:0w$x}", w = NC_HEX_LEN);
    let qop = use_qop.then_some(QopParams {
        nc: &nc_text,
        cnonce,
        qop: QOP_AUTH,
    });
    let response = compute_response(&ha1(user, &ch.realm, password), &ch.nonce, method, uri, qop);

    let mut out = String::with_capacity(256);
    out.push_str(SCHEME);
    for (i, (name, value)) in [
        ("username", user),
        ("realm", &ch.realm),
        ("nonce", &ch.nonce),
        ("uri", uri),
        ("response", &response),
    ]
    .into_iter()
    .enumerate()
    {
        out.push_str(if i == 0 { " " } else { ", " });
        out.push_str(name);
        out.push('=');
        push_quoted(&mut out, value);
    }
    out.push_str(", algorithm=MD5");
    if use_qop {
        out.push_str(", cnonce=");
        push_quoted(&mut out, cnonce);
        // qop and nc are tokens, unquoted (RFC 2617 §3.2.2; some servers insist).
        let _ = write!(out, ", qop={QOP_AUTH}, nc={nc_text}");
    }
    if let Some(opaque) = &ch.opaque {
        out.push_str(", opaque=");
        push_quoted(&mut out, opaque);
    }
    Ok(out)
}

fn parse_nc(nc: &str) -> Result<u32, DigestError> {
    if nc.len() != NC_HEX_LEN || !nc.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(DigestError::BadNonceCount(nc.to_owned()));
    }
    u32::from_str_radix(nc, 16).map_err(|_| DigestError::BadNonceCount(nc.to_owned()))
}

fn set_once(slot: &mut Option<String>, value: String) {
    if slot.is_none() {
        *slot = Some(value);
    }
}

/// Splits `Digest a="x", b=y, ...` into (name, unquoted value) pairs.
///
/// Tolerates any spacing, quoted or bare values, empty list items; rejects other schemes,
/// unterminated quotes and parameters without `=`.
fn parse_params(header_value: &str) -> Result<Vec<(&str, String)>, DigestError> {
    let s = header_value.trim_start();
    let scheme_end = s.find(|c: char| c.is_ascii_whitespace()).unwrap_or(s.len());
    let scheme = &s[..scheme_end];
    if !scheme.eq_ignore_ascii_case(SCHEME) {
        return Err(DigestError::NotDigest(scheme.to_owned()));
    }
    let bytes = s.as_bytes();
    let mut i = scheme_end;
    let mut out = Vec::new();
    loop {
        while i < bytes.len() && (bytes[i].is_ascii_whitespace() || bytes[i] == b',') {
            i += 1;
        }
        if i >= bytes.len() {
            break;
        }
        let name_start = i;
        while i < bytes.len() && is_token_byte(bytes[i]) {
            i += 1;
        }
        if i == name_start {
            return Err(DigestError::Malformed("expected a parameter name"));
        }
        let name = &s[name_start..i];
        while i < bytes.len() && bytes[i].is_ascii_whitespace() {
            i += 1;
        }
        if bytes.get(i) != Some(&b'=') {
            return Err(DigestError::Malformed("parameter without '='"));
        }
        i += 1;
        while i < bytes.len() && bytes[i].is_ascii_whitespace() {
            i += 1;
        }
        let value = if bytes.get(i) == Some(&b'"') {
            i += 1;
            let (value, end) = unquote(&s[i..])?;
            i += end;
            value
        } else {
            let start = i;
            while i < bytes.len() && bytes[i] != b',' && !bytes[i].is_ascii_whitespace() {
                i += 1;
            }
            s[start..i].to_owned()
        };
        out.push((name, value));
        while i < bytes.len() && bytes[i].is_ascii_whitespace() {
            i += 1;
        }
        match bytes.get(i) {
            None | Some(b',') => {}
            Some(_) => return Err(DigestError::Malformed("expected ',' between parameters")),
        }
    }
    Ok(out)
}

/// The value of a quoted string whose opening quote has been read, and the length of
/// `rest` it took, closing quote included. Values without a quoted-pair (all that phones
/// send) are copied in one piece.
fn unquote(rest: &str) -> Result<(String, usize), DigestError> {
    let unterminated = DigestError::Malformed("unterminated quoted string");
    let bytes = rest.as_bytes();
    let Some(stop) = bytes.iter().position(|&b| b == b'"' || b == b'\\') else {
        return Err(unterminated);
    };
    if bytes[stop] == b'"' {
        return Ok((rest[..stop].to_owned(), stop + 1));
    }
    let mut value = String::with_capacity(rest.len());
    let mut chars = rest.char_indices();
    while let Some((off, c)) = chars.next() {
        match c {
            '"' => return Ok((value, off + 1)),
            // quoted-pair: the next character is taken literally.
            '\\' => match chars.next() {
                Some((_, escaped)) => value.push(escaped),
                None => break,
            },
            _ => value.push(c),
        }
    }
    Err(unterminated)
}

fn is_token_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"-_.!%*+`'~".contains(&b)
}

/// Appends `"value"` escaping `"` and `\` as quoted-pairs.
fn push_quoted(out: &mut String, value: &str) {
    out.push('"');
    for c in value.chars() {
        if c == '"' || c == '\\' {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('"');
}

/// A lower-case hex MD5, kept on the stack.
struct Md5Hex([u8; MD5_HEX]);

impl Md5Hex {
    /// The digest of the parts one after the other.
    fn of(parts: &[&[u8]]) -> Self {
        const HEX: &[u8; 16] = b"0123456789abcdef";
        let mut hasher = Md5::new();
        for part in parts {
            hasher.update(part);
        }
        let mut out = [0u8; MD5_HEX];
        for (i, b) in hasher.finalize().into_iter().enumerate() {
            out[2 * i] = HEX[usize::from(b >> 4)];
            out[2 * i + 1] = HEX[usize::from(b & 0x0f)];
        }
        Self(out)
    }

    fn as_str(&self) -> &str {
        // Only ASCII hex digits are ever written.
        std::str::from_utf8(&self.0).unwrap_or_default()
    }
}

fn unix_secs(t: SystemTime) -> u64 {
    // A clock before 1970 is a misconfigured host; treating it as 0 just expires nonces.
    t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

#[cfg(test)]
mod tests {
    use super::*;

    const REALM: &str = "ctiswitch.test";
    const SECRET: &str = "s3cret-key";
    const T0: u64 = 1_700_000_000;

    fn at(secs: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(secs)
    }

    fn server() -> DigestServer {
        DigestServer::new(REALM, SECRET)
    }

    /// A SIPp-style answer: `uri` is `sip:host:port`, not the Request-URI.
    fn answer(server: &DigestServer, now: u64, password: &str, nc: u32) -> Credentials {
        let ch = server.challenge_at(false, at(now));
        let value = respond(
            &ch,
            "REGISTER",
            "sip:127.0.0.1:5060",
            "1001",
            password,
            "abcdef01",
            nc,
        )
        .expect("respond");
        parse_credentials(&value).expect("parse")
    }

    #[test]
    fn rfc2617_example_vector() {
        let h = ha1("Mufasa", "testrealm@host.com", "Circle Of Life");
        let resp = compute_response(
            &h,
            "dcd98b7102dd2f0e8b11d0f600bfb0c093",
            "GET",
            "/dir/index.html",
            Some(QopParams {
                nc: "00000001",
                cnonce: "0a4f113b",
                qop: "auth",
            }),
        );
        assert_eq!(resp, "6629fae49393a05397450978507c4ef1");
    }

    #[test]
    fn rfc2617_example_via_respond_and_parse() {
        let challenge = r#"Digest
                 realm="testrealm@host.com",
                 qop="auth,auth-int",
                 nonce="dcd98b7102dd2f0e8b11d0f600bfb0c093",
                 opaque="5ccc069c403ebaf9f0171e9517f40e41""#;
        let auth = respond(
            challenge,
            "GET",
            "/dir/index.html",
            "Mufasa",
            "Circle Of Life",
            "0a4f113b",
            1,
        )
        .expect("respond");
        let creds = parse_credentials(&auth).expect("parse");
        assert_eq!(creds.response, "6629fae49393a05397450978507c4ef1");
        assert_eq!(
            creds.opaque.as_deref(),
            Some("5ccc069c403ebaf9f0171e9517f40e41")
        );
        assert_eq!(creds.nc.as_deref(), Some("00000001"));
        assert_eq!(creds.qop.as_deref(), Some("auth"));
    }

    #[test]
    fn parse_tolerates_spacing_order_quoting_and_unknown_params() {
        let v =
            "  digest   response=\"0123456789abcdef0123456789abcdef\",uri = sip:10.0.0.1:5060 ,\
                 username=\"10\\\"01\", Realm=\"r\",  nonce=abc ,foo=\"bar, baz\", nc=0000000a,\
                 ,  cnonce=\"xyz\", QOP=auth, algorithm=MD5";
        let c = parse_credentials(v).expect("parse");
        assert_eq!(c.username, "10\"01");
        assert_eq!(c.realm, "r");
        assert_eq!(c.nonce, "abc");
        assert_eq!(c.uri, "sip:10.0.0.1:5060");
        assert_eq!(c.nc.as_deref(), Some("0000000a"));
        assert_eq!(c.nc_value, Some(10));
        assert_eq!(c.cnonce.as_deref(), Some("xyz"));
        assert_eq!(c.qop.as_deref(), Some("auth"));
        assert_eq!(c.algorithm.as_deref(), Some("MD5"));
    }

    #[test]
    fn parse_errors() {
        assert!(matches!(
            parse_credentials("Basic QWxhZGRpbjpvcGVuIHNlc2FtZQ=="),
            Err(DigestError::NotDigest(_))
        ));
        assert!(matches!(
            parse_credentials("Digest username=\"a, realm=\"b\""),
            Err(DigestError::Malformed(_)) | Err(DigestError::Missing(_))
        ));
        assert!(matches!(
            parse_credentials("Digest username=\"a"),
            Err(DigestError::Malformed(_))
        ));
        // An escaped quote does not close the string.
        assert!(matches!(
            parse_credentials("Digest username=\"a\\\""),
            Err(DigestError::Malformed(_))
        ));
        assert_eq!(
            parse_credentials("Digest username=a, realm=b, nonce=c, uri=d"),
            Err(DigestError::Missing("response"))
        );
        assert!(matches!(
            parse_credentials("Digest username=a, realm=b, nonce=c, uri=d, response=e, nc=1"),
            Err(DigestError::BadNonceCount(_))
        ));
        assert!(matches!(
            parse_credentials("Digest username=a realm=b"),
            Err(DigestError::Malformed(_))
        ));
        assert!(parse_credentials("").is_err());
    }

    #[test]
    fn nc_is_hex() {
        assert_eq!(parse_nc("0000000a"), Ok(10));
        assert_eq!(parse_nc("000000FF"), Ok(255));
        assert!(parse_nc("0000000g").is_err());
        assert!(parse_nc("+000000a").is_err());
    }

    #[test]
    fn challenge_format() {
        let ch = server().challenge_at(true, at(T0));
        assert!(ch.starts_with("Digest realm=\"ctiswitch.test\", nonce=\""));
        assert!(ch.contains("algorithm=MD5, qop=\"auth\""));
        assert!(ch.ends_with(", stale=true"));
        let parsed = parse_challenge(&ch).expect("parse");
        assert!(parsed.stale);
        assert_eq!(parsed.qop, vec!["auth"]);
        assert_eq!(parsed.nonce.len(), NONCE_LEN);
        // Two challenges in the same second still differ (per-nonce nc tracking needs it).
        assert_ne!(
            parse_challenge(&server().challenge_at(false, at(T0)))
                .expect("parse")
                .nonce,
            parsed.nonce
        );
    }

    #[test]
    fn sip_register_ok_with_qop() {
        let s = server();
        let c = answer(&s, T0, "pw1001", 1);
        assert_eq!(s.verify(&c, "REGISTER", "pw1001", at(T0 + 1)), Verdict::Ok);
        // Same nonce, higher nc: fine.
        let c2 = answer_same_nonce(&c, "pw1001", 2);
        assert_eq!(s.verify(&c2, "REGISTER", "pw1001", at(T0 + 2)), Verdict::Ok);
    }

    fn answer_same_nonce(prev: &Credentials, password: &str, nc: u32) -> Credentials {
        let ch = format!(
            "Digest realm=\"{REALM}\", nonce=\"{}\", qop=\"auth\"",
            prev.nonce
        );
        let v = respond(
            &ch,
            "REGISTER",
            &prev.uri,
            &prev.username,
            password,
            "c2",
            nc,
        )
        .expect("respond");
        parse_credentials(&v).expect("parse")
    }

    #[test]
    fn sip_vector_constructed() {
        // Expected values computed independently with Python's hashlib.
        let h = ha1("1001", "ctiswitch.test", "pw1001");
        assert_eq!(h, "90903e780e7a68aa81e62186550a31dc");
        let uri = "sip:127.0.0.1:5060";
        let got = compute_response(
            &h,
            "0000000065e1c2a0",
            "REGISTER",
            uri,
            Some(QopParams {
                nc: "0000000a",
                cnonce: "6b8b4567",
                qop: "auth",
            }),
        );
        assert_eq!(got, "a5efafd6ab549bfd776e66e74f079e2d");
        assert_eq!(
            compute_response(&h, "0000000065e1c2a0", "REGISTER", uri, None),
            "faee9f9a485101cb86998410772e383f"
        );
        // And the same through a header as SIPp would send it.
        let hdr = "Digest username=\"1001\",realm=\"ctiswitch.test\",cnonce=\"6b8b4567\",\
                   nc=0000000a,qop=auth,uri=\"sip:127.0.0.1:5060\",nonce=\"0000000065e1c2a0\",\
                   response=\"a5efafd6ab549bfd776e66e74f079e2d\",algorithm=MD5";
        let c = parse_credentials(hdr).expect("parse");
        let q = QopParams {
            nc: c.nc.as_deref().unwrap_or_default(),
            cnonce: c.cnonce.as_deref().unwrap_or_default(),
            qop: c.qop.as_deref().unwrap_or_default(),
        };
        assert_eq!(
            compute_response(&h, &c.nonce, "REGISTER", &c.uri, Some(q)),
            c.response
        );
    }

    #[test]
    fn rfc2069_without_qop() {
        let s = server();
        let ch = s.challenge_at(false, at(T0));
        let nonce = parse_challenge(&ch).expect("parse").nonce;
        let legacy = format!("Digest realm=\"{REALM}\", nonce=\"{nonce}\"");
        let v = respond(
            &legacy,
            "REGISTER",
            "sip:ctiswitch.test",
            "1001",
            "pw",
            "x",
            1,
        )
        .expect("respond");
        assert!(!v.contains("qop"));
        let c = parse_credentials(&v).expect("parse");
        assert_eq!(s.verify(&c, "REGISTER", "pw", at(T0)), Verdict::Ok);
        // The same answer again is accepted: RFC 2069 has no counter to check.
        assert_eq!(s.verify(&c, "REGISTER", "pw", at(T0 + 1)), Verdict::Ok);
    }

    #[test]
    fn verify_ha1_and_uppercase_response() {
        let s = server();
        let mut c = answer(&s, T0, "pw", 1);
        c.response = c.response.to_ascii_uppercase();
        let h = ha1("1001", REALM, "pw").to_ascii_uppercase();
        assert_eq!(s.verify_ha1(&c, "REGISTER", &h, at(T0)), Verdict::Ok);
    }

    #[test]
    fn wrong_password_wrong_method_wrong_realm() {
        let s = server();
        let c = answer(&s, T0, "pw", 1);
        assert_eq!(s.verify(&c, "REGISTER", "nope", at(T0)), Verdict::Invalid);
        assert_eq!(s.verify(&c, "INVITE", "pw", at(T0)), Verdict::Invalid);
        let other = DigestServer::new("other.realm", SECRET);
        assert_eq!(other.verify(&c, "REGISTER", "pw", at(T0)), Verdict::Invalid);
        // Wrong password on an expired nonce is Invalid, not Stale.
        let late = at(T0 + NONCE_LIFETIME.as_secs() + 10);
        assert_eq!(s.verify(&c, "REGISTER", "nope", late), Verdict::Invalid);
    }

    #[test]
    fn stale_nonce() {
        let s = server();
        let c = answer(&s, T0, "pw", 1);
        let late = at(T0 + NONCE_LIFETIME.as_secs() + 1);
        assert_eq!(s.verify(&c, "REGISTER", "pw", late), Verdict::Stale);
        let edge = at(T0 + NONCE_LIFETIME.as_secs());
        assert_eq!(s.verify(&c, "REGISTER", "pw", edge), Verdict::Ok);
    }

    #[test]
    fn tampered_or_foreign_nonce() {
        let s = server();
        let c = answer(&s, T0, "pw", 1);
        // Move the timestamp forward (to dodge expiry) and re-sign the response with the
        // right password: the nonce signature no longer matches.
        let mut forged_nonce = c.nonce.clone().into_bytes();
        forged_nonce[NONCE_TS_HEX - 1] = if forged_nonce[NONCE_TS_HEX - 1] == b'f' {
            b'e'
        } else {
            b'f'
        };
        let forged_nonce = String::from_utf8(forged_nonce).expect("ascii");
        let forged = forge(&c, &forged_nonce, "pw");
        assert_eq!(
            s.verify(&forged, "REGISTER", "pw", at(T0)),
            Verdict::Invalid
        );
        // A nonce signed with another key.
        let foreign = DigestServer::new(REALM, "other-key").challenge_at(false, at(T0));
        let n = parse_challenge(&foreign).expect("parse").nonce;
        assert_eq!(
            s.verify(&forge(&c, &n, "pw"), "REGISTER", "pw", at(T0)),
            Verdict::Invalid
        );
        // Not even our format.
        assert_eq!(
            s.verify(&forge(&c, "abc", "pw"), "REGISTER", "pw", at(T0)),
            Verdict::Invalid
        );
    }

    fn forge(c: &Credentials, nonce: &str, password: &str) -> Credentials {
        let mut f = c.clone();
        f.nonce = nonce.to_owned();
        f.response = compute_response(
            &ha1(&c.username, &c.realm, password),
            nonce,
            "REGISTER",
            &c.uri,
            Some(QopParams {
                nc: c.nc.as_deref().unwrap_or_default(),
                cnonce: c.cnonce.as_deref().unwrap_or_default(),
                qop: "auth",
            }),
        );
        f
    }

    #[test]
    fn replayed_nc_rejected() {
        let s = server();
        let c = answer(&s, T0, "pw", 5);
        assert_eq!(s.verify(&c, "REGISTER", "pw", at(T0)), Verdict::Ok);
        assert_eq!(s.verify(&c, "REGISTER", "pw", at(T0 + 1)), Verdict::Stale);
        let lower = answer_same_nonce(&c, "pw", 4);
        assert_eq!(
            s.verify(&lower, "REGISTER", "pw", at(T0 + 1)),
            Verdict::Stale
        );
        let next = answer_same_nonce(&c, "pw", 6);
        assert_eq!(s.verify(&next, "REGISTER", "pw", at(T0 + 1)), Verdict::Ok);
    }

    #[test]
    fn qop_without_nc_is_invalid() {
        let s = server();
        let mut c = answer(&s, T0, "pw", 1);
        c.nc = None;
        c.nc_value = None;
        assert_eq!(s.verify(&c, "REGISTER", "pw", at(T0)), Verdict::Invalid);
    }

    #[test]
    fn nc_cache_eviction_refuses_evicted_live_nonces() {
        let mut cache = NcCache::new(2);
        assert!(cache.accept("n1", T0, 1, T0));
        assert!(cache.accept("n2", T0 + 1, 1, T0 + 1));
        assert!(cache.accept("n3", T0 + 2, 1, T0 + 2)); // evicts n1, still fresh
        assert_eq!(cache.highest.len(), 2);
        // n1 is gone from the table; replaying it must not start over at nc=1.
        assert!(!cache.accept("n1", T0, 1, T0 + 3));
        // Nonces issued after the eviction floor are fine.
        assert!(cache.accept("n4", T0 + 3, 1, T0 + 3));
        // Expired entries are dropped without raising the floor.
        let later = T0 + 3 + NONCE_LIFETIME.as_secs() + 1;
        assert!(cache.accept("n5", later, 1, later));
        assert_eq!(cache.highest.len(), 1);
    }

    #[test]
    fn constant_time_compare() {
        assert!(constant_time_eq(b"", b""));
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"ab"));
        assert!(!constant_time_eq(b"ab", b"abc"));
        assert!(!constant_time_eq(b"ab\0", b"ab"));
        assert!(!constant_time_eq(b"", b"a"));
    }

    #[test]
    fn respond_rejects_unsupported() {
        let ch = "Digest realm=\"r\", nonce=\"n\", algorithm=SHA-256, qop=\"auth\"";
        assert!(matches!(
            respond(ch, "REGISTER", "sip:r", "u", "p", "c", 1),
            Err(DigestError::UnsupportedAlgorithm(_))
        ));
        let ch = "Digest realm=\"r\", nonce=\"n\", qop=\"auth-int\"";
        assert!(matches!(
            respond(ch, "REGISTER", "sip:r", "u", "p", "c", 1),
            Err(DigestError::UnsupportedQop(_))
        ));
        assert!(matches!(
            respond("Digest nonce=\"n\"", "REGISTER", "sip:r", "u", "p", "c", 1),
            Err(DigestError::Missing("realm"))
        ));
    }

    #[test]
    fn parsers_never_panic_on_noise() {
        use rand::{Rng, SeedableRng};
        // Pieces that steer the noise into the parser's interesting states.
        const PIECES: [&str; 14] = [
            "Digest ", "digest", "username", "=", "\"", "\\", ",", " ", "nc", "00000001", "é",
            "qop", "realm", "\t",
        ];
        let mut rng = rand::rngs::StdRng::seed_from_u64(2617);
        for _ in 0..5_000 {
            let n = rng.gen_range(0..12);
            let input: String = (0..n)
                .map(|_| PIECES[rng.gen_range(0..PIECES.len())])
                .collect();
            let _ = parse_credentials(&input);
            let _ = parse_challenge(&input);
        }
    }
}
