//! Unit tests of rendering, admission and the ownership helpers.
