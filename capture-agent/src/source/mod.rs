//! Packet sources: pcap and pcapng files.
