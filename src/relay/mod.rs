//! The relay family: named pipes and ephemeral sockets.
pub mod core;
pub mod pump;
