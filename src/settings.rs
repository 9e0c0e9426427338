//! What a figure shows, as named settings, read in one place with one set of rules: the
//! playground's URL parameters ([`read`]), the attributes of an `<attn-lab>` element (the
//! same), and the state a widget saves (`el.state`) and restores (`el.restore(…)`, the `state`
//! attribute: [`parse_state`]). All of them come from anyone's page, so each value is checked
//! here (its form and range; a saved state also its size and shape) before any of it is used.
//! What does not pass is dropped and said; nothing in it is ever run or drawn as markup. Values
//! that depend on the model (a layer beyond its last one) are clamped later, where it is known.

use serde_json::Value;

/// The largest saved state read (bytes of JSON).
pub const STATE_MAX_BYTES: usize = 256 * 1024;
/// The longest text read (characters): about what a browser's address bar holds (a URL's
/// text beyond what the model reads gets the page's offer to cut it; a saved state is capped
/// by [`STATE_MAX_BYTES`] first).
pub const TEXT_MAX_CHARS: usize = 2_000_000;

/// The form a setting's value must have.
#[derive(Clone, Copy, Debug)]
pub enum Form {
    /// Any text up to [`TEXT_MAX_CHARS`].
    Text,
    /// One of these words.
    Choice(&'static [&'static str]),
    /// A whole number min ..= max.
    Count(u64, u64),
    /// A number in min ..= max.
    Number(f64, f64),
    /// A probability above 0 and at most 1.
    Probability,
    /// Heads as `L.H` or `L.*`, comma-separated (empty: none).
    Heads,
    /// true / false (also 1 / 0).
    Flag,
    /// Short lower-case names, comma-separated (the widget says which it knows).
    Names,
    /// Layers: `all`, `L` or `A-B` (checked against the model where it is known).
    Layers,
}

/// Every view by name (the app's `View`; a widget draws each, the playground opens the tab
/// that holds it).
pub const VIEWS: [&str; 17] = ["head", "model", "sinks", "position", "tokens", "generate", "lens", "lab", "inside", "patterns", "similarity", "knockout", "cost", "streaming", "vectors", "qk", "compare"];

/// Every setting of a figure, by its attribute name (the URL also writes `q` for `query` and
/// `top_k`, `top_p` for `top-k`, `top-p`).
const SETTINGS: [(&str, Form); 24] = [
    ("view", Form::Choice(&VIEWS)),
    ("text", Form::Text),
    ("layer", Form::Count(0, 4096)),
    ("head", Form::Count(0, 4096)),
    ("query", Form::Count(0, 1 << 20)),
    ("scale", Form::Choice(&["linear", "sqrt", "log"])),
    ("palette", Form::Choice(&["blues", "viridis"])),
    ("sink", Form::Choice(&["hide", "show"])),
    ("whatif", Form::Choice(&["none", "unscaled", "unmasked", "norope"])),
    ("ablate", Form::Heads),
    ("through", Form::Choice(&["none", "unscaled", "dmodel", "unmasked", "norope", "nosink"])),
    ("through-layers", Form::Layers),
    ("controls", Form::Choice(&["none", "compact", "full"])),
    ("theme", Form::Choice(&["auto", "light", "dark"])),
    ("panels", Form::Names),
    ("gen", Form::Count(1, crate::generate::MAX_GEN as u64)),
    ("temperature", Form::Number(0.0, crate::generate::MAX_TEMPERATURE as f64)),
    ("top-k", Form::Count(0, 1 << 20)),
    ("top-p", Form::Probability),
    ("seed", Form::Count(0, u64::MAX)),
    ("chat", Form::Flag),
    ("first", Form::Text),
    ("second", Form::Text),
    ("word", Form::Text),
];

/// The playground's own URL parameters (not a figure's settings): the key token heads are
/// ranked by, where the model runs, and `run=0` (open without running).
pub const PAGE_PARAMS: [(&str, Form); 3] = [("k", Form::Count(0, 1 << 20)), ("backend", Form::Choice(&["auto", "webgpu", "cpu"])), ("run", Form::Flag)];

/// A checked saved state: each setting to apply (`None`: back to its default), and what was
/// dropped and why.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Restore {
    pub set: Vec<(&'static str, Option<String>)>,
    pub dropped: Vec<String>,
}

/// `v` shortened for a message (never more than 40 characters of it).
fn shown(v: &Value) -> String {
    let s = match v {
        Value::String(s) => s.clone(),
        v => v.to_string(),
    };
    let mut out: String = s.chars().take(40).collect();
    if s.chars().count() > 40 {
        out.push('…');
    }
    out
}

/// `value` in the form `form` asks for, as the attribute's text; or why not.
fn check(form: Form, value: &Value) -> Result<Option<String>, String> {
    if value.is_null() {
        return Ok(None);
    }
    match form {
        Form::Text => match value.as_str() {
            Some(s) if s.chars().count() <= TEXT_MAX_CHARS => Ok(Some(s.to_string())),
            Some(_) => Err(format!("longer than {TEXT_MAX_CHARS} characters")),
            None => Err("not a text".into()),
        },
        Form::Choice(words) => match value.as_str() {
            Some(s) if words.contains(&s.trim()) => Ok(Some(s.trim().to_string())),
            _ => Err(format!("not one of {}", words.join(", "))),
        },
        Form::Count(min, max) => {
            // A number, or a number written as text (as attributes and URLs are).
            let n = value.as_u64().or_else(|| value.as_str().and_then(|s| s.trim().parse::<u64>().ok()));
            match n {
                Some(n) if (min..=max).contains(&n) => Ok(Some(n.to_string())),
                Some(n) if n > max => Err(format!("above {max}")),
                Some(_) => Err(format!("below {min}")),
                None => Err(format!("not a whole number {min}, {}, {}, …", min + 1, min + 2)),
            }
        }
        Form::Number(lo, hi) => {
            let x = value.as_f64().or_else(|| value.as_str().and_then(|s| s.trim().parse::<f64>().ok()));
            match x {
                Some(x) if x.is_finite() && (lo..=hi).contains(&x) => Ok(Some(x.to_string())),
                _ => Err(format!("not a number from {lo} to {hi}")),
            }
        }
        Form::Probability => {
            let x = value.as_f64().or_else(|| value.as_str().and_then(|s| s.trim().parse::<f64>().ok()));
            match x {
                Some(x) if x > 0.0 && x <= 1.0 => Ok(Some(x.to_string())),
                _ => Err("not a probability above 0 and at most 1".into()),
            }
        }
        Form::Heads => match value.as_str() {
            Some(s) if s.len() <= 2000 && s.bytes().all(|b| b.is_ascii_digit() || b",.* ".contains(&b)) => Ok(Some(s.trim().to_string()).filter(|s| !s.is_empty())),
            _ => Err("not heads written as L.H or L.*, comma-separated".into()),
        },
        Form::Layers => {
            let num = |p: &str| (1..=5).contains(&p.len()) && p.bytes().all(|b| b.is_ascii_digit());
            match value.as_str().map(str::trim) {
                Some(s) if s == "all" || num(s) || s.split_once('-').is_some_and(|(a, b)| num(a) && num(b)) => Ok(Some(s.to_string())),
                _ => Err("not layers written as all, L or A-B".into()),
            }
        }
        Form::Names => match value.as_str() {
            Some(s) if s.len() <= 200 && s.bytes().all(|b| b.is_ascii_lowercase() || b",- ".contains(&b)) => Ok(Some(s.trim().to_string()).filter(|s| !s.is_empty())),
            _ => Err("not names (a-z) separated by commas".into()),
        },
        Form::Flag => match value {
            Value::Bool(b) => Ok(Some(if *b { "1" } else { "0" }.into())),
            Value::Number(n) if n.as_u64().is_some_and(|n| n <= 1) => Ok(Some(n.to_string())),
            Value::String(s) if matches!(s.as_str(), "1" | "0" | "true" | "false") => Ok(Some(if s == "1" || s == "true" { "1" } else { "0" }.into())),
            _ => Err("not true or false".into()),
        },
    }
}

impl Restore {
    /// The checked value of setting `name` (None: absent, refused or back to its default).
    pub fn get(&self, name: &str) -> Option<&str> {
        self.set.iter().find(|(n, _)| *n == name).and_then(|(_, v)| v.as_deref())
    }

    /// A whole-number setting (checked as one).
    pub fn number<T: std::str::FromStr>(&self, name: &str) -> Option<T> {
        self.get(name).and_then(|v| v.parse().ok())
    }
}

/// The other spelling of a setting in URLs: `q` for `query`, `top_k` for `top-k`.
fn url_spelling(name: &str) -> Option<String> {
    match name {
        "query" => Some("q".into()),
        n if n.contains('-') => Some(n.replace('-', "_")),
        _ => None,
    }
}

/// Reads every figure setting (and `extra`, e.g. [`PAGE_PARAMS`]) from `get` (a URL's
/// parameters, an element's attributes), each checked as a saved state's value; what cannot be
/// used is said with the name as it was written (`layer=x is not a whole number 0, 1, 2, …`)
/// and left out.
pub fn read(get: &dyn Fn(&str) -> Option<String>, extra: &[(&'static str, Form)]) -> Restore {
    let mut out = Restore::default();
    for &(name, form) in SETTINGS.iter().chain(extra) {
        let found = get(name).map(|v| (name.to_string(), v)).or_else(|| url_spelling(name).and_then(|n| get(&n).map(|v| (n, v))));
        let Some((written, raw)) = found else { continue };
        // An empty value (`layer=`, `view=""`) is the default, as if absent; an empty text is a text.
        if raw.trim().is_empty() && !matches!(form, Form::Text) {
            continue;
        }
        let value = Value::String(raw);
        match check(form, &value) {
            Ok(v) => out.set.push((name, v)),
            Err(why) => out.dropped.push(format!("{written}={} is {why}", shown(&value))),
        }
    }
    out
}

/// Reads a saved state (`el.state` as JSON). A state that is not one JSON object of at most
/// [`STATE_MAX_BYTES`] is refused whole; inside it, each setting is used or dropped on its own.
pub fn parse_state(json: &str) -> Result<Restore, String> {
    if json.len() > STATE_MAX_BYTES {
        return Err(format!("the saved state is {} KB; at most {} KB are read", json.len() / 1024, STATE_MAX_BYTES / 1024));
    }
    let value: Value = serde_json::from_str(json).map_err(|e| format!("the saved state is not JSON ({e})"))?;
    let Value::Object(fields) = value else {
        return Err("the saved state is not a JSON object of settings".into());
    };
    let mut out = Restore::default();
    // In the order of SETTINGS (the view first), whatever the object's order.
    for (name, form) in SETTINGS {
        if let Some(value) = fields.get(name) {
            match check(form, value) {
                Ok(v) => out.set.push((name, v)),
                Err(why) => out.dropped.push(format!("{name}={} is {why}", shown(value))),
            }
        }
    }
    for key in fields.keys().filter(|k| !SETTINGS.iter().any(|(name, _)| name == k)).take(20) {
        out.dropped.push(format!("{} is not a setting", key.chars().take(40).collect::<String>()));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(json: &str) -> (Option<Option<String>>, Vec<String>) {
        let r = parse_state(json).expect("an object");
        (r.set.first().map(|s| s.1.clone()), r.dropped)
    }

    #[test]
    fn every_setting_valid_out_of_range_and_refused() {
        // (state, what is applied, the words of what is dropped)
        let table: &[(&str, Option<Option<&str>>, &str)] = &[
            (r#"{"view":"inside"}"#, Some(Some("inside")), ""),
            (r#"{"view":"<script>"}"#, None, "view=<script> is not one of head, model"),
            (r#"{"text":"<img src=x onerror=alert(1)>"}"#, Some(Some("<img src=x onerror=alert(1)>")), ""),
            (r#"{"text":7}"#, None, "text=7 is not a text"),
            (r#"{"layer":3}"#, Some(Some("3")), ""),
            (r#"{"layer":"12"}"#, Some(Some("12")), ""),
            (r#"{"layer":-1}"#, None, "layer=-1 is not a whole number"),
            (r#"{"layer":2.5}"#, None, "not a whole number"),
            (r#"{"layer":99999}"#, None, "layer=99999 is above 4096"),
            (r#"{"head":4}"#, Some(Some("4")), ""),
            (r#"{"query":null}"#, Some(None), ""),
            (r#"{"query":5}"#, Some(Some("5")), ""),
            (r#"{"scale":"log"}"#, Some(Some("log")), ""),
            (r#"{"scale":"cubic"}"#, None, "scale=cubic is not one of linear, sqrt, log"),
            (r#"{"palette":"viridis"}"#, Some(Some("viridis")), ""),
            (r#"{"sink":"hide"}"#, Some(Some("hide")), ""),
            (r#"{"whatif":"unmasked"}"#, Some(Some("unmasked")), ""),
            (r#"{"whatif":"javascript:alert(1)"}"#, None, "whatif=javascript:alert(1) is not one of"),
            (r#"{"ablate":"14.5, 0.*"}"#, Some(Some("14.5, 0.*")), ""),
            (r#"{"ablate":""}"#, Some(None), ""),
            (r#"{"ablate":"14.5;drop"}"#, None, "ablate=14.5;drop is not heads"),
            (r#"{"through":"nosink"}"#, Some(Some("nosink")), ""),
            (r#"{"through":"explode"}"#, None, "through=explode is not one of none, unscaled"),
            (r#"{"through-layers":"3-7"}"#, Some(Some("3-7")), ""),
            (r#"{"through-layers":"15"}"#, Some(Some("15")), ""),
            (r#"{"through-layers":"3-"}"#, None, "through-layers=3- is not layers"),
            (r#"{"controls":"full"}"#, Some(Some("full")), ""),
            (r#"{"theme":"dark"}"#, Some(Some("dark")), ""),
            (r#"{"panels":"map,steps"}"#, Some(Some("map,steps")), ""),
            (r#"{"panels":"<b>map</b>"}"#, None, "panels=<b>map</b> is not names (a-z) separated by commas"),
            (r#"{"gen":32}"#, Some(Some("32")), ""),
            (r#"{"temperature":0.7}"#, Some(Some("0.7")), ""),
            (r#"{"temperature":1e308}"#, None, "is not a number from 0 to 5"),
            (r#"{"top-p":1.5}"#, None, "not a probability above 0 and at most 1"),
            (r#"{"top-k":40}"#, Some(Some("40")), ""),
            (r#"{"seed":"7"}"#, Some(Some("7")), ""),
            (r#"{"chat":true}"#, Some(Some("1")), ""),
            (r#"{"chat":"maybe"}"#, None, "chat=maybe is not true or false"),
            (r#"{"first":"She sat on the bank."}"#, Some(Some("She sat on the bank.")), ""),
            (r#"{"second":["a"]}"#, None, "second=[\"a\"] is not a text"),
            (r#"{"word":"bank"}"#, Some(Some("bank")), ""),
            (r#"{"onclick":"alert(1)"}"#, None, "onclick is not a setting"),
        ];
        for (json, applied, dropped) in table {
            let (got, why) = one(json);
            assert_eq!(got, applied.map(|a| a.map(String::from)), "{json}");
            if dropped.is_empty() {
                assert!(why.is_empty(), "{json}: {why:?}");
            } else {
                assert_eq!(why.len(), 1, "{json}");
                assert!(why[0].contains(dropped), "{json}: {why:?}");
            }
        }
        // Every setting is in the table (a new one gets a row).
        for (name, _) in SETTINGS {
            assert!(table.iter().any(|(json, _, _)| json.contains(&format!("\"{name}\""))), "{name} untested");
        }
    }

    /// A URL's parameters or an element's attributes, as `get` reads them.
    fn from(pairs: &[(&str, &str)]) -> Restore {
        let pairs: Vec<(String, String)> = pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        read(&|k| pairs.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone()), &PAGE_PARAMS)
    }

    #[test]
    fn url_and_attributes_read_with_the_same_rules() {
        // (written, the setting, the value used, the words of what is refused)
        type Row<'a> = (&'a [(&'a str, &'a str)], &'a str, Option<&'a str>, &'a str);
        let table: &[Row] = &[
            (&[("layer", "3")], "layer", Some("3"), ""),
            (&[("layer", " 3 ")], "layer", Some("3"), ""),
            (&[("layer", "x")], "layer", None, "layer=x is not a whole number 0, 1, 2"),
            (&[("head", "-1")], "head", None, "head=-1 is not a whole number"),
            (&[("layer", "")], "layer", None, ""),
            (&[("q", "5")], "query", Some("5"), ""),
            (&[("query", "5")], "query", Some("5"), ""),
            (&[("q", "last")], "query", None, "q=last is not a whole number"),
            (&[("view", "knockout")], "view", Some("knockout"), ""),
            (&[("view", "bogus<b>")], "view", None, "view=bogus<b> is not one of head, model, sinks"),
            (&[("view", "")], "view", None, ""),
            (&[("text", "")], "text", Some(""), ""),
            (&[("scale", "weird")], "scale", None, "scale=weird is not one of linear, sqrt, log"),
            (&[("whatif", "zzz")], "whatif", None, "whatif=zzz is not one of"),
            (&[("gen", "0")], "gen", None, "gen=0 is below 1"),
            (&[("gen", "513")], "gen", None, "gen=513 is above 512"),
            (&[("gen", "16")], "gen", Some("16"), ""),
            (&[("temperature", "6")], "temperature", None, "temperature=6 is not a number from 0 to 5"),
            (&[("temperature", "NaN")], "temperature", None, "not a number from 0 to 5"),
            (&[("top_p", "0")], "top-p", None, "top_p=0 is not a probability above 0"),
            (&[("top-p", "0.9")], "top-p", Some("0.9"), ""),
            (&[("top_k", "40")], "top-k", Some("40"), ""),
            (&[("seed", "18446744073709551615")], "seed", Some("18446744073709551615"), ""),
            (&[("chat", "1")], "chat", Some("1"), ""),
            (&[("backend", "quantum")], "backend", None, "backend=quantum is not one of auto, webgpu, cpu"),
            (&[("backend", "cpu")], "backend", Some("cpu"), ""),
            (&[("run", "0")], "run", Some("0"), ""),
            (&[("k", "2")], "k", Some("2"), ""),
            (&[("ablate", "14.5,0.*")], "ablate", Some("14.5,0.*"), ""),
            (&[("through_layers", "all")], "through-layers", Some("all"), ""),
            (&[("through_layers", "1-2-3")], "through-layers", None, "through_layers=1-2-3 is not layers"),
        ];
        for (pairs, name, used, refused) in table {
            let r = from(pairs);
            assert_eq!(r.get(name), *used, "{pairs:?}");
            if refused.is_empty() {
                assert!(r.dropped.is_empty(), "{pairs:?}: {:?}", r.dropped);
            } else {
                assert_eq!(r.dropped.len(), 1, "{pairs:?}");
                assert!(r.dropped[0].contains(refused), "{pairs:?}: {:?}", r.dropped);
            }
        }
        // The writing settings come through the same rules.
        let (g, asked) = crate::generate::GenSettings::from_settings(&from(&[("gen", "8"), ("temperature", "0.5"), ("top_k", "3"), ("top_p", "0.5"), ("seed", "9"), ("chat", "1")]));
        assert_eq!(asked, Some(8));
        assert_eq!((g.max_tokens, g.sampling.temperature, g.sampling.top_k, g.sampling.top_p, g.sampling.seed, g.chat), (8, 0.5, 3, 0.5, 9, true));
        // A saved state and an attribute agree on every value they both accept.
        for (json, attrs) in [(r#"{"layer":3}"#, [("layer", "3")]), (r#"{"top-p":0.5}"#, [("top-p", "0.5")]), (r#"{"whatif":"norope"}"#, [("whatif", "norope")])] {
            assert_eq!(parse_state(json).unwrap().set, from(&attrs).set, "{json}");
        }
    }

    #[test]
    fn a_state_that_is_not_one_small_object_is_refused_whole() {
        assert!(parse_state("[1,2]").unwrap_err().contains("not a JSON object"));
        assert!(parse_state("{\"view\":").unwrap_err().contains("not JSON"));
        assert!(parse_state("").unwrap_err().contains("not JSON"));
        let huge = format!("{{\"text\":\"{}\"}}", "a".repeat(STATE_MAX_BYTES));
        assert!(parse_state(&huge).unwrap_err().contains("at most 256 KB"));
        let long = format!("{{\"text\":\"{}\"}}", "a".repeat(200_000));
        assert_eq!(parse_state(&long).unwrap().get("text").map(str::len), Some(200_000));
        let url = "a".repeat(TEXT_MAX_CHARS + 1);
        assert!(read(&|k| (k == "text").then(|| url.clone()), &[]).dropped[0].contains("longer than"));
        // Deep nesting is refused by the JSON reader (its recursion limit), not a crash.
        let deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
        assert!(parse_state(&deep).is_err());
    }

    #[test]
    fn a_whole_state_keeps_every_field_in_order() {
        let r = parse_state(r#"{"view":"inside","text":"The dog","layer":3,"head":4,"query":2,"scale":"log","whatif":"unscaled","bogus":1}"#).unwrap();
        let names: Vec<&str> = r.set.iter().map(|s| s.0).collect();
        assert_eq!(names, ["view", "text", "layer", "head", "query", "scale", "whatif"]);
        assert_eq!(r.dropped, ["bogus is not a setting"]);
    }
}
