//! Fuzz-style tests of the SIPREC parsers: SIP messages (and TCP
//! framing, multipart bodies), SDP offers, recording metadata and RTP,
//! fed with mutations of valid inputs and with random bytes. Nothing may
//! panic, and what is parsed stays within the parsers' bounds. The seed
//! is printed so a failure can be replayed (`SIPREC_FUZZ_SEED`).

use bot_gateway::siprec::{metadata, rtp, sdp, sip};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

const INVITE: &str = "INVITE sip:rec@127.0.0.1:5060 SIP/2.0\r\n\
Via: SIP/2.0/UDP 127.0.0.1:5061;branch=z9hG4bK-1\r\n\
From: <sip:src@127.0.0.1>;tag=1\r\n\
To: <sip:rec@127.0.0.1>\r\n\
Call-ID: fuzz@127.0.0.1\r\n\
CSeq: 1 INVITE\r\n\
Require: siprec\r\n\
Content-Type: multipart/mixed;boundary=XX\r\n\
Content-Length: 140\r\n\r\n\
--XX\r\nContent-Type: application/sdp\r\n\r\nv=0\r\nm=audio 1 RTP/AVP 0\r\n\r\n\
--XX\r\nContent-Type: application/rs-metadata+xml\r\n\r\n<recording/>\r\n--XX--\r\n";

const SDP: &str = "v=0\r\no=SRC 1 1 IN IP4 192.0.2.1\r\ns=-\r\nc=IN IP4 192.0.2.1\r\nt=0 0\r\n\
m=audio 6000 RTP/AVP 8 0 101\r\na=rtpmap:8 PCMA/8000\r\na=rtpmap:101 telephone-event/8000\r\n\
a=label:1\r\na=sendonly\r\nm=audio 6002 RTP/AVP 0\r\na=label:2\r\na=sendonly\r\n";

const METADATA: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<recording xmlns="urn:ietf:params:xml:ns:recording:1"><datamode>complete</datamode>
<session session_id="s"><sipSessionID>a;remote=b</sipSessionID></session>
<participant participant_id="p1"><nameID aor="sip:+14155550100@h"><name>A &amp; B</name></nameID></participant>
<participant id="p2"><aor>tel:+442079460958</aor><send>st2</send></participant>
<stream stream_id="st1" session_id="s"><label>1</label></stream>
<stream id="st2"><label>2</label></stream>
<participantstreamassoc participant_id="p1"><send>st1</send><recv>st2</recv></participantstreamassoc>
</recording>"#;

const TOKENS: &[&str] = &[
    "\r\n",
    "\n",
    "\r\n\r\n",
    ":",
    ";",
    "=",
    "<",
    ">",
    "</",
    "/>",
    "\"",
    "&amp;",
    "&#x0;",
    "&#99999999;",
    "&bogus;",
    "<![CDATA[",
    "]]>",
    "<!DOCTYPE",
    "<participant>",
    "<participant participant_id=\"x\">",
    "<participantstreamassoc participant_id=\"zz\">",
    "<participantsessionassoc participant_id=\"p1\"><disassociate-time>x</disassociate-time></participantsessionassoc>",
    "<x:ucid xmlns:x=\"urn:x\">1</x:ucid>",
    "xmlns:y=\"urn:y\"",
    "<y:id>",
    "<send>",
    "</send>",
    "m=audio 0 RTP/AVP 0\r\n",
    "m=audio 65536 RTP/AVP x\r\n",
    "a=rtpmap:255 X/0\r\n",
    "a=label:\r\n",
    "c=IN IP4\r\n",
    "v=0\r\n",
    "--XX",
    "--XX--",
    "Content-Length: 99999\r\n",
    "l: -1\r\n",
    "Via: SIP/2.0/UDP ;branch\r\n",
    "CSeq: 4294967296 INVITE\r\n",
    "\u{fffd}",
    "\0",
    " ",
    "\t",
];

fn mutate(rng: &mut StdRng, seed: &[u8]) -> Vec<u8> {
    let mut v = seed.to_vec();
    for _ in 0..rng.random_range(1..8) {
        let len = v.len();
        match rng.random_range(0..7) {
            0 if len > 0 => {
                let i = rng.random_range(0..len);
                v[i] = rng.random();
            }
            1 => {
                let t = TOKENS[rng.random_range(0..TOKENS.len())].as_bytes();
                let i = rng.random_range(0..=len);
                v.splice(i..i, t.iter().copied());
            }
            2 if len > 0 => {
                let a = rng.random_range(0..len);
                let b = rng.random_range(a..=len.min(a + 64));
                v.drain(a..b);
            }
            3 if len > 0 => {
                let a = rng.random_range(0..len);
                let b = rng.random_range(a..=len.min(a + 256));
                let chunk = v[a..b].to_vec();
                for _ in 0..rng.random_range(1..50) {
                    v.splice(b..b, chunk.iter().copied());
                }
            }
            4 => v.truncate(rng.random_range(0..=len)),
            5 => {
                let n = rng.random_range(0..64);
                let i = rng.random_range(0..=len);
                let junk: Vec<u8> = (0..n).map(|_| rng.random()).collect();
                v.splice(i..i, junk);
            }
            _ => {}
        }
    }
    v
}

fn random(rng: &mut StdRng) -> Vec<u8> {
    let n = rng.random_range(0..512);
    (0..n).map(|_| rng.random()).collect()
}

fn seed() -> u64 {
    let s = std::env::var("SIPREC_FUZZ_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| rand::rng().random());
    eprintln!("SIPREC_FUZZ_SEED={s}");
    s
}

#[test]
fn sdp_parser_survives_any_input() {
    let mut rng = StdRng::seed_from_u64(seed());
    let mut parsed = 0;
    for i in 0..30_000 {
        let input = if i % 10 == 0 {
            random(&mut rng)
        } else {
            mutate(&mut rng, SDP.as_bytes())
        };
        if let Ok(offer) = sdp::parse(&input) {
            parsed += 1;
            assert!(offer.media.len() <= 32);
            let acc = offer.accepted();
            assert!(acc.len() <= offer.media.len());
            let ports: Vec<(usize, u16)> = acc
                .iter()
                .enumerate()
                .map(|(k, a)| (a.index, 30000 + 2 * k as u16))
                .collect();
            let answer = offer.answer(
                "127.0.0.1"
                    .parse()
                    .unwrap_or(std::net::IpAddr::from([0; 4])),
                &ports,
                1,
                2,
            );
            // Our answer is itself a valid offer-shaped SDP with as many m-lines.
            let back = sdp::parse(answer.as_bytes()).unwrap_or_else(|e| panic!("{e}: {answer}"));
            assert_eq!(back.media.len(), offer.media.len());
        }
    }
    assert!(
        parsed > 1000,
        "mutations too destructive: only {parsed} parsed"
    );
}

#[test]
fn metadata_parser_survives_any_input() {
    let mut rng = StdRng::seed_from_u64(seed());
    let mut parsed = 0;
    for i in 0..30_000 {
        let input = if i % 10 == 0 {
            random(&mut rng)
        } else {
            mutate(&mut rng, METADATA.as_bytes())
        };
        if let Ok(md) = metadata::parse(&input) {
            parsed += 1;
            assert!(md.participants.len() <= 64 && md.streams.len() <= 64);
            assert!(
                md.participants
                    .iter()
                    .all(|p| p.send.len() <= 64 && p.recv.len() <= 64)
            );
            for s in &md.streams {
                if let Some(l) = &s.label {
                    let _ = md.sender_of_label(l);
                }
            }
            assert!(md.extensions.len() <= 32 && md.disassociated.len() <= 64);
            // Folded into a session's metadata as an update: bounded, and
            // the indexes it returns are valid.
            let mut session = metadata::parse(METADATA.as_bytes()).unwrap_or_default();
            let (joined, left) = session.merge(md);
            assert!(session.participants.len() <= 2 + 64 && session.streams.len() <= 2 + 64);
            assert!(
                joined
                    .iter()
                    .chain(&left)
                    .all(|i| *i < session.participants.len())
            );
        }
    }
    assert!(
        parsed > 1000,
        "mutations too destructive: only {parsed} parsed"
    );
    // A billion laughs is refused (no DOCTYPE), not expanded.
    let bomb = r#"<!DOCTYPE r [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;">]><recording>&b;</recording>"#;
    assert!(metadata::parse(bomb.as_bytes()).is_err());
}

#[test]
fn sip_parser_and_framing_survive_any_input() {
    let mut rng = StdRng::seed_from_u64(seed());
    let mut requests = 0;
    for i in 0..30_000 {
        let input = if i % 10 == 0 {
            random(&mut rng)
        } else {
            mutate(&mut rng, INVITE.as_bytes())
        };
        let _ = sip::frame(&input);
        match sip::parse(&input) {
            sip::Parsed::Request(r) => {
                requests += 1;
                assert!(r.body.len() <= input.len());
                let _ = sip::response(&r.headers, 400, Some("x\r\ny"), Some("t"), &[], None);
                if let Some(ct) = r.header(&ezk_sip_types::Name::CONTENT_TYPE) {
                    let (_, b) = sip::media_type(ct);
                    if let Some(b) = b
                        && let Ok(parts) = sip::multipart(&r.body, &b)
                    {
                        assert!(parts.len() <= 17);
                    }
                }
            }
            sip::Parsed::Bad { headers, .. } => {
                let _ = sip::response(&headers, 400, None, Some("t"), &[], None);
            }
            _ => {}
        }
    }
    assert!(
        requests > 1000,
        "mutations too destructive: only {requests} parsed"
    );
}

#[test]
fn rtp_receiver_survives_any_datagram() {
    let mut rng = StdRng::seed_from_u64(seed());
    for (codec, pt) in [(rtp::Codec::Pcmu, 0u8), (rtp::Codec::G722, 9)] {
        let mut s = rtp::Stream::new(codec, pt, Some(101));
        let good = rtp::build(pt, 1, 160, 7, &[0xff; 160]);
        let mut frames = 0usize;
        for i in 0..15_000i64 {
            let input = if i % 3 == 0 {
                random(&mut rng)
            } else {
                mutate(&mut rng, &good)
            };
            for f in s.push(&input, i * 200_000) {
                assert_eq!(f.pcm.len(), 320);
                frames += 1;
            }
        }
        for f in s.finish() {
            assert_eq!(f.pcm.len(), 320);
        }
        assert!(frames > 0, "{codec:?}");
    }
}
