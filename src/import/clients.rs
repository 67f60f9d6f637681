//! `herald import clients FILE`: CSV or JSONL, upserted by id.

use std::path::Path;
use std::time::Instant;

use serde::Serialize;
use serde_json::Value;
use tokio::sync::mpsc;

use super::{
    open, parse_jsonl, progress, refresh, skip_bom, BatchSender, Format, ImportError, Rejection,
    Rejections,
};
use crate::client::consent::ConsentScope;
use crate::client::row::{check_header, Column, RowBuilder};
use crate::client::ClientRecord;
use crate::store::{Imported, RowChange, Store};
use crate::time::FirmTime;

/// How to import.
#[derive(Debug, Clone, Copy, Default)]
pub struct ClientImportOptions {
    /// Any bad row aborts the import with nothing written.
    pub strict: bool,
    /// No progress bar.
    pub quiet: bool,
}

/// A consent the file grants that herald recorded as refused; it stays refused.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Conflict {
    pub line: u64,
    pub id: String,
    pub consent: ConsentScope,
}

/// What an import did.
#[derive(Debug, Default, Serialize)]
pub struct ClientImportSummary {
    pub file: String,
    pub rows: u64,
    pub imported: u64,
    pub updated: u64,
    pub unchanged: u64,
    pub rejected: u64,
    pub conflicts: u64,
    /// False when `--strict` found bad rows and wrote nothing.
    pub committed: bool,
    pub elapsed_ms: u64,
    pub conflict_details: Vec<Conflict>,
    pub rejections: Rejections,
}

/// Imports a client file into the store, streaming it: memory use does not
/// grow with the file.
pub async fn import_clients(
    store: &dyn Store,
    path: &Path,
    opts: ClientImportOptions,
    time: &FirmTime,
) -> Result<ClientImportSummary, ImportError> {
    let started = Instant::now();
    let (reader, size) = open(path)?;
    let name = path.display().to_string();
    let bar = progress(size, opts.quiet);
    let (tx, mut rx) = mpsc::channel(4);
    let format = Format::of(path);
    let parser = tokio::task::spawn_blocking(move || {
        let sender = BatchSender::new(tx);
        match format {
            Format::Csv => parse_csv(reader, sender),
            Format::Jsonl => parse_jsonl(reader, sender, json_row),
        }
    });

    let mut writer = store.client_writer(opts.strict).await?;
    let mut summary = ClientImportSummary {
        file: name.clone(),
        ..Default::default()
    };
    let now = time.now();
    while let Some(batch) = rx.recv().await {
        let batch = batch.map_err(|message| ImportError::Format {
            path: name.clone(),
            message,
        })?;
        for fields in batch.rejected {
            summary.rows += 1;
            summary.rejections.add_row(fields);
        }
        // Under --strict, once a row is bad nothing will be kept: stop
        // writing, but read on to report every bad row.
        if !(opts.strict && summary.rejections.rows > 0) {
            let (lines, records): (Vec<u64>, Vec<ClientRecord>) = batch.items.into_iter().unzip();
            let outcomes = writer.write(&records, now).await?;
            tally(&mut summary, &lines, &records, &outcomes);
        } else {
            summary.rows += batch.items.len() as u64;
        }
        bar.set_position(batch.bytes_read);
    }
    parser.await.map_err(|e| ImportError::Format {
        path: name.clone(),
        message: e.to_string(),
    })?;
    bar.finish_and_clear();

    summary.rejected = summary.rejections.rows;
    summary.committed = !(opts.strict && summary.rejected > 0);
    if summary.committed {
        writer.commit().await?;
        if summary.imported + summary.updated > 0 {
            refresh(store, Imported::Clients).await;
        }
    }
    summary.elapsed_ms = started.elapsed().as_millis() as u64;
    Ok(summary)
}

fn tally(
    summary: &mut ClientImportSummary,
    lines: &[u64],
    records: &[ClientRecord],
    outcomes: &[crate::store::RowOutcome],
) {
    for ((line, record), outcome) in lines.iter().zip(records).zip(outcomes) {
        summary.rows += 1;
        match outcome.change {
            RowChange::Inserted => summary.imported += 1,
            RowChange::Updated => summary.updated += 1,
            RowChange::Unchanged => summary.unchanged += 1,
        }
        for scope in &outcome.conflicts {
            summary.conflicts += 1;
            if summary.conflict_details.len() < super::MAX_REPORTED {
                summary.conflict_details.push(Conflict {
                    line: *line,
                    id: record.client.id.to_string(),
                    consent: *scope,
                });
            }
        }
    }
}

fn row_rejections(
    line: u64,
    id: Option<String>,
    errors: Vec<crate::client::row::FieldError>,
) -> Vec<Rejection> {
    errors
        .into_iter()
        .map(|e| Rejection {
            line,
            id: id.clone(),
            field: e.field,
            reason: e.reason,
        })
        .collect()
}

fn parse_csv<R: std::io::Read>(reader: R, mut out: BatchSender<ClientRecord>) {
    // Ending records at '\n' alone keeps csv's line numbers right for CRLF
    // files; the '\r' left on the last field is trimmed like any blank.
    let mut csv = csv::ReaderBuilder::new()
        .flexible(true)
        .terminator(csv::Terminator::Any(b'\n'))
        .from_reader(skip_bom(reader));
    let columns: Vec<Column> = match csv.byte_headers() {
        Ok(h) => match h
            .iter()
            .map(|b| std::str::from_utf8(b).map(Column::from_header))
            .collect()
        {
            Ok(cols) => cols,
            Err(_) => return out.fail("line 1: the header is not valid UTF-8".into()),
        },
        Err(e) => return out.fail(format!("cannot read the header: {e}")),
    };
    if let Err(message) = check_header(&columns) {
        return out.fail(format!("line 1: {message}"));
    }
    let mut record = csv::ByteRecord::new();
    loop {
        match csv.read_byte_record(&mut record) {
            Ok(false) => break,
            Ok(true) => {}
            Err(e) => return out.fail(format!("cannot read on: {e}")),
        }
        if record.len() == 1 && record[0].trim_ascii().is_empty() {
            continue; // a blank CRLF line
        }
        let line = record.position().map_or(0, |p| p.line());
        let bytes = csv.position().byte();
        let go_on = match csv_row(&columns, &record, line) {
            Ok(r) => out.item(line, r, bytes),
            Err(rejections) => out.reject(rejections, bytes),
        };
        if !go_on {
            return;
        }
    }
    let bytes = csv.position().byte();
    out.finish(bytes);
}

fn csv_row(
    columns: &[Column],
    record: &csv::ByteRecord,
    line: u64,
) -> Result<ClientRecord, Vec<Rejection>> {
    if record.len() != columns.len() {
        return Err(vec![Rejection {
            line,
            id: None,
            field: "(row)".into(),
            reason: format!(
                "has {} fields but the header has {}",
                record.len(),
                columns.len()
            ),
        }]);
    }
    let mut row = RowBuilder::new();
    let mut bad_text = Vec::new();
    for (column, raw) in columns.iter().zip(record.iter()) {
        let Ok(text) = std::str::from_utf8(raw) else {
            bad_text.push(column.name().to_owned());
            continue;
        };
        match column {
            Column::Known(f) => row.set(*f, text),
            Column::Attribute(name) => {
                row.set_attribute(name, Value::String(text.trim().to_owned()))
            }
        }
    }
    let id = row.id_for_report();
    let mut rejections: Vec<Rejection> = bad_text
        .into_iter()
        .map(|field| Rejection {
            line,
            id: id.clone(),
            field,
            reason: "is not valid UTF-8".into(),
        })
        .collect();
    match row.finish() {
        Ok(r) if rejections.is_empty() => Ok(r),
        Ok(_) => Err(rejections),
        Err((id, errors)) => {
            rejections.extend(row_rejections(line, id, errors));
            Err(rejections)
        }
    }
}

fn json_row(
    map: serde_json::Map<String, Value>,
    line: u64,
) -> Result<ClientRecord, Vec<Rejection>> {
    let mut row = RowBuilder::new();
    let mut bad = Vec::new();
    for (key, value) in map {
        match Column::from_header(&key) {
            Column::Known(f) => match json_text(&value) {
                Ok(text) => row.set(f, &text),
                Err(reason) => bad.push((f.name().to_owned(), reason)),
            },
            Column::Attribute(name) => row.set_attribute(&name, value),
        }
    }
    let id = row.id_for_report();
    let mut rejections: Vec<Rejection> = bad
        .into_iter()
        .map(|(field, reason)| Rejection {
            line,
            id: id.clone(),
            field,
            reason,
        })
        .collect();
    match row.finish() {
        Ok(r) if rejections.is_empty() => Ok(r),
        Ok(_) => Err(rejections),
        Err((id, errors)) => {
            rejections.extend(row_rejections(line, id, errors));
            Err(rejections)
        }
    }
}

/// A JSON value as the text a CSV cell would hold: lists join with `;`.
fn json_text(v: &Value) -> Result<String, String> {
    match v {
        Value::Null => Ok(String::new()),
        Value::String(s) => Ok(s.clone()),
        Value::Bool(b) => Ok(b.to_string()),
        Value::Number(n) => Ok(n.to_string()),
        Value::Array(items) => items
            .iter()
            .map(|i| match i {
                Value::String(s) => Ok(s.clone()),
                Value::Number(n) => Ok(n.to_string()),
                _ => Err("lists may hold only strings and numbers".to_owned()),
            })
            .collect::<Result<Vec<_>, _>>()
            .map(|parts| parts.join(";")),
        Value::Object(_) => Err("must not be an object".into()),
    }
}

/// Lets tests feed text without a file.
#[cfg(test)]
pub(crate) fn parse_text(format: Format, text: &str) -> (Vec<(u64, ClientRecord)>, Vec<Rejection>) {
    let (tx, mut rx) = mpsc::channel(1024);
    let bytes = text.as_bytes().to_vec();
    std::thread::spawn(move || {
        let sender = BatchSender::new(tx);
        match format {
            Format::Csv => parse_csv(std::io::Cursor::new(bytes), sender),
            Format::Jsonl => parse_jsonl(std::io::Cursor::new(bytes), sender, json_row),
        }
    })
    .join()
    .unwrap();
    let (mut good, mut bad) = (Vec::new(), Vec::new());
    while let Ok(batch) = rx.try_recv() {
        let batch = batch.expect("file-level error");
        good.extend(batch.items);
        bad.extend(batch.rejected.into_iter().flatten());
    }
    (good, bad)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_with_bom_crlf_quotes_and_chinese_reads_with_true_line_numbers() {
        let text = "\u{feff}id,name,phone,City\r\n\
                    000001,\"张三, 先生\",13812345678,上海\r\n\
                    \r\n\
                    000002,李四,138,\"北京\"\r\n\
                    000003,王五,13900000000,深圳\r\n";
        let (good, bad) = parse_text(Format::Csv, text);
        let ids: Vec<(u64, &str)> = good
            .iter()
            .map(|(l, r)| (*l, r.client.id.as_str()))
            .collect();
        assert_eq!(ids, vec![(2, "000001"), (5, "000003")]);
        assert_eq!(good[0].1.client.name, "张三, 先生");
        assert_eq!(good[1].1.client.attributes["City"], "深圳");
        assert_eq!(bad.len(), 1);
        assert_eq!((bad[0].line, bad[0].field.as_str()), (4, "phone"));
    }

    #[test]
    fn a_row_with_the_wrong_number_of_fields_is_rejected_alone() {
        let (good, bad) = parse_text(Format::Csv, "id,name\n1,a\n2,b,c\n3,c\n");
        assert_eq!(good.len(), 2);
        assert_eq!((bad[0].line, bad[0].field.as_str()), (3, "(row)"));
    }

    #[test]
    fn jsonl_rows_take_lists_numbers_and_attributes() {
        let text = "{\"id\":\"7\",\"name\":\"赵六\",\"assets\":1500000.5,\"holdings\":[\"600519\",\"000001\"],\"vip_since\":2019}\n\
                    not json\n\
                    \n\
                    {\"id\":\"8\",\"name\":\"钱七\",\"risk_level\":\"C9\"}\n";
        let (good, bad) = parse_text(Format::Jsonl, text);
        assert_eq!(good.len(), 1);
        let c = &good[0].1.client;
        assert_eq!(c.assets.unwrap().fen(), 150_000_050);
        assert_eq!(c.holdings.len(), 2);
        assert_eq!(c.attributes["vip_since"], 2019);
        let lines: Vec<(u64, &str)> = bad.iter().map(|r| (r.line, r.field.as_str())).collect();
        assert_eq!(lines, vec![(2, "(line)"), (4, "risk_level")]);
    }
}
