//! Fleet reconciliation at scale: a 1 000 000-row WeChat bill of 100 tills
//! against their 1 000 000 synced sales in PostgreSQL (`TILLPAY_HQ_PG`).
//! Prints the time to parse the bill once for every till, to load the
//! day's rows from HQ and to match them, and the peak memory.
//! `cargo bench -p tillpay-hq --bench fleet_reconcile`;
//! `TILLPAY_BENCH_QUICK=1` for 20 000 rows, as CI runs it.

#[path = "../tests/common/mod.rs"]
mod common;

use std::io::Write;
use std::time::Instant;

use tillpay::domain::{Fen, Provider};
use tillpay::gateway::bill::ALL_TILLS;
use tillpay::reconcile::Bill;
use tillpay_hq::{db, reconcile};

const TILLS: u64 = 100;

fn max_rss_mb() -> f64 {
    // SAFETY: getrusage only writes into the struct we pass.
    let mut u: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut u) };
    u.ru_maxrss as f64 / 1024.0
}

fn amount(i: u64) -> u64 {
    100 + i % 900
}

fn wechat_bill(path: &std::path::Path, rows: u64) {
    let mut f = std::io::BufWriter::new(std::fs::File::create(path).expect("create"));
    writeln!(f, "交易时间,公众账号ID,商户号,特约商户号,设备号,微信订单号,商户订单号,用户标识,交易类型,交易状态,付款银行,货币种类,应结订单金额,代金券金额,微信退款单号,商户退款单号,退款金额,充值券退款金额,退款类型,退款状态,商品名称,商户数据包,手续费,费率,订单金额,申请退款金额,费率备注").expect("write");
    let mut total = 0u64;
    for i in 0..rows {
        let a = amount(i);
        total += a;
        let till = i % TILLS;
        writeln!(
            f,
            "`2026-11-22 10:00:00,`wx2421b1c4370ec43b,`10000100,`0,`T{till},`42000{i:023},`T{till}_S{i}_1,`oUser,`MICROPAY,`SUCCESS,`OTHERS,`CNY,`{},`0.00,`,`,`0.00,`0.00,`,`,`coffee,`,`0.00,`0.60%,`{},`0.00,`",
            Fen(a).to_yuan(),
            Fen(a).to_yuan()
        )
        .expect("write");
    }
    writeln!(f, "总交易单数,应结订单总金额,退款总金额,充值券退款总金额,手续费总金额,订单总金额,申请退款总金额").expect("write");
    writeln!(
        f,
        "`{rows},`{},`0.00,`0.00,`0.00,`{},`0.00",
        Fen(total).to_yuan(),
        Fen(total).to_yuan()
    )
    .expect("write");
}

fn main() {
    if !std::env::args().any(|a| a == "--bench") {
        return;
    }
    let Some(base) = common::pg_base() else {
        println!("fleet reconcile: skipped (no TILLPAY_HQ_PG; eval \"$(bash .ci/pg-start)\")");
        return;
    };
    let rows: u64 = if std::env::var_os("TILLPAY_BENCH_QUICK").is_some() {
        20_000
    } else {
        1_000_000
    };
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    rt.block_on(async move {
        let pool = db::pool(&common::fresh_db(&base).await, 4).expect("pool");
        db::migrate(&pool).await.expect("migrate");
        // The synced sales, written straight in SQL: what ingest would
        // have left after a day of 100 tills.
        let t = Instant::now();
        let client = pool.get().await.expect("client");
        client
            .batch_execute(&format!(
                "INSERT INTO stores (store_id) SELECT 'S' || s FROM generate_series(0, 9) s;
                 INSERT INTO tills (till_id, store_id, token_sha256, high_water, last_sync_at)
                     SELECT 'T' || t, 'S' || (t % 10), sha256(('t' || t)::bytea), 1, now()
                     FROM generate_series(0, {till_max}) t;
                 INSERT INTO sales (till_id, order_no, store_id, local_date, amount, subject,
                                    created_at, cancelled, status, paid_amount, refunded_amount, version)
                     SELECT 'T' || (i % {TILLS}), 'S' || i, 'S' || (i % {TILLS} % 10), '2026-11-22',
                            100 + i % 900, 'coffee', now(), false, 'paid', 100 + i % 900, 0, 1
                     FROM generate_series(0, {last}) i;
                 INSERT INTO attempts (till_id, out_trade_no, order_no, seq, provider, channel, amount,
                                       code_masked, phase, submitted_at, updated_at, transaction_id,
                                       paid_at, booked_amount, revoke_tries)
                     SELECT 'T' || (i % {TILLS}), 'T' || (i % {TILLS}) || '_S' || i || '_1', 'S' || i, 1,
                            'wechat', 'wechat', 100 + i % 900, '1345**********6789', 'paid', now(), now(),
                            '42000' || lpad(i::text, 23, '0'), '2026-11-22T10:00:00+08:00', 100 + i % 900, 0
                     FROM generate_series(0, {last}) i;
                 ANALYZE;",
                till_max = TILLS - 1,
                last = rows - 1,
            ))
            .await
            .expect("sales");
        drop(client);
        let loaded = t.elapsed();
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("wechat-bill.csv");
        wechat_bill(&path, rows);
        let t = Instant::now();
        let ch = tillpay::gateway::channel("wechat").expect("wechat");
        let mut f = std::fs::File::open(&path).expect("bill");
        let bill: Bill = ch.parse_bill(&mut f, ALL_TILLS).expect("parses");
        let parsed = t.elapsed();
        assert_eq!(bill.rows.len() as u64, rows);
        let day = chrono::NaiveDate::from_ymd_opt(2026, 11, 22).expect("day");
        let t = Instant::now();
        let report = reconcile::reconcile(&pool, day, &[(Provider::Wechat, bill)])
            .await
            .expect("reconcile");
        let matched_in = t.elapsed();
        assert_eq!(report.matched, rows, "every row matches");
        println!(
            "fleet reconcile: {rows}-row bill of {TILLS} tills against {rows} synced sales \
             (written in {:.1} s): parsed once in {:.2} s, loaded and matched in {:.2} s \
             ({:.0} rows/s overall), peak RSS {:.0} MB",
            loaded.as_secs_f64(),
            parsed.as_secs_f64(),
            matched_in.as_secs_f64(),
            rows as f64 / (parsed + matched_in).as_secs_f64(),
            max_rss_mb()
        );
    });
}
