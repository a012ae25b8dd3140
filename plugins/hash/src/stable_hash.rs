//! The hash that places ring points and messages: FNV-1a 64 followed by a 64-bit avalanche
//! finaliser.
//!
//! It is part of the exchange's contract, not an implementation detail: changing it, or how
//! ring points are named, would send most keys to a different destination after an upgrade.
//! The tests pin its output for that reason.

const FNV_OFFSET_BASIS: u64 = 0xcbf2_9ce4_8422_2325;
const FNV_PRIME: u64 = 0x0000_0100_0000_01b3;

/// FNV-1a 64 of `bytes`.
pub(crate) fn fnv1a64(bytes: &[u8]) -> u64 {
    bytes.iter().fold(FNV_OFFSET_BASIS, |hash, &b| {
        (hash ^ u64::from(b)).wrapping_mul(FNV_PRIME)
    })
}

/// Spreads every input bit over every output bit. FNV-1a alone leaves short inputs that differ
/// in one byte close together in the high bits, which would bunch ring points into clusters.
fn avalanche(mut x: u64) -> u64 {
    x ^= x >> 33;
    x = x.wrapping_mul(0xff51_afd7_ed55_8ccd);
    x ^= x >> 33;
    x = x.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    x ^ (x >> 33)
}

/// The ring position of a message key (a routing key or a header value).
pub(crate) fn key_position(key: &[u8]) -> u64 {
    avalanche(fnv1a64(key))
}

/// The ring position of a destination's `index`th point: the hash of the destination id and
/// the index, each as four little-endian bytes.
pub(crate) fn point_position(destination: u32, index: u32) -> u64 {
    let mut bytes = [0u8; 8];
    bytes[..4].copy_from_slice(&destination.to_le_bytes());
    bytes[4..].copy_from_slice(&index.to_le_bytes());
    key_position(&bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fnv1a64_matches_the_published_test_vectors() {
        assert_eq!(fnv1a64(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a64(b"a"), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(fnv1a64(b"foobar"), 0x8594_4171_f739_67e8);
    }

    #[test]
    fn positions_are_pinned_so_an_upgrade_moves_no_key() {
        // If these change, every consistent-hash exchange reshuffles its keys on upgrade.
        assert_eq!(key_position(b""), 0xefd0_1f60_ba99_2926);
        assert_eq!(key_position(b"order-17"), 0x4d9a_939a_f1bb_2f9f);
        assert_eq!(point_position(7, 42), 0x200c_7656_75e8_1778);
    }
}
