//! Reading uploaded spreadsheets. A CSV or XLSX file is decoded once, at upload, into a header,
//! a preview and chunks of rows in one canonical form (CSV text, see [`Chunk`]), so the dry run,
//! the commit and any resumed commit read the same rows the same way whatever the file was.
//!
//! Every refusal names what is wrong and where (line, column, header), because the person reading
//! it has a spreadsheet open and needs to find the spot.

use std::io::Cursor;

use calamine::{Data, Reader, Xlsx};
use meridian_db::Engine;

/// Files wider than this are refused: no lead has 500 attributes, and a mapping table that wide
/// is unusable, so such a file is almost certainly not a list of leads.
pub const MAX_COLUMNS: usize = 500;
/// Rows per stored chunk on `engine`: the unit of work of a commit, one transaction (with its
/// checkpoint) each.
///
/// SQLite writes every page a transaction changed to its log at commit, and a lead's e-mail,
/// phone and last name land on random pages of their indexes, so a transaction of N rows writes
/// about N pages of each such index until N nears the index's size: larger chunks write much less
/// (a million-row import's commit took 60–66 s at 2,000 rows a chunk and 58–59 s at 50,000 with
/// the chunk's page cache widened to hold them; BENCHMARKS.md). The price is that SQLite's single writer is held for a chunk's whole
/// transaction, about 2.5 s at 50,000 rows into a million-lead organization, while other writes
/// wait their turn (the busy timeout is 10 s). PostgreSQL has no such log cost per commit, and
/// there a chunk's transaction holds the organization's lead-number counter, which every new lead
/// in it needs, so its chunks stay small.
pub fn chunk_rows(engine: Engine) -> usize {
    match engine {
        Engine::Sqlite => 50_000,
        Engine::Postgres => 2_000,
    }
}
pub const PREVIEW_ROWS: usize = 10;
/// Longest header name accepted, in characters.
pub const MAX_HEADER: usize = 200;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Csv,
    Xlsx,
}

impl Format {
    pub fn as_str(self) -> &'static str {
        match self {
            Format::Csv => "csv",
            Format::Xlsx => "xlsx",
        }
    }
}

/// One data row as read from the file. `row` is the row number a spreadsheet shows (the header is
/// row 1). `problem` says why the row cannot be imported whatever the mapping (a spreadsheet
/// error in a cell, values beyond the last header).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct SourceRow {
    pub row: i64,
    pub problem: Option<String>,
    pub cells: Vec<String>,
}

/// Rows stored together: `data` is CSV text whose records are `row, problem, cells...`.
#[derive(Debug, Clone)]
pub struct Chunk {
    pub row_count: i64,
    pub data: String,
}

/// A decoded upload.
#[derive(Debug, Clone)]
pub struct Parsed {
    pub format: Format,
    pub columns: Vec<String>,
    pub preview: Vec<SourceRow>,
    pub rows_total: i64,
    pub empty_rows: i64,
    pub chunks: Vec<Chunk>,
}

/// Why an upload cannot be read; the text is shown to the person who uploaded it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ParseError(pub String);

fn refuse<T>(message: impl Into<String>) -> Result<T, ParseError> {
    Err(ParseError(message.into()))
}

/// Decodes an upload. The format comes from the content (an XLSX file is a ZIP archive) and then
/// from the name, so a renamed file is still read for what it is.
pub fn parse_upload(
    file_name: &str,
    bytes: &[u8],
    chunk_rows: usize,
) -> Result<Parsed, ParseError> {
    let lower = file_name.to_ascii_lowercase();
    if bytes.starts_with(&[0xD0, 0xCF, 0x11, 0xE0]) || lower.ends_with(".xls") {
        return refuse(
            "Old Excel workbooks (.xls) cannot be read; save the file as .xlsx or CSV UTF-8 and upload it again.",
        );
    }
    if bytes.starts_with(b"PK\x03\x04") || lower.ends_with(".xlsx") {
        parse_xlsx(bytes, chunk_rows)
    } else {
        parse_csv(bytes, chunk_rows)
    }
}

/// A cell that an export neutralized against formula injection (`'=SUM(...)`) reads back as it
/// was written, so exported files import unchanged.
fn restore_neutralized(cell: String) -> String {
    let mut chars = cell.chars();
    if chars.next() == Some('\'')
        && chars
            .next()
            .is_some_and(|c| matches!(c, '=' | '+' | '-' | '@' | '\t' | '\r'))
    {
        cell[1..].to_owned()
    } else {
        cell
    }
}

/// Checks the header names: none empty, none repeated, not too many. Trailing empty names are
/// dropped first (spreadsheets often save a trailing separator).
fn check_header(mut names: Vec<String>, row_label: &str) -> Result<Vec<String>, ParseError> {
    while names.last().is_some_and(|n| n.is_empty()) {
        names.pop();
    }
    if names.is_empty() {
        return refuse(format!(
            "The header row ({row_label}) is empty; the first row must name the columns."
        ));
    }
    if names.len() > MAX_COLUMNS {
        return refuse(format!(
            "The file has {} columns; at most {MAX_COLUMNS} can be imported. Remove the columns you do not need.",
            names.len()
        ));
    }
    let unnamed: Vec<String> = names
        .iter()
        .enumerate()
        .filter(|(_, n)| n.is_empty())
        .map(|(i, _)| column_label(i))
        .collect();
    if !unnamed.is_empty() {
        return refuse(format!(
            "Every column needs a name in the header row; column {} has none.",
            unnamed.join(", ")
        ));
    }
    if let Some(long) = names.iter().find(|n| n.chars().count() > MAX_HEADER) {
        return refuse(format!(
            "The header \u{201c}{}\u{2026}\u{201d} is longer than {MAX_HEADER} characters.",
            long.chars().take(40).collect::<String>()
        ));
    }
    let mut repeated: Vec<&str> = Vec::new();
    for (i, name) in names.iter().enumerate() {
        let lower = name.to_lowercase();
        if names[..i].iter().any(|n| n.to_lowercase() == lower) && !repeated.contains(&&**name) {
            repeated.push(name);
        }
    }
    if !repeated.is_empty() {
        let quoted: Vec<String> = repeated
            .iter()
            .map(|n| format!("\u{201c}{n}\u{201d}"))
            .collect();
        return refuse(format!(
            "Column names must be unique; {} appear more than once.",
            quoted.join(", ")
        ));
    }
    Ok(names)
}

/// `A`, `B`, ..., `Z`, `AA`: how spreadsheets name column `index` (0-based), with its number.
pub fn column_label(index: usize) -> String {
    let mut n = index + 1;
    let mut letters = Vec::new();
    while n > 0 {
        let rem = (n - 1) % 26;
        letters.push(char::from(b'A' + u8::try_from(rem).unwrap_or(0)));
        n = (n - 1) / 26;
    }
    letters.reverse();
    format!(
        "{} ({})",
        letters.into_iter().collect::<String>(),
        index + 1
    )
}

/// Collects rows into chunks, the preview and the counts.
struct Collector {
    width: usize,
    preview: Vec<SourceRow>,
    rows_total: i64,
    empty_rows: i64,
    chunks: Vec<Chunk>,
    current: csv::Writer<Vec<u8>>,
    current_rows: i64,
    chunk_rows: usize,
}

impl Collector {
    fn new(width: usize, chunk_rows: usize) -> Self {
        Collector {
            width,
            preview: Vec::new(),
            rows_total: 0,
            empty_rows: 0,
            chunks: Vec::new(),
            current: csv::Writer::from_writer(Vec::new()),
            current_rows: 0,
            chunk_rows,
        }
    }

    fn push(&mut self, row: i64, mut cells: Vec<String>, mut problem: Option<String>) {
        for cell in &mut cells {
            *cell = restore_neutralized(std::mem::take(cell));
        }
        if problem.is_none() && cells.iter().all(|c| c.trim().is_empty()) {
            self.empty_rows += 1;
            return;
        }
        if cells.len() > self.width {
            if problem.is_none()
                && let Some(extra) = cells[self.width..]
                    .iter()
                    .position(|c| !c.trim().is_empty())
            {
                problem = Some(format!(
                    "has a value in column {}, which has no header (the header has {} columns)",
                    column_label(self.width + extra),
                    self.width
                ));
            }
            cells.truncate(self.width);
        }
        cells.resize(self.width, String::new());
        if self.preview.len() < PREVIEW_ROWS {
            self.preview.push(SourceRow {
                row,
                problem: problem.clone(),
                cells: cells.clone(),
            });
        }
        let row_text = row.to_string();
        let problem_text = problem.unwrap_or_default();
        let record = [row_text.as_str(), problem_text.as_str()]
            .into_iter()
            .chain(cells.iter().map(String::as_str));
        // Writing to a Vec cannot fail for I/O reasons; a failure here would be a bug in csv.
        if let Err(error) = self.current.write_record(record) {
            tracing::error!(%error, "writing an import chunk");
        }
        self.rows_total += 1;
        self.current_rows += 1;
        if self.current_rows as usize >= self.chunk_rows {
            self.flush();
        }
    }

    fn flush(&mut self) {
        if self.current_rows == 0 {
            return;
        }
        let writer = std::mem::replace(&mut self.current, csv::Writer::from_writer(Vec::new()));
        let data = writer
            .into_inner()
            .map(|bytes| String::from_utf8_lossy(&bytes).into_owned())
            .unwrap_or_default();
        self.chunks.push(Chunk {
            row_count: self.current_rows,
            data,
        });
        self.current_rows = 0;
    }

    fn finish(mut self, format: Format, columns: Vec<String>) -> Result<Parsed, ParseError> {
        self.flush();
        if self.rows_total == 0 {
            return refuse(if self.empty_rows > 0 {
                "The file has a header row but every other row is empty."
            } else {
                "The file has a header row but no data rows."
            });
        }
        Ok(Parsed {
            format,
            columns,
            preview: self.preview,
            rows_total: self.rows_total,
            empty_rows: self.empty_rows,
            chunks: self.chunks,
        })
    }
}

/// Reads the rows stored in a chunk.
pub fn read_chunk(data: &str) -> Result<Vec<SourceRow>, csv::Error> {
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .from_reader(data.as_bytes());
    let mut rows = Vec::new();
    for record in reader.records() {
        let record = record?;
        let mut fields = record.iter();
        let row = fields.next().and_then(|r| r.parse().ok()).unwrap_or(0);
        let problem = fields.next().filter(|p| !p.is_empty()).map(str::to_owned);
        rows.push(SourceRow {
            row,
            problem,
            cells: fields.map(str::to_owned).collect(),
        });
    }
    Ok(rows)
}

const DELIMITERS: [(u8, &str); 4] = [
    (b',', "commas"),
    (b';', "semicolons"),
    (b'\t', "tabs"),
    (b'|', "pipes"),
];

/// Picks the delimiter that splits the header line into the most columns (quoted text ignored).
fn detect_delimiter(header_line: &str) -> Option<u8> {
    let mut counts = [0usize; 4];
    let mut quoted = false;
    for b in header_line.bytes() {
        if b == b'"' {
            quoted = !quoted;
        } else if !quoted && let Some(i) = DELIMITERS.iter().position(|(d, _)| *d == b) {
            counts[i] += 1;
        }
    }
    let (best, count) = counts
        .iter()
        .enumerate()
        .max_by(|a, b| a.1.cmp(b.1).then(b.0.cmp(&a.0)))?;
    (*count > 0).then_some(DELIMITERS[best].0)
}

fn parse_csv(bytes: &[u8], chunk_rows: usize) -> Result<Parsed, ParseError> {
    if bytes.starts_with(&[0xFF, 0xFE]) || bytes.starts_with(&[0xFE, 0xFF]) {
        return refuse(
            "The file is UTF-16 text; save it as \u{201c}CSV UTF-8\u{201d} and upload it again.",
        );
    }
    let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    if let Err(error) = std::str::from_utf8(bytes) {
        let at = error.valid_up_to();
        let line = bytes[..at].iter().filter(|b| **b == b'\n').count() + 1;
        let column = at
            - bytes[..at]
                .iter()
                .rposition(|b| *b == b'\n')
                .map_or(0, |p| p + 1)
            + 1;
        return refuse(format!(
            "The file is not UTF-8 text: line {line} has a byte that is not valid UTF-8 (byte {column} of the line, \
             offset {at} in the file). Save it as \u{201c}CSV UTF-8\u{201d} and upload it again."
        ));
    }
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return refuse("The file is empty.");
    }
    // Blank lines before the header are skipped but still counted, so row numbers match the file.
    let text_start = bytes
        .iter()
        .position(|b| !matches!(b, b'\r' | b'\n'))
        .unwrap_or(0);
    let blank_lines = bytes[..text_start].iter().filter(|b| **b == b'\n').count() as i64;
    let bytes = &bytes[text_start..];
    let header_end = bytes
        .iter()
        .position(|b| *b == b'\n')
        .unwrap_or(bytes.len());
    let header_line = String::from_utf8_lossy(&bytes[..header_end]);
    let delimiter = match detect_delimiter(&header_line) {
        Some(d) => d,
        None => {
            let header = header_line.trim();
            if let Some(other) = header.chars().find(|c| matches!(c, ':' | '^' | '~')) {
                return refuse(format!(
                    "The header row reads as a single column, \u{201c}{}\u{201d}, which contains \u{201c}{other}\u{201d}. \
                     Meridian reads files separated by commas, semicolons, tabs or pipes; export the file with one of those.",
                    header.chars().take(80).collect::<String>()
                ));
            }
            b','
        }
    };
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .delimiter(delimiter)
        .from_reader(bytes);
    // The reader skips blank lines; counting lines shows where it did, so blank lines count as
    // empty rows and row numbers stay those of the file.
    let embedded_lines = |record: &csv::StringRecord| {
        record
            .iter()
            .map(|f| f.matches('\n').count())
            .sum::<usize>() as u64
    };
    let mut records = reader.records();
    let (header, mut next_line) = match records.next() {
        Some(Ok(record)) => (
            record
                .iter()
                .map(|h| h.trim().to_owned())
                .collect::<Vec<_>>(),
            2 + embedded_lines(&record),
        ),
        Some(Err(error)) => return refuse(format!("The header row cannot be read: {error}.")),
        None => return refuse("The file is empty."),
    };
    if header.len() == 1 {
        let separator = DELIMITERS
            .iter()
            .find(|(d, _)| header[0].as_bytes().contains(d));
        if let Some((_, name)) = separator {
            return refuse(format!(
                "The header row reads as a single column, \u{201c}{}\u{201d}, although it contains {name}; check the file's quoting.",
                header[0].chars().take(80).collect::<String>()
            ));
        }
    }
    let mut row: i64 = blank_lines + 1;
    let columns = check_header(header, &format!("row {row}"))?;
    let mut collector = Collector::new(columns.len(), chunk_rows);
    for record in records {
        match record {
            Ok(record) => {
                let line = record.position().map_or(next_line, |p| p.line());
                let blank = i64::try_from(line.saturating_sub(next_line)).unwrap_or(0);
                collector.empty_rows += blank;
                row += blank + 1;
                next_line = line + 1 + embedded_lines(&record);
                collector.push(row, record.iter().map(str::to_owned).collect(), None);
            }
            Err(error) => {
                let line = error.position().map_or(next_line, |p| p.line()) + blank_lines as u64;
                return refuse(format!("Line {line} cannot be read as CSV: {error}."));
            }
        }
    }
    collector.finish(Format::Csv, columns)
}

/// A spreadsheet cell as the text a person sees (dates as `YYYY-MM-DD`, whole numbers without a
/// decimal point, so phone numbers and ids stored as numbers read right); `Err` for error cells.
fn cell_text(cell: &Data) -> Result<String, String> {
    Ok(match cell {
        Data::Empty => String::new(),
        Data::String(s) => s.clone(),
        Data::Int(i) => i.to_string(),
        Data::Float(f) if f.fract() == 0.0 && f.abs() < 1e15 => format!("{f:.0}"),
        Data::Float(f) => f.to_string(),
        Data::Bool(b) => if *b { "true" } else { "false" }.to_owned(),
        Data::DateTime(dt) => {
            let (y, mo, d, h, mi, s, _) = dt.to_ymd_hms_milli();
            if dt.is_duration() {
                dt.as_f64().to_string()
            } else if (h, mi, s) == (0, 0, 0) {
                format!("{y:04}-{mo:02}-{d:02}")
            } else {
                format!("{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{s:02}")
            }
        }
        Data::DateTimeIso(s) | Data::DurationIso(s) => s.clone(),
        Data::Error(e) => return Err(e.to_string()),
    })
}

/// The cells of an XLSX workbook's first sheet as text (`Err` for spreadsheet error cells such
/// as `#N/A`), and the row number of its first row.
pub struct Sheet {
    pub first_row: i64,
    pub rows: Vec<Vec<Result<String, String>>>,
}

/// Reads the first sheet of an XLSX workbook.
pub fn first_sheet(bytes: &[u8]) -> Result<Sheet, ParseError> {
    let mut workbook: Xlsx<_> = match Xlsx::new(Cursor::new(bytes)) {
        Ok(workbook) => workbook,
        Err(error) => {
            return refuse(format!(
                "The file is not an XLSX workbook that can be read ({error}). Save it again as .xlsx or CSV UTF-8."
            ));
        }
    };
    let Some(sheet) = workbook.sheet_names().into_iter().next() else {
        return refuse("The workbook has no sheets.");
    };
    let range = workbook.worksheet_range(&sheet).map_err(|error| {
        ParseError(format!(
            "The sheet \u{201c}{sheet}\u{201d} cannot be read ({error})."
        ))
    })?;
    let Some((first_row, _)) = range.start() else {
        return refuse(format!(
            "The first sheet, \u{201c}{sheet}\u{201d}, is empty (only the first sheet is imported)."
        ));
    };
    Ok(Sheet {
        first_row: i64::from(first_row) + 1,
        rows: range
            .rows()
            .map(|cells| cells.iter().map(cell_text).collect())
            .collect(),
    })
}

fn parse_xlsx(bytes: &[u8], chunk_rows: usize) -> Result<Parsed, ParseError> {
    let sheet = first_sheet(bytes)?;
    let mut rows = sheet.rows.into_iter();
    let header_row = sheet.first_row;
    let mut header = Vec::new();
    for (i, cell) in rows.next().unwrap_or_default().into_iter().enumerate() {
        match cell {
            Ok(text) => header.push(text.trim().to_owned()),
            Err(e) => {
                return refuse(format!(
                    "The header of column {} holds the spreadsheet error {e}.",
                    column_label(i)
                ));
            }
        }
    }
    let columns = check_header(header, &format!("row {header_row}"))?;
    let mut collector = Collector::new(columns.len(), chunk_rows);
    for (row, cells) in (header_row + 1..).zip(rows) {
        let mut problem = None;
        let mut texts = Vec::with_capacity(cells.len());
        for (i, cell) in cells.into_iter().enumerate() {
            match cell {
                Ok(text) => texts.push(text),
                Err(e) => {
                    if problem.is_none() && i < columns.len() {
                        problem = Some(format!(
                            "the cell in column \u{201c}{}\u{201d} holds the spreadsheet error {e}",
                            columns[i]
                        ));
                    }
                    texts.push(e);
                }
            }
        }
        collector.push(row, texts, problem);
    }
    collector.finish(Format::Xlsx, columns)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Small, so a few lines make several chunks.
    const CHUNK: usize = 7;

    fn rows(parsed: &Parsed) -> Vec<SourceRow> {
        parsed
            .chunks
            .iter()
            .flat_map(|c| read_chunk(&c.data).expect("chunk"))
            .collect()
    }

    #[test]
    fn reads_csv_with_any_common_delimiter() {
        for d in [",", ";", "\t", "|"] {
            let text = format!(
                "First name{d}Email\nAda{d}ada@example.com\n\n{d}\n\"Lovelace{d} B\"{d}b@example.com\n"
            );
            let parsed = parse_upload("leads.csv", text.as_bytes(), CHUNK).expect("parsed");
            assert_eq!(parsed.columns, vec!["First name", "Email"]);
            assert_eq!(parsed.rows_total, 2);
            assert_eq!(parsed.empty_rows, 2);
            let rows = rows(&parsed);
            assert_eq!(rows[1].row, 5);
            assert_eq!(rows[1].cells[0], format!("Lovelace{d} B"));
        }
    }

    #[test]
    fn chunks_hold_every_row_once() {
        let mut text = String::from("name\n");
        for i in 0..(CHUNK * 2 + 5) {
            text.push_str(&format!("n{i}\n"));
        }
        let parsed = parse_upload("x.csv", text.as_bytes(), CHUNK).expect("parsed");
        assert_eq!(parsed.chunks.len(), 3);
        let all = rows(&parsed);
        assert_eq!(all.len(), CHUNK * 2 + 5);
        assert_eq!(all[CHUNK].cells[0], format!("n{CHUNK}"));
    }

    #[test]
    fn refuses_what_it_cannot_read_and_says_where() {
        let err = |bytes: &[u8]| parse_upload("x.csv", bytes, CHUNK).expect_err("refused").0;
        assert!(err(b"name\nAda\nB\xffb\n").contains("line 3"));
        assert!(err(b"").contains("empty"));
        assert!(err(b"first:last:email\na:b:c\n").contains("\u{201c}:\u{201d}"));
        assert!(err(b"a,,b\n1,2,3\n").contains("B (2)"));
        assert!(err(b"Email,email\n1,2\n").contains("\u{201c}email\u{201d}"));
        assert!(err(b"name\n").contains("no data rows"));
        let wide = (0..600)
            .map(|i| format!("c{i}"))
            .collect::<Vec<_>>()
            .join(",");
        assert!(err(wide.as_bytes()).contains("600 columns"));
        assert!(parse_upload("x.xlsx", b"PK\x03\x04nope", CHUNK).is_err());
    }

    #[test]
    fn extra_values_and_neutralized_cells() {
        let parsed = parse_upload("x.csv", b"a,b\n'=1+1,x,\n1,2,3\n", CHUNK).expect("parsed");
        let rows = rows(&parsed);
        assert_eq!(rows[0].cells, vec!["=1+1", "x"]);
        assert_eq!(rows[0].problem, None);
        assert!(rows[1].problem.as_deref().unwrap_or("").contains("C (3)"));
    }
}
