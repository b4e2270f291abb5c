#!/usr/bin/env node
// Starts the @firestore-emulator/server Firestore emulator on 127.0.0.1 only.
// Usage: node firestore-server.js PORT
// FirestoreServer.start(port) binds 0.0.0.0, so bind its gRPC server ourselves.
"use strict";
const { FirestoreServer } = require("@firestore-emulator/server");
const { ServerCredentials } = require("@grpc/grpc-js");

const port = Number.parseInt(process.argv[2] ?? "", 10);
if (!Number.isInteger(port) || port <= 0 || port > 65535) {
  console.error("usage: node firestore-server.js PORT");
  process.exit(2);
}

const emulator = new FirestoreServer();
const grpcServer = emulator.server; // TS-private field, plain property at run time
grpcServer.bindAsync(`127.0.0.1:${port}`, ServerCredentials.createInsecure(), (err, boundPort) => {
  if (err) {
    console.error(`firestore emulator failed to bind 127.0.0.1:${port}: ${err.message}`);
    process.exit(1);
  }
  console.log(`Firestore emulator listening on 127.0.0.1:${boundPort}`);
});

for (const signal of ["SIGTERM", "SIGINT"]) {
  process.on(signal, () => {
    grpcServer.forceShutdown();
    process.exit(0);
  });
}
