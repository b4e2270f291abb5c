#!/usr/bin/env node
// Starts the @vercel/cosmosdb-server Cosmos DB emulator (HTTPS, bundled
// self-signed certificate) on 127.0.0.1 only.
// Usage: node cosmos-server.js PORT
"use strict";
const { createHttpsServer } = require("@vercel/cosmosdb-server");

const port = Number.parseInt(process.argv[2] ?? "", 10);
if (!Number.isInteger(port) || port <= 0 || port > 65535) {
  console.error("usage: node cosmos-server.js PORT");
  process.exit(2);
}

const server = createHttpsServer();
server.on("error", (err) => {
  console.error(`cosmos emulator failed on 127.0.0.1:${port}: ${err.message}`);
  process.exit(1);
});
server.listen(port, "127.0.0.1", () => {
  const address = server.address();
  console.log(`Cosmos DB emulator listening on https://127.0.0.1:${address.port}`);
});

for (const signal of ["SIGTERM", "SIGINT"]) {
  process.on(signal, () => {
    server.close();
    process.exit(0);
  });
}
