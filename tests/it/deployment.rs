//! The deployment files (docker-compose.yml, .env.example, Dockerfile, deploy/k8s/) checked
//! statically, since no Docker engine or cluster runs here: `deploy/check.py` validates them
//! against the Compose and Kubernetes schemas and cross-checks ports, paths and references;
//! this test runs it and then loads every container's environment through the real `Config`.

use std::{collections::HashMap, path::PathBuf, process::Command};

use namaskah_core::config::Config;

#[test]
fn deployment_files_are_valid_and_every_container_environment_loads() {
    let repository = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let output = Command::new("python3")
        .args(["deploy/check.py", "--environments"])
        .current_dir(&repository)
        .output()
        .expect("python3 is missing (apt-get install python3)");
    assert!(
        output.status.success(),
        "deploy/check.py found problems:\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let environments: HashMap<String, HashMap<String, String>> =
        serde_json::from_slice(&output.stdout).expect("check.py prints JSON");
    for role in [
        "compose/api",
        "compose/worker-polling",
        "compose/scheduler",
        "k8s/namaskah-api",
        "k8s/namaskah-worker-webhooks",
        "k8s/namaskah-scheduler",
    ] {
        assert!(environments.contains_key(role), "no environment for {role}");
    }
    // The pods mount the engines' CA at /etc/namaskah/tls (deploy/check.py proves each file
    // the URLs name is in the mounted ConfigMap); here a stand-in PEM sits at that place.
    let mounted = std::env::temp_dir().join(format!("namaskah-engine-ca-{}", uuid::Uuid::now_v7()));
    std::fs::create_dir_all(&mounted).expect("folder");
    std::fs::write(
        mounted.join("ca.pem"),
        "-----BEGIN CERTIFICATE-----\nstand-in\n-----END CERTIFICATE-----\n",
    )
    .expect("stand-in CA");
    for (container, environment) in &environments {
        let environment: HashMap<String, String> = environment
            .iter()
            .map(|(name, value)| {
                let value = value.replace("/etc/namaskah/tls/", &format!("{}/", mounted.display()));
                (name.clone(), value)
            })
            .collect();
        if let Err(error) = Config::from_map(&environment) {
            panic!("{container} would not start: {error}");
        }
    }
    let _ = std::fs::remove_dir_all(&mounted);
}
