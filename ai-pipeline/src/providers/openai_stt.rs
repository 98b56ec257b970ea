//! Speech-to-text through an OpenAI-compatible
//! `POST {base_url}/audio/transcriptions`: one multipart request per
//! utterance (`file` as WAV, `model`, `response_format=verbose_json`,
//! `temperature=0`), segment times from the verbose answer.

use std::sync::Arc;

use async_trait::async_trait;
use bytes::{BufMut, Bytes, BytesMut};
use insights_core::config::Secret;
use reqwest::Method;
use serde::Deserialize;

use super::chat::join_url;
use super::http::{CallContext, CallError, Http, Request};
use super::wav::wav_bytes;
use crate::stt::{Recognized, SpeechToText, SttError, Utterance};

impl From<CallError> for SttError {
    fn from(e: CallError) -> Self {
        match e {
            CallError::Unauthorized { .. } | CallError::Invalid(_) => {
                SttError::Unavailable(e.to_string())
            }
            CallError::Rejected { .. } | CallError::Failed(_) | CallError::Refused(_) => {
                SttError::Rejected(e.to_string())
            }
            CallError::Transient {
                message,
                retry_after_ms,
            } => SttError::Transient {
                message,
                retry_after_ms,
            },
        }
    }
}

/// The OpenAI-compatible transcription client, bound to one job.
pub struct OpenAiTranscription {
    pub(crate) http: Arc<Http>,
    pub(crate) ctx: CallContext,
    pub(crate) base_url: String,
    pub(crate) key: Option<Secret>,
    pub(crate) model: String,
    pub(crate) id: String,
}

impl OpenAiTranscription {
    pub const PROVIDER: &'static str = "openai-compatible";

    pub fn new(
        http: Arc<Http>,
        ctx: CallContext,
        base_url: &str,
        key: Option<Secret>,
        model: &str,
    ) -> Self {
        Self {
            http,
            ctx,
            base_url: base_url.to_owned(),
            key,
            model: model.to_owned(),
            id: format!("{}:{model}", Self::PROVIDER),
        }
    }
}

/// A `multipart/form-data` body built in memory, so its exact size is
/// known for the processing record.
pub(crate) struct Multipart {
    boundary: String,
    body: BytesMut,
}

impl Multipart {
    pub(crate) fn new() -> Self {
        Self {
            boundary: format!("insights-{}", uuid::Uuid::new_v4().simple()),
            body: BytesMut::new(),
        }
    }

    pub(crate) fn text(mut self, name: &str, value: &str) -> Self {
        self.body.put_slice(
            format!(
                "--{}\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n{value}\r\n",
                self.boundary
            )
            .as_bytes(),
        );
        self
    }

    pub(crate) fn file(
        mut self,
        name: &str,
        filename: &str,
        content_type: &str,
        data: &[u8],
    ) -> Self {
        self.body.put_slice(
            format!(
                "--{}\r\nContent-Disposition: form-data; name=\"{name}\"; filename=\"{filename}\"\r\n\
                 Content-Type: {content_type}\r\n\r\n",
                self.boundary
            )
            .as_bytes(),
        );
        self.body.put_slice(data);
        self.body.put_slice(b"\r\n");
        self
    }

    /// (content type, body).
    pub(crate) fn finish(mut self) -> (String, Bytes) {
        self.body
            .put_slice(format!("--{}--\r\n", self.boundary).as_bytes());
        (
            format!("multipart/form-data; boundary={}", self.boundary),
            self.body.freeze(),
        )
    }
}

#[derive(Deserialize)]
struct Verbose {
    #[serde(default)]
    text: String,
    #[serde(default)]
    language: Option<String>,
    #[serde(default)]
    segments: Option<Vec<VerboseSegment>>,
}

#[derive(Deserialize)]
struct VerboseSegment {
    start: f64,
    end: f64,
    text: String,
    #[serde(default)]
    avg_logprob: Option<f64>,
}

/// A BCP-47 tag for the language names OpenAI answers (`english`); codes
/// other servers answer (`en`) are kept.
fn language_tag(lang: &str) -> Option<String> {
    const NAMES: &[(&str, &str)] = &[
        ("arabic", "ar"),
        ("chinese", "zh"),
        ("czech", "cs"),
        ("danish", "da"),
        ("dutch", "nl"),
        ("english", "en"),
        ("finnish", "fi"),
        ("french", "fr"),
        ("german", "de"),
        ("greek", "el"),
        ("hindi", "hi"),
        ("hungarian", "hu"),
        ("italian", "it"),
        ("japanese", "ja"),
        ("korean", "ko"),
        ("norwegian", "no"),
        ("polish", "pl"),
        ("portuguese", "pt"),
        ("romanian", "ro"),
        ("russian", "ru"),
        ("spanish", "es"),
        ("swedish", "sv"),
        ("turkish", "tr"),
        ("ukrainian", "uk"),
    ];
    let l = lang.trim().to_ascii_lowercase();
    if let Some((_, code)) = NAMES.iter().find(|(n, _)| *n == l) {
        return Some((*code).to_owned());
    }
    let is_tag = (2..=3).contains(&l.len()) && l.chars().all(|c| c.is_ascii_lowercase());
    is_tag.then_some(l)
}

fn ms(utterance_start: i64, secs: f64) -> i64 {
    utterance_start + (secs.max(0.0) * 1000.0).round() as i64
}

#[async_trait]
impl SpeechToText for OpenAiTranscription {
    fn id(&self) -> &str {
        &self.id
    }

    async fn transcribe(
        &self,
        utterances: Vec<Utterance>,
    ) -> Result<Vec<Vec<Recognized>>, SttError> {
        let url = join_url(&self.base_url, &["audio", "transcriptions"])?;
        let mut out = Vec::with_capacity(utterances.len());
        for u in &utterances {
            let wav = wav_bytes(&u.samples)
                .map_err(|_| SttError::Rejected("utterance cannot be encoded as WAV".into()))?;
            let (content_type, body) = Multipart::new()
                .file("file", "utterance.wav", "audio/wav", &wav)
                .text("model", &self.model)
                .text("response_format", "verbose_json")
                .text("temperature", "0")
                .finish();
            let mut req = Request::new(Method::POST, url.as_str()).body(content_type, body);
            if let Some(k) = &self.key {
                req = req.header("authorization", format!("Bearer {}", k.expose()));
            }
            let reply = self
                .http
                .send(&self.ctx, Self::PROVIDER, "audio-transcriptions", &req)
                .await?;
            let v: Verbose = reply.json()?;
            let language = v.language.as_deref().and_then(language_tag);
            let end_of_utterance = u.start_ms + u.duration_ms();
            let recognized: Vec<Recognized> = match v.segments {
                Some(segs) => segs
                    .into_iter()
                    .filter(|s| !s.text.trim().is_empty())
                    .map(|s| Recognized {
                        start_ms: ms(u.start_ms, s.start),
                        end_ms: ms(u.start_ms, s.end).max(ms(u.start_ms, s.start)),
                        text: s.text.trim().to_owned(),
                        // No log-probability: the provider vouches for it.
                        confidence: s.avg_logprob.map_or(1.0, |p| p.exp().clamp(0.0, 1.0)) as f32,
                        language: language.clone(),
                    })
                    .collect(),
                None if v.text.trim().is_empty() => Vec::new(),
                None => vec![Recognized {
                    start_ms: u.start_ms,
                    end_ms: end_of_utterance,
                    text: v.text.trim().to_owned(),
                    confidence: 1.0,
                    language,
                }],
            };
            out.push(recognized);
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn language_names_become_tags() {
        assert_eq!(language_tag("english").as_deref(), Some("en"));
        assert_eq!(language_tag("German").as_deref(), Some("de"));
        assert_eq!(language_tag("en").as_deref(), Some("en"));
        assert_eq!(language_tag("klingon"), None);
    }
}
