//! The browser UI: the files of `web/`, embedded in the binary at build time
//! and served from memory. `/` is the single page; `/assets/<name>` are its
//! modules, styles and icons. Responses carry their content type, an `ETag`
//! (a hash of the bytes) and `Cache-Control: no-cache`, so browsers keep the
//! files but revalidate them, and a new binary is picked up at once without
//! fingerprinted file names. The strict Content-Security-Policy comes from
//! the router's `security_headers` layer, which covers every response.

use std::sync::OnceLock;

use axum::extract::Path;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use sha2::{Digest, Sha256};

use crate::api::error::ApiError;
use crate::app::App;

/// One embedded file.
struct Asset {
    name: &'static str,
    content_type: &'static str,
    bytes: &'static [u8],
}

macro_rules! asset {
    ($name:literal, $type:expr) => {
        Asset {
            name: $name,
            content_type: $type,
            bytes: include_bytes!(concat!("../../../web/", $name)),
        }
    };
}

const JS: &str = "text/javascript; charset=utf-8";

/// Every file of the UI. A new file in `web/` must be listed here.
static ASSETS: &[Asset] = &[
    asset!("index.html", "text/html; charset=utf-8"),
    asset!("style.css", "text/css; charset=utf-8"),
    asset!("favicon.svg", "image/svg+xml"),
    asset!("app.js", JS),
    asset!("api.js", JS),
    asset!("socket.js", JS),
    asset!("dom.js", JS),
    asset!("chat.js", JS),
    asset!("admin.js", JS),
    asset!("digests.js", JS),
];

fn etags() -> &'static Vec<String> {
    static TAGS: OnceLock<Vec<String>> = OnceLock::new();
    TAGS.get_or_init(|| {
        ASSETS
            .iter()
            .map(|a| format!("\"{}\"", &hex::encode(Sha256::digest(a.bytes))[..20]))
            .collect()
    })
}

fn serve(name: &str, headers: &HeaderMap) -> Response {
    let Some(i) = ASSETS.iter().position(|a| a.name == name) else {
        return ApiError::not_found("asset").into_response();
    };
    let asset = &ASSETS[i];
    let etag = &etags()[i];
    let fresh = headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim() == etag));
    let etag = HeaderValue::from_str(etag).expect("hex etag is a valid header value");
    let cache = HeaderValue::from_static("no-cache");
    if fresh {
        return (
            StatusCode::NOT_MODIFIED,
            [(header::ETAG, etag), (header::CACHE_CONTROL, cache)],
        )
            .into_response();
    }
    (
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static(asset.content_type),
            ),
            (header::ETAG, etag),
            (header::CACHE_CONTROL, cache),
        ],
        asset.bytes,
    )
        .into_response()
}

async fn index(headers: HeaderMap) -> Response {
    serve("index.html", &headers)
}

async fn asset(Path(name): Path<String>, headers: HeaderMap) -> Response {
    // `index.html` is only served as `/`, so there is one address for the page.
    if name == "index.html" {
        return ApiError::not_found("asset").into_response();
    }
    serve(&name, &headers)
}

/// Routes for the page and its assets.
pub fn routes() -> Router<App> {
    Router::new()
        .route("/", get(index))
        .route("/assets/{name}", get(asset))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_asset_has_a_distinct_name_and_etag() {
        let mut names: Vec<_> = ASSETS.iter().map(|a| a.name).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), ASSETS.len());
        assert_eq!(etags().len(), ASSETS.len());
    }

    #[test]
    fn page_loads_no_inline_script_or_handler() {
        let html = std::str::from_utf8(ASSETS[0].bytes).expect("utf-8");
        assert!(!html.contains("<script>"), "inline script in index.html");
        let handler = html.split(" on").skip(1).any(|rest| {
            rest.split_once('=')
                .is_some_and(|(n, _)| n.bytes().all(|b| b.is_ascii_lowercase()))
        });
        assert!(!handler, "inline event handler in index.html");
        assert!(html.contains(r#"<script type="module" src="/assets/app.js">"#));
    }
}
