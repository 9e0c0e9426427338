//! How requests and responses cross between the page and the worker. A message is
//! `{value, floats, id}`:
//! - `value`: the [`Request`] or [`Response`] as a structured JS value (serde-wasm-bindgen:
//!   no JSON text on either side);
//! - `floats`: the large f32 payloads taken out of it (map cells, exact attention rows,
//!   thumbnails, the similarity matrix), one `Float32Array` each, whose buffers are
//!   transferred with the message (moved, not copied; no float-to-text round trip);
//! - `id`: the request's id (answers carry the id of the request they answer).
//!
//! [`Floats`] says which fields travel as `Float32Array`s; it is plain Rust and tested
//! natively. Model bytes still travel as a transferred `ArrayBuffer` beside the message.

use super::protocol::{HeadMap, Request, Response};

/// The f32 payloads of a message, taken out before it is posted and put back on arrival, in
/// the same order. A taken `Vec` is left empty; a taken list of rows keeps one empty row per
/// row, so the receiver knows how many arrays belong to it.
pub trait Floats {
    fn take_floats(&mut self, out: &mut Vec<Vec<f32>>);
    fn put_floats(&mut self, from: &mut dyn Iterator<Item = Vec<f32>>) -> Result<(), String>;
}

fn take(v: &mut Vec<f32>, out: &mut Vec<Vec<f32>>) {
    out.push(std::mem::take(v));
}

fn put(v: &mut Vec<f32>, from: &mut dyn Iterator<Item = Vec<f32>>) -> Result<(), String> {
    *v = from.next().ok_or("a message lost some of its float arrays")?;
    Ok(())
}

fn take_rows(rows: &mut [Vec<f32>], out: &mut Vec<Vec<f32>>) {
    rows.iter_mut().for_each(|r| take(r, out));
}

fn put_rows(rows: &mut [Vec<f32>], from: &mut dyn Iterator<Item = Vec<f32>>) -> Result<(), String> {
    rows.iter_mut().try_for_each(|r| put(r, from))
}

impl Floats for HeadMap {
    fn take_floats(&mut self, out: &mut Vec<Vec<f32>>) {
        take(&mut self.values, out);
    }
    fn put_floats(&mut self, from: &mut dyn Iterator<Item = Vec<f32>>) -> Result<(), String> {
        put(&mut self.values, from)
    }
}

impl Floats for Response {
    fn take_floats(&mut self, out: &mut Vec<Vec<f32>>) {
        match self {
            Response::Result { run } => {
                run.map.take_floats(out);
                run.report.attention.values_mut().for_each(|rows| take_rows(rows, out));
            }
            Response::Head { map, exact_rows } => {
                map.take_floats(out);
                if let Some(rows) = exact_rows {
                    take_rows(rows, out);
                }
            }
            Response::Rows { rows, .. } | Response::QueryRows { rows, .. } => take_rows(rows, out),
            Response::Thumbs { thumbs } => thumbs.iter_mut().for_each(|m| m.take_floats(out)),
            Response::Induction { maps, .. } => maps.iter_mut().for_each(|m| m.take_floats(out)),
            Response::Similarity { similarity } => take_rows(&mut similarity.distance, out),
            Response::Token { map: Some(map), .. } => map.take_floats(out),
            Response::Compare { maps, .. } => {
                maps.0.take_floats(out);
                maps.1.take_floats(out);
            }
            _ => {}
        }
    }
    fn put_floats(&mut self, from: &mut dyn Iterator<Item = Vec<f32>>) -> Result<(), String> {
        match self {
            Response::Result { run } => {
                run.map.put_floats(from)?;
                run.report.attention.values_mut().try_for_each(|rows| put_rows(rows, from))
            }
            Response::Head { map, exact_rows } => {
                map.put_floats(from)?;
                match exact_rows {
                    Some(rows) => put_rows(rows, from),
                    None => Ok(()),
                }
            }
            Response::Rows { rows, .. } | Response::QueryRows { rows, .. } => put_rows(rows, from),
            Response::Thumbs { thumbs } => thumbs.iter_mut().try_for_each(|m| m.put_floats(from)),
            Response::Induction { maps, .. } => maps.iter_mut().try_for_each(|m| m.put_floats(from)),
            Response::Similarity { similarity } => put_rows(&mut similarity.distance, from),
            Response::Token { map: Some(map), .. } => map.put_floats(from),
            Response::Compare { maps, .. } => {
                maps.0.put_floats(from)?;
                maps.1.put_floats(from)
            }
            _ => Ok(()),
        }
    }
}

/// Requests are small: nothing travels beside them (model bytes excepted).
impl Floats for Request {
    fn take_floats(&mut self, _: &mut Vec<Vec<f32>>) {}
    fn put_floats(&mut self, _: &mut dyn Iterator<Item = Vec<f32>>) -> Result<(), String> {
        Ok(())
    }
}

/// What a message costs on the wire, for the benchmark: the JSON text it used to be, and the
/// binary message (the structured value, measured as its JSON, plus 4 bytes per float).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct WireSize {
    pub json_bytes: usize,
    pub value_bytes: usize,
    pub float_bytes: usize,
    pub arrays: usize,
}

pub fn wire_size(r: &Response) -> WireSize {
    let json_bytes = serde_json::to_string(r).map(|s| s.len()).unwrap_or(0);
    let mut rest = r.clone();
    let mut floats = vec![];
    rest.take_floats(&mut floats);
    let value_bytes = serde_json::to_string(&rest).map(|s| s.len()).unwrap_or(0);
    WireSize { json_bytes, value_bytes, float_bytes: floats.iter().map(|f| f.len() * 4).sum(), arrays: floats.len() }
}

#[cfg(all(feature = "web", target_arch = "wasm32"))]
pub use web::{decode, encode};

#[cfg(all(feature = "web", target_arch = "wasm32"))]
mod web {
    use super::Floats;
    use js_sys::{Array, Float32Array, Object, Reflect};
    use wasm_bindgen::{JsCast, JsValue};

    /// The message for `value` answering (or being) request `id`, and the buffers to transfer.
    pub fn encode<T: serde::Serialize + Floats>(mut value: T, id: f64) -> Result<(JsValue, Array), String> {
        let mut floats = vec![];
        value.take_floats(&mut floats);
        let ser = serde_wasm_bindgen::Serializer::new().serialize_maps_as_objects(true);
        let js = value.serialize(&ser).map_err(|e| format!("cannot encode a message: {e}"))?;
        let arrays = Array::new();
        let transfer = Array::new();
        for f in &floats {
            let a = Float32Array::new_with_length(f.len() as u32);
            a.copy_from(f);
            transfer.push(&a.buffer());
            arrays.push(&a);
        }
        let out = Object::new();
        let _ = Reflect::set(&out, &"value".into(), &js);
        let _ = Reflect::set(&out, &"floats".into(), &arrays);
        let _ = Reflect::set(&out, &"id".into(), &JsValue::from_f64(id));
        Ok((out.into(), transfer))
    }

    /// The message's value with its floats put back, and its id.
    pub fn decode<T: serde::de::DeserializeOwned + Floats>(data: &JsValue) -> Result<(T, f64), String> {
        let id = Reflect::get(data, &"id".into()).ok().and_then(|i| i.as_f64()).unwrap_or(0.0);
        let value = Reflect::get(data, &"value".into()).map_err(|_| "a message without a value".to_string())?;
        let mut msg: T = serde_wasm_bindgen::from_value(value).map_err(|e| format!("bad message: {e}"))?;
        let arrays: Array = Reflect::get(data, &"floats".into()).ok().and_then(|a| a.dyn_into().ok()).unwrap_or_default();
        let mut floats = arrays.iter().map(|a| a.dyn_into::<Float32Array>().map(|a| a.to_vec()).unwrap_or_default());
        msg.put_floats(&mut floats).map_err(|e| format!("bad message: {e}"))?;
        Ok((msg, id))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analysis::heads::Similarity;

    fn map(values: Vec<f32>) -> HeadMap {
        HeadMap { layer: 1, head: 2, n_tokens: 3, rows: (0, 3), cols: (0, 3), side_q: 3, side_k: 3, block_q: 1, block_k: 1, values, window: None }
    }

    fn round_trip(r: &Response) -> Response {
        let mut sent = r.clone();
        let mut floats = vec![];
        sent.take_floats(&mut floats);
        // What crosses as the value must hold none of the floats.
        let text = serde_json::to_string(&sent).unwrap();
        let mut back: Response = serde_json::from_str(&text).unwrap();
        back.put_floats(&mut floats.into_iter()).unwrap();
        back
    }

    #[test]
    fn maps_rows_and_matrices_come_back_equal_and_leave_the_value() {
        let rows = vec![vec![1.0], vec![0.25, 0.75], vec![0.1, 0.2, 0.7]];
        let head = Response::Head { map: map((0..9).map(|i| i as f32 / 7.0).collect()), exact_rows: Some(rows.clone()) };
        assert_eq!(round_trip(&head), head);
        let w = wire_size(&head);
        assert_eq!((w.float_bytes, w.arrays), (4 * (9 + 6), 4));
        assert!(w.value_bytes < w.json_bytes, "{w:?}");

        let thumbs = Response::Thumbs { thumbs: vec![map(vec![0.5; 9]), map(vec![f32::MIN_POSITIVE; 9])] };
        assert_eq!(round_trip(&thumbs), thumbs);
        let sim = Response::Similarity { similarity: Box::new(Similarity { distance: vec![vec![0.0, 0.3], vec![0.3, 0.0]], order: vec![1, 0], groups: vec![], threshold: 0.15, summary: "x".into(), rows: None }) };
        assert_eq!(round_trip(&sim), sim);
        let export = Response::Rows { layer: 0, head: 0, rows: rows.clone() };
        assert_eq!(round_trip(&export), export);
        let query_rows = Response::QueryRows { query: 2, rows: vec![vec![0.1, 0.2, 0.7], vec![0.3, 0.3, 0.4]] };
        assert_eq!(round_trip(&query_rows), query_rows);
        assert_eq!(wire_size(&query_rows).arrays, 2);
        // Nothing to take: the value is the message.
        let err = Response::Error { phase: "run".into(), message: "no".into() };
        assert_eq!(round_trip(&err), err);
        assert_eq!(wire_size(&err).arrays, 0);
    }

    #[test]
    fn a_message_short_of_arrays_is_an_error_not_a_panic() {
        let mut head = Response::Head { map: map(vec![0.0; 9]), exact_rows: Some(vec![vec![1.0], vec![0.5, 0.5]]) };
        let mut floats = vec![];
        head.take_floats(&mut floats);
        floats.pop();
        assert!(head.put_floats(&mut floats.into_iter()).is_err());
    }
}
