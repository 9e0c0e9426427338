//! Reading an architecture's tensors by their GGUF names, shapes checked, with the pieces
//! every architecture composes: a linear layer with an optional bias, a norm with an optional
//! bias, a fused QKV matrix split into its three projections. The loader remembers what it
//! read, so a bias tensor no block uses is refused instead of silently ignored.

use std::cell::RefCell;
use std::collections::BTreeSet;
use std::sync::Arc;

use super::arch::{Norm, NormKind, Vector};
use super::block::Linear;
use super::config::ModelError;
use super::gguf::{GgmlType, Gguf, TensorInfo};
use super::quant::{dequantize, QTensor, QuantError};

pub struct Loader<'a> {
    pub g: &'a Gguf,
    file: &'a Arc<Vec<u8>>,
    read: RefCell<BTreeSet<String>>,
}

impl<'a> Loader<'a> {
    pub fn new(g: &'a Gguf, file: &'a Arc<Vec<u8>>) -> Self {
        Loader { g, file, read: RefCell::new(BTreeSet::new()) }
    }

    fn find(&self, name: &str) -> Result<&'a TensorInfo, ModelError> {
        let t = self.g.tensor(name).ok_or_else(|| ModelError::MissingTensor(name.to_string()))?;
        self.read.borrow_mut().insert(name.to_string());
        Ok(t)
    }

    pub fn has(&self, name: &str) -> bool {
        self.g.tensor(name).is_some()
    }

    /// A 2-D weight `(rows, cols)`; GGUF stores it as dims `[cols, rows]`.
    pub fn matrix(&self, name: &str, rows: usize, cols: usize) -> Result<QTensor, ModelError> {
        let t = self.find(name)?;
        check_dims(t, &[cols, rows])?;
        Ok(QTensor::from_shared(name, t.ty, rows, cols, self.file.clone(), t.data_range.clone())?)
    }

    /// A 1-D vector (norm weights, biases) as f32.
    pub fn vector(&self, name: &str, len: usize) -> Result<Vector, ModelError> {
        let t = self.find(name)?;
        check_dims(t, &[len])?;
        if !matches!(t.ty, GgmlType::F32 | GgmlType::F16 | GgmlType::BF16) {
            return Err(QuantError::UnsupportedType { name: name.into(), ty: t.ty.name() }.into());
        }
        let mut out = vec![0.0; len];
        dequantize(t.ty, &self.file[t.data_range.clone()], &mut out);
        Ok(Vector { name: name.to_string(), data: out })
    }

    pub fn optional_vector(&self, name: &str, len: usize) -> Result<Option<Vector>, ModelError> {
        if self.has(name) { self.vector(name, len).map(Some) } else { Ok(None) }
    }

    /// `{base}.weight` (rows, cols) and, when the file has it, `{base}.bias` (rows).
    pub fn linear(&self, base: &str, rows: usize, cols: usize) -> Result<Linear, ModelError> {
        Ok(Linear { w: self.matrix(&format!("{base}.weight"), rows, cols)?, b: self.optional_vector(&format!("{base}.bias"), rows)? })
    }

    /// `{base}.weight` (len) and, when the file has it, `{base}.bias` (len).
    pub fn norm(&self, base: &str, kind: NormKind, len: usize, eps: f32) -> Result<Norm, ModelError> {
        Ok(Norm { kind, w: self.vector(&format!("{base}.weight"), len)?, b: self.optional_vector(&format!("{base}.bias"), len)?, eps })
    }

    /// A fused projection `{base}.weight` whose rows are several projections stacked (GPT-2's
    /// `attn_qkv`: q | k | v), split into one [`Linear`] per part (`parts` rows each), bias
    /// too. The parts share the file's bytes; each is named `{base}.weight:{i}`.
    pub fn fused(&self, base: &str, parts: &[usize], cols: usize) -> Result<Vec<Linear>, ModelError> {
        let rows: usize = parts.iter().sum();
        let whole = self.matrix(&format!("{base}.weight"), rows, cols)?;
        let bias = self.optional_vector(&format!("{base}.bias"), rows)?;
        let t = self.find(&format!("{base}.weight"))?;
        let (mut r0, rb) = (0, whole.row_bytes());
        let mut out = Vec::with_capacity(parts.len());
        for (i, &n) in parts.iter().enumerate() {
            let at = t.data_range.start + r0 * rb;
            let w = QTensor::from_shared(&format!("{base}.weight:{i}"), t.ty, n, cols, self.file.clone(), at..at + n * rb)?;
            let b = bias.as_ref().map(|b| Vector { name: format!("{}:{i}", b.name), data: b.data[r0..r0 + n].to_vec() });
            out.push(Linear { w, b });
            r0 += n;
        }
        Ok(out)
    }

    /// The first bias tensor in the file that no block read (none: `Ok`).
    pub fn check_biases_used(&self) -> Result<(), ModelError> {
        let read = self.read.borrow();
        match self.g.tensors.iter().find(|t| t.name.ends_with(".bias") && !read.contains(&t.name)) {
            Some(t) => Err(ModelError::UnsupportedFeature(format!("a bias tensor this architecture has no place for ('{}')", t.name))),
            None => Ok(()),
        }
    }
}

pub(crate) fn check_dims(t: &TensorInfo, expected: &[usize]) -> Result<(), ModelError> {
    let exp: Vec<u64> = expected.iter().map(|&d| d as u64).collect();
    if t.dims != exp {
        return Err(QuantError::WrongShape { name: t.name.clone(), expected: exp, found: t.dims.clone() }.into());
    }
    Ok(())
}
