//! Fuzzy filtering shared by the picker and `ec2ssh list --filter`.
//!
//! Rows are turned into one search string each, once per inventory. A query is
//! whitespace-separated terms that must all match (skim's algorithm, smart case);
//! rows are ranked by total score, ties keeping fleet order. fuzzy-matcher decides
//! every match and every score; the rest only spares it work: an exact byte prefilter
//! on prepared lower-case text, a stack of results (one per query typed on the way
//! here) so typing scores only the term that changed among the rows that already
//! matched and deleting returns a known result, both cores, a memo per thread so
//! rows sharing a deciding span (a platform-type-zone tail, a name's prefix) cost
//! fuzzy-matcher one call, and for two- and three-char terms only the head of a row
//! that provably decides its score (see `SearchIndex::head`). Highlight positions
//! are computed separately, for visible rows only.

use std::cmp::Reverse;
use std::collections::HashMap;

use fuzzy_matcher::skim::SkimMatcherV2;
use fuzzy_matcher::FuzzyMatcher;

use crate::fleet::Instance;
use crate::text::sanitize;

/// The searchable columns, in haystack order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Field {
    Name,
    Id,
    PrivateIp,
    PublicIp,
    Platform,
    Type,
    Zone,
    /// The account (name and id), for fleets of several accounts.
    Account,
}

pub const FIELDS: [Field; 8] = [
    Field::Name,
    Field::Id,
    Field::PrivateIp,
    Field::PublicIp,
    Field::Platform,
    Field::Type,
    Field::Zone,
    Field::Account,
];

/// One row's prepared search text (already sanitised, so positions match the screen).
#[derive(Debug, Clone)]
pub struct Haystack {
    pub text: String,
    /// Char offset at which each field of `FIELDS` starts in `text` (u32: one per row
    /// of a big fleet, and a row's text is nowhere near 4 GiB).
    starts: [u32; FIELDS.len()],
}

impl Haystack {
    pub fn new(i: &Instance) -> Self {
        let label = i.platform_label();
        let (name, platform) = (sanitize(i.display_name()), sanitize(&label));
        let account = i.account_label();
        let account = sanitize(&account);
        let values: [&str; FIELDS.len()] = [
            &name,
            &i.id,
            i.private_ip.as_deref().unwrap_or_default(),
            i.public_ip.as_deref().unwrap_or_default(),
            &platform,
            i.instance_type.as_deref().unwrap_or_default(),
            i.availability_zone.as_deref().unwrap_or_default(),
            &account,
        ];
        let mut text = String::with_capacity(values.iter().map(|v| v.len() + 1).sum());
        let mut starts = [0; FIELDS.len()];
        let mut chars = 0;
        for (n, v) in values.iter().enumerate() {
            if n > 0 {
                text.push(' ');
                chars += 1;
            }
            starts[n] = u32::try_from(chars).unwrap_or(u32::MAX);
            text.push_str(v);
            chars += if v.is_ascii() {
                v.len()
            } else {
                v.chars().count()
            };
        }
        Haystack { text, starts }
    }

    /// Maps haystack char positions to positions within `field`'s own text.
    pub fn positions_in(&self, field: Field, positions: &[usize]) -> Vec<usize> {
        let n = FIELDS.iter().position(|f| *f == field).unwrap_or(0);
        let start = self.starts[n] as usize;
        let end = self
            .starts
            .get(n + 1)
            .map_or(usize::MAX, |&s| s as usize - 1);
        positions
            .iter()
            .filter(|p| (start..end).contains(p))
            .map(|p| p - start)
            .collect()
    }
}

/// A matching row: its index in the fleet and its score (higher is better).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Hit {
    pub index: u32,
    pub score: i64,
}

/// One query term, prepared for the prefilter.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Term {
    text: String,
    /// skim's smart case: a term with an ASCII capital letter matches case-sensitively.
    exact_case: bool,
    /// Bytes that a matching row's text holds in this order: the term itself when
    /// `exact_case`, else its ASCII lower case (looked for in the folded text).
    needle: Vec<u8>,
}

impl Term {
    fn new(text: &str) -> Term {
        let exact_case = text.bytes().any(|b| b.is_ascii_uppercase());
        let needle = if exact_case {
            text.as_bytes().to_vec()
        } else {
            text.to_ascii_lowercase().into_bytes()
        };
        Term {
            text: text.to_string(),
            exact_case,
            needle,
        }
    }

    /// True when every row matching `self` also matches `wider`: `wider` is a char
    /// subsequence of `self` (a capital in `wider` is in `self` too, so the case rule
    /// can only get stricter).
    fn narrows(&self, wider: &Term) -> bool {
        let mut chars = self.text.chars();
        wider.text.chars().all(|w| chars.any(|c| c == w))
    }
}

/// The rows matching one query and their scores: `rows` ascending, and per row the
/// score of the last term and the total. The root (no terms) keeps no scores.
#[derive(Debug, Default)]
struct Found {
    rows: Vec<u32>,
    last: Vec<i64>,
    total: Vec<i64>,
    ranked: Vec<Hit>,
}

impl Found {
    fn total(&self, k: usize) -> i64 {
        self.total.get(k).copied().unwrap_or(0)
    }

    fn last(&self, k: usize) -> i64 {
        self.last.get(k).copied().unwrap_or(0)
    }
}

/// A query's terms and what they found.
#[derive(Debug)]
struct Level {
    terms: Vec<Term>,
    found: Found,
}

/// How a query's result follows from a level below it on the stack.
enum Step {
    /// Only the last term differs and narrows: rescore it; the others' sum is known.
    ChangeLast,
    /// One term more: score it; the others' sum is the level's total.
    AddTerm,
    /// Every row matching the query matched the level: rescore all terms on its rows.
    Narrow,
}

fn step(from: &[Term], to: &[Term]) -> Option<Step> {
    let (n, m) = (from.len(), to.len());
    if m == n + 1 && from == &to[..n] {
        return Some(Step::AddTerm);
    }
    if m == n && n > 0 && from[..n - 1] == to[..n - 1] && to[n - 1].narrows(&from[n - 1]) {
        return Some(Step::ChangeLast);
    }
    (n <= m && from.iter().zip(to).all(|(f, t)| t.narrows(f))).then_some(Step::Narrow)
}

/// Candidates at or above this many rows are split across threads.
const PARALLEL_MIN: usize = 2048;

/// Deciding spans longer than this are first cut to their head where provably
/// equal (see `SearchIndex::head`); shorter ones cost skim less than the extra call.
const HEAD_MIN: usize = 24;

type Memo<'a> = HashMap<&'a str, Option<i64>, foldhash::fast::FixedState>;

/// The prepared rows of one inventory plus the matcher and the results of the query
/// typed so far and of its prefixes.
pub struct SearchIndex {
    rows: Vec<Haystack>,
    /// Every row's text in ASCII lower case, back to back: row `i` is
    /// `folded[bounds[i]..bounds[i + 1]]`. Contiguous, so the prefilter streams.
    folded: Vec<u8>,
    bounds: Vec<usize>,
    matcher: SkimMatcherV2,
    /// `levels[0]` is the empty query (every row); each level above narrows the one below.
    levels: Vec<Level>,
    threads: usize,
}

impl SearchIndex {
    pub fn new(instances: &[Instance]) -> Self {
        let rows: Vec<Haystack> = instances.iter().map(Haystack::new).collect();
        let mut folded = Vec::with_capacity(rows.iter().map(|r| r.text.len()).sum());
        let mut bounds = Vec::with_capacity(rows.len() + 1);
        bounds.push(0);
        for r in &rows {
            folded.extend(r.text.bytes().map(|b| b.to_ascii_lowercase()));
            bounds.push(folded.len());
        }
        let n = rows.len() as u32;
        let root = Level {
            terms: Vec::new(),
            found: Found {
                rows: (0..n).collect(),
                ranked: (0..n).map(|index| Hit { index, score: 0 }).collect(),
                ..Found::default()
            },
        };
        SearchIndex {
            rows,
            folded,
            bounds,
            matcher: SkimMatcherV2::default().smart_case(),
            levels: vec![root],
            threads: std::thread::available_parallelism().map_or(1, |n| n.get().min(8)),
        }
    }

    pub fn len(&self) -> usize {
        self.rows.len()
    }

    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    pub fn haystack(&self, index: u32) -> &Haystack {
        &self.rows[index as usize]
    }

    /// Rows matching `query`, best first. A query typed on from the last one scores
    /// only what changed; one seen on the way here (a deletion) is answered from memory.
    pub fn search(&mut self, query: &str) -> &[Hit] {
        let terms: Vec<Term> = query.split_whitespace().map(Term::new).collect();
        loop {
            let top = self.levels.last().expect("the root level is never popped");
            if top.terms == terms {
                break;
            }
            if let Some(step) = step(&top.terms, &terms) {
                let found = self.find(top, &terms, step);
                self.levels.push(Level { terms, found });
                break;
            }
            self.levels.pop();
        }
        &self.levels[self.levels.len() - 1].found.ranked
    }

    /// The rows of `from` that match `terms`, scored.
    fn find<'s>(&'s self, from: &Level, terms: &[Term], step: Step) -> Found {
        let prev = &from.found;
        let (scored, base): (&[Term], Box<dyn Fn(usize) -> i64 + Sync + '_>) = match step {
            Step::AddTerm => (&terms[terms.len() - 1..], Box::new(|k| prev.total(k))),
            Step::ChangeLast => (
                &terms[terms.len() - 1..],
                Box::new(|k| prev.total(k) - prev.last(k)),
            ),
            Step::Narrow => (terms, Box::new(|_| 0)),
        };
        let work = |from: usize, to: usize, memo: &mut Memo<'s>| -> Found {
            let mut out = Found::default();
            'rows: for k in from..to {
                let row = prev.rows[k];
                if !scored.iter().all(|t| self.may_match(row, t)) {
                    continue;
                }
                let (mut sum, mut last) = (0, 0);
                for t in scored {
                    let Some(s) = self.score(row, t, memo) else {
                        continue 'rows;
                    };
                    sum += s;
                    last = s;
                }
                out.rows.push(row);
                out.last.push(last);
                out.total.push(base(k) + sum);
            }
            out
        };
        let n = prev.rows.len();
        let mut found = if n < PARALLEL_MIN || self.threads == 1 {
            work(0, n, &mut Memo::default())
        } else {
            // Small chunks handed out as threads free up: rows cost fuzzy-matcher
            // very different amounts, so equal halves would leave one core idle.
            let chunks = self.threads * 8;
            let cut = |c: usize| n * c / chunks;
            let next = std::sync::atomic::AtomicUsize::new(0);
            let take = || {
                let (mut done, mut memo) = (Vec::new(), Memo::default());
                loop {
                    let c = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    if c >= chunks {
                        return done;
                    }
                    done.push((c, work(cut(c), cut(c + 1), &mut memo)));
                }
            };
            let mut parts = std::thread::scope(|s| {
                let helpers: Vec<_> = (1..self.threads).map(|_| s.spawn(take)).collect();
                let mut parts = take();
                for h in helpers {
                    // A panic in fuzzy-matcher is a bug there; re-raise it here.
                    parts.extend(h.join().unwrap_or_else(|p| std::panic::resume_unwind(p)));
                }
                parts
            });
            parts.sort_unstable_by_key(|(c, _)| *c);
            let mut found = Found::default();
            for (_, part) in parts {
                found.rows.extend(part.rows);
                found.last.extend(part.last);
                found.total.extend(part.total);
            }
            found
        };
        found.ranked = rank(&found.rows, &found.total);
        found
    }

    /// The exact byte test behind skim's own first check (the term's chars in order,
    /// ASCII case folded unless the term has a capital), on prepared bytes.
    fn may_match(&self, row: u32, term: &Term) -> bool {
        is_subsequence(&term.needle, self.bytes(row, term))
    }

    /// The row's text as the term is compared with it: folded unless the term has a capital.
    fn bytes(&self, row: u32, term: &Term) -> &[u8] {
        let row = row as usize;
        if term.exact_case {
            self.rows[row].text.as_bytes()
        } else {
            &self.folded[self.bounds[row]..self.bounds[row + 1]]
        }
    }

    /// fuzzy-matcher's score of `term` on the row, asked about the part of the text
    /// that can change it, and only once per distinct part in a pass (rows share
    /// tails such as platform, type and zone, and heads such as a name's prefix).
    fn score<'a>(&'a self, row: u32, term: &Term, memo: &mut Memo<'a>) -> Option<i64> {
        let choice = self.choice(row, term);
        if choice.len() > HEAD_MIN {
            if let Some(span) = self.head(row, term, choice, memo) {
                return self.memo_match(span, term, memo);
            }
        }
        self.memo_match(choice, term, memo)
    }

    /// fuzzy-matcher's score of `span`, once per distinct span in a pass.
    fn memo_match<'a>(&'a self, span: &'a str, term: &Term, memo: &mut Memo<'a>) -> Option<i64> {
        *memo
            .entry(span)
            .or_insert_with(|| self.fresh_match(span, &term.text))
    }

    /// For a two- or three-char term on an ASCII span: the head of the span that
    /// scores like the whole of it, when alignments ending further on provably score
    /// no more.
    ///
    /// skim (fuzzy-matcher 0.3.7, default `SkimScoreConfig`, a fresh matrix: see
    /// `fresh_match`) scores an alignment char by char: the term's first char at
    /// column c `16 - 1 + bonus(c)`, each next char `16 + consecutive` right after the
    /// one before it, else `16 - 3 - gap + bonus`, with a case mismatch 2 less. A bonus
    /// is at most 8 (a word head), doubled to 16 on the span's first column only; the
    /// consecutive bonus takes the larger of 4, the column's bonus and the one carried
    /// from the columns before it, all at most 8 past the first column. A three-char
    /// term's matrix also lets its third char follow a gap from a cell left at -1,
    /// which scores at most `16 + 8 - 1 = 23`. So, for a term of `k` chars:
    ///
    /// - an alignment whose first char is not on the span's first column scores at
    ///   most `23 + 24 (k - 1)`;
    /// - one starting on column `c` and ending on `pos` with a gap (so
    ///   `pos - c - (k - 1)` columns skipped) scores at most
    ///   `b + 24 (k - 1) - 3 - (pos - c - (k - 1))`, `b` being 31 when the span's first
    ///   char is the term's first char and 23 otherwise; with `c` at most the last
    ///   place `l` of that char (or 0 when the floor below already reaches the first
    ///   bound), every alignment ending at or after `l + k` has a gap;
    /// - the -1 cell gives at most 23, below any floor that allows a cut.
    ///
    /// Scoring the shortest head holding a match gives a floor `s1` of the span's
    /// score; alignments ending where these bounds fall to `s1` or below cannot beat
    /// it, so the head that ends at the last place of the term's last char before that
    /// column has the span's score. The property tests hold this against whole-text
    /// scoring.
    fn head<'a>(
        &'a self,
        row: u32,
        term: &Term,
        span: &'a str,
        memo: &mut Memo<'a>,
    ) -> Option<&'a str> {
        let k = term.needle.len();
        if !(2..=3).contains(&k) || !span.is_ascii() {
            return None;
        }
        let (first, last) = (term.needle[0], term.needle[k - 1]);
        let text = &self.rows[row as usize].text;
        let at = span.as_ptr() as usize - text.as_ptr() as usize;
        let bytes = &self.bytes(row, term)[at..at + span.len()];
        let cut1 = first_match_end(&term.needle, bytes)?;
        let s1 = self.memo_match(&span[..=cut1], term, memo)?;
        let more = k as i64 - 1;
        // The last column an alignment worth scoring can start on, and the most its
        // first char can score there.
        let last_start = if s1 >= 23 + 24 * more {
            if bytes[0] != first {
                return Some(&span[..=cut1]); // no alignment starts on the first column
            }
            0
        } else if k == 3 && s1 < 23 {
            return None; // the matrix's own -1 start could still beat the floor
        } else {
            memchr::memrchr(first, bytes)? as i64
        };
        let first_best = if bytes[0] == first { 31 } else { 23 };
        let drop_from = (first_best + 25 * more - 3 + last_start - s1).max(last_start + k as i64);
        let drop_from = drop_from as usize;
        if drop_from >= bytes.len() {
            return None; // nothing to drop: the whole span decides
        }
        let cut2 = memchr::memrchr(last, &bytes[..drop_from]).unwrap_or(cut1);
        Some(&span[..=cut2.max(cut1)])
    }

    /// The span of the row's text that decides an ASCII term's score: from the char
    /// before the first place its first char occurs to the last place its last char
    /// does. skim's matrix starts at the first occurrence (the char before it only
    /// sets that column's bonus) and no alignment ends after the last one, so the
    /// columns outside are dead and the score is the same (the property tests hold
    /// this against whole-text scoring).
    fn choice(&self, row: u32, term: &Term) -> &str {
        let text = &self.rows[row as usize].text;
        let (Some(&first), Some(&last)) = (term.needle.first(), term.needle.last()) else {
            return text;
        };
        if !term.text.is_ascii() {
            return text;
        }
        let bytes = self.bytes(row, term);
        let (Some(at), Some(end)) = (memchr::memchr(first, bytes), memchr::memrchr(last, bytes))
        else {
            return text;
        };
        if end < at {
            return text; // no match at all; skim will say so
        }
        let start = text[..at].char_indices().next_back().map_or(0, |(i, _)| i);
        &text[start..end + 1]
    }

    /// fuzzy-matcher's score as a fresh matcher gives it. SkimMatcherV2 (0.3.7) keeps
    /// its score matrix between calls and reads one stale cell, so a score could depend
    /// on the calls before it; a one-column call first shrinks the matrix, and the real
    /// call then grows it back with fresh cells.
    fn fresh_match(&self, choice: &str, pattern: &str) -> Option<i64> {
        self.matcher.fuzzy_match(" ", " ");
        self.matcher.fuzzy_match(choice, pattern)
    }

    /// Char positions in the row's haystack that the query matched, for highlighting.
    pub fn positions(&self, index: u32, query: &str) -> Vec<usize> {
        let row = &self.rows[index as usize];
        let mut out: Vec<usize> = query
            .split_whitespace()
            .filter_map(|t| {
                self.matcher.fuzzy_match(" ", " ");
                self.matcher.fuzzy_indices(&row.text, t)
            })
            .flat_map(|(_, idx)| idx)
            .collect();
        out.sort_unstable();
        out.dedup();
        out
    }
}

/// Hits best first, ties in fleet order. `rows` is ascending, so a stable counting
/// sort by score does it in linear time when the scores span a modest range.
fn rank(rows: &[u32], total: &[i64]) -> Vec<Hit> {
    let hits = rows
        .iter()
        .zip(total)
        .map(|(&index, &score)| Hit { index, score });
    let (Some(&lo), Some(&hi)) = (total.iter().min(), total.iter().max()) else {
        return Vec::new();
    };
    let span = hi.abs_diff(lo) as usize;
    if span > 4 * rows.len() + 4096 {
        let mut v: Vec<Hit> = hits.collect();
        v.sort_unstable_by_key(|h| (Reverse(h.score), h.index));
        return v;
    }
    // Slot of each score, best first.
    let slot = |score: i64| hi.abs_diff(score) as usize;
    let mut starts = vec![0usize; span + 2];
    for &s in total {
        starts[slot(s) + 1] += 1;
    }
    for i in 1..starts.len() {
        starts[i] += starts[i - 1];
    }
    let mut out = vec![Hit { index: 0, score: 0 }; rows.len()];
    for h in hits {
        let at = &mut starts[slot(h.score)];
        out[*at] = h;
        *at += 1;
    }
    out
}

/// `needle` occurs in `hay` in order (the bytes need not be adjacent).
fn is_subsequence(needle: &[u8], hay: &[u8]) -> bool {
    let mut rest = hay;
    for &b in needle {
        match memchr::memchr(b, rest) {
            Some(at) => rest = &rest[at + 1..],
            None => return false,
        }
    }
    true
}

/// Where the earliest match of `needle` in `hay` ends (the index of its last byte).
fn first_match_end(needle: &[u8], hay: &[u8]) -> Option<usize> {
    let mut end = None;
    let mut from = 0;
    for &b in needle {
        let at = from + memchr::memchr(b, &hay[from..])?;
        end = Some(at);
        from = at + 1;
    }
    end
}

/// Filters a fleet for `ec2ssh list --filter`: matches, best first.
pub fn filter_instances<'a>(instances: &'a [Instance], query: &str) -> Vec<&'a Instance> {
    let mut idx = SearchIndex::new(instances);
    idx.search(query)
        .iter()
        .map(|h| &instances[h.index as usize])
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn inst(id: &str, name: &str, ip: &str) -> Instance {
        Instance {
            id: id.into(),
            name: Some(name.into()),
            private_ip: Some(ip.into()),
            instance_type: Some("t3.micro".into()),
            availability_zone: Some("us-east-1a".into()),
            platform_name: Some("Ubuntu".into()),
            ..Default::default()
        }
    }

    fn fleet() -> Vec<Instance> {
        vec![
            inst("i-0aaa", "db-prod-1", "10.0.0.5"),
            inst("i-0bbb", "web-prod-1", "10.0.1.7"),
            inst("i-0ccc", "web-staging-2", "10.0.2.9"),
            inst("i-0ddd", "batch-worker", "10.0.3.3"),
        ]
    }

    fn names(idx: &mut SearchIndex, q: &str, f: &[Instance]) -> Vec<String> {
        idx.search(q)
            .iter()
            .map(|h| f[h.index as usize].display_name().to_string())
            .collect()
    }

    #[test]
    fn empty_query_keeps_fleet_order() {
        let f = fleet();
        let mut idx = SearchIndex::new(&f);
        assert_eq!(names(&mut idx, "  ", &f).len(), 4);
        assert_eq!(names(&mut idx, "", &f)[0], "db-prod-1");
    }

    #[test]
    fn best_match_first_and_all_terms_required() {
        let f = fleet();
        let mut idx = SearchIndex::new(&f);
        assert_eq!(names(&mut idx, "webprod", &f)[0], "web-prod-1");
        assert_eq!(names(&mut idx, "web stag", &f), ["web-staging-2"]);
        assert!(names(&mut idx, "zzz", &f).is_empty());
    }

    #[test]
    fn matches_ids_and_ips() {
        let f = fleet();
        let mut idx = SearchIndex::new(&f);
        assert_eq!(names(&mut idx, "i-0ccc", &f)[0], "web-staging-2");
        assert_eq!(names(&mut idx, "10.0.3.3", &f)[0], "batch-worker");
    }

    #[test]
    fn narrowing_and_widening_agree_with_a_fresh_search() {
        let f = fleet();
        let mut idx = SearchIndex::new(&f);
        for q in ["w", "we", "web", "web ", "web p", "web", "we", "d", "db"] {
            let incremental = names(&mut idx, q, &f);
            let fresh = names(&mut SearchIndex::new(&f), q, &f);
            assert_eq!(incremental, fresh, "query {q:?}");
        }
    }

    #[test]
    fn positions_map_to_fields() {
        let f = fleet();
        let idx = SearchIndex::new(&f);
        let pos = idx.positions(1, "web");
        let hay = idx.haystack(1);
        assert_eq!(hay.positions_in(Field::Name, &pos), [0, 1, 2]);
        assert!(hay.positions_in(Field::Id, &pos).is_empty());
        let pos = idx.positions(1, "0bbb");
        assert_eq!(hay.positions_in(Field::Id, &pos), [2, 3, 4, 5]);
    }

    #[test]
    fn hostile_names_are_searched_as_shown() {
        let f = vec![inst("i-1", "evil\u{1b}[2Jname", "1.1.1.1")];
        let idx = SearchIndex::new(&f);
        assert!(idx.haystack(0).text.starts_with("evil␛[2Jname"));
    }

    /// What the index must agree with: fuzzy-matcher asked about every term of every
    /// row, totals sorted best first, ties in fleet order.
    /// A fresh matcher per call: SkimMatcherV2 reuses its matrix and one stale cell
    /// can leak between calls (see `fresh_match`).
    fn plain(idx: &SearchIndex, query: &str) -> Vec<Hit> {
        let terms: Vec<&str> = query.split_whitespace().collect();
        let mut hits: Vec<Hit> = (0..idx.len() as u32)
            .filter_map(|index| {
                let text = &idx.haystack(index).text;
                let mut score = 0;
                for t in &terms {
                    score += SkimMatcherV2::default().smart_case().fuzzy_match(text, t)?;
                }
                Some(Hit { index, score })
            })
            .collect();
        hits.sort_by(|a, b| b.score.cmp(&a.score).then(a.index.cmp(&b.index)));
        hits
    }

    fn named(names: &[String]) -> Vec<Instance> {
        names
            .iter()
            .enumerate()
            .map(|(k, n)| {
                inst(
                    &format!("i-{k:04x}"),
                    n,
                    &format!("10.0.{}.{}", k / 256, k % 256),
                )
            })
            .collect()
    }

    #[derive(Debug, Clone)]
    enum Edit {
        Type(char),
        Backspace,
        DeleteWord,
        Clear,
    }

    fn apply(q: &mut String, e: &Edit) {
        match e {
            Edit::Type(c) => q.push(*c),
            Edit::Backspace => {
                q.pop();
            }
            Edit::DeleteWord => {
                let kept = q.trim_end().rfind(char::is_whitespace).map_or(0, |i| i + 1);
                q.truncate(kept);
            }
            Edit::Clear => q.clear(),
        }
    }

    fn edit() -> impl Strategy<Value = Edit> {
        prop_oneof![
            6 => proptest::sample::select(vec!['w', 'e', 'b', 'W', 'E', 'p', '1', '0', '-', ' ', 'é', 'İ', 'x'])
                .prop_map(Edit::Type),
            2 => Just(Edit::Backspace),
            1 => Just(Edit::DeleteWord),
            1 => Just(Edit::Clear),
        ]
    }

    use proptest::prelude::*;

    proptest! {
        /// Typing, deleting and clearing in any order ranks exactly like a plain pass.
        #[test]
        fn ranking_equals_a_plain_fuzzy_matcher_pass(
            names in proptest::collection::vec("[webpWEP10 .éİ-]{0,14}", 0..40),
            edits in proptest::collection::vec(edit(), 1..40),
        ) {
            let f = named(&names);
            let mut idx = SearchIndex::new(&f);
            let mut q = String::new();
            for e in &edits {
                apply(&mut q, e);
                let got = idx.search(&q).to_vec();
                prop_assert_eq!(got, plain(&idx, &q), "query {:?}", q);
            }
        }
    }

    proptest! {
        /// The span `choice` keeps scores like the whole text, for any text and term.
        #[test]
        fn the_deciding_span_scores_like_the_whole_text(
            text in "[a-cA-C0-9 ./()_é-]{1,40}",
            term in "[a-cA-C0-9./_-]{1,5}",
        ) {
            let f = vec![inst("i-1", &text, "")];
            let idx = SearchIndex::new(&f);
            let t = Term::new(&term);
            let whole = SkimMatcherV2::default().smart_case().fuzzy_match(&idx.haystack(0).text, &term);
            let span = idx.choice(0, &t);
            prop_assert_eq!(whole, idx.fresh_match(span, &term), "span {:?}", span);
        }
    }

    proptest! {
        /// A row's score (deciding span, its head for two-char terms, the memo) equals
        /// the whole text's, for long ASCII rows full of separators and capitals.
        #[test]
        fn a_rows_score_is_the_whole_texts(
            texts in proptest::collection::vec("[weWE0 ./_(-]{1,90}", 1..6),
            term in "[weWE0./-]{1,3}",
        ) {
            let f: Vec<Instance> = texts.iter().map(|t| inst("i-1", t, "")).collect();
            let idx = SearchIndex::new(&f);
            let t = Term::new(&term);
            let mut memo = Memo::default();
            for row in 0..f.len() as u32 {
                let whole = SkimMatcherV2::default().smart_case().fuzzy_match(&idx.haystack(row).text, &term);
                let got = if idx.may_match(row, &t) { idx.score(row, &t, &mut memo) } else { None };
                prop_assert_eq!(got, whole, "row {:?}", idx.haystack(row).text);
            }
        }
    }

    proptest! {
        /// Rows holding the term whole near their start, where a high floor lets
        /// `head` cut hardest, still score like the whole text.
        #[test]
        fn a_row_led_by_its_term_scores_like_the_whole_text(
            lead in "[ ./(-]{0,2}",
            term in "[webWE0./-]{2,3}",
            tails in proptest::collection::vec("[webWEB0 ./_(-]{0,80}", 1..6),
        ) {
            let f: Vec<Instance> = tails.iter().map(|t| inst("i-1", &format!("{lead}{term}{t}"), "")).collect();
            let idx = SearchIndex::new(&f);
            let t = Term::new(&term);
            let mut memo = Memo::default();
            for row in 0..f.len() as u32 {
                let text = &idx.haystack(row).text;
                let whole = SkimMatcherV2::default().smart_case().fuzzy_match(text, &term);
                prop_assert_eq!(idx.score(row, &t, &mut memo), whole, "row {:?}", text);
            }
        }
    }

    #[test]
    fn scores_do_not_depend_on_earlier_calls() {
        let f = vec![
            inst("i-1", "Eeee0wépwPE", "10.0.0.5"),
            inst("i-2", "wEW  E éé0E", "10.0.0.11"),
        ];
        let idx = SearchIndex::new(&f);
        let fresh = |q: &str| {
            SkimMatcherV2::default()
                .smart_case()
                .fuzzy_match(&idx.haystack(0).text, q)
        };
        // Earlier calls leave the shared matrix in another state.
        idx.matcher.fuzzy_match(&idx.haystack(1).text, "ee");
        assert_eq!(idx.fresh_match(&idx.haystack(0).text, "eee"), fresh("eee"));
    }

    /// Big enough to split the work across threads.
    #[test]
    fn a_big_fleet_typed_and_deleted_ranks_like_a_plain_pass() {
        let roles = ["web", "api", "db", "Worker", "bastion"];
        let names: Vec<String> = (0..3 * PARALLEL_MIN)
            .map(|k| {
                format!(
                    "{}-{}-{:04}",
                    roles[k % 5],
                    ["prod", "dev"][k / 5 % 2],
                    k % 997
                )
            })
            .collect();
        let f = named(&names);
        let mut idx = SearchIndex::new(&f);
        let mut q = String::new();
        let typing = "web prod 42".chars().map(Edit::Type);
        let deleting = std::iter::repeat_n(Edit::Backspace, 4);
        let more = "W 1".chars().map(Edit::Type);
        for e in typing
            .chain(deleting)
            .chain(more)
            .chain([Edit::DeleteWord, Edit::Clear])
        {
            apply(&mut q, &e);
            let got = idx.search(&q).to_vec();
            assert_eq!(got, plain(&idx, &q), "query {q:?}");
        }
    }

    #[test]
    fn ranking_by_counting_sort_and_by_comparison_agree() {
        let rows = [0, 3, 4, 9, 12];
        let narrow = [5, 7, 5, -2, 7];
        let wide = [5, i64::MAX / 2, 5, i64::MIN / 2, 7];
        let order = |hits: Vec<Hit>| hits.iter().map(|h| h.index).collect::<Vec<_>>();
        assert_eq!(order(rank(&rows, &narrow)), [3, 12, 0, 4, 9]);
        assert_eq!(order(rank(&rows, &wide)), [3, 12, 0, 4, 9]);
        assert_eq!(rank(&[], &[]), []);
    }

    #[test]
    fn a_term_narrows_only_to_a_term_holding_it() {
        let t = Term::new;
        assert!(t("web").narrows(&t("wb")));
        assert!(
            t("wEb").narrows(&t("wb")),
            "a capital only makes it stricter"
        );
        assert!(
            !t("web").narrows(&t("wE")),
            "a case-sensitive term is not held"
        );
        assert!(!t("we").narrows(&t("web")));
        assert!(t("é1").narrows(&t("é")));
    }

    #[test]
    fn subsequence_prefilter() {
        assert!(is_subsequence(b"wp1", b"web-prod-1"));
        assert!(!is_subsequence(b"pw", b"web-p"));
        assert!(is_subsequence(b"", b"x"));
    }
}
