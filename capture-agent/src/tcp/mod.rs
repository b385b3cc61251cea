//! TCP stream reassembly and framing of the messages carried in a stream.
