//! The web app's session cookie: a random token, HttpOnly, SameSite=Lax (so that a customer
//! coming back from the payment provider's checkout is still signed in), Secure when
//! configured. Its name differs from the dashboard's: browsers share cookies between ports
//! of one host, and both may run on 127.0.0.1.

const COOKIE: &str = "namaskah_app_session";

pub fn token_from_cookies(cookies: Option<&str>) -> Option<String> {
    cookies?
        .split(';')
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == COOKIE)
        .map(|(_, value)| value.to_owned())
        .filter(|value| !value.is_empty())
}

pub fn set_cookie(token: &str, secure: bool, max_age_secs: u64) -> String {
    let secure = if secure { "; Secure" } else { "" };
    format!("{COOKIE}={token}; Path=/; HttpOnly; SameSite=Lax; Max-Age={max_age_secs}{secure}")
}

pub fn clear_cookie(secure: bool) -> String {
    set_cookie("", secure, 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cookie_round_trips_with_its_flags() {
        let header = set_cookie("abc", true, 60);
        assert!(
            header.contains("HttpOnly")
                && header.contains("SameSite=Lax")
                && header.contains("Secure")
        );
        assert_eq!(
            token_from_cookies(Some("namaskah_session=x; namaskah_app_session=abc")),
            Some("abc".to_owned())
        );
        assert_eq!(token_from_cookies(Some("namaskah_session=x")), None);
    }
}
