// Node's ws with permessage-deflate, for tests/websockets/test_ws_compat_peers.py.
//   node ws_deflate_peer.js server OPTIONS  -> "listening PORT"; echoes every message;
//                                             prints "close CODE REASON" when closed.
//   node ws_deflate_peer.js client OPTIONS URL -> sends messages, checks their echoes,
//                                             closes with 4001; prints one JSON line.
// OPTIONS is the JSON of ws' perMessageDeflate option (threshold 0: compress all).
'use strict';
const WebSocket = require('ws');
const [role, options, url] = process.argv.slice(2);
const perMessageDeflate = { threshold: 0, ...JSON.parse(options) };
if (role === 'server') {
  const wss = new WebSocket.WebSocketServer({ host: '127.0.0.1', port: 0, perMessageDeflate });
  wss.on('listening', () => console.log('listening', wss.address().port));
  wss.on('connection', (ws, req) => {
    console.log('offer', req.headers['sec-websocket-extensions'] || '');
    ws.on('message', (data, isBinary) => ws.send(data, { binary: isBinary }));
    ws.on('close', (code, reason) => console.log('close', code, reason.toString()));
  });
  process.on('SIGTERM', () => process.exit(0));
} else {
  const ws = new WebSocket(url, { perMessageDeflate });
  const text = 'the same words again '.repeat(500);
  const sent = [text, text, Buffer.alloc(70000, 7), 'é'.repeat(3000), ''];
  const result = { extensions: null, echoes: [], close: null };
  const timer = setTimeout(() => { console.log(JSON.stringify({ ...result, timeout: true })); process.exit(2); }, 10000);
  ws.on('upgrade', (res) => { result.extensions = res.headers['sec-websocket-extensions'] || null; });
  ws.on('open', () => { for (const m of sent) ws.send(m); });
  ws.on('message', (data, isBinary) => {
    const expected = sent[result.echoes.length];
    const same = Buffer.compare(Buffer.from(data), Buffer.from(expected)) === 0;
    result.echoes.push(same && isBinary === Buffer.isBuffer(expected));
    if (result.echoes.length === sent.length) ws.close(4001, 'node-bye');
  });
  ws.on('close', (code, reason) => {
    clearTimeout(timer);
    result.close = { code, reason: reason.toString() };
    console.log(JSON.stringify(result));
    process.exit(0);
  });
  ws.on('error', (e) => { console.log(JSON.stringify({ ...result, error: e.message })); process.exit(1); });
}
