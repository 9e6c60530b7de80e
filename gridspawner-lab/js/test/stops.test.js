// node --test: the pure part of the lab extension (what the status bar says, when it warns).
import assert from 'node:assert/strict';
import { test } from 'node:test';

import { StopTracker, dueWarning, formatLeft, warningMessage } from '../src/stops.js';

const clock = epoch => `T${epoch}`;

test('time left as people say it', () => {
  assert.equal(formatLeft(0), '0 s');
  assert.equal(formatLeft(-5), '0 s');
  assert.equal(formatLeft(44.2), '45 s');
  assert.equal(formatLeft(59.5), '1 min');
  assert.equal(formatLeft(60), '1 min');
  assert.equal(formatLeft(61), '2 min');
  assert.equal(formatLeft(299.6), '5 min');
  assert.equal(formatLeft(3600), '1 h');
  assert.equal(formatLeft(3600 + 19 * 60 + 1), '1 h 20 min');
  assert.equal(formatLeft(26 * 3600), '26 h');
});

test('each warning once, the shortest reached one only', () => {
  const shown = new Set();
  assert.equal(dueWarning(2000, [1800, 300], shown), null);
  assert.equal(dueWarning(1800, [1800, 300], shown), 1800);
  assert.equal(dueWarning(1700, [1800, 300], shown), null);
  assert.equal(dueWarning(299, [1800, 300], shown), 300);
  assert.equal(dueWarning(10, [1800, 300], shown), null);
  // JupyterLab opened 3 minutes before the stop: the 5-minute warning, and only that one
  const late = new Set();
  assert.equal(dueWarning(180, [1800, 300], late), 300);
  assert.equal(dueWarning(170, [1800, 300], late), null);
  // past the stop: nothing
  assert.equal(dueWarning(0, [1800, 300], new Set()), null);
  assert.equal(dueWarning(100, [], new Set()), null);
});

test('the message names the time left, the clock time and the reason', () => {
  assert.equal(
    warningMessage({ reason: 'max_runtime', at: 1000 }, 299.5, '14:35'),
    'This server will be stopped in 5 min (at 14:35) because its maximum run time ends. Save your work.'
  );
  assert.match(warningMessage({ reason: 'idle', at: 1 }, 30, 'x'), /because it has been idle\./);
  assert.match(warningMessage({ reason: 'later', at: 1, message: 'the lab closes' }, 30, 'x'), /because the lab closes\./);
  assert.match(warningMessage({ reason: 'unknown', at: 1 }, 30, 'x'), /because the hub stops it\./);
});

test('the tracker measures on the server clock and warns at each threshold', () => {
  const t = new StopTracker(clock);
  // the browser's clock is 100 s behind the server's
  t.update({ now: 10000, stops: [{ reason: 'max_runtime', at: 10000 + 3700 }], warn_before: [1800, 300] }, 9900);
  let r = t.tick(9900);
  assert.deepEqual(r.status.text, 'Server stops in 1 h 2 min');
  assert.match(r.status.title, /at T13600 because its maximum run time ends/);
  assert.deepEqual(r.warnings, []);
  r = t.tick(9900 + 3700 - 1800);
  assert.equal(r.warnings.length, 1);
  assert.match(r.warnings[0].message, /stopped in 30 min \(at T13600\)/);
  assert.equal(t.tick(9900 + 3700 - 1700).warnings.length, 0);
  r = t.tick(9900 + 3700 - 240);
  assert.equal(r.warnings.length, 1);
  assert.match(r.warnings[0].message, /stopped in 4 min/);
  assert.equal(t.tick(9900 + 3700 + 1).status.text, 'Server stopping now');
  assert.equal(t.tick(9900 + 3700 + 120).status, null);
});

test('a moved stop warns afresh; a cancelled one is gone', () => {
  const t = new StopTracker(clock);
  t.update({ now: 0, stops: [{ reason: 'max_runtime', at: 100 }], warn_before: [60] }, 0);
  assert.equal(t.tick(50).warnings.length, 1);
  assert.equal(t.tick(51).warnings.length, 0);
  t.update({ now: 51, stops: [{ reason: 'max_runtime', at: 400 }], warn_before: [60] }, 51); // extended
  assert.equal(t.tick(52).status.text, 'Server stops in 6 min');
  assert.equal(t.tick(52).warnings.length, 0);
  assert.equal(t.tick(345).warnings.length, 1);
  t.update({ now: 346, stops: [], warn_before: [60] }, 346);
  assert.equal(t.tick(347).status, null);
});

test('the soonest stop is shown; each stop has its own warnings', () => {
  const t = new StopTracker(clock);
  t.update({
    now: 0,
    stops: [
      { reason: 'max_runtime', at: 1000 },
      { reason: 'idle', at: 500, warn_before: [120] }
    ],
    warn_before: [600]
  }, 0);
  let r = t.tick(400);
  assert.equal(r.status.text, 'Server stops in 2 min');
  assert.match(r.status.title, /because it has been idle/);
  assert.deepEqual(r.warnings.map(w => w.key).sort(), ['idle@500', 'max_runtime@1000']);
  r = t.tick(401);
  assert.deepEqual(r.warnings, []);
});

test('no stops, no status', () => {
  const t = new StopTracker(clock);
  t.update({ now: 5, stops: [], warn_before: [60] }, 5);
  assert.deepEqual(t.tick(6), { status: null, warnings: [] });
});
