//! Recaps written by a chat model. The model sees the transcript as
//! numbered segments and must answer one JSON object in which every item
//! cites segment numbers; the answer is checked before anything is kept:
//! malformed JSON is an error, items without citations or citing a number
//! that is not in the transcript are dropped (a citation that points
//! nowhere would send a reviewer to the wrong evidence).

use std::collections::BTreeSet;
use std::fmt::Write as _;

use async_trait::async_trait;
use insights_core::domain::{Citation, Insight, InsightKind};
use serde::Deserialize;

use super::ids::insight_id;
use super::text::Names;
use super::{RecapEngine, RecapError, RecapInput};

/// Most items of one kind kept from an answer.
const MAX_PER_KIND: usize = 25;

/// A chat-completion endpoint bound to one job (its calls are recorded
/// against the job's tenant and recording).
#[async_trait]
pub trait ChatModel: Send + Sync {
    /// Provider and model, stored as the items' `provider`, e.g.
    /// `azure-openai:gpt-4o-mini`.
    fn id(&self) -> &str;

    /// The model's text answer to a system and a user message.
    async fn complete(&self, system: &str, user: &str) -> Result<String, RecapError>;
}

/// A [`RecapEngine`] over a [`ChatModel`].
pub struct LlmRecap<M> {
    model: M,
}

impl<M: ChatModel> LlmRecap<M> {
    pub fn new(model: M) -> Self {
        Self { model }
    }
}

#[async_trait]
impl<M: ChatModel> RecapEngine for LlmRecap<M> {
    fn id(&self) -> &str {
        self.model.id()
    }

    async fn recap(&self, input: &RecapInput<'_>) -> Result<Vec<Insight>, RecapError> {
        if input.segments.is_empty() {
            return Ok(Vec::new());
        }
        let (system, user) = build_prompt(input);
        let answer = self.model.complete(&system, &user).await?;
        let items = parse_answer(&answer, input, self.model.id())?;
        tracing::info!(
            recording = %input.recording_id,
            provider = self.model.id(),
            items = items.len(),
            "recap answer accepted"
        );
        Ok(items)
    }
}

const SYSTEM: &str = "You write recaps of recorded business calls and meetings for compliance \
reviewers. Use only what the transcript says; never invent facts, names or numbers. \
Every item must cite the numbers of the transcript segments it is based on. \
Answer with one JSON object and nothing else, exactly of this shape:\n\
{\"summary\":[{\"text\":\"...\",\"segments\":[1,2]}],\
\"key_points\":[{\"text\":\"...\",\"segments\":[3]}],\
\"decisions\":[{\"text\":\"...\",\"segments\":[4]}],\
\"action_items\":[{\"text\":\"...\",\"owner\":\"participant name or null\",\"segments\":[5]}],\
\"topics\":[{\"text\":\"...\",\"segments\":[1,6]}]}\n\
summary: one to three sentences. key_points: at most 5. topics: short noun phrases, at most 5. \
decisions: what was decided or agreed. action_items: tasks someone committed to or was asked \
to do; owner is the participant's name exactly as listed, or null when nobody was named. \
Use empty lists where there is nothing. Write in the transcript's language.";

fn clock(ms: i64) -> String {
    let s = ms.max(0) / 1000;
    format!("{:02}:{:02}:{:02}", s / 3600, (s / 60) % 60, s % 60)
}

/// The system and user messages for `input`: participants by name, then
/// the segments numbered from 1 with time and speaker.
pub fn build_prompt(input: &RecapInput<'_>) -> (String, String) {
    let mut user = String::from("Participants:\n");
    for p in input.participants {
        let name = p.display_name.as_deref().unwrap_or("(unnamed)");
        let _ = writeln!(user, "- {name} ({})", p.role);
    }
    user.push_str("\nTranscript segments:\n");
    for (i, s) in input.segments.iter().enumerate() {
        let speaker = s
            .participant_id
            .and_then(|id| input.participants.iter().find(|p| p.id == id))
            .and_then(|p| p.display_name.as_deref())
            .unwrap_or("unknown speaker");
        let text = s.text.replace('\n', " ");
        let _ = writeln!(user, "[{}] {} {speaker}: {text}", i + 1, clock(s.start_ms));
    }
    (SYSTEM.to_owned(), user)
}

/// One item of the model's answer.
#[derive(Clone, Debug, Deserialize)]
pub struct AnswerItem {
    pub text: String,
    #[serde(default)]
    pub owner: Option<String>,
    #[serde(default)]
    pub segments: Vec<i64>,
}

/// The JSON object the model must answer.
#[derive(Clone, Debug, Deserialize)]
pub struct RecapAnswer {
    #[serde(default)]
    pub summary: Vec<AnswerItem>,
    #[serde(default)]
    pub key_points: Vec<AnswerItem>,
    #[serde(default)]
    pub decisions: Vec<AnswerItem>,
    #[serde(default)]
    pub action_items: Vec<AnswerItem>,
    #[serde(default)]
    pub topics: Vec<AnswerItem>,
}

/// The JSON object in a model's answer: the whole text, or what a Markdown
/// code fence or a sentence around it encloses (first `{` to last `}`).
fn json_part(answer: &str) -> Option<&str> {
    let start = answer.find('{')?;
    let end = answer.rfind('}')?;
    (end > start).then(|| &answer[start..=end])
}

/// Checks a model's answer and maps it to insights of `provider`.
/// Malformed JSON is [`RecapError::InvalidAnswer`]; items with empty text,
/// without citations or citing a segment number outside 1..=n are dropped.
pub fn parse_answer(
    answer: &str,
    input: &RecapInput<'_>,
    provider: &str,
) -> Result<Vec<Insight>, RecapError> {
    let json = json_part(answer)
        .ok_or_else(|| RecapError::InvalidAnswer("no JSON object in the answer".into()))?;
    // The serde message names a line and column, never the content.
    let parsed: RecapAnswer = serde_json::from_str(json).map_err(|e| {
        RecapError::InvalidAnswer(format!(
            "not the expected JSON (line {}, column {})",
            e.line(),
            e.column()
        ))
    })?;
    let names = Names::new(input.participants);
    let n = input.segments.len() as i64;
    let mut out = Vec::new();
    let mut dropped = 0usize;
    let kinds = [
        (InsightKind::Summary, parsed.summary),
        (InsightKind::KeyPoint, parsed.key_points),
        (InsightKind::Decision, parsed.decisions),
        (InsightKind::ActionItem, parsed.action_items),
        (InsightKind::Topic, parsed.topics),
    ];
    for (kind, items) in kinds {
        let mut index = 0;
        for item in items {
            let text = item.text.trim();
            let valid = !text.is_empty()
                && !item.segments.is_empty()
                && item.segments.iter().all(|&s| (1..=n).contains(&s));
            if !valid || index == MAX_PER_KIND {
                dropped += 1;
                continue;
            }
            let segs: BTreeSet<usize> = item
                .segments
                .iter()
                .filter_map(|&s| usize::try_from(s - 1).ok())
                .collect();
            let citations = segs
                .iter()
                .filter_map(|&i| input.segments.get(i))
                .map(Citation::of)
                .collect();
            let owner = match kind {
                InsightKind::ActionItem => item
                    .owner
                    .as_deref()
                    .filter(|o| !o.trim().is_empty() && *o != "null")
                    .and_then(|o| names.resolve(o)),
                _ => None,
            };
            out.push(Insight {
                id: insight_id(input.recording_id, kind, index),
                recording_id: input.recording_id,
                kind,
                text: text.to_owned(),
                owner_participant_id: owner,
                provider: provider.to_owned(),
                created_at: input.at,
                citations,
            });
            index += 1;
        }
    }
    if dropped > 0 {
        tracing::warn!(
            recording = %input.recording_id,
            provider,
            dropped,
            "recap items without valid citations dropped"
        );
    }
    Ok(out)
}
