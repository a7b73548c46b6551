//! The DDEX DSR flat file (BasicAudioProfile 1.2/1.3, and the UGC profile's usage
//! records): HEAD, summary records (SYnn), blocks of a release (RE01), resources (AS01/AS02,
//! the ISRC) and usage lines (SU01 downloads, SU02 streams, SU03 UGC), FOOT.
//!
//! Read in two passes over the file, so memory stays bounded whatever its size:
//! [`scan`] checks the file (FOOT counts, summary usages against their lines, every usage
//! line's summary record) and prepares the revenue allocation; only a file that passed is
//! then read again by [`DsrScan::emit`], which yields one royalty line per usage line.
//!
//! Liberal in what it reads: record types with version suffixes (`SU02.02`), columns named
//! by the file's own `#RECORDTYPE` comment lines when present (built-in BasicAudioProfile
//! 1.2 columns otherwise), empty cells, a line that is not UTF-8 read as ISO-8859-1.
//! Exact in what it yields: amounts and counts are read as DDEX writes them (`xs:decimal`,
//! `xs:integer`: a point, no grouping), or refused; a royalty-bearing usage line without its
//! own amount gets its share of the summary record's NetRevenue pro rata by usages, with
//! the largest-remainder rule at the ledger's 13 decimal places, so those lines sum to it
//! exactly. A line with `IsRoyaltyBearing` false takes no share: it is booked at zero, its
//! usages kept (and still counted against the summary's declared Usages, which counts all
//! usages). A summary record with revenue and no royalty-bearing line stops the file.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::io::BufRead;

use anyhow::Context;
use chrono::{DateTime, Utc};
use rust_decimal::Decimal;

use super::FileItem;
use super::amount::{parse_ddex_amount, parse_ddex_count};
use super::identity::{self, DsrLineParts, SeenIds};
use super::text::{Encoding, parse_period};
use crate::domain::DecodedLine;

/// Decimal places of the ledger (amounts are allocated in units of 10^-13).
const SCALE: u32 = 13;

/// Columns of each record type when the file does not name them (BasicAudioProfile 1.2;
/// SU03 as the UGC profile writes it). The record type itself is column 0 and not listed.
const BUILTIN_COLUMNS: &[(&str, &[&str])] = &[
    (
        "HEAD",
        &[
            "MessageVersion",
            "Profile",
            "ProfileVersion",
            "MessageId",
            "MessageCreatedDateTime",
            "FileNumber",
            "NumberOfFiles",
            "UsageStartDate",
            "UsageEndDate",
            "SenderPartyId",
            "SenderName",
            "ServiceDescription",
            "RecipientPartyId",
            "RecipientName",
            "RepresentedRepertoire",
        ],
    ),
    (
        "FOOT",
        &[
            "NumberOfLinesInFile",
            "NumberOfLinesInReport",
            "NumberOfSummaryRecords",
            "NumberOfBlocksInFile",
            "NumberOfBlocksInReport",
        ],
    ),
    (
        "SY01",
        &[
            "SummaryRecordId",
            "DistributionChannel",
            "DistributionChannelDPID",
            "CommercialModel",
            "UseType",
            "Territory",
            "ServiceDescription",
            "Usages",
            "Subscribers",
            "CurrencyOfReporting",
            "NetRevenue",
            "IndirectNetRevenue",
            "CurrencyOfTransaction",
            "ExchangeRate",
        ],
    ),
    (
        "SY02",
        &[
            "SummaryRecordId",
            "DistributionChannel",
            "DistributionChannelDPID",
            "CommercialModel",
            "UseType",
            "Territory",
            "ServiceDescription",
            "Usages",
            "Users",
            "CurrencyOfReporting",
            "NetRevenue",
            "RightsController",
            "RightsControllerPartyId",
            "AllocatedUsages",
            "AllocatedRevenue",
            "AllocatedNetRevenue",
            "RightsType",
            "ContentCategory",
            "CurrencyOfTransaction",
            "ExchangeRate",
            "RightsTypePercentage",
        ],
    ),
    (
        "RE01",
        &[
            "BlockId",
            "ReleaseReference",
            "DspReleaseId",
            "ProprietaryReleaseId",
            "CatalogNumber",
            "ICPN",
            "DisplayArtistName",
            "DisplayArtistPartyId",
            "Title",
            "SubTitle",
            "ReleaseType",
            "Label",
            "PLine",
            "DataProvider",
        ],
    ),
    (
        "AS01",
        &[
            "BlockId",
            "ResourceReference",
            "DspResourceId",
            "ISRC",
            "Title",
            "SubTitle",
            "DisplayArtistName",
            "DisplayArtistPartyId",
            "Duration",
            "ResourceType",
            "IsMasterRecording",
        ],
    ),
    (
        "AS02",
        &[
            "BlockId",
            "ResourceReference",
            "DspResourceId",
            "ISRC",
            "Title",
            "SubTitle",
            "DisplayArtistName",
            "DisplayArtistPartyId",
            "Duration",
            "ResourceType",
            "ISWC",
        ],
    ),
    (
        "SU01",
        &[
            "BlockId",
            "SummaryRecordId",
            "SalesTransactionId",
            "TransactedRelease",
            "TransactedResource",
            "IsRoyaltyBearing",
            "SalesUpgrade",
            "Usages",
            "Returns",
            "PriceConsumerPaidExcSalesTax",
            "PromotionalActivity",
        ],
    ),
    (
        "SU02",
        &[
            "BlockId",
            "SummaryRecordId",
            "SalesTransactionId",
            "TransactedRelease",
            "TransactedResource",
            "IsRoyaltyBearing",
            "NumberOfStreams",
            "PriceConsumerPaidExcSalesTax",
            "PromotionalActivity",
        ],
    ),
    (
        "SU03",
        &[
            "BlockId",
            "SalesTransactionId",
            "SummaryRecordId",
            "DspReleaseId",
            "Usages",
            "NetRevenue",
            "ValidityPeriodStart",
            "ValidityPeriodEnd",
        ],
    ),
];

/// `SU02.02` → `SU02`.
fn base_type(record_type: &str) -> &str {
    record_type.split('.').next().unwrap_or(record_type)
}

/// One physical line split into cells, with the names of its record type's columns.
struct Record<'a> {
    cells: Vec<&'a str>,
    names: Option<&'a [String]>,
}

impl Record<'_> {
    /// The cell under any of `names` (trimmed; empty is `None`).
    fn get(&self, names: &[&str]) -> Option<&str> {
        let columns = self.names?;
        names.iter().find_map(|name| {
            let index = columns.iter().position(|c| c.eq_ignore_ascii_case(name))?;
            self.cells
                .get(index + 1)
                .map(|c| c.trim())
                .filter(|c| !c.is_empty())
        })
    }
}

/// Column names per record type: the file's `#` lines override the built-in ones.
#[derive(Debug, Default, Clone)]
struct Columns {
    by_type: HashMap<String, Vec<String>>,
}

impl Columns {
    fn builtin() -> Columns {
        let by_type = BUILTIN_COLUMNS
            .iter()
            .map(|(kind, names)| {
                (
                    kind.to_string(),
                    names.iter().map(|n| n.to_string()).collect(),
                )
            })
            .collect();
        Columns { by_type }
    }

    /// Learns a `#RECORDTYPE\tName\tName…` line; false when the line is a plain comment.
    fn learn(&mut self, line: &str) -> bool {
        let mut cells = line.trim_start_matches('#').split('\t');
        let Some(kind) = cells.next().map(str::trim).filter(|k| !k.is_empty()) else {
            return false;
        };
        let names: Vec<String> = cells.map(|c| c.trim().to_string()).collect();
        let looks_like_type = kind.len() >= 4
            && kind
                .chars()
                .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '.');
        if !looks_like_type || names.is_empty() {
            return false;
        }
        self.by_type.insert(base_type(kind).to_string(), names);
        true
    }

    fn of(&self, kind: &str) -> Option<&[String]> {
        self.by_type.get(kind).map(Vec::as_slice)
    }
}

/// The report as its HEAD describes it.
#[derive(Debug, Clone)]
pub struct Head {
    /// MessageId: this message's id (unique per sender; a resend gets a new one, so it
    /// names no report or line).
    pub message_id: String,
    /// MessageCreatedDateTime: the record timestamp of every published line.
    pub created_at: DateTime<Utc>,
    /// SenderName: the DSP.
    pub sender: String,
    /// UsageStartDate as the report period.
    pub period: String,
    /// Profile and version, for the summary.
    pub profile: String,
    /// SenderPartyId, else SenderName.
    pub sender_id: String,
    /// RecipientPartyId, else RecipientName (empty when the HEAD has neither).
    pub recipient: String,
    /// ServiceDescription of the HEAD (may be empty).
    pub service: String,
    /// UsageStartDate as written.
    pub usage_start: String,
    /// UsageEndDate as written (may be empty).
    pub usage_end: String,
    /// FileNumber and NumberOfFiles when the report spans more than one file.
    pub part: Option<(String, String)>,
}

/// One summary record (SYnn).
#[derive(Debug, Clone)]
struct Summary {
    kind: String,
    currency: Option<String>,
    revenue: Option<Decimal>,
    declared_usages: Option<i64>,
    territory: Option<String>,
    use_type: Option<String>,
    commercial_model: Option<String>,
    service: Option<String>,
    /// How many SY rows carry this id (the UGC sample repeats one per rights controller).
    rows: u64,
}

/// The allocation of one summary record's revenue to its royalty-bearing lines that have
/// no own amount (a summary whose lines without an amount bear no royalty has one too,
/// empty: its usages are still checked).
#[derive(Debug, Default, Clone)]
struct Allocation {
    /// Sum of the royalty-bearing lines' usages (the pro-rata denominator).
    total: i128,
    /// Lines per usage value (their remainders depend on nothing else).
    lines_by_usages: BTreeMap<i64, u64>,
    /// Usage values whose every line gets one extra unit.
    bumped: HashSet<i64>,
    /// The usage value whose first `quota` lines (in file order) get one extra unit.
    partial: Option<(i64, u64)>,
    /// Revenue in units of 10^-13.
    revenue_units: i128,
}

impl Allocation {
    /// Decides which lines get the units left over by flooring (largest remainder first;
    /// equal remainders: larger usages first, then file order). Fails, instead of
    /// overflowing, when usages × revenue or a share do not fit exact arithmetic.
    fn settle(&mut self) -> Result<(), String> {
        if self.total == 0 {
            return Ok(());
        }
        let too_large = || {
            "its revenue and usages are too large to allocate exactly (128-bit arithmetic)"
                .to_string()
        };
        // Every share is at most the revenue (plus one unit): it must fit a decimal.
        if self.revenue_units.unsigned_abs() >= (1u128 << 96) - 1 {
            return Err("its revenue does not fit an exact decimal at 13 places".into());
        }
        let mut parts: Vec<(i64, u64, i128)> = Vec::with_capacity(self.lines_by_usages.len());
        let mut floor_sum: i128 = 0;
        for (&usages, &lines) in &self.lines_by_usages {
            let product = i128::from(usages)
                .checked_mul(self.revenue_units)
                .ok_or_else(too_large)?;
            let floor = product.div_euclid(self.total);
            floor_sum = floor
                .checked_mul(i128::from(lines))
                .and_then(|f| floor_sum.checked_add(f))
                .ok_or_else(too_large)?;
            parts.push((usages, lines, product.rem_euclid(self.total)));
        }
        let mut left = self.revenue_units - floor_sum;
        parts.sort_by(|a, b| b.2.cmp(&a.2).then(b.0.cmp(&a.0)));
        for (usages, lines, remainder) in parts {
            if left <= 0 || remainder == 0 {
                break;
            }
            if i128::from(lines) <= left {
                self.bumped.insert(usages);
                left -= i128::from(lines);
            } else {
                self.partial = Some((usages, left as u64));
                left = 0;
            }
        }
        Ok(())
    }

    /// The share of a line with `usages`; `seen` counts earlier lines with the same usages.
    fn share(&self, usages: i64, seen: u64) -> Result<Decimal, String> {
        let product = i128::from(usages)
            .checked_mul(self.revenue_units)
            .ok_or("NetRevenue: the allocation overflows")?;
        let mut units = product.div_euclid(self.total.max(1));
        let bump = self.bumped.contains(&usages)
            || self
                .partial
                .is_some_and(|(u, quota)| u == usages && seen < quota);
        if bump {
            units += 1;
        }
        Decimal::try_from_i128_with_scale(units, SCALE)
            .map_err(|e| format!("NetRevenue: the share does not fit a decimal ({e})"))
    }
}

/// What the first pass learnt: the report, the columns, the summary records, the
/// allocations, control totals, and any problem that stops the file from being published.
#[derive(Debug, Clone)]
pub struct DsrScan {
    /// The HEAD, when the file had a usable one.
    pub head: Option<Head>,
    /// The report's identity ([`identity::dsr_report_id`]), set when the HEAD is usable.
    pub report_id: Option<String>,
    columns: Columns,
    summaries: HashMap<String, Summary>,
    allocations: HashMap<String, Allocation>,
    /// Usage lines in the file.
    pub usage_lines: u64,
    /// Why the file must not be published (FOOT counts, summary totals, references).
    pub problems: Vec<String>,
    /// Remarks that do not stop publication (e.g. a summary id used by several rows).
    pub warnings: Vec<String>,
    /// NetRevenue of every summary record, per currency: what the report declares.
    declared: BTreeMap<String, Decimal>,
    encoding: Encoding,
}

/// Reads the lines of `reader`, each decoded, with 1-based numbers.
fn each_line(
    reader: impl BufRead,
    encoding: Encoding,
    mut visit: impl FnMut(u64, &str) -> anyhow::Result<()>,
) -> anyhow::Result<u64> {
    let mut reader = reader;
    let mut buf = Vec::new();
    let mut line_no = 0;
    loop {
        buf.clear();
        let n = reader
            .read_until(b'\n', &mut buf)
            .context("cannot read the DSR file")?;
        if n == 0 {
            return Ok(line_no);
        }
        while buf.last().is_some_and(|b| *b == b'\n' || *b == b'\r') {
            buf.pop();
        }
        line_no += 1;
        let text = encoding.decode(&buf);
        visit(line_no, &text)?;
    }
}

/// The first pass: checks the file and prepares the allocation (see the module docs).
pub fn scan(reader: impl BufRead, encoding: Encoding) -> anyhow::Result<DsrScan> {
    let mut scan = DsrScan {
        head: None,
        report_id: None,
        columns: Columns::builtin(),
        summaries: HashMap::new(),
        allocations: HashMap::new(),
        usage_lines: 0,
        problems: Vec::new(),
        warnings: Vec::new(),
        declared: BTreeMap::new(),
        encoding,
    };
    let mut summary_rows = 0u64;
    let mut blocks: HashSet<String> = HashSet::new();
    let mut foot: Option<HashMap<&'static str, Option<i64>>> = None;
    // i128: a hostile file's usages must not overflow the sum.
    let mut line_usages: HashMap<String, i128> = HashMap::new();
    let mut unknown_refs: BTreeMap<String, u64> = BTreeMap::new();
    // Per summary record: usage lines that bear royalties, and lines that do not.
    let mut bearing_lines: HashMap<String, (u64, u64)> = HashMap::new();
    let mut trailing_blank = 0u64;
    let physical = each_line(reader, encoding, |line_no, text| {
        if text.trim().is_empty() {
            trailing_blank += 1;
            return Ok(());
        }
        trailing_blank = 0;
        if text.starts_with('#') {
            scan.columns.learn(text);
            return Ok(());
        }
        let cells: Vec<&str> = text.split('\t').collect();
        let kind = base_type(cells[0].trim()).to_string();
        let record = Record {
            cells,
            names: scan.columns.of(&kind),
        };
        // Blocks are the RE/AS/SU/MW/RU/LI records sharing a BlockId.
        if let Some(block) = record.get(&["BlockId"])
            && ["RE", "AS", "SU", "MW", "RU", "LI"]
                .iter()
                .any(|prefix| kind.starts_with(prefix))
        {
            blocks.insert(block.to_string());
        }
        match kind.as_str() {
            "HEAD" => scan.head = head(&record, line_no, &mut scan.problems),
            "FOOT" => {
                let number = |names: &[&str]| record.get(names).and_then(|v| v.parse::<i64>().ok());
                foot = Some(HashMap::from([
                    ("lines", number(&["NumberOfLinesInFile"])),
                    ("summaries", number(&["NumberOfSummaryRecords"])),
                    ("blocks", number(&["NumberOfBlocksInFile"])),
                ]));
            }
            k if k.starts_with("SY") => {
                summary_rows += 1;
                let Some(id) = record.get(&["SummaryRecordId"]).map(str::to_string) else {
                    scan.problems
                        .push(format!("line {line_no}: {k} has no SummaryRecordId"));
                    return Ok(());
                };
                let revenue = record
                    .get(&["NetRevenue"])
                    .map(parse_ddex_amount)
                    .transpose()
                    .unwrap_or_else(|e| {
                        scan.problems
                            .push(format!("line {line_no}: NetRevenue {e}"));
                        None
                    });
                let summary = Summary {
                    kind: k.to_string(),
                    currency: record
                        .get(&["CurrencyOfReporting", "Currency"])
                        .map(str::to_string),
                    revenue,
                    declared_usages: record.get(&["Usages"]).and_then(|v| {
                        parse_ddex_count(v)
                            .map_err(|e| {
                                scan.problems
                                    .push(format!("line {line_no}: {k} Usages {e}"))
                            })
                            .ok()
                    }),
                    territory: record.get(&["Territory"]).map(str::to_string),
                    use_type: record.get(&["UseType"]).map(str::to_string),
                    commercial_model: record.get(&["CommercialModel"]).map(str::to_string),
                    service: record.get(&["ServiceDescription"]).map(str::to_string),
                    rows: 1,
                };
                if let (Some(currency), Some(revenue)) = (&summary.currency, summary.revenue) {
                    *scan.declared.entry(currency.clone()).or_default() += revenue;
                }
                match scan.summaries.get_mut(&id) {
                    Some(first) => {
                        first.rows += 1;
                        if first.currency != summary.currency {
                            scan.problems.push(format!(
                                "line {line_no}: summary record {id} repeats with currency {:?}, first {:?}",
                                summary.currency, first.currency
                            ));
                        }
                    }
                    None => {
                        scan.summaries.insert(id, summary);
                    }
                }
            }
            k if k.starts_with("SU") => {
                scan.usage_lines += 1;
                let Some(summary_id) = record.get(&["SummaryRecordId"]).map(str::to_string) else {
                    return Ok(()); // refused line by line in the second pass
                };
                // Which lines share the revenue decides every share: an unreadable flag
                // stops the file.
                let bearing = match royalty_bearing(&record) {
                    Ok(bearing) => bearing,
                    Err(e) => {
                        scan.problems.push(format!("line {line_no}: {e}"));
                        return Ok(());
                    }
                };
                let tally = bearing_lines.entry(summary_id.clone()).or_default();
                if bearing {
                    tally.0 += 1;
                } else {
                    tally.1 += 1;
                }
                let Ok(usages) = usage_weight(&record) else {
                    return Ok(());
                };
                *line_usages.entry(summary_id.clone()).or_default() += i128::from(usages);
                if !scan.summaries.contains_key(&summary_id) {
                    // Summary records come first in the file; a later one is still found
                    // below, an absent one is a problem.
                    *unknown_refs.entry(summary_id.clone()).or_default() += 1;
                }
                if record.get(&["NetRevenue"]).is_none() {
                    let allocation = scan.allocations.entry(summary_id).or_default();
                    if bearing {
                        allocation.total += i128::from(usages);
                        *allocation.lines_by_usages.entry(usages).or_default() += 1;
                    }
                }
            }
            _ => {}
        }
        Ok(())
    })?;
    let counted_lines = physical - trailing_blank;

    if scan.head.is_none() && !scan.problems.iter().any(|p| p.contains("HEAD")) {
        scan.problems
            .push("no HEAD record: not a DSR flat file".into());
    }
    for (id, lines) in &unknown_refs {
        if !scan.summaries.contains_key(id) {
            scan.problems.push(format!(
                "{lines} usage line(s) name summary record {id}, which the file does not have"
            ));
        }
    }
    match foot {
        None => scan
            .problems
            .push("no FOOT record: the file may be truncated".into()),
        Some(foot) => {
            let mut compare = |what: &str, declared: Option<i64>, counted: u64| match declared {
                Some(d) if d != counted as i64 => scan
                    .problems
                    .push(format!("FOOT says {d} {what}, the file has {counted}")),
                Some(_) => {}
                None => scan
                    .warnings
                    .push(format!("FOOT does not state the number of {what}")),
            };
            compare("lines", foot["lines"], counted_lines);
            compare("summary records", foot["summaries"], summary_rows);
            compare("blocks", foot["blocks"], blocks.len() as u64);
        }
    }
    // Allocation: the summary's revenue over its lines without their own amount.
    let ids: Vec<String> = scan.allocations.keys().cloned().collect();
    for id in ids {
        let Some(summary) = scan.summaries.get(&id).cloned() else {
            continue;
        };
        let total = line_usages.get(&id).copied().unwrap_or(0);
        if summary.rows > 1 {
            scan.problems.push(format!(
                "summary record {id} appears {} times; its lines have no amount of their own, so its revenue cannot be allocated",
                summary.rows
            ));
            continue;
        }
        if let Some(declared) = summary.declared_usages
            && i128::from(declared) != total
        {
            scan.problems.push(format!(
                "summary record {id} ({}) declares {declared} usages, its usage lines sum to {total}",
                summary.kind
            ));
        }
        if scan
            .allocations
            .get(&id)
            .is_some_and(|a| a.lines_by_usages.is_empty())
        {
            // Its lines without an amount all bear no royalty: booked at zero.
            continue;
        }
        let Some(revenue) = summary.revenue else {
            scan.problems
                .push(format!("summary record {id} has no NetRevenue to allocate"));
            continue;
        };
        if revenue.scale() > SCALE {
            scan.problems.push(format!(
                "summary record {id}: NetRevenue {revenue} has more than {SCALE} decimal places"
            ));
            continue;
        }
        let Some(allocation) = scan.allocations.get_mut(&id) else {
            continue;
        };
        let Some(units) = 10i128
            .checked_pow(SCALE - revenue.scale())
            .and_then(|factor| revenue.mantissa().checked_mul(factor))
        else {
            scan.problems.push(format!(
                "summary record {id}: NetRevenue {revenue} is too large to allocate"
            ));
            continue;
        };
        allocation.revenue_units = units;
        if allocation.total == 0 && allocation.revenue_units != 0 {
            scan.problems.push(format!(
                "summary record {id} has revenue {revenue} but its lines have no usages"
            ));
            continue;
        }
        if let Err(why) = allocation.settle() {
            scan.problems.push(format!("summary record {id}: {why}"));
        }
    }
    for (id, (bearing, not_bearing)) in &bearing_lines {
        let revenue = scan.summaries.get(id).and_then(|s| s.revenue);
        if *bearing == 0
            && let Some(revenue) = revenue.filter(|r| !r.is_zero())
        {
            scan.problems.push(format!(
                "summary record {id} has revenue {revenue} but none of its {not_bearing} usage line(s) is royalty-bearing (IsRoyaltyBearing false)"
            ));
        }
    }
    for (id, summary) in &scan.summaries {
        if summary.rows > 1 && !scan.allocations.contains_key(id) {
            scan.warnings.push(format!(
                "summary record {id} appears {} times (its lines carry their own amounts)",
                summary.rows
            ));
        }
    }
    if let Some(head) = &scan.head {
        let territories: std::collections::BTreeSet<&str> = scan
            .summaries
            .values()
            .filter_map(|s| s.territory.as_deref())
            .collect();
        scan.report_id = Some(identity::dsr_report_id(&identity::DsrReportParts {
            sender: &head.sender_id,
            recipient: &head.recipient,
            service: &head.service,
            start: &head.usage_start,
            end: &head.usage_end,
            territories: territories.into_iter().collect(),
            part: head.part.as_ref().map(|(x, y)| (x.as_str(), y.as_str())),
        }));
    }
    scan.problems.sort();
    scan.warnings.sort();
    Ok(scan)
}

fn head(record: &Record<'_>, line_no: u64, problems: &mut Vec<String>) -> Option<Head> {
    let mut need = |names: &[&str]| {
        let value = record.get(names).map(str::to_string);
        if value.is_none() {
            problems.push(format!("line {line_no}: HEAD has no {}", names[0]));
        }
        value
    };
    let message_id = need(&["MessageId"]);
    let created = need(&["MessageCreatedDateTime"]);
    let sender = need(&["SenderName"]);
    let start = need(&["UsageStartDate"]);
    let profile = format!(
        "{} {}",
        record.get(&["Profile"]).unwrap_or("unknown profile"),
        record.get(&["ProfileVersion"]).unwrap_or("")
    );
    let created_at = match created.as_deref().map(identity::parse_report_time) {
        Some(Ok(at)) => Some(at),
        Some(Err(e)) => {
            problems.push(format!("line {line_no}: HEAD MessageCreatedDateTime {e}"));
            None
        }
        None => None,
    };
    let period = match start.as_deref().map(|s| parse_period(s, None)) {
        Some(Ok(period)) => Some(period),
        Some(Err(e)) => {
            problems.push(format!("line {line_no}: HEAD UsageStartDate {e}"));
            None
        }
        None => None,
    };
    let text = |names: &[&str]| record.get(names).unwrap_or_default().to_string();
    let sender = sender?;
    let part = match (record.get(&["FileNumber"]), record.get(&["NumberOfFiles"])) {
        (Some(x), Some(y)) if y.trim() != "1" => Some((x.to_string(), y.to_string())),
        _ => None,
    };
    Some(Head {
        message_id: message_id?,
        created_at: created_at?,
        sender_id: record
            .get(&["SenderPartyId"])
            .map_or_else(|| sender.clone(), str::to_string),
        sender,
        period: period?,
        profile: profile.trim().to_string(),
        recipient: record
            .get(&["RecipientPartyId", "RecipientName"])
            .unwrap_or_default()
            .to_string(),
        service: text(&["ServiceDescription"]),
        usage_start: start.unwrap_or_default(),
        usage_end: text(&["UsageEndDate"]),
        part,
    })
}

/// The usages a line counts for allocation: streams, or downloads net of returns.
fn usage_weight(record: &Record<'_>) -> Result<i64, String> {
    let raw = record
        .get(&["NumberOfStreams", "Usages"])
        .ok_or_else(|| "Usages: missing".to_string())?;
    let usages = parse_ddex_count(raw).map_err(|e| format!("Usages: {e}"))?;
    let returns = match record.get(&["Returns"]) {
        Some(r) => parse_ddex_count(r).map_err(|e| format!("Returns: {e}"))?,
        None => 0,
    };
    let net = usages.checked_sub(returns).unwrap_or(-1);
    if usages < 0 || returns < 0 || net < 0 {
        return Err(format!(
            "Usages: {usages} usages and {returns} returns cannot be allocated"
        ));
    }
    Ok(net)
}

/// Whether a usage line bears royalties: `IsRoyaltyBearing` true (`true`, `1`, `yes`, any
/// case) or absent; false (`false`, `0`, `no`) takes no share of the summary's revenue.
fn royalty_bearing(record: &Record<'_>) -> Result<bool, String> {
    let Some(raw) = record.get(&["IsRoyaltyBearing"]) else {
        return Ok(true);
    };
    match raw.to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" | "y" => Ok(true),
        "false" | "0" | "no" | "n" => Ok(false),
        _ => Err(format!(
            "IsRoyaltyBearing: {raw:?} is neither true nor false"
        )),
    }
}

/// One resource of a block: how usage lines may name it, and what it says.
#[derive(Debug, Default)]
struct Resource {
    dsp_id: Option<String>,
    reference: Option<String>,
    isrc: Option<String>,
    artist: Option<String>,
}

/// The identities the emit pass hands out.
struct LineIds<'a> {
    report_id: &'a str,
    seen: SeenIds,
    collisions: u64,
}

/// What the current block (release and resources) says.
#[derive(Debug, Default)]
struct Block {
    id: Option<String>,
    icpn: Option<String>,
    /// DspReleaseId, else ReleaseReference: the release when it has no ICPN.
    release_id: Option<String>,
    label: Option<String>,
    release_artist: Option<String>,
    /// The block's resources (AS01/AS02).
    resources: Vec<Resource>,
}

impl DsrScan {
    /// Whether the file may be published.
    pub fn is_publishable(&self) -> bool {
        self.problems.is_empty() && self.head.is_some()
    }

    /// The second pass: one item per usage line, in file order. Call only when
    /// [`DsrScan::is_publishable`]. Returns how many lines shared a natural key with an
    /// earlier line and were told apart by their order (see [`identity`]).
    pub fn emit(
        &self,
        reader: impl BufRead,
        mut out: impl FnMut(FileItem) -> anyhow::Result<()>,
    ) -> anyhow::Result<u64> {
        let head = self
            .head
            .as_ref()
            .context("the DSR file has no usable HEAD")?;
        let report_id = self
            .report_id
            .as_deref()
            .context("the DSR file has no usable HEAD")?;
        let mut ids = LineIds {
            report_id,
            seen: SeenIds::default(),
            collisions: 0,
        };
        let mut columns = Columns::builtin();
        let mut block = Block::default();
        let mut seen: HashMap<(String, i64), u64> = HashMap::new();
        each_line(reader, self.encoding, |line_no, text| {
            if text.trim().is_empty() {
                return Ok(());
            }
            if text.starts_with('#') {
                columns.learn(text);
                return Ok(());
            }
            let cells: Vec<&str> = text.split('\t').collect();
            let kind = base_type(cells[0].trim()).to_string();
            let record = Record {
                cells,
                names: columns.of(&kind),
            };
            let block_id = record.get(&["BlockId"]).map(str::to_string);
            if (kind.starts_with("RE") || kind.starts_with("AS") || kind.starts_with("SU"))
                && block_id != block.id
            {
                block = Block {
                    id: block_id,
                    ..Block::default()
                };
            }
            match kind.as_str() {
                "RE01" => {
                    block.icpn = record.get(&["ICPN"]).map(str::to_string);
                    block.release_id = record
                        .get(&["DspReleaseId", "ReleaseReference"])
                        .map(str::to_string);
                    block.label = record.get(&["Label"]).map(str::to_string);
                    block.release_artist = record.get(&["DisplayArtistName"]).map(str::to_string);
                }
                k if k.starts_with("AS") => block.resources.push(Resource {
                    dsp_id: record.get(&["DspResourceId"]).map(str::to_string),
                    reference: record.get(&["ResourceReference"]).map(str::to_string),
                    // Several ISRCs may be listed (`|`): the first one names the recording.
                    isrc: record
                        .get(&["ISRC"])
                        .and_then(|isrc| isrc.split('|').map(str::trim).find(|i| !i.is_empty()))
                        .map(str::to_string),
                    artist: record.get(&["DisplayArtistName"]).map(str::to_string),
                }),
                k if k.starts_with("SU") => {
                    out(FileItem {
                        line_no,
                        parsed: self.usage_line(head, &block, &record, &mut seen, &mut ids),
                        report_time: None,
                    })?;
                }
                _ => {}
            }
            Ok(())
        })?;
        Ok(ids.collisions)
    }

    fn usage_line(
        &self,
        head: &Head,
        block: &Block,
        record: &Record<'_>,
        seen: &mut HashMap<(String, i64), u64>,
        ids: &mut LineIds<'_>,
    ) -> Result<DecodedLine, String> {
        let summary_id = record
            .get(&["SummaryRecordId"])
            .ok_or("SummaryRecordId: missing")?
            .to_string();
        let summary = self
            .summaries
            .get(&summary_id)
            .ok_or_else(|| format!("SummaryRecordId: no summary record {summary_id}"))?;
        // Mandatory in DDEX; not part of the line's identity (see the identity module).
        record
            .get(&["SalesTransactionId"])
            .ok_or("SalesTransactionId: missing")?;
        let usages = usage_weight(record)?;
        // The resource the line names, else the block's only (or first) one.
        let wanted = record.get(&["TransactedResource", "DspResourceId"]);
        let resource = block
            .resources
            .iter()
            .find(|r| {
                wanted.is_some()
                    && (r.dsp_id.as_deref() == wanted || r.reference.as_deref() == wanted)
            })
            .or_else(|| block.resources.first());
        let Some(Resource {
            isrc: Some(isrc),
            artist,
            ..
        }) = resource
        else {
            return Err("isrc: the line's block names no resource with an ISRC".into());
        };
        let (isrc, artist) = (isrc.clone(), artist.clone());
        let use_type = record
            .get(&["UseType"])
            .map(str::to_string)
            .or_else(|| summary.use_type.clone());
        let natural = identity::dsr_line_id(
            ids.report_id,
            &DsrLineParts {
                release: block
                    .icpn
                    .as_deref()
                    .or(block.release_id.as_deref())
                    .unwrap_or_default(),
                resource: &isrc,
                commercial_model: summary.commercial_model.as_deref().unwrap_or_default(),
                use_type: use_type.as_deref().unwrap_or_default(),
                territory: summary.territory.as_deref().unwrap_or_default(),
                service: summary.service.as_deref().unwrap_or_default(),
                price: record
                    .get(&["PriceConsumerPaidExcSalesTax"])
                    .unwrap_or_default(),
            },
        );
        // Lines with one natural key are told apart by their order among themselves (see
        // the identity module: the DSP's transaction ids are not stable across a resend).
        let transaction_id = match ids.seen.occurrence(&natural) {
            1 => natural,
            n => {
                ids.collisions += 1;
                format!("{natural}#{n}")
            }
        };
        let amount = match record.get(&["NetRevenue"]) {
            Some(raw) => parse_ddex_amount(raw).map_err(|e| format!("NetRevenue: {e}"))?,
            // A line that bears no royalty has no share of the summary's revenue.
            None if !royalty_bearing(record)? => Decimal::ZERO,
            None => {
                let allocation = self.allocations.get(&summary_id).ok_or_else(|| {
                    format!("NetRevenue: summary record {summary_id} has nothing to allocate")
                })?;
                let counter = seen.entry((summary_id.clone(), usages)).or_default();
                let share = allocation.share(usages, *counter);
                *counter += 1;
                share?
            }
        };
        Ok(DecodedLine {
            isrc,
            upc: block.icpn.clone(),
            dsp_name: head.sender.clone(),
            report_period: head.period.clone(),
            transaction_id,
            stream_count: usages,
            royalty_amount: amount,
            currency: summary.currency.clone().unwrap_or_default(),
            territory: summary.territory.clone(),
            usage_type: use_type,
            line_type: None,
            label: block.label.clone(),
            artist: artist.or_else(|| block.release_artist.clone()),
            report_id: Some(ids.report_id.to_string()),
        })
    }

    /// What the report declares per currency: the NetRevenue of all its summary records.
    pub fn summary_revenue(&self) -> BTreeMap<String, Decimal> {
        self.declared.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FIXTURE: &str = include_str!(
        "../../tests/fixtures/dsr/DSR_TEST_YouTube_AdSupport-music_2015-Q4_IS_1of1_20160121T150926.tsv"
    );

    fn items(text: &str) -> (DsrScan, Vec<FileItem>) {
        let scan = scan(text.as_bytes(), Encoding::Utf8).expect("scan");
        let mut out = Vec::new();
        if scan.is_publishable() {
            scan.emit(text.as_bytes(), |item| {
                out.push(item);
                Ok(())
            })
            .expect("emit");
        }
        (scan, out)
    }

    fn lines(items: &[FileItem]) -> Vec<&DecodedLine> {
        items
            .iter()
            .filter_map(|i| i.parsed.as_ref().ok())
            .collect()
    }

    #[test]
    fn the_ddex_sample_reads_with_its_own_amounts_and_its_oddities_as_warnings() {
        let (scan, items) = items(FIXTURE);
        assert!(scan.problems.is_empty(), "{:?}", scan.problems);
        assert!(
            scan.warnings.iter().any(|w| w.contains("appears 4 times")),
            "{:?}",
            scan.warnings
        );
        let head = scan.head.as_ref().expect("head");
        assert_eq!(head.message_id, "1453417766009915");
        assert_eq!(head.period, "2015-10-01");
        let lines = lines(&items);
        assert_eq!(lines.len(), 6);
        let total: Decimal = lines.iter().map(|l| l.royalty_amount).sum();
        assert_eq!(total, Decimal::new(70, 1));
        assert_eq!(lines[0].isrc, "USSM19803037");
        assert_eq!(lines[0].upc, None);
        assert_eq!(
            lines[0].transaction_id,
            "DSR|PADPIDA2013020802I|PADPIDA20070627029|AdSupport-music|2015-10-01..2015-12-31|IS||USSM19803037|AdvertisementSupportedModel|Stream|IS|AdSupport-music|"
        );
        assert_eq!(lines[0].report_id.as_deref(), scan.report_id.as_deref());
        assert_eq!(lines[0].dsp_name, "YouTube");
        assert_eq!(lines[0].currency, "USD");
        assert_eq!(lines[0].stream_count, 7810);
        assert_eq!(
            lines[2].artist.as_deref(),
            Some("Dinah Washington / Max Richter")
        );
    }

    /// A BasicAudioProfile file: streams without per-line amounts, two summary records in
    /// two currencies, versioned record types, a block with zero usages.
    fn bap(revenue_usd: &str, foot_lines: usize) -> String {
        let rows = [
            "HEAD\tdsrf/1.2\tBasicAudioProfile\t1.2\tMSG-77\t2026-10-05T08:00:00Z\t1\t1\t2026-09-01\t2026-09-30\tPADPIDA2014120301A\tStreamCo\tPremium\t\t\t",
            "SY01.02\t1\t\t\tSubscriptionModel\tOnDemandStream\tSE\tPremium\t7\t\tUSD\t__USD__",
            "SY01.02\t2\t\t\tSubscriptionModel\tOnDemandStream\tDE\tPremium\t5\t\tEUR\t10",
            "RE01.02\tB1\tR1\tDR1\t\t\t0036000291452\tMira Kade\t\tNight Ledger\t\tAlbum\tHarbor Records\t\t",
            "AS02.03\tB1\tA1\tDA1\tGBQZA2400007\tNight Ledger\t\tMira Kade\t\tPT3M\tSoundRecording",
            "SU02.02\tB1\t1\tT1\tDR1\tDA1\ttrue\t1\t\t",
            "SU02.02\tB1\t1\tT2\tDR1\tDA1\ttrue\t3\t\t",
            "SU02.02\tB1\t1\tT3\tDR1\tDA1\ttrue\t3\t\t",
            "SU02.02\tB1\t2\tT4\tDR1\tDA1\ttrue\t5\t\t",
            "RE01.02\tB2\tR2\tDR2\t\t\t\tNo Streams\t\tQuiet\t\tSingle\t\t\t",
            "AS02.03\tB2\tA2\tDA2\tGBQZA2400008\tQuiet\t\tNo Streams\t\tPT2M\tSoundRecording",
            "SU02.02\tB2\t1\tT5\tDR2\tDA2\ttrue\t0\t\t",
        ];
        let mut text: Vec<String> = rows
            .iter()
            .map(|r| r.replace("__USD__", revenue_usd))
            .collect();
        text.push(format!("FOOT\t{foot_lines}\t{foot_lines}\t2\t2\t2"));
        text.join("\n") + "\n"
    }

    #[test]
    fn summary_revenue_is_allocated_pro_rata_to_the_last_decimal_place() {
        // 1 USD over 1 + 3 + 3 + 0 streams: 1/7 and 3/7 do not divide; the lines must still
        // sum to exactly 1 USD at 13 decimal places.
        let (scan, items) = items(&bap("1", 13));
        assert!(scan.problems.is_empty(), "{:?}", scan.problems);
        let lines = lines(&items);
        assert_eq!(lines.len(), 5);
        let usd: Vec<Decimal> = lines
            .iter()
            .filter(|l| l.currency == "USD")
            .map(|l| l.royalty_amount)
            .collect();
        assert_eq!(usd.iter().copied().sum::<Decimal>(), Decimal::ONE);
        // Flooring leaves one unit (10^-13) over; 1/7 has the largest remainder (3/7 of a
        // unit, against 2/7 for 3/7), so the 1-stream line gets it.
        assert_eq!(
            usd[0],
            Decimal::from_str_exact("0.1428571428572").expect("d")
        );
        assert_eq!(
            usd[1],
            Decimal::from_str_exact("0.4285714285714").expect("d")
        );
        assert_eq!(
            usd[2],
            Decimal::from_str_exact("0.4285714285714").expect("d")
        );
        assert_eq!(usd[3], Decimal::ZERO);
        let eur: Vec<&&DecodedLine> = lines.iter().filter(|l| l.currency == "EUR").collect();
        assert_eq!(eur[0].royalty_amount, Decimal::new(10, 0));
        assert_eq!(lines[0].upc.as_deref(), Some("0036000291452"));
        assert_eq!(lines[0].label.as_deref(), Some("Harbor Records"));
        // T1, T2 and T3 sell the same track on the same release, model and territory: the
        // second and third are told apart by their order, never by the MessageId.
        let report = "DSR|PADPIDA2014120301A||Premium|2026-09-01..2026-09-30|DE+SE";
        let natural = format!(
            "{report}|0036000291452|GBQZA2400007|SubscriptionModel|OnDemandStream|SE|Premium|"
        );
        assert_eq!(lines[0].transaction_id, natural);
        assert_eq!(lines[1].transaction_id, format!("{natural}#2"));
        assert_eq!(lines[2].transaction_id, format!("{natural}#3"));
        assert_eq!(lines[0].report_id.as_deref(), Some(report));
        assert_eq!(lines[4].upc, None);
    }

    #[test]
    fn a_file_whose_foot_or_summary_totals_disagree_is_reported_with_the_numbers() {
        let (scan, read) = items(&bap("1", 14));
        assert!(read.is_empty());
        assert!(
            scan.problems
                .iter()
                .any(|p| p == "FOOT says 14 lines, the file has 13"),
            "{:?}",
            scan.problems
        );
        let tampered = bap("1", 13).replace("\t7\t\tUSD", "\t8\t\tUSD");
        let (scan, read) = items(&tampered);
        assert!(read.is_empty());
        assert!(
            scan.problems
                .iter()
                .any(|p| p.contains("declares 8 usages, its usage lines sum to 7")),
            "{:?}",
            scan.problems
        );
        let (scan, _) = items("not\ta\tdsr\n");
        assert!(!scan.is_publishable());
    }

    /// Found by tests/fuzz.rs: usages summed in i64 overflowed (a panic in debug builds,
    /// a wrong total in release), and so could usages × revenue.
    #[test]
    fn huge_usages_and_revenues_are_problems_not_overflows() {
        let text = bap("79228162514264337593543950335", 13)
            .replace("\t1\t\t\n", &format!("\t{}\t\t\n", i64::MAX))
            .replace("\t3\t\t\n", &format!("\t{}\t\t\n", i64::MAX));
        let (scan, read) = items(&text);
        assert!(read.is_empty());
        assert!(!scan.problems.is_empty());
        let mut allocation = Allocation {
            revenue_units: i128::MAX / 2,
            total: 3,
            ..Allocation::default()
        };
        allocation.lines_by_usages.insert(i64::MAX, 1);
        assert!(allocation.settle().is_err());
    }

    /// `text` with the usage lines `ids` (SalesTransactionId) flagged IsRoyaltyBearing `value`.
    fn flag(text: &str, ids: &[&str], value: &str) -> String {
        let lines: Vec<String> = text
            .lines()
            .map(|line| {
                let mut cells: Vec<&str> = line.split('\t').collect();
                if cells[0].starts_with("SU02") && ids.contains(&cells[3]) {
                    cells[6] = value;
                }
                cells.join("\t")
            })
            .collect();
        lines.join("\n") + "\n"
    }

    #[test]
    fn a_line_that_bears_no_royalty_takes_no_share_and_keeps_its_usages() {
        // T2 (3 streams) bears no royalty: 1 USD goes to T1 and T3 (1 + 3 streams).
        let d = |s: &str| Decimal::from_str_exact(s).expect("d");
        for word in ["FALSE", "false", "0", "no"] {
            let (scan, read) = items(&flag(&bap("1", 13), &["T2"], word));
            // The summary declares 7 usages: all of its lines, bearing or not.
            assert!(scan.problems.is_empty(), "{word}: {:?}", scan.problems);
            let usd: Vec<(i64, Decimal)> = lines(&read)
                .iter()
                .filter(|l| l.currency == "USD")
                .map(|l| (l.stream_count, l.royalty_amount))
                .collect();
            assert_eq!(
                usd,
                vec![
                    (1, d("0.25")),
                    (3, Decimal::ZERO),
                    (3, d("0.75")),
                    (0, Decimal::ZERO)
                ],
                "{word}"
            );
        }
        // The declared usages still count the line that bears no royalty.
        let tampered = flag(&bap("1", 13), &["T2"], "false").replace("\t7\t\tUSD", "\t4\t\tUSD");
        let (scan, _) = items(&tampered);
        assert!(
            scan.problems
                .iter()
                .any(|p| p.contains("declares 4 usages, its usage lines sum to 7")),
            "{:?}",
            scan.problems
        );
    }

    #[test]
    fn revenue_with_no_royalty_bearing_line_or_an_unreadable_flag_stops_the_file() {
        let none = flag(&bap("1", 13), &["T1", "T2", "T3", "T5"], "false");
        let (scan, read) = items(&none);
        assert!(read.is_empty());
        assert_eq!(
            scan.problems,
            vec![
                "summary record 1 has revenue 1 but none of its 4 usage line(s) is royalty-bearing (IsRoyaltyBearing false)"
            ]
        );
        // Without revenue nothing is lost: the lines are booked at zero.
        let (scan, read) = items(&flag(&bap("0", 13), &["T1", "T2", "T3", "T5"], "false"));
        assert!(scan.problems.is_empty(), "{:?}", scan.problems);
        assert_eq!(lines(&read).len(), 5);
        let (scan, read) = items(&flag(&bap("1", 13), &["T2"], "maybe"));
        assert!(read.is_empty());
        assert!(
            scan.problems
                .iter()
                .any(|p| p.ends_with("IsRoyaltyBearing: \"maybe\" is neither true nor false")),
            "{:?}",
            scan.problems
        );
    }

    #[test]
    fn dsr_numbers_are_read_as_ddex_writes_them() {
        // A decimal comma in a summary's NetRevenue is not 100000: it stops the file.
        let (scan, read) = items(&bap("1000,00", 13));
        assert!(read.is_empty());
        assert!(
            scan.problems
                .iter()
                .any(|p| p.contains("NetRevenue \"1000,00\" is not a DDEX decimal")),
            "{:?}",
            scan.problems
        );
        let (scan, read) = items(&bap("1000.00", 13));
        assert!(scan.problems.is_empty(), "{:?}", scan.problems);
        let usd: Decimal = lines(&read)
            .iter()
            .filter(|l| l.currency == "USD")
            .map(|l| l.royalty_amount)
            .sum();
        assert_eq!(usd, Decimal::new(100_000, 2));
        // Grouped usages in a summary record are refused, not read as 7.
        let (scan, _) = items(&bap("1", 13).replace("\tPremium\t7\t", "\tPremium\t0,007\t"));
        assert!(
            scan.problems.iter().any(|p| p.contains("Usages \"0,007\"")),
            "{:?}",
            scan.problems
        );
        // A usage line's own NetRevenue with a comma: that line is refused, with the reason.
        let own = FIXTURE.replacen("\t7810\t2.0\t", "\t7810\t2,0\t", 1);
        assert_ne!(own, FIXTURE);
        let (_, read) = items(&own);
        let refused: Vec<&String> = read
            .iter()
            .filter_map(|i| i.parsed.as_ref().err())
            .collect();
        assert_eq!(refused.len(), 1, "{refused:?}");
        assert!(
            refused[0].starts_with("NetRevenue: \"2,0\" is not a DDEX decimal"),
            "{refused:?}"
        );
    }

    #[test]
    fn allocation_hands_out_exactly_the_leftover_units() {
        let mut allocation = Allocation {
            revenue_units: 10,
            total: 3,
            ..Allocation::default()
        };
        allocation.lines_by_usages.insert(1, 3);
        allocation.settle().expect("fits");
        let shares: Vec<Decimal> = (0..3)
            .map(|seen| allocation.share(1, seen).expect("fits"))
            .collect();
        assert_eq!(
            shares.iter().copied().sum::<Decimal>(),
            Decimal::from_i128_with_scale(10, SCALE)
        );
        assert_eq!(shares[0], Decimal::from_i128_with_scale(4, SCALE));
        assert_eq!(shares[2], Decimal::from_i128_with_scale(3, SCALE));
    }
}
