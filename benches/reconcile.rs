//! Reconciliation at scale: a 1 000 000-row WeChat bill and a 1 000 000-row
//! Alipay detail CSV (a big merchant account, many tills), parsed and
//! matched against 1 000 local attempts. Prints rows per second and peak
//! memory (max RSS). Run: `cargo bench --bench reconcile`.

use std::io::{BufReader, Write};
use std::time::Instant;

use tillpay::domain::{Fen, Provider};
use tillpay::gateway::{alipay, wechat};
use tillpay::journal::AttemptRow;
use tillpay::machine::{Attempt, Phase};
use tillpay::reconcile::matching;

/// rows: 1_000_000, or 20_000 with `TILLPAY_BENCH_QUICK` (CI runs the
/// benches that way, so their figures cannot rot).
fn rows() -> u64 {
    if std::env::var_os("TILLPAY_BENCH_QUICK").is_some() {
        20_000
    } else {
        1_000_000
    }
}
const MINE_EVERY: u64 = 1000;

fn max_rss_mb() -> f64 {
    // SAFETY: getrusage only writes into the struct we pass.
    let mut u: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut u) };
    u.ru_maxrss as f64 / 1024.0
}

fn till(i: u64) -> &'static str {
    if i % MINE_EVERY == 0 {
        "T1"
    } else {
        "T2"
    }
}

fn wechat_file(path: &std::path::Path) {
    let rows = rows();
    let mut f = std::io::BufWriter::new(std::fs::File::create(path).expect("create"));
    writeln!(f, "交易时间,公众账号ID,商户号,特约商户号,设备号,微信订单号,商户订单号,用户标识,交易类型,交易状态,付款银行,货币种类,应结订单金额,代金券金额,微信退款单号,商户退款单号,退款金额,充值券退款金额,退款类型,退款状态,商品名称,商户数据包,手续费,费率,订单金额,申请退款金额,费率备注").expect("write");
    let mut total = 0u64;
    for i in 0..rows {
        let amount = 100 + i % 900;
        total += amount;
        writeln!(
            f,
            "`2026-11-22 10:00:00,`wx2421b1c4370ec43b,`10000100,`0,`{},`42000{i:023},`O{i},`oUser,`MICROPAY,`SUCCESS,`OTHERS,`CNY,`{},`0.00,`,`,`0.00,`0.00,`,`,`coffee,`,`0.00,`0.60%,`{},`0.00,`",
            till(i),
            Fen(amount).to_yuan(),
            Fen(amount).to_yuan()
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

fn alipay_file(path: &std::path::Path) {
    let rows = rows();
    let mut text = String::from("#支付宝业务明细查询\n#账号：[20880211096256330156]\n支付宝交易号,商户订单号,业务类型,商品名称,创建时间,完成时间,门店编号,门店名称,操作员,终端号,对方账户,订单金额（元）,商家实收（元）,支付宝红包（元）,集分宝（元）,支付宝优惠（元）,商家优惠（元）,券核销金额（元）,券名称,商家红包消费金额（元）,卡消费金额（元）,退款批次号/请求号,服务费（元）,分润（元）,备注\n");
    let mut f = std::io::BufWriter::new(std::fs::File::create(path).expect("create"));
    let mut total = 0u64;
    for i in 0..rows {
        let amount = 100 + i % 900;
        total += amount;
        text.push_str(&format!(
            "2026112222{i:018}\t,O{i}\t,交易\t,coffee\t,2026-11-22 10:00:00\t,2026-11-22 10:00:05\t,\t,\t,\t,{}\t,a***@x.com\t,{},{},0.00,0.00,0.00,0.00,0.00,\t,0.00,0.00,\t,0.00,0.00,\t\n",
            till(i),
            Fen(amount).to_yuan(),
            Fen(amount).to_yuan()
        ));
        if text.len() > 1 << 20 {
            f.write_all(&encoding_rs::GBK.encode(&text).0)
                .expect("write");
            text.clear();
        }
    }
    text.push_str(&format!("#交易合计：{rows}笔，商家实收共{}元，商家优惠共0.00元\n#退款合计：0笔，商家实收退款共0.00元，商家优惠退款共0.00元\n", Fen(total).to_yuan()));
    f.write_all(&encoding_rs::GBK.encode(&text).0)
        .expect("write");
}

fn local() -> Vec<AttemptRow> {
    let rows = rows();
    (0..rows)
        .step_by(MINE_EVERY as usize)
        .map(|i| AttemptRow {
            paid_by: Default::default(),
            out_trade_no: format!("O{i}"),
            order_no: format!("O{i}"),
            seq: 1,
            provider: Provider::Wechat,
            channel: "wechat".into(),
            amount: Fen(100 + i % 900),
            code_masked: String::new(),
            code_hash: Vec::new(),
            state: Attempt {
                phase: Phase::Paid,
                ..Attempt::submitting()
            },
            submitted_at: 0,
            revoke_effect: None,
            transaction_id: None,
            paid_at: None,
            error: None,
            updated_at: 0,
            booked: None,
        })
        .collect()
}

fn main() {
    let rows = rows();
    // The parse runs in a child process so that its peak memory is its own,
    // not the bill generator's.
    let args: Vec<String> = std::env::args().collect();
    if let Some(i) = args.iter().position(|a| a == "--parse") {
        if let Some(dir) = args.get(i + 1) {
            parse(std::path::Path::new(dir));
            return;
        }
    }
    let dir = tempfile::tempdir().expect("tempdir");
    wechat_file(&dir.path().join("wechat.csv"));
    alipay_file(&dir.path().join("alipay.csv"));
    println!(
        "bills: {rows} rows each, {} of them this till's",
        rows / MINE_EVERY
    );
    let me = std::env::current_exe().expect("own path");
    for provider in ["wechat", "alipay"] {
        let out = std::process::Command::new(&me)
            .args([
                "--parse",
                &dir.path().display().to_string(),
                "--provider",
                provider,
            ])
            .output()
            .expect("child runs");
        print!("{}", String::from_utf8_lossy(&out.stdout));
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

fn parse(dir: &std::path::Path) {
    let rows = rows();
    let wx = dir.join("wechat.csv");
    let ap = dir.join("alipay.csv");
    let only_alipay = std::env::args().any(|a| a == "alipay");

    let mut attempts = local();
    if only_alipay {
        return alipay(&ap, &mut attempts);
    }
    let t = Instant::now();
    let f = std::fs::File::open(&wx).expect("open");
    let bill = wechat::bill::parse(BufReader::with_capacity(1 << 16, f), "T1").expect("parses");
    let report = matching::reconcile("2026-11-22", &attempts, &[], &[(Provider::Wechat, bill)]);
    let s = t.elapsed().as_secs_f64();
    assert_eq!(report.matched, rows / MINE_EVERY);
    assert!(report.discrepancies.is_empty());
    println!(
        "wechat: {:.0} rows/s ({s:.2} s), peak RSS {:.1} MB",
        rows as f64 / s,
        max_rss_mb()
    );
}

fn alipay(ap: &std::path::Path, attempts: &mut [AttemptRow]) {
    let rows = rows();
    let t = Instant::now();
    let f = std::fs::File::open(ap).expect("open");
    let bill = alipay::bill::parse_reader(f, "T1").expect("parses");
    for a in attempts.iter_mut() {
        a.provider = Provider::Alipay;
    }
    let report = matching::reconcile("2026-11-22", attempts, &[], &[(Provider::Alipay, bill)]);
    let s = t.elapsed().as_secs_f64();
    assert_eq!(report.matched, rows / MINE_EVERY);
    println!(
        "alipay: {:.0} rows/s ({s:.2} s), peak RSS {:.1} MB",
        rows as f64 / s,
        max_rss_mb()
    );
}
