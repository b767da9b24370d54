//! Secret keys of an implementation that does not wipe its own memory
//! (libcrux): overwritten with a blank key when dropped.

use std::ops::Deref;

/// A secret key that is overwritten with `blank()` (all zeros) on drop. Best
/// effort, like every wipe in Rust: copies the implementation made of the key
/// while using it are not reached.
pub(crate) struct Wiped<K> {
    key: K,
    blank: fn() -> K,
}

impl<K> Wiped<K> {
    /// Keeps `key`; `blank` makes the all-zero key that replaces it.
    pub(crate) fn new(key: K, blank: fn() -> K) -> Self {
        Self { key, blank }
    }
}

impl<K> Deref for Wiped<K> {
    type Target = K;

    fn deref(&self) -> &K {
        &self.key
    }
}

impl<K> Drop for Wiped<K> {
    fn drop(&mut self) {
        self.key = (self.blank)();
        // The store must not be optimized away as dead: the memory is freed next.
        std::hint::black_box(&self.key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::Cell;

    thread_local! {
        static BLANKS: Cell<u32> = const { Cell::new(0) };
    }

    fn blank() -> [u8; 4] {
        BLANKS.with(|b| b.set(b.get() + 1));
        [0; 4]
    }

    #[test]
    fn the_key_is_replaced_by_a_blank_one_on_drop() {
        let key = Wiped::new([7u8; 4], blank);
        assert_eq!(*key, [7; 4]);
        drop(key);
        assert_eq!(BLANKS.with(Cell::get), 1);
    }
}
