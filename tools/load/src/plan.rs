//! What to send: the workload's requests, by sequence number.

use std::sync::atomic::AtomicU64;

use bytes::Bytes;
use clap::ValueEnum;

use crate::Args;

/// Share of requests that are repeats in the `mixed` workload.
const MIXED_REPEAT_SHARE: u64 = 80;

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Workload {
    Unique,
    Repeat,
    Mixed,
}

/// One request to send: unique sequence number or repeat group.
#[derive(Clone, Copy)]
pub enum Item {
    Unique(u64),
    Repeat(u64),
}

pub struct Plan {
    pub args: Args,
    /// The `run` label of every alert sent.
    pub run: String,
    starts_at: String,
    repeat_bodies: Vec<Bytes>,
    /// The next request's sequence number.
    pub next: AtomicU64,
}

impl Plan {
    pub fn new(args: Args) -> anyhow::Result<Plan> {
        let run = args.run.clone().unwrap_or_else(|| {
            format!("load-{}", time::OffsetDateTime::now_utc().unix_timestamp())
        });
        let starts_at = time::OffsetDateTime::now_utc()
            .format(&time::format_description::well_known::Rfc3339)?;
        let repeat_bodies = (0..args.groups)
            .map(|g| webhook(&run, &starts_at, &format!("g{g}"), args.alerts))
            .collect();
        Ok(Plan {
            args,
            run,
            starts_at,
            repeat_bodies,
            next: AtomicU64::new(0),
        })
    }

    pub fn item(&self, n: u64) -> Item {
        let repeat = match self.args.workload {
            Workload::Unique => false,
            Workload::Repeat => true,
            Workload::Mixed => n % 100 < MIXED_REPEAT_SHARE,
        };
        if repeat {
            Item::Repeat(n % self.args.groups)
        } else {
            Item::Unique(n)
        }
    }

    pub fn body(&self, item: Item) -> Bytes {
        match item {
            Item::Unique(n) => webhook(
                &self.run,
                &self.starts_at,
                &format!("u{n}"),
                self.args.alerts,
            ),
            Item::Repeat(g) => self.repeat_bodies[g as usize].clone(),
        }
    }
}

fn webhook(run: &str, starts_at: &str, key: &str, alerts: usize) -> Bytes {
    let items: Vec<String> = (0..alerts)
        .map(|i| {
            format!(
                r#"{{"status":"firing","labels":{{"alertname":"LoadTest","run":"{run}","cluster":"prod-eu-1","job":"node","namespace":"team-{ns}","pod":"{key}-{i}","severity":"warning"}},"annotations":{{"summary":"load test alert","description":"alert {i} of {key}"}},"startsAt":"{starts_at}","endsAt":"0001-01-01T00:00:00Z","generatorURL":"http://prometheus:9090/graph?g0.expr=up"}}"#,
                ns = i % 7
            )
        })
        .collect();
    Bytes::from(format!(
        r#"{{"receiver":"load","status":"firing","alerts":[{}],"groupLabels":{{"alertname":"LoadTest"}},"commonLabels":{{"alertname":"LoadTest","run":"{run}"}},"commonAnnotations":{{}},"externalURL":"http://alertmanager:9093","version":"4","groupKey":"{{}}:{{alertname=\"LoadTest\", key=\"{key}\"}}","truncatedAlerts":0}}"#,
        items.join(",")
    ))
}
