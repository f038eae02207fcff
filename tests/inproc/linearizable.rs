//! Linearizable sales, shown on the engine with a model: thousands of
//! seeded runs of concurrent charges (waiting and typed), cancels, scans,
//! queries, refunds and a kill-and-restart, against a scripted bank, on
//! tokio's paused clock, with the journal a real SQLite file. After every
//! run the bank's money and every answer any client got are checked
//! against the journal:
//!
//! - the money each sale kept at the bank is what the journal says it kept
//!   (paid minus refunded), and no sale kept two payments;
//! - every trade the bank holds is in the journal (never paid-and-forgotten);
//! - `charge` and `cancel` answer only with final statuses;
//! - an answer `paid` names a trade that kept its money; `failed` or
//!   `revoked` one that kept none; `cancelled` means no trade sent before
//!   the cancel was asked kept money;
//! - the last final answer of a sale is its end status, unless a charge
//!   sent after it started a new round;
//! - every refund the bank holds ended refunded in the journal, confirmed
//!   by the daemon itself.
//!
//! `TILLPAY_MODEL_SEEDS=n` runs n seeds (default 2000 per test, two tests);
//! a failure prints its seed, and `TILLPAY_MODEL_SEED=s` replays it. The
//! journal's blocking I/O runs on real threads, so a replay follows the
//! same plan but not always the very same interleaving.
//!
//! Over 400 lines: the model, the run and the checker of one model test; the scripted bank is in `linearizable/bank.rs`.

mod bank;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bank::{kept, Bank, Behaviour, Counter, History, TradeState};
use tillpay::config::PaymentConfig;
use tillpay::domain::Provider;
use tillpay::engine::view::Live;
use tillpay::engine::{ChargeRequest, Engine, Payment, PaymentStatus};
use tillpay::gateway::Gateway;
use tillpay::journal::{Journal, RefundStatus};

const SETTLE: Duration = Duration::from_secs(15 * 60);

/// SplitMix64: small, seedable, good enough to plan a run.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
    fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }
}

#[derive(Debug, Clone)]
enum Op {
    /// `code`: typed in; none: waits for the scanner.
    Charge {
        order: usize,
        code: Option<String>,
    },
    Cancel {
        order: usize,
    },
    Scan {
        code: String,
    },
    Query {
        order: usize,
    },
    Refund {
        order: usize,
        refund_no: String,
        amount: u64,
    },
}

struct Plan {
    amounts: Vec<u64>,
    ops: Vec<(Duration, Op)>,
    kill_at: Option<Duration>,
}

fn order_no(i: usize) -> String {
    format!("O{i}")
}

fn plan(seed: u64, bank: &Bank) -> Plan {
    let mut rng = Rng(seed);
    let orders = 1 + rng.below(3) as usize;
    let amounts: Vec<u64> = (0..orders).map(|i| 100 * (i as u64 + 1)).collect();
    let mut serial = 0u64;
    let mut code = |rng: &mut Rng| {
        serial += 1;
        let text = if rng.chance(50) {
            format!(
                "13{:016}",
                seed.wrapping_mul(1000) % 10u64.pow(12) * 1000 + serial
            )
        } else {
            format!(
                "28{:016}",
                seed.wrapping_mul(1000) % 10u64.pow(12) * 1000 + serial
            )
        };
        let b = match rng.below(10) {
            0..=2 => Behaviour::PaysAtOnce,
            3 => Behaviour::Confirms(Duration::from_secs(1 + rng.below(40))),
            4 => Behaviour::NeverConfirms,
            5 => Behaviour::Declined,
            6 => Behaviour::AnswerLost,
            7 => Behaviour::Slow(Duration::from_millis(1 + rng.below(3000))),
            _ => Behaviour::Confirms(Duration::from_millis(1 + rng.below(4000))),
        };
        bank.code(&text, b, rng.below(3) as u32);
        text
    };
    // Bursts: requests a few milliseconds apart, as three POS clients send.
    let bursts = [0u64, 3_000, 20_000, 45_000];
    let n = 3 + rng.below(8);
    let mut ops = Vec::new();
    let mut refunds = 0;
    for _ in 0..n {
        let at = if rng.chance(65) {
            bursts[rng.below(4) as usize] + rng.below(5)
        } else {
            rng.below(60_000)
        };
        let order = rng.below(orders as u64) as usize;
        let op = match rng.below(20) {
            0..=4 => Op::Charge {
                order,
                code: Some(code(&mut rng)),
            },
            5..=8 => Op::Charge { order, code: None },
            9..=12 => Op::Cancel { order },
            13..=15 => Op::Scan {
                code: code(&mut rng),
            },
            16 => Op::Query { order },
            _ => {
                refunds += 1;
                let refund_no = format!("F{refunds}");
                bank.refund_delay(
                    &tillpay::domain::out_refund_no("T1", &refund_no),
                    Duration::from_secs(rng.below(90)),
                );
                Op::Refund {
                    order,
                    refund_no,
                    amount: 1 + rng.below(amounts[order] / 2),
                }
            }
        };
        ops.push((Duration::from_millis(at), op));
    }
    let kill_at = rng
        .chance(30)
        .then(|| Duration::from_millis(rng.below(60_000)));
    Plan {
        amounts,
        ops,
        kill_at,
    }
}

/// What a client was told, stamped in the shared history.
#[derive(Debug, Clone)]
struct Told {
    /// Which request (its place in the plan).
    id: usize,
    /// When the request was sent, and when its answer arrived: the owner
    /// may have moved on before the client task saw the answer, so only the
    /// request's own time bounds what came before it.
    sent: u64,
    seq: u64,
    order: String,
    what: &'static str,
    answer: Result<Payment, (i64, String)>,
}

struct Run {
    path: std::path::PathBuf,
    bank: Arc<Bank>,
    told: Arc<Mutex<Vec<Told>>>,
    /// Each charge sent, by request id and order.
    charged: Arc<Mutex<Vec<(usize, String)>>>,
    amounts: Vec<u64>,
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .start_paused(true)
        .build()
        .expect("runtime")
}

/// One daemon's life: start (recovering when asked), take `ops`, run for
/// `run_for` of paused time; then the runtime is dropped: a kill.
// The daemon under test with every fault hook of the model in one place.
fn daemon(
    run: &Run,
    offset: Duration,
    recover: bool,
    ops: Vec<(usize, (Duration, Op))>,
    run_for: Duration,
) {
    let rt = runtime();
    rt.block_on(async {
        run.bank.start_runtime(offset);
        let journal = Arc::new(Journal::open(&run.path, "T1").expect("journal"));
        let gateways: Vec<Arc<dyn Gateway>> = [Provider::Wechat, Provider::Alipay]
            .into_iter()
            .map(|provider| {
                Arc::new(Counter {
                    provider,
                    bank: run.bank.clone(),
                }) as Arc<dyn Gateway>
            })
            .collect();
        let engine = Engine::new(journal, gateways, PaymentConfig::default());
        if recover {
            engine.recover().await.expect("recover");
        }
        for (id, (at, op)) in ops {
            let (engine, bank, told) = (engine.clone(), run.bank.clone(), run.told.clone());
            let charged = run.charged.clone();
            let amounts = run.amounts.clone();
            tokio::spawn(async move {
                tokio::time::sleep(at).await;
                let sent = bank.stamp();
                let (order, what, answer) = match op {
                    Op::Charge { order, code } => {
                        charged
                            .lock()
                            .unwrap_or_else(|p| p.into_inner())
                            .push((id, order_no(order)));
                        let req = ChargeRequest {
                            operator_id: None,
                            order_no: order_no(order),
                            amount: amounts[order],
                            subject: None,
                            auth_code: code,
                        };
                        (order, "charge", engine.charge(req).await)
                    }
                    Op::Cancel { order } => {
                        (order, "cancel", engine.cancel(&order_no(order)).await)
                    }
                    Op::Query { order } => (order, "query", engine.payment(&order_no(order)).await),
                    Op::Scan { code } => {
                        if let Some(c) = tillpay::gateway::recognise(&code) {
                            let _ = engine.scan(c).await;
                        }
                        return;
                    }
                    Op::Refund {
                        order,
                        refund_no,
                        amount,
                    } => {
                        let _ = engine
                            .refund(&order_no(order), &refund_no, amount, None, None)
                            .await;
                        return;
                    }
                };
                let answer = answer.map_err(|e| (tillpay::pos::rpc::error_code(&e), e.to_string()));
                let seq = bank.stamp();
                let t = Told {
                    id,
                    sent,
                    seq,
                    order: order_no(order),
                    what,
                    answer,
                };
                told.lock().unwrap_or_else(|p| p.into_inner()).push(t);
            });
        }
        tokio::time::sleep(run_for).await;
        run.bank.stop_runtime();
    });
    // Journal work already on a thread finishes; everything else dies.
    rt.shutdown_timeout(Duration::from_secs(10));
}

fn run_seed(seed: u64) -> Result<(), String> {
    let history = Arc::new(Mutex::new(History::default()));
    let bank = Bank::new(history);
    let plan = plan(seed, &bank);
    let base = if std::path::Path::new("/dev/shm").is_dir() {
        tempfile::tempdir_in("/dev/shm")
    } else {
        tempfile::tempdir()
    }
    .map_err(|e| e.to_string())?;
    let run = Run {
        path: base.path().join("journal.sqlite"),
        bank,
        told: Arc::new(Mutex::new(Vec::new())),
        charged: Arc::new(Mutex::new(Vec::new())),
        amounts: plan.amounts.clone(),
    };
    let ops: Vec<_> = plan.ops.iter().cloned().enumerate().collect();
    match plan.kill_at {
        None => daemon(&run, Duration::ZERO, false, ops, SETTLE),
        Some(kill) => {
            let (before, after): (Vec<_>, Vec<_>) =
                ops.into_iter().partition(|(_, (at, _))| *at < kill);
            daemon(&run, Duration::ZERO, false, before, kill);
            let after = after
                .into_iter()
                .map(|(id, (at, op))| (id, (at - kill, op)))
                .collect();
            daemon(&run, kill, true, after, SETTLE);
        }
    }
    check(&run, plan.amounts.len())
        .map_err(|e| format!("{e}\nplan: {:?} kill at {:?}", plan.ops, plan.kill_at))
}

/// The invariants, from the journal, the bank and what clients were told.
// The checker: every property of a run in one list, so none is skipped.
fn check(run: &Run, orders: usize) -> Result<(), String> {
    let journal = Journal::open(&run.path, "T1").map_err(|e| e.to_string())?;
    let trades = run.bank.trades();
    let now = run.bank.now();
    if let Some(v) = run.bank.violations().first() {
        return Err(format!("the bank saw: {v}"));
    }
    let told = run.told.lock().unwrap_or_else(|p| p.into_inner()).clone();
    for i in 0..orders {
        let o = order_no(i);
        let prefix = format!("T1_{o}_");
        let mine: HashMap<&String, &bank::Trade> = trades
            .iter()
            .filter(|(k, _)| k.starts_with(&prefix))
            .collect();
        let Some((sale, attempts)) = journal.sale(&o).map_err(|e| e.to_string())? else {
            if !mine.is_empty() {
                return Err(format!(
                    "{o}: the bank holds trades of a sale the journal lacks"
                ));
            }
            continue;
        };
        let refunds = journal.refunds_of(&o).map_err(|e| e.to_string())?;
        for otn in mine.keys() {
            if !attempts.iter().any(|a| &&a.out_trade_no == otn) {
                return Err(format!("{otn}: at the bank, not in the journal"));
            }
        }
        for a in &attempts {
            if !a.state.phase.is_final() {
                return Err(format!(
                    "{}: still {:?} after settling",
                    a.out_trade_no, a.state.phase
                ));
            }
        }
        let holding: Vec<_> = mine.iter().filter(|(_, t)| kept(t, now) > 0).collect();
        if holding.len() > 1 {
            return Err(format!("{o}: money kept by {} trades", holding.len()));
        }
        let bank_kept: u64 = mine.values().map(|t| kept(t, now)).sum();
        let end = Payment::build(&sale, &attempts, &refunds, Live::Idle);
        let journal_kept = match end.status {
            PaymentStatus::Paid => sale.amount.0.saturating_sub(end.refunded_amount),
            _ => 0,
        };
        if bank_kept != journal_kept {
            return Err(format!(
                "{o}: the bank kept {bank_kept} fen, the journal says {journal_kept} ({:?})",
                end.status
            ));
        }
        for (otn, t) in &mine {
            for (no, r) in &t.refunds {
                let ok = refunds
                    .iter()
                    .any(|f| &f.out_refund_no == no && f.status == RefundStatus::Refunded);
                if r.settle_at <= now && !ok {
                    return Err(format!(
                        "{otn}: refund {no} landed, the journal does not say refunded"
                    ));
                }
            }
        }
        let answers: Vec<&Told> = told.iter().filter(|t| t.order == o).collect();
        // A charge that was not answered before `a` was (or never was:
        // killed) may come after it and start a new round; one answered
        // later with the same Payment was of the same round.
        let charged = run
            .charged
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        let same =
            |x: &Payment, y: &Payment| x.status == y.status && x.out_trade_no == y.out_trade_no;
        let new_round_after = |a: &Told, ap: &Payment| {
            charged.iter().filter(|(_, x)| *x == o).any(|(id, _)| {
                match told.iter().find(|t| t.id == *id) {
                    None => true,
                    Some(c) => c.seq > a.seq && !c.answer.as_ref().is_ok_and(|cp| same(cp, ap)),
                }
            })
        };
        for t in &answers {
            let Ok(p) = &t.answer else { continue };
            if t.what != "query" && !p.status.is_final() {
                return Err(format!(
                    "{o}: {} answered {:?}, not final",
                    t.what, p.status
                ));
            }
            let trade = p.out_trade_no.as_ref().and_then(|x| mine.get(x));
            let kept_money = trade.is_some_and(|tr| tr.state == TradeState::Paid);
            let final_answer = t.what != "query";
            match p.status {
                PaymentStatus::Paid if !kept_money => {
                    return Err(format!(
                        "{o}: told paid ({:?}), the bank kept nothing",
                        p.out_trade_no
                    ));
                }
                PaymentStatus::Failed | PaymentStatus::Revoked if final_answer && kept_money => {
                    return Err(format!(
                        "{o}: told {:?}, yet {:?} kept the money",
                        p.status, p.out_trade_no
                    ));
                }
                PaymentStatus::Cancelled => {
                    if let Some((x, _)) = mine
                        .iter()
                        .find(|(_, tr)| tr.pay_seq < t.sent && tr.state == TradeState::Paid)
                    {
                        return Err(format!(
                            "{o}: told cancelled (asked at #{}), yet {x}, sent before, kept the money",
                            t.sent
                        ));
                    }
                }
                PaymentStatus::NeedsAttention => {
                    return Err(format!("{o}: {} needs attention: {:?}", t.what, p.error));
                }
                _ => {}
            }
        }
        let last = answers
            .iter()
            .filter(|t| t.what != "query")
            .filter_map(|t| t.answer.as_ref().ok().map(|p| (*t, p)))
            .filter(|(_, p)| p.status.is_final())
            .max_by_key(|(t, _)| t.seq);
        if let Some((t, p)) = last {
            if p.status != end.status && !new_round_after(t, p) {
                return Err(format!(
                    "{o}: last told {:?} (#{}), ended {:?}, and no new round came after",
                    p.status, t.seq, end.status
                ));
            }
        }
    }
    Ok(())
}

fn seeds(offset: u64) -> Vec<u64> {
    if let Some(s) = std::env::var("TILLPAY_MODEL_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
    {
        return if offset == 0 { vec![s] } else { Vec::new() };
    }
    let n: u64 = std::env::var("TILLPAY_MODEL_SEEDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(2000);
    (0..n).map(|i| i * 2 + offset).collect()
}

fn run_all(offset: u64) {
    let seeds = seeds(offset);
    let started = std::time::Instant::now();
    for &seed in &seeds {
        if let Err(e) = run_seed(seed) {
            panic!(
                "seed {seed}: {e}\nreplay with: TILLPAY_MODEL_SEED={seed} cargo test --test inproc linearizable"
            );
        }
    }
    println!(
        "{} seeds held every invariant in {:.1} s",
        seeds.len(),
        started.elapsed().as_secs_f64()
    );
}

#[test]
fn concurrent_requests_keep_every_promise_even_seeds() {
    run_all(0);
}

#[test]
fn concurrent_requests_keep_every_promise_odd_seeds() {
    run_all(1);
}
