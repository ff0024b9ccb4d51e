//! Headers on every dashboard response: no framing, a strict content security policy, no
//! sniffing, no referrer.

use warp::http::{HeaderMap, HeaderValue};

/// The policy: everything from the dashboard itself, plus scripts and styles from the asset
/// origin when assets come from a CDN (`ASSET_BASE_URL`; their integrity is pinned by SRI).
/// No plugins at all (`object-src 'none'`, which `default-src` alone would allow from self:
/// wapiti's CSP check asked for it).
/// `None` if the origin cannot be written into a header.
pub fn content_security_policy(asset_base: Option<&str>) -> Option<HeaderValue> {
    let origin = asset_base.map(origin_of).unwrap_or_default();
    let sources = if origin.is_empty() {
        "'self'".to_owned()
    } else {
        format!("'self' {origin}")
    };
    HeaderValue::from_str(&format!(
        "default-src 'self'; script-src {sources}; style-src {sources}; img-src 'self' data:; \
         connect-src 'self'; object-src 'none'; form-action 'self'; base-uri 'none'; \
         frame-ancestors 'none'"
    ))
    .ok()
}

/// `https://cdn.example.com/namaskah` → `https://cdn.example.com`.
fn origin_of(url: &str) -> &str {
    let after_scheme = url.find("://").map_or(0, |at| at + 3);
    url[after_scheme..]
        .find('/')
        .map_or(url, |slash| &url[..after_scheme + slash])
}

pub fn apply(headers: &mut HeaderMap, policy: &HeaderValue) {
    let set = |headers: &mut HeaderMap, name: &'static str, value: &'static str| {
        headers.insert(name, HeaderValue::from_static(value));
    };
    headers.insert("content-security-policy", policy.clone());
    set(headers, "x-frame-options", "DENY");
    set(headers, "x-content-type-options", "nosniff");
    set(headers, "referrer-policy", "no-referrer");
    if !headers.contains_key("cache-control") {
        set(headers, "cache-control", "no-store");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_policy_names_the_asset_origin_only_for_scripts_and_styles() {
        let own = content_security_policy(None).expect("valid");
        assert!(own.to_str().is_ok_and(|p| p.contains("script-src 'self';")));
        let cdn = content_security_policy(Some("https://cdn.example.com/namaskah")).expect("valid");
        let cdn = cdn.to_str().unwrap_or_default();
        assert!(
            cdn.contains("script-src 'self' https://cdn.example.com;"),
            "{cdn}"
        );
        assert!(
            cdn.contains("style-src 'self' https://cdn.example.com;"),
            "{cdn}"
        );
        assert!(cdn.contains("connect-src 'self';"), "{cdn}");
        assert_eq!(
            origin_of("https://cdn.example.com"),
            "https://cdn.example.com"
        );
    }
}
