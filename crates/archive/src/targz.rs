//! `.tar.gz`: the tar crate parses headers (GNU long names, pax, sparse files); everything it
//! yields goes through the [`Extractor`]. Its own `unpack` is not used.

use std::cell::Cell;
use std::fs::File;
use std::io::{self, BufReader, Read};
use std::rc::Rc;

use flate2::read::MultiGzDecoder;
use tar::EntryType;

use crate::ArchiveError;
use crate::extractor::Extractor;
use crate::names::{self, split_entry_name};

/// The most decompressed bytes the tar parser may read for one entry's headers: the 512-byte
/// header plus any GNU long name/link or pax extension data, which the parser holds in memory.
/// Without this, a gzip-bombed long-name header would be inflated into memory whole.
pub(crate) const HEADER_ALLOWANCE: u64 = 1 << 20;

/// Tar framing per entry (header, padding, long names, pax records such as xattrs) on top of file
/// content, for the cap on the decompressed stream as a whole.
const FRAMING_PER_ENTRY: u64 = 4 << 10;

#[derive(Clone, Copy)]
enum Trip {
    /// An entry's headers went over [`HEADER_ALLOWANCE`].
    Header,
    /// The whole decompressed stream went over its cap.
    Total,
}

/// Shared between the extraction loop and the [`Meter`] inside the tar parser.
struct MeterState {
    /// Bytes the parser may still read in the current phase (headers, or one entry's content).
    allowed: Cell<u64>,
    /// Decompressed bytes that may still be read in all.
    total_left: Cell<u64>,
    tripped: Cell<Option<Trip>>,
}

/// Counts and caps the decompressed bytes the tar parser reads. Tar headers can declare any size
/// and the parser reads some data (long names, pax records, content it skips) on its own, so the
/// cap has to sit under it rather than in the extraction loop.
struct Meter<R> {
    inner: R,
    state: Rc<MeterState>,
}

impl<R: Read> Read for Meter<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        let st = &self.state;
        let room = st.allowed.get().min(st.total_left.get());
        if room == 0 {
            let trip = if st.total_left.get() == 0 { Trip::Total } else { Trip::Header };
            st.tripped.set(Some(trip));
            return Err(io::Error::other("archive size limit reached"));
        }
        let want = buf.len().min(usize::try_from(room).unwrap_or(usize::MAX));
        let n = self.inner.read(&mut buf[..want])?;
        st.allowed.set(st.allowed.get() - n as u64);
        st.total_left.set(st.total_left.get() - n as u64);
        Ok(n)
    }
}

pub(crate) fn extract(file: File, mut ex: Extractor<'_>) -> Result<crate::Summary, ArchiveError> {
    let caps = ex.caps();
    let state = Rc::new(MeterState {
        allowed: Cell::new(0),
        total_left: Cell::new(
            caps.max_unpacked_bytes.saturating_add(caps.max_entries.saturating_mul(FRAMING_PER_ENTRY)),
        ),
        tripped: Cell::new(None),
    });
    // Multi-member: `gzip -d` accepts concatenated gzip streams, and so do we.
    let decoder = MultiGzDecoder::new(BufReader::with_capacity(64 * 1024, file));
    let mut archive = tar::Archive::new(Meter { inner: decoder, state: state.clone() });
    let classify = |e: io::Error| match state.tripped.take() {
        Some(Trip::Header) => ArchiveError::OversizedHeader { max: HEADER_ALLOWANCE },
        Some(Trip::Total) => ArchiveError::TooLarge { max: caps.max_unpacked_bytes },
        None => ArchiveError::Corrupt { detail: e.to_string() },
    };
    let mut entries = archive.entries().map_err(classify)?;
    loop {
        state.allowed.set(HEADER_ALLOWANCE);
        let mut entry = match entries.next() {
            None => break,
            Some(Ok(entry)) => entry,
            Some(Err(e)) => return Err(classify(e)),
        };
        ex.count_entry()?;
        let raw = entry.path_bytes().into_owned();
        let shown = names::shown(&raw);
        let kind = entry.header().entry_type();
        match kind {
            EntryType::Regular | EntryType::Continuous | EntryType::GNUSparse => {
                let parts = split_entry_name(&raw, false)?;
                // Pre-POSIX tars mark directories only with a trailing slash.
                if kind == EntryType::Regular && raw.ends_with(b"/") {
                    ex.dir(&parts, &shown)?;
                    continue;
                }
                let executable = entry.header().mode().map(|m| m & 0o111 != 0).unwrap_or(false);
                let size = entry.size();
                state.allowed.set(size);
                ex.file(&parts, &shown, executable, size, &mut entry, &classify)?;
            }
            EntryType::Directory => {
                let parts = split_entry_name(&raw, false)?;
                ex.dir(&parts, &shown)?;
            }
            EntryType::Symlink => {
                let parts = split_entry_name(&raw, false)?;
                let target = entry.link_name_bytes().map(|t| t.into_owned()).unwrap_or_default();
                ex.symlink(&parts, &shown, &target)?;
            }
            EntryType::Link => {
                let parts = split_entry_name(&raw, false)?;
                let target = entry.link_name_bytes().map(|t| t.into_owned()).unwrap_or_default();
                ex.hard_link(&parts, &shown, &target)?;
            }
            EntryType::Char | EntryType::Block => {
                return Err(ArchiveError::SpecialFile { path: shown, kind: "device file" });
            }
            EntryType::Fifo => return Err(ArchiveError::SpecialFile { path: shown, kind: "fifo" }),
            // Global pax defaults (mostly a comment or mtime); nothing to create.
            EntryType::XGlobalHeader => {}
            other => return Err(ArchiveError::UnsupportedEntry { path: shown, kind: format!("{other:?}") }),
        }
    }
    // Read what follows the end-of-archive marker (normally zero padding up to a 10 KiB record)
    // to the end of the gzip stream, so that its CRC and length are checked: a truncated or
    // corrupted upload is refused even when the damage is past the last entry.
    state.allowed.set(HEADER_ALLOWANCE);
    if let Err(e) = io::copy(&mut archive.into_inner(), &mut io::sink()) {
        return Err(match state.tripped.take() {
            Some(_) => ArchiveError::Corrupt {
                detail: "more than 1 MiB of data after the end of the tar archive".into(),
            },
            None => ArchiveError::Corrupt { detail: e.to_string() },
        });
    }
    Ok(ex.finish())
}
