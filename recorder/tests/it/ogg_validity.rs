//! The Ogg layer checked independently of the `ogg` crate that writes it:
//! our own page parser and CRC-32 (polynomial 0x04C11DB7, no reflection,
//! initial value 0, no final XOR, as RFC 3533 specifies), then the
//! reference tools `opusinfo` and `opusdec` (Debian `opus-tools`) when
//! installed. With `CI=true` a missing tool fails the test.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::common;

use std::io::Cursor;
use std::path::Path;
use std::process::Command;

use common::*;
use recorder::*;

/// CRC-32 of Ogg pages, bit by bit (slow and obviously correct).
fn ogg_crc(data: &[u8]) -> u32 {
    let mut crc = 0u32;
    for &byte in data {
        crc ^= u32::from(byte) << 24;
        for _ in 0..8 {
            crc = if crc & 0x8000_0000 != 0 {
                (crc << 1) ^ 0x04C1_1DB7
            } else {
                crc << 1
            };
        }
    }
    crc
}

#[derive(Debug)]
struct Page {
    flags: u8,
    granule: u64,
    serial: u32,
    sequence: u32,
    /// Packets completed on this page (plus a continued one, if any).
    packets: Vec<Vec<u8>>,
    completed: usize,
    continued_from_previous: bool,
}

/// Parses every page, checking capture pattern, version and CRC.
fn pages(bytes: &[u8]) -> Vec<Page> {
    let mut out = Vec::new();
    let mut at = 0;
    let mut carry: Vec<u8> = Vec::new();
    while at < bytes.len() {
        let h = &bytes[at..];
        assert_eq!(&h[..4], b"OggS", "capture pattern at {at}");
        assert_eq!(h[4], 0, "stream structure version");
        let flags = h[5];
        let granule = u64::from_le_bytes(h[6..14].try_into().unwrap());
        let serial = u32::from_le_bytes(h[14..18].try_into().unwrap());
        let sequence = u32::from_le_bytes(h[18..22].try_into().unwrap());
        let crc = u32::from_le_bytes(h[22..26].try_into().unwrap());
        let nseg = usize::from(h[26]);
        let lacing = &h[27..27 + nseg];
        let body_len: usize = lacing.iter().map(|&l| usize::from(l)).sum();
        let total = 27 + nseg + body_len;
        let mut page = h[..total].to_vec();
        page[22..26].fill(0);
        assert_eq!(ogg_crc(&page), crc, "CRC of page {sequence}");
        let continued = flags & 1 != 0;
        assert_eq!(
            continued,
            !carry.is_empty(),
            "continuation flag of page {sequence}"
        );
        let mut body = &h[27 + nseg..total];
        let mut packets = Vec::new();
        let mut completed = 0;
        for &l in lacing {
            carry.extend_from_slice(&body[..usize::from(l)]);
            body = &body[usize::from(l)..];
            if l < 255 {
                packets.push(std::mem::take(&mut carry));
                completed += 1;
            }
        }
        out.push(Page {
            flags,
            granule,
            serial,
            sequence,
            packets,
            completed,
            continued_from_previous: continued,
        });
        at += total;
    }
    assert!(carry.is_empty(), "stream ends inside a packet");
    out
}

/// Checks RFC 3533/7845 structure; returns the audio packet count.
fn check_stream(bytes: &[u8], channels: u8, pre_skip: u16, samples_16k: u64) -> usize {
    let pages = pages(bytes);
    assert!(pages.len() >= 3);
    let serial = pages[0].serial;
    for (i, p) in pages.iter().enumerate() {
        assert_eq!(p.serial, serial, "one logical stream");
        assert_eq!(p.sequence, i as u32, "page sequence numbers");
        assert_eq!(p.flags & 2 != 0, i == 0, "BOS only on the first page");
        assert_eq!(
            p.flags & 4 != 0,
            i == pages.len() - 1,
            "EOS only on the last page"
        );
        assert!(!p.continued_from_previous || i > 2);
    }
    // Page 0: OpusHead alone; page 1: OpusTags alone (RFC 7845 section 3).
    assert_eq!(pages[0].packets.len(), 1);
    assert_eq!(pages[0].granule, 0);
    let head = OpusHead::parse(&pages[0].packets[0]).unwrap();
    assert_eq!(pages[0].packets[0][8], 1, "version 1");
    assert_eq!(head.mapping.channels(), channels);
    assert_eq!(head.pre_skip, pre_skip);
    assert_eq!(head.input_sample_rate, 16_000);
    assert_eq!(head.output_gain, 0);
    assert_eq!(pages[1].packets.len(), 1);
    assert_eq!(pages[1].granule, 0);
    let tags = &pages[1].packets[0];
    assert_eq!(&tags[..8], b"OpusTags");
    let vendor_len = u32::from_le_bytes(tags[8..12].try_into().unwrap()) as usize;
    let comments = u32::from_le_bytes(tags[12 + vendor_len..16 + vendor_len].try_into().unwrap());
    assert_eq!(
        comments, 0,
        "no user comments (no personal data in media files)"
    );
    assert!(
        std::str::from_utf8(&tags[12..12 + vendor_len])
            .unwrap()
            .starts_with("Insights recorder")
    );

    // Audio: granules count 48 kHz samples of completed packets, pre-skip
    // included; monotonic; the last one end-trims.
    let mut decoded = 0u64;
    let mut last_granule = 0u64;
    let mut packets = 0;
    let mut last_duration = 0;
    for p in &pages[2..] {
        assert!(p.completed >= 1, "every audio page completes a packet");
        assert!(p.completed <= 50, "at most 50 packets (about 1 s) per page");
        for packet in &p.packets {
            last_duration = opus::packet::get_nb_samples(packet, 48_000).unwrap() as u64;
            decoded += last_duration;
            packets += 1;
        }
        assert!(p.granule >= last_granule, "granule positions are monotonic");
        last_granule = p.granule;
        if p.flags & 4 == 0 {
            assert_eq!(p.granule, decoded, "granule = samples decoded so far");
        }
    }
    assert_eq!(
        last_granule,
        u64::from(pre_skip) + 3 * samples_16k,
        "end-trimmed granule"
    );
    let trim = decoded - last_granule;
    assert!(trim <= last_duration, "end trim within the last packet");
    assert!(pages[2].granule >= u64::from(pre_skip));
    packets
}

fn call_bytes(seconds: f64) -> Vec<u8> {
    let a = burst_tone(440.0, seconds, 1, 9000.0);
    let b = burst_tone(1250.0, seconds, 2, 9000.0);
    let mut rec = CallRecorder::new(Vec::new(), &RecorderConfig::default(), Some(0)).unwrap();
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
        if i % 50 != 7 {
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
    }
    rec.finish().unwrap().0
}

fn mono_bytes(samples: usize) -> Vec<u8> {
    let signal = burst_tone(500.0, samples as f64 / RATE, 3, 9000.0);
    let mut enc = OpusOggEncoder::new(
        Vec::new(),
        Layout::Mono,
        &EncoderConfig::default(),
        &OggOptions::default(),
    )
    .unwrap();
    enc.write_pcm(&signal).unwrap();
    enc.finish().unwrap()
}

#[test]
fn crc_implementation_matches_a_known_vector() {
    // CRC-32/MPEG-2 without the final inversion and with init 0 is the
    // Ogg CRC; "123456789" gives 0x89A1897F.
    assert_eq!(ogg_crc(b"123456789"), 0x89A1_897F);
}

#[test]
fn call_stream_is_valid_ogg_opus() {
    let bytes = call_bytes(5.0);
    let packets = check_stream(&bytes, 2, 312, 5 * 16_000);
    // 250 frames, plus one to flush the lookahead.
    assert_eq!(packets, 251);
}

#[test]
fn mono_stream_with_partial_last_frame_is_valid_ogg_opus() {
    for samples in [1usize, 319, 320, 16_123, 48_000] {
        check_stream(&mono_bytes(samples), 1, 312, samples as u64);
    }
}

#[test]
fn meeting_streams_are_valid_ogg_opus() {
    let mut rec = MeetingRecorder::new(Vec::new(), &RecorderConfig::default(), Some(0)).unwrap();
    rec.add_participant(ParticipantKey(1), Vec::new(), None)
        .unwrap();
    rec.add_participant(ParticipantKey(2), Vec::new(), Some(50 * TICKS))
        .unwrap();
    let a = burst_tone(300.0, 3.0, 1, 8000.0);
    for (i, f) in a.chunks(FRAME).enumerate() {
        let ticks = i as i64 * TICKS;
        rec.push(
            ParticipantKey(1),
            PcmFrame {
                seq: i as u64,
                ticks,
                pcm: f,
            },
        )
        .unwrap();
        if i >= 50 {
            rec.push(
                ParticipantKey(2),
                PcmFrame {
                    seq: i as u64,
                    ticks,
                    pcm: f,
                },
            )
            .unwrap();
        }
    }
    let out = rec.finish().unwrap();
    check_stream(&out.mix, 1, 312, 48_000);
    for t in &out.tracks {
        let samples = if t.key == ParticipantKey(1) {
            48_000
        } else {
            32_000
        };
        check_stream(&t.output, 1, 312, samples);
    }
}

#[test]
fn pass_through_stream_is_valid_ogg_opus() {
    let mut enc = OpusEncoder::new(Layout::Mono, &EncoderConfig::default()).unwrap();
    let mut pt = OpusPassthrough::new(
        Vec::new(),
        &TimelineConfig::default(),
        &OggOptions::default(),
        312,
        Some(0),
    )
    .unwrap();
    let a = burst_tone(300.0, 2.0, 1, 8000.0);
    for (i, f) in a.chunks(FRAME).enumerate() {
        let packet = enc.encode(f).unwrap().to_vec();
        if i % 10 != 3 {
            pt.push(i as u64, i as i64 * TICKS, &packet).unwrap();
        }
    }
    let bytes = pt.finish().unwrap();
    // 100 packets of 960 samples; the playable length is that minus pre-skip.
    check_stream(&bytes, 1, 312, (100 * 960 - 312) / 3);
    // An empty pass-through stream is still valid: one trimmed packet.
    let pt = OpusPassthrough::new(
        Vec::new(),
        &TimelineConfig::default(),
        &OggOptions::default(),
        312,
        None,
    )
    .unwrap();
    let bytes = pt.finish().unwrap();
    check_stream(&bytes, 1, 312, 0);
    let d = decode_ogg_opus(Cursor::new(&bytes), 16_000).unwrap();
    assert!(d.channels[0].is_empty());
}

#[test]
fn flushed_pages_hold_everything_but_the_newest_packet() {
    // What a crash right after flush_page leaves: every packet but one.
    let signal = burst_tone(500.0, 3.0, 3, 9000.0);
    let mut enc = OpusOggEncoder::new(
        Vec::new(),
        Layout::Mono,
        &EncoderConfig::default(),
        &OggOptions::default(),
    )
    .unwrap();
    for (i, frame) in signal.chunks(FRAME).enumerate().take(73) {
        enc.write_frame(frame).unwrap();
        assert_eq!(enc.ogg().packets(), i as u64 + 1);
    }
    enc.flush_page().unwrap();
    let written = enc.ogg().get_ref().clone();
    let ps = pages(&written);
    let audio: usize = ps[2..].iter().map(|p| p.completed).sum();
    assert_eq!(audio, 72);
    assert_eq!(ps.last().map(|p| p.granule), Some(72 * 960));
    // Flushing again with nothing new writes nothing.
    enc.flush_page().unwrap();
    assert_eq!(enc.ogg().get_ref().len(), written.len());

    // A crash here leaves a stream without EOS: it decodes up to the last
    // page (72 packets, less the pre-skip), and so does one cut mid-page.
    let d = decode_ogg_opus(Cursor::new(&written), 16_000).unwrap();
    assert!(!d.complete);
    assert_eq!(d.channels[0].len(), 72 * 320 - 104);
    assert!(pearson(&d.channels[0], &signal[..72 * 320 - 104]) > 0.9);
    for frame in signal.chunks(FRAME).skip(73).take(60) {
        enc.write_frame(frame).unwrap();
    }
    let later = enc.ogg().get_ref().clone();
    let cut = &later[..written.len() + 100];
    let d = decode_ogg_opus(Cursor::new(cut), 16_000).unwrap();
    assert!(!d.complete);
    assert_eq!(d.channels[0].len(), 72 * 320 - 104);
    // A corrupted byte is an error, not a shorter stream.
    let mut bad = written.clone();
    let at = bad.len() - 10;
    bad[at] ^= 0x40;
    assert!(decode_ogg_opus(Cursor::new(&bad), 16_000).is_err());
    let whole = enc.finish().unwrap();
    let d = decode_ogg_opus(Cursor::new(&whole), 16_000).unwrap();
    assert!(d.complete);
    assert_eq!(d.channels[0].len(), 133 * 320);
}

#[test]
fn serial_numbers_are_random() {
    assert_ne!(
        pages(&mono_bytes(320))[0].serial,
        pages(&mono_bytes(320))[0].serial
    );
}

/// Runs `tool`; `None` if it is not installed (and CI is not set).
fn run_tool(tool: &str, args: &[&str]) -> Option<std::process::Output> {
    match Command::new(tool).args(args).output() {
        Ok(out) => Some(out),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            assert!(
                std::env::var("CI").as_deref() != Ok("true"),
                "{tool} is required in CI (Debian package opus-tools)"
            );
            eprintln!("SKIPPED: {tool} not installed (apt-get install opus-tools)");
            None
        }
        Err(e) => panic!("{tool}: {e}"),
    }
}

fn opusinfo_ok(path: &Path) -> Option<String> {
    let out = run_tool("opusinfo", &[path.to_str()?])?;
    let text =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "opusinfo failed:\n{text}");
    assert!(
        !text.contains("WARNING") && !text.contains("ERROR"),
        "opusinfo complains:\n{text}"
    );
    Some(text)
}

#[test]
fn reference_tools_accept_our_streams() {
    let dir = tempfile::tempdir().unwrap();
    let call = dir.path().join("call.opus");
    std::fs::write(&call, call_bytes(3.0)).unwrap();
    let mono = dir.path().join("mono.opus");
    std::fs::write(&mono, mono_bytes(16_123)).unwrap();
    for (path, channels, samples) in [(&call, 2usize, 48_000usize), (&mono, 1, 16_123)] {
        let Some(info) = opusinfo_ok(path) else {
            return;
        };
        println!("{info}");
        assert!(info.contains("Pre-skip: 312"));
        assert!(info.contains(&format!("Channels: {channels}")));
        // opusdec decodes at the original rate (16 kHz) into a WAV file.
        let wav = path.with_extension("wav");
        let out = run_tool(
            "opusdec",
            &[
                "--force-wav",
                "--quiet",
                path.to_str().unwrap(),
                wav.to_str().unwrap(),
            ],
        )
        .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let reader = hound::WavReader::open(&wav).unwrap();
        let spec = reader.spec();
        assert_eq!(spec.sample_rate, 16_000);
        assert_eq!(usize::from(spec.channels), channels);
        assert_eq!(reader.duration() as usize, samples, "{}", path.display());
    }
}
