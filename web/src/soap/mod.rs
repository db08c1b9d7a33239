//! The manual's SOAP web services (interfaces 57–61) under `/bridge/services/`: a tiny SOAP
//! 1.1 reader and writer shared by the services, one file per service.
//!
//! - `routing.rs` — interface 61, `IntelligentRoutingServiceImpl` (routing rules).
//!
//! # Protocol (D-45: the manual gives no WSDL, namespace or fault behaviour)
//!
//! SOAP 1.1, document/literal wrapped, as JAX-WS/CXF would publish the manual's Java
//! signatures: `GET <service>?wsdl` returns the WSDL 1.1 (its `soap:address` is built from
//! the request's `Host`, so clients call back the server they fetched it from); `POST
//! <service>` takes an envelope whose `Body` holds one wrapper element named after the
//! operation, whose children are the parameters as the manual names them. Answers are
//! `<op>Response` wrappers with the result in `<return>` elements (unqualified, as JAX-WS
//! writes them).
//!
//! Reading is namespace-tolerant so clients generated against the vendor's own WSDL keep
//! working: the envelope must be SOAP 1.1's, but the operation and its parameters are
//! matched by local name, whatever their namespace or prefix (`ns0:`, `tns:`, none).
//! `SOAPAction` is not needed (it may be absent, empty or anything): the body decides.
//! An `xsi:nil="true"` element counts as absent; unknown elements are ignored; header
//! entries are ignored unless they carry `mustUnderstand="1"` (then a `MustUnderstand`
//! fault, as SOAP 1.1 requires). DTDs are refused (no entity expansion).
//!
//! Every failure is a SOAP 1.1 fault with HTTP status 500 (SOAP 1.1 §6.2): `soap:Client`
//! for what the caller can fix (not XML, not an envelope, unknown operation, a bad or missing
//! parameter, an unknown id), `soap:Server` for the switch's own failures (the message is
//! logged, the fault only says "internal error"), `soap:VersionMismatch` for a SOAP 1.2 or
//! other non-1.1 envelope.

pub mod routing;

use std::borrow::Cow;

use actix_web::http::header::ContentType;
use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};

/// The SOAP 1.1 envelope namespace.
pub const SOAP11_NS: &str = "http://schemas.xmlsoap.org/soap/envelope/";
/// The SOAP 1.2 envelope namespace (recognised only to answer `VersionMismatch`).
pub const SOAP12_NS: &str = "http://www.w3.org/2003/05/soap-envelope";
/// XML Schema instance (`xsi:nil`).
pub const XSI_NS: &str = "http://www.w3.org/2001/XMLSchema-instance";

/// Nesting deeper than this inside the operation element is refused (no parameter of these
/// services nests more than two levels).
const MAX_DEPTH: usize = 16;
/// Most XML nodes parsed from one request.
const MAX_NODES: u32 = 100_000;

/// Registers every SOAP service.
pub fn routes(cfg: &mut web::ServiceConfig) {
    routing::routes(cfg);
}

/// A SOAP 1.1 fault: what went wrong, and whose fault it is. The message is the
/// `faultstring`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Fault {
    /// The envelope is not SOAP 1.1 (`soap:VersionMismatch`).
    #[error("{0}")]
    VersionMismatch(String),
    /// A header entry with `mustUnderstand="1"` (`soap:MustUnderstand`).
    #[error("{0}")]
    MustUnderstand(String),
    /// The request is wrong (`soap:Client`).
    #[error("{0}")]
    Client(String),
    /// The switch failed (`soap:Server`).
    #[error("{0}")]
    Server(String),
}

impl Fault {
    /// A client fault.
    pub fn client(message: impl Into<String>) -> Fault {
        Fault::Client(message.into())
    }

    /// The qualified `faultcode` (prefix `soap` bound to SOAP 1.1).
    pub fn code(&self) -> &'static str {
        match self {
            Fault::VersionMismatch(_) => "soap:VersionMismatch",
            Fault::MustUnderstand(_) => "soap:MustUnderstand",
            Fault::Client(_) => "soap:Client",
            Fault::Server(_) => "soap:Server",
        }
    }

    /// The whole fault envelope.
    pub fn to_xml(&self) -> String {
        envelope(&format!(
            "<soap:Fault><faultcode>{}</faultcode><faultstring>{}</faultstring></soap:Fault>",
            self.code(),
            escape(&self.to_string())
        ))
    }

    /// HTTP 500 with the fault envelope.
    pub fn response(&self) -> HttpResponse {
        xml_response(StatusCode::INTERNAL_SERVER_ERROR, self.to_xml())
    }
}

/// Maps a repository error: invalid input is the client's fault (the message names the
/// field, e.g. `invalid operationtype: …`); `NotFound` becomes `not_found`; database
/// failures are logged and answered with a bare `soap:Server` "internal error".
pub fn repo_fault(op: &str, e: entities::Error, not_found: impl FnOnce() -> String) -> Fault {
    match e {
        e @ (entities::Error::Invalid { .. } | entities::Error::Conflict { .. }) => {
            Fault::Client(e.to_string())
        }
        entities::Error::NotFound => Fault::Client(not_found()),
        other => {
            tracing::error!(operation = op, "SOAP service database error: {other}");
            Fault::Server("internal error".into())
        }
    }
}

/// An element of the request, copied out of the parsed document: its namespace and local
/// name, its text (all direct text and CDATA, concatenated, as written) and its element
/// children.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Element {
    pub ns: Option<String>,
    pub name: String,
    pub text: String,
    /// `xsi:nil="true"` (or `"1"`).
    pub nil: bool,
    pub children: Vec<Element>,
}

impl Element {
    /// The first child element with local name `name` (any namespace) that is not nil.
    pub fn child(&self, name: &str) -> Option<&Element> {
        self.children
            .iter()
            .find(|c| c.name == name)
            .filter(|c| !c.nil)
    }

    /// The text of the child `name`; `None` when absent or nil.
    pub fn value(&self, name: &str) -> Option<&str> {
        self.child(name).map(|c| c.text.as_str())
    }

    /// The `Clark` name, `{ns}name` (just `name` without a namespace), for messages.
    pub fn qualified_name(&self) -> String {
        match &self.ns {
            Some(ns) => format!("{{{ns}}}{}", self.name),
            None => self.name.clone(),
        }
    }
}

/// Reads a SOAP 1.1 request: the one element inside `Body` (the operation wrapper).
pub fn parse_request(body: &[u8]) -> Result<Element, Fault> {
    let text =
        std::str::from_utf8(body).map_err(|_| Fault::client("the request is not UTF-8 text"))?;
    // A UTF-8 byte-order mark is allowed before the XML declaration.
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    if text.trim().is_empty() {
        return Err(Fault::client(
            "the request body is empty (expected a SOAP 1.1 envelope)",
        ));
    }
    let options = roxmltree::ParsingOptions {
        allow_dtd: false,
        nodes_limit: MAX_NODES,
        ..roxmltree::ParsingOptions::default()
    };
    let doc = roxmltree::Document::parse_with_options(text, options)
        .map_err(|e| Fault::client(format!("the request is not well-formed XML: {e}")))?;
    let root = doc.root_element();
    if root.tag_name().name() != "Envelope" {
        return Err(Fault::client(format!(
            "the document element is <{}>, not a SOAP Envelope",
            root.tag_name().name()
        )));
    }
    match root.tag_name().namespace() {
        Some(SOAP11_NS) => {}
        Some(SOAP12_NS) => {
            return Err(Fault::VersionMismatch(format!(
                "SOAP 1.2 envelopes are not served: use SOAP 1.1 ({SOAP11_NS})"
            )))
        }
        other => {
            return Err(Fault::VersionMismatch(format!(
                "the Envelope's namespace is {:?}, not SOAP 1.1's {SOAP11_NS}",
                other.unwrap_or("")
            )))
        }
    }
    let mut body_el = None;
    for child in root.children().filter(|n| n.is_element()) {
        let name = child.tag_name();
        match (name.namespace(), name.name()) {
            (Some(SOAP11_NS), "Header") => check_header(child)?,
            (Some(SOAP11_NS), "Body") => {
                body_el = Some(child);
                break;
            }
            _ => {}
        }
    }
    let body_el = body_el.ok_or_else(|| Fault::client("the SOAP Envelope has no Body"))?;
    let mut ops = body_el.children().filter(|n| n.is_element());
    let op = ops
        .next()
        .ok_or_else(|| Fault::client("the SOAP Body holds no operation element"))?;
    if ops.next().is_some() {
        return Err(Fault::client(
            "the SOAP Body holds more than one element (one operation per request)",
        ));
    }
    copy(op, 0)
}

fn check_header(header: roxmltree::Node) -> Result<(), Fault> {
    for entry in header.children().filter(|n| n.is_element()) {
        let must = entry
            .attribute((SOAP11_NS, "mustUnderstand"))
            .map(str::trim);
        if matches!(must, Some("1" | "true")) {
            return Err(Fault::MustUnderstand(format!(
                "header {} is not understood",
                entry.tag_name().name()
            )));
        }
    }
    Ok(())
}

fn copy(node: roxmltree::Node, depth: usize) -> Result<Element, Fault> {
    if depth > MAX_DEPTH {
        return Err(Fault::client("the request nests elements too deeply"));
    }
    let nil = node
        .attribute((XSI_NS, "nil"))
        .map(str::trim)
        .is_some_and(|v| v == "true" || v == "1");
    let mut text = String::new();
    let mut children = Vec::new();
    for child in node.children() {
        if child.is_text() {
            text.push_str(child.text().unwrap_or_default());
        } else if child.is_element() {
            children.push(copy(child, depth + 1)?);
        }
    }
    Ok(Element {
        ns: node.tag_name().namespace().map(str::to_owned),
        name: node.tag_name().name().to_owned(),
        text,
        nil,
        children,
    })
}

/// Escapes text for XML content and attribute values (`&`, `<`, `>`, `"`, `'`). Characters
/// XML 1.0 cannot carry at all (control characters other than tab, LF and CR, lone
/// surrogates cannot occur in Rust strings, U+FFFE/U+FFFF) become U+FFFD, so the answer
/// always parses.
pub fn escape(s: &str) -> Cow<'_, str> {
    let plain = |c: char| !matches!(c, '&' | '<' | '>' | '"' | '\'') && xml_char(c);
    if s.chars().all(plain) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 16);
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            // A CR would be read back as LF: keep it as a character reference.
            '\r' => out.push_str("&#13;"),
            c if xml_char(c) => out.push(c),
            _ => out.push('\u{fffd}'),
        }
    }
    Cow::Owned(out)
}

/// Whether XML 1.0 allows `c` (its `Char` production), CR aside (see [`escape`]).
fn xml_char(c: char) -> bool {
    matches!(c, '\t' | '\n' | '\u{20}'..='\u{d7ff}' | '\u{e000}'..='\u{fffd}' | '\u{10000}'..)
}

/// A SOAP 1.1 envelope around `body` (already serialised; it may use the `soap` prefix).
pub fn envelope(body: &str) -> String {
    format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\
<soap:Envelope xmlns:soap=\"{SOAP11_NS}\"><soap:Body>{body}</soap:Body></soap:Envelope>"
    )
}

/// `<name>text</name>`, escaped.
pub fn text_element(out: &mut String, name: &str, text: &str) {
    out.push('<');
    out.push_str(name);
    out.push('>');
    out.push_str(&escape(text));
    out.push_str("</");
    out.push_str(name);
    out.push('>');
}

/// HTTP 200 with an envelope around `body`.
pub fn ok(body: &str) -> HttpResponse {
    xml_response(StatusCode::OK, envelope(body))
}

fn xml_response(status: StatusCode, xml: String) -> HttpResponse {
    HttpResponse::build(status)
        .insert_header(ContentType(text_xml()))
        .body(xml)
}

fn text_xml() -> actix_web::mime::Mime {
    "text/xml; charset=utf-8"
        .parse()
        .unwrap_or(actix_web::mime::TEXT_XML)
}

/// Whether a GET asks for the WSDL: a `wsdl` query parameter (any case, any value).
pub fn wants_wsdl(req: &HttpRequest) -> bool {
    req.query_string().split('&').any(|p| {
        p.split('=')
            .next()
            .is_some_and(|k| k.eq_ignore_ascii_case("wsdl"))
    })
}

/// The URL clients should post to: the request's scheme and `Host` (as actix reads it,
/// `Forwarded`/`X-Forwarded-Host` first when a proxy set them), then `path`.
pub fn endpoint_url(req: &HttpRequest, path: &str) -> String {
    let info = req.connection_info();
    format!("{}://{}{}", info.scheme(), info.host(), path)
}

/// The answer to a GET on a service: the WSDL for `?wsdl`, else 405 naming what to do.
pub fn get_service(req: &HttpRequest, wsdl: impl FnOnce(&str) -> String) -> HttpResponse {
    if wants_wsdl(req) {
        let url = endpoint_url(req, req.path());
        return HttpResponse::Ok()
            .insert_header(ContentType(text_xml()))
            .body(wsdl(&url));
    }
    HttpResponse::MethodNotAllowed()
        .insert_header(("Allow", "POST"))
        .insert_header(ContentType::plaintext())
        .body(format!(
            "SOAP 1.1 service: POST an envelope here; the WSDL is at {}?wsdl\n",
            req.path()
        ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(body: &str) -> String {
        format!(
            r#"<soap:Envelope xmlns:soap="{SOAP11_NS}"><soap:Body>{body}</soap:Body></soap:Envelope>"#
        )
    }

    #[test]
    fn reads_the_operation_with_any_prefix() {
        let xml = r#"<?xml version='1.0' encoding='utf-8'?>
<soap-env:Envelope xmlns:soap-env="http://schemas.xmlsoap.org/soap/envelope/">
  <soap-env:Body>
    <ns0:addIntelligentRoutingRule xmlns:ns0="urn:x">
      <ruleRoutingRule><telnum>802</telnum><offon>true</offon></ruleRoutingRule>
    </ns0:addIntelligentRoutingRule>
  </soap-env:Body>
</soap-env:Envelope>"#;
        let op = parse_request(xml.as_bytes()).unwrap();
        assert_eq!(op.name, "addIntelligentRoutingRule");
        assert_eq!(op.ns.as_deref(), Some("urn:x"));
        let rule = op.child("ruleRoutingRule").unwrap();
        assert_eq!(rule.value("telnum"), Some("802"));
        assert_eq!(rule.value("offon"), Some("true"));
        assert_eq!(rule.value("id"), None);
    }

    #[test]
    fn default_namespaces_and_headers_are_fine() {
        let xml = format!(
            r#"<Envelope xmlns="{SOAP11_NS}"><Header><a:Trace xmlns:a="urn:a">x</a:Trace></Header>
<Body><getAllIntelligentRouting xmlns="urn:svc"/></Body></Envelope>"#
        );
        let op = parse_request(xml.as_bytes()).unwrap();
        assert_eq!(op.qualified_name(), "{urn:svc}getAllIntelligentRouting");
        assert!(op.children.is_empty());
        // Child elements with a qualified prefix are matched by local name too.
        let xml = env(r#"<t:del xmlns:t="urn:t"><t:id>5</t:id></t:del>"#);
        assert_eq!(
            parse_request(xml.as_bytes()).unwrap().value("id"),
            Some("5")
        );
    }

    #[test]
    fn entities_cdata_and_nil() {
        let xml = env(&format!(
            r#"<op xmlns:xsi="{XSI_NS}"><a>x &lt;&amp;&gt; &quot;q&quot; &apos;s&apos; &#x4e2d;</a>
<b><![CDATA[<raw & text>]]></b><c xsi:nil="true"/><d></d></op>"#
        ));
        let op = parse_request(xml.as_bytes()).unwrap();
        assert_eq!(op.value("a"), Some("x <&> \"q\" 's' 中"));
        assert_eq!(op.value("b"), Some("<raw & text>"));
        assert_eq!(op.value("c"), None);
        assert_eq!(op.value("d"), Some(""));
    }

    #[test]
    fn bad_requests_are_client_or_version_faults() {
        let cases: &[(&[u8], &str)] = &[
            (b"", "soap:Client"),
            (b"this is not <xml", "soap:Client"),
            (b"\xff\xfe<a/>", "soap:Client"),
            (b"<html><body/></html>", "soap:Client"),
            (
                b"<s:Envelope xmlns:s=\"http://www.w3.org/2003/05/soap-envelope\"><s:Body><op/></s:Body></s:Envelope>",
                "soap:VersionMismatch",
            ),
            (b"<Envelope><Body><op/></Body></Envelope>", "soap:VersionMismatch"),
            (
                b"<s:Envelope xmlns:s=\"http://schemas.xmlsoap.org/soap/envelope/\"/>",
                "soap:Client",
            ),
            (
                b"<s:Envelope xmlns:s=\"http://schemas.xmlsoap.org/soap/envelope/\"><s:Body> </s:Body></s:Envelope>",
                "soap:Client",
            ),
            (
                b"<s:Envelope xmlns:s=\"http://schemas.xmlsoap.org/soap/envelope/\"><s:Body><a/><b/></s:Body></s:Envelope>",
                "soap:Client",
            ),
            (
                b"<?xml version=\"1.0\"?><!DOCTYPE x [<!ENTITY a \"aaaa\">]><s:Envelope xmlns:s=\"http://schemas.xmlsoap.org/soap/envelope/\"><s:Body><op>&a;</op></s:Body></s:Envelope>",
                "soap:Client",
            ),
            (
                b"<s:Envelope xmlns:s=\"http://schemas.xmlsoap.org/soap/envelope/\"><s:Header><h s:mustUnderstand=\"1\"/></s:Header><s:Body><op/></s:Body></s:Envelope>",
                "soap:MustUnderstand",
            ),
        ];
        for (body, code) in cases {
            let fault = parse_request(body).unwrap_err();
            assert_eq!(
                fault.code(),
                *code,
                "{:?}: {fault}",
                String::from_utf8_lossy(body)
            );
            assert!(!fault.to_string().is_empty());
        }
    }

    #[test]
    fn deep_nesting_is_refused_without_overflow() {
        let depth = 5000;
        let body = format!("{}{}", "<a>".repeat(depth), "</a>".repeat(depth));
        let fault = parse_request(env(&body).as_bytes()).unwrap_err();
        assert_eq!(fault.code(), "soap:Client");
    }

    #[test]
    fn escaping_round_trips_through_a_parser() {
        let nasty = "a<b & c>\"d\" 'e' ]]> \u{1}\r\n\t中文";
        assert_eq!(
            escape(nasty),
            "a&lt;b &amp; c&gt;&quot;d&quot; &apos;e&apos; ]]&gt; \u{fffd}&#13;\n\t中文"
        );
        assert!(matches!(escape("plain 123"), Cow::Borrowed(_)));
        let mut body = String::from("<op>");
        text_element(&mut body, "v", nasty);
        body.push_str("</op>");
        let xml = envelope(&body);
        let op = parse_request(xml.as_bytes()).unwrap();
        assert_eq!(
            op.value("v"),
            Some("a<b & c>\"d\" 'e' ]]> \u{fffd}\r\n\t中文")
        );
    }

    #[test]
    fn faults_are_soap11_envelopes() {
        let fault = Fault::client("invalid operationtype: \"<FLY>\" & more");
        let xml = fault.to_xml();
        let doc = roxmltree::Document::parse(&xml).unwrap();
        let f = doc
            .descendants()
            .find(|n| n.has_tag_name((SOAP11_NS, "Fault")))
            .unwrap();
        let text = |name: &str| {
            f.children()
                .find(|n| n.has_tag_name(name))
                .and_then(|n| n.text())
                .unwrap()
                .to_owned()
        };
        assert_eq!(text("faultcode"), "soap:Client");
        assert_eq!(
            text("faultstring"),
            "invalid operationtype: \"<FLY>\" & more"
        );
        assert_eq!(Fault::Server("x".into()).code(), "soap:Server");
        assert_eq!(fault.response().status().as_u16(), 500);
    }

    #[test]
    fn repo_errors_map_to_faults() {
        let f = repo_fault("op", entities::Error::invalid("datetype", "bad"), || {
            "nf".into()
        });
        assert_eq!(f, Fault::Client("invalid datetype: bad".into()));
        let f = repo_fault("op", entities::Error::NotFound, || "no rule 7".into());
        assert_eq!(f, Fault::Client("no rule 7".into()));
        let f = repo_fault(
            "op",
            entities::Error::Db(sea_orm::DbErr::Custom("secret detail".into())),
            || "nf".into(),
        );
        assert_eq!(f, Fault::Server("internal error".into()));
    }

    #[test]
    fn wsdl_query_detection() {
        use actix_web::test::TestRequest;
        for (uri, yes) in [
            ("/s?wsdl", true),
            ("/s?WSDL", true),
            ("/s?x=1&wsdl=", true),
            ("/s", false),
            ("/s?xsd=1", false),
        ] {
            assert_eq!(
                wants_wsdl(&TestRequest::get().uri(uri).to_http_request()),
                yes,
                "{uri}"
            );
        }
        let req = TestRequest::get()
            .uri("/bridge/services/X?wsdl")
            .insert_header(("Host", "pbx.example:12121"))
            .to_http_request();
        assert_eq!(
            endpoint_url(&req, req.path()),
            "http://pbx.example:12121/bridge/services/X"
        );
    }
}
