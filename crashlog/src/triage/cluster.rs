//! Clustering: exact signature buckets, then a near-duplicate pass.
//!
//! 1. Reports with the same signature text form a bucket.
//! 2. Buckets are visited in signature order (deterministic). Each is compared only with
//!    the buckets already indexed under one of its keys — its first two meaningful frames
//!    (panics: their template) — at most [`MAX_CANDIDATES`] per key, never all pairs, so
//!    the pass is near-linear in the number of buckets. It joins the cluster of the most
//!    similar candidate when [`similarity`] ≥ [`THRESHOLD`] and the two are compatible
//!    (panics only with panics, same template; crash vs hang never; differing exception
//!    classes never).
//!
//! **Similarity** is the Position-Dependent Model of ReBucket (Dang et al., ICSE 2012),
//! the weighting TraceSim builds on: the best alignment of the two frame lists (a
//! weighted LCS) where a match of frames at depths i and j is worth
//! `e^(-C·min(i,j)) · e^(-O·|i-j|)`, normalised by `Σ e^(-C·k)` over the shorter list
//! (at most [`MAX_COMPARED`] frames). With `C` = [`POSITION_DECAY`] = 0.5 and `O` =
//! [`OFFSET_DECAY`] = 0.1: the same frames at other offsets score 1.0; one extra inlined
//! frame on top scores ≈0.90; a different top frame over the same callers ≈0.61 and two
//! different top frames ≈0.37 — so [`THRESHOLD`] = 0.8 merges the first two and keeps
//! the others apart.
//!
//! A cluster's id is a stable hash (FNV-1a 64) of its canonical signature: the smallest
//! signature text among its buckets. The same input gives the same ids on every run.

use std::collections::HashMap;

use crate::model::ReportKind;

use super::signature::Signature;

/// Position decay `C`.
pub const POSITION_DECAY: f64 = 0.5;
/// Offset (misalignment) decay `O`.
pub const OFFSET_DECAY: f64 = 0.1;
/// Merge threshold.
pub const THRESHOLD: f64 = 0.8;
/// Frames compared per stack.
pub const MAX_COMPARED: usize = 12;
/// Candidates compared per key.
pub const MAX_CANDIDATES: usize = 32;

/// PDM similarity of two frame lists (innermost first), in `[0, 1]`.
pub fn similarity(a: &[String], b: &[String]) -> f64 {
    let a = &a[..a.len().min(MAX_COMPARED)];
    let b = &b[..b.len().min(MAX_COMPARED)];
    let (n, m) = (a.len(), b.len());
    if n == 0 || m == 0 {
        return 0.0;
    }
    let mut prev = vec![0.0f64; m + 1];
    let mut cur = vec![0.0f64; m + 1];
    for i in 1..=n {
        for j in 1..=m {
            let mut best = prev[j].max(cur[j - 1]);
            if a[i - 1] == b[j - 1] {
                let pos = (i - 1).min(j - 1) as f64;
                let off = (i as f64 - j as f64).abs();
                let w = (-POSITION_DECAY * pos).exp() * (-OFFSET_DECAY * off).exp();
                best = best.max(prev[j - 1] + w);
            }
            cur[j] = best;
        }
        std::mem::swap(&mut prev, &mut cur);
    }
    let denom: f64 = (0..n.min(m))
        .map(|k| (-POSITION_DECAY * k as f64).exp())
        .sum();
    (prev[m] / denom).min(1.0)
}

/// A stable id for a canonical signature: 16 hex digits of FNV-1a 64.
pub fn cluster_id(signature: &str) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in signature.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    format!("{h:016x}")
}

/// The result of [`cluster`]: for each input signature, its cluster; per cluster, the
/// canonical signature and members.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Clustering {
    /// Cluster index of each input (same order as the input).
    pub assignment: Vec<usize>,
    /// Per cluster: (id, canonical signature text, member input indices).
    pub clusters: Vec<(String, String, Vec<usize>)>,
    /// Similarity comparisons made by the near-duplicate pass (at most
    /// 2 × [`MAX_CANDIDATES`] per exact bucket: linear in the number of buckets).
    pub comparisons: u64,
}

fn compatible(a: &Signature, b: &Signature) -> bool {
    use ReportKind::*;
    let kinds = match (a.kind, b.kind) {
        (Panic, Panic) => return a.template.is_some() && a.template == b.template,
        (Panic, _) | (_, Panic) | (Log, _) | (_, Log) => false,
        (Crash, Hang) | (Hang, Crash) => false,
        _ => true,
    };
    let exc = match (&a.exception, &b.exception) {
        (Some(x), Some(y)) => x == y,
        _ => true,
    };
    kinds && exc
}

/// Index keys (borrowed, no allocation): `(true, template)` for panics, else
/// `(false, frame)` for the first two meaningful frames.
fn keys(s: &Signature) -> impl Iterator<Item = (bool, &str)> {
    let panic = match (&s.kind, &s.template) {
        (ReportKind::Panic, Some(t)) => Some((true, t.as_str())),
        _ => None,
    };
    let frames = s
        .frames
        .iter()
        .take(if panic.is_some() { 0 } else { 2 })
        .map(|f| (false, f.as_str()));
    panic.into_iter().chain(frames)
}

/// Cluster signatures (see the module docs).
pub fn cluster(sigs: &[&Signature]) -> Clustering {
    // 1. Exact buckets.
    let mut bucket_of: HashMap<&str, usize> = HashMap::new();
    let mut buckets: Vec<(usize, Vec<usize>)> = Vec::new(); // (representative input, members)
    for (i, s) in sigs.iter().enumerate() {
        match bucket_of.get(s.text.as_str()) {
            Some(&b) => buckets[b].1.push(i),
            None => {
                bucket_of.insert(s.text.as_str(), buckets.len());
                buckets.push((i, vec![i]));
            }
        }
    }
    let mut order: Vec<usize> = (0..buckets.len()).collect();
    order.sort_by(|x, y| sigs[buckets[*x].0].text.cmp(&sigs[buckets[*y].0].text));

    // 2. Near duplicates through the key index.
    let mut cluster_of_bucket = vec![usize::MAX; buckets.len()];
    let mut cluster_buckets: Vec<Vec<usize>> = Vec::new();
    let mut index: HashMap<(bool, &str), Vec<usize>> = HashMap::new();
    let mut comparisons = 0u64;
    for &b in &order {
        let s = sigs[buckets[b].0];
        let mut best: Option<(f64, usize)> = None;
        for k in keys(s) {
            let Some(cands) = index.get(&k) else { continue };
            for &c in cands.iter().rev().take(MAX_CANDIDATES) {
                let o = sigs[buckets[c].0];
                if !compatible(s, o) {
                    continue;
                }
                comparisons += 1;
                let sim = if s.kind == ReportKind::Panic {
                    1.0
                } else {
                    similarity(&s.frames, &o.frames)
                };
                if sim >= THRESHOLD && best.is_none_or(|(bs, _)| sim > bs) {
                    best = Some((sim, c));
                }
            }
        }
        let cl = match best {
            Some((_, c)) => cluster_of_bucket[c],
            None => {
                cluster_buckets.push(Vec::new());
                cluster_buckets.len() - 1
            }
        };
        cluster_of_bucket[b] = cl;
        cluster_buckets[cl].push(b);
        for k in keys(s) {
            index.entry(k).or_default().push(b);
        }
    }
    let mut assignment = vec![0; sigs.len()];
    let mut clusters = Vec::with_capacity(cluster_buckets.len());
    for (ci, bs) in cluster_buckets.iter().enumerate() {
        // The first bucket visited has the smallest signature (sorted order).
        let canonical = bs
            .first()
            .map(|b| sigs[buckets[*b].0].text.clone())
            .unwrap_or_default();
        let mut members = Vec::new();
        for b in bs {
            for &i in &buckets[*b].1 {
                assignment[i] = ci;
                members.push(i);
            }
        }
        members.sort_unstable();
        clusters.push((cluster_id(&canonical), canonical, members));
    }
    Clustering {
        assignment,
        clusters,
        comparisons,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(s: &[&str]) -> Vec<String> {
        s.iter().map(|x| x.to_string()).collect()
    }

    #[test]
    fn similarity_calibration() {
        let base = v(&["a", "b", "c", "d", "e", "f"]);
        assert!((similarity(&base, &base) - 1.0).abs() < 1e-9);
        let inlined = v(&["x", "a", "b", "c", "d", "e", "f"]);
        let s = similarity(&inlined, &base);
        assert!(s > 0.85 && s < 0.95, "{s}");
        let other_top = v(&["x", "b", "c", "d", "e", "f"]);
        let s = similarity(&other_top, &base);
        assert!(s < 0.7 && s > 0.5, "{s}");
        let two = v(&["x", "y", "c", "d", "e", "f"]);
        assert!(similarity(&two, &base) < 0.45);
        assert_eq!(similarity(&[], &base), 0.0);
    }

    #[test]
    fn ids_are_stable_hashes() {
        assert_eq!(cluster_id(""), "cbf29ce484222325");
        assert_eq!(cluster_id("a"), cluster_id("a"));
        assert_ne!(cluster_id("a"), cluster_id("b"));
    }
}
