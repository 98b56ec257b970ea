//! The offline engine: Whisper in CTranslate2 format, run in process
//! through `ct2rs` (built with the `whisper` cargo feature).
//!
//! We drive CTranslate2's Whisper model directly (`ct2rs::sys::Whisper`)
//! with our own log-mel front end ([`mel`]) instead of ct2rs's high-level
//! wrapper, because the wrapper gives every input the same prompt, cannot
//! batch separate utterances, and pads with zero features where Whisper was
//! trained on the log-mel of silence. Whisper always looks at 30 s: with
//! [`Batching::Pack`] short utterances share a window, separated by silence,
//! and the model's timestamp tokens give each utterance its own text back.

pub mod mel;
pub mod pack;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use async_trait::async_trait;
use ct2rs::sys::{StorageView, Whisper, WhisperOptions};
use ct2rs::tokenizers::hf::Tokenizer as HfTokenizer;
use ct2rs::{ComputeType, Config, Device, Tokenizer as _};

use crate::stt::{Recognized, STT_SAMPLE_RATE, SpeechToText, SttError, Utterance};
use mel::{FRAMES, LogMel};
use pack::{Window, plan, split_at_timestamps};

/// The files a model folder must hold.
pub const MODEL_FILES: &[&str] = &[
    "model.bin",
    "config.json",
    "tokenizer.json",
    "vocabulary.txt",
];

/// Silence between utterances packed into one window, samples (1 s: long
/// enough that Whisper ends a segment there).
const PACK_GAP: usize = STT_SAMPLE_RATE as usize;

/// Windows per model call.
const MAX_BATCH: usize = 8;

/// How utterances fill Whisper's 30 s windows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Batching {
    /// Consecutive utterances share a window (with timestamps).
    Pack,
    /// One window per utterance (no timestamps), windows batched.
    Window,
}

/// What [`WhisperEngine::load`] needs.
#[derive(Clone, Debug)]
pub struct WhisperConfig {
    /// Folder with model.bin, config.json, tokenizer.json, vocabulary.txt.
    pub model_dir: PathBuf,
    /// Name used in the engine id (`local:<model>`).
    pub model: String,
    /// Inference threads; 0 = one per CPU core.
    pub threads: usize,
    pub beam_size: usize,
    /// Language of multilingual models (ISO 639-1).
    pub language: String,
    pub batching: Batching,
    /// CTranslate2 compute type (weights are quantized at load).
    pub compute_type: ComputeType,
}

impl WhisperConfig {
    /// Defaults for a model folder: all cores, beam 5, English, packing,
    /// int8.
    pub fn new(model_dir: impl Into<PathBuf>, model: impl Into<String>) -> Self {
        WhisperConfig {
            model_dir: model_dir.into(),
            model: model.into(),
            threads: 0,
            beam_size: 5,
            language: "en".into(),
            batching: Batching::Pack,
            compute_type: ComputeType::INT8,
        }
    }
}

/// Checks that `dir` holds a model; the error says how to install one.
pub fn check_model_dir(dir: &Path) -> Result<(), SttError> {
    let missing: Vec<&str> = MODEL_FILES
        .iter()
        .copied()
        .filter(|f| !dir.join(f).is_file())
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    Err(SttError::Unavailable(format!(
        "no Whisper model in {} (missing {}): install it with scripts/fetch-model.sh, \
         or set [stt] model_dir / INSIGHTS_STT__MODEL_DIR",
        dir.display(),
        missing.join(", ")
    )))
}

/// Whisper through CTranslate2. Loads the model once; cheap to share
/// (`Arc` inside), safe to call from several tasks at once.
#[derive(Clone)]
pub struct WhisperEngine {
    id: String,
    inner: Arc<Inner>,
}

struct Inner {
    model: Whisper,
    tokenizer: HfTokenizer,
    mel: LogMel,
    /// Start of every prompt: `<|startoftranscript|>` (+ language and task
    /// for multilingual models).
    prompt: Vec<String>,
    options: WhisperOptions,
    batching: Batching,
}

impl WhisperEngine {
    /// Loads the model (blocking: call it from `spawn_blocking` in async
    /// code). A missing or broken model folder is
    /// [`SttError::Unavailable`].
    pub fn load(config: &WhisperConfig) -> Result<Self, SttError> {
        check_model_dir(&config.model_dir)?;
        let threads = match config.threads {
            0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
            n => n,
        };
        let ct2_config = Config {
            device: Device::CPU,
            compute_type: config.compute_type,
            num_threads_per_replica: threads,
            ..Config::default()
        };
        let unavailable = |what: &str, e: anyhow::Error| {
            SttError::Unavailable(format!(
                "cannot load the Whisper {what} from {}: {e}",
                config.model_dir.display()
            ))
        };
        let model =
            Whisper::new(&config.model_dir, ct2_config).map_err(|e| unavailable("model", e))?;
        let tokenizer =
            HfTokenizer::new(&config.model_dir).map_err(|e| unavailable("tokenizer", e))?;
        let mut prompt = vec!["<|startoftranscript|>".to_string()];
        if model.is_multilingual() {
            prompt.push(format!("<|{}|>", config.language));
            prompt.push("<|transcribe|>".to_string());
        }
        let options = WhisperOptions {
            beam_size: config.beam_size.max(1),
            return_scores: true,
            return_no_speech_prob: true,
            ..WhisperOptions::default()
        };
        tracing::info!(
            model = %config.model,
            threads,
            beam_size = options.beam_size,
            batching = ?config.batching,
            "Whisper model loaded"
        );
        Ok(WhisperEngine {
            id: format!("local:{}", config.model),
            inner: Arc::new(Inner {
                mel: LogMel::new(model.n_mels()),
                model,
                tokenizer,
                prompt,
                options,
                batching: config.batching,
            }),
        })
    }

    /// Recognises utterances on the calling thread (blocking).
    pub fn transcribe_blocking(
        &self,
        utterances: &[Utterance],
    ) -> Result<Vec<Vec<Recognized>>, SttError> {
        self.inner.transcribe(utterances)
    }
}

/// A window's decoded output.
struct Decoded {
    tokens: Vec<String>,
    score: f32,
    no_speech_prob: f32,
}

impl Inner {
    fn transcribe(&self, utterances: &[Utterance]) -> Result<Vec<Vec<Recognized>>, SttError> {
        let started = Instant::now();
        let mut results: Vec<Vec<Recognized>> = vec![Vec::new(); utterances.len()];
        let lengths: Vec<usize> = utterances.iter().map(|u| u.samples.len()).collect();
        let pack = self.batching == Batching::Pack;
        let windows = plan(&lengths, pack, PACK_GAP);
        for batch in windows.chunks(MAX_BATCH) {
            let decoded = self.decode(utterances, batch, pack)?;
            for (window, out) in batch.iter().zip(decoded) {
                self.assign(utterances, window, out, &mut results)?;
            }
        }
        let audio_ms: i64 = utterances.iter().map(Utterance::duration_ms).sum();
        tracing::debug!(
            utterances = utterances.len(),
            windows = windows.len(),
            audio_ms,
            elapsed_ms = started.elapsed().as_millis() as u64,
            "Whisper transcribed"
        );
        Ok(results)
    }

    /// Runs one batch of windows through the model.
    fn decode(
        &self,
        utterances: &[Utterance],
        batch: &[Window],
        timestamps: bool,
    ) -> Result<Vec<Decoded>, SttError> {
        let n_mels = self.mel.n_mels();
        let per_window = n_mels * FRAMES;
        let mut features = vec![0f32; batch.len() * per_window];
        let mut audio = Vec::with_capacity(pack::WINDOW_SAMPLES);
        for (window, out) in batch.iter().zip(features.chunks_exact_mut(per_window)) {
            audio.clear();
            audio.resize(window.content_len(), 0.0);
            for p in &window.pieces {
                let src = &utterances[p.utterance].samples[p.from..p.from + p.len];
                audio[p.at..p.at + p.len].copy_from_slice(src);
            }
            self.mel.compute(&audio, out);
        }
        let failed = |e: anyhow::Error| SttError::Transient {
            message: format!("Whisper inference failed: {e}"),
            retry_after_ms: None,
        };
        let view = StorageView::new(&[batch.len(), n_mels, FRAMES], &mut features, Device::CPU)
            .map_err(failed)?;
        let mut prompt = self.prompt.clone();
        if !timestamps {
            prompt.push("<|notimestamps|>".to_string());
        }
        let prompts = vec![prompt; batch.len()];
        let results = self
            .model
            .generate(&view, &prompts, &self.options)
            .map_err(failed)?;
        Ok(results
            .into_iter()
            .map(|r| Decoded {
                score: r.scores.first().copied().unwrap_or(f32::NEG_INFINITY),
                no_speech_prob: r.no_speech_prob,
                tokens: r.sequences.into_iter().next().unwrap_or_default(),
            })
            .collect())
    }

    /// Gives a window's text to the utterances it came from.
    fn assign(
        &self,
        utterances: &[Utterance],
        window: &Window,
        out: Decoded,
        results: &mut [Vec<Recognized>],
    ) -> Result<(), SttError> {
        // faster-whisper's rule: likely silence and an unsure transcript.
        if out.no_speech_prob > 0.6 && out.score < -1.0 {
            return Ok(());
        }
        let confidence = out.score.exp().clamp(0.0, 1.0);
        let rate = STT_SAMPLE_RATE as f32;
        let content_end = window.content_len() as f32 / rate;
        for part in split_at_timestamps(&out.tokens, content_end) {
            let text = self
                .tokenizer
                .decode(part.tokens)
                .map_err(|e| SttError::Rejected(format!("cannot decode Whisper tokens: {e}")))?;
            let text = text.trim();
            if text.is_empty() {
                continue;
            }
            let Some(k) = pack::owner(window, part.start, part.end, rate) else {
                continue;
            };
            let piece = &window.pieces[k];
            let utterance = &utterances[piece.utterance];
            // Window seconds → ms from the recording start, kept inside the piece.
            let piece_start = piece.at as f32 / rate;
            let piece_len = piece.len as f32 / rate;
            let to_ms = |t: f32| {
                let within = (t - piece_start).clamp(0.0, piece_len);
                utterance.start_ms
                    + (piece.from as i64 * 1000) / i64::from(STT_SAMPLE_RATE)
                    + (within * 1000.0).round() as i64
            };
            let (start_ms, end_ms) = (to_ms(part.start), to_ms(part.end));
            results[piece.utterance].push(Recognized {
                start_ms,
                end_ms: end_ms.max(start_ms),
                text: text.to_string(),
                confidence,
                language: Some(self.language()),
            });
        }
        Ok(())
    }

    fn language(&self) -> String {
        self.prompt
            .get(1)
            .and_then(|t| t.strip_prefix("<|")?.strip_suffix("|>"))
            .unwrap_or("en")
            .to_string()
    }
}

#[async_trait]
impl SpeechToText for WhisperEngine {
    fn id(&self) -> &str {
        &self.id
    }

    async fn transcribe(
        &self,
        utterances: Vec<Utterance>,
    ) -> Result<Vec<Vec<Recognized>>, SttError> {
        let inner = Arc::clone(&self.inner);
        tokio::task::spawn_blocking(move || inner.transcribe(&utterances))
            .await
            .map_err(|e| SttError::Transient {
                message: format!("Whisper task failed: {e}"),
                retry_after_ms: None,
            })?
    }
}
