//! Bytes → model. Parses the pooled request buffer in place with simd-json
//! and interns label strings; knows nothing of HTTP.

mod raw;
mod timestamp;

use std::fmt::Display;

use time::OffsetDateTime;

use crate::config::LimitsConfig;
use crate::model::{
    json_object, Alert, Fingerprint, Interner, Notification, Pair, Status, Sym, Webhook,
};
use raw::{RawAlert, RawPairs, RawWebhook};

/// Why a body is not a webhook payload we can store. Always the sender's
/// fault, so never worth a retry.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ParseError {
    #[error("malformed JSON: {0}")]
    Json(String),
    /// The detail names the field: `alerts[3].startsAt: invalid RFC 3339 timestamp`.
    #[error("{0}")]
    Payload(String),
}

/// Reusable scratch space for simd-json (kept in the request buffer pool).
pub type Scratch = simd_json::Buffers;

/// Parses a webhook body. `body` is rewritten in place (simd-json unescapes
/// strings inside it); nothing returned borrows from it.
pub fn parse(
    body: &mut [u8],
    scratch: &mut Scratch,
    interner: &Interner,
    limits: &LimitsConfig,
) -> Result<Webhook, ParseError> {
    parse_at(body, scratch, interner, limits, OffsetDateTime::now_utc())
}

/// `parse` of a body received at `received_at`: an alert without a
/// `status` is resolved if its `endsAt` had passed by then. A spooled body
/// loaded later is parsed as it was when it arrived.
pub fn parse_at(
    body: &mut [u8],
    scratch: &mut Scratch,
    interner: &Interner,
    limits: &LimitsConfig,
    received_at: OffsetDateTime,
) -> Result<Webhook, ParseError> {
    let mut de = simd_json::Deserializer::from_slice_with_buffers(body, scratch)
        .map_err(|e| ParseError::Json(e.to_string()))?;
    check_shape(de.as_value(), limits)?;
    let raw: RawWebhook = serde_path_to_error::deserialize(&mut de).map_err(|e| {
        let path = e.path().to_string();
        ParseError::Payload(format!(
            "{}: {}",
            if path == "." { "body" } else { &path },
            describe(e.inner())
        ))
    })?;
    convert(raw, interner, limits, received_at)
}

/// Limits checked on simd-json's tape, before serde builds anything: a
/// body of 100,000 alerts is refused without allocating them, and one
/// nested 100,000 deep never reaches serde, which recurses into the values
/// it skips (unknown fields) and would overflow the thread's stack.
fn check_shape(
    root: simd_json::tape::Value<'_, '_>,
    limits: &LimitsConfig,
) -> Result<(), ParseError> {
    let too_deep = || {
        ParseError::Payload(format!(
            "body: JSON nested deeper than limits.max_json_depth ({})",
            limits.max_json_depth
        ))
    };
    // Depth-first without recursion; only containers are pushed.
    let container = |v: &simd_json::tape::Value<'_, '_>| v.is_array() || v.is_object();
    let mut pending = vec![(root, 1)];
    while let Some((value, depth)) = pending.pop() {
        if depth > limits.max_json_depth {
            return Err(too_deep());
        }
        if let Some(array) = value.as_array() {
            pending.extend(array.iter().filter(container).map(|v| (v, depth + 1)));
        } else if let Some(object) = value.as_object() {
            pending.extend(object.values().filter(container).map(|v| (v, depth + 1)));
        }
    }
    let alerts = root
        .get("alerts")
        .and_then(|a| a.as_array())
        .map_or(0, |a| a.len());
    if alerts > limits.max_alerts {
        return Err(ParseError::Payload(format!(
            "alerts: {alerts} alerts, more than limits.max_alerts ({})",
            limits.max_alerts
        )));
    }
    Ok(())
}

/// A readable reason: serde's own message ("missing field `labels`") or
/// simd-json's type mismatch, without simd-json's wrapping.
fn describe(e: &simd_json::Error) -> String {
    use simd_json::ErrorType as T;
    let expected = match e.error() {
        T::Serde(message) => return message.clone(),
        T::ExpectedArray => "an array",
        T::ExpectedMap => "an object",
        T::ExpectedString => "a string",
        T::ExpectedSigned | T::ExpectedUnsigned | T::ExpectedInteger => "an integer",
        T::ExpectedBoolean => "a boolean",
        other => return format!("{other:?}"),
    };
    format!("invalid type: expected {expected}")
}

fn convert(
    raw: RawWebhook,
    interner: &Interner,
    limits: &LimitsConfig,
    now: OffsetDateTime,
) -> Result<Webhook, ParseError> {
    let alerts = raw
        .alerts
        .into_iter()
        .enumerate()
        .map(|(i, a)| {
            convert_alert(a, interner, limits, now).map_err(|e| e.at(format_args!("alerts[{i}]")))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let labels = PairLimits::labels(limits);
    let annotations = PairLimits::annotations(limits);
    let notification = Notification {
        receiver: text(raw.receiver, "receiver")?,
        status: match raw.status {
            Some(s) => Status::parse(s).ok_or_else(|| bad_status("status", s))?,
            None if alerts.iter().any(|a| a.status == Status::Firing) => Status::Firing,
            None => Status::Resolved,
        },
        group_key: text(raw.group_key, "groupKey")?,
        group_labels: json_text(&raw.group_labels, "groupLabels", &labels)?,
        common_labels: json_text(&raw.common_labels, "commonLabels", &labels)?,
        common_annotations: json_text(&raw.common_annotations, "commonAnnotations", &annotations)?,
        external_url: text(raw.external_url, "externalURL")?,
        truncated_alerts: raw.truncated_alerts.unwrap_or(0),
        notification_reason: raw
            .notification_reason
            .map(|r| text(Some(r), "notification_reason"))
            .transpose()?,
    };
    Ok(Webhook {
        notification,
        alerts,
    })
}

fn convert_alert(
    raw: RawAlert,
    interner: &Interner,
    limits: &LimitsConfig,
    now: OffsetDateTime,
) -> Result<Alert, FieldError> {
    let labels =
        sorted_pairs(raw.labels, &PairLimits::labels(limits)).map_err(|e| e.at("labels"))?;
    check_alertname(&labels, limits)?;
    let annotations = match raw.annotations {
        Some(a) => {
            sorted_pairs(a, &PairLimits::annotations(limits)).map_err(|e| e.at("annotations"))?
        }
        None => Vec::new(),
    };
    let starts_at = match raw.starts_at {
        Some(s) => {
            timestamp(s, "startsAt")?.ok_or_else(|| FieldError::new("startsAt", "must be set"))?
        }
        None => return Err(FieldError::new("startsAt", "missing")),
    };
    let ends_at = raw
        .ends_at
        .map(|s| timestamp(s, "endsAt"))
        .transpose()?
        .flatten();
    let status = match raw.status {
        Some(s) => Status::parse(s).ok_or_else(|| FieldError::new("status", status_detail(s)))?,
        // Alertmanager always sends it; without it, infer as Alertmanager does.
        None if ends_at.is_some_and(|e| e <= now) => Status::Resolved,
        None => Status::Firing,
    };
    let fingerprint = raw
        .fingerprint
        .and_then(Fingerprint::parse_hex)
        .unwrap_or_else(|| Fingerprint::of_sorted(labels.iter().copied()));
    let generator_url = raw.generator_url.unwrap_or("");
    check_storable(generator_url).map_err(|e| FieldError::new("generatorURL", e))?;
    check_len(
        generator_url,
        limits.max_annotation_value_bytes,
        "limits.max_annotation_value_bytes",
    )
    .map_err(|e| FieldError::new("generatorURL", e))?;
    Ok(Alert {
        fingerprint,
        status,
        labels: intern_all(&labels, interner),
        // Annotation values are prose that rarely repeats: owned, not interned.
        annotations: annotations
            .iter()
            .map(|(name, value)| Pair {
                name: interner.intern(name),
                value: Sym::Owned((*value).into()),
            })
            .collect(),
        starts_at,
        ends_at,
        generator_url: generator_url.into(),
    })
}

/// The limits on one set of labels or annotations.
struct PairLimits {
    max_pairs: usize,
    max_name_bytes: usize,
    max_value_bytes: usize,
    /// The config key of `max_value_bytes`, for the error.
    value_key: &'static str,
}

impl PairLimits {
    fn labels(limits: &LimitsConfig) -> PairLimits {
        PairLimits {
            max_pairs: limits.max_labels,
            max_name_bytes: limits.max_name_bytes,
            max_value_bytes: limits.max_label_value_bytes,
            value_key: "limits.max_label_value_bytes",
        }
    }

    fn annotations(limits: &LimitsConfig) -> PairLimits {
        PairLimits {
            max_value_bytes: limits.max_annotation_value_bytes,
            value_key: "limits.max_annotation_value_bytes",
            ..PairLimits::labels(limits)
        }
    }

    /// Checks the count, then each pair: within limits and storable. The
    /// error names the pair, never repeats an oversized name.
    fn check(&self, pairs: &[(&str, &str)]) -> Result<(), FieldError> {
        if pairs.len() > self.max_pairs {
            return Err(FieldError::new(
                "",
                format_args!(
                    "{} entries, more than limits.max_labels ({})",
                    pairs.len(),
                    self.max_pairs
                ),
            ));
        }
        for &(name, value) in pairs {
            if name.len() > self.max_name_bytes {
                return Err(FieldError::new(
                    "",
                    format_args!(
                        "a name of {} bytes, more than limits.max_name_bytes ({})",
                        name.len(),
                        self.max_name_bytes
                    ),
                ));
            }
            check_storable(name)
                .and(check_storable(value))
                .map_err(|e| FieldError::new(name, e))?;
            check_len(value, self.max_value_bytes, self.value_key)
                .map_err(|e| FieldError::new(name, e))?;
        }
        Ok(())
    }
}

/// The `alertname` value is indexed (btree): one longer than a btree entry
/// may hold would be refused by PostgreSQL after the request was spooled.
fn check_alertname(labels: &[(&str, &str)], limits: &LimitsConfig) -> Result<(), FieldError> {
    let Some((_, value)) = labels.iter().find(|(name, _)| *name == "alertname") else {
        return Ok(());
    };
    check_len(
        value,
        limits.max_alertname_bytes,
        "limits.max_alertname_bytes",
    )
    .map_err(|e| FieldError::new("labels.alertname", e))
}

fn check_len(s: &str, max: usize, key: &str) -> Result<(), String> {
    if s.len() > max {
        Err(format!("{} bytes, more than {key} ({max})", s.len()))
    } else {
        Ok(())
    }
}

/// Sorts by name byte-wise (Alertmanager's fingerprint order), keeps the
/// last of duplicate names (as Go's JSON decoder into a map does), and
/// checks limits and that PostgreSQL can store every string.
fn sorted_pairs<'a>(
    raw: RawPairs<'a>,
    limits: &PairLimits,
) -> Result<Vec<(&'a str, &'a str)>, FieldError> {
    let mut pairs = raw.0;
    limits.check(&pairs)?;
    // Stable: of equal names, the later stays later; `dedup_by` sees
    // (later, earlier) and keeps the earlier slot, so move the value into it.
    pairs.sort_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
    pairs.dedup_by(|later, earlier| {
        let same = later.0 == earlier.0;
        if same {
            earlier.1 = later.1;
        }
        same
    });
    Ok(pairs)
}

fn intern_all(pairs: &[(&str, &str)], interner: &Interner) -> Vec<Pair> {
    pairs
        .iter()
        .map(|(name, value)| Pair {
            name: interner.intern(name),
            value: interner.intern(value),
        })
        .collect()
}

/// PostgreSQL stores neither U+0000 in `text` nor `\u0000` in `jsonb`. We
/// reject such an alert's request with a 400 rather than alter what the
/// sender said; every other request in the same batch is unaffected.
fn check_storable(s: &str) -> Result<(), &'static str> {
    if s.contains('\0') {
        Err("contains U+0000, which PostgreSQL cannot store")
    } else {
        Ok(())
    }
}

fn timestamp(s: &str, field: &str) -> Result<Option<OffsetDateTime>, FieldError> {
    timestamp::parse(s).map_err(|e| match e {
        timestamp::Invalid::Syntax => FieldError::new(field, "invalid RFC 3339 timestamp"),
        timestamp::Invalid::OutOfRange => FieldError::new(field, "later than the year 9999 in UTC"),
    })
}

fn text(s: Option<&str>, field: &str) -> Result<Box<str>, ParseError> {
    let s = s.unwrap_or("");
    check_storable(s).map_err(|e| ParseError::Payload(format!("{field}: {e}")))?;
    Ok(s.into())
}

fn json_text(
    pairs: &Option<RawPairs>,
    field: &str,
    limits: &PairLimits,
) -> Result<Box<str>, ParseError> {
    let pairs = pairs.as_ref().map_or(&[][..], |p| &p.0[..]);
    limits.check(pairs).map_err(|e| e.at(field))?;
    Ok(json_object(|| pairs.iter().copied()).into())
}

fn status_detail(s: &str) -> String {
    format!("must be \"firing\" or \"resolved\", not {s:?}")
}

fn bad_status(field: &str, s: &str) -> ParseError {
    ParseError::Payload(format!("{field}: {}", status_detail(s)))
}

/// A problem with one field, whose path grows as it is passed up.
#[derive(Debug)]
struct FieldError {
    path: String,
    detail: String,
}

impl FieldError {
    fn new(field: &str, detail: impl Display) -> FieldError {
        FieldError {
            path: field.to_owned(),
            detail: detail.to_string(),
        }
    }

    fn at(self, parent: impl Display) -> FieldError {
        let path = if self.path.is_empty() {
            parent.to_string()
        } else {
            format!("{parent}.{}", self.path)
        };
        FieldError {
            path,
            detail: self.detail,
        }
    }
}

impl From<FieldError> for ParseError {
    fn from(e: FieldError) -> ParseError {
        ParseError::Payload(format!("{}: {}", e.path, e.detail))
    }
}

#[cfg(test)]
mod fuzz;
#[cfg(test)]
mod tests;
