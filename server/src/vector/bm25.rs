//! BM25 full-text ranking over an index's text column, and reciprocal rank fusion.
//!
//! The text index is an in-memory inverted index: terms are lower-cased runs of letters
//! and digits (any script) less a short English stop-word list, postings hold
//! `(document, term frequency)`. Scores are Okapi BM25 (`k1 = 1.2`, `b = 0.75`) with
//! the Lucene form of idf, `ln(1 + (N − df + 0.5) / (df + 0.5))`, which never goes
//! negative. Documents are rows: a row's whole text is one document, however many
//! chunks its vectors have.

use std::collections::HashMap;

const K1: f32 = 1.2;
const B: f32 = 0.75;

/// The constant of reciprocal rank fusion (Cormack et al.): `1 / (RRF_K + rank)`.
pub(super) const RRF_K: f32 = 60.0;

const STOP_WORDS: &[&str] = &[
    "a", "an", "and", "are", "as", "at", "be", "but", "by", "for", "if", "in", "into", "is", "it",
    "no", "not", "of", "on", "or", "such", "that", "the", "their", "then", "there", "these",
    "they", "this", "to", "was", "will", "with",
];

/// The terms of `text`, in order, repeats kept.
pub(super) fn terms(text: &str) -> impl Iterator<Item = String> + '_ {
    text.split(|c: char| !c.is_alphanumeric())
        .filter(|t| !t.is_empty())
        .map(str::to_lowercase)
        .filter(|t| !STOP_WORDS.contains(&t.as_str()))
}

/// An inverted index of rows' texts.
#[derive(Debug, Default)]
pub(super) struct Bm25 {
    vocabulary: HashMap<String, u32>,
    /// Per term: `(document, frequency)`, documents ascending.
    postings: Vec<Vec<(u32, u32)>>,
    /// Per document: the row id and its length in terms.
    documents: Vec<(i64, u32)>,
    /// Rows held, with their document (a row is added once).
    ids: HashMap<i64, u32>,
    total_terms: u64,
    /// Documents removed (their length is [`REMOVED`]).
    removed: usize,
}

/// The length that marks a removed document.
const REMOVED: u32 = u32::MAX;

impl Bm25 {
    /// An empty index.
    pub(super) fn new() -> Self {
        Self::default()
    }

    /// Documents held.
    pub(super) fn len(&self) -> usize {
        self.documents.len() - self.removed
    }

    /// Memory of postings and documents, in bytes (an estimate).
    pub(super) fn memory_bytes(&self) -> usize {
        let postings: usize = self.postings.iter().map(|p| p.capacity() * 8 + 24).sum();
        let words: usize = self.vocabulary.keys().map(|k| k.len() + 40).sum();
        postings + words + self.documents.capacity() * 16 + self.ids.capacity() * 16
    }

    /// Adds row `id` with its `text`; false (and nothing changes) if the row is held.
    pub(super) fn add(&mut self, id: i64, text: &str) -> bool {
        if self.ids.contains_key(&id) {
            return false;
        }
        let document = self.documents.len() as u32;
        self.ids.insert(id, document);
        let mut counts: HashMap<u32, u32> = HashMap::new();
        let mut length = 0u32;
        for term in terms(text) {
            length += 1;
            let next = self.postings.len() as u32;
            let term_id = *self.vocabulary.entry(term).or_insert(next);
            if term_id == next {
                self.postings.push(Vec::new());
            }
            *counts.entry(term_id).or_default() += 1;
        }
        for (term_id, count) in counts {
            if let Some(list) = self.postings.get_mut(term_id as usize) {
                list.push((document, count));
            }
        }
        self.documents.push((id, length));
        self.total_terms += u64::from(length);
        true
    }

    /// Removes row `id` (its text changed or the row was deleted); false if not held.
    /// Its postings stay behind, skipped by searches, until the index is rebuilt.
    pub(super) fn remove(&mut self, id: i64) -> bool {
        let Some(document) = self.ids.remove(&id) else {
            return false;
        };
        if let Some(document) = self.documents.get_mut(document as usize) {
            self.total_terms -= u64::from(document.1);
            document.1 = REMOVED;
            self.removed += 1;
        }
        true
    }

    /// The `k` best rows for `query` among those `keep` accepts, best first, with their
    /// BM25 scores. Rows sharing no term with the query are not returned.
    pub(super) fn search(
        &self,
        query: &str,
        k: usize,
        keep: Option<&(dyn Fn(i64) -> bool + Sync)>,
    ) -> Vec<(i64, f32)> {
        let n = self.len();
        if n == 0 || k == 0 {
            return Vec::new();
        }
        let average = self.total_terms as f32 / n as f32;
        let mut query_terms: Vec<u32> = terms(query)
            .filter_map(|t| self.vocabulary.get(&t).copied())
            .collect();
        query_terms.sort_unstable();
        query_terms.dedup();
        let mut scores: HashMap<u32, f32> = HashMap::new();
        for term in query_terms {
            let Some(list) = self.postings.get(term as usize) else {
                continue;
            };
            let df = list
                .iter()
                .filter(|(document, _)| {
                    self.documents
                        .get(*document as usize)
                        .is_some_and(|(_, length)| *length != REMOVED)
                })
                .count() as f32;
            if df == 0.0 {
                continue;
            }
            let idf = (1.0 + (n as f32 - df + 0.5) / (df + 0.5)).ln();
            for &(document, tf) in list {
                let Some(&(_, length)) = self.documents.get(document as usize) else {
                    continue;
                };
                if length == REMOVED {
                    continue;
                }
                let tf = tf as f32;
                let norm = K1 * (1.0 - B + B * length as f32 / average.max(f32::EPSILON));
                *scores.entry(document).or_default() += idf * tf * (K1 + 1.0) / (tf + norm);
            }
        }
        let mut ranked: Vec<(i64, f32)> = scores
            .into_iter()
            .filter_map(|(document, score)| {
                let (id, _) = *self.documents.get(document as usize)?;
                keep.is_none_or(|keep| keep(id)).then_some((id, score))
            })
            .collect();
        ranked.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
        ranked.truncate(k);
        ranked
    }
}

/// Reciprocal rank fusion of ranked lists of row ids (best first): each row scores
/// `Σ 1 / (RRF_K + rank)` over the lists it appears in (rank from 1); the `k` best,
/// ties broken by id.
pub(super) fn fuse(lists: &[Vec<i64>], k: usize) -> Vec<(i64, f32)> {
    let mut scores: HashMap<i64, f32> = HashMap::new();
    for list in lists {
        for (rank, id) in list.iter().enumerate() {
            *scores.entry(*id).or_default() += 1.0 / (RRF_K + rank as f32 + 1.0);
        }
    }
    let mut fused: Vec<(i64, f32)> = scores.into_iter().collect();
    fused.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
    fused.truncate(k);
    fused
}

#[cfg(test)]
mod tests {
    use super::*;

    fn corpus() -> Bm25 {
        let mut index = Bm25::new();
        index.add(1, "The quick brown fox jumps over the lazy dog");
        index.add(2, "A fox, a fox! Foxes everywhere: fox den.");
        index.add(3, "Interest rates and the central bank");
        index.add(4, "Über den Wolken: die Freiheit");
        index
    }

    #[test]
    fn terms_lowercase_split_and_drop_stop_words() {
        let got: Vec<String> = terms("The Fox's den, ÜBER-alles 42").collect();
        assert_eq!(got, ["fox", "s", "den", "über", "alles", "42"]);
    }

    #[test]
    fn ranks_by_term_frequency_and_rarity() {
        let index = corpus();
        let hits = index.search("fox", 10, None);
        let ids: Vec<i64> = hits.iter().map(|h| h.0).collect();
        // Row 2 says fox three times in fewer words.
        assert_eq!(ids, [2, 1]);
        assert!(hits[0].1 > hits[1].1 && hits[1].1 > 0.0);
        // A rarer term outweighs a common one.
        let hits = index.search("fox bank", 10, None);
        assert_eq!(hits.len(), 3);
        assert_eq!(index.search("über", 10, None)[0].0, 4);
        assert!(index.search("the a of", 10, None).is_empty());
        assert!(index.search("zebra", 10, None).is_empty());
    }

    #[test]
    fn a_row_is_added_once() {
        let mut index = corpus();
        assert!(!index.add(2, "fox fox fox fox"));
        assert_eq!(index.len(), 4);
        assert!(index.add(5, "fox"));
        assert_eq!(index.search("fox", 10, None).len(), 3);
    }

    #[test]
    fn a_removed_row_is_not_found_and_can_come_back() {
        let mut index = corpus();
        let before = index.len();
        assert!(index.remove(2));
        assert!(!index.remove(2));
        assert_eq!(index.len(), before - 1);
        let ids: Vec<i64> = index.search("fox", 10, None).iter().map(|h| h.0).collect();
        assert_eq!(ids, [1]);
        assert!(index.add(2, "fox fox fox"));
        assert_eq!(index.search("fox", 10, None).first().map(|h| h.0), Some(2));
    }

    #[test]
    fn filter_and_k_apply() {
        let index = corpus();
        let odd = |id: i64| id % 2 == 1;
        assert_eq!(
            index.search("fox", 10, Some(&odd)),
            vec![(1, index.search("fox", 10, None)[1].1)]
        );
        assert_eq!(index.search("fox", 1, None).len(), 1);
    }

    #[test]
    fn fusion_rewards_agreement() {
        let fused = fuse(&[vec![1, 2, 3], vec![3, 4, 1]], 3);
        let ids: Vec<i64> = fused.iter().map(|f| f.0).collect();
        // 1: 1/61 + 1/63; 3: 1/63 + 1/61 (tie, lower id first); then 2 and 4 at rank 2.
        assert_eq!(ids, [1, 3, 2]);
        assert!((fused[0].1 - (1.0 / 61.0 + 1.0 / 63.0)).abs() < 1e-6);
    }
}
