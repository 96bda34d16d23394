//! Encoder forward passes at batch 1, 8 and 32 on complaint-length texts
//! (20–200 characters). Needs the fetched model (scripts/fetch-model.sh).
//!
//!     cargo bench --bench encoder

use std::hint::black_box;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use kesu::model::{Encoder, EncoderSettings, ModelSource};

/// Realistic complaints from ~20 to ~200 characters.
const TEXTS: &[&str] = &[
    "快递三天了还没到，物流一直不更新，麻烦查一下。",
    "在你们店买的电水壶用了两次就坏了，底座不通电，要求换货。",
    "信用卡莫名其妙被扣了三百块年费，我开卡的时候业务员明明说终身免年费，现在客服说没有这个政策，这不是骗人吗？要求退还年费。",
    "外卖超时一个多小时，送到的时候饭全凉了，汤也洒了一半，打给骑手不接，联系商家说不归他们管，平台客服只会说抱歉，给了张三块钱的券就想打发我？太过分了！",
    "保险理赔材料上个月就交齐了，到现在还在审核，每次打电话都说已经加急，可是一点进展都没有。我母亲住院的费用都是我先垫付的，家里压力很大，希望你们尽快给个结果，不要再拖了。再没有答复我只能去金融监管总局投诉了。",
    "APP付款成功了，钱也扣了，订单却显示支付失败，客服让我等24小时自动退款，现在已经三天了还没退回来，到底怎么回事？",
    "酒店房间的空调一直漏水，晚上吵得根本睡不着，前台说没有空房可以换，也不给任何补偿，服务太差了。",
    "你们的推销电话一天打五六次，我已经说了不需要，还换着号码打，我的电话号码到底是谁泄露给你们的？再打我就报警。",
];

fn batch(n: usize) -> Vec<&'static str> {
    TEXTS.iter().cycle().take(n).copied().collect()
}

fn forward(c: &mut Criterion) {
    let encoder = Encoder::load(&ModelSource::default(), EncoderSettings::default())
        .expect("model fetched (scripts/fetch-model.sh)");
    let mut group = c.benchmark_group("encoder_forward");
    group.sample_size(10);
    for size in [1usize, 8, 32] {
        let texts = batch(size);
        let tokenized: Vec<_> = texts.iter().map(|t| encoder.tokenize(t).unwrap()).collect();
        let refs: Vec<_> = tokenized.iter().collect();
        group.throughput(Throughput::Elements(size as u64));
        group.bench_with_input(BenchmarkId::from_parameter(size), &refs, |b, refs| {
            b.iter(|| black_box(encoder.embed_tokenized(refs).unwrap()))
        });
    }
    group.finish();
}

fn tokenize(c: &mut Criterion) {
    let encoder = Encoder::load(&ModelSource::default(), EncoderSettings::default())
        .expect("model fetched (scripts/fetch-model.sh)");
    let texts = batch(32);
    c.bench_function("tokenize_32", |b| {
        b.iter(|| {
            for t in &texts {
                black_box(encoder.tokenize(t).unwrap());
            }
        })
    });
}

criterion_group!(benches, forward, tokenize);
criterion_main!(benches);
