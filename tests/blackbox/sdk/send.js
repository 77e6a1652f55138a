// Sends identify, track, page and alias through a real SDK to kithd, then flushes.
// usage: node send.js segment|rudder HOST WRITEKEY SCENARIO_JSON
// SCENARIO_JSON: {"userId", "anonymousId", "email", "prefix"}; prints "ok" when the SDK flushed
// without an error.
'use strict';
const [which, host, writeKey, scenarioJson] = process.argv.slice(2);
const s = JSON.parse(scenarioJson);

function calls(a, cb) {
  const done = cb || (() => {});
  a.identify({ userId: s.userId, anonymousId: s.anonymousId,
               traits: { email: s.email, firstName: 'Ann', plan: 'pro' } }, done);
  a.track({ anonymousId: s.anonymousId, event: s.prefix + ' Viewed', properties: { sku: 's-1' } }, done);
  a.track({ userId: s.userId, event: s.prefix + ' Order Completed',
            properties: { revenue: 42.5, currency: 'EUR' } }, done);
  a.page({ anonymousId: s.anonymousId2, name: 'Pricing',
           properties: { url: 'https://shop.example/pricing' } }, done);
  a.alias({ userId: s.userId, previousId: s.anonymousId2 }, done);
}

async function main() {
  const errors = [];
  const cb = (err) => { if (err) errors.push(String(err && err.message || err)); };
  if (which === 'segment') {
    const { Analytics } = require('@segment/analytics-node');
    const a = new Analytics({ writeKey, host, path: '/v1/batch', flushInterval: 200, maxRetries: 3 });
    a.on('error', (e) => errors.push(String(e && (e.reason || e.message) || e)));
    calls(a, cb);
    await a.closeAndFlush({ timeout: 20000 });
  } else {
    const Analytics = require('@rudderstack/rudder-sdk-node');
    const a = new Analytics(writeKey, { dataPlaneUrl: host, flushInterval: 200, retryCount: 1,
                                        logLevel: 'error' });
    calls(a, cb);
    await a.flush();
  }
  if (errors.length) {
    console.error('sdk errors: ' + errors.join('; '));
    process.exit(1);
  }
  console.log('ok');
}

main().catch((e) => { console.error(e && e.stack || e); process.exit(1); });
