use super::*;

const WALLET: &str = "TQn9Y2khEsLJW1ChVWFMSMeRDow5KcbLSE";
const USDT: &str = "TR7NHqjeKQxGTCi8q8ZY4pL8otSzgjLj6t";

fn rules() -> Rules<'static> {
    Rules {
        wallet: WALLET,
        contract: USDT,
        tolerance_bps: 100,
    }
}

fn order(currency: Currency, amount: u64) -> Order {
    Order {
        id: "K7Q2M9TZ".into(),
        product: "node".into(),
        currency,
        amount,
        pay_to: WALLET.into(),
        created_ms: 1_000,
        expires_ms: 2_000,
        status: Status::Pending,
        tx_id: None,
        received: None,
        settled_ms: None,
        chat_id: None,
    }
}

fn usdt(value: u64) -> Transfer {
    Transfer {
        currency: Currency::UsdtTrc20,
        tx_id: "ab".repeat(32),
        to: WALLET.into(),
        value,
        at_ms: 1_500,
        token: Some(USDT.into()),
        comment: None,
        flaw: None,
    }
}

#[test]
fn an_exact_transfer_of_the_real_token_in_the_window_pays() {
    let order = order(Currency::UsdtTrc20, 10_000_100);
    assert_eq!(judge(Some(&order), &usdt(10_000_100), &rules()), Verdict::Paid);
}

#[test]
fn everything_else_pays_nothing() {
    let open = order(Currency::UsdtTrc20, 10_000_100);
    let rejected = |order: Option<&Order>, transfer: Transfer| match judge(order, &transfer, &rules()) {
        Verdict::Rejected(why) => why,
        other => panic!("{transfer:?} judged {other:?}"),
    };
    let fake = Transfer {
        token: Some("TXYZfakefakefakefakefakefakefake12".into()),
        ..usdt(10_000_100)
    };
    assert_eq!(rejected(Some(&open), fake), Rejection::FakeToken);
    let elsewhere = Transfer {
        to: "TLa2f6VPqDgRE67v1736s7bJ8Ray5wYjU7".into(),
        ..usdt(10_000_100)
    };
    assert_eq!(rejected(Some(&open), elsewhere), Rejection::WrongRecipient);
    let approval = Transfer {
        flaw: Some(Flaw::NotTransfer),
        ..usdt(10_000_100)
    };
    assert_eq!(rejected(Some(&open), approval), Rejection::NotTransfer);
    assert_eq!(rejected(Some(&open), usdt(10_000_000)), Rejection::NoOrder);
    assert_eq!(rejected(None, usdt(10_000_100)), Rejection::NoOrder);
    let early = Transfer {
        at_ms: 999,
        ..usdt(10_000_100)
    };
    let late = Transfer {
        at_ms: 2_001,
        ..usdt(10_000_100)
    };
    assert_eq!(rejected(Some(&open), early), Rejection::OutsideWindow);
    assert_eq!(rejected(Some(&open), late), Rejection::OutsideWindow);
    let paid = Order {
        status: Status::Paid,
        ..open.clone()
    };
    assert_eq!(rejected(Some(&paid), usdt(10_000_100)), Rejection::NotPending);
    let ton_order = order(Currency::Ton, 10_000_100);
    assert_eq!(rejected(Some(&ton_order), usdt(10_000_100)), Rejection::WrongCurrency);
}

#[test]
fn ton_pays_by_comment_with_under_and_overpayment() {
    let wallet = format!("0:{}", "a1".repeat(32));
    let rules = Rules {
        wallet: &wallet,
        ..rules()
    };
    let order = order(Currency::Ton, 1_000_000_000);
    let ton = |value: u64, flaw: Option<Flaw>| Transfer {
        currency: Currency::Ton,
        tx_id: "h".into(),
        to: wallet.clone(),
        value,
        at_ms: 1_500,
        token: None,
        comment: Some(order.id.clone()),
        flaw,
    };
    assert_eq!(judge(Some(&order), &ton(1_000_000_000, None), &rules), Verdict::Paid);
    // 1 % tolerance: 10,000,000 nanotons over is still paid, one more is not.
    assert_eq!(judge(Some(&order), &ton(1_010_000_000, None), &rules), Verdict::Paid);
    assert_eq!(
        judge(Some(&order), &ton(1_010_000_001, None), &rules),
        Verdict::Overpaid
    );
    assert_eq!(judge(Some(&order), &ton(999_999_999, None), &rules), Verdict::Underpaid);
    assert_eq!(
        judge(Some(&order), &ton(1_000_000_000, Some(Flaw::Bounced)), &rules),
        Verdict::Rejected(Rejection::Bounced)
    );
    assert_eq!(
        judge(Some(&order), &ton(1_000_000_000, Some(Flaw::Failed)), &rules),
        Verdict::Rejected(Rejection::Failed)
    );
}

#[test]
fn ton_addresses_are_compared_in_raw_form() {
    let raw = "0:83dfd552e63729b472fcbcc8c45ebcc6691702558b68ec7527e1ba403a0f31a8";
    assert_eq!(
        ton_raw_address("EQCD39VS5jcptHL8vMjEXrzGaRcCVYto7HUn4bpAOg8xqB2N").as_deref(),
        Ok(raw)
    );
    assert_eq!(ton_raw_address(&raw.to_ascii_uppercase()).as_deref(), Ok(raw));
    let masterchain = format!("-1:{}", "5F".repeat(32));
    assert_eq!(ton_raw_address(&masterchain), Ok(masterchain.to_ascii_lowercase()));
    let mistyped = ton_raw_address("EQCD39VS5jcptHL8vMjEXrzGaRcCVYto7HUn4bpAOg8xqB2M");
    assert!(mistyped.is_err_and(|e| e.contains("checksum")));
    assert!(ton_raw_address("0:xyz").is_err());
    assert!(ton_raw_address("hello").is_err());
}
