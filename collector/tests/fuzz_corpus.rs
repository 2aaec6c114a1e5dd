//! The fuzz targets' harness (`collector/fuzz/harness.rs`) on stable, in the ordinary test run:
//! every committed seed (and every crash a fuzzing session saved as a seed), then a few thousand
//! deterministic mutations of them. Coverage-guided fuzzing is `scripts/fuzz.sh`; this keeps the
//! harness compiling and its findings fixed.

#[path = "../fuzz/harness.rs"]
mod harness;

use std::path::PathBuf;

fn seeds(target: &str) -> Vec<(PathBuf, Vec<u8>)> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz/seeds")
        .join(target);
    let mut out: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .map(|p| {
            let data = std::fs::read(&p).unwrap();
            (p, data)
        })
        .collect();
    out.sort();
    assert!(!out.is_empty(), "no seeds in {}", dir.display());
    out
}

/// xorshift64*: a fixed sequence, so a failure reproduces.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

const INTERESTING: &[&[u8]] = &[
    b"{",
    b"}",
    b"[",
    b"]",
    b"\"",
    b"\\",
    b"\\u",
    b"\\ud800",
    b"\\udc00",
    b",",
    b":",
    b"1e400",
    b"-0",
    b"null",
    b"\xff",
    b"\xc0\xaf",
    b"\x00",
    b"\"type\":",
    b"\"batch\":",
    b"\"context\":{",
    b"\x1f\x8b",
];

fn mutate(rng: &mut Rng, data: &[u8]) -> Vec<u8> {
    let mut out = data.to_vec();
    for _ in 0..=rng.below(4) {
        let at = rng.below(out.len() + 1);
        match rng.below(6) {
            0 if !out.is_empty() => {
                let i = rng.below(out.len());
                out[i] = rng.next() as u8;
            }
            1 => {
                let piece = INTERESTING[rng.below(INTERESTING.len())];
                out.splice(at..at, piece.iter().copied());
            }
            2 if at < out.len() => {
                let end = (at + rng.below(16)).min(out.len());
                out.drain(at..end);
            }
            3 => out.truncate(at),
            4 if !out.is_empty() => {
                // Repeat a slice: deep nesting and long runs.
                let start = rng.below(out.len());
                let end = (start + 1 + rng.below(8)).min(out.len());
                let piece = out[start..end].repeat(1 + rng.below(100));
                out.splice(at..at, piece);
            }
            _ => {
                if let Some(first) = out.first_mut() {
                    *first = rng.next() as u8; // another header variant or route
                }
            }
        }
    }
    out
}

fn run(target: &str, f: fn(&[u8]), mutations: usize) {
    let seeds = seeds(target);
    for (path, data) in &seeds {
        // A panic here names the seed; cargo's harness reports it.
        eprintln!("{target}: {}", path.display());
        f(data);
    }
    let mut rng = Rng(0x5EED_0000_0000_0001);
    for i in 0..mutations {
        let (_, base) = &seeds[i % seeds.len()];
        let input = mutate(&mut rng, base);
        let result = std::panic::catch_unwind(|| f(&input));
        assert!(
            result.is_ok(),
            "{target}: mutation {i} panicked; input (escaped): {}",
            input.escape_ascii()
        );
    }
}

#[test]
fn decode_request_seeds_and_mutations() {
    run("decode_request", harness::decode_request, 3000);
}

#[test]
fn validate_enrich_seeds_and_mutations() {
    run("validate_enrich", harness::validate_enrich, 3000);
}
