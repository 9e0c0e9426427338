//! Tokenizers built from GGUF metadata (`tokenizer.ggml.*`): byte-level BPE
//! (`tokenizer.ggml.model = "gpt2"`: SmolLM2, Llama 3) and SentencePiece
//! (`"llama"`: Gemma 3, TinyLlama).
//!
//! SentencePiece, as llama.cpp's `llm_tokenizer_spm` runs it: control and user-defined tokens
//! are matched whole first; each remaining fragment gets a leading space when
//! `tokenizer.ggml.add_space_prefix` (default true) and it starts the text or follows a special
//! token; spaces become `▁`; the fragment's characters are then merged pairwise, always the
//! adjacent pair whose joined text is a token with the highest score (leftmost on ties); a
//! final piece that is not a token falls back to its bytes (`<0xAB>` tokens), else `unk`.
//! `tokenizer.ggml.add_bos_token` puts BOS first.
//!
//! Byte-level BPE pipeline, as llama.cpp (`llama-vocab.cpp`) and Hugging Face `tokenizers`
//! run it for GPT-2-style vocabularies:
//! 1. control / user-defined tokens written literally in the text (`<|im_start|>`) are
//!    matched whole, longest first, and never split;
//! 2. the rest is pre-tokenized by the regexes named by `tokenizer.ggml.pre` (for `smollm`:
//!    every numeric character isolated, then the GPT-2 regex); text between matches is kept
//!    as its own piece;
//! 3. each piece's UTF-8 bytes are mapped to GPT-2's printable byte alphabet and merged by
//!    `tokenizer.ggml.merges` rank (lowest rank first, leftmost on ties).
//!
//! Every token carries the byte span of the input it came from, so the UI can highlight it.

use std::collections::{BinaryHeap, HashMap};

use super::gguf::{Gguf, GgufError};
use fancy_regex::Regex;

#[derive(Debug, thiserror::Error)]
pub enum TokenizerError {
    #[error(transparent)]
    Gguf(#[from] GgufError),
    #[error("tokenizer model '{0}' is not supported (attnlab runs byte-level BPE, tokenizer.ggml.model = \"gpt2\", and SentencePiece, \"llama\")")]
    UnsupportedModel(String),
    #[error("pre-tokenizer '{0}' is not supported (known: smollm, gpt2/gpt-2, llama-bpe/llama3, qwen2, default)")]
    UnsupportedPre(String),
    #[error("tokenizer metadata is inconsistent: {0}")]
    Inconsistent(String),
    #[error("token id {0} is outside the vocabulary")]
    BadId(u32),
}

/// llama.cpp's GPT-2 pattern (`LLAMA_VOCAB_PRE_TYPE_GPT2`); the trailing `\s+` of the HF
/// version changes nothing because unmatched text is kept as a piece anyway.
const GPT2_PATTERN: &str = r"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+";
/// llama.cpp's `LLAMA_VOCAB_PRE_TYPE_LLAMA3`.
const LLAMA3_PATTERN: &str = r"(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";
/// llama.cpp's `LLAMA_VOCAB_PRE_TYPE_QWEN2` (Qwen2, Qwen2.5, Qwen3): Llama 3's with single digits.
const QWEN2_PATTERN: &str = r"(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";

/// GPT-2's reversible map from bytes to printable characters (`bytes_to_unicode`).
fn byte_to_char_table() -> [char; 256] {
    let mut table = ['\0'; 256];
    let mut n = 0u32;
    for b in 0..256u32 {
        let printable = (b'!' as u32..=b'~' as u32).contains(&b) || (0xA1..=0xAC).contains(&b) || (0xAE..=0xFF).contains(&b);
        table[b as usize] = if printable {
            char::from_u32(b).unwrap_or('\0')
        } else {
            n += 1;
            char::from_u32(255 + n).unwrap_or('\0')
        };
    }
    table
}

/// One token of an encoded text.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Token {
    pub id: u32,
    /// Byte range of the input this token covers (a token holding part of a multi-byte
    /// character covers the bytes it holds).
    pub start: usize,
    pub end: usize,
}

/// Which algorithm `tokenizer.ggml.model` names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenizerKind {
    /// `gpt2`: byte-level BPE over `tokenizer.ggml.merges`.
    Bpe,
    /// `llama`: SentencePiece, merges by `tokenizer.ggml.scores`, byte fallback.
    SentencePiece,
}

pub struct Tokenizer {
    pub kind: TokenizerKind,
    /// SentencePiece: each token's score (higher merges first).
    scores: Vec<f32>,
    /// SentencePiece: the `<0xAB>` token of each byte.
    byte_tokens: [Option<u32>; 256],
    /// SentencePiece: prepend a space to text that starts a fragment.
    add_space_prefix: bool,
    /// SentencePiece: tokens text may be merged into (not control, not `<0xAB>` byte pieces,
    /// which SentencePiece never matches against text).
    spm_matchable: Vec<bool>,
    /// id -> vocabulary string (in the GPT-2 byte alphabet for normal tokens).
    tokens: Vec<String>,
    token_to_id: HashMap<String, u32>,
    /// (left id, right id) -> (rank, merged id).
    merges: HashMap<(u32, u32), (u32, u32)>,
    /// Control and user-defined tokens, matched literally, longest first.
    specials: Vec<(String, u32)>,
    /// All of `specials` in one automaton: the earliest, then longest, match in one pass over
    /// the text (a scan per special was O(specials × text): Gemma has thousands).
    specials_ac: Option<aho_corasick::AhoCorasick>,
    special_ids: std::collections::HashSet<u32>,
    pre: Vec<Regex>,
    pre_name: String,
    /// Token of each byte's printable character; a vocabulary may lack some (SmolLM2 has no
    /// token for most control bytes): those become `unk_id`, or are dropped without one.
    byte_to_id: [Option<u32>; 256],
    pub unk_id: Option<u32>,
    char_to_byte: HashMap<char, u8>,
    pub bos_id: Option<u32>,
    pub eos_id: Option<u32>,
    pub add_bos: bool,
    /// `tokenizer.chat_template`: the Jinja template an instruct model's conversations are
    /// written in (rendered by [`crate::model::chat`]); `None` in a base model's file (or when
    /// the key is empty or not a string).
    pub chat_template: Option<String>,
}

impl std::fmt::Debug for Tokenizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tokenizer").field("vocab", &self.tokens.len()).field("pre", &self.pre_name).finish()
    }
}

impl Tokenizer {
    pub fn from_gguf(g: &Gguf) -> Result<Self, TokenizerError> {
        let model = g.get_str("tokenizer.ggml.model")?;
        let kind = match model {
            "gpt2" => TokenizerKind::Bpe,
            "llama" => TokenizerKind::SentencePiece,
            other => return Err(TokenizerError::UnsupportedModel(other.to_string())),
        };
        let pre_name = g.get_str("tokenizer.ggml.pre").unwrap_or("default").to_string();
        let patterns: Vec<&str> = match pre_name.as_str() {
            _ if kind == TokenizerKind::SentencePiece => vec![],
            // The byte-level split first, then digits one by one: a run of spaces before a
            // number leaves its last space apart (`\s+(?!\S)` sees the digit), as transformers
            // splits it (`"\n\n   1"` → `"\n\n  "`, `" "`, `"1"`; the license text's sections).
            "smollm" => vec![GPT2_PATTERN, r"\p{N}"],
            "gpt2" | "default" | "gpt-2" => vec![GPT2_PATTERN],
            "llama-bpe" | "llama3" | "llama-v3" => vec![LLAMA3_PATTERN],
            "qwen2" => vec![QWEN2_PATTERN],
            other => return Err(TokenizerError::UnsupportedPre(other.to_string())),
        };
        let pre = patterns
            .iter()
            .map(|p| Regex::new(p).map_err(|e| TokenizerError::Inconsistent(format!("regex: {e}"))))
            .collect::<Result<Vec<_>, _>>()?;

        let tokens: Vec<String> = g.get_str_array("tokenizer.ggml.tokens")?.into_iter().map(String::from).collect();
        if tokens.is_empty() || tokens.len() > u32::MAX as usize / 2 {
            return Err(TokenizerError::Inconsistent(format!("{} tokens", tokens.len())));
        }
        let types = match g.get_i64_array("tokenizer.ggml.token_type") {
            Ok(t) if t.len() == tokens.len() => t,
            Ok(t) => return Err(TokenizerError::Inconsistent(format!("{} token types for {} tokens", t.len(), tokens.len()))),
            Err(GgufError::MissingKey(_)) => vec![1; tokens.len()],
            Err(e) => return Err(e.into()),
        };
        let mut token_to_id = HashMap::with_capacity(tokens.len());
        for (i, t) in tokens.iter().enumerate() {
            // First occurrence wins, as in llama.cpp.
            token_to_id.entry(t.clone()).or_insert(i as u32);
        }
        let mut merges = HashMap::new();
        let merge_list = match kind {
            TokenizerKind::Bpe => g.get_str_array("tokenizer.ggml.merges")?,
            TokenizerKind::SentencePiece => vec![],
        };
        let scores: Vec<f32> = match kind {
            TokenizerKind::Bpe => vec![],
            TokenizerKind::SentencePiece => {
                let s = g.get_array("tokenizer.ggml.scores")?;
                if s.len() != tokens.len() {
                    return Err(TokenizerError::Inconsistent(format!("{} scores for {} tokens", s.len(), tokens.len())));
                }
                s.iter().map(|v| v.as_f64().map(|x| x as f32).ok_or_else(|| TokenizerError::Inconsistent("tokenizer.ggml.scores holds a non-number".into()))).collect::<Result<_, _>>()?
            }
        };
        let mut byte_tokens = [None; 256];
        if kind == TokenizerKind::SentencePiece {
            for (b, slot) in byte_tokens.iter_mut().enumerate() {
                *slot = token_to_id.get(&format!("<0x{b:02X}>")).copied();
            }
        }
        for (rank, m) in merge_list.into_iter().enumerate() {
            let Some((a, b)) = m.split_once(' ') else {
                return Err(TokenizerError::Inconsistent(format!("merge #{rank} '{m}' has no space")));
            };
            let (Some(&ia), Some(&ib)) = (token_to_id.get(a), token_to_id.get(b)) else { continue };
            let Some(&im) = token_to_id.get(&format!("{a}{b}")) else { continue };
            merges.entry((ia, ib)).or_insert((rank as u32, im));
        }
        let table = byte_to_char_table();
        let mut byte_to_id = [None; 256];
        for (b, c) in table.iter().enumerate() {
            byte_to_id[b] = token_to_id.get(&c.to_string()).copied();
        }
        let char_to_byte = table.iter().enumerate().map(|(b, c)| (*c, b as u8)).collect();
        // 3 = CONTROL, 4 = USER_DEFINED (llama.cpp `llama_token_type`).
        let mut specials: Vec<(String, u32)> = types
            .iter()
            .enumerate()
            .filter(|(_, &t)| t == 3 || t == 4)
            .map(|(i, _)| (tokens[i].clone(), i as u32))
            .filter(|(s, _)| !s.is_empty())
            .collect();
        specials.sort_by(|a, b| b.0.len().cmp(&a.0.len()).then(a.1.cmp(&b.1)));

        let id_opt = |key: &str| g.get_u64(key).ok().filter(|&v| v < tokens.len() as u64).map(|v| v as u32);
        // 3 = CONTROL, 6 = BYTE (llama.cpp `llama_token_type`).
        let spm_matchable = if kind == TokenizerKind::SentencePiece { types.iter().map(|&t| t != 3 && t != 6).collect() } else { vec![] };
        Ok(Tokenizer {
            spm_matchable,
            kind,
            scores,
            byte_tokens,
            add_space_prefix: g.get_bool("tokenizer.ggml.add_space_prefix").unwrap_or(true),
            unk_id: id_opt("tokenizer.ggml.unknown_token_id"),
            bos_id: id_opt("tokenizer.ggml.bos_token_id"),
            eos_id: id_opt("tokenizer.ggml.eos_token_id"),
            add_bos: g.get_bool("tokenizer.ggml.add_bos_token").unwrap_or(false),
            chat_template: g.get_str("tokenizer.chat_template").ok().filter(|t| !t.trim().is_empty()).map(String::from),
            tokens,
            token_to_id,
            merges,
            specials_ac: if specials.is_empty() {
                None
            } else {
                aho_corasick::AhoCorasick::builder().match_kind(aho_corasick::MatchKind::LeftmostLongest).build(specials.iter().map(|(s, _)| s.as_str())).ok()
            },
            special_ids: specials.iter().map(|(_, id)| *id).collect(),
            specials,
            pre,
            pre_name,
            byte_to_id,
            char_to_byte,
        })
    }

    pub fn vocab_size(&self) -> usize {
        self.tokens.len()
    }

    pub fn pre_tokenizer(&self) -> &str {
        &self.pre_name
    }

    pub fn id_of(&self, token: &str) -> Option<u32> {
        self.token_to_id.get(token).copied()
    }

    /// Ids of `text` (no BOS: callers add it when the model wants one).
    pub fn encode(&self, text: &str) -> Vec<u32> {
        self.encode_with_spans(text).into_iter().map(|t| t.id).collect()
    }

    /// Tokens of `text` with their byte spans.
    pub fn encode_with_spans(&self, text: &str) -> Vec<Token> {
        let mut out = Vec::new();
        if let (true, Some(bos)) = (self.add_bos, self.bos_id) {
            out.push(Token { id: bos, start: 0, end: 0 });
        }
        let mut pos = 0;
        // SentencePiece's space prefix goes on text that starts the input or follows a special.
        let mut after_special = true;
        while pos < text.len() {
            // Earliest special token at or after `pos`; longest wins at the same start.
            let next = self.specials_ac.as_ref().and_then(|ac| ac.find(&text[pos..])).map(|m| (pos + m.start(), m.len(), self.specials[m.pattern().as_usize()].1));
            let (plain_end, special) = match next {
                Some((at, len, id)) => (at, Some((at, len, id))),
                None => (text.len(), None),
            };
            if plain_end > pos {
                match self.kind {
                    TokenizerKind::Bpe => self.encode_plain(text, pos, plain_end, &mut out),
                    TokenizerKind::SentencePiece => self.spm(text, pos, plain_end, after_special && self.add_space_prefix, &mut out),
                }
                after_special = false;
            }
            match special {
                Some((at, len, id)) => {
                    out.push(Token { id, start: at, end: at + len });
                    pos = at + len;
                    after_special = true;
                }
                None => pos = text.len(),
            }
        }
        out
    }

    /// Pre-tokenizes `text[start..end]` and appends its BPE tokens.
    fn encode_plain(&self, text: &str, start: usize, end: usize, out: &mut Vec<Token>) {
        if start >= end {
            return;
        }
        let mut pieces = vec![(start, end)];
        for re in &self.pre {
            let mut next = Vec::with_capacity(pieces.len() * 2);
            for &(s, e) in &pieces {
                let piece = &text[s..e];
                let mut last = 0;
                for m in re.find_iter(piece) {
                    let Ok(m) = m else { break };
                    if m.start() > last {
                        next.push((s + last, s + m.start()));
                    }
                    if m.end() > m.start() {
                        next.push((s + m.start(), s + m.end()));
                    }
                    last = m.end();
                }
                if last < piece.len() {
                    next.push((s + last, e));
                }
            }
            pieces = next;
        }
        for (s, e) in pieces {
            self.bpe(text.as_bytes(), s, e, out);
        }
    }

    /// Merges the bytes of one piece by rank. A linked list of symbols and a heap of
    /// candidate pairs keep it O(m log m) even on a long run without spaces.
    fn bpe(&self, bytes: &[u8], start: usize, end: usize, out: &mut Vec<Token>) {
        struct Sym {
            id: u32,
            start: usize,
            end: usize,
            prev: usize,
            next: usize,
            alive: bool,
        }
        const NONE: usize = usize::MAX;
        let mut syms: Vec<Sym> = Vec::with_capacity(end - start);
        for at in start..end {
            let Some(id) = self.byte_to_id[bytes[at] as usize].or(self.unk_id) else { continue };
            let i = syms.len();
            syms.push(Sym { id, start: at, end: at + 1, prev: if i == 0 { NONE } else { i - 1 }, next: i + 1, alive: true });
        }
        let n = syms.len();
        if let Some(last) = syms.last_mut() {
            last.next = NONE;
        }
        // Min-heap on (rank, left position); entries are re-checked when popped.
        let mut heap = BinaryHeap::new();
        let push = |heap: &mut BinaryHeap<std::cmp::Reverse<(u32, usize, u32, u32)>>, syms: &Vec<Sym>, l: usize| {
            let r = syms[l].next;
            if r == NONE {
                return;
            }
            if let Some(&(rank, _)) = self.merges.get(&(syms[l].id, syms[r].id)) {
                heap.push(std::cmp::Reverse((rank, l, syms[l].id, syms[r].id)));
            }
        };
        for i in 0..n.saturating_sub(1) {
            push(&mut heap, &syms, i);
        }
        while let Some(std::cmp::Reverse((_, l, lid, rid))) = heap.pop() {
            let r = syms[l].next;
            if !syms[l].alive || r == NONE || syms[l].id != lid || syms[r].id != rid {
                continue;
            }
            let (_, merged) = self.merges[&(lid, rid)];
            syms[l].id = merged;
            syms[l].end = syms[r].end;
            syms[l].next = syms[r].next;
            syms[r].alive = false;
            let nn = syms[l].next;
            if nn != NONE {
                syms[nn].prev = l;
            }
            let p = syms[l].prev;
            if p != NONE {
                push(&mut heap, &syms, p);
            }
            push(&mut heap, &syms, l);
        }
        let mut i = if n == 0 { NONE } else { 0 };
        while i != NONE {
            out.push(Token { id: syms[i].id, start: syms[i].start, end: syms[i].end });
            i = syms[i].next;
        }
    }

    /// SentencePiece over `text[start..end]`: characters merged by score (see the module
    /// comment). A linked list of symbols and a max-heap of candidate pairs keep it
    /// O(m log m); stale heap entries are skipped when popped.
    fn spm(&self, text: &str, start: usize, end: usize, space_prefix: bool, out: &mut Vec<Token>) {
        struct Sym {
            text: String,
            start: usize,
            end: usize,
            prev: usize,
            next: usize,
        }
        const NONE: usize = usize::MAX;
        let mut syms: Vec<Sym> = Vec::new();
        let push_sym = |syms: &mut Vec<Sym>, t: String, s: usize, e: usize| {
            let i = syms.len();
            syms.push(Sym { text: t, start: s, end: e, prev: if i == 0 { NONE } else { i - 1 }, next: i + 1 });
        };
        if space_prefix {
            push_sym(&mut syms, "\u{2581}".into(), start, start);
        }
        for (at, c) in text[start..end].char_indices() {
            let t = if c == ' ' { "\u{2581}".to_string() } else { c.to_string() };
            push_sym(&mut syms, t, start + at, start + at + c.len_utf8());
        }
        if let Some(last) = syms.last_mut() {
            last.next = NONE;
        }
        // Max-heap on (score, leftmost): the entry also records both symbols' lengths so a
        // pair that changed since it was pushed is recognised and skipped.
        #[derive(PartialEq)]
        struct Cand(f32, usize, usize, usize);
        impl Eq for Cand {}
        impl PartialOrd for Cand {
            fn partial_cmp(&self, o: &Self) -> Option<std::cmp::Ordering> {
                Some(self.cmp(o))
            }
        }
        impl Ord for Cand {
            fn cmp(&self, o: &Self) -> std::cmp::Ordering {
                self.0.total_cmp(&o.0).then(o.1.cmp(&self.1))
            }
        }
        let candidate = |syms: &Vec<Sym>, l: usize| -> Option<Cand> {
            if l == NONE || syms[l].next == NONE {
                return None;
            }
            let r = syms[l].next;
            let joined = format!("{}{}", syms[l].text, syms[r].text);
            let id = self.spm_piece(&joined)?;
            Some(Cand(self.scores[id as usize], l, syms[l].text.len(), syms[r].text.len()))
        };
        let mut heap = BinaryHeap::new();
        for l in 0..syms.len().saturating_sub(1) {
            heap.extend(candidate(&syms, l));
        }
        while let Some(Cand(_, l, ll, rl)) = heap.pop() {
            let r = syms[l].next;
            if r == NONE || syms[l].text.len() != ll || syms[r].text.len() != rl || syms[l].text.is_empty() {
                continue;
            }
            let right = std::mem::take(&mut syms[r].text);
            syms[l].text.push_str(&right);
            syms[l].end = syms[r].end;
            syms[l].next = syms[r].next;
            let nn = syms[l].next;
            if nn != NONE {
                syms[nn].prev = l;
            }
            let p = syms[l].prev;
            if p != NONE {
                heap.extend(candidate(&syms, p));
            }
            heap.extend(candidate(&syms, l));
        }
        let mut i = if syms.is_empty() { NONE } else { 0 };
        while i != NONE {
            let s = &syms[i];
            if let Some(id) = self.spm_piece(&s.text) {
                out.push(Token { id, start: s.start, end: s.end });
            } else {
                // Byte fallback: each byte of the piece's text as its `<0xAB>` token; spans
                // point at the input bytes where the piece's length allows.
                for (k, b) in s.text.bytes().enumerate() {
                    let Some(id) = self.byte_tokens[b as usize].or(self.unk_id) else { continue };
                    let at = (s.start + k).min(s.end);
                    out.push(Token { id, start: at, end: (at + 1).min(s.end.max(at)) });
                }
            }
            i = syms[i].next;
        }
    }

    /// The SentencePiece token whose text is `piece`, if text may be merged into it.
    fn spm_piece(&self, piece: &str) -> Option<u32> {
        let id = *self.token_to_id.get(piece)?;
        self.spm_matchable.get(id as usize).copied().unwrap_or(true).then_some(id)
    }

    /// The raw bytes a token stands for.
    pub fn token_bytes(&self, id: u32) -> Result<Vec<u8>, TokenizerError> {
        let s = self.tokens.get(id as usize).ok_or(TokenizerError::BadId(id))?;
        if self.special_ids.contains(&id) {
            return Ok(s.as_bytes().to_vec());
        }
        if self.kind == TokenizerKind::SentencePiece {
            if let Some(b) = self.byte_tokens.iter().position(|&t| t == Some(id)) {
                return Ok(vec![b as u8]);
            }
            return Ok(s.replace('\u{2581}', " ").into_bytes());
        }
        let mut out = Vec::with_capacity(s.len());
        for c in s.chars() {
            match self.char_to_byte.get(&c) {
                Some(b) => out.push(*b),
                None => {
                    let mut buf = [0u8; 4];
                    out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
                }
            }
        }
        Ok(out)
    }

    /// Text of a sequence of ids (invalid UTF-8 from split characters becomes U+FFFD).
    pub fn decode(&self, ids: &[u32]) -> Result<String, TokenizerError> {
        let mut bytes = Vec::new();
        for &id in ids {
            bytes.extend(self.token_bytes(id)?);
        }
        Ok(String::from_utf8_lossy(&bytes).into_owned())
    }

    /// One token decoded alone, as the UI labels it.
    pub fn token_text(&self, id: u32) -> String {
        self.decode(&[id]).unwrap_or_else(|_| format!("<bad id {id}>"))
    }
}
