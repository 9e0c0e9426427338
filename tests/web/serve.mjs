// A tiny static server for dist/ (tests and figures); no dependencies. It counts requests
// per path (`requests`) and lists the ones it answered 404 (`notFound()`), sends CORS headers
// like a public static host (GitHub Pages sends `Access-Control-Allow-Origin: *`), and can
// serve extra in-memory pages (`pages`, keyed by absolute path).
//
// `prefix` ('/' by default) is the folder the site lives in, like a GitHub Pages project
// site (https://user.github.io/repo/) or a course's subfolder: with prefix '/sub/dir/', dist/
// is served only under /sub/dir/ and everything else is a 404 (/favicon.ico, /embed.js …);
// `url` then ends with the prefix. Like a real static host, a missing file is a 404; only a
// path without a file extension falls back to the site's index.html (client-side routes).
import http from 'node:http';
import fs from 'node:fs';
import path from 'node:path';

const types = {
  '.html': 'text/html', '.js': 'text/javascript', '.mjs': 'text/javascript', '.wasm': 'application/wasm', '.css': 'text/css',
  '.json': 'application/json', '.gguf': 'application/octet-stream', '.txt': 'text/plain', '.svg': 'image/svg+xml', '.png': 'image/png', '.ico': 'image/x-icon',
};

function normalisePrefix(prefix) {
  let p = prefix.startsWith('/') ? prefix : '/' + prefix;
  if (!p.endsWith('/')) p += '/';
  return p;
}

export async function serve(dir, { pages = {}, cors = true, prefix = '/' } = {}) {
  const root = dir ? path.resolve(dir) : null;
  const base = normalisePrefix(prefix);
  const requests = new Map();
  const missing = [];
  let bytes = 0;
  // Large headers allowed: a test opens a 1 MB URL (static hosts often cap URLs far lower).
  const server = http.createServer({ maxHeaderSize: 4 << 20 }, (req, res) => {
    const headers = cors ? { 'access-control-allow-origin': '*' } : {};
    let pathname;
    try {
      pathname = decodeURIComponent(new URL(req.url, 'http://x').pathname);
    } catch {
      res.writeHead(400, headers);
      return res.end();
    }
    requests.set(pathname, (requests.get(pathname) ?? 0) + 1);
    const notFound = () => {
      missing.push(pathname);
      res.writeHead(404, { ...headers, 'content-type': 'text/plain' });
      res.end('not found\n');
    };
    if (pages[pathname] !== undefined) {
      res.writeHead(200, { ...headers, 'content-type': 'text/html' });
      return res.end(pages[pathname]);
    }
    if (!root) return notFound();
    // The folder itself without its slash: a static host redirects to the slash form.
    if (base !== '/' && pathname === base.slice(0, -1)) {
      res.writeHead(301, { ...headers, location: base + (new URL(req.url, 'http://x').search) });
      return res.end();
    }
    if (!pathname.startsWith(base)) return notFound();
    const rel = pathname.slice(base.length);
    let file = path.join(root, rel);
    if (file !== root && !file.startsWith(root + path.sep)) return notFound();
    let stat = fs.statSync(file, { throwIfNoEntry: false });
    if (stat?.isDirectory()) {
      file = path.join(file, 'index.html');
      stat = fs.statSync(file, { throwIfNoEntry: false });
    }
    if (!stat?.isFile()) {
      // A client-side route (no extension) gets the app; a missing asset is a real 404.
      if (path.extname(rel) !== '') return notFound();
      file = path.join(root, 'index.html');
      stat = fs.statSync(file, { throwIfNoEntry: false });
      if (!stat?.isFile()) return notFound();
    }
    bytes += stat.size;
    res.writeHead(200, { ...headers, 'content-type': types[path.extname(file)] ?? 'application/octet-stream', 'content-length': stat.size });
    if (req.method === 'HEAD') return res.end();
    fs.createReadStream(file).pipe(res);
  });
  await new Promise((r) => server.listen(0, '127.0.0.1', r));
  const origin = `http://127.0.0.1:${server.address().port}`;
  const url = origin + base;
  return {
    url, origin, prefix: base, requests,
    count: (p) => requests.get(p) ?? 0,
    notFound: () => [...missing],
    bytes: () => bytes,
    close: () => server.close(),
  };
}

export const BASE_ARGS = ['--no-sandbox', '--disable-background-networking', '--disable-component-update', '--no-first-run'];
export const WEBGPU_ARGS = [...BASE_ARGS, '--enable-unsafe-webgpu', '--use-webgpu-adapter=swiftshader', '--enable-features=Vulkan'];
export const NO_WEBGPU_ARGS = [...BASE_ARGS, '--disable-features=WebGPU'];

// Debian's Chromium now and then dies with SIGSEGV while starting (before any page exists; seen
// once in CI, 1 launch in ~40). That is not what a test checks, so a launch that fails is retried,
// up to three times, and the last error is thrown. Failures after launch are never retried.
export async function launchChromium(args, { attempts = 3 } = {}) {
  const { chromium } = await import('playwright-core');
  let last;
  for (let i = 0; i < attempts; i++) {
    try {
      return await chromium.launch({ executablePath: '/usr/bin/chromium', args });
    } catch (e) {
      last = e;
      console.error(`# Chromium failed to start (attempt ${i + 1} of ${attempts}): ${String(e).split('\n')[0]}`);
    }
  }
  throw last;
}
