//! Settings of the offline speech-to-text engine (`[stt]`).

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::ConfigError;

/// How the Whisper engine fills its 30 s input windows.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SttBatching {
    /// Several utterances packed into one window, separated by silence;
    /// the model's timestamps give each its text back (fewer windows).
    Pack,
    /// One window per utterance, windows batched per model call.
    Window,
}

/// `[stt]`: the offline engine (Whisper in CTranslate2 format). Nothing is
/// downloaded at run time: `scripts/fetch-model.sh` installs the model.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SttSettings {
    /// Model name: part of the engine id stored with every transcript
    /// (`local:<model>`) and of the default folder. Default
    /// `whisper-tiny.en` (`scripts/fetch-model.sh --model base` installs
    /// `whisper-base`).
    pub model: String,
    /// Model folder (model.bin, config.json, tokenizer.json,
    /// vocabulary.txt). Default:
    /// `${XDG_CACHE_HOME:-$HOME/.cache}/insights/models/<model>`, where
    /// `scripts/fetch-model.sh` puts it.
    pub model_dir: Option<PathBuf>,
    /// Inference threads (0 = one per CPU core). Default 0.
    pub threads: usize,
    /// Beam size (1 = greedy, faster). Default 5, as faster-whisper.
    pub beam_size: usize,
    /// Spoken language for multilingual models (ISO 639-1). English-only
    /// models (`*.en`) ignore it. Default `en`.
    pub language: String,
    /// How short utterances share Whisper's 30 s windows. Default `pack`.
    pub batching: SttBatching,
}

impl Default for SttSettings {
    fn default() -> Self {
        Self {
            model: "whisper-tiny.en".into(),
            model_dir: None,
            threads: 0,
            beam_size: 5,
            language: "en".into(),
            batching: SttBatching::Pack,
        }
    }
}

impl SttSettings {
    /// The model folder: `model_dir`, or the cache folder of `model`.
    pub fn resolved_model_dir(&self) -> PathBuf {
        if let Some(dir) = &self.model_dir {
            return dir.clone();
        }
        let cache = std::env::var_os("XDG_CACHE_HOME")
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
            .or_else(|| {
                std::env::var_os("HOME")
                    .filter(|v| !v.is_empty())
                    .map(|h| PathBuf::from(h).join(".cache"))
            })
            .unwrap_or_else(|| PathBuf::from(".cache"));
        cache.join("insights").join("models").join(&self.model)
    }

    pub(super) fn validate(&self) -> Result<(), ConfigError> {
        let safe_name = !self.model.is_empty()
            && self
                .model
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_'));
        if !safe_name {
            return Err(ConfigError::Invalid {
                key: "stt.model",
                problem: "must be a non-empty name of letters, digits, '.', '-' or '_'".into(),
            });
        }
        if !(1..=16).contains(&self.beam_size) {
            return Err(ConfigError::Invalid {
                key: "stt.beam_size",
                problem: "must be between 1 and 16".into(),
            });
        }
        if self.threads > 256 {
            return Err(ConfigError::Invalid {
                key: "stt.threads",
                problem: "must be at most 256 (0 = one per core)".into(),
            });
        }
        if self.language.len() < 2 || !self.language.chars().all(|c| c.is_ascii_lowercase()) {
            return Err(ConfigError::Invalid {
                key: "stt.language",
                problem: "must be an ISO 639-1 code such as `en`".into(),
            });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_folder_is_the_model_cache() {
        let s = SttSettings::default();
        assert!(s.validate().is_ok());
        let dir = s.resolved_model_dir();
        assert!(
            dir.ends_with("insights/models/whisper-tiny.en"),
            "{}",
            dir.display()
        );
        let set = SttSettings {
            model_dir: Some(PathBuf::from("/opt/models/x")),
            ..SttSettings::default()
        };
        assert_eq!(set.resolved_model_dir(), PathBuf::from("/opt/models/x"));
    }

    #[test]
    fn bad_values_name_their_key() {
        for (s, key) in [
            (
                SttSettings {
                    model: "../x".into(),
                    ..SttSettings::default()
                },
                "stt.model",
            ),
            (
                SttSettings {
                    beam_size: 0,
                    ..SttSettings::default()
                },
                "stt.beam_size",
            ),
            (
                SttSettings {
                    language: "EN".into(),
                    ..SttSettings::default()
                },
                "stt.language",
            ),
        ] {
            match s.validate() {
                Err(ConfigError::Invalid { key: k, .. }) => assert_eq!(k, key),
                other => panic!("{key}: {other:?}"),
            }
        }
    }
}
