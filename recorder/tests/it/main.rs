//! The integration tests of `recorder` in one binary (test target
//! `recorder_it`): each former test file is a module, so the dependency
//! tree is linked once instead of once per file. Test names carry the
//! module (`<file>::<test>`); filter with nextest, e.g.
//! `cargo nextest run -p recorder -E 'test(/^<file>::/)'`.

mod common;

mod import;
mod ogg_validity;
mod roundtrip;
