//! The local recap engine: a deterministic extractive summarizer plus
//! rule-based decision and action-item detection. Nothing leaves the
//! machine; the same transcript always gives the same items and ids.
//!
//! * Sentences are scored by the frequency of their content words across
//!   the whole transcript (log-damped, normalised by sentence length),
//!   with a small boost for the opening and closing minutes and for
//!   summary cues ("agreed", "important"), and a penalty for questions.
//!   The best (non-redundant) sentences form the summary, the next ones
//!   the key points.
//! * Decisions: phrases like "we decided", "we agreed", "let's go with",
//!   "the decision is" in a statement.
//! * Action items: first-person commitments ("I'll", "I will", "let me":
//!   owner = the speaker), requests ("can you", "could you", "please":
//!   owner = the participant named, else the other party of a two-party
//!   call, else whoever answers "sure"/"will do" next), "<name> will ...",
//!   and group intentions ("we'll", "we need to", "let's", "action item":
//!   owner = a participant named, if any).
//! * Topics: the most widespread content words and word pairs.

use std::collections::{BTreeMap, BTreeSet};

use async_trait::async_trait;
use insights_core::domain::{Citation, Insight, InsightKind, ParticipantId, TranscriptSegment};

use super::ids::insight_id;
use super::text::{Names, content_words, sentences, words};
use super::{RecapEngine, RecapError, RecapInput};

/// The provider id of this engine's items.
pub const EXTRACTIVE_ID: &str = "local:extractive";

/// Most sentences in the summary.
const SUMMARY_MAX: usize = 3;
/// Most key points.
const KEY_POINTS_MAX: usize = 5;
/// Most topics.
const TOPICS_MAX: usize = 5;
/// Most citations of one topic.
const TOPIC_CITATIONS_MAX: usize = 20;

/// The local extractive recap engine (see the module docs).
#[derive(Clone, Debug, Default)]
pub struct Extractive;

#[async_trait]
impl RecapEngine for Extractive {
    fn id(&self) -> &str {
        EXTRACTIVE_ID
    }

    async fn recap(&self, input: &RecapInput<'_>) -> Result<Vec<Insight>, RecapError> {
        Ok(recap(input))
    }
}

/// One sentence of the transcript.
struct Unit {
    /// Index of its segment in the input.
    seg: usize,
    text: String,
    words: Vec<String>,
    /// Distinct content-word keys.
    content: BTreeSet<String>,
    speaker: Option<ParticipantId>,
    question: bool,
}

/// A word's counting key: simple plural folding, so "offer" and "offers"
/// are one term.
fn key(w: &str) -> String {
    if let Some(stem) = w.strip_suffix("ies")
        && stem.len() >= 3
    {
        return format!("{stem}y");
    }
    if w.len() > 4
        && w.ends_with('s')
        && !w.ends_with("ss")
        && !w.ends_with("us")
        && !w.ends_with("is")
    {
        return w[..w.len() - 1].to_owned();
    }
    w.to_owned()
}

fn units(segments: &[TranscriptSegment]) -> Vec<Unit> {
    let mut out = Vec::new();
    for (seg, s) in segments.iter().enumerate() {
        for text in sentences(&s.text) {
            out.push(Unit {
                seg,
                words: words(&text),
                content: content_words(&text).iter().map(|w| key(w)).collect(),
                speaker: s.participant_id,
                question: text.ends_with('?'),
                text,
            });
        }
    }
    out
}

/// The recap of `input` (pure function; see the module docs).
pub(crate) fn recap(input: &RecapInput<'_>) -> Vec<Insight> {
    let units = units(input.segments);
    if units.is_empty() {
        return Vec::new();
    }
    let names = Names::new(input.participants);
    let name_words: BTreeSet<String> = input
        .participants
        .iter()
        .filter_map(|p| p.display_name.as_deref())
        .flat_map(words)
        .map(|w| key(&w))
        .collect();

    let mut out = Vec::new();
    let mut push = |kind: InsightKind, index: usize, text: String, owner, citations| {
        out.push(Insight {
            id: insight_id(input.recording_id, kind, index),
            recording_id: input.recording_id,
            kind,
            text,
            owner_participant_id: owner,
            provider: EXTRACTIVE_ID.to_owned(),
            created_at: input.at,
            citations,
        });
    };

    let cite = |segs: &BTreeSet<usize>| -> Vec<Citation> {
        segs.iter()
            .filter_map(|&i| input.segments.get(i))
            .map(Citation::of)
            .collect()
    };

    // ---- decisions and action items ----
    let everyone: Vec<ParticipantId> = input.participants.iter().map(|p| p.id).collect();
    let mut decisions: Vec<(String, BTreeSet<usize>)> = Vec::new();
    let mut actions: Vec<(String, Option<ParticipantId>, BTreeSet<usize>)> = Vec::new();
    let mut tasks: BTreeSet<usize> = BTreeSet::new();
    for (ui, u) in units.iter().enumerate() {
        if u.question && !has_request(&u.words) {
            continue;
        }
        if is_decision(&u.words) {
            decisions.push((u.text.clone(), BTreeSet::from([u.seg])));
            tasks.insert(ui);
            continue;
        }
        if u.content.len() < 2 {
            continue;
        }
        let Some(cue) = action_cue(&u.words, &names) else {
            continue;
        };
        let mut segs = BTreeSet::from([u.seg]);
        let named = names.mentioned(&u.words);
        let owner = match cue {
            Cue::SelfCommit => u.speaker,
            Cue::Named(p) => Some(p),
            // The person addressed: named (not the asker), else the other
            // party of a two-party call, else who accepts next.
            Cue::Request => named
                .iter()
                .copied()
                .find(|p| Some(*p) != u.speaker)
                .or_else(|| {
                    if everyone.len() == 2 && u.speaker.is_some() {
                        everyone.iter().copied().find(|p| Some(*p) != u.speaker)
                    } else {
                        accepted_by(&units, ui, input.segments).map(|(p, seg)| {
                            segs.insert(seg);
                            p
                        })
                    }
                }),
            Cue::Group => named.first().copied(),
        };
        actions.push((u.text.clone(), owner, segs));
        tasks.insert(ui);
    }

    // ---- summary and key points ----
    // The summary may retell a decision; key points repeat nothing that
    // is already a decision or an action item.
    let picked = pick_sentences(&units, &name_words);
    let n_summary = (units.len().div_ceil(6))
        .clamp(1, SUMMARY_MAX)
        .min(picked.len());
    let (summary, rest) = picked.split_at(n_summary);
    if !summary.is_empty() {
        let mut chosen: Vec<usize> = summary.to_vec();
        chosen.sort_unstable();
        let text = chosen
            .iter()
            .map(|&u| units[u].text.as_str())
            .collect::<Vec<_>>()
            .join(" ");
        let segs: BTreeSet<usize> = chosen.iter().map(|&u| units[u].seg).collect();
        push(InsightKind::Summary, 0, text, None, cite(&segs));
    }
    let mut kp: Vec<usize> = rest
        .iter()
        .copied()
        .filter(|u| !tasks.contains(u))
        .take(KEY_POINTS_MAX)
        .collect();
    kp.sort_unstable();
    for (i, &u) in kp.iter().enumerate() {
        let segs = BTreeSet::from([units[u].seg]);
        push(
            InsightKind::KeyPoint,
            i,
            units[u].text.clone(),
            None,
            cite(&segs),
        );
    }
    for (i, (text, segs)) in decisions.into_iter().enumerate() {
        push(InsightKind::Decision, i, text, None, cite(&segs));
    }
    for (i, (text, owner, segs)) in actions.into_iter().enumerate() {
        push(InsightKind::ActionItem, i, text, owner, cite(&segs));
    }

    // ---- topics ----
    for (i, (term, segs)) in topics(&units, &name_words).into_iter().enumerate() {
        let segs: BTreeSet<usize> = segs.into_iter().take(TOPIC_CITATIONS_MAX).collect();
        push(InsightKind::Topic, i, term, None, cite(&segs));
    }
    out
}

/// Indices of the sentences worth reporting, best first: scored, at least
/// three content words, not a near-duplicate of a better one.
fn pick_sentences(units: &[Unit], names: &BTreeSet<String>) -> Vec<usize> {
    let mut tf: BTreeMap<&str, usize> = BTreeMap::new();
    for u in units {
        for w in &u.content {
            *tf.entry(w.as_str()).or_default() += 1;
        }
    }
    let n = units.len();
    let edge = (n / 7).max(1);
    let mut scored: Vec<(f64, usize)> = Vec::new();
    for (i, u) in units.iter().enumerate() {
        let content: Vec<&String> = u.content.iter().filter(|w| !names.contains(*w)).collect();
        if content.len() < 3 {
            continue;
        }
        let mut s: f64 = content
            .iter()
            .map(|w| (tf.get(w.as_str()).copied().unwrap_or(1) as f64).ln_1p())
            .sum::<f64>()
            / (content.len() as f64).sqrt();
        if i < edge || i >= n - edge {
            s *= 1.15;
        }
        if u.words.iter().any(|w| SUMMARY_CUES.contains(&w.as_str())) {
            s *= 1.2;
        }
        if u.question {
            s *= 0.6;
        }
        scored.push((s, i));
    }
    // Best first; equal scores in transcript order.
    scored.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
    let mut picked: Vec<usize> = Vec::new();
    for (_, i) in scored {
        let redundant = picked
            .iter()
            .any(|&p| jaccard(&units[p].content, &units[i].content) > 0.5);
        if !redundant {
            picked.push(i);
        }
        if picked.len() == SUMMARY_MAX + 2 * KEY_POINTS_MAX {
            break;
        }
    }
    picked
}

const SUMMARY_CUES: &[&str] = &[
    "agreed",
    "conclusion",
    "decided",
    "important",
    "key",
    "main",
    "overall",
    "priority",
    "summary",
    "summarize",
    "summarise",
];

fn jaccard(a: &BTreeSet<String>, b: &BTreeSet<String>) -> f64 {
    let inter = a.intersection(b).count() as f64;
    let union = a.union(b).count() as f64;
    if union == 0.0 { 0.0 } else { inter / union }
}

/// Whether `seq` occurs in `words`; its position.
fn find(words: &[String], seq: &[&str]) -> Option<usize> {
    words
        .windows(seq.len())
        .position(|w| w.iter().zip(seq).all(|(a, b)| a == b))
}

const DECISION_CUES: &[&[&str]] = &[
    &["we", "decided"],
    &["we've", "decided"],
    &["we", "have", "decided"],
    &["we", "agreed"],
    &["we've", "agreed"],
    &["we", "have", "agreed"],
    &["we", "all", "agree"],
    &["everyone", "agreed"],
    &["agreed", "to"],
    &["agreed", "that"],
    &["the", "decision", "is"],
    &["final", "decision"],
    &["let's", "go", "with"],
    &["we'll", "go", "with"],
    &["we", "will", "go", "with"],
    &["we're", "going", "with"],
    &["we", "are", "going", "with"],
    &["it's", "decided"],
    &["that's", "settled"],
];

fn is_decision(words: &[String]) -> bool {
    DECISION_CUES.iter().any(|c| find(words, c).is_some())
}

/// How an action item names its owner.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Cue {
    /// "I'll ...": the speaker.
    SelfCommit,
    /// "Can you ...": the person addressed.
    Request,
    /// "<name> will ...": that participant.
    Named(ParticipantId),
    /// "We'll ...", "action item": a participant named, if any.
    Group,
}

const SELF_CUES: &[&[&str]] = &[
    &["i'll"],
    &["i", "will"],
    &["i'm", "going", "to"],
    &["i", "am", "going", "to"],
    &["i", "can", "take"],
    &["let", "me"],
];
/// Words after "I'll"/"I will" that make it a figure of speech.
const SELF_NOT: &[&str] = &["admit", "be", "bet", "guess", "say", "tell", "try"];
const REQUEST_CUES: &[&[&str]] = &[
    &["can", "you"],
    &["could", "you"],
    &["would", "you"],
    &["will", "you"],
    &["please"],
];
/// Words after "can you" that make it meeting chatter, not a task.
const REQUEST_NOT: &[&str] = &["believe", "hear", "imagine", "repeat", "see"];
const GROUP_CUES: &[&[&str]] = &[
    &["action", "item"],
    &["follow", "up"],
    &["we'll"],
    &["we", "will"],
    &["we", "need", "to"],
    &["we", "should"],
    &["we", "must"],
    &["let's"],
];
/// Words after "we'll" that are not an intention.
const GROUP_NOT: &[&str] = &["be", "see"];
const NAMED_VERBS: &[&str] = &["will", "can", "should"];

fn cue_at(words: &[String], cues: &[&[&str]], not: &[&str]) -> Option<usize> {
    cues.iter()
        .filter_map(|c| {
            let pos = find(words, c)?;
            let next = words.get(pos + c.len()).map(String::as_str);
            (!next.is_some_and(|n| not.contains(&n))).then_some(pos)
        })
        .min()
}

fn has_request(words: &[String]) -> bool {
    cue_at(words, REQUEST_CUES, REQUEST_NOT).is_some()
}

/// The earliest action cue of a sentence, if any.
fn action_cue(words: &[String], names: &Names) -> Option<Cue> {
    let mut found: Vec<(usize, Cue)> = Vec::new();
    if let Some(p) = cue_at(words, SELF_CUES, SELF_NOT) {
        found.push((p, Cue::SelfCommit));
    }
    if let Some(p) = cue_at(words, REQUEST_CUES, REQUEST_NOT) {
        found.push((p, Cue::Request));
    }
    if let Some(p) = cue_at(words, GROUP_CUES, GROUP_NOT) {
        found.push((p, Cue::Group));
    }
    // "<name> will send ...": a name directly followed by a modal verb.
    for (i, w) in words.iter().enumerate() {
        if NAMED_VERBS.contains(&w.as_str())
            && i > 0
            && let Some(id) = (1..=i.min(3))
                .rev()
                .find_map(|len| names.resolve(&words[i - len..i].join(" ")))
        {
            found.push((i - 1, Cue::Named(id)));
            break;
        }
    }
    found.sort_by_key(|(p, c)| (*p, matches!(c, Cue::Group)));
    found.first().map(|(_, c)| *c)
}

/// Words that open an acceptance of a request.
const ACCEPT: &[&str] = &[
    "absolutely",
    "i'll",
    "ok",
    "okay",
    "sure",
    "will",
    "yes",
    "yep",
];

/// Who accepted the request in unit `ui`: the speaker of one of the next
/// two segments, if another participant, who opens with an acceptance.
fn accepted_by(
    units: &[Unit],
    ui: usize,
    segments: &[TranscriptSegment],
) -> Option<(ParticipantId, usize)> {
    let asker = units[ui].speaker;
    let from = units[ui].seg + 1;
    for (seg, s) in segments.iter().enumerate().skip(from).take(2) {
        let Some(speaker) = s.participant_id else {
            continue;
        };
        if Some(speaker) == asker {
            continue;
        }
        let first = words(&s.text).into_iter().next();
        if first.is_some_and(|w| ACCEPT.contains(&w.as_str())) {
            return Some((speaker, seg));
        }
        // Someone else answered something else: not an acceptance.
        return None;
    }
    None
}

/// Surface forms with their counts, segments mentioning it, mentions.
type Term = (BTreeMap<String, usize>, BTreeSet<usize>, usize);

/// The most widespread terms (word pairs first), with the segments that
/// mention them in transcript order.
fn topics(units: &[Unit], names: &BTreeSet<String>) -> Vec<(String, Vec<usize>)> {
    // term key -> (surface form counts, segments, mentions)
    let mut terms: BTreeMap<String, Term> = BTreeMap::new();
    for u in units {
        let content: Vec<(String, String)> = u.words.iter().map(|w| (w.clone(), key(w))).collect();
        let is_content = |w: &str, k: &str| {
            w.chars().count() >= 3 && !super::text::is_stopword(w) && !names.contains(k)
        };
        for (i, (w, k)) in content.iter().enumerate() {
            if !is_content(w, k) {
                continue;
            }
            let e = terms.entry(k.clone()).or_default();
            *e.0.entry(w.clone()).or_default() += 1;
            e.1.insert(u.seg);
            e.2 += 1;
            if let Some((w2, k2)) = content.get(i + 1)
                && is_content(w2, k2)
            {
                let e = terms.entry(format!("{k} {k2}")).or_default();
                *e.0.entry(format!("{w} {w2}")).or_default() += 1;
                e.1.insert(u.seg);
                e.2 += 1;
            }
        }
    }
    // Score: segments mentioning it, pairs count double; at least two
    // mentions in two segments.
    let mut ranked: Vec<(usize, &String)> = terms
        .iter()
        .filter(|(_, (_, segs, n))| *n >= 2 && segs.len() >= 2)
        .map(|(k, (_, segs, _))| {
            let pair = k.contains(' ');
            (segs.len() * if pair { 2 } else { 1 }, k)
        })
        .collect();
    ranked.sort_by(|a, b| b.0.cmp(&a.0).then_with(|| a.1.cmp(b.1)));
    let mut chosen: Vec<&String> = Vec::new();
    for (_, k) in ranked {
        // A word already part of a chosen pair (or a pair of a chosen word)
        // adds nothing.
        let overlaps = chosen.iter().any(|c| {
            let cw: Vec<&str> = c.split(' ').collect();
            k.split(' ').any(|w| cw.contains(&w))
        });
        if !overlaps {
            chosen.push(k);
        }
        if chosen.len() == TOPICS_MAX {
            break;
        }
    }
    chosen
        .into_iter()
        .filter_map(|k| {
            let (forms, segs, _) = terms.get(k)?;
            // The most frequent surface form; ties alphabetical.
            let form = forms
                .iter()
                .max_by(|a, b| a.1.cmp(b.1).then_with(|| b.0.cmp(a.0)))
                .map(|(f, _)| f.clone())?;
            Some((form, segs.iter().copied().collect()))
        })
        .collect()
}
