//! A mutation fuzzer on stable Rust for the targets of `tillpay::fuzz`:
//! starts from the committed corpus, mutates (bit flips, random bytes,
//! inserts, deletes, repeats, splices, the format's own tokens), and feeds
//! every input to the target. A panic is written to `fuzz/crashes/` and
//! counted. It is blind — libFuzzer under cargo-fuzz (`fuzz/`, nightly)
//! adds coverage guidance — but needs nothing beyond the machine's toolchain.
//!
//! cargo run --release --example fuzz -- [TARGET|all] [EXECS] [SEED]

use std::path::{Path, PathBuf};
use std::time::Instant;

/// A small, fast, seedable generator (xorshift64*).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            0
        } else {
            (self.next() % n as u64) as usize
        }
    }
}

/// Tokens the formats are made of, inserted whole.
const TOKENS: &[&[u8]] = &[
    b"<xml>",
    b"</xml>",
    b"<![CDATA[",
    b"]]>",
    b"<return_code>",
    b"SUCCESS",
    b"FAIL",
    b"&amp;",
    b"&#x",
    b"<!DOCTYPE",
    b"{",
    b"}",
    b"[",
    b"]",
    b"\"",
    b"\\",
    b"\\u",
    b":",
    b",",
    b"`",
    b"\r\n",
    b"\n",
    b"\t",
    b"%",
    b"\x1b",
    b"\x00",
    b"\xff",
    b"\xe4\xb8\xad",
    b"PK\x03\x04",
    b"PK\x01\x02",
    b"PK\x05\x06",
    b"_response",
    b"\"sign\":",
    b"\"code\":\"10000\"",
    b"#",
    b"-",
    b"0.01",
    b"99999999999999999999",
    b"=",
    b"[till]",
    b"[wechat]",
    b"\"jsonrpc\":\"2.0\"",
];

fn mutate(rng: &mut Rng, input: &mut Vec<u8>, corpus: &[Vec<u8>]) {
    for _ in 0..1 + rng.below(4) {
        let len = input.len();
        match rng.below(8) {
            0 if len > 0 => {
                let i = rng.below(len);
                input[i] ^= 1 << rng.below(8);
            }
            1 if len > 0 => {
                let i = rng.below(len);
                input[i] = rng.next() as u8;
            }
            2 => {
                let i = rng.below(len + 1);
                input.insert(i, rng.next() as u8);
            }
            3 if len > 0 => {
                let i = rng.below(len);
                let n = 1 + rng.below((len - i).min(16));
                input.drain(i..i + n);
            }
            4 if len > 0 => {
                let i = rng.below(len);
                let n = 1 + rng.below((len - i).min(64));
                let piece: Vec<u8> = input[i..i + n].to_vec();
                let at = rng.below(len + 1);
                input.splice(at..at, piece);
            }
            5 if !corpus.is_empty() => {
                let other = &corpus[rng.below(corpus.len())];
                if !other.is_empty() {
                    let from = rng.below(other.len());
                    let n = 1 + rng.below((other.len() - from).min(256));
                    let at = rng.below(len + 1);
                    input.splice(at..at, other[from..from + n].iter().copied());
                }
            }
            6 => {
                let t = TOKENS[rng.below(TOKENS.len())];
                let at = rng.below(len + 1);
                input.splice(at..at, t.iter().copied());
            }
            _ if len > 1 => {
                input.truncate(rng.below(len));
            }
            _ => input.push(rng.next() as u8),
        }
    }
    // Keep inputs small enough to run fast, as libFuzzer's -max_len does.
    input.truncate(64 * 1024);
}

fn corpus(dir: &Path) -> Vec<Vec<u8>> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut out: Vec<Vec<u8>> = entries
        .flatten()
        .filter_map(|e| std::fs::read(e.path()).ok())
        .collect();
    out.sort();
    out
}

fn run(name: &str, target: fn(&[u8]), execs: u64, seed: u64, root: &Path) -> u64 {
    let seeds = corpus(&root.join("corpus").join(name));
    let mut rng = Rng(seed.max(1) ^ name.len() as u64);
    let start = Instant::now();
    let mut crashes = 0;
    for i in 0..execs {
        let mut input = if seeds.is_empty() {
            Vec::new()
        } else {
            seeds[(i as usize) % seeds.len()].clone()
        };
        mutate(&mut rng, &mut input, &seeds);
        if std::panic::catch_unwind(|| target(&input)).is_err() {
            crashes += 1;
            let dir = root.join("crashes");
            let _ = std::fs::create_dir_all(&dir);
            let path: PathBuf = dir.join(format!("{name}-{i}"));
            let _ = std::fs::write(&path, &input);
            eprintln!("{name}: panic, input saved as {}", path.display());
        }
    }
    let secs = start.elapsed().as_secs_f64();
    println!(
        "{name:<15} {execs:>11} execs  {:>9.0} execs/s  {:>7.1} s  {crashes} crashes  ({} seeds)",
        execs as f64 / secs.max(1e-9),
        secs,
        seeds.len()
    );
    crashes
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let which = args.first().map(String::as_str).unwrap_or("all");
    let execs: u64 = args
        .get(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(1_000_000);
    let seed: u64 = args
        .get(2)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0x0711_19a7);
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz");
    // A panic is the finding: keep the output to the summary lines.
    std::panic::set_hook(Box::new(|_| {}));
    let mut crashes = 0;
    for (name, target) in tillpay::fuzz::TARGETS {
        if which == "all" || which == *name {
            crashes += run(name, *target, execs, seed, &root);
        }
    }
    if crashes > 0 {
        std::process::exit(1);
    }
}
