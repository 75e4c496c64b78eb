//! The API as the page calls it: JSON in, JSON out.

use serde_json::{Value, json};

use super::*;

fn parse(s: &str) -> Value {
    serde_json::from_str(s).unwrap_or_else(|e| panic!("not JSON ({e}): {s}"))
}

/// RFC 8216 §8.4: a small multivariant playlist.
const MASTER: &str = "#EXTM3U
#EXT-X-STREAM-INF:BANDWIDTH=1280000,AVERAGE-BANDWIDTH=1000000
http://example.com/low.m3u8
#EXT-X-STREAM-INF:BANDWIDTH=2560000,AVERAGE-BANDWIDTH=2000000
http://example.com/mid.m3u8
#EXT-X-STREAM-INF:BANDWIDTH=7680000,AVERAGE-BANDWIDTH=6000000
http://example.com/hi.m3u8
#EXT-X-STREAM-INF:BANDWIDTH=65000,CODECS=\"mp4a.40.5\"
http://example.com/audio-only.m3u8
";

#[test]
fn version_names_the_contract() {
    let v = parse(&version());
    assert_eq!(v["package"], "outpost:edge");
    assert_eq!(v["contract"], "0.1.0");
    assert_eq!(v["playground"], env!("CARGO_PKG_VERSION"));
}

#[test]
fn a_rule_forwards_the_rewritten_path() {
    let config = "rules = [\"rewrite /old/{*rest} /new/{rest}\"]\nstrip_query = [\"utm_*\"]\n";
    let request = json!({
        "method": "GET", "scheme": "http", "authority": "example.com",
        "path": "/old/a/b", "query": "x=1&utm_source=m",
        "headers": [["Accept", "*/*"]], "client_ip": "192.0.2.1", "country": null
    });
    let r = parse(&rewrite(config, &request.to_string()));
    assert_eq!(r["config_errors"], json!([]), "{r}");
    assert_eq!(r["action"], "forward");
    assert_eq!(r["step"], "forward");
    assert_eq!(r["forwarded"], "GET /new/a/b?x=1");
    assert_eq!(r["headers_set"], json!([]));
    assert_eq!(r["headers_removed"], json!([]));
    assert_eq!(r["response"], Value::Null);
    assert_eq!(r["status"], Value::Null);
    assert_eq!(
        r["headers"],
        json!([["accept", "*/*"], ["host", "example.com"]])
    );
}

#[test]
fn header_changes_and_edge_answers_are_recorded_as_the_node_does() {
    let config = r#"
"set_header.X-Edge" = "outpost"
remove_header = "cookie"
rules = ["deny-ip 198.51.100.0/24"]
"#;
    let r = parse(&rewrite(
        config,
        r#"{"path":"/a","headers":[["cookie","a=b"]],"client_ip":"192.0.2.7"}"#,
    ));
    assert_eq!(r["forwarded"], "GET /a");
    assert_eq!(r["headers_set"], json!(["x-edge: outpost"]));
    assert_eq!(r["headers_removed"], json!(["cookie"]));

    let r = parse(&rewrite(
        config,
        r#"{"path":"/a","client_ip":"198.51.100.9"}"#,
    ));
    assert_eq!(r["action"], "respond", "{r}");
    assert_eq!(r["step"], "respond 403");
    assert_eq!(r["status"], 403);
    assert_eq!(r["response"]["status"], 403);
    assert_eq!(r["forwarded"], Value::Null);
}

#[test]
fn a_config_problem_is_reported_at_its_line_and_column() {
    let config =
        "sort_query = true\nrules = [\n  \"rewrite /a /b\",\n  \"frobnicate /x\",\n]\nbogus = 1\n";
    let r = parse(&rewrite(config, r#"{"path":"/a"}"#));
    let errors = r["config_errors"].as_array().expect("a list");
    assert_eq!(errors.len(), 2, "{r}");
    let rule = errors
        .iter()
        .find(|e| e["key"] == "rules")
        .expect("the bad rule");
    assert_eq!(
        (rule["line"].clone(), rule["column"].clone()),
        (json!(4), json!(3))
    );
    assert_eq!(rule["item"], 1);
    assert_eq!(
        (rule["key_line"].clone(), rule["key_column"].clone()),
        (json!(2), json!(1))
    );
    let bogus = errors.iter().find(|e| e["key"] == "bogus").expect("bogus");
    assert_eq!(
        (bogus["line"].clone(), bogus["column"].clone()),
        (json!(6), json!(9))
    );
    assert!(
        bogus["message"]
            .as_str()
            .is_some_and(|m| m.contains("unknown key"))
    );
    // The guest still runs with what parsed: the good rule applies.
    assert_eq!(r["forwarded"], "GET /b");
}

#[test]
fn a_syntax_error_is_reported_and_nothing_runs() {
    let r = parse(&rewrite("rules = [\"a\"\nx = ", r#"{"path":"/a"}"#));
    let errors = r["config_errors"].as_array().expect("a list");
    assert_eq!(errors.len(), 1);
    assert_eq!(errors[0]["key"], Value::Null);
    assert!(errors[0]["line"].as_u64().is_some());
    assert_eq!(r["action"], Value::Null);
    assert_eq!(r["forwarded"], Value::Null);
}

#[test]
fn routing_needs_the_origin_configured() {
    let config = "rules = [\"route beta when path=/b/\"]";
    let r = parse(&rewrite(
        config,
        r#"{"path":"/b/x","origins":["main","beta"]}"#,
    ));
    assert_eq!(r["config_errors"], json!([]), "{r}");
    assert_eq!(r["origin"], "beta");
    let r = parse(&rewrite(config, r#"{"path":"/b/x"}"#));
    assert_eq!(r["config_errors"][0]["key"], "rules");
    assert!(
        r["invalid"].as_str().is_some_and(|m| m.contains("beta")),
        "{r}"
    );
}

#[test]
fn a_request_the_node_refuses_never_reaches_the_guest() {
    let r = parse(&rewrite("", r#"{"path":"/a%2Fb"}"#));
    assert_eq!(r["action"], "refused");
    assert_eq!(r["status"], 400);
    assert_eq!(r["refused"], "encoded slash in the path");
}

#[test]
fn rendition_trims_a_master_playlist() {
    let response = json!({
        "status": 200,
        "headers": [["content-type", "application/vnd.apple.mpegurl"], ["etag", "\"v1\""]],
    });
    let r = parse(&rendition(
        "max_bandwidth = 1000000",
        &response.to_string(),
        MASTER,
        "",
    ));
    assert_eq!(r["config_errors"], json!([]), "{r}");
    assert_eq!(r["action"], "edit+body");
    assert_eq!(r["step"], "edit+body");
    assert_eq!(r["body_replaced"], true);
    assert_eq!(r["status"], 200);
    let body = r["body"].as_str().expect("a new body");
    assert!(body.starts_with("#EXTM3U"));
    // Above the cap: dropped; the lowest video variant stays (a floor), as does
    // the audio-only one.
    assert!(
        !body.contains("mid.m3u8") && !body.contains("hi.m3u8"),
        "{body}"
    );
    assert!(
        body.contains("low.m3u8") && body.contains("audio-only.m3u8"),
        "{body}"
    );
    assert_eq!(r["headers_removed"], json!(["etag"]));
    let set = r["headers_set"].as_array().expect("a list");
    assert!(
        set.iter().any(|h| h
            .as_str()
            .is_some_and(|h| h.starts_with("x-outpost-rendition: kept=2 dropped=2 cap=1000000"))),
        "{r}"
    );
}

#[test]
fn rendition_reads_the_load() {
    let config = "brownout = [\"0.8 1000000\"]\ncmsd = false";
    let response = r#"{"headers":[["content-type","application/vnd.apple.mpegurl"]]}"#;
    let idle = parse(&rendition(
        config,
        response,
        MASTER,
        r#"{"utilization":0.1}"#,
    ));
    assert_eq!(idle["body"], Value::Null, "{idle}");
    assert_eq!(idle["action"], "edit"); // the brownout level header
    let busy = parse(&rendition(
        config,
        response,
        MASTER,
        r#"{"utilization":0.9}"#,
    ));
    assert_eq!(busy["body_replaced"], true, "{busy}");
}

#[test]
fn bad_json_is_an_error() {
    for answer in [
        rewrite("", "{not json"),
        rewrite("", r#"{"pth":"/"}"#),
        rewrite_batch("", "{}"),
        rendition("", "[]", "", ""),
        rendition("", "{}", "", "{bad"),
        classify("", "", ""),
        classify("", "{}", r#"{"utilization":"high"}"#),
        cmcd("7"),
        rewrite("", r#"{"headers":[["bad name","x"]]}"#),
    ] {
        let v = parse(&answer);
        assert!(
            v["error"].as_str().is_some_and(|e| !e.is_empty()),
            "{answer}"
        );
    }
}

#[test]
fn classify_gives_a_class() {
    let r = parse(&classify(
        "",
        r#"{"path":"/live/index.m3u8","headers":[["user-agent","Player/1"]]}"#,
        "",
    ));
    assert_eq!(r["config_errors"], json!([]), "{r}");
    assert_eq!(r["decision"]["kind"], "admit");
    let class = r["decision"]["class"].as_str().expect("a class");
    assert!(outpost_guest::PriorityClass::parse(class).is_some());
    assert_eq!(r["step"], class);

    let bot = parse(&classify(
        "",
        r#"{"headers":[["user-agent","GoodBot/2"]]}"#,
        "",
    ));
    assert_eq!(bot["decision"]["class"], "bulk");

    let r = parse(&classify(
        "reject_methods = \"TRACE\"",
        r#"{"method":"TRACE"}"#,
        "",
    ));
    assert_eq!(r["decision"]["kind"], "reject", "{r}");
    assert_eq!(r["decision"]["status"], 405);
    assert_eq!(r["step"], "reject 405");
}

#[test]
fn classify_reads_the_load_and_the_clock() {
    let config = "drop_expired = true";
    let request = r#"{"headers":[["cmcd-request","dl=100"]]}"#;
    let calm = parse(&classify(config, request, r#"{"limit":10}"#));
    assert_eq!(calm["decision"]["kind"], "admit", "{calm}");
    let queued = r#"{"limit":10,"in_flight":10,"queued":5,"queue_delay_us":500000}"#;
    let late = parse(&classify(config, request, queued));
    assert_eq!(late["decision"]["kind"], "reject", "{late}");
    assert_eq!(late["status"], 504);
}

#[test]
fn cmcd_of_headers_and_query() {
    let r = parse(&cmcd(
        r#"{"path":"/seg.m4s","query":"CMCD=sid%3D%22abc%22%2Cbs","headers":[["CMCD-Request","bl=2100,dl=300"],["cmcd-object","ot=v,br=3200"]]}"#,
    ));
    assert_eq!(r["entries"]["bl"], 2100, "{r}");
    assert_eq!(r["entries"]["ot"], "v");
    assert_eq!(r["types"]["ot"], "token");
    assert_eq!(r["entries"]["sid"], "abc");
    assert_eq!(r["types"]["sid"], "str");
    assert_eq!(r["entries"]["bs"], true);
}

#[test]
fn a_batch_answers_as_each_call_would() {
    let config = "rules = [\"prefix /a/ /b/\", \"https 308\"]";
    let requests = json!([
        {"path": "/a/x", "scheme": "https"},
        {"path": "/a/x"},
        {"nonsense": true},
        {"path": "/%zz"},
    ]);
    let batch = parse(&rewrite_batch(config, &requests.to_string()));
    let items = batch.as_array().expect("an array");
    assert_eq!(items.len(), 4);
    for (i, item) in requests.as_array().expect("an array").iter().enumerate() {
        assert_eq!(
            items[i],
            parse(&rewrite(config, &item.to_string())),
            "item {i}"
        );
    }
    assert_eq!(items[0]["forwarded"], "GET /b/x");
    assert_eq!(items[1]["step"], "respond 308");
    assert!(items[2]["error"].is_string());
    assert_eq!(items[3]["action"], "refused");
}
