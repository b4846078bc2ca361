//! `deploy/k8s/` and the `Dockerfile` agree with what the binary and its config define: the
//! ConfigMap's `shadowcat.yaml` passes the real validator (secrets taken from the Secret, as
//! the pods get them), the container ports are the config's listener and admin ports, the
//! probes call the admin listener's `/readyz` and `/healthz`, every `${VAR}` the config reads
//! is set from a key the Secret holds, the Service and PodDisruptionBudget select the
//! Deployment's pods, and the store URL names the store's Service.

use std::collections::BTreeMap;
use std::path::Path;

use serde::Deserialize;
use serde_yaml::Value;

fn docs() -> Vec<Value> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/k8s");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    files.sort();
    assert!(!files.is_empty());
    let mut out = Vec::new();
    for file in files {
        let text = std::fs::read_to_string(&file).unwrap();
        for doc in serde_yaml::Deserializer::from_str(&text) {
            let v = Value::deserialize(doc).unwrap_or_else(|e| panic!("{file:?}: {e}"));
            assert!(v["apiVersion"].is_string(), "{file:?}: no apiVersion");
            out.push(v);
        }
    }
    out
}

fn find<'a>(docs: &'a [Value], kind: &str, name: &str) -> &'a Value {
    docs.iter()
        .find(|d| d["kind"] == kind && d["metadata"]["name"] == name)
        .unwrap_or_else(|| panic!("no {kind} {name}"))
}

fn port_named(ports: &Value, name: &str) -> u64 {
    ports
        .as_sequence()
        .unwrap()
        .iter()
        .find(|p| p["name"] == name)
        .and_then(|p| p["containerPort"].as_u64())
        .unwrap_or_else(|| panic!("no container port {name}"))
}

/// Every `${VAR}` in `text`.
fn env_refs(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(start) = rest.find("${") {
        let end = rest[start..].find('}').unwrap();
        out.push(rest[start + 2..start + end].to_owned());
        rest = &rest[start + end..];
    }
    out
}

#[test]
fn kubernetes_manifests_match_the_binary_and_its_config() {
    let docs = docs();
    let deployment = find(&docs, "Deployment", "shadowcat");
    let secret = find(&docs, "Secret", "shadowcat-keys");
    let config_map = find(&docs, "ConfigMap", "shadowcat-config");
    let service = find(&docs, "Service", "shadowcat");
    let pdb = find(&docs, "PodDisruptionBudget", "shadowcat");
    assert_eq!(deployment["spec"]["replicas"], 3);

    // The container's environment: each variable from a key the Secret holds.
    let pod = &deployment["spec"]["template"]["spec"];
    let container = &pod["containers"][0];
    let secret_keys: BTreeMap<String, String> =
        serde_yaml::from_value(secret["stringData"].clone()).unwrap();
    let mut env = BTreeMap::new();
    for var in container["env"].as_sequence().unwrap() {
        let name = var["name"].as_str().unwrap().to_owned();
        let r = &var["valueFrom"]["secretKeyRef"];
        if r.is_mapping() {
            assert_eq!(r["name"], "shadowcat-keys", "{name}");
            let key = r["key"].as_str().unwrap();
            let value = secret_keys
                .get(key)
                .unwrap_or_else(|| panic!("{name}: the Secret has no key {key}"));
            env.insert(name, value.clone());
        }
    }

    // The config, as the pods read it: every ${VAR} is one the container sets from the Secret.
    let text = config_map["data"]["shadowcat.yaml"].as_str().unwrap();
    let refs = env_refs(text);
    assert!(refs.iter().any(|v| v.starts_with("SHADOWCAT_SESSION_KEY")));
    for var in &refs {
        let value = env
            .get(var)
            .unwrap_or_else(|| panic!("${{{var}}} is not set from the Secret"));
        std::env::set_var(var, value);
    }
    let config = shadowcat::config::from_yaml_str(text).expect("the ConfigMap's config is valid");
    assert_eq!(config.sessions.keys.len(), 1, "session ids are sealed");
    assert!(config.admin_bearer_token.is_some());

    // Ports: the container's are the config's; the args name the mounted file.
    let ports = &container["ports"];
    let listen = config.listeners[0].addr;
    let admin = config.admin.expect("admin listener");
    assert!(listen.ip().is_unspecified() && admin.ip().is_unspecified());
    assert_eq!(port_named(ports, "mcp"), u64::from(listen.port()));
    assert_eq!(port_named(ports, "admin"), u64::from(admin.port()));
    let args: Vec<&str> = container["args"]
        .as_sequence()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap())
        .collect();
    let mount = container["volumeMounts"][0]["mountPath"].as_str().unwrap();
    assert_eq!(
        args,
        ["reverse", "--config", &format!("{mount}/shadowcat.yaml")]
    );
    assert_eq!(
        pod["volumes"][0]["configMap"]["name"],
        config_map["metadata"]["name"]
    );

    // Probes on the admin listener, at the paths it serves.
    for (probe, path) in [("readinessProbe", "/readyz"), ("livenessProbe", "/healthz")] {
        let get = &container[probe]["httpGet"];
        assert_eq!(get["path"], path, "{probe}");
        assert_eq!(get["port"], "admin", "{probe}");
    }
    // The grace period outlasts the proxy's own drain.
    let grace = pod["terminationGracePeriodSeconds"].as_u64().unwrap();
    assert!(grace > config.shutdown.grace_period.as_secs());
    assert_eq!(pod["securityContext"]["runAsNonRoot"], true);

    // Service and PodDisruptionBudget select these pods; the Service targets named ports.
    let labels = &deployment["spec"]["template"]["metadata"]["labels"];
    assert_eq!(&service["spec"]["selector"], labels);
    assert_eq!(&pdb["spec"]["selector"]["matchLabels"], labels);
    assert_eq!(&deployment["spec"]["selector"]["matchLabels"], labels);
    assert_eq!(service["spec"]["sessionAffinity"], "None");
    for p in service["spec"]["ports"].as_sequence().unwrap() {
        port_named(ports, p["targetPort"].as_str().unwrap());
    }
    let min = pdb["spec"]["minAvailable"].as_u64().unwrap();
    assert!(
        (1..3).contains(&min),
        "minAvailable leaves room to drain one of three"
    );

    // The store: a Service in front of the Redis/Valkey Deployment's port.
    let store = find(&docs, "Deployment", "shadowcat-store");
    let store_svc = find(&docs, "Service", "shadowcat-store");
    let store_port = port_named(
        &store["spec"]["template"]["spec"]["containers"][0]["ports"],
        "redis",
    );
    assert_eq!(
        store_svc["spec"]["ports"][0]["port"].as_u64(),
        Some(store_port)
    );
    assert_eq!(
        &store_svc["spec"]["selector"],
        &store["spec"]["template"]["metadata"]["labels"]
    );
    assert_eq!(config.store.kind, shadowcat::config::StoreKind::Redis);
    let svc_name = store_svc["metadata"]["name"].as_str().unwrap();
    assert!(
        config
            .store
            .url
            .starts_with(&format!("redis://{svc_name}:{store_port}/")),
        "the store URL names the store's Service and port"
    );
}

#[test]
fn dockerfile_is_multi_stage_non_root_and_exposes_the_config_ports() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(root.join("Dockerfile")).unwrap();
    let lines: Vec<&str> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .collect();
    let froms = lines.iter().filter(|l| l.starts_with("FROM ")).count();
    assert!(froms >= 2, "multi-stage");
    assert!(lines.iter().any(|l| l.starts_with("COPY --from=build")));
    let user = lines
        .iter()
        .rev()
        .find_map(|l| l.strip_prefix("USER "))
        .expect("USER");
    assert!(
        !user.starts_with("0") && !user.starts_with("root"),
        "{user}"
    );
    let expose = lines
        .iter()
        .find_map(|l| l.strip_prefix("EXPOSE "))
        .expect("EXPOSE");
    let docs = docs();
    let deployment = find(&docs, "Deployment", "shadowcat");
    let ports = &deployment["spec"]["template"]["spec"]["containers"][0]["ports"];
    let exposed: Vec<u64> = expose
        .split_whitespace()
        .map(|p| p.parse().unwrap())
        .collect();
    assert_eq!(
        exposed,
        [port_named(ports, "mcp"), port_named(ports, "admin")]
    );
    assert!(text.contains(r#"ENTRYPOINT ["/usr/local/bin/shadowcat"]"#));
    assert!(text.contains(r#"CMD ["reverse", "--config", "/etc/shadowcat/shadowcat.yaml"]"#));
    // The build context leaves out build output.
    let ignore = std::fs::read_to_string(root.join(".dockerignore")).unwrap();
    assert!(ignore.lines().any(|l| l.trim() == "target"));
}
