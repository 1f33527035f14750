//! The Grafana alert-history dashboard (`deploy/grafana/alert-history.json`,
//! issue #15) on the PostgreSQL data source: it parses, and every SQL query
//! in it, with Grafana's macros and variables expanded as Grafana expands
//! them, runs against a database the service migrated and stored the
//! Alertmanager fixtures in, and returns rows; its filters narrow them (to
//! none for a label no alert has).

mod common;

use common::{post_fixtures, test_config, Service, TestDb};
use serde_json::Value;

const DASHBOARD: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/deploy/grafana/alert-history.json"
);

/// A window holding every fixture's alerts, as Grafana's macros write it:
/// untyped literals.
const FROM: &str = "'2000-01-01T00:00:00Z'";
const TO: &str = "'2100-01-01T00:00:00Z'";

/// Grafana's `sqlstring` format: quoted, quotes doubled.
fn sqlstring(value: &str) -> String {
    format!("'{}'", value.replace('\'', "''"))
}

/// Which alertnames the `alertname` variable selects.
#[derive(Clone, Copy, Debug)]
enum Alertname<'a> {
    /// "All": Grafana inserts the variable's custom `allValue` as it is,
    /// whatever the format asked.
    All,
    One(&'a str),
}

/// `sql` as Grafana's PostgreSQL data source sends it for the window above
/// and these variables: `$__timeFilter(col)`, `$__timeFrom()`,
/// `$__timeTo()`, `${alertname:sqlstring}` (`all_value` for All),
/// `${label:sqlstring}`.
fn expand(sql: &str, all_value: &str, alertname: Alertname, label: &str) -> String {
    let alertname = match alertname {
        Alertname::All => all_value.to_owned(),
        Alertname::One(name) => sqlstring(name),
    };
    let mut out = String::new();
    let mut rest = sql;
    while let Some(at) = rest.find("$__timeFilter(") {
        out.push_str(&rest[..at]);
        let args = &rest[at + "$__timeFilter(".len()..];
        let close = args.find(')').expect("$__timeFilter( closed");
        out.push_str(&format!("{} BETWEEN {FROM} AND {TO}", &args[..close]));
        rest = &args[close + 1..];
    }
    out.push_str(rest);
    out.replace("$__timeFrom()", FROM)
        .replace("$__timeTo()", TO)
        .replace("${alertname:sqlstring}", &alertname)
        .replace("${label:sqlstring}", &sqlstring(label))
}

fn queries(dashboard: &Value) -> Vec<(String, String)> {
    let mut found = Vec::new();
    for panel in dashboard["panels"].as_array().unwrap() {
        let title = panel["title"].as_str().unwrap().to_owned();
        assert_eq!(panel["datasource"]["uid"], "${datasource}", "{title}");
        for target in panel["targets"].as_array().unwrap() {
            assert_eq!(target["datasource"]["uid"], "${datasource}", "{title}");
            let sql = target["rawSql"].as_str().unwrap().to_owned();
            found.push((title.clone(), sql));
        }
    }
    found
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_query_of_the_history_dashboard_returns_rows_from_the_fixtures() {
    let text = std::fs::read_to_string(DASHBOARD).unwrap();
    let dashboard: Value = serde_json::from_str(&text).unwrap();
    let variables = dashboard["templating"]["list"].as_array().unwrap();
    let names: Vec<&str> = variables
        .iter()
        .map(|v| v["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["datasource", "alertname", "label"]);
    assert_eq!(variables[0]["query"], "grafana-postgresql-datasource");
    let panel_types: Vec<&str> = (dashboard["panels"].as_array().unwrap().iter())
        .map(|p| p["type"].as_str().unwrap())
        .collect();
    assert_eq!(
        panel_types,
        ["state-timeline", "table", "timeseries", "table"]
    );

    let db = TestDb::create().await;
    let service = Service::start_ready(test_config(&db.url)).await;
    post_fixtures(&service).await;
    service.settled().await;
    let client = db.client().await;

    let alertnames = client
        .query(variables[1]["query"].as_str().unwrap(), &[])
        .await
        .unwrap();
    assert!(!alertnames.is_empty(), "the alertname variable lists none");
    // An alertname with a resolved episode, and one label of that episode.
    let row = client
        .query_one(
            "SELECT alertname, (SELECT key || '=' || value FROM jsonb_each_text(labels - 'alertname')
                                ORDER BY key LIMIT 1)
             FROM alerts WHERE status = 'resolved' ORDER BY fingerprint LIMIT 1",
            &[],
        )
        .await
        .unwrap();
    let (resolved_name, its_label): (String, String) = (row.get(0), row.get(1));

    let all_value = variables[1]["allValue"].as_str().unwrap();
    let cases = [
        (Alertname::All, "", true),
        (Alertname::One(&resolved_name), "", true),
        (Alertname::All, its_label.as_str(), true),
        (Alertname::All, "no_such_label=it's absent", false),
        (Alertname::One("No'Such'Alert"), "", false),
    ];
    let all = queries(&dashboard);
    assert_eq!(all.len(), 4);
    for (title, sql) in &all {
        for (alertname, label, want_rows) in cases {
            let sql = expand(sql, all_value, alertname, label);
            assert!(
                !sql.contains('$'),
                "{title}: unexpanded macro or variable:\n{sql}"
            );
            let rows = client
                .query(&sql, &[])
                .await
                .unwrap_or_else(|e| panic!("{title}: {e}:\n{sql}"));
            assert_eq!(
                !rows.is_empty(),
                want_rows,
                "{title} with alertname={alertname:?}, label={label:?}: {} rows",
                rows.len()
            );
        }
    }
    service.shutdown().await;
}
