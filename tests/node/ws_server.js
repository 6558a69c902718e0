// node ws_server.js -> echo server on 127.0.0.1, free port; prints "listening PORT" first.
// Echoes every message; on TEXT "close-me" closes with 4002 "node-closing" instead.
// Prints "close CODE REASON" for each close it receives.
'use strict';
const { WebSocketServer } = require('ws');
const wss = new WebSocketServer({ host: '127.0.0.1', port: 0, perMessageDeflate: false });
wss.on('listening', () => console.log('listening', wss.address().port));
wss.on('connection', (ws) => {
  ws.on('message', (data, isBinary) => {
    if (!isBinary && data.toString() === 'close-me') ws.close(4002, 'node-closing');
    else ws.send(data, { binary: isBinary });
  });
  ws.on('close', (code, reason) => console.log('close', code, reason.toString()));
});
process.on('SIGTERM', () => process.exit(0));
