//! Speech-to-text through Azure Speech batch transcription (REST v3.2).
//!
//! Batch transcription reads audio only from URLs (`contentUrls`), so
//! each utterance is uploaded as a WAV blob to a dedicated staging
//! container (Put Blob with the container's SAS), the transcription is
//! created with one content URL per utterance, polled until it has
//! succeeded or failed, its result files are fetched and their
//! `recognizedPhrases` mapped back to the utterance they came from (by
//! `source`, the content URL). Then, whatever happened, the transcription
//! and the staged blobs are deleted: neither Azure nor the staging
//! container keeps the call's audio or text longer than the job.
//!
//! Why a staging container and not the tenant's container: the tenant's
//! container only ever holds envelope ciphertext (an invariant of the
//! platform), and Azure Speech cannot decrypt it. The staging container
//! should carry a lifecycle rule deleting blobs after a day, as a backstop
//! for a worker killed between upload and clean-up.
//!
//! The subscription key is only sent to the configured endpoint: the
//! `self` and `files` links Azure returns must share its origin. Results
//! are written to the staging container too (`destinationContainerUrl`),
//! and a result file is fetched, without the key, only from a configured
//! origin (the staging container's, or the endpoint's): a link elsewhere
//! (another host, an internal address) is refused, never requested.
//! Result files found in the staging container are deleted with the
//! staged audio.

use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use insights_core::config::Secret;
use reqwest::Method;
use serde::Deserialize;
use serde_json::json;

use super::chat::join_url;
use super::http::{CallContext, CallError, Http, Request};
use super::wav::wav_bytes;
use crate::stt::{Recognized, SpeechToText, SttError, Utterance};

/// Azure Speech batch transcription, bound to one job.
pub struct AzureSpeechBatch {
    pub(crate) http: Arc<Http>,
    pub(crate) ctx: CallContext,
    pub(crate) endpoint: String,
    pub(crate) api_version: String,
    pub(crate) locale: String,
    pub(crate) key: Secret,
    /// `https://{account}.blob.core.windows.net/{container}?{sas}`.
    pub(crate) staging_sas_url: Secret,
    pub(crate) poll_interval: Duration,
    pub(crate) max_wait: Duration,
}

impl AzureSpeechBatch {
    pub const PROVIDER: &'static str = "azure-speech";

    #[allow(clippy::too_many_arguments)]
    pub fn new(
        http: Arc<Http>,
        ctx: CallContext,
        endpoint: &str,
        api_version: &str,
        locale: &str,
        key: Secret,
        staging_sas_url: Secret,
        poll_interval: Duration,
        max_wait: Duration,
    ) -> Self {
        Self {
            http,
            ctx,
            endpoint: endpoint.to_owned(),
            api_version: api_version.to_owned(),
            locale: locale.to_owned(),
            key,
            staging_sas_url,
            poll_interval,
            max_wait,
        }
    }

    /// The URL of blob `name` in the staging container, SAS included.
    fn blob_url(&self, name: &str) -> Result<url::Url, CallError> {
        let base = url::Url::parse(self.staging_sas_url.expose())
            .map_err(|_| CallError::Invalid("the staging SAS URL does not parse".into()))?;
        let mut url = base.clone();
        {
            let mut path = url
                .path_segments_mut()
                .map_err(|_| CallError::Invalid("the staging SAS URL cannot take a path".into()))?;
            path.pop_if_empty();
            path.push(name);
        }
        Ok(url)
    }

    /// `url` as a blob of the staging container (the staging SAS added
    /// when Azure returns it bare), or `None` if it lies elsewhere.
    fn in_staging(&self, url: &str) -> Result<Option<url::Url>, CallError> {
        let staging = url::Url::parse(self.staging_sas_url.expose())
            .map_err(|_| CallError::Invalid("the staging SAS URL does not parse".into()))?;
        let target = url::Url::parse(url)
            .map_err(|_| CallError::Invalid("a result link does not parse".into()))?;
        let container = format!("{}/", staging.path().trim_end_matches('/'));
        if target.origin() != staging.origin() || !target.path().starts_with(&container) {
            return Ok(None);
        }
        let mut out = target;
        if out.query().is_none() {
            out.set_query(staging.query());
        }
        Ok(Some(out))
    }

    /// A result link outside the staging container: fetched only from the
    /// configured endpoint's origin.
    fn result_url(&self, url: &str) -> Result<url::Url, CallError> {
        let endpoint = url::Url::parse(&self.endpoint)
            .map_err(|_| CallError::Invalid("the endpoint does not parse".into()))?;
        let target = url::Url::parse(url)
            .map_err(|_| CallError::Invalid("a result link does not parse".into()))?;
        if target.origin() != endpoint.origin() {
            tracing::warn!(
                provider = Self::PROVIDER,
                "a result link points away from the configured origins: not fetched"
            );
            return Err(CallError::Refused(
                "a result link points away from the configured origins".into(),
            ));
        }
        Ok(target)
    }

    fn keyed(&self, method: Method, url: &str) -> Result<Request, CallError> {
        let endpoint = url::Url::parse(&self.endpoint)
            .map_err(|_| CallError::Invalid("the endpoint does not parse".into()))?;
        let target = url::Url::parse(url)
            .map_err(|_| CallError::Invalid("a link in the answer does not parse".into()))?;
        if target.origin() != endpoint.origin() {
            return Err(CallError::Invalid(
                "a link in the answer points away from the configured endpoint".into(),
            ));
        }
        Ok(Request::new(method, url).header("ocp-apim-subscription-key", self.key.expose()))
    }

    async fn send(&self, operation: &str, req: &Request) -> Result<super::http::Reply, CallError> {
        self.http
            .send(&self.ctx, Self::PROVIDER, operation, req)
            .await
    }

    /// Creates, awaits and reads one transcription of the staged blobs.
    async fn run(
        &self,
        utterances: &[Utterance],
        blobs: &[url::Url],
        created: &mut Option<String>,
        results_staged: &mut Vec<url::Url>,
    ) -> Result<Vec<Vec<Recognized>>, CallError> {
        let url = join_url(
            &self.endpoint,
            &["speechtotext", &self.api_version, "transcriptions"],
        )?;
        let body = json!({
            "contentUrls": blobs.iter().map(url::Url::as_str).collect::<Vec<_>>(),
            "locale": self.locale,
            "displayName": format!("insights {}", uuid::Uuid::new_v4()),
            "properties": {
                "wordLevelTimestampsEnabled": false,
                "punctuationMode": "DictatedAndAutomatic",
                "profanityFilterMode": "None",
                "timeToLive": "PT12H",
                // Results land in our staging container, deleted after
                // the job, instead of storage of Azure's choosing.
                "destinationContainerUrl": self.staging_sas_url.expose(),
            },
        });
        let req = self.keyed(Method::POST, url.as_str())?.json(&body);
        let t: Transcription = self.send("create-transcription", &req).await?.json()?;
        let self_url = t
            .self_url
            .ok_or_else(|| CallError::Invalid("the transcription has no self link".into()))?;
        *created = Some(self_url.clone());

        // Poll until done.
        let deadline = Instant::now() + self.max_wait;
        let mut status = t.status;
        let mut files = t.links.and_then(|l| l.files);
        loop {
            match status.as_str() {
                "Succeeded" => break,
                "Failed" => {
                    tracing::warn!(provider = Self::PROVIDER, "batch transcription failed");
                    return Err(CallError::Failed(
                        "azure-speech: the batch transcription failed".into(),
                    ));
                }
                _ => {}
            }
            if Instant::now() + self.poll_interval > deadline {
                return Err(CallError::Transient {
                    message: "azure-speech: the transcription did not finish in time".into(),
                    retry_after_ms: None,
                });
            }
            tokio::time::sleep(self.poll_interval).await;
            let req = self.keyed(Method::GET, &self_url)?;
            let t: Transcription = self.send("get-transcription", &req).await?.json()?;
            status = t.status;
            files = t.links.and_then(|l| l.files).or(files);
        }

        // The result files, page by page.
        let mut next = Some(
            files
                .ok_or_else(|| CallError::Invalid("the transcription has no files link".into()))?,
        );
        let mut results = Vec::new();
        while let Some(page) = next.take() {
            let req = self.keyed(Method::GET, &page)?;
            let list: FileList = self.send("list-files", &req).await?.json()?;
            for f in list.values {
                let staged = self.in_staging(&f.links.content_url)?;
                if let Some(u) = &staged {
                    results_staged.push(u.clone());
                }
                if f.kind == "Transcription" {
                    results.push(match staged {
                        Some(u) => u,
                        None => self.result_url(&f.links.content_url)?,
                    });
                }
            }
            next = list.next_link;
        }

        let mut out: Vec<Vec<Recognized>> = vec![Vec::new(); utterances.len()];
        for content_url in results {
            // A SAS URL of a configured origin: no key.
            let req = Request::new(Method::GET, content_url.as_str());
            let r: ResultFile = self.send("get-result", &req).await?.json()?;
            let Some(i) = blobs.iter().position(|b| same_blob(b, &r.source)) else {
                return Err(CallError::Invalid(
                    "a result file names audio that was not submitted".into(),
                ));
            };
            let start = utterances[i].start_ms;
            for p in r.recognized_phrases {
                if p.recognition_status != "Success" {
                    continue;
                }
                let Some(best) = p.n_best.into_iter().next() else {
                    continue;
                };
                if best.display.trim().is_empty() {
                    continue;
                }
                // Ticks are 100 ns.
                let from = start + p.offset_in_ticks / 10_000;
                out[i].push(Recognized {
                    start_ms: from,
                    end_ms: from + p.duration_in_ticks / 10_000,
                    text: best.display.trim().to_owned(),
                    confidence: best.confidence.clamp(0.0, 1.0) as f32,
                    language: p.locale.or_else(|| Some(self.locale.clone())),
                });
            }
            out[i].sort_by_key(|r| r.start_ms);
        }
        Ok(out)
    }
}

/// Whether `source` (as Azure reports it, SAS possibly stripped) names
/// the blob `blob`.
fn same_blob(blob: &url::Url, source: &str) -> bool {
    url::Url::parse(source).is_ok_and(|s| s.origin() == blob.origin() && s.path() == blob.path())
}

#[derive(Deserialize)]
struct Transcription {
    #[serde(rename = "self")]
    self_url: Option<String>,
    status: String,
    #[serde(default)]
    links: Option<TranscriptionLinks>,
}

#[derive(Deserialize)]
struct TranscriptionLinks {
    files: Option<String>,
}

#[derive(Deserialize)]
struct FileList {
    #[serde(default)]
    values: Vec<FileEntry>,
    #[serde(rename = "@nextLink", default)]
    next_link: Option<String>,
}

#[derive(Deserialize)]
struct FileEntry {
    kind: String,
    links: FileLinks,
}

#[derive(Deserialize)]
struct FileLinks {
    #[serde(rename = "contentUrl")]
    content_url: String,
}

#[derive(Deserialize)]
struct ResultFile {
    source: String,
    #[serde(rename = "recognizedPhrases", default)]
    recognized_phrases: Vec<Phrase>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Phrase {
    recognition_status: String,
    offset_in_ticks: i64,
    duration_in_ticks: i64,
    #[serde(default)]
    locale: Option<String>,
    #[serde(rename = "nBest", default)]
    n_best: Vec<Best>,
}

#[derive(Deserialize)]
struct Best {
    #[serde(default)]
    confidence: f64,
    display: String,
}

#[async_trait]
impl SpeechToText for AzureSpeechBatch {
    fn id(&self) -> &str {
        Self::PROVIDER
    }

    async fn transcribe(
        &self,
        utterances: Vec<Utterance>,
    ) -> Result<Vec<Vec<Recognized>>, SttError> {
        if utterances.is_empty() {
            return Ok(Vec::new());
        }
        let job = uuid::Uuid::new_v4().simple().to_string();
        let mut staged: Vec<url::Url> = Vec::new();
        let mut created: Option<String> = None;
        let mut results_staged: Vec<url::Url> = Vec::new();
        let mut result: Result<Vec<Vec<Recognized>>, CallError> = Ok(Vec::new());
        for (i, u) in utterances.iter().enumerate() {
            let step = async {
                let wav = wav_bytes(&u.samples)
                    .map_err(|_| CallError::Invalid("utterance cannot be encoded".into()))?;
                let url = self.blob_url(&format!("{job}-{i}.wav"))?;
                let req = Request::new(Method::PUT, url.as_str())
                    .header("x-ms-blob-type", "BlockBlob")
                    .header("x-ms-version", "2023-11-03")
                    .body("audio/wav", wav);
                self.send("stage-audio", &req).await?;
                Ok::<_, CallError>(url)
            };
            match step.await {
                Ok(url) => staged.push(url),
                Err(e) => {
                    result = Err(e);
                    break;
                }
            }
        }
        if result.is_ok() {
            result = self
                .run(&utterances, &staged, &mut created, &mut results_staged)
                .await;
        }
        // Clean up, whatever happened; a failed delete is logged (the
        // staging container's lifecycle rule is the backstop).
        if let Some(url) = created
            && let Ok(req) = self.keyed(Method::DELETE, &url)
            && self.send("delete-transcription", &req).await.is_err()
        {
            tracing::warn!(
                provider = Self::PROVIDER,
                "cannot delete a batch transcription"
            );
        }
        for url in &staged {
            let req =
                Request::new(Method::DELETE, url.as_str()).header("x-ms-version", "2023-11-03");
            if self.send("delete-audio", &req).await.is_err() {
                tracing::warn!(
                    provider = Self::PROVIDER,
                    "cannot delete a staged utterance"
                );
            }
        }
        for url in &results_staged {
            let req =
                Request::new(Method::DELETE, url.as_str()).header("x-ms-version", "2023-11-03");
            if self.send("delete-result", &req).await.is_err() {
                tracing::warn!(
                    provider = Self::PROVIDER,
                    "cannot delete a staged result file"
                );
            }
        }
        Ok(result?)
    }
}
