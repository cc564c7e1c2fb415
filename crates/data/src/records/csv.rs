//! [`CsvRecordReader`]: DataVec's `CSVRecordReader` for numeric CSV files, with RFC 4180
//! quoting, parsed once into a [`Records`] table.

use std::path::Path;

use crate::error::{DataError, format_error};

/// A parsed table of numeric records: every record has the same number of columns, values are
/// kept as `f64` in one row-major heap buffer, and the source line of every record is kept
/// for error messages.
///
/// ```
/// use dl4rs_data::records::CsvRecordReader;
///
/// let table = CsvRecordReader::new(1, ',')
///     .parse_str("data.csv", "x,y\n1,2\n3,4\n")
///     .unwrap();
/// assert_eq!((table.len(), table.num_columns()), (2, 2));
/// assert_eq!(table.get(1), Some(&[3.0, 4.0][..]));
/// assert_eq!(table.line(1), Some(3)); // the header was line 1
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct Records {
    name: String,
    columns: usize,
    values: Vec<f64>,
    lines: Vec<usize>,
}

impl Records {
    /// The file name (or the name given to an in-memory buffer).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Number of records (rows).
    pub fn len(&self) -> usize {
        self.lines.len()
    }

    /// Whether there are no records (never the case for a table a reader returned).
    pub fn is_empty(&self) -> bool {
        self.lines.is_empty()
    }

    /// Number of columns of every record.
    pub fn num_columns(&self) -> usize {
        self.columns
    }

    /// Record `i`, or `None` past the end.
    pub fn get(&self, i: usize) -> Option<&[f64]> {
        let start = i.checked_mul(self.columns)?;
        self.values.get(start..start + self.columns)
    }

    /// The 1-based line of the file that record `i` starts on.
    pub fn line(&self, i: usize) -> Option<usize> {
        self.lines.get(i).copied()
    }

    /// All values, row-major (`len() * num_columns()` of them).
    pub fn values(&self) -> &[f64] {
        &self.values
    }

    /// The records in order.
    pub fn iter(&self) -> impl Iterator<Item = &[f64]> + '_ {
        self.values.chunks_exact(self.columns.max(1))
    }
}

/// DataVec's `CSVRecordReader` for numeric data: skips `skip_lines` header lines, splits
/// fields on a delimiter with RFC 4180 quoting (`"a,b"` is one field, `""` inside quotes is
/// one `"`, quoted fields may span lines), and parses every field as a finite `f64` (leading
/// and trailing spaces allowed).
///
/// Lines that are empty or hold only whitespace are skipped; `\n`, `\r\n` and `\r` all end a
/// line. Every record must have as many columns as the first. The whole file is parsed by
/// [`initialize`](Self::initialize) (or [`initialize_str`](Self::initialize_str) /
/// [`initialize_bytes`](Self::initialize_bytes) for data in memory); errors are
/// [`DataError::Parse`] naming the file, the 1-based line and column (field number), what was
/// expected and the text found, or [`DataError::Format`] for a file with no records, or
/// [`DataError::Io`] for a file that cannot be read.
///
/// After initialization the reader also iterates over its records like DataVec's
/// (`has_next` / `next_record` / `reset`), and is what
/// [`RecordReaderDataSetIterator`](super::RecordReaderDataSetIterator) turns into batches.
///
/// ```
/// use dl4rs_data::records::CsvRecordReader;
///
/// let mut reader = CsvRecordReader::new(0, ';');
/// reader.initialize_str("in-memory", "1;\"2.5\"\n\"-3\";4e1\n").unwrap();
/// let mut rows = Vec::new();
/// while let Some(r) = reader.next_record() {
///     rows.push(r.to_vec());
/// }
/// assert_eq!(rows, [[1.0, 2.5], [-3.0, 40.0]]);
///
/// let err = reader.initialize_str("bad.csv", "1;2\n3;x\n").unwrap_err();
/// assert_eq!(
///     err.to_string(),
///     "bad.csv: line 2, column 2: expected a number, found \"x\""
/// );
/// ```
#[derive(Debug, Clone)]
pub struct CsvRecordReader {
    skip_lines: usize,
    delimiter: char,
    records: Option<Records>,
    cursor: usize,
}

impl Default for CsvRecordReader {
    /// No header lines, comma-delimited.
    fn default() -> Self {
        CsvRecordReader::new(0, ',')
    }
}

impl CsvRecordReader {
    /// A reader that skips the first `skip_lines` lines of every file and splits fields on
    /// `delimiter` (`'"'`, `'\n'` and `'\r'` are rejected when parsing).
    pub fn new(skip_lines: usize, delimiter: char) -> Self {
        CsvRecordReader {
            skip_lines,
            delimiter,
            records: None,
            cursor: 0,
        }
    }

    /// Number of lines skipped at the start of every file.
    pub fn skip_lines(&self) -> usize {
        self.skip_lines
    }

    /// The field delimiter.
    pub fn delimiter(&self) -> char {
        self.delimiter
    }

    /// Reads and parses the file at `path` (UTF-8 text), replacing any previous data.
    pub fn initialize(&mut self, path: impl AsRef<Path>) -> Result<(), DataError> {
        let records = self.parse_file(path.as_ref())?;
        self.set(records);
        Ok(())
    }

    /// Parses `text`, calling it `name` in error messages, replacing any previous data.
    pub fn initialize_str(&mut self, name: &str, text: &str) -> Result<(), DataError> {
        let records = self.parse_str(name, text)?;
        self.set(records);
        Ok(())
    }

    /// Parses UTF-8 `bytes`, calling them `name` in error messages, replacing any previous
    /// data.
    pub fn initialize_bytes(&mut self, name: &str, bytes: &[u8]) -> Result<(), DataError> {
        let records = self.parse_bytes(name, bytes)?;
        self.set(records);
        Ok(())
    }

    fn set(&mut self, records: Records) {
        self.records = Some(records);
        self.cursor = 0;
    }

    /// Parses the file at `path` with this reader's settings, without keeping the result.
    pub fn parse_file(&self, path: &Path) -> Result<Records, DataError> {
        let bytes = std::fs::read(path).map_err(|source| DataError::Io {
            path: path.to_owned(),
            source,
        })?;
        self.parse_bytes(&path.display().to_string(), &bytes)
    }

    /// Parses UTF-8 `bytes` with this reader's settings, without keeping the result.
    pub fn parse_bytes(&self, name: &str, bytes: &[u8]) -> Result<Records, DataError> {
        match std::str::from_utf8(bytes) {
            Ok(text) => self.parse_str(name, text),
            Err(e) => {
                let good = &bytes[..e.valid_up_to()];
                let line = 1 + good.iter().filter(|&&b| b == b'\n').count();
                let line_start = good.iter().rposition(|&b| b == b'\n').map_or(0, |p| p + 1);
                Err(DataError::Parse {
                    name: name.to_owned(),
                    line,
                    column: 1 + count_fields_before(&good[line_start..], self.delimiter),
                    message: format!(
                        "expected UTF-8 text, found the invalid byte 0x{:02x}",
                        bytes[e.valid_up_to()]
                    ),
                })
            }
        }
    }

    /// Parses `text` with this reader's settings, without keeping the result.
    pub fn parse_str(&self, name: &str, text: &str) -> Result<Records, DataError> {
        if matches!(self.delimiter, '"' | '\n' | '\r') {
            return Err(format_error(
                name,
                format!(
                    "expected a delimiter other than a quote or a line break, found {:?}",
                    self.delimiter
                ),
            ));
        }
        Parser {
            name,
            text,
            pos: 0,
            line: 1,
            delimiter: self.delimiter,
            skip_lines: self.skip_lines,
        }
        .run()
    }

    /// The parsed table, once initialized.
    pub fn records(&self) -> Option<&Records> {
        self.records.as_ref()
    }

    /// Gives the parsed table back, once initialized.
    pub fn into_records(self) -> Option<Records> {
        self.records
    }

    /// Whether [`next_record`](Self::next_record) has another record.
    pub fn has_next(&self) -> bool {
        self.records.as_ref().is_some_and(|r| self.cursor < r.len())
    }

    /// The next record, or `None` at the end (or before initialization).
    pub fn next_record(&mut self) -> Option<&[f64]> {
        let records = self.records.as_ref()?;
        let row = records.get(self.cursor)?;
        self.cursor += 1;
        Some(row)
    }

    /// Starts again from the first record.
    pub fn reset(&mut self) {
        self.cursor = 0;
    }
}

/// Number of delimiters outside quotes in `line` (for locating an encoding error).
fn count_fields_before(line: &[u8], delimiter: char) -> usize {
    let mut buf = [0u8; 4];
    let d = delimiter.encode_utf8(&mut buf).as_bytes();
    let mut quoted = false;
    let mut n = 0;
    let mut i = 0;
    while i < line.len() {
        if line[i] == b'"' {
            quoted = !quoted;
        } else if !quoted && line[i..].starts_with(d) {
            n += 1;
            i += d.len();
            continue;
        }
        i += 1;
    }
    n
}

struct Parser<'a> {
    name: &'a str,
    text: &'a str,
    pos: usize,
    line: usize,
    delimiter: char,
    skip_lines: usize,
}

impl Parser<'_> {
    fn peek(&self) -> Option<char> {
        self.text[self.pos..].chars().next()
    }

    fn bump(&mut self) -> Option<char> {
        let c = self.peek()?;
        self.pos += c.len_utf8();
        Some(c)
    }

    /// Consumes a line terminator (`\n`, `\r\n` or `\r`) if one is next.
    fn eat_line_end(&mut self) -> bool {
        match self.peek() {
            Some('\n') => {
                self.pos += 1;
                self.line += 1;
                true
            }
            Some('\r') => {
                self.pos += 1;
                if self.peek() == Some('\n') {
                    self.pos += 1;
                }
                self.line += 1;
                true
            }
            _ => false,
        }
    }

    /// Skips to the start of the next line (or the end of the text).
    fn skip_line(&mut self) {
        while let Some(c) = self.peek() {
            if self.eat_line_end() {
                return;
            }
            self.pos += c.len_utf8();
        }
    }

    fn rest_of_line_is_blank(&self) -> bool {
        self.text[self.pos..]
            .split(['\n', '\r'])
            .next()
            .is_none_or(|l| l.trim().is_empty())
    }

    fn error(&self, line: usize, column: usize, message: String) -> DataError {
        DataError::Parse {
            name: self.name.to_owned(),
            line,
            column,
            message,
        }
    }

    fn run(mut self) -> Result<Records, DataError> {
        for _ in 0..self.skip_lines {
            if self.pos >= self.text.len() {
                break;
            }
            self.skip_line();
        }
        let mut values = Vec::new();
        let mut lines = Vec::new();
        let mut columns: Option<(usize, usize)> = None; // (columns, line of the first record)
        let mut field = String::new();
        while self.pos < self.text.len() {
            if self.rest_of_line_is_blank() {
                self.skip_line();
                continue;
            }
            let record_line = self.line;
            let start = values.len();
            let mut column = 1;
            loop {
                let field_line = self.line;
                field.clear();
                let quoted = self.peek() == Some('"');
                if quoted {
                    self.pos += 1;
                    loop {
                        match self.bump() {
                            None => {
                                return Err(self.error(
                                    field_line,
                                    column,
                                    "unterminated quoted field: expected a closing '\"', found \
                                     the end of the file"
                                        .to_owned(),
                                ));
                            }
                            Some('"') if self.peek() == Some('"') => {
                                self.pos += 1;
                                field.push('"');
                            }
                            Some('"') => break,
                            Some(c) => {
                                if c == '\n' || (c == '\r' && self.peek() != Some('\n')) {
                                    self.line += 1;
                                }
                                field.push(c);
                            }
                        }
                    }
                    match self.peek() {
                        None | Some('\n' | '\r') => {}
                        Some(c) if c == self.delimiter => {}
                        Some(c) => {
                            return Err(self.error(
                                self.line,
                                column,
                                format!(
                                    "malformed quoted field: expected the delimiter {:?} or the \
                                     end of the line after the closing '\"', found {c:?}",
                                    self.delimiter
                                ),
                            ));
                        }
                    }
                } else {
                    while let Some(c) = self.peek() {
                        if c == self.delimiter || c == '\n' || c == '\r' {
                            break;
                        }
                        if c == '"' {
                            return Err(self.error(
                                self.line,
                                column,
                                format!(
                                    "malformed field: found a '\"' inside the unquoted field \
                                     \"{field}\" (quote the whole field and double the quotes \
                                     inside it)"
                                ),
                            ));
                        }
                        field.push(c);
                        self.pos += c.len_utf8();
                    }
                }
                values.push(self.number(&field, field_line, column)?);
                if self.peek() == Some(self.delimiter) {
                    self.pos += self.delimiter.len_utf8();
                    column += 1;
                    continue;
                }
                self.eat_line_end();
                break;
            }
            let found = values.len() - start;
            match columns {
                None => columns = Some((found, record_line)),
                Some((expected, first)) if expected != found => {
                    return Err(self.error(
                        record_line,
                        expected.min(found) + 1,
                        format!(
                            "expected {expected} columns (like line {first}, the first record), \
                             found {found}"
                        ),
                    ));
                }
                Some(_) => {}
            }
            lines.push(record_line);
        }
        let Some((columns, _)) = columns else {
            let what = if self.skip_lines > 0 {
                format!(
                    "expected at least one record, found none (an empty file after skipping {} \
                     line(s))",
                    self.skip_lines
                )
            } else {
                "expected at least one record, found an empty file".to_owned()
            };
            return Err(format_error(self.name, what));
        };
        Ok(Records {
            name: self.name.to_owned(),
            columns,
            values,
            lines,
        })
    }

    fn number(&self, field: &str, line: usize, column: usize) -> Result<f64, DataError> {
        let t = field.trim();
        if t.is_empty() {
            return Err(self.error(
                line,
                column,
                "expected a number, found an empty field".to_owned(),
            ));
        }
        match t.parse::<f64>() {
            Ok(v) if v.is_finite() => Ok(v),
            Ok(_) => Err(self.error(
                line,
                column,
                format!("expected a finite number, found {field:?}"),
            )),
            Err(_) => Err(self.error(line, column, format!("expected a number, found {field:?}"))),
        }
    }
}
