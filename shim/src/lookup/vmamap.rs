//! A map of the process's VMAs by address, in a fixed pool of memory: what
//! the mmap-events lookup ([`super::events`]) keeps between calls.
//!
//! Entries are disjoint `[start, end)` ranges in address order, stored in
//! chunks of up to [`CHUNK`] entries; a sorted index of chunks (with each
//! chunk's first start, for binary search) says where each address goes.
//! A lookup is two binary searches; an update touches one or two chunks and
//! shifts at most one chunk's entries plus the index. Nothing is allocated
//! once the map is built: an update that needs a chunk when none is free
//! fails with [`Full`], and the owner rebuilds the map bigger.

/// One VMA, as far as a verdict cares: range, device, inode, protection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Entry {
    pub start: u64,
    pub end: u64,
    pub ino: u64,
    /// `major << 20 | minor`, the kernel's own `new_encode_dev` split.
    pub dev: u32,
    /// [`READ`] | [`WRITE`] | [`EXEC`] | [`SHARED`].
    pub flags: u32,
}

pub const READ: u32 = 1;
pub const WRITE: u32 = 2;
pub const EXEC: u32 = 4;
pub const SHARED: u32 = 8;

/// Entries per chunk.
pub const CHUNK: usize = 64;
/// How full a build leaves each chunk, so updates rarely split one.
const FILL: usize = CHUNK * 3 / 4;

/// No free chunk left for an update: rebuild the map bigger.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Full;

#[derive(Clone, Copy)]
struct Chunk {
    len: usize,
    e: [Entry; CHUNK],
}

const EMPTY: Chunk = Chunk { len: 0, e: [Entry { start: 0, end: 0, ino: 0, dev: 0, flags: 0 }; CHUNK] };

/// The map. `order[k]` is the k-th chunk by address, `firsts[k]` its first start.
#[derive(Default)]
pub struct VmaMap {
    chunks: Vec<Chunk>,
    free: Vec<u32>,
    order: Vec<u32>,
    firsts: Vec<u64>,
    /// While building: chunks may be added beyond the pool.
    growing: bool,
}

impl VmaMap {
    /// Empties the map for a build, keeping its memory; until [`VmaMap::finish_build`]
    /// it grows as needed.
    pub fn start_build(&mut self) {
        self.free.clear();
        self.free.extend((0..self.chunks.len() as u32).rev());
        self.order.clear();
        self.firsts.clear();
        self.growing = true;
    }

    /// Ends a build: makes room for updates (about half as many entries
    /// again as the map holds, and at least 16 chunks) and stops growing.
    pub fn finish_build(&mut self) {
        let used = self.order.len();
        let want = used + (used / 2).max(16);
        if self.chunks.len() < want {
            let more = want - self.chunks.len();
            self.chunks.reserve_exact(more);
            self.free.reserve(more);
            for _ in 0..more {
                self.free.push(self.chunks.len() as u32);
                self.chunks.push(EMPTY);
            }
        }
        let total = self.chunks.len();
        self.order.reserve(total.saturating_sub(self.order.len()));
        self.firsts.reserve(total.saturating_sub(self.firsts.len()));
        self.free.reserve(total.saturating_sub(self.free.len()));
        self.growing = false;
    }

    /// Appends an entry above every other (a build reads maps in address
    /// order); an entry that does not start at or above the last end is dropped.
    pub fn push(&mut self, e: Entry) {
        if e.start >= e.end {
            return;
        }
        if let Some(&last) = self.order.last() {
            let c = &mut self.chunks[last as usize];
            if e.start < c.e[c.len - 1].end {
                return;
            }
            if c.len < FILL {
                c.e[c.len] = e;
                c.len += 1;
                return;
            }
        }
        let Ok(id) = self.new_chunk() else { return };
        let c = &mut self.chunks[id as usize];
        c.e[0] = e;
        c.len = 1;
        self.order.push(id);
        self.firsts.push(e.start);
    }

    /// Entries in the map.
    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.order.iter().map(|&c| self.chunks[c as usize].len).sum()
    }

    /// The entry that covers `addr`, or else the first above it.
    pub fn covering_or_next(&self, addr: u64) -> Option<Entry> {
        let (k, i) = self.first_ending_above(addr)?;
        Some(self.chunks[self.order[k] as usize].e[i])
    }

    /// Makes `[start, end)` hold exactly `with` (sorted, disjoint, each
    /// inside or overlapping the range, which is widened to cover them):
    /// what was there is trimmed, split or removed.
    ///
    /// # Errors
    /// [`Full`] when a chunk is needed and none is free; the map is then
    /// in an unspecified (but memory-safe) state and must be rebuilt.
    pub fn replace(&mut self, start: u64, end: u64, with: &[Entry]) -> Result<(), Full> {
        let start = with.first().map_or(start, |e| e.start.min(start));
        let end = with.last().map_or(end, |e| e.end.max(end));
        if start >= end {
            return Ok(());
        }
        self.remove(start, end)?;
        for e in with.iter().filter(|e| e.start < e.end) {
            self.insert(*e)?;
        }
        Ok(())
    }

    /// Every entry, in order.
    #[cfg(test)]
    pub fn entries(&self) -> impl Iterator<Item = Entry> + '_ {
        self.order.iter().flat_map(|&c| {
            let c = &self.chunks[c as usize];
            c.e[..c.len].iter().copied()
        })
    }

    /// (chunk position, index) of the first entry whose end is above `addr`.
    fn first_ending_above(&self, addr: u64) -> Option<(usize, usize)> {
        // The last chunk starting at or below addr, else the first chunk.
        let k = self.firsts.partition_point(|&f| f <= addr).saturating_sub(1);
        for k in k..self.order.len() {
            let c = &self.chunks[self.order[k] as usize];
            let i = c.e[..c.len].partition_point(|e| e.end <= addr);
            if i < c.len {
                return Some((k, i));
            }
        }
        None
    }

    /// Clears `[start, end)`: entries inside go, entries across an edge are
    /// trimmed, one across both is split in two.
    fn remove(&mut self, start: u64, end: u64) -> Result<(), Full> {
        let Some((mut k, mut i)) = self.first_ending_above(start) else { return Ok(()) };
        while k < self.order.len() {
            let id = self.order[k] as usize;
            let c = &mut self.chunks[id];
            // Entries [i, j) of this chunk start below `end`.
            let j = i + c.e[i..c.len].partition_point(|e| e.start < end);
            if i == j {
                break;
            }
            let (head, tail, old_len) = (c.e[i], c.e[j - 1], c.len);
            if i + 1 == j && head.start < start && head.end > end {
                // One entry across the whole range: split it.
                c.e[i].end = start;
                return self.insert(Entry { start: end, ..head });
            }
            let keep_head = head.start < start;
            let keep_tail = tail.end > end;
            if keep_head {
                c.e[i].end = start;
            }
            if keep_tail {
                c.e[j - 1].start = end;
            }
            let (from, to) = (i + usize::from(keep_head), j - usize::from(keep_tail));
            if from < to {
                c.e.copy_within(to..c.len, from);
                c.len -= to - from;
            }
            // Something in this chunk lies at or above `end`: nothing further to clear.
            let done = keep_tail || j < old_len;
            if c.len == 0 {
                self.free.push(id as u32);
                self.order.remove(k);
                self.firsts.remove(k);
            } else {
                self.firsts[k] = c.e[0].start;
                k += 1;
            }
            if done {
                break;
            }
            i = 0;
        }
        Ok(())
    }

    /// Inserts an entry into a gap that fits it.
    fn insert(&mut self, e: Entry) -> Result<(), Full> {
        if self.order.is_empty() {
            let id = self.new_chunk()?;
            self.chunks[id as usize].e[0] = e;
            self.chunks[id as usize].len = 1;
            self.order.push(id);
            self.firsts.push(e.start);
            return Ok(());
        }
        let mut k = self.firsts.partition_point(|&f| f <= e.start).saturating_sub(1);
        if self.chunks[self.order[k] as usize].len == CHUNK {
            // Split the chunk in halves; the entry goes into the one that covers its place.
            let (id, new) = (self.order[k] as usize, self.new_chunk()? as usize);
            let half = CHUNK / 2;
            let upper = self.chunks[id].e;
            self.chunks[new].e[..CHUNK - half].copy_from_slice(&upper[half..]);
            self.chunks[new].len = CHUNK - half;
            self.chunks[id].len = half;
            self.order.insert(k + 1, new as u32);
            self.firsts.insert(k + 1, upper[half].start);
            if e.start >= upper[half].start {
                k += 1;
            }
        }
        let c = &mut self.chunks[self.order[k] as usize];
        let i = c.e[..c.len].partition_point(|x| x.start < e.start);
        c.e.copy_within(i..c.len, i + 1);
        c.e[i] = e;
        c.len += 1;
        if i == 0 {
            self.firsts[k] = e.start;
        }
        Ok(())
    }

    fn new_chunk(&mut self) -> Result<u32, Full> {
        if let Some(id) = self.free.pop() {
            self.chunks[id as usize].len = 0;
            return Ok(id);
        }
        if !self.growing {
            return Err(Full);
        }
        self.chunks.push(EMPTY);
        Ok(self.chunks.len() as u32 - 1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn e(start: u64, end: u64, ino: u64) -> Entry {
        Entry { start, end, ino, ..Entry::default() }
    }

    /// The same operations on a page-by-page model.
    #[derive(Default)]
    struct Model(std::collections::BTreeMap<u64, u64>);

    impl Model {
        fn replace(&mut self, start: u64, end: u64, with: &[Entry]) {
            let start = with.first().map_or(start, |x| x.start.min(start));
            let end = with.last().map_or(end, |x| x.end.max(end));
            for p in start..end {
                self.0.remove(&p);
            }
            for x in with {
                for p in x.start..x.end {
                    self.0.insert(p, x.ino);
                }
            }
        }

        fn at(&self, p: u64) -> Option<u64> {
            self.0.get(&p).copied()
        }
    }

    fn built(entries: &[Entry]) -> VmaMap {
        let mut m = VmaMap::default();
        m.start_build();
        for &x in entries {
            m.push(x);
        }
        m.finish_build();
        m
    }

    #[test]
    fn lookups_and_a_split() {
        let mut m = built(&[e(0, 10, 1), e(20, 30, 2)]);
        assert_eq!(m.covering_or_next(5), Some(e(0, 10, 1)));
        assert_eq!(m.covering_or_next(10), Some(e(20, 30, 2)));
        assert_eq!(m.covering_or_next(30), None);
        m.replace(3, 4, &[e(3, 4, 9)]).unwrap();
        let all: Vec<_> = m.entries().collect();
        assert_eq!(all, [e(0, 3, 1), e(3, 4, 9), e(4, 10, 1), e(20, 30, 2)]);
        m.replace(2, 25, &[]).unwrap();
        assert_eq!(m.entries().collect::<Vec<_>>(), [e(0, 2, 1), e(25, 30, 2)]);
    }

    #[test]
    fn a_build_of_many_then_updates_without_growing() {
        let n = 10_000u64;
        let entries: Vec<_> = (0..n).map(|i| e(2 * i, 2 * i + 1, i)).collect();
        let mut m = built(&entries);
        assert_eq!(m.len(), n as usize);
        let pool = m.chunks.len();
        for i in 0..n / 4 {
            m.replace(2 * i + 1, 2 * i + 2, &[e(2 * i + 1, 2 * i + 2, 7)]).unwrap();
        }
        assert_eq!(m.chunks.len(), pool, "updates used the pool only");
        assert_eq!(m.covering_or_next(5), Some(e(5, 6, 7)));
        assert_eq!(m.covering_or_next(2 * n - 2), Some(e(2 * n - 2, 2 * n - 1, n - 1)));
    }

    #[test]
    fn full_when_the_pool_runs_out() {
        let mut m = built(&[e(0, 1, 0)]);
        let mut r = Ok(());
        for i in 1..1_000_000u64 {
            r = m.replace(2 * i, 2 * i + 1, &[e(2 * i, 2 * i + 1, i)]);
            if r.is_err() {
                break;
            }
        }
        assert_eq!(r, Err(Full));
    }

    proptest! {
        #![proptest_config(ProptestConfig { failure_persistence: None, ..ProptestConfig::with_cases(200) })]

        /// Random builds and replacements agree with the page model at every page.
        #[test]
        fn agrees_with_a_page_model(
            build in prop::collection::vec((0u64..3, 1u64..4), 0..200),
            ops in prop::collection::vec((0u64..700, 1u64..40, prop::collection::vec((0u64..8, 1u64..8), 0..4)), 0..120),
        ) {
            let mut model = Model::default();
            let mut entries = Vec::new();
            let mut at = 0;
            for (gap, len) in build {
                let x = e(at + gap, at + gap + len, at);
                entries.push(x);
                model.replace(x.start, x.end, &[x]);
                at = x.end;
            }
            let mut m = built(&entries);
            for (n, (start, len, parts)) in ops.into_iter().enumerate() {
                let mut with = Vec::new();
                let mut p = start;
                for (gap, plen) in parts {
                    if p + gap + plen > start + len {
                        break;
                    }
                    with.push(e(p + gap, p + gap + plen, 1000 + n as u64));
                    p += gap + plen;
                }
                if m.replace(start, start + len, &with).is_err() {
                    m = built(&model.0.iter().map(|(&p, &i)| e(p, p + 1, i)).collect::<Vec<_>>());
                    m.replace(start, start + len, &with).unwrap();
                }
                model.replace(start, start + len, &with);
            }
            let all: Vec<_> = m.entries().collect();
            for w in all.windows(2) {
                prop_assert!(w[0].end <= w[1].start && w[0].start < w[0].end, "{:?}", w);
            }
            for p in 0..800 {
                let got = m.covering_or_next(p).filter(|x| x.start <= p).map(|x| x.ino);
                prop_assert_eq!(got, model.at(p), "page {}", p);
                let next = m.covering_or_next(p).map(|x| x.start.max(p));
                let want = model.0.range(p..).next().map(|(&q, _)| q);
                prop_assert_eq!(next, want, "next from page {}", p);
            }
        }
    }
}
