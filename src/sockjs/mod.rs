//! STUB while the sockjs family is ported onto the new loop.
#![allow(missing_docs, dead_code, unused_variables)]

pub mod conn;
pub mod protocol;

use mio::Token;

use crate::http::Head;
use crate::net::Ctx;
use crate::timer::Handle;
use conn::SockJsConn;

/// Gauges for `/metrics`.
#[derive(Debug, Clone, Copy, Default)]
pub struct SjGauges {
    pub sessions: usize,
    pub channels: usize,
}

#[derive(Debug, Default)]
pub struct SockJs {}

impl SockJs {
    pub fn gauges(&self) -> SjGauges {
        SjGauges::default()
    }
    pub fn ready(&mut self, ctx: &mut Ctx, t: Token) {}
    pub fn timer(&mut self, ctx: &mut Ctx, t: Token) {}
    pub fn session_timer(&mut self, ctx: &mut Ctx, k: usize, h: Handle) {}
    pub fn shutdown(&mut self, ctx: &mut Ctx, t: Token) {}
    pub fn closed(&mut self, ctx: &mut Ctx, t: Token, c: SockJsConn) {}
    pub fn request(&mut self, ctx: &mut Ctx, t: Token, head: Head, early: Vec<u8>) {
        ctx.respond_error(t, head.minor, 501, "SockJS is being rebuilt.", false);
    }
    pub fn send_body(&mut self, ctx: &mut Ctx, t: Token, head: Head, body: Vec<u8>) {}
}
