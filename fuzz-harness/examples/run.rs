//! Runs one target on input files, on stable and without libFuzzer:
//! `cargo run -p flowslab-fuzz --example run -- <target> <file>...`
//! (the same code path as the libFuzzer target and tests/replay.rs).

fn main() {
    let mut args = std::env::args().skip(1);
    let Some(target) = args.next() else {
        eprintln!("usage: run <target> <file>...");
        std::process::exit(2);
    };
    for path in args {
        let data = std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
        if !flowslab_fuzz::run_target(&target, &data) {
            eprintln!("unknown target {target}");
            std::process::exit(2);
        }
        println!("{path}: ok");
    }
}
