//! Moving old, settled history out of the live journal: the sales of days
//! that reconciliation found matching the bills, once past the gateways'
//! refund window, go to one gzip-compressed journal file per month
//! (`archive/YYYY-MM.sqlite.gz` beside the journal). An archive is a
//! journal itself, with the same schema, so `journal show` and `reconcile`
//! read it with the same code.
//!
//! Order of work, so a crash loses nothing: the month's file is written,
//! synced and renamed into place first; only then are its sales deleted
//! from the live journal, in one transaction. A crash between the two
//! leaves them in both, and the next run finds them already archived.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use rusqlite::{params, TransactionBehavior};

use super::{now_ms, Journal, JournalError, Result};

/// Where a journal's monthly archives live.
pub fn dir_of(journal: &Path) -> PathBuf {
    journal.parent().unwrap_or(Path::new(".")).join("archive")
}

/// The archive file of `month` (`YYYY-MM`).
pub fn file_of(dir: &Path, month: &str) -> PathBuf {
    dir.join(format!("{month}.sqlite.gz"))
}

fn io(path: &Path) -> impl Fn(std::io::Error) -> JournalError + '_ {
    move |e| JournalError::Corrupt(format!("archive {}: {e}", path.display()))
}

/// An archive opened for reading: decompressed into a temporary file.
pub struct Opened {
    pub journal: Journal,
    _tmp: tempfile::NamedTempFile,
}

/// Opens the archive at `gz`.
pub fn open(gz: &Path) -> Result<Opened> {
    let tmp = decompress(gz)?;
    let journal = Journal::open(tmp.path(), "archive")?;
    Ok(Opened { journal, _tmp: tmp })
}

fn decompress(gz: &Path) -> Result<tempfile::NamedTempFile> {
    let mut tmp = tempfile::NamedTempFile::new().map_err(io(gz))?;
    let file = std::fs::File::open(gz).map_err(io(gz))?;
    let mut bytes = Vec::new();
    flate2::read::GzDecoder::new(file)
        .read_to_end(&mut bytes)
        .map_err(io(gz))?;
    tmp.write_all(&bytes).map_err(io(gz))?;
    tmp.flush().map_err(io(gz))?;
    Ok(tmp)
}

/// Writes `from` compressed to `gz`, durably: a temporary file beside it,
/// synced, renamed over it, the directory synced.
fn compress_into(from: &Path, gz: &Path) -> Result<()> {
    let dir = gz.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(io(gz))?;
    let bytes = std::fs::read(from).map_err(io(from))?;
    let mut tmp = tempfile::NamedTempFile::new_in(dir).map_err(io(gz))?;
    {
        let mut enc = flate2::write::GzEncoder::new(&mut tmp, flate2::Compression::best());
        enc.write_all(&bytes).map_err(io(gz))?;
        enc.finish().map_err(io(gz))?;
    }
    tmp.as_file().sync_all().map_err(io(gz))?;
    tmp.persist(gz).map_err(|e| io(gz)(e.error))?;
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io(gz))?;
    Ok(())
}

/// The tables an archive takes, children last in this list's reverse.
const TABLES: [(&str, &str); 5] = [
    ("sales", "order_no IN (SELECT order_no FROM moving)"),
    ("attempts", "order_no IN (SELECT order_no FROM moving)"),
    ("refunds", "order_no IN (SELECT order_no FROM moving)"),
    (
        "resolutions",
        "out_trade_no IN (SELECT out_trade_no FROM attempts WHERE order_no IN (SELECT order_no FROM moving))",
    ),
    ("events", "order_no IN (SELECT order_no FROM moving)"),
];

/// What one archiving run did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Archived {
    pub month: String,
    pub sales: usize,
    pub file: PathBuf,
}

impl Journal {
    /// The months (`YYYY-MM`) with sales on days before `before`.
    pub fn months_before(&self, before: &str) -> Result<Vec<String>> {
        let conn = self.lock();
        let mut s = conn.prepare(
            "SELECT DISTINCT substr(local_date, 1, 7) FROM sales WHERE local_date < ?1 ORDER BY 1",
        )?;
        let months = s.query_map([before], |r| r.get(0))?;
        Ok(months.collect::<rusqlite::Result<_>>()?)
    }

    /// Records that reconciliation found `date` matching the bills.
    pub fn mark_reconciled(&self, date: &str, matched: u64) -> Result<()> {
        let conn = self.lock();
        conn.execute(
            "INSERT INTO reconciled (local_date, at, matched) VALUES (?1, ?2, ?3)
             ON CONFLICT (local_date) DO UPDATE SET at = ?2, matched = ?3",
            params![date, now_ms(), matched as i64],
        )?;
        Ok(())
    }

    /// Moves the sales of `month` (`YYYY-MM`) on days before `before`
    /// (`YYYY-MM-DD`) that are settled to the month's archive in `dir`: a
    /// sale goes when its day, and the day each of its payments was booked
    /// on, were reconciled clean, every attempt of it is final (paid,
    /// failed, revoked), no refund of it is still open, no new round of
    /// it is waiting and, on a till that syncs to HQ, HQ has acknowledged
    /// its whole history. One run at a time per archive directory.
    pub fn archive_month(&self, month: &str, before: &str, dir: &Path) -> Result<Archived> {
        self.archive_month_then(month, before, dir, &|| {})
    }

    /// [`Journal::archive_month`], running `after_copy` once the month's
    /// file is in place and before anything leaves the live journal: the
    /// moment a daemon writing to the same journal may add to a sale's
    /// history (the tests' way in).
    fn archive_month_then(
        &self,
        month: &str,
        before: &str,
        dir: &Path,
        after_copy: &dyn Fn(),
    ) -> Result<Archived> {
        std::fs::create_dir_all(dir).map_err(io(dir))?;
        let _one_run = RunLock::take(dir)?;
        let gz = file_of(dir, month);
        let work = match gz.exists() {
            true => decompress(&gz)?,
            false => tempfile::NamedTempFile::new().map_err(io(&gz))?,
        };
        // The archive's own schema, at this tillpay's version; written in
        // rollback-journal mode, so every committed row is in the one file
        // that gets compressed.
        drop(Journal::open(work.path(), "archive")?);
        rusqlite::Connection::open(work.path())
            .and_then(|c| c.pragma_update(None, "journal_mode", "DELETE"))?;
        let mut conn = self.lock();
        // Which sales, each with the last event of its history: the copy
        // and the delete are one snapshot apart, and a sale whose history
        // grew in between (a refund, a resolution) stays live.
        conn.execute_batch(
            "DROP TABLE IF EXISTS temp.moving;
             CREATE TEMP TABLE moving (order_no TEXT PRIMARY KEY, last_event INTEGER)",
        )?;
        let count = conn.execute(
            "INSERT INTO moving SELECT s.order_no,
                    (SELECT MAX(id) FROM events e WHERE e.order_no = s.order_no)
             FROM sales s
             WHERE s.local_date LIKE ?1 || '-%' AND s.local_date < ?2 AND s.waiting = 0
               AND s.local_date IN (SELECT local_date FROM reconciled)
               AND NOT EXISTS (SELECT 1 FROM attempts a WHERE a.order_no = s.order_no
                    AND (a.phase NOT IN ('paid', 'failed', 'revoked')
                         OR (a.paid_at IS NOT NULL AND date(a.paid_at, 'localtime')
                             NOT IN (SELECT local_date FROM reconciled))))
               AND NOT EXISTS (SELECT 1 FROM refunds f WHERE f.order_no = s.order_no
                    AND f.status IN ('pending', 'processing'))
               -- A till that syncs to HQ keeps a sale until HQ has all of it.
               AND (SELECT MAX(id) FROM events e WHERE e.order_no = s.order_no)
                    <= COALESCE((SELECT value FROM meta WHERE key = 'hq_high_water'), 9223372036854775807)",
            params![month, before],
        )?;
        if count == 0 {
            return Ok(Archived {
                month: month.to_string(),
                sales: 0,
                file: gz,
            });
        }
        conn.execute(
            "ATTACH DATABASE ?1 AS arch",
            [work.path().display().to_string()],
        )?;
        let copied = (|| -> rusqlite::Result<()> {
            let tx = conn.transaction()?;
            // A sale copied by an earlier run whose history then grew (it
            // stayed live) is copied afresh: its rows as they are now, its
            // events added to those already there (history only grows).
            for (table, which) in TABLES.iter().rev().filter(|(t, _)| *t != "events") {
                tx.execute(&format!("DELETE FROM arch.{table} WHERE {which}"), [])?;
            }
            for (table, which) in TABLES {
                tx.execute(
                    &format!("INSERT OR IGNORE INTO arch.{table} SELECT * FROM main.{table} WHERE {which}"),
                    [],
                )?;
            }
            tx.execute(
                "INSERT OR IGNORE INTO arch.reconciled SELECT * FROM main.reconciled WHERE local_date LIKE ?1 || '-%'",
                [month],
            )?;
            tx.commit()
        })();
        let detached = conn.execute("DETACH DATABASE arch", []);
        copied?;
        detached?;
        drop(conn);
        compress_into(work.path(), &gz)?;
        after_copy();
        // Durable in the archive: now out of the live journal, each sale
        // only if nothing was added to its history since the copy. The one
        // sanctioned deletion of history: the trigger that forbids it is
        // lifted for this transaction only.
        let mut conn = self.lock();
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        tx.execute(
            "DELETE FROM moving WHERE last_event IS NOT
                 (SELECT MAX(id) FROM events e WHERE e.order_no = moving.order_no)
             OR (SELECT waiting FROM sales s WHERE s.order_no = moving.order_no) != 0",
            [],
        )?;
        let moved: i64 = tx.query_row("SELECT COUNT(*) FROM moving", [], |r| r.get(0))?;
        // The newest event that leaves: an HQ that later asks for events
        // from before it (restored from a backup) cannot be given them from
        // the live journal, and the sync says so instead of skipping them.
        tx.execute(
            "INSERT INTO meta (key, value)
                 SELECT 'archived_event_max', m FROM (SELECT MAX(last_event) AS m FROM moving)
                 WHERE m IS NOT NULL
             ON CONFLICT (key) DO UPDATE SET value = MAX(value, excluded.value)",
            [],
        )?;
        tx.execute_batch("DROP TRIGGER events_no_delete")?;
        for (table, which) in TABLES.iter().rev() {
            tx.execute(&format!("DELETE FROM main.{table} WHERE {which}"), [])?;
        }
        tx.execute_batch(
            "CREATE TRIGGER events_no_delete BEFORE DELETE ON events
                 BEGIN SELECT RAISE(ABORT, 'the event history is append-only'); END;
             DROP TABLE temp.moving;",
        )?;
        tx.commit()?;
        Ok(Archived {
            month: month.to_string(),
            sales: moved as usize,
            file: gz,
        })
    }
}

/// An exclusive advisory lock on the archive directory for one run: two
/// runs at once would each rename their own copy of a month's file over
/// the other's.
struct RunLock {
    _file: std::fs::File,
}

impl RunLock {
    fn take(dir: &Path) -> Result<RunLock> {
        use std::os::fd::AsRawFd;
        let path = dir.join(".lock");
        let f = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(io(&path))?;
        // SAFETY: flock(2) on a descriptor this function owns; the lock is
        // released when the file is closed (RunLock dropped).
        let r = unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
        if r != 0 {
            return Err(JournalError::Refused(format!(
                "another `tillpay journal archive` is running on {}",
                dir.display()
            )));
        }
        Ok(RunLock { _file: f })
    }
}

#[cfg(test)]
mod tests;
