//! `gplake unlock --month M`: removes a month's lease left by a run that cannot finish.

use gplake::Lake;

use crate::Output;
use crate::args::UnlockArgs;

/// Removes the lease and says whose it was.
pub(crate) async fn run(lake: &Lake, args: &UnlockArgs, out: &Output) -> anyhow::Result<u8> {
    let month = args.month;
    let held = gplake::fetch::unlock(lake, month)
        .await
        .map_err(|e| gplake::Error::from(gplake::fetch::FetchError::from(e)))?;
    let message = match &held {
        None => format!("month {month} was not locked; nothing to do"),
        Some(by) if lake.is_local() => format!(
            "month {month} is held by a live process ({by}); a local lock ends with its process: stop that process instead"
        ),
        Some(by) => {
            tracing::warn!(%month, "lease removed by hand; if its holder still runs, its next write fails");
            format!("month {month}: removed the lease held by {by}")
        }
    };
    if out.json {
        let json =
            serde_json::json!({"month": month.to_string(), "held_by": held, "message": message});
        out.print_json(&json)?;
    } else if !out.quiet {
        println!("{message}");
    }
    Ok(if held.is_some() && lake.is_local() {
        5
    } else {
        0
    })
}
