//! Gzip (RFC 1952) both ways. Request bodies, as RudderStack's libraries send them by
//! default: the header read here, the deflate data inflated by miniz_oxide, the CRC-32 and
//! length checked, and the output bounded so that a small body cannot inflate without
//! limit. Archive objects: written by [`gzip`], byte for byte the same for the same input,
//! so an object rebuilt after a crash can be compared with the one already stored.

use miniz_oxide::deflate::compress_to_vec;
use miniz_oxide::inflate::{decompress_to_vec_with_limit, TINFLStatus};

/// Why a body could not be inflated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GzipError {
    /// Not gzip (no magic bytes), or a header, deflate stream or trailer that is broken.
    Malformed(&'static str),
    /// It inflates to more than the limit.
    TooLarge { limit: usize },
}

const FHCRC: u8 = 0x02;
const FEXTRA: u8 = 0x04;
const FNAME: u8 = 0x08;
const FCOMMENT: u8 = 0x10;

/// Inflates one gzip member of at most `limit` bytes inflated.
pub fn gunzip(body: &[u8], limit: usize) -> Result<Vec<u8>, GzipError> {
    let malformed = GzipError::Malformed;
    if body.len() < 18 || body[0] != 0x1f || body[1] != 0x8b || body[2] != 8 {
        return Err(malformed("not a gzip body (or not deflate)"));
    }
    let flags = body[3];
    let mut at = 10;
    if flags & FEXTRA != 0 {
        let extra = body.get(at..at + 2).ok_or(malformed("cut header"))?;
        at += 2 + usize::from(u16::from_le_bytes([extra[0], extra[1]]));
    }
    for flag in [FNAME, FCOMMENT] {
        if flags & flag != 0 {
            let text = body.get(at..).ok_or(malformed("cut header"))?;
            at += text
                .iter()
                .position(|b| *b == 0)
                .ok_or(malformed("cut header"))?
                + 1;
        }
    }
    if flags & FHCRC != 0 {
        at += 2;
    }
    let trailer_at = body.len() - 8;
    let data = body.get(at..trailer_at).ok_or(malformed("cut header"))?;
    let trailer = &body[trailer_at..];
    let crc = u32::from_le_bytes([trailer[0], trailer[1], trailer[2], trailer[3]]);
    let size = u32::from_le_bytes([trailer[4], trailer[5], trailer[6], trailer[7]]) as usize;
    if size > limit {
        return Err(GzipError::TooLarge { limit });
    }
    let out = decompress_to_vec_with_limit(data, limit).map_err(|e| match e.status {
        TINFLStatus::HasMoreOutput => GzipError::TooLarge { limit },
        _ => malformed("broken deflate data"),
    })?;
    if out.len() != size {
        return Err(malformed("the length in the trailer does not match"));
    }
    if crc32(&out) != crc {
        return Err(malformed("the CRC-32 in the trailer does not match"));
    }
    Ok(out)
}

/// One gzip member of `data`: deflate level 6, no name, modification time 0, OS
/// "unknown", so the same input always gives the same bytes.
pub fn gzip(data: &[u8]) -> Vec<u8> {
    let mut out = vec![0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff];
    out.extend(compress_to_vec(data, 6));
    out.extend(crc32(data).to_le_bytes());
    // ISIZE is the length modulo 2^32 (RFC 1952).
    out.extend((data.len() as u32).to_le_bytes());
    out
}

/// CRC-32 (IEEE, reflected), by a table built at compile time (archive objects run to
/// megabytes).
fn crc32(data: &[u8]) -> u32 {
    const TABLE: [u32; 256] = {
        let mut table = [0u32; 256];
        let mut i = 0;
        while i < 256 {
            let mut crc = i as u32;
            let mut bit = 0;
            while bit < 8 {
                crc = (crc >> 1) ^ (0xedb8_8320 & (crc & 1).wrapping_neg());
                bit += 1;
            }
            table[i] = crc;
            i += 1;
        }
        table
    };
    let mut crc = !0u32;
    for byte in data {
        crc = (crc >> 8) ^ TABLE[((crc ^ u32::from(*byte)) & 0xff) as usize];
    }
    !crc
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A gzip member as a library writes it, with optional header fields.
    fn gzip_with(data: &[u8], flags: u8) -> Vec<u8> {
        let mut out = vec![0x1f, 0x8b, 8, flags, 0, 0, 0, 0, 0, 3];
        if flags & FEXTRA != 0 {
            out.extend([3, 0, b'x', b'y', b'z']);
        }
        if flags & FNAME != 0 {
            out.extend(b"body.json\0");
        }
        if flags & FCOMMENT != 0 {
            out.extend(b"a comment\0");
        }
        if flags & FHCRC != 0 {
            out.extend([0, 0]);
        }
        out.extend(compress_to_vec(data, 6));
        out.extend(crc32(data).to_le_bytes());
        out.extend((data.len() as u32).to_le_bytes());
        out
    }

    #[test]
    fn written_members_inflate_and_are_the_same_each_time() {
        let data = b"{\"id\":\"a\",\"name\":\"signup\"}\n".repeat(500);
        let once = gzip(&data);
        assert_eq!(once, gzip(&data), "deterministic");
        assert!(once.len() < data.len() / 10, "compressed");
        assert_eq!(gunzip(&once, data.len()).unwrap(), data);
        assert_eq!(gunzip(&gzip(b""), 0).unwrap(), b"");
    }

    #[test]
    fn crc32_matches_the_reference_value() {
        assert_eq!(crc32(b"123456789"), 0xcbf4_3926);
        assert_eq!(crc32(b""), 0);
    }

    #[test]
    fn inflates_with_every_header_field() {
        let body = br#"{"batch":[{"type":"track","event":"x","userId":"u"}]}"#.repeat(20);
        for flags in [
            0,
            FEXTRA,
            FNAME,
            FCOMMENT,
            FHCRC,
            FEXTRA | FNAME | FCOMMENT | FHCRC,
        ] {
            assert_eq!(
                gunzip(&gzip_with(&body, flags), 10_000).unwrap(),
                body,
                "flags {flags}"
            );
        }
        assert_eq!(gunzip(&gzip_with(b"", 0), 10).unwrap(), b"");
    }

    #[test]
    fn refuses_bombs_and_broken_bodies() {
        let zeros = vec![0u8; 1_000_000];
        let bomb = gzip_with(&zeros, 0);
        assert!(bomb.len() < 2_000, "a small body");
        assert_eq!(
            gunzip(&bomb, 500_000),
            Err(GzipError::TooLarge { limit: 500_000 })
        );
        // A trailer that understates the size is still caught by the bounded output.
        let mut lying = bomb.clone();
        let n = lying.len();
        lying[n - 4..].copy_from_slice(&10u32.to_le_bytes());
        assert!(matches!(
            gunzip(&lying, 500_000),
            Err(GzipError::TooLarge { .. })
        ));
        let good = gzip_with(b"hello, world", 0);
        let mut bad_crc = good.clone();
        let n = bad_crc.len();
        bad_crc[n - 8] ^= 1;
        assert!(matches!(
            gunzip(&bad_crc, 100),
            Err(GzipError::Malformed(_))
        ));
        let mut bad_data = good.clone();
        bad_data[12] ^= 0xff;
        assert!(gunzip(&bad_data, 100).is_err());
        assert!(matches!(
            gunzip(b"{\"batch\": []}  not gzip", 100),
            Err(GzipError::Malformed(_))
        ));
        for cut in 0..good.len() {
            assert!(gunzip(&good[..cut], 100).is_err(), "cut at {cut}");
        }
        let mut no_name_end = gzip_with(b"x", FNAME);
        no_name_end.truncate(14);
        no_name_end.extend([0u8; 8]);
        assert!(gunzip(&no_name_end, 100).is_err());
    }
}
