// node ws_client.js URL -> prints one JSON line with what happened, exit 0 unless it timed out.
// Sends TEXT "hello", BINARY 1..5, a 70 kB TEXT and a PING, then closes with 4001 "node-bye".
'use strict';
const WebSocket = require('ws');
const url = process.argv[2];
const ws = new WebSocket(url, { perMessageDeflate: false });
const result = { messages: [], pong: null, close: null };
const timer = setTimeout(() => { console.log(JSON.stringify({ ...result, timeout: true })); process.exit(2); }, 10000);
ws.on('open', () => {
  ws.send('hello');
  ws.send(Buffer.from([1, 2, 3, 4, 5]));
  ws.send('x'.repeat(70000));
  ws.ping('are-you-there');
});
ws.on('pong', (data) => { result.pong = data.toString(); });
ws.on('message', (data, isBinary) => {
  result.messages.push(isBinary ? 'bin:' + Array.from(data).join(',') : data.length > 100 ? 'text-len:' + data.length : data.toString());
  if (result.messages.length === 3) ws.close(4001, 'node-bye');
});
ws.on('close', (code, reason) => {
  clearTimeout(timer);
  result.close = { code, reason: reason.toString() };
  console.log(JSON.stringify(result));
  process.exit(0);
});
ws.on('error', (e) => { console.log(JSON.stringify({ ...result, error: e.message })); process.exit(1); });
