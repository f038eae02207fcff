//! What a sale's rows add up to, as the fleet API lists it. Pure, so each
//! combination is tested.

use tillpay::sync::wire::{Attempt, Refund};

/// A sale's standing across its attempts and refunds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Standing {
    pub status: &'static str,
    /// Fen taken by its paid attempts.
    pub paid: u64,
    /// Fen the gateways confirmed refunded.
    pub refunded: u64,
}

/// An attempt waiting on an operator outranks everything (someone must
/// look); then money taken; then work in flight; then how the last
/// attempt ended; a sale with none was cancelled or is still open.
pub fn standing(cancelled: bool, attempts: &[Attempt], refunds: &[Refund]) -> Standing {
    let phase = |p: &str| attempts.iter().any(|a| a.phase == p);
    let paid = attempts
        .iter()
        .filter(|a| a.phase == "paid")
        .map(|a| a.booked_amount.unwrap_or(a.amount))
        .sum();
    let refunded = refunds
        .iter()
        .filter(|r| r.status == "refunded")
        .map(|r| r.amount)
        .sum();
    let status = if phase("needs_attention") {
        "needs_attention"
    } else if phase("paid") {
        "paid"
    } else if phase("submitting") || phase("paying") || phase("revoking") {
        "in_flight"
    } else if let Some(last) = attempts.iter().max_by_key(|a| a.seq) {
        match last.phase.as_str() {
            "revoked" => "revoked",
            _ => "failed",
        }
    } else if cancelled {
        "cancelled"
    } else {
        "open"
    };
    Standing {
        status,
        paid,
        refunded,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn attempt(seq: u32, phase: &str) -> Attempt {
        Attempt {
            out_trade_no: format!("T1_A_{seq}"),
            seq,
            provider: "wechat".into(),
            channel: "wechat".into(),
            amount: 500,
            code_masked: "1345**********6789".into(),
            phase: phase.into(),
            submitted_at: 0,
            updated_at: 0,
            transaction_id: None,
            paid_at: None,
            booked_amount: None,
            customer_paid: None,
            discount: None,
            payer: None,
            error_code: None,
            error_message: None,
            revoke_tries: 0,
            revoke_effect: None,
        }
    }

    fn refund(amount: u64, status: &str) -> Refund {
        Refund {
            refund_no: "R".into(),
            out_refund_no: "T1R".into(),
            out_trade_no: "T1_A_1".into(),
            amount,
            status: status.into(),
            refund_id: None,
            reason: None,
            operator_id: None,
            error_code: None,
            error_message: None,
            created_at: 0,
        }
    }

    #[test]
    fn every_phase_alone_and_each_precedence() {
        let phases = [
            ("submitting", "in_flight"),
            ("paying", "in_flight"),
            ("revoking", "in_flight"),
            ("paid", "paid"),
            ("failed", "failed"),
            ("revoked", "revoked"),
            ("needs_attention", "needs_attention"),
        ];
        for (phase, want) in phases {
            let s = standing(false, &[attempt(1, phase)], &[]);
            assert_eq!(s.status, want, "{phase}");
            assert_eq!(s.paid, if phase == "paid" { 500 } else { 0 }, "{phase}");
        }
        // Each pair of attempts: the higher-ranked standing wins, and
        // between two endings the later attempt's.
        let rank = ["needs_attention", "paid", "in_flight"];
        for (a, _) in phases {
            for (b, _) in phases {
                let s = standing(false, &[attempt(1, a), attempt(2, b)], &[]);
                let ranked = |st: &str| rank.iter().position(|r| *r == st).unwrap_or(rank.len());
                let (sa, sb) = (
                    standing(false, &[attempt(1, a)], &[]),
                    standing(false, &[attempt(2, b)], &[]),
                );
                let want = if ranked(sa.status) < rank.len() || ranked(sb.status) < rank.len() {
                    if ranked(sa.status) <= ranked(sb.status) {
                        sa.status
                    } else {
                        sb.status
                    }
                } else {
                    sb.status
                };
                assert_eq!(s.status, want, "{a} then {b}");
            }
        }
        assert_eq!(standing(true, &[], &[]).status, "cancelled");
        assert_eq!(standing(false, &[], &[]).status, "open");
    }

    #[test]
    fn paid_counts_what_was_booked_and_refunded_only_what_was_confirmed() {
        let mut paid = attempt(1, "paid");
        paid.booked_amount = Some(480);
        let s = standing(
            false,
            &[paid],
            &[
                refund(100, "refunded"),
                refund(50, "processing"),
                refund(30, "failed"),
            ],
        );
        assert_eq!((s.status, s.paid, s.refunded), ("paid", 480, 100));
    }
}
