//! CsvRecordReader: RFC 4180 quoting, header skipping, delimiters, and every bad-input case
//! with its full message (file, line, column, expected and found).

mod common;

use common::TempDir;
use dl4rs_data::DataError;
use dl4rs_data::records::{CsvRecordReader, Records};

fn parse(skip: usize, delim: char, text: &str) -> Result<Records, DataError> {
    CsvRecordReader::new(skip, delim).parse_str("t.csv", text)
}

fn rows(r: &Records) -> Vec<Vec<f64>> {
    r.iter().map(<[f64]>::to_vec).collect()
}

fn err(skip: usize, delim: char, text: &str) -> String {
    parse(skip, delim, text).unwrap_err().to_string()
}

#[test]
fn plain_quoted_and_spaced_fields() {
    let r = parse(0, ',', "1,2.5,-3\n\"4\", 5e-1 ,\"  6 \"\n").unwrap();
    assert_eq!(rows(&r), [vec![1.0, 2.5, -3.0], vec![4.0, 0.5, 6.0]]);
    assert_eq!((r.len(), r.num_columns(), r.name()), (2, 3, "t.csv"));
    assert_eq!((r.line(0), r.line(1), r.line(2)), (Some(1), Some(2), None));
    assert_eq!(r.get(2), None);
}

#[test]
fn quoted_fields_with_delimiters_doubled_quotes_and_line_breaks_in_the_header() {
    // The header holds a quoted delimiter, doubled quotes and a quoted line break; the header
    // is skipped by lines, so a quoted break in it is not supported — keep it on one line.
    let text = "\"a,b\",\"say \"\"hi\"\"\",c\n1,2,3\n";
    let r = parse(1, ',', text).unwrap();
    assert_eq!(rows(&r), [vec![1.0, 2.0, 3.0]]);
    assert_eq!(r.line(0), Some(2));
    // Without skipping, the quoted header fields are parsed (and rejected with their text).
    assert_eq!(
        err(0, ',', text),
        "t.csv: line 1, column 1: expected a number, found \"a,b\""
    );
    assert_eq!(
        err(0, ',', "1,\"say \"\"hi\"\"\"\n"),
        "t.csv: line 1, column 2: expected a number, found \"say \\\"hi\\\"\""
    );
    // A quoted field may span lines; the next record's line number accounts for it.
    let r = parse(0, ',', "\"1\n\",2\n3,4\n").unwrap();
    assert_eq!(rows(&r), [vec![1.0, 2.0], vec![3.0, 4.0]]);
    assert_eq!((r.line(0), r.line(1)), (Some(1), Some(3)));
}

#[test]
fn skip_lines_blank_lines_crlf_and_no_final_newline() {
    let r = parse(2, ',', "title\nx,y\r\n1,2\r\n\r\n   \n3,4").unwrap();
    assert_eq!(rows(&r), [vec![1.0, 2.0], vec![3.0, 4.0]]);
    assert_eq!((r.line(0), r.line(1)), (Some(3), Some(6)));
}

#[test]
fn custom_delimiters() {
    let r = parse(0, ';', "1;\"2;3\"\n4;5\n");
    // "2;3" is one field, which is not a number.
    assert_eq!(
        r.unwrap_err().to_string(),
        "t.csv: line 1, column 2: expected a number, found \"2;3\""
    );
    // With ';' as the delimiter, "2,5" is one (non-numeric) field.
    assert_eq!(
        err(0, ';', "1;2,5\n"),
        "t.csv: line 1, column 2: expected a number, found \"2,5\""
    );
    let r = parse(0, '\t', "1\t2\n3\t4\n").unwrap();
    assert_eq!(rows(&r), [vec![1.0, 2.0], vec![3.0, 4.0]]);
    let r = parse(0, '|', "1|\"2\"|3\n").unwrap();
    assert_eq!(rows(&r), [vec![1.0, 2.0, 3.0]]);
    let r = parse(0, '→', "1→2\n").unwrap();
    assert_eq!(rows(&r), [vec![1.0, 2.0]]);
    assert_eq!(
        err(0, '"', "1\n"),
        "t.csv: expected a delimiter other than a quote or a line break, found '\"'"
    );
}

#[test]
fn malformed_quotes() {
    assert_eq!(
        err(0, ',', "1,2\n3,\"4\n"),
        "t.csv: line 2, column 2: unterminated quoted field: expected a closing '\"', found the \
         end of the file"
    );
    assert_eq!(
        err(0, ',', "1,\"2\"x,3\n"),
        "t.csv: line 1, column 2: malformed quoted field: expected the delimiter ',' or the end \
         of the line after the closing '\"', found 'x'"
    );
    assert_eq!(
        err(0, ',', "1,2\n3,4\"5\n"),
        "t.csv: line 2, column 2: malformed field: found a '\"' inside the unquoted field \"4\" \
         (quote the whole field and double the quotes inside it)"
    );
}

#[test]
fn wrong_column_counts() {
    assert_eq!(
        err(1, ',', "h\n1,2,3\n4,5,6\n7,8\n"),
        "t.csv: line 4, column 3: expected 3 columns (like line 2, the first record), found 2"
    );
    assert_eq!(
        err(0, ',', "1,2\n3,4,5,6\n"),
        "t.csv: line 2, column 3: expected 2 columns (like line 1, the first record), found 4"
    );
}

#[test]
fn non_numeric_empty_and_non_finite_fields() {
    assert_eq!(
        err(0, ',', "1,2,3\n4,five,6\n"),
        "t.csv: line 2, column 2: expected a number, found \"five\""
    );
    assert_eq!(
        err(0, ',', "1,,3\n"),
        "t.csv: line 1, column 2: expected a number, found an empty field"
    );
    assert_eq!(
        err(0, ',', "1,2\n3,\n"),
        "t.csv: line 2, column 2: expected a number, found an empty field"
    );
    assert_eq!(
        err(0, ',', "NaN,1\n"),
        "t.csv: line 1, column 1: expected a finite number, found \"NaN\""
    );
    assert_eq!(
        err(0, ',', "1,-inf\n"),
        "t.csv: line 1, column 2: expected a finite number, found \"-inf\""
    );
}

#[test]
fn empty_inputs() {
    assert_eq!(
        err(0, ',', ""),
        "t.csv: expected at least one record, found an empty file"
    );
    assert_eq!(
        err(0, ',', "\n  \n\r\n"),
        "t.csv: expected at least one record, found an empty file"
    );
    assert_eq!(
        err(2, ',', "a,b\nc,d\n"),
        "t.csv: expected at least one record, found none (an empty file after skipping 2 \
         line(s))"
    );
}

#[test]
fn invalid_utf8_names_the_line_and_column() {
    let e = CsvRecordReader::new(0, ',')
        .parse_bytes("b.csv", b"1,2\n3,\xff\n")
        .unwrap_err();
    assert_eq!(
        e.to_string(),
        "b.csv: line 2, column 2: expected UTF-8 text, found the invalid byte 0xff"
    );
}

#[test]
fn files_missing_and_present() {
    let dir = TempDir::new("records-csv");
    let missing = dir.0.join("nope.csv");
    let mut reader = CsvRecordReader::new(1, ',');
    let e = reader.initialize(&missing).unwrap_err();
    assert!(matches!(e, DataError::Io { .. }));
    let msg = e.to_string();
    assert!(
        msg.starts_with(&format!("{}: cannot read: ", missing.display())),
        "{msg}"
    );

    let path = dir.write("ok.csv", b"a,b\n1,2\n3,\"x\"\n");
    let e = reader.initialize(&path).unwrap_err();
    assert_eq!(
        e.to_string(),
        format!(
            "{}: line 3, column 2: expected a number, found \"x\"",
            path.display()
        )
    );
    let path = dir.write("ok2.csv", b"a,b\n1,2\n3,4\n");
    reader.initialize(&path).unwrap();
    assert_eq!(reader.records().unwrap().name(), path.display().to_string());
    let mut seen = Vec::new();
    while let Some(r) = reader.next_record() {
        seen.push(r.to_vec());
    }
    assert_eq!(seen, [vec![1.0, 2.0], vec![3.0, 4.0]]);
    assert!(!reader.has_next());
    reader.reset();
    assert!(reader.has_next());
}

#[test]
fn uninitialized_reader_has_nothing() {
    let mut r = CsvRecordReader::default();
    assert!(!r.has_next());
    assert!(r.next_record().is_none());
    assert!(r.records().is_none());
    assert_eq!((r.skip_lines(), r.delimiter()), (0, ','));
}
