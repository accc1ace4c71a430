//! The checksums S3 clients send (CRC32, CRC32C, CRC64NVME, SHA1, SHA256) and the MD5 behind
//! ETags, computed in the one pass that writes a body. The primitives are s3s's, so the
//! server verifies with exactly the code its SigV4 layer trusts.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use s3s::crypto::{Checksum as _, Crc32, Crc32c, Crc64Nvme, Md5, Sha1, Sha256};
use serde::{Deserialize, Serialize};

use crate::StorageError;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum ChecksumAlgorithm {
    Crc32,
    Crc32c,
    Crc64Nvme,
    Sha1,
    Sha256,
}

impl ChecksumAlgorithm {
    pub const ALL: [ChecksumAlgorithm; 5] = [
        ChecksumAlgorithm::Crc32,
        ChecksumAlgorithm::Crc32c,
        ChecksumAlgorithm::Crc64Nvme,
        ChecksumAlgorithm::Sha1,
        ChecksumAlgorithm::Sha256,
    ];

    /// S3's name: `CRC32`, `CRC32C`, `CRC64NVME`, `SHA1`, `SHA256` (case-insensitive).
    pub fn parse(name: &str) -> Option<ChecksumAlgorithm> {
        Self::ALL.into_iter().find(|a| a.as_str().eq_ignore_ascii_case(name))
    }

    pub fn as_str(self) -> &'static str {
        match self {
            ChecksumAlgorithm::Crc32 => "CRC32",
            ChecksumAlgorithm::Crc32c => "CRC32C",
            ChecksumAlgorithm::Crc64Nvme => "CRC64NVME",
            ChecksumAlgorithm::Sha1 => "SHA1",
            ChecksumAlgorithm::Sha256 => "SHA256",
        }
    }

    /// The header (or aws-chunked trailer) that carries it.
    pub fn header(self) -> &'static str {
        match self {
            ChecksumAlgorithm::Crc32 => "x-amz-checksum-crc32",
            ChecksumAlgorithm::Crc32c => "x-amz-checksum-crc32c",
            ChecksumAlgorithm::Crc64Nvme => "x-amz-checksum-crc64nvme",
            ChecksumAlgorithm::Sha1 => "x-amz-checksum-sha1",
            ChecksumAlgorithm::Sha256 => "x-amz-checksum-sha256",
        }
    }

    /// Only the CRCs can be combined into a checksum of the whole object from the parts'.
    pub fn full_object_capable(self) -> bool {
        matches!(self, ChecksumAlgorithm::Crc32 | ChecksumAlgorithm::Crc32c | ChecksumAlgorithm::Crc64Nvme)
    }
}

/// Base64 checksums by algorithm, as S3 carries them. A multipart object's composite checksum
/// ends in `-N`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Checksums {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub crc32: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub crc32c: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub crc64nvme: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sha1: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sha256: Option<String>,
}

impl Checksums {
    pub fn get(&self, alg: ChecksumAlgorithm) -> Option<&str> {
        match alg {
            ChecksumAlgorithm::Crc32 => self.crc32.as_deref(),
            ChecksumAlgorithm::Crc32c => self.crc32c.as_deref(),
            ChecksumAlgorithm::Crc64Nvme => self.crc64nvme.as_deref(),
            ChecksumAlgorithm::Sha1 => self.sha1.as_deref(),
            ChecksumAlgorithm::Sha256 => self.sha256.as_deref(),
        }
    }

    pub fn set(&mut self, alg: ChecksumAlgorithm, value: Option<String>) {
        let slot = match alg {
            ChecksumAlgorithm::Crc32 => &mut self.crc32,
            ChecksumAlgorithm::Crc32c => &mut self.crc32c,
            ChecksumAlgorithm::Crc64Nvme => &mut self.crc64nvme,
            ChecksumAlgorithm::Sha1 => &mut self.sha1,
            ChecksumAlgorithm::Sha256 => &mut self.sha256,
        };
        *slot = value;
    }

    pub fn algorithms(&self) -> impl Iterator<Item = ChecksumAlgorithm> + '_ {
        ChecksumAlgorithm::ALL.into_iter().filter(|a| self.get(*a).is_some())
    }

    pub fn is_empty(&self) -> bool {
        self.algorithms().next().is_none()
    }

    /// Only `keep`'s value, if any.
    pub fn only(&self, keep: ChecksumAlgorithm) -> Checksums {
        let mut out = Checksums::default();
        out.set(keep, self.get(keep).map(str::to_owned));
        out
    }
}

/// MD5 always (the ETag) plus the requested checksums, over one stream of bytes.
pub(crate) struct Hasher {
    md5: Md5,
    crc32: Option<Crc32>,
    crc32c: Option<Crc32c>,
    crc64nvme: Option<Crc64Nvme>,
    sha1: Option<Sha1>,
    sha256: Option<Sha256>,
}

pub(crate) struct Digests {
    pub md5: [u8; 16],
    pub checksums: Checksums,
}

impl Hasher {
    pub fn new(algorithms: impl IntoIterator<Item = ChecksumAlgorithm>) -> Hasher {
        let mut h =
            Hasher { md5: Md5::new(), crc32: None, crc32c: None, crc64nvme: None, sha1: None, sha256: None };
        for alg in algorithms {
            match alg {
                ChecksumAlgorithm::Crc32 => h.crc32 = Some(Crc32::new()),
                ChecksumAlgorithm::Crc32c => h.crc32c = Some(Crc32c::new()),
                ChecksumAlgorithm::Crc64Nvme => h.crc64nvme = Some(Crc64Nvme::new()),
                ChecksumAlgorithm::Sha1 => h.sha1 = Some(Sha1::new()),
                ChecksumAlgorithm::Sha256 => h.sha256 = Some(Sha256::new()),
            }
        }
        h
    }

    pub fn update(&mut self, data: &[u8]) {
        self.md5.update(data);
        if let Some(h) = &mut self.crc32 {
            h.update(data);
        }
        if let Some(h) = &mut self.crc32c {
            h.update(data);
        }
        if let Some(h) = &mut self.crc64nvme {
            h.update(data);
        }
        if let Some(h) = &mut self.sha1 {
            h.update(data);
        }
        if let Some(h) = &mut self.sha256 {
            h.update(data);
        }
    }

    pub fn finish(self) -> Digests {
        let md5: [u8; 16] = self.md5.finalize();
        let checksums = Checksums {
            crc32: self.crc32.map(|h| B64.encode(h.finalize())),
            crc32c: self.crc32c.map(|h| B64.encode(h.finalize())),
            crc64nvme: self.crc64nvme.map(|h| B64.encode(h.finalize())),
            sha1: self.sha1.map(|h| B64.encode(h.finalize())),
            sha256: self.sha256.map(|h| B64.encode(h.finalize())),
        };
        Digests { md5, checksums }
    }
}

/// Every checksum the client declared must be one we computed, and equal to it.
pub(crate) fn verify(expected: &Checksums, computed: &Checksums) -> Result<(), StorageError> {
    for alg in expected.algorithms() {
        let want = expected.get(alg).unwrap_or_default();
        match computed.get(alg) {
            Some(got) if got == want => {}
            got => {
                return Err(StorageError::BadDigest(format!(
                    "{} is {want}, the body's is {}",
                    alg.as_str(),
                    got.unwrap_or("not computed")
                )));
            }
        }
    }
    Ok(())
}

/// `Content-MD5` is base64 of the 16 bytes.
pub(crate) fn verify_md5(content_md5: Option<&str>, md5: &[u8; 16]) -> Result<(), StorageError> {
    let Some(want) = content_md5 else { return Ok(()) };
    match B64.decode(want.trim()) {
        Ok(bytes) if bytes.len() == 16 => {
            if bytes == md5 {
                Ok(())
            } else {
                Err(StorageError::BadDigest("Content-MD5 does not match the body".into()))
            }
        }
        _ => Err(StorageError::InvalidArgument("Content-MD5 is not base64 of 16 bytes".into())),
    }
}

/// S3's composite multipart checksum: the checksum of the parts' raw checksums, then `-N`.
pub(crate) fn composite(alg: ChecksumAlgorithm, parts: &[&str]) -> Option<String> {
    let mut h = Hasher::new([alg]);
    for p in parts {
        h.update(&B64.decode(p).ok()?);
    }
    let mut value = h.finish().checksums.get(alg)?.to_owned();
    value.push_str(&format!("-{}", parts.len()));
    Some(value)
}

/// The multipart ETag: MD5 of the parts' binary MD5s, then `-N`.
pub(crate) fn multipart_etag(part_etags: &[&str]) -> String {
    let mut md5 = Md5::new();
    for e in part_etags {
        md5.update(&hex::decode(e).unwrap_or_default());
    }
    format!("{}-{}", hex::encode(md5.finalize()), part_etags.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_values() {
        let mut h = Hasher::new(ChecksumAlgorithm::ALL);
        h.update(b"hello world");
        let d = h.finish();
        assert_eq!(hex::encode(d.md5), "5eb63bbbe01eeed093cb22bb8f5acdc3");
        assert_eq!(d.checksums.crc32.as_deref(), Some("DUoRhQ=="));
        assert_eq!(d.checksums.sha256.as_deref(), Some("uU0nuZNNPgilLlLX2n2r+sSE7+N6U4DukIj3rOLvzek="));
        verify(&d.checksums.only(ChecksumAlgorithm::Crc32), &d.checksums).unwrap();
        let bad = Checksums { crc32: Some("AAAAAA==".into()), ..Default::default() };
        assert!(matches!(verify(&bad, &d.checksums), Err(StorageError::BadDigest(_))));
        verify_md5(Some("XrY7u+Ae7tCTyyK7j1rNww=="), &d.md5).unwrap();
    }

    #[test]
    fn multipart_etag_shape() {
        let e = multipart_etag(&["5eb63bbbe01eeed093cb22bb8f5acdc3", "5eb63bbbe01eeed093cb22bb8f5acdc3"]);
        assert!(e.ends_with("-2") && e.len() == 34);
    }
}
