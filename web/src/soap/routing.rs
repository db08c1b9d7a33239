//! Interface 61, `IntelligentRoutingServiceImpl`: the intelligent routing rules over SOAP.
//!
//! `GET /bridge/services/IntelligentRoutingServiceImpl?wsdl` is the WSDL; `POST` to the
//! same path serves its four operations, all through `entities::repo::routing_rules`, the
//! same functions as the admin API (`/api/v1/routing_rules`), and like it each change
//! tells the switch the configuration changed: a rule written here applies to the next
//! call exactly like one written there.
//!
//! | operation | parameters | answer (`<return>`) |
//! |---|---|---|
//! | `addIntelligentRoutingRule` | `ruleRoutingRule` (its `id` is ignored) | the stored rule with its database `id` |
//! | `deleteIntelligentRoutingRule` | `id` | nothing (an empty response wrapper) |
//! | `getAllIntelligentRouting` | — | every rule, by `id` (zero or more `<return>`) |
//! | `updateIntelligentRoutingRule` | `ruleRoutingRule` with `id` | the stored rule after the change |
//!
//! `IntelligentRoutingRule` has the manual's fields: `id` (xs:int), `telnum`, `offon`
//! (xs:boolean), `operationtype`, `parameters`, `datetype`, `begintime`, `endtime`,
//! `subbegintime`, `subendtime` (all xs:string; the sub times are `HH:mm:ss`, D-45, though
//! the manual types `subbegintime` as Integer). Formats and meanings: `entities::routing_rule`.
//!
//! Decisions where the manual is silent:
//! - `add`: an absent field is empty, `offon` absent is `true` (as in the admin API).
//! - `update`: fields absent (or `xsi:nil`) keep their stored values, so a client may send
//!   only what changes; present fields (even empty) replace them. The whole result is
//!   validated again.
//! - An unknown `id` on `update` or `delete` is a `soap:Client` fault ("no routing rule
//!   with id N"); so is every invalid value, naming the field as the admin API does
//!   (`invalid operationtype: "FLY" is not a routing operation (…)`).
//! - Rules are returned in their stored (canonical) form: `9:00:00` comes back `09:00:00`.

use actix_web::{web, HttpRequest, HttpResponse};
use entities::repo::routing_rules::{self, RoutingRuleInput};
use entities::routing_rule;

use super::{text_element, Element, Fault};
use crate::AppState;

/// Where the service is served.
pub const PATH: &str = "/bridge/services/IntelligentRoutingServiceImpl";
/// The WSDL's target namespace (requests in any namespace are accepted, see the module
/// doc of `soap`).
pub const NAMESPACE: &str = "http://ctiswitch/bridge/services/IntelligentRoutingServiceImpl";

const OPERATIONS: &[&str] = &[
    "addIntelligentRoutingRule",
    "deleteIntelligentRoutingRule",
    "getAllIntelligentRouting",
    "updateIntelligentRoutingRule",
];

/// The string fields of `IntelligentRoutingRule` after `id`/`telnum`/`offon`, in order.
const TEXT_FIELDS: &[&str] = &[
    "operationtype",
    "parameters",
    "datetype",
    "begintime",
    "endtime",
    "subbegintime",
    "subendtime",
];

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::resource(PATH)
            .route(web::get().to(get))
            .route(web::post().to(post)),
    );
}

async fn get(req: HttpRequest) -> HttpResponse {
    super::get_service(&req, wsdl)
}

async fn post(state: web::Data<AppState>, body: web::Bytes) -> HttpResponse {
    match dispatch(&state, &body).await {
        Ok(xml) => super::ok(&xml),
        Err(fault) => {
            tracing::debug!(
                code = fault.code(),
                "IntelligentRoutingServiceImpl fault: {fault}"
            );
            fault.response()
        }
    }
}

async fn dispatch(state: &AppState, body: &[u8]) -> Result<String, Fault> {
    let op = super::parse_request(body)?;
    let returns = match op.name.as_str() {
        "addIntelligentRoutingRule" => vec![add(state, &op).await?],
        "deleteIntelligentRoutingRule" => {
            delete(state, &op).await?;
            Vec::new()
        }
        "getAllIntelligentRouting" => routing_rules::list(&state.db)
            .await
            .map_err(|e| super::repo_fault("getAllIntelligentRouting", e, String::new))?,
        "updateIntelligentRoutingRule" => vec![update(state, &op).await?],
        _ => {
            return Err(Fault::client(format!(
                "unknown operation {}: IntelligentRoutingServiceImpl has {}",
                op.qualified_name(),
                OPERATIONS.join(", ")
            )))
        }
    };
    Ok(response(&op.name, &returns))
}

async fn add(state: &AppState, op: &Element) -> Result<routing_rule::Model, Fault> {
    let rule = rule_param(op)?;
    let input = apply(rule, RoutingRuleInput::default())?;
    let model = routing_rules::create(&state.db, input)
        .await
        .map_err(|e| super::repo_fault(&op.name, e, String::new))?;
    state.configuration_changed().await;
    Ok(model)
}

async fn update(state: &AppState, op: &Element) -> Result<routing_rule::Model, Fault> {
    let rule = rule_param(op)?;
    let id = int(rule, "id")?.ok_or_else(|| {
        Fault::client("ruleRoutingRule.id is required: it names the rule to modify")
    })?;
    let not_found = || no_rule(id);
    let stored = routing_rules::get(&state.db, id)
        .await
        .map_err(|e| super::repo_fault(&op.name, e, not_found))?
        .ok_or_else(|| Fault::Client(no_rule(id)))?;
    let input = apply(rule, RoutingRuleInput::from(stored))?;
    let model = routing_rules::update(&state.db, id, input)
        .await
        .map_err(|e| super::repo_fault(&op.name, e, not_found))?;
    state.configuration_changed().await;
    Ok(model)
}

async fn delete(state: &AppState, op: &Element) -> Result<(), Fault> {
    // JAX-WS names an un-annotated first parameter `arg0`: clients generated from the
    // vendor's WSDL send that.
    let id = int(
        op,
        if op.child("id").is_some() {
            "id"
        } else {
            JAXWS_FIRST_PARAM
        },
    )?
    .ok_or_else(|| Fault::client("id is required: the id of the rule to delete"))?;
    routing_rules::delete(&state.db, id)
        .await
        .map_err(|e| super::repo_fault(&op.name, e, || no_rule(id)))?;
    state.configuration_changed().await;
    Ok(())
}

/// The name JAX-WS gives a first parameter without `@WebParam` (accepted as well as the
/// manual's parameter names).
const JAXWS_FIRST_PARAM: &str = "arg0";

fn no_rule(id: i32) -> String {
    format!("no routing rule with id {id}")
}

fn rule_param(op: &Element) -> Result<&Element, Fault> {
    op.child("ruleRoutingRule")
        .or_else(|| op.child(JAXWS_FIRST_PARAM))
        .ok_or_else(|| {
            Fault::client(format!(
                "{} needs its parameter ruleRoutingRule (an IntelligentRoutingRule)",
                op.name
            ))
        })
}

/// `base` with the fields present in the `IntelligentRoutingRule` element `rule`. Only
/// the two non-string fields are checked here; the rest is the repository's validation.
fn apply(rule: &Element, mut base: RoutingRuleInput) -> Result<RoutingRuleInput, Fault> {
    if let Some(v) = rule.value("telnum") {
        base.telnum = v.to_owned();
    }
    if let Some(v) = rule.value("offon") {
        base.offon = boolean("offon", v)?;
    }
    let RoutingRuleInput {
        operationtype,
        parameters,
        datetype,
        begintime,
        endtime,
        subbegintime,
        subendtime,
        ..
    } = &mut base;
    let slots: [&mut String; 7] = [
        operationtype,
        parameters,
        datetype,
        begintime,
        endtime,
        subbegintime,
        subendtime,
    ];
    for (name, slot) in TEXT_FIELDS.iter().zip(slots) {
        if let Some(v) = rule.value(name) {
            *slot = v.to_owned();
        }
    }
    Ok(base)
}

/// An `xs:boolean`: `true`, `false`, `1`, `0` (blanks around allowed).
fn boolean(field: &str, v: &str) -> Result<bool, Fault> {
    match v.trim() {
        "true" | "1" => Ok(true),
        "false" | "0" => Ok(false),
        other => Err(Fault::client(format!(
            "invalid {field}: {other:?} is not a boolean (true | false)"
        ))),
    }
}

/// The `xs:int` child `name` of `el`; `None` when absent, nil or blank.
fn int(el: &Element, name: &str) -> Result<Option<i32>, Fault> {
    match el.value(name).map(str::trim) {
        None | Some("") => Ok(None),
        Some(v) => v.parse().map(Some).map_err(|_| {
            Fault::client(format!("invalid {name}: {v:?} is not an integer (xs:int)"))
        }),
    }
}

/// The `<op>Response` wrapper with one `<return>` per rule.
fn response(op: &str, rules: &[routing_rule::Model]) -> String {
    let mut out = format!("<ns:{op}Response xmlns:ns=\"{NAMESPACE}\">");
    for rule in rules {
        rule_xml(&mut out, "return", rule);
    }
    out.push_str(&format!("</ns:{op}Response>"));
    out
}

/// An `IntelligentRoutingRule` as `<tag>`, the fields in the WSDL's order.
fn rule_xml(out: &mut String, tag: &str, m: &routing_rule::Model) {
    out.push_str(&format!("<{tag}>"));
    text_element(out, "id", &m.id.to_string());
    text_element(out, "telnum", &m.telnum);
    text_element(out, "offon", if m.offon { "true" } else { "false" });
    let values = [
        &m.operationtype,
        &m.parameters,
        &m.datetype,
        &m.begintime,
        &m.endtime,
        &m.subbegintime,
        &m.subendtime,
    ];
    for (name, value) in TEXT_FIELDS.iter().zip(values) {
        text_element(out, name, value);
    }
    out.push_str(&format!("</{tag}>"));
}

/// The WSDL 1.1 (SOAP 1.1, document/literal wrapped), posting to `url`.
pub fn wsdl(url: &str) -> String {
    let url = super::escape(url);
    let ops = OPERATIONS;
    let mut messages = String::new();
    let mut port_ops = String::new();
    let mut binding_ops = String::new();
    for op in ops {
        messages.push_str(&format!(
            r#"
  <wsdl:message name="{op}">
    <wsdl:part name="parameters" element="tns:{op}"/>
  </wsdl:message>
  <wsdl:message name="{op}Response">
    <wsdl:part name="parameters" element="tns:{op}Response"/>
  </wsdl:message>"#
        ));
        port_ops.push_str(&format!(
            r#"
    <wsdl:operation name="{op}">
      <wsdl:input name="{op}" message="tns:{op}"/>
      <wsdl:output name="{op}Response" message="tns:{op}Response"/>
    </wsdl:operation>"#
        ));
        binding_ops.push_str(&format!(
            r#"
    <wsdl:operation name="{op}">
      <soap:operation soapAction="" style="document"/>
      <wsdl:input name="{op}"><soap:body use="literal"/></wsdl:input>
      <wsdl:output name="{op}Response"><soap:body use="literal"/></wsdl:output>
    </wsdl:operation>"#
        ));
    }
    let operation_types = routing_rule::OperationType::ALL
        .iter()
        .map(|t| t.as_str())
        .collect::<Vec<_>>()
        .join(" | ");
    let date_types = routing_rule::DateType::ALL
        .iter()
        .map(|t| t.as_str())
        .collect::<Vec<_>>()
        .join(" | ");
    format!(
        r#"<?xml version="1.0" encoding="UTF-8"?>
<wsdl:definitions name="IntelligentRoutingServiceImplService"
    targetNamespace="{NAMESPACE}"
    xmlns:tns="{NAMESPACE}"
    xmlns:wsdl="http://schemas.xmlsoap.org/wsdl/"
    xmlns:soap="http://schemas.xmlsoap.org/wsdl/soap/"
    xmlns:xs="http://www.w3.org/2001/XMLSchema">
  <wsdl:documentation>ctiswitch interface 61: intelligent (time-based) routing rules. SOAP 1.1, document/literal wrapped.</wsdl:documentation>
  <wsdl:types>
    <xs:schema targetNamespace="{NAMESPACE}" elementFormDefault="unqualified" attributeFormDefault="unqualified">
      <xs:complexType name="IntelligentRoutingRule">
        <xs:sequence>
          <xs:element name="id" type="xs:int" minOccurs="0"/>
          <xs:element name="telnum" type="xs:string" minOccurs="0"/>
          <xs:element name="offon" type="xs:boolean" minOccurs="0"/>
          <xs:element name="operationtype" type="xs:string" minOccurs="0">
            <xs:annotation><xs:documentation>{operation_types}</xs:documentation></xs:annotation>
          </xs:element>
          <xs:element name="parameters" type="xs:string" minOccurs="0"/>
          <xs:element name="datetype" type="xs:string" minOccurs="0">
            <xs:annotation><xs:documentation>{date_types}</xs:documentation></xs:annotation>
          </xs:element>
          <xs:element name="begintime" type="xs:string" minOccurs="0"/>
          <xs:element name="endtime" type="xs:string" minOccurs="0"/>
          <xs:element name="subbegintime" type="xs:string" minOccurs="0">
            <xs:annotation><xs:documentation>HH:mm:ss (WEEK_TYPE only)</xs:documentation></xs:annotation>
          </xs:element>
          <xs:element name="subendtime" type="xs:string" minOccurs="0">
            <xs:annotation><xs:documentation>HH:mm:ss (WEEK_TYPE only)</xs:documentation></xs:annotation>
          </xs:element>
        </xs:sequence>
      </xs:complexType>
      <xs:element name="addIntelligentRoutingRule">
        <xs:complexType><xs:sequence>
          <xs:element name="ruleRoutingRule" type="tns:IntelligentRoutingRule" minOccurs="0"/>
        </xs:sequence></xs:complexType>
      </xs:element>
      <xs:element name="addIntelligentRoutingRuleResponse">
        <xs:complexType><xs:sequence>
          <xs:element name="return" type="tns:IntelligentRoutingRule" minOccurs="0"/>
        </xs:sequence></xs:complexType>
      </xs:element>
      <xs:element name="deleteIntelligentRoutingRule">
        <xs:complexType><xs:sequence>
          <xs:element name="id" type="xs:int" minOccurs="0"/>
        </xs:sequence></xs:complexType>
      </xs:element>
      <xs:element name="deleteIntelligentRoutingRuleResponse">
        <xs:complexType><xs:sequence/></xs:complexType>
      </xs:element>
      <xs:element name="getAllIntelligentRouting">
        <xs:complexType><xs:sequence/></xs:complexType>
      </xs:element>
      <xs:element name="getAllIntelligentRoutingResponse">
        <xs:complexType><xs:sequence>
          <xs:element name="return" type="tns:IntelligentRoutingRule" minOccurs="0" maxOccurs="unbounded"/>
        </xs:sequence></xs:complexType>
      </xs:element>
      <xs:element name="updateIntelligentRoutingRule">
        <xs:complexType><xs:sequence>
          <xs:element name="ruleRoutingRule" type="tns:IntelligentRoutingRule" minOccurs="0"/>
        </xs:sequence></xs:complexType>
      </xs:element>
      <xs:element name="updateIntelligentRoutingRuleResponse">
        <xs:complexType><xs:sequence>
          <xs:element name="return" type="tns:IntelligentRoutingRule" minOccurs="0"/>
        </xs:sequence></xs:complexType>
      </xs:element>
    </xs:schema>
  </wsdl:types>{messages}
  <wsdl:portType name="IntelligentRoutingService">{port_ops}
  </wsdl:portType>
  <wsdl:binding name="IntelligentRoutingServiceImplServiceSoapBinding" type="tns:IntelligentRoutingService">
    <soap:binding style="document" transport="http://schemas.xmlsoap.org/soap/http"/>{binding_ops}
  </wsdl:binding>
  <wsdl:service name="IntelligentRoutingServiceImplService">
    <wsdl:port name="IntelligentRoutingServiceImplPort" binding="tns:IntelligentRoutingServiceImplServiceSoapBinding">
      <soap:address location="{url}"/>
    </wsdl:port>
  </wsdl:service>
</wsdl:definitions>
"#
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::soap::{parse_request, SOAP11_NS};

    fn model() -> routing_rule::Model {
        routing_rule::Model {
            id: 7,
            telnum: "802".into(),
            offon: false,
            operationtype: "PLAY_AND_HANGUP".into(),
            parameters: "tts:<closed> & \"gone\"".into(),
            datetype: "WEEK_TYPE".into(),
            begintime: "1".into(),
            endtime: "5".into(),
            subbegintime: "09:00:00".into(),
            subendtime: "18:00:00".into(),
            created_at: 0,
            updated_at: 0,
        }
    }

    fn op(xml_body: &str) -> Element {
        let xml = format!(
            r#"<S:Envelope xmlns:S="{SOAP11_NS}"><S:Body>{xml_body}</S:Body></S:Envelope>"#
        );
        parse_request(xml.as_bytes()).unwrap()
    }

    #[test]
    fn responses_carry_every_field_escaped() {
        let xml = crate::soap::envelope(&response("getAllIntelligentRouting", &[model()]));
        let doc = roxmltree::Document::parse(&xml).unwrap();
        let wrapper = doc
            .descendants()
            .find(|n| n.has_tag_name((NAMESPACE, "getAllIntelligentRoutingResponse")))
            .unwrap();
        let ret = wrapper.first_element_child().unwrap();
        assert_eq!(ret.tag_name().name(), "return");
        assert_eq!(
            ret.tag_name().namespace(),
            None,
            "unqualified, as the schema says"
        );
        let fields: Vec<(&str, &str)> = ret
            .children()
            .filter(|n| n.is_element())
            .map(|n| (n.tag_name().name(), n.text().unwrap_or("")))
            .collect();
        assert_eq!(
            fields,
            [
                ("id", "7"),
                ("telnum", "802"),
                ("offon", "false"),
                ("operationtype", "PLAY_AND_HANGUP"),
                ("parameters", "tts:<closed> & \"gone\""),
                ("datetype", "WEEK_TYPE"),
                ("begintime", "1"),
                ("endtime", "5"),
                ("subbegintime", "09:00:00"),
                ("subendtime", "18:00:00"),
            ]
        );
        let empty = response("deleteIntelligentRoutingRule", &[]);
        assert_eq!(
            empty,
            format!("<ns:deleteIntelligentRoutingRuleResponse xmlns:ns=\"{NAMESPACE}\"></ns:deleteIntelligentRoutingRuleResponse>")
        );
    }

    #[test]
    fn add_input_defaults_and_update_merges() {
        let add = op(r#"<ns0:addIntelligentRoutingRule xmlns:ns0="urn:any">
            <ruleRoutingRule><id>99</id><telnum> 802 </telnum><operationtype>BUSY_AND_REJECT</operationtype>
            <datetype>DAY_TYPE</datetype><begintime>9:00:00</begintime><endtime>18:00:00</endtime>
            <parameters>a &amp; b</parameters></ruleRoutingRule></ns0:addIntelligentRoutingRule>"#);
        let input = apply(rule_param(&add).unwrap(), RoutingRuleInput::default()).unwrap();
        assert!(input.offon, "offon defaults to true");
        assert_eq!(input.telnum, " 802 ");
        assert_eq!(input.parameters, "a & b");
        assert_eq!(input.subbegintime, "");

        let upd = op(
            r#"<u:updateIntelligentRoutingRule xmlns:u="urn:u" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">
            <ruleRoutingRule><id>7</id><offon>1</offon><parameters></parameters><telnum xsi:nil="true"/>
            <subendtime>20:00:00</subendtime></ruleRoutingRule></u:updateIntelligentRoutingRule>"#,
        );
        let rule = rule_param(&upd).unwrap();
        assert_eq!(int(rule, "id").unwrap(), Some(7));
        let merged = apply(rule, RoutingRuleInput::from(model())).unwrap();
        assert!(merged.offon);
        assert_eq!(merged.telnum, "802", "nil keeps the stored value");
        assert_eq!(merged.parameters, "", "present and empty replaces");
        assert_eq!(merged.subbegintime, "09:00:00");
        assert_eq!(merged.subendtime, "20:00:00");
        assert_eq!(merged.operationtype, "PLAY_AND_HANGUP");
    }

    #[test]
    fn jaxws_default_parameter_names_are_accepted() {
        let add = op(
            r#"<ns2:addIntelligentRoutingRule xmlns:ns2="http://vendor/">
            <arg0><telnum>802</telnum><operationtype>BUSY_AND_REJECT</operationtype></arg0>
            </ns2:addIntelligentRoutingRule>"#,
        );
        let input = apply(rule_param(&add).unwrap(), RoutingRuleInput::default()).unwrap();
        assert_eq!(input.telnum, "802");
        assert_eq!(input.operationtype, "BUSY_AND_REJECT");
    }

    #[test]
    fn bad_scalars_and_missing_params_are_client_faults() {
        let e = op("<addIntelligentRoutingRule><ruleRoutingRule><offon>yes</offon></ruleRoutingRule></addIntelligentRoutingRule>");
        let err = apply(rule_param(&e).unwrap(), RoutingRuleInput::default()).unwrap_err();
        assert_eq!(err.code(), "soap:Client");
        assert!(err.to_string().contains("offon"), "{err}");

        let e = op("<deleteIntelligentRoutingRule><id>seven</id></deleteIntelligentRoutingRule>");
        let err = int(&e, "id").unwrap_err();
        assert!(err.to_string().contains("invalid id"), "{err}");
        let e = op("<deleteIntelligentRoutingRule><id> +12 </id></deleteIntelligentRoutingRule>");
        assert_eq!(int(&e, "id").unwrap(), Some(12));
        let e = op("<deleteIntelligentRoutingRule/>");
        assert_eq!(int(&e, "id").unwrap(), None);

        let e = op("<addIntelligentRoutingRule/>");
        let err = rule_param(&e).unwrap_err();
        assert!(err.to_string().contains("ruleRoutingRule"), "{err}");
    }

    #[test]
    fn wsdl_is_well_formed_and_names_the_operations_and_address() {
        let text = wsdl("http://h:1/bridge/services/IntelligentRoutingServiceImpl?\"&<");
        let doc = roxmltree::Document::parse(&text).unwrap();
        let wsdl_ns = "http://schemas.xmlsoap.org/wsdl/";
        let port_ops: Vec<&str> = doc
            .descendants()
            .filter(|n| n.has_tag_name((wsdl_ns, "portType")))
            .flat_map(|p| p.children().filter(|n| n.is_element()))
            .filter_map(|n| n.attribute("name"))
            .collect();
        assert_eq!(port_ops, OPERATIONS);
        let address = doc
            .descendants()
            .find(|n| n.has_tag_name(("http://schemas.xmlsoap.org/wsdl/soap/", "address")))
            .and_then(|n| n.attribute("location"))
            .unwrap();
        assert_eq!(
            address,
            "http://h:1/bridge/services/IntelligentRoutingServiceImpl?\"&<"
        );
        let rule_fields: Vec<&str> = doc
            .descendants()
            .find(|n| n.attribute("name") == Some("IntelligentRoutingRule"))
            .unwrap()
            .descendants()
            .filter(|n| n.has_tag_name(("http://www.w3.org/2001/XMLSchema", "element")))
            .filter_map(|n| n.attribute("name"))
            .collect();
        assert_eq!(rule_fields[..3], ["id", "telnum", "offon"]);
        assert_eq!(rule_fields[3..], *TEXT_FIELDS);
    }
}
