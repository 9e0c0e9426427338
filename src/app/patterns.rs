//! "Head patterns": every head of the model scored on the text (attention to the first token,
//! to the previous token, to itself, row entropy) or on the induction diagnostic, as a
//! layer × head grid with a ranked list and each head's thumbnail on hover; a click opens the
//! head, a shift-click picks it for a knock-out.

use leptos::prelude::*;

use super::heatmap::ramp;
use super::panels::MapCanvas;
use super::state::Page;
use crate::analysis::heads::Grid;
use crate::worker::protocol::Request;

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Pattern {
    FirstToken,
    PreviousToken,
    SelfToken,
    Entropy,
    Induction,
}

impl Pattern {
    const ALL: [Pattern; 5] = [Pattern::FirstToken, Pattern::PreviousToken, Pattern::SelfToken, Pattern::Entropy, Pattern::Induction];
    fn label(self) -> &'static str {
        match self {
            Pattern::FirstToken => "first token",
            Pattern::PreviousToken => "previous token",
            Pattern::SelfToken => "self",
            Pattern::Entropy => "entropy",
            Pattern::Induction => "induction",
        }
    }
    fn key(self) -> &'static str {
        match self {
            Pattern::FirstToken => "first",
            Pattern::PreviousToken => "previous",
            Pattern::SelfToken => "self",
            Pattern::Entropy => "entropy",
            Pattern::Induction => "induction",
        }
    }
    fn explain(self) -> &'static str {
        match self {
            Pattern::FirstToken => "Mean attention from each token to the very first one: the attention sink. Many heads park most of their attention there when nothing else is relevant.",
            Pattern::PreviousToken => "Mean attention to the token just before: previous-token heads copy local context forward, a building block of induction.",
            Pattern::SelfToken => "Mean attention of each token to itself.",
            Pattern::Entropy => "How spread out each row is (nats): low is a sharp, focused head; high spreads attention over many keys.",
            Pattern::Induction => "On a random sequence repeated twice, the attention from each token of the second copy to the token that followed its first occurrence: induction heads predict repeats by looking there.",
        }
    }
}

/// The hovered (or focused) head's thumbnail and its scores, beside the grid.
#[component]
fn Preview(hovered: RwSignal<Option<(usize, usize)>>) -> impl IntoView {
    let p = expect_context::<Page>();
    move || {
        let (l, h) = hovered.get()?;
        let n_head = p.model.with(|m| m.as_ref().map(|m| m.n_head))?;
        let thumb = p.thumbs.with(|t| t.as_ref().and_then(|t| t.get(l * n_head + h).cloned()));
        let s = p.head_scores.get();
        Some(view! {
            <figure class="pattern-preview" aria-live="polite">
                {match thumb {
                    Some(m) => view! { <MapCanvas map=m label=format!("map of layer {l} head {h}")/> }.into_any(),
                    None => view! { <div class="map-canvas muted">"…"</div> }.into_any(),
                }}
                <figcaption>
                    <strong>{format!("layer {l} · head {h}")}</strong>
                    {s.map(|s| view! { <br/>{format!("first {:.2} · previous {:.2} · self {:.2} · entropy {:.2}", s.first_token[l][h], s.previous_token[l][h], s.self_[l][h], s.entropy[l][h])} })}
                    {p.induction.get().map(|(i, _, _)| view! { <br/>{format!("induction {:.2}", i.induction[l][h])} })}
                    <br/><span class="muted">{move || if p.pick_mode.get() { "click or tap: pick for a knock-out" } else { "click: open · shift-click (or “Pick heads”): pick for a knock-out" }}</span>
                </figcaption>
            </figure>
        })
    }
}

#[component]
pub fn PatternsView() -> impl IntoView {
    let p = expect_context::<Page>();
    let pattern = RwSignal::new(Pattern::FirstToken);
    let hovered = RwSignal::new(None::<(usize, usize)>);
    let grid = move || -> Option<Grid> {
        match pattern.get() {
            Pattern::Induction => p.induction.get().map(|(i, _, _)| i.induction),
            k => p.head_scores.get().map(|s| match k {
                Pattern::FirstToken => s.first_token,
                Pattern::PreviousToken => s.previous_token,
                Pattern::SelfToken => s.self_,
                _ => s.entropy,
            }),
        }
    };
    let click = move |ev: web_sys::MouseEvent, l: usize, h: usize| p.click_head(l, h, ev.shift_key());
    view! {
        <div class="patterns">
            <div class="pattern-controls" role="radiogroup" aria-label="score">
                {Pattern::ALL.into_iter().map(|k| view! {
                    <label><input type="radio" name="attnlab-pattern" value=k.key() prop:checked=move || pattern.get() == k on:change=move |_| pattern.set(k)/>{format!(" {} ", k.label())}</label>
                }).collect_view()}
                <button class="run-induction" on:click=move |_| { p.induction_running.set(true); p.send(Request::Induction { period: 50, seed: 0 }); pattern.set(Pattern::Induction) }
                    disabled=move || p.model.get().is_none() || p.induction_running.get()>
                    {move || if p.induction_running.get() { "Running the induction diagnostic…" } else { "Run the induction diagnostic" }}
                </button>
            </div>
            <p class="muted">{move || pattern.get().explain()}</p>
            {move || (pattern.get() == Pattern::Induction).then(|| p.induction.get().map(|(i, tokens, maps)| view! {
                <p class="muted induction-seq">{format!("{} random tokens, then the same {} again: ", i.period, i.period)}<code>{tokens.iter().take(16).cloned().collect::<Vec<_>>().join("")}"…"</code></p>
                <div class="induction-maps">
                    {maps.into_iter().map(|m| {
                        let (l, h) = (m.layer, m.head);
                        let v = i.induction[l][h];
                        view! {
                            <figure>
                                <MapCanvas map=m label=format!("induction run, layer {l} head {h}")/>
                                <figcaption><button class="link" on:click=move |_| p.open_head(l, h)>{format!("layer {l} head {h}")}</button>{format!(" · {v:.2}")}</figcaption>
                            </figure>
                        }
                    }).collect_view()}
                    <p class="muted caption">{format!("The best induction heads on the repeated sequence ({} tokens, query down, key across). In the second half each token looks at the token after its first occurrence: a diagonal stripe {} keys left of the main diagonal, one step in front of the repeat.", 2 * i.period, i.period - 1)}</p>
                </div>
            }))}
            {move || {
                super::heatmap::use_palette(Some(p.look));
                let g = grid();
                match g {
                None => view! { <p class="muted">{move || if pattern.get() == Pattern::Induction { "Press the button to run the diagnostic." } else { "Run a text to score every head." }}</p> }.into_any(),
                Some(g) => {
                    let max = g.iter().flatten().fold(1e-6f32, |m, v| m.max(*v));
                    let ranked = crate::analysis::heads::ranked(&g);
                    let label = pattern.get().label();
                    view! {
                        <div class="pattern-body">
                            <table class="pattern-grid" aria-label=format!("{label} score of every head") on:mouseleave=move |_| hovered.set(None)>
                                <caption class="muted">{format!("{label}: darker is higher (0 to {max:.2}, √ scale); outlined: picked for a knock-out")}</caption>
                                <thead><tr><th></th>{(0..g[0].len()).map(|h| view! { <th scope="col">{format!("H{h}")}</th> }).collect_view()}</tr></thead>
                                <tbody>
                                    {g.iter().enumerate().map(|(l, row)| view! {
                                        <tr><th scope="row">{format!("L{l}")}</th>
                                            {row.iter().enumerate().map(|(h, &v)| {
                                                let [r, gg, b] = ramp((v / max).sqrt());
                                                view! { <td><button class="pattern-cell" class:picked=move || p.picked.with(|k| k.contains(&(l, h))) style=format!("background:rgb({r},{gg},{b})") title=format!("layer {l}, head {h}: {label} {v:.4}") aria-label=format!("layer {l} head {h}: {v:.3}")
                                                    on:mouseenter=move |_| hovered.set(Some((l, h))) on:focus=move |_| hovered.set(Some((l, h)))
                                                    on:click=move |ev| click(ev, l, h)></button></td> }
                                            }).collect_view()}
                                        </tr>
                                    }).collect_view()}
                                </tbody>
                            </table>
                            <div class="pattern-side">
                                <Preview hovered=hovered/>
                                <p class="muted ranked-title">{format!("Top {label} heads")}</p>
                                <ol class="ranked">
                                    {ranked.into_iter().take(8).map(|(l, h, v)| view! {
                                        <li><button class="link" on:mouseenter=move |_| hovered.set(Some((l, h))) on:click=move |ev| click(ev, l, h)>{format!("layer {l} head {h}")}</button>{format!("  {v:.3}")}</li>
                                    }).collect_view()}
                                </ol>
                            </div>
                        </div>
                    }.into_any()
                }
            }}}
            <super::knockout::KnockOutPanel/>
            <super::similarity::SimilarityView/>
        </div>
    }
}
