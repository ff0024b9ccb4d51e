use super::*;

fn config(pairs: &[(&str, &str)]) -> Result<Config, ConfigError> {
    let map = pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    Config::from_map(&map)
}

#[test]
fn defaults_describe_a_local_installation() {
    let config = config(&[]).expect("defaults are valid");
    assert_eq!(
        config.database_url,
        // Loopback without an sslmode: plain (see `tls::check_database_url`).
        "postgres://postgres@127.0.0.1:5432/namaskah?sslmode=disable"
    );
    assert_eq!(config.api_addr.to_string(), "127.0.0.1:8080");
    assert_eq!(config.provider_names(), vec!["simulator"]);
    assert_eq!(config.providers[0].base_url, "http://127.0.0.1:8090/v1");
    assert_eq!(config.retry.ordering.max_attempts, 5);
}

#[test]
fn a_process_pool_is_the_sum_of_its_roles_shares_unless_capped() {
    let pools = config(&[]).expect("defaults").database_pools;
    let api_only = PoolRoles {
        api: true,
        relay: true,
        ..PoolRoles::default()
    };
    assert_eq!(pools.process_pool(api_only), 9);
    let one_worker = PoolRoles {
        workers: 1,
        relay: true,
        ..PoolRoles::default()
    };
    assert_eq!(pools.process_pool(one_worker), 7);
    let everything = PoolRoles {
        api: true,
        workers: 4,
        scheduler: true,
        dashboard: true,
        relay: true,
    };
    assert_eq!(pools.process_pool(everything), 8 + 4 * 6 + 4 + 4 + 1);

    let capped = config(&[
        ("DATABASE_MAX_CONNECTIONS", "8"),
        ("DATABASE_POOL_API", "50"),
    ])
    .expect("valid")
    .database_pools;
    assert_eq!(capped.process_pool(everything), 8);
    assert_eq!(
        config(&[("DATABASE_POOL_WORKER", "0")])
            .unwrap_err()
            .variable,
        "DATABASE_POOL_WORKER"
    );
}

#[test]
fn a_bad_value_names_its_variable() {
    let error = config(&[("API_ADDR", "localhost")]).unwrap_err();
    assert_eq!(error.variable, "API_ADDR");
    assert!(
        error
            .to_string()
            .starts_with("API_ADDR: expected an address")
    );

    let error = config(&[("PROVIDERS", "simulator,nope")]).unwrap_err();
    assert_eq!(error.variable, "PROVIDERS");

    let error = config(&[("ORDERING_RETRY", "5,10s,1s")]).unwrap_err();
    assert_eq!(error.variable, "ORDERING_RETRY");

    let error = config(&[("DASHBOARD_METRICS_URLS", "http://a:9464/metrics,ftp://b")]);
    assert_eq!(error.unwrap_err().variable, "DASHBOARD_METRICS_URLS");
    let error = config(&[("ASSET_BASE_URL", "https://cdn.example.com/x?y=1")]);
    assert_eq!(error.unwrap_err().variable, "ASSET_BASE_URL");
    let error = config(&[("PROVIDER_RATE_LIMITS", "5sim=0")]);
    assert_eq!(error.unwrap_err().variable, "PROVIDER_RATE_LIMITS");
    let limits = config(&[("PROVIDER_RATE_LIMITS", "5sim=50, textverified=10")])
        .expect("valid")
        .provider_rate_limits;
    assert_eq!(limits.len(), 2);
    assert_eq!(
        (limits[1].0.as_str(), limits[1].1.get()),
        ("textverified", 10)
    );
    let error = config(&[("PROVIDER_TIMEOUTS", "simulator=0s")]);
    assert_eq!(error.unwrap_err().variable, "PROVIDER_TIMEOUTS");
    let error = config(&[("PROVIDER_TIMEOUTS", "simulator")]);
    assert_eq!(error.unwrap_err().variable, "PROVIDER_TIMEOUTS");
}

#[test]
fn each_provider_may_have_its_own_timeout_and_connecting_never_takes_longer() {
    let config = config(&[
        ("PROVIDER_TIMEOUT", "8s"),
        ("PROVIDER_TIMEOUTS", "simulator=2s"),
        ("PROVIDER_CONNECT_TIMEOUT", "3s"),
    ])
    .expect("valid");
    let simulator = crate::providers::CallTimeouts::of(&config, "simulator");
    assert_eq!(simulator.response, Duration::from_secs(2));
    assert_eq!(simulator.connect, Duration::from_secs(2));
    let other = crate::providers::CallTimeouts::of(&config, "5sim");
    assert_eq!(other.response, Duration::from_secs(8));
    assert_eq!(other.connect, Duration::from_secs(3));
}

#[test]
fn dashboard_sources_and_asset_origin_parse() {
    let config = config(&[
        (
            "DASHBOARD_METRICS_URLS",
            " http://api:8080/metrics, http://worker:9464/metrics ,",
        ),
        ("ASSET_BASE_URL", "https://cdn.example.com/namaskah/"),
    ])
    .expect("valid");
    assert_eq!(
        config.dashboard.metrics_urls,
        ["http://api:8080/metrics", "http://worker:9464/metrics"]
    );
    assert_eq!(
        config.dashboard.asset_base_url.as_deref(),
        Some("https://cdn.example.com/namaskah")
    );
}

#[test]
fn schedules_parse_or_switch_off() {
    let config = config(&[("SCHEDULE_BACKUP", "off")]).expect("valid");
    let backup = config
        .scheduler
        .schedules
        .iter()
        .find(|(job, _)| *job == "backup");
    assert!(matches!(backup, Some((_, None))));
    let error = config_error_for("SCHEDULE_SWEEPER", "every ten seconds");
    assert_eq!(error.variable, "SCHEDULE_SWEEPER");
}

fn config_error_for(variable: &str, value: &str) -> ConfigError {
    config(&[(variable, value)]).expect_err("invalid")
}

#[test]
fn a_real_provider_needs_its_key() {
    let error = config(&[("PROVIDERS", "5sim")]).unwrap_err();
    assert_eq!(error.variable, "FIVESIM_API_KEY");
    let ok = config(&[("PROVIDERS", "5sim,simulator"), ("FIVESIM_API_KEY", "k")]).unwrap();
    assert_eq!(ok.provider_names(), vec!["5sim", "simulator"]);
}

#[test]
fn a_database_url_with_a_password_is_not_echoed() {
    let error = config(&[("DATABASE_URL", "mysql://u:hunter2@h/db")]).unwrap_err();
    assert!(!error.to_string().contains("hunter2"));
}

#[test]
fn secrets_do_not_print() {
    assert_eq!(format!("{:?}", Secret::new("k3y")), "Secret(***)");
}

/// Every variable the configuration reads, including those read only when another is set
/// (the real providers' keys, the CRM secret, the process-wide pool cap).
fn variables_read() -> std::collections::BTreeSet<String> {
    let asked = std::cell::RefCell::new(std::collections::BTreeSet::new());
    let everything_on: HashMap<&str, &str> = [
        ("PROVIDERS", "simulator,5sim,textverified"),
        ("FIVESIM_API_KEY", "k"),
        ("TEXTVERIFIED_API_KEY", "k"),
        ("TEXTVERIFIED_API_USERNAME", "u"),
        ("CRM_URL", "https://crm.example.com/hook"),
        (
            "CRM_SECRET",
            "whsec_MDEyMzQ1Njc4OTAxMjM0NTY3ODkwMTIzNDU2Nzg5MDE=",
        ),
        ("DATABASE_MAX_CONNECTIONS", "10"),
    ]
    .into_iter()
    .collect();
    for values in [HashMap::new(), everything_on] {
        Config::from_lookup(|name| {
            asked.borrow_mut().insert(name.to_owned());
            values.get(name).map(|value| (*value).to_owned())
        })
        .expect("valid");
    }
    asked.into_inner()
}

#[test]
fn the_readme_documents_every_variable_and_only_those() {
    // Read by the log filter rather than by `Config`.
    const READ_ELSEWHERE: [&str; 1] = ["RUST_LOG"];
    let readme = include_str!("../../../README.md");
    let documented: std::collections::BTreeSet<String> = readme
        .lines()
        .filter_map(|line| line.strip_prefix("| `")?.split_once('`'))
        .map(|(name, _)| name.to_owned())
        .filter(|name| {
            name.bytes()
                .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_')
        })
        .collect();
    let read = variables_read();
    let undocumented: Vec<_> = read.difference(&documented).collect();
    assert!(
        undocumented.is_empty(),
        "read but missing from the README's configuration table: {undocumented:?}"
    );
    let unread: Vec<_> = documented
        .difference(&read)
        .filter(|name| !READ_ELSEWHERE.contains(&name.as_str()))
        .collect();
    assert!(
        unread.is_empty(),
        "in the README's configuration table but read by nothing: {unread:?}"
    );
}
