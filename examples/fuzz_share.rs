//! Several fuzzing processes sharing what they learn: an edge-coverage map (an
//! `AtomicArray<AtomicU8>` that every process ORs its hits into) and the inputs that found new
//! coverage, passed to every other process through a `ByteQueue` inbox of its own.
//!
//! The target is built in: it "crashes" on inputs that start with `FUZZ!`, and each matching
//! byte is an edge of its own, so a process that receives another's interesting input can
//! start its mutations from there. The segments go away with their last user
//! (`Options::remove_with_last_user`), so a killed run leaves nothing behind for long: `shmproc
//! gc` removes what the dead left.
//!
//! Run: `cargo run --example fuzz_share` (4 processes, a few seconds at most).
//!
//! From a `cargo fuzz` target run with several jobs (`cargo fuzz run t -- -jobs=4`), each job
//! is such a process: open the map and the inboxes with `open_or_create` under names derived
//! from a run id in the environment, OR the target's edge hits into the map in the target
//! function, and pick up peers' inputs between runs (libFuzzer's `-merge` is offline; this
//! shares as it goes).

use shmproc::{AtomicArray, ByteQueue, Options};
use std::process::Command;
use std::sync::atomic::{AtomicU8, Ordering};

const WORKERS: usize = 4;
const MAGIC: &[u8] = b"FUZZ!";
/// Edges: one per matched prefix length, and one per first byte seen (coverage noise).
const EDGES: usize = 64 + 256;
const MAX_EXECS: u64 = 2_000_000;

/// The target: the edges an input covers; `true` when it "crashes".
fn target(input: &[u8], edges: &mut Vec<usize>) -> bool {
    edges.clear();
    if let Some(&b) = input.first() {
        edges.push(64 + b as usize);
    }
    let matched = input.iter().zip(MAGIC).take_while(|(a, b)| a == b).count();
    edges.extend(1..=matched);
    matched == MAGIC.len()
}

/// xorshift64*: a small deterministic generator per process.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
}

fn names(run: &str) -> (String, Vec<String>) {
    (
        format!("fz-map-{run}"),
        (0..WORKERS).map(|i| format!("fz-in-{run}-{i}")).collect(),
    )
}

fn opts() -> Options {
    Options::new().remove_with_last_user(true).max_message_size(64)
}

fn worker(run: &str, me: usize) -> Result<(), Box<dyn std::error::Error>> {
    let (map_name, inbox_names) = names(run);
    let map = AtomicArray::<AtomicU8>::open_or_create_with(&map_name, EDGES, &opts())?;
    let inboxes = inbox_names
        .iter()
        .map(|n| ByteQueue::open_or_create_with(n, 256, &opts()))
        .collect::<Result<Vec<_>, _>>()?;
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15 ^ (me as u64 + 1));
    let mut corpus: Vec<Vec<u8>> = vec![b"A".to_vec()];
    let mut edges = Vec::new();
    let (mut found_here, mut received) = (0, 0);
    for execs in 0..MAX_EXECS {
        // Peers' interesting inputs join our corpus.
        while let Ok(input) = inboxes[me].try_get() {
            corpus.push(input);
            received += 1;
        }
        // Mutate a corpus entry: change, insert or append one byte.
        let mut input = corpus[(rng.next() as usize) % corpus.len()].clone();
        let (r, byte) = (rng.next(), (rng.next() % 256) as u8);
        let at = (r as usize >> 2) % (input.len() + 1);
        match r % 3 {
            0 if at < input.len() => input[at] = byte,
            1 => input.insert(at, byte),
            _ => input.push(byte),
        }
        input.truncate(16);
        let crashed = target(&input, &mut edges);
        // New coverage: some edge byte of the shared map goes from 0 to 1 because of us.
        let new = edges
            .iter()
            .filter(|&&e| map[e].fetch_or(1, Ordering::Relaxed) == 0)
            .count()
            > 0;
        if new {
            found_here += 1;
            corpus.push(input.clone());
            for (i, inbox) in inboxes.iter().enumerate() {
                if i != me {
                    let _ = inbox.try_put(&input); // a full inbox drops it: fuzzing is lossy
                }
            }
        }
        if crashed {
            println!(
                "worker {me}: crash input {:?} after {execs} execs ({found_here} finds here, {received} from peers)",
                String::from_utf8_lossy(&input)
            );
            return Ok(());
        }
        // Another worker found it: the map's last magic edge is set.
        if execs % 1024 == 0 && map[MAGIC.len()].load(Ordering::Relaxed) != 0 {
            println!("worker {me}: a peer found the crash ({found_here} finds here, {received} from peers)");
            return Ok(());
        }
    }
    println!("worker {me}: gave up after {MAX_EXECS} execs");
    Ok(())
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("worker") {
        return worker(&args[2], args[3].parse()?);
    }
    let run = std::process::id().to_string();
    let (map_name, _) = names(&run);
    // The parent holds the map too, to report it; the workers open or create the rest.
    let map = AtomicArray::<AtomicU8>::open_or_create_with(&map_name, EDGES, &opts())?;
    let exe = std::env::current_exe()?;
    let mut workers = (0..WORKERS)
        .map(|i| Command::new(&exe).args(["worker", &run, &i.to_string()]).spawn())
        .collect::<Result<Vec<_>, _>>()?;
    for w in &mut workers {
        assert!(w.wait()?.success(), "a worker failed");
    }
    let covered = map.as_slice().iter().filter(|e| e.load(Ordering::Relaxed) != 0).count();
    println!("edges covered by all workers together: {covered}");
    assert_ne!(map[MAGIC.len()].load(Ordering::Relaxed), 0, "nobody found the crash");
    Ok(())
}
