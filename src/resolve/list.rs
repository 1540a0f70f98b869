//! An intrusive doubly linked list of name ids, the shape of apk's solver queues.
//!
//! The solver's choices depend on queue order (first-in-first-out for names to
//! reconsider, newest-first for unresolved names, with removal from the middle), so a
//! plain `Vec` or `VecDeque` would need O(n) removals or lazy tombstones that change
//! the visiting order; links per id keep every operation O(1) and the order exact.

const NIL: u32 = u32::MAX;

/// A list over ids `0..capacity`, each id at most once.
#[derive(Debug)]
pub(crate) struct IdList {
    head: u32,
    tail: u32,
    next: Vec<u32>,
    prev: Vec<u32>,
    member: Vec<bool>,
}

impl IdList {
    /// An empty list able to hold ids below `capacity`.
    pub fn new(capacity: usize) -> IdList {
        IdList {
            head: NIL,
            tail: NIL,
            next: vec![NIL; capacity],
            prev: vec![NIL; capacity],
            member: vec![false; capacity],
        }
    }

    pub fn contains(&self, id: u32) -> bool {
        self.member[id as usize]
    }

    pub fn push_front(&mut self, id: u32) {
        debug_assert!(!self.contains(id));
        self.member[id as usize] = true;
        self.prev[id as usize] = NIL;
        self.next[id as usize] = self.head;
        if self.head == NIL {
            self.tail = id;
        } else {
            self.prev[self.head as usize] = id;
        }
        self.head = id;
    }

    pub fn push_back(&mut self, id: u32) {
        debug_assert!(!self.contains(id));
        self.member[id as usize] = true;
        self.next[id as usize] = NIL;
        self.prev[id as usize] = self.tail;
        if self.tail == NIL {
            self.head = id;
        } else {
            self.next[self.tail as usize] = id;
        }
        self.tail = id;
    }

    /// Unlinks `id` if it is in the list.
    pub fn remove(&mut self, id: u32) {
        if !self.contains(id) {
            return;
        }
        let (p, n) = (self.prev[id as usize], self.next[id as usize]);
        if p == NIL {
            self.head = n;
        } else {
            self.next[p as usize] = n;
        }
        if n == NIL {
            self.tail = p;
        } else {
            self.prev[n as usize] = p;
        }
        self.member[id as usize] = false;
    }

    pub fn pop_front(&mut self) -> Option<u32> {
        let id = self.head;
        if id == NIL {
            return None;
        }
        self.remove(id);
        Some(id)
    }

    /// The ids from front to back.
    pub fn iter(&self) -> impl Iterator<Item = u32> + '_ {
        let mut cur = self.head;
        std::iter::from_fn(move || {
            if cur == NIL {
                return None;
            }
            let id = cur;
            cur = self.next[id as usize];
            Some(id)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_order_through_middle_removal() {
        let mut l = IdList::new(8);
        l.push_back(1);
        l.push_back(2);
        l.push_front(3);
        l.push_back(4);
        l.remove(2);
        assert_eq!(l.iter().collect::<Vec<_>>(), vec![3, 1, 4]);
        assert_eq!(l.pop_front(), Some(3));
        l.remove(4);
        l.remove(4);
        assert_eq!(l.iter().collect::<Vec<_>>(), vec![1]);
        assert!(!l.contains(4));
        assert_eq!(l.pop_front(), Some(1));
        assert_eq!(l.pop_front(), None);
    }
}
