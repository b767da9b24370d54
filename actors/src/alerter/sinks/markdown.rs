//! Telegram MarkdownV2 escaping (core.telegram.org/bots/api#markdownv2-style).
//! In normal text every reserved character and the backslash take a
//! preceding backslash; inside `code` only the backtick and the backslash do.

/// Characters reserved in MarkdownV2 normal text.
pub const RESERVED: &[char] = &[
    '_', '*', '[', ']', '(', ')', '~', '`', '>', '#', '+', '-', '=', '|', '{', '}', '.', '!', '\\',
];

/// `text` as literal MarkdownV2 normal text.
pub fn escape(text: &str) -> String {
    escape_set(text, RESERVED)
}

/// `text` as literal content of an inline `code` span.
pub fn escape_code(text: &str) -> String {
    escape_set(text, &['`', '\\'])
}

fn escape_set(text: &str, reserved: &[char]) -> String {
    let mut out = String::with_capacity(text.len() + text.len() / 4);
    for c in text.chars() {
        if reserved.contains(&c) {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_reserved_character_is_escaped() {
        for c in "_*[]()~`>#+-=|{}.!\\".chars() {
            assert_eq!(escape(&c.to_string()), format!("\\{c}"), "{c:?}");
        }
        assert_eq!(RESERVED.len(), 19);
    }

    #[test]
    fn ordinary_text_is_left_alone() {
        let plain = "Link A to B lost 40 percent, node alpha, привет, 🔴";
        assert_eq!(escape(plain), plain);
    }

    #[test]
    fn a_realistic_summary_escapes_fully() {
        assert_eq!(
            escape("handshake with 12D3-x refused: bad_signature (v1.2)!"),
            "handshake with 12D3\\-x refused: bad\\_signature \\(v1\\.2\\)\\!"
        );
        assert_eq!(escape("a\\b"), "a\\\\b");
    }

    #[test]
    fn inside_code_only_backtick_and_backslash_are_escaped() {
        assert_eq!(escape_code("peer=12D3-x.y_z"), "peer=12D3-x.y_z");
        assert_eq!(escape_code("a`b\\c"), "a\\`b\\\\c");
    }

    #[test]
    fn every_escaped_character_is_preceded_by_an_odd_run_of_backslashes() {
        let all: String = RESERVED.iter().collect::<String>().repeat(3);
        let escaped = escape(&all);
        let chars: Vec<char> = escaped.chars().collect();
        let mut i = 0;
        while i < chars.len() {
            assert_eq!(chars[i], '\\', "at {i} in {escaped}");
            assert!(RESERVED.contains(&chars[i + 1]));
            i += 2;
        }
    }
}
