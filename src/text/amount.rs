//! Money amounts in Chinese complaint text, written in Arabic or Chinese
//! numerals: `15,000元`, `1.2万`, `￥26800`, `两万三`, `八千块`, `三十多万`,
//! `一万出头`, `2.5w`. Offsets are characters, not bytes.

use std::sync::LazyLock;

use regex::Regex;

/// One amount of money found in a text.
#[derive(Debug, Clone, PartialEq)]
pub struct Amount {
    /// Value in yuan (a lower bound for vague amounts like 三十多万).
    pub yuan: f64,
    pub start: usize,
    pub end: usize,
    pub text: String,
}

/// Arabic number with optional 万/千/w/k multiplier and a trailing digit
/// (1万2 = 12,000); or a Chinese numeral (两万三千, 三十多万, 十几万);
/// then an optional vague marker and currency word. A currency sign before,
/// a currency word after, or a 万 must be present for it to count as money.
static AMOUNT: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(concat!(
        r"(?P<sign>[￥¥]|RMB\s?|人民币)?",
        r"(?:(?P<arabic>\d{1,3}(?:,\d{3})+(?:\.\d+)?|\d+(?:\.\d+)?)(?:多|余|来)?(?P<mult>万|千|w|W|k|K)?(?P<tail>\d)?",
        r"|(?P<chinese>[零〇一二两三四五六七八九十拾壹贰叁肆伍陆柒捌玖][零〇一二两三四五六七八九十百千万拾佰仟壹贰叁肆伍陆柒捌玖多几余]*))",
        r"(?P<vague>多|余|出头|左右)?",
        r"(?P<cur>元|块钱|块|圆|人民币|rmb|RMB)?",
    ))
    .expect("static amount pattern compiles")
});

/// Measure words after which a number is a count, not money (一万次, 三万个).
const NOT_MONEY_AFTER: &[char] = &[
    '次', '个', '遍', '人', '件', '步', '名', '位', '户', '条', '年', '月', '日', '号', '天', '公',
    '米', '斤', '台', '单', '张', '分', '小', '字', '楼', '层', '倍', '%', '％', '多',
];

/// All money amounts in `text`.
pub fn find_amounts(text: &str) -> Vec<Amount> {
    let mut out = Vec::new();
    for caps in AMOUNT.captures_iter(text) {
        let whole = caps.get(0).expect("group 0 always matches");
        let matched = whole.as_str();
        let has_sign = caps.name("sign").is_some();
        let has_cur = caps.name("cur").is_some();
        let value = if let Some(arabic) = caps.name("arabic") {
            let Ok(base) = arabic.as_str().replace(',', "").parse::<f64>() else {
                continue;
            };
            let factor = match caps.name("mult").map(|m| m.as_str()) {
                Some("万" | "w" | "W") => 10_000.0,
                Some("千" | "k" | "K") => 1_000.0,
                _ => 1.0,
            };
            if !(has_sign || has_cur || factor == 10_000.0) {
                continue;
            }
            let mut value = base * factor;
            if let Some(d) = caps
                .name("tail")
                .and_then(|t| t.as_str().parse::<f64>().ok())
            {
                // 1万2 = 12,000: a digit after 万/千 is the next lower unit.
                if factor > 1.0 {
                    value += d * factor / 10.0;
                }
            }
            value
        } else {
            let cn = caps
                .name("chinese")
                .expect("one alternative matched")
                .as_str();
            if !(has_sign || has_cur || cn.contains('万')) {
                continue;
            }
            match parse_chinese(cn) {
                Some(v) => v,
                None => continue,
            }
        };
        let after = text[whole.start() + matched.len()..].chars().next();
        if !has_cur && after.is_some_and(|c| NOT_MONEY_AFTER.contains(&c)) {
            continue;
        }
        if value <= 0.0 {
            continue;
        }
        let start = text[..whole.start()].chars().count();
        out.push(Amount {
            yuan: value,
            start,
            end: start + matched.chars().count(),
            text: matched.to_string(),
        });
    }
    out
}

fn cn_digit(c: char) -> Option<f64> {
    Some(match c {
        '零' | '〇' => 0.0,
        '一' | '壹' => 1.0,
        '二' | '两' | '贰' => 2.0,
        '三' | '叁' => 3.0,
        '四' | '肆' => 4.0,
        '五' | '伍' => 5.0,
        '六' | '陆' => 6.0,
        '七' | '柒' => 7.0,
        '八' | '捌' => 8.0,
        '九' | '玖' => 9.0,
        _ => return None,
    })
}

fn cn_unit(c: char) -> Option<f64> {
    Some(match c {
        '十' | '拾' => 10.0,
        '百' | '佰' => 100.0,
        '千' | '仟' => 1000.0,
        _ => return None,
    })
}

/// Parse a Chinese numeral up to the 万 section: 两万三千 = 23,000,
/// 两万三 = 23,000, 三十多万 = 300,000 (vague parts count as zero), 十二 = 12.
pub fn parse_chinese(s: &str) -> Option<f64> {
    let s: String = s
        .chars()
        .filter(|c| !matches!(c, '多' | '几' | '余'))
        .collect();
    match s.rsplit_once('万') {
        Some((high, low)) => {
            let high = if high.is_empty() {
                1.0
            } else {
                parse_below_wan(high)?
            };
            let low = match low.chars().collect::<Vec<_>>().as_slice() {
                [] => 0.0,
                // 两万三: a lone digit after 万 means that many thousands.
                [d] if cn_digit(*d).is_some() => cn_digit(*d)? * 1000.0,
                _ => parse_below_wan(low)?,
            };
            Some(high * 10_000.0 + low)
        }
        None => parse_below_wan(&s),
    }
}

/// 0..9999 in Chinese numerals; a trailing digit after a unit takes the next
/// lower unit (三千五 = 3,500, 两百五 = 250); digits alone read positionally.
fn parse_below_wan(s: &str) -> Option<f64> {
    let chars: Vec<char> = s.chars().collect();
    if chars.is_empty() {
        return None;
    }
    if chars.iter().all(|&c| cn_digit(c).is_some()) {
        return chars
            .iter()
            .try_fold(0.0, |acc, &c| Some(acc * 10.0 + cn_digit(c)?));
    }
    let mut total = 0.0;
    let mut current: Option<f64> = None;
    let mut last_unit = 0.0;
    for &c in &chars {
        if let Some(d) = cn_digit(c) {
            current = Some(d);
        } else {
            let unit = cn_unit(c)?;
            total += current.take().unwrap_or(1.0) * unit;
            last_unit = unit;
        }
    }
    if let Some(d) = current {
        let after_unit = chars.len() >= 2 && cn_unit(chars[chars.len() - 2]).is_some();
        total += if after_unit && last_unit > 10.0 {
            d * last_unit / 10.0
        } else {
            d
        };
    }
    Some(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn yuan(text: &str) -> Vec<f64> {
        find_amounts(text).into_iter().map(|a| a.yuan).collect()
    }

    #[test]
    fn arabic_and_chinese_amounts() {
        assert_eq!(yuan("损失了15,000元"), vec![15_000.0]);
        assert_eq!(yuan("一共1.2万"), vec![12_000.0]);
        assert_eq!(yuan("花了两万三"), vec![23_000.0]);
        assert_eq!(yuan("才八千块"), vec![8_000.0]);
        assert_eq!(yuan("价值￥26800的手机"), vec![26_800.0]);
        assert_eq!(yuan("前后三十多万"), vec![300_000.0]);
        assert_eq!(yuan("一万出头"), vec![10_000.0]);
        assert_eq!(yuan("退我2.5w"), vec![25_000.0]);
        assert_eq!(yuan("1万2的电脑"), vec![12_000.0]);
        assert_eq!(yuan("两千三百元"), vec![2_300.0]);
        assert_eq!(yuan("两万三千元"), vec![23_000.0]);
        assert_eq!(yuan("十几万"), vec![100_000.0]);
        assert_eq!(yuan("两千多块"), vec![2_000.0]);
        assert_eq!(yuan("三千五块钱"), vec![3_500.0]);
        assert_eq!(yuan("9800元"), vec![9_800.0]);
        assert_eq!(yuan("十二万元"), vec![120_000.0]);
    }

    #[test]
    fn counts_dates_and_codes_are_not_money() {
        assert!(yuan("打了12315").is_empty());
        assert!(yuan("订单号7788123450921").is_empty());
        assert!(yuan("说了一万次了").is_empty());
        assert!(yuan("2024年6月").is_empty());
        assert!(yuan("万一出事").is_empty());
    }

    #[test]
    fn offsets_are_characters() {
        let text = "我损失了两万三千元";
        let a = &find_amounts(text)[0];
        let chars: Vec<char> = text.chars().collect();
        assert_eq!(chars[a.start..a.end].iter().collect::<String>(), a.text);
        assert_eq!(a.yuan, 23_000.0);
    }
}
