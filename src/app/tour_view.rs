//! A guided tour beside a widget's figure ([`crate::tour`]): the step's title and caption, its
//! question with a folded answer, Back / Next (and the arrow keys), and where the reader is.
//! Captions are drawn from the checked Markdown tree as text nodes and elements: nothing of a
//! tour is ever parsed as HTML.

use leptos::prelude::*;

use crate::tour::{Block, Inline, Tour};

fn inlines(items: &[Inline]) -> AnyView {
    items
        .iter()
        .map(|i| match i {
            Inline::Text(t) => t.clone().into_any(),
            Inline::Code(t) => view! { <code>{t.clone()}</code> }.into_any(),
            Inline::Em(c) => view! { <em>{inlines(c)}</em> }.into_any(),
            Inline::Strong(c) => view! { <strong>{inlines(c)}</strong> }.into_any(),
            Inline::Link { href, children } => view! { <a href=href.clone() target="_blank" rel="noopener noreferrer nofollow">{inlines(children)}</a> }.into_any(),
            Inline::Break => view! { <br/> }.into_any(),
        })
        .collect_view()
        .into_any()
}

/// Markdown blocks as elements.
pub fn blocks(items: &[Block]) -> AnyView {
    items
        .iter()
        .map(|b| match b {
            Block::Para(i) => view! { <p>{inlines(i)}</p> }.into_any(),
            Block::Heading(i) => view! { <p class="tour-heading"><strong>{inlines(i)}</strong></p> }.into_any(),
            Block::List { ordered: true, items } => view! { <ol>{items.iter().map(|i| view! { <li>{inlines(i)}</li> }).collect_view()}</ol> }.into_any(),
            Block::List { ordered: false, items } => view! { <ul>{items.iter().map(|i| view! { <li>{inlines(i)}</li> }).collect_view()}</ul> }.into_any(),
            Block::Code(c) => view! { <pre><code>{c.clone()}</code></pre> }.into_any(),
        })
        .collect_view()
        .into_any()
}

/// The tour's bar: `on_step` is asked to show step k (0-based).
#[component]
pub fn TourBar(tour: RwSignal<Option<Tour>>, step: RwSignal<usize>, on_step: Callback<usize>) -> impl IntoView {
    let n = move || tour.with(|t| t.as_ref().map(|t| t.steps.len()).unwrap_or(0));
    let go = move |k: usize| {
        if k < n() && k != step.get_untracked() {
            on_step.run(k);
        }
    };
    view! {
        {move || tour.get().map(|t| {
            let k = step.get().min(t.steps.len() - 1);
            let s = t.steps[k].clone();
            view! {
                <section class="tour" tabindex="0" aria-label="guided tour" aria-live="polite">
                    <p class="tour-where">
                        <span class="tour-title">{t.title.clone()}</span>
                        <span class="tour-progress">{format!(" · step {} of {}", k + 1, t.steps.len())}</span>
                    </p>
                    <div class="tour-dots" aria-hidden="true">{(0..t.steps.len()).map(|i| view! { <span class="tour-dot" class:on={i == k} class:done={i < k}></span> }).collect_view()}</div>
                    {(!s.title.is_empty()).then(|| view! { <h3 class="tour-step-title">{s.title.clone()}</h3> })}
                    <div class="tour-caption">{blocks(&s.caption)}</div>
                    {s.question.as_ref().map(|q| view! {
                        <div class="tour-question">{blocks(q)}
                            {s.answer.as_ref().map(|a| view! { <details><summary>"Answer"</summary>{blocks(a)}</details> })}
                        </div>
                    })}
                    <div class="tour-nav">
                        <button class="tour-back" on:click=move |_| go(k.saturating_sub(1)) disabled={k == 0}>"← Back"</button>
                        <button class="tour-next primary" on:click=move |_| go(k + 1) disabled={k + 1 >= t.steps.len()}>"Next →"</button>
                        <span class="aw-muted">" or the arrow keys"</span>
                    </div>
                </section>
            }
        })}
    }
}
