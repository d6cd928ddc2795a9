//! An instance's tags: a map from key to value kept as one sorted, exactly sized
//! vector. A `BTreeMap` allocated a node of eleven slots for every instance whatever
//! its tag count (about 550 bytes, a fifth of a row's memory in a big fleet); this
//! holds only the pairs. Reads, iterates, serialises and compares as the map did.

use std::fmt;

use serde::de::{MapAccess, Visitor};
use serde::ser::SerializeMap;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Key → value, in key order, each key once.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Tags(Vec<(String, String)>);

impl Tags {
    pub fn new() -> Self {
        Tags(Vec::new())
    }

    pub fn get(&self, key: &str) -> Option<&String> {
        self.find(key).ok().map(|k| &self.0[k].1)
    }

    /// Sets `key` to `value`; the value it had, if any.
    pub fn insert(&mut self, key: String, value: String) -> Option<String> {
        match self.find(&key) {
            Ok(k) => Some(std::mem::replace(&mut self.0[k].1, value)),
            Err(k) => {
                self.0.insert(k, (key, value));
                None
            }
        }
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Pairs in key order.
    pub fn iter(&self) -> impl Iterator<Item = (&String, &String)> {
        self.0.iter().map(|(k, v)| (k, v))
    }

    fn find(&self, key: &str) -> Result<usize, usize> {
        self.0.binary_search_by(|(k, _)| k.as_str().cmp(key))
    }
}

/// As a map: a repeated key keeps its last value.
impl FromIterator<(String, String)> for Tags {
    fn from_iter<I: IntoIterator<Item = (String, String)>>(pairs: I) -> Self {
        let mut v: Vec<(String, String)> = pairs.into_iter().collect();
        // Stable: of equal keys the last comes last, and is the one kept.
        v.sort_by(|a, b| a.0.cmp(&b.0));
        let mut out: Vec<(String, String)> = Vec::with_capacity(v.len());
        for pair in v {
            match out.last_mut() {
                Some(last) if last.0 == pair.0 => *last = pair,
                _ => out.push(pair),
            }
        }
        out.shrink_to_fit();
        Tags(out)
    }
}

impl<const N: usize> From<[(String, String); N]> for Tags {
    fn from(pairs: [(String, String); N]) -> Self {
        pairs.into_iter().collect()
    }
}

impl<'a> IntoIterator for &'a Tags {
    type Item = (&'a String, &'a String);
    type IntoIter = std::iter::Map<
        std::slice::Iter<'a, (String, String)>,
        fn(&'a (String, String)) -> (&'a String, &'a String),
    >;

    fn into_iter(self) -> Self::IntoIter {
        self.0.iter().map(|(k, v)| (k, v))
    }
}

impl fmt::Debug for Tags {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map().entries(self.iter()).finish()
    }
}

impl Serialize for Tags {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(Some(self.0.len()))?;
        for (k, v) in &self.0 {
            map.serialize_entry(k, v)?;
        }
        map.end()
    }
}

impl<'de> Deserialize<'de> for Tags {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Pairs;
        impl<'de> Visitor<'de> for Pairs {
            type Value = Tags;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a map of tag keys to values")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Tags, A::Error> {
                let mut pairs = Vec::with_capacity(map.size_hint().unwrap_or(0));
                while let Some(pair) = map.next_entry::<String, String>()? {
                    pairs.push(pair);
                }
                Ok(pairs.into_iter().collect())
            }
        }
        d.deserialize_map(Pairs)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    fn pairs(p: &[(&str, &str)]) -> Vec<(String, String)> {
        p.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    /// Whatever is put in, it reads, iterates and serialises as a BTreeMap of the same.
    #[test]
    fn behaves_as_the_map_it_replaces() {
        let input = pairs(&[
            ("b", "1"),
            ("a", "2"),
            ("b", "3"),
            ("Name", "web"),
            ("", "e"),
        ]);
        let tags: Tags = input.clone().into_iter().collect();
        let map: BTreeMap<String, String> = input.into_iter().collect();
        assert_eq!(tags.len(), map.len());
        assert!(tags.iter().eq(map.iter()));
        assert_eq!(tags.get("b").map(String::as_str), Some("3"));
        assert_eq!(tags.get("c"), None);
        assert_eq!(
            serde_json::to_string(&tags).unwrap(),
            serde_json::to_string(&map).unwrap()
        );
        let back: Tags = serde_json::from_str(r#"{"z":"1","a":"2","z":"3"}"#).unwrap();
        assert_eq!(back, pairs(&[("a", "2"), ("z", "3")]).into_iter().collect());
        assert_eq!(format!("{back:?}"), r#"{"a": "2", "z": "3"}"#);
    }

    #[test]
    fn insert_keeps_key_order_and_replaces() {
        let mut tags = Tags::new();
        assert!(tags.is_empty());
        assert_eq!(tags.insert("m".into(), "1".into()), None);
        assert_eq!(tags.insert("a".into(), "2".into()), None);
        assert_eq!(tags.insert("z".into(), "3".into()), None);
        assert_eq!(tags.insert("m".into(), "4".into()), Some("1".into()));
        let keys: Vec<&String> = (&tags).into_iter().map(|(k, _)| k).collect();
        assert_eq!(keys, ["a", "m", "z"]);
        assert_eq!(tags.get("m").map(String::as_str), Some("4"));
    }
}
