//! The stylesheet and script, built into the binary and served by the dashboard itself (no
//! CDN at run time), fit for one in front of it:
//! - pages link each asset by a name that carries a hash of its content (`app.3f9c….css`),
//!   served `immutable` for a year: a browser or CDN never asks twice, and a changed asset
//!   gets a new name, so nobody sees a stale one;
//! - compressed once, with brotli and gzip, and sent as the request's `Accept-Encoding`
//!   prefers;
//! - pages carry a Subresource Integrity hash of each, so a copy altered on the way (or in a
//!   cache) is refused by the browser.
//!
//! The plain names (`/static/app.css`) still answer, revalidated by ETag, for pages rendered
//! by an older release during a rolling deploy.

use base64::Engine;
use sha2::{Digest, Sha256, Sha384};
use std::{io::Write, sync::LazyLock};
use warp::{
    http::{HeaderValue, StatusCode, header},
    reply::Response,
};

/// How long a hashed asset may be kept: its name changes with its content.
const IMMUTABLE: &str = "public, max-age=31536000, immutable";

struct Asset {
    /// The plain name, `app.css`.
    name: &'static str,
    /// The name with the content's hash, `app.<hash>.css`.
    hashed_name: String,
    content_type: &'static str,
    etag: String,
    /// `sha384-…`, for the `integrity` attribute.
    integrity: String,
    body: &'static [u8],
    brotli: Vec<u8>,
    gzip: Vec<u8>,
}

impl Asset {
    fn new(name: &'static str, body: &'static str, content_type: &'static str) -> Self {
        let body = body.as_bytes();
        let digest = hex::encode(&Sha256::digest(body)[..10]);
        Self {
            name,
            hashed_name: hashed_name(name, &digest),
            content_type,
            etag: format!("\"{digest}\""),
            integrity: format!(
                "sha384-{}",
                base64::engine::general_purpose::STANDARD.encode(Sha384::digest(body))
            ),
            body,
            brotli: brotli_compressed(body),
            gzip: gzip_compressed(body),
        }
    }

    /// The body in the encoding `accept_encoding` prefers among those we have.
    fn encoded(&'static self, accept_encoding: Option<&str>) -> (Encoding, &'static [u8]) {
        match preferred_encoding(accept_encoding.unwrap_or("")) {
            Encoding::Brotli if !self.brotli.is_empty() => (Encoding::Brotli, &self.brotli),
            Encoding::Gzip | Encoding::Brotli if !self.gzip.is_empty() => {
                (Encoding::Gzip, &self.gzip)
            }
            _ => (Encoding::Identity, self.body),
        }
    }
}

static ASSETS: LazyLock<[Asset; 2]> = LazyLock::new(|| {
    [
        Asset::new(
            "app.css",
            include_str!("../static/app.css"),
            "text/css; charset=utf-8",
        ),
        Asset::new(
            "app.js",
            include_str!("../static/app.js"),
            "text/javascript; charset=utf-8",
        ),
    ]
});

/// `app.css` with `digest` → `app.<digest>.css`.
fn hashed_name(name: &str, digest: &str) -> String {
    match name.rsplit_once('.') {
        Some((stem, extension)) => format!("{stem}.{digest}.{extension}"),
        None => format!("{name}.{digest}"),
    }
}

fn brotli_compressed(body: &[u8]) -> Vec<u8> {
    let mut compressed = Vec::new();
    {
        // Quality 11, window 22: the smallest output; it runs once per asset.
        let mut writer = brotli::CompressorWriter::new(&mut compressed, 4096, 11, 22);
        if writer.write_all(body).is_err() {
            return Vec::new();
        }
    }
    compressed
}

fn gzip_compressed(body: &[u8]) -> Vec<u8> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    match encoder.write_all(body) {
        Ok(()) => encoder.finish().unwrap_or_default(),
        Err(_) => Vec::new(),
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Encoding {
    Brotli,
    Gzip,
    Identity,
}

impl Encoding {
    fn header(self) -> Option<&'static str> {
        match self {
            Encoding::Brotli => Some("br"),
            Encoding::Gzip => Some("gzip"),
            Encoding::Identity => None,
        }
    }
}

/// The best encoding an `Accept-Encoding` value allows: brotli, then gzip, then none. A
/// coding with `q=0` is refused; `*` stands for any not named.
fn preferred_encoding(accept_encoding: &str) -> Encoding {
    let mut brotli = None;
    let mut gzip = None;
    let mut any = None;
    for item in accept_encoding.split(',') {
        let mut parts = item.split(';');
        let coding = parts.next().unwrap_or("").trim().to_ascii_lowercase();
        let quality = parts
            .filter_map(|parameter| parameter.trim().strip_prefix("q="))
            .find_map(|q| q.trim().parse::<f32>().ok())
            .unwrap_or(1.0);
        let accepted = Some(quality > 0.0);
        match coding.as_str() {
            "br" => brotli = accepted,
            "gzip" | "x-gzip" => gzip = accepted,
            "*" => any = accepted,
            _ => {}
        }
    }
    if brotli.or(any) == Some(true) {
        Encoding::Brotli
    } else if gzip.or(any) == Some(true) {
        Encoding::Gzip
    } else {
        Encoding::Identity
    }
}

/// The asset a page names by its plain name.
fn by_name(name: &str) -> Option<&'static Asset> {
    ASSETS.iter().find(|asset| asset.name == name)
}

/// The path a page links for the asset `name` (`/static/app.<hash>.css`).
pub fn path(name: &str) -> String {
    by_name(name).map_or_else(
        || format!("/static/{name}"),
        |asset| format!("/static/{}", asset.hashed_name),
    )
}

/// The `integrity` attribute's value for the asset `name` (empty for an unknown name).
pub fn integrity(name: &str) -> String {
    by_name(name)
        .map(|asset| asset.integrity.clone())
        .unwrap_or_default()
}

/// `GET /static/{name}`: a hashed name is immutable; a plain name is revalidated by ETag
/// (`304` when the client's copy is current). `None` for a name we do not serve.
pub fn serve(
    name: &str,
    accept_encoding: Option<&str>,
    if_none_match: Option<&str>,
) -> Option<Response> {
    let (asset, hashed) = ASSETS.iter().find_map(|asset| {
        if asset.hashed_name == name {
            Some((asset, true))
        } else if asset.name == name {
            Some((asset, false))
        } else {
            None
        }
    })?;
    let mut response = if if_none_match.is_some_and(|tags| etag_matches(tags, &asset.etag)) {
        let mut not_modified = Response::new(Vec::new().into());
        *not_modified.status_mut() = StatusCode::NOT_MODIFIED;
        not_modified
    } else {
        let (encoding, body) = asset.encoded(accept_encoding);
        let mut ok = Response::new(body.into());
        let headers = ok.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static(asset.content_type),
        );
        if let Some(coding) = encoding.header() {
            headers.insert(header::CONTENT_ENCODING, HeaderValue::from_static(coding));
        }
        ok
    };
    let headers = response.headers_mut();
    if let Ok(etag) = HeaderValue::from_str(&asset.etag) {
        headers.insert(header::ETAG, etag);
    }
    headers.insert(header::VARY, HeaderValue::from_static("Accept-Encoding"));
    // Pages load assets with `crossorigin` so that SRI also works from a CDN's origin, which
    // must then pass this on; the assets hold nothing private.
    headers.insert(
        header::ACCESS_CONTROL_ALLOW_ORIGIN,
        HeaderValue::from_static("*"),
    );
    headers.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static(if hashed { IMMUTABLE } else { "no-cache" }),
    );
    Some(response)
}

/// Whether an `If-None-Match` value names `etag` (or is `*`); weak tags compare equal too.
pub fn etag_matches(if_none_match: &str, etag: &str) -> bool {
    if_none_match
        .split(',')
        .map(|tag| tag.trim().trim_start_matches("W/"))
        .any(|tag| tag == "*" || tag == etag)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    #[test]
    fn a_changed_asset_gets_a_new_name_and_pages_link_the_hashed_one() {
        let one = Asset::new("app.css", "body { color: red }", "text/css");
        let other = Asset::new("app.css", "body { color: blue }", "text/css");
        assert_ne!(one.hashed_name, other.hashed_name);
        assert!(one.hashed_name.starts_with("app.") && one.hashed_name.ends_with(".css"));
        assert_eq!(
            path("app.css"),
            format!("/static/{}", ASSETS[0].hashed_name)
        );
        assert!(integrity("app.js").starts_with("sha384-"));
    }

    #[test]
    fn the_hashed_name_is_immutable_and_the_plain_name_revalidated() {
        let hashed = serve(&ASSETS[0].hashed_name, None, None).expect("served");
        assert_eq!(hashed.headers()[header::CACHE_CONTROL], IMMUTABLE);
        let plain = serve("app.css", None, None).expect("served");
        assert_eq!(plain.headers()[header::CACHE_CONTROL], "no-cache");
        let etag = plain.headers()[header::ETAG]
            .to_str()
            .expect("etag")
            .to_owned();
        let again = serve("app.css", None, Some(&etag)).expect("served");
        assert_eq!(again.status(), StatusCode::NOT_MODIFIED);
        assert!(serve("app.min.css", None, None).is_none());
    }

    #[test]
    fn the_body_comes_in_the_encoding_the_client_prefers_and_decodes_to_the_asset() {
        let script = &ASSETS[1];
        let original = include_str!("../static/app.js").as_bytes();

        let brotli = serve(&script.hashed_name, Some("gzip, deflate, br"), None).expect("served");
        assert_eq!(brotli.headers()[header::CONTENT_ENCODING], "br");
        assert_eq!(brotli.headers()[header::VARY], "Accept-Encoding");
        let (encoding, compressed) = script.encoded(Some("gzip, deflate, br"));
        assert_eq!(encoding, Encoding::Brotli);
        let mut decoded = Vec::new();
        brotli::Decompressor::new(compressed, 4096)
            .read_to_end(&mut decoded)
            .expect("brotli");
        assert_eq!(decoded, original);

        let gzip = serve(&script.hashed_name, Some("gzip"), None).expect("served");
        assert_eq!(gzip.headers()[header::CONTENT_ENCODING], "gzip");
        let (encoding, compressed) = script.encoded(Some("gzip"));
        assert_eq!(encoding, Encoding::Gzip);
        assert!(compressed.len() < original.len());
        let mut decoded = Vec::new();
        flate2::read::GzDecoder::new(compressed)
            .read_to_end(&mut decoded)
            .expect("gzip");
        assert_eq!(decoded, original);

        let plain = serve(&script.hashed_name, None, None).expect("served");
        assert!(plain.headers().get(header::CONTENT_ENCODING).is_none());
        assert_eq!(script.encoded(None), (Encoding::Identity, original));
    }

    #[test]
    fn accept_encoding_is_read_with_its_qualities() {
        assert_eq!(preferred_encoding("gzip, br"), Encoding::Brotli);
        assert_eq!(preferred_encoding("br;q=0, gzip"), Encoding::Gzip);
        assert_eq!(preferred_encoding("gzip;q=0, br;q=0"), Encoding::Identity);
        assert_eq!(preferred_encoding("*"), Encoding::Brotli);
        assert_eq!(preferred_encoding("*, br;q=0"), Encoding::Gzip);
        assert_eq!(preferred_encoding("identity"), Encoding::Identity);
        assert_eq!(preferred_encoding(""), Encoding::Identity);
    }

    #[test]
    fn if_none_match_lists_and_weak_tags_match() {
        assert!(etag_matches("\"a\", W/\"b\"", "\"b\""));
        assert!(etag_matches("*", "\"b\""));
        assert!(!etag_matches("\"a\"", "\"b\""));
    }
}
