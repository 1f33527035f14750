//! Property tests of the parser, run in CI (`scripts/test`) and at length by
//! `scripts/chaos` (`PROPTEST_CASES`): whatever the bytes, `parse` returns
//! (a webhook or an error) and never panics; valid webhooks with arbitrary
//! Unicode label text come back exact. Failing inputs are kept by proptest
//! in `proptest-regressions/` (commit them: they are the corpus).

use proptest::prelude::*;

use super::*;
use crate::config::LimitsConfig;
use crate::model::Interner;

const FIXTURES: &[&[u8]] = &[
    include_bytes!("../../tests/fixtures/alertmanager-0.25/firing-two-alerts.json"),
    include_bytes!("../../tests/fixtures/alertmanager-0.25/mixed-firing-resolved.json"),
    include_bytes!("../../tests/fixtures/alertmanager-0.25/truncated-alerts.json"),
];

fn parse_any(mut body: Vec<u8>) -> Result<Webhook, ParseError> {
    let interner = Interner::new(64);
    let limits = LimitsConfig {
        max_json_depth: 16,
        ..LimitsConfig::default()
    };
    parse(&mut body, &mut Scratch::default(), &interner, &limits)
}

/// A fixture with some bytes overwritten, some cut out, or cut short.
fn mutated_fixture() -> impl Strategy<Value = Vec<u8>> {
    (
        prop::sample::select(FIXTURES),
        prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 0..8),
        any::<prop::sample::Index>(),
        any::<bool>(),
    )
        .prop_map(|(fixture, flips, cut, truncate)| {
            let mut body = fixture.to_vec();
            for (at, byte) in flips {
                let i = at.index(body.len());
                body[i] = byte;
            }
            if truncate {
                body.truncate(cut.index(body.len() + 1));
            }
            body
        })
}

/// JSON-ish bytes: structural characters, quotes, escapes and digits are
/// likelier than in uniform bytes, to get past the first byte.
fn jsonish() -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(
        prop_oneof![
            prop::sample::select(b"{}[]\",:\\ 0123456789eE.-+tfnulr".to_vec()),
            any::<u8>(),
        ],
        0..512,
    )
}

proptest! {
    #[test]
    fn arbitrary_bytes_never_panic(body in prop::collection::vec(any::<u8>(), 0..2048)) {
        let _ = parse_any(body);
    }

    #[test]
    fn jsonish_bytes_never_panic(body in jsonish()) {
        let _ = parse_any(body);
    }

    #[test]
    fn mutated_fixtures_never_panic(body in mutated_fixture()) {
        let _ = parse_any(body);
    }

    #[test]
    fn unicode_label_text_comes_back_exact(
        labels in prop::collection::btree_map("[^\u{0}]{1,12}", "[^\u{0}]{0,24}", 0..8),
    ) {
        let body = serde_json::json!({
            "receiver": "r", "status": "firing",
            "alerts": [{"labels": labels, "startsAt": "2026-01-01T00:00:00Z"}],
        })
        .to_string();
        let interner = Interner::new(64);
        let webhook = parse(&mut body.into_bytes(), &mut Scratch::default(), &interner, &LimitsConfig::default())
            .expect("a valid webhook parses");
        let got: Vec<(String, String)> = webhook.alerts[0]
            .labels
            .iter()
            .map(|p| (interner.resolve(&p.name).to_owned(), interner.resolve(&p.value).to_owned()))
            .collect();
        // Byte-wise name order, which is what a BTreeMap<String, _> has.
        let want: Vec<(String, String)> = labels.into_iter().collect();
        prop_assert_eq!(got, want);
    }
}
