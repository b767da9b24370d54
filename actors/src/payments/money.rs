//! Currencies and exact amounts: every amount is an integer of base units
//! (USDT has 6 decimals, Toncoin 9), parsed from and written as decimal
//! strings without ever going through floating point.

use serde::{Deserialize, Serialize};

/// What an order is paid in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Currency {
    /// Tether USD as a TRC-20 token on TRON.
    #[serde(rename = "usdt-trc20")]
    UsdtTrc20,
    /// Toncoin.
    #[serde(rename = "ton")]
    Ton,
}

impl Currency {
    /// Every currency, in a fixed order.
    pub const ALL: [Currency; 2] = [Currency::UsdtTrc20, Currency::Ton];

    /// Decimal places of one base unit.
    pub fn decimals(self) -> u32 {
        match self {
            Currency::UsdtTrc20 => 6,
            Currency::Ton => 9,
        }
    }

    /// The name orders, the API and the bot use.
    pub fn label(self) -> &'static str {
        match self {
            Currency::UsdtTrc20 => "usdt-trc20",
            Currency::Ton => "ton",
        }
    }

    /// The chain, as metrics label it.
    pub fn chain(self) -> &'static str {
        match self {
            Currency::UsdtTrc20 => "trc20",
            Currency::Ton => "ton",
        }
    }

    /// The ticker shown to buyers.
    pub fn symbol(self) -> &'static str {
        match self {
            Currency::UsdtTrc20 => "USDT",
            Currency::Ton => "TON",
        }
    }

    /// Parses `usdt-trc20`/`usdt`/`trc20` or `ton` (any case).
    pub fn parse(text: &str) -> Option<Self> {
        match text.trim().to_ascii_lowercase().as_str() {
            "usdt-trc20" | "usdt" | "trc20" => Some(Currency::UsdtTrc20),
            "ton" => Some(Currency::Ton),
            _ => None,
        }
    }
}

/// Why a decimal amount was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AmountError {
    /// Not digits with at most one point.
    #[error("{0:?} is not a decimal amount")]
    NotDecimal(String),
    /// More decimal places than the currency has.
    #[error("{0:?} has more than {1} decimal places")]
    TooPrecise(String, u32),
    /// Beyond what 64 bits of base units hold.
    #[error("{0:?} is too large")]
    TooLarge(String),
}

/// `text` (`"10"`, `"10.5"`, `"0.000001"`) in base units of `decimals` places.
pub fn parse_amount(text: &str, decimals: u32) -> Result<u64, AmountError> {
    let text = text.trim();
    let (whole, fraction) = text.split_once('.').unwrap_or((text, ""));
    let digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    if whole.is_empty() && fraction.is_empty() || !digits(whole) || !digits(fraction) {
        return Err(AmountError::NotDecimal(text.to_string()));
    }
    let places = u32::try_from(fraction.len()).unwrap_or(u32::MAX);
    if places > decimals {
        return Err(AmountError::TooPrecise(text.to_string(), decimals));
    }
    let too_large = || AmountError::TooLarge(text.to_string());
    let scale = 10u64.checked_pow(decimals).ok_or_else(too_large)?;
    let whole: u64 = if whole.is_empty() {
        0
    } else {
        whole.parse().map_err(|_| too_large())?
    };
    let fraction: u64 = if fraction.is_empty() {
        0
    } else {
        fraction.parse().map_err(|_| too_large())?
    };
    let fraction = fraction * 10u64.pow(decimals - places);
    whole
        .checked_mul(scale)
        .and_then(|w| w.checked_add(fraction))
        .ok_or_else(too_large)
}

/// `units` base units of `decimals` places as a decimal string, without
/// trailing zeros (`10000100`, 6 → `"10.0001"`).
pub fn format_amount(units: u64, decimals: u32) -> String {
    let scale = 10u64.pow(decimals);
    let (whole, fraction) = (units / scale, units % scale);
    if fraction == 0 {
        return whole.to_string();
    }
    let fraction = format!("{fraction:0width$}", width = decimals as usize);
    format!("{whole}.{}", fraction.trim_end_matches('0'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn amounts_are_exact_base_units() {
        assert_eq!(parse_amount("10", 6), Ok(10_000_000));
        assert_eq!(parse_amount("10.0001", 6), Ok(10_000_100));
        assert_eq!(parse_amount("0.000001", 6), Ok(1));
        assert_eq!(parse_amount(".5", 9), Ok(500_000_000));
        assert_eq!(parse_amount("2.", 9), Ok(2_000_000_000));
        assert!(matches!(parse_amount("0.0000001", 6), Err(AmountError::TooPrecise(..))));
        assert!(matches!(parse_amount("1e3", 6), Err(AmountError::NotDecimal(_))));
        assert!(matches!(parse_amount("-1", 6), Err(AmountError::NotDecimal(_))));
        assert!(matches!(parse_amount(".", 6), Err(AmountError::NotDecimal(_))));
        assert!(matches!(
            parse_amount("99999999999999", 9),
            Err(AmountError::TooLarge(_))
        ));
        assert_eq!(format_amount(10_000_100, 6), "10.0001");
        assert_eq!(format_amount(10_000_000, 6), "10");
        assert_eq!(format_amount(1, 9), "0.000000001");
        for units in [0, 1, 999_999, 1_000_000, 123_456_789_012] {
            assert_eq!(parse_amount(&format_amount(units, 6), 6), Ok(units));
        }
    }

    #[test]
    fn currencies_parse_from_what_buyers_type() {
        assert_eq!(Currency::parse("USDT"), Some(Currency::UsdtTrc20));
        assert_eq!(Currency::parse("usdt-trc20"), Some(Currency::UsdtTrc20));
        assert_eq!(Currency::parse(" Ton "), Some(Currency::Ton));
        assert_eq!(Currency::parse("btc"), None);
        let json = serde_json::to_string(&Currency::UsdtTrc20).expect("json");
        assert_eq!(json, "\"usdt-trc20\"");
    }
}
