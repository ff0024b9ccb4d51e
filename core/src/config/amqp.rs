//! `AMQP_URL`: one RabbitMQ node, or a cluster's nodes separated by commas
//! (`amqp://u:p@mq-0/%2f,amqp://u:p@mq-1/%2f`), the way RabbitMQ's own clients take a list
//! of addresses. A client connects to the first node that answers and, when it loses it,
//! to another ([`crate::queue::connect`]).

/// The nodes `amqp_url` names, in its order; empty entries are ignored.
pub fn nodes(amqp_url: &str) -> Vec<&str> {
    amqp_url
        .split(',')
        .map(str::trim)
        .filter(|url| !url.is_empty())
        .collect()
}

/// Why `amqp_url` is not a usable list of nodes, if it is not: each node an `amqp://` or
/// `amqps://` URL whose TLS settings can be read.
pub(super) fn check(amqp_url: &str) -> Result<(), String> {
    let nodes = nodes(amqp_url);
    if nodes.is_empty() {
        return Err("at least one amqp:// or amqps:// URL".to_owned());
    }
    for node in nodes {
        if !node.starts_with("amqp://") && !node.starts_with("amqps://") {
            return Err("URLs starting with amqp:// or amqps://, separated by commas".to_owned());
        }
        super::tls::amqp_tls(node).map_err(|reason| format!("usable TLS settings: {reason}"))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::{check, nodes};

    #[test]
    fn a_cluster_is_its_nodes_in_order() {
        assert_eq!(
            nodes("amqp://a/%2f, amqp://b/%2f,,amqp://c/%2f"),
            ["amqp://a/%2f", "amqp://b/%2f", "amqp://c/%2f"]
        );
        assert_eq!(nodes("amqp://a/%2f"), ["amqp://a/%2f"]);
    }

    #[test]
    fn every_node_must_be_an_amqp_url() {
        assert!(check("amqp://a/%2f,amqps://b/%2f").is_ok());
        assert!(check("amqp://a/%2f,http://b/").is_err());
        assert!(check(" , ").is_err());
        let error = check("amqp://a/%2f,amqp://b/%2f?cacertfile=/nowhere.pem").unwrap_err();
        assert!(error.contains("TLS"), "{error}");
    }
}
