//! Hang reports: spindump (`Thread 0x… N samples` + indented `N  symbol + off (Image + off) [0x…]`)
//! and `sample` (`Call graph:` + `+ N symbol  (in Image) + off  [0x…]`).
//!
//! Each thread's call tree is reduced to its heaviest path (following the child with the
//! most samples), stored innermost first in [`Thread::frames`] with [`Frame::samples`] and
//! [`Frame::depth`]: that is what triage signs. Lighter branches are not kept, and of a
//! system-wide spindump only the first (target) process is read.

use crate::error::ParseError;
use crate::model::{Frame, HangInfo, Report, ReportKind, SourceFormat, Thread};
use crate::parse::crash::binary_image;
use crate::parse::text::{dec, hex0x, key_value, leading_dec, name_pid, non_empty};

/// Whether a line is typical of a hang report.
pub(crate) fn is_spindump_anchor(line: &str) -> bool {
    let t = line.trim_start();
    t.starts_with("Call graph:")
        || t.starts_with("Analysis of sampling ")
        || (t.starts_with("Steps:") && t.contains("sampling interval"))
        || t.starts_with("Data Source:      Stackshots")
}

/// A call-graph node line: depth (indent), samples, frame.
struct Node {
    indent: usize,
    samples: u64,
    frame: Frame,
}

fn node(line: &str) -> Option<Node> {
    // Indent = position of the sample count after tree drawing characters.
    let b = line.as_bytes();
    let mut i = 0;
    while let Some(&c) = b.get(i) {
        if matches!(c, b' ' | b'+' | b'!' | b':' | b'|' | b'*' | b'\t') {
            i += 1;
        } else {
            break;
        }
    }
    let rest = &line[i..];
    let end = rest.bytes().position(|c| !c.is_ascii_digit())?;
    if end == 0 {
        return None;
    }
    let samples = dec(&rest[..end])?;
    let body = rest[end..].trim();
    if body.is_empty() {
        return None;
    }
    let mut f = Frame {
        samples: Some(samples),
        ..Frame::default()
    };
    // Trailing `[0x18f2b6164]` or `[0x18f2b6164,0x…]`
    let mut body = body;
    if body.ends_with(']')
        && let Some(open) = body.rfind('[')
    {
        let inner = &body[open + 1..body.len() - 1];
        f.address = inner.split(',').next().and_then(|a| hex0x(a.trim()));
        body = body[..open].trim_end();
    }
    // sample: `symbol  (in Image) + 80` ; spindump: `symbol + 80 (Image + 12345)`
    if let Some(open) = body.find("  (in ").or_else(|| body.find(" (in ")) {
        let close = open + body[open..].find(')')?;
        let img_start = body[open..].find("(in ")? + open + 4;
        f.image = non_empty(&body[img_start..close]);
        let sym = body[..open].trim();
        let after = body[close + 1..].trim();
        if let Some(off) = after.strip_prefix("+ ") {
            f.symbol_offset = dec(off.split_whitespace().next().unwrap_or(""));
        } else if let Some(la) = after.strip_prefix("load address ") {
            // `???  (in Image)  load address 0x100000000 + 0x1234`
            let mut parts = la.split(" + ");
            f.image_base = parts.next().and_then(|x| hex0x(x.trim()));
            f.image_offset = parts.next().and_then(|x| hex0x(x.trim()));
        }
        if sym != "???" {
            f.symbol = non_empty(sym);
        }
    } else if body.ends_with(')') {
        let open = body.rfind(" (")?;
        let inner = &body[open + 2..body.len() - 1];
        let (img, off) = inner.rsplit_once(" + ").unwrap_or((inner, ""));
        f.image = non_empty(img).filter(|i| i != "???");
        f.image_offset = dec(off).or_else(|| hex0x(off));
        crate::parse::text::frame_rest(&body[..open], &mut f);
    } else {
        crate::parse::text::frame_rest(body, &mut f);
    }
    Some(Node {
        indent: i,
        samples,
        frame: f,
    })
}

/// Heaviest path through a preorder list of nodes: from the first root, follow the
/// child with the most samples. Returned innermost first.
fn heaviest_path(nodes: &[Node]) -> Vec<Frame> {
    let mut path: Vec<Frame> = Vec::new();
    if nodes.is_empty() {
        return path;
    }
    // end[i]: first node after i that is not in i's subtree (O(n) with a stack), so the
    // walk below costs O(n) in total whatever the shape of the tree.
    let n = nodes.len();
    let mut end = vec![n; n];
    let mut stack: Vec<usize> = Vec::new();
    for i in (0..n).rev() {
        while stack
            .last()
            .is_some_and(|&t| nodes[t].indent > nodes[i].indent)
        {
            stack.pop();
        }
        end[i] = stack.last().copied().unwrap_or(n);
        stack.push(i);
    }
    let mut cur = 0usize;
    let mut depth = 0u32;
    loop {
        let mut f = nodes[cur].frame.clone();
        f.depth = Some(depth);
        path.push(f);
        if path.len() >= super::MAX_FRAMES {
            break;
        }
        // Direct children: hop from subtree to subtree.
        let mut best: Option<usize> = None;
        let mut j = cur + 1;
        while j < end[cur] {
            if best.is_none_or(|b| nodes[j].samples > nodes[b].samples) {
                best = Some(j);
            }
            j = end[j].max(j + 1);
        }
        match best {
            Some(b) => {
                cur = b;
                depth += 1;
            }
            None => break,
        }
    }
    path.reverse();
    for (i, f) in path.iter_mut().enumerate() {
        f.index = i as u32;
    }
    path
}

/// Parse a spindump or `sample` report.
pub(crate) fn parse_spindump(text: &str, first_line: u64) -> Result<Report, ParseError> {
    let mut r = Report::new(ReportKind::Hang, SourceFormat::Spindump);
    let mut hang = HangInfo::default();
    let mut threads: Vec<(Thread, Vec<Node>)> = Vec::new();
    let mut in_images = false;
    let mut process_sections = 0usize;
    let mut in_target = true;
    let mut in_graph = false;

    for raw in text.lines() {
        let line = raw.trim_end();
        let t = line.trim_start();
        if t.is_empty() {
            continue;
        }
        if let Some(rest) = t.strip_prefix("Analysis of sampling ") {
            // `MyApp (pid 1234) every 1 millisecond`
            if let Some((name, tail)) = rest.split_once(" (pid ") {
                r.process.name = non_empty(name);
                r.process.pid = leading_dec(tail).and_then(|p| u32::try_from(p).ok());
            }
            continue;
        }
        if t.starts_with("Binary Images:") {
            in_images = true;
            in_graph = false;
            continue;
        }
        if in_images {
            if let Some(img) = binary_image(t) {
                if in_target && r.binary_images.len() < super::MAX_IMAGES {
                    r.binary_images.push(img);
                }
                continue;
            }
            in_images = false;
        }
        if t.starts_with("Call graph:") {
            in_graph = true;
            continue;
        }
        // spindump thread header: `Thread 0x1a2b    DispatchQueue "…"(1)    41 samples (1-41) …`
        // sample thread header: `2345 Thread_123456   DispatchQueue_1: com.apple.main-thread  (serial)`
        if let Some(th) = thread_header(t) {
            in_graph = true;
            if in_target && threads.len() < super::MAX_THREADS {
                threads.push((th, Vec::new()));
            }
            continue;
        }
        if t.starts_with("Total number in stack") || t.starts_with("Sort by top of stack") {
            in_graph = false;
            continue;
        }
        if in_graph
            && t.starts_with(|c: char| {
                c.is_ascii_digit() || c == '+' || c == '*' || c == '!' || c == ':' || c == '|'
            })
            && let Some(n) = node(line)
        {
            if let Some((_, nodes)) = threads.last_mut()
                && in_target
                && nodes.len() < 100_000
            {
                nodes.push(n);
            }
            continue;
        }
        if let Some((k, v)) = key_value(t) {
            match k {
                "Process" => {
                    process_sections += 1;
                    if process_sections > 1 {
                        // Only the first (target) process of a system-wide spindump is kept.
                        in_target = false;
                        continue;
                    }
                    let (n, p) = name_pid(v);
                    r.process.name = r.process.name.take().or(n);
                    r.process.pid = r.process.pid.or(p);
                }
                "Command" => r.process.name = r.process.name.take().or_else(|| non_empty(v)),
                "PID" => {
                    r.process.pid = r
                        .process
                        .pid
                        .or_else(|| leading_dec(v).and_then(|p| u32::try_from(p).ok()))
                }
                "Path" if in_target => {
                    r.process.path = r.process.path.take().or_else(|| non_empty(v))
                }
                "Identifier" if in_target => {
                    r.process.bundle_id = r.process.bundle_id.take().or_else(|| non_empty(v))
                }
                "Version" if in_target => {
                    r.process.version = r.process.version.take().or_else(|| non_empty(v))
                }
                "Parent" | "Parent Process" if in_target => {
                    let (n, p) = name_pid(v);
                    r.process.parent = n;
                    r.process.parent_pid = p;
                }
                "Code Type" | "Architecture" => {
                    r.process.code_type = r.process.code_type.take().or_else(|| non_empty(v))
                }
                "Date/Time" => r.timestamp = r.timestamp.take().or_else(|| non_empty(v)),
                "OS Version" => {
                    // spindump writes `macOS 14.4 (Build 23E214)`.
                    r.os = crate::model::Os::from_raw(&v.replace("(Build ", "("));
                }
                "Hardware model" | "Hardware Model" | "Model" => {
                    r.device = r.device.take().or_else(|| {
                        v.split(',')
                            .next()
                            .map(|_| v.split(" (").next().unwrap_or(v).trim().to_string())
                    })
                }
                "Event" => hang.event = non_empty(v),
                "Duration" => hang.duration = non_empty(v),
                "Steps" => hang.steps = non_empty(v),
                "Num samples" => hang.samples = leading_dec(v),
                "Incident Identifier" => r.incident_id = non_empty(v),
                _ => {}
            }
        }
    }
    if threads.is_empty() {
        return Err(ParseError::WrongFormat {
            line: first_line,
            format: "spindump",
            hint: "no call-graph threads".into(),
        });
    }
    let mut heaviest: Option<(u64, u32)> = None;
    for (i, (mut th, nodes)) in threads.into_iter().enumerate() {
        th.index = i as u32;
        th.frames = heaviest_path(&nodes);
        let total = nodes
            .iter()
            .filter(|n| nodes.first().is_some_and(|f| n.indent == f.indent))
            .map(|n| n.samples)
            // Counts come from the input: saturate rather than overflow on hostile totals.
            .fold(0u64, u64::saturating_add);
        if heaviest.is_none_or(|(s, _)| total > s) {
            heaviest = Some((total, th.index));
        }
        r.threads.push(th);
    }
    // The blocked thread: the main thread if it has frames, else the one with most samples.
    let main = r
        .threads
        .iter()
        .find(|t| t.queue.as_deref() == Some("com.apple.main-thread") && !t.frames.is_empty())
        .map(|t| t.index);
    r.crashed_thread = main.or(heaviest.map(|(_, i)| i));
    if let Some(idx) = r.crashed_thread
        && let Some(t) = r.threads.iter_mut().find(|t| t.index == idx)
    {
        t.crashed = true;
    }
    if hang.samples.is_none() {
        hang.samples = heaviest.map(|(s, _)| s);
    }
    r.hang = Some(hang);
    r.resolve_frames();
    Ok(r)
}

fn thread_header(t: &str) -> Option<Thread> {
    let mut th = Thread::default();
    if let Some(rest) = t.strip_prefix("Thread 0x") {
        let id_end = rest
            .find(|c: char| !c.is_ascii_hexdigit())
            .unwrap_or(rest.len());
        th.id = u64::from_str_radix(&rest[..id_end], 16).ok();
        th.id?;
        let rest = &rest[id_end..];
        if let Some(q) = rest.split("DispatchQueue \"").nth(1) {
            th.queue = q.split('"').next().and_then(non_empty);
        }
        if let Some(n) = rest.split("Thread name \"").nth(1) {
            th.name = n.split('"').next().and_then(non_empty);
        }
        return Some(th);
    }
    // sample: `2345 Thread_123456   DispatchQueue_1: com.apple.main-thread  (serial)`
    let (count, rest) = t.split_once(' ')?;
    dec(count)?;
    let rest = rest.trim_start();
    let tid = rest.strip_prefix("Thread_")?;
    let id_end = tid.find(|c: char| !c.is_ascii_digit()).unwrap_or(tid.len());
    th.id = dec(&tid[..id_end]);
    let tail = &tid[id_end..];
    if let Some(q) = tail.split_once(": ").map(|(_, q)| q) {
        th.queue = q.split("  (").next().and_then(non_empty);
    } else if let Some(n) = tail.trim().strip_prefix("  ") {
        th.name = non_empty(n);
    }
    Some(th)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_layouts() {
        let n = node("    +   2345 main  (in MyApp) + 80  [0x100abc123]").unwrap();
        assert_eq!(n.samples, 2345);
        assert_eq!(n.frame.symbol.as_deref(), Some("main"));
        assert_eq!(n.frame.image.as_deref(), Some("MyApp"));
        assert_eq!(n.frame.symbol_offset, Some(80));
        assert_eq!(n.frame.address, Some(0x100abc123));
        let n = node("      41  nw_path_prepare_fork + 40 (Network + 123) [0x1a2b]").unwrap();
        assert_eq!(n.frame.symbol.as_deref(), Some("nw_path_prepare_fork"));
        assert_eq!(n.frame.image.as_deref(), Some("Network"));
        assert_eq!(n.frame.image_offset, Some(123));
        assert!(node("Thread 0x1").is_none());
    }

    /// Fuzz finding KB-2 (crashlog_parse_spindump): sample counts whose sum overflows u64
    /// must not panic; the total saturates.
    #[test]
    fn sample_counts_that_overflow_when_summed_do_not_panic() {
        let text = "Analysis of sampling \n1 Thread_\n18446741876867006464,\n8446741876867\0";
        let _ = parse_spindump(text, 1);
        let text = "Call graph:\n    18446744073709551615 Thread_1\n    + 18446744073709551615 a  (in X) + 1  [0x2]\n    18446744073709551615 Thread_2\n    + 18446744073709551615 b  (in X) + 1  [0x3]\n    18446744073709551615 c  (in X) + 1  [0x4]\n";
        let r = parse_spindump(text, 1).unwrap();
        assert!(!r.threads.is_empty());
    }

    #[test]
    fn heaviest_path_follows_samples() {
        let text = "Call graph:\n    10 Thread_1   DispatchQueue_1: com.apple.main-thread  (serial)\n    + 10 start  (in dyld) + 1  [0x1]\n    +   3 a  (in X) + 1  [0x2]\n    +   7 b  (in X) + 1  [0x3]\n    +     7 c  (in X) + 1  [0x4]\n";
        let r = parse_spindump(text, 1).unwrap();
        let f = &r.threads[0].frames;
        let names: Vec<_> = f.iter().map(|f| f.symbol.as_deref().unwrap()).collect();
        assert_eq!(names, ["c", "b", "start"]);
        assert!(r.threads[0].crashed);
    }
}
