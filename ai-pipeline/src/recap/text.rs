//! Plain-text helpers of the local recap engine: sentences, words,
//! stopwords and participant names. ASCII case folding only; words keep
//! letters, digits and inner apostrophes.

use std::collections::BTreeMap;

use insights_core::domain::{Participant, ParticipantId};

/// Splits a segment's text into sentences at `.`, `!` or `?` followed by
/// white space (a decimal point or `e.g.` inside a word stays). Empty
/// pieces are dropped; each sentence is trimmed.
pub(crate) fn sentences(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut current = String::new();
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        current.push(c);
        let end = matches!(c, '.' | '!' | '?') && chars.peek().is_none_or(|n| n.is_whitespace());
        if end {
            push_trimmed(&mut out, &current);
            current.clear();
        }
    }
    push_trimmed(&mut out, &current);
    out
}

fn push_trimmed(out: &mut Vec<String>, s: &str) {
    let t = s.trim();
    if t.chars().any(char::is_alphanumeric) {
        out.push(t.to_owned());
    }
}

/// Lower-case words of `text`.
pub(crate) fn words(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut w = String::new();
    let chars: Vec<char> = text.chars().collect();
    for (i, &c) in chars.iter().enumerate() {
        let inner_apostrophe = (c == '\'' || c == '\u{2019}')
            && !w.is_empty()
            && chars.get(i + 1).is_some_and(|n| n.is_alphanumeric());
        if c.is_alphanumeric() {
            w.extend(c.to_lowercase());
        } else if inner_apostrophe {
            w.push('\'');
        } else if !w.is_empty() {
            out.push(std::mem::take(&mut w));
        }
    }
    if !w.is_empty() {
        out.push(w);
    }
    out
}

/// Function words, fillers and conversational noise: never content.
const STOPWORDS: &[&str] = &[
    "a",
    "about",
    "above",
    "actually",
    "after",
    "again",
    "against",
    "ah",
    "all",
    "also",
    "am",
    "an",
    "and",
    "any",
    "anyway",
    "are",
    "aren't",
    "as",
    "at",
    "be",
    "because",
    "been",
    "before",
    "being",
    "below",
    "between",
    "both",
    "but",
    "by",
    "can",
    "can't",
    "could",
    "couldn't",
    "did",
    "didn't",
    "do",
    "does",
    "doesn't",
    "doing",
    "don't",
    "down",
    "during",
    "each",
    "else",
    "even",
    "ever",
    "every",
    "few",
    "for",
    "from",
    "further",
    "get",
    "gets",
    "getting",
    "go",
    "goes",
    "going",
    "gonna",
    "good",
    "got",
    "great",
    "had",
    "hadn't",
    "has",
    "hasn't",
    "have",
    "haven't",
    "having",
    "he",
    "he'd",
    "he'll",
    "he's",
    "hello",
    "her",
    "here",
    "here's",
    "hers",
    "herself",
    "hey",
    "hi",
    "him",
    "himself",
    "his",
    "how",
    "how's",
    "i",
    "i'd",
    "i'll",
    "i'm",
    "i've",
    "if",
    "in",
    "into",
    "is",
    "isn't",
    "it",
    "it's",
    "its",
    "itself",
    "just",
    "kind",
    "know",
    "let",
    "let's",
    "like",
    "lot",
    "make",
    "many",
    "maybe",
    "me",
    "mean",
    "might",
    "mm",
    "more",
    "most",
    "much",
    "must",
    "my",
    "myself",
    "need",
    "no",
    "nor",
    "not",
    "now",
    "of",
    "off",
    "oh",
    "ok",
    "okay",
    "on",
    "once",
    "one",
    "only",
    "or",
    "other",
    "ought",
    "our",
    "ours",
    "ourselves",
    "out",
    "over",
    "own",
    "please",
    "pretty",
    "quite",
    "really",
    "right",
    "said",
    "same",
    "say",
    "see",
    "she",
    "she'd",
    "she'll",
    "she's",
    "should",
    "shouldn't",
    "so",
    "some",
    "something",
    "sort",
    "still",
    "such",
    "sure",
    "take",
    "than",
    "thank",
    "thanks",
    "that",
    "that's",
    "the",
    "their",
    "theirs",
    "them",
    "themselves",
    "then",
    "there",
    "there's",
    "these",
    "they",
    "they'd",
    "they'll",
    "they're",
    "they've",
    "thing",
    "things",
    "think",
    "this",
    "those",
    "through",
    "to",
    "too",
    "uh",
    "um",
    "under",
    "until",
    "up",
    "us",
    "very",
    "want",
    "was",
    "wasn't",
    "way",
    "we",
    "we'd",
    "we'll",
    "we're",
    "we've",
    "well",
    "were",
    "weren't",
    "what",
    "what's",
    "when",
    "when's",
    "where",
    "where's",
    "which",
    "while",
    "who",
    "who's",
    "whom",
    "why",
    "why's",
    "will",
    "with",
    "won't",
    "would",
    "wouldn't",
    "yeah",
    "yep",
    "yes",
    "you",
    "you'd",
    "you'll",
    "you're",
    "you've",
    "your",
    "yours",
    "yourself",
    "yourselves",
];

pub(crate) fn is_stopword(w: &str) -> bool {
    STOPWORDS.binary_search(&w).is_ok() || w.chars().all(|c| c.is_ascii_digit())
}

/// Content words of `text`: no stopwords, at least 3 characters.
pub(crate) fn content_words(text: &str) -> Vec<String> {
    words(text)
        .into_iter()
        .filter(|w| w.chars().count() >= 3 && !is_stopword(w))
        .collect()
}

/// Participant names as word sequences: the full display name and, when
/// no one else shares it, the first name alone.
pub(crate) struct Names {
    /// (name words, participant), longest names first.
    entries: Vec<(Vec<String>, ParticipantId)>,
}

impl Names {
    pub(crate) fn new(participants: &[Participant]) -> Self {
        let mut first_names: BTreeMap<String, Vec<ParticipantId>> = BTreeMap::new();
        let mut entries = Vec::new();
        for p in participants {
            let Some(name) = p.display_name.as_deref() else {
                continue;
            };
            let w = words(name);
            if w.is_empty() {
                continue;
            }
            if let Some(first) = w.first() {
                first_names.entry(first.clone()).or_default().push(p.id);
            }
            entries.push((w, p.id));
        }
        for (first, ids) in first_names {
            if let [id] = ids.as_slice()
                && !entries.iter().any(|(w, _)| w.len() == 1 && w[0] == first)
            {
                entries.push((vec![first], *id));
            }
        }
        entries.sort_by(|a, b| b.0.len().cmp(&a.0.len()).then_with(|| a.0.cmp(&b.0)));
        Self { entries }
    }

    /// Participants named in `words`, in order of first mention, each once
    /// (a full name and its first name count once).
    pub(crate) fn mentioned(&self, words: &[String]) -> Vec<ParticipantId> {
        let mut hits: Vec<(usize, ParticipantId)> = Vec::new();
        for (name, id) in &self.entries {
            if let Some(pos) = words.windows(name.len()).position(|w| w == name.as_slice())
                && !hits.iter().any(|(_, h)| h == id)
            {
                hits.push((pos, *id));
            }
        }
        hits.sort();
        hits.into_iter().map(|(_, id)| id).collect()
    }

    /// The participant whose display name is `name` (full name, or a first
    /// name nobody else shares).
    pub(crate) fn resolve(&self, name: &str) -> Option<ParticipantId> {
        let w = words(name);
        self.entries
            .iter()
            .find(|(n, _)| *n == w)
            .map(|(_, id)| *id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stopwords_are_sorted_for_binary_search() {
        let mut sorted = STOPWORDS.to_vec();
        sorted.sort_unstable();
        sorted.dedup();
        assert_eq!(sorted, STOPWORDS);
    }

    #[test]
    fn sentences_split_at_terminal_punctuation_only() {
        assert_eq!(
            sentences("We spent 2.5 hours. Can you send it? Yes!  "),
            vec!["We spent 2.5 hours.", "Can you send it?", "Yes!"]
        );
        assert_eq!(
            sentences("no punctuation at all"),
            vec!["no punctuation at all"]
        );
        assert!(sentences(" ... ").is_empty());
    }

    #[test]
    fn words_keep_inner_apostrophes() {
        assert_eq!(
            words("I'll send Bob's deck, OK?"),
            ["i'll", "send", "bob's", "deck", "ok"]
        );
        assert_eq!(words("'quoted'"), ["quoted"]);
    }
}
