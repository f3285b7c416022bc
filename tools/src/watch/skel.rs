//! The skeleton libbpf-cargo generated from watch.bpf.c in `build.rs`:
//! `WatchSkelBuilder`, the maps and programs by name, and `types`, the
//! object's BTF types in Rust (`types::watch_event` is watch.h's record).
//!
//! # Safety
//! Generated code: it opens, loads and attaches the object through
//! libbpf-sys and hands out typed views of the object's maps; it is
//! libbpf-rs's own, unchanged.
#![allow(unsafe_code, clippy::all, clippy::pedantic)]

include!(concat!(env!("OUT_DIR"), "/watch.skel.rs"));
