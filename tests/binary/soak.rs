//! The soak: many sales through the real daemon and the simulator, random
//! customers of every behaviour, random kill -9s (sometimes a second one
//! during recovery), each sale checked against the simulator's ledger after
//! the restart. It prints its figures; it fails on any double charge, any
//! sale whose POS answer disagrees with the money, or any sale left
//! unresolved.
//!
//! CI runs a bounded soak (`TILLPAY_SOAK_SALES`, default 120). The full one:
//! `TILLPAY_SOAK_SALES=10000 cargo test --release --test binary soak -- --nocapture`
//! (`TILLPAY_SOAK_SEED` replays a run).

use crate::till;

use std::time::Duration;

use serde_json::{json, Value};

use till::{final_payment, E2eTill, Rng, Speed, Tally, FINAL};

const PER_ROUND: u64 = 40;

#[derive(Default, Debug)]
struct Figures {
    tally: Tally,
    kills: u64,
    peak_rss_kib: u64,
    waited_out_the_pay_window: u64,
}

// One loop over rounds, counting every figure the note quotes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn soak_sales_with_random_customers_and_kills() {
    let total = till::env_u64("TILLPAY_SOAK_SALES").unwrap_or(120);
    let seed = till::seed("TILLPAY_SOAK_SEED");
    println!("soak seed {seed} (replay with TILLPAY_SOAK_SEED={seed}), {total} sales");
    let mut rng = Rng(seed);
    let mut f = Figures::default();
    let mut t = E2eTill::start(Speed::Fast).await;
    let mut round = 0;
    let mut started = 0;
    let mut pending: Vec<(String, u64, String)> = Vec::new();
    while started < total {
        let n = PER_ROUND.min(total - started);
        started += n;
        let sales: Vec<(String, u64, String)> = (0..n)
            .map(|i| {
                let (provider, b) = till::random_customer(&mut rng);
                let serial = round * 1_000 + i;
                (
                    format!("Q{round}S{i}"),
                    100 + rng.below(5_000),
                    b.code(provider, serial),
                )
            })
            .collect();
        let mut conns = Vec::new();
        for (order, amount, code) in &sales {
            let mut c = t.pos().await;
            c.send(json!({"jsonrpc": "2.0", "id": 1, "method": "charge", "params": {"order_no": order, "amount": amount, "auth_code": code}}))
                .await;
            conns.push(c);
        }
        // Two rounds in three are cut by a kill -9 at a random point.
        if rng.below(3) != 0 {
            tokio::time::sleep(Duration::from_millis(rng.below(3_000))).await;
            f.peak_rss_kib = f.peak_rss_kib.max(t.peak_rss_kib().unwrap_or(0));
            t.kill9();
            f.kills += 1;
            drop(conns);
            if rng.below(4) == 0 {
                t.spawn().await;
                tokio::time::sleep(Duration::from_millis(rng.below(1_500))).await;
                t.kill9();
                f.kills += 1;
            }
            t.spawn().await;
        } else {
            // No kill: each charge answers when its sale has ended. Every
            // client reads at once: one left unread while 40 sales notify
            // is dropped as not reading (docs/limits.md).
            let readers: Vec<_> = conns
                .into_iter()
                .map(|mut c| tokio::spawn(async move { c.answer(1).await }))
                .collect();
            for r in readers {
                let _ = r.await;
            }
        }
        // Most sales end within seconds; one whose pay request never
        // reached the gateway waits out the pay window (2 minutes): it is
        // asked about once a round, and waited for at the end.
        let mut still = Vec::new();
        let earlier = std::mem::take(&mut pending);
        let fresh = sales.into_iter().map(|s| (s, Duration::from_secs(10)));
        let again = earlier.into_iter().map(|s| (s, Duration::ZERO));
        for (sale, patience) in fresh.chain(again) {
            let p = final_payment(&t, &sale.0, patience).await;
            match p {
                Some(p) if !FINAL.contains(&p["status"].as_str().unwrap_or("")) => still.push(sale),
                p => check(&t, &sale, p, &mut f),
            }
        }
        pending = still;
        if round % 25 == 24 {
            println!(
                "soak: {started} sales started, {} checked, {} kills so far",
                f.tally.sales, f.kills
            );
        }
        f.peak_rss_kib = f.peak_rss_kib.max(t.peak_rss_kib().unwrap_or(0));
        round += 1;
    }
    f.waited_out_the_pay_window = pending.len() as u64;
    let window = till::LONGEST_SETTLE;
    for sale in std::mem::take(&mut pending) {
        let p = final_payment(&t, &sale.0, window).await;
        check(&t, &sale, p, &mut f);
    }
    t.stop().await;
    println!(
        "soak: {} sales ({} paid, {} unpaid, {} never journaled, {} to an operator, {} waited out the pay window), {} kill -9s, {} double charges, {} lost, {} unresolved, daemon peak RSS {} KiB",
        f.tally.sales, f.tally.paid, f.tally.unpaid, f.tally.never_journaled, f.tally.operator, f.waited_out_the_pay_window, f.kills, f.tally.double_charges, f.tally.lost, f.tally.unresolved, f.peak_rss_kib
    );
    assert_eq!(f.tally.failures(), (0, 0, 0), "seed {seed}: {f:?}");
}

/// One sale's end against the ledger, counted.
fn check(t: &E2eTill, (order, _, code): &(String, u64, String), p: Option<Value>, f: &mut Figures) {
    f.tally.count(till::judge(t, order, code, p.as_ref()));
}
