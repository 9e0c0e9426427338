// attnlab embed: <script src="https://…/embed.js" async></script> (a classic script, or
// type="module") then <attn-lab text="…" layer="14" head="5" view="head"></attn-lab> anywhere,
// any number of times. Everything else (the wasm, the engine worker, the default model, shipped
// figures) is found next to this file, so the site can live on any static host, in any folder,
// and be used from other origins. A classic script loads even from a host that sends no CORS
// headers, so a blocked load of the rest can be explained in the widget's box.
// Attributes: text (or the element's text), layer, head, query, view (head|model|sinks|
// position|tokens|generate|lens|lab|inside|patterns|similarity|knockout|cost|streaming), ablate (heads
// knocked out: 14.5,0.*), state (a saved el.state), tour (a guided tour's JSON URL), present
// (large type for a projector), panels (the parts of the view kept: map,steps for inside,
// grid for patterns, …), controls (none|compact|full), loading (lazy|eager), model-src,
// result-src, theme (auto|light|dark), scale (linear|sqrt|log: the colour scale of maps),
// palette (blues|viridis: the colours),
// sink (hide: rows renormalised without key 0), whatif (unscaled|unmasked|norope), backend
// (webgpu|cpu). Contract per element: dataset.state / view / backend / source, exportJson(),
// el.state (the settings shown, an object) and el.restore(state), and the events
// 'attnlab-statechange' and 'attnlab-select'.
(() => {
// This script's own address: document.currentScript for a classic script; a module has none
// (and import.meta is a syntax error in a classic one), so the last <script> naming embed.js.
const SCRIPT = document.currentScript?.src
  ?? [...document.querySelectorAll('script[src]')].map((s) => s.src).reverse().find((s) => /\/embed\.js([?#]|$)/.test(s))
  ?? location.href;
const BASE = new URL('./', SCRIPT).href;
const ATTRIBUTES = ['text', 'layer', 'head', 'query', 'view', 'controls', 'loading', 'model-src', 'result-src', 'theme', 'scale', 'palette', 'sink', 'whatif', 'backend', 'gen', 'temperature', 'top-k', 'top-p', 'seed', 'chat', 'ablate', 'state', 'tour', 'present', 'panels', 'through', 'through-layers', 'first', 'second', 'word'];

/** Words for a failed start: a blocked cross-origin load says what the host must send. */
function whyNot(e) {
  const from = new URL(BASE);
  if (from.origin !== location.origin) {
    return `attnlab could not load from ${from.host}: that server must send the header Access-Control-Allow-Origin for its files to be used on this page (${location.host || 'this page'}), e.g. "Access-Control-Allow-Origin: *" (see "Hosting" in attnlab's README). Or use the iframe snippet, which needs no headers. (${e})`;
  }
  return `attnlab could not start: ${e}`;
}

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
      if (this.hasAttribute('result-src') || this.getAttribute('view') === 'position') return;
      if (this.getAttribute('loading') === 'eager') {
        // Not in this task: Firefox runs an engine worker started while the page's own module
        // is still being compiled far slower (measured 60 s for a 10-token run instead of
        // 0.2 s). After the next frame and an idle moment, as a lazy widget would start.
        const later = globalThis.requestIdleCallback ?? ((f) => setTimeout(f, 50));
        requestAnimationFrame(() => later(() => this._start(), { timeout: 1000 }));
      } else if (nearViewport) nearViewport.observe(this);
      else this._start();
    }).catch((e) => {
      this.dataset.state = 'error';
      const box = document.createElement('p');
      box.setAttribute('role', 'alert');
      box.className = 'attnlab-error';
      box.style.cssText = 'font: 14px/1.45 system-ui, sans-serif; color: #c92a2a; background: #fff5f5; border: 1px solid #ffc9c9; border-radius: 8px; padding: 8px 12px; margin: 0;';
      box.textContent = whyNot(e);
      this.shadowRoot.replaceChildren(box);
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

  /** What the widget shows, as settings (an object for restore()), or null before it starts. */
  get state() {
    return this._handle ? JSON.parse(this._handle.state()) : null;
  }

  /** Shows a saved state (an object or its JSON); throws when it is not one object of settings. */
  restore(state) {
    const json = typeof state === 'string' ? state : JSON.stringify(state);
    if (this._handle) this._handle.restore(json);
    else this.setAttribute('state', json);
  }

  /** The widget's result in the `attnlab inspect --json` schema (a string), or null. */
  exportJson() {
    return this._handle ? this._handle.exportJson() ?? null : null;
  }
}

if (!customElements.get('attn-lab')) customElements.define('attn-lab', AttnLab);
})();
