//! "…and through the model": a what-if of "Inside this head" made inside the attention of
//! chosen layers of the whole forward pass (every head of them), and what it does to the
//! model's predictions — the next token before and after, with the KL divergence, and how
//! much harder each token of the text became to predict. The articles say skipping ÷√d or
//! the mask gives "garbage"; here the reader measures how much each change matters.

use leptos::prelude::*;

use super::state::Page;
use super::write_on::WrittenRows;
use crate::analysis::explain::WhatIf;
use crate::generate::Variant;
use crate::worker::protocol::WrittenText;
use crate::model::arch::AttnChange;

/// Each change in the reader's words.
const CHANGES: [(AttnChange, &str); 5] = [
    (AttnChange::Unscaled, "skip ÷√d (scores not scaled)"),
    (AttnChange::Dmodel, "÷√d_model instead of ÷√d_head (a common bug)"),
    (AttnChange::Unmasked, "remove the causal mask (future tokens visible)"),
    (AttnChange::Norope, "ignore positions (no rotary embedding)"),
    (AttnChange::Nosink, "hide the first token from every later one"),
];

fn words(what: AttnChange) -> &'static str {
    CHANGES.iter().find(|c| c.0 == what).map(|c| c.1).unwrap_or("")
}

/// "all layers", "layer 15", "layers 3–7".
fn layers_words(layers: &str) -> String {
    match layers.split_once('-') {
        _ if layers == "all" => "every layer".into(),
        Some((a, b)) => format!("layers {a}–{b}"),
        None => format!("layer {layers}"),
    }
}

/// A row of "write on": the plain model, or the change and its layers.
fn row_label(row: &WrittenText) -> String {
    match row.variant.change {
        None => "the model as it is".into(),
        Some((what, a, b)) => format!("{} in {}", words(what), if a == b { format!("layer {a}") } else { format!("layers {a}–{b}") }),
    }
}

#[component]
pub fn ThroughModel() -> impl IntoView {
    let p = expect_context::<Page>();
    // What the map shows, else the scale: the change a reader of the toggles above means.
    let shown = match p.look.what_if.get_untracked() {
        WhatIf::Unmasked => AttnChange::Unmasked,
        WhatIf::NoRope => AttnChange::Norope,
        _ => AttnChange::Unscaled,
    };
    let what = RwSignal::new(p.through.get_untracked().map(|t| t.0).unwrap_or(shown));
    let layers = RwSignal::new(p.through.get_untracked().map(|t| t.1).unwrap_or_else(|| "all".into()));
    let problem = RwSignal::new(None::<String>);
    let checked = move || {
        let n_layer = p.model.with_untracked(|m| m.as_ref().map(|m| m.n_layer)).unwrap_or(0);
        let r = crate::analysis::through_model::parse_layers(&layers.get_untracked(), n_layer);
        problem.set(r.as_ref().err().cloned());
        r.ok()
    };
    let run = move || {
        if checked().is_some() {
            p.set_through(Some((what.get_untracked(), layers.get_untracked().trim().to_string())));
        }
    };
    // The articles' "garbage generation": what the model writes after the text, with and without.
    let write = move || {
        if let Some((a, b)) = checked() {
            p.request_write_on("through", None, vec![Variant::default(), Variant::change(what.get_untracked(), a, b)]);
        }
    };
    view! {
        <section class="through" aria-labelledby="through-title">
            <h4 id="through-title">"…and through the model"</h4>
            <p class="muted">"The what-ifs above redraw one row of one head. Here the change is made inside every head of the chosen layers, in the model's own forward pass, and the model predicts again: how much does each step of the formula matter to what it writes?"</p>
            <div class="through-controls">
                <label>"change "
                    <select class="through-what" on:change=move |ev| what.set(AttnChange::parse(&event_target_value(&ev)).unwrap_or(AttnChange::Unscaled))>
                        {CHANGES.into_iter().map(|(c, label)| view! { <option value=c.name() selected=move || what.get() == c>{label}</option> }).collect_view()}
                    </select>
                </label>
                <label>" in layers "
                    <input class="through-layers" type="text" size="6" aria-label="layers: all, one layer L or a range A-B" prop:value=move || layers.get() on:change=move |ev| layers.set(event_target_value(&ev))/>
                </label>
                <button on:click=move |_| layers.set("all".into())>"all"</button>
                <button on:click=move |_| layers.set(p.layer.get_untracked().to_string())>{move || format!("only layer {}", p.layer.get())}</button>
                <button class="run-through primary" on:click=move |_| run() disabled=move || p.run.get().is_none() || p.model.get().is_none() || p.through_running.get()>
                    {move || if p.through_running.get() { "Running the model twice…" } else { "Run the model with it" }}
                </button>
                <button class="reset-through" on:click=move |_| p.set_through(None) disabled=move || p.through.with(|t| t.is_none())>"Back to the plain model"</button>
                <button class="write-through" on:click=move |_| write() disabled=move || p.run.get().is_none() || p.model.get().is_none() || p.writing.get().is_some()
                    title="What the model writes after the text, with the change and without">"Let it write on, with and without"</button>
            </div>
            {move || problem.get().map(|e| view! { <p class="notice">{e}</p> })}
            {move || p.through_result.get().map(|(w, l, k)| {
                let (kl, before, after) = (k.ablation.kl_last, k.next.iter().max_by(|a, b| a.1.total_cmp(&b.1)).cloned(), k.next.iter().max_by(|a, b| a.2.total_cmp(&b.2)).cloned());
                let top = match (before, after) {
                    (Some(b), Some(a)) if b.0 == a.0 => format!("the likeliest next token stays {:?} ({:.0}% → {:.0}%)", b.0, b.1 * 100.0, a.2 * 100.0),
                    (Some(b), Some(a)) => format!("the likeliest next token changes from {:?} ({:.0}%) to {:?} ({:.0}%)", b.0, b.1 * 100.0, a.0, a.2 * 100.0),
                    _ => String::new(),
                };
                view! {
                    <p class="through-finding" role="status"><strong>{format!("{} in {}", words(w), layers_words(&l))}</strong>{format!(": the next-token distribution moves by KL {kl:.3} nats; {top}.")}</p>
                    <div class="knockout-result">
                        {super::knockout::next_table(&k, "with the change")}
                        <div>
                            <h4>"Which tokens got harder to predict"</h4>
                            {super::knockout::delta_strip(&k)}
                        </div>
                    </div>
                }
            })}
            {move || p.written.with(|w| w.as_ref().is_some_and(|w| w.owner == "through")).then(|| view! {
                <h4>"What the model writes with the change"</h4>
                <p class="muted">"Without the causal mask the keys of every earlier token change each time a token is added, so no cache can hold them: each step then reads the whole text again. The other changes write over the cache as the model always does."</p>
            })}
            <WrittenRows owner="through" label=row_label/>
        </section>
    }
}
