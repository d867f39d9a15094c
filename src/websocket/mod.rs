//! STUB while the websocket family is ported onto the new loop.
#![allow(missing_docs, dead_code, unused_variables)]

pub mod codec;
pub mod conn;
pub mod hixie;

use mio::Token;

use crate::http::Head;
use crate::net::Ctx;
use conn::WsConn;

/// Gauges for `/metrics`.
#[derive(Debug, Clone, Copy, Default)]
pub struct WsGauges {
    pub waiting: usize,
    pub bridged: usize,
}

#[derive(Debug, Default)]
pub struct WebSockets {}

impl WebSockets {
    pub fn gauges(&self) -> WsGauges {
        WsGauges::default()
    }
    pub fn ready(&mut self, ctx: &mut Ctx, t: Token) {}
    pub fn timer(&mut self, ctx: &mut Ctx, t: Token) {}
    pub fn shutdown(&mut self, ctx: &mut Ctx, t: Token) {}
    pub fn closed(&mut self, ctx: &mut Ctx, t: Token, ws: Box<WsConn>) {}
    pub fn pipe_request(&mut self, ctx: &mut Ctx, t: Token, head: Head, early: Vec<u8>) {
        ctx.respond_error(t, head.minor, 501, "WebSocket is being rebuilt.", false);
    }
}
