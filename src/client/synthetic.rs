//! TEMPORARY stub until the generator lands.
use chrono::NaiveDate;
use std::io::{self, Write};
pub struct SyntheticOptions {
    pub clients: u64,
    pub seed: u64,
    pub history_days: u32,
    pub today: NaiveDate,
}
pub fn write_clients_csv<W: Write>(opts: &SyntheticOptions, mut out: W) -> io::Result<()> {
    writeln!(out, "id,name,email,phone,consent_sms")?;
    for i in 1..=opts.clients {
        writeln!(out, "{:010},客户{i},c{i}@example.com,138{:08},true", i, i)?;
    }
    Ok(())
}
pub fn write_history_jsonl<W: Write>(_opts: &SyntheticOptions, _out: W) -> io::Result<u64> {
    Ok(0)
}
