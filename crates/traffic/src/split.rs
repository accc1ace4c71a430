//! A validated traffic split and the choice of a revision for one request.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// The most revisions one split may name. A split is walked on every request, and more targets
/// than this is a configuration mistake rather than a rollout plan.
pub const MAX_TARGETS: usize = 16;

/// One revision's share of traffic, in whole percent.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TrafficTarget {
    pub revision: u64,
    pub percent: u8,
}

impl TrafficTarget {
    pub fn new(revision: u64, percent: u8) -> TrafficTarget {
        TrafficTarget { revision, percent }
    }
}

/// A validated split: targets in order, percents summing to exactly 100, no revision twice,
/// zero-percent entries dropped, at most [`MAX_TARGETS`] targets.
///
/// The order matters: [`Split::pick`] gives the first target the lowest buckets, so a revision
/// kept first while its share grows keeps every sticky client it already had.
///
/// Serialized as a plain list of targets; deserializing validates it as [`Split::new`] does.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "Vec<TrafficTarget>", into = "Vec<TrafficTarget>")]
pub struct Split(Vec<TrafficTarget>);

/// What is wrong with a traffic split.
#[derive(Clone, Debug, thiserror::Error, PartialEq, Eq)]
pub enum SplitError {
    #[error("a traffic split needs at least one revision")]
    Empty,
    #[error("traffic percentages must add up to 100, got {0}")]
    Sum(u32),
    #[error("revision {0} appears more than once in the traffic split")]
    Duplicate(u64),
    #[error("a traffic split may name at most {MAX_TARGETS} revisions with traffic, got {0}")]
    TooMany(usize),
    #[error("revision {0} does not exist")]
    UnknownRevision(u64),
    #[error("revision {revision} is given {percent}% of the traffic; a share is at most 100%")]
    Percent { revision: u64, percent: u64 },
    #[error("`{0}` is not REVISION=PERCENT (for example `3=90`)")]
    Syntax(String),
}

impl Split {
    /// Validates `targets`. Zero-percent entries are dropped after the duplicate check, so
    /// `3=100 4=0` is 100% to revision 3 but `3=100 3=0` is refused as ambiguous.
    pub fn new(targets: Vec<TrafficTarget>) -> Result<Split, SplitError> {
        if targets.is_empty() {
            return Err(SplitError::Empty);
        }
        for (i, t) in targets.iter().enumerate() {
            if t.percent > 100 {
                return Err(SplitError::Percent { revision: t.revision, percent: t.percent.into() });
            }
            if targets[..i].iter().any(|earlier| earlier.revision == t.revision) {
                return Err(SplitError::Duplicate(t.revision));
            }
        }
        let sum: u32 = targets.iter().map(|t| u32::from(t.percent)).sum();
        if sum != 100 {
            return Err(SplitError::Sum(sum));
        }
        let targets: Vec<TrafficTarget> = targets.into_iter().filter(|t| t.percent > 0).collect();
        if targets.len() > MAX_TARGETS {
            return Err(SplitError::TooMany(targets.len()));
        }
        Ok(Split(targets))
    }

    /// 100% to one revision.
    pub fn single(revision: u64) -> Split {
        Split(vec![TrafficTarget::new(revision, 100)])
    }

    /// `first` gets `first_percent` (clamped to 100), `second` the rest; a share of 0 is left
    /// out and the same revision twice collapses to one. Valid by construction, so callers
    /// holding two revisions need no error path.
    pub(crate) fn pair(first: u64, first_percent: u8, second: u64) -> Split {
        let first_percent = first_percent.min(100);
        if first == second || first_percent == 100 {
            return Split::single(first);
        }
        if first_percent == 0 {
            return Split::single(second);
        }
        Split(vec![TrafficTarget::new(first, first_percent), TrafficTarget::new(second, 100 - first_percent)])
    }

    pub fn targets(&self) -> &[TrafficTarget] {
        &self.0
    }

    pub fn revisions(&self) -> impl Iterator<Item = u64> {
        self.0.iter().map(|t| t.revision)
    }

    /// The share of `revision`, 0 when the split does not name it.
    pub fn percent_of(&self, revision: u64) -> u8 {
        self.0.iter().find(|t| t.revision == revision).map_or(0, |t| t.percent)
    }

    /// Checks every revision is among `known` ([`SplitError::UnknownRevision`] names the first
    /// that is not).
    pub fn check_known(&self, known: impl Fn(u64) -> bool) -> Result<(), SplitError> {
        match self.revisions().find(|&r| !known(r)) {
            Some(r) => Err(SplitError::UnknownRevision(r)),
            None => Ok(()),
        }
    }

    /// The revision for one request.
    ///
    /// With a sticky key the request goes to the bucket [`bucket`] gives the key, so one key
    /// always lands on the same revision while the split stands. Buckets are dealt to targets in
    /// order: the first target owns the lowest. Without a key the bucket is uniformly random.
    pub fn pick(&self, sticky_key: Option<&[u8]>) -> u64 {
        let bucket = match sticky_key {
            Some(key) => bucket(key),
            None => fastrand::u8(0..100),
        };
        self.revision_for_bucket(bucket)
    }

    /// The revision owning `bucket` (0..100; larger values count as the last bucket).
    pub fn revision_for_bucket(&self, bucket: u8) -> u64 {
        match self.0.split_last() {
            Some((last, init)) => {
                let mut upto = 0u8;
                for t in init {
                    upto += t.percent;
                    if bucket < upto {
                        return t.revision;
                    }
                }
                last.revision
            }
            // Every constructor refuses an empty split, and the field is private.
            None => unreachable!("a Split always has a target"),
        }
    }

    /// Parses the CLI form `3=90 4=10`, one item per argument. An argument holding several
    /// items separated by spaces or commas (`"3=90 4=10"`, `3=90,4=10`) is read the same way,
    /// and a percent may end in `%`.
    pub fn parse_args<S: AsRef<str>>(args: &[S]) -> Result<Split, SplitError> {
        let mut targets = Vec::new();
        for arg in args {
            for item in arg.as_ref().split(|c: char| c == ',' || c.is_whitespace()).filter(|s| !s.is_empty())
            {
                targets.push(parse_item(item)?);
            }
        }
        Split::new(targets)
    }
}

fn parse_item(item: &str) -> Result<TrafficTarget, SplitError> {
    let syntax = || SplitError::Syntax(item.to_owned());
    let (revision, percent) = item.split_once('=').ok_or_else(syntax)?;
    let percent = percent.strip_suffix('%').unwrap_or(percent);
    // u64::from_str accepts a leading '+', which is no way to write a revision or a share.
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    if !digits(revision) || !digits(percent) {
        return Err(syntax());
    }
    let revision: u64 = revision.parse().map_err(|_| syntax())?;
    let percent: u64 = percent.parse().map_err(|_| syntax())?;
    let percent =
        u8::try_from(percent).ok().filter(|&p| p <= 100).ok_or(SplitError::Percent { revision, percent })?;
    Ok(TrafficTarget::new(revision, percent))
}

impl TryFrom<Vec<TrafficTarget>> for Split {
    type Error = SplitError;

    fn try_from(targets: Vec<TrafficTarget>) -> Result<Split, SplitError> {
        Split::new(targets)
    }
}

impl From<Split> for Vec<TrafficTarget> {
    fn from(split: Split) -> Vec<TrafficTarget> {
        split.0
    }
}

/// The CLI form, `3=90 4=10`.
impl fmt::Display for Split {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, t) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(" ")?;
            }
            write!(f, "{}={}", t.revision, t.percent)?;
        }
        Ok(())
    }
}

/// The CLI form, `3=90 4=10` (as [`Split::parse_args`] with one argument).
impl FromStr for Split {
    type Err = SplitError;

    fn from_str(s: &str) -> Result<Split, SplitError> {
        Split::parse_args(&[s])
    }
}

/// The bucket (0..100) of a sticky key.
///
/// Stable across processes, platforms and Rust versions, since clients stay on a revision
/// through restarts and across the replicas of a gateway: 64-bit FNV-1a, then a finalising mix
/// (FNV's low bits are weak on short keys that differ only at the end), then the mixed hash
/// scaled into 0..100 by its high bits. Changing any of this moves clients between revisions.
pub fn bucket(key: &[u8]) -> u8 {
    let h = mix64(fnv1a64(key));
    // (h * 100) >> 64 is below 100 for any h.
    ((u128::from(h) * 100) >> 64) as u8
}

pub(crate) fn fnv1a64(bytes: &[u8]) -> u64 {
    const OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
    const PRIME: u64 = 0x0000_0100_0000_01b3;
    bytes.iter().fold(OFFSET, |h, &b| (h ^ u64::from(b)).wrapping_mul(PRIME))
}

/// The 64-bit finaliser of MurmurHash3: every input bit affects every output bit.
fn mix64(mut h: u64) -> u64 {
    h ^= h >> 33;
    h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
    h ^= h >> 33;
    h = h.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    h ^ (h >> 33)
}
