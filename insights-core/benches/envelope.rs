//! Throughput of the envelope format against raw AES-256-GCM.
//!
//! `cargo bench -p insights-core --bench envelope`
//!
//! Baseline: one AES-256-GCM message over the whole 64 MiB buffer, in
//! place (`encrypt_inout_detached` / `decrypt_inout_detached`, the
//! successors of `*_in_place_detached` in `aead` 0.6). Ours: the same
//! buffer as an envelope object with 64 KiB chunks, through the
//! allocation-free whole-object API and through the streaming adapters.
//! All cases run once per round, interleaved (so background load hits
//! them alike); after a warm-up round, the best of `ROUNDS` rounds counts.

use std::error::Error;
use std::hint::black_box;
use std::io::{Read, Write};
use std::time::{Duration, Instant};

use aes_gcm::Aes256Gcm;
use aes_gcm::aead::{AeadInOut, KeyInit};
use insights_core::crypto::DataKey;
use insights_core::crypto::envelope::{
    self, DEFAULT_CHUNK_SIZE, EnvelopeReader, EnvelopeWriter, Header, StreamOpener,
};
use insights_core::domain::{KeyId, TenantId};
use rand::rngs::StdRng;
use rand::{RngCore, SeedableRng};
use uuid::Uuid;
use zeroize::Zeroizing;

const SIZE: usize = 64 << 20;
const ROUNDS: usize = 7;

type Res<T> = Result<T, Box<dyn Error>>;

/// Times `f`.
fn timed(f: impl FnOnce() -> Res<()>) -> Res<Duration> {
    let start = Instant::now();
    f()?;
    Ok(start.elapsed())
}

fn mb_per_s(d: Duration) -> f64 {
    SIZE as f64 / d.as_secs_f64() / 1e6
}

fn main() -> Res<()> {
    let mut plain = vec![0u8; SIZE];
    StdRng::seed_from_u64(1).fill_bytes(&mut plain);
    let key = DataKey::generate(KeyId::new());
    let raw_key = Zeroizing::new(*key.bytes());
    let header = Header::new(TenantId::new(), Uuid::now_v7(), key.id);
    let ids = header.ids();
    let nonce = [0u8; 12].into();

    let cipher = Aes256Gcm::new((&*raw_key).into());
    let mut buf = plain.clone();
    let mut raw_ct = plain.clone();
    let raw_tag = cipher
        .encrypt_inout_detached(&nonce, b"", raw_ct.as_mut_slice().into())
        .map_err(|e| e.to_string())?;
    let ct_len = usize::try_from(header.ciphertext_len(SIZE as u64)?)?;
    let mut ct = vec![0u8; ct_len];
    let mut out = vec![0u8; SIZE];
    let mut sink: Vec<u8> = Vec::with_capacity(ct_len);
    let mut streamed: Vec<u8> = Vec::with_capacity(SIZE);

    // All cases run once per round, interleaved, so that they share
    // whatever else the machine is doing; round 0 is the warm-up.
    const CASES: usize = 7;
    let mut best = [Duration::MAX; CASES];
    for round in 0..=ROUNDS {
        let mut t = [Duration::ZERO; CASES];
        // Baseline: one GCM message over the whole buffer, in place.
        t[0] = timed(|| {
            let tag = cipher
                .encrypt_inout_detached(&nonce, b"", buf.as_mut_slice().into())
                .map_err(|e| e.to_string())?;
            black_box(tag);
            Ok(())
        })?;
        buf.copy_from_slice(&raw_ct);
        t[1] = timed(|| {
            cipher
                .decrypt_inout_detached(&nonce, b"", buf.as_mut_slice().into(), &raw_tag)
                .map_err(|e| e.to_string())?;
            Ok(())
        })?;
        if buf != plain {
            return Err("raw round trip failed".into());
        }
        // Ours: whole object, allocation-free.
        t[2] = timed(|| Ok(envelope::encrypt_into(&key, &header, &plain, &mut ct)?))?;
        t[3] = timed(|| {
            envelope::decrypt_into(&key, &ct, &ids, &mut out)?;
            Ok(())
        })?;
        if out != plain {
            return Err("envelope round trip failed".into());
        }
        // Ours: streaming adapters.
        sink.clear();
        t[4] = timed(|| {
            let mut w = EnvelopeWriter::new(&mut sink, &key, &header)?;
            w.write_all(&plain)?;
            w.finish()?;
            Ok(())
        })?;
        if sink != ct {
            return Err("writer output differs".into());
        }
        out.fill(0);
        t[5] = timed(|| {
            let mut r = EnvelopeReader::new(&ct[..], &key, &ids)?;
            r.read_exact(&mut out)?;
            Ok(())
        })?;
        if out != plain {
            return Err("reader output differs".into());
        }
        streamed.clear();
        t[6] = timed(|| {
            let mut s = StreamOpener::new(&key, &ids);
            for piece in ct.chunks(1 << 20) {
                s.update(piece, &mut streamed)?;
            }
            s.finish(&mut streamed)?;
            Ok(())
        })?;
        if streamed != plain {
            return Err("stream opener output differs".into());
        }
        if round > 0 {
            for (b, t) in best.iter_mut().zip(t) {
                *b = (*b).min(t);
            }
        }
    }
    let [
        raw_enc,
        raw_dec,
        env_enc,
        env_dec,
        writer_enc,
        reader_dec,
        stream_dec,
    ] = best;

    #[cfg(target_arch = "x86_64")]
    println!(
        "cpu: aes={} pclmulqdq={} avx2={}",
        std::arch::is_x86_feature_detected!("aes"),
        std::arch::is_x86_feature_detected!("pclmulqdq"),
        std::arch::is_x86_feature_detected!("avx2"),
    );
    println!(
        "buffer {} MiB, envelope chunks {} KiB, best of {ROUNDS} interleaved rounds after a warm-up round\n",
        SIZE >> 20,
        DEFAULT_CHUNK_SIZE >> 10
    );
    println!(
        "{:<44} {:>10} {:>10} {:>8}",
        "case", "time ms", "MB/s", "vs raw"
    );
    let row = |name: &str, d: Duration, raw: Duration| {
        println!(
            "{:<44} {:>10.2} {:>10.0} {:>8.3}",
            name,
            d.as_secs_f64() * 1e3,
            mb_per_s(d),
            raw.as_secs_f64() / d.as_secs_f64()
        );
    };
    row("encrypt  raw AES-256-GCM, one message", raw_enc, raw_enc);
    row("encrypt  envelope encrypt_into", env_enc, raw_enc);
    row("encrypt  envelope EnvelopeWriter", writer_enc, raw_enc);
    row("decrypt  raw AES-256-GCM, one message", raw_dec, raw_dec);
    row("decrypt  envelope decrypt_into", env_dec, raw_dec);
    row("decrypt  envelope EnvelopeReader", reader_dec, raw_dec);
    row(
        "decrypt  envelope StreamOpener (1 MiB pieces)",
        stream_dec,
        raw_dec,
    );
    println!(
        "\nratio ours/raw (throughput): encrypt {:.3}, decrypt {:.3} (target >= 0.9)",
        raw_enc.as_secs_f64() / env_enc.as_secs_f64(),
        raw_dec.as_secs_f64() / env_dec.as_secs_f64()
    );
    Ok(())
}
