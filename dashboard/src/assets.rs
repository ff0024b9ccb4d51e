//! The stylesheet and script, built into the binary, served with ETags (no CDN).

use sha2::{Digest, Sha256};
use std::sync::LazyLock;
use warp::{
    http::{HeaderValue, StatusCode, header},
    reply::Response,
};

struct Asset {
    body: &'static str,
    content_type: &'static str,
    etag: String,
}

fn asset(body: &'static str, content_type: &'static str) -> Asset {
    let etag = format!(
        "\"{}\"",
        hex::encode(&Sha256::digest(body.as_bytes())[..12])
    );
    Asset {
        body,
        content_type,
        etag,
    }
}

static CSS: LazyLock<Asset> =
    LazyLock::new(|| asset(include_str!("../static/app.css"), "text/css; charset=utf-8"));
static JS: LazyLock<Asset> = LazyLock::new(|| {
    asset(
        include_str!("../static/app.js"),
        "text/javascript; charset=utf-8",
    )
});

/// `GET /static/{name}`, answering `304` when the client's copy is current.
pub fn serve(name: &str, if_none_match: Option<&str>) -> Option<Response> {
    let asset: &Asset = match name {
        "app.css" => &CSS,
        "app.js" => &JS,
        _ => return None,
    };
    let mut response = if if_none_match == Some(asset.etag.as_str()) {
        let mut not_modified = Response::new(Vec::new().into());
        *not_modified.status_mut() = StatusCode::NOT_MODIFIED;
        not_modified
    } else {
        let mut ok = Response::new(asset.body.into());
        ok.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static(asset.content_type),
        );
        ok
    };
    let headers = response.headers_mut();
    if let Ok(etag) = HeaderValue::from_str(&asset.etag) {
        headers.insert(header::ETAG, etag);
    }
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    Some(response)
}
