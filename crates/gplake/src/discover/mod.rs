//! Discovery: which monthly releases exist upstream, and which files each one offers.
//!
//! Month pages come from three places, merged: the links on the series page, the
//! `{month}-{yyyy}` slug of every month in range, and an override table for the two
//! special-topic months. A month page that is 404 is "no release"; one without data links is
//! an upcoming release and yields nothing. On a month page every `<a href>` whose file name
//! looks like data is a release file, whatever the markup; links to hosts off the allow-list
//! are reported and never followed; links to the publisher's earlier hosts are followed over
//! HTTPS. A month page that fails (a server error after retries) is reported for that month
//! and the others proceed. Discovery reads only; it never writes.

mod links;
mod local;

use std::collections::BTreeMap;

use chrono::NaiveDate;
use futures::StreamExt;
use serde::Serialize;
use url::Url;

use crate::formats::{FileKind, classify, is_data_file};
use crate::http::{Http, HttpError};
use crate::month::{MONTH_NAMES, Month};

pub use local::{LocalSourceError, discover_dir};

/// The live series page.
pub const SERIES_URL: &str = "https://digital.nhs.uk/data-and-information/publications/statistical/patients-registered-at-a-gp-practice";

/// Months whose page does not follow the `{month}-{yyyy}` slug (nhs-formats.md §4).
const SLUG_OVERRIDES: [(i32, u32, &str); 2] = [
    (
        2017,
        10,
        "patients-registered-at-a-gp-practice-october-2017-special-topic-practice-list-size-comparison-october-2013-to-october-2017",
    ),
    (
        2018,
        4,
        "patients-registered-at-a-gp-practice-april-2018-special-topic---registered-patients-compared-to-the-projected-resident-population-in-england",
    ),
];

/// A discovery failure.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DiscoverError {
    /// The series page could not be reached at all.
    #[error(
        "cannot reach the source {url} ({reason}); to load files downloaded by hand, run with --source DIR"
    )]
    SourceUnreachable {
        /// The series page.
        url: String,
        /// The cause.
        reason: String,
    },
    /// The series page has no links: not the page expected.
    #[error("the series page {url} has no links at all: is it the right page? Check --source")]
    EmptySeriesPage {
        /// The series page.
        url: String,
    },
    /// A page failed for another reason.
    #[error("month {month}: {source}")]
    MonthPage {
        /// The month.
        month: Month,
        /// The HTTP failure.
        source: HttpError,
    },
    /// The series page failed for another reason.
    #[error("series page: {0}")]
    SeriesPage(HttpError),
    /// A hand-downloaded folder could not be read.
    #[error(transparent)]
    Local(#[from] LocalSourceError),
}

/// Everything discovery found.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Discovery {
    /// Releases with at least one data file, by month.
    pub releases: Vec<Release>,
    /// Months whose page does not exist (404): no release.
    pub absent: Vec<Month>,
    /// Months whose page exists but offers no data files yet.
    pub upcoming: Vec<Month>,
    /// Months whose page could not be read (a server error, a timeout): reported, and the
    /// other months proceed; the next run tries them again.
    pub failed: Vec<FailedPage>,
    /// Files of a hand-downloaded folder that are not release data (spreadsheets, PDFs,
    /// notes), listed and left alone.
    pub skipped_files: Vec<SkippedLink>,
}

/// A month page that could not be read.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FailedPage {
    /// The month.
    pub month: Month,
    /// Why, naming the URL.
    pub reason: String,
}

/// One month's release: its page and its files.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Release {
    /// The snapshot month.
    pub month: Month,
    /// The month page (or the folder, for hand-downloaded files).
    pub page_url: String,
    /// The page's "Published" date, when it shows one.
    pub published: Option<NaiveDate>,
    /// The data files, in page order.
    pub files: Vec<ReleaseFile>,
    /// Data links not followed, with the reason.
    pub skipped: Vec<SkippedLink>,
}

/// One file of a release.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ReleaseFile {
    /// The name in bronze: the original name, made unique within the month when two links
    /// share a name (the April 2024 dual-source month).
    pub name: String,
    /// The name as published.
    pub original_name: String,
    /// Where to fetch it (`https://…` or `file://…`).
    pub url: Url,
    /// Family, era, container, as the name tells.
    pub kind: FileKind,
    /// The link's text on the page (it may say which data source a set comes from).
    pub link_text: String,
}

/// A data link that was not followed.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SkippedLink {
    /// The link.
    pub url: String,
    /// Why.
    pub reason: String,
}

/// Where releases come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// The series page (live, or a mirror of it).
    Web(Url),
    /// A folder of files downloaded by hand.
    Dir(std::path::PathBuf),
}

impl Source {
    /// `http(s)://…` is a series page; anything else is a folder.
    pub fn parse(text: &str) -> Source {
        match Url::parse(text) {
            Ok(url) if matches!(url.scheme(), "http" | "https") => Source::Web(url),
            _ => Source::Dir(text.into()),
        }
    }

    /// The live NHS Digital series page.
    pub fn live() -> Source {
        Source::Web(Url::parse(SERIES_URL).expect("valid constant"))
    }

    /// The host to trust alongside the allow-list.
    pub fn host(&self) -> Option<&str> {
        match self {
            Source::Web(url) => url.host_str(),
            Source::Dir(_) => None,
        }
    }
}

/// Discovers releases of months `from..=to` at `source`, reading up to `jobs` pages at once.
pub async fn discover(
    http: &Http,
    source: &Source,
    from: Month,
    to: Month,
    jobs: usize,
) -> Result<Discovery, DiscoverError> {
    match source {
        Source::Web(series) => discover_web(http, series, from, to, jobs).await,
        Source::Dir(dir) => Ok(discover_dir(dir, from, to)?),
    }
}

async fn discover_web(
    http: &Http,
    series: &Url,
    from: Month,
    to: Month,
    jobs: usize,
) -> Result<Discovery, DiscoverError> {
    let pages = month_pages(http, series, from, to).await?;
    let mut results: Vec<_> = futures::stream::iter(pages)
        .map(|(month, url)| async move { (month, read_month_page(http, month, url).await) })
        .buffer_unordered(jobs.max(1))
        .collect()
        .await;
    results.sort_by_key(|(month, _)| *month);
    let mut discovery = Discovery::default();
    for (month, result) in results {
        match result {
            Ok(release) if release.files.is_empty() => discovery.upcoming.push(month),
            Ok(release) => discovery.releases.push(release),
            Err(DiscoverError::MonthPage {
                source: HttpError::NotFound { .. },
                ..
            }) => discovery.absent.push(month),
            Err(e) => {
                tracing::warn!(%month, "month page not read: {e}");
                discovery.failed.push(FailedPage {
                    month,
                    reason: e.to_string(),
                });
            }
        }
    }
    Ok(discovery)
}

/// The month page URL of every month in range: linked ones first, then slugs and overrides.
async fn month_pages(
    http: &Http,
    series: &Url,
    from: Month,
    to: Month,
) -> Result<BTreeMap<Month, Url>, DiscoverError> {
    let html = http.get_text(series).await.map_err(|e| match e {
        HttpError::Unreachable { url, reason, .. } => {
            DiscoverError::SourceUnreachable { url, reason }
        }
        other => DiscoverError::SeriesPage(other),
    })?;
    let found = links::extract(&html, series);
    if found.is_empty() {
        return Err(DiscoverError::EmptySeriesPage {
            url: series.to_string(),
        });
    }
    let mut pages: BTreeMap<Month, Url> = Month::range(from, to)
        .map(|m| (m, series_child(series, &slug_of(m))))
        .collect();
    for link in found {
        if let Some(month) = month_of_page(series, &link.url).filter(|m| (from..=to).contains(m)) {
            pages.insert(month, link.url);
        }
    }
    Ok(pages)
}

fn slug_of(month: Month) -> String {
    SLUG_OVERRIDES
        .iter()
        .find(|(y, m, _)| *y == month.year() && *m == month.month())
        .map(|(_, _, slug)| slug.to_string())
        .unwrap_or_else(|| month.slug())
}

fn series_child(series: &Url, slug: &str) -> Url {
    let mut url = series.clone();
    url.set_query(None);
    url.set_fragment(None);
    url.path_segments_mut()
        .expect("http URLs have paths")
        .pop_if_empty()
        .push(slug);
    url
}

/// The month a link to a month page stands for, if it is one (`…/may-2024`, or an override).
fn month_of_page(series: &Url, link: &Url) -> Option<Month> {
    if link.host_str() != series.host_str() {
        return None;
    }
    let parent = series.path().trim_end_matches('/');
    let slug = link.path().strip_prefix(parent)?.strip_prefix('/')?;
    let slug = slug.trim_end_matches('/');
    if let Some((y, m, _)) = SLUG_OVERRIDES.iter().find(|(_, _, s)| *s == slug) {
        return Month::new(*y, *m);
    }
    let (name, year) = slug.split_once('-')?;
    let index = MONTH_NAMES.iter().position(|n| *n == name)?;
    Month::new(year.parse().ok()?, index as u32 + 1).filter(|_| year.len() == 4)
}

async fn read_month_page(http: &Http, month: Month, url: Url) -> Result<Release, DiscoverError> {
    let html = http
        .get_text(&url)
        .await
        .map_err(|source| DiscoverError::MonthPage { month, source })?;
    let published = links::published_date(&html);
    let mut release = Release {
        month,
        page_url: url.to_string(),
        published,
        files: Vec::new(),
        skipped: Vec::new(),
    };
    for link in links::extract(&html, &url) {
        add_link(http, &mut release, link);
    }
    Ok(release)
}

fn add_link(http: &Http, release: &mut Release, mut link: links::Link) {
    let Some(original_name) = links::file_name(&link.url) else {
        return;
    };
    crate::http::upgrade_publisher_link(&mut link.url);
    if !is_data_file(&original_name) || release.files.iter().any(|f| f.url == link.url) {
        return;
    }
    if !http.allows(&link.url) {
        tracing::warn!(month = %release.month, url = %link.url, "link to a host off the allow-list: not followed");
        release.skipped.push(SkippedLink {
            url: link.url.to_string(),
            reason: format!(
                "host not on the allow-list ({})",
                http.allowed_hosts().join(", ")
            ),
        });
        return;
    }
    let name = unique_name(&release.files, &original_name, &link.url);
    release.files.push(ReleaseFile {
        name,
        kind: classify(&original_name),
        original_name,
        url: link.url,
        link_text: link.text,
    });
}

/// The original name, or, when the month already has a file of that name from another URL,
/// the name with the URL's folder segments (`name~5C704155.csv`) so both are kept.
fn unique_name(files: &[ReleaseFile], original: &str, url: &Url) -> String {
    if !files.iter().any(|f| f.name == original) {
        return original.to_string();
    }
    let folders: String = url
        .path_segments()
        .map(|s| {
            let v: Vec<&str> = s.collect();
            v[..v.len().saturating_sub(1)].concat()
        })
        .unwrap_or_default()
        .chars()
        .filter(char::is_ascii_alphanumeric)
        .collect();
    let tag = folders
        .chars()
        .rev()
        .take(12)
        .collect::<String>()
        .chars()
        .rev()
        .collect::<String>();
    let mut candidate = match original.split_once('.') {
        Some((stem, ext)) => format!("{stem}~{tag}.{ext}"),
        None => format!("{original}~{tag}"),
    };
    while files.iter().any(|f| f.name == candidate) {
        candidate = format!("{}_", candidate);
    }
    candidate
}

#[cfg(test)]
mod tests {
    use super::*;

    fn url(s: &str) -> Url {
        Url::parse(s).unwrap()
    }

    #[test]
    fn month_pages_by_slug_and_override() {
        let series = url("https://digital.nhs.uk/x/patients-registered-at-a-gp-practice");
        let m = |s: &str| month_of_page(&series, &url(s)).map(|m| m.to_string());
        assert_eq!(
            m("https://digital.nhs.uk/x/patients-registered-at-a-gp-practice/may-2024").as_deref(),
            Some("2024-05")
        );
        assert_eq!(
            m("https://digital.nhs.uk/x/patients-registered-at-a-gp-practice/may-2024/").as_deref(),
            Some("2024-05")
        );
        assert_eq!(
            m(&format!(
                "https://digital.nhs.uk/x/patients-registered-at-a-gp-practice/{}",
                SLUG_OVERRIDES[0].2
            ))
            .as_deref(),
            Some("2017-10")
        );
        assert_eq!(
            m(
                "https://digital.nhs.uk/x/patients-registered-at-a-gp-practice/data-quality-statement"
            ),
            None
        );
        assert_eq!(
            m("https://elsewhere.org/x/patients-registered-at-a-gp-practice/may-2024"),
            None
        );
        assert!(
            series_child(&series, &slug_of(Month::new(2018, 4).unwrap()))
                .path()
                .ends_with("projected-resident-population-in-england")
        );
        assert!(
            series_child(&series, "may-2024")
                .as_str()
                .ends_with("/patients-registered-at-a-gp-practice/may-2024")
        );
    }

    #[test]
    fn links_to_the_publishers_earlier_hosts_are_followed_over_https() {
        let http = Http::new(crate::http::HttpConfig::default(), None);
        let mut release = Release {
            month: Month::new(2015, 1).unwrap(),
            page_url: "https://digital.nhs.uk/x/january-2015".into(),
            published: None,
            files: Vec::new(),
            skipped: Vec::new(),
        };
        for href in [
            "http://www.hscic.gov.uk/catalogue/PUB16345/gp-reg-patients-01-2015.csv",
            "http://content.digital.nhs.uk/media/1/gp-reg-patients-prac-sing-year-age.csv",
            "http://elsewhere.example/gp-reg-patients-lsoa-alt-tall.csv",
        ] {
            let link = links::Link {
                url: url(href),
                text: String::new(),
            };
            add_link(&http, &mut release, link);
        }
        let followed: Vec<&str> = release.files.iter().map(|f| f.url.as_str()).collect();
        assert_eq!(
            followed,
            [
                "https://www.hscic.gov.uk/catalogue/PUB16345/gp-reg-patients-01-2015.csv",
                "https://content.digital.nhs.uk/media/1/gp-reg-patients-prac-sing-year-age.csv"
            ]
        );
        assert_eq!(release.skipped.len(), 1, "a foreign host is not followed");
    }

    #[test]
    fn same_name_twice_is_kept_apart() {
        let kind = classify("gp-reg-pat-prac-all.csv");
        let first = ReleaseFile {
            name: "gp-reg-pat-prac-all.csv".into(),
            original_name: "gp-reg-pat-prac-all.csv".into(),
            url: url("https://files.digital.nhs.uk/5C/704155/gp-reg-pat-prac-all.csv"),
            kind,
            link_text: String::new(),
        };
        let other = url("https://files.digital.nhs.uk/A1/B2C3D4/gp-reg-pat-prac-all.csv");
        assert_eq!(
            unique_name(&[first], "gp-reg-pat-prac-all.csv", &other),
            "gp-reg-pat-prac-all~A1B2C3D4.csv"
        );
    }
}
