//! The OpenAPI document and the router cannot drift apart.

use std::collections::BTreeSet;

use crate::support::TestGateway;

fn document() -> serde_json::Value {
    serde_json::from_str(api_gateway::handler::openapi::DOCUMENT).expect("openapi.json is valid JSON")
}

#[test]
fn the_document_is_openapi_3() {
    let document = document();
    let version = document["openapi"].as_str().expect("an openapi version");
    assert!(version.starts_with("3."), "{version}");
    assert!(document["info"]["title"].is_string());
    assert!(document["paths"].is_object());
}

fn documented() -> BTreeSet<(String, String)> {
    let document = document();
    let mut routes = BTreeSet::new();
    for (path, item) in document["paths"].as_object().unwrap() {
        for method in item.as_object().unwrap().keys() {
            if ["get", "put", "post", "delete", "patch", "head", "options", "trace"].contains(&method.as_str()) {
                routes.insert((method.to_uppercase(), path.clone()));
            }
        }
    }
    routes
}

#[tokio::test]
async fn every_served_route_is_documented_and_every_documented_route_is_served() {
    let gateway = TestGateway::start().await;
    let served: BTreeSet<(String, String)> =
        gateway.routes.iter().map(|(method, path)| (method.to_string(), (*path).to_owned())).collect();
    let documented = documented();
    let undocumented: Vec<_> = served.difference(&documented).collect();
    let unserved: Vec<_> = documented.difference(&served).collect();
    assert!(undocumented.is_empty(), "served but not in openapi.json: {undocumented:?}");
    assert!(unserved.is_empty(), "in openapi.json but not served: {unserved:?}");

    // The router really answers each one (not the 404 fallback, not 405), so the route list
    // the router reports cannot drift from what it serves either.
    for (method, path) in &documented {
        let concrete = path.replace("{id}", "6f1c2b9e-3d4a-4e8b-9f10-2a7c5d6e8b01");
        let method: http::Method = method.parse().unwrap();
        let body = (method == http::Method::POST).then(|| serde_json::json!({}));
        let reply = gateway.request(method.clone(), &concrete, &[], body).await;
        let fell_through = reply.status == 405
            || (reply.status == 404
                && reply.body["error"]["message"].as_str().is_some_and(|m| m.starts_with("no route")));
        assert!(!fell_through, "{method} {path} is documented but not routed: {}", reply.text);
    }
}

#[tokio::test]
async fn the_served_document_is_the_committed_file() {
    let gateway = TestGateway::start().await;
    let reply = gateway.get("/openapi.json", None).await;
    assert_eq!(reply.status, 200);
    assert_eq!(reply.headers["content-type"], "application/json");
    assert_eq!(reply.body, document());
}
