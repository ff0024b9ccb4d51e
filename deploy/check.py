#!/usr/bin/env python3
"""Static checks of the deployment files, for machines without Docker or Kubernetes.

    python3 deploy/check.py                 # every check; exit 1 with a list of problems
    python3 deploy/check.py --environments  # also print, as JSON, the environment each
                                            # Namaskah container would get (the Rust test
                                            # feeds them to Config to prove they parse)

What it proves:
- docker-compose.yml is valid against the Compose specification's JSON schema
  (deploy/compose-spec.json, from the docker-compose 1.29.2 package), every `${VAR}` is
  defined in .env.example, every mounted or built path exists, dependencies name real
  services (with a healthcheck when the condition is service_healthy), and each service's
  published port, healthcheck port and Prometheus target agree with the address it listens on;
  metrics are scraped on METRICS_ADDR and never published on the host.
- grafana/ provisioning points at the Prometheus service and at the mounted dashboards.
- deploy/k8s/ manifests are valid Kubernetes objects (kubernetes-validate, strict), the
  kustomization lists every file, and the references between objects resolve: Services and
  probes to named container ports, envFrom to the ConfigMap and Secret, KEDA ScaledObjects to
  worker Deployments and to the RabbitMQ queue each worker consumes; no Service exposes the
  metrics port and no Deployment runs or uses the provider simulator.

Needs python3 with PyYAML, jsonschema and kubernetes-validate
(`pip install -r deploy/requirements.txt`; ./scripts/test installs them into target/venv).
"""

import json
import re
import sys
from pathlib import Path
from urllib.parse import urlsplit

try:
    import jsonschema
    import kubernetes_validate
    import yaml
except ImportError as missing:
    sys.exit(
        f"deploy/check.py needs {missing.name}: "
        "pip install pyyaml jsonschema kubernetes-validate"
    )

ROOT = Path(__file__).resolve().parent.parent
K8S = ROOT / "deploy" / "k8s"
KUBERNETES_VERSION = "1.30"
WORKER_QUEUES = {"ordering", "polling", "refund", "webhooks"}
# The variable that sets the address each kind of Namaskah container listens on.
LISTEN_VARIABLES = ("API_ADDR", "APP_ADDR", "DASHBOARD_ADDR", "SIMULATOR_ADDR", "METRICS_ADDR")
# Ports of the third-party images, fixed by the images themselves.
IMAGE_PORTS = {
    "postgres": {5432},
    "rabbitmq": {5672, 15672, 15692},
    "prometheus": {9090},
    "grafana": {3000},
}

problems = []


def problem(where, message):
    problems.append(f"{where}: {message}")


def load_yaml(path):
    with open(path, encoding="utf-8") as file:
        return yaml.safe_load(file)


def load_dotenv(path):
    values = {}
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        key, separator, value = line.partition("=")
        if not separator or not re.fullmatch(r"[A-Z_][A-Z0-9_]*", key):
            problem(f"{path.name}:{number}", f"not KEY=VALUE: {line!r}")
            continue
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
            value = value[1:-1]
        values[key] = value
    return values


def interpolate(text, variables):
    return re.sub(r"\$\{([A-Z0-9_]+)\}", lambda m: variables.get(m.group(1), ""), text)


def port_of(address):
    """The port of `host:port` or of a URL, as an int."""
    if "://" in address:
        return urlsplit(address).port
    return int(address.rsplit(":", 1)[1])


# ---- docker compose ---------------------------------------------------------------------


def check_compose():
    compose_path = ROOT / "docker-compose.yml"
    compose = load_yaml(compose_path)
    schema = json.loads((ROOT / "deploy" / "compose-spec.json").read_text(encoding="utf-8"))
    for error in jsonschema.Draft7Validator(schema).iter_errors(compose):
        location = "/".join(str(part) for part in error.absolute_path)
        problem("docker-compose.yml", f"{location}: {error.message}")

    env_example = ROOT / ".env.example"
    if not env_example.exists():
        problem("docker-compose.yml", ".env.example is missing")
        return {}
    dotenv = load_dotenv(env_example)
    for variable in sorted(set(re.findall(r"\$\{([A-Z0-9_]+)", compose_path.read_text()))):
        if not dotenv.get(variable):
            problem("docker-compose.yml", f"${{{variable}}} has no value in .env.example")

    services = compose.get("services", {})
    named_volumes = set(compose.get("volumes") or {})
    listening = {}
    environments = {}
    for name, service in services.items():
        where = f"docker-compose.yml: services.{name}"
        if "build" in service:
            context = service["build"] if isinstance(service["build"], str) else service["build"].get("context", ".")
            if not (ROOT / context / "Dockerfile").exists():
                problem(where, f"builds {context} but it has no Dockerfile")
        env_files = service.get("env_file", [])
        for env_file in [env_files] if isinstance(env_files, str) else env_files:
            # .env is the operator's copy of .env.example (`cp .env.example .env`).
            if env_file != ".env" and not (ROOT / env_file).exists():
                problem(where, f"env_file {env_file} does not exist")
        for volume in service.get("volumes", []):
            source = volume.split(":", 1)[0]
            if source.startswith((".", "/")):
                if not (ROOT / source).exists():
                    problem(where, f"mounts {source}, which does not exist")
            elif source not in named_volumes:
                problem(where, f"volume {source} is not declared under volumes:")
        dependencies = service.get("depends_on", {})
        if isinstance(dependencies, list):
            dependencies = {dependency: {} for dependency in dependencies}
        for dependency, how in dependencies.items():
            if dependency not in services:
                problem(where, f"depends on {dependency}, which is not a service")
            elif how.get("condition") == "service_healthy" and "healthcheck" not in services[dependency]:
                problem(where, f"waits for {dependency} to be healthy, but it has no healthcheck")

        environment = service.get("environment", {})
        if isinstance(environment, list):
            environment = dict(item.split("=", 1) for item in environment)
        environment = {key: interpolate(str(value), dotenv) for key, value in environment.items()}
        ports = set(IMAGE_PORTS.get(name, set()))
        for variable in LISTEN_VARIABLES:
            if variable in environment:
                address = environment[variable]
                if not address.startswith("0.0.0.0:"):
                    problem(where, f"{variable}={address} is unreachable from other containers")
                ports.add(port_of(address))
        listening[name] = ports
        if service.get("image", "").startswith("namaskah"):
            environments[f"compose/{name}"] = {**dotenv, **environment}

        for mapping in service.get("ports", []):
            container_port = int(str(mapping).rsplit(":", 1)[-1].split("/")[0])
            if container_port not in ports:
                problem(where, f"publishes {mapping}, but the service listens on {sorted(ports)}")
            if "METRICS_ADDR" in environment and container_port == port_of(environment["METRICS_ADDR"]):
                problem(where, f"publishes {mapping}, its internal metrics port, on the host")
        test = " ".join(service.get("healthcheck", {}).get("test", []))
        for probed in re.findall(r"/dev/tcp/[^/]+/(\d+)", test):
            if int(probed) not in ports:
                problem(where, f"healthcheck probes port {probed}, but it listens on {sorted(ports)}")

    check_connection_strings(environments, listening)
    check_prometheus_targets(services, listening)
    check_grafana(services, listening)
    check_rabbitmq_plugins()
    return environments


def check_connection_strings(environments, listening):
    """Every URL a Namaskah container is given names a compose service on a port it serves."""
    for container, environment in environments.items():
        for variable in ("DATABASE_URL", "AMQP_URL", "RABBITMQ_MANAGEMENT_URL", "SIMULATOR_BASE_URL"):
            url = environment.get(variable)
            if not url:
                continue
            parts = urlsplit(url)
            if parts.hostname not in listening:
                problem(container, f"{variable} names host {parts.hostname}, which is not a service")
            elif parts.port not in listening[parts.hostname]:
                problem(container, f"{variable} uses port {parts.port}; {parts.hostname} listens on {sorted(listening[parts.hostname])}")


def check_prometheus_targets(services, listening):
    config = load_yaml(ROOT / "prometheus" / "prometheus.yml")
    scraped = set()
    for job in config.get("scrape_configs", []):
        for static in job.get("static_configs", []):
            for target in static.get("targets", []):
                host, port = target.rsplit(":", 1)
                scraped.add(host)
                if host not in services:
                    problem("prometheus/prometheus.yml", f"{job['job_name']} scrapes {host}, which is not a compose service")
                elif int(port) not in listening[host]:
                    problem("prometheus/prometheus.yml", f"{job['job_name']} scrapes {target}; {host} listens on {sorted(listening[host])}")
                elif "METRICS_ADDR" in (services[host].get("environment") or {}) and int(port) != port_of(services[host]["environment"]["METRICS_ADDR"]):
                    problem("prometheus/prometheus.yml", f"{job['job_name']} scrapes {target}, not {host}'s METRICS_ADDR (its public port serves no /metrics)")
    for name, service in services.items():
        environment = service.get("environment") or {}
        if "METRICS_ADDR" in environment and name not in scraped:
            problem("prometheus/prometheus.yml", f"the compose service {name} serves /metrics but is not scraped")
        if any(variable in environment for variable in ("API_ADDR", "DASHBOARD_ADDR")) and "METRICS_ADDR" not in environment:
            problem("docker-compose.yml", f"services.{name} serves a public port but sets no METRICS_ADDR, so its metrics stay on 127.0.0.1")


def check_grafana(services, listening):
    grafana = services.get("grafana", {})
    mounts = {volume.split(":")[1]: volume.split(":")[0] for volume in grafana.get("volumes", []) if volume.startswith(".")}
    for path in (ROOT / "grafana" / "provisioning" / "datasources").glob("*.y*ml"):
        for source in load_yaml(path).get("datasources", []):
            url = urlsplit(source["url"])
            if url.hostname not in services or url.port not in listening[url.hostname]:
                problem(str(path.relative_to(ROOT)), f"datasource {source['url']} is not a compose service's port")
    for path in (ROOT / "grafana" / "provisioning" / "dashboards").glob("*.y*ml"):
        for provider in load_yaml(path).get("providers", []):
            inside = provider["options"]["path"]
            if inside not in mounts:
                problem(str(path.relative_to(ROOT)), f"dashboards path {inside} is not mounted into grafana")
            elif not list((ROOT / mounts[inside]).glob("*.json")):
                problem(str(path.relative_to(ROOT)), f"{mounts[inside]} holds no dashboards")
    for dashboard in (ROOT / "grafana" / "dashboards").glob("*.json"):
        json.loads(dashboard.read_text(encoding="utf-8"))


def check_rabbitmq_plugins():
    plugins = (ROOT / "deploy" / "rabbitmq" / "enabled_plugins").read_text(encoding="utf-8")
    for plugin in ("rabbitmq_management", "rabbitmq_prometheus"):
        if plugin not in plugins:
            problem("deploy/rabbitmq/enabled_plugins", f"{plugin} is not enabled")


def check_dockerfile():
    dockerfile = (ROOT / "Dockerfile").read_text(encoding="utf-8")
    workspace = load_toml_members()
    for member in workspace:
        if f"COPY {member}/Cargo.toml" not in dockerfile:
            problem("Dockerfile", f"the dependency layer does not copy {member}/Cargo.toml")
    for source in re.findall(r"^COPY (?!--from)(\S+)", dockerfile, re.MULTILINE):
        if source != "." and not (ROOT / source).exists():
            problem("Dockerfile", f"copies {source}, which does not exist")
    if not re.search(r"^USER (?!root)\S+", dockerfile, re.MULTILINE):
        problem("Dockerfile", "the runtime image runs as root")


def load_toml_members():
    manifest = (ROOT / "Cargo.toml").read_text(encoding="utf-8")
    block = re.search(r"members\s*=\s*\[(.*?)\]", manifest, re.DOTALL)
    return re.findall(r'"([^"]+)"', block.group(1)) if block else []


# ---- kubernetes -------------------------------------------------------------------------


def check_kubernetes():
    kustomization = load_yaml(K8S / "kustomization.yaml")
    listed = set(kustomization.get("resources", []))
    present = {path.name for path in K8S.glob("*.yaml")} - {"kustomization.yaml"}
    for missing in sorted(listed - present):
        problem("deploy/k8s/kustomization.yaml", f"lists {missing}, which does not exist")
    for unlisted in sorted(present - listed):
        problem("deploy/k8s/kustomization.yaml", f"does not list {unlisted}")

    objects = []
    for name in sorted(present):
        for document in yaml.safe_load_all((K8S / name).read_text(encoding="utf-8")):
            if document:
                objects.append((name, document))
    for name, document in objects:
        if document["apiVersion"].startswith("keda.sh/"):
            continue  # no published schema offline; checked by hand below
        try:
            kubernetes_validate.validate(document, KUBERNETES_VERSION, strict=True)
        except kubernetes_validate.ValidationError as error:
            problem(f"deploy/k8s/{name}", f"{document['kind']}/{document['metadata']['name']}: {error.message} at {'.'.join(map(str, error.path))}")

    by_kind = {}
    for name, document in objects:
        by_kind.setdefault(document["kind"], {})[document["metadata"]["name"]] = document
    configmaps = by_kind.get("ConfigMap", {})
    secrets = by_kind.get("Secret", {})
    deployments = by_kind.get("Deployment", {})
    environments = {}

    for deployment_name, deployment in deployments.items():
        where = f"deploy/k8s Deployment/{deployment_name}"
        pod = deployment["spec"]["template"]
        if pod["metadata"]["labels"] != deployment["spec"]["selector"]["matchLabels"]:
            problem(where, "the selector does not match the pod's labels")
        (container,) = pod["spec"]["containers"]
        port_names = {port["name"]: port["containerPort"] for port in container.get("ports", [])}
        environment = {}
        for source in container.get("envFrom", []):
            if "configMapRef" in source:
                reference = source["configMapRef"]["name"]
                if reference not in configmaps:
                    problem(where, f"envFrom names ConfigMap {reference}, which is not defined")
                environment.update(configmaps.get(reference, {}).get("data", {}))
            if "secretRef" in source:
                reference = source["secretRef"]["name"]
                if reference not in secrets:
                    problem(where, f"envFrom names Secret {reference}, which is not defined")
                environment.update(secrets.get(reference, {}).get("stringData", {}))
        environment.update({variable["name"]: variable["value"] for variable in container.get("env", [])})
        environments[f"k8s/{deployment_name}"] = environment
        listens = {port_of(environment[v]) for v in LISTEN_VARIABLES if v in environment}
        if set(port_names.values()) != listens:
            problem(where, f"declares ports {sorted(port_names.values())} but listens on {sorted(listens)}")
        for probe in ("livenessProbe", "readinessProbe"):
            port = container.get(probe, {}).get("httpGet", {}).get("port")
            if port is not None and port not in port_names:
                problem(where, f"{probe} uses port {port}, which the container does not name")
        scrape_port = pod["metadata"].get("annotations", {}).get("prometheus.io/port")
        metrics_port = port_of(environment["METRICS_ADDR"]) if "METRICS_ADDR" in environment else None
        if scrape_port is None:
            problem(where, "has no prometheus.io/port annotation, so Prometheus will not scrape it")
        elif int(scrape_port) != metrics_port:
            problem(where, f"prometheus.io/port is {scrape_port}, but METRICS_ADDR is {environment.get('METRICS_ADDR')}")
        # The simulator's control endpoints (/_sim) change what it answers: never in production.
        if container["args"][:1] == ["simulator"] or "simulator" in environment.get("PROVIDERS", "").split(","):
            problem(where, "runs or uses the provider simulator, which must never be reachable in production")
        for volume in pod["spec"].get("volumes", []):
            claim = volume.get("persistentVolumeClaim", {}).get("claimName")
            if claim and claim not in by_kind.get("PersistentVolumeClaim", {}):
                problem(where, f"mounts claim {claim}, which is not defined")
            config_map = volume.get("configMap", {}).get("name")
            if config_map and config_map not in configmaps:
                problem(where, f"mounts ConfigMap {config_map}, which is not defined")
        # Every certificate file the URLs name is a key of a ConfigMap mounted at its folder.
        mounts = {mount["mountPath"]: mount["name"] for mount in container.get("volumeMounts", [])}
        volumes = {volume["name"]: volume for volume in pod["spec"].get("volumes", [])}
        for variable, value in environment.items():
            for path in re.findall(r"(?:sslrootcert|cacertfile|certfile|keyfile)=([^&\s]+)", value):
                folder, file = path.rsplit("/", 1)
                volume = volumes.get(mounts.get(folder), {})
                data = configmaps.get(volume.get("configMap", {}).get("name"), {}).get("data", {})
                if file not in data:
                    problem(where, f"{variable} names {path}, which no mounted ConfigMap provides")

    for service_name, service in by_kind.get("Service", {}).items():
        where = f"deploy/k8s Service/{service_name}"
        targets = [d for d in deployments.values() if service["spec"]["selector"].items() <= d["spec"]["template"]["metadata"]["labels"].items()]
        if not targets:
            problem(where, "selects no Deployment's pods")
        for port in service["spec"]["ports"]:
            for target in targets:
                names = {p["name"] for p in target["spec"]["template"]["spec"]["containers"][0].get("ports", [])}
                if isinstance(port["targetPort"], str) and port["targetPort"] not in names:
                    problem(where, f"targetPort {port['targetPort']} is not a port of {target['metadata']['name']}")
                if port["targetPort"] in ("metrics", 9464):
                    problem(where, "exposes the internal metrics port; Prometheus scrapes pods, not Services")

    for scaler_name, scaler in by_kind.get("ScaledObject", {}).items():
        where = f"deploy/k8s ScaledObject/{scaler_name}"
        target = deployments.get(scaler["spec"]["scaleTargetRef"]["name"])
        if target is None:
            problem(where, "scales a Deployment that is not defined")
            continue
        arguments = target["spec"]["template"]["spec"]["containers"][0]["args"]
        for trigger in scaler["spec"]["triggers"]:
            metadata = trigger["metadata"]
            if trigger["type"] != "rabbitmq" or metadata.get("mode") != "QueueLength":
                problem(where, "should scale on RabbitMQ queue length")
            if arguments[:1] != ["worker"] or metadata.get("queueName") != arguments[1]:
                problem(where, f"watches queue {metadata.get('queueName')}, but the Deployment runs {arguments}")
            if metadata.get("queueName") not in WORKER_QUEUES:
                problem(where, f"{metadata.get('queueName')} is not a Namaskah work queue")
            if not str(metadata.get("value", "")).isdigit():
                problem(where, "value must be a whole number of messages, as a string")
            authentication = by_kind.get("TriggerAuthentication", {}).get(trigger.get("authenticationRef", {}).get("name"))
            if authentication is None:
                problem(where, "authenticationRef names no TriggerAuthentication")
                continue
            for reference in authentication["spec"]["secretTargetRef"]:
                if reference["key"] not in secrets.get(reference["name"], {}).get("stringData", {}):
                    problem(where, f"its TriggerAuthentication reads {reference['name']}/{reference['key']}, which is not defined")
    scaled = {s["spec"]["scaleTargetRef"]["name"] for s in by_kind.get("ScaledObject", {}).values()}
    for deployment_name, deployment in deployments.items():
        arguments = deployment["spec"]["template"]["spec"]["containers"][0]["args"]
        if arguments[:1] == ["worker"] and deployment_name not in scaled:
            problem(f"deploy/k8s Deployment/{deployment_name}", "is a worker without a KEDA ScaledObject")
    return environments


def main():
    environments = check_compose()
    check_dockerfile()
    environments.update(check_kubernetes())
    if problems:
        print("\n".join(problems), file=sys.stderr)
        sys.exit(1)
    if "--environments" in sys.argv:
        print(json.dumps(environments, indent=2, sort_keys=True))
    else:
        print(f"deployment files OK ({len(environments)} container environments checked)")


if __name__ == "__main__":
    main()
