//! `gplake-synth`: write synthetic releases to a folder, or serve them as a local mirror.
//!
//! ```text
//! gplake-synth write --months 2016-01,2021-01 [--practices 8] [--seed 1] --out DIR
//! gplake-synth write --from 2017-04 --to 2026-08 --practices 6500 --out DIR
//! gplake-synth serve --from 2017-04 --to 2026-08 [--practices 8]     (prints the series URL)
//! gplake-synth serve --months 2024-05 --practices 6500 --rate-mb-per-s 50  (one shared bandwidth)
//! ```

use gplake_testkit::{Mirror, Population, Ym, months, release, write_releases};

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let flag = |name: &str| {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1))
            .cloned()
    };
    let parse_ym = |s: &str| -> Ym {
        let (y, m) = s
            .split_once('-')
            .unwrap_or_else(|| usage(&format!("bad month {s}")));
        (
            y.parse().unwrap_or_else(|_| usage(s)),
            m.parse().unwrap_or_else(|_| usage(s)),
        )
    };
    let pop = Population::new(
        flag("--seed")
            .map(|s| s.parse().unwrap_or_else(|_| usage("bad --seed")))
            .unwrap_or(1),
        flag("--practices")
            .map(|s| s.parse().unwrap_or_else(|_| usage("bad --practices")))
            .unwrap_or(8),
    );
    let chosen: Vec<Ym> = match (flag("--months"), flag("--from"), flag("--to")) {
        (Some(list), _, _) => list.split(',').map(parse_ym).collect(),
        (None, Some(from), Some(to)) => months(parse_ym(&from), parse_ym(&to)).collect(),
        _ => usage("give --months or --from and --to"),
    };
    let releases: Vec<_> = chosen
        .into_iter()
        .filter_map(|m| release(&pop, m))
        .collect();
    match args.first().map(String::as_str) {
        Some("write") => {
            let out = flag("--out").unwrap_or_else(|| usage("write needs --out DIR"));
            write_releases(std::path::Path::new(&out), &releases).expect("write releases");
            eprintln!("wrote {} releases to {out}", releases.len());
        }
        Some("serve") => {
            let mirror = Mirror::start(releases);
            if let Some(rate) = flag("--rate-mb-per-s") {
                let rate: f64 = rate
                    .parse()
                    .unwrap_or_else(|_| usage("bad --rate-mb-per-s"));
                mirror.throttle((rate * 1e6) as u64);
            }
            println!("{}", mirror.series_url());
            loop {
                std::thread::park();
            }
        }
        _ => usage("first argument: write or serve"),
    }
}

fn usage(problem: &str) -> ! {
    eprintln!(
        "gplake-synth: {problem}\nusage: gplake-synth write|serve (--months YYYY-MM,… | --from YYYY-MM --to YYYY-MM) [--practices N] [--seed N] [--out DIR] [--rate-mb-per-s R]"
    );
    std::process::exit(2)
}
