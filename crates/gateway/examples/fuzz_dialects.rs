//! The long fuzz run of the dialects' parsers and validators (the short
//! one is `tests/fuzz_dialects.rs`; both share `tests/fuzz/`):
//!
//! ```text
//! cargo run --release -p gateway --example fuzz_dialects -- --inputs 1000000 --seed 1
//! ```
//!
//! Options: `--inputs N` per dialect (default 1,000,000), `--seed N`
//! (default `SWITCHYARD_FUZZ_SEED`, else the tests' fixed seed), `--dialect
//! NAME` (repeatable; default all), `--reasons` (every distinct rejection
//! message, values blanked, with its count). Prints per dialect the inputs, accepted,
//! rejected by status, panics and 5xx (both must be 0) and the wall time;
//! exits 1 on any failure, printing the failing inputs for replay.

#[path = "../tests/fuzz/mod.rs"]
mod fuzz;

use std::process::ExitCode;

struct Args {
    inputs: u64,
    seed: u64,
    dialects: Vec<String>,
    reasons: bool,
}

fn parse_args() -> Result<Args, String> {
    let mut args = Args { inputs: 1_000_000, seed: fuzz::seed_from_env(), dialects: Vec::new(), reasons: false };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().ok_or_else(|| format!("{flag} needs a value"));
        match flag.as_str() {
            "--inputs" => args.inputs = value()?.replace('_', "").parse().map_err(|e| format!("--inputs: {e}"))?,
            "--seed" => args.seed = fuzz::parse_seed(&value()?).ok_or("--seed: not a number")?,
            "--dialect" => args.dialects.push(value()?),
            "--reasons" => args.reasons = true,
            "-h" | "--help" => {
                return Err("usage: fuzz_dialects [--inputs N] [--seed N] [--dialect NAME]... [--reasons]".into())
            }
            other => return Err(format!("unknown argument {other:?} (see --help)")),
        }
    }
    Ok(args)
}

fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    };
    let dialects: Vec<_> = fuzz::dialects()
        .into_iter()
        .filter(|d| args.dialects.is_empty() || args.dialects.iter().any(|n| n == d.name))
        .collect();
    let profile = if cfg!(debug_assertions) { "dev" } else { "release" };
    println!("fuzz_dialects: seed {} ({} inputs per dialect, {profile} build)", args.seed, args.inputs);
    println!(
        "{:<24} {:>10} {:>10} {:>20} {:>7} {:>5} {:>9} {:>10}",
        "dialect", "inputs", "accepted", "rejected by status", "panics", "5xx", "wall", "inputs/s"
    );
    let mut failed = false;
    for d in &dialects {
        let t = fuzz::run_parser(d, args.seed, args.inputs, None);
        let rejected: Vec<String> = t.rejected.iter().map(|(s, n)| format!("{s}: {n}")).collect();
        println!(
            "{:<24} {:>10} {:>10} {:>20} {:>7} {:>5} {:>8.1}s {:>10.0}",
            d.name,
            t.inputs,
            t.accepted,
            rejected.join(", "),
            t.panics,
            t.server_errors,
            t.wall.as_secs_f64(),
            t.inputs as f64 / t.wall.as_secs_f64().max(1e-9)
        );
        if args.reasons {
            let mut reasons: Vec<_> = t.reasons.iter().collect();
            reasons.sort_by(|a, b| b.1.cmp(a.1));
            for (reason, n) in reasons {
                println!("    {n:>9}  {reason}");
            }
        }
        for f in &t.failures {
            println!("{f}");
        }
        failed |= !t.ok();
    }
    if failed {
        println!("FAILED: replay with --seed {}", args.seed);
        return ExitCode::FAILURE;
    }
    ExitCode::SUCCESS
}
