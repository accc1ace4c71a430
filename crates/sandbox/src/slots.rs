//! Host uid ranges for live instances: each gets its own pair of unprivileged host uids, so
//! one instance's processes can never signal, ptrace or share an RLIMIT_NPROC count with another's.
//!
//! Slots are unique within this process (a bitmap) and across yun processes sharing a run dir
//! (an flock on `run_dir/slots/<n>.lock`, which the kernel drops if yun crashes).

use std::fs::{File, OpenOptions};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// First host uid handed to instances; far above the uids of real accounts and of /etc/subuid
/// ranges that tools such as `useradd` start at 100000 with 65536 ids each.
pub(crate) const UID_BASE: u32 = 200_000;
/// Host uids per instance: one for its root (the init process) and one for the command.
pub(crate) const UIDS_PER_SLOT: u32 = 2;
/// Live instances at most (per host).
pub(crate) const SLOTS: usize = 32_768;

/// The host uid that instance uid 0 maps to for a slot; the command's is this + 1.
pub(crate) fn host_uid_base(slot: usize) -> u32 {
    UID_BASE + UIDS_PER_SLOT * slot as u32
}

/// In-process bitmap of taken slots.
#[derive(Debug, Default)]
pub(crate) struct SlotSet {
    taken: Vec<bool>,
}

impl SlotSet {
    /// The lowest free slot for which `accept` holds, marked taken.
    pub(crate) fn take(&mut self, mut accept: impl FnMut(usize) -> bool) -> Option<usize> {
        for slot in 0..SLOTS {
            if self.taken.get(slot).copied().unwrap_or(false) {
                continue;
            }
            if accept(slot) {
                if self.taken.len() <= slot {
                    self.taken.resize(slot + 1, false);
                }
                self.taken[slot] = true;
                return Some(slot);
            }
        }
        None
    }

    pub(crate) fn release(&mut self, slot: usize) {
        if let Some(t) = self.taken.get_mut(slot) {
            *t = false;
        }
    }
}

static TAKEN: Mutex<SlotSet> = Mutex::new(SlotSet { taken: Vec::new() });

/// A held slot; released when dropped (after the instance's processes are all gone).
#[derive(Debug)]
pub(crate) struct Slot {
    pub slot: usize,
    _lock: File,
}

impl Slot {
    pub(crate) fn host_uid_base(&self) -> u32 {
        host_uid_base(self.slot)
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        // The flock goes with the file; the bitmap entry is cleared here.
        TAKEN.lock().unwrap_or_else(|p| p.into_inner()).release(self.slot);
    }
}

pub(crate) fn slot_dir(run_dir: &Path) -> PathBuf {
    run_dir.join("slots")
}

/// Takes a slot free both here and in every other yun using the same run dir.
pub(crate) fn take(run_dir: &Path) -> std::io::Result<Slot> {
    let dir = slot_dir(run_dir);
    let mut lock = None;
    let mut last_err = None;
    let slot = TAKEN.lock().unwrap_or_else(|p| p.into_inner()).take(|slot| {
        let path = dir.join(format!("{slot}.lock"));
        let file = match OpenOptions::new().create(true).truncate(false).write(true).open(&path) {
            Ok(f) => f,
            Err(e) => {
                last_err =
                    Some(std::io::Error::new(e.kind(), format!("cannot open {}: {e}", path.display())));
                return false;
            }
        };
        if file.try_lock().is_ok() {
            lock = Some(file);
            true
        } else {
            false
        }
    });
    match (slot, lock) {
        (Some(slot), Some(lock)) => Ok(Slot { slot, _lock: lock }),
        _ => Err(last_err.unwrap_or_else(|| std::io::Error::other("every sandbox uid slot is in use"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lowest_free_slot_first() {
        let mut s = SlotSet::default();
        assert_eq!(s.take(|_| true), Some(0));
        assert_eq!(s.take(|_| true), Some(1));
        assert_eq!(s.take(|n| n != 2), Some(3));
        s.release(1);
        assert_eq!(s.take(|_| true), Some(1));
        assert_eq!(s.take(|_| true), Some(2));
        assert_eq!(s.take(|_| false), None);
    }

    #[test]
    fn uids_do_not_overlap() {
        assert_eq!(host_uid_base(0), 200_000);
        assert_eq!(host_uid_base(1), 200_002);
        assert!(host_uid_base(SLOTS - 1) + 1 < u32::MAX / 2);
    }

    #[test]
    fn slots_are_exclusive_across_lock_files() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(slot_dir(dir.path())).unwrap();
        let a = take(dir.path()).unwrap();
        let b = take(dir.path()).unwrap();
        assert_ne!(a.slot, b.slot);
        // Another process's lock on the next slot makes us skip it.
        let next = b.slot.max(a.slot) + 1;
        let other = File::create(slot_dir(dir.path()).join(format!("{next}.lock"))).unwrap();
        // flock is per open file description, so a second description conflicts like another process.
        other.try_lock().unwrap();
        let c = take(dir.path()).unwrap();
        assert_ne!(c.slot, next);
        drop((a, b, c, other));
    }
}
