//! The SIPREC recording server through the real binary: `insights serve`
//! with `[siprec]` configured, SIPp (`sip-tester`) as the SBC's Session
//! Recording Client playing espeak-ng speech as G.711 RTP from pcap files
//! this test writes, and the stored recordings decrypted, decoded and
//! compared with what each side sent. Scenarios: tests/siprec/*.xml.

use std::net::{SocketAddr, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use bot_gateway::siprec::rtp;
use insights_core::config::{Overrides, Settings};
use insights_core::crypto::envelope::{self, ExpectedIds};
use insights_core::domain::*;
use serde_json::json;

use crate::e2e_call::{add_tenant, envelope, pearson, samples, speak};
use crate::{TRUST_SIMULATOR, insights, start_serve};

fn scenario(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/siprec")
        .join(name)
}

/// A port free for both UDP and TCP on 127.0.0.1.
fn free_port() -> u16 {
    for _ in 0..100 {
        let u = UdpSocket::bind("127.0.0.1:0").unwrap();
        let port = u.local_addr().unwrap().port();
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    panic!("no free port");
}

/// An even port `p` with `p` and `p + 2` free for UDP (SIPp's media).
fn free_media_port() -> u16 {
    loop {
        let p = free_port() & !1;
        if p > 1024
            && UdpSocket::bind(("127.0.0.1", p)).is_ok()
            && UdpSocket::bind(("127.0.0.1", p + 2)).is_ok()
        {
            return p;
        }
    }
}

/// Writes a pcap (Ethernet, IPv4, UDP) of `packets`: (µs, destination
/// port, RTP bytes). SIPp's `play_pcap_audio` keeps the gaps and sends a
/// packet for port `base + k` to the answer's first m-line port + k.
fn write_pcap(path: &Path, packets: &[(u64, u16, Vec<u8>)]) {
    let mut f = Vec::new();
    f.extend_from_slice(&0xa1b2_c3d4u32.to_le_bytes());
    f.extend_from_slice(&2u16.to_le_bytes());
    f.extend_from_slice(&4u16.to_le_bytes());
    f.extend_from_slice(&0i32.to_le_bytes());
    f.extend_from_slice(&0u32.to_le_bytes());
    f.extend_from_slice(&65535u32.to_le_bytes());
    f.extend_from_slice(&1u32.to_le_bytes()); // Ethernet
    for (us, dport, rtp) in packets {
        let udp_len = 8 + rtp.len();
        let ip_len = 20 + udp_len;
        let mut p = Vec::new();
        p.extend_from_slice(&[0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 2, 0x08, 0x00]);
        let mut ip = vec![
            0x45,
            0,
            (ip_len >> 8) as u8,
            ip_len as u8,
            0,
            0,
            0,
            0,
            64,
            17,
            0,
            0,
            127,
            0,
            0,
            1,
            127,
            0,
            0,
            1,
        ];
        let sum: u32 = ip
            .chunks(2)
            .map(|c| u32::from(u16::from_be_bytes([c[0], c[1]])))
            .sum();
        let sum = !((sum & 0xffff) + (sum >> 16)) as u16;
        ip[10..12].copy_from_slice(&sum.to_be_bytes());
        p.extend_from_slice(&ip);
        p.extend_from_slice(&(dport - 4000).to_be_bytes());
        p.extend_from_slice(&dport.to_be_bytes());
        p.extend_from_slice(&(udp_len as u16).to_be_bytes());
        p.extend_from_slice(&[0, 0]);
        p.extend_from_slice(rtp);
        f.extend_from_slice(&((us / 1_000_000) as u32).to_le_bytes());
        f.extend_from_slice(&((us % 1_000_000) as u32).to_le_bytes());
        f.extend_from_slice(&(p.len() as u32).to_le_bytes());
        f.extend_from_slice(&(p.len() as u32).to_le_bytes());
        f.extend_from_slice(&p);
    }
    std::fs::write(path, f).unwrap();
}

/// 16 kHz speech → what an SBC sends: 8 kHz G.711 bytes.
fn g711(speech16k: &[i16], pcmu: bool) -> Vec<u8> {
    speech16k
        .chunks(2)
        .map(|c| {
            let s = ((i32::from(c[0]) + i32::from(*c.get(1).unwrap_or(&c[0]))) / 2) as i16;
            if pcmu {
                rtp::ulaw_encode(s)
            } else {
                rtp::alaw_encode(s)
            }
        })
        .collect()
}

/// What the recording should hold for a G.711 stream: decoded, at
/// 16 kHz (the recorder's linear interpolation).
fn reference(bytes: &[u8], pcmu: bool) -> Vec<i16> {
    let mut out = Vec::with_capacity(2 * bytes.len());
    let mut prev = 0i16;
    for &b in bytes {
        let s = if pcmu { rtp::ulaw(b) } else { rtp::alaw(b) };
        out.push(((i32::from(prev) + i32::from(s)) / 2) as i16);
        out.push(s);
        prev = s;
    }
    out
}

/// Two streams, 20 ms packets: the first to port 10000 (the answer's
/// first m-line), the second to 10002. The first stream also carries a
/// reordered pair, a duplicate and a telephone-event packet.
fn call_pcap(path: &Path, first: &[u8], second: &[u8], pt: u8) -> Duration {
    let frames = first.len().max(second.len()).div_ceil(160);
    let mut packets = Vec::new();
    let mut seq_a: u16 = 1000;
    for k in 0..frames {
        let us = k as u64 * 20_000;
        let chunk = |s: &[u8]| -> Vec<u8> {
            let mut c: Vec<u8> = s.iter().skip(k * 160).take(160).copied().collect();
            let silence = if pt == 0 { 0xff } else { 0xd5 };
            c.resize(160, silence);
            c
        };
        if k == 100 {
            // A DTMF event between two audio packets: never audio.
            packets.push((
                us,
                10000,
                rtp::build(
                    101,
                    seq_a,
                    48_000 + (k * 160) as u32,
                    0x1111,
                    &[5, 0x8a, 0, 160],
                ),
            ));
            seq_a = seq_a.wrapping_add(1);
        }
        packets.push((
            us,
            10000,
            rtp::build(pt, seq_a, 48_000 + (k * 160) as u32, 0x1111, &chunk(first)),
        ));
        seq_a = seq_a.wrapping_add(1);
        packets.push((
            us,
            10002,
            rtp::build(
                pt,
                7000 + k as u16,
                90_000 + (k * 160) as u32,
                0x2222,
                &chunk(second),
            ),
        ));
        if k == 80 {
            // Sent twice.
            let dup = packets[packets.len() - 2].clone();
            packets.push(dup);
        }
    }
    // Packets 50 and 51 of the first stream leave in swapped order.
    let idx: Vec<usize> = packets
        .iter()
        .enumerate()
        .filter(|(_, p)| p.1 == 10000)
        .map(|(i, _)| i)
        .collect();
    if idx.len() > 51 {
        let (a, b) = (idx[50], idx[51]);
        let (ta, tb) = (packets[a].0, packets[b].0);
        packets.swap(a, b);
        packets[a].0 = ta;
        packets[b].0 = tb;
    }
    write_pcap(path, &packets);
    Duration::from_millis(frames as u64 * 20)
}

struct Sbc<'a> {
    dir: &'a Path,
    sip: SocketAddr,
}

impl Sbc<'_> {
    /// Runs one SIPp call of `scenario`; returns whether it succeeded and
    /// its output.
    fn call(&self, scenario_file: &str, local_ip: &str, extra: &[&str]) -> (bool, String) {
        let mut cmd = Command::new("sipp");
        cmd.current_dir(self.dir)
            .arg(self.sip.to_string())
            .arg("-sf")
            .arg(scenario(scenario_file))
            .args(["-m", "1", "-l", "1", "-i", local_ip, "-mi", local_ip])
            .args(["-p", &free_port().to_string()])
            .args(["-mp", &free_media_port().to_string()])
            .args(["-timeout", "90s", "-timeout_error", "-nostdin"])
            .args(["-trace_err", "-trace_msg"])
            .args(extra)
            .stdin(Stdio::null());
        let out = cmd
            .output()
            .expect("sipp is needed (Debian package sip-tester)");
        let mut text = String::from_utf8_lossy(&out.stdout).into_owned();
        text.push_str(&String::from_utf8_lossy(&out.stderr));
        for f in std::fs::read_dir(self.dir).unwrap().flatten() {
            let n = f.file_name().to_string_lossy().into_owned();
            if n.ends_with("_errors.log") || n.ends_with("_messages.log") {
                text.push_str(&format!("\n== {n}\n"));
                text.push_str(&std::fs::read_to_string(f.path()).unwrap_or_default());
                let _ = std::fs::remove_file(f.path());
            }
        }
        (out.status.success(), text)
    }
}

/// Sends `msg` over UDP to the recording server and returns its first
/// final response.
fn udp_request(to: SocketAddr, msg: &str) -> String {
    let s = UdpSocket::bind("127.0.0.1:0").unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let local = s.local_addr().unwrap();
    s.send_to(msg.replace("LOCAL", &local.to_string()).as_bytes(), to)
        .unwrap();
    let mut buf = vec![0u8; 65536];
    loop {
        let (n, _) = s.recv_from(&mut buf).expect("no SIP response");
        let r = String::from_utf8_lossy(&buf[..n]).into_owned();
        if !r.starts_with("SIP/2.0 1") {
            return r;
        }
    }
}

async fn recordings(platform: &insights::platform::Platform, tenant: TenantId) -> Vec<Recording> {
    let q = RecordingQuery {
        limit: 500,
        ..RecordingQuery::default()
    };
    let page = platform.store.search_recordings(tenant, &q).await.unwrap();
    let mut out = Vec::new();
    for r in page.items {
        out.push(
            platform
                .store
                .get_recording(tenant, r.recording.id)
                .await
                .unwrap(),
        );
    }
    out
}

async fn wait_for(
    platform: &insights::platform::Platform,
    tenant: TenantId,
    what: &str,
    done: impl Fn(&[Recording]) -> bool,
) -> Vec<Recording> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let r = recordings(platform, tenant).await;
        if done(&r) {
            return r;
        }
        assert!(Instant::now() < deadline, "{what}: not in 60 s");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn decrypt_primary(
    platform: &insights::platform::Platform,
    tenant: TenantId,
    rec: &Recording,
) -> Vec<u8> {
    let media = rec.media.clone().expect("stored recording has media");
    let wrapped = platform
        .store
        .get_data_key(tenant, media.data_key_id)
        .await
        .unwrap();
    let data_key = platform.keys.unwrap(&wrapped).await.unwrap();
    let mut cipher = Vec::new();
    let mut s = platform
        .blobs
        .get_stream(&media.container, &media.key)
        .await
        .unwrap();
    use futures::StreamExt;
    while let Some(chunk) = s.next().await {
        cipher.extend_from_slice(&chunk.unwrap());
    }
    let expected = ExpectedIds::new(tenant, rec.id.as_uuid(), media.data_key_id);
    envelope::decrypt_to_vec(&data_key, &cipher, &expected).unwrap()
}

/// Checks that the stored call holds `caller` left and `callee` right.
fn check_channels(ogg: &[u8], caller: &[i16], callee: &[i16]) {
    let decoded = recorder::decode_ogg_opus(std::io::Cursor::new(ogg), 16_000).unwrap();
    assert_eq!(decoded.channels.len(), 2);
    let (left, right) = (&decoded.channels[0], &decoded.channels[1]);
    let want_ms = caller.len().max(callee.len()) as i64 * 1000 / 16_000;
    let got_ms = left.len() as i64 * 1000 / 16_000;
    assert!(
        (got_ms - want_ms).abs() <= 60,
        "duration {got_ms} ms, expected {want_ms} ms"
    );
    let c_left = pearson(&samples(left), &samples(caller));
    let c_right = pearson(&samples(right), &samples(callee));
    let e_left = pearson(&envelope(left), &envelope(caller));
    let e_right = pearson(&envelope(right), &envelope(callee));
    let x_left = pearson(&envelope(left), &envelope(callee));
    let x_right = pearson(&envelope(right), &envelope(caller));
    eprintln!(
        "correlation left {c_left:.3} right {c_right:.3}; envelope {e_left:.3} {e_right:.3}; crossed {x_left:.3} {x_right:.3}"
    );
    // The Teams end-to-end test's thresholds.
    assert!(
        c_left > 0.8 && c_right > 0.8,
        "waveform correlation {c_left:.3} / {c_right:.3}"
    );
    assert!(
        e_left > 0.95 && e_right > 0.95,
        "envelope correlation {e_left:.3} / {e_right:.3}"
    );
    assert!(
        x_left < 0.5 && x_right < 0.5,
        "channels mixed up: {x_left:.3} / {x_right:.3}"
    );
}

/// Everything of the first slice against one server: OPTIONS, 481,
/// malformed SIP, an unknown trunk, a malformed multipart body, CANCEL
/// before answer, a recorded PCMA call over UDP and a PCMU call over TCP
/// (each stored, verified, its channels matching the speech), parties
/// searchable through the API, and an RTP timeout closing a call as
/// partial with a BYE from the server.
pub fn siprec_end_to_end() {
    let cwd = tempfile::tempdir().unwrap();
    let data = cwd.path().join("data");
    let d = data.to_str().unwrap().to_owned();
    add_tenant(cwd.path(), &d, &[], "contoso");
    let sip_port = free_port();
    let rtp_lo = 20_000 + 2 * (u16::from(rand_byte()) * 40);
    let config = cwd.path().join("insights.toml");
    std::fs::write(
        &config,
        format!(
            r#"[siprec]
listen = ["udp:127.0.0.1:{sip_port}", "tcp:127.0.0.1:{sip_port}"]
rtp_timeout = 3
rtp_ports = "{rtp_lo}-{}"

[[siprec.trunks]]
tenant = "contoso"
sources = ["127.0.0.1/32"]
request_user = "rec-contoso"
"#,
            rtp_lo + 200
        ),
    )
    .unwrap();
    let logs = cwd.path().join("serve.log");
    let server = start_serve(
        insights(
            cwd.path(),
            &[
                "serve",
                "--config",
                config.to_str().unwrap(),
                "--data-dir",
                &d,
                "--listen",
                "127.0.0.1:0",
            ],
        )
        .env(TRUST_SIMULATOR.0, TRUST_SIMULATOR.1)
        .stderr(std::fs::File::create(&logs).unwrap()),
    );
    let sip: SocketAddr = format!("127.0.0.1:{sip_port}").parse().unwrap();
    let settings = Settings::load(
        None,
        &Overrides {
            data_dir: Some(data.clone()),
            listen: None,
        },
    )
    .unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let platform = rt
        .block_on(insights::platform::Platform::open(&settings))
        .unwrap();
    let tenant = rt
        .block_on(platform.store.tenant_by_name("contoso"))
        .unwrap()
        .id;
    let count = || rt.block_on(recordings(&platform, tenant)).len();

    // Plain SIP: OPTIONS keep-alive, BYE of an unknown dialog, a request
    // without CSeq.
    let head = |method: &str, extra: &str| {
        format!(
            "{method} sip:rec-contoso@{sip} SIP/2.0\r\nVia: SIP/2.0/UDP LOCAL;branch=z9hG4bK-{method}\r\n\
From: <sip:probe@127.0.0.1>;tag=p\r\nTo: <sip:rec-contoso@{sip}>{extra}\r\nCall-ID: {method}-probe\r\n\
CSeq: 1 {method}\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n"
        )
    };
    let r = udp_request(sip, &head("OPTIONS", ""));
    assert!(r.starts_with("SIP/2.0 200 OK\r\n"), "{r}");
    assert!(r.contains("Supported: siprec"), "{r}");
    let r = udp_request(sip, &head("BYE", ";tag=nope"));
    assert!(r.starts_with("SIP/2.0 481 "), "{r}");
    let r = udp_request(sip, &head("OPTIONS", "").replace("CSeq: 1 OPTIONS\r\n", ""));
    assert!(
        r.starts_with("SIP/2.0 400 Bad Request (missing CSeq header)"),
        "{r}"
    );

    let sbc = Sbc {
        dir: cwd.path(),
        sip,
    };
    let pcma = ["-key", "codec_pt", "8", "-key", "codec_name", "PCMA"];
    let keys = |service: &'static str| {
        let mut v = vec!["-s", service];
        v.extend_from_slice(&pcma);
        v
    };
    // Unknown trunk: another source address, and the right source with
    // another Request-URI user.
    let (ok, out) = sbc.call("forbidden.xml", "127.0.0.2", &keys("rec-contoso"));
    assert!(ok, "{out}");
    let (ok, out) = sbc.call("forbidden.xml", "127.0.0.1", &keys("someone-else"));
    assert!(ok, "{out}");
    assert_eq!(count(), 0, "a refused INVITE stored something");
    // Malformed multipart.
    let (ok, out) = sbc.call("bad_multipart.xml", "127.0.0.1", &keys("rec-contoso"));
    assert!(ok, "{out}");
    assert_eq!(count(), 0, "a malformed INVITE stored something");
    // CANCEL before the answer: nothing recorded (a recording row already
    // written ends failed, `cancelled`).
    let (ok, out) = sbc.call("cancel.xml", "127.0.0.1", &keys("rec-contoso"));
    assert!(ok, "{out}");
    let after_cancel = rt.block_on(recordings(&platform, tenant));
    assert!(
        after_cancel
            .iter()
            .all(|r| r.status == RecordingStatus::Failed
                && r.result_code.as_deref() == Some("cancelled")
                && r.media.is_none()),
        "{:?}",
        after_cancel
            .iter()
            .map(|r| (r.status, r.result_code.clone()))
            .collect::<Vec<_>>()
    );
    let cancelled = after_cancel.len();
    eprintln!("CANCEL before answer: {cancelled} recording row(s) left (failed, `cancelled`)");

    // A recorded call: PCMA over UDP. The first m-line (label 2) is Bob's
    // (the callee), the second (label 1) Alice's (the caller).
    let alice16 = recorder::decode_file(speak(
        cwd.path(),
        "alice",
        "Good morning, this is Alice about the settlement of the trade from Monday. \
         Please confirm the amounts and the value date in writing.",
        "en-us",
    ))
    .unwrap()
    .samples;
    let bob16 = recorder::decode_file(speak(
        cwd.path(),
        "bob",
        "Hello Alice, Bob here. Seven hundred and twenty thousand euros, value Thursday. \
         The confirmation goes out this afternoon.",
        "en-gb",
    ))
    .unwrap()
    .samples;
    let (alice_a, bob_a) = (g711(&alice16, false), g711(&bob16, false));
    let length = call_pcap(&cwd.path().join("media.pcap"), &bob_a, &alice_a, 8);
    let pause = (length + Duration::from_millis(600))
        .as_millis()
        .to_string();
    let mut args: Vec<&str> = keys("rec-contoso");
    args.extend_from_slice(&["-d", pause.as_str()]);
    let (ok, out) = sbc.call("record.xml", "127.0.0.1", &args);
    assert!(ok, "{out}");
    let all = rt.block_on(wait_for(&platform, tenant, "the PCMA call stored", |r| {
        r.iter().any(|x| x.status == RecordingStatus::Stored)
    }));
    let rec = all
        .iter()
        .find(|x| x.status == RecordingStatus::Stored)
        .unwrap()
        .clone();
    assert_eq!(rec.kind, RecordingKind::Call);
    assert!(rec.ended_at.is_some() && rec.result_code.is_none());
    let caller = rec
        .participants
        .iter()
        .find(|p| p.role == ParticipantRole::Caller)
        .expect("caller");
    let callee = rec
        .participants
        .iter()
        .find(|p| p.role == ParticipantRole::Callee)
        .expect("callee");
    assert_eq!(caller.display_name.as_deref(), Some("Alice Example"));
    assert_eq!(caller.phone_number.as_deref(), Some("+14155550123"));
    assert_eq!(
        caller.uri.as_deref(),
        Some("sip:+14155550123@sbc.example.com;user=phone")
    );
    assert_eq!(callee.phone_number.as_deref(), Some("+442079460958"));
    assert_eq!(callee.uri.as_deref(), Some("tel:+44-20-7946-0958"));
    let ogg = rt.block_on(decrypt_primary(&platform, tenant, &rec));
    check_channels(&ogg, &reference(&alice_a, false), &reference(&bob_a, false));
    let out = insights(
        cwd.path(),
        &["verify-recording", &rec.id.to_string(), "--data-dir", &d],
    )
    .output()
    .unwrap();
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );

    // Parties are found like Teams ones: by number and by name.
    let officer = crate::content_access::user_session(
        &data,
        &server,
        "contoso",
        "officer@contoso.example",
        "compliance-officer",
        &[],
    );
    for q in ["4155550123", "2079460958", "Alice"] {
        let (st, body) = officer.post(
            "/api/recordings/search",
            &json!({ "participant": q, "limit": 50 }),
            None,
        );
        assert_eq!(st, 200, "{body}");
        let ids: Vec<&str> = body["items"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|i| i["recording"]["id"].as_str())
            .collect();
        // The call, and the cancelled attempt if it got as far as a row.
        assert!(
            ids.contains(&rec.id.to_string().as_str()),
            "search {q}: {body}"
        );
        assert!(ids.len() <= 1 + cancelled, "search {q}: {body}");
    }

    // PCMU over TCP (signalling), three seconds, sides by the metadata.
    let (alice_u, bob_u) = (
        g711(&alice16[..(3 * 16_000).min(alice16.len())], true),
        g711(&bob16[..(3 * 16_000).min(bob16.len())], true),
    );
    let length = call_pcap(&cwd.path().join("media.pcap"), &bob_u, &alice_u, 0);
    let pause = (length + Duration::from_millis(600))
        .as_millis()
        .to_string();
    let (ok, out) = sbc.call(
        "record.xml",
        "127.0.0.1",
        &[
            "-t",
            "t1",
            "-s",
            "rec-contoso",
            "-key",
            "codec_pt",
            "0",
            "-key",
            "codec_name",
            "PCMU",
            "-d",
            pause.as_str(),
        ],
    );
    assert!(ok, "{out}");
    let all = rt.block_on(wait_for(&platform, tenant, "the PCMU call stored", |r| {
        r.iter()
            .filter(|x| x.status == RecordingStatus::Stored)
            .count()
            == 2
    }));
    let tcp_rec = all
        .iter()
        .find(|x| x.status == RecordingStatus::Stored && x.id != rec.id)
        .unwrap();
    let tcp_rec_id = tcp_rec.id;
    let ogg = rt.block_on(decrypt_primary(&platform, tenant, tcp_rec));
    check_channels(&ogg, &reference(&alice_u, true), &reference(&bob_u, true));

    // G.722 (payload type 9) over UDP, three seconds: 16 kHz audio on
    // the 8 kHz RTP clock, stored without resampling.
    let (alice_g, bob_g) = (
        rtp::g722_encode(&alice16[..(3 * 16_000).min(alice16.len())]),
        rtp::g722_encode(&bob16[..(3 * 16_000).min(bob16.len())]),
    );
    let length = call_pcap(&cwd.path().join("media.pcap"), &bob_g, &alice_g, 9);
    let pause = (length + Duration::from_millis(600))
        .as_millis()
        .to_string();
    let (ok, out) = sbc.call(
        "record.xml",
        "127.0.0.1",
        &[
            "-s",
            "rec-contoso",
            "-key",
            "codec_pt",
            "9",
            "-key",
            "codec_name",
            "G722",
            "-d",
            pause.as_str(),
        ],
    );
    assert!(ok, "{out}");
    let all = rt.block_on(wait_for(&platform, tenant, "the G.722 call stored", |r| {
        r.iter()
            .filter(|x| x.status == RecordingStatus::Stored)
            .count()
            == 3
    }));
    let g722_rec = all
        .iter()
        .find(|x| x.status == RecordingStatus::Stored && x.id != rec.id && x.id != tcp_rec_id)
        .unwrap();
    let ogg = rt.block_on(decrypt_primary(&platform, tenant, g722_rec));
    check_channels(&ogg, &rtp::g722_decode(&alice_g), &rtp::g722_decode(&bob_g));

    // RTP stops and no BYE comes: after rtp_timeout (3 s) the server
    // closes the recording as partial and sends BYE (the scenario waits
    // for it).
    let short = (alice_a[..8000].to_vec(), bob_a[..8000].to_vec());
    call_pcap(&cwd.path().join("media.pcap"), &short.1, &short.0, 8);
    let (ok, out) = sbc.call("rtp_timeout.xml", "127.0.0.1", &keys("rec-contoso"));
    assert!(ok, "{out}");
    let all = rt.block_on(wait_for(
        &platform,
        tenant,
        "the timed-out call stored",
        |r| {
            r.iter().any(|x| {
                x.result_code.as_deref() == Some("rtp-timeout")
                    && x.status == RecordingStatus::Stored
            })
        },
    ));
    assert_eq!(all.len(), cancelled + 4);
    drop(server);

    // Per stream the server counts what it received (counts only): the
    // impaired stream's duplicate and DTMF packet, and no loss anywhere.
    let log = std::fs::read_to_string(&logs).unwrap();
    let streams: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("SIPREC stream ended"))
        .collect();
    for l in &streams {
        eprintln!("{l}");
    }
    assert_eq!(streams.len(), 8, "two streams per recorded call");
    assert!(streams.iter().all(|l| l.contains("lost=0")), "RTP lost");
    assert!(
        streams
            .iter()
            .any(|l| l.contains("duplicates=1") && l.contains("dtmf=1")),
        "the duplicate and the DTMF packet were not seen"
    );

    // Privacy: the server's logs name nobody.
    for secret in [
        "Alice",
        "Bob",
        "4155550123",
        "2079460958",
        "sbc.example.com",
    ] {
        assert!(!log.contains(secret), "serve log contains `{secret}`");
    }
}

fn rand_byte() -> u8 {
    (std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos()
        % 251) as u8
}

/// `insights serve` with `[siprec]` that cannot work stops at start-up
/// with an error naming the problem: a listener whose port is taken, and
/// a trunk for a tenant that does not exist.
pub fn siprec_misconfiguration_stops_start_up() {
    let cwd = tempfile::tempdir().unwrap();
    let data = cwd.path().join("data");
    let d = data.to_str().unwrap().to_owned();
    add_tenant(cwd.path(), &d, &[], "contoso");
    let taken = UdpSocket::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    for (trunk_tenant, listen, want) in [
        (
            "contoso",
            format!("udp:127.0.0.1:{port}"),
            format!("cannot listen on udp:127.0.0.1:{port}"),
        ),
        (
            "fabrikam",
            format!("udp:127.0.0.1:{}", free_port()),
            "trunk tenant `fabrikam` does not exist".to_owned(),
        ),
    ] {
        let config = cwd.path().join("insights.toml");
        std::fs::write(
            &config,
            format!(
                "[siprec]\nlisten = [\"{listen}\"]\n\n[[siprec.trunks]]\ntenant = \"{trunk_tenant}\"\nsources = [\"127.0.0.1\"]\n"
            ),
        )
        .unwrap();
        let mut child = insights(
            cwd.path(),
            &[
                "serve",
                "--config",
                config.to_str().unwrap(),
                "--data-dir",
                &d,
                "--listen",
                "127.0.0.1:0",
            ],
        )
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
        let deadline = Instant::now() + Duration::from_secs(60);
        let status = loop {
            if let Some(s) = child.try_wait().unwrap() {
                break s;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                panic!("insights serve kept running with a broken [siprec] ({want})");
            }
            std::thread::sleep(Duration::from_millis(100));
        };
        let out = child.wait_with_output().unwrap();
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(!status.success(), "{text}");
        assert!(text.contains(&want), "wanted `{want}` in: {text}");
        assert!(!text.contains("insights: listening on"), "{text}");
    }
    drop(taken);
}
