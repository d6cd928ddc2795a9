//! Session Manager data channel, sans-IO: the binary frame codec ([`codec`]), the JSON
//! payloads ([`messages`]), the sequenced and acknowledged stream both ends run
//! ([`channel`]), and the client session on top of it ([`client`]: OpenDataChannel,
//! handshake, input hold-back, output events, resume). No sockets and no clocks here.
//!
//! A driver owns the websocket, stdio and time. Pick an epoch `Instant` and pass the
//! Unix time in ms at that instant as `unix_epoch_ms`; `now` is then `epoch.elapsed()`.
//! Per connection: write `open_data_channel(token)` as a text frame first; then loop:
//! feed every received frame to `handle_frame`, write everything `poll_transmit`
//! returns as binary frames, act on `poll_event`, read stdin only while `can_send`, and
//! call `handle_timeout` when the `poll_timeout` deadline passes.

pub mod api;
pub mod channel;
pub mod client;
pub mod codec;
pub mod driver;
pub mod messages;
pub mod smux;
pub mod stdin;

#[cfg(test)]
mod testnet;

pub use channel::{Channel, ChannelConfig, ChannelError, Role, SendError};
pub use client::{ClientSession, Event, SessionType, CLIENT_VERSION, MUX_CLIENT_VERSION};
pub use codec::{CodecError, Message, MessageType, PayloadType};
pub use messages::Flag;
