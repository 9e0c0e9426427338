// attnlab embed: <script type="module" src="https://…/embed.js"></script> then
// <attn-lab text="…" layer="14" head="5" view="head"></attn-lab> anywhere, any number of times.
// Everything else (the wasm, the engine worker, the default model, shipped figures) is found
// next to this file, so the site can live on any static host and be used from other origins.
// Attributes: text (or the element's text), layer, head, query, view (head|model|sinks|
// position|tokens), controls (none|compact|full), loading (lazy|eager), model-src,
// result-src, theme (auto|light|dark), scale (linear|sqrt|log: the colour scale of maps),
// sink (hide: rows renormalised without key 0), whatif (unscaled|unmasked|norope). Contract per element: dataset.state / backend /
// source, exportJson(), and an 'attnlab-statechange' event.
const BASE = new URL('./', import.meta.url).href;
const ATTRIBUTES = ['text', 'layer', 'head', 'query', 'view', 'controls', 'loading', 'model-src', 'result-src', 'theme', 'scale', 'sink', 'whatif', 'backend'];

let module;
function wasm() {
  // One instance per page: every widget shares it, and through it one worker per model.
  module ??= (async () => {
    globalThis.attnlabEmbedOnly = true;
    const m = await import(BASE + 'attnlab-web.js');
    await m.default({ module_or_path: BASE + 'attnlab-web_bg.wasm' });
    return m;
  })();
  return module;
}

// Lazy widgets start when they come within a screen of the viewport.
const nearViewport = 'IntersectionObserver' in globalThis
  ? new IntersectionObserver((entries) => {
      for (const e of entries) {
        if (e.isIntersecting) {
          nearViewport.unobserve(e.target);
          e.target._start();
        }
      }
    }, { rootMargin: '100% 0px' })
  : null;

class AttnLab extends HTMLElement {
  static observedAttributes = ATTRIBUTES;

  constructor() {
    super();
    this.attachShadow({ mode: 'open' });
    this._handle = null;
  }

  connectedCallback() {
    if (this._mounting) return;
    if (!this.dataset.state) this.dataset.state = 'idle';
    this._mounting = wasm().then((m) => {
      this._handle = m.mountWidget(this, this.shadowRoot, BASE);
      if (this.getAttribute('loading') !== 'eager' && !this.hasAttribute('result-src')) {
        if (nearViewport) nearViewport.observe(this); else this._start();
      }
    }).catch((e) => {
      this.dataset.state = 'error';
      this.shadowRoot.textContent = 'attnlab could not start: ' + e;
      this.dispatchEvent(new CustomEvent('attnlab-statechange', { bubbles: true, composed: true, detail: { state: 'error' } }));
    });
  }

  disconnectedCallback() {
    nearViewport?.unobserve(this);
  }

  attributeChangedCallback(name, before, after) {
    if (this._handle && before !== after) this._handle.set(name);
  }

  _start() {
    this._handle?.start();
  }

  /** The widget's result in the `attnlab inspect --json` schema (a string), or null. */
  exportJson() {
    return this._handle ? this._handle.exportJson() ?? null : null;
  }
}

if (!customElements.get('attn-lab')) customElements.define('attn-lab', AttnLab);
