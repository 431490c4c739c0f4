//! Markup-agnostic link and date extraction from an HTML page.
//!
//! Any `<a href>` counts, whatever surrounds it; relative links are resolved against the
//! page; `mailto:`, `javascript:` and fragment-only links are dropped.

use std::sync::LazyLock;

use chrono::NaiveDate;
use regex::Regex;
use scraper::{Html, Selector};
use url::Url;

/// A link found on a page.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Link {
    pub(crate) url: Url,
    pub(crate) text: String,
}

static ANCHORS: LazyLock<Selector> =
    LazyLock::new(|| Selector::parse("a[href]").expect("valid selector"));
static PUBLISHED: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?i)(?:publication date|date published|published)\s*:?\s*(?:on\s+)?(\d{1,2}\s+[A-Za-z]{3,9}\s+\d{4}|\d{4}-\d{2}-\d{2})")
        .expect("valid regex")
});

/// Every link on the page, resolved against `base`, in page order.
pub(crate) fn extract(html: &str, base: &Url) -> Vec<Link> {
    let doc = Html::parse_document(html);
    doc.select(&ANCHORS)
        .filter_map(|a| {
            let href = a.value().attr("href")?.trim();
            if href.is_empty() || href.starts_with('#') {
                return None;
            }
            let mut url = base.join(href).ok()?;
            url.set_fragment(None);
            let text = a.text().collect::<Vec<_>>().join(" ");
            let text = text.split_whitespace().collect::<Vec<_>>().join(" ");
            matches!(url.scheme(), "http" | "https" | "file").then_some(Link { url, text })
        })
        .collect()
}

/// The decoded last path segment of a URL, if it has one.
pub(crate) fn file_name(url: &Url) -> Option<String> {
    let last = url.path_segments()?.next_back()?;
    let decoded = percent_decode(last);
    (!decoded.is_empty()).then_some(decoded)
}

/// The page's "Published" / "Publication date" date, when the page shows one.
pub(crate) fn published_date(html: &str) -> Option<NaiveDate> {
    let doc = Html::parse_document(html);
    let text = doc.root_element().text().collect::<Vec<_>>().join(" ");
    let text = text.split_whitespace().collect::<Vec<_>>().join(" ");
    let raw = PUBLISHED.captures(&text)?.get(1)?.as_str().to_string();
    NaiveDate::parse_from_str(&raw, "%Y-%m-%d")
        .or_else(|_| NaiveDate::parse_from_str(&raw, "%d %B %Y"))
        .or_else(|_| NaiveDate::parse_from_str(&raw, "%d %b %Y"))
        .ok()
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok());
        match (bytes[i], hex.and_then(|h| u8::from_str_radix(h, 16).ok())) {
            (b'%', Some(b)) => {
                out.push(b);
                i += 3;
            }
            (b, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn any_anchor_counts_and_resolves() {
        let base = Url::parse("https://digital.nhs.uk/pubs/may-2024").unwrap();
        let html = r##"<html><body>
            <div class="x"><a class="nhsd-a-box-link" href="https://files.digital.nhs.uk/F1/3E4D66/gp-reg-pat-prac-all.csv"><span>Patients</span> (CSV)</a></div>
            <p><a href="/pubs/april-2024">April</a> <a href="#top">top</a> <a href="mailto:x@y">mail</a>
            <a href="Pre-Release%20Access%20List.pdf">PRA</a></p></body></html>"##;
        let links = extract(html, &base);
        assert_eq!(links.len(), 3);
        assert_eq!(links[0].text, "Patients (CSV)");
        assert_eq!(
            links[1].url.as_str(),
            "https://digital.nhs.uk/pubs/april-2024"
        );
        assert_eq!(
            file_name(&links[2].url).as_deref(),
            Some("Pre-Release Access List.pdf")
        );
    }

    #[test]
    fn published_date_in_several_wordings() {
        let d = |s: &str| published_date(s).map(|d| d.to_string());
        assert_eq!(
            d("<p>Publication date:</p> <p>9 May 2024</p>").as_deref(),
            Some("2024-05-09")
        );
        assert_eq!(
            d("<span>Published</span> 13 Jun 2024").as_deref(),
            Some("2024-06-13")
        );
        assert_eq!(
            d("<dt>Date published</dt><dd>2026-01-08</dd>").as_deref(),
            Some("2026-01-08")
        );
        assert_eq!(d("<p>No date here</p>"), None);
    }
}
