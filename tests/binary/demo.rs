//! `tillpay demo` without a terminal plays a scripted day and exits 0 when
//! every sale ended as scripted (docs/operations.md).

/// Runs `tillpay demo` with `args` and no terminal; its output once it
/// exited 0.
fn demo(args: &[&str]) -> String {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_tillpay"))
        .arg("demo")
        .args(args)
        .stdin(std::process::Stdio::null())
        .output()
        .expect("tillpay demo runs");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    text
}

#[test]
fn the_scripted_demo_ends_every_sale_as_scripted() {
    let text = demo(&[]);
    for line in [
        "=> PAID ¥12.34",
        "=> PAID ¥8.80",
        "customer confirming on the phone",
        "=> PAID ¥45.00",
        "=> REVOKED ¥19.99",
        "=> FAILED ¥300.00",
        "the gateway kept ¥0.00",
        "Demo timings",
        "every sale ended as scripted",
    ] {
        assert!(text.contains(line), "missing {line:?} in:\n{text}");
    }
    // Only masked codes are shown.
    assert!(text.contains("1300**********"), "{text}");
}

#[test]
fn the_scripted_demo_runs_on_wechat_pay_api_v3() {
    let text = demo(&["--wechat-api", "v3"]);
    for line in [
        "WeChat Pay (API v3)",
        "customer confirming on the phone",
        "=> REVOKED ¥19.99",
        "every sale ended as scripted",
    ] {
        assert!(text.contains(line), "missing {line:?} in:\n{text}");
    }
}

#[test]
fn the_scripted_demo_runs_through_an_acquirer_for_three_wallets() {
    let text = demo(&["--channel", "acquirer"]);
    for line in [
        "carrying WeChat Pay, Alipay and UnionPay codes",
        "UnionPay, pays at once",
        "=> PAID ¥25.00 via acquirer",
        "=> REVOKED ¥19.99",
        "via acquirer; the gateway kept ¥0.00",
        "every sale ended as scripted",
    ] {
        assert!(text.contains(line), "missing {line:?} in:\n{text}");
    }
}
