//! Shared by the corpus tests: where the shared capture corpus is, which files it holds,
//! and what tshark found in each (`analysis_oneline.tsv`).

#![allow(dead_code)] // each test binary uses a different subset

use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// The corpus sits next to the repository (`X/main` and `X/shared`), and a worktree
/// (`/work/wt-pkt`) is one more such sibling, so the same relative path works for both.
pub fn corpus_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/corpus")
}

/// What tshark reported for one capture.
#[derive(Debug, Clone, Default)]
pub struct Expected {
    /// Frames in the file.
    pub frames: u64,
    /// SIP messages tshark decoded (after its own reassembly).
    pub sip: u64,
    /// Layer counts (`udp:21`, `tcp:4`...).
    pub layers: HashMap<String, u64>,
}

/// Parses `analysis_oneline.tsv`, keyed by path relative to the corpus root.
pub fn expectations() -> HashMap<String, Expected> {
    let text = std::fs::read_to_string(corpus_dir().join("analysis_oneline.tsv"))
        .expect("analysis_oneline.tsv");
    let mut out = HashMap::new();
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let mut cols = line.split('\t');
        let name = cols.next().unwrap().to_string();
        let mut e = Expected::default();
        for col in cols {
            if let Some(v) = col.strip_prefix("frames=") {
                e.frames = v.parse().unwrap();
            } else if let Some(v) = col.strip_prefix("sip=") {
                e.sip = v.parse().unwrap();
            } else if !col.contains('=') {
                for layer in col.split_whitespace() {
                    let (k, v) = layer.split_once(':').unwrap();
                    e.layers.insert(k.to_string(), v.parse().unwrap());
                }
            }
        }
        out.insert(name, e);
    }
    out
}

/// Every capture under `pcap/` and `gen/` (sorted, relative to the corpus root).
pub fn capture_files() -> Vec<String> {
    let root = corpus_dir();
    let mut out = Vec::new();
    for top in ["pcap", "gen"] {
        walk(&root.join(top), &mut |p| {
            let name = p.file_name().unwrap().to_string_lossy().to_string();
            if name.contains(".pcap") || name.ends_with(".cap") {
                out.push(
                    p.strip_prefix(&root)
                        .unwrap()
                        .to_string_lossy()
                        .replace('\\', "/"),
                );
            }
        });
    }
    out.sort();
    out
}

fn walk(dir: &Path, f: &mut dyn FnMut(&Path)) {
    for entry in std::fs::read_dir(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
        let path = entry.unwrap().path();
        if path.is_dir() {
            walk(&path, f);
        } else {
            f(&path);
        }
    }
}

/// The one capture in a format we deliberately do not read (Microsoft NetMon).
pub const NETMON_FILE: &str = "pcap/sipnab/c07-sip-r2.cap";
