//! Correlation: one call across hops and legs, and what failovers did to calls.
//!
//! - [`hostmap`]: logical host names for addresses (configured, learned from sightings).
//! - [`legs`]: linking the Call-IDs of one call across B2BUAs, each link explained.
//! - [`failover`]: VIP moves, backends going down and up, re-routed INVITEs, and their
//!   impact on the calls in progress.
//!
//! All of it runs on ClickHouse queries at request time: the collectors keep no call
//! state, so messages of one call stored by different collectors correlate the same.

pub mod failover;
pub mod hostmap;
pub mod legs;

/// `ip:port`, bracketing IPv6 addresses.
pub fn addr(ip: &str, port: u16) -> String {
    if ip.contains(':') {
        format!("[{ip}]:{port}")
    } else {
        format!("{ip}:{port}")
    }
}
