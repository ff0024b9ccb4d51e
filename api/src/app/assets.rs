//! The web app's stylesheet and script, under content-hashed names so that browsers keep
//! them for a year and fetch a new one the moment it changes.

use sha2::{Digest, Sha256};
use std::sync::LazyLock;
use warp::{
    http::{HeaderValue, StatusCode, header},
    reply::Response,
};

struct Asset {
    /// `app-<hash>.css`
    hashed_name: String,
    name: &'static str,
    content_type: &'static str,
    body: &'static str,
}

static ASSETS: LazyLock<[Asset; 2]> = LazyLock::new(|| {
    let asset = |name: &'static str, content_type, body: &'static str| {
        let digest = hex::encode(&Sha256::digest(body.as_bytes())[..8]);
        let (stem, extension) = name.split_once('.').unwrap_or((name, ""));
        Asset {
            hashed_name: format!("{stem}-{digest}.{extension}"),
            name,
            content_type,
            body,
        }
    };
    [
        // The dashboard's look, then the app's own rules.
        asset(
            "app.css",
            "text/css; charset=utf-8",
            concat!(
                include_str!("../../../dashboard/static/app.css"),
                include_str!("../../app/static/app.css")
            ),
        ),
        asset(
            "app.js",
            "text/javascript; charset=utf-8",
            include_str!("../../app/static/app.js"),
        ),
    ]
});

/// `/static/app-<hash>.css` for `app.css`.
pub fn path(name: &str) -> String {
    ASSETS
        .iter()
        .find(|asset| asset.name == name)
        .map(|asset| format!("/static/{}", asset.hashed_name))
        .unwrap_or_default()
}

/// The asset with this hashed name.
pub fn serve(hashed_name: &str) -> Option<Response> {
    let asset = ASSETS.iter().find(|a| a.hashed_name == hashed_name)?;
    let mut response = Response::new(asset.body.into());
    *response.status_mut() = StatusCode::OK;
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(asset.content_type),
    );
    headers.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=31536000, immutable"),
    );
    Some(response)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn assets_are_served_under_their_hashed_names_only() {
        let css = path("app.css");
        assert!(
            css.starts_with("/static/app-") && css.ends_with(".css"),
            "{css}"
        );
        let hashed = css.trim_start_matches("/static/");
        assert!(serve(hashed).is_some());
        assert!(serve("app.css").is_none());
    }
}
