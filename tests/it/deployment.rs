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
    for (container, environment) in &environments {
        if let Err(error) = Config::from_map(environment) {
            panic!("{container} would not start: {error}");
        }
    }
}
