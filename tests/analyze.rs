//! The analyzer end to end: training is reproducible and its artefact loads;
//! the committed artefact gives well-formed records whose evidence points
//! into the text.

use kesu::analyze::{Analyzer, EvidenceSource, default_heads_dir};
use kesu::dataset::LabelledComplaint;
use kesu::model::{EncoderSettings, ModelSource};
use kesu::taxonomy::{Category, Motive, RiskFlag, RiskLevel};
use kesu::train::{TrainSettings, train};

use crate::support::model_dir;

fn tiny_set() -> Vec<LabelledComplaint> {
    let rows = [
        (
            "快递一周没到，物流不更新",
            Category::DeliveryLogistics,
            1,
            Motive::Resolution,
            vec![],
        ),
        (
            "客服态度太差了，直接挂我电话！",
            Category::ServiceAttitude,
            2,
            Motive::Respect,
            vec![],
        ),
        (
            "多扣了我两百块，请退还",
            Category::BillingFees,
            1,
            Motive::Compensation,
            vec![],
        ),
        (
            "再不处理我就打12315投诉",
            Category::RefundAfterSales,
            2,
            Motive::Resolution,
            vec![RiskFlag::Regulator],
        ),
        (
            "孩子吃了你们的饼干过敏住院了",
            Category::ProductQuality,
            2,
            Motive::Compensation,
            vec![RiskFlag::SafetyInjury, RiskFlag::VulnerableCustomer],
        ),
        (
            "APP一直闪退，付不了款",
            Category::SystemFailure,
            1,
            Motive::Resolution,
            vec![],
        ),
        (
            "你好，请问营业时间是几点？",
            Category::Other,
            0,
            Motive::Resolution,
            vec![],
        ),
        (
            "垃圾公司，骗子！！！跟你们没完",
            Category::MisleadingSales,
            3,
            Motive::Vent,
            vec![],
        ),
    ];
    (0..5)
        .flat_map(|round| rows.iter().map(move |r| (round, r)))
        .map(|(round, (text, cat, int, mot, flags))| LabelledComplaint {
            id: format!("t{round}"),
            text: format!("{text}{}", "。".repeat(round)),
            category: *cat,
            intensity: *int,
            motive: *mot,
            risk_flags: flags.clone(),
            risk_level: None,
        })
        .collect()
}

/// Train twice into fresh folders, check the weights are byte-identical, and
/// return the first folder and its report.
fn train_twice(
    data: &[LabelledComplaint],
    settings: &TrainSettings,
) -> (tempfile::TempDir, kesu::train::TrainReport) {
    let source = ModelSource::Dir(model_dir());
    let a = tempfile::tempdir().unwrap();
    let b = tempfile::tempdir().unwrap();
    let report = train(data, &source, a.path(), settings).unwrap();
    train(data, &source, b.path(), settings).unwrap();
    let wa = std::fs::read(a.path().join("kesu-heads.safetensors")).unwrap();
    let wb = std::fs::read(b.path().join("kesu-heads.safetensors")).unwrap();
    assert_eq!(wa, wb, "same seed, same data: same weights");
    (a, report)
}

#[test]
fn training_is_seeded_and_its_artefact_loads() {
    let data = tiny_set();
    let settings = TrainSettings {
        epochs: 2,
        tuned_layers: 1,
        members: 1,
        max_tokens: 64,
        ..TrainSettings::default()
    };
    let source = ModelSource::Dir(model_dir());
    let (a, report) = train_twice(&data, &settings);
    assert_eq!(report.epoch_losses.len(), 2);
    assert!(report.epoch_losses.iter().all(|l| l.is_finite()));

    let analyzer = Analyzer::load(&source, a.path(), EncoderSettings::default()).unwrap();
    let out = analyzer
        .analyze(&[(Some("x".into()), "物流太慢了")])
        .unwrap();
    assert_eq!(out[0].id.as_deref(), Some("x"));
    assert_eq!(out[0].model.name, settings.name);
}

#[test]
fn an_ensemble_trains_reproducibly_and_loads() {
    let data = tiny_set();
    let settings = TrainSettings {
        epochs: 2,
        members: 2,
        max_tokens: 64,
        ..TrainSettings::default()
    };
    let source = ModelSource::Dir(model_dir());
    let (a, report) = train_twice(&data, &settings);
    assert_eq!(report.epoch_losses.len(), 4, "two members × two epochs");
    let tensors = candle_core::safetensors::load(
        a.path().join("kesu-heads.safetensors"),
        &candle_core::Device::Cpu,
    )
    .unwrap();
    let m0 = tensors["head.category.weight"].to_vec2::<f32>().unwrap();
    let m1 = tensors["head1.category.weight"].to_vec2::<f32>().unwrap();
    assert_ne!(m0, m1, "members start from different seeds");
    let analyzer = Analyzer::load(&source, a.path(), EncoderSettings::default()).unwrap();
    let out = analyzer.analyze(&[(None, "物流太慢了")]).unwrap();
    let score = out[0].category.score;
    assert!(score > 0.0 && score <= 1.0, "{score}");
    // A tuned encoder layer cannot be shared by several members.
    let bad = TrainSettings {
        tuned_layers: 1,
        ..settings
    };
    assert!(train(&data, &source, a.path(), &bad).is_err());
}

fn committed() -> Analyzer {
    Analyzer::load(
        &ModelSource::Dir(model_dir()),
        &default_heads_dir(),
        EncoderSettings::default(),
    )
    .expect("the committed artefact loads")
}

#[test]
fn committed_model_gives_well_formed_records() {
    let analyzer = committed();
    let texts = [
        "你们再不退款我就去12315投诉，还要发微博曝光！！！",
        "您好，我的快递三天了还没到，麻烦帮忙查一下，谢谢。",
        "我妈七十多岁了，被你们业务员忽悠买了两万三的理财产品，现在亏了一大半。",
    ];
    let items: Vec<_> = texts.iter().map(|t| (None, *t)).collect();
    let records = analyzer.analyze(&items).unwrap();
    for (text, r) in texts.iter().zip(&records) {
        let chars: Vec<char> = text.chars().collect();
        assert!((0.0..=1.0).contains(&r.category.score));
        assert!((0.0..=1.0).contains(&r.intensity.score));
        assert!((0.0..=1.0).contains(&r.motive.score));
        assert_eq!(r.intensity.level, r.intensity.label as u8);
        let raised: Vec<RiskFlag> = r.risk.flags.iter().map(|f| f.flag).collect();
        let intensity = kesu::taxonomy::Intensity::from_level(r.intensity.level).unwrap();
        assert_eq!(r.risk.level, RiskLevel::from_flags(&raised, intensity));
        assert_eq!(r.risk.flagged, r.risk.level.is_flagged());
        for f in &r.risk.flags {
            assert!(!f.evidence.is_empty(), "{:?} without evidence", f.flag);
            for e in &f.evidence {
                assert_eq!(chars[e.start..e.end].iter().collect::<String>(), e.text);
            }
        }
        let json = serde_json::to_value(r).unwrap();
        assert_eq!(json["model"]["taxonomy"], "v1");
    }
    // The first one names a regulator hotline and threatens exposure.
    let first: Vec<RiskFlag> = records[0].risk.flags.iter().map(|f| f.flag).collect();
    assert!(first.contains(&RiskFlag::Regulator), "{first:?}");
    let reg = records[0]
        .risk
        .flags
        .iter()
        .find(|f| f.flag == RiskFlag::Regulator)
        .unwrap();
    assert!(
        reg.evidence
            .iter()
            .any(|e| e.text == "12315" && e.source == EvidenceSource::Rule)
    );
    assert!(records[0].risk.flagged);
    // The polite delivery question is calm, unflagged, about logistics.
    assert_eq!(records[1].category.label, Category::DeliveryLogistics);
    assert!(records[1].intensity.level <= 1);
    assert!(!records[1].risk.flagged);
    // The third is a large loss of a vulnerable customer.
    let third: Vec<RiskFlag> = records[2].risk.flags.iter().map(|f| f.flag).collect();
    assert!(third.contains(&RiskFlag::LargeLoss), "{third:?}");
    assert!(third.contains(&RiskFlag::VulnerableCustomer), "{third:?}");
}

#[test]
fn negation_keeps_injury_off() {
    let analyzer = committed();
    let r = analyzer
        .analyze(&[(None, "外卖洒了一地，还好没有烫伤，就是很生气，要求退款")])
        .unwrap()
        .remove(0);
    assert!(
        !r.risk
            .flags
            .iter()
            .any(|f| f.flag == RiskFlag::SafetyInjury),
        "{:?}",
        r.risk.flags
    );
}
