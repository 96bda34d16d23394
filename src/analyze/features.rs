//! Surface features the heads read beside the sentence embedding: rule hits
//! per risk flag (and their negations), money amounts, and the punctuation,
//! emoji and word cues of intensity and motive that a mean-pooled embedding
//! blurs. All values are small (log-scaled counts or 0/1).

use std::sync::LazyLock;

use regex::Regex;

use crate::risk::RuleHit;
use crate::risk::rules::LARGE_LOSS_YUAN;
use crate::taxonomy::{Label, RiskFlag};
use crate::text::amount::find_amounts;

/// Names of the features, in vector order (the model card lists them).
pub fn feature_names() -> Vec<String> {
    let mut names = Vec::new();
    for f in RiskFlag::ALL {
        names.push(format!("rule:{}", f.id()));
        names.push(format!("rule_negated:{}", f.id()));
    }
    names.push("amount:max_log10".into());
    names.push("amount:over_threshold".into());
    for (name, _) in LEXICONS.iter() {
        names.push(format!("lex:{name}"));
    }
    names.extend(
        [
            "punct:exclaim",
            "punct:exclaim_run",
            "punct:question",
            "punct:question_run",
            "emoji:any",
            "text:len_log",
            "text:latin_ratio",
        ]
        .map(String::from),
    );
    names
}

/// Number of features.
pub fn feature_count() -> usize {
    feature_names().len()
}

static LEXICONS: LazyLock<Vec<(&'static str, Regex)>> = LazyLock::new(|| {
    let lex = |name, pattern: &str| (name, Regex::new(pattern).expect("static lexicon compiles"));
    vec![
        lex(
            "abuse",
            r"(?i)垃圾|傻[逼比Bb×]|sb|煞笔|狗东西|狗日|滚|妈的|他妈|tm|尼玛|nmsl|cnm|草泥马|脑残|混蛋|王八蛋|畜生|废物|贱|去死|操你|日你|狗屁|放屁|屁用",
        ),
        lex(
            "anger",
            r"太过分|过分了|气死|愤怒|忍无可忍|离谱|无语|什么破|破(服务|公司|平台|店|玩意)|坑人|坑爹|恶心|欺人太甚|骗子|黑心|无良|奸商|欺诈|诈骗|吃相难看|凭什么|有病|搞什么|搞笑|呵呵|真行|好样的|可笑|荒唐|岂有此理|不要脸|流氓|强盗",
        ),
        lex(
            "threat",
            r"没完|走着瞧|等着瞧|等着吧|后果自负|让你们.{0,4}(好看|付出代价)|奉陪到底|不会放过|绝不罢休|跟你们耗|讨个说法|不解决.{0,6}(就|我就)",
        ),
        lex(
            "despair",
            r"崩溃|绝望|活不下去|走投无路|无助|心寒|寒心|欲哭无泪|哭了|要疯了|破防|心累|受够了",
        ),
        lex(
            "polite",
            r"您好|你好|请问|麻烦|谢谢|感谢|辛苦|劳烦|烦请|敬请|此致|敬礼|您们|希望.{0,6}(能|可以)|能否|可否|是否可以",
        ),
        lex(
            "mild",
            r"失望|不满|遗憾|不太满意|不太好|有点|有些|稍微|一般般|不方便|困扰|希望尽快|体验不好|不舒服",
        ),
        lex(
            "demand_money",
            r"赔|退款|退钱|退费|补偿|返还|退还|报销|减免|免除|免单|打折|优惠券|代金券|假一赔|退一赔|赔偿|钱退|把钱|全额|差价|双倍|三倍|十倍|违约金|医药费|误工费",
        ),
        lex(
            "demand_respect",
            r"道歉|认错|处分|处罚(那个|这个|该)|开除|辞退|追责|问责|给(我)?(个|一个)说法|尊重|重视|当回事|公开道歉|书面道歉|解释清楚|严肃处理|教育一下|整改|端正态度|工号",
        ),
        lex(
            "demand_fix",
            r"尽快|马上|立即|赶紧|处理一下|解决|修(好|复|理)|维修|安排|补发|重发|恢复|解冻|办理|回复|答复|联系我|核实|查一下|查询|跟进|更换|换(一|个|货)|上门|送(到|过来|货)|发货|开通|取消|撤销",
        ),
        lex(
            "vent_marker",
            r"就想说|吐槽|避雷|再也不|在也不|再不会|拉黑|卸载|算了|认栽|长记性|大家注意|提醒大家|不会再|无力吐槽|醉了|服了",
        ),
        lex(
            "non_complaint",
            r"表扬|点赞|感谢.{0,8}(帮助|服务|耐心)|非常满意|很满意|好评|建议|咨询|请问一下|想问",
        ),
    ]
});

fn log_count(n: usize) -> f32 {
    (1.0 + n as f32).ln()
}

fn is_emoji(c: char) -> bool {
    matches!(u32::from(c), 0x1F300..=0x1FAFF | 0x2600..=0x27BF)
}

/// Longest run of consecutive characters from `set`.
fn longest_run(text: &str, set: &[char]) -> usize {
    let (mut best, mut run) = (0, 0);
    for c in text.chars() {
        if set.contains(&c) {
            run += 1;
            best = best.max(run);
        } else {
            run = 0;
        }
    }
    best
}

/// The feature vector of `text` with its rule hits.
pub fn features(text: &str, hits: &[RuleHit]) -> Vec<f32> {
    let mut v = Vec::with_capacity(feature_count());
    for &flag in RiskFlag::ALL {
        let pos = hits.iter().filter(|h| h.flag == flag && !h.negated).count();
        let neg = hits.iter().filter(|h| h.flag == flag && h.negated).count();
        v.push(log_count(pos));
        v.push(log_count(neg));
    }
    let max_amount = find_amounts(text)
        .into_iter()
        .map(|a| a.yuan)
        .fold(0.0f64, f64::max);
    v.push(if max_amount > 0.0 {
        (max_amount.log10() / 6.0) as f32
    } else {
        0.0
    });
    v.push(if max_amount >= LARGE_LOSS_YUAN {
        1.0
    } else {
        0.0
    });
    for (_, re) in LEXICONS.iter() {
        v.push(log_count(re.find_iter(text).count()));
    }
    let count = |set: &[char]| text.chars().filter(|c| set.contains(c)).count();
    let exclaim = ['!', '！'];
    let question = ['?', '？'];
    v.push(log_count(count(&exclaim)));
    v.push(log_count(longest_run(text, &exclaim)));
    v.push(log_count(count(&question)));
    v.push(log_count(longest_run(text, &question)));
    v.push(log_count(text.chars().filter(|&c| is_emoji(c)).count()));
    let chars = text.chars().count();
    v.push(log_count(chars) / 6.0);
    let latin = text.chars().filter(char::is_ascii_alphabetic).count();
    v.push(if chars == 0 {
        0.0
    } else {
        latin as f32 / chars as f32
    });
    debug_assert_eq!(v.len(), feature_count());
    v
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::risk::scan;
    use crate::text::Segmenter;

    fn feats(text: &str) -> std::collections::HashMap<String, f32> {
        let hits = scan(text, &Segmenter::new().segment(text));
        feature_names()
            .into_iter()
            .zip(features(text, &hits))
            .collect()
    }

    #[test]
    fn vector_matches_names() {
        assert_eq!(features("你好", &[]).len(), feature_count());
    }

    #[test]
    fn cues_light_up() {
        let f = feats("什么破服务！！！退钱！再不处理我就打12315");
        assert!(f["lex:anger"] > 0.0);
        assert!(f["punct:exclaim_run"] > f["punct:question_run"]);
        assert!(f["lex:demand_money"] > 0.0);
        assert!(f["rule:regulator"] > 0.0);
        let calm = feats("您好，请问我的快递什么时候能到？谢谢");
        assert!(calm["lex:polite"] > 0.0);
        assert_eq!(calm["lex:anger"], 0.0);
        let loss = feats("一共损失两万三");
        assert_eq!(loss["amount:over_threshold"], 1.0);
    }
}
