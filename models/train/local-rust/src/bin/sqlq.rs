//! Runs one SQL query on a SQLite database and prints the rows as CSV.
fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = pico_args::Arguments::from_env();
    let db: String = args.free_from_str()?;
    let query: String = args.free_from_str()?;
    let conn = rusqlite::Connection::open(db)?;
    let mut stmt = conn.prepare(&query)?;
    let n = stmt.column_count();
    let mut out = csv::Writer::from_writer(std::io::stdout());
    let mut rows = stmt.query([])?;
    while let Some(row) = rows.next()? {
        let fields: Vec<String> = (0..n)
            .map(|i| {
                row.get::<_, rusqlite::types::Value>(i)
                    .map(|v| format!("{v:?}"))
                    .unwrap_or_default()
            })
            .collect();
        out.write_record(&fields)?;
    }
    out.flush()?;
    Ok(())
}
