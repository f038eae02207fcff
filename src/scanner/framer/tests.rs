use std::time::{Duration, Instant};

use proptest::prelude::*;

use super::*;

const GAP: Duration = Duration::from_millis(50);
const WECHAT: &str = "134567890123456789";
const ALIPAY: &str = "2845678901234567";

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// Feeds `bytes` in one read at `at` and returns the finished frames.
fn feed(f: &mut Framer, bytes: &[u8], at: Instant) -> Vec<Frame> {
    let mut out = Vec::new();
    f.push(bytes, at, &mut out);
    out
}

fn text(s: &str) -> Frame {
    Frame::Text(FrameText(s.to_string()))
}

fn texts(frames: &[Frame]) -> Vec<&str> {
    frames
        .iter()
        .filter_map(|f| match f {
            Frame::Text(t) => Some(t.as_str()),
            Frame::Dropped { .. } => None,
        })
        .collect()
}

fn dropped_reason(frame: &Frame) -> &str {
    match frame {
        Frame::Dropped { reason } => reason,
        Frame::Text(t) => panic!("expected a dropped frame, got {t:?}"),
    }
}

#[test]
fn each_terminator_ends_one_frame() {
    for term in ["\r", "\n", "\r\n"] {
        let mut f = Framer::new(GAP);
        let out = feed(&mut f, format!("{WECHAT}{term}").as_bytes(), Instant::now());
        assert_eq!(out, vec![text(WECHAT)], "terminator {term:?}");
        assert_eq!(f.deadline(), None, "nothing pending after {term:?}");
    }
}

#[test]
fn crlf_split_across_reads_is_still_one_terminator() {
    let t0 = Instant::now();
    let mut f = Framer::new(GAP);
    assert_eq!(
        feed(&mut f, format!("{WECHAT}\r").as_bytes(), t0),
        vec![text(WECHAT)]
    );
    assert_eq!(feed(&mut f, b"\n", t0 + ms(5)), vec![]);
    assert_eq!(
        feed(&mut f, format!("{ALIPAY}\r\n").as_bytes(), t0 + ms(10)),
        vec![text(ALIPAY)]
    );
}

#[test]
fn silence_gap_ends_a_frame_without_terminator() {
    let t0 = Instant::now();
    let mut f = Framer::new(GAP);
    assert_eq!(feed(&mut f, WECHAT.as_bytes(), t0), vec![]);
    assert_eq!(f.deadline(), Some(t0 + GAP));
    assert_eq!(f.poll_gap(t0 + GAP - ms(1)), None);
    assert_eq!(f.poll_gap(t0 + GAP), Some(text(WECHAT)));
    assert_eq!(f.deadline(), None);
    assert_eq!(f.poll_gap(t0 + GAP * 3), None);
}

#[test]
fn a_read_after_the_gap_starts_a_new_frame_even_if_the_timer_was_late() {
    let t0 = Instant::now();
    let mut f = Framer::new(GAP);
    feed(&mut f, WECHAT.as_bytes(), t0);
    let out = feed(&mut f, format!("{ALIPAY}\r").as_bytes(), t0 + GAP * 2);
    assert_eq!(out, vec![text(WECHAT), text(ALIPAY)]);
}

#[test]
fn aim_identifier_and_surrounding_whitespace_are_stripped() {
    let t0 = Instant::now();
    let mut f = Framer::new(GAP);
    assert_eq!(
        feed(&mut f, format!("]C0{WECHAT}\r").as_bytes(), t0),
        vec![text(WECHAT)]
    );
    assert_eq!(
        feed(&mut f, format!(" \t]Q1 {ALIPAY}  \n").as_bytes(), t0),
        vec![text(ALIPAY)]
    );
    // Only a leading identifier: a `]` later in the frame stays.
    assert_eq!(feed(&mut f, b"AB]C0\r", t0), vec![text("AB]C0")]);
}

#[test]
fn blank_frames_produce_nothing() {
    let mut f = Framer::new(GAP);
    let out = feed(&mut f, b"\r\n\n\r  \t \r]C0\r\r\n", Instant::now());
    assert_eq!(out, vec![]);
}

#[test]
fn bytes_one_at_a_time_with_pauses_shorter_than_the_gap_make_one_frame() {
    let mut t = Instant::now();
    let mut f = Framer::new(GAP);
    let mut out = Vec::new();
    for b in format!("]C0{WECHAT}").bytes() {
        t += GAP - ms(10);
        out.extend(f.poll_gap(t));
        f.push(&[b], t, &mut out);
    }
    assert_eq!(out, vec![], "no frame before the code is complete");
    assert_eq!(f.poll_gap(t + GAP), Some(text(WECHAT)));
}

#[test]
fn garbage_before_a_valid_code_is_its_own_frame() {
    let t0 = Instant::now();
    let mut f = Framer::new(GAP);
    let out = feed(&mut f, format!("x#?~\r{WECHAT}\r").as_bytes(), t0);
    assert_eq!(texts(&out), vec!["x#?~", WECHAT]);
    // Garbage ended by silence, then the code.
    feed(&mut f, b"@@@", t0);
    let out = feed(&mut f, format!("{ALIPAY}\r").as_bytes(), t0 + GAP);
    assert_eq!(texts(&out), vec!["@@@", ALIPAY]);
}

#[test]
fn overlong_frame_is_dropped_with_bounded_memory_then_next_code_is_read() {
    let t0 = Instant::now();
    let mut f = Framer::new(GAP);
    let mut out = Vec::new();
    for _ in 0..100 {
        f.push(&[b'7'; 100], t0, &mut out);
        assert!(f.buf.len() <= MAX_FRAME);
        assert!(f.buf.capacity() <= 2 * MAX_FRAME, "buffer grew");
    }
    assert_eq!(out, vec![]);
    f.push(format!("\r{WECHAT}\r").as_bytes(), t0, &mut out);
    assert_eq!(out.len(), 2, "{out:?}");
    assert_eq!(dropped_reason(&out[0]), "frame longer than 256 bytes");
    assert_eq!(out[1], text(WECHAT));
}

#[test]
fn overlong_frame_ended_by_silence_is_dropped() {
    let t0 = Instant::now();
    let mut f = Framer::new(GAP);
    feed(&mut f, &[b'1'; 300], t0);
    let frame = f.poll_gap(t0 + GAP).expect("frame ends at the gap");
    assert!(dropped_reason(&frame).starts_with("frame longer"));
}

#[test]
fn frame_of_exactly_the_limit_is_kept_and_one_more_byte_is_not() {
    let t0 = Instant::now();
    let mut f = Framer::new(GAP);
    let mut line = vec![b'a'; MAX_FRAME];
    line.push(b'\r');
    let out = feed(&mut f, &line, t0);
    assert_eq!(texts(&out), vec!["a".repeat(MAX_FRAME)]);
    let mut line = vec![b'a'; MAX_FRAME + 1];
    line.push(b'\n');
    let out = feed(&mut f, &line, t0);
    assert!(dropped_reason(&out[0]).starts_with("frame longer"));
}

#[test]
fn non_printable_bytes_drop_the_frame_without_echoing_it() {
    let t0 = Instant::now();
    let mut f = Framer::new(GAP);
    for bad in [
        &b"\x1b"[..],
        b"\x00",
        b"\x7f",
        b"\xff",
        "é".as_bytes(),
        b"\x02",
    ] {
        let mut line = b"1345678901".to_vec();
        line.extend_from_slice(bad);
        line.extend_from_slice(b"23456789\r");
        let out = feed(&mut f, &line, t0);
        assert_eq!(out.len(), 1, "{bad:?}");
        let reason = dropped_reason(&out[0]);
        assert!(reason.starts_with("non-printable byte"), "{reason}");
        assert!(!reason.contains("1345678901"), "{reason}");
    }
    // The next frame is read normally.
    assert_eq!(
        feed(&mut f, format!("{WECHAT}\r").as_bytes(), t0),
        vec![text(WECHAT)]
    );
}

#[test]
fn reset_forgets_a_partial_frame() {
    let t0 = Instant::now();
    let mut f = Framer::new(GAP);
    feed(&mut f, b"134567", t0);
    f.reset();
    assert_eq!(f.deadline(), None);
    assert_eq!(
        feed(&mut f, format!("{ALIPAY}\r").as_bytes(), t0),
        vec![text(ALIPAY)]
    );
}

#[test]
fn debug_of_a_frame_is_masked() {
    let dbg = format!("{:?}", text(WECHAT));
    assert!(!dbg.contains(WECHAT), "{dbg}");
    assert!(dbg.contains("1345**********6789"), "{dbg}");
}

// ---- properties -----------------------------------------------------------

/// How a segment of the stream ends.
#[derive(Debug, Clone, Copy)]
enum End {
    Cr,
    Lf,
    CrLf,
    Silence,
}

fn end() -> impl Strategy<Value = End> {
    prop_oneof![
        Just(End::Cr),
        Just(End::Lf),
        Just(End::CrLf),
        Just(End::Silence)
    ]
}

fn payment_code() -> impl Strategy<Value = String> {
    prop_oneof!["1[0-5][0-9]{16}", "(2[5-9]|30)[0-9]{14,22}"]
}

#[derive(Debug, Clone)]
enum Segment {
    /// A code, maybe with an AIM identifier and spaces around it.
    Code { code: String, aim: bool, pad: bool },
    /// Bytes without digits, CR or LF: they can never be a payment code.
    Noise(Vec<u8>),
}

fn segment() -> impl Strategy<Value = (Segment, End)> {
    let noise = prop::collection::vec(
        any::<u8>().prop_filter("no digits or terminators", |b| {
            !b.is_ascii_digit() && *b != b'\r' && *b != b'\n'
        }),
        0..400,
    )
    .prop_map(Segment::Noise);
    let code = (payment_code(), any::<bool>(), any::<bool>())
        .prop_map(|(code, aim, pad)| Segment::Code { code, aim, pad });
    (prop_oneof![noise, code], end())
}

/// Feeds `stream` split into reads of the given sizes, `step` apart.
fn run_chunks(
    f: &mut Framer,
    stream: &[u8],
    sizes: &[usize],
    t: &mut Instant,
    step: Duration,
) -> Vec<Frame> {
    let mut out = Vec::new();
    let mut rest = stream;
    let mut i = 0;
    while !rest.is_empty() {
        let n = sizes
            .get(i % sizes.len().max(1))
            .copied()
            .unwrap_or(1)
            .clamp(1, rest.len());
        i += 1;
        *t += step;
        out.extend(f.poll_gap(*t));
        f.push(&rest[..n], *t, &mut out);
        rest = &rest[n..];
    }
    out
}

proptest! {
    #[test]
    fn arbitrary_bytes_never_panic_nor_yield_a_long_or_unprintable_frame(
        reads in prop::collection::vec(
            (prop::collection::vec(any::<u8>(), 0..600), 0u64..120),
            0..20,
        ),
    ) {
        let mut f = Framer::new(GAP);
        let mut t = Instant::now();
        let mut out = Vec::new();
        for (bytes, pause) in &reads {
            t += ms(*pause);
            out.extend(f.poll_gap(t));
            f.push(bytes, t, &mut out);
            prop_assert!(f.buf.len() <= MAX_FRAME);
        }
        out.extend(f.poll_gap(t + GAP));
        prop_assert_eq!(f.deadline(), None);
        for frame in &out {
            if let Frame::Text(text) = frame {
                let s = text.as_str();
                prop_assert!(!s.is_empty() && s.len() <= MAX_FRAME, "{} bytes", s.len());
                prop_assert!(s.bytes().all(|b| (0x20..=0x7e).contains(&b)));
            }
        }
    }

    #[test]
    fn codes_between_terminators_in_noise_are_all_found_in_order(
        segments in prop::collection::vec(segment(), 0..12),
        sizes in prop::collection::vec(1usize..40, 1..8),
        step_ms in 0u64..45,
    ) {
        let mut f = Framer::new(GAP);
        let mut t = Instant::now();
        let mut found = Vec::new();
        let mut expected = Vec::new();
        for (segment, end) in &segments {
            let mut bytes = match segment {
                Segment::Noise(noise) => noise.clone(),
                Segment::Code { code, aim, pad } => {
                    expected.push(code.clone());
                    let pad = if *pad { " " } else { "" };
                    let aim = if *aim { "]Q1" } else { "" };
                    format!("{pad}{aim}{code}{pad}").into_bytes()
                }
            };
            match end {
                End::Cr => bytes.push(b'\r'),
                End::Lf => bytes.push(b'\n'),
                End::CrLf => bytes.extend_from_slice(b"\r\n"),
                End::Silence => {}
            }
            // Reads come less than a gap apart, so only a terminator or the
            // silence after the segment can end a frame.
            found.extend(run_chunks(&mut f, &bytes, &sizes, &mut t, ms(step_ms)));
            if let End::Silence = end {
                t += GAP;
                found.extend(f.poll_gap(t));
            }
        }
        found.extend(f.poll_gap(t + GAP));
        let codes: Vec<String> = found
            .iter()
            .filter_map(|frame| match frame {
                Frame::Text(text) => crate::gateway::recognise(text.as_str())
                    .map(|c| c.expose().to_string()),
                Frame::Dropped { .. } => None,
            })
            .collect();
        prop_assert_eq!(codes, expected);
    }
}
