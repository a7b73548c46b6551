//! Fuzzing on stable Rust (proptest): every parser of outside input — Avro framing and
//! decoding, validation, the catalog CSV, DSR flat files, delimited files, the cell
//! spellings — on arbitrary and mutated inputs: no panic, no hang, an answer (a value or a
//! reason) for each. `.ci/run` runs a bounded smoke (`PROPTEST_CASES`, default 256 per
//! target); `PROPTEST_CASES=100000 cargo test --test fuzz` for a long run. Failures are
//! kept in `tests/fuzz.proptest-regressions` and replayed first on every run.

use std::sync::Arc;

use proptest::prelude::*;
use royalty_ingest::avro::{LineDecoder, SchemaStore, encode_single_object};
use royalty_ingest::domain::{DecodedLine, validate};
use royalty_ingest::drift::catalog::read_csv;
use royalty_ingest::produce::amount::{
    DecimalSeparator, Notation, parse_amount, parse_ddex_amount, parse_ddex_count, parse_quantity,
};
use royalty_ingest::produce::delimited::{IdentityArgs, read_rows};
use royalty_ingest::produce::dsr;
use royalty_ingest::produce::profile::Profile;
use royalty_ingest::produce::text::{Encoding, parse_period};
use royalty_ingest::sample::{SampleRng, valid_line};
use rust_decimal::Decimal;

const DSR_FIXTURE: &str = include_str!(
    "fixtures/dsr/DSR_TEST_YouTube_AdSupport-music_2015-Q4_IS_1of1_20160121T150926.tsv"
);

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime")
}

fn decoder() -> LineDecoder {
    LineDecoder::new(Arc::new(SchemaStore::builtin().expect("schemas")), None)
}

/// Valid single-object records of every built-in version, to mutate.
fn valid_payloads() -> Vec<Vec<u8>> {
    let store = SchemaStore::builtin().expect("schemas");
    let mut rng = SampleRng::new(3);
    (1..=4)
        .map(|v| {
            let schema = store
                .by_name_version("io.royaltyingest.RoyaltyLine", v)
                .expect("version");
            encode_single_object(&schema, &valid_line(&mut rng, u64::from(v))).expect("encode")
        })
        .collect()
}

/// Text with the characters that break parsers: delimiters, quotes, NUL, non-ASCII.
fn hostile_text() -> impl Strategy<Value = String> {
    proptest::collection::vec(
        prop_oneof![
            Just("\t".to_string()),
            Just(",".to_string()),
            Just(";".to_string()),
            Just("\"".to_string()),
            Just("\n".to_string()),
            Just("\r\n".to_string()),
            Just("|".to_string()),
            Just("\0".to_string()),
            Just("#".to_string()),
            Just("(".to_string()),
            Just("-".to_string()),
            Just("99999999999999999999999999999".to_string()),
            Just("é".to_string()),
            "[A-Za-z0-9.]{0,8}",
        ],
        0..64,
    )
    .prop_map(|parts| parts.concat())
}

proptest! {
    #[test]
    fn avro_framing_and_decoding_answer_every_byte_string(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        let decoder = decoder();
        let _ = runtime().block_on(decoder.decode(&bytes));
    }

    #[test]
    fn avro_mutated_valid_records_are_decoded_or_refused(
        version in 0usize..4,
        flips in proptest::collection::vec((any::<usize>(), any::<u8>()), 1..8),
        cut in any::<usize>(),
    ) {
        let mut payload = valid_payloads()[version].clone();
        for (at, byte) in flips {
            // Keep the framing most of the time so the datum decoder is reached.
            let at = 10 + at % payload.len().saturating_sub(10).max(1);
            if at < payload.len() {
                payload[at] = byte;
            }
        }
        payload.truncate(10 + cut % payload.len().max(1));
        let decoder = decoder();
        let _ = runtime().block_on(decoder.decode(&payload));
    }

    #[test]
    fn validation_answers_every_line(
        isrc in hostile_text(),
        upc in proptest::option::of(hostile_text()),
        dsp in hostile_text(),
        period in hostile_text(),
        txn in hostile_text(),
        count in any::<i64>(),
        mantissa in any::<i64>(),
        scale in 0u32..28,
        currency in hostile_text(),
        line_type in proptest::option::of(hostile_text()),
    ) {
        let line = DecodedLine {
            isrc, upc, dsp_name: dsp, report_period: period, transaction_id: txn,
            stream_count: count,
            royalty_amount: Decimal::new(mantissa, scale),
            currency,
            territory: None, usage_type: None, line_type, label: None, artist: None, report_id: None,
        };
        if let Ok(valid) = validate(&line) {
            prop_assert!(valid.stream_count >= 0);
            prop_assert_eq!(valid.isrc.len(), 12);
        }
    }

    #[test]
    fn the_catalog_csv_reader_answers_every_file(text in hostile_text(), header in any::<bool>()) {
        let input = if header {
            format!("isrc,upc,title,display_artist,label,iswc,valid_from\n{text}")
        } else {
            text
        };
        let _ = read_csv(input.as_bytes());
    }

    #[test]
    fn the_dsr_reader_answers_every_file(
        lines in proptest::collection::vec(0usize..35, 0..40),
        noise in hostile_text(),
        at in any::<usize>(),
    ) {
        // Lines of the real sample, shuffled, repeated and dropped, with noise inserted.
        let fixture: Vec<&str> = DSR_FIXTURE.lines().collect();
        let mut picked: Vec<String> = lines.iter().map(|i| fixture[i % fixture.len()].to_string()).collect();
        let at = if picked.is_empty() { 0 } else { at % picked.len() };
        picked.insert(at, noise);
        let text = picked.join("\n");
        if let Ok(scan) = dsr::scan(text.as_bytes(), Encoding::Utf8)
            && scan.is_publishable()
        {
            let mut total = 0u64;
            scan.emit(text.as_bytes(), |_| {
                total += 1;
                Ok(())
            })
            .expect("emit after a clean scan");
            prop_assert_eq!(total, scan.usage_lines);
        }
    }

    #[test]
    fn dsr_allocation_sums_exactly_or_says_why(
        revenue in "-?[0-9]{1,30}(\\.[0-9]{0,15})?",
        streams in proptest::collection::vec(prop_oneof![0i64..1_000, any::<i64>()], 1..8),
    ) {
        let declared: i128 = streams.iter().map(|s| i128::from(*s)).sum();
        let mut rows = vec![
            "HEAD\tdsrf/1.2\tBasicAudioProfile\t1.2\tM1\t2026-10-05T08:00:00Z\t1\t1\t2026-09-01\t2026-09-30\tPADPIDA1\tStreamCo".to_string(),
            format!("SY01.02\tS1\t\t\tSubscriptionModel\tOnDemandStream\tSE\tPremium\t{declared}\t\tUSD\t{revenue}"),
            "RE01.02\tB1\tR1\tDR1\t\t\t0036000291452\tA\t\tT\t\tAlbum\tL".to_string(),
            "AS02.03\tB1\tA1\tDA1\tGBQZA2400007\tT\t\tA\t\tPT3M\tSoundRecording".to_string(),
        ];
        for (i, n) in streams.iter().enumerate() {
            rows.push(format!("SU02.02\tB1\tS1\tT{i}\tDR1\tDA1\ttrue\t{n}"));
        }
        rows.push(format!("FOOT\t{0}\t{0}\t1\t1\t1", rows.len() + 1));
        let text = rows.join("\n");
        let scan = dsr::scan(text.as_bytes(), Encoding::Utf8).expect("readable");
        if scan.is_publishable() {
            let mut sum = Decimal::ZERO;
            let mut refused = 0;
            scan.emit(text.as_bytes(), |item| {
                match item.parsed {
                    Ok(line) => sum += line.royalty_amount,
                    Err(_) => refused += 1,
                }
                Ok(())
            })
            .expect("emit");
            if refused == 0 {
                prop_assert_eq!(sum, Decimal::from_str_exact(&revenue).expect("the revenue parsed"));
            }
        }
    }

    #[test]
    fn the_delimited_reader_answers_every_file(
        bytes in proptest::collection::vec(any::<u8>(), 0..512),
        header in any::<bool>(),
        profile in prop_oneof![Just("generic"), Just("distrokid"), Just("cdbaby"), Just("believe-eu")],
    ) {
        let profile = Profile::load(profile).expect("built-in profile");
        let mut input = Vec::new();
        if header {
            input.extend_from_slice(b"isrc,upc,quantity,amount,currency,period,dsp,transaction_id\n");
        }
        input.extend_from_slice(&bytes);
        let identity = IdentityArgs { report_id: Some("fuzz".into()), line_numbers: true };
        let _ = read_rows(input.as_slice(), &profile, &identity, |_| Ok(()));
    }

    #[test]
    fn cell_spellings_answer_every_string(
        raw in hostile_text(),
        comma in any::<bool>(),
        grouping in any::<bool>(),
    ) {
        let decimal = if comma { DecimalSeparator::Comma } else { DecimalSeparator::Point };
        let notation = Notation { decimal, grouping };
        let _ = parse_amount(&raw, notation);
        let _ = parse_quantity(&raw, notation);
        let _ = parse_ddex_amount(&raw);
        let _ = parse_ddex_count(&raw);
        let _ = parse_period(&raw, None);
        let _ = parse_period(&raw, Some("%b %Y"));
        let _ = Encoding::Latin1.decode(raw.as_bytes());
    }
}
