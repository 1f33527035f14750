//! The built-in history page: `GET /` and its assets under `/assets/`,
//! compiled into the binary, so it needs no build step, no Node and no
//! network beyond this service (an air-gapped network gets the same page).
//! Plain HTML, CSS and JavaScript: the page reads the history API
//! ([`crate::history`]) with the browser's own credentials, draws the
//! timeline on a canvas and the sparklines as inline SVG.
//!
//! Every response forbids, by Content-Security-Policy, any request to
//! another origin: the page cannot send anything to a third party even if
//! a stored label or annotation tried to make it.

use hyper::header::{
    HeaderName, HeaderValue, CACHE_CONTROL, CONTENT_SECURITY_POLICY, CONTENT_TYPE, ETAG,
    REFERRER_POLICY, X_CONTENT_TYPE_OPTIONS,
};

/// The page's own URL.
pub const INDEX: &str = "/";
/// Where its assets are served.
pub const ASSETS: &str = "/assets/";

/// Only this origin, for everything; no inline script or style; no framing.
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
                   img-src 'self' data:; connect-src 'self'; base-uri 'none'; \
                   form-action 'self'; frame-ancestors 'none'";

/// One file of the page.
pub struct Asset {
    path: &'static str,
    pub content_type: &'static str,
    pub body: &'static [u8],
    /// A strong validator, `"<FNV-1a of the body>"`, computed at compile
    /// time: a browser revalidates (`Cache-Control: no-cache`) and gets a
    /// 304 until the binary changes.
    etag: [u8; 18],
}

const fn file(path: &'static str, content_type: &'static str, body: &'static [u8]) -> Asset {
    Asset {
        path,
        content_type,
        body,
        etag: etag_of(body),
    }
}

static FILES: [Asset; 4] = [
    file(
        INDEX,
        "text/html; charset=utf-8",
        include_bytes!("assets/index.html"),
    ),
    file(
        "/assets/app.js",
        "text/javascript; charset=utf-8",
        include_bytes!("assets/app.js"),
    ),
    file(
        "/assets/style.css",
        "text/css; charset=utf-8",
        include_bytes!("assets/style.css"),
    ),
    file(
        "/assets/favicon.svg",
        "image/svg+xml",
        include_bytes!("assets/favicon.svg"),
    ),
];

/// The asset at `path`, if the page has one there.
pub fn asset(path: &str) -> Option<&'static Asset> {
    FILES.iter().find(|a| a.path == path)
}

/// Whether `path` belongs to the page (an unknown one is then a 404).
pub fn is_page_path(path: &str) -> bool {
    path == INDEX || path.starts_with(ASSETS)
}

impl Asset {
    /// Whether `If-None-Match` already names this version. The weak
    /// comparison RFC 9110 §13.1.2 asks of it: a proxy that compresses may
    /// hand back the tag as `W/"…"`.
    pub fn matches(&self, if_none_match: Option<&HeaderValue>) -> bool {
        if_none_match.is_some_and(|v| {
            v.as_bytes().split(|&b| b == b',').any(|tag| {
                let tag = tag.trim_ascii();
                tag == b"*" || tag.strip_prefix(b"W/").unwrap_or(tag) == self.etag
            })
        })
    }

    pub fn etag(&self) -> HeaderValue {
        HeaderValue::from_bytes(&self.etag).expect("hex digits in quotes")
    }

    /// The headers of a 200 or 304 for this asset.
    pub fn headers(&self) -> [(HeaderName, HeaderValue); 6] {
        [
            (CONTENT_TYPE, HeaderValue::from_static(self.content_type)),
            (CACHE_CONTROL, HeaderValue::from_static("no-cache")),
            (ETAG, self.etag()),
            (CONTENT_SECURITY_POLICY, HeaderValue::from_static(CSP)),
            (X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff")),
            // A click on a generatorURL or runbook link does not tell that
            // site where the page is.
            (REFERRER_POLICY, HeaderValue::from_static("no-referrer")),
        ]
    }
}

/// `"<16 hex digits of the body's FNV-1a 64>"`, at compile time.
const fn etag_of(body: &[u8]) -> [u8; 18] {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    let mut i = 0;
    while i < body.len() {
        hash ^= body[i] as u64;
        hash = hash.wrapping_mul(0x0100_0000_01b3);
        i += 1;
    }
    let mut tag = [b'"'; 18];
    let mut digit = 0;
    while digit < 16 {
        tag[1 + digit] = HEX[((hash >> (60 - 4 * digit)) & 0xf) as usize];
        digit += 1;
    }
    tag
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_file_is_served_with_its_type_and_a_validator() {
        for f in &FILES {
            let a = asset(f.path).unwrap();
            assert!(!a.body.is_empty(), "{}", f.path);
            assert!(is_page_path(f.path));
            assert!(a.matches(Some(&a.etag())));
            let weak = format!("\"x\", W/{}", a.etag().to_str().unwrap());
            assert!(a.matches(Some(&HeaderValue::from_str(&weak).unwrap())));
            assert!(!a.matches(Some(&HeaderValue::from_static("\"0\""))));
            assert!(!a.matches(None));
        }
        assert!(asset("/assets/missing.js").is_none());
        // The compile-time FNV-1a is the fnv crate's (whose Hasher is not
        // const): on FNV's own vectors and on every file.
        assert_eq!(&etag_of(b""), b"\"cbf29ce484222325\"");
        assert_eq!(&etag_of(b"a"), b"\"af63dc4c8601ec8c\"");
        for f in &FILES {
            let mut crate_hash = fnv::FnvHasher::default();
            std::hash::Hasher::write(&mut crate_hash, f.body);
            let expected = format!("\"{:016x}\"", std::hash::Hasher::finish(&crate_hash));
            assert_eq!(f.etag().to_str().unwrap(), expected, "{}", f.path);
        }
        assert!(!is_page_path("/api/v1/alerts"));
    }

    /// Text stays readable in both themes: each text colour on the
    /// background it is drawn on is at least 4.5:1 (WCAG 2 AA), in the
    /// light block (`:root`) and the dark one (`[data-theme="dark"]`,
    /// which the system-preference block repeats).
    #[test]
    fn every_theme_keeps_text_contrast_at_4_5_to_1() {
        let css = std::str::from_utf8(asset("/assets/style.css").unwrap().body).unwrap();
        let block = |selector: &str| {
            let start = css.find(selector).expect(selector);
            let body = &css[start..];
            body[body.find('{').unwrap() + 1..body.find('}').unwrap()].to_owned()
        };
        let light = block(":root {");
        let dark = block(":root[data-theme=\"dark\"] {");
        let preferred = block(":root:not([data-theme=\"light\"]) {");
        let words = |s: &str| s.split_whitespace().collect::<Vec<_>>().join(" ");
        assert_eq!(words(&dark), words(&preferred), "the two dark blocks agree");
        let pairs = [
            ("--fg", "--bg"),
            ("--muted", "--bg"),
            ("--muted", "--panel"),
            ("--fg", "--panel"),
            ("--accent", "--bg"),
            ("--accent", "--panel"),
            ("--bg", "--accent"), // the primary button
            ("--error-fg", "--error-bg"),
        ];
        for (name, theme) in [("light", &light), ("dark", &dark)] {
            for (text, background) in pairs {
                let ratio = contrast(colour(theme, text), colour(theme, background));
                assert!(
                    ratio >= 4.5,
                    "{name}: {text} on {background} is {ratio:.2}:1"
                );
            }
        }
        for badge in ["#6b7280", "#c62828", "#2e7d32"] {
            assert!(css.contains(badge));
            assert!(
                contrast(hex("#ffffff"), hex(badge)) >= 4.5,
                "white on {badge}"
            );
        }
    }

    fn colour(block: &str, name: &str) -> [f64; 3] {
        let at = block.find(&format!("{name}:")).expect(name) + name.len() + 1;
        hex(block[at..].trim_start().split(';').next().unwrap())
    }

    fn hex(value: &str) -> [f64; 3] {
        let v = value.trim().trim_start_matches('#');
        let channel = |i: usize| u8::from_str_radix(&v[i..i + 2], 16).unwrap() as f64 / 255.0;
        [channel(0), channel(2), channel(4)]
    }

    /// WCAG 2's contrast ratio of two sRGB colours.
    fn contrast(a: [f64; 3], b: [f64; 3]) -> f64 {
        let luminance = |c: [f64; 3]| {
            let linear = |x: f64| {
                if x <= 0.03928 {
                    x / 12.92
                } else {
                    ((x + 0.055) / 1.055).powf(2.4)
                }
            };
            0.2126 * linear(c[0]) + 0.7152 * linear(c[1]) + 0.0722 * linear(c[2])
        };
        let (la, lb) = (luminance(a), luminance(b));
        (la.max(lb) + 0.05) / (la.min(lb) + 0.05)
    }

    /// The page names its assets by the paths served here, and nothing
    /// outside this origin (CSP would refuse it anyway).
    #[test]
    fn the_page_refers_only_to_its_own_assets() {
        let html = std::str::from_utf8(asset(INDEX).unwrap().body).unwrap();
        for reference in html
            .split(['"', '\''])
            .filter(|s| s.starts_with("/assets/"))
        {
            assert!(asset(reference).is_some(), "{reference} is not served");
        }
        for file in &FILES {
            // An SVG namespace is a name, never fetched.
            let text = String::from_utf8_lossy(file.body).replace("http://www.w3.org/2000/svg", "");
            for scheme in ["http://", "https://", "//cdn", "@import"] {
                assert!(!text.contains(scheme), "{} names another origin", file.path);
            }
        }
    }
}
