//! "Head patterns": every head of the model scored on the text (attention to the first token,
//! to the previous token, to itself, row entropy) or on the induction diagnostic, as a
//! layer × head grid with a ranked list; a click opens the head.

use leptos::prelude::*;

use super::heatmap::ramp;
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

#[component]
pub fn PatternsView() -> impl IntoView {
    let p = expect_context::<Page>();
    let pattern = RwSignal::new(Pattern::FirstToken);
    let grid = move || -> Option<Grid> {
        match pattern.get() {
            Pattern::Induction => p.induction.get().map(|(i, _)| i.induction),
            k => p.head_scores.get().map(|s| match k {
                Pattern::FirstToken => s.first_token,
                Pattern::PreviousToken => s.previous_token,
                Pattern::SelfToken => s.self_,
                _ => s.entropy,
            }),
        }
    };
    view! {
        <div class="patterns">
            <div class="pattern-controls" role="radiogroup" aria-label="score">
                {Pattern::ALL.into_iter().map(|k| view! {
                    <label><input type="radio" name="attnlab-pattern" value=k.key() prop:checked=move || pattern.get() == k on:change=move |_| pattern.set(k)/>{format!(" {} ", k.label())}</label>
                }).collect_view()}
                <button on:click=move |_| { p.induction_running.set(true); p.send(Request::Induction { period: 50, seed: 0 }); pattern.set(Pattern::Induction) }
                    disabled=move || p.model.get().is_none() || p.induction_running.get()>
                    {move || if p.induction_running.get() { "Running the induction diagnostic…" } else { "Run the induction diagnostic" }}
                </button>
            </div>
            <p class="muted">{move || pattern.get().explain()}</p>
            {move || (pattern.get() == Pattern::Induction).then(|| p.induction.get().map(|(i, tokens)| view! {
                <p class="muted induction-seq">{format!("{} random tokens, then the same {} again: ", i.period, i.period)}<code>{tokens.iter().take(16).cloned().collect::<Vec<_>>().join("")}"…"</code></p>
            }))}
            {move || match grid() {
                None => view! { <p class="muted">{move || if pattern.get() == Pattern::Induction { "Press the button to run the diagnostic." } else { "Run a text to score every head." }}</p> }.into_any(),
                Some(g) => {
                    let max = g.iter().flatten().fold(1e-6f32, |m, v| m.max(*v));
                    let mut ranked: Vec<(usize, usize, f32)> = g.iter().enumerate().flat_map(|(l, r)| r.iter().enumerate().map(move |(h, v)| (l, h, *v))).collect();
                    ranked.sort_by(|a, b| b.2.total_cmp(&a.2));
                    let label = pattern.get().label();
                    view! {
                        <div class="pattern-body">
                            <table class="pattern-grid" aria-label=format!("{label} score of every head")>
                                <thead><tr><th></th>{(0..g[0].len()).map(|h| view! { <th scope="col">{format!("H{h}")}</th> }).collect_view()}</tr></thead>
                                <tbody>
                                    {g.iter().enumerate().map(|(l, row)| view! {
                                        <tr><th scope="row">{format!("L{l}")}</th>
                                            {row.iter().enumerate().map(|(h, &v)| {
                                                let [r, gg, b] = ramp((v / max).sqrt());
                                                view! { <td><button class="pattern-cell" style=format!("background:rgb({r},{gg},{b})") title=format!("layer {l}, head {h}: {label} {v:.4}") aria-label=format!("layer {l} head {h}: {v:.3}") on:click=move |_| p.open_head(l, h)></button></td> }
                                            }).collect_view()}
                                        </tr>
                                    }).collect_view()}
                                </tbody>
                            </table>
                            <ol class="ranked">
                                <li class="muted">{format!("Top {label} heads")}</li>
                                {ranked.into_iter().take(8).map(|(l, h, v)| view! {
                                    <li><button class="link" on:click=move |_| p.open_head(l, h)>{format!("layer {l} head {h}")}</button>{format!("  {v:.3}")}</li>
                                }).collect_view()}
                            </ol>
                        </div>
                    }.into_any()
                }
            }}
        </div>
    }
}
