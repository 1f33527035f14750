//! The operator's kit in `deploy/` (issue #5) stays true to the service:
//! every file parses; every metric and label the Grafana dashboard and the
//! Prometheus rules query is one a running service really prints at
//! `/metrics`; the Kubernetes config passes `check-config`; the systemd unit
//! and the StatefulSet leave the drain (`server.shutdown_grace`) time to end
//! and give the spool (`durability: spool`) a writable, lasting directory:
//! the unit's `StateDirectory`, a volume claim per replica.

mod common;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use alert_ingest::config::{Config, Durability};
use common::{eventually, fixture, incompressible, test_config, webhook, Service, TestDb};
use serde::Deserialize;
use serde_json::json;
use serde_yaml_ng::Value as Yaml;

const DEPLOY: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/deploy");
const DASHBOARD: &str = "grafana/alert-ingest.json";
const RULES: &str = "prometheus/alert-ingest-rules.yaml";
const KUBERNETES: &str = "kubernetes/alert-ingest.yaml";
const SYSTEMD: &str = "systemd/alert-ingest.service";
const REPO_CONFIG: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/config.yaml");
const BIN: &str = env!("CARGO_BIN_EXE_alert-ingest");
/// Where the unit and the Deployment read the configuration.
const CONFIG_PATH: &str = "/etc/alert-ingest/config.yaml";

/// Metrics the kit may query that alert-ingest does not export: Prometheus's
/// own `up`, and kube-state-metrics' for readiness (of the StatefulSet, or
/// of the stateless Deployment of `durability: database`). Anything else
/// that is not an `alert_ingest_*` name is a typo.
const FOREIGN_METRICS: &[&str] = &[
    "up",
    "kube_statefulset_replicas",
    "kube_statefulset_status_replicas_ready",
    "kube_deployment_status_replicas_available",
    "kube_deployment_status_replicas_unavailable",
];
/// Labels the scrape adds (`job`, `instance`) or foreign metrics carry.
const FOREIGN_LABELS: &[&str] = &["job", "instance", "statefulset", "deployment", "namespace"];
/// Suffixes by which one metric family names its samples.
const SAMPLE_SUFFIXES: &[&str] = &["", "_total", "_bucket", "_sum", "_count"];

// ---------------------------------------------------------------------------
// The tests

#[test]
fn every_json_and_yaml_file_parses() {
    let files = deploy_files();
    let (mut json, mut yaml) = (0, 0);
    for path in &files {
        match extension(path) {
            "json" => {
                json_file(path);
                json += 1;
            }
            "yaml" | "yml" => {
                let docs = yaml_documents(path);
                assert!(!docs.is_empty(), "{}: no YAML document", path.display());
                for (i, doc) in docs.iter().enumerate() {
                    assert!(!doc.is_null(), "{}: document {i} is empty", path.display());
                }
                yaml += 1;
            }
            _ => {}
        }
    }
    assert!(json >= 1 && yaml >= 3, "{files:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dashboard_and_rules_query_only_what_metrics_prints() {
    let metrics = scrape_exercised_service().await;
    let exposition = Exposition::parse(&metrics);
    let queries = kit_queries(&dashboard_text(), &yaml_documents(&deploy(RULES)));
    let problems = check_queries(&queries, &exposition);
    assert!(
        problems.is_empty(),
        "the kit queries what /metrics does not print:\n  {}\n/metrics:\n{metrics}",
        problems.join("\n  ")
    );
    let unused = unqueried_families(&queries, &exposition);
    assert!(
        unused.is_empty(),
        "metric families nothing in deploy/ shows or alerts on: {unused:?}"
    );
    the_check_catches_typos(&exposition);
}

#[test]
fn kubernetes_config_map_passes_check_config() {
    let docs = yaml_documents(&deploy(KUBERNETES));
    let text = config_map_text(&docs);
    let config = Config::from_yaml(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
    config.validate().unwrap_or_else(|e| panic!("{e}\n{text}"));
    let file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(file.path(), &text).unwrap();
    let out = Command::new(BIN)
        .args(["check-config", "--config", file.path().to_str().unwrap()])
        .env_remove("ALERT_INGEST_DATABASE_URL")
        .env_remove("DATABASE_URL")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "alert-ingest check-config: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn kubernetes_statefulset_matches_its_config() {
    let docs = yaml_documents(&deploy(KUBERNETES));
    let kinds: Vec<&str> = docs.iter().filter_map(|d| d["kind"].as_str()).collect();
    for kind in ["ConfigMap", "StatefulSet", "Service", "PodDisruptionBudget"] {
        assert!(
            kinds.contains(&kind),
            "{KUBERNETES} lacks a {kind}: {kinds:?}"
        );
    }
    // The stateless alternative (`durability: database`) is described in
    // comments only: two workloads would both serve the Service.
    assert!(!kinds.contains(&"Deployment"), "{kinds:?}");
    let config = Config::from_yaml(&config_map_text(&docs)).unwrap();
    assert_eq!(config.durability, Durability::Spool);
    let set = of_kind(&docs, "StatefulSet");
    assert_eq!(set["spec"]["replicas"].as_i64(), Some(2));
    let pod = &set["spec"]["template"];
    let container = &pod["spec"]["containers"][0];
    assert_reads_config(container, &pod["spec"]);
    assert_database_url_from_secret(container);
    assert_probes_and_port(pod, container, config.server.listen.port());
    assert_grace_covers_drain(&pod["spec"], container, config.server.shutdown_grace);
    assert_locked_down(&pod["spec"], container);
    assert_spool_on_its_claim(set, container, config);
    assert_services_and_budget_select_the_pods(&docs, set);
}

#[test]
fn systemd_unit_serves_the_config_and_outwaits_the_drain() {
    let unit = systemd_unit(&std::fs::read_to_string(deploy(SYSTEMD)).unwrap());
    let get = |key: &str| -> Vec<&str> {
        unit.iter()
            .filter(|(section, k, _)| section == "Service" && k == key)
            .map(|(_, _, v)| v.as_str())
            .collect()
    };
    let exec_start = get("ExecStart");
    assert_eq!(exec_start.len(), 1, "{SYSTEMD}: one ExecStart");
    assert!(
        exec_start[0].ends_with(&format!("alert-ingest --config {CONFIG_PATH}")),
        "{exec_start:?}"
    );
    assert!(
        get("ExecStartPre").iter().all(|v| !v.contains("migrate")),
        "serve migrates by itself"
    );
    assert_eq!(get("KillSignal"), ["SIGTERM"]);
    assert_eq!(get("Restart"), ["on-failure"]);
    assert_eq!(get("ExecReload"), ["/bin/kill -HUP $MAINPID"]);
    assert_eq!(get("EnvironmentFile").len(), 1);
    for key in ["NoNewPrivileges", "ProtectSystem", "LimitNOFILE"] {
        assert_eq!(get(key).len(), 1, "{SYSTEMD}: {key}");
    }
    let stop = systemd_seconds(get("TimeoutStopSec")[0]);
    let grace = repo_config().server.shutdown_grace;
    assert!(
        stop > grace,
        "TimeoutStopSec {stop:?} must exceed server.shutdown_grace {grace:?}"
    );
    // The spool: in the state directory, the one place ProtectSystem=strict
    // leaves writable (systemd creates it and hands it to the DynamicUser).
    assert_eq!(get("ProtectSystem"), ["strict"]);
    let state = get("StateDirectory");
    assert_eq!(state.len(), 1, "{SYSTEMD}: one StateDirectory");
    let mut config = repo_config();
    assert_eq!(config.durability, Durability::Spool);
    let environment: Vec<(&str, &str)> = get("Environment")
        .iter()
        .flat_map(|v| v.split_whitespace())
        .filter_map(|assignment| assignment.split_once('='))
        .collect();
    let problems = config.apply_env(|key| {
        environment
            .iter()
            .find(|(k, _)| *k == key)
            .map(|(_, v)| (*v).to_owned())
    });
    assert!(problems.is_empty(), "{problems:?}");
    let state_dir = Path::new("/var/lib").join(state[0]);
    assert!(
        config.spool.dir.starts_with(&state_dir),
        "spool.dir {} is not in the StateDirectory {}",
        config.spool.dir.display(),
        state_dir.display()
    );
}

#[test]
fn every_rule_alerts_with_for_severity_and_runbook() {
    let docs = yaml_documents(&deploy(RULES));
    let groups = docs[0]["groups"].as_sequence().expect("groups");
    let mut names = BTreeSet::new();
    for group in groups {
        let rules = group["rules"].as_sequence().expect("rules");
        assert!(!rules.is_empty(), "{:?}", group["name"]);
        for rule in rules {
            let name = rule["alert"].as_str().expect("every rule is an alert");
            assert!(names.insert(name), "{name} twice");
            assert!(rule["expr"].as_str().is_some(), "{name}: expr");
            let pending = rule["for"].as_str().unwrap_or_default();
            assert!(humantime::parse_duration(pending).is_ok(), "{name}: for");
            let severity = rule["labels"]["severity"].as_str();
            assert!(
                matches!(severity, Some("critical" | "warning" | "info")),
                "{name}: severity {severity:?}"
            );
            for key in ["summary", "description"] {
                let text = rule["annotations"][key].as_str().unwrap_or_default();
                assert!(!text.trim().is_empty(), "{name}: annotations.{key}");
            }
        }
    }
}

#[test]
fn dashboard_has_its_variables_and_one_datasource() {
    let dashboard = json_file(&deploy(DASHBOARD));
    let schema = dashboard["schemaVersion"].as_i64().unwrap_or_default();
    assert!((36..=41).contains(&schema), "schemaVersion {schema}");
    let variables = dashboard["templating"]["list"].as_array().unwrap();
    let variable = |name: &str| variables.iter().find(|v| v["name"] == name);
    assert_eq!(variable("datasource").unwrap()["query"], "prometheus");
    assert_eq!(variable("instance").unwrap()["type"], "query");
    let mut ids = BTreeSet::new();
    for panel in panels(&dashboard) {
        assert!(ids.insert(panel["id"].as_i64().unwrap()), "panel id twice");
        if panel["type"] != "row" {
            assert_eq!(panel["datasource"]["uid"], "${datasource}", "{panel}");
            assert!(!panel["targets"].as_array().unwrap().is_empty());
        }
    }
}

// ---------------------------------------------------------------------------
// Exercising the service, so that labelled families have series

async fn scrape_exercised_service() -> String {
    let db = TestDb::create().await;
    let service = Service::start_ready(test_config(&db.url)).await;
    let stored = fixture("firing-two-alerts.json");
    assert_eq!(service.post(stored.clone()).await.0, 200);
    assert_eq!(service.post(stored).await.0, 200, "a repeat");
    assert_eq!(service.post("{").await.0, 400, "invalid JSON");
    assert_eq!(service.get("/nope").await.0, 404);
    // Refused by the parser: PostgreSQL's index could not hold it.
    let too_long = webhook(vec![json!({
        "labels": {"alertname": incompressible(4000)},
        "startsAt": "2026-11-23T10:00:00Z",
    })]);
    assert_eq!(service.post(too_long).await.0, 400);
    // Refused by PostgreSQL itself when loaded (a constraint an operator
    // added): db_errors_total{class="data"}, rejected_notifications_total.
    common::refuse_poison(&db.client().await).await;
    let poison = webhook(vec![json!({
        "labels": {"alertname": common::POISON},
        "startsAt": "2026-11-23T10:00:00Z",
    })]);
    assert_eq!(
        service.post(poison).await.0,
        200,
        "acknowledged from the spool"
    );
    service.settled().await;
    assert_eq!(
        service
            .metric("alert_ingest_rejected_notifications_total")
            .await,
        1
    );
    // The retention families appear once the first run is recorded.
    let retention_ran = eventually(Duration::from_secs(10), || async {
        let series = "alert_ingest_retention_runs_total{outcome=\"completed\"}";
        service.metric(series).await >= 1
    })
    .await;
    assert!(retention_ran, "the first retention run completed");
    let (status, metrics) = service.get("/metrics").await;
    assert_eq!(status, 200);
    service.shutdown().await;
    metrics
}

// ---------------------------------------------------------------------------
// What /metrics prints

/// Sample names (`alert_ingest_commit_duration_seconds_bucket`, what
/// Prometheus stores and PromQL selects), label names and family names.
#[derive(Debug, Default)]
struct Exposition {
    samples: BTreeSet<String>,
    labels: BTreeSet<String>,
    families: BTreeSet<String>,
}

impl Exposition {
    fn parse(text: &str) -> Exposition {
        let mut e = Exposition::default();
        for line in text.lines() {
            if let Some(rest) = line.strip_prefix("# TYPE ") {
                e.families
                    .insert(rest.split(' ').next().unwrap().to_owned());
            } else if !line.starts_with('#') && !line.is_empty() {
                let chars: Vec<char> = line.chars().collect();
                let end = ident_end(&chars, 0);
                e.samples.insert(chars[..end].iter().collect());
                if chars.get(end) == Some(&'{') {
                    matchers(&chars, end, &mut e.labels);
                }
            }
        }
        e
    }
}

// ---------------------------------------------------------------------------
// What the kit queries

/// A PromQL expression and where it was found, for the failure message.
struct Query {
    place: String,
    refs: Refs,
}

fn kit_queries(dashboard: &str, rules: &[Yaml]) -> Vec<Query> {
    let dashboard: serde_json::Value = serde_json::from_str(dashboard).unwrap();
    let mut queries = Vec::new();
    for panel in panels(&dashboard) {
        for target in panel["targets"].as_array().into_iter().flatten() {
            let expr = target["expr"].as_str().expect("every target has an expr");
            queries.push(Query {
                place: format!(
                    "{DASHBOARD} panel {:?}: {expr}",
                    panel["title"].as_str().unwrap_or_default()
                ),
                refs: promql_refs(expr),
            });
        }
    }
    for variable in dashboard["templating"]["list"].as_array().unwrap() {
        if variable["type"] == "query" {
            let q = &variable["query"];
            let q = q["query"].as_str().or(q.as_str()).unwrap();
            queries.push(Query {
                place: format!("{DASHBOARD} variable {}: {q}", variable["name"]),
                refs: grafana_query_refs(q),
            });
        }
    }
    for group in rules[0]["groups"].as_sequence().unwrap() {
        for rule in group["rules"].as_sequence().unwrap() {
            let expr = rule["expr"].as_str().unwrap();
            queries.push(Query {
                place: format!("{RULES} {}: {expr}", rule["alert"].as_str().unwrap()),
                refs: promql_refs(expr),
            });
        }
    }
    queries
}

/// Every metric or label a query names that the exposition does not have.
fn check_queries(queries: &[Query], exposition: &Exposition) -> Vec<String> {
    let mut problems = Vec::new();
    for q in queries {
        for metric in &q.refs.metrics {
            let known = if metric.starts_with("alert_ingest_") {
                exposition.samples.contains(metric)
            } else {
                FOREIGN_METRICS.contains(&metric.as_str())
            };
            if !known {
                problems.push(format!("metric {metric} in {}", q.place));
            }
        }
        for label in &q.refs.labels {
            if !exposition.labels.contains(label) && !FOREIGN_LABELS.contains(&label.as_str()) {
                problems.push(format!("label {label} in {}", q.place));
            }
        }
    }
    problems
}

/// Families of the exposition that no query reads.
fn unqueried_families(queries: &[Query], exposition: &Exposition) -> Vec<String> {
    let used: BTreeSet<&String> = queries.iter().flat_map(|q| &q.refs.metrics).collect();
    exposition
        .families
        .iter()
        .filter(|family| {
            !SAMPLE_SUFFIXES
                .iter()
                .any(|s| used.contains(&format!("{family}{s}")))
        })
        .cloned()
        .collect()
}

/// The check above must be able to fail: a misspelt sample name, a
/// misspelt prefix (not an `alert_ingest_*` name at all) and a misspelt
/// label in the real dashboard are each reported.
fn the_check_catches_typos(exposition: &Exposition) {
    let rules = yaml_documents(&deploy(RULES));
    let real = dashboard_text();
    for (right, wrong) in [
        (
            "alert_ingest_commit_duration_seconds_bucket",
            "alert_ingest_commit_duration_bucket",
        ),
        ("alert_ingest_queue_depth", "alert_ingset_queue_depth"),
        // (The file is JSON: its quotes are escaped.)
        (r#"code=\"503\""#, r#"cdoe=\"503\""#),
    ] {
        assert!(real.contains(right), "the dashboard no longer uses {right}");
        let typo = real.replace(right, wrong);
        let problems = check_queries(&kit_queries(&typo, &rules), exposition);
        let wrong_name = wrong.split('=').next().unwrap();
        assert!(
            problems.iter().any(|p| p.contains(wrong_name)),
            "{wrong} went unnoticed: {problems:?}"
        );
    }
}

// ---------------------------------------------------------------------------
// A little PromQL: enough to find the names in our own expressions

#[derive(Debug, Default)]
struct Refs {
    metrics: BTreeSet<String>,
    labels: BTreeSet<String>,
}

/// Aggregation operators (they may take `by (...)` before their parenthesis)
/// and keywords: never metric names.
const KEYWORDS: &[&str] = &[
    "sum",
    "min",
    "max",
    "avg",
    "group",
    "stddev",
    "stdvar",
    "count",
    "count_values",
    "bottomk",
    "topk",
    "quantile",
    "limitk",
    "limit_ratio",
    "and",
    "or",
    "unless",
    "bool",
    "offset",
    "atan2",
    "inf",
    "nan",
];
/// Keywords followed by a list of label names.
const GROUPING: &[&str] = &[
    "by",
    "without",
    "on",
    "ignoring",
    "group_left",
    "group_right",
];

/// The metric and label names of an expression. Strings, `[ranges]`,
/// numbers, durations and Grafana `$variables` are skipped; an identifier
/// before `(` is a function.
fn promql_refs(expr: &str) -> Refs {
    let chars: Vec<char> = expr.chars().collect();
    let mut refs = Refs::default();
    let mut i = 0;
    while i < chars.len() {
        i = match chars[i] {
            '"' | '\'' | '`' => string_end(&chars, i),
            '{' => matchers(&chars, i, &mut refs.labels),
            '[' => past(&chars, i, ']'),
            '$' => variable_end(&chars, i),
            c if c.is_ascii_digit() || c == '.' => number_end(&chars, i),
            c if is_ident_start(c) => identifier(&chars, i, &mut refs),
            _ => i + 1,
        };
    }
    refs
}

/// Grafana's `label_values(selector, label)` (or `label_values(label)`);
/// anything else is PromQL.
fn grafana_query_refs(query: &str) -> Refs {
    let Some(args) = query
        .trim()
        .strip_prefix("label_values(")
        .and_then(|q| q.strip_suffix(')'))
    else {
        return promql_refs(query);
    };
    let (selector, label) = args.rsplit_once(',').unwrap_or(("", args));
    let mut refs = promql_refs(selector);
    refs.labels.insert(label.trim().to_owned());
    refs
}

fn identifier(chars: &[char], start: usize, refs: &mut Refs) -> usize {
    let end = ident_end(chars, start);
    let word: String = chars[start..end].iter().collect();
    let next = chars[end..].iter().position(|c| !c.is_whitespace());
    let next_is_paren = next.is_some_and(|n| chars[end + n] == '(');
    if GROUPING.contains(&word.as_str()) {
        if next_is_paren {
            return label_list(chars, end + next.unwrap(), &mut refs.labels);
        }
    } else if !next_is_paren && !KEYWORDS.contains(&word.as_str()) {
        refs.metrics.insert(word);
    }
    end
}

/// `{name op "value", ...}` from its `{`: the label names; returns past `}`.
fn matchers(chars: &[char], open: usize, labels: &mut BTreeSet<String>) -> usize {
    let mut i = open + 1;
    while i < chars.len() && chars[i] != '}' {
        i = match chars[i] {
            '"' | '\'' | '`' => string_end(chars, i),
            c if is_ident_start(c) => {
                let end = ident_end(chars, i);
                labels.insert(chars[i..end].iter().collect());
                end
            }
            _ => i + 1,
        };
    }
    i + 1
}

/// `(name, name)` from its `(`: the label names; returns past `)`.
fn label_list(chars: &[char], open: usize, labels: &mut BTreeSet<String>) -> usize {
    let close = past(chars, open, ')');
    let list: String = chars[open + 1..close - 1].iter().collect();
    labels.extend(
        list.split(',')
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .map(str::to_owned),
    );
    close
}

fn is_ident_start(c: char) -> bool {
    c.is_ascii_alphabetic() || c == '_' || c == ':'
}

fn ident_end(chars: &[char], start: usize) -> usize {
    let mut i = start;
    while i < chars.len() && (chars[i].is_ascii_alphanumeric() || matches!(chars[i], '_' | ':')) {
        i += 1;
    }
    i
}

/// Past the closing quote; a backslash escapes the next character.
fn string_end(chars: &[char], open: usize) -> usize {
    let quote = chars[open];
    let mut i = open + 1;
    while i < chars.len() && chars[i] != quote {
        i += if chars[i] == '\\' { 2 } else { 1 };
    }
    i + 1
}

fn past(chars: &[char], open: usize, close: char) -> usize {
    chars[open..]
        .iter()
        .position(|&c| c == close)
        .map_or(chars.len(), |n| open + n + 1)
}

/// `$name`, `$__rate_interval` or `${name}` / `${name:format}`.
fn variable_end(chars: &[char], dollar: usize) -> usize {
    if chars.get(dollar + 1) == Some(&'{') {
        return past(chars, dollar, '}');
    }
    ident_end(chars, dollar + 1)
}

/// Numbers and durations: `0.99`, `1e3`, `5m`, `1h30m`.
fn number_end(chars: &[char], start: usize) -> usize {
    let mut i = start;
    while i < chars.len() && (chars[i].is_ascii_alphanumeric() || chars[i] == '.') {
        i += 1;
    }
    i
}

// ---------------------------------------------------------------------------
// Kubernetes

fn of_kind<'a>(docs: &'a [Yaml], kind: &str) -> &'a Yaml {
    docs.iter()
        .find(|d| d["kind"].as_str() == Some(kind))
        .unwrap_or_else(|| panic!("no {kind}"))
}

fn config_map_text(docs: &[Yaml]) -> String {
    of_kind(docs, "ConfigMap")["data"]["config.yaml"]
        .as_str()
        .expect("the ConfigMap holds config.yaml")
        .to_owned()
}

fn assert_reads_config(container: &Yaml, pod_spec: &Yaml) {
    let args: Vec<&str> = container["args"]
        .as_sequence()
        .unwrap()
        .iter()
        .filter_map(Yaml::as_str)
        .collect();
    assert!(
        args.windows(2).any(|w| w == ["--config", CONFIG_PATH]),
        "{args:?}"
    );
    let mount = &container["volumeMounts"][0];
    let dir = Path::new(CONFIG_PATH).parent().unwrap();
    assert_eq!(mount["mountPath"].as_str().map(Path::new), Some(dir));
    let volume = pod_spec["volumes"]
        .as_sequence()
        .unwrap()
        .iter()
        .find(|v| v["name"] == mount["name"])
        .expect("the mounted volume");
    assert_eq!(volume["configMap"]["name"].as_str(), Some("alert-ingest"));
}

fn assert_database_url_from_secret(container: &Yaml) {
    let env = container["env"].as_sequence().unwrap();
    let url = env
        .iter()
        .find(|e| e["name"] == "ALERT_INGEST_DATABASE_URL")
        .expect("ALERT_INGEST_DATABASE_URL");
    assert!(url["valueFrom"]["secretKeyRef"]["name"].as_str().is_some());
    assert!(url["valueFrom"]["secretKeyRef"]["key"].as_str().is_some());
}

fn assert_probes_and_port(pod: &Yaml, container: &Yaml, listen_port: u16) {
    let port = &container["ports"][0];
    assert_eq!(port["containerPort"].as_u64(), Some(u64::from(listen_port)));
    for (probe, path) in [("readinessProbe", "/readyz"), ("livenessProbe", "/healthz")] {
        let get = &container[probe]["httpGet"];
        assert_eq!(get["path"].as_str(), Some(path), "{probe}");
        assert_eq!(get["port"], port["name"], "{probe} port");
    }
    let annotations = &pod["metadata"]["annotations"];
    assert_eq!(annotations["prometheus.io/scrape"].as_str(), Some("true"));
    assert_eq!(
        annotations["prometheus.io/port"].as_str(),
        Some(listen_port.to_string().as_str())
    );
    assert_eq!(annotations["prometheus.io/path"].as_str(), Some("/metrics"));
}

fn assert_grace_covers_drain(pod_spec: &Yaml, container: &Yaml, shutdown_grace: Duration) {
    let sleep = container["lifecycle"]["preStop"]["sleep"]["seconds"]
        .as_u64()
        .expect("a preStop sleep");
    let grace = pod_spec["terminationGracePeriodSeconds"].as_u64().unwrap();
    assert!(
        Duration::from_secs(grace) > Duration::from_secs(sleep) + shutdown_grace,
        "terminationGracePeriodSeconds {grace} must exceed preStop {sleep}s + shutdown_grace {shutdown_grace:?}"
    );
}

fn assert_locked_down(pod_spec: &Yaml, container: &Yaml) {
    assert_eq!(
        pod_spec["securityContext"]["runAsNonRoot"].as_bool(),
        Some(true)
    );
    let sc = &container["securityContext"];
    assert_eq!(sc["readOnlyRootFilesystem"].as_bool(), Some(true));
    assert_eq!(sc["allowPrivilegeEscalation"].as_bool(), Some(false));
    let resources = &container["resources"];
    assert!(resources["requests"]["memory"].as_str().is_some());
    assert!(resources["limits"]["memory"].as_str().is_some());
}

/// `ALERT_INGEST_SPOOL_DIR` puts the spool below (not at: a new file
/// system's `lost+found` would be a stranger in it) the mount of the
/// StatefulSet's volume claim; the claim is writable by the pod's group,
/// lasts, and holds `spool.max_bytes`.
fn assert_spool_on_its_claim(set: &Yaml, container: &Yaml, mut config: Config) {
    let env = container["env"].as_sequence().unwrap();
    let problems = config.apply_env(|key| {
        env.iter()
            .find(|e| e["name"] == key)
            .and_then(|e| e["value"].as_str())
            .map(str::to_owned)
    });
    assert!(problems.is_empty(), "{problems:?}");
    assert!(
        env.iter().any(|e| e["name"] == "ALERT_INGEST_SPOOL_DIR"),
        "ALERT_INGEST_SPOOL_DIR"
    );
    config
        .validate()
        .unwrap_or_else(|e| panic!("the ConfigMap with the container's env: {e}"));
    let claims = set["spec"]["volumeClaimTemplates"]
        .as_sequence()
        .expect("volumeClaimTemplates");
    assert_eq!(claims.len(), 1, "one claim per replica: the spool");
    let claim = &claims[0];
    let mount = container["volumeMounts"]
        .as_sequence()
        .unwrap()
        .iter()
        .find(|m| m["name"] == claim["metadata"]["name"])
        .expect("the claim is mounted");
    assert_ne!(mount["readOnly"].as_bool(), Some(true), "{mount:?}");
    let mount_path = Path::new(mount["mountPath"].as_str().unwrap());
    let dir = &config.spool.dir;
    assert!(
        dir.starts_with(mount_path) && dir != mount_path,
        "spool.dir {} must be a directory below the claim's mount {}",
        dir.display(),
        mount_path.display()
    );
    let spec = &claim["spec"];
    let modes: Vec<&str> = spec["accessModes"]
        .as_sequence()
        .unwrap()
        .iter()
        .filter_map(Yaml::as_str)
        .collect();
    assert_eq!(modes, ["ReadWriteOnce"]);
    let storage = spec["resources"]["requests"]["storage"]
        .as_str()
        .expect("a storage request");
    assert!(
        quantity_bytes(storage) > config.spool.max_bytes,
        "the claim's {storage} must exceed spool.max_bytes {}",
        config.spool.max_bytes
    );
    // The non-root user writes the volume through its group.
    let pod_security = &set["spec"]["template"]["spec"]["securityContext"];
    assert!(pod_security["fsGroup"].as_u64().is_some(), "fsGroup");
    assert_eq!(pod_security["fsGroup"], pod_security["runAsGroup"]);
    // Scaling down or deleting the StatefulSet keeps the claims (and the
    // requests they may hold not yet loaded).
    let retention = &set["spec"]["persistentVolumeClaimRetentionPolicy"];
    assert_eq!(retention["whenScaled"].as_str(), Some("Retain"));
    assert_eq!(retention["whenDeleted"].as_str(), Some("Retain"));
}

/// The StatefulSet's headless Service, the client Service and the
/// PodDisruptionBudget all select its pods.
fn assert_services_and_budget_select_the_pods(docs: &[Yaml], set: &Yaml) {
    let labels = &set["spec"]["template"]["metadata"]["labels"];
    let selects_the_pods = |selector: &Yaml| {
        let selector = selector.as_mapping().expect("a selector");
        !selector.is_empty() && selector.iter().all(|(k, v)| &labels[k] == v)
    };
    assert!(selects_the_pods(&set["spec"]["selector"]["matchLabels"]));
    let services: Vec<&Yaml> = docs
        .iter()
        .filter(|d| d["kind"].as_str() == Some("Service"))
        .collect();
    let headless = services
        .iter()
        .find(|s| s["metadata"]["name"] == set["spec"]["serviceName"])
        .expect("the StatefulSet's serviceName is one of the Services");
    assert_eq!(headless["spec"]["clusterIP"].as_str(), Some("None"));
    let client = services
        .iter()
        .find(|s| s["metadata"]["name"].as_str() == Some("alert-ingest"))
        .expect("the client Service alert-ingest");
    assert_ne!(client["spec"]["clusterIP"].as_str(), Some("None"));
    for service in [headless, client] {
        assert!(
            selects_the_pods(&service["spec"]["selector"]),
            "{service:?}"
        );
        assert_eq!(
            service["spec"]["ports"][0]["targetPort"].as_str(),
            Some("http")
        );
    }
    let budget = of_kind(docs, "PodDisruptionBudget");
    assert!(selects_the_pods(&budget["spec"]["selector"]["matchLabels"]));
}

/// A Kubernetes quantity of bytes: `2Gi`, `1500M`, `1073741824`.
fn quantity_bytes(quantity: &str) -> u64 {
    const UNITS: &[(&str, u64)] = &[
        ("Ki", 1 << 10),
        ("Mi", 1 << 20),
        ("Gi", 1 << 30),
        ("Ti", 1 << 40),
        ("Pi", 1 << 50),
        ("k", 1_000),
        ("M", 1_000_000),
        ("G", 1_000_000_000),
        ("T", 1_000_000_000_000),
        ("P", 1_000_000_000_000_000),
    ];
    let (number, unit) = UNITS
        .iter()
        .find_map(|&(suffix, unit)| quantity.strip_suffix(suffix).map(|n| (n, unit)))
        .unwrap_or((quantity, 1));
    let number: u64 = number
        .parse()
        .unwrap_or_else(|_| panic!("quantity {quantity:?}"));
    number * unit
}

// ---------------------------------------------------------------------------
// systemd

/// `(section, key, value)` for every `Key=Value` line.
fn systemd_unit(text: &str) -> Vec<(String, String, String)> {
    let mut section = String::new();
    let mut entries = Vec::new();
    for line in text.lines().map(str::trim) {
        if line.starts_with('#') || line.is_empty() {
            continue;
        }
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            section = name.to_owned();
        } else if let Some((key, value)) = line.split_once('=') {
            entries.push((section.clone(), key.trim().into(), value.trim().into()));
        }
    }
    entries
}

/// A systemd time span: bare seconds or with units (`40s`, `1min 30s`).
fn systemd_seconds(span: &str) -> Duration {
    match span.parse::<u64>() {
        Ok(seconds) => Duration::from_secs(seconds),
        Err(_) => humantime::parse_duration(span).unwrap(),
    }
}

// ---------------------------------------------------------------------------
// Files

fn deploy(relative: &str) -> PathBuf {
    Path::new(DEPLOY).join(relative)
}

fn deploy_files() -> Vec<PathBuf> {
    let mut files = Vec::new();
    let mut dirs = vec![PathBuf::from(DEPLOY)];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                dirs.push(path);
            } else {
                files.push(path);
            }
        }
    }
    files.sort();
    files
}

fn extension(path: &Path) -> &str {
    path.extension().and_then(|e| e.to_str()).unwrap_or("")
}

fn json_file(path: &Path) -> serde_json::Value {
    let text = std::fs::read_to_string(path).unwrap();
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn dashboard_text() -> String {
    std::fs::read_to_string(deploy(DASHBOARD)).unwrap()
}

/// Every document of a (multi-document) YAML file.
fn yaml_documents(path: &Path) -> Vec<Yaml> {
    let text = std::fs::read_to_string(path).unwrap();
    serde_yaml_ng::Deserializer::from_str(&text)
        .map(|doc| Yaml::deserialize(doc).unwrap_or_else(|e| panic!("{}: {e}", path.display())))
        .collect()
}

/// Panels at any depth (a collapsed row holds its own).
fn panels(dashboard: &serde_json::Value) -> Vec<&serde_json::Value> {
    let mut found = Vec::new();
    let mut todo: Vec<&serde_json::Value> =
        dashboard["panels"].as_array().unwrap().iter().collect();
    while let Some(panel) = todo.pop() {
        todo.extend(panel["panels"].as_array().into_iter().flatten());
        found.push(panel);
    }
    found
}

fn repo_config() -> Config {
    Config::from_yaml(&std::fs::read_to_string(REPO_CONFIG).unwrap()).unwrap()
}
