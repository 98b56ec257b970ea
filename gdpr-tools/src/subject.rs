//! (being built: issue 7)
