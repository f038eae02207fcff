//! The schema, one migration per version, recorded in `hq_migrations`.

use tokio_postgres::Client;

use super::DbError;

/// Migration `i` takes the schema to version `i + 1`.
const MIGRATIONS: &[&str] = &[
    // 1: stores and their tills (each with the hash of its token and the
    // high-water mark of its synced events); the events as the tills sent
    // them, partitioned by day; each till's sales, attempts and refunds as
    // of its latest snapshot (`version`: the id of the order's latest
    // event then).
    r#"
    CREATE TABLE stores (
        store_id   text PRIMARY KEY,
        name       text NOT NULL DEFAULT '',
        created_at timestamptz NOT NULL DEFAULT now()
    );
    CREATE TABLE tills (
        till_id      text PRIMARY KEY,
        store_id     text NOT NULL REFERENCES stores (store_id),
        token_sha256 bytea NOT NULL UNIQUE,
        high_water   bigint NOT NULL DEFAULT 0,
        last_sync_at timestamptz,
        created_at   timestamptz NOT NULL DEFAULT now()
    );
    CREATE TABLE events (
        till_id      text NOT NULL REFERENCES tills (till_id),
        event_id     bigint NOT NULL,
        day          date NOT NULL,
        at           timestamptz NOT NULL,
        order_no     text NOT NULL,
        out_trade_no text,
        kind         text NOT NULL,
        detail       jsonb NOT NULL,
        received_at  timestamptz NOT NULL DEFAULT now(),
        PRIMARY KEY (till_id, event_id, day)
    ) PARTITION BY RANGE (day);
    CREATE INDEX events_order ON events (till_id, order_no);
    CREATE TABLE sales (
        till_id         text NOT NULL REFERENCES tills (till_id),
        order_no        text NOT NULL,
        store_id        text NOT NULL REFERENCES stores (store_id),
        local_date      date NOT NULL,
        amount          bigint NOT NULL CHECK (amount > 0),
        subject         text NOT NULL,
        operator_id     text,
        created_at      timestamptz NOT NULL,
        cancelled       boolean NOT NULL,
        cancel_reason   text,
        status          text NOT NULL,
        paid_amount     bigint NOT NULL,
        refunded_amount bigint NOT NULL,
        version         bigint NOT NULL,
        synced_at       timestamptz NOT NULL DEFAULT now(),
        PRIMARY KEY (till_id, order_no)
    );
    CREATE INDEX sales_day_store ON sales (local_date, store_id);
    CREATE INDEX sales_unsettled ON sales (status)
        WHERE status IN ('needs_attention', 'in_flight');
    CREATE TABLE attempts (
        till_id        text NOT NULL,
        out_trade_no   text NOT NULL,
        order_no       text NOT NULL,
        seq            integer NOT NULL,
        provider       text NOT NULL,
        channel        text NOT NULL,
        amount         bigint NOT NULL,
        code_masked    text NOT NULL,
        phase          text NOT NULL,
        submitted_at   timestamptz NOT NULL,
        updated_at     timestamptz NOT NULL,
        transaction_id text,
        paid_at        text,
        booked_amount  bigint,
        customer_paid  bigint,
        discount       bigint,
        payer          text,
        error_code     text,
        error_message  text,
        revoke_tries   integer NOT NULL,
        PRIMARY KEY (till_id, out_trade_no),
        FOREIGN KEY (till_id, order_no) REFERENCES sales (till_id, order_no)
    );
    CREATE INDEX attempts_order ON attempts (till_id, order_no);
    CREATE INDEX attempts_transaction ON attempts (transaction_id)
        WHERE transaction_id IS NOT NULL;
    CREATE TABLE refunds (
        till_id       text NOT NULL,
        refund_no     text NOT NULL,
        order_no      text NOT NULL,
        out_trade_no  text NOT NULL,
        out_refund_no text NOT NULL,
        amount        bigint NOT NULL,
        status        text NOT NULL,
        refund_id     text,
        reason        text,
        operator_id   text,
        error_code    text,
        error_message text,
        created_at    timestamptz NOT NULL,
        PRIMARY KEY (till_id, refund_no),
        FOREIGN KEY (till_id, order_no) REFERENCES sales (till_id, order_no)
    );
    CREATE INDEX refunds_order ON refunds (till_id, order_no);
    "#,
    // 2: what operators ask of a till (a resolve, a refund), who asked and
    // when, until the till reports what it came to; delivered in the sync
    // answers.
    r#"
    CREATE TABLE commands (
        id           bigserial PRIMARY KEY,
        till_id      text NOT NULL REFERENCES tills (till_id),
        order_no     text NOT NULL,
        kind         text NOT NULL CHECK (kind IN ('resolve', 'refund')),
        command      jsonb NOT NULL,
        requested_by text NOT NULL,
        requested_at timestamptz NOT NULL DEFAULT now(),
        delivered_at timestamptz,
        done_at      timestamptz,
        ok           boolean,
        result       text
    );
    CREATE INDEX commands_pending ON commands (till_id, id) WHERE done_at IS NULL;
    CREATE INDEX commands_order ON commands (till_id, order_no);
    "#,
    // 3: what a revoke did, for fleet reconciliation (a revoke that
    // refunded has a refund row in the bill).
    r#"
    ALTER TABLE attempts ADD COLUMN revoke_effect text;
    "#,
    // 4: relay mode. Each order number a till had HQ send, to which
    // gateway (or closed by a revoke before any pay went out), and every
    // relayed call with its answer, journaled before it went out.
    r#"
    CREATE TABLE relay_orders (
        out_trade_no text PRIMARY KEY,
        till_id      text NOT NULL REFERENCES tills (till_id),
        provider     text,
        channel      text,
        amount       bigint,
        closed       boolean NOT NULL,
        created_at   timestamptz NOT NULL DEFAULT now()
    );
    CREATE TABLE relay_calls (
        id           bigserial PRIMARY KEY,
        till_id      text NOT NULL REFERENCES tills (till_id),
        out_trade_no text,
        op           text NOT NULL,
        channel      text,
        detail       jsonb NOT NULL,
        started_at   timestamptz NOT NULL DEFAULT now(),
        answered_at  timestamptz,
        answer       jsonb
    );
    CREATE INDEX relay_calls_order ON relay_calls (till_id, out_trade_no);
    CREATE INDEX relay_calls_unanswered ON relay_calls (started_at) WHERE answered_at IS NULL;
    "#,
    // 5: a refund HQ made itself (relay mode) stays counted, whatever its
    // till later says of the command.
    r#"
    ALTER TABLE commands ADD COLUMN refunded_by_hq jsonb;
    "#,
    // 6: the operators' console. Accounts with a role and an argon2id
    // hash; sessions by the SHA-256 of their cookie, each with its CSRF
    // token; failed logins, to slow down guessing; the audit log.
    r#"
    CREATE TABLE accounts (
        username      text PRIMARY KEY,
        password_hash text NOT NULL,
        role          text NOT NULL CHECK (role IN ('viewer', 'operator', 'admin')),
        disabled      boolean NOT NULL DEFAULT false,
        created_at    timestamptz NOT NULL DEFAULT now()
    );
    CREATE TABLE sessions (
        token_sha256 bytea PRIMARY KEY,
        username     text NOT NULL REFERENCES accounts (username),
        csrf         text NOT NULL,
        created_at   timestamptz NOT NULL DEFAULT now(),
        expires_at   timestamptz NOT NULL
    );
    CREATE TABLE login_failures (
        id       bigserial PRIMARY KEY,
        username text NOT NULL,
        address  text NOT NULL,
        at       timestamptz NOT NULL DEFAULT now()
    );
    CREATE INDEX login_failures_username ON login_failures (username, at);
    CREATE INDEX login_failures_address ON login_failures (address, at);
    CREATE TABLE audit (
        id       bigserial PRIMARY KEY,
        at       timestamptz NOT NULL DEFAULT now(),
        username text,
        address  text NOT NULL,
        action   text NOT NULL,
        target   text,
        detail   jsonb NOT NULL DEFAULT '{}'
    );
    CREATE INDEX attempts_out_trade_no ON attempts (out_trade_no);
    -- The console finds a sale by its masked code's first four digits on.
    CREATE INDEX attempts_code ON attempts (code_masked text_pattern_ops);
    "#,
    // 7: the tills' closed shifts with their reports (Z-reports).
    r#"
    CREATE TABLE shifts (
        till_id   text NOT NULL REFERENCES tills (till_id),
        shift_no  bigint NOT NULL,
        opened_at timestamptz NOT NULL,
        closed_at timestamptz NOT NULL,
        report    jsonb NOT NULL,
        PRIMARY KEY (till_id, shift_no)
    );
    CREATE INDEX shifts_closed ON shifts (closed_at);
    "#,
];

pub const VERSION: usize = MIGRATIONS.len();

/// A fixed key for `pg_advisory_lock`: one migrator at a time.
const LOCK: i64 = 0x7469_6c6c_7061_7901;

pub(super) async fn run(client: &mut Client) -> Result<usize, DbError> {
    client
        .execute("SELECT pg_advisory_lock($1)", &[&LOCK])
        .await?;
    let result = apply(client).await;
    client
        .execute("SELECT pg_advisory_unlock($1)", &[&LOCK])
        .await?;
    result
}

async fn apply(client: &mut Client) -> Result<usize, DbError> {
    client
        .batch_execute(
            "CREATE TABLE IF NOT EXISTS hq_migrations (
                 version    integer PRIMARY KEY,
                 applied_at timestamptz NOT NULL DEFAULT now()
             )",
        )
        .await?;
    let row = client
        .query_one("SELECT COALESCE(MAX(version), 0) FROM hq_migrations", &[])
        .await?;
    let current: i32 = row.get(0);
    if current as usize > VERSION {
        return Err(DbError::Other(format!(
            "the database is at schema {current}, newer than this tillpay-hq ({VERSION}): upgrade it"
        )));
    }
    let mut applied = 0;
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(current as usize) {
        let tx = client.transaction().await?;
        tx.batch_execute(sql).await?;
        tx.execute(
            "INSERT INTO hq_migrations (version) VALUES ($1)",
            &[&((i + 1) as i32)],
        )
        .await?;
        tx.commit().await?;
        applied += 1;
    }
    Ok(applied)
}
