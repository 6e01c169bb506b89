//! Writes the hand-written seeds into `fuzz/corpus/<target>/` (run from anywhere).

use std::path::Path;

fn main() -> std::io::Result<()> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/corpus");
    let sets = [
        ("alloc_ops", flowslab_fuzz::seeds::alloc_ops()),
        ("flow_ops", flowslab_fuzz::seeds::flow_ops()),
        (
            "crashlog_roundtrip",
            flowslab_fuzz::seeds::crashlog_roundtrip(),
        ),
    ];
    for (target, seeds) in sets {
        let dir = root.join(target);
        std::fs::create_dir_all(&dir)?;
        for s in seeds {
            std::fs::write(dir.join(s.name), &s.data)?;
            println!("{target}/{} ({} bytes)", s.name, s.data.len());
        }
    }
    Ok(())
}
