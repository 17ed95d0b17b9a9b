//! CNG's `BCRYPT_ECCPUBLIC_BLOB` (what `NCryptExportKey` gives for a public key): a
//! `BCRYPT_ECCKEY_BLOB` header (magic, coordinate length, both little-endian u32) followed
//! by X and Y, big-endian. Pure, so it is tested on every OS; used by the Windows device key.

/// `BCRYPT_ECDSA_PUBLIC_P256_MAGIC` ("ECS1").
const ECDSA_PUBLIC_P256_MAGIC: u32 = 0x3153_4345;

/// The P-256 public key in a `BCRYPT_ECCPUBLIC_BLOB`, or why it is not one.
#[cfg_attr(not(windows), allow(dead_code))]
pub(crate) fn parse_p256_public(blob: &[u8]) -> Result<p256::PublicKey, &'static str> {
    let word = |i: usize| -> Option<u32> {
        Some(u32::from_le_bytes(blob.get(i..i + 4)?.try_into().ok()?))
    };
    let (Some(magic), Some(len)) = (word(0), word(4)) else {
        return Err("shorter than its header");
    };
    if magic != ECDSA_PUBLIC_P256_MAGIC {
        return Err("not a P-256 ECDSA public key blob");
    }
    if len != 32 || blob.len() != 8 + 64 {
        return Err("wrong length for P-256");
    }
    let mut sec1 = [0u8; 65];
    sec1[0] = 0x04;
    sec1[1..].copy_from_slice(&blob[8..]);
    p256::PublicKey::from_sec1_bytes(&sec1).map_err(|_| "not a point on P-256")
}

#[cfg(test)]
mod tests {
    use super::*;
    use p256::elliptic_curve::sec1::ToEncodedPoint;

    fn blob_of(public: &p256::PublicKey) -> Vec<u8> {
        let point = public.to_encoded_point(false);
        let mut blob = Vec::new();
        blob.extend_from_slice(&ECDSA_PUBLIC_P256_MAGIC.to_le_bytes());
        blob.extend_from_slice(&32u32.to_le_bytes());
        blob.extend_from_slice(&point.as_bytes()[1..]);
        blob
    }

    #[test]
    fn a_p256_blob_gives_its_key_and_anything_else_is_refused() {
        let secret = p256::SecretKey::random(&mut rand_core::OsRng);
        let public = secret.public_key();
        let blob = blob_of(&public);
        // The magic as the SDK header spells it: the bytes "ECS1".
        assert_eq!(&blob[..4], b"ECS1");
        assert_eq!(parse_p256_public(&blob).unwrap(), public);

        assert!(parse_p256_public(&blob[..7]).is_err());
        assert!(parse_p256_public(&blob[..71]).is_err());
        let mut wrong_magic = blob.clone();
        wrong_magic[3] = b'3'; // ECS3: P-384
        assert!(parse_p256_public(&wrong_magic).is_err());
        let mut off_curve = blob.clone();
        off_curve[71] ^= 1;
        assert!(parse_p256_public(&off_curve).is_err());
    }
}
