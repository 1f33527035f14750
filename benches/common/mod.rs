//! Bodies for the benchmarks: the real fixtures, and synthetic webhooks of
//! any size shaped like them (a pod-level alert with 8 labels, 2 annotations).
#![allow(dead_code)] // each bench uses its own subset

pub const FIXTURES: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/fixtures/alertmanager-0.25"
);

pub fn fixtures() -> Vec<(String, Vec<u8>)> {
    let mut files: Vec<(String, Vec<u8>)> = std::fs::read_dir(FIXTURES)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .map(|p| {
            let name = p.file_stem().unwrap().to_string_lossy().replace('-', "_");
            (name, std::fs::read(&p).unwrap())
        })
        .collect();
    files.sort();
    files
}

/// A webhook of `alerts` firing alerts; `seed` makes every label set unique
/// (a new pod name per alert), so equal seeds give equal bodies.
pub fn webhook(alerts: usize, seed: u64) -> Vec<u8> {
    let items: Vec<String> = (0..alerts)
        .map(|i| {
            format!(
                r#"{{"status":"firing","labels":{{"alertname":"PodCrashLooping","cluster":"prod-eu-1","container":"app","job":"kube-state-metrics","namespace":"team-{ns:02}","pod":"worker-{seed}-{i}","service":"checkout","severity":"warning"}},"annotations":{{"description":"Pod team-{ns:02}/worker-{seed}-{i} (app) is restarting 3 times / 10 minutes.","summary":"Pod is crash looping"}},"startsAt":"2026-11-23T19:21:58.212632181Z","endsAt":"0001-01-01T00:00:00Z","generatorURL":"http://prometheus-k8s.monitoring.svc:9090/graph?g0.expr=increase%28kube_pod_container_status_restarts_total%5B10m%5D%29+%3E+0\u0026g0.tab=1"}}"#,
                ns = i % 7
            )
        })
        .collect();
    format!(
        r#"{{"receiver":"bench","status":"firing","alerts":[{}],"groupLabels":{{"alertname":"PodCrashLooping"}},"commonLabels":{{"alertname":"PodCrashLooping","cluster":"prod-eu-1"}},"commonAnnotations":{{"summary":"Pod is crash looping"}},"externalURL":"http://alertmanager:9093","version":"4","groupKey":"{{}}:{{alertname=\"PodCrashLooping\"}}","truncatedAlerts":0}}"#,
        items.join(",")
    )
    .into_bytes()
}
