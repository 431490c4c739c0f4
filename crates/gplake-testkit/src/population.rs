//! A synthetic population of practices and the organisations above them, month by month.
//!
//! Deterministic from a seed: the same seed, scale and month always give the same codes,
//! names and counts, so tests can compare what gplake built with [`Population::count`], the
//! generator's own truth. It moves like the real thing: a practice renames, one closes and
//! another opens, CCGs merge into 5-character codes (April 2020), CCGs become sub-ICB
//! locations (July 2022), a practice moves to another PCN (April 2024) and a PCN renames (May
//! 2024), new 5-character ICBs and region ONS codes arrive (April 2026).

use chrono::Datelike;

/// A month as (year, month), the generator's calendar key.
pub type Ym = (i32, u32);

/// Sex of a count.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Sex {
    /// Males.
    Male,
    /// Females.
    Female,
}

impl Sex {
    /// `MALE` / `FEMALE`.
    pub fn label(self) -> &'static str {
        match self {
            Sex::Male => "MALE",
            Sex::Female => "FEMALE",
        }
    }
}

/// Both sexes, in the order the publisher writes them (female first).
pub const SEXES: [Sex; 2] = [Sex::Female, Sex::Male];
/// Ages 0…94 and 95 standing for 95+.
pub const AGES: std::ops::RangeInclusive<u8> = 0..=95;

/// The seven NHS England regions: code, name, ONS code before and from April 2026.
const REGIONS: [(&str, &str, &str, &str); 7] = [
    ("Y56", "London", "E40000003", "E40000003"),
    ("Y58", "South West", "E40000006", "E40000006"),
    ("Y59", "South East", "E40000005", "E40000005"),
    ("Y60", "Midlands", "E40000008", "E40000011"),
    ("Y61", "East of England", "E40000007", "E40000013"),
    ("Y62", "North West", "E40000010", "E40000014"),
    ("Y63", "North East and Yorkshire", "E40000009", "E40000012"),
];

/// One practice as published in one month.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Practice {
    /// Index in the population (stable across months).
    pub index: usize,
    /// `A81001`-style code.
    pub code: String,
    /// Upper-case name; some contain commas (they must be quoted).
    pub name: String,
    /// Postcode with a single space.
    pub postcode: String,
    /// PCN code (`U` when unallocated).
    pub pcn_code: String,
    /// PCN name.
    pub pcn_name: String,
    /// CCG / sub-ICB location code.
    pub sub_icb_code: String,
    /// Its ONS code (E38…).
    pub sub_icb_ons: String,
    /// Its name.
    pub sub_icb_name: String,
    /// STP / ICB code.
    pub icb_code: String,
    /// Its ONS code (E54…).
    pub icb_ons: String,
    /// Its name.
    pub icb_name: String,
    /// Region code (Y56…Y63).
    pub region_code: String,
    /// Region ONS code (E40…).
    pub region_ons: String,
    /// Region name.
    pub region_name: String,
    /// GP system supplier (2026 maps).
    pub supplier: String,
}

/// A synthetic population at some scale.
#[derive(Debug, Clone)]
pub struct Population {
    seed: u64,
    practices: usize,
}

impl Population {
    /// `practices` practices (at least 6, so every kind of change has a practice to happen to).
    pub fn new(seed: u64, practices: usize) -> Population {
        Population {
            seed,
            practices: practices.max(6),
        }
    }

    /// How many practice slots (some are open only part of the time).
    pub fn size(&self) -> usize {
        self.practices
    }

    /// The practices open in `month`, sorted by code.
    pub fn practices(&self, month: Ym) -> Vec<Practice> {
        let mut list: Vec<Practice> = (0..self.practices)
            .filter(|&i| self.is_open(i, month))
            .map(|i| self.practice(i, month))
            .collect();
        list.sort_by(|a, b| a.code.cmp(&b.code));
        list
    }

    /// The slot that closes at the end of 2022 and the slot that opens in January 2023.
    fn is_open(&self, index: usize, month: Ym) -> bool {
        let closing = 3;
        let opening = self.practices - 1;
        match index {
            i if i == closing => month < (2023, 1),
            i if i == opening => month >= (2023, 1),
            _ => true,
        }
    }

    /// The tiny practice (a handful of patients, like the real `Y02157`).
    pub fn tiny_index(&self) -> usize {
        self.practices - 2
    }

    fn practice(&self, i: usize, month: Ym) -> Practice {
        let n_sub = (self.practices / 60).max(3);
        let n_icb = (n_sub / 3).max(2);
        let sub = i % n_sub;
        let icb = sub % n_icb;
        let region = REGIONS[icb % REGIONS.len()];
        let letter = (b'A' + (i / 100_000 % 26) as u8 + (icb % 7) as u8) as char;
        let renamed = i == 2 && month >= (2021, 6);
        let pcn = i / 6;
        Practice {
            index: i,
            code: if i == self.tiny_index() {
                format!("Y{:05}", 2157 + i)
            } else {
                format!("{letter}{:05}", 81001 + i)
            },
            name: practice_name(i, renamed),
            postcode: format!(
                "{}{} {}{}",
                ["TS", "NE", "LS", "M", "B", "SW"][i % 6],
                1 + i % 30,
                i % 10,
                ["HU", "AB", "XY", "QT"][i % 4]
            ),
            pcn_code: if i == 1 {
                "U".into()
            } else {
                format!(
                    "U{:05}",
                    10000 + pcn + usize::from(i == 4 && month >= (2024, 4)) * 500
                )
            },
            pcn_name: if i == 1 {
                "Unallocated".into()
            } else if pcn == 1 && month >= (2024, 5) {
                "BIRTLEY, NORTH 1 AND WEST PCN".into()
            } else if pcn % 5 == 1 {
                format!("BIRTLEY, NORTH {pcn} PCN")
            } else {
                format!("NORTH {pcn} PCN")
            },
            sub_icb_code: sub_icb_code(sub, month),
            sub_icb_ons: format!("E38{:06}", 100 + sub),
            sub_icb_name: sub_icb_name(sub, month),
            icb_code: icb_code(icb, month),
            icb_ons: format!("E54{:06}", 40 + icb),
            icb_name: if icb % 4 == 1 {
                format!("Humber, Coast and Vale {icb}")
            } else {
                format!("Cumbria and North East {icb}")
            },
            region_code: region.0.into(),
            region_ons: if month >= (2026, 4) {
                region.3
            } else {
                region.2
            }
            .into(),
            region_name: region.1.into(),
            supplier: ["EMIS", "TPP", "Medicus"][i % 3].into(),
        }
    }

    /// The registered patients of practice `index`, of `sex`, aged `age` (95 = 95+), in
    /// `month`: the generator's truth. Zero happens (small practices, the oldest ages).
    pub fn count(&self, index: usize, month: Ym, sex: Sex, age: u8) -> u64 {
        if !self.is_open(index, month) {
            return 0;
        }
        if index == self.tiny_index() {
            return u64::from(age == 40 && sex == Sex::Female)
                + u64::from(age == 70 && month.1.is_multiple_of(2));
        }
        let size = 1500 + mix(self.seed, index as u64, 0, 0) % 12_000;
        let months = (month.0 - 2013) as f64 * 12.0 + f64::from(month.1);
        let growth = 1.0 + 0.0008 * months;
        let noise = 0.85
            + (mix(
                self.seed,
                index as u64,
                ym_key(month),
                u64::from(age) * 2 + sex as u64,
            ) % 300) as f64
                / 1000.0;
        let value = size as f64 * age_weight(age, sex) * growth * noise;
        if age >= 90
            && mix(self.seed, index as u64, 7, u64::from(age) + sex as u64).is_multiple_of(3)
        {
            return 0;
        }
        value.round() as u64
    }
}

/// Share of a practice's list at one age and sex (sums to about 1 over all ages and sexes).
fn age_weight(age: u8, sex: Sex) -> f64 {
    let a = f64::from(age);
    let base = if a < 60.0 {
        1.0
    } else {
        (1.0 - (a - 60.0) / 40.0).max(0.02)
    };
    let female = if sex == Sex::Female && a > 70.0 {
        1.2
    } else {
        1.0
    };
    let tail = if age == 95 { 0.3 } else { 1.0 };
    base * female * tail / 150.0
}

fn practice_name(i: usize, renamed: bool) -> String {
    let base = [
        "DENSHAM SURGERY",
        "QUEENS PARK MEDICAL CENTRE",
        "ACKLAM MEDICAL CENTRE",
        "SPRINGWOOD SURGERY",
        "TENNANT STREET MEDICAL PRACTICE",
        "BANKHOUSE SURGERY",
        "VILLAGE MEDICAL CENTRE",
    ][i % 7];
    match (i % 9, renamed) {
        (_, true) => format!("THE NEW {base} {i}"),
        (5, _) => format!("FULWELL MEDICAL CENTRE {i},"),
        (7, _) => format!("OXFORD TCE, RAWLING RD {i}"),
        _ => format!("{base} {i}"),
    }
}

/// CCG codes are 3 characters; the first CCG merges into a 5-character code in April 2020.
fn sub_icb_code(sub: usize, month: Ym) -> String {
    if sub == 0 && month >= (2020, 4) {
        "M1J4Y".into()
    } else {
        format!(
            "{:02}{}",
            sub % 100,
            (b'A' + (sub / 100 % 26) as u8) as char
        )
    }
}

fn sub_icb_name(sub: usize, month: Ym) -> String {
    let code = sub_icb_code(sub, month);
    if month >= (2022, 7) {
        format!("NHS North East and North Cumbria ICB - {code}")
    } else {
        format!("NHS Tees Valley {sub} CCG")
    }
}

/// STP codes `Q..`; from April 2026 the first ICB takes a new 5-character code.
fn icb_code(icb: usize, month: Ym) -> String {
    if icb == 0 && month >= (2026, 4) {
        "D7T5G".into()
    } else {
        format!(
            "Q{}{}",
            (b'A' + (icb / 26 % 26) as u8) as char,
            (b'A' + (icb % 26) as u8) as char
        )
    }
}

fn ym_key(month: Ym) -> u64 {
    month.0 as u64 * 12 + u64::from(month.1)
}

/// splitmix64 over the inputs: cheap, deterministic, well spread.
fn mix(seed: u64, a: u64, b: u64, c: u64) -> u64 {
    let mut z = seed
        .wrapping_add(a.wrapping_mul(0x9E37_79B9_7F4A_7C15))
        .wrapping_add(b.wrapping_mul(0xBF58_476D_1CE4_E5B9))
        .wrapping_add(c.wrapping_mul(0x94D0_49BB_1331_11EB));
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// A `(year, month)` from a date.
pub fn ym_of(date: chrono::NaiveDate) -> Ym {
    (date.year(), date.month())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deterministic_and_changing() {
        let p = Population::new(7, 10);
        assert_eq!(p.practices((2021, 1)), p.practices((2021, 1)));
        assert_eq!(
            p.count(0, (2021, 1), Sex::Male, 30),
            p.count(0, (2021, 1), Sex::Male, 30)
        );
        assert!(p.practices((2022, 12)).iter().any(|x| x.index == 3));
        assert!(!p.practices((2023, 1)).iter().any(|x| x.index == 3));
        assert!(p.practices((2023, 1)).iter().any(|x| x.index == 9));
        let total: u64 = AGES
            .flat_map(|a| SEXES.map(|s| p.count(0, (2021, 1), s, a)))
            .sum();
        assert!(total > 500, "{total}");
    }
}
