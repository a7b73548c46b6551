//! Decode throughput, printed rather than asserted (timing depends on the machine):
//! `cargo test --release --lib avro::tests::speed -- --ignored --nocapture`.

use std::hint::black_box;
use std::time::Instant;

use super::super::{LineDecoder, decode_value, encode_single_object};
use super::{builtin, sample_line, version};

const DATUMS: usize = 1_000_000;

fn rate(label: &str, bytes: usize, mut decode_one: impl FnMut() -> bool) {
    let mut best = f64::MAX;
    for _ in 0..3 {
        let start = Instant::now();
        for _ in 0..DATUMS {
            assert!(black_box(decode_one()));
        }
        best = best.min(start.elapsed().as_secs_f64());
    }
    println!(
        "{label}: {:.2}M datums/s ({bytes}-byte datum, best of 3 x {DATUMS})",
        DATUMS as f64 / best / 1e6
    );
}

#[test]
#[ignore = "prints throughput; run in release"]
fn avro_decode_rate() {
    let v3 = version(3);
    let payload = encode_single_object(&v3, &sample_line()).expect("encodes");
    let datum = &payload[10..];
    rate("decode_line (v3)", datum.len(), || {
        v3.decode_line(black_box(datum)).is_ok()
    });
    let decoder = LineDecoder::new(std::sync::Arc::new(builtin()), None);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime");
    rate(
        "LineDecoder::decode (framing + lookup)",
        payload.len(),
        || {
            runtime
                .block_on(decoder.decode(black_box(&payload)))
                .is_ok()
        },
    );
    rate("decode_value (generic Value)", datum.len(), || {
        decode_value(&v3, black_box(datum)).is_ok()
    });
}
