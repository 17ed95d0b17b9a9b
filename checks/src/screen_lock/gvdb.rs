//! A small, read-only reader of GVDB files: the binary databases of dconf
//! (`~/.config/dconf/user`, `/etc/dconf/db/*`).
//!
//! The format (GLib's `gvdb-format.h`): a 24-byte header (`GVariant` signature, version,
//! options, pointer to the root hash table), then hash tables of items. Each item has a
//! key fragment, the index of its parent item (the full key is the parents' fragments
//! followed by its own) and a value: a serialized GVariant of type `v` (`'v'` items), a
//! nested hash table (`'H'`, e.g. dconf's `.locks`) or a list of child indices (`'L'`).
//!
//! The input is untrusted: every offset and length is bounds-checked, parent chains are
//! bounded, and any inconsistency is a [`GvdbError`], never a panic. Only little-endian
//! files are read (what dconf writes on little-endian machines).

use std::collections::BTreeMap;

/// Why a GVDB file cannot be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GvdbError {
    /// The file does not start with the `GVariant` signature.
    #[error("not a GVDB file (bad signature)")]
    BadSignature,
    /// A byte-swapped (big-endian) file.
    #[error("big-endian GVDB files are not supported")]
    BigEndian,
    /// A GVDB format version other than 0.
    #[error("unsupported GVDB version {0}")]
    Version(u32),
    /// A pointer or length runs outside the file.
    #[error("GVDB file is corrupt: {0}")]
    Corrupt(&'static str),
}

/// A value stored under a key: the GVariant types dconf settings use for the keys we read.
#[derive(Debug, Clone, PartialEq)]
pub enum GValue {
    /// `b`.
    Bool(bool),
    /// `y`, `n`, `i`, `x` and the unsigned `q`, `u`, `t` (which fit in i128).
    Int(i128),
    /// `d`.
    Double(f64),
    /// `s`, `o`, `g`.
    Str(String),
    /// Any other type, kept by its type string so callers can say what they found.
    Other(String),
}

/// The contents of one GVDB hash table: full key -> value, and nested tables.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Table {
    /// `'v'` items by full key.
    pub values: BTreeMap<String, GValue>,
    /// `'H'` items (nested hash tables) by full key.
    pub tables: BTreeMap<String, Table>,
}

const HEADER_LEN: usize = 24;
const HASH_HEADER_LEN: usize = 8;
const ITEM_LEN: usize = 24;
const NO_PARENT: u32 = u32::MAX;
/// Nested tables deeper than this are corrupt (dconf nests one level: `.locks`).
const MAX_TABLE_DEPTH: u32 = 4;
/// Longer parent chains are corrupt (a dconf key has one item per path segment). The cap
/// also keeps a crafted file from costing time quadratic in its size.
const MAX_KEY_DEPTH: usize = 256;

fn u32_at(bytes: &[u8], offset: usize) -> Option<u32> {
    let end = offset.checked_add(4)?;
    let b: [u8; 4] = bytes.get(offset..end)?.try_into().ok()?;
    Some(u32::from_le_bytes(b))
}

fn u16_at(bytes: &[u8], offset: usize) -> Option<u16> {
    let end = offset.checked_add(2)?;
    let b: [u8; 2] = bytes.get(offset..end)?.try_into().ok()?;
    Some(u16::from_le_bytes(b))
}

/// A `gvdb_pointer` (start, end) resolved to a slice of the file.
fn slice_at(bytes: &[u8], pointer_offset: usize) -> Option<&[u8]> {
    let start = usize::try_from(u32_at(bytes, pointer_offset)?).ok()?;
    let end = usize::try_from(u32_at(bytes, pointer_offset.checked_add(4)?)?).ok()?;
    if start > end {
        return None;
    }
    bytes.get(start..end)
}

/// Parses a whole GVDB file and returns its root table.
pub fn parse(bytes: &[u8]) -> Result<Table, GvdbError> {
    let signature = bytes.get(..8).ok_or(GvdbError::BadSignature)?;
    match signature {
        b"GVariant" => {}
        b"raVGtnai" => return Err(GvdbError::BigEndian),
        _ => return Err(GvdbError::BadSignature),
    }
    let version = u32_at(bytes, 8).ok_or(GvdbError::Corrupt("short header"))?;
    if version != 0 {
        return Err(GvdbError::Version(version));
    }
    if bytes.len() < HEADER_LEN {
        return Err(GvdbError::Corrupt("short header"));
    }
    parse_table(bytes, 16, 0)
}

/// Parses the hash table whose `gvdb_pointer` is at `pointer_offset`.
fn parse_table(bytes: &[u8], pointer_offset: usize, depth: u32) -> Result<Table, GvdbError> {
    if depth > MAX_TABLE_DEPTH {
        return Err(GvdbError::Corrupt("hash tables nested too deeply"));
    }
    let table = slice_at(bytes, pointer_offset)
        .ok_or(GvdbError::Corrupt("hash table pointer out of bounds"))?;
    // An empty table may be written as an empty pointer.
    if table.is_empty() {
        return Ok(Table::default());
    }
    let table_start = usize::try_from(u32_at(bytes, pointer_offset).unwrap_or(0))
        .map_err(|_| GvdbError::Corrupt("hash table offset"))?;
    let bloom_words =
        u32_at(table, 0).ok_or(GvdbError::Corrupt("short hash table header"))? & ((1 << 27) - 1);
    let n_buckets = u32_at(table, 4).ok_or(GvdbError::Corrupt("short hash table header"))?;
    let items_offset = usize::try_from(bloom_words)
        .ok()
        .and_then(|b| b.checked_add(usize::try_from(n_buckets).ok()?))
        .and_then(|words| words.checked_mul(4))
        .and_then(|b| b.checked_add(HASH_HEADER_LEN))
        .filter(|&off| off <= table.len())
        .ok_or(GvdbError::Corrupt("hash table buckets out of bounds"))?;
    let items = table.get(items_offset..).unwrap_or_default();
    if items.len() % ITEM_LEN != 0 {
        return Err(GvdbError::Corrupt("hash items are not whole"));
    }
    let n_items = items.len() / ITEM_LEN;

    // First pass: each item's key fragment and parent.
    let mut fragments = Vec::with_capacity(n_items);
    for index in 0..n_items {
        let item = index * ITEM_LEN;
        let parent = u32_at(items, item + 4).ok_or(GvdbError::Corrupt("short item"))?;
        let key_start = usize::try_from(u32_at(items, item + 8).unwrap_or(0))
            .map_err(|_| GvdbError::Corrupt("key offset"))?;
        let key_size =
            usize::from(u16_at(items, item + 12).ok_or(GvdbError::Corrupt("short item"))?);
        let key = key_start
            .checked_add(key_size)
            .and_then(|end| bytes.get(key_start..end))
            .ok_or(GvdbError::Corrupt("key out of bounds"))?;
        let key = std::str::from_utf8(key).map_err(|_| GvdbError::Corrupt("key is not UTF-8"))?;
        fragments.push((key, parent));
    }

    let mut out = Table::default();
    for index in 0..n_items {
        let item = index * ITEM_LEN;
        let kind = items
            .get(item + 14)
            .copied()
            .ok_or(GvdbError::Corrupt("short item"))?;
        let name = full_key(&fragments, index)?;
        // The value pointer is at item + 16, as an absolute file offset.
        let value_pointer = table_start
            .checked_add(items_offset)
            .and_then(|o| o.checked_add(item + 16))
            .ok_or(GvdbError::Corrupt("item offset"))?;
        match kind {
            b'v' => {
                let data = slice_at(bytes, value_pointer)
                    .ok_or(GvdbError::Corrupt("value out of bounds"))?;
                out.values.insert(name, parse_variant(data)?);
            }
            b'H' => {
                out.tables
                    .insert(name, parse_table(bytes, value_pointer, depth + 1)?);
            }
            // A list of child item indices (dconf's directory listings): not needed for
            // lookups, but checked so a damaged file is not read as a whole one.
            b'L' => {
                let list = slice_at(bytes, value_pointer)
                    .ok_or(GvdbError::Corrupt("list out of bounds"))?;
                if list.len() % 4 != 0 {
                    return Err(GvdbError::Corrupt("list is not whole"));
                }
            }
            _ => {}
        }
    }
    Ok(out)
}

/// Joins an item's key fragment to its parents'. Chains longer than the item count
/// are cycles; chains longer than [`MAX_KEY_DEPTH`] are rejected.
fn full_key(fragments: &[(&str, u32)], index: usize) -> Result<String, GvdbError> {
    let mut parts = Vec::new();
    let mut current = index;
    for _ in 0..=fragments.len().min(MAX_KEY_DEPTH) {
        let (key, parent) = fragments
            .get(current)
            .ok_or(GvdbError::Corrupt("parent out of bounds"))?;
        parts.push(*key);
        if *parent == NO_PARENT {
            parts.reverse();
            return Ok(parts.concat());
        }
        current = usize::try_from(*parent).map_err(|_| GvdbError::Corrupt("parent"))?;
    }
    Err(GvdbError::Corrupt("cycle in parent chain"))
}

/// Decodes a serialized GVariant of type `v` (little-endian): the child's bytes, a zero
/// byte, then the child's type string.
pub fn parse_variant(data: &[u8]) -> Result<GValue, GvdbError> {
    let zero = data
        .iter()
        .rposition(|&b| b == 0)
        .ok_or(GvdbError::Corrupt("variant without type"))?;
    let value = data.get(..zero).unwrap_or_default();
    let type_string = data.get(zero + 1..).unwrap_or_default();
    let type_string =
        std::str::from_utf8(type_string).map_err(|_| GvdbError::Corrupt("variant type"))?;
    let fixed = |len: usize| -> Result<&[u8], GvdbError> {
        if value.len() == len {
            Ok(value)
        } else {
            Err(GvdbError::Corrupt("fixed-size value has the wrong size"))
        }
    };
    let int = |len: usize, signed: bool| -> Result<GValue, GvdbError> {
        let b = fixed(len)?;
        let mut buf = [0u8; 8];
        buf.get_mut(..len)
            .ok_or(GvdbError::Corrupt("integer"))?
            .copy_from_slice(b);
        let raw = u64::from_le_bytes(buf);
        let v = if signed && len < 8 {
            // Sign-extend from `len` bytes.
            let shift = 64 - 8 * len as u32;
            i128::from(((raw << shift) as i64) >> shift)
        } else if signed {
            i128::from(raw as i64)
        } else {
            i128::from(raw)
        };
        Ok(GValue::Int(v))
    };
    match type_string {
        "b" => match fixed(1)? {
            [0] => Ok(GValue::Bool(false)),
            [1] => Ok(GValue::Bool(true)),
            _ => Err(GvdbError::Corrupt("boolean is neither 0 nor 1")),
        },
        "y" => int(1, false),
        "n" => int(2, true),
        "q" => int(2, false),
        "i" => int(4, true),
        "u" => int(4, false),
        "x" => int(8, true),
        "t" => int(8, false),
        "d" => {
            let b: [u8; 8] = fixed(8)?
                .try_into()
                .map_err(|_| GvdbError::Corrupt("double"))?;
            Ok(GValue::Double(f64::from_le_bytes(b)))
        }
        "s" | "o" | "g" => match value.split_last() {
            Some((0, text)) if !text.contains(&0) => std::str::from_utf8(text)
                .map(|t| GValue::Str(t.to_owned()))
                .map_err(|_| GvdbError::Corrupt("string is not UTF-8")),
            _ => Err(GvdbError::Corrupt("string is not nul-terminated")),
        },
        other => Ok(GValue::Other(other.to_owned())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn variants() {
        assert_eq!(parse_variant(&[1, 0, b'b']), Ok(GValue::Bool(true)));
        assert_eq!(
            parse_variant(&[0x2c, 1, 0, 0, 0, b'u']),
            Ok(GValue::Int(300))
        );
        assert_eq!(
            parse_variant(&[0xff, 0xff, 0xff, 0xff, 0, b'i']),
            Ok(GValue::Int(-1))
        );
        assert_eq!(
            parse_variant(&[0xff, 0xff, 0xff, 0xff, 0, b'u']),
            Ok(GValue::Int(4_294_967_295))
        );
        assert_eq!(parse_variant(b"hi\0\0s"), Ok(GValue::Str("hi".to_owned())));
        assert_eq!(parse_variant(b"\0\0as"), Ok(GValue::Other("as".to_owned())));
        assert!(parse_variant(&[2, 0, b'b']).is_err());
        assert!(parse_variant(&[1, 0, 0, b'u']).is_err());
        assert!(parse_variant(b"b").is_err());
    }

    #[test]
    fn signature() {
        assert_eq!(parse(b""), Err(GvdbError::BadSignature));
        assert_eq!(parse(b"raVGtnai\0\0\0\0"), Err(GvdbError::BigEndian));
        assert_eq!(parse(b"GVariant\x01\0\0\0"), Err(GvdbError::Version(1)));
    }
}
