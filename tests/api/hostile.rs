//! Hostile and odd input: every JSON body, header and path a client could get
//! wrong or abuse gets a 4xx with a stable `error` code and leaves no trace
//! (nothing stored, no draft); valid but unusual values come back exactly.

use crate::helpers::{settings_for, spawn_app_with, TestApp, TestDatabase};
use crate::on_both_backends;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

/// The body-carrying routes, as (method, path) for a key `k` holding `[{"id":"r1"}]`.
const BODY_ROUTES: &[(&str, &str)] = &[
    ("PUT", "/api/storage/k"),
    ("POST", "/api/storage/k/items"),
    ("PATCH", "/api/storage/k/items/r1"),
    ("POST", "/api/admin/users"),
    ("POST", "/api/login"),
];

/// Bodies that must be refused, each with the code it must get.
fn hostile_bodies() -> Vec<(&'static str, Vec<u8>)> {
    vec![
        ("invalid_json", b"{\"id\":".to_vec()),
        ("invalid_json", b"".to_vec()),
        ("invalid_json", b"{\"id\":\"x\"} {\"id\":\"y\"}".to_vec()),
        ("invalid_json", b"{\"id\":\"x\"}garbage".to_vec()),
        ("invalid_json", b"{'id':'x'}".to_vec()),
        ("invalid_json", b"{\"id\":NaN}".to_vec()),
        ("invalid_json", b"{\"id\":\"x\",}".to_vec()),
        ("invalid_json", b"\xef\xbb\xbf{\"id\":\"x\"}".to_vec()),
        ("invalid_utf8", b"{\"id\":\"\xff\xfe\"}".to_vec()),
        ("invalid_utf8", b"{\"id\":\"\xc0\xaf\"}".to_vec()),
        ("invalid_utf8", b"{\"id\":\"\xed\xa0\x80\"}".to_vec()),
        ("invalid_unicode_escape", br#"{"id":"\ud800"}"#.to_vec()),
        ("invalid_unicode_escape", br#"{"id":"\udc00x"}"#.to_vec()),
        ("invalid_unicode_escape", br#"{"id":"a","n":"\ud83d\u0041"}"#.to_vec()),
        ("duplicate_json_key", br#"{"id":"x","id":"y"}"#.to_vec()),
        (
            "duplicate_json_key",
            br#"{"id":"x","role":"user","\u0072ole":"admin"}"#.to_vec(),
        ),
        (
            "duplicate_json_key",
            br#"{"id":"x","deep":[{"a":1,"b":{"c":1,"c":2}}]}"#.to_vec(),
        ),
        (
            "json_too_deep",
            format!("{{\"id\":\"x\",\"n\":{}1{}}}", "[".repeat(64), "]".repeat(64)).into_bytes(),
        ),
        (
            "json_too_deep",
            format!("{}{}", "[".repeat(20_000), "]".repeat(20_000)).into_bytes(),
        ),
        (
            "reserved_json_key",
            br#"{"$serde_json::private::Number":"12"}"#.to_vec(),
        ),
        (
            "reserved_json_key",
            br#"{"id":"x","n":{"\u0024serde_json::private::Number":"1e999"}}"#.to_vec(),
        ),
    ]
}

async fn assert_untouched(app: &TestApp) {
    let read = app.read(&app.admin_token, "k").await;
    assert_eq!(read.body["version"], 1, "{:?}", read.body);
    assert_eq!(read.body["value"], json!([{"id": "r1"}]));
    assert!(
        app.my_drafts(&app.admin_token).await.is_empty(),
        "a hostile body made a draft"
    );
    let stats = app.get(&app.admin_token, "/api/admin/drafts/stats").await;
    assert_eq!(stats.body["total"], 0);
}

on_both_backends! {
    async fn every_hostile_body_on_every_route_is_400_with_its_code_and_leaves_no_trace(app) {
        app.seed("k", &json!([{"id": "r1"}])).await;
        // A stale If-Match: had the body got through, it would have become a draft.
        let stale = [("if-match", "\"7\"")];
        for (method, path) in BODY_ROUTES {
            let method = Method::from_bytes(method.as_bytes()).expect("a method");
            let token = (*path != "/api/login").then_some(app.admin_token.as_str());
            for (code, body) in hostile_bodies() {
                let reply = app.call(method.clone(), path, token, &stale, Some(body.clone())).await;
                let shown = String::from_utf8_lossy(&body[..body.len().min(80)]).into_owned();
                assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{method} {path} {shown:?}: {:?}", reply.body);
                assert_eq!(reply.body["error"], code, "{method} {path} {shown:?}: {:?}", reply.body);
                assert!(reply.body["message"].is_string());
            }
        }
        assert_untouched(&app).await;
    }

    async fn a_duplicate_key_cannot_smuggle_a_second_value_past_validation(app) {
        // serde_json alone would keep the last `role`: an admin.
        let body = br#"{"username":"mallory","password":"mallory-password","role":"user","role":"admin"}"#;
        let reply = app.call(Method::POST, "/api/admin/users", Some(&app.admin_token), &[], Some(body.to_vec())).await;
        assert_eq!((reply.status, reply.body["error"].clone()), (StatusCode::BAD_REQUEST, json!("duplicate_json_key")));
        assert_eq!(app.try_login("mallory", "mallory-password").await.status, StatusCode::UNAUTHORIZED);
        // The same duplicate inside a stored value is refused too; the record would lose a field silently.
        let body = br#"[{"id":"a","notes":"first","notes":"second"}]"#;
        let reply = app.call(Method::PUT, "/api/storage/dup", Some(&app.admin_token), &[], Some(body.to_vec())).await;
        assert_eq!(reply.body["error"], "duplicate_json_key");
        assert_eq!(app.read(&app.admin_token, "dup").await.status, StatusCode::NOT_FOUND);
    }

    async fn nesting_up_to_the_limit_is_stored_and_one_level_more_is_refused(app) {
        let at_limit = format!("{}{}", "[".repeat(64), "]".repeat(64));
        let reply = app.call(Method::PUT, "/api/storage/deep", Some(&app.admin_token), &[], Some(at_limit.clone().into_bytes())).await;
        assert_eq!(reply.status, StatusCode::CREATED, "{:?}", reply.body);
        let read = app.read(&app.admin_token, "deep").await;
        assert_eq!(serde_json::to_string(&read.body["value"]).expect("json"), at_limit);
        let over = format!("{}{}", "[".repeat(65), "]".repeat(65));
        let reply = app.call(Method::PUT, "/api/storage/deep", Some(&app.admin_token), &[("if-match", "\"1\"")], Some(over.into_bytes())).await;
        assert_eq!((reply.status, reply.body["error"].clone()), (StatusCode::BAD_REQUEST, json!("json_too_deep")));
        assert_eq!(app.read(&app.admin_token, "deep").await.body["version"], 1);
    }

    async fn odd_but_valid_values_are_stored_and_returned_exactly(app) {
        // Compact JSON as serde_json writes it, so the text must come back byte for byte.
        let text = concat!(
            r#"[{"id":"n","beyond53":9007199254740993,"beyondU64":18446744073709551616,"#,
            r#""huge":123456789012345678901234567890123456789,"negative":-9223372036854775809,"#,
            r#""decimal":0.1,"sum":0.30000000000000004,"exp":1e+400,"tiny":5e-324,"negZero":-0.0,"#,
            r#""oneDotZero":1.0,"nothing":null},"#,
            r#"{"id":"absent"},"#,
            r#"{"id":"text","emoji":"😀👩‍👩‍👧","german":"Kundengespräch über Preise","cjk":"東京","rtl":"مرحبا","#,
            r#""escapes":"quote\" backslash\\ tab\t nul\u0000","keyOrder":{"z":1,"a":2,"m":3}}]"#,
        );
        let reply = app.call(Method::PUT, "/api/storage/odd", Some(&app.admin_token), &[], Some(text.as_bytes().to_vec())).await;
        assert_eq!(reply.status, StatusCode::CREATED, "{:?}", reply.body);
        let read = app.read(&app.admin_token, "odd").await;
        let value = &read.body["value"];
        assert_eq!(serde_json::to_string(value).expect("json"), text);
        assert_eq!(value[0]["beyondU64"].to_string(), "18446744073709551616");
        assert_eq!(value[0]["decimal"].to_string(), "0.1");
        // `null` is kept as a field; an absent field stays absent.
        assert!(value[0].as_object().expect("object").contains_key("nothing"));
        assert!(value[0]["nothing"].is_null());
        assert!(!value[1].as_object().expect("object").contains_key("nothing"));
        assert_eq!(value[2]["emoji"], "😀👩‍👩‍👧");
        // The parser writes every exponent as `e+`/`e-`: the same number, the same digits.
        let reply = app.call(Method::PUT, "/api/storage/exp", Some(&app.admin_token), &[], Some(b"[1E400,2e5,3E-7]".to_vec())).await;
        assert_eq!(reply.status, StatusCode::CREATED);
        let read = app.read(&app.admin_token, "exp").await;
        assert_eq!(serde_json::to_string(&read.body["value"]).expect("json"), "[1e+400,2e+5,3e-7]");

        // An escaped surrogate pair is one valid character.
        let escaped = br#"{"id":"pair","emoji":"\ud83d\ude00"}"#;
        let reply = app.call(Method::POST, "/api/storage/odd/items", Some(&app.admin_token), &[], Some(escaped.to_vec())).await;
        assert_eq!(reply.status, StatusCode::CREATED, "{:?}", reply.body);
        let read = app.read(&app.admin_token, "odd").await;
        assert_eq!(read.body["value"][3]["emoji"], "😀");

        // A stale write keeps the payload exactly, too.
        let stale = app.call(Method::PUT, "/api/storage/odd", Some(&app.admin_token), &[("if-match", "\"1\"")], Some(text.as_bytes().to_vec())).await;
        assert_eq!(stale.status, StatusCode::CONFLICT);
        let drafts = app.my_drafts(&app.admin_token).await;
        assert_eq!(serde_json::to_string(&drafts[0]["payload"]).expect("json"), text);
    }

    async fn malformed_if_match_values_are_400_and_weak_ones_never_match(app) {
        app.seed("k", &json!([{"id": "r1"}])).await;
        let malformed: &[&[u8]] = &[
            b"", b"1", b"\"1", b"1\"", b"\"1\"\"2\"", b"\"1\" x", b"W/1", b"W/\"1", b"w/\"1\"", b"*, \"1\"",
            b"\"a b\"", b"\xff", b"\"\xc3\xa9\"junk", b",,,",
        ];
        for raw in malformed {
            let value = reqwest::header::HeaderValue::from_bytes(raw).expect("a header value");
            let response = app
                .client
                .put(app.url("/api/storage/k"))
                .bearer_auth(&app.admin_token)
                .header("if-match", value)
                .body("[]")
                .send()
                .await
                .expect("the server answers");
            assert_eq!(response.status(), StatusCode::BAD_REQUEST, "{:?}", String::from_utf8_lossy(raw));
            let body: Value = response.json().await.expect("a JSON error");
            assert_eq!(body["error"], "invalid_precondition", "{:?}", String::from_utf8_lossy(raw));
        }
        let long = format!("\"{}\"", "9".repeat(8000));
        let reply = app.put(&app.admin_token, "k", &json!([]), Some(&long)).await;
        assert_eq!(reply.status, StatusCode::CONFLICT, "a well-formed tag no version has is stale");
        app.delete(&app.admin_token, &format!("/api/drafts/{}", reply.body["draftId"].as_str().expect("a draft"))).await;
        // Same for the item routes, which accept an optional If-Match.
        let reply = app.call(Method::PATCH, "/api/storage/k/items/r1", Some(&app.admin_token), &[("if-match", "\"1")], Some(b"{}".to_vec())).await;
        assert_eq!(reply.body["error"], "invalid_precondition");
        let reply = app.call(Method::DELETE, "/api/storage/k/items/r1", Some(&app.admin_token), &[("if-match", "nope")], None).await;
        assert_eq!(reply.body["error"], "invalid_precondition");
        let reply = app.call(Method::PUT, "/api/storage/k", Some(&app.admin_token), &[("if-none-match", "\"1\"")], Some(b"[]".to_vec())).await;
        assert_eq!(reply.body["error"], "invalid_precondition");
        assert_untouched(&app).await;

        // A weak tag is well-formed but never matches: a stale write, kept as a draft.
        let weak = app.put(&app.admin_token, "k", &json!([{"id": "w"}]), Some("W/\"1\"")).await;
        assert_eq!(weak.status, StatusCode::CONFLICT);
        assert_eq!(weak.body["draftSaved"], true);
        assert_eq!(app.read(&app.admin_token, "k").await.body["version"], 1);
    }

    async fn invalid_keys_and_path_tricks_are_refused_on_every_storage_route(app) {
        app.seed("k", &json!([{"id": "r1"}])).await;
        let bad_keys = ["a%2Fb", "a%2fb", "a%20b", "a%00b", "caf%C3%A9", "a:b", "a%5Cb", "%252F", &"k".repeat(129), &"x".repeat(5000)];
        for key in bad_keys {
            let routes = [
                (Method::GET, format!("/api/storage/{key}")),
                (Method::PUT, format!("/api/storage/{key}")),
                (Method::POST, format!("/api/storage/{key}/items")),
                (Method::PATCH, format!("/api/storage/{key}/items/r1")),
                (Method::DELETE, format!("/api/storage/{key}/items/r1")),
            ];
            for (method, path) in routes {
                let reply = app.call(method.clone(), &path, Some(&app.admin_token), &[], Some(br#"{"id":"r1"}"#.to_vec())).await;
                assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{method} {path}");
                assert_eq!(reply.body["error"], "invalid_key", "{method} {path}");
            }
        }
        // Segments that a client or the router resolves: never a stored key.
        for path in ["/api/storage/..", "/api/storage/%2E%2E", "/api/storage/.", "/api/storage/../storage/k", "/api/storage//k", "/api/storage/k/"] {
            let reply = app.call(Method::PUT, path, Some(&app.admin_token), &[], Some(b"[9]".to_vec())).await;
            assert!(reply.status.is_client_error(), "{path}: {}", reply.status);
            assert!(reply.body["error"].is_string(), "{path}: {:?}", reply.body);
        }
        assert_untouched(&app).await;
        let keys = app.get(&app.admin_token, "/api/admin/keys").await;
        if keys.status == StatusCode::OK {
            let listed: Vec<&str> = keys.body["keys"].as_array().into_iter().flatten().filter_map(|k| k["key"].as_str()).collect();
            assert_eq!(listed, ["k"], "{:?}", keys.body);
        }
    }

    async fn hostile_headers_and_query_strings_are_400_and_store_nothing(app) {
        app.seed("k", &json!([{"id": "r1"}])).await;
        let long_id = "t".repeat(129);
        let long_key = "i".repeat(256);
        let headers: [(&str, &str, &str); 5] = [
            ("x-transaction-id", long_id.as_str(), "invalid_transaction_id"),
            ("x-transaction-id", "has space", "invalid_transaction_id"),
            ("idempotency-key", long_key.as_str(), "invalid_idempotency_key"),
            ("idempotency-key", "with\ttab", "invalid_idempotency_key"),
            ("idempotency-key", "", "invalid_idempotency_key"),
        ];
        for (name, value, code) in headers {
            let sent = [(name, value), ("if-match", "\"1\"")];
            let reply = app.call(Method::PUT, "/api/storage/k", Some(&app.admin_token), &sent, Some(b"[2]".to_vec())).await;
            assert_eq!((reply.status, reply.body["error"].clone()), (StatusCode::BAD_REQUEST, json!(code)), "{name}: {value:?}");
        }
        for path in [
            "/api/admin/drafts?limit=abc",
            "/api/admin/drafts?limit=0",
            "/api/admin/drafts?limit=99999999999999999999",
            "/api/admin/drafts?reason=nope",
            "/api/storage/k/history?limit=-1",
        ] {
            let reply = app.get(&app.admin_token, path).await;
            assert_eq!((reply.status, reply.body["error"].clone()), (StatusCode::BAD_REQUEST, json!("invalid_request")), "{path}");
        }
        for path in ["/api/storage/k/versions/abc", "/api/storage/k/versions/99999999999999999999", "/api/storage/k/versions/-1"] {
            let reply = app.get(&app.admin_token, path).await;
            assert_eq!((reply.status, reply.body["error"].clone()), (StatusCode::NOT_FOUND, json!("not_found")), "{path}");
        }
        assert_untouched(&app).await;
    }

    async fn unknown_routes_and_methods_answer_json_404_and_405(app) {
        for path in ["/api/nothing", "/api", "/api/", "/api/storage", "/api/storage/k/items/r1/extra", "/api/admin/nothing", "/api/drafts/a/b/c"] {
            let reply = app.call(Method::GET, path, Some(&app.admin_token), &[], None).await;
            assert_eq!((reply.status, reply.body["error"].clone()), (StatusCode::NOT_FOUND, json!("not_found")), "{path}");
        }
        let wrong_methods = [
            (Method::DELETE, "/api/storage/k"),
            (Method::PATCH, "/api/storage/k"),
            (Method::POST, "/api/storage/k"),
            (Method::GET, "/api/storage/k/items"),
            (Method::PUT, "/api/storage/k/items/r1"),
            (Method::GET, "/api/login"),
            (Method::PUT, "/api/drafts"),
            (Method::GET, "/api/drafts/x/submit"),
            (Method::DELETE, "/api/admin/users"),
            (Method::from_bytes(b"BREW").expect("a method"), "/api/storage/k"),
        ];
        for (method, path) in wrong_methods {
            let reply = app.call(method.clone(), path, Some(&app.admin_token), &[], Some(b"[]".to_vec())).await;
            assert_eq!(reply.status, StatusCode::METHOD_NOT_ALLOWED, "{method} {path}");
            assert_eq!(reply.body["error"], "method_not_allowed", "{method} {path}");
        }
        assert_eq!(app.read(&app.admin_token, "k").await.status, StatusCode::NOT_FOUND);
    }
}

/// A raw HTTP/1.1 exchange, for requests reqwest will not send (lying
/// `Content-Length`, chunked bodies): the status and the JSON body, if any.
async fn raw_exchange(app: &TestApp, head: &str, body: &[u8]) -> (u16, Option<Value>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let address = app.address.trim_start_matches("http://");
    let mut socket = tokio::net::TcpStream::connect(address).await.expect("connecting");
    let mut request = head.replace('\n', "\r\n").into_bytes();
    request.extend_from_slice(body);
    // The server may answer and close before it has read everything: fine.
    let _ = socket.write_all(&request).await;
    // Read until one whole response is in (the server may keep the
    // connection open, waiting for a body that never comes).
    let mut answer = Vec::new();
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
    while !holds_a_whole_response(&answer) {
        let mut chunk = [0u8; 8192];
        match tokio::time::timeout_at(deadline, socket.read(&mut chunk)).await {
            Ok(Ok(0)) | Ok(Err(_)) => break,
            Ok(Ok(n)) => answer.extend_from_slice(&chunk[..n]),
            Err(_) => panic!("no whole response within 10 s: {:?}", String::from_utf8_lossy(&answer)),
        }
    }
    let text = String::from_utf8_lossy(&answer).into_owned();
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|code| code.parse().ok())
        .unwrap_or_else(|| panic!("no HTTP status in {text:?}"));
    // Only the first response counts; a second one (to trailing garbage) may follow.
    let json = text
        .split_once("\r\n\r\n")
        .and_then(|(_, body)| serde_json::Deserializer::from_str(body).into_iter::<Value>().next())
        .and_then(Result::ok);
    (status, json)
}

mod limits {
    use super::*;

    async fn small_limits_app() -> TestApp {
        let db = TestDatabase::sqlite();
        let settings = coordinator::Settings {
            max_body_bytes: 1024,
            max_json_depth: 3,
            ..settings_for(&db)
        };
        spawn_app_with(db, settings).await
    }

    #[actix_web::test]
    async fn a_body_over_the_limit_is_413_whatever_content_length_says() {
        let app = small_limits_app().await;
        let token = app.admin_token.clone();
        let big = format!("[\"{}\"]", "x".repeat(4000));

        // An honest Content-Length over the limit: refused before the body is
        // read (so it is not sent: unread bytes would make the close a reset).
        let head = format!(
            "PUT /api/storage/k HTTP/1.1\nHost: t\nAuthorization: Bearer {token}\nContent-Type: application/json\n\
             Content-Length: {}\nConnection: close\n\n",
            big.len()
        );
        let (status, body) = raw_exchange(&app, &head, b"").await;
        assert_eq!(status, 413);
        assert_eq!(body.expect("a JSON error")["error"], "payload_too_large");

        // A huge declared length with a small body: refused on the declaration.
        let head = format!(
            "PUT /api/storage/k HTTP/1.1\nHost: t\nAuthorization: Bearer {token}\nContent-Type: application/json\n\
             Content-Length: 99999999999\nConnection: close\n\n"
        );
        let (status, _) = raw_exchange(&app, &head, b"").await;
        assert_eq!(status, 413);

        // No length at all (chunked): counted as it arrives. Three chunks of
        // 500 bytes pass the limit; the rest of the body is never sent.
        let mut chunked = Vec::new();
        for piece in big.as_bytes().chunks(500).take(3) {
            chunked.extend_from_slice(format!("{:x}\r\n", piece.len()).as_bytes());
            chunked.extend_from_slice(piece);
            chunked.extend_from_slice(b"\r\n");
        }
        let head = format!(
            "PUT /api/storage/k HTTP/1.1\nHost: t\nAuthorization: Bearer {token}\nContent-Type: application/json\n\
             Transfer-Encoding: chunked\nConnection: close\n\n"
        );
        let (status, body) = raw_exchange(&app, &head, &chunked).await;
        assert_eq!(status, 413);
        assert_eq!(body.expect("a JSON error")["error"], "payload_too_large");

        // A Content-Length smaller than the body: only the declared bytes are
        // the body (here broken JSON); the rest is read as a next request,
        // which is no request at all.
        let head = format!(
            "PUT /api/storage/k HTTP/1.1\nHost: t\nAuthorization: Bearer {token}\nContent-Type: application/json\n\
             Content-Length: 10\n\n"
        );
        let (status, body) = raw_exchange(&app, &head, format!("{big}\r\n\r\n").as_bytes()).await;
        assert_eq!(status, 400);
        assert_eq!(body.expect("a JSON error")["error"], "invalid_json");

        // The same limit on the other body routes.
        let login = format!("{{\"username\":\"admin\",\"password\":\"{}\"}}", "p".repeat(70 * 1024));
        let reply = app
            .call(Method::POST, "/api/login", None, &[], Some(login.into_bytes()))
            .await;
        assert_eq!(
            (reply.status, reply.body["error"].clone()),
            (StatusCode::PAYLOAD_TOO_LARGE, json!("payload_too_large"))
        );
        let reply = app
            .call(
                Method::POST,
                "/api/storage/k/items",
                Some(&token),
                &[],
                Some(big.clone().into_bytes()),
            )
            .await;
        assert_eq!(reply.status, StatusCode::PAYLOAD_TOO_LARGE);

        // Nothing of any of it was stored or kept as a draft; a body at the limit is fine.
        assert_eq!(app.read(&token, "k").await.status, StatusCode::NOT_FOUND);
        assert!(app.my_drafts(&token).await.is_empty());
        let fits = format!("[\"{}\"]", "x".repeat(1020));
        assert_eq!(fits.len(), 1024);
        let reply = app
            .call(
                Method::PUT,
                "/api/storage/k",
                Some(&token),
                &[],
                Some(fits.into_bytes()),
            )
            .await;
        assert_eq!(reply.status, StatusCode::CREATED);
    }

    #[actix_web::test]
    async fn the_json_depth_limit_is_a_setting() {
        let app = small_limits_app().await;
        let token = app.admin_token.clone();
        let reply = app
            .call(
                Method::PUT,
                "/api/storage/d",
                Some(&token),
                &[],
                Some(br#"[[{"a":1}]]"#.to_vec()),
            )
            .await;
        assert_eq!(reply.status, StatusCode::CREATED, "{:?}", reply.body);
        let reply = app
            .call(
                Method::PUT,
                "/api/storage/e",
                Some(&token),
                &[],
                Some(br#"[[{"a":[]}]]"#.to_vec()),
            )
            .await;
        assert_eq!(
            (reply.status, reply.body["error"].clone()),
            (StatusCode::BAD_REQUEST, json!("json_too_deep"))
        );
        assert_eq!(app.read(&token, "e").await.status, StatusCode::NOT_FOUND);
    }
}

fn holds_a_whole_response(bytes: &[u8]) -> bool {
    let text = String::from_utf8_lossy(bytes);
    let Some((head, body)) = text.split_once("\r\n\r\n") else {
        return false;
    };
    let length = head
        .lines()
        .filter_map(|line| line.split_once(':'))
        .find(|(name, _)| name.trim().eq_ignore_ascii_case("content-length"))
        .and_then(|(_, value)| value.trim().parse::<usize>().ok())
        .unwrap_or(0);
    body.len() >= length
}
