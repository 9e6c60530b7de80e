// What the status bar says and when to warn, from the server's answer to
// GET {baseUrl}gridspawner/stops — pure: no DOM, no timers, no JupyterLab (node --test runs it).
//
// The answer: {now, stops: [{reason, at, message?, warn_before?}], warn_before, poll_seconds};
// times are epoch seconds on the SERVER's clock ("now" lets us measure on that clock).

/** Why a stop happens, in words that finish "…because <why>". */
const REASONS = {
  max_runtime: 'its maximum run time ends',
  idle: 'it has been idle',
  quota: 'your quota runs out'
};

/**
 * Time left as people say it: "1 h 20 min", "5 min", "45 s".
 * Whole minutes are rounded UP from one minute on, so the 5-minute warning says "5 min".
 * @param {number} seconds
 * @returns {string}
 */
export function formatLeft(seconds) {
  const s = Math.max(0, Math.ceil(seconds));
  if (s < 60) {
    return `${s} s`;
  }
  const minutes = Math.ceil(s / 60);
  if (minutes < 60) {
    return `${minutes} min`;
  }
  const h = Math.floor(minutes / 60);
  const m = minutes % 60;
  return m ? `${h} h ${m} min` : `${h} h`;
}

/**
 * The warning due now, if any: the shortest warning time that `remaining` has reached and that
 * was not shown yet for this stop. Opening JupyterLab 3 minutes before a stop shows the
 * 5-minute warning once, not the 30-minute one too.
 * @param {number} remaining seconds left
 * @param {number[]} thresholds seconds before the stop
 * @param {Set<number>} shown thresholds already warned about (this function adds to it)
 * @returns {number | null} the threshold to warn about now
 */
export function dueWarning(remaining, thresholds, shown) {
  if (remaining <= 0) {
    return null;
  }
  const reached = thresholds.filter(t => remaining <= t);
  if (reached.length === 0) {
    return null;
  }
  const threshold = Math.min(...reached);
  if (shown.has(threshold)) {
    return null;
  }
  reached.forEach(t => shown.add(t));
  return threshold;
}

/** Why this stop happens, for "…because <why>". */
export function why(stop) {
  return stop.message || REASONS[stop.reason] || 'the hub stops it';
}

/**
 * The notification's text.
 * @param {{reason: string, at: number, message?: string}} stop
 * @param {number} remaining seconds left
 * @param {string} clock the stop's local time, e.g. "14:35"
 */
export function warningMessage(stop, remaining, clock) {
  return (
    `This server will be stopped in ${formatLeft(remaining)} (at ${clock}) ` +
    `because ${why(stop)}. Save your work.`
  );
}

/**
 * Follows the server's answers and says, at each tick, what the status bar shows and which
 * warnings to raise. Times: epoch seconds of the browser's clock (`Date.now() / 1000`).
 */
export class StopTracker {
  /** @param {(epochSeconds: number) => string} clock formats a stop's time for people */
  constructor(clock) {
    this.clock = clock;
    this.stops = [];
    this.thresholds = [];
    this.offset = 0; // server clock − browser clock
    this.shown = new Map(); // stop key → Set of thresholds already warned about
  }

  /**
   * Take a fresh answer from the server.
   * @param {object} answer the endpoint's JSON
   * @param {number} browserNow when it arrived
   */
  update(answer, browserNow) {
    this.stops = Array.isArray(answer.stops) ? answer.stops.filter(s => Number.isFinite(s.at)) : [];
    this.thresholds = Array.isArray(answer.warn_before) ? answer.warn_before : [];
    if (Number.isFinite(answer.now)) {
      this.offset = answer.now - browserNow;
    }
    // forget warnings of stops that are gone or moved (a moved stop warns afresh)
    const keys = new Set(this.stops.map(stopKey));
    for (const key of [...this.shown.keys()]) {
      if (!keys.has(key)) {
        this.shown.delete(key);
      }
    }
  }

  /**
   * @param {number} browserNow
   * @returns {{status: {text: string, title: string} | null,
   *            warnings: {key: string, message: string}[]}}
   */
  tick(browserNow) {
    const now = browserNow + this.offset;
    const upcoming = this.stops.filter(s => s.at > now - 60); // just passed: "stopping now"
    const warnings = [];
    for (const stop of upcoming) {
      const key = stopKey(stop);
      if (!this.shown.has(key)) {
        this.shown.set(key, new Set());
      }
      const thresholds = Array.isArray(stop.warn_before) ? stop.warn_before : this.thresholds;
      const remaining = stop.at - now;
      if (dueWarning(remaining, thresholds, this.shown.get(key)) !== null) {
        warnings.push({ key, message: warningMessage(stop, remaining, this.clock(stop.at - this.offset)) });
      }
    }
    if (upcoming.length === 0) {
      return { status: null, warnings };
    }
    const next = upcoming.reduce((a, b) => (b.at < a.at ? b : a));
    const remaining = next.at - now;
    const text = remaining > 0 ? `Server stops in ${formatLeft(remaining)}` : 'Server stopping now';
    const title = `The hub stops this server at ${this.clock(next.at - this.offset)} because ${why(next)}.`;
    return { status: { text, title }, warnings };
  }
}

/** A stop's identity: its reason and time (a moved stop is a new one). */
export function stopKey(stop) {
  return `${stop.reason}@${stop.at}`;
}
