//! Fuzzy filtering shared by the picker and `ec2ssh list --filter`.
//!
//! Rows are turned into one search string each, once per inventory. A query is
//! whitespace-separated terms that must all match (skim's algorithm, smart case);
//! rows are ranked by total score, ties keeping fleet order. Typing more of a query
//! only narrows, so the previous result is the candidate set for the next
//! keystroke. Highlight positions are computed separately, for visible rows only.

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
}

pub const FIELDS: [Field; 7] = [
    Field::Name,
    Field::Id,
    Field::PrivateIp,
    Field::PublicIp,
    Field::Platform,
    Field::Type,
    Field::Zone,
];

/// One row's prepared search text (already sanitised, so positions match the screen).
#[derive(Debug, Clone)]
pub struct Haystack {
    pub text: String,
    lower: Vec<u8>,
    /// Char offset at which each field of `FIELDS` starts in `text`.
    starts: [usize; FIELDS.len()],
}

impl Haystack {
    pub fn new(i: &Instance) -> Self {
        let values = [
            sanitize(i.display_name()).into_owned(),
            i.id.clone(),
            i.private_ip.clone().unwrap_or_default(),
            i.public_ip.clone().unwrap_or_default(),
            sanitize(&i.platform_label()).into_owned(),
            i.instance_type.clone().unwrap_or_default(),
            i.availability_zone.clone().unwrap_or_default(),
        ];
        let mut text = String::new();
        let mut starts = [0; FIELDS.len()];
        let mut chars = 0;
        for (n, v) in values.iter().enumerate() {
            if n > 0 {
                text.push(' ');
                chars += 1;
            }
            starts[n] = chars;
            text.push_str(v);
            chars += v.chars().count();
        }
        let lower = text.to_lowercase().into_bytes();
        Haystack {
            text,
            lower,
            starts,
        }
    }

    /// Maps haystack char positions to positions within `field`'s own text.
    pub fn positions_in(&self, field: Field, positions: &[usize]) -> Vec<usize> {
        let n = FIELDS.iter().position(|f| *f == field).unwrap_or(0);
        let start = self.starts[n];
        let end = self.starts.get(n + 1).map_or(usize::MAX, |s| s - 1);
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

/// The prepared rows of one inventory plus the matcher and the last result.
pub struct SearchIndex {
    rows: Vec<Haystack>,
    matcher: SkimMatcherV2,
    last_query: String,
    last_hits: Vec<Hit>,
}

impl SearchIndex {
    pub fn new(instances: &[Instance]) -> Self {
        let rows = instances.iter().map(Haystack::new).collect();
        let mut idx = SearchIndex {
            rows,
            matcher: SkimMatcherV2::default().smart_case(),
            last_query: String::new(),
            last_hits: Vec::new(),
        };
        idx.last_hits = idx.all();
        idx
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

    fn all(&self) -> Vec<Hit> {
        (0..self.rows.len() as u32)
            .map(|index| Hit { index, score: 0 })
            .collect()
    }

    /// Rows matching `query`, best first. Reuses the previous result when the
    /// query only grew.
    pub fn search(&mut self, query: &str) -> &[Hit] {
        let terms: Vec<&str> = query.split_whitespace().collect();
        if terms.is_empty() {
            self.last_hits = self.all();
        } else if query != self.last_query {
            let narrows = narrows(&self.last_query, &terms);
            let candidates: Vec<u32> = if narrows {
                self.last_hits.iter().map(|h| h.index).collect()
            } else {
                (0..self.rows.len() as u32).collect()
            };
            let mut hits = self.score(&candidates, &terms);
            hits.sort_unstable_by(|a, b| b.score.cmp(&a.score).then(a.index.cmp(&b.index)));
            self.last_hits = hits;
        }
        self.last_query = query.to_string();
        &self.last_hits
    }

    /// Scores candidates on up to two threads (the machine we target has two cores).
    fn score(&self, candidates: &[u32], terms: &[&str]) -> Vec<Hit> {
        let lowered: Vec<Vec<u8>> = terms
            .iter()
            .map(|t| t.to_lowercase().into_bytes())
            .collect();
        let work = |chunk: &[u32]| -> Vec<Hit> {
            chunk
                .iter()
                .filter_map(|&index| {
                    let row = &self.rows[index as usize];
                    let mut score = 0;
                    for (term, low) in terms.iter().zip(&lowered) {
                        if !is_subsequence(low, &row.lower) {
                            return None;
                        }
                        score += self.matcher.fuzzy_match(&row.text, term)?;
                    }
                    Some(Hit { index, score })
                })
                .collect()
        };
        if candidates.len() < 20_000 {
            return work(candidates);
        }
        let (a, b) = candidates.split_at(candidates.len() / 2);
        std::thread::scope(|s| {
            let other = s.spawn(|| work(b));
            let mut hits = work(a);
            hits.extend(other.join().unwrap_or_default());
            hits
        })
    }

    /// Char positions in the row's haystack that the query matched, for highlighting.
    pub fn positions(&self, index: u32, query: &str) -> Vec<usize> {
        let row = &self.rows[index as usize];
        let mut out: Vec<usize> = query
            .split_whitespace()
            .filter_map(|t| self.matcher.fuzzy_indices(&row.text, t))
            .flat_map(|(_, idx)| idx)
            .collect();
        out.sort_unstable();
        out.dedup();
        out
    }
}

/// True when every row matching `new` also matches `old`: each old term is a
/// subsequence of the new term in its place (more terms only narrow further).
fn narrows(old: &str, new: &[&str]) -> bool {
    let old: Vec<&str> = old.split_whitespace().collect();
    !old.is_empty()
        && old.len() <= new.len()
        && old
            .iter()
            .zip(new)
            .all(|(o, n)| is_subsequence(o.as_bytes(), n.as_bytes()))
}

/// A cheap necessary condition for a fuzzy match: `needle` is a subsequence of `hay`
/// (both lower-cased bytes). Rejects most rows before the scoring matrix is built.
fn is_subsequence(needle: &[u8], hay: &[u8]) -> bool {
    let mut it = hay.iter();
    needle.iter().all(|n| it.any(|h| h == n))
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

    #[test]
    fn subsequence_prefilter() {
        assert!(is_subsequence(b"wp1", b"web-prod-1"));
        assert!(!is_subsequence(b"pw", b"web-p"));
        assert!(is_subsequence(b"", b"x"));
    }
}
