//! Packet decoding from the link layer down to transport payloads.
