// A tiny static server for dist/ (tests and figures); no dependencies.
import http from 'node:http';
import fs from 'node:fs';
import path from 'node:path';

const types = { '.html': 'text/html', '.js': 'text/javascript', '.wasm': 'application/wasm', '.css': 'text/css', '.gguf': 'application/octet-stream' };

export async function serve(dir) {
  const root = path.resolve(dir);
  const server = http.createServer((req, res) => {
    const file = path.join(root, decodeURIComponent(new URL(req.url, 'http://x').pathname));
    const target = !file.startsWith(root) || !fs.existsSync(file) || fs.statSync(file).isDirectory() ? path.join(root, 'index.html') : file;
    res.writeHead(200, { 'content-type': types[path.extname(target)] ?? 'application/octet-stream', 'content-length': fs.statSync(target).size });
    fs.createReadStream(target).pipe(res);
  });
  await new Promise((r) => server.listen(0, '127.0.0.1', r));
  return { url: `http://127.0.0.1:${server.address().port}/`, close: () => server.close() };
}

export const BASE_ARGS = ['--no-sandbox', '--disable-background-networking', '--disable-component-update', '--no-first-run'];
export const WEBGPU_ARGS = [...BASE_ARGS, '--enable-unsafe-webgpu', '--use-webgpu-adapter=swiftshader', '--enable-features=Vulkan'];
export const NO_WEBGPU_ARGS = [...BASE_ARGS, '--disable-features=WebGPU'];
