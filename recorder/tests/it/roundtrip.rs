//! Record → decode round trips through the real encoder, Ogg writer and
//! reader, with gaps, duplicates, reordering and late frames injected.
//!
//! Thresholds, and why:
//! * Duration: within 40 ms of the expected length (the bound);
//!   in practice it is exact, because pre-skip and end trimming are.
//! * Waveform Pearson correlation with the expected signal ≥ 0.90. The
//!   test signals are tone bursts; SILK at 24 kbit/s reproduces them
//!   closely (≈ 0.98 measured), and anything misplaced by even one 20 ms
//!   frame, swapped between channels or lost drops the figure far below
//!   0.9, so the margin covers libopus versions without hiding bugs.
//! * 10 ms RMS-envelope correlation ≥ 0.97: the same for the loudness
//!   contour (gaps and bursts in the right place).
//! * Leakage: another source's tone in a channel/track ≥ 30 dB below its
//!   power in its own channel (the issue's -30 dB bound; the figures
//!   printed are typically below -80 dB, i.e. codec noise).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::common;

use std::io::Cursor;

use common::*;
use recorder::*;

const SECONDS: f64 = 30.0;

fn check(label: &str, decoded: &[i16], expected: &[i16]) -> (f64, f64) {
    check_with(label, decoded, expected, 0.97)
}

fn check_with(label: &str, decoded: &[i16], expected: &[i16], min_envelope: f64) -> (f64, f64) {
    let diff_ms = (decoded.len() as f64 - expected.len() as f64).abs() / 16.0;
    assert!(
        diff_ms <= 40.0,
        "{label}: {} samples decoded, {} expected",
        decoded.len(),
        expected.len()
    );
    let r = pearson(decoded, expected);
    let e = pearson(&envelope(decoded), &envelope(expected));
    println!(
        "{label}: duration {:.3} s (expected {:.3} s), correlation {r:.4}, envelope correlation {e:.4}",
        decoded.len() as f64 / RATE,
        expected.len() as f64 / RATE
    );
    assert!(r >= 0.90, "{label}: correlation {r}");
    assert!(e >= min_envelope, "{label}: envelope correlation {e}");
    (r, e)
}

fn leak(label: &str, own: &[i16], other: &[i16], freq: f64) -> f64 {
    let l = db(tone_power(other, freq), tone_power(own, freq));
    println!("{label}: {freq} Hz leaks at {l:.1} dB");
    assert!(l < -30.0, "{label}: leakage {l} dB");
    l
}

#[test]
fn two_party_call_round_trip_keeps_each_side_in_its_channel() {
    let caller = burst_tone(440.0, SECONDS, 1, 9000.0);
    let callee = burst_tone(1250.0, SECONDS, 2, 9000.0);
    let mut rng = Lcg(7);
    let (mut f0, mut f1) = (Faults::default(), Faults::default());
    // The caller's adapter sends every frame; the callee's only when
    // there is sound (as with unmixed buffers).
    let (a, exp_l) = adapter_frames(0, &caller, 0, &mut rng, |_, _| true, &mut f0);
    let (b, exp_r) = adapter_frames(
        1,
        &callee,
        0,
        &mut rng,
        |_, p| p.iter().any(|&s| s != 0),
        &mut f1,
    );
    let frames = arrival_order([a, b].concat());
    println!("caller faults {f0:?}, callee faults {f1:?}");

    let mut rec = CallRecorder::new(Vec::new(), &RecorderConfig::default(), Some(0)).unwrap();
    for (i, f) in frames.iter().enumerate() {
        let side = if f.source == 0 {
            Side::Caller
        } else {
            Side::Callee
        };
        rec.push(
            side,
            PcmFrame {
                seq: f.seq,
                ticks: f.ticks,
                pcm: &f.pcm,
            },
        )
        .unwrap();
        if i % 100 == 99 {
            rec.flush_page().unwrap();
        }
    }
    let (bytes, summary) = rec.finish().unwrap();
    println!("{summary:?}, {} bytes", bytes.len());
    assert_eq!(summary.caller.late, f0.late as u64);
    assert_eq!(summary.caller.duplicates, f0.duplicated as u64);
    assert_eq!(summary.callee.late, f1.late as u64);
    assert_eq!(summary.callee.duplicates, f1.duplicated as u64);
    assert_eq!(summary.clock.discontinuities, 0);

    let d = decode_ogg_opus(Cursor::new(&bytes), 16_000).unwrap();
    assert_eq!(d.channels.len(), 2);
    assert_eq!(d.head.mapping, Layout::DualMono.mapping());
    check("call left (caller)", &d.channels[0], &exp_l);
    check("call right (callee)", &d.channels[1], &exp_r);
    leak("caller -> right", &d.channels[0], &d.channels[1], 440.0);
    leak("callee -> left", &d.channels[1], &d.channels[0], 1250.0);
}

#[test]
fn coupled_stereo_also_works_but_leaks_more_than_dual_mono() {
    // Why calls use two uncoupled streams: measured, not assumed.
    let a = burst_tone(440.0, 10.0, 1, 9000.0);
    let b = burst_tone(1250.0, 10.0, 2, 9000.0);
    let mut leaks = Vec::new();
    for layout in [Layout::CoupledStereo, Layout::DualMono] {
        let config = RecorderConfig {
            call_layout: layout,
            encoder: EncoderConfig {
                complexity: 0,
                ..Default::default()
            },
            ..Default::default()
        };
        let mut rec = CallRecorder::new(Vec::new(), &config, Some(0)).unwrap();
        for (i, (fa, fb)) in a.chunks(FRAME).zip(b.chunks(FRAME)).enumerate() {
            let ticks = i as i64 * TICKS;
            rec.push(
                Side::Caller,
                PcmFrame {
                    seq: i as u64,
                    ticks,
                    pcm: fa,
                },
            )
            .unwrap();
            rec.push(
                Side::Callee,
                PcmFrame {
                    seq: i as u64,
                    ticks,
                    pcm: fb,
                },
            )
            .unwrap();
        }
        let (bytes, _) = rec.finish().unwrap();
        let d = decode_ogg_opus(Cursor::new(&bytes), 16_000).unwrap();
        check(&format!("{layout:?} left"), &d.channels[0], &a);
        check(&format!("{layout:?} right"), &d.channels[1], &b);
        leaks.push(leak(
            &format!("{layout:?} caller -> right"),
            &d.channels[0],
            &d.channels[1],
            440.0,
        ));
    }
    assert!(leaks[1] < leaks[0], "dual mono leaks less: {leaks:?}");
    assert!(leaks[1] < -60.0);
}

#[test]
fn four_party_meeting_round_trip_one_track_each_plus_mix() {
    let freqs = [300.0, 700.0, 1100.0, 1700.0];
    let join_slot = [0i64, 0, 200, 0]; // participant 2 joins at 4 s
    let leave_slot = [None, None, None, Some(1000i64)]; // 3 leaves at 20 s
    let total_slots = (SECONDS * 50.0) as i64;
    let mut rng = Lcg(11);
    let mut all = Vec::new();
    let mut expected_tracks = Vec::new();
    let mut expected_mix = vec![0i16; total_slots as usize * FRAME];
    for (p, &f) in freqs.iter().enumerate() {
        let first = join_slot[p];
        let last = leave_slot[p].unwrap_or(total_slots);
        let seconds = (last - first) as f64 / 50.0;
        let signal = burst_tone(f, seconds, 100 + p as u64, 6000.0);
        let mut faults = Faults::default();
        // Unmixed buffers: a participant's frame is only sent while they speak.
        let (frames, expected) = adapter_frames(
            p,
            &signal,
            first,
            &mut rng,
            |_, pcm| pcm.iter().any(|&s| s != 0),
            &mut faults,
        );
        println!("participant {p}: faults {faults:?}");
        for (i, &s) in expected.iter().enumerate() {
            let at = first as usize * FRAME + i;
            expected_mix[at] = expected_mix[at].saturating_add(s);
        }
        all.extend(frames);
        expected_tracks.push(expected);
    }
    // At most four speakers per 20 ms, as Teams delivers.
    let frames = arrival_order(all);

    let config = RecorderConfig::default();
    let mut rec = MeetingRecorder::new(Vec::new(), &config, Some(0)).unwrap();
    for p in [0usize, 1, 3] {
        let start = rec
            .add_participant(ParticipantKey(p as u32), Vec::new(), Some(0))
            .unwrap();
        assert_eq!(start.start_ms, 0);
    }
    let mut joined = false;
    let mut left = false;
    for f in &frames {
        if !joined && f.arrival >= 200.0 {
            let start = rec
                .add_participant(ParticipantKey(2), Vec::new(), Some(200 * TICKS))
                .unwrap();
            assert_eq!(
                start,
                TrackStart {
                    slot: 200,
                    start_ms: 4000
                }
            );
            joined = true;
        }
        if !left && f.arrival >= 1000.0 {
            rec.remove_participant(ParticipantKey(3)).unwrap();
            left = true;
        }
        rec.push(
            ParticipantKey(f.source as u32),
            PcmFrame {
                seq: f.seq,
                ticks: f.ticks,
                pcm: &f.pcm,
            },
        )
        .unwrap();
    }
    // Participant 3 left at 20 s: their stream is complete already.
    let early = rec.take_finished();
    assert_eq!(early.len(), 1);
    assert_eq!(early[0].key, ParticipantKey(3));
    let mut out = rec.finish().unwrap();
    out.tracks.extend(early);
    assert_eq!(out.tracks.len(), 4);
    assert_eq!(out.clock.discontinuities, 0);
    println!("meeting: {} ms", out.duration_ms);

    for track in &out.tracks {
        let p = track.key.0 as usize;
        let d = decode_ogg_opus(Cursor::new(&track.output), 16_000).unwrap();
        assert_eq!(d.channels.len(), 1);
        assert_eq!(track.start_ms, join_slot[p] * 20);
        assert_eq!(
            track.duration_ms as usize,
            d.channels[0].len() / 16,
            "reported duration"
        );
        println!("track {p}: {:?}", track.stats);
        let expected = &expected_tracks[p];
        // The leave slot depends on the newest frame at the leave: ±1 frame.
        let n = expected.len().min(d.channels[0].len());
        check(&format!("track {p}"), &d.channels[0], expected);
        let own = &d.channels[0][..n];
        for (q, &fq) in freqs.iter().enumerate() {
            if q != p {
                // Power of q's tone here, relative to p's own tone power.
                let l = db(tone_power(own, fq), tone_power(own, freqs[p]));
                println!("track {p}: participant {q}'s {fq} Hz at {l:.1} dB");
                assert!(l < -30.0, "track {p} leaks participant {q}: {l} dB");
            }
        }
    }
    let mix = decode_ogg_opus(Cursor::new(&out.mix), 16_000).unwrap();
    check("mix", &mix.channels[0], &expected_mix);
    for &f in &freqs {
        let present = db(
            tone_power(&mix.channels[0], f),
            tone_power(&expected_mix, f),
        );
        assert!(
            present.abs() < 1.0,
            "{f} Hz in the mix at {present:.2} dB of expected"
        );
    }
}

/// Sends `signal` as the adapter's Opus packets (encoded in slot order
/// by a continuous encoder) through an [`OpusPassthrough`], with or
/// without faults, and returns the decoded stream and the expectation.
fn pass_through(with_faults: bool) -> (Vec<i16>, Vec<i16>) {
    let signal = burst_tone(600.0, 10.0, 5, 9000.0);
    let mut enc = OpusEncoder::new(Layout::Mono, &EncoderConfig::default()).unwrap();
    let mut rng = Lcg(3);
    let mut faults = Faults::default();
    let (frames, expected) = if with_faults {
        adapter_frames(0, &signal, 0, &mut rng, |_, _| true, &mut faults)
    } else {
        let frames = signal
            .chunks(FRAME)
            .enumerate()
            .map(|(i, pcm)| Sent {
                source: 0,
                seq: i as u64,
                ticks: i as i64 * TICKS,
                slot: i as i64,
                arrival: i as f64,
                pcm: pcm.to_vec(),
            })
            .collect();
        (frames, signal.clone())
    };
    let mut by_slot = frames.clone();
    by_slot.sort_by_key(|f| f.slot);
    let mut packets = std::collections::HashMap::new();
    for f in &by_slot {
        packets
            .entry(f.slot)
            .or_insert_with(|| enc.encode(&f.pcm).unwrap().to_vec());
    }
    let mut pt = OpusPassthrough::new(
        Vec::new(),
        &TimelineConfig::default(),
        &OggOptions::default(),
        enc.pre_skip(),
        Some(0),
    )
    .unwrap();
    for f in arrival_order(frames) {
        pt.push(f.seq, f.ticks, &packets[&f.slot]).unwrap();
    }
    let stats = pt.stats();
    assert_eq!(stats.late, faults.late as u64);
    assert_eq!(stats.duplicates, faults.duplicated as u64);
    let bytes = pt.finish().unwrap();
    let d = decode_ogg_opus(Cursor::new(&bytes), 16_000).unwrap();
    (d.channels[0].clone(), expected)
}

#[test]
fn opus_pass_through_round_trip() {
    // The sender never flushes its encoder's lookahead, so the stream
    // ends 6.5 ms (the pre-skip) short of the input: within the 40 ms.
    let (decoded, expected) = pass_through(false);
    assert_eq!(decoded.len(), expected.len() - 104);
    check("pass-through, no faults", &decoded, &expected);
    // With faults, each gap is a packet of digital silence; the first real
    // packet after it was predicted by the sender's encoder from audio the
    // decoder never got, so it decodes distorted for about 20 ms. That
    // costs envelope correlation (0.94 measured), not placement.
    let (decoded, expected) = pass_through(true);
    check_with("pass-through with faults", &decoded, &expected, 0.90);
}

#[test]
fn partial_final_frame_is_trimmed_exactly() {
    for len in [1usize, 100, 319, 320, 321, 16_000, 16_123] {
        let signal = tone(500.0, len as f64 / RATE, 8000.0);
        let mut enc = OpusOggEncoder::new(
            Vec::new(),
            Layout::Mono,
            &EncoderConfig::default(),
            &OggOptions::default(),
        )
        .unwrap();
        // Uneven pieces.
        for piece in signal.chunks(77) {
            enc.write_pcm(piece).unwrap();
        }
        let bytes = enc.finish().unwrap();
        let d = decode_ogg_opus(Cursor::new(&bytes), 16_000).unwrap();
        assert_eq!(d.channels[0].len(), len, "length {len}");
        assert_eq!(d.final_granule, 312 + 3 * len as u64);
        if len >= 16_000 {
            assert!(pearson(&d.channels[0], &signal) > 0.9);
        }
    }
}

#[test]
fn meeting_unmixed_buffers_rejoin_and_wall_clock_advance() {
    let tone_a = tone(400.0, 1.0, 8000.0);
    let tone_b = tone(900.0, 1.0, 8000.0);
    let (a, b) = (ParticipantKey(1), ParticipantKey(2));
    let mut rec = MeetingRecorder::new(Vec::new(), &RecorderConfig::default(), Some(0)).unwrap();
    rec.add_participant(a, Vec::new(), None).unwrap();
    rec.add_participant(b, Vec::new(), None).unwrap();
    assert!(
        rec.add_participant(a, Vec::new(), None).is_err(),
        "already in"
    );
    // 1 s of unmixed buffers with both speakers.
    for (i, (fa, fb)) in tone_a.chunks(FRAME).zip(tone_b.chunks(FRAME)).enumerate() {
        let outcomes = rec
            .push_unmixed(i as u64, i as i64 * TICKS, &[(a, fa), (b, fb)])
            .unwrap();
        assert!(outcomes.iter().all(|o| *o == PushOutcome::Accepted));
    }
    // Nobody speaks for 2 s; the gateway's timer moves the clock.
    assert!(rec.advance_to(149 * TICKS).unwrap());
    // b leaves after the clock's newest slot (149) and joins again at
    // 3 s (slot 150) with a new stream.
    rec.remove_participant(b).unwrap();
    let unknown = rec.push(
        ParticipantKey(9),
        PcmFrame {
            seq: 0,
            ticks: 0,
            pcm: &tone_a[..FRAME],
        },
    );
    assert!(matches!(unknown, Err(RecorderError::UnknownParticipant(9))));
    let again = rec
        .add_participant(b, Vec::new(), Some(150 * TICKS))
        .unwrap();
    assert_eq!(again.start_ms, 3000);
    for (i, fb) in tone_b.chunks(FRAME).enumerate() {
        let slot = 150 + i as i64;
        rec.push(
            b,
            PcmFrame {
                seq: slot as u64,
                ticks: slot * TICKS,
                pcm: fb,
            },
        )
        .unwrap();
    }
    let out = rec.finish().unwrap();
    assert_eq!(out.duration_ms, 4000);
    let mut tracks: Vec<_> = out
        .tracks
        .iter()
        .map(|t| (t.key.0, t.start_ms, t.duration_ms))
        .collect();
    tracks.sort();
    // a: whole meeting; b: 0..3 s (left at the clock, 150 slots) and 3..4 s.
    assert_eq!(tracks, vec![(1, 0, 4000), (2, 0, 3000), (2, 3000, 1000)]);
    let mix = decode_ogg_opus(Cursor::new(&out.mix), 16_000).unwrap();
    let m = &mix.channels[0];
    assert_eq!(m.len(), 64_000);
    // Both tones in the first second, silence for two, b alone in the last.
    assert!(tone_power(&m[..16_000], 400.0) > 1e5 && tone_power(&m[..16_000], 900.0) > 1e5);
    assert!(
        rms(&m[17_000..47_000]) < 30.0,
        "silence: {}",
        rms(&m[17_000..47_000])
    );
    assert!(tone_power(&m[48_500..64_000], 900.0) > 1e5);
    assert!(
        db(
            tone_power(&m[48_500..64_000], 400.0),
            tone_power(&m[48_500..64_000], 900.0)
        ) < -30.0
    );
}
