// A static file server for the live tests, run inside a namespace: GET /<name> answers the
// file from the directory given as the first argument (200, or 404), nothing else. No caching
// headers, so a client can only tell "unchanged" by the bytes.
//   files.mjs DIR PORT
import http from "node:http";
import { readFile } from "node:fs/promises";
import { join, basename } from "node:path";

const [dir, portText] = process.argv.slice(2);
const server = http.createServer(async (req, res) => {
  try {
    const body = await readFile(join(dir, basename(decodeURIComponent(req.url ?? "/"))));
    res.writeHead(200, { "Content-Type": "text/plain" }).end(body);
  } catch {
    res.writeHead(404).end();
  }
});
server.listen(Number(portText), "127.0.0.1", () => process.stdout.write("ready\n"));
setTimeout(() => process.exit(0), Number(process.env.SERVER_LIFETIME_MS ?? 120000)).unref();
