//! Response tracking: the signed tokens carried by every link herald puts in
//! a message. The tracking server that verifies them will live beside this.

pub mod inbound;
pub mod links;
pub mod rsvp;
pub mod server;
pub mod sms;
pub mod token;
pub mod writer;
