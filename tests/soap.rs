//! Interface 61 over SOAP (`/bridge/services/IntelligentRoutingServiceImpl`) with a real
//! third-party client: Python zeep (tests/peers/soap_client.py, installed in `.venv` by
//! `make deps`) loads the WSDL from the running switch and calls the four operations.
//! Rules written over SOAP are the admin API's rules and route calls (SIPp).

mod common;

use std::time::Duration;

use common::sipp::{user_line, Sipp};
use ctiswitch::Switch;
use serde_json::{json, Value};

const PATH: &str = "/bridge/services/IntelligentRoutingServiceImpl";

const CONFIG: &str = r#"
[[extensions]]
number = "801"
password = "1234"
[[extensions]]
number = "802"
password = "1234"
"#;

fn script() -> std::path::PathBuf {
    std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/peers/soap_client.py")
}

/// Runs soap_client.py against the switch's WSDL with `steps`; its JSON
/// (`{"address", "results": [{"ok"}|{"fault"}]}`).
async fn zeep(switch: &Switch, steps: &[Value]) -> Value {
    let mut cmd = tokio::process::Command::new(common::pjsua::python());
    cmd.arg(script())
        .arg("--wsdl")
        .arg(common::url(switch, &format!("{PATH}?wsdl")))
        .args(steps.iter().map(Value::to_string))
        .stdin(std::process::Stdio::null())
        .kill_on_drop(true);
    let out = tokio::time::timeout(Duration::from_secs(60), cmd.output())
        .await
        .expect("soap_client.py did not finish within 60 s")
        .expect("run soap_client.py");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "soap_client.py failed ({}):\n{stderr}\n{stdout}",
        out.status
    );
    serde_json::from_str(stdout.trim())
        .unwrap_or_else(|e| panic!("soap_client.py printed no JSON ({e}):\n{stdout}\n{stderr}"))
}

/// One step's result; panics on a fault.
async fn call(switch: &Switch, step: Value) -> Value {
    let out = zeep(switch, std::slice::from_ref(&step)).await;
    let result = &out["results"][0];
    assert!(
        result.get("ok").is_some(),
        "{step} answered a fault: {result}"
    );
    result["ok"].clone()
}

/// One step's fault (code, message); panics on success.
async fn fault(switch: &Switch, step: Value) -> (String, String) {
    let out = zeep(switch, std::slice::from_ref(&step)).await;
    let f = &out["results"][0]["fault"];
    assert!(f.is_object(), "{step} did not fault: {out}");
    (
        f["code"].as_str().unwrap_or_default().to_owned(),
        f["message"].as_str().unwrap_or_default().to_owned(),
    )
}

async fn admin_rules(switch: &Switch) -> Vec<Value> {
    let (status, body) = common::get(switch, "/api/v1/routing_rules").await;
    assert_eq!(status, 200, "{body}");
    serde_json::from_str(&body).expect("JSON list")
}

/// POSTs `body` to the service; (status, content type, body).
async fn post_raw(switch: &Switch, body: &str) -> (u16, String, String) {
    let resp = common::http()
        .post(common::url(switch, PATH))
        .header("Content-Type", "text/xml; charset=utf-8")
        .header("SOAPAction", "\"\"")
        .body(body.to_owned())
        .send()
        .await
        .expect("POST");
    let status = resp.status().as_u16();
    let ctype = resp
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    (status, ctype, resp.text().await.expect("body"))
}

/// The text of the first element with local name `name`.
fn xml_text(xml: &str, name: &str) -> Option<String> {
    let start = xml.find(&format!("<{name}>"))? + name.len() + 2;
    let end = xml[start..].find(&format!("</{name}>"))? + start;
    Some(xml[start..end].to_owned())
}

fn week_rule() -> Value {
    json!({
        "telnum": "802",
        "offon": true,
        "operationtype": "PLAY_AND_HANGUP",
        "parameters": "tts:Closed <now> & \"later\"",
        "datetype": "WEEK_TYPE",
        "begintime": "1",
        "endtime": "5",
        "subbegintime": "9:00:00",
        "subendtime": "18:00:00",
    })
}

#[actix_rt::test]
async fn zeep_adds_lists_updates_and_deletes_rules_shared_with_the_admin_api() {
    let dir = tempfile::tempdir().unwrap();
    let switch = common::start(dir.path(), CONFIG).await;

    // The WSDL's address follows the Host the client used.
    let resp = common::http()
        .get(common::url(&switch, &format!("{PATH}?wsdl")))
        .header("Host", "pbx.example:8080")
        .send()
        .await
        .expect("GET wsdl");
    assert_eq!(resp.status().as_u16(), 200);
    let wsdl = resp.text().await.expect("wsdl");
    assert!(
        wsdl.contains(
            r#"location="http://pbx.example:8080/bridge/services/IntelligentRoutingServiceImpl""#
        ),
        "{wsdl}"
    );

    // add: the stored rule comes back with its id, in canonical form.
    let out = zeep(
        &switch,
        &[json!({"op": "addIntelligentRoutingRule", "ruleRoutingRule": week_rule()})],
    )
    .await;
    assert_eq!(
        out["address"],
        common::url(&switch, PATH),
        "zeep posts where the WSDL says"
    );
    let added = out["results"][0]["ok"].clone();
    let id = added["id"].as_i64().expect("an id");
    assert!(id > 0, "{added}");
    let mut expected = week_rule();
    expected["id"] = json!(id);
    expected["subbegintime"] = json!("09:00:00");
    assert_eq!(added, expected);

    // getAll lists it with every field.
    let all = call(&switch, json!({"op": "getAllIntelligentRouting"})).await;
    assert_eq!(all, json!([expected]));

    // The admin API sees the same rule.
    let rules = admin_rules(&switch).await;
    assert_eq!(rules.len(), 1, "{rules:?}");
    for (field, value) in expected.as_object().expect("object") {
        assert_eq!(&rules[0][field], value, "admin API field {field}");
    }

    // update: only what is sent changes; the rest is kept.
    let updated = call(
        &switch,
        json!({"op": "updateIntelligentRoutingRule", "ruleRoutingRule": {
            "id": id, "offon": false, "operationtype": "TRANSFER_CALL", "parameters": "801",
            "datetype": "DAY_TYPE", "begintime": "22:00:00", "endtime": "06:00:00"}}),
    )
    .await;
    let expected = json!({"id": id, "telnum": "802", "offon": false,
        "operationtype": "TRANSFER_CALL", "parameters": "801", "datetype": "DAY_TYPE",
        "begintime": "22:00:00", "endtime": "06:00:00",
        // Stored empty (not WEEK_TYPE): sent as empty elements, which zeep reads as None.
        "subbegintime": null, "subendtime": null});
    assert_eq!(updated, expected);
    let (status, body) = common::get(&switch, &format!("/api/v1/routing_rules/{id}")).await;
    assert_eq!(status, 200);
    let admin: Value = serde_json::from_str(&body).expect("JSON");
    assert_eq!(admin["operationtype"], "TRANSFER_CALL");
    assert_eq!(admin["offon"], false);

    // A rule created through the admin API is listed over SOAP.
    let resp = common::http()
        .post(common::url(&switch, "/api/v1/routing_rules"))
        .json(
            &json!({"telnum": "1000", "operationtype": "BUSY_AND_REJECT",
            "datetype": "SPECIFIED_DAY", "begintime": "2030-01-01 00:00:00",
            "endtime": "2030-01-02 00:00:00"}),
        )
        .send()
        .await
        .expect("POST admin");
    assert_eq!(resp.status().as_u16(), 201);
    let rest: Value = resp.json().await.expect("JSON");
    let all = call(&switch, json!({"op": "getAllIntelligentRouting"})).await;
    let all = all.as_array().expect("a list");
    assert_eq!(all.len(), 2, "{all:?}");
    assert_eq!(all[1]["id"], rest["id"]);
    assert_eq!(all[1]["begintime"], "2030-01-01 00:00:00");

    // delete: gone from both faces.
    let out = zeep(
        &switch,
        &[
            json!({"op": "deleteIntelligentRoutingRule", "id": id}),
            json!({"op": "deleteIntelligentRoutingRule", "id": rest["id"]}),
            json!({"op": "getAllIntelligentRouting"}),
        ],
    )
    .await;
    assert_eq!(out["results"][0], json!({"ok": null}), "{out}");
    assert_eq!(out["results"][1], json!({"ok": null}), "{out}");
    assert_eq!(out["results"][2], json!({"ok": []}), "{out}");
    assert!(admin_rules(&switch).await.is_empty());
    let (status, _) = common::get(&switch, &format!("/api/v1/routing_rules/{id}")).await;
    assert_eq!(status, 404);

    switch.stop().await.unwrap();
}

#[actix_rt::test]
async fn bad_requests_are_soap_faults_and_the_switch_keeps_working() {
    let dir = tempfile::tempdir().unwrap();
    let switch = common::start(dir.path(), CONFIG).await;

    // Through zeep: invalid values name the field; unknown ids name the id.
    let mut bad = week_rule();
    bad["operationtype"] = json!("FLY");
    let (code, message) = fault(
        &switch,
        json!({"op": "addIntelligentRoutingRule", "ruleRoutingRule": bad}),
    )
    .await;
    assert!(code.ends_with("Client"), "{code}");
    assert!(
        message.contains("operationtype") && message.contains("FLY"),
        "{message}"
    );

    let mut bad = week_rule();
    bad["subbegintime"] = json!("25:99:00");
    let (_, message) = fault(
        &switch,
        json!({"op": "addIntelligentRoutingRule", "ruleRoutingRule": bad}),
    )
    .await;
    assert!(message.contains("subbegintime"), "{message}");

    let mut bad = week_rule();
    bad["datetype"] = json!("YEAR_TYPE");
    let (_, message) = fault(
        &switch,
        json!({"op": "addIntelligentRoutingRule", "ruleRoutingRule": bad}),
    )
    .await;
    assert!(message.contains("datetype"), "{message}");

    let (code, message) = fault(
        &switch,
        json!({"op": "deleteIntelligentRoutingRule", "id": 9999}),
    )
    .await;
    assert!(code.ends_with("Client"), "{code}");
    assert_eq!(message, "no routing rule with id 9999");

    let mut unknown = week_rule();
    unknown["id"] = json!(9999);
    let (_, message) = fault(
        &switch,
        json!({"op": "updateIntelligentRoutingRule", "ruleRoutingRule": unknown}),
    )
    .await;
    assert_eq!(message, "no routing rule with id 9999");

    let (_, message) = fault(
        &switch,
        json!({"op": "updateIntelligentRoutingRule", "ruleRoutingRule": week_rule()}),
    )
    .await;
    assert!(message.contains("id is required"), "{message}");
    assert!(admin_rules(&switch).await.is_empty(), "nothing was stored");

    // Posted directly: garbage, an unknown operation, SOAP 1.2.
    let cases = [
        ("this is <not xml", "soap:Client", "not well-formed XML"),
        ("", "soap:Client", "empty"),
        (
            r#"<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/"><s:Body><x:dropAllTables xmlns:x="urn:x"/></s:Body></s:Envelope>"#,
            "soap:Client",
            "unknown operation {urn:x}dropAllTables",
        ),
        (
            r#"<s:Envelope xmlns:s="http://www.w3.org/2003/05/soap-envelope"><s:Body><getAllIntelligentRouting/></s:Body></s:Envelope>"#,
            "soap:VersionMismatch",
            "SOAP 1.2",
        ),
        (
            r#"<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/"><s:Body><deleteIntelligentRoutingRule><id>1 OR 1=1</id></deleteIntelligentRoutingRule></s:Body></s:Envelope>"#,
            "soap:Client",
            "invalid id",
        ),
    ];
    for (body, code, text) in cases {
        let (status, ctype, xml) = post_raw(&switch, body).await;
        assert_eq!(status, 500, "{body:?} -> {xml}");
        assert!(ctype.starts_with("text/xml"), "{ctype}");
        assert_eq!(xml_text(&xml, "faultcode").as_deref(), Some(code), "{xml}");
        let message = xml_text(&xml, "faultstring").unwrap_or_default();
        assert!(message.contains(text), "{body:?}: {message}");
    }

    // The switch still answers, over SOAP and HTTP; an empty SOAPAction is fine.
    let (status, _, xml) = post_raw(
        &switch,
        r#"<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/"><soapenv:Header/><soapenv:Body><tns:getAllIntelligentRouting xmlns:tns="urn:whatever"/></soapenv:Body></soapenv:Envelope>"#,
    )
    .await;
    assert_eq!(status, 200, "{xml}");
    assert!(xml.contains("getAllIntelligentRoutingResponse"), "{xml}");
    let all = call(&switch, json!({"op": "getAllIntelligentRouting"})).await;
    assert_eq!(all, json!([]));
    let (status, _) = common::get(&switch, "/health").await;
    assert_eq!(status, 200);

    // GET without ?wsdl says where the WSDL is.
    let (status, body) = common::get(&switch, PATH).await;
    assert_eq!(status, 405);
    assert!(body.contains("?wsdl"), "{body}");

    switch.stop().await.unwrap();
}

#[actix_rt::test]
async fn a_rule_added_over_soap_rejects_calls_until_deleted_over_soap() {
    let dir = tempfile::tempdir().unwrap();
    let switch = common::start(dir.path(), CONFIG).await;
    let sip = switch.sip_addr;

    let busy = call(
        &switch,
        json!({"op": "addIntelligentRoutingRule", "ruleRoutingRule": {
            "telnum": "802", "offon": true, "operationtype": "BUSY_AND_REJECT",
            "parameters": "", "datetype": "DAY_TYPE",
            "begintime": "00:00:00", "endtime": "00:00:00"}}),
    )
    .await;
    let out = Sipp::new("uac_refused.xml")
        .csv(&user_line("801", "1234", None))
        .service("802")
        .remote(sip)
        .timeout(Duration::from_secs(20))
        .run()
        .await;
    assert_eq!(out.final_status(), Some(486), "{}", out.report());

    call(
        &switch,
        json!({"op": "deleteIntelligentRoutingRule", "id": busy["id"]}),
    )
    .await;
    let mut p802 = Sipp::new("uas.xml")
        .calls(1)
        .timeout(Duration::from_secs(30))
        .spawn();
    p802.bound().await;
    Sipp::new("register.xml")
        .csv(&user_line("802", "1234", Some(p802.addr())))
        .remote(sip)
        .run()
        .await
        .assert_success("REGISTER 802");
    Sipp::new("uac_call.xml")
        .csv(&user_line("801", "1234", None))
        .service("802")
        .pause_ms(800)
        .remote(sip)
        .timeout(Duration::from_secs(20))
        .run()
        .await
        .assert_success("rule deleted: 802 answers");
    p802.wait().await.assert_success("802 answered");

    switch.stop().await.unwrap();
}
