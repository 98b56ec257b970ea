//! The integration tests of `ai-pipeline` in one binary (test target
//! `ai_pipeline_it`): each former test file is a module, so the dependency
//! tree is linked once instead of once per file. Test names carry the
//! module (`<file>::<test>`); filter with nextest, e.g.
//! `cargo nextest run -p ai-pipeline -E 'test(/^<file>::/)'`.

#[cfg(feature = "whisper")]
mod speech;
mod support;

mod accuracy;
mod pipeline;
mod providers_recap;
mod providers_select;
mod providers_stt;
mod recap_local;
mod recap_step;
