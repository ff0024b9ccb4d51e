//! TLS to the engines, beyond what their URLs say by themselves.
//!
//! - PostgreSQL: `sslmode` and `sslrootcert` in `DATABASE_URL` (libpq's names; sqlx reads
//!   them), `verify-full` checking the CA and the host name.
//! - RabbitMQ: `amqps://` turns TLS on; the CA and the client certificate are named the way
//!   RabbitMQ's own URI specification names them, as query parameters of `AMQP_URL`:
//!   `cacertfile` (PEM: the CA that signed the broker's certificate, in place of the public
//!   roots), `certfile` and `keyfile` (PEM: a client certificate and its PKCS#8 key).
//! - Redis: `rediss://` turns TLS on; `REDIS_CA_FILE`, `REDIS_CLIENT_CERT` and
//!   `REDIS_CLIENT_KEY` name the files (a Redis URL has no place for them).
//!
//! Host names are always verified; nothing turns verification off, and nothing falls back
//! to plain text.

use lapin::tcp::{OwnedIdentity, OwnedTLSConfig};

/// Reads `path` as a PEM file for `what`.
fn read_pem(what: &str, path: &str) -> Result<String, String> {
    let text = std::fs::read_to_string(path).map_err(|error| format!("{what} {path}: {error}"))?;
    if text.contains("-----BEGIN ") {
        Ok(text)
    } else {
        Err(format!("{what} {path}: not a PEM file"))
    }
}

/// `url` when its TLS settings can work: a `sslmode` libpq knows, and `sslrootcert` (the
/// CA), `sslcert` and `sslkey` (a client certificate) that are readable PEM files (`Err`: what is wrong, without repeating the URL).
pub fn check_database_url(url: String) -> Result<String, String> {
    let parsed = url::Url::parse(&url).map_err(|error| format!("a URL ({error})"))?;
    for (key, value) in parsed.query_pairs() {
        match key.as_ref() {
            "sslmode"
                if !matches!(
                    value.as_ref(),
                    "disable" | "allow" | "prefer" | "require" | "verify-ca" | "verify-full"
                ) =>
            {
                return Err(format!(
                    "sslmode disable, allow, prefer, require, verify-ca or verify-full, not {value}"
                ));
            }
            "sslrootcert" | "sslcert" | "sslkey" => {
                read_pem(&key, &value)?;
            }
            _ => {}
        }
    }
    Ok(plain_on_loopback(url, &parsed))
}

/// `url` with `sslmode=disable` added when it names this machine's loopback address and no
/// `sslmode`. The driver's default (`prefer`) encrypts whenever the server offers TLS, as
/// Debian's PostgreSQL does out of the box; over loopback that protects nothing and cost a
/// quarter of the webhook throughput (docs/benchmarks.md). An explicit `sslmode` is kept.
fn plain_on_loopback(url: String, parsed: &url::Url) -> String {
    let loopback = match parsed.host() {
        // `postgres://` is not a scheme the URL standard knows, so its IPv4 hosts come as names.
        Some(url::Host::Domain(name)) => {
            name == "localhost"
                || name
                    .parse::<std::net::IpAddr>()
                    .is_ok_and(|address| address.is_loopback())
        }
        Some(url::Host::Ipv4(address)) => address.is_loopback(),
        Some(url::Host::Ipv6(address)) => address.is_loopback(),
        None => false,
    };
    if !loopback || parsed.query_pairs().any(|(key, _)| key == "sslmode") {
        return url;
    }
    let separator = if parsed.query().is_some() { '&' } else { '?' };
    match url.split_once('#') {
        Some((before, fragment)) => format!("{before}{separator}sslmode=disable#{fragment}"),
        None => format!("{url}{separator}sslmode=disable"),
    }
}

/// The TLS settings `url` asks for, with the files it names read; `Err` says which
/// parameter is wrong and why, without repeating the URL (it holds a password).
pub fn amqp_tls(url: &str) -> Result<OwnedTLSConfig, String> {
    let parsed = url::Url::parse(url).map_err(|error| format!("not a URL: {error}"))?;
    let parameter = |name: &str| {
        parsed
            .query_pairs()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.into_owned())
    };
    let (ca, certificate, key) = (
        parameter("cacertfile"),
        parameter("certfile"),
        parameter("keyfile"),
    );
    let wants_tls = ca.is_some() || certificate.is_some() || key.is_some();
    if wants_tls && parsed.scheme() != "amqps" {
        return Err("cacertfile, certfile and keyfile need an amqps:// URL".to_owned());
    }
    let cert_chain = ca.map(|path| read_pem("cacertfile", &path)).transpose()?;
    let identity = match (certificate, key) {
        (Some(certificate), Some(key)) => Some(OwnedIdentity::PKCS8 {
            pem: read_pem("certfile", &certificate)?.into_bytes(),
            key: read_pem("keyfile", &key)?.into_bytes(),
        }),
        (None, None) => None,
        _ => return Err("certfile and keyfile go together".to_owned()),
    };
    Ok(OwnedTLSConfig {
        identity,
        cert_chain,
    })
}

/// Whether `error` is a server's certificate failing verification (an unknown CA, another
/// host's name, an expired certificate) as rustls reports it: no retry changes that.
pub fn is_certificate_refusal(error: &std::io::Error) -> bool {
    if let Some(tls) = error
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<rustls::Error>())
    {
        return matches!(
            tls,
            rustls::Error::InvalidCertificate(_) | rustls::Error::NoCertificatesPresented
        );
    }
    error.to_string().contains("invalid peer certificate")
}

/// The files of a `rediss://` connection, read.
#[derive(Clone, Default, PartialEq)]
pub struct RedisTls {
    /// PEM: the CA that signed the server's certificate, in place of the system's roots.
    pub ca: Option<Vec<u8>>,
    /// PEM: a client certificate and its key, for servers that ask for one.
    pub client: Option<(Vec<u8>, Vec<u8>)>,
}

/// Says which files are set, never what they hold (the client key is a secret).
impl std::fmt::Debug for RedisTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisTls")
            .field("ca", &self.ca.is_some())
            .field("client", &self.client.is_some())
            .finish()
    }
}

impl RedisTls {
    /// From `REDIS_CA_FILE`, `REDIS_CLIENT_CERT` and `REDIS_CLIENT_KEY` (`Err`: which is
    /// wrong and why).
    pub(super) fn read(
        ca: Option<String>,
        certificate: Option<String>,
        key: Option<String>,
    ) -> Result<Self, (&'static str, String)> {
        let ca = ca
            .map(|path| read_pem("REDIS_CA_FILE", &path))
            .transpose()
            .map_err(|error| ("REDIS_CA_FILE", error))?
            .map(String::into_bytes);
        let client = match (certificate, key) {
            (Some(certificate), Some(key)) => Some((
                read_pem("REDIS_CLIENT_CERT", &certificate)
                    .map_err(|error| ("REDIS_CLIENT_CERT", error))?
                    .into_bytes(),
                read_pem("REDIS_CLIENT_KEY", &key)
                    .map_err(|error| ("REDIS_CLIENT_KEY", error))?
                    .into_bytes(),
            )),
            (None, None) => None,
            _ => {
                return Err((
                    "REDIS_CLIENT_CERT",
                    "REDIS_CLIENT_CERT and REDIS_CLIENT_KEY go together".to_owned(),
                ));
            }
        };
        Ok(Self { ca, client })
    }
}

#[cfg(test)]
mod tests {
    use super::{amqp_tls as tls_config, check_database_url};

    #[test]
    fn a_loopback_database_without_sslmode_is_plain_and_any_other_is_left_alone() {
        let checked = |url: &str| check_database_url(url.to_owned()).expect("valid");
        assert_eq!(
            checked("postgres://postgres@127.0.0.1:5432/namaskah"),
            "postgres://postgres@127.0.0.1:5432/namaskah?sslmode=disable"
        );
        assert_eq!(
            checked("postgres://u@localhost/db?application_name=x"),
            "postgres://u@localhost/db?application_name=x&sslmode=disable"
        );
        assert_eq!(
            checked("postgres://u@[::1]:5432/db"),
            "postgres://u@[::1]:5432/db?sslmode=disable"
        );
        for kept in [
            "postgres://u@127.0.0.1/db?sslmode=require",
            "postgres://u@db.internal:5432/db",
            "postgres://u@10.0.0.5/db",
        ] {
            assert_eq!(checked(kept), kept);
        }
    }

    fn file(name: &str, text: &str) -> std::path::PathBuf {
        let path = std::env::temp_dir().join(format!("{name}-{}.pem", uuid::Uuid::now_v7()));
        std::fs::write(&path, text).expect("write");
        path
    }

    fn pem_file(name: &str) -> std::path::PathBuf {
        file(
            name,
            "-----BEGIN CERTIFICATE-----\nAA==\n-----END CERTIFICATE-----\n",
        )
    }

    #[test]
    fn the_ca_and_client_certificate_come_from_the_url() {
        let ca = pem_file("ca");
        let url = format!(
            "amqps://guest:secret@broker:5671/%2f?cacertfile={}&certfile={}&keyfile={}",
            ca.display(),
            ca.display(),
            ca.display()
        );
        let config = tls_config(&url).expect("valid");
        assert!(config.cert_chain.is_some());
        assert!(config.identity.is_some());
        assert_eq!(
            tls_config("amqps://broker/%2f").expect("public roots"),
            Default::default()
        );
        let _ = std::fs::remove_file(ca);
    }

    #[test]
    fn wrong_settings_are_named_and_the_password_is_not_repeated() {
        let ca = pem_file("ca");
        let not_pem = file("not-pem", "hello");
        for (url, expected) in [
            (
                format!("amqp://guest:secret@broker/%2f?cacertfile={}", ca.display()),
                "need an amqps:// URL",
            ),
            (
                "amqps://guest:secret@broker/%2f?cacertfile=/nowhere/ca.pem".to_owned(),
                "cacertfile /nowhere/ca.pem",
            ),
            (
                format!("amqps://guest:secret@broker/%2f?certfile={}", ca.display()),
                "go together",
            ),
            (
                format!(
                    "amqps://guest:secret@broker/%2f?cacertfile={}",
                    not_pem.display()
                ),
                "not a PEM file",
            ),
        ] {
            let error = tls_config(&url).expect_err(&url);
            assert!(error.contains(expected), "{url}: {error}");
            assert!(!error.contains("secret"), "{error}");
        }
        let _ = std::fs::remove_file(ca);
        let _ = std::fs::remove_file(not_pem);
    }

    #[test]
    fn a_database_url_needs_a_known_sslmode_and_readable_certificates() {
        let ca = pem_file("ca");
        let good = format!(
            "postgres://u:secret@db/namaskah?sslmode=verify-full&sslrootcert={}",
            ca.display()
        );
        assert_eq!(check_database_url(good.clone()), Ok(good));
        for (url, expected) in [
            ("postgres://u:secret@db/n?sslmode=verify", "sslmode disable"),
            (
                "postgres://u:secret@db/n?sslmode=verify-full&sslrootcert=/nowhere/ca.pem",
                "sslrootcert /nowhere/ca.pem",
            ),
            ("postgres://u:secret@db/n?sslkey=/nowhere/key.pem", "sslkey"),
        ] {
            let error = check_database_url(url.to_owned()).expect_err(url);
            assert!(error.contains(expected), "{url}: {error}");
            assert!(!error.contains("secret"), "{error}");
        }
        let _ = std::fs::remove_file(ca);
    }
}
