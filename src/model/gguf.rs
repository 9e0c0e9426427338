//! GGUF reader (versions 2 and 3) over a byte slice.
//!
//! The browser hands us bytes (from `fetch` or a dropped `File`), so there is no mmap: the
//! whole file is one `&[u8]`. Every count, length and offset read from it is untrusted and is
//! checked against the bytes that remain before anything is allocated; the reader returns a
//! [`GgufError`] and never panics, whatever the input (see `tests/gguf_hostile.rs` and
//! `fuzz/`).
//!
//! Layout (ggml `docs/gguf.md`): magic `GGUF`, u32 version, u64 tensor count, u64 metadata
//! count, the metadata key/values, the tensor infos, padding to `general.alignment`, then the
//! tensor data; each tensor's offset is relative to the start of that data section.

use std::collections::BTreeMap;

/// Longest string we accept (a chat template is a few KiB; a token is a few bytes).
pub const MAX_STRING_BYTES: u64 = 16 << 20;
/// Most elements in one metadata array (a vocabulary has ~50k-250k entries).
pub const MAX_ARRAY_LEN: u64 = 16 << 20;
/// Arrays may nest; real files use depth 1.
pub const MAX_ARRAY_DEPTH: u32 = 4;
/// Most tensors / metadata entries in one file.
pub const MAX_TENSORS: u64 = 1 << 16;
pub const MAX_METADATA: u64 = 1 << 16;
/// ggml tensors have at most 4 dimensions.
pub const MAX_DIMS: u32 = 4;

#[derive(Debug, thiserror::Error, Clone, PartialEq)]
pub enum GgufError {
    #[error("not a GGUF file (the first bytes are not 'GGUF')")]
    BadMagic,
    #[error("GGUF version {0} is not supported (attnlab reads versions 2 and 3)")]
    UnsupportedVersion(u32),
    #[error("the file is truncated: {what} at byte {offset} runs past its end ({len} bytes)")]
    Truncated { what: String, offset: u64, len: u64 },
    #[error("{what} is {value}, more than the limit of {max}")]
    TooLarge { what: String, value: u64, max: u64 },
    #[error("{what} is not valid UTF-8")]
    BadUtf8 { what: String },
    #[error("metadata '{key}' has unknown value type {ty}")]
    UnknownValueType { key: String, ty: u32 },
    #[error("metadata key '{0}' appears twice")]
    DuplicateKey(String),
    #[error("tensor '{0}' appears twice")]
    DuplicateTensor(String),
    #[error("tensor '{name}' has unknown ggml type id {id}")]
    UnknownTensorType { name: String, id: u32 },
    #[error("tensor '{name}' has a bad shape {shape:?}: {why}")]
    BadShape { name: String, shape: Vec<u64>, why: String },
    #[error("tensor '{name}' data ({offset}..{end}) lies outside the data section ({len} bytes)")]
    TensorOutOfBounds { name: String, offset: u64, end: u64, len: u64 },
    #[error("tensor '{name}' offset {offset} is not a multiple of the alignment {alignment}")]
    Misaligned { name: String, offset: u64, alignment: u64 },
    #[error("general.alignment = {0} is not a power of two")]
    BadAlignment(u64),
    #[error("metadata key '{0}' is missing")]
    MissingKey(String),
    #[error("metadata key '{key}' should be {expected}")]
    WrongType { key: String, expected: &'static str },
}

/// ggml tensor element types, with their block geometry (ggml `ggml.c`, `type_traits`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum GgmlType {
    F32,
    F16,
    Q4_0,
    Q4_1,
    Q5_0,
    Q5_1,
    Q8_0,
    Q8_1,
    Q2K,
    Q3K,
    Q4K,
    Q5K,
    Q6K,
    Q8K,
    I8,
    I16,
    I32,
    I64,
    F64,
    BF16,
}

impl GgmlType {
    pub fn from_id(id: u32) -> Option<Self> {
        use GgmlType::*;
        Some(match id {
            0 => F32,
            1 => F16,
            2 => Q4_0,
            3 => Q4_1,
            6 => Q5_0,
            7 => Q5_1,
            8 => Q8_0,
            9 => Q8_1,
            10 => Q2K,
            11 => Q3K,
            12 => Q4K,
            13 => Q5K,
            14 => Q6K,
            15 => Q8K,
            24 => I8,
            25 => I16,
            26 => I32,
            27 => I64,
            28 => F64,
            30 => BF16,
            _ => return None,
        })
    }

    pub fn id(self) -> u32 {
        use GgmlType::*;
        match self {
            F32 => 0,
            F16 => 1,
            Q4_0 => 2,
            Q4_1 => 3,
            Q5_0 => 6,
            Q5_1 => 7,
            Q8_0 => 8,
            Q8_1 => 9,
            Q2K => 10,
            Q3K => 11,
            Q4K => 12,
            Q5K => 13,
            Q6K => 14,
            Q8K => 15,
            I8 => 24,
            I16 => 25,
            I32 => 26,
            I64 => 27,
            F64 => 28,
            BF16 => 30,
        }
    }

    /// (elements per block, bytes per block).
    pub fn block_geometry(self) -> (u64, u64) {
        use GgmlType::*;
        match self {
            F32 => (1, 4),
            F16 | BF16 => (1, 2),
            Q4_0 => (32, 18),
            Q4_1 => (32, 20),
            Q5_0 => (32, 22),
            Q5_1 => (32, 24),
            Q8_0 => (32, 34),
            Q8_1 => (32, 36),
            Q2K => (256, 84),
            Q3K => (256, 110),
            Q4K => (256, 144),
            Q5K => (256, 176),
            Q6K => (256, 210),
            Q8K => (256, 292),
            I8 => (1, 1),
            I16 => (1, 2),
            I32 => (1, 4),
            I64 | F64 => (1, 8),
        }
    }

    pub fn name(self) -> &'static str {
        use GgmlType::*;
        match self {
            F32 => "F32",
            F16 => "F16",
            Q4_0 => "Q4_0",
            Q4_1 => "Q4_1",
            Q5_0 => "Q5_0",
            Q5_1 => "Q5_1",
            Q8_0 => "Q8_0",
            Q8_1 => "Q8_1",
            Q2K => "Q2_K",
            Q3K => "Q3_K",
            Q4K => "Q4_K",
            Q5K => "Q5_K",
            Q6K => "Q6_K",
            Q8K => "Q8_K",
            I8 => "I8",
            I16 => "I16",
            I32 => "I32",
            I64 => "I64",
            F64 => "F64",
            BF16 => "BF16",
        }
    }
}

/// One metadata value.
#[derive(Debug, Clone, PartialEq)]
pub enum MetaValue {
    U8(u8),
    I8(i8),
    U16(u16),
    I16(i16),
    U32(u32),
    I32(i32),
    F32(f32),
    Bool(bool),
    String(String),
    Array(Vec<MetaValue>),
    U64(u64),
    I64(i64),
    F64(f64),
}

impl MetaValue {
    /// Any integer that fits in u64 (GGUF writers differ in the width they pick).
    pub fn as_u64(&self) -> Option<u64> {
        match *self {
            MetaValue::U8(v) => Some(v as u64),
            MetaValue::U16(v) => Some(v as u64),
            MetaValue::U32(v) => Some(v as u64),
            MetaValue::U64(v) => Some(v),
            MetaValue::I8(v) => u64::try_from(v).ok(),
            MetaValue::I16(v) => u64::try_from(v).ok(),
            MetaValue::I32(v) => u64::try_from(v).ok(),
            MetaValue::I64(v) => u64::try_from(v).ok(),
            _ => None,
        }
    }
    pub fn as_i64(&self) -> Option<i64> {
        match *self {
            MetaValue::I8(v) => Some(v as i64),
            MetaValue::I16(v) => Some(v as i64),
            MetaValue::I32(v) => Some(v as i64),
            MetaValue::I64(v) => Some(v),
            _ => self.as_u64().and_then(|v| i64::try_from(v).ok()),
        }
    }
    pub fn as_f64(&self) -> Option<f64> {
        match *self {
            MetaValue::F32(v) => Some(v as f64),
            MetaValue::F64(v) => Some(v),
            _ => self.as_i64().map(|v| v as f64),
        }
    }
    pub fn as_str(&self) -> Option<&str> {
        match self {
            MetaValue::String(s) => Some(s),
            _ => None,
        }
    }
}

/// Where one tensor's bytes are, as read from the file (not yet bounds-trusted by callers:
/// [`Gguf::parse`] has checked `data_range` lies inside the file).
#[derive(Debug, Clone, PartialEq)]
pub struct TensorInfo {
    pub name: String,
    /// ggml order: `dims[0]` is the contiguous (innermost) dimension.
    pub dims: Vec<u64>,
    pub ty: GgmlType,
    /// Absolute byte range in the file.
    pub data_range: std::ops::Range<usize>,
}

impl TensorInfo {
    pub fn n_elements(&self) -> u64 {
        self.dims.iter().product()
    }
}

/// A parsed GGUF header: metadata and tensor locations. Tensor bytes stay in the caller's slice.
#[derive(Debug, Clone)]
pub struct Gguf {
    pub version: u32,
    pub metadata: BTreeMap<String, MetaValue>,
    /// In file order.
    pub tensors: Vec<TensorInfo>,
    pub alignment: u64,
    pub data_offset: u64,
}

struct Cursor<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Cursor<'a> {
    fn take(&mut self, n: u64, what: &dyn Fn() -> String) -> Result<&'a [u8], GgufError> {
        let remaining = (self.bytes.len() - self.pos) as u64;
        if n > remaining {
            return Err(GgufError::Truncated {
                what: what(),
                offset: self.pos as u64,
                len: self.bytes.len() as u64,
            });
        }
        let start = self.pos;
        self.pos += n as usize;
        Ok(&self.bytes[start..self.pos])
    }
    fn remaining(&self) -> u64 {
        (self.bytes.len() - self.pos) as u64
    }
    fn array<const N: usize>(&mut self, what: &dyn Fn() -> String) -> Result<[u8; N], GgufError> {
        let s = self.take(N as u64, what)?;
        let mut out = [0u8; N];
        out.copy_from_slice(s);
        Ok(out)
    }
    fn u32(&mut self, what: &dyn Fn() -> String) -> Result<u32, GgufError> {
        Ok(u32::from_le_bytes(self.array(what)?))
    }
    fn u64(&mut self, what: &dyn Fn() -> String) -> Result<u64, GgufError> {
        Ok(u64::from_le_bytes(self.array(what)?))
    }
    fn string(&mut self, what: &dyn Fn() -> String) -> Result<String, GgufError> {
        let len = self.u64(what)?;
        if len > MAX_STRING_BYTES {
            return Err(GgufError::TooLarge { what: format!("length of {}", what()), value: len, max: MAX_STRING_BYTES });
        }
        let raw = self.take(len, what)?;
        String::from_utf8(raw.to_vec()).map_err(|_| GgufError::BadUtf8 { what: what() })
    }
}

fn read_value(c: &mut Cursor, ty: u32, key: &str, depth: u32) -> Result<MetaValue, GgufError> {
    let what = || format!("metadata '{key}'");
    Ok(match ty {
        0 => MetaValue::U8(c.array::<1>(&what)?[0]),
        1 => MetaValue::I8(c.array::<1>(&what)?[0] as i8),
        2 => MetaValue::U16(u16::from_le_bytes(c.array(&what)?)),
        3 => MetaValue::I16(i16::from_le_bytes(c.array(&what)?)),
        4 => MetaValue::U32(u32::from_le_bytes(c.array(&what)?)),
        5 => MetaValue::I32(i32::from_le_bytes(c.array(&what)?)),
        6 => MetaValue::F32(f32::from_le_bytes(c.array(&what)?)),
        7 => MetaValue::Bool(c.array::<1>(&what)?[0] != 0),
        8 => MetaValue::String(c.string(&what)?),
        9 => {
            if depth >= MAX_ARRAY_DEPTH {
                return Err(GgufError::TooLarge { what: format!("array nesting of '{key}'"), value: depth as u64 + 1, max: MAX_ARRAY_DEPTH as u64 });
            }
            let elem_ty = c.u32(&what)?;
            let len = c.u64(&what)?;
            if len > MAX_ARRAY_LEN {
                return Err(GgufError::TooLarge { what: format!("length of array '{key}'"), value: len, max: MAX_ARRAY_LEN });
            }
            // Every element takes at least one byte, so a length beyond the remaining bytes
            // is a lie: refuse it before allocating.
            let min_elem = match elem_ty {
                0 | 1 | 7 => 1,
                2 | 3 => 2,
                4 | 5 | 6 => 4,
                8 | 10 | 11 | 12 => 8,
                9 => 12,
                _ => return Err(GgufError::UnknownValueType { key: key.to_string(), ty: elem_ty }),
            };
            if len.saturating_mul(min_elem) > c.remaining() {
                return Err(GgufError::Truncated { what: format!("array '{key}' of {len} elements"), offset: c.pos as u64, len: c.bytes.len() as u64 });
            }
            let mut items = Vec::with_capacity(len as usize);
            for _ in 0..len {
                items.push(read_value(c, elem_ty, key, depth + 1)?);
            }
            MetaValue::Array(items)
        }
        10 => MetaValue::U64(u64::from_le_bytes(c.array(&what)?)),
        11 => MetaValue::I64(i64::from_le_bytes(c.array(&what)?)),
        12 => MetaValue::F64(f64::from_le_bytes(c.array(&what)?)),
        _ => return Err(GgufError::UnknownValueType { key: key.to_string(), ty }),
    })
}

/// Checks a file's first 8 bytes (magic and version) before the rest is read: the page
/// refuses a wrong file without copying it.
pub fn check_magic(head: &[u8]) -> Result<(), GgufError> {
    let mut c = Cursor { bytes: head, pos: 0 };
    header_start(&mut c).map(|_| ())
}

/// Magic and version; the cursor is left after them.
fn header_start(c: &mut Cursor) -> Result<u32, GgufError> {
    let magic = c.array::<4>(&|| "magic".into()).map_err(|_| GgufError::BadMagic)?;
    if &magic != b"GGUF" {
        return Err(GgufError::BadMagic);
    }
    let version = c.u32(&|| "version".into())?;
    if version != 2 && version != 3 {
        return Err(GgufError::UnsupportedVersion(version));
    }
    Ok(version)
}

impl Gguf {
    /// Parses the header of a GGUF file and checks every tensor's bytes lie inside `bytes`.
    pub fn parse(bytes: &[u8]) -> Result<Gguf, GgufError> {
        let mut c = Cursor { bytes, pos: 0 };
        let version = header_start(&mut c)?;
        let n_tensors = c.u64(&|| "tensor count".into())?;
        let n_kv = c.u64(&|| "metadata count".into())?;
        if n_tensors > MAX_TENSORS {
            return Err(GgufError::TooLarge { what: "tensor count".into(), value: n_tensors, max: MAX_TENSORS });
        }
        if n_kv > MAX_METADATA {
            return Err(GgufError::TooLarge { what: "metadata count".into(), value: n_kv, max: MAX_METADATA });
        }

        let mut metadata = BTreeMap::new();
        for i in 0..n_kv {
            let key = c.string(&|| format!("metadata key #{i}"))?;
            let ty = c.u32(&|| format!("type of metadata '{key}'"))?;
            let value = read_value(&mut c, ty, &key, 0)?;
            if metadata.insert(key.clone(), value).is_some() {
                return Err(GgufError::DuplicateKey(key));
            }
        }

        let alignment = match metadata.get("general.alignment") {
            None => 32,
            Some(v) => {
                let a = v.as_u64().ok_or_else(|| GgufError::WrongType { key: "general.alignment".into(), expected: "an unsigned integer" })?;
                if a == 0 || !a.is_power_of_two() || a > (1 << 20) {
                    return Err(GgufError::BadAlignment(a));
                }
                a
            }
        };

        // (name, dims, type, relative offset, byte size)
        let mut raw = Vec::with_capacity(n_tensors.min(c.remaining() / 24) as usize);
        let mut names = std::collections::HashSet::new();
        for i in 0..n_tensors {
            let name = c.string(&|| format!("name of tensor #{i}"))?;
            let what = || format!("info of tensor '{name}'");
            let n_dims = c.u32(&what)?;
            if n_dims == 0 || n_dims > MAX_DIMS {
                return Err(GgufError::BadShape { name, shape: vec![], why: format!("{n_dims} dimensions (1 to {MAX_DIMS} allowed)") });
            }
            let mut dims = Vec::with_capacity(n_dims as usize);
            for _ in 0..n_dims {
                dims.push(c.u64(&what)?);
            }
            let id = c.u32(&what)?;
            let offset = c.u64(&what)?;
            let ty = GgmlType::from_id(id).ok_or_else(|| GgufError::UnknownTensorType { name: name.clone(), id })?;
            let n_elem = dims
                .iter()
                .try_fold(1u64, |acc, &d| acc.checked_mul(d))
                .filter(|&n| n > 0 && n <= (1u64 << 40))
                .ok_or_else(|| GgufError::BadShape { name: name.clone(), shape: dims.clone(), why: "element count is zero or too large".into() })?;
            let (block, type_size) = ty.block_geometry();
            if dims[0] % block != 0 {
                return Err(GgufError::BadShape { name, shape: dims, why: format!("the row length is not a multiple of the {} block size {block}", ty.name()) });
            }
            let size = n_elem / block * type_size;
            if offset % alignment != 0 {
                return Err(GgufError::Misaligned { name, offset, alignment });
            }
            if !names.insert(name.clone()) {
                return Err(GgufError::DuplicateTensor(name));
            }
            raw.push((name, dims, ty, offset, size));
        }

        let data_offset = (c.pos as u64).div_ceil(alignment) * alignment;
        let file_len = bytes.len() as u64;
        let data_len = file_len.saturating_sub(data_offset);
        let mut tensors = Vec::with_capacity(raw.len());
        for (name, dims, ty, offset, size) in raw {
            let end = offset.checked_add(size).filter(|&e| e <= data_len);
            let Some(end) = end else {
                return Err(GgufError::TensorOutOfBounds { name, offset, end: offset.saturating_add(size), len: data_len });
            };
            let start = (data_offset + offset) as usize;
            let stop = (data_offset + end) as usize;
            tensors.push(TensorInfo { name, dims, ty, data_range: start..stop });
        }
        Ok(Gguf { version, metadata, tensors, alignment, data_offset })
    }

    pub fn get(&self, key: &str) -> Result<&MetaValue, GgufError> {
        self.metadata.get(key).ok_or_else(|| GgufError::MissingKey(key.to_string()))
    }

    pub fn get_u64(&self, key: &str) -> Result<u64, GgufError> {
        self.get(key)?.as_u64().ok_or_else(|| GgufError::WrongType { key: key.into(), expected: "an unsigned integer" })
    }

    pub fn get_f32(&self, key: &str) -> Result<f32, GgufError> {
        self.get(key)?.as_f64().map(|v| v as f32).ok_or_else(|| GgufError::WrongType { key: key.into(), expected: "a number" })
    }

    pub fn get_str(&self, key: &str) -> Result<&str, GgufError> {
        self.get(key)?.as_str().ok_or_else(|| GgufError::WrongType { key: key.into(), expected: "a string" })
    }

    pub fn get_bool(&self, key: &str) -> Result<bool, GgufError> {
        match self.get(key)? {
            MetaValue::Bool(b) => Ok(*b),
            v => v.as_u64().map(|x| x != 0).ok_or_else(|| GgufError::WrongType { key: key.into(), expected: "a bool" }),
        }
    }

    pub fn get_array(&self, key: &str) -> Result<&[MetaValue], GgufError> {
        match self.get(key)? {
            MetaValue::Array(a) => Ok(a),
            _ => Err(GgufError::WrongType { key: key.into(), expected: "an array" }),
        }
    }

    pub fn get_str_array(&self, key: &str) -> Result<Vec<&str>, GgufError> {
        self.get_array(key)?
            .iter()
            .map(|v| v.as_str().ok_or_else(|| GgufError::WrongType { key: key.into(), expected: "an array of strings" }))
            .collect()
    }

    pub fn get_i64_array(&self, key: &str) -> Result<Vec<i64>, GgufError> {
        self.get_array(key)?
            .iter()
            .map(|v| v.as_i64().ok_or_else(|| GgufError::WrongType { key: key.into(), expected: "an array of integers" }))
            .collect()
    }

    pub fn tensor(&self, name: &str) -> Option<&TensorInfo> {
        self.tensors.iter().find(|t| t.name == name)
    }
}

/// Writes a GGUF v3 file. Used by tests to make small models and hostile variants, and by
/// anyone who wants to build a toy model; not used on the inference path.
#[cfg(any(test, feature = "test-support"))]
pub mod writer {
    use super::{GgmlType, MetaValue};

    fn put_str(out: &mut Vec<u8>, s: &str) {
        out.extend_from_slice(&(s.len() as u64).to_le_bytes());
        out.extend_from_slice(s.as_bytes());
    }

    fn type_id(v: &MetaValue) -> u32 {
        match v {
            MetaValue::U8(_) => 0,
            MetaValue::I8(_) => 1,
            MetaValue::U16(_) => 2,
            MetaValue::I16(_) => 3,
            MetaValue::U32(_) => 4,
            MetaValue::I32(_) => 5,
            MetaValue::F32(_) => 6,
            MetaValue::Bool(_) => 7,
            MetaValue::String(_) => 8,
            MetaValue::Array(_) => 9,
            MetaValue::U64(_) => 10,
            MetaValue::I64(_) => 11,
            MetaValue::F64(_) => 12,
        }
    }

    fn put_value(out: &mut Vec<u8>, v: &MetaValue) {
        match v {
            MetaValue::U8(x) => out.push(*x),
            MetaValue::I8(x) => out.push(*x as u8),
            MetaValue::U16(x) => out.extend_from_slice(&x.to_le_bytes()),
            MetaValue::I16(x) => out.extend_from_slice(&x.to_le_bytes()),
            MetaValue::U32(x) => out.extend_from_slice(&x.to_le_bytes()),
            MetaValue::I32(x) => out.extend_from_slice(&x.to_le_bytes()),
            MetaValue::F32(x) => out.extend_from_slice(&x.to_le_bytes()),
            MetaValue::Bool(x) => out.push(*x as u8),
            MetaValue::String(s) => put_str(out, s),
            MetaValue::Array(items) => {
                let elem = items.first().map(type_id).unwrap_or(4);
                out.extend_from_slice(&elem.to_le_bytes());
                out.extend_from_slice(&(items.len() as u64).to_le_bytes());
                for it in items {
                    put_value(out, it);
                }
            }
            MetaValue::U64(x) => out.extend_from_slice(&x.to_le_bytes()),
            MetaValue::I64(x) => out.extend_from_slice(&x.to_le_bytes()),
            MetaValue::F64(x) => out.extend_from_slice(&x.to_le_bytes()),
        }
    }

    /// A tensor to write: name, ggml dims (innermost first), type, raw block bytes.
    pub struct WriteTensor {
        pub name: String,
        pub dims: Vec<u64>,
        pub ty: GgmlType,
        pub data: Vec<u8>,
    }

    pub fn write_gguf(metadata: &[(String, MetaValue)], tensors: &[WriteTensor]) -> Vec<u8> {
        const ALIGN: usize = 32;
        let mut out = Vec::new();
        out.extend_from_slice(b"GGUF");
        out.extend_from_slice(&3u32.to_le_bytes());
        out.extend_from_slice(&(tensors.len() as u64).to_le_bytes());
        out.extend_from_slice(&(metadata.len() as u64).to_le_bytes());
        for (k, v) in metadata {
            put_str(&mut out, k);
            out.extend_from_slice(&type_id(v).to_le_bytes());
            put_value(&mut out, v);
        }
        let mut offset = 0usize;
        let mut offsets = Vec::new();
        for t in tensors {
            put_str(&mut out, &t.name);
            out.extend_from_slice(&(t.dims.len() as u32).to_le_bytes());
            for d in &t.dims {
                out.extend_from_slice(&d.to_le_bytes());
            }
            out.extend_from_slice(&t.ty.id().to_le_bytes());
            out.extend_from_slice(&(offset as u64).to_le_bytes());
            offsets.push(offset);
            offset = (offset + t.data.len()).div_ceil(ALIGN) * ALIGN;
        }
        out.resize(out.len().div_ceil(ALIGN) * ALIGN, 0);
        let base = out.len();
        for (t, off) in tensors.iter().zip(offsets) {
            out.resize(base + off, 0);
            out.extend_from_slice(&t.data);
        }
        out.resize(out.len().div_ceil(ALIGN) * ALIGN, 0);
        out
    }
}
