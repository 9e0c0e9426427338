//! The model writes: Generate (and Stop) beside Run, the sampling settings, the tokens as they
//! come (each step's alternatives, a click branches from there), what one step computes with
//! the KV cache, time to first token against per-token decode, and the same steps without
//! the cache (flat against growing).

use leptos::prelude::*;

use crate::generate::{Finish, GenSettings, GenTimings, MAX_GEN};
use crate::worker::protocol::{GenSummary, GenToken, HeadMap, ModelSummary, Request, RunResult};

/// The writing state a view shows and the actions on it, shared through context by the
/// playground and the `<attn-lab view="generate">` widget (each supplies its own actions).
#[derive(Clone, Copy)]
pub struct Writer {
    pub gen: RwSignal<GenSettings>,
    pub live: RwSignal<Option<GenLive>>,
    pub model: Signal<Option<ModelSummary>>,
    /// A load or a run is under way (Generate waits).
    pub busy: Signal<bool>,
    /// Generate (the first tokens forced: none from the button).
    pub start: Callback<()>,
    pub stop: Callback<()>,
    /// Step t written with another token, continuing from it.
    pub branch: Callback<(usize, u32)>,
    pub without_cache: Callback<()>,
}

impl Writer {
    pub fn generating(&self) -> bool {
        self.live.with(|g| g.as_ref().is_some_and(|g| g.finish.is_none()))
    }

    /// The request that writes after `text` (or exactly after `ids`), first tokens `forced`.
    pub fn request(&self, text: String, ids: Option<Vec<u32>>, forced: Vec<u32>, (layer, head, max_side): (usize, usize, usize), slot: u32) -> Request {
        let g = self.gen.get_untracked();
        let chat = ids.is_none() && g.chat && self.model.with_untracked(|m| m.as_ref().is_some_and(|m| m.chat));
        self.live.set(Some(GenLive::default()));
        Request::Generate { text, ids, max_tokens: g.max_tokens, sampling: g.sampling, chat, forced, recompute: false, layer, head, max_side, slot }
    }

    /// A branch from step `t` with `token`: (prompt ids, forced tokens), once writing ended.
    pub fn branch_from(&self, t: usize, token: u32) -> Option<(Vec<u32>, Vec<u32>)> {
        let g = self.live.get_untracked()?;
        (g.finish.is_some() && !g.prompt_ids.is_empty()).then(|| (g.prompt_ids.clone(), g.ids().into_iter().take(t).chain([token]).collect()))
    }

    /// The same steps without the cache (for their times), once writing ended.
    pub fn replay_request(&self, slot: u32) -> Option<Request> {
        let g = self.live.get_untracked()?;
        if g.finish.is_none() || g.tokens.is_empty() {
            return None;
        }
        self.live.update(|g| {
            if let Some(g) = g {
                g.without_cache = Some(vec![]);
                g.without_cache_running = true;
            }
        });
        Some(Request::Generate { text: String::new(), ids: Some(g.prompt_ids.clone()), max_tokens: g.tokens.len(), sampling: self.gen.get_untracked().sampling, chat: false, forced: g.ids(), recompute: true, layer: 0, head: 0, max_side: 1, slot })
    }

    /// A token written: the generation, the strip (the run's tokens) and the map grow.
    pub fn on_token(&self, t: usize, n_prompt: usize, token: GenToken, ms: f64, kv: usize, map: Option<HeadMap>, run: RwSignal<Option<RunResult>>, shown: RwSignal<Option<HeadMap>>) {
        let (text, id) = (token.text.clone(), token.id);
        self.live.update(|g| {
            if let Some(g) = g {
                g.n_prompt = n_prompt;
                g.push(t, token, ms, kv);
            }
        });
        run.update(|r| {
            if let Some(r) = r {
                r.report.ids.truncate(n_prompt + t);
                r.report.tokens.truncate(n_prompt + t);
                r.report.ids.push(id);
                r.report.tokens.push(text);
            }
        });
        if let Some(m) = map {
            shown.set(Some(m));
        }
    }

    pub fn on_generated(&self, g: &GenSummary) {
        self.live.update(|l| {
            if let Some(l) = l {
                l.finish(g)
            }
        });
    }

    /// A replayed step's time, or (with `summary`) the replay's exact times.
    pub fn on_replay(&self, ms: Option<f64>, summary: Option<&GenSummary>) {
        self.live.update(|g| {
            let Some(g) = g else { return };
            match summary {
                Some(s) => {
                    g.without_cache = Some(std::iter::once(s.timings_ms.prefill).chain(s.timings_ms.decode.iter().copied()).collect());
                    g.without_cache_running = false;
                }
                None => g.without_cache.get_or_insert_with(Vec::new).extend(ms),
            }
        });
    }

    /// A failed or superseded generation ends where it is.
    pub fn on_failed(&self) {
        self.live.update(|g| {
            if let Some(g) = g.as_mut().filter(|g| g.finish.is_none()) {
                g.finish = Some(Finish::Stopped)
            }
        });
    }
}

/// A generation as the page shows it while it runs and after.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct GenLive {
    /// Prompt tokens (the chat template applied, when asked).
    pub n_prompt: usize,
    pub prompt_ids: Vec<u32>,
    pub tokens: Vec<GenToken>,
    /// Time to the first token: the prompt's prefill (ms).
    pub prefill_ms: Option<f64>,
    /// Each later step (ms).
    pub decode_ms: Vec<f64>,
    /// The KV cache after each step (bytes).
    pub kv_bytes: Vec<usize>,
    pub finish: Option<Finish>,
    pub backend: String,
    pub note: Option<String>,
    /// The same steps without the cache: each step's time (the first is the prompt's pass).
    pub without_cache: Option<Vec<f64>>,
    pub without_cache_running: bool,
    /// The step whose alternatives are shown (default: the last).
    pub chosen: Option<usize>,
}

impl GenLive {
    /// A token arrived: its step's time and the cache after it.
    pub fn push(&mut self, t: usize, token: GenToken, ms: f64, kv: usize) {
        if t == 0 {
            self.prefill_ms = Some(ms);
        } else {
            self.decode_ms.push(ms);
        }
        self.kv_bytes.push(kv);
        self.tokens.truncate(t);
        self.tokens.push(token);
    }
    /// The generation ended: its exact figures.
    pub fn finish(&mut self, g: &GenSummary) {
        self.finish = Some(g.finish);
        self.prompt_ids = g.ids.clone();
        self.n_prompt = g.ids.len();
        self.tokens = g.steps.clone();
        self.prefill_ms = Some(g.timings_ms.prefill);
        self.decode_ms = g.timings_ms.decode.clone();
        self.backend = g.backend.clone();
        self.note = g.note.clone();
        if let Some(k) = self.kv_bytes.last_mut() {
            *k = g.kv_cache_bytes;
        }
    }
    pub fn ids(&self) -> Vec<u32> {
        self.tokens.iter().map(|t| t.id).collect()
    }
    /// Mean decode ms per token.
    pub fn per_token_ms(&self) -> Option<f64> {
        (!self.decode_ms.is_empty()).then(|| self.decode_ms.iter().sum::<f64>() / self.decode_ms.len() as f64)
    }
    /// `exportJson()`'s additions: `generated`, `steps`, `timings_ms.decode` (as
    /// `attnlab generate --json` writes them).
    pub fn export(&self) -> serde_json::Value {
        let steps: Vec<_> = self.tokens.iter().map(|t| serde_json::json!({ "token": t.id, "text": t.text, "prob": t.prob, "top": t.top.iter().map(|(id, text, p)| serde_json::json!([id, text, p])).collect::<Vec<_>>() })).collect();
        serde_json::json!({
            "generated": self.ids(),
            "steps": steps,
            "timings": GenTimings { prefill: self.prefill_ms.unwrap_or(0.0), decode: self.decode_ms.clone() },
            "finish": self.finish,
            "without_cache_ms": self.without_cache,
        })
    }
}

/// An export (`attnlab inspect --json`) with what a finished generation wrote added:
/// `generated`, `steps`, `finish`, `without_cache_ms`, `timings_ms.prefill` and `.decode`.
pub fn with_generation(json: String, g: Option<&GenLive>) -> String {
    let Some(g) = g.filter(|g| g.finish.is_some()) else { return json };
    let Ok(mut v) = serde_json::from_str::<serde_json::Value>(&json) else { return json };
    let extra = g.export();
    for k in ["generated", "steps", "finish", "without_cache_ms"] {
        v[k] = extra[k].clone();
    }
    v["timings_ms"]["prefill"] = extra["timings"]["prefill"].clone();
    v["timings_ms"]["decode"] = extra["timings"]["decode"].clone();
    v.to_string()
}

fn bytes(b: f64) -> String {
    if b >= 1048576.0 {
        format!("{:.1} MiB", b / 1048576.0)
    } else {
        format!("{:.0} KiB", b / 1024.0)
    }
}

/// What one decoding step computes with the cache, in words.
fn step_words(m: &ModelSummary, live: &GenLive, t: usize) -> String {
    let pos = live.n_prompt + t;
    let kv_dim = m.dims.as_ref().map(|d| d.n_head_kv * d.head_dim).unwrap_or(0);
    let reused = 2 * pos * kv_dim * m.n_layer * 4;
    let tok = live.tokens.get(t).map(|t| format!("{:?}", t.text)).unwrap_or_default();
    if t == 0 {
        return format!("The first step read the whole prompt ({} tokens) at once — the prefill — and stored each token's key and value in every layer ({} in the cache); it chose {tok}.", live.n_prompt, bytes(reused as f64));
    }
    format!(
        "Step {t} fed one token (position {}) through the model: in each of the {} layers it computed one new query for each of the {} heads and one new key and value for each of the {} key/value heads, and reused the {} cached keys and values of the earlier tokens ({}) instead of computing them again. It chose {tok}.",
        pos - 1,
        m.n_layer,
        m.n_head,
        m.n_kv_head,
        pos - 1,
        bytes(reused as f64 * (pos - 1) as f64 / pos.max(1) as f64)
    )
}

/// Generate, Stop and the settings (beside Run).
#[component]
pub fn GenerateControls() -> impl IntoView {
    let p = expect_context::<Writer>();
    let set = move |f: &dyn Fn(&mut GenSettings)| p.gen.update(|g| f(g));
    let chat_offered = move || p.model.with(|m| m.as_ref().is_some_and(|m| m.chat));
    view! {
        <button class="generate" on:click=move |_| p.start.run(()) disabled=move || p.busy.get()
            title="The model continues the text one token at a time">"Generate"</button>
        {move || p.generating().then(|| view! { <button class="stop" on:click=move |_| p.stop.run(())>"Stop"</button> })}
        <details class="gen-settings">
            <summary>"Writing settings"</summary>
            <label>"New tokens "<input type="number" min="1" max=MAX_GEN.to_string() prop:value=move || p.gen.get().max_tokens
                on:change=move |ev| { let v = event_target_value(&ev).trim().parse::<usize>().unwrap_or(24).clamp(1, MAX_GEN); set(&|g| g.max_tokens = v) }/></label>
            <label title="0 always takes the likeliest token; higher spreads the choice">"Temperature "<input type="number" min="0" max="5" step="0.1" prop:value=move || p.gen.get().sampling.temperature
                on:change=move |ev| { let v = event_target_value(&ev).trim().parse::<f32>().ok().filter(|t| t.is_finite()).unwrap_or(0.0).clamp(0.0, 5.0); set(&|g| g.sampling.temperature = v) }/></label>
            <label title="Choose among the k likeliest tokens only (0: all)">"Top-k "<input type="number" min="0" prop:value=move || p.gen.get().sampling.top_k
                on:change=move |ev| { let v = event_target_value(&ev).trim().parse::<usize>().unwrap_or(0); set(&|g| g.sampling.top_k = v) }/></label>
            <label title="Choose among the likeliest tokens that together reach this probability (1: all)">"Top-p "<input type="number" min="0.01" max="1" step="0.05" prop:value=move || p.gen.get().sampling.top_p
                on:change=move |ev| { let v = event_target_value(&ev).trim().parse::<f32>().ok().filter(|v| *v > 0.0 && *v <= 1.0).unwrap_or(1.0); set(&|g| g.sampling.top_p = v) }/></label>
            <label title="The same seed and settings write the same text">"Seed "<input type="number" min="0" prop:value=move || p.gen.get().sampling.seed
                on:change=move |ev| { let v = event_target_value(&ev).trim().parse::<u64>().unwrap_or(0); set(&|g| g.sampling.seed = v) }/></label>
            <label title=move || if chat_offered() { "Wrap the text in the model's own chat template (it answers as an assistant)".to_string() } else { "This model file has no chat template (a base model): it continues text".to_string() }>
                <input type="checkbox" disabled=move || !chat_offered() prop:checked=move || p.gen.get().chat && chat_offered() on:change=move |ev| { let v = event_target_checked(&ev); set(&|g| g.chat = v) }/>
                " Chat"
            </label>
            {move || (!chat_offered() && p.model.with(|m| m.is_some())).then(|| view! { <span class="muted">"(Chat needs an instruct model with a chat template; this file has none.)"</span> })}
        </details>
    }
}

/// The tokens written, the step explained, the times and the cache.
#[component]
pub fn GenerationPanel() -> impl IntoView {
    let p = expect_context::<Writer>();
    view! {
        {move || p.live.get().map(|g| {
            let model = p.model.get();
            let max_tokens = p.gen.get_untracked().max_tokens;
            let last = g.tokens.len().saturating_sub(1);
            let chosen = g.chosen.unwrap_or(last).min(last);
            let done = g.finish.is_some();
            let status = match g.finish {
                None => format!("Writing… {} of {max_tokens} tokens", g.tokens.len()),
                Some(Finish::MaxTokens) => format!("Wrote {} tokens.", g.tokens.len()),
                Some(Finish::Eos) => format!("Wrote {} tokens; the model ended its text.", g.tokens.len()),
                Some(Finish::Stop) => format!("Wrote {} tokens; stopped at a stop text.", g.tokens.len()),
                Some(Finish::Stopped) => format!("Stopped after {} tokens.", g.tokens.len()),
            };
            let per = g.per_token_ms();
            let kv_now = g.kv_bytes.last().copied().unwrap_or(0);
            let ctx_bytes = model.as_ref().and_then(|m| m.dims.as_ref().map(|d| 2.0 * (d.n_head_kv * d.head_dim * m.n_layer * 4) as f64 * m.context_length as f64));
            view! {
                <section class="generation" aria-live="polite">
                    <h3>"What the model wrote"</h3>
                    <p class="muted gen-status">{status}{g.note.clone().map(|n| format!(" {n}."))}</p>
                    <div class="gen-tokens" role="listbox" aria-label="written tokens: choose one to see its alternatives">
                        {g.tokens.iter().enumerate().map(|(t, tok)| {
                            let alts = tok.top.iter().map(|(_, s, q)| format!("{s:?} {:.1}%", q * 100.0)).collect::<Vec<_>>().join(", ");
                            let title = format!("step {t}: {:?} with probability {:.1}%; the likeliest were {alts}", tok.text, tok.prob * 100.0);
                            view! {
                                <button class="token gen-token" class:selected=t == chosen role="option" aria-selected=(t == chosen).to_string() title=title
                                    on:click=move |_| p.live.update(|g| if let Some(g) = g { g.chosen = Some(t) })>{tok.text.replace('\n', "⏎")}</button>
                            }
                        }).collect_view()}
                    </div>
                    {g.tokens.get(chosen).map(|tok| {
                        let step = chosen;
                        view! {
                            <div class="gen-alternatives">
                                <span>{format!("Step {step} could have written: ")}</span>
                                {tok.top.iter().map(|(id, s, q)| {
                                    let (id, taken) = (*id, *id == tok.id);
                                    view! {
                                        <button class="alt" class:taken=taken disabled=move || taken || !done title=if taken { "the token written".to_string() } else { "write this token here instead and continue from it".to_string() }
                                            on:click=move |_| p.branch.run((step, id))>{format!("{s:?} {:.1}%", q * 100.0)}</button>
                                    }
                                }).collect_view()}
                                {(!done).then(|| view! { <span class="muted">" (branching opens once the writing ends)"</span> })}
                            </div>
                        }
                    })}
                    {model.as_ref().map(|m| view! { <p class="gen-step">{step_words(m, &g, chosen)}</p> })}
                    <p class="gen-speed">
                        {g.prefill_ms.map(|ms| format!("Time to first token (reading the prompt): {ms:.0} ms. "))}
                        {per.map(|ms| format!("Each new token: {ms:.1} ms ({:.1} tokens/s). ", 1e3 / ms.max(1e-9)))}
                        {format!("KV cache now: {} ", bytes(kv_now as f64))}
                        {ctx_bytes.map(|b| format!("(at the full context: {}; see the cost tab's calculator).", bytes(b)))}
                    </p>
                    <div class="controls">
                        <button disabled=move || !done || p.live.with(|g| g.as_ref().is_some_and(|g| g.without_cache_running)) on:click=move |_| p.without_cache.run(())
                            title="Run the same steps again, each one reading the whole text so far instead of using the cache">
                            {move || if p.live.with(|g| g.as_ref().is_some_and(|g| g.without_cache_running)) { "Timing without the cache…" } else { "Without the cache" }}
                        </button>
                    </div>
                    <StepTimes live=g.clone()/>
                </section>
            }
        })}
    }
}

/// Per-step times with the cache and, once run, without it: a line chart with axes.
#[component]
fn StepTimes(live: GenLive) -> impl IntoView {
    let with: Vec<f64> = live.prefill_ms.into_iter().chain(live.decode_ms.iter().copied()).collect();
    if with.len() < 2 {
        return ().into_any();
    }
    let without = live.without_cache.clone().unwrap_or_default();
    let (w, h, left, bottom, top, right) = (560.0, 220.0, 52.0, 32.0, 24.0, 10.0);
    let n = with.len().max(without.len());
    // The prefill dwarfs the steps: the chart's scale starts at step 1 (the prefill is given in words).
    let ymax = with.iter().chain(&without).skip(1).cloned().fold(0.0f64, f64::max).max(with.iter().skip(1).cloned().fold(0.0, f64::max)).max(1e-3);
    let ymax = super::nice(ymax);
    let x = move |i: usize| left + (w - left - right) * (i as f64 - 1.0) / ((n - 1).max(2) as f64 - 1.0);
    let y = move |v: f64| top + (h - top - bottom) * (1.0 - (v / ymax).min(1.05));
    let path = |vals: &[f64]| vals.iter().enumerate().skip(1).map(|(i, v)| format!("{}{:.1},{:.1}", if i == 1 { "M" } else { "L" }, x(i), y(*v))).collect::<String>();
    let yticks: Vec<f64> = (0..=4).map(|k| ymax * k as f64 / 4.0).collect();
    let xticks: Vec<usize> = {
        let step = ((n - 1) as f64 / 5.0).ceil().max(1.0) as usize;
        (1..n).step_by(step).collect()
    };
    let with_path = path(&with);
    let without_path = (without.len() > 1).then(|| path(&without));
    let caption = match &live.without_cache {
        Some(wc) if wc.len() > 1 => {
            let (a, b) = (with.iter().skip(1).sum::<f64>(), wc.iter().skip(1).sum::<f64>());
            format!("Each step's time. With the cache (solid) a step costs about the same however long the text grows; without it (dashed) every step reads the whole text again and grows with it: {b:.0} ms in all against {a:.0} ms ({:.1}×).", b / a.max(1e-9))
        }
        _ => "Each step's time with the cache: about the same at every step, because each step computes only the new token. Press “Without the cache” to compare.".into(),
    };
    view! {
        <figure class="gen-times">
            <svg class="sink-chart" viewBox=format!("0 0 {w} {h}") role="img" aria-label="Line chart: milliseconds per step, with the cache and without it">
                {yticks.iter().map(|&v| view! {
                    <line x1=left x2=w - right y1=y(v) y2=y(v) stroke="currentColor" stroke-opacity="0.12"/>
                    <text x=left - 4.0 y=y(v) + 4.0 font-size="11" text-anchor="end">{format!("{v:.0}")}</text>
                }).collect_view()}
                {xticks.iter().map(|&i| view! { <text x=x(i) y=h - bottom + 14.0 font-size="11" text-anchor="middle">{i.to_string()}</text> }).collect_view()}
                <line x1=left x2=left y1=top y2=h - bottom stroke="currentColor" stroke-opacity="0.6"/>
                <line x1=left x2=w - right y1=h - bottom y2=h - bottom stroke="currentColor" stroke-opacity="0.6"/>
                <text x=(left + w) / 2.0 y=h - 2.0 font-size="12" text-anchor="middle">"step (token written)"</text>
                <text transform=format!("translate(12 {}) rotate(-90)", (top + h - bottom) / 2.0) font-size="12" text-anchor="middle">"ms per step"</text>
                <path class="with-cache" d=with_path fill="none" stroke="#4c6ef5" stroke-width="2"/>
                {without_path.map(|d| view! { <path class="without-cache" d=d fill="none" stroke="#e8590c" stroke-width="2" stroke-dasharray="5 4"/> })}
                // Values on hover.
                {with.iter().enumerate().skip(1).map(|(i, v)| view! { <circle cx=x(i) cy=y(*v) r="3" fill="#4c6ef5"><title>{format!("step {i} with the cache: {v:.1} ms")}</title></circle> }).collect_view()}
                {without.iter().enumerate().skip(1).map(|(i, v)| view! { <circle cx=x(i) cy=y(*v) r="3" fill="#e8590c"><title>{format!("step {i} without the cache: {v:.1} ms")}</title></circle> }).collect_view()}
                // Legend.
                <line x1=left + 10.0 x2=left + 36.0 y1=top + 6.0 y2=top + 6.0 stroke="#4c6ef5" stroke-width="2"/>
                <text x=left + 42.0 y=top + 10.0 font-size="12">"with the cache"</text>
                {live.without_cache.is_some().then(|| view! {
                    <line x1=left + 150.0 x2=left + 176.0 y1=top + 6.0 y2=top + 6.0 stroke="#e8590c" stroke-width="2" stroke-dasharray="5 4"/>
                    <text x=left + 182.0 y=top + 10.0 font-size="12">"without the cache"</text>
                })}
            </svg>
            <figcaption>{caption}</figcaption>
        </figure>
    }
    .into_any()
}

