//! Fitting utterances into Whisper's 30 s windows and giving each window's
//! output back to the utterances it came from. Pure logic, no model.

/// Samples per window (30 s at 16 kHz).
pub const WINDOW_SAMPLES: usize = 480_000;

/// A stretch of one utterance placed in a window.
#[derive(Clone, Debug, PartialEq)]
pub struct Piece {
    /// Index of the utterance in the request.
    pub utterance: usize,
    /// First sample of the stretch within the utterance.
    pub from: usize,
    /// Samples in the stretch.
    pub len: usize,
    /// Where the stretch starts in the window, samples.
    pub at: usize,
}

/// One model input: pieces laid out with silence between them.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Window {
    pub pieces: Vec<Piece>,
}

impl Window {
    /// Samples up to the end of the last piece.
    pub fn content_len(&self) -> usize {
        self.pieces.last().map(|p| p.at + p.len).unwrap_or(0)
    }
}

/// Cuts utterances longer than a window into window-sized stretches, then
/// lays the stretches out: one per window when `pack` is false, otherwise
/// as many consecutive ones per window as fit with `gap` samples of
/// silence between them.
pub fn plan(lengths: &[usize], pack: bool, gap: usize) -> Vec<Window> {
    let mut windows: Vec<Window> = Vec::new();
    let mut current = Window::default();
    for (utterance, &total) in lengths.iter().enumerate() {
        let mut from = 0;
        while from < total {
            let len = (total - from).min(WINDOW_SAMPLES);
            let at = if current.pieces.is_empty() {
                0
            } else {
                current.content_len() + gap
            };
            if !current.pieces.is_empty() && (!pack || at + len > WINDOW_SAMPLES) {
                windows.push(std::mem::take(&mut current));
                current.pieces.push(Piece {
                    utterance,
                    from,
                    len,
                    at: 0,
                });
            } else {
                current.pieces.push(Piece {
                    utterance,
                    from,
                    len,
                    at,
                });
            }
            from += len;
        }
    }
    if !current.pieces.is_empty() {
        windows.push(current);
    }
    windows
}

/// A piece of decoded text with its times in the window, seconds.
#[derive(Clone, Debug, PartialEq)]
pub struct TimedText {
    pub start: f32,
    pub end: f32,
    /// Token strings (byte-level BPE), for the tokenizer's decoder.
    pub tokens: Vec<String>,
}

/// Parses a Whisper timestamp token such as `<|1.24|>`.
fn timestamp(token: &str) -> Option<f32> {
    token
        .strip_prefix("<|")?
        .strip_suffix("|>")?
        .parse::<f32>()
        .ok()
}

fn is_special(token: &str) -> bool {
    token.starts_with("<|") && token.ends_with("|>")
}

/// Splits a generated token sequence at its timestamp tokens. Text before
/// the first timestamp starts at 0; text after the last one ends at
/// `content_end` (seconds). Other special tokens are dropped.
pub fn split_at_timestamps(tokens: &[String], content_end: f32) -> Vec<TimedText> {
    let mut out = Vec::new();
    let mut last = 0.0f32;
    let mut pending: Vec<String> = Vec::new();
    for token in tokens {
        if let Some(t) = timestamp(token) {
            if !pending.is_empty() {
                out.push(TimedText {
                    start: last,
                    end: t.max(last),
                    tokens: std::mem::take(&mut pending),
                });
            }
            last = t;
        } else if !is_special(token) {
            pending.push(token.clone());
        }
    }
    if !pending.is_empty() {
        out.push(TimedText {
            start: last,
            end: content_end.max(last),
            tokens: pending,
        });
    }
    out
}

/// The piece a stretch of window time `[start, end]` (seconds) belongs to:
/// the one it overlaps most, else the nearest. `None` for an empty window.
pub fn owner(window: &Window, start: f32, end: f32, rate: f32) -> Option<usize> {
    let span = |p: &Piece| (p.at as f32 / rate, (p.at + p.len) as f32 / rate);
    let overlap = |p: &Piece| {
        let (a, b) = span(p);
        (end.min(b) - start.max(a)).max(0.0)
    };
    let distance = |p: &Piece| {
        let (a, b) = span(p);
        let mid = (start + end) / 2.0;
        if mid < a {
            a - mid
        } else if mid > b {
            mid - b
        } else {
            0.0
        }
    };
    let best = window
        .pieces
        .iter()
        .enumerate()
        .max_by(|(_, x), (_, y)| overlap(x).total_cmp(&overlap(y)))?;
    if overlap(best.1) > 0.0 {
        return Some(best.0);
    }
    window
        .pieces
        .iter()
        .enumerate()
        .min_by(|(_, x), (_, y)| distance(x).total_cmp(&distance(y)))
        .map(|(i, _)| i)
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: usize = 16_000;

    #[test]
    fn packing_fills_windows_in_order_with_gaps() {
        let windows = plan(&[10 * S, 10 * S, 9 * S, 5 * S], true, S);
        assert_eq!(windows.len(), 2);
        let first: Vec<_> = windows[0]
            .pieces
            .iter()
            .map(|p| (p.utterance, p.at))
            .collect();
        assert_eq!(first, vec![(0, 0), (1, 11 * S)]);
        // 10 + 1 + 10 + 1 + 9 = 31 s > 30 s: the third starts a new window.
        let second: Vec<_> = windows[1]
            .pieces
            .iter()
            .map(|p| (p.utterance, p.at))
            .collect();
        assert_eq!(second, vec![(2, 0), (3, 10 * S)]);
        for w in &windows {
            assert!(w.content_len() <= WINDOW_SAMPLES);
        }
    }

    #[test]
    fn one_window_per_utterance_without_packing() {
        let windows = plan(&[S, 2 * S, 3 * S], false, S);
        assert_eq!(windows.len(), 3);
        assert!(
            windows
                .iter()
                .all(|w| w.pieces.len() == 1 && w.pieces[0].at == 0)
        );
    }

    #[test]
    fn long_utterances_are_cut_into_window_sized_stretches() {
        let windows = plan(&[70 * S], true, S);
        let pieces: Vec<_> = windows.iter().flat_map(|w| w.pieces.clone()).collect();
        assert_eq!(
            pieces.iter().map(|p| (p.from, p.len)).collect::<Vec<_>>(),
            vec![(0, 30 * S), (30 * S, 30 * S), (60 * S, 10 * S)]
        );
        assert!(plan(&[], true, S).is_empty());
        assert!(plan(&[0], true, S).is_empty());
    }

    fn toks(s: &[&str]) -> Vec<String> {
        s.iter().map(|t| t.to_string()).collect()
    }

    #[test]
    fn output_is_split_at_timestamp_tokens() {
        let out = split_at_timestamps(
            &toks(&[
                "<|0.00|>",
                "ĠHello",
                "Ġthere",
                ".",
                "<|1.50|>",
                "<|3.00|>",
                "ĠBye",
                "<|4.20|>",
                "<|endoftext|>",
            ]),
            10.0,
        );
        assert_eq!(
            out,
            vec![
                TimedText {
                    start: 0.0,
                    end: 1.5,
                    tokens: toks(&["ĠHello", "Ġthere", "."])
                },
                TimedText {
                    start: 3.0,
                    end: 4.2,
                    tokens: toks(&["ĠBye"])
                },
            ]
        );
        // No closing timestamp: the text runs to the end of the content.
        let open = split_at_timestamps(&toks(&["<|2.00|>", "ĠYes"]), 7.5);
        assert_eq!((open[0].start, open[0].end), (2.0, 7.5));
        // No timestamps at all (a window decoded without them).
        let plain = split_at_timestamps(&toks(&["ĠYes", "<|endoftext|>"]), 3.0);
        assert_eq!((plain[0].start, plain[0].end), (0.0, 3.0));
    }

    #[test]
    fn text_goes_to_the_piece_it_overlaps_most_or_the_nearest() {
        let window = &plan(&[2 * S, 3 * S, 2 * S], true, S)[0];
        // Pieces at 0-2 s, 3-6 s, 7-9 s.
        let rate = S as f32;
        assert_eq!(owner(window, 0.1, 1.9, rate), Some(0));
        assert_eq!(owner(window, 1.5, 5.0, rate), Some(1));
        assert_eq!(owner(window, 6.2, 6.4, rate), Some(1)); // in a gap, nearer the 2nd
        assert_eq!(owner(window, 6.7, 6.9, rate), Some(2));
        assert_eq!(owner(&Window::default(), 0.0, 1.0, rate), None);
    }
}
