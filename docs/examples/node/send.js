// Send one record of each kind to the local Ferry agent over ferry.v1.Local.
// See docs/local-api.md.
//
//   npm install
//   node send.js [TARGET]            # one request: gauge, counter, delta, histogram, event, log
//   node send.js [TARGET] --stream   # the same records over SendStream, one message per kind
//   node send.js [TARGET] --refused  # a metric record with an empty name: INVALID_ARGUMENT
//
// TARGET: unix:/run/ferry/agent.sock (default; env FERRY_AGENT) or 127.0.0.1:4771.
// FERRY_LOCAL_TOKEN: the agent's local token, when it has a local_token_file (unset: none).
// The .proto files are read from the repository's proto/ directory (env FERRY_PROTO).
'use strict';

const path = require('path');
const grpc = require('@grpc/grpc-js');
const protoLoader = require('@grpc/proto-loader');

const PROTO_ROOT = process.env.FERRY_PROTO || path.join(__dirname, '..', '..', '..', 'proto');

const definition = protoLoader.loadSync('ferry/v1/local.proto', {
  includeDirs: [PROTO_ROOT], // the include root: local.proto imports "ferry/v1/payload.proto"
  keepCase: true, // field names as in the .proto: time_unix_ms, not timeUnixMs
  longs: String, // int64/uint64 come back as strings (requests take numbers or strings)
  enums: String, // MetricKind as 'GAUGE', 'COUNTER', 'DELTA'
  defaults: true,
});
const ferry = grpc.loadPackageDefinition(definition).ferry.v1;

function records() {
  const labels = { route: '/pay', method: 'POST' };
  const bounds = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5];
  // per-interval bucket counts: one per bound, then +Inf (len(bounds) + 1 entries)
  const counts = [0, 3, 11, 25, 9, 2, 0, 0, 0, 0, 0];
  const nowNs = BigInt(Date.now()) * 1000000n;
  return {
    metrics: [
      // GAUGE: a value at an instant. time_unix_ms 0: the agent stamps it on receipt.
      { name: 'app.queue.depth', kind: 'GAUGE', value: 17, labels: { queue: 'orders' } },
      // COUNTER: the cumulative total since the process started (monotonic).
      { name: 'app.bytes.sent', kind: 'COUNTER', value: 1048576, labels, unit: 'By',
        time_unix_ms: Date.now() },
      // DELTA: the increment since the last record of this series; the agent sums them.
      { name: 'app.http.requests', kind: 'DELTA', value: 50, labels },
    ],
    histograms: [
      // the observations of one interval, bucketed: 50 requests, 1.52 s in all
      { name: 'app.http.latency', labels, bounds, counts, sum: 1.52, unit: 's' },
    ],
    events: [
      {
        time_unix_ns: nowNs.toString(), // int64 as a string: Date.now() * 1e6 overflows 2^53
        type: 'purchase', category: 'shop', action: 'pay', label: 'basket',
        value: 19.9, has_value: true, // has_value tells 0 from "no value"
        user_id: 'u-1', session_id: 's-1', service: 'checkout',
        properties: { currency: 'EUR', items: '3' },
      },
    ],
    logs: [
      {
        // time_unix_ns 0: the agent stamps it on receipt
        level: 'error', message: 'payment declined', service: 'checkout',
        attributes: { order: 'o-17', reason: 'card_expired' },
        trace_id: '4bf92f3577b34da6a3ce929d0e0e4736', span_id: '00f067aa0ba902b7',
      },
    ],
  };
}

// Every call carries the token, when there is one, as the metadata "authorization: Bearer <token>".
function metadata() {
  const md = new grpc.Metadata();
  const token = (process.env.FERRY_LOCAL_TOKEN || '').trim();
  if (token) {
    md.set('authorization', `Bearer ${token}`);
  }
  return md;
}

function deadline(seconds) {
  return { deadline: new Date(Date.now() + seconds * 1000) };
}

function report(err, resp) {
  if (!err) {
    console.log(`accepted ${resp.accepted}`);
    return;
  }
  // err.code is a grpc.status number; err.details the agent's message
  const name = Object.keys(grpc.status).find((k) => grpc.status[k] === err.code);
  console.error(`${name}: ${err.details}`);
  if (err.code === grpc.status.INVALID_ARGUMENT) {
    // a bad record: the whole request was refused; sending it again fails the same way
  } else if (err.code === grpc.status.UNAUTHENTICATED) {
    // no token, or not the agent's: set FERRY_LOCAL_TOKEN (a rotated token: read it again)
  } else {
    // UNAVAILABLE (no agent yet), DEADLINE_EXCEEDED, RESOURCE_EXHAUSTED (agent busy):
    // a real client keeps the records and retries with backoff
  }
  process.exitCode = 1;
}

function main() {
  const args = process.argv.slice(2);
  const target = args.find((a) => !a.startsWith('--')) || process.env.FERRY_AGENT || 'unix:/run/ferry/agent.sock';
  const client = new ferry.Local(target, grpc.credentials.createInsecure());
  const done = (err, resp) => {
    report(err, resp);
    client.close();
  };

  if (args.includes('--refused')) {
    client.Send({ metrics: [{ name: 'app.ok', kind: 'GAUGE', value: 1 }, { name: '', kind: 'GAUGE', value: 1 }] },
      metadata(), deadline(5), done);
  } else if (args.includes('--stream')) {
    // SendStream: many Records messages on one call, one SendResponse (the total) at the end
    const call = client.SendStream(metadata(), deadline(5), done);
    const all = records();
    for (const kind of ['metrics', 'histograms', 'events', 'logs']) {
      call.write({ [kind]: all[kind] });
    }
    call.end();
  } else {
    client.Send(records(), metadata(), deadline(5), done);
  }
}

main();
