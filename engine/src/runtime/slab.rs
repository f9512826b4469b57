//! A slab: values stored in one `Vec` and addressed by a stable index, freed indices reused.
//!
//! Both the ring's op slots (index = SQE `user_data`) and the executor's tasks (index = part of the
//! waker key) live in one, so a completion or a wake finds its target in O(1) without hashing.

/// One cell of the slab: a value, or a link in the free list.
enum Entry<T> {
    Occupied(T),
    /// Vacant; holds the index of the next vacant cell (`usize::MAX` ends the list).
    Vacant(usize),
}

/// End of the free list.
const NONE: usize = usize::MAX;

pub(crate) struct Slab<T> {
    entries: Vec<Entry<T>>,
    next_free: usize,
    len: usize,
}

impl<T> Slab<T> {
    pub(crate) const fn new() -> Self {
        Slab {
            entries: Vec::new(),
            next_free: NONE,
            len: 0,
        }
    }

    /// The index the next [`insert`](Self::insert) will use.
    pub(crate) fn vacant_key(&self) -> usize {
        if self.next_free == NONE {
            self.entries.len()
        } else {
            self.next_free
        }
    }

    pub(crate) fn insert(&mut self, value: T) -> usize {
        let key = self.vacant_key();
        if key == self.entries.len() {
            self.entries.push(Entry::Occupied(value));
        } else {
            match std::mem::replace(&mut self.entries[key], Entry::Occupied(value)) {
                Entry::Vacant(next) => self.next_free = next,
                Entry::Occupied(_) => unreachable!("free list points at an occupied cell"),
            }
        }
        self.len += 1;
        key
    }

    pub(crate) fn get_mut(&mut self, key: usize) -> Option<&mut T> {
        match self.entries.get_mut(key) {
            Some(Entry::Occupied(v)) => Some(v),
            _ => None,
        }
    }

    pub(crate) fn remove(&mut self, key: usize) -> Option<T> {
        let cell = self.entries.get_mut(key)?;
        if matches!(cell, Entry::Vacant(_)) {
            return None;
        }
        match std::mem::replace(cell, Entry::Vacant(self.next_free)) {
            Entry::Occupied(v) => {
                self.next_free = key;
                self.len -= 1;
                Some(v)
            }
            Entry::Vacant(_) => unreachable!(),
        }
    }

    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Indices of all occupied cells.
    pub(crate) fn keys(&self) -> impl Iterator<Item = usize> + '_ {
        self.entries
            .iter()
            .enumerate()
            .filter(|(_, e)| matches!(e, Entry::Occupied(_)))
            .map(|(i, _)| i)
    }
}

#[cfg(test)]
mod tests {
    use super::Slab;

    #[test]
    fn reuses_freed_indices() {
        let mut s = Slab::new();
        let a = s.insert("a");
        let b = s.insert("b");
        assert_eq!((a, b), (0, 1));
        assert_eq!(s.remove(a), Some("a"));
        assert_eq!(s.remove(a), None);
        assert_eq!(s.vacant_key(), a);
        assert_eq!(s.insert("c"), a);
        assert_eq!(s.len(), 2);
        assert_eq!(s.keys().collect::<Vec<_>>(), vec![0, 1]);
        assert_eq!(s.get_mut(b).copied(), Some("b"));
    }
}
