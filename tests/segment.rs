//! Segmentation keeps complaint-domain words whole.

use kesu::text::Segmenter;

#[test]
fn domain_words_stay_whole() {
    let seg = Segmenter::new();
    let cases = [
        (
            "我已经打了12315和12345，还要去金融监管总局投诉",
            vec!["12315", "12345", "金融监管总局"],
        ),
        (
            "理赔拖了两个月，我要退保，再不处理就找消协",
            vec!["理赔", "退保", "消协"],
        ),
        (
            "快递员没送货就点了签收，这是霸王条款吗",
            vec!["快递员", "签收", "霸王条款"],
        ),
        (
            "我们几十个业主拉了维权群，准备找律师起诉",
            vec!["维权群", "律师", "起诉"],
        ),
        (
            "银行卡被盗刷，还被自动续费扣了会员费",
            vec!["盗刷", "自动续费", "会员费"],
        ),
        ("证券公司不处理我就打12378", vec!["12378"]),
    ];
    for (text, words) in cases {
        let got: Vec<String> = seg.segment(text).into_iter().map(|s| s.word).collect();
        for w in words {
            assert!(
                got.iter().any(|g| g == w),
                "{w:?} split in {text:?}: {got:?}"
            );
        }
        assert_eq!(got.concat(), text, "segments must cover the text exactly");
    }
}

#[test]
fn user_dictionary_adds_words() {
    let dir = tempfile::tempdir().unwrap();
    let dict = dir.path().join("extra.txt");
    std::fs::write(&dict, "蓝鲸快运 100000 nz\n").unwrap();
    let mut seg = Segmenter::new();
    seg.load_user_dict(&dict).unwrap();
    let got: Vec<String> = seg
        .segment("蓝鲸快运又丢件了")
        .into_iter()
        .map(|s| s.word)
        .collect();
    assert!(got.contains(&"蓝鲸快运".to_string()), "{got:?}");

    std::fs::write(&dict, "词 notanumber\n").unwrap();
    let err = seg.load_user_dict(&dict).unwrap_err().to_string();
    assert!(err.contains("extra.txt"), "{err}");
}
