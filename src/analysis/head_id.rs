//! A head named by its layer and its index in the layer: printed and parsed as `"L.H"` (the
//! key of every head's rows in reports, exports and URLs), with `"L.*"` for a whole layer in
//! lists. The one place that format is written or read.

use std::fmt;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct HeadId {
    pub layer: usize,
    pub head: usize,
}

impl HeadId {
    pub fn new(layer: usize, head: usize) -> Self {
        HeadId { layer, head }
    }

    /// `"L.H"` of (layer, head).
    pub fn key(layer: usize, head: usize) -> String {
        HeadId::new(layer, head).to_string()
    }

    /// `"L.H"` → the head; anything else (`"L.*"` included) → None.
    pub fn parse(s: &str) -> Option<HeadId> {
        let (l, h) = s.trim().split_once('.')?;
        Some(HeadId::new(l.parse().ok()?, h.parse().ok()?))
    }

    /// A comma-separated list of `"L.H"` and `"L.*"` (every head of layer L, given `n_head`);
    /// empty parts are skipped. The first part that is neither gives `Err(part)`.
    pub fn parse_list(s: &str, n_head: usize) -> Result<Vec<HeadId>, String> {
        let mut out = vec![];
        for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            match part.split_once('.') {
                Some((l, "*")) => {
                    let l: usize = l.parse().map_err(|_| part.to_string())?;
                    out.extend((0..n_head).map(|h| HeadId::new(l, h)));
                }
                _ => out.push(HeadId::parse(part).ok_or_else(|| part.to_string())?),
            }
        }
        Ok(out)
    }

    pub fn pair(self) -> (usize, usize) {
        (self.layer, self.head)
    }
}

impl fmt::Display for HeadId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.layer, self.head)
    }
}

impl From<(usize, usize)> for HeadId {
    fn from((layer, head): (usize, usize)) -> Self {
        HeadId { layer, head }
    }
}

#[cfg(test)]
mod tests {
    use super::HeadId;

    #[test]
    fn keys_and_lists_round_trip() {
        assert_eq!(HeadId::key(12, 3), "12.3");
        assert_eq!(HeadId::parse(" 12.3 "), Some(HeadId::new(12, 3)));
        for bad in ["12", "12.", ".3", "a.b", "1.2.3", "-1.2", "1.*"] {
            assert_eq!(HeadId::parse(bad), None, "{bad}");
        }
        let l = HeadId::parse_list("3.1, 2.*,,0.0", 3).unwrap();
        assert_eq!(l.iter().map(|h| h.to_string()).collect::<Vec<_>>(), ["3.1", "2.0", "2.1", "2.2", "0.0"]);
        assert_eq!(HeadId::parse_list("1.2,x", 4), Err("x".to_string()));
        assert_eq!(HeadId::parse_list("", 4), Ok(vec![]));
    }
}
