// A tiny static server for dist/ (tests and figures); no dependencies. It counts requests
// per path (`requests`), sends CORS headers like a public static host (GitHub Pages sends
// `Access-Control-Allow-Origin: *`), and can serve extra in-memory pages.
import http from 'node:http';
import fs from 'node:fs';
import path from 'node:path';

const types = { '.html': 'text/html', '.js': 'text/javascript', '.wasm': 'application/wasm', '.css': 'text/css', '.json': 'application/json', '.gguf': 'application/octet-stream' };

export async function serve(dir, { pages = {}, cors = true } = {}) {
  const root = dir ? path.resolve(dir) : null;
  const requests = new Map();
  let bytes = 0;
  // Large headers allowed: a test opens a 1 MB URL (static hosts often cap URLs far lower).
  const server = http.createServer({ maxHeaderSize: 4 << 20 }, (req, res) => {
    const pathname = decodeURIComponent(new URL(req.url, 'http://x').pathname);
    requests.set(pathname, (requests.get(pathname) ?? 0) + 1);
    const headers = cors ? { 'access-control-allow-origin': '*' } : {};
    if (pages[pathname] !== undefined) {
      res.writeHead(200, { ...headers, 'content-type': 'text/html' });
      return res.end(pages[pathname]);
    }
    if (!root) {
      res.writeHead(404, headers);
      return res.end();
    }
    const file = path.join(root, pathname);
    const target = !file.startsWith(root) || !fs.existsSync(file) || fs.statSync(file).isDirectory() ? path.join(root, 'index.html') : file;
    const size = fs.statSync(target).size;
    bytes += size;
    res.writeHead(200, { ...headers, 'content-type': types[path.extname(target)] ?? 'application/octet-stream', 'content-length': size });
    fs.createReadStream(target).pipe(res);
  });
  await new Promise((r) => server.listen(0, '127.0.0.1', r));
  const url = `http://127.0.0.1:${server.address().port}/`;
  return { url, requests, count: (p) => requests.get(p) ?? 0, bytes: () => bytes, close: () => server.close() };
}

export const BASE_ARGS = ['--no-sandbox', '--disable-background-networking', '--disable-component-update', '--no-first-run'];
export const WEBGPU_ARGS = [...BASE_ARGS, '--enable-unsafe-webgpu', '--use-webgpu-adapter=swiftshader', '--enable-features=Vulkan'];
export const NO_WEBGPU_ARGS = [...BASE_ARGS, '--disable-features=WebGPU'];
