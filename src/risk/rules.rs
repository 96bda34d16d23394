//! Rule detectors for the risk flags over the raw text and its jieba
//! segments. Each hit carries its evidence span (character offsets) and
//! whether it is negated ("没有受伤", "不会发微博"). Hits are both evidence
//! for the Analysis record and input features for the trained flag head,
//! which learns how far to trust each rule.

use std::sync::LazyLock;

use regex::Regex;
use serde::Serialize;

use crate::taxonomy::RiskFlag;
use crate::text::Segment;
use crate::text::amount::find_amounts;

/// Loss threshold of the `large_loss` flag, in yuan.
pub const LARGE_LOSS_YUAN: f64 = 10_000.0;

/// One rule match.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RuleHit {
    pub flag: RiskFlag,
    pub text: String,
    pub start: usize,
    pub end: usize,
    /// A negation or hypothetical right before the cue cancels it.
    pub negated: bool,
}

/// A cue pattern for one flag. `whole_word` cues must start and end on jieba
/// word boundaries, so 伤 does not fire inside 伤心.
struct Cue {
    flag: RiskFlag,
    pattern: Regex,
    whole_word: bool,
}

fn cue(flag: RiskFlag, pattern: &str, whole_word: bool) -> Cue {
    Cue {
        flag,
        pattern: Regex::new(pattern).expect("static cue pattern compiles"),
        whole_word,
    }
}

/// A count of at least two (第一次 is no repeat).
const NUM: &str = "(?:[2-9二两三四五六七八九十几多N]|[1-9][0-9])";

static CUES: LazyLock<Vec<Cue>> = LazyLock::new(|| {
    use RiskFlag::*;
    vec![
        cue(
            MediaExposure,
            r"曝光|媒体|记者|电视台|报社|新闻|热搜|315晚会|自媒体|发(到|在)?(网上|微博|抖音|小红书|朋友圈|快手|B站|头条)|(微博|抖音|小红书|快手|B站|头条|朋友圈|网上)(上)?(发|曝|说|见|等着)|全网|让(大家|所有人|网友)(都)?(看看|知道|评评理)|求扩散|避雷|上热搜|网友评评理",
            false,
        ),
        cue(
            Regulator,
            r"1231[5-9]|12345|12378|1232[016]|12331|12358|12366|12381|12333|消协|消费者协会|消保委|市场监(督|管)|工商(局|部门)?|监管(局|部门|机构|总局)|金融监管|银保监|银监|保监|证监|人民银行|央行|卫健委|卫生(局|部门)|工信部|通信管理局|通管局|民航局|交通(运输)?局|运管|邮政管理局|住建(局|委|部门)|房管局|教育局|药监|食药监|信访|网信办|市长(热线|信箱)|政府(热线|部门)|有关部门|相关部门|主管部门|黑猫投诉|国务院|督查",
            false,
        ),
        cue(
            LegalAction,
            r"律师|起诉|诉讼|法院|法庭|仲裁|打官司|法律(途径|手段|程序|武器)|律师函|上诉|立案|告(你们|到底|上法庭)|追究.{0,4}法律责任|走法律",
            false,
        ),
        cue(
            SafetyInjury,
            r"受伤|烫伤|烧伤|划伤|割伤|砸伤|扭伤|摔伤|擦伤|咬伤|骨折|流血|出血|中毒|食物中毒|过敏|拉肚子|腹泻|上吐下泻|呕吐|吐了|发烧|高烧|住院|急诊|送医|送到医院|去了医院|进了医院|抢救|触电|漏电|电到|起火|着火|火灾|爆炸|炸了|自燃|冒烟|冒火花|摔倒|晕倒|昏迷|窒息|玻璃渣|异物|缝了.{0,2}针|肠胃炎|红肿|起了.{0,3}(疹子|水泡|包)|伤口|人身安全|受了伤|伤到",
            false,
        ),
        cue(
            ExtremeBehavior,
            r"跳楼|跳河|跳下去|自杀|轻生|不想活|活不下去|活着没意思|死了算了|去死|死给你们看|同归于尽|拼命|拼了|砍(死|人|了)|杀了|弄死|宰了|捅|拿刀|带刀|动刀|放火|一把火|烧(了|掉)?(你们|网点|店|营业|公司)|汽油|砸(了|烂)?(你们|店|门店|柜台|车)|砸店|拆了|打人|打(死|他|你)|见.{0,4}打|动手|揍|走不出|堵门|拉横幅|喝农药|割腕|寻死|以死|一命换一命|鱼死网破|血债|血溅|出人命|炸了你们|要你们好看|让(他|她|你们)好看|卖血|卖肾",
            false,
        ),
        cue(
            RepeatComplaint,
            &format!(
                r"第{NUM}次|{NUM}次(投诉|反映|打电话|来电|联系|找|申请|催)|(问|说|打|找|催|反映|投诉|报修|联系|提交|去|跑|来|修|寄|申请|提)(了|过)?{NUM}(次|回|遍|趟)|(多少|无数|N|好几|几十|十几)(次|回|遍|趟)|打了{NUM}?(通|个|次)?电话|电话(都)?打了{NUM}|(多|数|屡)次|反复(投诉|反映|打电话|联系)|再次(投诉|反映)|又一次|一直没人(管|处理|理|回复)|至今(没|未|还没)|上次(投诉|反映|说)|(去年|上个月|上周|之前|以前|早就|前几天|前段时间)(也|就|已经)?(投诉|反映|报修|说|提)过|已经(投诉|反映)过|不是第一次|又来了|三番五次|一而再|老是这样|每次都"
            ),
            false,
        ),
        cue(
            MassIncident,
            &format!(
                r"维权群|业主群|(受害|投诉|维权)群|群里|很多人|好多人|大家都|不止我一个|不止我|集体|联名|一起(维权|投诉|去)|我们{NUM}+(个|名|位|户|家)|[0-9几十百千]+(多)?(个|名|位|户|家)(业主|用户|家长|客户|消费者|乘客|人|同学|学员|车主|住户)|整栋楼|整个小区|全小区|全村|一批人|都遇到"
            ),
            false,
        ),
        cue(
            PrivacyBreach,
            r"泄露|泄漏|泄密|(信息|资料|数据|号码|电话|照片|身份证|卡号|流水|余额|地址|姓名).{0,8}(被)?(卖|倒卖|外泄|流出|发到|发给|贴|公开|告诉)|卖(了)?(我的)?(信息|资料|数据|号码)|倒卖|隐私|个人信息|通讯录|身份证(号|信息|照片|复印件)|(说出|叫出|报出|知道)(了)?我(的)?(名字|姓名|地址|住址|卡号|身份证|余额|交易|工资|订单)|谁把我|(被)?盗用|冒用|冒名|冒充|补了卡|被人(拿|用)了我的",
            false,
        ),
        cue(
            VulnerableCustomer,
            r"老人|老年人|老人家|大爷|大妈|奶奶|爷爷|姥姥|姥爷|外婆|外公|老母亲|老父亲|我妈|我爸|老伴|[六七八九]十(多|几)?岁|孕妇|怀孕|孕期|孕[0-9一二三四五六七八九]|残疾|残障|盲人|聋|轮椅|行动不便|病人|患者|癌|重病|生病|刚做完手术|孩子|小孩|儿童|宝宝|婴儿|未成年|[0-9一二两三四五六七八九十]+岁(的)?(孩子|宝宝|女儿|儿子|小孩)|低保|独居",
            false,
        ),
    ]
});

/// Words right before a cue that cancel it.
const NEGATORS: &[&str] = &[
    "没有",
    "没",
    "未",
    "无",
    "不",
    "别",
    "并未",
    "不会",
    "不打算",
    "不至于",
    "不想",
    "不用",
    "不需要",
    "不是",
    "非",
];
/// Hypotheticals that cancel an injury cue (万一烫伤了怎么办 is no injury yet).
const HYPOTHETICALS: &[&str] = &[
    "万一",
    "如果",
    "要是",
    "担心",
    "怕",
    "差点",
    "险些",
    "容易",
    "可能会",
];

/// Clause punctuation: negation never reaches across it.
fn is_clause_break(c: char) -> bool {
    matches!(
        c,
        '，' | '。' | '！' | '？' | '；' | ',' | '.' | '!' | '?' | ';' | '\n' | '～' | '~' | '…'
    )
}

/// Is the cue starting at char `start` preceded (within 3 chars, same clause)
/// by one of `words`?
fn preceded_by(chars: &[char], start: usize, words: &[&str]) -> bool {
    let from = start.saturating_sub(4);
    let window: String = chars[from..start]
        .iter()
        .rev()
        .take_while(|&&c| !is_clause_break(c))
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
        .collect();
    words.iter().any(|w| window.contains(w))
}

/// Char offset of each byte offset, for converting regex matches.
fn char_index(text: &str) -> Vec<usize> {
    let mut idx = vec![0; text.len() + 1];
    let mut n = 0;
    for (b, _) in text.char_indices() {
        idx[b] = n;
        n += 1;
    }
    idx[text.len()] = n;
    idx
}

/// Every rule hit in `text`, in order of position. `segments` are jieba's
/// words for `text` (used for whole-word cues).
pub fn scan(text: &str, segments: &[Segment]) -> Vec<RuleHit> {
    let chars: Vec<char> = text.chars().collect();
    let idx = char_index(text);
    let boundaries: std::collections::HashSet<usize> =
        segments.iter().flat_map(|s| [s.start, s.end]).collect();
    let mut hits = Vec::new();
    for cue in CUES.iter() {
        for m in cue.pattern.find_iter(text) {
            let (start, end) = (idx[m.start()], idx[m.end()]);
            if cue.whole_word && !(boundaries.contains(&start) && boundaries.contains(&end)) {
                continue;
            }
            // 12315 inside an order number is no hotline.
            let digit_at = |i: usize| chars.get(i).is_some_and(char::is_ascii_digit);
            if (digit_at(start) && start > 0 && digit_at(start - 1))
                || (digit_at(end - 1) && digit_at(end))
            {
                continue;
            }
            let mut negated = preceded_by(&chars, start, NEGATORS);
            if cue.flag == RiskFlag::SafetyInjury {
                negated |= preceded_by(&chars, start, HYPOTHETICALS);
            }
            hits.push(RuleHit {
                flag: cue.flag,
                text: m.as_str().to_string(),
                start,
                end,
                negated,
            });
        }
    }
    for amount in find_amounts(text) {
        if amount.yuan >= LARGE_LOSS_YUAN {
            hits.push(RuleHit {
                flag: RiskFlag::LargeLoss,
                text: amount.text,
                start: amount.start,
                end: amount.end,
                negated: false,
            });
        }
    }
    hits.sort_by_key(|h| (h.start, h.end));
    hits
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::text::Segmenter;

    fn flags(text: &str) -> Vec<(RiskFlag, String, bool)> {
        let seg = Segmenter::new().segment(text);
        scan(text, &seg)
            .into_iter()
            .map(|h| (h.flag, h.text, h.negated))
            .collect()
    }

    fn fired(text: &str, flag: RiskFlag) -> bool {
        flags(text).iter().any(|(f, _, neg)| *f == flag && !neg)
    }

    #[test]
    fn regulators_hotlines_and_lawyers() {
        assert!(fired("再不处理我就打12315", RiskFlag::Regulator));
        assert!(fired("已经向金融监管总局反映", RiskFlag::Regulator));
        assert!(fired("我会请律师起诉你们", RiskFlag::LegalAction));
        assert!(fired("申请劳动仲裁", RiskFlag::LegalAction));
        assert!(!fired("快递单号7788123450921", RiskFlag::Regulator));
    }

    #[test]
    fn injury_with_negation_and_hypotheticals() {
        assert!(fired(
            "孩子吃了以后上吐下泻，送去急诊",
            RiskFlag::SafetyInjury
        ));
        assert!(!fired("还好没有受伤", RiskFlag::SafetyInjury));
        assert!(!fired("万一烫伤了谁负责", RiskFlag::SafetyInjury));
        assert!(fired("手被烫伤了，起了好几个水泡", RiskFlag::SafetyInjury));
    }

    #[test]
    fn repeat_markers() {
        for t in [
            "这是我第三次投诉了",
            "打了四次电话",
            "一直没人管",
            "之前已经反映过",
        ] {
            assert!(fired(t, RiskFlag::RepeatComplaint), "{t}");
        }
        assert!(!fired("第一次在你们家买东西", RiskFlag::RepeatComplaint));
    }

    #[test]
    fn amounts_against_the_threshold() {
        assert!(fired("损失两万三", RiskFlag::LargeLoss));
        assert!(fired("一共1.2万", RiskFlag::LargeLoss));
        assert!(fired("15,000元打水漂了", RiskFlag::LargeLoss));
        assert!(!fired("八千块钱", RiskFlag::LargeLoss));
        assert!(!fired("9800元", RiskFlag::LargeLoss));
    }

    #[test]
    fn media_threat_negated() {
        assert!(fired("我要发微博曝光你们", RiskFlag::MediaExposure));
        assert!(!fired("我不会曝光的", RiskFlag::MediaExposure));
    }

    #[test]
    fn evidence_offsets_point_at_the_cue() {
        let text = "客服太差，我要去12315投诉";
        let seg = Segmenter::new().segment(text);
        let hit = scan(text, &seg)
            .into_iter()
            .find(|h| h.flag == RiskFlag::Regulator)
            .unwrap();
        let chars: Vec<char> = text.chars().collect();
        assert_eq!(
            chars[hit.start..hit.end].iter().collect::<String>(),
            "12315"
        );
        assert_eq!((hit.start, hit.end), (8, 13));
    }
}
