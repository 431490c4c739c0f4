//! Progress bars for downloads and builds, shown only on a terminal.

use std::collections::HashMap;
use std::io::IsTerminal;
use std::sync::{Arc, Mutex};

use gplake::http::{Progress, ProgressEvent};
use indicatif::{MultiProgress, ProgressBar, ProgressStyle};

/// A progress callback drawing one bar per download, or `None` off a terminal.
pub(crate) fn bars(enabled: bool) -> Option<Progress> {
    if !enabled || !std::io::stderr().is_terminal() {
        return None;
    }
    let multi = MultiProgress::new();
    let bars: Mutex<HashMap<String, ProgressBar>> = Mutex::default();
    let style =
        ProgressStyle::with_template("{msg:50!} {bytes:>10}/{total_bytes:10} {bar:30} {eta}")
            .expect("valid template");
    Some(Arc::new(move |event| {
        let mut bars = bars.lock().expect("progress lock");
        match event {
            ProgressEvent::Started { key, total } => {
                let bar = multi.add(ProgressBar::new(total.unwrap_or(0)));
                bar.set_style(style.clone());
                bar.set_message(key.clone());
                if let Some(old) = bars.insert(key, bar) {
                    old.finish_and_clear();
                }
            }
            ProgressEvent::Advanced { key, bytes } => {
                if let Some(bar) = bars.get(&key) {
                    bar.inc(bytes);
                }
            }
            ProgressEvent::Finished { key } => {
                if let Some(bar) = bars.remove(&key) {
                    bar.finish_and_clear();
                }
            }
        }
    }))
}

/// A progress callback drawing one bar for the months of a build, or `None` off a terminal.
pub(crate) fn build_bar(enabled: bool) -> Option<gplake::BuildProgress> {
    use gplake::BuildEvent;
    if !enabled || !std::io::stderr().is_terminal() {
        return None;
    }
    let bar = ProgressBar::hidden();
    bar.set_style(
        ProgressStyle::with_template("building {pos}/{len} months {bar:30} {elapsed} {msg}")
            .expect("valid template"),
    );
    let totals = Mutex::new((0u64, 0u64));
    Some(Arc::new(move |event| match event {
        BuildEvent::Planned { months } => {
            bar.set_length(months as u64);
            bar.set_draw_target(indicatif::ProgressDrawTarget::stderr());
        }
        BuildEvent::MonthDone {
            month, rows, bytes, ..
        } => {
            let mut totals = totals.lock().expect("progress lock");
            totals.0 += rows;
            totals.1 += bytes;
            let seconds = bar.elapsed().as_secs_f64().max(0.001);
            bar.set_message(format!(
                "{month} done · {} rows · {:.1} MB/s",
                gplake::build::state::thousands(totals.0),
                totals.1 as f64 / 1e6 / seconds
            ));
            bar.inc(1);
        }
        BuildEvent::Deriving => {
            bar.set_message("dims and gold".to_string());
            bar.tick();
        }
        BuildEvent::Finished => bar.finish_and_clear(),
    }))
}
