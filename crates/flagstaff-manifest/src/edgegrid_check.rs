//! The upstream `validateAkamaiEdgeGridAuth` rule, generalised: an `edgeGridAuth` header must
//! sign exactly the request its endpoint sends, and cannot sign POST bodies (the body is not
//! known when headers render).

use regex::Regex;
use std::sync::OnceLock;

use crate::model::{Endpoint, HttpMethod};

/// `None` when the header does not use `edgeGridAuth` or uses it correctly.
pub fn check(endpoint: &Endpoint, header_source: &str) -> Option<String> {
    static CALL: OnceLock<Regex> = OnceLock::new();
    let call = CALL.get_or_init(|| {
        Regex::new(r#"\{\{\{?\s*edgeGridAuth\s+(?:'([^']*)'|"([^"]*)")\s+(?:'([^']*)'|"([^"]*)")"#)
            .expect("valid regex")
    });
    if !header_source.contains("edgeGridAuth") {
        return None;
    }
    if endpoint.method == HttpMethod::Post {
        return Some(
            "edgeGridAuth cannot sign POST requests (the body is not available when headers \
             render); use PUT"
                .into(),
        );
    }
    let Some(captures) = call.captures(header_source) else {
        return Some(
            "edgeGridAuth must be called as {{edgeGridAuth '<METHOD>' '<path>' hostname ...}} \
             with the method and path as string literals"
                .into(),
        );
    };
    let method = captures
        .get(1)
        .or(captures.get(2))
        .map_or("", |m| m.as_str());
    let path = captures
        .get(3)
        .or(captures.get(4))
        .map_or("", |m| m.as_str());
    if method != endpoint.method.as_str() {
        return Some(format!(
            "edgeGridAuth signs method `{method}` but the endpoint sends `{}`",
            endpoint.method.as_str()
        ));
    }
    let url_path = endpoint
        .url
        .split_once("://")
        .map(|(_, rest)| rest)
        .and_then(|rest| rest.find('/').map(|index| &rest[index..]))
        .unwrap_or("");
    if path != url_path {
        return Some(format!(
            "edgeGridAuth signs path `{path}` but the endpoint URL's path is `{url_path}`"
        ));
    }
    None
}
