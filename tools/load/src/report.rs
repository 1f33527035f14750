//! The human summary on stderr, then `key=value` lines on stdout.

use std::time::Duration;

use crate::plan::Plan;
use crate::send::Tally;
use crate::verify::Verified;

pub fn report(plan: &Plan, tally: &Tally, elapsed: Duration, verified: Option<&Verified>) {
    let sent: u64 = tally.statuses.iter().sum::<u64>() + tally.transport_errors;
    let ok = tally.statuses[2];
    let secs = elapsed.as_secs_f64();
    let q = |p: f64| tally.latency.value_at_quantile(p) as f64 / 1000.0;
    let acked_alerts = ok * plan.args.alerts as u64;
    eprintln!(
        "{sent} requests in {secs:.1}s: {:.0} req/s, {:.0} alerts/s acknowledged; 2xx {ok}, 4xx {}, 5xx {}, transport errors {}",
        sent as f64 / secs,
        acked_alerts as f64 / secs,
        tally.statuses[4],
        tally.statuses[5],
        tally.transport_errors
    );
    eprintln!(
        "latency ms: p50 {:.2}  p90 {:.2}  p99 {:.2}  p99.9 {:.2}  max {:.2}",
        q(0.5),
        q(0.9),
        q(0.99),
        q(0.999),
        tally.latency.max() as f64 / 1000.0
    );
    if tally.retries + tally.gave_up > 0 {
        eprintln!(
            "retries {}, requests never acknowledged {}",
            tally.retries, tally.gave_up
        );
    }
    if let Some(v) = verified {
        eprintln!(
            "verified in PostgreSQL: {} acknowledged alerts missing, {} stored more than once ({} of the run stored; checked {:.1} s after the load ended)",
            v.lost, v.duplicates, v.stored, v.stored_within.as_secs_f64()
        );
    }
    println!("run={}", plan.run);
    println!("requests={sent}");
    println!("seconds={secs:.3}");
    println!("req_per_s={:.0}", sent as f64 / secs);
    println!("alerts_per_s={:.0}", acked_alerts as f64 / secs);
    println!("ok={ok}");
    println!("status_4xx={}", tally.statuses[4]);
    println!("status_5xx={}", tally.statuses[5]);
    println!("status_429={}", tally.status_429);
    println!("transport_errors={}", tally.transport_errors);
    println!("retries={}", tally.retries);
    println!("gave_up={}", tally.gave_up);
    println!("acked_alerts={acked_alerts}");
    for (name, p) in [("p50", 0.5), ("p90", 0.9), ("p99", 0.99), ("p999", 0.999)] {
        println!("{name}_ms={:.2}", q(p));
    }
    if let Some(v) = verified {
        println!("lost={}", v.lost);
        println!("duplicates={}", v.duplicates);
        println!("stored={}", v.stored);
        println!("stored_within_ms={}", v.stored_within.as_millis());
    }
}
