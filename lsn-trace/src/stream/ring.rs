//! The consumer side of the programs' BPF ring buffer, read in batches.
//!
//! The kernel's producer reads the consumer position at every reservation. A reader that
//! publishes its position after every record (as aya's `RingBuf` does when each item is
//! dropped) moves that cache line to its own CPU once per record while it drains, and the
//! next reservation on the tracing CPU waits for it back: in a bind storm that was ~2% of the
//! storm's speed (measured with the agent stopped, and running). This reader publishes once
//! per [`PUBLISH_EVERY`] records and at the end of each drain, which delays the room it frees
//! by a few kilobytes of an 8 MiB ring.
//!
//! Layout (kernel/bpf/ringbuf.c): a read-write page holding the consumer position, then a
//! read-only page holding the producer position, then the data pages mapped twice in a row so
//! a record that wraps around reads as one slice. Each record starts with an 8-byte header
//! whose first word is its length with the BUSY (not yet committed) and DISCARD bits.
use std::{
    io,
    os::fd::{AsFd as _, AsRawFd, RawFd},
    ptr::NonNull,
    sync::atomic::{AtomicU32, AtomicUsize, Ordering},
};

use anyhow::{Context as _, Result, bail};
use aya::maps::MapData;

const BUSY_BIT: u32 = 1 << 31;
const DISCARD_BIT: u32 = 1 << 30;
const HEADER_BYTES: usize = 8;

/// Records consumed between two publications of the consumer position.
const PUBLISH_EVERY: usize = 64;

/// One shared mapping of the ring map's fd, unmapped on drop.
struct Mapping {
    ptr: NonNull<u8>,
    len: usize,
}

impl Mapping {
    fn new(fd: RawFd, len: usize, prot: libc::c_int, offset: usize) -> io::Result<Mapping> {
        // SAFETY: a fresh shared mapping of the map's fd; nothing else refers to its range.
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                prot,
                libc::MAP_SHARED,
                fd,
                offset as libc::off_t,
            )
        };
        if p == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        Ok(Mapping {
            ptr: NonNull::new(p.cast()).ok_or_else(|| io::Error::other("mmap returned NULL"))?,
            len,
        })
    }
}

impl Drop for Mapping {
    fn drop(&mut self) {
        // SAFETY: the range was mapped by `new` and is not used after this.
        unsafe { libc::munmap(self.ptr.as_ptr().cast(), self.len) };
    }
}

pub struct EventRing {
    consumer: Mapping,
    /// The producer page, then the data pages twice.
    producer: Mapping,
    data_offset: usize,
    mask: usize,
    /// Where the next record starts (published or not).
    pos: usize,
    // Kept for its fd (epoll readiness and the mappings' lifetime).
    map: MapData,
}

// SAFETY: the mappings are only read (and the consumer position written) through &mut self.
unsafe impl Send for EventRing {}

impl EventRing {
    pub fn new(map: MapData) -> Result<EventRing> {
        let size = map.info().context("ring buffer map info")?.max_entries() as usize;
        // SAFETY: sysconf has no preconditions.
        let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) } as usize;
        if !size.is_power_of_two() || !size.is_multiple_of(page) {
            bail!("ring buffer size {size} is not a power-of-two multiple of the page size");
        }
        let fd = map.fd().as_fd().as_raw_fd();
        let consumer = Mapping::new(fd, page, libc::PROT_READ | libc::PROT_WRITE, 0)
            .context("mapping the ring buffer's consumer page")?;
        let producer = Mapping::new(fd, page + 2 * size, libc::PROT_READ, page)
            .context("mapping the ring buffer's data")?;
        let mut ring = EventRing {
            consumer,
            producer,
            data_offset: page,
            mask: size - 1,
            pos: 0,
            map,
        };
        ring.pos = ring.consumer_pos().load(Ordering::Acquire);
        Ok(ring)
    }

    fn consumer_pos(&self) -> &AtomicUsize {
        // SAFETY: the page is mapped, page-aligned and starts with the kernel's
        // `unsigned long consumer_pos`.
        unsafe { self.consumer.ptr.cast::<AtomicUsize>().as_ref() }
    }

    fn producer_pos(&self) -> usize {
        // SAFETY: as above, for the producer page. Acquire pairs with the kernel's release
        // store, so the headers it covers are visible.
        unsafe { self.producer.ptr.cast::<AtomicUsize>().as_ref() }.load(Ordering::Acquire)
    }

    /// Where the producer is now: a `drain` up to it reads what was submitted until now.
    pub fn submitted(&self) -> usize {
        self.producer_pos()
    }

    /// Hand committed records to `f`, in order, until the ring is empty, a record is still
    /// being written, `max` records were handed, or the records up to `until` (a
    /// [`submitted`](Self::submitted) position) were. True when it stopped with records
    /// left for a later call (`max`). The consumer position is published every
    /// [`PUBLISH_EVERY`] records and before returning, also on an error of `f` (its record
    /// counts as consumed).
    pub fn drain(
        &mut self,
        max: usize,
        until: Option<usize>,
        mut f: impl FnMut(&[u8]) -> io::Result<()>,
    ) -> io::Result<bool> {
        let mut unpublished = 0;
        let mut handed = 0;
        let mut producer = self.producer_pos();
        let result = loop {
            if until.is_some_and(|u| (u.wrapping_sub(self.pos) as isize) <= 0) {
                break Ok(false);
            }
            if handed == max {
                break Ok(self.pos != self.producer_pos());
            }
            if self.pos == producer {
                producer = self.producer_pos();
                if self.pos == producer {
                    break Ok(false);
                }
            }
            let at = self.data_offset + (self.pos & self.mask);
            // SAFETY: `at` is inside the first copy of the data pages, and a record's header
            // is 8-aligned; the kernel commits it with an xchg, paired with this Acquire.
            let header = unsafe {
                self.producer
                    .ptr
                    .add(at)
                    .cast::<AtomicU32>()
                    .as_ref()
                    .load(Ordering::Acquire)
            };
            if header & BUSY_BIT != 0 {
                break Ok(false);
            }
            let len = (header & !(BUSY_BIT | DISCARD_BIT)) as usize;
            if len > self.mask + 1 - HEADER_BYTES {
                break Err(io::Error::other(format!(
                    "ring buffer record of {len} bytes at {}: corrupt header",
                    self.pos
                )));
            }
            self.pos = self.pos.wrapping_add((HEADER_BYTES + len + 7) & !7);
            unpublished += 1;
            handed += 1;
            let sent = if header & DISCARD_BIT == 0 {
                // SAFETY: the record lies within the double mapping (len < ring size), and
                // the kernel does not touch it until the consumer position passes it.
                let data = unsafe {
                    std::slice::from_raw_parts(
                        self.producer.ptr.add(at + HEADER_BYTES).as_ptr(),
                        len,
                    )
                };
                f(data)
            } else {
                Ok(())
            };
            if let Err(e) = sent {
                break Err(e);
            }
            if unpublished == PUBLISH_EVERY {
                self.consumer_pos().store(self.pos, Ordering::Release);
                unpublished = 0;
            }
        };
        if unpublished != 0 {
            self.consumer_pos().store(self.pos, Ordering::Release);
        }
        result
    }
}

impl AsRawFd for EventRing {
    fn as_raw_fd(&self) -> RawFd {
        self.map.fd().as_fd().as_raw_fd()
    }
}
