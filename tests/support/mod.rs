//! Shared test support. Each integration test that needs it says `mod support;`.
//!
//! `sim` is a deterministic, single-threaded simulator of many SWIM cores over a
//! seeded virtual network (see its module docs).

#![allow(dead_code)]

pub mod sim;
