//! Knock-outs: pick heads (shift-click in the grid or the thumbnails, or a whole layer), set
//! their output to zero at every position, and see what the model loses: the next-token
//! distribution before and after (with the KL divergence), how much harder each token of the
//! text became to predict, and the maps of later layers under the knock-out.

use leptos::html;
use leptos::prelude::*;

use super::heatmap::Heatmap;
use super::state::{KnockOut, Page};

/// Red for tokens the knock-out made harder to predict, blue for easier; white at 0.
fn delta_colour(d: f32) -> String {
    let t = (d.abs() / 3.0).min(1.0);
    let (r, g, b) = if d < 0.0 { (255.0, 255.0 - 160.0 * t, 255.0 - 170.0 * t) } else { (255.0 - 170.0 * t, 255.0 - 110.0 * t, 255.0) };
    format!("background:rgb({},{},{})", r as u8, g as u8, b as u8)
}

/// The next-token distribution before and after (`after`: what changed), as paired bars.
pub(super) fn next_table(k: &KnockOut, after: &'static str) -> impl IntoView {
    let max = k.next.iter().fold(1e-9f32, |m, (_, b, a)| m.max(*b).max(*a));
    view! {
        <table class="next-compare">
            <caption class="muted">{format!("Next token after the text — KL(before ‖ after) = {:.4} nats", k.ablation.kl_last)}</caption>
            <thead><tr><th scope="col">"token"</th><th scope="col">"plain run"</th><th scope="col">{after}</th></tr></thead>
            <tbody>
                {k.next.iter().map(|(t, b, a)| view! {
                    <tr>
                        <td><code>{format!("{t:?}")}</code></td>
                        <td title=format!("p = {b:.6}")><span class="bar before" style=format!("width:{:.1}px", 120.0 * b / max)></span>{format!(" {:.1}%", b * 100.0)}</td>
                        <td title=format!("p = {a:.6}")><span class="bar after" style=format!("width:{:.1}px", 120.0 * a / max)></span>{format!(" {:.1}%", a * 100.0)}</td>
                    </tr>
                }).collect_view()}
            </tbody>
        </table>
    }
}

/// The text with each token coloured by Δ log p of predicting it.
pub(super) fn delta_strip(k: &KnockOut) -> impl IntoView {
    let a = &k.ablation;
    let mut worst: Vec<(usize, f32)> = a.delta_logprob.iter().enumerate().map(|(i, d)| (a.first_position + i + 1, *d)).collect();
    worst.sort_by(|x, y| x.1.total_cmp(&y.1));
    let harder: Vec<String> = worst.iter().take(3).filter(|w| w.1 < -0.1).map(|(i, d)| format!("{:?} ({d:+.2})", k.tokens[*i])).collect();
    view! {
        <div class="delta-strip" role="list" aria-label="change in log-probability of each token">
            {k.tokens.iter().enumerate().map(|(i, t)| {
                let d = i.checked_sub(a.first_position + 1).and_then(|j| a.delta_logprob.get(j).copied());
                let (style, title) = match d {
                    Some(d) => {
                        let before = a.logprob_before[i - a.first_position - 1];
                        (delta_colour(d), format!("{t:?} after {:?}: log p {before:.2} → {:.2} (Δ {d:+.3})", k.tokens[i - 1], before + d))
                    }
                    None => (String::new(), format!("{t:?}: not predicted (first token{})", if a.first_position > 0 { " or beyond the scored part" } else { "" })),
                };
                view! { <span class="token" role="listitem" style=style title=title>{t.replace('\n', "⏎")}</span> }
            }).collect_view()}
        </div>
        <p class="legend"><span class="swatch" style=delta_colour(-3.0)></span><span>"harder to predict (Δ log p ≤ −3)"</span><span class="swatch" style=delta_colour(0.0)></span><span>"unchanged"</span><span class="swatch" style=delta_colour(3.0)></span><span>"easier (≥ +3)"</span></p>
        <p>{if harder.is_empty() { "No token got noticeably harder to predict.".to_string() } else { format!("Hardest hit: {}.", harder.join(", ")) }}</p>
    }
}

/// A head before and after, side by side.
#[component]
fn CompareMaps() -> impl IntoView {
    let p = expect_context::<Page>();
    let tokens = p.tokens();
    let (q0, q1) = (RwSignal::new(None), RwSignal::new(None));
    let (c0, c1): (NodeRef<html::Canvas>, NodeRef<html::Canvas>) = (NodeRef::new(), NodeRef::new());
    let nothing = Callback::new(|_| ());
    let deepest = move || p.knocked.with(|k| k.iter().map(|x| x.0).max().unwrap_or(0));
    let set = move |l: Option<usize>, h: Option<usize>| {
        let Some(m) = p.model.get_untracked() else { return };
        let (ol, oh) = p.compare.get_untracked();
        p.compare.set((l.unwrap_or(ol).min(m.n_layer - 1), h.unwrap_or(oh).min(m.n_head - 1)));
        p.request_compare();
    };
    view! {
        <h4>"Maps under the knock-out"</h4>
        <p class="muted">{move || format!("Layers 0–{} compute exactly the same maps: a knock-out only changes what flows into later layers. The maps that moved most (largest change of one cell):", deepest())}</p>
        <p class="changed">{move || p.ablation.get().map(|k| k.changed.into_iter().filter(|c| c.2 > 0.0).map(|(l, h, d)| view! {
            <button class="link" on:click=move |_| { p.compare.set((l, h)); p.request_compare() }>{format!("layer {l} head {h}")}</button>{format!(" {d:.3}   ")}
        }).collect_view())}</p>
        <div class="compare-pick">
            <label>"layer "<input type="number" min="0" prop:value=move || p.compare.get().0 on:change=move |ev| set(event_target_value(&ev).parse().ok(), None)/></label>
            <label>" head "<input type="number" min="0" prop:value=move || p.compare.get().1 on:change=move |ev| set(None, event_target_value(&ev).parse().ok())/></label>
        </div>
        <div class="compare-maps">
            <figure><figcaption>"plain run"</figcaption><Heatmap map=Signal::derive(move || p.compare_maps.get().0) tokens=tokens query=q0 on_zoom=nothing canvas_ref=c0/></figure>
            <figure><figcaption>"heads knocked out"</figcaption><Heatmap map=Signal::derive(move || p.compare_maps.get().1) tokens=tokens query=q1 on_zoom=nothing canvas_ref=c1/></figure>
        </div>
    }
}

/// What the default example shows (SmolLM2): one head that carries "it" to "hungry".
const EXAMPLE_STORY: &str = "On the default sentence, layer 13 head 8 reads, from “was”, mostly “cat” (58%) and “dog” (22%): the two candidates for “it”. Knock it out and “hungry” becomes 3.2 nats harder to predict (about 24 times less likely) while the rest of the sentence barely moves; knock out all of layer 0 instead and every prediction suffers (KL 4.9 nats at the end).";

#[component]
pub fn KnockOutPanel() -> impl IntoView {
    let p = expect_context::<Page>();
    let layer_pick = RwSignal::new(0usize);
    let head_pick = RwSignal::new(0usize);
    let is_example = move || p.text.get() == super::EXAMPLE && p.model.with(|m| m.as_ref().is_some_and(|m| m.architecture == "llama" && m.n_layer == 30 && m.n_head == 9));
    view! {
        <section class="knockout">
            <h3>"Knock heads out"</h3>
            <p class="muted">"Some heads matter more than others. Knocking a head out sets its output to zero at every position (before the layer's output projection) and runs the model again: what the model then gets wrong is what that head was doing. Pick a head by its layer and number, or a whole layer; in the playground also turn on “Pick heads” and click or tap cells of the grid (or thumbnails in All heads), or shift-click them."</p>
            <div class="knockout-controls">
                <label>"layer "<select on:change=move |ev| layer_pick.set(event_target_value(&ev).parse().unwrap_or(0))>
                    {move || (0..p.model.with(|m| m.as_ref().map(|m| m.n_layer).unwrap_or(0))).map(|l| view! { <option value=l.to_string()>{l}</option> }).collect_view()}
                </select></label>
                <label>"head "<select class="head-pick" on:change=move |ev| head_pick.set(event_target_value(&ev).parse().unwrap_or(0))>
                    {move || (0..p.model.with(|m| m.as_ref().map(|m| m.n_head).unwrap_or(0))).map(|h| view! { <option value=h.to_string()>{h}</option> }).collect_view()}
                </select></label>
                <button class="pick-head" on:click=move |_| { let (l, h) = (layer_pick.get_untracked(), head_pick.get_untracked()); if !p.picked.with_untracked(|k| k.contains(&(l, h))) { p.toggle_pick(l, h) } }>"Pick this head"</button>
                <PickMode/>
                <button on:click=move |_| { let n = p.model.with_untracked(|m| m.as_ref().map(|m| m.n_head).unwrap_or(0)); let l = layer_pick.get_untracked(); p.picked.update(|k| { k.retain(|x| x.0 != l); k.extend((0..n).map(|h| (l, h))); k.sort_unstable(); }) }>"Pick the whole layer"</button>
                <span class="picked-list">{move || { let k = p.picked.get(); if k.is_empty() { "Nothing picked.".to_string() } else { format!("Picked: {}", crate::analysis::heads::heads_spec(&k, p.model.with(|m| m.as_ref().map(|m| m.n_head).unwrap_or(usize::MAX)))) } }}</span>
                <button class="knock-out" on:click=move |_| p.knock_out() disabled=move || p.picked.with(|k| k.is_empty()) || p.run.get().is_none() || p.ablation_running.get()>
                    {move || if p.ablation_running.get() { "Running with the heads knocked out…".to_string() } else { format!("Knock out {} head{}", p.picked.with(Vec::len), if p.picked.with(Vec::len) == 1 { "" } else { "s" }) }}
                </button>
                <button on:click=move |_| p.picked.set(vec![]) disabled=move || p.picked.with(|k| k.is_empty())>"Clear picks"</button>
                <button class="reset-knock-out" on:click=move |_| p.reset_knock_out() disabled=move || p.knocked.with(|k| k.is_empty())>"Reset to the plain run"</button>
            </div>
            {move || is_example().then(|| view! {
                <p class="story">{EXAMPLE_STORY}" "<button class="link" on:click=move |_| { p.picked.set(vec![(13, 8)]); p.knock_out() }>"Try it: knock out layer 13 head 8"</button></p>
            })}
            {move || p.ablation.get().map(|k| view! {
                <p><strong>{format!("Knocked out: {}", k.ablation.heads.join(", "))}</strong></p>
                <div class="knockout-result">
                    {next_table(&k, "knocked out")}
                    <div>
                        <h4>"Which tokens got harder to predict"</h4>
                        <p class="muted">{if k.ablation.first_position > 0 { format!("Change in log p of each token given the text before it (the last {} predictions are scored).", k.ablation.delta_logprob.len()) } else { "Change in log p of each token given the text before it.".to_string() }}</p>
                        {delta_strip(&k)}
                    </div>
                </div>
                <CompareMaps/>
            })}
        </section>
    }
}

/// The switch that makes clicks (and taps) on heads pick them for a knock-out.
#[component]
pub fn PickMode() -> impl IntoView {
    let p = expect_context::<Page>();
    view! {
        <label class="pick-mode"><input type="checkbox" prop:checked=move || p.pick_mode.get() on:change=move |ev| p.pick_mode.set(event_target_checked(&ev))/>" Pick heads (click or tap to pick)"</label>
    }
}
