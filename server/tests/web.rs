//! The browser UI as the server serves it: the page and its modules from the
//! binary, with content types, revalidation by ETag, and the strict
//! Content-Security-Policy (no inline scripts, `img-src 'self'`). The UI's
//! behaviour is tested in a real browser under `tests/e2e/`.

mod common;

use common::{Backend, TestApp};
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper::{Request, StatusCode};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

async fn get(
    app: &TestApp,
    path: &str,
    etag: Option<&str>,
) -> (StatusCode, hyper::HeaderMap, Vec<u8>) {
    let client = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
    let mut b = Request::get(format!("{}{path}", app.base));
    if let Some(t) = etag {
        b = b.header("if-none-match", t);
    }
    let resp = client
        .request(b.body(Full::new(Bytes::new())).unwrap())
        .await
        .expect("request sent");
    let (parts, body) = resp.into_parts();
    let bytes = body.collect().await.expect("body").to_bytes().to_vec();
    (parts.status, parts.headers, bytes)
}

fn header<'a>(h: &'a hyper::HeaderMap, name: &str) -> &'a str {
    h.get(name).and_then(|v| v.to_str().ok()).unwrap_or("")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ui_is_served_from_the_binary_under_a_strict_csp() {
    let app = TestApp::start(Backend::Sqlite, |_| {}).await;
    let (status, h, body) = get(&app, "/", None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(header(&h, "content-type"), "text/html; charset=utf-8");
    let csp = header(&h, "content-security-policy");
    for part in [
        "script-src 'self'",
        "img-src 'self'",
        "connect-src 'self'",
        "object-src 'none'",
    ] {
        assert!(csp.contains(part), "{part} missing from {csp}");
    }
    assert!(
        !csp.contains("unsafe-inline") && !csp.contains("unsafe-eval"),
        "{csp}"
    );
    assert_eq!(header(&h, "x-content-type-options"), "nosniff");
    let html = String::from_utf8(body).unwrap();
    assert!(html.contains(r#"src="/assets/app.js""#));

    for (path, ty) in [
        ("/assets/app.js", "text/javascript; charset=utf-8"),
        ("/assets/chat.js", "text/javascript; charset=utf-8"),
        ("/assets/style.css", "text/css; charset=utf-8"),
        ("/assets/favicon.svg", "image/svg+xml"),
    ] {
        let (status, h, body) = get(&app, path, None).await;
        assert_eq!(status, StatusCode::OK, "{path}");
        assert_eq!(header(&h, "content-type"), ty, "{path}");
        assert_eq!(header(&h, "cache-control"), "no-cache", "{path}");
        assert!(!body.is_empty());
        // Revalidation: the same ETag gets 304 and no body.
        let etag = header(&h, "etag").to_string();
        assert!(etag.starts_with('"'), "{path}: {etag}");
        let (status, _, body) = get(&app, path, Some(&etag)).await;
        assert_eq!(status, StatusCode::NOT_MODIFIED, "{path}");
        assert!(body.is_empty());
        let (status, _, _) = get(&app, path, Some("\"stale\"")).await;
        assert_eq!(status, StatusCode::OK, "{path}");
    }
    for missing in [
        "/assets/nope.js",
        "/assets/index.html",
        "/assets/..%2FCargo.toml",
    ] {
        let (status, h, _) = get(&app, missing, None).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{missing}");
        assert!(header(&h, "content-security-policy").contains("default-src 'self'"));
    }
    app.stop().await;
}
