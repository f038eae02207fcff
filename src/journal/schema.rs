//! Versioned schema migrations, tracked in `PRAGMA user_version`.

use rusqlite::{Connection, OptionalExtension};

/// Migration `i` takes the schema from version `i` to `i + 1`.
const MIGRATIONS: &[&str] = &[
    // 1: sales, attempts, refunds, operator resolutions, and the
    // append-only history of every transition.
    r#"
    CREATE TABLE meta (
        key   TEXT PRIMARY KEY,
        value BLOB NOT NULL
    );
    CREATE TABLE sales (
        order_no   TEXT PRIMARY KEY,
        amount     INTEGER NOT NULL CHECK (amount > 0),
        subject    TEXT NOT NULL,
        local_date TEXT NOT NULL,
        created_at INTEGER NOT NULL,
        cancelled  INTEGER NOT NULL DEFAULT 0
    );
    CREATE TABLE attempts (
        out_trade_no     TEXT PRIMARY KEY,
        order_no         TEXT NOT NULL REFERENCES sales(order_no),
        seq              INTEGER NOT NULL,
        provider         TEXT NOT NULL,
        amount           INTEGER NOT NULL CHECK (amount > 0),
        code_masked      TEXT NOT NULL,
        code_hash        TEXT NOT NULL,
        phase            TEXT NOT NULL,
        submitted_at     INTEGER NOT NULL,
        cancel_requested INTEGER NOT NULL DEFAULT 0,
        seen_paid        INTEGER NOT NULL DEFAULT 0,
        revoke_tries     INTEGER NOT NULL DEFAULT 0,
        revoke_effect    TEXT,
        transaction_id   TEXT,
        paid_at          TEXT,
        error_code       TEXT,
        error_message    TEXT,
        updated_at       INTEGER NOT NULL,
        UNIQUE (order_no, seq)
    );
    CREATE INDEX attempts_phase ON attempts(phase);
    CREATE TABLE refunds (
        refund_no     TEXT PRIMARY KEY,
        order_no      TEXT NOT NULL REFERENCES sales(order_no),
        out_trade_no  TEXT NOT NULL REFERENCES attempts(out_trade_no),
        amount        INTEGER NOT NULL CHECK (amount > 0),
        reason        TEXT,
        status        TEXT NOT NULL,
        refund_id     TEXT,
        error_code    TEXT,
        error_message TEXT,
        created_at    INTEGER NOT NULL,
        updated_at    INTEGER NOT NULL
    );
    CREATE TABLE resolutions (
        id           INTEGER PRIMARY KEY,
        out_trade_no TEXT NOT NULL REFERENCES attempts(out_trade_no),
        resolved_as  TEXT NOT NULL CHECK (resolved_as IN ('paid', 'unpaid')),
        operator     TEXT NOT NULL,
        note         TEXT NOT NULL,
        at           INTEGER NOT NULL
    );
    CREATE TABLE events (
        id           INTEGER PRIMARY KEY AUTOINCREMENT,
        at           INTEGER NOT NULL,
        order_no     TEXT NOT NULL,
        out_trade_no TEXT,
        kind         TEXT NOT NULL,
        detail       TEXT NOT NULL
    );
    CREATE INDEX events_order ON events(order_no);
    CREATE TRIGGER events_no_update BEFORE UPDATE ON events
        BEGIN SELECT RAISE(ABORT, 'the event history is append-only'); END;
    CREATE TRIGGER events_no_delete BEFORE DELETE ON events
        BEGIN SELECT RAISE(ABORT, 'the event history is append-only'); END;
    "#,
    // 2: find an earlier attempt by its code's keyed hash, and whether its
    // pay request ever left. A payment code is single-use at both gateways,
    // so a code sent before is never sent again.
    r#"
    CREATE INDEX attempts_code_hash ON attempts(code_hash);
    CREATE INDEX events_attempt ON events(out_trade_no, kind);
    -- What the gateway said it booked, when it said: normally the attempt's
    -- amount; a paid answer for another amount is revoked (AMOUNT_MISMATCH)
    -- and the bill's refund row is for this one.
    ALTER TABLE attempts ADD COLUMN booked_amount INTEGER;
    "#,
    // 3: an "order number already used" answer is kept with the attempt, so
    // a restart between it and the query still catches a collision; a
    // refund keeps the number the gateway saw (till id + POS refund number:
    // WeChat wants it unique per merchant account; refunds made before
    // keep their own) and whether the gateway accepted it; a sale records
    // that a charge waits for its scan.
    r#"
    ALTER TABLE attempts ADD COLUMN used_number INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE refunds ADD COLUMN out_refund_no TEXT;
    UPDATE refunds SET out_refund_no = refund_no;
    ALTER TABLE refunds ADD COLUMN accepted INTEGER NOT NULL DEFAULT 0;
    UPDATE refunds SET accepted = 1 WHERE status IN ('processing', 'refunded');
    CREATE INDEX refunds_status ON refunds(status);
    CREATE INDEX refunds_order ON refunds(order_no);
    -- A charge holds the scanner for this sale: a restart cancels it.
    ALTER TABLE sales ADD COLUMN waiting INTEGER NOT NULL DEFAULT 0;
    "#,
    // 4: an attempt that needs an operator may still be revoking in the
    // background (payment-rules.md §12): a restart resumes it.
    r#"
    ALTER TABLE attempts ADD COLUMN background_revoke INTEGER NOT NULL DEFAULT 0;
    "#,
    // 5: why a round ended before a scan (a cashier's cancel, a scan
    // timeout, a restart), for the Payment's error.
    r#"
    ALTER TABLE sales ADD COLUMN cancel_reason TEXT;
    "#,
    // 6: the channel an attempt went through (the wallet's own gateway or
    // an acquirer's): it is the one its query, revoke and refunds use.
    // Attempts from before went through their provider's own channel.
    r#"
    ALTER TABLE attempts ADD COLUMN channel TEXT;
    UPDATE attempts SET channel = provider;
    "#,
    // 7: the cashier of a sale (its latest charge) and of a refund; what
    // the receipt shows of a paid attempt (what the customer paid, the
    // discount, the payer as the gateway masks it); and the shifts, each
    // with its report kept when it closes.
    r#"
    ALTER TABLE sales ADD COLUMN operator_id TEXT;
    ALTER TABLE refunds ADD COLUMN operator_id TEXT;
    ALTER TABLE attempts ADD COLUMN customer_paid INTEGER;
    ALTER TABLE attempts ADD COLUMN discount INTEGER;
    ALTER TABLE attempts ADD COLUMN payer TEXT;
    CREATE TABLE shifts (
        shift_no  INTEGER PRIMARY KEY,
        opened_at INTEGER NOT NULL,
        closed_at INTEGER,
        report    TEXT
    );
    CREATE INDEX sales_created ON sales(created_at);
    CREATE INDEX refunds_created ON refunds(created_at);
    "#,
    // 8: `waiting` marks a sale whose round is open and whose code has not
    // been sent (armed for a scan, or rung up and about to send a typed
    // code): the sales a restart cancels, found through a small partial
    // index instead of a scan of every sale ever made.
    r#"
    UPDATE sales SET waiting = 1 WHERE cancelled = 0
        AND NOT EXISTS (SELECT 1 FROM attempts a WHERE a.order_no = sales.order_no);
    CREATE INDEX sales_waiting ON sales(order_no) WHERE waiting = 1;
    "#,
    // 9: a smaller journal. The code hash keeps 128 bits (as unguessable
    // for a rescan check, half the bytes in the row and its index); an
    // attempt whose pay request never left says so itself, instead of an
    // index over every event; only attempts that are not done are indexed
    // by phase.
    r#"
    UPDATE attempts SET code_hash = substr(code_hash, 1, 32) WHERE length(code_hash) > 32;
    ALTER TABLE attempts ADD COLUMN not_sent INTEGER NOT NULL DEFAULT 0;
    UPDATE attempts SET not_sent = 1 WHERE out_trade_no IN
        (SELECT out_trade_no FROM events WHERE kind = 'pay_not_sent');
    DROP INDEX events_attempt;
    DROP INDEX attempts_phase;
    CREATE INDEX attempts_live ON attempts(phase)
        WHERE phase IN ('submitting', 'paying', 'revoking', 'needs_attention');
    "#,
    // 10: the days reconciliation found matching the bills: only those may
    // leave the live journal for a month's archive.
    r#"
    CREATE TABLE reconciled (
        local_date TEXT PRIMARY KEY,
        at         INTEGER NOT NULL,
        matched    INTEGER NOT NULL
    );
    "#,
    // 11: what a shift hands on to the next when it closes: its sales
    // still in flight and its refunds not yet confirmed, counted by the
    // next shift once they end.
    r#"
    ALTER TABLE shifts ADD COLUMN carried TEXT;
    "#,
    // 12: smaller still. A sale is stored in the b-tree of its order
    // number and an attempt in that of (order_no, seq) (WITHOUT ROWID),
    // instead of a rowid table plus an index of each key; the code hash is
    // its 16 bytes instead of 32 hex digits, in the row and in its index;
    // an attempt through its provider's own channel leaves `channel` null.
    // Both tables are rebuilt with foreign keys off (see `migrate`), in the
    // same column order.
    r#"
    CREATE TABLE attempts_new (
        out_trade_no      TEXT NOT NULL UNIQUE,
        order_no          TEXT NOT NULL REFERENCES sales(order_no),
        seq               INTEGER NOT NULL,
        provider          TEXT NOT NULL,
        amount            INTEGER NOT NULL CHECK (amount > 0),
        code_masked       TEXT NOT NULL,
        code_hash         BLOB NOT NULL,
        phase             TEXT NOT NULL,
        submitted_at      INTEGER NOT NULL,
        cancel_requested  INTEGER NOT NULL DEFAULT 0,
        seen_paid         INTEGER NOT NULL DEFAULT 0,
        revoke_tries      INTEGER NOT NULL DEFAULT 0,
        revoke_effect     TEXT,
        transaction_id    TEXT,
        paid_at           TEXT,
        error_code        TEXT,
        error_message     TEXT,
        updated_at        INTEGER NOT NULL,
        booked_amount     INTEGER,
        used_number       INTEGER NOT NULL DEFAULT 0,
        background_revoke INTEGER NOT NULL DEFAULT 0,
        channel           TEXT,
        customer_paid     INTEGER,
        discount          INTEGER,
        payer             TEXT,
        not_sent          INTEGER NOT NULL DEFAULT 0,
        PRIMARY KEY (order_no, seq)
    ) WITHOUT ROWID;
    INSERT INTO attempts_new
        SELECT out_trade_no, order_no, seq, provider, amount, code_masked,
               CASE typeof(code_hash) WHEN 'text' THEN unhex(code_hash) ELSE code_hash END,
               phase, submitted_at, cancel_requested, seen_paid, revoke_tries, revoke_effect,
               transaction_id, paid_at, error_code, error_message, updated_at, booked_amount,
               used_number, background_revoke, nullif(channel, provider), customer_paid,
               discount, payer, not_sent
        FROM attempts;
    DROP TABLE attempts;
    ALTER TABLE attempts_new RENAME TO attempts;
    CREATE INDEX attempts_code_hash ON attempts(code_hash);
    CREATE INDEX attempts_live ON attempts(phase)
        WHERE phase IN ('submitting', 'paying', 'revoking', 'needs_attention');
    CREATE TABLE sales_new (
        order_no      TEXT PRIMARY KEY,
        amount        INTEGER NOT NULL CHECK (amount > 0),
        subject       TEXT NOT NULL,
        local_date    TEXT NOT NULL,
        created_at    INTEGER NOT NULL,
        cancelled     INTEGER NOT NULL DEFAULT 0,
        waiting       INTEGER NOT NULL DEFAULT 0,
        cancel_reason TEXT,
        operator_id   TEXT
    ) WITHOUT ROWID;
    INSERT INTO sales_new (order_no, amount, subject, local_date, created_at, cancelled,
                           waiting, cancel_reason, operator_id)
        SELECT order_no, amount, subject, local_date, created_at, cancelled,
               waiting, cancel_reason, operator_id FROM sales;
    DROP TABLE sales;
    ALTER TABLE sales_new RENAME TO sales;
    CREATE INDEX sales_created ON sales(created_at);
    CREATE INDEX sales_waiting ON sales(order_no) WHERE waiting = 1;
    "#,
];

pub const VERSION: i64 = MIGRATIONS.len() as i64;

/// Brings the schema up to [`VERSION`], one transaction per migration.
///
/// Foreign keys are off while migrations run, as SQLite's procedure for
/// rebuilding a table asks (dropping a referenced table with them on would
/// delete its rows' references); each migration checks them before it
/// commits, and they are back on when this returns.
pub fn migrate(conn: &mut Connection) -> rusqlite::Result<()> {
    let current: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    if current >= VERSION {
        return Ok(());
    }
    let enforced: bool = conn.query_row("PRAGMA foreign_keys", [], |r| r.get(0))?;
    conn.pragma_update(None, "foreign_keys", "OFF")?;
    let migrated = (|| {
        for (i, sql) in MIGRATIONS.iter().enumerate().skip(current.max(0) as usize) {
            let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
            tx.execute_batch(sql)?;
            let broken: Option<String> = tx
                .query_row(
                    "SELECT \"table\" FROM pragma_foreign_key_check LIMIT 1",
                    [],
                    |r| r.get(0),
                )
                .optional()?;
            if let Some(table) = broken {
                return Err(rusqlite::Error::SqliteFailure(
                    rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_CONSTRAINT_FOREIGNKEY),
                    Some(format!(
                        "migration {} leaves a broken reference in {table}",
                        i + 1
                    )),
                ));
            }
            tx.pragma_update(None, "user_version", (i + 1) as i64)?;
            tx.commit()?;
        }
        Ok(())
    })();
    conn.pragma_update(None, "foreign_keys", enforced)?;
    migrated
}
