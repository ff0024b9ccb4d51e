//! The failover drill, short (`scripts/drill`): a three-node RabbitMQ cluster and a
//! PostgreSQL primary with a synchronous standby, started beside the machine's engines; two
//! processes of every role under load; the node leading the busiest queue SIGKILLed and
//! restarted, then the primary killed and the standby promoted. Nothing accepted may be
//! lost, every invariant must hold, and both faults must have been recovered from.

use serde_json::Value;

#[tokio::test]
async fn a_short_drill_loses_nothing_through_a_broker_node_kill_and_a_database_failover() {
    let report = std::env::temp_dir().join(format!(
        "namaskah-drill-{}.json",
        uuid::Uuid::new_v4().simple()
    ));
    let output = tokio::process::Command::new(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/drill"),
    )
    // 900 at 20/s: 45 s of submissions, which go on by themselves if the faults take longer
    // (a RabbitMQ node is slow to start on a busy machine).
    .args(["--count", "900", "--rate", "20", "--sms-timeout-secs", "10"])
    .arg("--report")
    .arg(&report)
    .env("NAMASKAH_BIN", env!("CARGO_BIN_EXE_namaskah"))
    .env("POLL_CADENCE", "500ms,1s")
    .output()
    .await
    .expect("scripts/drill runs");
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "the drill failed:\n{stdout}\n{stderr}"
    );
    let report: Value =
        serde_json::from_slice(&std::fs::read(&report).expect("report")).expect("JSON report");
    let drill = &report["drill"];
    assert_eq!(drill["lost"], 0, "{stdout}");
    assert_eq!(drill["duplicate_charges"], 0, "{stdout}");
    assert_eq!(
        drill["rabbitmq_nodes"].as_array().map(Vec::len),
        Some(3),
        "{stdout}"
    );
    let faults = drill["faults"].as_array().expect("faults");
    assert_eq!(faults.len(), 4, "{stdout}");
    for fault in faults {
        let what = fault["what"].as_str().unwrap_or_default();
        assert!(!what.starts_with("could not"), "{what}\n{stdout}");
    }
    assert!(
        faults[3]["what"]
            .as_str()
            .is_some_and(|what| what.contains("synchronous standby")),
        "the old primary was not rebuilt as a standby:\n{stdout}"
    );
    assert!(
        drill["postgres_failover"]
            .as_str()
            .is_some_and(|what| what.contains("promoted")),
        "{stdout}"
    );
    for fault in ["rabbitmq node killed", "postgres primary failed over"] {
        assert!(
            drill["rto_seconds"][fault].is_number(),
            "no recovery from {fault}:\n{stdout}"
        );
    }
    crate::load::assert_every_invariant_held(&report, &stdout);
}
