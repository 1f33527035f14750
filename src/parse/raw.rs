//! The webhook body as it is on the wire (version "4"), borrowed from the
//! request buffer that simd-json has unescaped in place. Unknown fields are
//! ignored (newer Alertmanagers add some); optional ones may be missing.

use std::fmt;

use serde::de::{MapAccess, Visitor};
use serde::{Deserialize, Deserializer};

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RawWebhook<'a> {
    #[serde(borrow, default)]
    pub receiver: Option<&'a str>,
    #[serde(borrow, default)]
    pub status: Option<&'a str>,
    #[serde(borrow)]
    pub alerts: Vec<RawAlert<'a>>,
    #[serde(borrow, default)]
    pub group_labels: Option<RawPairs<'a>>,
    #[serde(borrow, default)]
    pub common_labels: Option<RawPairs<'a>>,
    #[serde(borrow, default)]
    pub common_annotations: Option<RawPairs<'a>>,
    #[serde(borrow, default, rename = "externalURL")]
    pub external_url: Option<&'a str>,
    #[serde(borrow, default)]
    pub group_key: Option<&'a str>,
    #[serde(default)]
    pub truncated_alerts: Option<i64>,
    #[serde(borrow, default, rename = "notification_reason")]
    pub notification_reason: Option<&'a str>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RawAlert<'a> {
    #[serde(borrow, default)]
    pub status: Option<&'a str>,
    #[serde(borrow)]
    pub labels: RawPairs<'a>,
    #[serde(borrow, default)]
    pub annotations: Option<RawPairs<'a>>,
    #[serde(borrow, default)]
    pub starts_at: Option<&'a str>,
    #[serde(borrow, default)]
    pub ends_at: Option<&'a str>,
    #[serde(borrow, default, rename = "generatorURL")]
    pub generator_url: Option<&'a str>,
    #[serde(borrow, default)]
    pub fingerprint: Option<&'a str>,
}

/// A JSON object of string values (labels, annotations), in document order.
#[derive(Default)]
pub struct RawPairs<'a>(pub Vec<(&'a str, &'a str)>);

impl<'de: 'a, 'a> Deserialize<'de> for RawPairs<'a> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_map(PairsVisitor(std::marker::PhantomData))
    }
}

struct PairsVisitor<'a>(std::marker::PhantomData<&'a ()>);

impl<'de: 'a, 'a> Visitor<'de> for PairsVisitor<'a> {
    type Value = RawPairs<'a>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an object of string values")
    }

    fn visit_map<M: MapAccess<'de>>(self, mut map: M) -> Result<Self::Value, M::Error> {
        let mut pairs = Vec::with_capacity(map.size_hint().unwrap_or(0));
        while let Some(pair) = map.next_entry::<&'de str, &'de str>()? {
            pairs.push(pair);
        }
        Ok(RawPairs(pairs))
    }
}
