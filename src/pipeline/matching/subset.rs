//! The smallest set of open bills whose balances add up exactly to a payment.
//!
//! Subset sum is exponential in general, so the search is bounded twice: at most
//! [`MAX_BILLS`] bills per set, and at most [`STEP_BUDGET`] search steps in all. Within
//! those bounds it is exact and deterministic: among the smallest sets it returns the one
//! whose bills, sorted by age, come first (the oldest due bill wins a tie, then the next).
//! Amounts are integers in the smallest common unit, so the inner loop is integer
//! arithmetic only.

/// Largest set of bills one payment is matched to without a remittance.
pub const MAX_BILLS: usize = 6;
/// Search steps before giving up; keeps a 500-bill vendor well under a millisecond.
pub const STEP_BUDGET: u32 = 100_000;

/// A bill as the search sees it: its balance in minor units and its age rank (0 is the
/// bill due first).
#[derive(Debug, Clone, Copy)]
pub struct Candidate {
    pub cents: i64,
    pub rank: usize,
}

#[derive(Debug, Default, PartialEq)]
pub struct SubsetResult {
    /// Age ranks of the chosen bills, ascending; `None` when no set was found.
    pub ranks: Option<Vec<usize>>,
    /// The step budget ran out, so a set may exist beyond what was searched.
    pub exhausted: bool,
    pub steps: u32,
}

struct Search<'a> {
    /// Sorted by balance descending, then age; at most MAX_BILLS of any one balance.
    entries: &'a [Candidate],
    /// `min_sum[r]`: the smallest total any r entries can have.
    min_sum: Vec<i64>,
    chosen: Vec<usize>,
    best: Option<Vec<usize>>,
    steps: u32,
    exhausted: bool,
}

/// Finds the smallest set of `bills` (positive balances) summing exactly to `target`.
pub fn smallest_exact_subset(bills: &[Candidate], target: i64) -> SubsetResult {
    let entries = cap_duplicates(bills);
    let mut min_sum = vec![0i64; MAX_BILLS + 1];
    for r in 1..=MAX_BILLS.min(entries.len()) {
        min_sum[r] = min_sum[r - 1].saturating_add(entries[entries.len() - r].cents);
    }
    // Fewer entries than r: no r of them exist at all.
    for slot in min_sum.iter_mut().skip(entries.len() + 1) {
        *slot = i64::MAX;
    }
    let mut s = Search { entries: &entries, min_sum, chosen: Vec::new(), best: None, steps: 0, exhausted: false };
    for k in 1..=MAX_BILLS.min(entries.len()) {
        s.dfs(k, 0, target);
        if s.best.is_some() || s.exhausted {
            break;
        }
    }
    SubsetResult { ranks: s.best, exhausted: s.exhausted, steps: s.steps }
}

/// Sorts by balance descending then age, keeping at most MAX_BILLS bills per balance.
fn cap_duplicates(bills: &[Candidate]) -> Vec<Candidate> {
    let mut sorted: Vec<Candidate> = bills.iter().copied().filter(|c| c.cents > 0).collect();
    sorted.sort_by(|a, b| b.cents.cmp(&a.cents).then(a.rank.cmp(&b.rank)));
    let mut out: Vec<Candidate> = Vec::with_capacity(sorted.len());
    let mut run = 0;
    for c in sorted {
        run = if out.last().is_some_and(|l| l.cents == c.cents) { run + 1 } else { 1 };
        if run <= MAX_BILLS {
            out.push(c);
        }
    }
    out
}

impl Search<'_> {
    fn dfs(&mut self, k: usize, start: usize, target: i64) {
        let e = self.entries;
        if k == 1 {
            self.steps += 1;
            // Entries are descending: skip those larger than the target, then check.
            let i = start + e[start..].partition_point(|c| c.cents > target);
            if i < e.len() && e[i].cents == target {
                self.chosen.push(i);
                self.record();
                self.chosen.pop();
            }
            return;
        }
        // The first entry small enough to leave room for k-1 more.
        let ceiling = target.saturating_sub(self.min_sum[k - 1]);
        let first = start + e[start..].partition_point(|c| c.cents > ceiling);
        for i in first..e.len() {
            if i + k > e.len() {
                break;
            }
            self.steps += 1;
            if self.steps > STEP_BUDGET {
                self.exhausted = true;
                return;
            }
            // Equal balances are interchangeable here; the oldest was tried first.
            if i > first && e[i].cents == e[i - 1].cents {
                continue;
            }
            // The k largest remaining entries are too small: so is everything after.
            let top: i64 = e[i..i + k].iter().map(|c| c.cents).sum();
            if top < target {
                break;
            }
            self.chosen.push(i);
            self.dfs(k - 1, i + 1, target - e[i].cents);
            self.chosen.pop();
            if self.exhausted {
                return;
            }
        }
    }

    /// Keeps the set whose bills, sorted by age, come first.
    fn record(&mut self) {
        let mut ranks: Vec<usize> = self.chosen.iter().map(|&i| self.entries[i].rank).collect();
        ranks.sort_unstable();
        if self.best.as_ref().is_none_or(|b| ranks < *b) {
            self.best = Some(ranks);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cands(cents: &[i64]) -> Vec<Candidate> {
        cents.iter().enumerate().map(|(rank, &cents)| Candidate { cents, rank }).collect()
    }

    #[test]
    fn finds_the_smallest_set() {
        // 10+20+30 = 60 and 60 alone: the single bill wins.
        let r = smallest_exact_subset(&cands(&[10, 20, 30, 60]), 60);
        assert_eq!(r.ranks, Some(vec![3]));
        let r = smallest_exact_subset(&cands(&[10, 25, 30, 45]), 65);
        assert_eq!(r.ranks, Some(vec![0, 1, 2]));
    }

    #[test]
    fn ties_go_to_the_oldest_bills() {
        // 30+40 (ranks 2,3) and 50+20 (ranks 0,4) both make 70: rank 0 comes first.
        let r = smallest_exact_subset(&cands(&[50, 99, 30, 40, 20]), 70);
        assert_eq!(r.ranks, Some(vec![0, 4]));
        // Three bills of 25: the two oldest.
        let r = smallest_exact_subset(&cands(&[25, 25, 25]), 50);
        assert_eq!(r.ranks, Some(vec![0, 1]));
    }

    #[test]
    fn reports_no_set_and_stays_bounded() {
        let r = smallest_exact_subset(&cands(&[10, 20, 40]), 15);
        assert_eq!(r.ranks, None);
        assert!(!r.exhausted);
        let many: Vec<i64> = (0..500).map(|i| 1_000 + 7 * i).collect();
        let r = smallest_exact_subset(&cands(&many), 1);
        assert_eq!(r.ranks, None);
        assert!(r.steps <= STEP_BUDGET + MAX_BILLS as u32);
    }
}
