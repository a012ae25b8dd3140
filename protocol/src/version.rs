//! Protocol versions and their negotiation.
//!
//! The TLS ALPN names the protocol family (`switchyard/1`, unchanged across versions so that an
//! old peer still reaches the negotiation and hears why it cannot go on); the exact version is agreed in the
//! first frames of the control stream: the client's `Hello` lists every version it speaks and
//! the broker's `Welcome` names the one chosen, the highest both speak. With none in common the
//! broker answers `Closing` with [`ErrorCode::UnsupportedVersion`](crate::ErrorCode) instead.
//!
//! `Hello` and `Welcome` are frozen: they stay variant 0 of `ControlUp` and `ControlDown`, with
//! the same fields, in every version, so peers of different versions can always negotiate.
//! Anything else that changes a frame's encoding (a new variant or field) is a new version.

/// The version this crate speaks. Version 2 made headers and arguments typed
/// [`Table`](crate::Table)s and added properties (content encoding, type, user, app and
/// cluster ids; binary message and correlation ids). Version 1 is no longer spoken: its frames
/// cannot carry typed values, and a version-1 peer is told so in the negotiation.
pub const PROTOCOL_VERSION: u16 = 2;

/// Every version this crate speaks, oldest first.
pub const SUPPORTED_VERSIONS: &[u16] = &[PROTOCOL_VERSION];

/// The TLS application-layer protocol name both peers must offer.
pub const ALPN: &[u8] = b"switchyard/1";

/// The highest version offered by the client that this crate also speaks, if any. The order of
/// `client_versions` does not matter.
pub fn negotiate(client_versions: &[u16]) -> Option<u16> {
    client_versions
        .iter()
        .copied()
        .filter(|version| SUPPORTED_VERSIONS.contains(version))
        .max()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn negotiation_picks_the_highest_common_version() {
        assert_eq!(negotiate(&[PROTOCOL_VERSION]), Some(PROTOCOL_VERSION));
        assert_eq!(negotiate(&[7, PROTOCOL_VERSION, 0]), Some(PROTOCOL_VERSION));
        assert_eq!(negotiate(&[0, 1, 99]), None);
        assert_eq!(negotiate(&[]), None);
    }

    #[test]
    fn alpn_names_the_protocol_family_not_the_version() {
        assert_eq!(ALPN, b"switchyard/1");
    }
}
